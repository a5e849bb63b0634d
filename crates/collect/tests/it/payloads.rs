//! Whole tracker payloads, shaped as the `datafast` SDK's `buildBasePayload` builds them.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tally_collect::{Client, Collected, Collector, Error, GeoDb, TrackerPayload};
use tally_core::{Breakdown, Engine, Event, EventKind, Paging, Query, Website};

static COLLECTOR: LazyLock<Collector> = LazyLock::new(|| {
    let geo = GeoDb::from_bytes(crate::geo::test_city_db()).unwrap();
    Collector::new(Some(geo), b"test secret").unwrap()
});

const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1";

fn website(id: &str) -> Website {
    Website::new(id, "example.com")
}

fn now() -> DateTime<Utc> {
    "2026-03-02T10:00:00Z".parse().unwrap()
}

/// The SDK's base payload for `type`, merged with `extra` top-level fields.
fn payload(website_id: &str, kind: &str, href: &str, extra: Value) -> TrackerPayload {
    let mut p = json!({
        "websiteId": website_id,
        "domain": "example.com",
        "visitorId": "6c1b7e5a-3f7e-4d2b-9a41-0c5d2e8f1a77",
        "sessionId": "s0e5b1c2d-4a3b-4c5d-8e6f-7a8b9c0d1e2f",
        "visitorFirstSeenAt": "2026-03-02T09:59:00.000Z",
        "visitorSessionNumber": 1,
        "href": href,
        "referrer": null,
        "type": kind,
        "viewport": {"width": 1440, "height": 900},
        "language": "en-US",
        "timezone": "Europe/London",
        "screenWidth": 1440,
        "screenHeight": 900,
        "device": {"platform": "web", "osVersion": CHROME_MAC, "model": "Browser"}
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    TrackerPayload::from_json(p.to_string().as_bytes()).unwrap()
}

fn collect(p: &TrackerPayload, ua: &str, addr: Option<&str>) -> Result<Event, Error> {
    let client = Client {
        user_agent: Some(ua),
        addr: addr.map(|a| a.parse().unwrap()),
    };
    match COLLECTOR.collect(p, client, &website(&p.website_id), now())? {
        Collected::Event(e) => Ok(*e),
        Collected::Bot => panic!("taken for a bot"),
    }
}

#[test]
fn a_pageview_carries_page_campaign_referrer_agent_and_location() {
    let p = payload(
        "pv",
        "pageview",
        "https://www.example.com/blog/post?utm_source=newsletter&utm_medium=email&utm_campaign=spring&ref=indiehackers&gclid=abc",
        json!({"referrer": "https://news.ycombinator.com/item?id=1", "adClickIds": {"gclid": "abc"}}),
    );
    let e = collect(&p, CHROME_MAC, Some("81.2.69.160")).unwrap();
    assert_eq!(e.kind, EventKind::Pageview);
    assert_eq!(e.hostname.as_deref(), Some("www.example.com"));
    assert_eq!(e.path.as_deref(), Some("/blog/post"));
    assert_eq!(
        e.session_id.as_deref(),
        Some("s0e5b1c2d-4a3b-4c5d-8e6f-7a8b9c0d1e2f")
    );
    assert_eq!(e.visitor_id, "6c1b7e5a-3f7e-4d2b-9a41-0c5d2e8f1a77");
    assert_eq!(
        (e.viewport_width, e.viewport_height),
        (Some(1440), Some(900))
    );
    let a = &e.attrs;
    assert_eq!(a.utm_source.as_deref(), Some("newsletter"));
    assert_eq!(a.utm_medium.as_deref(), Some("email"));
    assert_eq!(a.utm_campaign.as_deref(), Some("spring"));
    assert_eq!(a.ref_.as_deref(), Some("indiehackers"));
    assert_eq!(a.referrer.as_deref(), Some("news.ycombinator.com"));
    assert_eq!(a.browser.as_deref(), Some("Chrome"));
    assert_eq!(a.device.as_deref(), Some("desktop"));
    assert_eq!(a.country_code.as_deref(), Some("GB"));
    assert_eq!(a.city.as_deref(), Some("London"));
    assert_eq!(a.region.as_deref(), Some("England"));
    assert_eq!(a.region_code.as_deref(), Some("GB-ENG"));
    assert_eq!(a.latitude, Some(51.5142));
}

#[test]
fn without_an_address_in_the_database_the_location_is_unknown() {
    let p = payload("pv2", "pageview", "https://example.com/", json!({}));
    let e = collect(&p, CHROME_MAC, Some("8.8.8.8")).unwrap();
    assert_eq!(e.attrs.country_code, None);
    let e = collect(&p, CHROME_MAC, None).unwrap();
    assert_eq!(e.attrs.city, None);
}

#[test]
fn custom_identify_payment_and_external_link_become_their_kinds() {
    let custom = payload(
        "kinds",
        "custom",
        "https://example.com/pricing",
        json!({"extraData": {"eventName": "signup", "plan": "pro", "seats": 3}}),
    );
    let e = collect(&custom, CHROME_MAC, None).unwrap();
    assert_eq!(e.path, None, "only page views carry a page");
    let EventKind::Goal { name, metadata } = e.kind else {
        panic!()
    };
    assert_eq!(name, "signup");
    assert_eq!(metadata["plan"], "pro");
    assert_eq!(metadata["seats"], "3");

    let identify = payload(
        "kinds",
        "identify",
        "https://example.com/app",
        json!({"extraData": {"user_id": "user_123", "name": "Ann Lee", "image": "", "email": "ann@example.com", "plan": "pro"}}),
    );
    let EventKind::Identify(i) = collect(&identify, CHROME_MAC, None).unwrap().kind else {
        panic!()
    };
    assert_eq!(i.user_id, "user_123");
    assert_eq!(i.name.as_deref(), Some("Ann Lee"));
    assert_eq!(i.email.as_deref(), Some("ann@example.com"));
    assert_eq!(i.image, None);
    assert_eq!(i.properties.get("plan").map(String::as_str), Some("pro"));

    let pay = payload(
        "kinds",
        "payment",
        "https://example.com/checkout",
        json!({"extraData": {"email": "ann@example.com", "amount": 29.99, "currency": "usd", "stripe_session_id": "cs_test_1"}}),
    );
    let EventKind::Payment(p) = collect(&pay, CHROME_MAC, None).unwrap().kind else {
        panic!()
    };
    assert_eq!((p.amount, p.currency.as_str()), (29.99, "USD"));
    assert_eq!(p.transaction_id, "tracker:cs_test_1");

    let link = payload(
        "kinds",
        "external_link",
        "https://example.com/",
        json!({"extraData": {"url": "https://github.com/x", "text": "GitHub"}}),
    );
    let EventKind::ExternalLink { url, text } = collect(&link, CHROME_MAC, None).unwrap().kind
    else {
        panic!()
    };
    assert_eq!(
        (url.as_str(), text.as_deref()),
        ("https://github.com/x", Some("GitHub"))
    );
}

#[test]
fn bad_payloads_name_the_field() {
    let cases = [
        ("custom", json!({"extraData": {}}), "extraData.eventName"),
        (
            "custom",
            json!({"extraData": {"eventName": "Sign Up!"}}),
            "name",
        ),
        (
            "identify",
            json!({"extraData": {"name": "x"}}),
            "extraData.user_id",
        ),
        ("payment", json!({"extraData": {"amount": 5}}), "extraData"),
        (
            "payment",
            json!({"extraData": {"email": "a@b.c", "amount": "lots"}}),
            "extraData.amount",
        ),
        (
            "payment",
            json!({"extraData": {"email": "a@b.c", "amount": -3}}),
            "amount",
        ),
        ("teleport", json!({}), "type"),
    ];
    for (kind, extra, field) in cases {
        let p = payload("bad", kind, "https://example.com/", extra);
        let err = collect(&p, CHROME_MAC, None).unwrap_err().to_string();
        assert!(err.contains(field), "{kind}: {err} should name {field}");
    }
    let p = payload("bad", "pageview", "not a url", json!({}));
    assert!(
        collect(&p, CHROME_MAC, None)
            .unwrap_err()
            .to_string()
            .contains("href")
    );
}

#[test]
fn other_domains_are_refused_and_bots_dropped_and_both_counted() {
    let p = payload(
        "counts",
        "pageview",
        "https://example.com/",
        json!({"domain": "evil.io"}),
    );
    assert!(matches!(
        collect(&p, CHROME_MAC, None),
        Err(Error::DomainNotAllowed(_))
    ));
    let ok = payload("counts", "pageview", "https://example.com/", json!({}));
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let out = COLLECTOR
        .collect(
            &ok,
            Client {
                user_agent: Some(bot),
                addr: None,
            },
            &website("counts"),
            now(),
        )
        .unwrap();
    assert!(matches!(out, Collected::Bot));
    collect(&ok, CHROME_MAC, None).unwrap();
    let s = COLLECTOR.stats("counts");
    assert_eq!((s.accepted, s.bots, s.rejected), (1, 1, 1));
}

#[test]
fn cookieless_visitors_get_a_stable_daily_id_from_the_server() {
    let p = |fresh: &str| {
        payload(
            "cl",
            "pageview",
            "https://example.com/",
            json!({"cookieless": true, "visitorId": fresh}),
        )
    };
    let a = collect(
        &p("11111111-1111-4111-8111-111111111111"),
        CHROME_MAC,
        Some("81.2.69.1"),
    )
    .unwrap();
    let b = collect(
        &p("22222222-2222-4222-8222-222222222222"),
        CHROME_MAC,
        Some("81.2.69.1"),
    )
    .unwrap();
    let other = collect(
        &p("33333333-3333-4333-8333-333333333333"),
        SAFARI_IPHONE,
        Some("81.2.69.1"),
    )
    .unwrap();
    assert_eq!(a.visitor_id, b.visitor_id);
    assert_ne!(a.visitor_id, other.visitor_id);
    assert!(!a.visitor_id.starts_with("1111"));
    assert_eq!(a.visitor_id.len(), 36);
}

/// Real referrer URLs through collect and the engine: the referrer breakdown shows the names.
#[tokio::test]
async fn real_referrer_urls_are_named_by_the_engine() {
    let referrers = [
        ("https://www.google.com/", "Google"),
        ("https://www.google.co.uk/search?q=tally", "Google"),
        ("https://t.co/AbCdEf123", "X"),
        ("https://news.ycombinator.com/item?id=42", "Hacker News"),
        ("https://www.reddit.com/r/rust/comments/abc/", "Reddit"),
        ("https://duckduckgo.com/", "DuckDuckGo"),
        ("https://www.bing.com/search?q=analytics", "Bing"),
        ("https://www.linkedin.com/feed/", "LinkedIn"),
        ("https://www.facebook.com/", "Facebook"),
        ("https://chatgpt.com/", "ChatGPT"),
        ("https://blog.someone.dev/post", "blog.someone.dev"),
        ("https://www.example.com/previous", "Direct/None"),
        ("", "Direct/None"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    engine.create_website(website("refs")).unwrap();
    let mut events = Vec::new();
    for (i, (url, _)) in referrers.iter().enumerate() {
        let p = payload(
            "refs",
            "pageview",
            "https://example.com/",
            json!({"referrer": url, "visitorId": format!("v{i}"), "sessionId": format!("s{i}")}),
        );
        events.push(collect(&p, CHROME_MAC, None).unwrap());
    }
    engine.ingest(events).await.unwrap();
    let rows = engine
        .breakdown(&Query::new("refs"), &Breakdown::Referrer, Paging::default())
        .await
        .unwrap()
        .rows;
    for (url, name) in referrers {
        let want = referrers.iter().filter(|(_, n)| *n == name).count() as u64;
        let row = rows.iter().find(|r| r.values[0] == name);
        assert_eq!(
            row.map(|r| r.visitors),
            Some(want),
            "{url} should be {name}: {rows:?}"
        );
    }
}

#[test]
fn a_bot_is_remembered_only_under_an_id_a_visitor_could_have() {
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let as_bot = |visitor: &str| {
        let p = payload(
            "bots",
            "pageview",
            "https://example.com/",
            json!({"visitorId": visitor}),
        );
        let client = Client {
            user_agent: Some(bot),
            addr: None,
        };
        let out = COLLECTOR
            .collect(&p, client, &website("bots"), now())
            .unwrap();
        assert!(matches!(out, Collected::Bot));
    };
    as_bot("crawler-1");
    assert!(COLLECTOR.is_bot_visitor("bots", "crawler-1"));
    // Megabytes of id are still a bot's request, and are not kept.
    let huge = "x".repeat(1 << 20);
    as_bot(&huge);
    assert!(!COLLECTOR.is_bot_visitor("bots", &huge));
}

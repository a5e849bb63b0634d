//! `POST /api/events` through `Router::oneshot`: payloads as the SDK sends them, the answers
//! they give back through the analytics API, CORS, and every refusal.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tally_server::app::Limits;
use tower::ServiceExt;

use crate::routes::{assert_error, call, fixture};

pub const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36";
pub const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1";
pub const GOOGLEBOT: &str =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

pub fn sdk_payload(kind: &str, visitor: &str, href: &str, extra: Value) -> Value {
    let mut p = json!({
        "websiteId": "site_a",
        "domain": "a.example",
        "visitorId": visitor,
        "sessionId": format!("s{visitor}"),
        "href": href,
        "referrer": null,
        "type": kind,
        "viewport": {"width": 390, "height": 844},
        "language": "en-US",
        "timezone": "UTC",
        "screenWidth": 390,
        "screenHeight": 844
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// POSTs `body` (raw bytes) to `/api/events` as a browser on `origin` would.
pub async fn post(
    app: &axum::Router,
    ua: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value, Option<String>) {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/events")
        .header("content-type", "application/json")
        .header("origin", "https://a.example")
        .header("user-agent", ua)
        .body(body.into())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cors = res
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        cors,
    )
}

pub async fn send(app: &axum::Router, ua: &str, payload: Value) -> Value {
    let (status, body, cors) = post(app, ua, payload.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cors.as_deref(), Some("*"));
    body
}

async fn rows(app: &axum::Router, key: &str, endpoint: &str) -> Vec<Value> {
    let (s, body) = call(
        app,
        Method::GET,
        &format!("/api/v1/analytics/{endpoint}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], key: &str, value: &str) -> &'a Value {
    rows.iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {rows:?}"))
}

#[tokio::test]
async fn tracked_events_show_up_in_the_analytics_answers() {
    let f = fixture(Limits::default()).await;
    let landing =
        "https://a.example/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=launch";
    let body = send(
        &f.app,
        SAFARI_IPHONE,
        sdk_payload(
            "pageview",
            "t1",
            landing,
            json!({"referrer": "https://www.google.com/"}),
        ),
    )
    .await;
    assert_eq!(body, json!({"status": "success", "visitorId": "t1"}));
    send(
        &f.app,
        SAFARI_IPHONE,
        sdk_payload(
            "pageview",
            "t1",
            "https://a.example/docs",
            json!({"referrer": landing}),
        ),
    )
    .await;
    send(
        &f.app,
        CHROME_MAC,
        sdk_payload("pageview", "t2", "https://a.example/pricing", json!({})),
    )
    .await;
    send(
        &f.app,
        SAFARI_IPHONE,
        sdk_payload(
            "custom",
            "t1",
            "https://a.example/docs",
            json!({"extraData": {"eventName": "signup", "plan": "pro"}}),
        ),
    )
    .await;
    send(
        &f.app,
        SAFARI_IPHONE,
        sdk_payload(
            "identify",
            "t1",
            "https://a.example/docs",
            json!({"extraData": {"user_id": "u1", "name": "Ann"}}),
        ),
    )
    .await;

    let pages = rows(&f.app, &f.key_a, "pages").await;
    assert_eq!(row(&pages, "path", "/pricing")["visitors"], 2);
    assert_eq!(row(&pages, "path", "/docs")["visitors"], 1);
    let referrers = rows(&f.app, &f.key_a, "referrers").await;
    assert_eq!(row(&referrers, "referrer", "Google")["visitors"], 1);
    let campaigns = rows(&f.app, &f.key_a, "campaigns").await;
    assert_eq!(
        campaigns[0]["campaign"]["utm_source"], "newsletter",
        "{campaigns:?}"
    );
    assert_eq!(campaigns[0]["visitors"], 1);
    let goals = rows(&f.app, &f.key_a, "goals").await;
    assert_eq!(row(&goals, "goal", "signup")["completions"], 1);
    let devices = rows(&f.app, &f.key_a, "devices").await;
    assert_eq!(row(&devices, "device", "mobile")["visitors"], 1);
    assert_eq!(row(&devices, "device", "desktop")["visitors"], 1);
    let browsers = rows(&f.app, &f.key_a, "browsers").await;
    assert_eq!(row(&browsers, "browser", "Safari")["visitors"], 1);
    assert_eq!(row(&browsers, "browser", "Chrome")["visitors"], 1);
    let (_, overview) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    // the fixture's own visitor `va` plus t1 and t2
    assert_eq!(overview["data"][0]["visitors"], 3, "{overview}");
}

#[tokio::test]
async fn bad_payloads_get_the_envelope_with_a_fitting_status() {
    let f = fixture(Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let (s, e, _) = post(&f.app, CHROME_MAC, "{not json").await;
    assert_error(s, &e, 400);
    let (s, e, _) = post(
        &f.app,
        CHROME_MAC,
        json!({"websiteId": "site_a", "type": "pageview"}).to_string(),
    )
    .await;
    assert_error(s, &e, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("href"),
        "{e}"
    );
    let mut unknown = sdk_payload("pageview", "x", "https://a.example/", json!({}));
    unknown["websiteId"] = json!("nope");
    let (s, e, _) = post(&f.app, CHROME_MAC, unknown.to_string()).await;
    assert_error(s, &e, 404);
    let foreign = sdk_payload(
        "pageview",
        "x",
        "https://evil.example/",
        json!({"domain": "evil.example"}),
    );
    let (s, e, _) = post(&f.app, CHROME_MAC, foreign.to_string()).await;
    assert_error(s, &e, 403);
    let big = sdk_payload(
        "pageview",
        "x",
        &format!("https://a.example/{}", "a".repeat(8000)),
        json!({}),
    );
    let (s, e, _) = post(&f.app, CHROME_MAC, big.to_string()).await;
    assert_error(s, &e, 413);
    let (s, e, _) = post(
        &f.app,
        CHROME_MAC,
        sdk_payload("teleport", "x", "https://a.example/", json!({})).to_string(),
    )
    .await;
    assert_error(s, &e, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("type"),
        "{e}"
    );
}

#[tokio::test]
async fn a_referrer_no_browser_could_send_is_refused_at_once() {
    let f = fixture(Limits::default()).await;
    // 30,000 labels: classifying it once took 7.7 s with ingest and queries waiting behind it.
    let host = "a.".repeat(30_000) + "com";
    let p = sdk_payload(
        "pageview",
        "x",
        "https://a.example/",
        json!({"referrer": format!("https://{host}/")}),
    );
    let (s, e, _) = post(&f.app, CHROME_MAC, p.to_string()).await;
    assert_error(s, &e, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("referrer"),
        "{e}"
    );
    // A long but possible one is stored and named.
    let host = "b.".repeat(100) + "google.com";
    let p = sdk_payload(
        "pageview",
        "y",
        "https://a.example/",
        json!({"referrer": format!("https://{host}/")}),
    );
    send(&f.app, CHROME_MAC, p).await;
    let referrers = rows(&f.app, &f.key_a, "referrers").await;
    row(&referrers, "referrer", "Google");
}

#[tokio::test]
async fn bots_are_dropped_and_counted_where_the_operator_can_see() {
    let f = fixture(Limits::default()).await;
    let (s, body, _) = post(
        &f.app,
        GOOGLEBOT,
        sdk_payload("pageview", "bot", "https://a.example/", json!({})).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, json!({"status": "ignored"}));
    send(
        &f.app,
        CHROME_MAC,
        sdk_payload("pageview", "human", "https://a.example/", json!({})),
    )
    .await;
    let foreign = sdk_payload(
        "pageview",
        "x",
        "https://evil.example/",
        json!({"domain": "evil.example"}),
    );
    post(&f.app, CHROME_MAC, foreign.to_string()).await;
    let (s, stats) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites/site_a/tracker-stats",
        Some(&f.token_all),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    // counts are per process and the collector is shared by the tests of this binary: at least these
    assert!(stats["data"]["bots"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["data"]["accepted"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["data"]["rejected"].as_u64().unwrap() >= 1, "{stats}");
    let pages = rows(&f.app, &f.key_a, "pages").await;
    assert_eq!(
        row(&pages, "path", "/")["visitors"],
        2,
        "the bot is not counted: {pages:?}"
    );
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites/site_a/tracker-stats",
        Some(&f.token_ro),
        None,
    )
    .await;
    assert_error(s, &e, 403);
}

#[tokio::test]
async fn cookieless_visitors_get_their_id_from_the_response() {
    let f = fixture(Limits::default()).await;
    let p = |fresh: &str| {
        sdk_payload(
            "pageview",
            fresh,
            "https://a.example/",
            json!({"cookieless": true}),
        )
    };
    let a = send(
        &f.app,
        CHROME_MAC,
        p("11111111-1111-4111-8111-111111111111"),
    )
    .await;
    let b = send(
        &f.app,
        CHROME_MAC,
        p("22222222-2222-4222-8222-222222222222"),
    )
    .await;
    assert_eq!(a["visitorId"], b["visitorId"]);
    assert_ne!(a["visitorId"], "11111111-1111-4111-8111-111111111111");
}

#[tokio::test]
async fn browsers_get_cors_preflight_answers() {
    let f = fixture(Limits::default()).await;
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/events")
        .header("origin", "https://a.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type")
    );
}

/// POSTs a page view of `visitor` to `/api/events` from the client address `from`.
async fn post_from(app: &axum::Router, from: [u8; 4], visitor: &str) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/events")
        .header("content-type", "application/json")
        .header("user-agent", CHROME_MAC)
        .body(Body::from(
            sdk_payload("pageview", visitor, "https://a.example/", json!({})).to_string(),
        ))
        .unwrap();
    let peer = std::net::SocketAddr::from((from, 40_000));
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_tracker_is_rate_limited_per_address_and_per_website() {
    // Per address: a burst of a sixth of the minute, then 429 in the envelope; another
    // address is not affected.
    let f = fixture(Limits {
        tracker_per_address: 60,
        ..Limits::default()
    })
    .await;
    for i in 0..10 {
        let (s, body) = post_from(&f.app, [81, 2, 69, 160], &format!("a{i}")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, e) = post_from(&f.app, [81, 2, 69, 160], "a-too-many").await;
    assert_error(s, &e, 429);
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("60 requests a minute per client address"),
        "{e}"
    );
    let (s, body) = post_from(&f.app, [81, 2, 69, 161], "b").await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Per website, whatever the addresses.
    let f = fixture(Limits {
        tracker_per_website: 60,
        ..Limits::default()
    })
    .await;
    for i in 0..10u8 {
        let (s, body) = post_from(&f.app, [10, 0, 0, i], &format!("w{i}")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, e) = post_from(&f.app, [10, 0, 1, 0], "w-too-many").await;
    assert_error(s, &e, 429);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per website"),
        "{e}"
    );
}

#[tokio::test]
async fn a_tracker_payment_gives_way_to_the_providers_report_and_is_bounded() {
    let f = fixture(Limits::default()).await;
    let revenue = || async {
        rows(&f.app, &f.key_a, "overview").await[0]["revenue"]
            .as_f64()
            .unwrap()
    };
    let checkout = |amount: f64| {
        sdk_payload(
            "payment",
            "payer",
            "https://a.example/checkout",
            json!({"extraData": {"email": "p@example.com", "amount": amount, "currency": "USD", "stripe_session_id": "cs_77"}}),
        )
    };
    send(
        &f.app,
        CHROME_MAC,
        sdk_payload("pageview", "payer", "https://a.example/", json!({})),
    )
    .await;
    let before = revenue().await;
    send(&f.app, CHROME_MAC, checkout(50.0)).await;
    assert_eq!(revenue().await, before + 50.0);

    // The provider's report of the same checkout is stored, not taken for a repeat, and the
    // browser's report gives way to it: the revenue is the provider's amount, once.
    let pay = json!({"amount": 30, "currency": "USD", "transaction_id": "cs_77", "datafast_visitor_id": "payer"});
    let (s, body) = call(
        &f.app,
        Method::POST,
        "/api/v1/payments",
        Some(&f.key_a),
        Some(pay),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(revenue().await, before + 30.0);
    // The browser reporting it again (a retry, a reload) adds nothing.
    send(&f.app, CHROME_MAC, checkout(50.0)).await;
    assert_eq!(revenue().await, before + 30.0);

    // No real checkout passes a million.
    let (s, e, _) = post(&f.app, CHROME_MAC, checkout(5e9).to_string()).await;
    assert_error(s, &e, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("extraData.amount"),
        "{e}"
    );
}

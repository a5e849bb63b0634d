//! Realtime, the realtime map and visitor profiles through `Router::oneshot`, fed by the
//! tracker endpoint as a browser would, and checked field by field against the seed examples.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tally_server::app::Limits;

use crate::routes::{assert_error, call, fixture};
use crate::tracker::{CHROME_MAC, GOOGLEBOT, SAFARI_IPHONE, post, sdk_payload, send};

/// Keys of the seed's realtime map visitor, and of its nested objects.
const MAP_VISITOR_KEYS: [&str; 15] = [
    "visitorId",
    "location",
    "system",
    "currentUrl",
    "referrer",
    "sessionStartTime",
    "visitCount",
    "params",
    "latitude",
    "longitude",
    "isCustomer",
    "customerName",
    "customerEmail",
    "profileData",
    "conversionLikelihood",
];
const MAP_EVENT_KEYS: [&str; 11] = [
    "_id",
    "type",
    "visitorId",
    "timestamp",
    "path",
    "countryCode",
    "extraData",
    "referrer",
    "customerName",
    "amount",
    "displayName",
];
const MAP_PAYMENT_KEYS: [&str; 11] = [
    "_id",
    "type",
    "timestamp",
    "name",
    "email",
    "amount",
    "currency",
    "renewal",
    "displayName",
    "isNew",
    "visible",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = k.iter().map(|s| (*s).to_owned()).collect();
    k.sort();
    k
}

/// Two live visitors: `ann` (Chrome, identified, paid) and `bob` (Safari, a goal).
async fn two_visitors(app: &axum::Router) {
    let landing = "https://a.example/pricing?utm_source=newsletter&ref=indiehackers";
    send(
        app,
        CHROME_MAC,
        sdk_payload(
            "pageview",
            "ann",
            landing,
            json!({"referrer": "https://www.google.com/"}),
        ),
    )
    .await;
    send(
        app,
        CHROME_MAC,
        sdk_payload("pageview", "ann", "https://a.example/checkout", json!({})),
    )
    .await;
    send(
        app,
        CHROME_MAC,
        sdk_payload(
            "identify",
            "ann",
            "https://a.example/checkout",
            json!({"extraData": {"user_id": "u_ann", "name": "Ann Lee"}}),
        ),
    )
    .await;
    send(app, CHROME_MAC, sdk_payload("payment", "ann", "https://a.example/checkout", json!({"extraData": {"email": "ann@example.com", "amount": 49, "currency": "USD", "stripe_session_id": "cs_1"}}))).await;
    send(
        app,
        SAFARI_IPHONE,
        sdk_payload("pageview", "bob", "https://a.example/", json!({})),
    )
    .await;
    send(
        app,
        SAFARI_IPHONE,
        sdk_payload(
            "custom",
            "bob",
            "https://a.example/",
            json!({"extraData": {"eventName": "newsletter_signup", "plan": "free"}}),
        ),
    )
    .await;
}

#[tokio::test]
async fn realtime_counts_the_visitors_of_the_last_minutes() {
    let f = fixture(Limits::default()).await;
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/realtime",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": [{"visitors": 0}]})
    );
    two_visitors(&f.app).await;
    let (_, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/realtime",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(body["data"][0]["visitors"], 2, "{body}");
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/realtime?startAt=2025-01-01",
        Some(&f.key_a),
        None,
    )
    .await;
    // Realtime has no range: the parameter is ignored, as DataFast ignores what it does not use.
    assert_eq!(s, StatusCode::OK, "{e}");
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/realtime",
        None,
        None,
    )
    .await;
    assert_error(s, &e, 401);
}

#[tokio::test]
async fn the_realtime_map_has_every_field_of_the_seed() {
    let f = fixture(Limits::default()).await;
    two_visitors(&f.app).await;
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/realtime/map",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(
        keys(d),
        sorted(&[
            "count",
            "visitors",
            "conversionMetrics",
            "hasConversionPredictions",
            "recentEvents",
            "recentPayments"
        ])
    );
    assert_eq!(d["count"], 2);
    assert_eq!(d["hasConversionPredictions"], true);
    assert!(
        d["conversionMetrics"]["baselineConversionRate"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{d}"
    );
    assert_eq!(d["conversionMetrics"]["baselineAverageValue"], 49);

    let visitors = d["visitors"].as_array().unwrap();
    let ann = visitors.iter().find(|v| v["visitorId"] == "ann").unwrap();
    let bob = visitors.iter().find(|v| v["visitorId"] == "bob").unwrap();
    // a customer has no likelihood; everything else is there
    let mut ann_keys = sorted(&MAP_VISITOR_KEYS);
    ann_keys.retain(|k| k != "conversionLikelihood");
    assert_eq!(keys(ann), ann_keys);
    assert_eq!(keys(bob), sorted(&MAP_VISITOR_KEYS));
    assert_eq!(
        keys(&ann["location"]),
        sorted(&["city", "region", "countryCode"])
    );
    assert_eq!(
        ann["system"],
        json!({"browser": {"name": "Chrome"}, "os": {"name": "Mac OS"}, "device": {"type": "desktop"}})
    );
    assert_eq!(bob["system"]["device"]["type"], "mobile");
    assert_eq!(ann["currentUrl"], "/checkout");
    assert_eq!(ann["referrer"], "Google");
    assert_eq!(bob["referrer"], Value::Null);
    assert_eq!(ann["visitCount"], 1);
    assert_eq!(ann["params"]["utm_source"], "newsletter");
    assert_eq!(ann["params"]["ref"], "indiehackers");
    assert_eq!(keys(&ann["params"]).len(), 8);
    assert_eq!(ann["isCustomer"], true);
    assert_eq!(ann["customerEmail"], "ann@example.com");
    assert_eq!(
        ann["profileData"],
        json!({"displayName": "Ann Lee", "userId": "u_ann", "hasProfile": true, "isRandomName": false})
    );
    assert_eq!(bob["isCustomer"], false);
    assert_eq!(bob["profileData"]["isRandomName"], true);
    assert_eq!(bob["profileData"]["hasProfile"], false);
    // As the seed shows for an anonymous visitor (issue 15, item 3).
    assert_eq!(bob["profileData"]["displayName"], Value::Null);
    let likelihood = &bob["conversionLikelihood"];
    assert_eq!(
        keys(likelihood),
        sorted(&[
            "score",
            "confidence",
            "isBaseline",
            "dimensionMatches",
            "raw"
        ])
    );
    assert_eq!(
        keys(&likelihood["raw"]),
        sorted(&["conversionRate", "averageValue", "expectedValue"])
    );
    assert!(likelihood["score"].as_u64().unwrap() <= 100);
    let started =
        chrono::DateTime::parse_from_rfc3339(ann["sessionStartTime"].as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now() - started.to_utc()).num_seconds() < 60);

    let events = d["recentEvents"].as_array().unwrap();
    assert_eq!(events.len(), 6);
    for e in events {
        assert_eq!(keys(e), sorted(&MAP_EVENT_KEYS), "{e}");
    }
    let goal = events.iter().find(|e| e["type"] == "custom").unwrap();
    assert_eq!(
        goal["extraData"],
        json!({"eventName": "newsletter_signup", "plan": "free"})
    );
    let payments = d["recentPayments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(keys(&payments[0]), sorted(&MAP_PAYMENT_KEYS));
    assert_eq!(payments[0]["type"], "payment_received");
    assert_eq!(
        (&payments[0]["amount"], &payments[0]["currency"]),
        (&json!(49), &json!("USD"))
    );
    assert_eq!(payments[0]["isNew"], true);
    assert_eq!(payments[0]["email"], "ann@example.com");
}

#[tokio::test]
async fn visitor_profiles_show_identity_activity_and_prediction() {
    let f = fixture(Limits::default()).await;
    two_visitors(&f.app).await;
    let (s, created) = call(
        &f.app,
        Method::POST,
        "/api/v1/goals",
        Some(&f.key_a),
        Some(json!({"datafast_visitor_id": "bob", "name": "demo_booked"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{created}");

    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/visitors/bob",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(
        keys(d),
        sorted(&["visitorId", "identity", "activity", "prediction"])
    );
    assert_eq!(
        keys(&d["identity"]),
        sorted(&[
            "country",
            "countryCode",
            "region",
            "city",
            "params",
            "browser",
            "os",
            "device",
            "viewport"
        ])
    );
    assert_eq!(
        keys(&d["identity"]["params"]).len(),
        7,
        "no `via` in the profile"
    );
    assert_eq!(d["identity"]["browser"]["name"], "Safari");
    assert_eq!(d["identity"]["browser"]["version"], "18.2");
    assert_eq!(d["identity"]["device"]["type"], "mobile");
    assert_eq!(
        d["identity"]["viewport"],
        json!({"width": 390, "height": 844})
    );
    let a = &d["activity"];
    assert_eq!(
        keys(a),
        sorted(&[
            "visitCount",
            "pageViewCount",
            "timeSinceFirstVisit",
            "timeSinceCurrentVisit",
            "firstVisitAt",
            "lastVisitAt",
            "currentUrl",
            "visitedPages",
            "completedCustomGoals"
        ])
    );
    assert_eq!(
        (&a["visitCount"], &a["pageViewCount"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(a["currentUrl"], "a.example/");
    assert_eq!(a["visitedPages"][0]["url"], "a.example/");
    assert!(a["timeSinceFirstVisit"].as_i64().unwrap() >= 0);
    let goals = a["completedCustomGoals"].as_array().unwrap();
    let by_name = |n: &str| goals.iter().find(|g| g["name"] == n).unwrap();
    assert_eq!(by_name("newsletter_signup")["isServer"], false);
    assert_eq!(by_name("demo_booked")["isServer"], true);
    assert_eq!(
        keys(by_name("demo_booked")),
        sorted(&["name", "description", "isServer", "timestamp"])
    );
    let p = &d["prediction"];
    assert_eq!(
        keys(p),
        sorted(&["score", "conversionRate", "expectedValue", "confidence"])
    );
    assert!(p["score"].as_u64().unwrap() <= 100);

    // a customer has no prediction
    let (_, ann) = call(
        &f.app,
        Method::GET,
        "/api/v1/visitors/ann",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(ann["data"]["prediction"], Value::Null, "{ann}");
    assert_eq!(ann["data"]["activity"]["pageViewCount"], 2);
    assert_eq!(
        ann["data"]["identity"]["params"]["utm_source"],
        "newsletter"
    );
}

#[tokio::test]
async fn unknown_visitors_are_404_and_bots_400() {
    let f = fixture(Limits::default()).await;
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/visitors/nobody",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 404);
    post(
        &f.app,
        GOOGLEBOT,
        sdk_payload("pageview", "crawler-1", "https://a.example/", json!({})).to_string(),
    )
    .await;
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/visitors/crawler-1",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("bot"),
        "{e}"
    );
    // site B's key cannot read site A's visitors
    two_visitors(&f.app).await;
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/visitors/ann",
        Some(&f.key_b),
        None,
    )
    .await;
    assert_error(s, &e, 404);
}

/// The map and the visitor profile show a region as its ISO 3166-2 code (as the seeds do);
/// the `regions` breakdown names it.
#[tokio::test]
async fn regions_are_codes_on_the_map_and_the_profile_and_names_in_breakdowns() {
    use std::sync::Arc;
    use tally_core::{Engine, Event, SessionAttrs, Website};
    use tally_server::app::{AppState, router};
    use tally_server::keys::KeyStore;

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    engine
        .create_website(Website::new("site_r", "r.example"))
        .unwrap();
    let mut view = Event::pageview(
        "site_r",
        "denver",
        chrono::Utc::now() - chrono::Duration::seconds(30),
        "r.example",
        "/",
    );
    view.attrs = SessionAttrs {
        country_code: Some("US".into()),
        region: Some("Colorado".into()),
        region_code: Some("US-CO".into()),
        city: Some("Denver".into()),
        ..SessionAttrs::default()
    };
    engine.ingest(vec![view]).await.unwrap();
    let keys = KeyStore::open(dir.path()).unwrap();
    let key = keys.create_website_key("site_r").unwrap();
    let app = router(AppState::new(
        Arc::new(engine),
        Arc::new(keys),
        Limits::default(),
        Arc::clone(&crate::routes::COLLECTOR),
    ));
    let get = async |path: &str| {
        let (s, body) = call(&app, Method::GET, path, Some(&key), None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    };
    let map = get("/api/v1/analytics/realtime/map").await;
    assert_eq!(
        map["data"]["visitors"][0]["location"],
        json!({"city": "Denver", "region": "US-CO", "countryCode": "US"})
    );
    let profile = get("/api/v1/visitors/denver").await;
    assert_eq!(profile["data"]["identity"]["region"], "US-CO");
    let regions = get("/api/v1/analytics/regions").await;
    assert_eq!(regions["data"][0]["region"], "Colorado", "{regions}");
}

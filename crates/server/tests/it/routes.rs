//! Every route through `Router::oneshot`: the success shape and the error statuses.

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tally_collect::Collector;
use tally_core::{Engine, Website};
use tally_server::app::{AppState, Limits, router};
use tally_server::keys::{KeyStore, Role, Scope};
use tower::ServiceExt;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub app: axum::Router,
    pub key_a: String,
    pub key_b: String,
    pub token_ro: String,
    pub token_all: String,
}

/// One collector for every test: loading the User-Agent rules takes a moment.
pub static COLLECTOR: LazyLock<Arc<Collector>> =
    LazyLock::new(|| Arc::new(Collector::new(None, b"test").unwrap()));

pub async fn fixture(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    let mut a = Website::new("site_a", "a.example");
    a.exchange_rates.insert("EUR".into(), 1.1);
    a.connected_providers = vec!["stripe".into()];
    engine.create_website(a).unwrap();
    engine
        .create_website(Website::new("site_b", "b.example"))
        .unwrap();
    let at = |s: &str| s.parse().unwrap();
    engine
        .ingest(vec![
            tally_core::Event::pageview(
                "site_a",
                "va",
                at("2025-03-10T10:00:00Z"),
                "a.example",
                "/",
            ),
            tally_core::Event::pageview(
                "site_b",
                "vb",
                at("2025-03-10T10:00:00Z"),
                "b.example",
                "/",
            ),
        ])
        .await
        .unwrap();
    let keys = KeyStore::open(dir.path()).unwrap();
    let key_a = keys.create_website_key("site_a").unwrap();
    let key_b = keys.create_website_key("site_b").unwrap();
    let token_ro = keys
        .create_token(&["site_a".into()], &[Scope::AnalyticsRead], Role::Member)
        .unwrap();
    let token_all = keys
        .create_token(&["site_a".into()], &Scope::ALL, Role::Owner)
        .unwrap();
    let app = router(AppState::new(
        Arc::new(engine),
        Arc::new(keys),
        limits,
        Arc::clone(&COLLECTOR),
    ));
    Fixture {
        _dir: dir,
        app,
        key_a,
        key_b,
        token_ro,
        token_all,
    }
}

pub async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    (status, value)
}

pub fn assert_error(status: StatusCode, body: &Value, want: u16) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["code"], want, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn every_analytics_endpoint_answers_with_its_shape() {
    let f = fixture(Limits::default()).await;
    for endpoint in tally_api::Endpoint::ALL {
        let (status, body) = call(
            &f.app,
            Method::GET,
            &format!("/api/v1/analytics/{}", endpoint.path()),
            Some(&f.key_a),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", endpoint.path());
        assert_eq!(body["status"], "success");
    }
    let (_, o) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(o["data"][0]["visitors"], 1);
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview?startAt=2025-01-01",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 400);
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/nonsense",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 404);
}

#[tokio::test]
async fn missing_and_unknown_keys_are_401() {
    let f = fixture(Limits::default()).await;
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        None,
        None,
    )
    .await;
    assert_error(s, &e, 401);
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some("df_not_a_key"),
        None,
    )
    .await;
    assert_error(s, &e, 401);
}

#[tokio::test]
async fn a_website_key_cannot_read_or_write_another_website() {
    let f = fixture(Limits::default()).await;
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview?websiteId=site_b",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 403);
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites/site_b/integrations",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 403);
    let goal = json!({ "datafast_visitor_id": "vb", "name": "signup" });
    let (s, e) = call(
        &f.app,
        Method::POST,
        "/api/v1/goals?websiteId=site_b",
        Some(&f.key_a),
        Some(goal),
    )
    .await;
    assert_error(s, &e, 403);
    // B's own key sees B's visitor; A's key does not
    let (_, b) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_b),
        None,
    )
    .await;
    assert_eq!(b["data"][0]["visitors"], 1);
    let goal = json!({ "datafast_visitor_id": "vb", "name": "signup" });
    let (s, e) = call(
        &f.app,
        Method::POST,
        "/api/v1/goals",
        Some(&f.key_a),
        Some(goal),
    )
    .await;
    assert_error(s, &e, 404); // vb has no pageview on site A
}

#[tokio::test]
async fn tokens_need_the_website_and_the_scope() {
    let f = fixture(Limits::default()).await;
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview?websiteId=site_a",
        Some(&f.token_ro),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.token_ro),
        None,
    )
    .await;
    assert_error(s, &e, 400);
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview?websiteId=site_b",
        Some(&f.token_ro),
        None,
    )
    .await;
    assert_error(s, &e, 403);
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites/site_a/integrations",
        Some(&f.token_ro),
        None,
    )
    .await;
    assert_error(s, &e, 403);
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites/site_a/integrations",
        Some(&f.token_all),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "status": "success", "data": [{
            "stripe": { "connected": true }, "lemonsqueezy": { "connected": false }, "polar": { "connected": false },
            "paddle": { "connected": false, "keyExpiresAt": null }, "shopify": { "connected": false },
            "woocommerce": { "connected": false }, "currency": "USD"
        }]})
    );
}

#[tokio::test]
async fn goals_are_created_validated_and_deleted() {
    let f = fixture(Limits::default()).await;
    let goal = json!({ "datafast_visitor_id": "va", "name": "newsletter_signup", "metadata": { "plan": "<b>pro</b><script>alert(1)</script>" } });
    let (s, body) = call(
        &f.app,
        Method::POST,
        "/api/v1/goals",
        Some(&f.key_a),
        Some(goal),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"][0]["message"],
        "Custom event created successfully"
    );
    assert!(
        body["data"][0]["eventId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    let (_, g) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/goals",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(g["data"][0]["goal"], "newsletter_signup");

    for (bad, field) in [
        (json!({ "name": "x" }), "datafast_visitor_id"),
        (json!({ "datafast_visitor_id": "va" }), "name"),
        (
            json!({ "datafast_visitor_id": "va", "name": "Not Valid" }),
            "name",
        ),
        (
            json!({ "datafast_visitor_id": "va", "name": "ok", "metadata": { "Bad Key": "x" } }),
            "metadata",
        ),
    ] {
        let (s, e) = call(
            &f.app,
            Method::POST,
            "/api/v1/goals",
            Some(&f.key_a),
            Some(bad),
        )
        .await;
        assert_error(s, &e, 400);
        assert!(
            e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    let (s, e) = call(
        &f.app,
        Method::POST,
        "/api/v1/goals",
        Some(&f.key_a),
        Some(json!({ "datafast_visitor_id": "ghost", "name": "x" })),
    )
    .await;
    assert_error(s, &e, 404);

    let (s, e) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/goals",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 400);
    let (s, body) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/goals?name=Newsletter%20Signup",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["goal_name"], "newsletter_signup");
    let (s, e) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/goals?name=newsletter_signup",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 404);
}

#[tokio::test]
async fn payments_are_idempotent_converted_and_deleted() {
    let f = fixture(Limits::default()).await;
    let pay = json!({ "amount": 100, "currency": "EUR", "transaction_id": "tx_1", "datafast_visitor_id": "va", "timestamp": "2025-03-10T10:05:00Z" });
    for _ in 0..2 {
        let (s, body) = call(
            &f.app,
            Method::POST,
            "/api/v1/payments",
            Some(&f.key_a),
            Some(pay.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({ "message": "Payment recorded and attributed successfully", "transaction_id": "tx_1" })
        );
    }
    let (_, o) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(o["data"][0]["revenue"], 110);

    // No GBP rate in the settings: the ECB rates of the payment's day convert it
    // (2025-03-10: 1 EUR = 1.0845 USD = 0.83849 GBP), as DataFast does (issue 15, item 5).
    let gbp = json!({ "amount": 50, "currency": "GBP", "transaction_id": "tx_gbp", "datafast_visitor_id": "va", "timestamp": "2025-03-10T11:00:00Z" });
    let (s, body) = call(
        &f.app,
        Method::POST,
        "/api/v1/payments",
        Some(&f.key_a),
        Some(gbp),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, o) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    let want = 110.0 + 50.0 / 0.83849 * 1.0845;
    let got = o["data"][0]["revenue"].as_f64().unwrap();
    assert!((got - want).abs() < 0.006, "{got} vs {want}");
    let (s, body) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/payments?transaction_id=tx_gbp",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    for (bad, field) in [
        (
            json!({ "currency": "USD", "transaction_id": "t" }),
            "amount",
        ),
        (
            json!({ "amount": "12", "currency": "USD", "transaction_id": "t" }),
            "amount",
        ),
        (json!({ "amount": 1, "transaction_id": "t" }), "currency"),
        (json!({ "amount": 1, "currency": "USD" }), "transaction_id"),
        (
            // GBP is converted at the ECB rate; a code the ECB does not quote is refused.
            json!({ "amount": 1, "currency": "XYZ", "transaction_id": "t" }),
            "currency",
        ),
    ] {
        let (s, e) = call(
            &f.app,
            Method::POST,
            "/api/v1/payments",
            Some(&f.key_a),
            Some(bad),
        )
        .await;
        assert_error(s, &e, 400);
        assert!(
            e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    let (s, e) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/payments?transaction_id=nope",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 404);
    let (s, body) = call(
        &f.app,
        Method::DELETE,
        "/api/v1/payments?tx_id=tx_1",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["message"], "Payment deleted successfully");
    let (_, o) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(o["data"][0]["revenue"], 0);
}

#[tokio::test]
async fn limits_give_413_and_429_with_retry_after() {
    // 12 a minute: bursts of two (a sixth of the minute), then one every five seconds.
    let f = fixture(Limits {
        requests_per_minute: 12,
        max_body_bytes: 64,
        ..Limits::default()
    })
    .await;
    let big = json!({ "datafast_visitor_id": "va", "name": "x".repeat(200) });
    let (s, e) = call(
        &f.app,
        Method::POST,
        "/api/v1/goals",
        Some(&f.key_a),
        Some(big),
    )
    .await;
    assert_error(s, &e, 413);
    let (s, _) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let req = Request::builder()
        .uri("/api/v1/analytics/overview")
        .header("authorization", format!("Bearer {}", f.key_a))
        .body(Body::empty())
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    // another key has its own budget
    let (s, _) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_b),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_envelope() {
    let f = fixture(Limits::default()).await;
    let (s, e) = call(&f.app, Method::GET, "/api/v1/nothing", Some(&f.key_a), None).await;
    assert_error(s, &e, 404);
    let (s, e) = call(&f.app, Method::PUT, "/api/v1/goals", Some(&f.key_a), None).await;
    assert_error(s, &e, 405);
    // Rejections of axum's own extractors: a path that is not UTF-8 once decoded, and a body
    // that is not JSON. They used to answer in plain text.
    let (s, e) = call(
        &f.app,
        Method::GET,
        "/api/v1/visitors/%FF%FE",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(s, &e, 400);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/goals")
        .header("authorization", format!("Bearer {}", f.key_a))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let e: Value = serde_json::from_slice(&bytes).unwrap();
    assert_error(status, &e, status.as_u16());
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn long_or_many_filters_are_a_400_not_a_crash() {
    let f = fixture(Limits::default()).await;
    let get = |uri: String| {
        let app = f.app.clone();
        let key = f.key_a.clone();
        async move { call(&app, Method::GET, &uri, Some(&key), None).await }
    };
    // 1,500 values once crashed the process (a stack overflow in the nested OR).
    let many_values = (0..1500)
        .map(|i| format!("a{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let uri = format!("/api/v1/analytics/overview?filter_page=contains:{many_values}");
    let (status, body) = get(uri).await;
    assert_error(status, &body, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("filter_page"), "{message}");

    // Repeats of one value count once.
    let uri = format!(
        "/api/v1/analytics/overview?filter_page=contains:{}",
        vec!["/"; 1500].join(",")
    );
    let (status, body) = get(uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let many_filters = vec!["filter_page=contains:a"; 1500].join("&");
    let (status, body) = get(format!("/api/v1/analytics/overview?{many_filters}")).await;
    assert_error(status, &body, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32 filters"),
        "{body}"
    );

    // The most a query may ask: 32 filters of 100 distinct values each, answered.
    let hundred = (0..100)
        .map(|i| format!("/p{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let widest = vec![format!("filter_page=contains:{hundred}"); 32].join("&");
    let (status, body) = get(format!("/api/v1/analytics/pages?{widest}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let f = fixture(Limits::default()).await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let req = Request::builder()
            .uri("/api/v1/analytics/overview")
            .header("authorization", format!("{scheme} {}", f.key_a))
            .body(Body::empty())
            .unwrap();
        let res = f.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{scheme}");
    }
    let req = Request::builder()
        .uri("/api/v1/analytics/overview")
        .header("authorization", format!("Basic {}", f.key_a))
        .body(Body::empty())
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Requests that integrations written against DataFast send, with parameters the docs do not
/// list: DataFast ignores those, and so does Tally (issue 15, item 8).
#[tokio::test]
async fn parameters_a_route_does_not_use_are_ignored() {
    let f = fixture(Limits::default()).await;
    for uri in [
        "/api/v1/analytics/overview?range=all",
        "/api/v1/analytics/timeseries?startAt=2025-03-01&endAt=2025-03-31&interval=day&fields=visitors,sessions,revenue,conversion_rate,name&groupBy=referrer",
        "/api/v1/analytics/metadata?fields=domain,name,logo",
        "/api/v1/analytics/pages?limit=5&sort=desc",
        "/api/v1/analytics/realtime?filter_country=is:US&foo=1",
        "/api/v1/analytics/realtime/map?bar=2",
    ] {
        let (status, body) = call(&f.app, Method::GET, uri, Some(&f.key_a), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let with_token = format!(
            "{uri}{}websiteId=site_a",
            if uri.contains('?') { "&" } else { "?" }
        );
        let (status, body) = call(&f.app, Method::GET, &with_token, Some(&f.token_ro), None).await;
        assert_eq!(status, StatusCode::OK, "{with_token}: {body}");
    }
    // A known parameter with a bad value is still a 400 naming it.
    let (status, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/pages?limit=lots&groupBy=x",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_error(status, &body, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
}

/// A `POST /goals` whose client sends its headers and then never the body.
fn stalled_goal(key: &str) -> Request<Body> {
    let stalled = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/goals")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from_stream(stalled))
        .unwrap()
}

#[tokio::test]
async fn a_request_past_its_time_limit_is_a_503_in_the_envelope() {
    let f = fixture(Limits {
        request_timeout: std::time::Duration::from_millis(50),
        ..Limits::default()
    })
    .await;
    // A client that sends its headers and then stalls its body (slow loris): the handler waits
    // for the body forever, so only the time limit can end the request.
    let request = stalled_goal(&f.key_a);
    let response = f.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_error(status, &body, 503);
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_shed_with_a_503() {
    let f = fixture(Limits {
        max_in_flight: 1,
        ..Limits::default()
    })
    .await;
    // One request holds the only permit: its client never finishes sending the body.
    let request = stalled_goal(&f.key_a);
    let holder = tokio::spawn(f.app.clone().oneshot(request));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let shed = Request::builder()
        .uri("/api/v1/analytics/overview")
        .header("authorization", format!("Bearer {}", f.key_a))
        .body(Body::empty())
        .unwrap();
    let response = f.app.clone().oneshot(shed).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_error(StatusCode::SERVICE_UNAVAILABLE, &body, 503);
    // Once it is gone, the permit is free again.
    holder.abort();
    let _ = holder.await;
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/analytics/overview",
        Some(&f.key_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_client_address() {
    let f = fixture(Limits::default()).await;
    let from = |addr: &str, key: &str| {
        let mut req = Request::builder()
            .uri("/api/v1/analytics/overview")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let peer: std::net::SocketAddr = format!("{addr}:4000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        f.app.clone().oneshot(req)
    };
    // 60 a minute, in bursts of 10.
    for _ in 0..10 {
        let r = from("203.0.113.7", "df_guess").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = from("203.0.113.7", "df_guess").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed authentications"),
        "{body}"
    );
    // Another address has its own budget; a valid key is not a failure.
    let r = from("203.0.113.8", "df_guess").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = from("203.0.113.7", &f.key_a).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_credential_lists_the_websites_it_reaches() {
    let f = fixture(Limits::default()).await;
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites",
        Some(&f.key_b),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["site_b"]);
    assert!(body["data"][0]["timezone"].is_string());
    // A token with no settings scope still learns which websites it names, and nothing else.
    let (s, body) = call(
        &f.app,
        Method::GET,
        "/api/v1/admin/websites",
        Some(&f.token_ro),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["site_a"]);
    let (s, e) = call(&f.app, Method::GET, "/api/v1/admin/websites", None, None).await;
    assert_error(s, &e, 401);
}

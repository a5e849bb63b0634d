//! Random and hostile requests over every route through `Router::oneshot` (a seeded, bounded
//! proptest): query strings with known and unknown names and hostile values, bodies that are
//! JSON of the right and wrong shapes or not JSON at all, every kind of credential. No request
//! may panic or get a 5xx, every error must be the documented envelope with its status, and a
//! key never gets an answer about a website it does not own.

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tally_server::app::Limits;
use tower::ServiceExt;

use crate::routes::{Fixture, fixture};

const ENDPOINTS: [&str; 17] = [
    "overview",
    "timeseries",
    "metadata",
    "devices",
    "pages",
    "campaigns",
    "goals",
    "referrers",
    "countries",
    "regions",
    "cities",
    "browsers",
    "operating-systems",
    "hostnames",
    "realtime",
    "realtime/map",
    "nope",
];

const PARAMS: [&str; 22] = [
    "startAt",
    "endAt",
    "limit",
    "offset",
    "fields",
    "interval",
    "timezone",
    "websiteId",
    "filter_country",
    "filter_page",
    "filter_referrer",
    "filter_device",
    "filter_goal",
    "filter_utm_source",
    "filter_colour",
    "transaction_id",
    "datafast_visitor_id",
    "name",
    "groupBy",
    "range",
    "visitor_id",
    "x",
];

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("-1".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("1e400".to_owned()),
        Just("+262143-12-31T23:59:59".to_owned()),
        Just("2025-02-30".to_owned()),
        Just("2025-03-10".to_owned()),
        Just("2025-03-10T10:00:00.999+00:00".to_owned()),
        Just("site_a".to_owned()),
        Just("site_b".to_owned()),
        Just("is:".to_owned()),
        Just("contains:a".to_owned()),
        Just("is:United States,US,ZZ".to_owned()),
        Just("is_not:mobile".to_owned()),
        Just("Mars/Olympus".to_owned()),
        Just("visitors,sessions,revenue,name".to_owned()),
        (1usize..3000).prop_map(|n| format!("is:{}", "a,".repeat(n))),
        (1usize..20_000).prop_map(|n| "x".repeat(n)),
        "\\PC{0,40}",
    ]
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![4 => prop::sample::select(PARAMS.to_vec()).prop_map(str::to_owned), 1 => "\\PC{0,12}"],
            hostile_value(),
            prop::bool::weighted(0.05),
        ),
        0..6,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, raw)| {
                // Now and then a value that is not valid percent-encoded UTF-8.
                let v = if raw { "%ff%fe".to_owned() } else { encode(&v) };
                format!("{}={v}", encode(&k))
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(ENDPOINTS.to_vec()).prop_map(|e| format!("/api/v1/analytics/{e}")),
        1 => "[a-z0-9%-]{0,300}".prop_map(|v| format!("/api/v1/visitors/{v}")),
        1 => Just("/api/v1/visitors/va".to_owned()),
        1 => Just("/api/v1/goals".to_owned()),
        1 => Just("/api/v1/payments".to_owned()),
        1 => Just("/api/v1/admin/websites".to_owned()),
        1 => prop::sample::select(vec!["site_a", "site_b", "nope"]).prop_map(|s| format!("/api/v1/admin/websites/{s}/integrations")),
        1 => prop::sample::select(vec!["site_a", "site_b"]).prop_map(|s| format!("/api/v1/admin/websites/{s}/tracker-stats")),
        1 => Just("/api/events".to_owned()),
        1 => Just("/".to_owned()),
        1 => "[a-zA-Z.]{0,20}".prop_map(|f| format!("/dashboard/{f}")),
    ]
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    let field = prop_oneof![
        Just(json!(null)),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!("va")),
        Just(json!("site_a")),
        Just(json!("signup")),
        Just(json!("USD")),
        Just(json!("EUR")),
        Just(json!({"a": [1, 2, {"b": null}]})),
        "\\PC{0,60}".prop_map(Value::from),
        (0usize..100_000).prop_map(|n| Value::from("y".repeat(n))),
    ];
    let names = prop::sample::select(vec![
        "datafast_visitor_id",
        "name",
        "metadata",
        "amount",
        "currency",
        "transaction_id",
        "timestamp",
        "websiteId",
        "type",
        "href",
        "domain",
        "visitorId",
        "referrer",
        "extraData",
        "email",
        "renewal",
        "refunded",
    ]);
    prop_oneof![
        2 => Just(None),
        3 => prop::collection::btree_map(names, field, 0..8)
            .prop_map(|m| Some(serde_json::to_vec(&m).unwrap())),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
struct Hostile {
    method: Method,
    path: String,
    query: String,
    auth: usize,
    body: Option<Vec<u8>>,
}

fn request() -> impl Strategy<Value = Hostile> {
    (
        prop::sample::select(vec![
            Method::GET,
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PUT,
            Method::OPTIONS,
        ]),
        path(),
        query(),
        0usize..8,
        body(),
    )
        .prop_map(|(method, path, query, auth, body)| Hostile {
            method,
            path,
            query,
            auth,
            body,
        })
}

/// The `Authorization` header of credential number `i`, and whether it is site_b's key.
fn authorization(f: &Fixture, i: usize) -> (Option<String>, bool) {
    match i {
        0 => (None, false),
        1 => (Some(format!("Bearer {}", f.key_a)), false),
        2 => (Some(format!("Bearer {}", f.key_b)), true),
        3 => (Some(format!("Bearer {}", f.token_ro)), false),
        4 => (Some(format!("bearer {}", f.token_all)), false),
        5 => (Some("Bearer df_00000000000000000000".to_owned()), false),
        6 => (Some("Basic dXNlcjpwYXNz".to_owned()), false),
        _ => (Some(format!("Bearer {}", "k".repeat(5000))), false),
    }
}

async fn check(f: &Fixture, r: &Hostile) -> Result<(), TestCaseError> {
    let uri = if r.query.is_empty() {
        r.path.clone()
    } else {
        format!("{}?{}", r.path, r.query)
    };
    let Ok(uri) = uri.parse::<axum::http::Uri>() else {
        return Ok(()); // not a request a client could send
    };
    let mut req = Request::builder()
        .method(r.method.clone())
        .uri(uri)
        .header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36");
    let (auth, is_site_b) = authorization(f, r.auth);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if r.body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(r.body.clone().map_or_else(Body::empty, Body::from))
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    prop_assert!(status < 500, "{status} for {r:?}: {text}");
    if status >= 400 {
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| TestCaseError::fail(format!("{status} not in the envelope: {text}")))?;
        prop_assert_eq!(&v["status"], "error", "{}", text);
        prop_assert_eq!(
            v["error"]["code"].as_u64(),
            Some(u64::from(status)),
            "{}",
            text
        );
        prop_assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // site_b's key never reads or changes site_a.
    let names_a = r.query.contains("site_a") || r.path.contains("site_a");
    if is_site_b && names_a && status < 300 && r.path != "/api/events" && r.path != "/" {
        prop_assert!(
            !text.contains("a.example"),
            "site_b's key got site_a's data for {r:?}: {text}"
        );
    }
    Ok(())
}

#[test]
fn random_and_hostile_requests_never_break_the_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture(Limits {
        requests_per_minute: u32::MAX,
        tracker_per_address: u32::MAX,
        tracker_per_website: u32::MAX,
        ..Limits::default()
    }));
    let mut runner = TestRunner::new(Config {
        cases: 1500,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&request(), |r| rt.block_on(check(&f, &r)))
        .unwrap();
}

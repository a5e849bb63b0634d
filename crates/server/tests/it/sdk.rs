//! The published DataFast tracker SDK (`datafast` 3.0.18 on npm, pinned in `e2e/sdk`) driven
//! from Node against the real `tally serve`, then checked through the analytics API.
//!
//! Needs Node and `npm ci --prefix e2e/sdk`; `.ci/run` does both and sets `TALLY_SDK_E2E=1`,
//! which makes a missing setup a failure rather than a skip.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::e2e::{Server, get, tally};

const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1";
const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:134.0) Gecko/20100101 Firefox/134.0";

fn sdk_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../e2e/sdk"))
}

/// Runs one visit (see `e2e/sdk/visit.mjs`) and returns the visitor id the SDK used.
fn visit(visit: Value) -> String {
    let out = Command::new("node")
        .current_dir(sdk_dir())
        .arg("visit.mjs")
        .arg(visit.to_string())
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "visit failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    printed["visitorId"].as_str().unwrap().to_owned()
}

fn data(addr: &str, endpoint: &str, key: &str) -> Vec<Value> {
    let (status, body) = get(addr, &format!("/api/v1/analytics/{endpoint}"), key);
    assert_eq!(status, 200, "{endpoint}: {body}");
    body["data"].as_array().unwrap().clone()
}

fn visitors_of(rows: &[Value], key: &str, value: &str) -> Value {
    rows.iter()
        .find(|r| r[key] == value)
        .map(|r| r["visitors"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn the_real_sdk_events_come_back_through_the_api() {
    let installed = sdk_dir().join("node_modules/datafast/package.json");
    if !installed.exists() {
        assert!(
            std::env::var_os("TALLY_SDK_E2E").is_none(),
            "TALLY_SDK_E2E is set but {} is missing: run `npm ci --prefix e2e/sdk`",
            installed.display()
        );
        eprintln!("skipped: the datafast SDK is not installed (npm ci --prefix e2e/sdk)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let created = tally(
        dir.path(),
        &["website", "create", "--domain", "shop.example"],
    );
    let site = created["websiteId"].as_str().unwrap().to_owned();
    let key = created["apiKey"].as_str().unwrap().to_owned();
    let server = Server::start(dir.path(), &[]);
    let api_url = format!("http://{}/api/events", server.addr);
    let base = |ua: &str, referrer: &str, steps: Value| {
        json!({"apiUrl": api_url, "websiteId": site, "domain": "shop.example",
               "userAgent": ua, "referrer": referrer, "steps": steps})
    };

    let ann = visit(base(
        CHROME_MAC,
        "https://www.google.com/",
        json!([
            {"pageview": "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=launch"},
            {"pageview": "https://shop.example/pricing"},
            {"track": ["signup", {"plan": "pro"}]},
            {"identify": ["user_1", {"name": "Ann", "email": "ann@example.com"}]},
            {"payment": {"email": "ann@example.com", "amount": 49, "currency": "USD"}}
        ]),
    ));
    let bob = visit(base(
        SAFARI_IPHONE,
        "https://news.ycombinator.com/item?id=1",
        json!([
            {"pageview": "https://shop.example/blog/hello"},
            {"track": ["signup", {"plan": "free"}]}
        ]),
    ));
    let cat = visit(base(
        FIREFOX_WINDOWS,
        "",
        json!([{"pageview": "https://shop.example/pricing"}]),
    ));
    assert_eq!(
        [&ann, &bob, &cat]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );

    let overview = &data(&server.addr, "overview", &key)[0];
    assert_eq!(overview["visitors"], 3, "{overview}");
    assert_eq!(overview["sessions"], 3, "{overview}");
    assert_eq!(overview["revenue"], 49, "{overview}");

    let pages = data(&server.addr, "pages", &key);
    assert_eq!(visitors_of(&pages, "path", "/"), 1, "{pages:?}");
    assert_eq!(visitors_of(&pages, "path", "/pricing"), 2, "{pages:?}");
    assert_eq!(visitors_of(&pages, "path", "/blog/hello"), 1, "{pages:?}");

    let referrers = data(&server.addr, "referrers", &key);
    assert_eq!(
        visitors_of(&referrers, "referrer", "Google"),
        1,
        "{referrers:?}"
    );
    assert_eq!(
        visitors_of(&referrers, "referrer", "Hacker News"),
        1,
        "{referrers:?}"
    );
    assert_eq!(
        visitors_of(&referrers, "referrer", "Direct/None"),
        1,
        "{referrers:?}"
    );

    let campaigns = data(&server.addr, "campaigns", &key);
    assert_eq!(campaigns.len(), 1, "{campaigns:?}");
    assert_eq!(campaigns[0]["campaign"]["utm_source"], "newsletter");
    assert_eq!(campaigns[0]["campaign"]["utm_medium"], "email");
    assert_eq!(campaigns[0]["campaign"]["utm_campaign"], "launch");
    assert_eq!(campaigns[0]["visitors"], 1);

    let goals = data(&server.addr, "goals", &key);
    let signup = goals.iter().find(|g| g["goal"] == "signup").unwrap();
    assert_eq!(
        (&signup["completions"], &signup["visitors"]),
        (&json!(2), &json!(2))
    );

    let devices = data(&server.addr, "devices", &key);
    assert_eq!(visitors_of(&devices, "device", "desktop"), 2, "{devices:?}");
    assert_eq!(visitors_of(&devices, "device", "mobile"), 1, "{devices:?}");
    let browsers = data(&server.addr, "browsers", &key);
    for b in ["Chrome", "Safari", "Firefox"] {
        assert_eq!(visitors_of(&browsers, "browser", b), 1, "{browsers:?}");
    }
    let systems = data(&server.addr, "operating-systems", &key);
    for os in ["Mac OS", "iOS", "Windows"] {
        assert_eq!(
            visitors_of(&systems, "operating_system", os),
            1,
            "{systems:?}"
        );
    }
}

//! The dashboard at `/` in a real browser: headless Chromium (Debian's `chromium`, driven by
//! `puppeteer-core` pinned in `e2e/dashboard`) signs in on a fixture website served by the real
//! binary, and what the page shows must equal the API's answers, before and after clicking a
//! country. Screenshots go to `target/tmp/dashboard/`.
//!
//! Needs Node, `npm ci --prefix e2e/dashboard` and Chromium; `.ci/run` provides them and sets
//! `TALLY_DASHBOARD_E2E=1`, which makes a missing setup a failure rather than a skip.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::e2e::{Server, create_token, create_website, get, tally};

fn e2e_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../e2e/dashboard"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `n` as the page writes it (`en-US` grouping).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Page views of 1,500 visitors over October 2025: three countries, two devices.
fn fixture_lines() -> String {
    let mut out = String::new();
    for v in 0..1500u32 {
        let country = ["US", "US", "US", "FR", "DE"][v as usize % 5];
        let device = if v % 3 == 0 { "mobile" } else { "desktop" };
        for k in 0..(1 + v % 3) {
            let day = 1 + v % 30;
            let line = serde_json::json!({
                "type": "pageview",
                "timestamp": format!("2025-10-{day:02}T{:02}:{:02}:00Z", 8 + v % 12, k * 5),
                "visitor_id": format!("v{v}"),
                "url": format!("https://example.com/{}", ["", "pricing", "blog/a"][(v + k) as usize % 3]),
                "country": country,
                "device": device,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

fn overview_visitors(addr: &str, key: &str, query: &str) -> u64 {
    let (status, body) = get(addr, &format!("/api/v1/analytics/overview?{query}"), key);
    assert_eq!(status, 200, "{body}");
    body["data"][0]["visitors"].as_u64().unwrap()
}

#[test]
fn the_dashboard_shows_what_the_api_answers() {
    let ready = e2e_dir()
        .join("node_modules/puppeteer-core/package.json")
        .exists()
        && chromium().exists();
    if !ready {
        assert!(
            std::env::var_os("TALLY_DASHBOARD_E2E").is_none(),
            "TALLY_DASHBOARD_E2E is set but the browser setup is missing: run `npm ci --prefix e2e/dashboard` and install chromium"
        );
        eprintln!("skipped: no puppeteer-core in e2e/dashboard or no Chromium");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (site, key) = create_website(dir.path(), "example.com");
    let file = dir.path().join("fixture.ndjson");
    std::fs::write(&file, fixture_lines()).unwrap();
    let imported = tally(
        dir.path(),
        &["import", "--website", &site, file.to_str().unwrap()],
    );
    assert_eq!(imported["rejected"], 0, "{imported}");
    // A second website with fewer visitors, and a token for both.
    let (shop, shop_key) = create_website(dir.path(), "shop.example.org");
    let shop_file = dir.path().join("shop.ndjson");
    let shop_lines: String = fixture_lines()
        .lines()
        .take(300)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &shop_file,
        shop_lines.replace("example.com", "shop.example.org"),
    )
    .unwrap();
    tally(
        dir.path(),
        &["import", "--website", &shop, shop_file.to_str().unwrap()],
    );
    let token = create_token(dir.path(), &format!("{site},{shop}"));
    let server = Server::start(dir.path(), &[]);
    let base = format!("http://{}", server.addr);

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .current_dir(e2e_dir())
        .env("CHROMIUM", chromium())
        .args(["check.mjs", &base, &key, shots.to_str().unwrap(), &token])
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "the browser run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Every number on the first view is the API's, and nothing went wrong in the console.
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen}");
    let before = &seen["before"];
    assert_eq!(
        before["visitors"],
        grouped(overview_visitors(&server.addr, &key, ""))
    );
    assert_eq!(before["chartDrawn"], true);
    let (status, countries) = get(&server.addr, "/api/v1/analytics/countries?limit=10", &key);
    assert_eq!(status, 200);
    let want: Vec<Value> = countries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::json!([r["country"], grouped(r["visitors"].as_u64().unwrap())]))
        .collect();
    assert_eq!(before["countries"], Value::Array(want.clone()), "{seen}");

    // The map shades exactly the countries with visitors, and a click on one filters by it.
    let mut names: Vec<&str> = want.iter().map(|r| r[0].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(before["mapShaded"], serde_json::json!(names), "{seen}");
    assert!(before["mapOutlines"].as_u64().unwrap() > 150, "{seen}");
    assert_eq!(
        seen["mapClick"],
        serde_json::json!([format!("country is {}", names[names.len() - 1])])
    );

    // Clicking the first country filters every panel by it.
    let first = want[0][0].as_str().unwrap();
    let after = &seen["after"];
    assert_eq!(
        after["chips"],
        serde_json::json!([format!("country is {first}")])
    );
    let filtered = overview_visitors(
        &server.addr,
        &key,
        &format!("filter_country=is:{}", first.replace(' ', "%20")),
    );
    assert!(filtered < overview_visitors(&server.addr, &key, ""));
    assert_eq!(after["visitors"], grouped(filtered), "{seen}");
    assert_eq!(after["countries"].as_array().unwrap().len(), 1, "{seen}");

    // The bookmarked view shows the same, and the key left the address bar.
    assert_eq!(seen["bookmarked"]["visitors"], after["visitors"]);
    assert_eq!(seen["bookmarked"]["hash"], "");
    // Signed in with the token, the picker offers both websites and shows each one's figures.
    let account = &seen["account"];
    let visitors_of = |id: &str| {
        let k = if id == site { &key } else { &shop_key };
        grouped(overview_visitors(&server.addr, k, ""))
    };
    for side in ["first", "second"] {
        let shown = &account[side];
        assert_eq!(shown["pickerShown"], true, "{seen}");
        let mut options: Vec<&str> = shown["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        options.sort_unstable();
        let mut both = [site.as_str(), shop.as_str()];
        both.sort_unstable();
        assert_eq!(options, both);
        assert_eq!(
            shown["visitors"],
            visitors_of(shown["site"].as_str().unwrap()),
            "{seen}"
        );
    }
    assert_ne!(account["first"]["site"], account["second"]["site"]);
    for shot in [
        "dashboard.png",
        "dashboard-filtered.png",
        "dashboard-dark.png",
        "dashboard-token.png",
    ] {
        assert!(
            shots.join(shot).metadata().unwrap().len() > 10_000,
            "{shot}"
        );
    }
    eprintln!(
        "first view in {} ms; screenshots in {}",
        seen["firstViewMs"],
        shots.display()
    );
}

#[test]
fn the_dashboard_is_served_with_a_strict_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for path in ["/", "/dashboard/app.js", "/dashboard/uPlot.iife.min.js"] {
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        use std::io::{Read, Write};
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{path}");
    }
    let (status, body) = get(&server.addr, "/dashboard/nope.js", "");
    assert_eq!(status, 404);
    assert_eq!(body["status"], "error");
}

//! The real `tally` binary: create a website, import the fixtures, serve on a free port and
//! query over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the `tally` binary on `dir`.
fn run_tally(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `tally`'s JSON answer; the command must succeed.
pub fn tally(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = run_tally(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn get(addr: &str, path: &str, key: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// A new website of `domain`, created with the CLI: `(id, df_ key)`.
pub fn create_website(dir: &std::path::Path, domain: &str) -> (String, String) {
    let created = tally(dir, &["website", "create", "--domain", domain]);
    let site = created["websiteId"].as_str().unwrap().to_owned();
    let key = created["apiKey"].as_str().unwrap().to_owned();
    (site, key)
}

/// A new `dft_` token with `analytics:read` on `websites` (comma-separated ids).
pub fn create_token(dir: &std::path::Path, websites: &str) -> String {
    tally(
        dir,
        &[
            "token",
            "create",
            "--website",
            websites,
            "--scopes",
            "analytics:read",
        ],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A website for the fixture events (with their EUR rate), created with the CLI: `(id, key)`.
fn fixture_website(dir: &std::path::Path) -> (String, String) {
    let (site, key) = create_website(dir, "example.com");
    tally(
        dir,
        &["website", "set", "--website", &site, "--rate", "EUR=1.1"],
    );
    (site, key)
}

/// `n` generated events (in time order) as NDJSON lines.
fn generated_lines(n: usize, seed: u64) -> Vec<String> {
    tally_core::synthetic::events(n, seed)
        .iter()
        .map(|e| tally_core::synthetic::ndjson_line(e).to_string())
        .collect()
}

/// The fixture's events of its main website, as NDJSON lines without a `website_id`.
fn fixture_lines() -> Vec<String> {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/events-small.ndjson"
    ))
    .unwrap();
    fixture
        .lines()
        .filter(|l| !l.contains("\"website_id\""))
        .map(str::to_owned)
        .collect()
}

/// An import whose flushes run beside its next batches (`--flush-rows`, here every 400 rows:
/// a dozen flushes, each overlapping the batches after it, and a compaction) stores every
/// line, leaves only the segments its catalog lists, and answers as the same file imported
/// with one flush at the end.
#[test]
fn an_import_flushing_beside_its_batches_answers_as_one_flushed_once() {
    // Enough lines for more blocks (of about 2,000 lines) than a website keeps small segments.
    let lines = generated_lines(24_000, 7);
    let answers = |flush_rows: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (site, _) = create_website(dir.path(), "example.com");
        let file = dir.path().join("in.ndjson");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let args = ["import", "--website", &site, "--flush-rows", flush_rows];
        let report = tally(dir.path(), &[&args[..], &[file.to_str().unwrap()]].concat());
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join("segments").join(&site))
            .unwrap()
            .map(|f| {
                format!(
                    "segments/{site}/{}",
                    f.unwrap().file_name().to_string_lossy()
                )
            })
            .collect();
        files.sort();
        // Only the segments the catalog lists are left: the ones that compaction joined are
        // removed before the import ends, not at the next open.
        let catalog: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("catalog.json")).unwrap())
                .unwrap();
        let mut listed: Vec<String> = catalog["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["file"].as_str().unwrap().to_owned())
            .collect();
        listed.sort();
        assert_eq!(files, listed);
        let segments = files.len();
        if flush_rows == "400" {
            // Segments are numbered in order: a number past the count was used by one replaced.
            let last = std::path::Path::new(files.last().unwrap());
            let highest: usize = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            assert!(highest > segments, "a compaction ran: {files:?}");
        }
        let query = |endpoint: &str| tally(dir.path(), &["query", endpoint, "--website", &site]);
        let answers = ["overview", "pages", "countries", "referrers", "goals"].map(query);
        (report, answers, segments)
    };
    let (report, flushed_often, segments) = answers("400");
    let (once_report, flushed_once, _) = answers("1000000");
    assert_eq!(report, once_report);
    assert!(report["imported"].as_u64().unwrap() > 23_500, "{report}");
    assert!(segments > 1, "{segments} segments: the flushes ran");
    assert_eq!(flushed_often, flushed_once);
}

#[test]
fn an_import_not_in_time_order_says_how_many_events_came_late_and_sorts_with_sort() {
    // Three blocks or so of generated lines (in time order), then the same lines newest first.
    let lines = generated_lines(6_000, 11);
    // The import's report, its stderr, and the website's overview and pages.
    let import_with = |lines: &[String], flags: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let (site, _) = create_website(dir.path(), "example.com");
        let file = dir.path().join("in.ndjson");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let args = [
            &["import", "--website", &site][..],
            flags,
            &[file.to_str().unwrap()],
        ];
        let out = run_tally(dir.path(), &args.concat());
        assert!(out.status.success());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let query = |endpoint: &str| tally(dir.path(), &["query", endpoint, "--website", &site]);
        let answers = ["overview", "pages"].map(query);
        (
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            answers,
        )
    };
    let import = |lines: &[String]| {
        let (report, stderr, _) = import_with(lines, &[]);
        (report, stderr)
    };
    let (in_order, quiet) = import(&lines);
    assert_eq!(in_order["out_of_order"], 0, "{in_order}");
    assert!(!quiet.contains("--sort"), "{quiet}");

    let newest_first: Vec<String> = lines.iter().rev().cloned().collect();
    let (report, stderr) = import(&newest_first);
    assert_eq!(report["imported"], in_order["imported"]);
    // The events after the first block are earlier than those read before them, most of them
    // by more than half an hour.
    let late = report["out_of_order"].as_u64().unwrap();
    assert!(late > 2_000 && late < 5_000, "{report}");
    assert!(
        stderr.contains(&format!(
            "{late} events were more than 30 minutes earlier than an event read before them"
        )) && stderr.contains("--sort"),
        "{stderr}"
    );
    assert!(
        stderr.contains("this file is not in time order"),
        "said as soon as it is seen: {stderr}"
    );

    // Read with `--sort`, the newest-first file answers as the file in time order does, its
    // sessions included; a bad line is still rejected by its own number.
    let (_, _, in_order_answers) = import_with(&lines, &[]);
    let mut with_bad_line = newest_first.clone();
    with_bad_line.insert(4_500, "not json".into());
    let (report, stderr, answers) = import_with(&with_bad_line, &["--sort"]);
    assert_eq!(report["out_of_order"], 0, "{report}");
    assert_eq!(report["imported"], in_order["imported"]);
    assert_eq!(report["rejected"], 1);
    assert!(stderr.contains("line 4501: "), "{stderr}");
    assert_eq!(answers, in_order_answers);
    let (_, _, unsorted_answers) = import_with(&newest_first, &[]);
    assert_ne!(
        unsorted_answers[0], in_order_answers[0],
        "read newest first without --sort, the sessions differ"
    );
}

#[test]
fn import_serve_and_query_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (site, key) = fixture_website(dir.path());

    // the fixture with three bad lines added
    let lines = fixture_lines();
    let file = dir.path().join("in.ndjson");
    // After the 41 fixture lines (and the line spliced in below), line 43 parses but is not a
    // valid event: it is rejected by its line number.
    let empty_visitor = r#"{"type":"pageview","timestamp":"2025-03-10T10:00:00Z","visitor_id":"","url":"https://example.com/"}"#;
    let mut content = format!("{}\n{empty_visitor}\nnot json\n", lines.join("\n")).into_bytes();
    // A line that is not UTF-8 is rejected alone; the lines after it still go in.
    let split = content.len() / 2;
    let at = split + content[split..].iter().position(|b| *b == b'\n').unwrap() + 1;
    content.splice(at..at, b"{\"type\":\"pageview\xff\"}\n".iter().copied());
    std::fs::write(&file, content).unwrap();
    let out = run_tally(
        dir.path(),
        &["import", "--website", &site, file.to_str().unwrap()],
    );
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 43: ") && stderr.contains("visitor_id"),
        "{stderr}"
    );
    assert_eq!(report["rejected"], 3);
    assert_eq!(report["imported"], 40); // 41 lines, one repeated transaction skipped
    assert_eq!(report["duplicates"], 1);
    assert!(
        stderr.contains("1 payments repeated a stored transaction id and were skipped"),
        "{stderr}"
    );

    let q = tally(dir.path(), &["query", "overview", "--website", &site]);
    assert_eq!(q["data"][0]["visitors"], 10);
    let realtime = tally(dir.path(), &["query", "realtime", "--website", &site]);
    assert_eq!(
        realtime["data"][0]["visitors"], 0,
        "the fixture is from 2025"
    );
    let v1 = tally(dir.path(), &["query", "visitors/v1", "--website", &site]);
    assert_eq!(v1["data"]["visitorId"], "v1", "{v1}");
    assert!(
        v1["data"]["activity"]["pageViewCount"].as_u64().unwrap() >= 1,
        "{v1}"
    );

    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let (status, body) = get(&addr, "/api/v1/analytics/overview", &key);
    let (s2, pages) = get(&addr, "/api/v1/analytics/pages?limit=1", &key);
    let (s3, denied) = get(&addr, "/api/v1/analytics/overview", "df_wrong");
    drop(server);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["visitors"], 10);
    assert_eq!(body["data"][0]["revenue"], 287.98);
    assert_eq!(s2, 200);
    assert_eq!(pages["data"][0]["path"], "/");
    assert_eq!(pages["pagination"]["total"], 6);
    assert_eq!(s3, 401);
    assert_eq!(denied["error"]["code"], 401);
}

/// A `tally serve` on a free loopback port, stopped when dropped.
pub struct Server {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// Starts the binary on `dir` with extra `serve` arguments and waits until it listens.
    pub fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--addr", &addr])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let started = Instant::now();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            let Some(Ok(l)) = lines.next() else {
                panic!("server exited")
            };
            if l.contains("listening on") {
                break;
            }
        }
        // keep draining the log so the server never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tally` with its exit status and both outputs, for commands expected to fail.
fn tally_status(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = run_tally(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn commands_next_to_a_running_server_go_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();

    // The server holds the directory; the CLI hands each command to it.
    let (site, key) = fixture_website(dir.path());
    let token = create_token(dir.path(), &site);
    let lines = fixture_lines();
    std::fs::write(dir.path().join("in.ndjson"), lines.join("\n")).unwrap();
    // A relative file name is the client's, not the server's.
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .current_dir(dir.path())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["import", "--website", &site, "in.ndjson"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["imported"],
        40,
        "{report} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The running server knows the new website, its key and the token at once.
    let (status, body) = get(&addr, "/api/v1/analytics/overview", &key);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["visitors"], 10);
    let path = format!("/api/v1/analytics/overview?websiteId={site}");
    let (status, body) = get(&addr, &path, &token);
    assert_eq!(status, 200, "{body}");

    // Errors come back as the command's own.
    let (ok, text) = tally_status(dir.path(), &["website", "show", "--website", "nope"]);
    assert!(!ok && text.contains("website not found: nope"), "{text}");
    // A second server is refused with who holds the directory.
    let (ok, text) = tally_status(dir.path(), &["serve", "--addr", "127.0.0.1:0"]);
    assert!(!ok && text.contains("in use by process"), "{text}");

    drop(server); // SIGKILL
    let q = tally(dir.path(), &["query", "overview", "--website", &site]);
    assert_eq!(q["data"][0]["visitors"], 10);
}

#[test]
fn a_bot_visitor_is_still_a_bot_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (site, key) = create_website(dir.path(), "crash.example");

    let server = Server::start(dir.path(), &[]);
    let ua = crate::tracker::GOOGLEBOT;
    // A bot's request is answered `{"status":"ignored"}`, not stored.
    assert!(!crate::crash::post_pageview(
        &server.addr,
        &site,
        "bot-1",
        ua
    ));
    let (status, body) = get(&server.addr, "/api/v1/visitors/bot-1", &key);
    assert_eq!(status, 400, "{body}");
    drop(server); // SIGKILL

    // The seed's 400 for a bot, not a 404 for an unknown visitor (issue 15, item 7).
    let server = Server::start(dir.path(), &[]);
    let (status, body) = get(&server.addr, "/api/v1/visitors/bot-1", &key);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("bot"),
        "{body}"
    );
    let (status, _) = get(&server.addr, "/api/v1/visitors/nobody", &key);
    assert_eq!(status, 404);
}

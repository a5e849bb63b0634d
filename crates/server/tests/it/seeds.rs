//! Every read request the DataFast documentation shows (`../shared/seeds/`), replayed as
//! written against a fixture website with a `df_` key and with a `dft_` token: each is a 200
//! success (issue 15).

use axum::http::{Method, StatusCode};
use tally_server::app::Limits;

use crate::routes::{call, fixture};

/// The `https://datafa.st/api/v1/analytics/…` and `/visitors/…` URLs of the seeds, as paths.
fn documented_reads() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/seeds");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let Some(at) = line.find("https://datafa.st/api/v1/") else {
                continue;
            };
            let url = &line[at + "https://datafa.st".len()..];
            let end = url.find(['"', '`', '\'']).unwrap_or(url.len());
            let path = url[..end].trim_end().replace(' ', "%20");
            let read =
                path.starts_with("/api/v1/analytics/") || path.starts_with("/api/v1/visitors/");
            if read && !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

#[tokio::test]
async fn every_documented_read_request_succeeds_with_a_key_and_a_token() {
    let f = fixture(Limits::default()).await;
    let paths = documented_reads();
    assert!(paths.len() >= 20, "{paths:?}");
    for path in paths {
        // The documentation's placeholders name a visitor the fixture has.
        let path = path
            .replace("${datafast_visitor_id}", "va")
            .replace("{datafast_visitor_id}", "va");
        let (status, body) = call(&f.app, Method::GET, &path, Some(&f.key_a), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["status"], "success", "{path}: {body}");
        let joined = format!(
            "{path}{}websiteId=site_a",
            if path.contains('?') { '&' } else { '?' }
        );
        let (status, body) = call(&f.app, Method::GET, &joined, Some(&f.token_ro), None).await;
        assert_eq!(status, StatusCode::OK, "{joined}: {body}");
    }
}

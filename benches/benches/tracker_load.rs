//! Load test of `POST /api/events`: concurrent clients on loopback send tracker page views
//! (as the DataFast SDK builds them, with real browser User-Agents) to the real router for a
//! fixed time; prints events/s and the latency distribution. The engine flushes to Parquet
//! every 5 s meanwhile, as `tally serve` does every 30 s.
//!
//! ```sh
//! cargo bench -p tally-benches --bench tracker_load
//! TALLY_LOAD_CLIENTS=64 TALLY_LOAD_SECONDS=30 cargo bench -p tally-benches --bench tracker_load
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use tally_collect::Collector;
use tally_core::{Engine, Query, Website};
use tally_server::app::{AppState, Limits};
use tally_server::keys::KeyStore;

// The allocator `tally serve` uses (see crates/server/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:134.0) Gecko/20100101 Firefox/134.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Mobile Safari/537.36",
];
const PAGES: [&str; 5] = ["/", "/pricing", "/blog/launch", "/docs", "/signup"];

mod support;
use support::{drive, env_or, quantile_ms, serve};

fn payload(client: u64, n: u64) -> String {
    let visitor = client * 1_000_000 + n / 8; // eight page views per visitor
    serde_json::json!({
        "websiteId": "load",
        "domain": "example.com",
        "visitorId": format!("v{visitor}"),
        "sessionId": format!("s{visitor}"),
        "href": format!("https://example.com{}?utm_source=load", PAGES[(n % 5) as usize]),
        "referrer": if n.is_multiple_of(8) { "https://www.google.com/" } else { "" },
        "type": "pageview",
        "viewport": {"width": 1440, "height": 900}
    })
    .to_string()
}

fn main() {
    let clients = env_or("TALLY_LOAD_CLIENTS", 32);
    let seconds = env_or("TALLY_LOAD_SECONDS", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path()).await.unwrap());
        engine
            .create_website(Website::new("load", "example.com"))
            .unwrap();
        let keys = Arc::new(KeyStore::open(dir.path()).unwrap());
        let collector = Arc::new(Collector::new(None, b"load").unwrap());
        // Every client posts from loopback without pause: the tracker's per-address and
        // per-website limits are lifted, the rest is as `tally serve` runs.
        let limits = Limits {
            tracker_per_address: u32::MAX,
            tracker_per_website: u32::MAX,
            ..Limits::default()
        };
        let state = AppState::new(Arc::clone(&engine), keys, limits, collector);
        let addr = serve(state).await;
        let flusher = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    engine.flush().await.unwrap();
                }
            })
        };

        let url = format!("http://{addr}/api/events");
        let (latencies, elapsed) = drive(clients, seconds, move |c, n| {
            axum::http::Request::post(&url)
                .header("content-type", "application/json")
                .header("user-agent", USER_AGENTS[((c + n) % 4) as usize])
                .body(Full::new(Bytes::from(payload(c, n))))
                .unwrap()
        })
        .await;
        let mut latencies: Vec<Duration> = latencies.into_iter().map(|l| l.2).collect();
        flusher.abort();
        engine.flush().await.unwrap();
        latencies.sort();

        let stored = engine.overview(&Query::new("load")).await.unwrap();
        println!(
            "tracker_load: {clients} clients, {:.1} s: {} events, {:.0} events/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} visitors stored",
            elapsed.as_secs_f64(),
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            quantile_ms(&latencies, 0.50),
            quantile_ms(&latencies, 0.99),
            quantile_ms(&latencies, 1.0),
            stored.visitors,
        );
    });
}

//! Load test of the analytics routes: concurrent clients on loopback send a dashboard's mix of
//! queries (overview, time series with filters, countries, pages with a filter, referrers,
//! devices, browsers, campaigns) to the real router over the generated data set for a fixed
//! time, and the latency distribution is printed. The data directory is the one the DuckDB
//! comparison uses (`benches/compare.sh`), imported on first use.
//!
//! With `TALLY_LOAD_INGEST=N`, N page views a second (of a pool of live visitors, stamped now)
//! are ingested while the clients ask, into a copy of the data directory, so that answers
//! merge newer rows into their cached parts as they would under a tracker's traffic. With
//! `TALLY_LOAD_FLUSH_SECONDS=S` as well, the engine flushes every S seconds, as `tally serve`
//! does (each flush also saves the ingest state, see `EngineConfig::checkpoint_max_pause`).
//!
//! ```sh
//! cargo bench -p tally-benches --bench query_load   # TALLY_LOAD_EVENTS=4000000 TALLY_LOAD_CLIENTS=16 TALLY_LOAD_SECONDS=30 TALLY_LOAD_INGEST=0 TALLY_LOAD_ANSWER_CACHE_MB=128
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::Empty;
use tally_benches::{WEBSITE, data_dir, prepare_data_dir};
use tally_collect::Collector;
use tally_core::Engine;
use tally_server::app::{AppState, Limits};
use tally_server::keys::KeyStore;

// The allocator `tally serve` uses (see crates/server/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A dashboard's questions, asked in turn by every client.
const QUERIES: [&str; 8] = [
    "/api/v1/analytics/overview",
    "/api/v1/analytics/timeseries?startAt=2025-03-02&endAt=2025-03-31&interval=day&timezone=America/New_York&filter_country=is:US,CA&filter_device=is_not:mobile",
    "/api/v1/analytics/countries?limit=10",
    "/api/v1/analytics/pages?filter_page=contains:/blog",
    "/api/v1/analytics/referrers",
    "/api/v1/analytics/devices",
    "/api/v1/analytics/browsers?filter_country=is:US",
    "/api/v1/analytics/campaigns",
];

mod support;
use support::{drive, env_or, quantile_ms, serve};

fn main() {
    let events = env_or("TALLY_LOAD_EVENTS", 4_000_000) as usize;
    let clients = env_or("TALLY_LOAD_CLIENTS", 16);
    let seconds = env_or("TALLY_LOAD_SECONDS", 30);
    let root = std::env::var("TALLY_COMPARE_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/compare"),
        PathBuf::from,
    );
    let dir = data_dir(&root, events);
    let ingest_rate = env_or("TALLY_LOAD_INGEST", 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        prepare_data_dir(&dir, events).await.unwrap();
        // Writes go to a copy: the generated data set is shared with the DuckDB comparison.
        let copy = tempfile::tempdir().unwrap();
        let dir = if ingest_rate > 0 {
            copy_dir(&dir, copy.path()).unwrap();
            copy.path().to_path_buf()
        } else {
            dir
        };
        // TALLY_LOAD_ANSWER_CACHE_MB=0 measures every answer as a first one.
        let config = tally_core::EngineConfig {
            answer_cache_bytes: (env_or("TALLY_LOAD_ANSWER_CACHE_MB", 128) as usize) << 20,
            ..tally_core::EngineConfig::default()
        };
        let engine = Arc::new(Engine::open_with(&dir, config).await.unwrap());
        let t = Instant::now();
        engine.warm().await.unwrap();
        let warm = t.elapsed();
        let keys = Arc::new(KeyStore::open(&dir).unwrap());
        let key = keys.create_website_key(WEBSITE).unwrap();
        let collector = Arc::new(Collector::new(None, b"load").unwrap());
        let limits = Limits {
            requests_per_minute: u32::MAX,
            ..Limits::default()
        };
        let state = AppState::new(Arc::clone(&engine), keys, limits, collector);
        let addr = serve(state).await;

        let ingested = Arc::new(std::sync::atomic::AtomicU64::new(0));
        if ingest_rate > 0 {
            tokio::spawn(ingest_live(Arc::clone(&engine), ingest_rate, Arc::clone(&ingested)));
        }
        let flush_every = env_or("TALLY_LOAD_FLUSH_SECONDS", 0);
        if flush_every > 0 {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                let period = Duration::from_secs(flush_every);
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    tick.tick().await;
                    if let Err(e) = engine.flush().await {
                        eprintln!("flush failed: {e}");
                    }
                }
            });
        }
        let query = |c: u64, n: u64| ((c + n) % QUERIES.len() as u64) as usize;
        let (latencies, elapsed) = drive(clients, seconds, move |c, n| {
            axum::http::Request::get(format!("http://{addr}{}", QUERIES[query(c, n)]))
                .header("authorization", format!("Bearer {key}"))
                .body(Empty::<Bytes>::new())
                .unwrap()
        })
        .await;
        for (i, q) in QUERIES.iter().enumerate() {
            let mut mine: Vec<Duration> = latencies
                .iter()
                .filter(|l| query(l.0, l.1) == i)
                .map(|l| l.2)
                .collect();
            mine.sort();
            println!("  p50 {:7.1} ms  {q}", quantile_ms(&mine, 0.5));
        }
        let mut latencies: Vec<Duration> = latencies.into_iter().map(|l| l.2).collect();
        latencies.sort();

        println!(
            "query_load: {events} events (resident in {:.1} s, {} MiB; answer cache {} MiB), {} events ingested meanwhile, {clients} clients, {:.1} s: {} requests, {:.0} requests/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; peak RSS {:.0} MiB",
            warm.as_secs_f64(),
            engine.resident_bytes() >> 20,
            engine.answer_cache_bytes() >> 20,
            ingested.load(std::sync::atomic::Ordering::Relaxed),
            elapsed.as_secs_f64(),
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            quantile_ms(&latencies, 0.50),
            quantile_ms(&latencies, 0.99),
            quantile_ms(&latencies, 1.0),
            tally_benches::peak_rss_mib(),
        );
    });
}

/// Copies the data directory `from` (files and the segment tree) to `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "LOCK" || name == "admin.sock" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Ingests `rate` page views a second, stamped now, from a pool of live visitors, in a write
/// every 10 ms (as a tracker's requests would arrive), counting them in `done`.
async fn ingest_live(engine: Arc<Engine>, rate: u64, done: Arc<std::sync::atomic::AtomicU64>) {
    const PAGES: [&str; 6] = [
        "/",
        "/pricing",
        "/blog/launch",
        "/blog/rust",
        "/docs",
        "/about",
    ];
    const COUNTRIES: [&str; 5] = ["US", "FR", "DE", "IN", "CA"];
    let per_tick = rate.div_ceil(100);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let batch: Vec<_> = (0..per_tick)
            .map(|i| {
                n += 1;
                let line = serde_json::json!({
                    "type": "pageview",
                    "timestamp": (now + chrono::Duration::microseconds(i as i64)).to_rfc3339(),
                    "visitor_id": format!("live-{}", n % 5000),
                    "url": format!("https://{WEBSITE}.example{}", PAGES[(n % 6) as usize]),
                    "country": COUNTRIES[(n % 5) as usize],
                    "device": if n.is_multiple_of(3) { "mobile" } else { "desktop" },
                });
                tally_core::import::parse_line(&line.to_string(), Some(WEBSITE)).unwrap()
            })
            .collect();
        let k = batch.len() as u64;
        if engine.ingest(batch).await.is_ok() {
            done.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

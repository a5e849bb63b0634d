//! Realtime answers against histories of different lengths at the same traffic (11,111 events
//! a day, up to the present): the latency of `Engine::realtime_visitors` and `Engine::live`
//! (the realtime map) should not grow with the history, because they read only the last
//! minutes (and the last 24 hours for session starts); segments outside the window are not
//! opened and row groups outside it are pruned. Also measured: counting the conversion model's
//! statistics, which does read the whole history and is therefore cached
//! (`tally_core::live::MODEL_TTL`).
//!
//! `cargo bench -p tally-benches --bench realtime`

use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tally_benches::{WEBSITE, website};
use tally_core::synthetic::events_between;
use tally_core::{Engine, Event};

// The allocator `tally serve` uses (see crates/server/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Days of history before the last ten minutes.
const HISTORY_DAYS: [i64; 3] = [1, 10, 90];
/// Events a day in the history.
const PER_DAY: usize = 11_111;
/// Events in the last ten minutes, the same for every history.
const RECENT: usize = 2_000;

/// `RECENT` events squeezed into the ten minutes before `now`.
fn recent(now: chrono::DateTime<Utc>) -> Vec<Event> {
    let from = now - chrono::Duration::days(1);
    events_between(WEBSITE, from, 1, RECENT, 7)
        .into_iter()
        .map(|mut e| {
            let frac = (e.ts - from).num_microseconds().unwrap_or(0) as f64 / 86_400e6;
            e.ts = now - chrono::Duration::minutes(10)
                + chrono::Duration::microseconds((frac * 600e6) as i64);
            e
        })
        .collect()
}

fn realtime(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = Utc::now();
    let mut g = c.benchmark_group("realtime");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    for days in HISTORY_DAYS {
        let history = days as usize * PER_DAY;
        let dir = tempfile::tempdir().unwrap();
        let engine = rt.block_on(async {
            let engine = Engine::open(dir.path()).await.unwrap();
            engine.create_website(website()).unwrap();
            let from = now - chrono::Duration::minutes(10) - chrono::Duration::days(days);
            // visits near the end of the span run a few minutes on: keep the history before
            // the ten recent minutes, so that every run has the same recent data
            let old: Vec<Event> = events_between(WEBSITE, from, days, history, 42)
                .into_iter()
                .filter(|e| e.ts < now - chrono::Duration::minutes(10))
                .collect();
            engine.ingest(old).await.unwrap();
            engine.flush().await.unwrap();
            engine.ingest(recent(now)).await.unwrap();
            engine.conversion_stats(WEBSITE).await.unwrap();
            engine
        });
        g.bench_with_input(
            BenchmarkId::new("visitors_5min", history),
            &history,
            |b, _| b.iter(|| rt.block_on(engine.realtime_visitors(WEBSITE, now)).unwrap()),
        );
        g.bench_with_input(BenchmarkId::new("map_10min", history), &history, |b, _| {
            b.iter(|| rt.block_on(engine.live(WEBSITE, now)).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("model_stats_uncached", history),
            &history,
            |b, _| b.iter(|| rt.block_on(engine.count_model_stats(WEBSITE)).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, realtime);
criterion_main!(benches);

//! # tally-benches
//!
//! Criterion benches of Tally (`benches/engine.rs`), load tests over HTTP, and the comparison
//! with DuckDB (`src/bin/compare.rs`), over the deterministic synthetic data set of
//! [`tally_core::synthetic`], re-exported here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Duration;
pub use tally_core::synthetic::{
    DAYS, GENERATION, WEBSITE, events, events_in, ndjson_line, start, website,
};
use tally_core::{Engine, Event};

/// Events generated and ingested at a time by [`prepare_data_dir`].
const SLICE: usize = 1_000_000;

/// Where the data set of `n` events is kept under `root`: named with the generator's
/// [`GENERATION`], so that a data set of an older generator is not reused.
pub fn data_dir(root: &Path, n: usize) -> PathBuf {
    root.join(format!("events-{n}-g{GENERATION}"))
}

/// Imports `n` generated events of [`WEBSITE`] into the data directory `dir`, unless it already
/// holds them: slices of a million events, each a stretch of the [`DAYS`] days, all drawing on
/// one population of `n / 8` visitors (so the data set grows in visitors and sessions as in
/// events, and never needs more than one slice in memory).
pub async fn prepare_data_dir(dir: &Path, n: usize) -> tally_core::Result<()> {
    if dir.join("catalog.json").exists() {
        return Ok(());
    }
    let engine = Engine::open(dir).await?;
    engine.create_website(website())?;
    let t = Instant::now();
    let mut done = 0;
    for slice in slices(WEBSITE, n) {
        done += slice.len();
        let report = engine.ingest(slice).await?;
        if let Some((i, e)) = report.rejected.first() {
            return Err(tally_core::Error::invalid(
                format!("event {i}"),
                e.to_string(),
            ));
        }
        eprintln!("imported {done} of {n} events");
    }
    engine.flush().await?;
    eprintln!("import took {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// The `n` events of the data set in slices of a million, generated one slice at a time: each
/// a stretch of the [`DAYS`] days, all drawing on one population of `n / 8` visitors.
pub fn slices(website_id: &str, n: usize) -> impl Iterator<Item = Vec<Event>> + '_ {
    let count = n.div_ceil(SLICE).max(1);
    let span = Duration::days(DAYS) / count as i32;
    let visitors = (n / 8).max(1) as u64;
    (0..count).map(move |k| {
        let len = (n - k * SLICE).min(SLICE);
        let from = start() + span * k as i32;
        events_in(website_id, from, span, len, visitors, 7 + k as u64)
    })
}

/// Peak resident set size of this process in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

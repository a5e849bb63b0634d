//! # tally-benches
//!
//! Criterion benches of Tally (`benches/engine.rs`), load tests over HTTP, and the comparison
//! with DuckDB (`src/bin/compare.rs`), over the deterministic synthetic data set of
//! [`tally_core::synthetic`], re-exported here.

use std::path::Path;
use std::time::Instant;

use chrono::Duration;
use tally_core::Engine;
pub use tally_core::synthetic::{DAYS, WEBSITE, events, events_in, start, website};

/// Events generated and ingested at a time by [`prepare_data_dir`].
const SLICE: usize = 1_000_000;

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
    let slices = n.div_ceil(SLICE).max(1);
    let span = Duration::days(DAYS) / slices as i32;
    let visitors = (n / 8).max(1) as u64;
    let t = Instant::now();
    for k in 0..slices {
        let count = (n - k * SLICE).min(SLICE);
        let from = start() + span * k as i32;
        let report = engine
            .ingest(events_in(
                WEBSITE,
                from,
                span,
                count,
                visitors,
                7 + k as u64,
            ))
            .await?;
        if let Some((i, e)) = report.rejected.first() {
            return Err(tally_core::Error::invalid(
                format!("event {i}"),
                e.to_string(),
            ));
        }
        eprintln!("imported {} of {n} events", (k * SLICE + count));
    }
    engine.flush().await?;
    eprintln!("import took {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
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

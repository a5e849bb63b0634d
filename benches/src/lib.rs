//! # tally-benches
//!
//! Criterion benches of Tally (`benches/engine.rs`), load tests over HTTP, and the comparison
//! with DuckDB (`src/bin/compare.rs`), over the deterministic synthetic data set of
//! [`tally_core::synthetic`], re-exported here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Duration;
pub use tally_core::synthetic::{DAYS, GENERATION, WEBSITE, events, events_in, start, website};
use tally_core::{Engine, Event, EventKind};

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

/// One event as a line of the NDJSON import format (DESIGN §3), without `website_id` (the
/// import names the website).
pub fn ndjson_line(e: &Event) -> serde_json::Value {
    let a = &e.attrs;
    let mut line = serde_json::Map::new();
    let mut set = |k: &str, v: serde_json::Value| {
        if !v.is_null() {
            line.insert(k.to_owned(), v);
        }
    };
    set("timestamp", e.ts.to_rfc3339().into());
    set("visitor_id", e.visitor_id.clone().into());
    set("session_id", e.session_id.clone().into());
    set("event_id", e.event_id.clone().into());
    match &e.kind {
        EventKind::Pageview => set("type", "pageview".into()),
        EventKind::Goal { name, metadata } => {
            set("type", "goal".into());
            set("name", name.clone().into());
            set(
                "metadata",
                serde_json::to_value(metadata).unwrap_or_default(),
            );
        }
        EventKind::Payment(p) => {
            set("type", "payment".into());
            set("amount", p.amount.into());
            set("currency", p.currency.clone().into());
            set("transaction_id", p.transaction_id.clone().into());
            set("renewal", p.renewal.into());
            set("refunded", p.refunded.into());
            set("email", p.email.clone().into());
            set("customer_id", p.customer_id.clone().into());
        }
        other => set(
            "type",
            serde_json::to_value(other).unwrap_or_default()["type"].clone(),
        ),
    }
    if let (Some(host), Some(path)) = (&e.hostname, &e.path) {
        let mut url = format!("https://{host}{path}");
        let query: Vec<String> = [
            ("utm_source", &a.utm_source),
            ("utm_medium", &a.utm_medium),
            ("utm_campaign", &a.utm_campaign),
            ("utm_term", &a.utm_term),
            ("utm_content", &a.utm_content),
            ("ref", &a.ref_),
            ("source", &a.source),
            ("via", &a.via),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        set("url", url.into());
    }
    set("referrer", a.referrer.as_deref().into());
    set("country", a.country_code.as_deref().into());
    set("region", a.region.as_deref().into());
    set("region_code", a.region_code.as_deref().into());
    set("city", a.city.as_deref().into());
    set("browser", a.browser.as_deref().into());
    set("os", a.os.as_deref().into());
    set("device", a.device.as_deref().into());
    serde_json::Value::Object(line)
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

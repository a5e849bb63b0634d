//! Filters reach the Parquet scan: the predicate is in the physical plan, and row groups that
//! cannot match are pruned (read from the scan's metrics, not assumed).

use std::sync::Arc;

use chrono::Duration;
use tally_core::datafusion::physical_plan::metrics::MetricValue;
use tally_core::datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use tally_core::datafusion::prelude::DataFrame;
use tally_core::{Dimension, Engine, Event, Filter, FilterOp, Query, Website};

use crate::support::{fixture_engine, utc};

fn pruning(plan: &Arc<dyn ExecutionPlan>, name: &str) -> (usize, usize) {
    let mut pruned = 0;
    let mut matched = 0;
    if let Some(metrics) = plan.metrics() {
        for m in metrics.iter() {
            if let MetricValue::PruningMetrics {
                name: n,
                pruning_metrics,
            } = m.value()
                && n.as_ref() == name
            {
                pruned += pruning_metrics.pruned();
                matched += pruning_metrics.matched();
            }
        }
    }
    for child in plan.children() {
        let (p, m) = pruning(child, name);
        pruned += p;
        matched += m;
    }
    (pruned, matched)
}

/// Plans and runs the query's event selection; returns the executed plan (with its metrics) and
/// the number of rows it produced.
async fn run_selection(engine: &Engine, q: &Query) -> (Arc<dyn ExecutionPlan>, usize) {
    run(engine, engine.selected_events(q).unwrap()).await
}

/// Plans and runs `frame`; returns the executed plan (with its metrics) and its rows.
async fn run(engine: &Engine, frame: DataFrame) -> (Arc<dyn ExecutionPlan>, usize) {
    let plan = frame.create_physical_plan().await.unwrap();
    let batches = collect(Arc::clone(&plan), engine.session_context().task_ctx())
        .await
        .unwrap();
    (plan, batches.iter().map(|b| b.num_rows()).sum())
}

/// An engine in `dir` whose website "big" holds `events`, flushed into one segment.
async fn big_website(dir: &std::path::Path, events: Vec<Event>) -> Engine {
    let engine = Engine::open(dir).await.unwrap();
    engine
        .create_website(Website::new("big", "example.com"))
        .unwrap();
    engine.ingest(events).await.unwrap();
    engine.flush().await.unwrap();
    engine
}

#[tokio::test]
async fn the_filter_is_the_parquet_scan_predicate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    engine.flush().await.unwrap();
    let q = Query::new("fixture")
        .with_filter(Filter::new(Dimension::Country, FilterOp::Is, vec!["ZZ".into()]).unwrap());
    let (plan, rows) = run_selection(&engine, &q).await;
    let text = displayable(plan.as_ref()).indent(true).to_string();
    let scan = text
        .lines()
        .find(|l| l.contains("file_type=parquet"))
        .unwrap_or_else(|| panic!("no parquet scan in\n{text}"));
    assert!(
        scan.contains("predicate=") && scan.contains("country_code@") && scan.contains("ZZ"),
        "{text}"
    );
    assert!(scan.contains("website_id@"), "{text}");

    assert_eq!(rows, 0);
    let (pruned, matched) = pruning(&plan, "row_groups_pruned_statistics");
    assert!(
        pruned >= 1 && matched == 0,
        "pruned {pruned}, matched {matched}\n{text}"
    );
}

#[tokio::test]
async fn a_selective_filter_skips_the_row_groups_it_cannot_match() {
    // 150k page views over three row groups (64k rows each): the first 75k from France, the
    // rest from Japan. Sorted by time, the last row group holds only Japan.
    let t0 = utc("2025-01-01T00:00:00Z");
    let events: Vec<Event> = (0..150_000)
        .map(|i| {
            let mut e = Event::pageview(
                "big",
                format!("v{}", i % 5000),
                t0 + Duration::seconds(i),
                "example.com",
                "/",
            );
            e.attrs.country_code = Some(if i < 75_000 { "FR" } else { "JP" }.into());
            e
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let engine = big_website(dir.path(), events).await;

    let q = Query::new("big")
        .with_filter(Filter::new(Dimension::Country, FilterOp::Is, vec!["FR".into()]).unwrap());
    let (plan, rows) = run_selection(&engine, &q).await;
    assert_eq!(rows, 75_000);
    let (pruned, matched) = pruning(&plan, "row_groups_pruned_statistics");
    assert_eq!(
        (pruned, matched),
        (1, 2),
        "{}",
        displayable(plan.as_ref()).indent(true)
    );

    // the overview agrees with the rows
    assert_eq!(engine.overview(&q).await.unwrap().visitors, 5000);
}

#[tokio::test]
async fn a_one_visitor_lookup_reads_only_the_row_groups_its_bloom_filter_admits() {
    use tally_core::datafusion::prelude::{col, lit};
    use tally_core::schema::{col as c, visitor_hash};
    // 150k page views over three row groups, each of its own visitor but for "returning",
    // who comes only in the first hour (the first row group). Visitor hashes are spread at
    // random, so min/max statistics cannot tell the row groups apart; the Bloom filter can.
    let t0 = utc("2025-01-01T00:00:00Z");
    let events: Vec<Event> = (0..150_000)
        .map(|i| {
            let visitor = if i % 600 == 0 && i < 3600 {
                "returning".to_owned()
            } else {
                // Ids on both sides of "returning", so that min/max cannot prune either.
                format!("{}{i}", if i % 2 == 0 { 'a' } else { 'z' })
            };
            Event::pageview(
                "big",
                visitor,
                t0 + Duration::seconds(i),
                "example.com",
                "/",
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let engine = big_website(dir.path(), events).await;

    let lookup = engine
        .selected_events(&Query::new("big"))
        .unwrap()
        .filter(
            col(c::VISITOR_HASH)
                .eq(lit(visitor_hash("returning")))
                .and(col(c::VISITOR_ID).eq(lit("returning"))),
        )
        .unwrap();
    let (plan, rows) = run(&engine, lookup).await;
    assert_eq!(rows, 6);
    let (pruned, matched) = pruning(&plan, "row_groups_pruned_bloom_filter");
    assert_eq!(
        (pruned, matched),
        (2, 1),
        "{}",
        displayable(plan.as_ref()).indent(true)
    );
}

/// The overview is one `ResidentAggregateExec` with the range and the filters pushed into it;
/// over the resident budget it is the DataFusion plan with the predicate in the Parquet scan.
#[tokio::test]
async fn the_overview_plan_pushes_range_and_filters_into_the_resident_scan() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    engine.flush().await.unwrap();
    let range =
        tally_core::DateRange::new(utc("2025-03-01T00:00:00Z"), utc("2025-04-01T00:00:00Z"))
            .unwrap();
    let q = Query::new("fixture")
        .with_range(range)
        .with_filter(Filter::new(Dimension::Country, FilterOp::Is, vec!["US".into()]).unwrap());
    let text = engine.explain_overview(&q).await.unwrap();
    assert!(
        text.starts_with("ResidentAggregateExec: overview, website=fixture"),
        "{text}"
    );
    assert!(
        text.contains("ts_us=[1740787200000000, 1743465600000000)"),
        "{text}"
    );
    assert!(text.contains("filter=[country is [\"US\"]]"), "{text}");
    assert_eq!(text.lines().count(), 1, "a leaf node: {text}");
    drop(engine);

    let plans_only = tally_core::EngineConfig {
        resident_budget_bytes: 0,
        ..tally_core::EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), plans_only).await.unwrap();
    let text = engine.explain_overview(&q).await.unwrap();
    assert!(text.contains("DataSourceExec"), "{text}");
    assert!(
        text.contains("predicate=") && text.contains("country_code"),
        "{text}"
    );
}

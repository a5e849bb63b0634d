//! Revenue is exact and does not depend on how the events are laid out: the same payments
//! answer the same figures to the last bit whether they were flushed at once or in pieces, and
//! whether the answer comes from resident columns (in chunks of any size) or from the plans.

use chrono::Duration;
use tally_core::{
    Breakdown, Engine, EngineConfig, Event, EventKind, Interval, Paging, Payment, Query, Website,
};

use crate::support::{days, utc};

const SITE: &str = "shop";

/// Amounts in cents whose plain floating-point sums change with the order of their terms.
const CENTS: [i64; 9] = [10, 20, 30, 1999, 2999, 7, 123_456, 3, 9_999_999];

/// Page views and payments of 300 visitors over three days, and the exact sum of the new
/// revenue in cents.
fn events() -> (Vec<Event>, i64) {
    let start = utc("2025-03-01T00:00:00Z");
    let (mut events, mut cents) = (Vec::new(), 0);
    for v in 0..300i64 {
        let ts = start + Duration::minutes(v * 13);
        let visitor = format!("v{v}");
        let path = format!("/p{}", v % 4);
        events.push(Event::pageview(SITE, &visitor, ts, "shop.example", path));
        for k in 0..3 {
            let amount = CENTS[((v * 7 + k * 5) % CENTS.len() as i64) as usize];
            let (renewal, refunded) = (k == 1, v % 11 == 0 && k == 2);
            if !renewal && !refunded {
                cents += amount;
            }
            let payment = Payment {
                amount: amount as f64 / 100.0,
                currency: "USD".into(),
                transaction_id: format!("tx-{v}-{k}"),
                renewal,
                refunded,
                email: None,
                name: None,
                customer_id: None,
            };
            let at = ts + Duration::seconds(k + 1);
            events.push(Event::new(SITE, &visitor, at, EventKind::Payment(payment)));
        }
    }
    (events, cents)
}

/// Overview revenue, each page's revenue and each day's revenue, in `engine`.
async fn answers(engine: &Engine) -> (f64, f64, Vec<f64>, Vec<f64>) {
    let q = Query::new(SITE).with_range(days("UTC", "2025-03-01", "2025-03-03"));
    let o = engine.overview(&q).await.unwrap();
    let pages = engine
        .breakdown(&q, &Breakdown::Page, Paging::default())
        .await
        .unwrap();
    let mut by_page: Vec<(String, f64)> = pages
        .rows
        .iter()
        .map(|r| (r.values.concat(), r.revenue))
        .collect();
    by_page.sort_by(|a, b| a.0.cmp(&b.0));
    let series = engine.timeseries(&q, Interval::Day).await.unwrap();
    (
        o.revenue.new,
        o.revenue.refund,
        by_page.into_iter().map(|(_, r)| r).collect(),
        series.buckets.iter().map(|b| b.revenue.total()).collect(),
    )
}

/// An engine in `dir` with the events ingested as `pieces` writes, each flushed, in an order
/// that depends on `pieces`.
async fn layout(dir: &std::path::Path, pieces: usize) {
    let engine = Engine::open(dir).await.unwrap();
    engine
        .create_website(Website::new(SITE, "shop.example"))
        .unwrap();
    let (mut events, _) = events();
    if pieces > 1 {
        events.reverse();
    }
    let size = events.len().div_ceil(pieces);
    for piece in events.chunks(size) {
        engine.ingest(piece.to_vec()).await.unwrap();
        engine.flush().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_is_exact_whatever_the_layout_and_the_path() {
    let (_, cents) = events();
    let exact = cents as f64 / 100.0;
    let configs = [
        EngineConfig::default(),
        EngineConfig {
            resident_chunk_rows: 37,
            ..EngineConfig::default()
        },
        EngineConfig {
            resident_budget_bytes: 0,
            target_partitions: 3,
            ..EngineConfig::default()
        },
    ];
    let mut seen = Vec::new();
    for pieces in [1, 7, 50] {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), pieces).await;
        for config in &configs {
            let engine = Engine::open_with(dir.path(), config.clone()).await.unwrap();
            let got = answers(&engine).await;
            assert_eq!(got.0, exact, "{pieces} pieces, {config:?}");
            seen.push(got);
        }
    }
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
    // The pages' and days' revenue add up to the overview's new and renewal revenue.
    let (pages, days) = (&seen[0].2, &seen[0].3);
    assert_eq!(pages.len(), 4);
    assert_eq!(days.len(), 3);
    let total: f64 = pages.iter().sum();
    assert!((total - days.iter().sum::<f64>()).abs() < 1e-6);
}

/// The conversion model's statistics count each paying visitor's revenue (renewals included,
/// refunds not): exact too, whatever the layout and the plan's partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_revenue_is_exact_whatever_the_layout() {
    let (events, _) = events();
    let paid_cents: i64 = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Payment(p) if !p.refunded => Some((p.amount * 100.0).round() as i64),
            _ => None,
        })
        .sum();
    let exact = paid_cents as f64 / 100.0;
    for pieces in [1, 7, 50] {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), pieces).await;
        for partitions in [1, 2, 3, 5] {
            let config = EngineConfig {
                target_partitions: partitions,
                ..EngineConfig::default()
            };
            let engine = Engine::open_with(dir.path(), config).await.unwrap();
            let stats = engine.count_model_stats(SITE).await.unwrap();
            assert_eq!(
                stats.baseline.revenue, exact,
                "{pieces} pieces, {partitions} partitions"
            );
            // Every visitor's first payment is neither refunded nor a renewal.
            assert_eq!((stats.baseline.visitors, stats.baseline.payers), (300, 300));
        }
    }
}

//! Helpers shared by the integration tests.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use tally_core::query::time::local_days;
use tally_core::{DateRange, Engine, Event, Website};

/// The fixture website: example.com, UTC, USD with a EUR rate, renewals counted.
pub fn fixture_website() -> Website {
    let mut w = Website::new("fixture", "example.com");
    w.exchange_rates.insert("EUR".into(), 1.1);
    w
}

/// The fixture events (`fixtures/events-small.ndjson`).
pub fn fixture_events() -> Vec<Event> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/events-small.ndjson"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = tally_core::import::parse_ndjson(&text, Some("fixture"));
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    parsed.events
}

/// An engine in a fresh directory with the fixture (and an `other` website) ingested.
pub async fn fixture_engine(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(dir).await.unwrap();
    engine.create_website(fixture_website()).unwrap();
    engine
        .create_website(Website::new("other", "other.org"))
        .unwrap();
    let report = engine.ingest(fixture_events()).await.unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.duplicates, 1);
    engine
}

/// An engine in `dir` with the synthetic website (`tally_core::synthetic`) and no events.
pub async fn synthetic_engine(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(dir).await.unwrap();
    engine
        .create_website(tally_core::synthetic::website())
        .unwrap();
    engine
}

pub fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub fn days(tz: &str, first: &str, last: &str) -> DateRange {
    let tz: Tz = tz.parse().unwrap();
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    local_days(tz, d(first), d(last)).unwrap()
}

/// Floats equal up to summation order.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 + 1e-9 * a.abs().max(b.abs())
}

#[track_caller]
pub fn assert_close(actual: f64, expected: f64) {
    assert!(close(actual, expected), "{actual} != {expected}");
}

/// A payment repeating the fixture's stored transaction `tx_1`.
pub fn repeat_of_tx_1() -> Event {
    let payment = tally_core::EventKind::Payment(tally_core::Payment {
        amount: 29.99,
        currency: "USD".into(),
        transaction_id: "tx_1".into(),
        renewal: false,
        refunded: false,
        email: None,
        name: None,
        customer_id: None,
    });
    Event::new("fixture", "v1", utc("2025-03-12T21:00:00Z"), payment)
}

//! A time series without dates answers the most recent buckets up to now, oldest first, and
//! pages back from there (the docs' "daily visitors for the last 30 days" example).

use chrono::{NaiveDate, Utc};
use serde_json::Value;
use tally_api::{Endpoint, Params, answer};

use crate::support::fixture_engine;

async fn series(engine: &tally_core::Engine, query: &str) -> Value {
    let body = answer(
        engine,
        "fixture",
        Endpoint::Timeseries,
        &Params::parse(query),
    )
    .await
    .unwrap();
    serde_json::from_str(&body).unwrap()
}

fn day(point: &Value) -> NaiveDate {
    chrono::DateTime::parse_from_rfc3339(point["timestamp"].as_str().unwrap())
        .unwrap()
        .date_naive()
}

#[tokio::test]
async fn without_dates_the_latest_buckets_come_first_and_pages_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    // The fixture's first event is on 2025-03-10 (UTC website); today is later.
    let first = NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
    let today = Utc::now().date_naive();
    let days = (today - first).num_days() as u64 + 1;

    let latest = series(&engine, "fields=visitors&interval=day&limit=30").await;
    let data = latest["data"].as_array().unwrap();
    assert_eq!(data.len(), 30);
    assert_eq!(day(&data[29]), today, "the newest bucket is today's");
    assert_eq!(
        day(&data[0]),
        today - chrono::Duration::days(29),
        "oldest first"
    );
    assert_eq!(latest["pagination"]["total"], days);
    assert_eq!(latest["pagination"]["offset"], 0);

    // The last page back holds the first days, with the fixture's visitors.
    let offset = days - 3;
    let oldest = series(
        &engine,
        &format!("fields=visitors&interval=day&limit=30&offset={offset}"),
    )
    .await;
    let data = oldest["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(day(&data[0]), first);
    let visitors: u64 = data.iter().map(|p| p["visitors"].as_u64().unwrap()).sum();
    assert!(visitors > 0, "{oldest}");
    // Totals are over the whole history, as for a query over all time.
    assert_eq!(oldest["totals"]["visitors"], latest["totals"]["visitors"]);

    // Past the first bucket: an empty page, not an error.
    let beyond = series(&engine, &format!("interval=day&offset={days}")).await;
    assert_eq!(beyond["data"].as_array().unwrap().len(), 0);
}

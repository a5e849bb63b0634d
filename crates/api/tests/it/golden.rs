//! Each endpoint on the fixture under a few parameter sets, compared byte for byte (after
//! removing white space) with `fixtures/expected/*.json`. How the numbers were worked out:
//! `fixtures/README.md` and `fixtures/expected/README.md`.

use tally_api::{Endpoint, Params, answer};

use crate::support::{fixture_engine, minify};

const CASES: &[(&str, Endpoint, &str)] = &[
    ("overview", Endpoint::Overview, ""),
    (
        "overview-us-fields",
        Endpoint::Overview,
        "filter_country=is:United%20States%20of%20America&fields=visitors,sessions,bounce_rate,revenue,conversion_rate",
    ),
    (
        "timeseries-new-york-day",
        Endpoint::Timeseries,
        "fields=visitors,name,sessions,revenue,conversion_rate&interval=day&startAt=2025-03-10&endAt=2025-03-12&timezone=America/New_York",
    ),
    (
        "timeseries-same-day-hourly",
        Endpoint::Timeseries,
        "fields=visitors&interval=day&startAt=2025-03-12T00:00:00Z&endAt=2025-03-12T23:59:59Z&limit=4&offset=7",
    ),
    (
        "pages-mobile-page-2",
        Endpoint::Pages,
        "filter_device=is:mobile&limit=2&offset=1",
    ),
    ("countries", Endpoint::Countries, ""),
    ("campaigns", Endpoint::Campaigns, ""),
    (
        "campaigns-utm-fields",
        Endpoint::Campaigns,
        "fields=utm_source,utm_campaign",
    ),
    (
        "goals-name-completions",
        Endpoint::Goals,
        "fields=name,completions",
    ),
    (
        "referrers-one-day",
        Endpoint::Referrers,
        "startAt=2025-03-12&endAt=2025-03-12",
    ),
    (
        "devices-from-google",
        Endpoint::Devices,
        "filter_referrer=is:google.com",
    ),
    ("metadata", Endpoint::Metadata, ""),
];

#[tokio::test]
async fn every_case_matches_its_expected_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/expected");
    let mut failures = Vec::new();
    for (name, endpoint, query) in CASES {
        let expected = std::fs::read_to_string(format!("{root}/{name}.json")).unwrap();
        let got = answer(&engine, "fixture", *endpoint, &Params::parse(query))
            .await
            .unwrap();
        if got != minify(&expected) {
            failures.push(format!(
                "{name}:\n  got      {got}\n  expected {}",
                minify(&expected)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_same_answers_come_from_segments() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let before = answer(
        &engine,
        "fixture",
        Endpoint::Timeseries,
        &Params::parse(CASES[2].2),
    )
    .await
    .unwrap();
    engine.flush().await.unwrap();
    let after = answer(
        &engine,
        "fixture",
        Endpoint::Timeseries,
        &Params::parse(CASES[2].2),
    )
    .await
    .unwrap();
    assert_eq!(before, after);
}

//! Every rejection is a 400 (or 404 for an unknown website) whose message names the parameter.

use tally_api::{Endpoint, Params, answer};

use crate::support::fixture_engine;

#[tokio::test]
async fn bad_parameters_are_400s_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let cases: &[(Endpoint, &str, &str)] = &[
        (Endpoint::Overview, "startAt=2025-03-10", "endAt"),
        (Endpoint::Overview, "endAt=2025-03-10", "startAt"),
        (Endpoint::Overview, "fields=visitors,pageviews", "pageviews"),
        (Endpoint::Overview, "timezone=Moon/Tranquility", "timezone"),
        (Endpoint::Overview, "filter_planet=is:mars", "filter_planet"),
        (
            Endpoint::Overview,
            "filter_device=like:mobile",
            "filter_device",
        ),
        (Endpoint::Overview, "filter_device=is:,", "filter_device"),
        (Endpoint::Timeseries, "interval=year", "interval"),
        (Endpoint::Timeseries, "fields=bounce_rate", "bounce_rate"),
        (Endpoint::Pages, "limit=5000", "limit"),
        (Endpoint::Pages, "offset=minus", "offset"),
        (Endpoint::Goals, "fields=goal", "goal"),
        (Endpoint::Campaigns, "fields=utm_nothing", "utm_nothing"),
        (
            Endpoint::Countries,
            "filter_country=is:Atlantis",
            "filter_country",
        ),
        (
            Endpoint::Referrers,
            "startAt=2025-03-12&endAt=2025-03-01",
            "endAt",
        ),
        (
            Endpoint::Timeseries,
            "startAt=1990-01-01&endAt=1990-01-02",
            "startAt",
        ),
    ];
    for (endpoint, query, name) in cases {
        let e = answer(&engine, "fixture", *endpoint, &Params::parse(query))
            .await
            .unwrap_err();
        assert_eq!(e.status, 400, "{query}: {e:?}");
        assert!(e.message.contains(name), "{query}: {}", e.message);
        let body = serde_json::to_value(e.envelope()).unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["error"]["code"], 400);
    }
}

#[tokio::test]
async fn parameters_an_endpoint_does_not_use_are_ignored_as_datafast_does() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let plain = answer(&engine, "fixture", Endpoint::Overview, &Params::parse(""))
        .await
        .unwrap();
    for query in ["limit=10", "range=all", "groupBy=referrer&foo", "sort=x"] {
        let with_extra = answer(
            &engine,
            "fixture",
            Endpoint::Overview,
            &Params::parse(query),
        )
        .await
        .unwrap();
        assert_eq!(with_extra, plain, "{query}");
    }
}

#[tokio::test]
async fn an_unknown_website_is_a_404() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let e = answer(&engine, "nope", Endpoint::Overview, &Params::default())
        .await
        .unwrap_err();
    assert_eq!(e.status, 404);
}

#[tokio::test]
async fn a_huge_hourly_range_is_refused_not_computed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let q = Params::parse("interval=hour&startAt=2000-01-01&endAt=2199-12-31");
    let e = answer(&engine, "fixture", Endpoint::Timeseries, &q)
        .await
        .unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("interval"), "{}", e.message);
}

//! The engine's answers on `fixtures/events-small.ndjson`, checked against values worked out
//! by hand. The derivation of every number is in `fixtures/README.md`.

use tally_core::{Breakdown, CampaignField, Dimension, Filter, FilterOp, Interval, Paging, Query};

use crate::support::{assert_close, days, fixture_engine};

fn q() -> Query {
    Query::new("fixture")
}

fn is(d: Dimension, v: &str) -> Filter {
    Filter::new(d, FilterOp::Is, vec![v.into()]).unwrap()
}

type Expected<'a> = &'a [(&'a [&'a str], u64, f64)];

async fn check_breakdown(
    engine: &tally_core::Engine,
    query: &Query,
    by: Breakdown,
    expected: Expected<'_>,
) {
    let got = engine
        .breakdown(query, &by, Paging::new(1000, 0).unwrap())
        .await
        .unwrap();
    let got_rows: Vec<(Vec<String>, u64)> = got
        .rows
        .iter()
        .map(|r| (r.values.clone(), r.visitors))
        .collect();
    let want_rows: Vec<(Vec<String>, u64)> = expected
        .iter()
        .map(|(v, n, _)| (v.iter().map(|s| s.to_string()).collect(), *n))
        .collect();
    assert_eq!(got_rows, want_rows, "{by:?}");
    for (row, (_, _, revenue)) in got.rows.iter().zip(expected) {
        assert_close(row.revenue, *revenue);
    }
    assert_eq!(got.total, expected.len());
}

#[tokio::test]
async fn overview_all_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let o = engine.overview(&q()).await.unwrap();
    assert_eq!(
        (
            o.visitors,
            o.sessions,
            o.bounced_sessions,
            o.paying_visitors
        ),
        (10, 17, 8, 4)
    );
    assert_close(o.bounce_rate, 8.0 * 100.0 / 17.0);
    assert_close(o.avg_session_duration_ms, 69_990_000.0 / 17.0);
    assert_close(o.revenue.new, 257.99);
    assert_close(o.revenue.renewal, 29.99);
    assert_close(o.revenue.refund, 49.0);
    assert_close(o.revenue_per_visitor, 28.798);
    assert_close(o.conversion_rate, 40.0);
}

#[tokio::test]
async fn overview_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;

    let us = engine
        .overview(&q().with_filter(is(Dimension::Country, "US")))
        .await
        .unwrap();
    assert_eq!(
        (
            us.visitors,
            us.sessions,
            us.bounced_sessions,
            us.paying_visitors
        ),
        (5, 7, 2, 3)
    );
    assert_close(us.avg_session_duration_ms, 68_100_000.0 / 7.0);
    assert_close(us.revenue.new, 238.99);
    assert_close(us.revenue.renewal, 29.99);
    assert_close(us.revenue.refund, 0.0);
    assert_close(us.conversion_rate, 60.0);

    let pricing = engine
        .overview(&q().with_filter(is(Dimension::Page, "/pricing")))
        .await
        .unwrap();
    assert_eq!(
        (
            pricing.visitors,
            pricing.sessions,
            pricing.bounced_sessions,
            pricing.paying_visitors
        ),
        (7, 7, 3, 4)
    );
    assert_close(pricing.avg_session_duration_ms, 3_600_000.0 / 7.0);
    assert_close(pricing.revenue.total(), 287.98);
    assert_close(pricing.conversion_rate, 400.0 / 7.0);

    // by raw host: only the www.google.com sessions, not google.co.uk
    let host = engine
        .overview(&q().with_filter(is(Dimension::Referrer, "google.com")))
        .await
        .unwrap();
    assert_eq!((host.visitors, host.sessions), (3, 3));
    // by name: both
    let name = engine
        .overview(&q().with_filter(is(Dimension::Referrer, "Google")))
        .await
        .unwrap();
    assert_eq!((name.visitors, name.sessions), (3, 4));

    let none = engine
        .overview(&q().with_filter(is(Dimension::Country, "ZZ")))
        .await
        .unwrap();
    assert_eq!((none.visitors, none.sessions), (0, 0));
    assert_close(none.bounce_rate, 0.0);
}

#[tokio::test]
async fn breakdowns_all_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;
    let q = q();
    check_breakdown(
        &e,
        &q,
        Breakdown::Country,
        &[
            (&["US"], 5, 268.98),
            (&["CA"], 1, 0.0),
            (&["DE"], 1, 0.0),
            (&["FR"], 1, 19.0),
            (&["GB"], 1, 0.0),
            (&["IN"], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Referrer,
        &[
            (&["Direct/None"], 5, 19.0),
            (&["Google"], 3, 158.98),
            (&["X"], 2, 59.98),
            (&["Bing"], 1, 0.0),
            (&["Facebook"], 1, 19.0),
            (&["Hacker News"], 1, 110.0),
            (&["Reddit"], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Page,
        &[
            (&["example.com", "/"], 8, 177.98),
            (&["example.com", "/pricing"], 7, 287.98),
            (&["example.com", "/blog/hello"], 4, 169.98),
            (&["example.com", "/about"], 2, 19.0),
            (&["example.com", "/blog/second"], 2, 0.0),
            (&["docs.example.com", "/guide"], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Hostname,
        &[
            (&["example.com"], 10, 287.98),
            (&["docs.example.com"], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Device,
        &[
            (&["desktop"], 5, 158.98),
            (&["mobile"], 3, 129.0),
            (&["tablet"], 2, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Browser,
        &[
            (&["Chrome"], 4, 268.98),
            (&["Safari"], 4, 19.0),
            (&["Edge"], 1, 0.0),
            (&["Firefox"], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Os,
        &[
            (&["Mac OS"], 3, 158.98),
            (&["iOS"], 3, 19.0),
            (&["Android"], 2, 110.0),
            (&["Windows"], 2, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Region,
        &[
            (&["California"], 2, 158.98),
            (&["Texas"], 2, 0.0),
            (&["Berlin"], 1, 0.0),
            (&["England"], 1, 0.0),
            (&["Karnataka"], 1, 0.0),
            (&["New York"], 1, 110.0),
            (&["Ontario"], 1, 0.0),
            (&["Île-de-France"], 1, 19.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::City,
        &[
            (&["Austin"], 2, 0.0),
            (&["Bengaluru"], 1, 0.0),
            (&["Berlin"], 1, 0.0),
            (&["London"], 1, 0.0),
            (&["Los Angeles"], 1, 99.0),
            (&["New York"], 1, 110.0),
            (&["Paris"], 1, 19.0),
            (&["San Francisco"], 1, 59.98),
            (&["Toronto"], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Campaign(CampaignField::ALL.to_vec()),
        &[
            (&["news", "email", "launch", "", "", "", "", ""], 2, 59.98),
            (&["", "", "", "", "", "", "", "partner"], 1, 99.0),
            (&["", "", "", "", "", "indiepage", "", ""], 1, 19.0),
            (&["twitter", "", "launch", "", "", "", "", ""], 1, 0.0),
        ],
    )
    .await;
    check_breakdown(
        &e,
        &q,
        Breakdown::Campaign(vec![CampaignField::UtmCampaign]),
        &[(&["launch"], 3, 59.98)],
    )
    .await;

    let goals = e
        .breakdown(&q, &Breakdown::Goal, Paging::default())
        .await
        .unwrap();
    let got: Vec<(String, u64, u64)> = goals
        .rows
        .iter()
        .map(|r| (r.values[0].clone(), r.completions, r.visitors))
        .collect();
    assert_eq!(
        got,
        [
            ("signup".to_string(), 3, 3),
            ("newsletter_signup".to_string(), 2, 2),
            ("faq_open".to_string(), 2, 1)
        ]
    );
}

#[tokio::test]
async fn breakdown_with_filter_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;
    let mobile = q().with_filter(is(Dimension::Device, "mobile"));
    check_breakdown(
        &e,
        &mobile,
        Breakdown::Page,
        &[
            (&["example.com", "/blog/hello"], 2, 110.0),
            (&["example.com", "/pricing"], 2, 129.0),
            (&["example.com", "/"], 1, 19.0),
            (&["example.com", "/about"], 1, 19.0),
            (&["example.com", "/blog/second"], 1, 0.0),
        ],
    )
    .await;
    let page = e
        .breakdown(&mobile, &Breakdown::Page, Paging::new(2, 1).unwrap())
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    let paths: Vec<&str> = page.rows.iter().map(|r| r.values[1].as_str()).collect();
    assert_eq!(paths, ["/pricing", "/"]);
    let past_end = e
        .breakdown(&mobile, &Breakdown::Page, Paging::new(10, 50).unwrap())
        .await
        .unwrap();
    assert!(past_end.rows.is_empty());
    assert_eq!(past_end.total, 5);
}

#[tokio::test]
async fn daily_series_in_utc_and_new_york() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;

    let utc = e
        .timeseries(
            &q().with_range(days("UTC", "2025-03-10", "2025-03-12")),
            Interval::Day,
        )
        .await
        .unwrap();
    assert_eq!(utc.interval, Interval::Day);
    let got: Vec<(String, u64, u64)> = utc
        .buckets
        .iter()
        .map(|b| (b.start.to_rfc3339(), b.visitors, b.sessions))
        .collect();
    assert_eq!(
        got,
        [
            ("2025-03-10T00:00:00+00:00".to_string(), 5, 6),
            ("2025-03-11T00:00:00+00:00".to_string(), 5, 5),
            ("2025-03-12T00:00:00+00:00".to_string(), 6, 7)
        ]
    );
    let rev: Vec<(f64, f64, f64)> = utc
        .buckets
        .iter()
        .map(|b| (b.revenue.new, b.revenue.renewal, b.revenue.refund))
        .collect();
    for (got, want) in rev
        .iter()
        .zip([(29.99, 0.0, 0.0), (110.0, 0.0, 49.0), (118.0, 29.99, 0.0)])
    {
        assert_close(got.0, want.0);
        assert_close(got.1, want.1);
        assert_close(got.2, want.2);
    }
    for (b, cr) in utc.buckets.iter().zip([29.99 / 5.0, 22.0, 147.99 / 6.0]) {
        assert_close(b.conversion_rate, cr);
    }
    assert_eq!((utc.totals.visitors, utc.totals.sessions), (10, 17));
    assert_close(utc.totals.conversion_rate, 28.798);

    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let ny = e
        .timeseries(
            &q().with_range(days("America/New_York", "2025-03-10", "2025-03-12"))
                .with_timezone(tz),
            Interval::Day,
        )
        .await
        .unwrap();
    let got: Vec<(String, u64, u64)> = ny
        .buckets
        .iter()
        .map(|b| (b.start.to_rfc3339(), b.visitors, b.sessions))
        .collect();
    assert_eq!(
        got,
        [
            ("2025-03-10T00:00:00-04:00".to_string(), 6, 8),
            ("2025-03-11T00:00:00-04:00".to_string(), 3, 3),
            ("2025-03-12T00:00:00-04:00".to_string(), 6, 7)
        ]
    );
    assert_close(ny.buckets[0].revenue.new, 139.99);
    assert_close(ny.buckets[0].conversion_rate, 139.99 / 6.0);
    assert_close(ny.buckets[1].revenue.refund, 49.0);
    assert_close(ny.buckets[1].conversion_rate, 0.0);
    assert_eq!((ny.totals.visitors, ny.totals.sessions), (10, 17));
}

#[tokio::test]
async fn a_same_day_range_is_answered_hourly() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;
    let s = e
        .timeseries(
            &q().with_range(days("UTC", "2025-03-12", "2025-03-12")),
            Interval::Month,
        )
        .await
        .unwrap();
    assert_eq!(s.interval, Interval::Hour);
    assert_eq!(s.buckets.len(), 24);
    let at = |h: usize| (s.buckets[h].visitors, s.buckets[h].sessions);
    assert_eq!(
        [at(7), at(8), at(9), at(11), at(15), at(20), at(0)],
        [(1, 1), (1, 1), (1, 2), (1, 1), (1, 1), (1, 1), (0, 0)]
    );
    assert_close(s.buckets[8].revenue.renewal, 29.99);
    assert_close(s.buckets[15].revenue.new, 99.0);
}

#[tokio::test]
async fn renewals_can_be_left_out_of_the_series_conversion_rate() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;
    let mut w = e.website("fixture").unwrap();
    w.include_renewal_revenue = false;
    e.update_website(w).unwrap();
    let s = e
        .timeseries(
            &q().with_range(days("UTC", "2025-03-12", "2025-03-13")),
            Interval::Day,
        )
        .await
        .unwrap();
    assert_close(s.buckets[0].conversion_rate, 118.0 / 6.0);
}

//! Property tests: the engine equals the reference model (DESIGN §4) for random event sets and
//! random queries, with the data in the hot buffer and in segments, before and after a flush,
//! and after reopening the directory (which also exercises restoring session state, and
//! reading back the session attributes of idle visitors).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use tally_core::{
    Breakdown, CampaignField, DateRange, Dimension, Engine, EngineConfig, Event, EventKind, Filter,
    FilterOp, GoalDeletion, GroupCounting, Interval, Paging, Payment, PaymentDeletion, Query,
    Website,
};

use crate::model::Model;
use crate::support::{assert_close, utc};

const ZONES: [&str; 6] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Adelaide",
    "America/Santiago",
];
const BASES: [&str; 4] = [
    "2025-03-08T00:00:00Z",
    "2025-03-29T00:00:00Z",
    "2025-04-04T12:00:00Z",
    "2025-11-01T00:00:00Z",
];
const COUNTRIES: [Option<&str>; 5] = [Some("US"), Some("FR"), Some("IN"), Some("DE"), None];
const REGIONS: [Option<&str>; 4] = [
    Some("California"),
    Some("Île-de-France"),
    Some("Texas"),
    None,
];
const CITIES: [Option<&str>; 4] = [Some("Paris"), Some("Austin"), Some("San Francisco"), None];
const DEVICES: [Option<&str>; 4] = [Some("desktop"), Some("mobile"), Some("tablet"), None];
const BROWSERS: [Option<&str>; 4] = [Some("Chrome"), Some("Safari"), Some("Firefox"), None];
const OSES: [Option<&str>; 4] = [Some("Mac OS"), Some("iOS"), Some("Windows"), None];
const REFERRERS: [Option<&str>; 6] = [
    None,
    Some("https://www.google.com/"),
    Some("https://t.co/x"),
    Some("https://news.ycombinator.com/item?id=1"),
    Some("https://example.com/other"),
    Some("https://blog.example.org/post"),
];
const QUERIES: [&str; 6] = [
    "",
    "?utm_source=news&utm_medium=email&utm_campaign=launch",
    "?utm_source=twitter&utm_campaign=Launch",
    "?ref=indiepage",
    "?via=partner&source=feed",
    "?utm_term=rust&utm_content=hero",
];
const PATHS: [&str; 5] = ["/", "/pricing", "/blog/hello", "/blog/Second", "/about"];
const HOSTS: [&str; 2] = ["example.com", "docs.example.com"];
const GOALS: [&str; 3] = ["signup", "newsletter_signup", "faq_open"];
const AMOUNTS: [f64; 4] = [0.0, 9.99, 29.99, 100.0];

/// One event of a visitor, as indices into the pools above.
#[derive(Debug, Clone)]
struct EvSpec {
    gap: (u8, u32),
    kind: u8,
    geo: (u8, u8, u8),
    system: (u8, u8, u8),
    source: (u8, u8),
    page: (u8, u8),
    goal: u8,
    payment: (u8, bool, bool, bool, u8),
    session: u8,
}

fn ev_spec() -> impl Strategy<Value = EvSpec> {
    (
        (0u8..6, 0u32..1000),
        0u8..10,
        (0u8..5, 0u8..4, 0u8..4),
        (0u8..4, 0u8..4, 0u8..4),
        (0u8..6, 0u8..6),
        (0u8..2, 0u8..5),
        0u8..3,
        (0u8..4, any::<bool>(), any::<bool>(), any::<bool>(), 0u8..20),
        0u8..8,
    )
        .prop_map(
            |(gap, kind, geo, system, source, page, goal, payment, session)| EvSpec {
                gap,
                kind,
                geo,
                system,
                source,
                page,
                goal,
                payment,
                session,
            },
        )
}

/// A generated data set: events of visitors on two websites.
#[derive(Debug, Clone)]
struct Data {
    base: usize,
    visitors: Vec<(u32, bool, Vec<EvSpec>)>,
    renewals: bool,
}

fn data() -> impl Strategy<Value = Data> {
    (
        0..BASES.len(),
        prop::collection::vec(
            (
                0u32..3000,
                prop::bool::weighted(0.15),
                prop::collection::vec(ev_spec(), 5..40),
            ),
            4..12,
        ),
        any::<bool>(),
    )
        .prop_map(|(base, visitors, renewals)| Data {
            base,
            visitors,
            renewals,
        })
}

fn gap(g: (u8, u32)) -> Duration {
    let (class, fine) = g;
    let fine = i64::from(fine);
    match class {
        0 => Duration::seconds(1 + fine % 60),
        1 => Duration::minutes(1 + fine % 28),
        2 => Duration::seconds(29 * 60 + 30 + fine % 61), // around the 30-minute session boundary
        3 => Duration::minutes(31 + fine % 90),
        4 => Duration::hours(2 + fine % 46),
        _ => Duration::days(1 + fine % 4),
    }
}

fn pick<T: Copy>(pool: &[T], i: u8) -> T {
    pool[usize::from(i) % pool.len()]
}

fn websites(renewals: bool) -> Vec<Website> {
    let mut w1 = Website::new("w1", "example.com");
    w1.exchange_rates.insert("EUR".into(), 1.1);
    w1.include_renewal_revenue = renewals;
    w1.timezone = "Europe/London".into();
    let w2 = Website::new("w2", "other.org");
    vec![w1, w2]
}

fn events(d: &Data) -> Vec<Event> {
    let base = utc(BASES[d.base]);
    let mut out = Vec::new();
    for (vi, (start, other_site, specs)) in d.visitors.iter().enumerate() {
        let mut t = base + Duration::minutes(i64::from(*start));
        for s in specs {
            t += gap(s.gap);
            let host = pick(&HOSTS, s.page.0);
            let url = format!(
                "https://{host}{}{}",
                pick(&PATHS, s.page.1),
                pick(&QUERIES, s.source.1)
            );
            let kind = match s.kind {
                0..=6 => EventKind::Pageview,
                7 | 8 => EventKind::Goal {
                    name: pick(&GOALS, s.goal).into(),
                    metadata: BTreeMap::new(),
                },
                _ => EventKind::Payment(Payment {
                    amount: pick(&AMOUNTS, s.payment.0),
                    currency: if s.payment.3 {
                        "EUR".into()
                    } else {
                        "USD".into()
                    },
                    // a few repeated transaction ids exercise de-duplication
                    transaction_id: format!("tx{}", s.payment.4),
                    renewal: s.payment.1,
                    refunded: s.payment.2,
                    email: None,
                    name: None,
                    customer_id: None,
                }),
            };
            let mut line = serde_json::json!({
                "type": "pageview", "timestamp": t.to_rfc3339(), "visitor_id": format!("v{vi}"), "url": url,
            });
            let o = line.as_object_mut().unwrap();
            let mut set = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    o.insert(k.into(), v.into());
                }
            };
            set("country", pick(&COUNTRIES, s.geo.0));
            set("region", pick(&REGIONS, s.geo.1));
            set("city", pick(&CITIES, s.geo.2));
            set("device", pick(&DEVICES, s.system.0));
            set("browser", pick(&BROWSERS, s.system.1));
            set("os", pick(&OSES, s.system.2));
            set("referrer", pick(&REFERRERS, s.source.0));
            let mut e = tally_core::import::parse_line(
                &line.to_string(),
                Some(if *other_site { "w2" } else { "w1" }),
            )
            .unwrap();
            e.kind = kind;
            // sessions: mostly derived, sometimes the tracker's
            e.session_id = (s.session == 0).then(|| format!("s{vi}-{}", t.timestamp() / 7200));
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.ts);
    out
}

#[derive(Debug, Clone)]
struct QSpec {
    range: (u8, u32, u32),
    zone: u8,
    filters: Vec<(u8, u8, u8, u8)>,
}

fn qspec() -> impl Strategy<Value = QSpec> {
    (
        (0u8..4, 0u32..400, 1u32..400),
        0u8..6,
        prop::collection::vec((0u8..18, 0u8..3, 0u8..8, 0u8..8), 0..3),
    )
        .prop_map(|(range, zone, filters)| QSpec {
            range,
            zone,
            filters,
        })
}

fn filter_values(d: Dimension) -> Vec<&'static str> {
    match d {
        Dimension::Country => vec!["US", "fr", "IN", "ZZ", "u"],
        Dimension::Region => vec!["California", "île", "Texas", "X"],
        Dimension::City => vec!["Paris", "austin", "San Francisco", "an"],
        Dimension::Device => vec!["desktop", "mobile", "tablet", "BILE"],
        Dimension::Browser => vec!["Chrome", "Safari", "fire", "Edge"],
        Dimension::Os => vec!["Mac OS", "iOS", "windows", "os"],
        Dimension::Referrer => vec![
            "google.com",
            "Google",
            "X",
            "t.co",
            "Direct/None",
            "Hacker News",
            "blog.example.org",
            "news",
        ],
        Dimension::UtmSource => vec!["news", "twitter", "NEWS", "tw"],
        Dimension::UtmMedium => vec!["email", "mail"],
        Dimension::UtmCampaign => vec!["launch", "Launch", "aun"],
        Dimension::UtmTerm => vec!["rust", "ru"],
        Dimension::UtmContent => vec!["hero", "HERO"],
        Dimension::Ref => vec!["indiepage", "indie"],
        Dimension::Source => vec!["feed", "FEED"],
        Dimension::Via => vec!["partner", "part"],
        Dimension::Page => vec!["/", "/pricing", "/blog", "second", "/about"],
        Dimension::Hostname => vec!["example.com", "docs.example.com", "docs"],
        Dimension::Goal => vec!["signup", "newsletter_signup", "faq", "SIGN"],
    }
}

fn query(data: &Data, q: &QSpec) -> Query {
    let base = utc(BASES[data.base]);
    let tz: Tz = ZONES[usize::from(q.zone)].parse().unwrap();
    let mut query = Query::new("w1").with_timezone(tz);
    let (kind, start, len) = q.range;
    query.range = match kind {
        0 => None,
        1 | 2 => {
            let s = base + Duration::hours(i64::from(start % 300));
            Some(DateRange::new(s, s + Duration::hours(i64::from(len))).unwrap())
        }
        _ => {
            let first = (base + Duration::hours(i64::from(start % 300)))
                .with_timezone(&tz)
                .date_naive();
            let last = first + Duration::days(i64::from(len % 3));
            Some(tally_core::query::time::local_days(tz, first, last).unwrap())
        }
    };
    for &(dim, op, v1, v2) in &q.filters {
        let d = Dimension::ALL[usize::from(dim)];
        let op = [FilterOp::Is, FilterOp::IsNot, FilterOp::Contains][usize::from(op)];
        let pool = filter_values(d);
        let mut values = vec![pool[usize::from(v1) % pool.len()].to_string()];
        if v2 % 2 == 0 {
            values.push(pool[usize::from(v2) % pool.len()].to_string());
        }
        query = query.with_filter(Filter::new(d, op, values).unwrap());
    }
    query
}

/// Runs `check` with the data in three states: hot and segments mixed (after a restart with
/// data still to ingest), all flushed, and reopened; the answers come from resident columns
/// (per-group bitsets, then sorted pairs after reopening), and once more, reopened without
/// them, from the DataFusion plans over Parquet.
fn in_every_state(
    data: &Data,
    check: impl AsyncFn(&Engine, &Model) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let all = events(data);
        let sites = websites(data.renewals);
        let model = Model::new(&all, &sites);
        let split = all.len() / 2;
        {
            let engine = Engine::open(dir.path()).await.unwrap();
            for w in &sites {
                engine.create_website(w.clone()).unwrap();
            }
            engine.ingest(all[..split].to_vec()).await.unwrap();
            engine.flush().await.unwrap();
        }
        // Reopened with no room for idle visitors' states, their session attributes or
        // transaction ids: every write evicts them, and reads them back from storage when an
        // event of such a visitor comes, a goal or payment joins an old session, or a payment
        // may repeat an evicted one. Written in a few parts, so that later parts need them.
        let keep_none = EngineConfig {
            session_attrs_in_memory: 0,
            visitor_states_in_memory: 0,
            transaction_ids_in_memory: 0,
            ..EngineConfig::default()
        };
        let engine = Engine::open_with(dir.path(), keep_none).await.unwrap();
        for part in all[split..].chunks(all[split..].len().div_ceil(3).max(1)) {
            engine.ingest(part.to_vec()).await.unwrap();
        }
        check(&engine, &model).await?;
        engine.flush().await.unwrap();
        check(&engine, &model).await?;
        drop(engine);
        // Reopened, with segments decoded into chunks of a few rows (so that sessions continue
        // across chunks), and with groups counted each other way than whole-website bitsets.
        let default_chunks = EngineConfig::default().resident_chunk_rows;
        for (counting, chunk_rows) in [
            (GroupCounting::Auto, 3),
            (GroupCounting::Ranges, 5),
            (GroupCounting::Pairs, default_chunks),
        ] {
            let config = EngineConfig {
                group_counting: counting,
                resident_chunk_rows: chunk_rows,
                ..EngineConfig::default()
            };
            let engine = Engine::open_with(dir.path(), config).await.unwrap();
            check(&engine, &model).await?;
        }
        let plans_only = EngineConfig {
            resident_budget_bytes: 0,
            ..EngineConfig::default()
        };
        let engine = Engine::open_with(dir.path(), plans_only).await.unwrap();
        check(&engine, &model).await
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn overview_equals_the_model(data in data(), q1 in qspec(), q2 in qspec()) {
        in_every_state(&data, async |engine, model| {
            for q in [query(&data, &q1), query(&data, &q2), Query::new("w1")] {
                let got = engine.overview(&q).await.unwrap();
                let want = model.overview(&q);
                prop_assert_eq!((got.visitors, got.sessions, got.bounced_sessions, got.paying_visitors),
                    (want.visitors, want.sessions, want.bounced_sessions, want.paying_visitors), "{:?}", q);
                assert_close(got.avg_session_duration_ms, want.avg_session_duration_ms);
                assert_close(got.bounce_rate, want.bounce_rate);
                assert_close(got.revenue.new, want.revenue.new);
                assert_close(got.revenue.renewal, want.revenue.renewal);
                assert_close(got.revenue.refund, want.revenue.refund);
                assert_close(got.revenue_per_visitor, want.revenue_per_visitor);
                assert_close(got.conversion_rate, want.conversion_rate);
            }
            Ok(())
        })?;
    }

    #[test]
    fn every_breakdown_equals_the_model(data in data(), q in qspec(), fields in prop::sample::subsequence(CampaignField::ALL.to_vec(), 1..=8), limit in 1usize..4, offset in 0usize..6) {
        let breakdowns = [
            Breakdown::Country, Breakdown::Region, Breakdown::City, Breakdown::Device, Breakdown::Browser,
            Breakdown::Os, Breakdown::Referrer, Breakdown::Campaign(fields.clone()), Breakdown::Page,
            Breakdown::Hostname, Breakdown::Goal,
        ];
        in_every_state(&data, async |engine, model| {
            let q = query(&data, &q);
            for by in &breakdowns {
                let got = engine.breakdown(&q, by, Paging::new(1000, 0).unwrap()).await.unwrap();
                let want = model.breakdown(&q, by);
                prop_assert_eq!(got.total, want.len(), "{:?} {:?}", by, q);
                for (g, w) in got.rows.iter().zip(&want) {
                    prop_assert_eq!((&g.values, g.visitors), (&w.values, w.visitors), "{:?} {:?}", by, q);
                    assert_close(g.revenue, w.revenue);
                    if *by == Breakdown::Goal {
                        prop_assert_eq!(g.completions, w.completions);
                    }
                }
                // A page of rows: only those are named, the total still counts every row.
                let page = engine.breakdown(&q, by, Paging::new(limit, offset).unwrap()).await.unwrap();
                prop_assert_eq!(page.total, want.len());
                let got: Vec<_> = page.rows.iter().map(|r| (&r.values, r.visitors)).collect();
                let want: Vec<_> = want.iter().skip(offset).take(limit).map(|r| (&r.values, r.visitors)).collect();
                prop_assert_eq!(got, want, "{:?} {:?} limit {} offset {}", by, q, limit, offset);
            }
            Ok(())
        })?;
    }

    #[test]
    fn conversion_model_statistics_equal_the_model(data in data()) {
        in_every_state(&data, async |engine, model| {
            prop_assume!(!model.first_instant_is_ambiguous("w1"));
            let got = engine.count_model_stats("w1").await.unwrap();
            let want = model.model_stats("w1");
            prop_assert_eq!((got.baseline.visitors, got.baseline.payers), (want.baseline.visitors, want.baseline.payers));
            assert_close(got.baseline.revenue, want.baseline.revenue);
            prop_assert_eq!(got.by_value.len(), want.by_value.len());
            for (k, w) in &want.by_value {
                let g = got.by_value.get(k).copied().unwrap_or_default();
                prop_assert_eq!((g.visitors, g.payers), (w.visitors, w.payers), "{:?}", k);
                assert_close(g.revenue, w.revenue);
            }
            Ok(())
        })?;
    }

    #[test]
    fn timeseries_equals_the_model(data in data(), q in qspec(), interval in 0usize..4) {
        let interval = [Interval::Hour, Interval::Day, Interval::Week, Interval::Month][interval];
        in_every_state(&data, async |engine, model| {
            let mut q = query(&data, &q);
            if interval == Interval::Hour && q.range.is_none() {
                // keep hourly all-time series small
                q.range = Some(DateRange::new(utc(BASES[data.base]), utc(BASES[data.base]) + Duration::days(4)).unwrap());
            }
            let got = engine.timeseries(&q, interval).await.unwrap();
            let (want_interval, starts, want) = model.timeseries(&q, interval);
            prop_assert_eq!(got.interval, want_interval);
            let got_starts: Vec<DateTime<Utc>> = got.buckets.iter().map(|b| b.start.with_timezone(&Utc)).collect();
            prop_assert_eq!(got_starts, starts);
            let renewals = data.renewals;
            for (b, (v, s, rev)) in got.buckets.iter().zip(&want) {
                prop_assert_eq!((b.visitors, b.sessions), (*v, *s), "{:?}", q);
                assert_close(b.revenue.new, rev.new);
                assert_close(b.revenue.renewal, rev.renewal);
                assert_close(b.revenue.refund, rev.refund);
                assert_close(b.conversion_rate, tally_core::query::result::conversion_rate(rev, *v, renewals));
            }
            if !got.buckets.is_empty() {
                let whole = Query { range: Some(DateRange::new(got.range_start, got.range_end).unwrap()), ..q.clone() };
                let o = model.overview(&whole);
                prop_assert_eq!((got.totals.visitors, got.totals.sessions), (o.visitors, o.sessions));
                assert_close(got.totals.revenue.total(), o.revenue.total());
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn deletes_equal_the_model(data in data(), payments in any::<bool>(), who in 0usize..14, what in 0u8..4, tx in 0u8..20, span in (0u32..300, 1u32..200)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let all = events(&data);
            let sites = websites(data.renewals);
            let mut model = Model::new(&all, &sites);
            let engine = Engine::open(dir.path()).await.unwrap();
            for w in &sites {
                engine.create_website(w.clone()).unwrap();
            }
            let split = all.len() / 2;
            engine.ingest(all[..split].to_vec()).await.unwrap();
            engine.flush().await.unwrap();
            engine.ingest(all[split..].to_vec()).await.unwrap();

            let start = utc(BASES[data.base]) + Duration::hours(i64::from(span.0));
            let range = DateRange::new(start, start + Duration::hours(i64::from(span.1))).unwrap();
            let visitor = format!("v{who}");
            let use_visitor = what & 1 == 1;
            let use_range = what & 2 == 2;
            let before = model.rows.len();
            let deleted = if payments {
                let d = PaymentDeletion {
                    transaction_id: (what == 0).then(|| format!("tx{tx}")),
                    visitor_id: use_visitor.then(|| visitor.clone()),
                    range: use_range.then_some(range),
                };
                let n = engine.delete_payments("w1", &d).await.unwrap();
                model.rows.retain(|r| {
                    let hit = r.website == "w1" && r.kind == "payment" && match &d.transaction_id {
                        Some(t) => r.transaction.as_deref() == Some(t.as_str()),
                        None => d.visitor_id.as_ref().is_none_or(|v| &r.visitor == v)
                            && d.range.is_none_or(|g| r.ts >= g.start.timestamp_micros() && r.ts < g.end.timestamp_micros()),
                    };
                    !hit
                });
                n
            } else {
                let d = GoalDeletion {
                    visitor_id: use_visitor.then(|| visitor.clone()),
                    name: (what == 0).then(|| pick(&GOALS, tx).to_owned()),
                    range: use_range.then_some(range),
                };
                let n = engine.delete_goals("w1", &d).await.unwrap();
                model.rows.retain(|r| {
                    let hit = r.website == "w1" && r.kind == "goal"
                        && d.visitor_id.as_ref().is_none_or(|v| &r.visitor == v)
                        && d.name.as_ref().is_none_or(|n| r.goal.as_deref() == Some(n.as_str()))
                        && d.range.is_none_or(|g| r.ts >= g.start.timestamp_micros() && r.ts < g.end.timestamp_micros());
                    !hit
                });
                n
            };
            prop_assert_eq!(deleted as usize, before - model.rows.len());
            for round in 0..2 {
                let q = Query::new("w1");
                let got = engine.overview(&q).await.unwrap();
                let want = model.overview(&q);
                prop_assert_eq!((got.visitors, got.sessions, got.bounced_sessions, got.paying_visitors),
                    (want.visitors, want.sessions, want.bounced_sessions, want.paying_visitors), "round {}", round);
                assert_close(got.revenue.total(), want.revenue.total());
                assert_close(got.revenue.refund, want.revenue.refund);
                let g = engine.breakdown(&q, &Breakdown::Goal, Paging::new(1000, 0).unwrap()).await.unwrap();
                let w = model.breakdown(&q, &Breakdown::Goal);
                let g: Vec<(Vec<String>, u64, u64)> = g.rows.into_iter().map(|r| (r.values, r.visitors, r.completions)).collect();
                let w: Vec<(Vec<String>, u64, u64)> = w.into_iter().map(|r| (r.values, r.visitors, r.completions)).collect();
                prop_assert_eq!(g, w);
                engine.flush().await.unwrap();
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Answers asked again while events keep arriving: each comes from a cached part of the
    /// older chunks merged with a scan of the newer ones (sessions continued across the two,
    /// visitors first selected by the newer rows, payments on either side), and must equal the
    /// model of every event ingested so far.
    #[test]
    fn answers_stay_exact_as_events_arrive(
        data in data(),
        q in qspec(),
        cuts in prop::collection::vec((1usize..100, any::<bool>()), 1..5),
        fields in prop::sample::subsequence(CampaignField::ALL.to_vec(), 1..=3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let all = events(&data);
            let sites = websites(data.renewals);
            let engine = Engine::open(dir.path()).await.unwrap();
            for w in &sites {
                engine.create_website(w.clone()).unwrap();
            }
            let mut ends: Vec<(usize, bool)> = cuts.iter().map(|(c, f)| (all.len() * c / 100, *f)).collect();
            ends.push((all.len(), false));
            ends.sort();
            let mut done = 0;
            for (end, flush) in ends {
                engine.ingest(all[done..end].to_vec()).await.unwrap();
                done = end;
                if flush {
                    engine.flush().await.unwrap();
                }
                let model = Model::new(&all[..done], &sites);
                for q in [query(&data, &q), Query::new("w1")] {
                    let got = engine.overview(&q).await.unwrap();
                    let want = model.overview(&q);
                    prop_assert_eq!((got.visitors, got.sessions, got.bounced_sessions, got.paying_visitors),
                        (want.visitors, want.sessions, want.bounced_sessions, want.paying_visitors), "after {} {:?}", done, q);
                    assert_close(got.avg_session_duration_ms, want.avg_session_duration_ms);
                    assert_close(got.revenue.new, want.revenue.new);
                    assert_close(got.revenue.renewal, want.revenue.renewal);
                    assert_close(got.revenue.refund, want.revenue.refund);
                    for by in [Breakdown::Country, Breakdown::Page, Breakdown::Goal, Breakdown::Campaign(fields.clone())] {
                        let got = engine.breakdown(&q, &by, Paging::new(1000, 0).unwrap()).await.unwrap();
                        let want = model.breakdown(&q, &by);
                        prop_assert_eq!(got.total, want.len(), "{:?} {:?}", by, q);
                        for (g, w) in got.rows.iter().zip(&want) {
                            prop_assert_eq!((&g.values, g.visitors, g.completions), (&w.values, w.visitors, w.completions), "{:?} {:?}", by, q);
                            assert_close(g.revenue, w.revenue);
                        }
                    }
                    let mut q = q.clone();
                    if q.range.is_none() {
                        q.range = Some(DateRange::new(utc(BASES[data.base]), utc(BASES[data.base]) + Duration::days(12)).unwrap());
                    }
                    let got = engine.timeseries(&q, Interval::Day).await.unwrap();
                    let (_, _, want) = model.timeseries(&q, Interval::Day);
                    for (b, (v, s, rev)) in got.buckets.iter().zip(&want) {
                        prop_assert_eq!((b.visitors, b.sessions), (*v, *s), "after {} {:?}", done, q);
                        assert_close(b.revenue.new, rev.new);
                        assert_close(b.revenue.renewal, rev.renewal);
                        assert_close(b.revenue.refund, rev.refund);
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// Every stored row of `site`, every column, in time and id order.
async fn stored_rows(engine: &Engine, site: &str) -> tally_core::arrow::record_batch::RecordBatch {
    use tally_core::datafusion::prelude::col;
    let rows = engine
        .selected_events(&Query::new(site))
        .unwrap()
        .sort(vec![
            col("ts").sort(true, false),
            col("event_id").sort(true, false),
        ])
        .unwrap()
        .collect()
        .await
        .unwrap();
    tally_core::arrow::compute::concat_batches(&tally_core::schema::events_schema(), &rows).unwrap()
}

/// Generated event ids (`{time:x}-{counter:x}`) with each counter made relative to the
/// smallest: an engine's counter starts from the clock, so two engines differ by an offset.
fn generated_ids(ids: &tally_core::arrow::array::ArrayRef) -> Vec<(String, u64)> {
    use tally_core::arrow::array::AsArray;
    let parsed: Vec<(String, u64)> = ids
        .as_string::<i32>()
        .iter()
        .map(|id| {
            let (time, counter) = id.unwrap().split_once('-').unwrap();
            (time.to_owned(), u64::from_str_radix(counter, 16).unwrap())
        })
        .collect();
    let first = parsed.iter().map(|(_, c)| *c).min().unwrap_or(0);
    parsed.into_iter().map(|(t, c)| (t, c - first)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// `tally import`'s path (events packed where they were parsed, `Engine::ingest_packed`)
    /// stores what `Engine::ingest_bulk` stores, every column of every row: in batches of any
    /// size, out of time order, with a flush between, and with every idle visitor's state,
    /// session attributes and transaction ids evicted after each batch and read back.
    #[test]
    fn packed_loads_store_what_bulk_loads_store(
        data in data(),
        batch in 1usize..80,
        reversed in any::<bool>(),
        flush_after in 0usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let all = events(&data);
            let sites = websites(data.renewals);
            let keep_none = EngineConfig {
                session_attrs_in_memory: 0,
                visitor_states_in_memory: 0,
                transaction_ids_in_memory: 0,
                ..EngineConfig::default()
            };
            let (bulk_dir, packed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let bulk = Engine::open_with(bulk_dir.path(), keep_none.clone()).await.unwrap();
            let packed = Engine::open_with(packed_dir.path(), keep_none).await.unwrap();
            for w in &sites {
                bulk.create_website(w.clone()).unwrap();
                packed.create_website(w.clone()).unwrap();
            }
            let (mut bulk_counts, mut packed_counts) = ((0, 0), (0, 0));
            for (i, chunk) in all.chunks(batch).enumerate() {
                let mut chunk = chunk.to_vec();
                if reversed {
                    chunk.reverse();
                }
                let report = bulk.ingest_bulk(chunk.clone()).await.unwrap();
                prop_assert!(report.rejected.is_empty(), "{:?}", report.rejected);
                bulk_counts.0 += report.accepted;
                bulk_counts.1 += report.duplicates;
                for w in &sites {
                    let of_site: Vec<Event> = chunk.iter().filter(|e| e.website_id == w.id).cloned().collect();
                    let (valid, refused) = tally_core::ValidEvents::check(of_site);
                    prop_assert!(refused.is_empty());
                    let (events, other) = tally_core::PackedEvents::pack(&w.id, valid);
                    prop_assert!(other.is_empty());
                    let report = packed.ingest_packed(events).await.unwrap();
                    prop_assert!(report.rejected.is_empty(), "{:?}", report.rejected);
                    packed_counts.0 += report.accepted;
                    packed_counts.1 += report.duplicates;
                }
                if i == flush_after {
                    bulk.flush().await.unwrap();
                    packed.flush().await.unwrap();
                }
            }
            prop_assert_eq!(bulk_counts, packed_counts);
            for w in &sites {
                let (want, got) = (stored_rows(&bulk, &w.id).await, stored_rows(&packed, &w.id).await);
                prop_assert_eq!(want.num_rows(), got.num_rows());
                for (field, (a, b)) in want.schema().fields().iter().zip(want.columns().iter().zip(got.columns())) {
                    if field.name() == "event_id" {
                        prop_assert_eq!(generated_ids(a), generated_ids(b));
                    } else {
                        prop_assert_eq!(a, b, "column {}", field.name());
                    }
                }
            }
            Ok(())
        })?;
    }
}

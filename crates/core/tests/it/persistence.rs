//! Answers survive a flush and a restart, and ingest after a restart continues where it left
//! off (sessions, duplicate payments).

use tally_core::{Breakdown, Engine, EngineConfig, Event, GroupCounting, Interval, Paging, Query};

use crate::support::{assert_close, days, fixture_engine, repeat_of_tx_1, synthetic_engine, utc};

async fn answers(e: &Engine) -> String {
    let q = Query::new("fixture");
    let o = e.overview(&q).await.unwrap();
    let b = e
        .breakdown(&q, &Breakdown::Referrer, Paging::default())
        .await
        .unwrap();
    let t = e
        .timeseries(
            &q.clone()
                .with_range(days("UTC", "2025-03-10", "2025-03-12")),
            Interval::Day,
        )
        .await
        .unwrap();
    format!("{o:?}\n{b:?}\n{t:?}")
}

#[tokio::test]
async fn flush_and_reopen_give_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let hot = answers(&engine).await;
    let report = engine.flush().await.unwrap();
    assert_eq!(report.segments, 2); // one per website
    assert_eq!(engine.hot_rows().unwrap(), 0);
    assert_eq!(answers(&engine).await, hot);
    drop(engine);
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(answers(&reopened).await, hot);
    assert_eq!(
        reopened.website("fixture").unwrap().exchange_rates["EUR"],
        1.1
    );
}

#[tokio::test]
async fn ingest_after_a_restart_continues_sessions_and_refuses_repeat_payments() {
    let dir = tempfile::tempdir().unwrap();
    fixture_engine(dir.path()).await.flush().await.unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    let before = engine.overview(&Query::new("fixture")).await.unwrap();
    // v9's session ended at 20:22 with a goal; a page view at 20:40 continues it
    let pv = Event::pageview(
        "fixture",
        "v9",
        utc("2025-03-12T20:40:00Z"),
        "example.com",
        "/",
    );
    let repeat = repeat_of_tx_1();
    let report = engine.ingest(vec![pv, repeat]).await.unwrap();
    assert_eq!((report.accepted, report.duplicates), (1, 1));
    let after = engine.overview(&Query::new("fixture")).await.unwrap();
    assert_eq!(after.sessions, before.sessions);
    assert_eq!(after.revenue, before.revenue);
}

#[tokio::test]
async fn unknown_websites_and_bad_events_are_reported_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let ok = Event::pageview(
        "fixture",
        "new",
        utc("2025-03-12T10:00:00Z"),
        "example.com",
        "/",
    );
    let unknown = Event::pageview("nope", "v", utc("2025-03-12T10:00:00Z"), "example.com", "/");
    let too_old = Event::pageview(
        "fixture",
        "v",
        utc("1999-12-31T00:00:00Z"),
        "example.com",
        "/",
    );
    let report = engine.ingest(vec![ok, unknown, too_old]).await.unwrap();
    assert_eq!(report.accepted, 1);
    let reasons: Vec<(usize, String)> = report
        .rejected
        .iter()
        .map(|(i, e)| (*i, e.to_string()))
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].0 == 1 && reasons[0].1.contains("website not found"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == 2 && reasons[1].1.contains("timestamp"),
        "{reasons:?}"
    );
    assert!(matches!(
        engine.overview(&Query::new("nope")).await,
        Err(tally_core::Error::NotFound { .. })
    ));
}

/// Segments written in time order are joined as stored; ones that overlap in time are merged.
/// Either way the answers are those of the same writes flushed once.
#[tokio::test]
async fn many_small_flushes_are_compacted_without_changing_answers() {
    let mut in_order = crate::support::fixture_events();
    in_order.sort_by_key(|e| e.ts);
    let reference_dir = tempfile::tempdir().unwrap();
    let fixture = answers(&fixture_engine(reference_dir.path()).await).await;
    assert_eq!(compacted_and_flushed_once(in_order.clone()).await, fixture);
    // Every third event in each write: each segment spans the whole fixture's time.
    let thirds = (0..3).flat_map(|k| in_order.iter().skip(k).step_by(3).cloned());
    compacted_and_flushed_once(thirds.collect()).await;
}

/// Writes `events` three at a time, into one engine with a flush after each write and into
/// another with one flush at the end; checks that compaction kept the first one's segments
/// few, and that both answer the same, also after a reopen. Returns the answers.
async fn compacted_and_flushed_once(events: Vec<tally_core::Event>) -> String {
    let open = |dir: &std::path::Path| {
        let dir = dir.to_owned();
        async move {
            let engine = Engine::open(&dir).await.unwrap();
            engine
                .create_website(crate::support::fixture_website())
                .unwrap();
            engine
                .create_website(tally_core::Website::new("other", "other.org"))
                .unwrap();
            engine
        }
    };
    let (once_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (once, engine) = (open(once_dir.path()).await, open(dir.path()).await);
    for chunk in events.chunks(3) {
        once.ingest(chunk.to_vec()).await.unwrap();
        engine.ingest(chunk.to_vec()).await.unwrap();
        engine.flush().await.unwrap();
    }
    once.flush().await.unwrap();
    let reference = answers(&once).await;
    let fixture_segments = engine
        .segments()
        .unwrap()
        .iter()
        .filter(|s| s.website_id == "fixture")
        .count();
    assert!(
        fixture_segments <= tally_core::store::compact::MAX_SMALL_SEGMENTS,
        "{fixture_segments} segments after {} flushes",
        events.len().div_ceil(3)
    );
    assert_eq!(answers(&engine).await, reference);
    drop(engine);
    assert_eq!(
        answers(&Engine::open(dir.path()).await.unwrap()).await,
        reference
    );
    reference
}

/// A website whose columns do not fit in the resident budget is answered from its Parquet
/// segments, with the same numbers, and holds no resident memory.
#[tokio::test]
async fn a_website_over_the_resident_budget_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    engine.flush().await.unwrap();
    let resident = answers(&engine).await;
    assert!(engine.resident_bytes() > 0);
    drop(engine);
    let tiny = tally_core::EngineConfig {
        resident_budget_bytes: 2_000,
        ..tally_core::EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), tiny).await.unwrap();
    engine.warm().await.unwrap();
    assert_eq!(answers(&engine).await, resident);
    assert!(
        engine.resident_bytes() <= 2_000,
        "{}",
        engine.resident_bytes()
    );
}

/// Answers big enough to be split across the cores (sessions shared out, breakdown rows split
/// and their bitsets merged), groups big enough to be deduplicated in a bitset when counted
/// from pairs, and visitors in several ranges, equal those of the DataFusion plans over
/// Parquet, whichever way groups are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_split_across_cores_equal_the_plans() {
    use tally_core::{Dimension, EngineConfig, Filter, FilterOp};
    let dir = tempfile::tempdir().unwrap();
    let engine = synthetic_engine(dir.path()).await;
    // Visitors past one range of 65,536, so that ranged counting works on several ranges.
    let site = tally_core::synthetic::WEBSITE;
    let start = tally_core::synthetic::start();
    let events = tally_core::synthetic::events_in(
        site,
        start,
        chrono::Duration::days(30),
        260_000,
        1 << 30,
        5,
    );
    let report = engine.ingest(events).await.unwrap();
    assert!(report.rejected.is_empty());
    engine.flush().await.unwrap();
    let all = Query::new(site);
    let visitors = engine.overview(&all).await.unwrap().visitors;
    assert!(visitors > 1 << 16, "{visitors}");
    let us = Query::new(site)
        .with_filter(Filter::new(Dimension::Country, FilterOp::Is, vec!["US".into()]).unwrap());
    let blog = Query::new(site).with_filter(
        Filter::new(Dimension::Page, FilterOp::Contains, vec!["/blog".into()]).unwrap(),
    );
    let answers = async |e: &Engine| {
        let mut out = Vec::new();
        for q in [&all, &us, &blog] {
            let o = e.overview(q).await.unwrap();
            let mut rows = Vec::new();
            for by in [Breakdown::Country, Breakdown::Page, Breakdown::Referrer] {
                rows.push(e.breakdown(q, &by, Paging::default()).await.unwrap().rows);
            }
            out.push((o, rows));
        }
        out
    };
    let resident = answers(&engine).await;
    drop(engine);
    // Groups counted one range of visitors at a time, and from sorted pairs (large groups
    // marked in a bitset).
    let mut pairs = Vec::new();
    for counting in [GroupCounting::Ranges, GroupCounting::Pairs] {
        let config = EngineConfig {
            group_counting: counting,
            ..EngineConfig::default()
        };
        let engine = Engine::open_with(dir.path(), config).await.unwrap();
        pairs.extend(answers(&engine).await);
    }
    let plans_only = EngineConfig {
        resident_budget_bytes: 0,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), plans_only).await.unwrap();
    let plans = answers(&engine).await;
    // Equal up to the order in which sums were added.
    let both = resident.iter().chain(&pairs);
    for ((ro, rb), (po, pb)) in both.zip(plans.iter().cycle()) {
        let counts = |o: &tally_core::Overview| {
            (
                o.visitors,
                o.sessions,
                o.bounced_sessions,
                o.paying_visitors,
            )
        };
        assert_eq!(counts(ro), counts(po));
        assert_close(ro.avg_session_duration_ms, po.avg_session_duration_ms);
        assert_close(ro.revenue.total(), po.revenue.total());
        assert_close(ro.revenue.refund, po.revenue.refund);
        for (r, p) in rb.iter().zip(pb) {
            assert_eq!(r.len(), p.len());
            for (r, p) in r.iter().zip(p) {
                assert_eq!(
                    (&r.values, r.visitors, r.completions),
                    (&p.values, p.visitors, p.completions)
                );
                assert_close(r.revenue, p.revenue);
            }
        }
    }
}

#[tokio::test]
async fn datafusion_plans_stay_within_the_query_memory_pool() {
    use tally_core::datafusion::error::DataFusionError;
    use tally_core::synthetic;
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path()).await.unwrap();
        engine.create_website(synthetic::website()).unwrap();
        engine.ingest(synthetic::events(60_000, 3)).await.unwrap();
        engine.flush().await.unwrap();
    }
    // Answered by the DataFusion plans over Parquet, with a pool far too small for them.
    let tight = EngineConfig {
        resident_budget_bytes: 0,
        query_memory_bytes: 64 << 10,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), tight).await.unwrap();
    let q = Query::new(synthetic::WEBSITE);
    let err = engine
        .breakdown(&q, &Breakdown::Page, Paging::default())
        .await
        .unwrap_err();
    match &err {
        tally_core::Error::DataFusion(e) => assert!(
            matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)),
            "{e}"
        ),
        other => panic!("expected resources exhausted, got {other}"),
    }
    drop(engine);
    // The default pool answers it.
    let engine = Engine::open_with(
        dir.path(),
        EngineConfig {
            resident_budget_bytes: 0,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    assert!(
        !engine
            .breakdown(&q, &Breakdown::Page, Paging::default())
            .await
            .unwrap()
            .rows
            .is_empty()
    );
}

/// Rewrites every segment of `dir` without `column`, as a version before the column existed
/// wrote it, and records the new file sizes in the catalog.
fn drop_column_from_segments(dir: &std::path::Path, column: &str) {
    use tally_core::datafusion::parquet::arrow::ArrowWriter;
    use tally_core::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let catalog_path = dir.join("catalog.json");
    let mut catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&catalog_path).unwrap()).unwrap();
    for segment in catalog["segments"].as_array_mut().unwrap() {
        let path = dir.join(segment["file"].as_str().unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let keep: Vec<usize> = (0..batches[0].num_columns())
            .filter(|i| batches[0].schema().field(*i).name() != column)
            .collect();
        let old: Vec<_> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), old[0].schema(), None)
                .unwrap();
        for b in &old {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
        segment["bytes"] = std::fs::metadata(&path).unwrap().len().into();
    }
    std::fs::write(&catalog_path, serde_json::to_vec(&catalog).unwrap()).unwrap();
}

/// A data directory written before `region_code` was added: its segments lack the column and
/// still answer, from resident columns and from the plans, and take new events.
#[tokio::test]
async fn segments_written_before_a_column_was_added_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    engine.flush().await.unwrap();
    let want = answers(&engine).await;
    drop(engine);
    drop_column_from_segments(dir.path(), tally_core::schema::col::REGION_CODE);

    let engine = Engine::open(dir.path()).await.unwrap();
    engine.warm().await.unwrap();
    assert!(engine.resident_bytes() > 0, "the old segments were decoded");
    assert_eq!(answers(&engine).await, want);
    let event = crate::support::fixture_events().remove(0);
    let report = engine.ingest(vec![event]).await.unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    engine.flush().await.unwrap();
    drop(engine);
    let plans_only = EngineConfig {
        resident_budget_bytes: 0,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), plans_only).await.unwrap();
    let q = Query::new("fixture");
    let rows = engine
        .breakdown(&q, &Breakdown::Region, Paging::default())
        .await
        .unwrap();
    assert!(!rows.rows.is_empty());
}

/// A clean stop saves each website's ingest state; a later open reads it back instead of
/// rebuilding it, with the same behaviour, and never once the segments changed.
#[tokio::test]
async fn a_saved_ingest_state_is_read_back_while_the_segments_are_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let engine = fixture_engine(dir.path()).await;
        engine.flush().await.unwrap();
        assert!(engine.has_ingest_state("fixture").unwrap());
        let model = engine.conversion_stats("fixture").await.unwrap();
        assert_eq!(engine.save_ingest_states().await.unwrap(), 2);
        (answers(&engine).await, model)
    };
    let (want, model) = want;
    let saved = dir.path().join("saved").join("fixture.ingest");
    assert!(saved.exists());
    assert!(dir.path().join("saved").join("fixture.model").exists());

    let engine = Engine::open(dir.path()).await.unwrap();
    assert!(
        !engine.has_ingest_state("fixture").unwrap(),
        "read when needed"
    );
    // The transaction ids came back: the repeat is a duplicate, as before the stop.
    let report = engine.ingest(vec![repeat_of_tx_1()]).await.unwrap();
    assert_eq!(report.duplicates, 1);
    assert!(engine.has_ingest_state("fixture").unwrap());
    assert_eq!(engine.ingest_state_rebuilds(), 0);
    assert!(engine.has_pageview("fixture", "v1").await.unwrap());
    assert_eq!(answers(&engine).await, want);
    assert_eq!(engine.conversion_stats("fixture").await.unwrap(), model);
    drop(engine);
    // New rows flushed by an engine that does not save its state at a flush: the saved state
    // is no longer the state of the segments.
    let no_checkpoints = EngineConfig {
        checkpoint_max_pause: std::time::Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), no_checkpoints).await.unwrap();
    let mut late = crate::support::fixture_events().remove(0);
    late.event_id = Some("late-view".into());
    late.ts = utc("2025-03-13T09:00:00Z");
    engine.ingest(vec![late]).await.unwrap();
    engine.flush().await.unwrap();
    drop(engine);

    let engine = Engine::open(dir.path()).await.unwrap();
    let report = engine.ingest(vec![repeat_of_tx_1()]).await.unwrap();
    assert_eq!(report.duplicates, 1);
    assert_eq!(
        engine.ingest_state_rebuilds(),
        1,
        "a stale state is not used"
    );
    assert!(!saved.exists(), "and is removed");
}

#[tokio::test]
async fn after_a_crash_the_last_flush_state_and_the_logged_rows_give_the_ingest_state_back() {
    let dir = tempfile::tempdir().unwrap();
    let paid_later = |tx: &str| {
        let mut e = repeat_of_tx_1();
        e.event_id = None;
        e.ts = utc("2025-03-13T10:00:00Z");
        if let tally_core::EventKind::Payment(p) = &mut e.kind {
            p.transaction_id = tx.into();
        }
        e
    };
    let view_at = |ts: &str| {
        let mut e = crate::support::fixture_events().remove(0);
        e.event_id = None;
        e.session_id = None;
        e.ts = utc(ts);
        e
    };
    let want = {
        let engine = fixture_engine(dir.path()).await;
        // The flush saves the state of the segments it leaves...
        engine.flush().await.unwrap();
        assert!(dir.path().join("saved").join("fixture.ingest").exists());
        // ...and later writes are only in the log when the process dies.
        let logged = vec![view_at("2025-03-13T09:59:00Z"), paid_later("tx_late")];
        engine.ingest(logged).await.unwrap();
        answers(&engine).await
    }; // dropped without a clean stop: as if killed

    let engine = Engine::open(dir.path()).await.unwrap();
    engine.warm_ingest().await.unwrap();
    assert_eq!(engine.ingest_state_rebuilds(), 0, "read back, not rebuilt");
    assert_eq!(answers(&engine).await, want);
    // Payments from before the flush and from the log after it are both known.
    let report = engine
        .ingest(vec![repeat_of_tx_1(), paid_later("tx_late")])
        .await
        .unwrap();
    assert_eq!(report.duplicates, 2);
    // The logged page view's session goes on: six minutes later is the same visit.
    let sessions = |o: tally_core::Overview| o.sessions;
    let before = sessions(engine.overview(&Query::new("fixture")).await.unwrap());
    engine
        .ingest(vec![view_at("2025-03-13T10:05:00Z")])
        .await
        .unwrap();
    let after = sessions(engine.overview(&Query::new("fixture")).await.unwrap());
    assert_eq!(after, before);
}

/// Resident chunks keep each code column in the narrowest width its codes fit (one, two or four
/// bytes): pages, filters and groups over columns of every width equal the plans over Parquet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_columns_of_every_width_answer_as_the_plans() {
    use tally_core::{Dimension, Filter, FilterOp};
    let dir = tempfile::tempdir().unwrap();
    let engine = synthetic_engine(dir.path()).await;
    let site = tally_core::synthetic::WEBSITE;
    let start = tally_core::synthetic::start();
    // Three flushes, three segments: 200 paths (one byte), 3,000 paths (two bytes), and
    // 70,000 paths (four bytes: codes past 65,535).
    for (batch, paths) in [(0, 200u32), (1, 3_000), (2, 70_000)] {
        let events = (0..paths.max(20_000))
            .map(|i| {
                let ts = start + chrono::Duration::seconds(i64::from(batch * 100_000 + i));
                let mut e = Event::pageview(
                    site,
                    format!("v{batch}-{}", i % 5_000),
                    ts,
                    "example.com",
                    format!("/p/{batch}/{}", i % paths),
                );
                e.attrs.country_code = Some(["US", "DE", "FR"][(i % 3) as usize].into());
                e
            })
            .collect::<Vec<_>>();
        assert!(engine.ingest(events).await.unwrap().rejected.is_empty());
        engine.flush().await.unwrap();
    }
    let high = Filter::new(
        Dimension::Page,
        FilterOp::Is,
        vec!["/p/2/69999".into(), "/p/1/2999".into()],
    )
    .unwrap();
    let deep = Filter::new(Dimension::Page, FilterOp::Contains, vec!["/p/2/6".into()]).unwrap();
    let queries = [
        Query::new(site),
        Query::new(site).with_filter(high),
        Query::new(site).with_filter(deep),
    ];
    let answers = async |e: &Engine| {
        let mut out = Vec::new();
        for q in &queries {
            let o = e.overview(q).await.unwrap();
            let mut rows = Vec::new();
            for by in [Breakdown::Page, Breakdown::Country] {
                let page = Paging {
                    limit: 1_000,
                    offset: 0,
                };
                let r = e.breakdown(q, &by, page).await.unwrap().rows;
                rows.push(
                    r.into_iter()
                        .map(|r| (r.values, r.visitors, r.completions))
                        .collect::<Vec<_>>(),
                );
            }
            out.push((o.visitors, o.sessions, o.bounced_sessions, rows));
        }
        out
    };
    let resident = answers(&engine).await;
    drop(engine);
    let plans_only = EngineConfig {
        resident_budget_bytes: 0,
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(dir.path(), plans_only).await.unwrap();
    let plans = answers(&engine).await;
    for (q, (r, p)) in resident.iter().zip(&plans).enumerate() {
        assert_eq!((r.0, r.1, r.2), (p.0, p.1, p.2), "overview of query {q}");
        for (b, (r, p)) in r.3.iter().zip(&p.3).enumerate() {
            assert_eq!(r.len(), p.len(), "rows of breakdown {b} of query {q}");
            if let Some((r, p)) = r.iter().zip(p).find(|(r, p)| r != p) {
                panic!("breakdown {b} of query {q}: resident {r:?}, plans {p:?}");
            }
        }
    }
    // `/p/1/2999` is visited by five visitors of the second batch, `/p/2/69999` by one.
    assert_eq!(resident[1].0, 6);
    assert!(resident[2].0 > 0 && resident[2].0 < resident[0].0);
}

//! Acknowledged writes survive a process that stops without flushing (the write-ahead log),
//! replay never counts a row twice, and a flush that is cancelled or fails gives its rows back.

use futures::FutureExt;
use tally_core::{Breakdown, Engine, GoalDeletion, Paging, Query};

use crate::support::{fixture_engine, utc};

/// Everything a dashboard shows, as text to compare.
async fn answers(e: &Engine) -> String {
    let q = Query::new("fixture");
    let o = e.overview(&q).await.unwrap();
    let goals = e
        .breakdown(&q, &Breakdown::Goal, Paging::default())
        .await
        .unwrap();
    let pages = e
        .breakdown(&q, &Breakdown::Page, Paging::default())
        .await
        .unwrap();
    format!("{o:?}\n{goals:?}\n{pages:?}")
}

fn newsletter() -> GoalDeletion {
    GoalDeletion {
        name: Some("newsletter_signup".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn unflushed_writes_and_deletes_come_back_after_a_stop_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    assert!(engine.hot_rows().unwrap() > 0);
    assert_eq!(
        engine.delete_goals("fixture", &newsletter()).await.unwrap(),
        2
    );
    let before = answers(&engine).await;
    let hot = engine.hot_rows().unwrap();
    drop(engine); // no flush: as if the process had been killed

    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(reopened.hot_rows().unwrap(), hot);
    assert_eq!(answers(&reopened).await, before);
    assert!(!before.contains("newsletter_signup"));

    // Flushed, the log is no longer needed, and a second restart reads the segments alone.
    reopened.flush().await.unwrap();
    assert_eq!(reopened.hot_rows().unwrap(), 0);
    drop(reopened);
    let again = Engine::open(dir.path()).await.unwrap();
    assert_eq!(again.hot_rows().unwrap(), 0);
    assert_eq!(answers(&again).await, before);
}

#[tokio::test]
async fn a_log_file_left_behind_by_a_flush_is_not_replayed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let before = answers(&engine).await;
    let wal = dir.path().join("wal");
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert!(saved.iter().any(|(_, b)| !b.is_empty()));
    engine.flush().await.unwrap();
    drop(engine);
    // A crash after the catalog was saved and before the log files were removed.
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(reopened.hot_rows().unwrap(), 0);
    assert_eq!(answers(&reopened).await, before);
}

#[tokio::test]
async fn a_cancelled_flush_gives_its_rows_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let before = answers(&engine).await;
    let hot = engine.hot_rows().unwrap();
    // Polled once, the flush takes the buffers and waits on its writer; then it is dropped,
    // as when the request that triggered it goes away.
    assert!(engine.flush().now_or_never().is_none());
    assert_eq!(engine.hot_rows().unwrap(), hot);
    assert_eq!(answers(&engine).await, before);
    engine.flush().await.unwrap();
    drop(engine);
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(answers(&reopened).await, before);
}

#[tokio::test]
async fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let err = Engine::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, tally_core::Error::Busy { .. }), "{err}");
    assert!(err.to_string().contains("in use by process"), "{err}");
    drop(engine);
    Engine::open(dir.path()).await.unwrap();
}

#[tokio::test]
async fn writes_after_a_restart_are_logged_too() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    engine.flush().await.unwrap();
    drop(engine);
    let engine = Engine::open(dir.path()).await.unwrap();
    let pv = tally_core::Event::pageview(
        "fixture",
        "late-visitor",
        utc("2025-03-12T23:00:00Z"),
        "example.com",
        "/late",
    );
    assert_eq!(engine.ingest(vec![pv]).await.unwrap().accepted, 1);
    let before = answers(&engine).await;
    assert!(before.contains("/late"));
    drop(engine);
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(answers(&reopened).await, before);
}

#[tokio::test]
async fn a_large_write_logged_as_arrow_batches_comes_back_too() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    engine
        .create_website(tally_core::Website::new("big", "big.example"))
        .unwrap();
    let events =
        tally_core::synthetic::events_between("big", utc("2025-01-01T00:00:00Z"), 10, 70_000, 3);
    // More than one log record's worth (64Ki rows), and the tail as its own record.
    let stored = engine.ingest(events).await.unwrap().accepted;
    assert!(stored > 66_000, "{stored}");
    let q = Query::new("big");
    let before = format!("{:?}", engine.overview(&q).await.unwrap());
    drop(engine);
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(reopened.hot_rows().unwrap(), stored);
    assert_eq!(
        format!("{:?}", reopened.overview(&q).await.unwrap()),
        before
    );
}

#[tokio::test]
async fn a_missing_segment_file_is_left_out_not_a_failure_of_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    engine.flush().await.unwrap();
    let before = answers(&engine).await;
    let segment = engine
        .segments()
        .unwrap()
        .into_iter()
        .find(|s| s.website_id == "fixture")
        .unwrap();
    drop(engine);

    let path = dir.path().join(&segment.file);
    let saved = dir.path().join("saved.parquet");
    std::fs::rename(&path, &saved).unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    assert_eq!(
        engine.unavailable_segments().unwrap(),
        vec![segment.clone()]
    );
    let o = engine.overview(&Query::new("fixture")).await.unwrap();
    assert_eq!(o.visitors, 0, "the only segment is gone");
    drop(engine);

    std::fs::rename(&saved, &path).unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    assert!(engine.unavailable_segments().unwrap().is_empty());
    assert_eq!(answers(&engine).await, before);
}

#[tokio::test]
async fn ingest_state_warmed_at_open_refuses_a_repeat_payment() {
    let dir = tempfile::tempdir().unwrap();
    fixture_engine(dir.path()).await.flush().await.unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    engine.warm_ingest().await.unwrap();
    let repeat = crate::support::repeat_of_tx_1();
    let report = engine.ingest(vec![repeat]).await.unwrap();
    assert_eq!((report.accepted, report.duplicates), (0, 1));
}

#[tokio::test]
async fn a_bulk_load_is_durable_at_its_flush_and_not_before() {
    use crate::support::{fixture_events, fixture_website};
    let dir = tempfile::tempdir().unwrap();
    let logged = {
        let engine = Engine::open(dir.path()).await.unwrap();
        engine.create_website(fixture_website()).unwrap();
        engine
            .create_website(tally_core::Website::new("other", "other.org"))
            .unwrap();
        let report = engine.ingest_bulk(fixture_events()).await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        // Bulk rows answer queries at once, like any other.
        let bulk = answers(&engine).await;
        let logged = fixture_engine_answers().await;
        assert_eq!(bulk, logged);
        drop(engine); // no flush: the bulk rows were never acknowledged
        logged
    };
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(reopened.hot_rows().unwrap(), 0);
    let o = reopened.overview(&Query::new("fixture")).await.unwrap();
    assert_eq!(o.visitors, 0);

    // Loaded again and flushed, they survive the next stop.
    reopened.ingest_bulk(fixture_events()).await.unwrap();
    reopened.flush().await.unwrap();
    drop(reopened);
    let again = Engine::open(dir.path()).await.unwrap();
    assert_eq!(answers(&again).await, logged);
}

/// The fixture's answers when it is ingested through the log.
async fn fixture_engine_answers() -> String {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    answers(&engine).await
}

#[tokio::test]
async fn who_has_a_page_view_is_known_from_the_ingest_state_across_a_restart() {
    use std::collections::BTreeMap;
    use tally_core::{Event, EventKind};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    engine
        .create_website(tally_core::Website::new("w", "w.example"))
        .unwrap();
    let t = utc("2025-03-10T10:00:00Z");
    let goal = EventKind::Goal {
        name: "signup".into(),
        metadata: BTreeMap::new(),
    };
    engine
        .ingest(vec![
            Event::pageview("w", "viewer", t, "w.example", "/"),
            Event::new("w", "goal-only", t, goal),
        ])
        .await
        .unwrap();
    engine.flush().await.unwrap();
    drop(engine);
    let engine = Engine::open(dir.path()).await.unwrap();
    assert!(engine.has_pageview("w", "viewer").await.unwrap());
    assert!(!engine.has_pageview("w", "goal-only").await.unwrap());
    assert!(!engine.has_pageview("w", "stranger").await.unwrap());
}

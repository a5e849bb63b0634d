//! Ingest keeps its per-visitor state and transaction ids within limits. What it evicts is read
//! back from storage when a write needs it, so that the stored rows, every answer and every
//! visitor's history are those of an engine that keeps everything, across a restart too.

use tally_core::{Breakdown, Engine, EngineConfig, Event, EventKind, Paging, Query};

use crate::support::{fixture_events, fixture_website, repeat_of_tx_1};

/// Room for nothing: every write evicts every idle visitor and every transaction id.
fn keep_none() -> EngineConfig {
    EngineConfig {
        session_attrs_in_memory: 0,
        visitor_states_in_memory: 0,
        transaction_ids_in_memory: 0,
        ..EngineConfig::default()
    }
}

async fn open(dir: &std::path::Path, config: EngineConfig) -> Engine {
    let engine = Engine::open_with(dir, config).await.unwrap();
    if engine.websites().unwrap().is_empty() {
        engine.create_website(fixture_website()).unwrap();
    }
    engine
}

/// Writes `events` one a write, as the tracker does; returns the payments refused as repeats.
async fn write_each(engine: &Engine, events: &[Event]) -> usize {
    let mut duplicates = 0;
    for e in events {
        let report = engine.ingest(vec![e.clone()]).await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        duplicates += report.duplicates;
    }
    duplicates
}

/// The answers, each visitor's history and who has a page view, as text to compare.
async fn everything(engine: &Engine, events: &[Event]) -> String {
    let q = Query::new("fixture");
    let mut out = format!("{:?}\n", engine.overview(&q).await.unwrap());
    for by in [Breakdown::Page, Breakdown::Country, Breakdown::Goal] {
        let rows = engine.breakdown(&q, &by, Paging::default()).await.unwrap();
        out += &format!("{rows:?}\n");
    }
    let mut visitors: Vec<&str> = events.iter().map(|e| e.visitor_id.as_str()).collect();
    visitors.sort();
    visitors.dedup();
    for v in visitors {
        let mut history = engine.visitor("fixture", v).await.unwrap();
        // Generated event ids differ between processes.
        if let Some(p) = history.as_mut().and_then(|h| h.latest_pageview.as_mut()) {
            p.event_id.clear();
        }
        let viewed = engine.has_pageview("fixture", v).await.unwrap();
        out += &format!("{v} {viewed} {history:?}\n");
    }
    out
}

#[tokio::test]
async fn evicted_visitors_and_payments_are_read_back_as_they_were_across_a_restart() {
    let mut events = fixture_events();
    events.retain(|e| e.website_id == "fixture");
    // In time order, as a tracker sends them, so that visitors come back in later parts.
    events.sort_by_key(|e| e.ts);
    events.push(repeat_of_tx_1());
    // The provider reports tx_1 again, for another visitor: only the id tells it is a repeat.
    let mut reported_again = repeat_of_tx_1();
    reported_again.visitor_id = "provider".into();
    events.push(reported_again);
    // A visitor whose page view is flushed and whose goal, the latest event, is only in the
    // log when the process stops: the restart must read the page view back from the segments
    // before it replays the goal.
    events.insert(
        0,
        Event::pageview("fixture", "back", events[0].ts, "example.com", "/"),
    );
    let third = events.len() / 3;
    let goal = EventKind::Goal {
        name: "signup".into(),
        metadata: Default::default(),
    };
    let last_logged = events[2 * third - 1].ts;
    events.insert(2 * third, Event::new("fixture", "back", last_logged, goal));
    let (flushed, logged) = (&events[..third], &events[third..=2 * third]);

    let kept = tempfile::tempdir().unwrap();
    let keeps_all = open(kept.path(), EngineConfig::default()).await;
    let want_duplicates = write_each(&keeps_all, &events).await;
    assert_eq!(
        want_duplicates, 3,
        "the fixture's repeat and tx_1 twice again"
    );
    let want = everything(&keeps_all, &events).await;

    let evicting = tempfile::tempdir().unwrap();
    let mut duplicates;
    {
        let engine = open(evicting.path(), keep_none()).await;
        duplicates = write_each(&engine, flushed).await;
        // The state of these is saved with the segments ...
        engine.flush().await.unwrap();
        // ... and these are only in the log when the process stops without a flush.
        duplicates += write_each(&engine, logged).await;
    }
    let engine = open(evicting.path(), keep_none()).await;
    assert!(engine.has_pageview("fixture", "back").await.unwrap());
    duplicates += write_each(&engine, &events[2 * third + 1..]).await;
    assert_eq!(duplicates, want_duplicates);
    let got = everything(&engine, &events).await;
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w);
    }
    assert_eq!(got, want);
    engine.flush().await.unwrap();
    assert_eq!(everything(&engine, &events).await, want);

    // Rebuilt from every stored event (no saved state, as after a crash with too many
    // visitors to save at flushes): only the visitors of the last 30 minutes are loaded, the
    // others marked evicted, and the answers are the same.
    let visitors = |engine: &Engine| engine.visitor_states("fixture").unwrap();
    let loaded_before = visitors(&keeps_all);
    drop(engine);
    std::fs::remove_dir_all(evicting.path().join("saved")).unwrap();
    let engine = open(evicting.path(), keep_none()).await;
    engine.warm_ingest().await.unwrap();
    assert_eq!(engine.ingest_state_rebuilds(), 1);
    assert!(
        visitors(&engine) < loaded_before / 2,
        "{}",
        visitors(&engine)
    );
    assert_eq!(everything(&engine, &events).await, want);
}

#[tokio::test]
async fn a_bulk_load_keeps_its_visitors_until_a_flush_finds_it_over() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 3 visitors: a load may hold four times that (the fixture's 11) before it evicts.
    let room_for_three = EngineConfig {
        visitor_states_in_memory: 3,
        ..keep_none()
    };
    let engine = open(dir.path(), room_for_three).await;
    let mut events = fixture_events();
    events.retain(|e| e.website_id == "fixture");
    let visitors = {
        let mut ids: Vec<&str> = events.iter().map(|e| e.visitor_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    // Evicted midway, a visitor coming back later in the file would cost a scan each.
    engine.ingest_bulk(events.clone()).await.unwrap();
    assert_eq!(engine.visitor_states("fixture").unwrap(), visitors);
    // The flush right after the load still counts it as under way ...
    engine.flush().await.unwrap();
    assert_eq!(engine.visitor_states("fixture").unwrap(), visitors);
    // ... the next one finds it over: only visitors active in the last 30 minutes stay.
    engine.flush().await.unwrap();
    let left = engine.visitor_states("fixture").unwrap();
    assert!(left < visitors / 2, "{left} of {visitors}");
    // A caller whose every write is a bulk one is still bounded: past four times the limit,
    // a load evicts as any write does.
    let tight = tempfile::tempdir().unwrap();
    let always_bulk = open(
        tight.path(),
        EngineConfig {
            visitor_states_in_memory: 1,
            ..keep_none()
        },
    )
    .await;
    always_bulk.ingest_bulk(events.clone()).await.unwrap();
    assert!(always_bulk.visitor_states("fixture").unwrap() < visitors);
    // And what left memory comes back when needed.
    let kept = tempfile::tempdir().unwrap();
    let keeps_all = open(kept.path(), EngineConfig::default()).await;
    keeps_all.ingest_bulk(events.clone()).await.unwrap();
    assert_eq!(
        everything(&engine, &events).await,
        everything(&keeps_all, &events).await
    );
}

//! Deleting goals and payments: the documented criteria, persistence, and equality with the
//! reference model after a delete that touches segments and the hot buffer alike.

use tally_core::{Breakdown, Engine, GoalDeletion, Paging, PaymentDeletion, Query};

use crate::support::{assert_close, days, fixture_engine, fixture_events, utc};

async fn goals(e: &Engine) -> Vec<(String, u64)> {
    let b = e
        .breakdown(&Query::new("fixture"), &Breakdown::Goal, Paging::default())
        .await
        .unwrap();
    b.rows
        .into_iter()
        .map(|r| (r.values[0].clone(), r.completions))
        .collect()
}

#[tokio::test]
async fn goals_go_by_name_visitor_and_range_and_stay_gone() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;
    e.flush().await.unwrap();
    let none = GoalDeletion::default();
    assert!(
        e.delete_goals("fixture", &none)
            .await
            .unwrap_err()
            .to_string()
            .contains("datafast_visitor_id")
    );

    let by_name = GoalDeletion {
        name: Some("newsletter_signup".into()),
        ..Default::default()
    };
    assert_eq!(e.delete_goals("fixture", &by_name).await.unwrap(), 2);
    // v9's second faq_open only: visitor + range
    let one = GoalDeletion {
        visitor_id: Some("v9".into()),
        range: Some(
            tally_core::DateRange::new(utc("2025-03-12T20:22:00Z"), utc("2025-03-12T20:23:00Z"))
                .unwrap(),
        ),
        ..Default::default()
    };
    assert_eq!(e.delete_goals("fixture", &one).await.unwrap(), 1);
    assert_eq!(e.delete_goals("fixture", &one).await.unwrap(), 0);
    let want = vec![("signup".to_string(), 3), ("faq_open".to_string(), 1)];
    assert_eq!(goals(&e).await, want);
    // v3's first session was saved from bouncing by its goal; now it bounces
    assert_eq!(
        e.overview(&Query::new("fixture"))
            .await
            .unwrap()
            .bounced_sessions,
        10
    );
    drop(e);
    let reopened = Engine::open(dir.path()).await.unwrap();
    assert_eq!(goals(&reopened).await, want);
}

#[tokio::test]
async fn payments_go_by_transaction_first_and_can_be_recorded_again() {
    let dir = tempfile::tempdir().unwrap();
    let e = fixture_engine(dir.path()).await;
    // tx_3 wins over the visitor and range that would match more
    let tx = PaymentDeletion {
        transaction_id: Some("tx_3".into()),
        visitor_id: Some("v1".into()),
        range: None,
    };
    assert_eq!(e.delete_payments("fixture", &tx).await.unwrap(), 1);
    let o = e.overview(&Query::new("fixture")).await.unwrap();
    assert_close(o.revenue.new, 257.99 - 110.0);
    assert_close(o.revenue.renewal, 29.99);
    // v1's payments in 03-12 only: the renewal
    let v1 = PaymentDeletion {
        visitor_id: Some("v1".into()),
        range: Some(days("UTC", "2025-03-12", "2025-03-12")),
        ..Default::default()
    };
    assert_eq!(e.delete_payments("fixture", &v1).await.unwrap(), 1);
    assert_close(
        e.overview(&Query::new("fixture"))
            .await
            .unwrap()
            .revenue
            .renewal,
        0.0,
    );
    // the deleted transaction may be sent again
    let again: Vec<_> = fixture_events()
        .into_iter()
        .filter(|ev| matches!(&ev.kind, tally_core::EventKind::Payment(p) if p.transaction_id == "tx_3"))
        .take(1)
        .collect();
    assert_eq!(e.ingest(again).await.unwrap().accepted, 1);
    assert_close(
        e.overview(&Query::new("fixture"))
            .await
            .unwrap()
            .revenue
            .new,
        257.99,
    );
}

//! The route list answered without HTTP: goals and payments created and deleted through
//! [`tally_api::respond`], as both the server and `tally query` reach them.

use serde_json::Value;
use tally_api::{Host, NoTracker, Params, Route, respond};
use tally_core::{Engine, Event, Website};

/// A host whose tracker dropped `bot` as a bot.
struct OneBot;

impl Host for OneBot {
    fn is_bot_visitor(&self, _website: &str, visitor: &str) -> bool {
        visitor == "bot"
    }
}

#[tokio::test]
async fn goals_and_payments_go_in_and_out_through_the_route_list() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    engine
        .create_website(Website::new("site", "example.com"))
        .unwrap();
    let now: chrono::DateTime<chrono::Utc> = "2025-04-11T10:05:00Z".parse().unwrap();
    let at = "2025-04-11T10:00:00Z".parse().unwrap();
    engine
        .ingest(vec![Event::pageview("site", "v1", at, "example.com", "/")])
        .await
        .unwrap();
    let none = Params::parse("");
    let call = async |host: &dyn Host, route: Route, params: &Params, body: &str| {
        respond(&engine, host, "site", &route, params, body.as_bytes(), now).await
    };

    let goal = r#"{"datafast_visitor_id":"v1","name":"signup","metadata":{"plan":"<b>pro</b>"}}"#;
    let made: Value = serde_json::from_str(
        &call(&NoTracker, Route::CreateGoal, &none, goal)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        made["data"][0]["message"],
        "Custom event created successfully"
    );
    let unknown = r#"{"datafast_visitor_id":"nobody","name":"signup"}"#;
    let e = call(&NoTracker, Route::CreateGoal, &none, unknown)
        .await
        .unwrap_err();
    assert_eq!(e.status, 404);
    let bot = r#"{"datafast_visitor_id":"bot","name":"signup"}"#;
    let e = call(&OneBot, Route::CreateGoal, &none, bot)
        .await
        .unwrap_err();
    assert_eq!((e.status, e.message.contains("bot")), (400, true), "{e:?}");
    let e = call(&NoTracker, Route::CreateGoal, &none, "{")
        .await
        .unwrap_err();
    assert!(e.message.contains("`body`"), "{e:?}");

    let payment =
        r#"{"amount":29.99,"currency":"usd","transaction_id":"tx_1","datafast_visitor_id":"v1"}"#;
    let paid = call(&NoTracker, Route::CreatePayment, &none, payment)
        .await
        .unwrap();
    assert!(paid.contains("tx_1"), "{paid}");
    let e = call(
        &NoTracker,
        Route::CreatePayment,
        &none,
        r#"{"currency":"USD"}"#,
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("`amount`"), "{e:?}");

    let overview = Route::get("analytics/overview").unwrap();
    let o: Value = serde_json::from_str(
        &call(
            &NoTracker,
            overview,
            &Params::parse("fields=visitors,revenue"),
            "",
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(o["data"][0]["visitors"], 1);
    assert_eq!(o["data"][0]["revenue"], 29.99);

    let gone = call(
        &NoTracker,
        Route::DeleteGoals,
        &Params::parse("name=signup"),
        "",
    )
    .await
    .unwrap();
    assert!(gone.contains(r#""deletedCount":1"#), "{gone}");
    let gone = call(
        &NoTracker,
        Route::DeletePayments,
        &Params::parse("transaction_id=tx_1"),
        "",
    )
    .await
    .unwrap();
    assert!(gone.contains("Payment deleted successfully"), "{gone}");
    let e = call(
        &NoTracker,
        Route::DeletePayments,
        &Params::parse("transaction_id=tx_1"),
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(e.status, 404);
    let integrations = call(&NoTracker, Route::Integrations, &none, "")
        .await
        .unwrap();
    assert!(
        integrations.contains(r#""currency":"USD""#),
        "{integrations}"
    );
}

//! `metadata`: the documented six settings, or the `fields` a client asks for, `logo` among
//! them (integrations in the wild ask for `fields=domain,name,logo`).

use serde_json::{Value, json};
use tally_api::{Endpoint, Params, answer};

use crate::support::fixture_engine;

async fn metadata(engine: &tally_core::Engine, query: &str) -> Value {
    let body = answer(engine, "fixture", Endpoint::Metadata, &Params::parse(query))
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn fields_pick_settings_and_logo_is_null_until_set() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine(dir.path()).await;
    let all = metadata(&engine, "").await;
    let mut keys: Vec<&str> = all["data"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "currency",
            "domain",
            "kpi",
            "kpiColorScheme",
            "name",
            "timezone"
        ]
    );

    let picked = metadata(&engine, "fields=domain,name,logo").await;
    assert_eq!(
        picked["data"][0],
        json!({"domain": "example.com", "name": "example.com", "logo": null})
    );
    let mut w = engine.website("fixture").unwrap();
    w.logo = Some("https://example.com/logo.png".into());
    engine.update_website(w).unwrap();
    let picked = metadata(&engine, "fields=logo").await;
    assert_eq!(
        picked["data"][0],
        json!({"logo": "https://example.com/logo.png"})
    );

    let err = answer(
        &engine,
        "fixture",
        Endpoint::Metadata,
        &Params::parse("fields=favicon"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status, 400);
    assert!(err.message.contains("favicon"), "{}", err.message);
}

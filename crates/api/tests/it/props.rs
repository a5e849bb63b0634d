//! The parameter parser never panics, and every rejection is a 400 whose message names a
//! parameter the request actually sent.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tally_api::{Endpoint, Params, answer};

use crate::support::fixture_engine;

const KEYS: &[&str] = &[
    "startAt",
    "endAt",
    "timezone",
    "fields",
    "interval",
    "limit",
    "offset",
    "filter_country",
    "filter_page",
    "filter_referrer",
    "filter_device",
    "filter_goal",
    "filter_utm_source",
    "filter_",
    "filter_x",
    "unknown",
];
const VALUES: &[&str] = &[
    "",
    "2025-03-10",
    "2025-03-12",
    "2025-03-10T00:00:00Z",
    "2025-03-12T23:59:59Z",
    "2025-02-30",
    "99999-01-01",
    "UTC",
    "Asia/Kolkata",
    "America/New_York",
    "Nowhere/Else",
    "visitors",
    "visitors,revenue",
    "name,completions",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "0",
    "1",
    "1000",
    "1001",
    "-1",
    "18446744073709551616",
    "is:US",
    "is:United States of America,Canada",
    "is_not:mobile",
    "contains:/blog",
    "contains:",
    "is:",
    "maybe:x",
    "is:,,,",
    ":",
    "is:google.com",
    "\u{0}",
    "%",
    "é",
    "📈",
];

fn pair() -> impl Strategy<Value = (String, String)> {
    let key =
        prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => any::<String>()];
    let value = prop_oneof![4 => prop::sample::select(VALUES).prop_map(str::to_owned), 1 => any::<String>()];
    (key, value)
}

fn query_string() -> impl Strategy<Value = String> {
    prop_oneof![
        // structured pairs, encoded
        prop::collection::vec(pair(), 0..6).prop_map(|pairs| { form_urlencoded_pairs(&pairs) }),
        // raw bytes with percent escapes, possibly decoding to bad UTF-8
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|bytes| {
            bytes
                .iter()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"=&_:,".contains(b) {
                        (*b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        }),
    ]
}

fn form_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[test]
fn no_query_string_panics_and_every_rejection_names_a_sent_parameter() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(fixture_engine(dir.path()));
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let strategy = (query_string(), prop::sample::select(&Endpoint::ALL[..]));
    runner
        .run(&strategy, |(query, endpoint)| {
            let params = Params::parse(&query);
            match rt.block_on(answer(&engine, "fixture", endpoint, &params)) {
                Ok(body) => {
                    prop_assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
                }
                Err(e) => {
                    prop_assert_eq!(e.status, 400, "{} {:?}", query, e);
                    let named = params
                        .pairs()
                        .iter()
                        .any(|(k, _)| e.message.contains(&format!("`{k}`")));
                    prop_assert!(named, "{} → {}", query, e.message);
                    let envelope = serde_json::to_value(e.envelope()).unwrap();
                    prop_assert_eq!(&envelope["error"]["code"], 400);
                }
            }
            Ok(())
        })
        .unwrap();
}

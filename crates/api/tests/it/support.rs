//! The fixture engine, as the core tests build it.

use tally_core::{Engine, Website};

pub async fn fixture_engine(dir: &std::path::Path) -> Engine {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
    let text = std::fs::read_to_string(format!("{root}/events-small.ndjson")).unwrap();
    let parsed = tally_core::import::parse_ndjson(&text, Some("fixture"));
    assert!(parsed.rejected.is_empty());
    let engine = Engine::open(dir).await.unwrap();
    let mut w = Website::new("fixture", "example.com");
    w.exchange_rates.insert("EUR".into(), 1.1);
    engine.create_website(w).unwrap();
    engine
        .create_website(Website::new("other", "other.org"))
        .unwrap();
    engine.ingest(parsed.events).await.unwrap();
    engine
}

/// `text` without the white space outside strings, so a hand-formatted expected file compares
/// with compact output byte for byte (key order and number formatting included).
pub fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !ch.is_whitespace() {
            out.push(ch);
        }
    }
    out
}

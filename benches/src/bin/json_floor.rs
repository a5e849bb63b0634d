//! The floor under any NDJSON import on this machine: the import file decoded by arrow-json
//! into Arrow string columns (the fields an import reads), on one thread, nothing else. Run
//! beside `tally import` and DuckDB's `read_json` (benches/README, "Import beside DuckDB"):
//!
//! ```text
//! cargo run --release -p tally-benches --bin json_floor -- FILE.ndjson
//! ```

use std::sync::Arc;

use tally_core::arrow::datatypes::{DataType, Field, Schema};
use tally_core::arrow::json::ReaderBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: json_floor FILE.ndjson")?;
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let mut fields: Vec<Field> = [
        "type",
        "timestamp",
        "visitor_id",
        "session_id",
        "url",
        "referrer",
        "country",
        "region",
        "city",
        "browser",
        "os",
        "device",
        "name",
        "transaction_id",
        "currency",
    ]
    .into_iter()
    .map(text)
    .collect();
    fields.push(Field::new("amount", DataType::Float64, true));
    let started = std::time::Instant::now();
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let reader = ReaderBuilder::new(Arc::new(Schema::new(fields)))
        .with_batch_size(8192)
        .with_strict_mode(false)
        .build(file)?;
    let mut rows = 0;
    for batch in reader {
        rows += batch?.num_rows();
    }
    eprintln!("{rows} rows decoded in {:.2?}", started.elapsed());
    Ok(())
}

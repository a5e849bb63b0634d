//! `gen_ndjson`: writes the synthetic data set of [`tally_benches::prepare_data_dir`] as an
//! NDJSON import file (DESIGN §3), for timing `tally import` beside other tools.
//!
//! ```sh
//! cargo run --release -p tally-benches --bin gen_ndjson -- 4000000 events.ndjson
//! ```

use std::io::{BufWriter, Write};

use tally_benches::{WEBSITE, ndjson_line, slices};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(4_000_000);
    let path = args.next().unwrap_or_else(|| "events.ndjson".into());
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    for slice in slices(WEBSITE, n) {
        for e in slice {
            serde_json::to_writer(&mut out, &ndjson_line(&e))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    eprintln!("wrote {n} events to {path}");
    Ok(())
}

//! Criterion benches of `tally-core` on the synthetic data set (`tally_benches::events`).
//!
//! `cargo bench -p tally-benches` — figures and the command are kept in `benches/README.md`.
//! `TALLY_BENCH_EVENTS` overrides the data set size (default 1,000,000).

use std::time::Duration;

use chrono_tz::Tz;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tally_benches::{DAYS, WEBSITE, events, start, website};
use tally_core::import::LineParser;
use tally_core::query::time::local_days;
use tally_core::store::segment::write_segment;
use tally_core::{
    Breakdown, DateRange, Dimension, Engine, EngineConfig, Filter, FilterOp, Interval,
    PackedEvents, Paging, Query,
};

fn size() -> usize {
    std::env::var("TALLY_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    let data = events(size(), 42);
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.throughput(criterion::Throughput::Elements(data.len() as u64));
    g.bench_function("ingest_hot", |b| {
        b.iter_batched(
            || (tempfile::tempdir().unwrap(), data.clone()),
            |(dir, data)| {
                rt.block_on(async {
                    let config = EngineConfig {
                        flush_rows: usize::MAX,
                        ..EngineConfig::default()
                    };
                    let engine = Engine::open_with(dir.path(), config).await.unwrap();
                    engine.create_website(website()).unwrap();
                    engine.ingest(data).await.unwrap();
                });
                dir
            },
            BatchSize::PerIteration,
        );
    });
    g.bench_function("ingest_and_flush", |b| {
        b.iter_batched(
            || (tempfile::tempdir().unwrap(), data.clone()),
            |(dir, data)| {
                rt.block_on(async {
                    let engine = Engine::open(dir.path()).await.unwrap();
                    engine.create_website(website()).unwrap();
                    engine.ingest(data).await.unwrap();
                    engine.flush().await.unwrap();
                });
                dir
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

/// One parsing thread's work on a block of import lines: each line parsed, checked and packed
/// straight from its text (`LineParser::parse_into`, what `tally import` does), beside the
/// same lines made into `Event`s and then packed (`parse_event`, then `PackedEvents::push`),
/// and beside serde_json only checking each line (the floor under any reading of it).
fn import_lines(c: &mut Criterion) {
    let lines: Vec<String> = events(20_000, 42)
        .iter()
        .map(|e| tally_benches::ndjson_line(e).to_string())
        .collect();
    let mut g = c.benchmark_group("import_lines");
    g.throughput(criterion::Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_into", |b| {
        b.iter(|| {
            let mut parser = LineParser::default();
            let mut packed = PackedEvents::new(WEBSITE, lines.len());
            for (place, line) in lines.iter().enumerate() {
                let _ = parser.parse_into(line, WEBSITE, &mut packed, place);
            }
            packed
        })
    });
    g.bench_function("parse_event_then_push", |b| {
        b.iter(|| {
            let mut parser = LineParser::default();
            let mut packed = PackedEvents::new(WEBSITE, lines.len());
            for (place, line) in lines.iter().enumerate() {
                if let Ok(event) = parser.parse_event(line, Some(WEBSITE)) {
                    let _ = packed.push(event, place);
                }
            }
            packed
        })
    });
    g.bench_function("json_checked_only", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| serde_json::from_str::<&serde_json::value::RawValue>(l).is_ok())
                .count()
        })
    });
    g.finish();
}

/// A flush's Parquet work alone: 131,072 stored events (one flush of `tally import`) written as
/// a segment by `write_segment` (row groups encoded on two threads, then fsynced). Prints the
/// file's size once.
fn segment_write(c: &mut Criterion) {
    use tally_core::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let rows = 131_072;
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let engine = Engine::open(dir.path()).await.unwrap();
        engine.create_website(website()).unwrap();
        engine.ingest(events(rows, 42)).await.unwrap();
        engine.flush().await.unwrap();
    });
    let mut batches = Vec::new();
    for site in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        for file in std::fs::read_dir(site.unwrap().path()).unwrap() {
            let file = std::fs::File::open(file.unwrap().path()).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            batches.extend(reader.map(Result::unwrap));
        }
    }
    let schema = batches[0].schema();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("segment.parquet");
    let written = write_segment(&path, &schema, &batches).unwrap();
    eprintln!("segment of {} rows: {} bytes", written.rows, written.bytes);
    let mut g = c.benchmark_group("segment");
    g.throughput(criterion::Throughput::Elements(written.rows as u64));
    g.bench_function("write_131072_rows", |b| {
        b.iter(|| write_segment(&path, &schema, &batches).unwrap())
    });
    g.finish();
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let engine = Engine::open(dir.path()).await.unwrap();
        engine.create_website(website()).unwrap();
        engine.ingest(events(size(), 42)).await.unwrap();
        engine.flush().await.unwrap();
    });
    let all = Query::new(WEBSITE);
    let tz: Tz = "America/New_York".parse().unwrap();
    let first = start().with_timezone(&tz).date_naive();
    let range: DateRange = local_days(tz, first, first + chrono::Duration::days(DAYS - 1)).unwrap();
    let us_month = Query::new(WEBSITE)
        .with_range(
            local_days(
                tz,
                first + chrono::Duration::days(30),
                first + chrono::Duration::days(59),
            )
            .unwrap(),
        )
        .with_filter(Filter::new(Dimension::Country, FilterOp::Is, vec!["US".into()]).unwrap());

    // The same questions from resident columns and, over the resident budget, from Parquet;
    // one engine at a time (the data directory has one owner), without the answer cache so
    // that every run scans.
    let scanning = EngineConfig {
        answer_cache_bytes: 0,
        ..EngineConfig::default()
    };
    let plans_only = EngineConfig {
        resident_budget_bytes: 0,
        ..scanning.clone()
    };
    for (group, config) in [("query", scanning), ("query_parquet", plans_only)] {
        let engine = rt.block_on(Engine::open_with(dir.path(), config)).unwrap();
        rt.block_on(engine.warm()).unwrap();
        let engine = &engine;
        let mut g = c.benchmark_group(group);
        g.sample_size(20);
        g.bench_function("overview_all_time", |b| {
            b.iter(|| rt.block_on(engine.overview(&all)).unwrap())
        });
        g.bench_function("breakdown_pages_all_time", |b| {
            b.iter(|| {
                rt.block_on(engine.breakdown(&all, &Breakdown::Page, Paging::default()))
                    .unwrap()
            })
        });
        g.bench_function("timeseries_daily_90d", |b| {
            let q = all.clone().with_range(range);
            b.iter(|| rt.block_on(engine.timeseries(&q, Interval::Day)).unwrap())
        });
        g.bench_function("timeseries_daily_30d_country_us", |b| {
            b.iter(|| {
                rt.block_on(engine.timeseries(&us_month, Interval::Day))
                    .unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, ingest, import_lines, segment_write, queries);
criterion_main!(benches);

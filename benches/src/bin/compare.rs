//! `compare`: Tally beside DuckDB on the same generated events, in one run.
//!
//! Generates a data set of the chosen size with the project's generator (in one-million-event
//! slices drawing on one population of visitors), imports it into a Tally data directory, then
//! asks the four questions of the read-path issue of the engine (resident columns warmed first)
//! and of DuckDB's in-memory table loaded from the very Parquet segments Tally wrote
//! (`benches/compare/duckdb_side.py`). It checks that both give the same answers and prints
//! each median time and the ratio. Run it through `benches/compare.sh`, which installs DuckDB.
//!
//! ```sh
//! benches/compare.sh 4000000        # events; TALLY_COMPARE_RUNS=5, TALLY_COMPARE_THREADS=2
//! TALLY_GROUP_COUNTING=bitsets benches/compare.sh   # or ranges, pairs: one way of counting groups
//! TALLY_CLUSTER_VISITORS=0 benches/compare.sh         # visitors numbered as first seen
//! TALLY_COMPARE_ONLY=overview benches/compare.sh    # one question of Tally alone, for profiling
//!                                                   # (also regions, cities, browsers, referrers, campaigns)
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde_json::Value;
use tally_benches::{WEBSITE, data_dir, prepare_data_dir};
use tally_core::query::time::local_days;
use tally_core::{
    Breakdown, BreakdownResult, Dimension, Engine, EngineConfig, Filter, FilterOp, GroupCounting,
    Interval, Overview, Paging, Query, Timeseries,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn time<T>(runs: usize, mut f: impl AsyncFnMut() -> tally_core::Result<T>) -> Res<(f64, T)> {
    let mut last = f().await?; // warm-up
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        last = f().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((median(times), last))
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// The overview against DuckDB's two result sets (sessions, revenue) starting at `at`.
fn check_overview(o: &Overview, answer: &Value, at: usize) -> bool {
    let (s, r) = (&answer[at][0], &answer[at + 1][0]);
    o.visitors as f64 == num(&s[0])
        && o.sessions as f64 == num(&s[1])
        && o.bounced_sessions as f64 == num(&s[2])
        && close(o.avg_session_duration_ms * 1000.0, num(&s[3]))
        && close(o.revenue.new, num(&r[0]))
        && close(o.revenue.renewal, num(&r[1]))
        && close(o.revenue.refund, num(&r[2]))
        && o.paying_visitors as f64 == num(&r[3])
}

fn check_breakdown(b: &BreakdownResult, rows: &Value, keys: usize) -> bool {
    let Some(rows) = rows[0].as_array() else {
        return false;
    };
    rows.len() == b.rows.len()
        && rows.iter().zip(&b.rows).all(|(d, t)| {
            (0..keys).all(|i| d[i].as_str() == Some(t.values[i].as_str()))
                && num(&d[keys]) == t.visitors as f64
                && close(num(&d[keys + 1]), t.revenue)
        })
}

fn check_series(s: &Timeseries, answer: &Value) -> bool {
    let Some(buckets) = answer[0].as_array() else {
        return false;
    };
    let filled: Vec<_> = s.buckets.iter().filter(|b| b.visitors > 0).collect();
    filled.len() == buckets.len()
        && filled.iter().zip(buckets).all(|(t, d)| {
            num(&d[1]) == t.visitors as f64
                && num(&d[2]) == t.sessions as f64
                && close(num(&d[3]), t.revenue.new)
                && close(num(&d[4]), t.revenue.renewal)
        })
        && {
            let o = &answer[1][0];
            num(&o[0]) == s.totals.visitors as f64 && num(&o[1]) == s.totals.sessions as f64
        }
        && {
            let r = &answer[2][0];
            close(num(&r[0]), s.totals.revenue.new) && close(num(&r[1]), s.totals.revenue.renewal)
        }
}

#[tokio::main]
async fn main() -> Res<()> {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4_000_000usize);
    let runs = env_or("TALLY_COMPARE_RUNS", 5);
    let threads = env_or("TALLY_COMPARE_THREADS", 2);
    let python = std::env::var("TALLY_COMPARE_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = PathBuf::from(
        std::env::var("TALLY_COMPARE_DIR").unwrap_or_else(|_| "target/compare".into()),
    );
    let dir = data_dir(&root, n);
    prepare_data_dir(&dir, n).await?;

    // The scan figures: no answer cache, so every run scans every event as DuckDB does.
    let config = EngineConfig {
        target_partitions: threads,
        resident_budget_bytes: env_or("TALLY_RESIDENT_BYTES", 16 << 30),
        group_bitsets_bytes: env_or(
            "TALLY_GROUP_BITSETS_BYTES",
            EngineConfig::default().group_bitsets_bytes,
        ),
        group_counting: match std::env::var("TALLY_GROUP_COUNTING").as_deref() {
            Ok("bitsets") => GroupCounting::Bitsets,
            Ok("ranges") => GroupCounting::Ranges,
            Ok("pairs") => GroupCounting::Pairs,
            _ => GroupCounting::Auto,
        },
        resident_chunk_rows: env_or(
            "TALLY_RESIDENT_CHUNK_ROWS",
            EngineConfig::default().resident_chunk_rows,
        ),
        answer_cache_bytes: 0,
        cluster_visitors: std::env::var("TALLY_CLUSTER_VISITORS").as_deref() != Ok("0"),
        ..EngineConfig::default()
    };
    let engine = Engine::open_with(&dir, config.clone()).await?;
    let t = Instant::now();
    engine.warm().await?;
    let warm_s = t.elapsed().as_secs_f64();

    let ny: Tz = "America/New_York".parse()?;
    let day = |s: &str| s.parse::<NaiveDate>();
    let range = local_days(ny, day("2025-03-02")?, day("2025-03-31")?)?;
    let all = Query::new(WEBSITE);
    let series_q = Query::new(WEBSITE)
        .with_range(range)
        .with_timezone(ny)
        .with_filter(Filter::new(
            Dimension::Country,
            FilterOp::Is,
            vec!["US".into(), "CA".into()],
        )?)
        .with_filter(Filter::new(
            Dimension::Device,
            FilterOp::IsNot,
            vec!["mobile".into()],
        )?);
    let blog = Query::new(WEBSITE).with_filter(Filter::new(
        Dimension::Page,
        FilterOp::Contains,
        vec!["/blog".into()],
    )?);

    // The four questions, each asked of a given engine.
    let overview_of = async |e: &Engine| e.overview(&all).await;
    let countries_of = async |e: &Engine| {
        e.breakdown(&all, &Breakdown::Country, Paging::new(10, 0)?)
            .await
    };
    let series_of = async |e: &Engine| e.timeseries(&series_q, Interval::Day).await;
    let pages_of = async |e: &Engine| {
        e.breakdown(&blog, &Breakdown::Page, Paging::new(100, 0)?)
            .await
    };
    let ask = async |engine: &Engine| -> Res<_> {
        let (t1, overview) = time(runs, async || overview_of(engine).await).await?;
        let (t2, countries) = time(runs, async || countries_of(engine).await).await?;
        let (t3, series) = time(runs, async || series_of(engine).await).await?;
        let (t4, pages) = time(runs, async || pages_of(engine).await).await?;
        Ok(([t1, t2, t3, t4], (overview, countries, series, pages)))
    };
    if let Ok(only) = std::env::var("TALLY_COMPARE_ONLY") {
        // For profiling one question: ask it `runs` times, print the median, stop.
        let e = &engine;
        let t = match only.as_str() {
            "overview" => time(runs, async || overview_of(e).await).await?.0,
            "countries" => time(runs, async || countries_of(e).await).await?.0,
            "timeseries" => time(runs, async || series_of(e).await).await?.0,
            "pages" => time(runs, async || pages_of(e).await).await?.0,
            // Breakdowns with more groups than countries, to see how group counting scales.
            "regions" | "cities" | "browsers" | "referrers" | "campaigns" => {
                let by = match only.as_str() {
                    "regions" => Breakdown::Region,
                    "cities" => Breakdown::City,
                    "browsers" => Breakdown::Browser,
                    "campaigns" => Breakdown::Campaign(tally_core::CampaignField::ALL.to_vec()),
                    _ => Breakdown::Referrer,
                };
                let paging = Paging::new(10, 0)?;
                time(runs, async || e.breakdown(&all, &by, paging).await)
                    .await?
                    .0
            }
            other => return Err(format!("TALLY_COMPARE_ONLY: no question `{other}`").into()),
        };
        println!("tally {only}: {t:.2} ms");
        return Ok(());
    }
    let (tally, (overview, countries, series, pages)) = ask(&engine).await?;
    let resident_mib = engine.resident_bytes() as f64 / (1 << 20) as f64;
    drop(engine);
    // The same questions asked again with the answer cache on (as `tally serve` runs): the
    // first ask scans and keeps each question's partial answer, the timed ones merge it.
    let engine = Engine::open_with(
        &dir,
        EngineConfig {
            answer_cache_bytes: 128 << 20,
            ..config
        },
    )
    .await?;
    engine.warm().await?;
    let (again, answers) = ask(&engine).await?;
    let cache_mib = engine.answer_cache_bytes() as f64 / (1 << 20) as f64;
    drop(engine);
    let tally_rss = tally_benches::peak_rss_mib();
    let [t1, t2, t3, t4] = tally;
    let same_again =
        format!("{:?}", answers) == format!("{:?}", (&overview, &countries, &series, &pages));
    if std::env::var_os("TALLY_COMPARE_TALLY_ONLY").is_some() {
        // For profiling Tally alone.
        println!(
            "tally: {t1:.2} / {t2:.2} / {t3:.2} / {t4:.2} ms; asked again {again:.3?} ms; \
             {resident_mib:.0} MiB resident, peak RSS {tally_rss:.0} MiB"
        );
        return Ok(());
    }

    let glob = dir.join("segments").join(WEBSITE).join("*.parquet");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/duckdb_side.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(glob.to_string_lossy().as_ref())
        .arg(range.start.timestamp_micros().to_string())
        .arg(range.end.timestamp_micros().to_string())
        .arg(runs.to_string())
        .arg(threads.to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "duckdb side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let duck: Value = serde_json::from_slice(&out.stdout)?;
    let q = &duck["questions"];
    let names = [
        "overview, all time",
        "countries, all time, top 10",
        "timeseries, 30 days by day (New York), country is US,CA, device is_not mobile",
        "pages, filter_page=contains:/blog",
    ];
    let agree = [
        check_overview(&overview, &q[names[0]]["answer"], 0),
        check_breakdown(&countries, &q[names[1]]["answer"], 1),
        check_series(&series, &q[names[2]]["answer"]),
        check_breakdown(&pages, &q[names[3]]["answer"], 2),
    ];

    println!(
        "{n} events ({} rows in DuckDB), {threads} threads, median of {runs} hot runs",
        duck["rows"]
    );
    println!(
        "tally: resident columns warmed in {warm_s:.2} s, {resident_mib:.0} MiB resident, peak RSS {tally_rss:.0} MiB; duckdb: table loaded in {:.2} s",
        num(&duck["load_s"])
    );
    println!(
        "| question | tally (scan) | DuckDB in-memory | DuckDB / tally | same answer | tally asked again (cached part, {cache_mib:.1} MiB in all) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (i, name) in names.iter().enumerate() {
        let d = num(&q[*name]["median_ms"]);
        println!(
            "| {name} | {:.2} ms | {d:.1} ms | {:.1}x | {} | {:.3} ms |",
            tally[i],
            d / tally[i],
            if agree[i] { "yes" } else { "NO" },
            again[i],
        );
    }
    if !same_again {
        eprintln!("answers from the cache differ from the scans");
        std::process::exit(1);
    }
    if agree.contains(&false) {
        eprintln!("tally and duckdb disagree; duckdb said: {}", q);
        std::process::exit(1);
    }
    Ok(())
}

//! `tally`: the operator's command line (DESIGN §7). Every command prints JSON on stdout and
//! human messages on stderr.

// mimalloc rather than the system allocator: with glibc's, the realtime map over a few thousand
// recent events took 4x longer once a million events had passed through the process
// (benches/README.md, "Realtime").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use tally_collect::{Collector, GeoDb};
use tally_core::{Engine, Website};
use tally_server::admin;
use tally_server::app::{AppState, Limits, router};
use tally_server::import_file::{BLOCK_BYTES, Parsed, read_file, read_file_sorted};
use tally_server::keys::{KeyStore, Role, Scope};

/// Where `tally serve` remembers bot visitors across restarts, in the data directory.
const BOT_LOG_FILE: &str = "bot-visitors.log";

#[derive(Parser)]
#[command(
    name = "tally",
    version,
    about = "Embedded web analytics with the DataFast v1 API"
)]
struct Cli {
    /// The data directory.
    #[arg(
        long,
        global = true,
        default_value = "./tally-data",
        env = "TALLY_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// Memory for resident columns, in MiB (`serve` only): the decoded events that overview,
    /// breakdowns and time series are answered from (about 50 bytes an event). A website that
    /// does not fit is answered from its Parquet segments, more slowly.
    #[arg(long, global = true, default_value_t = 4096, env = "TALLY_RESIDENT_MB")]
    resident_mb: usize,
    /// Memory for partial answers of recent questions, in MiB (`serve` only): a question asked
    /// again scans only the events that arrived since. 0 turns it off.
    #[arg(
        long,
        global = true,
        default_value_t = 128,
        env = "TALLY_ANSWER_CACHE_MB"
    )]
    answer_cache_mb: usize,
    /// Memory the DataFusion plans (Parquet scans, deletes) may hold at once, in MiB; a query
    /// past it is answered 503.
    #[arg(
        long,
        global = true,
        default_value_t = 1024,
        env = "TALLY_QUERY_MEMORY_MB"
    )]
    query_memory_mb: usize,
    /// Visitors per website whose ingest state (current session, visit count, profile: about
    /// 250 bytes each) stays in memory. Past it, those idle longest leave memory and are read
    /// back from storage when they come back.
    #[arg(
        long,
        global = true,
        default_value_t = 1_000_000,
        env = "TALLY_VISITOR_STATES"
    )]
    visitor_states: usize,
    /// Transaction ids per website kept in memory to refuse repeated payments. Past it, a
    /// payment whose id may repeat an older one is looked up in storage.
    #[arg(
        long,
        global = true,
        default_value_t = 1_000_000,
        env = "TALLY_TRANSACTION_IDS"
    )]
    transaction_ids: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API over HTTP.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Create (once) a demo website with a few weeks of traffic and print a key for it.
        #[arg(long)]
        demo: bool,
        /// Requests a minute allowed per key.
        #[arg(long, default_value_t = 600)]
        rate_limit: u32,
        /// Tracker events (`POST /api/events`) a minute per client address.
        #[arg(long, default_value_t = 1_200)]
        tracker_rate_limit: u32,
        /// Tracker events a minute per website.
        #[arg(long, default_value_t = 120_000)]
        tracker_site_rate_limit: u32,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = 64 * 1024)]
        max_body: usize,
        /// Seconds a request may take before it is answered 503.
        #[arg(long, default_value_t = 30)]
        request_timeout: u64,
        /// Requests served at once; more are answered 503 with `Retry-After` at once.
        #[arg(long, default_value_t = 512)]
        max_in_flight: usize,
        /// Failed authentications a minute per client address; more are answered 429.
        #[arg(long, default_value_t = 60)]
        auth_failure_limit: u32,
        /// Seconds between automatic flushes of ingested events to Parquet.
        #[arg(long, default_value_t = 30)]
        flush_every: u64,
        /// MaxMind DB file (GeoLite2/GeoIP2 City or Country) for visitor locations; without
        /// one, locations of tracker events are unknown.
        #[arg(long, value_name = "FILE")]
        geoip: Option<PathBuf>,
        /// Take tracker clients' addresses from `X-Forwarded-For`, behind this many reverse
        /// proxies that each append the address they saw (`--trust-proxy` alone: one). The
        /// entries a client writes itself are never used.
        #[arg(long, value_name = "PROXIES", num_args = 0..=1, default_value_t = 0, default_missing_value = "1")]
        trust_proxy: usize,
    },
    /// Manage websites.
    Website {
        #[command(subcommand)]
        action: WebsiteAction,
    },
    /// Manage account tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Import NDJSON events (DESIGN §3) into a website.
    Import {
        /// The website.
        #[arg(long)]
        website: String,
        /// The file.
        file: PathBuf,
        /// Rows gathered before each flush to a segment: more holds more memory and writes
        /// fewer, larger segments.
        #[arg(long, default_value_t = IMPORT_FLUSH_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
        flush_rows: u64,
        /// Read the file in time order, for a file not sorted by timestamp (sessions are
        /// assigned in the order events are read): a first pass reads each line's time,
        /// keeping 32 bytes a line.
        #[arg(long)]
        sort: bool,
    },
    /// Answer a read route of the API, as the HTTP route would (the same `tally-api` route list).
    Query {
        /// `overview`, `timeseries`, `pages`, …, `realtime`, `realtime/map`, `visitors/ID`,
        /// `integrations`
        endpoint: String,
        /// The website.
        #[arg(long)]
        website: String,
        /// Query parameters, `key=value`.
        #[arg(long = "param")]
        params: Vec<String>,
    },
}

#[derive(Subcommand)]
enum WebsiteAction {
    /// Create a website and its first `df_` key.
    Create {
        /// The site's domain.
        #[arg(long)]
        domain: String,
        /// Display name (default: the domain).
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Currency code.
        #[arg(long, default_value = "USD")]
        currency: String,
    },
    /// Change a website's settings.
    Set {
        /// The website.
        #[arg(long)]
        website: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone.
        #[arg(long)]
        timezone: Option<String>,
        /// Currency code.
        #[arg(long)]
        currency: Option<String>,
        /// KPI goal name.
        #[arg(long)]
        kpi: Option<String>,
        /// KPI colour scheme.
        #[arg(long)]
        kpi_color_scheme: Option<String>,
        /// Whether renewals count in the time series conversion rate.
        #[arg(long)]
        include_renewal_revenue: Option<bool>,
        /// An exchange rate, `CODE=RATE` (units of the site currency per unit of CODE).
        #[arg(long = "rate")]
        rates: Vec<String>,
        /// Payment providers connected (replaces the list), comma separated.
        #[arg(long, value_delimiter = ',')]
        connected: Option<Vec<String>>,
        /// Other hostnames the tracker may send from (replaces the list), comma separated.
        #[arg(long, value_delimiter = ',')]
        allowed_hostnames: Option<Vec<String>>,
        /// The site's logo URL (shown by `metadata?fields=…,logo`).
        #[arg(long)]
        logo: Option<String>,
    },
    /// Print a website's settings.
    Show {
        /// The website.
        #[arg(long)]
        website: String,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a `dft_` token.
    Create {
        /// Websites, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        website: Vec<String>,
        /// Scopes (analytics:read, settings:read, events:write), comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Role on those websites.
        #[arg(long, default_value = "member")]
        role: String,
    },
}

fn new_website_id() -> anyhow::Result<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(b))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("creating {}", cli.data_dir.display()))?;
    // One-shot commands answer from Parquet: decoding every event first would cost more than
    // the one answer it speeds up.
    let (resident_mb, answer_cache_mb) = match cli.command {
        Command::Serve { .. } => (cli.resident_mb, cli.answer_cache_mb),
        _ => (0, 0),
    };
    let config = tally_core::EngineConfig {
        resident_budget_bytes: resident_mb.saturating_mul(1 << 20),
        answer_cache_bytes: answer_cache_mb.saturating_mul(1 << 20),
        query_memory_bytes: cli.query_memory_mb.saturating_mul(1 << 20),
        visitor_states_in_memory: cli.visitor_states,
        transaction_ids_in_memory: cli.transaction_ids,
        // An import saves the state once, after its last flush; nothing it wrote is
        // acknowledged before that.
        flush_rows: match cli.command {
            // The import starts its own flushes every `--flush-rows`, beside its next batches;
            // the engine flushes in the write itself only if those fall behind.
            Command::Import { flush_rows, .. } => {
                2 * usize::try_from(flush_rows).unwrap_or(usize::MAX / 2)
            }
            _ => tally_core::EngineConfig::default().flush_rows,
        },
        checkpoint_max_pause: match cli.command {
            Command::Import { .. } => std::time::Duration::ZERO,
            _ => tally_core::EngineConfig::default().checkpoint_max_pause,
        },
        ..tally_core::EngineConfig::default()
    };
    let engine = match Engine::open_with(&cli.data_dir, config).await {
        Ok(engine) => Arc::new(engine),
        Err(busy @ tally_core::Error::Busy { .. }) => {
            if matches!(cli.command, Command::Serve { .. }) {
                return Err(busy.into());
            }
            // A running `tally serve` owns the directory: it runs the command for us.
            let request = admin::Request {
                args: std::env::args_os()
                    .skip(1)
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                cwd: std::env::current_dir()?,
            };
            let socket = cli.data_dir.join(admin::SOCKET);
            return match admin::forward(&socket, &request).await? {
                Some(()) => Ok(()),
                None => Err(busy.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let keys = Arc::new(KeyStore::open(&cli.data_dir)?);
    match cli.command {
        Command::Serve {
            addr,
            demo,
            rate_limit,
            tracker_rate_limit,
            tracker_site_rate_limit,
            max_body,
            request_timeout,
            max_in_flight,
            auth_failure_limit,
            flush_every,
            geoip,
            trust_proxy,
        } => {
            let limits = Limits {
                requests_per_minute: rate_limit,
                tracker_per_address: tracker_rate_limit,
                tracker_per_website: tracker_site_rate_limit,
                max_body_bytes: max_body,
                request_timeout: Duration::from_secs(request_timeout.max(1)),
                max_in_flight,
                auth_failures_per_minute: auth_failure_limit,
            };
            let geo = match &geoip {
                Some(path) => Some(
                    GeoDb::open(path)
                        .with_context(|| format!("opening GeoIP database {}", path.display()))?,
                ),
                None => None,
            };
            let collector = Collector::new(geo, &keys.derive_key("cookieless-visitor-ids"))?
                .with_bot_log(&engine.dir().join(BOT_LOG_FILE))?;
            let mut state = AppState::new(Arc::clone(&engine), keys, limits, Arc::new(collector));
            state.trusted_proxies = trust_proxy;
            serve(engine, state, &addr, demo, flush_every).await
        }
        command => {
            let cwd = std::env::current_dir()?;
            run(command, &engine, &keys, &admin::Output::Terminal, &cwd).await
        }
    }
}

/// Runs a command that came over the admin channel, on this server's engine and keys.
async fn run_remote(
    request: admin::Request,
    engine: Arc<Engine>,
    keys: Arc<KeyStore>,
    out: admin::Output,
) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("tally".to_owned()).chain(request.args))
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    if matches!(cli.command, Command::Serve { .. }) {
        bail!("this data directory is already being served");
    }
    run(cli.command, &engine, &keys, &out, &request.cwd).await
}

/// Runs every command but `serve`, writing to `out`; file names are relative to `cwd`.
async fn run(
    command: Command,
    engine: &Arc<Engine>,
    keys: &KeyStore,
    out: &admin::Output,
    cwd: &Path,
) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => bail!("`serve` is not run this way"),
        Command::Website { action } => {
            let answer = website(engine, keys, action)?;
            out.stdout(answer.to_string()).await;
            Ok(())
        }
        Command::Token {
            action:
                TokenAction::Create {
                    website,
                    scopes,
                    role,
                },
        } => {
            for w in &website {
                engine.website(w)?;
            }
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::from_name(s).with_context(|| {
                        format!("unknown scope `{s}` (analytics:read, settings:read, events:write)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let role = match role.as_str() {
                "owner" => Role::Owner,
                "member" => Role::Member,
                other => bail!("unknown role `{other}` (owner, member)"),
            };
            let token = keys.create_token(&website, &scopes, role)?;
            out.stdout(json!({ "token": token }).to_string()).await;
            Ok(())
        }
        Command::Import {
            website,
            file,
            flush_rows,
            sort,
        } => {
            let flush_rows = usize::try_from(flush_rows).unwrap_or(usize::MAX);
            import(engine, &website, &cwd.join(file), flush_rows, sort, out).await
        }
        Command::Query {
            endpoint,
            website,
            params,
        } => {
            let pairs = params
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("`{p}` is not key=value"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let params = tally_api::Params::from_pairs(pairs);
            // `overview`, `realtime/map`, `visitors/ID`, `integrations`: the API's paths below
            // `/api/v1/`, with `analytics/` and `admin/` optional.
            let path = endpoint.trim_matches('/');
            let route = [
                path.to_owned(),
                format!("analytics/{path}"),
                format!("admin/{path}"),
            ]
            .iter()
            .find_map(|p| tally_api::Route::get(p))
            .with_context(|| format!("unknown endpoint `{endpoint}`"))?;
            let answer = tally_api::respond(
                engine,
                &tally_api::NoTracker,
                &website,
                &route,
                &params,
                &[],
                chrono::Utc::now(),
            )
            .await;
            match answer {
                Ok(body) => out.stdout(body).await,
                Err(e) => {
                    out.stdout(serde_json::to_string(&e.envelope())?).await;
                    bail!("{}", e.message);
                }
            }
            Ok(())
        }
    }
}

/// Runs a `website` action; returns what to print.
fn website(
    engine: &Engine,
    keys: &KeyStore,
    action: WebsiteAction,
) -> anyhow::Result<serde_json::Value> {
    Ok(match action {
        WebsiteAction::Create {
            domain,
            name,
            timezone,
            currency,
        } => {
            let mut w = Website::new(new_website_id()?, domain);
            if let Some(n) = name {
                w.name = n;
            }
            w.timezone = timezone;
            w.currency = currency.to_ascii_uppercase();
            engine.create_website(w.clone())?;
            json!({ "websiteId": w.id, "apiKey": keys.create_website_key(&w.id)? })
        }
        WebsiteAction::Set {
            website,
            name,
            timezone,
            currency,
            kpi,
            kpi_color_scheme,
            include_renewal_revenue,
            rates,
            connected,
            allowed_hostnames,
            logo,
        } => {
            let mut w = engine.website(&website)?;
            if let Some(logo) = logo {
                w.logo = Some(logo).filter(|l| !l.is_empty());
            }
            w.name = name.unwrap_or(w.name);
            w.timezone = timezone.unwrap_or(w.timezone);
            w.currency = currency
                .map(|c| c.to_ascii_uppercase())
                .unwrap_or(w.currency);
            w.kpi = kpi.or(w.kpi);
            w.kpi_color_scheme = kpi_color_scheme.unwrap_or(w.kpi_color_scheme);
            w.include_renewal_revenue =
                include_renewal_revenue.unwrap_or(w.include_renewal_revenue);
            for r in rates {
                let (code, rate) = r
                    .split_once('=')
                    .with_context(|| format!("`{r}` is not CODE=RATE"))?;
                w.exchange_rates.insert(
                    code.to_ascii_uppercase(),
                    rate.parse()
                        .with_context(|| format!("`{rate}` is not a number"))?,
                );
            }
            if let Some(h) = allowed_hostnames {
                w.allowed_hostnames = h
                    .into_iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect();
            }
            if let Some(c) = connected {
                w.connected_providers = c;
            }
            engine.update_website(w.clone())?;
            serde_json::to_value(&w)?
        }
        WebsiteAction::Show { website } => serde_json::to_value(engine.website(&website)?)?,
    })
}

async fn import(
    engine: &Arc<Engine>,
    website: &str,
    file: &Path,
    flush_rows: usize,
    sort: bool,
    out: &admin::Output,
) -> anyhow::Result<()> {
    engine.website(website)?;
    without_huge_pages();
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if out.is_terminal() {
        // A sorted read goes over the file twice.
        indicatif::ProgressBar::new(if sort { 2 * size } else { size })
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Threads read and parse the next batches while the engine stores this one; a few batches
    // in flight bound the memory whatever the file's size.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let parser = {
        let (website, bar) = (website.to_owned(), bar.clone());
        std::thread::spawn(move || {
            let progress = |n| bar.inc(n);
            let send = |p| tx.blocking_send(p).is_ok();
            if sort {
                read_file_sorted(&f, &website, BLOCK_BYTES, progress, send)
            } else {
                read_file(f, &website, BLOCK_BYTES, progress, send)
            }
        })
    };
    let (mut imported, mut rejected, mut duplicates) = (0usize, 0usize, 0usize);
    let (mut flushing, mut unflushed) = (BackgroundFlush::default(), 0usize);
    let mut order = ReadOrder::default();
    while let Some(parsed) = rx.recv().await {
        match parsed {
            Parsed::Batch(lines, events) => {
                if order.read(&events) {
                    let note = "this file is not in time order (an event more than 30 minutes \
                                earlier than one read before it): its sessions may come out \
                                wrong, and a file far out of order imports slowly; stop and \
                                import it with --sort (into a new website)";
                    out.stderr(&bar, note).await;
                }
                let counts = ingest_batch(engine, &lines, events, &bar, out).await?;
                imported += counts.imported;
                rejected += counts.rejected;
                duplicates += counts.duplicates;
                unflushed += counts.imported;
                if unflushed >= flush_rows {
                    flushing.start(engine).await?;
                    unflushed = 0;
                }
            }
            Parsed::Rejected(why) => {
                rejected += 1;
                out.stderr(&bar, why).await;
            }
        }
    }
    parser
        .join()
        .map_err(|_| anyhow::anyhow!("the import's parsing thread panicked"))?
        .with_context(|| format!("reading {}", file.display()))?;
    flushing.finish().await?;
    engine.flush().await?;
    engine.save_ingest_states().await?;
    // Every flush and query of the import is done: the segments its compactions joined need
    // not wait out the grace for readers.
    let left = engine.remove_replaced_segments();
    if left > 0 {
        tracing::warn!(
            "{left} replaced segment files could not be removed; the next start removes them"
        );
    }
    bar.finish_and_clear();
    if duplicates > 0 {
        let note =
            format!("{duplicates} payments repeated a stored transaction id and were skipped");
        out.stderr(&bar, note).await;
    }
    if order.out_of_order > 0 {
        let note = format!(
            "{} events were more than 30 minutes earlier than an event read before them: \
             sessions are assigned in the order events are read (sorted only within each {} KiB \
             block), so theirs may be split or joined wrongly; import such a file with \
             --sort (into a new website)",
            order.out_of_order,
            BLOCK_BYTES / 1024
        );
        out.stderr(&bar, note).await;
    }
    let report = json!({
        "imported": imported,
        "rejected": rejected,
        "duplicates": duplicates,
        "out_of_order": order.out_of_order,
    });
    out.stdout(report.to_string()).await;
    std::io::stdout().flush()?;
    Ok(())
}

/// Whether an import's events come in time order. Each batch is sorted before its sessions are
/// assigned, but a batch is assigned before the next is read: an event earlier than one of an
/// earlier batch is assigned after it. One earlier by more than the session timeout may then
/// land in the wrong session; the generated data set has events up to 15 minutes late, which
/// do not count.
#[derive(Default)]
struct ReadOrder {
    /// The latest event of the batches read, µs since the epoch.
    latest_ts_us: Option<i64>,
    /// Events more than the session timeout earlier than an event of an earlier batch.
    out_of_order: usize,
}

impl ReadOrder {
    /// Counts the events of the next batch; whether they are the first out of order.
    fn read(&mut self, batch: &tally_core::PackedEvents) -> bool {
        let before = self.out_of_order;
        if let Some(latest) = self.latest_ts_us {
            let timeout = tally_core::session::SESSION_TIMEOUT_US;
            self.out_of_order += batch.count_before(latest.saturating_sub(timeout));
        }
        self.latest_ts_us = self.latest_ts_us.max(batch.latest_ts_us());
        before == 0 && self.out_of_order > 0
    }
}

/// Rows an import gathers before each flush to a segment, unless `--flush-rows` says. The
/// rows wait as Arrow batches with every session attribute written out, several hundred bytes
/// each, so the buffer is most of an import's memory: on 4M events, 500Ki rows (the server's
/// flush size) peaked at 982 MB RSS, 128Ki at 486 MB, in the same time; with each flush
/// beside the next batches (two flushes' rows held), 474–515 MiB (benches/README.md).
/// Compaction joins the smaller segments by copying.
const IMPORT_FLUSH_ROWS: u64 = 128 * 1024;

/// The flush an import runs beside its next batches: the engine's thread stores them while
/// the segment is written, instead of waiting for it (the writing uses both cores only part
/// of the time). At most one runs at a time, so at most two flushes' rows are held.
#[derive(Default)]
struct BackgroundFlush(
    Option<tokio::task::JoinHandle<tally_core::Result<tally_core::FlushReport>>>,
);

impl BackgroundFlush {
    /// Waits for the flush running, if any, then starts the next.
    async fn start(&mut self, engine: &Arc<Engine>) -> anyhow::Result<()> {
        self.finish().await?;
        let engine = Arc::clone(engine);
        self.0 = Some(tokio::spawn(async move { engine.flush().await }));
        Ok(())
    }

    /// Waits for the flush running, if any; its error is the import's.
    async fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(flush) = self.0.take() {
            flush.await.context("the import's flush panicked")??;
        }
        Ok(())
    }
}

/// Turns off transparent huge pages for this process. An import allocates and frees batch
/// buffers continually; the allocator hands freed memory back to the system and faults it in
/// again, and with huge pages (the default on many Linux systems) each fault zeroes 2 MiB.
/// Measured on 1M events: about half the system time, 6-8 % less wall time
/// (benches/README.md). Only a speed-up, so a refusal is ignored.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

async fn ingest_batch(
    engine: &Engine,
    lines: &[usize],
    events: tally_core::PackedEvents,
    bar: &indicatif::ProgressBar,
    out: &admin::Output,
) -> anyhow::Result<BatchCounts> {
    // Acknowledged only after the final flush: the rows need not go through the log.
    let report = engine.ingest_packed(events).await?;
    for (i, e) in &report.rejected {
        out.stderr(bar, format!("line {}: {e}", lines[*i])).await;
    }
    Ok(BatchCounts {
        imported: report.accepted,
        rejected: report.rejected.len(),
        duplicates: report.duplicates,
    })
}

/// What became of a batch's lines.
struct BatchCounts {
    imported: usize,
    rejected: usize,
    /// Payments whose transaction id was already stored: skipped, reported once at the end.
    duplicates: usize,
}

async fn serve(
    engine: Arc<Engine>,
    state: AppState,
    addr: &str,
    demo: bool,
    flush_every: u64,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    if demo {
        let key = demo_website(&engine, &state.keys).await?;
        eprintln!("Demo website `demo` is ready. Its API key: {key}");
        eprintln!(
            "Dashboard (signed in by the link; the key stays in the browser tab):\n  http://{local}/#key={key}\nOr the API:\n  curl -H 'Authorization: Bearer {key}' 'http://{local}/api/v1/analytics/overview'"
        );
    }
    // Other `tally` commands on this data directory run here, through the admin socket.
    let socket = engine.dir().join(admin::SOCKET);
    let admin_listener = admin::bind(&socket)?;
    let admin_channel = {
        let (engine, keys) = (Arc::clone(&engine), Arc::clone(&state.keys));
        tokio::spawn(async move {
            let run = move |request, out| {
                run_remote(request, Arc::clone(&engine), Arc::clone(&keys), out)
            };
            if let Err(e) = admin::serve(admin_listener, run).await {
                tracing::error!(error = %e, "admin channel stopped; other tally commands cannot reach this server");
            }
        })
    };
    // Rebuild what writes need and decode the websites' segments into resident columns now,
    // rather than on the first write or query.
    let warming = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            // Writes first: a tracker event waits for its website's ingest state.
            let t = std::time::Instant::now();
            match engine.warm_ingest().await {
                Ok(()) => tracing::info!(
                    seconds = t.elapsed().as_secs_f64(),
                    "ingest state and conversion model ready"
                ),
                Err(e) => tracing::error!(error = %e, "rebuilding ingest state failed"),
            }
            let t = std::time::Instant::now();
            match engine.warm().await {
                Ok(()) => tracing::info!(
                    seconds = t.elapsed().as_secs_f64(),
                    mib = engine.resident_bytes() >> 20,
                    "resident columns ready"
                ),
                Err(e) => tracing::error!(error = %e, "warming resident columns failed"),
            }
        })
    };
    let flusher = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            // The first flush one period after start, not at once: rows replayed from the log
            // are durable already, and start-up is busy reading the data back.
            let period = Duration::from_secs(flush_every.max(1));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                if let Err(e) = engine.flush().await {
                    tracing::error!(error = %e, "periodic flush failed");
                }
            }
        })
    };
    // Ctrl-C or SIGTERM: stop accepting, finish requests, flush.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = std::sync::Mutex::new(Some(stop_tx));
    ctrlc::set_handler(move || {
        if let Some(tx) = stop_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    })?;
    tracing::info!("listening on http://{local}");
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await?;
    flusher.abort();
    warming.abort();
    admin_channel.abort();
    let _ = std::fs::remove_file(&socket);
    engine.flush().await?;
    // The next start reads the ingest state back instead of rebuilding it from every event.
    let saved = engine.save_ingest_states().await?;
    tracing::info!(
        websites = saved,
        "stopped; events flushed, ingest state saved"
    );
    Ok(())
}

/// Creates the demo website with four weeks of traffic up to now (once), and a fresh key.
async fn demo_website(engine: &Engine, keys: &KeyStore) -> anyhow::Result<String> {
    if engine.website("demo").is_err() {
        let mut w = Website::new("demo", "demo.example.com");
        w.name = "Tally demo".into();
        w.exchange_rates.insert("EUR".into(), 1.1);
        engine.create_website(w)?;
        let days = 28;
        let from = chrono::Utc::now() - chrono::Duration::days(days);
        let events = tally_core::synthetic::events_between("demo", from, days, 60_000, 7);
        engine.ingest(events).await?;
        engine.flush().await?;
    }
    Ok(keys.create_website_key("demo")?)
}

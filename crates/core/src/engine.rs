//! [`Engine`]: the public face of `tally-core`.
//!
//! An engine owns one data directory. It holds many websites; ingest validates events, assigns
//! sessions and appends them to the website's hot buffer; `flush` writes the buffer to Parquet
//! segments; queries take a snapshot (hot batches plus the segments that can match the range)
//! and run DataFusion plans over it, so a query never sees half of a flush.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::TimeDelta;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use crate::checkpoint::Checkpoints;
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, ValidEvents};
use crate::ingest::{IngestState, Outcome, enrich, restore, restore_onto};
use crate::packed::PackedEvents;
use crate::query::plan::Scope;
use crate::query::result::{
    BreakdownResult, Bucket, Overview, SeriesTotals, Timeseries, conversion_rate,
};
use crate::query::spec::{Breakdown, DateRange, Interval, Paging, Query};
use crate::query::time::{bucket_starts, effective_interval};
use crate::resident::{GroupCounting, ResidentStore};
use crate::schema::{StoredEvent, events_schema, to_batch};
use crate::session::EventKey;
use crate::state_encoding::encode_timed;
use crate::store::buffer::{HotBuffer, SEAL_ROWS};
use crate::store::catalog::SegmentMeta;
use crate::store::table::EventsTable;
use crate::store::wal::{self, Record};
use crate::store::{Saved, Store};
use crate::website::Website;

/// Most rows in one write-ahead log record.
const LOG_RECORD_ROWS: usize = 64 * 1024;

/// Tuning knobs of an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A website's hot buffer is flushed to a segment once it holds this many rows.
    pub flush_rows: usize,
    /// DataFusion target partitions (parallelism of a query).
    pub target_partitions: usize,
    /// Memory for resident columns (decoded events held for fast answers), in bytes. A website
    /// that does not fit is answered from its Parquet segments; 0 turns resident answers off.
    pub resident_budget_bytes: usize,
    /// Memory one breakdown or time series may use for per-group visitor and session bitsets
    /// (fast for few groups); past it, groups are counted by sorting `(group, visitor)` pairs.
    pub group_bitsets_bytes: usize,
    /// How groups are deduplicated; [`GroupCounting::Auto`] unless a test or a measurement
    /// needs one way.
    pub group_counting: GroupCounting,
    /// Most rows of one resident chunk decoded from a segment (a large segment gives several):
    /// the overview gathers each session a chunk starts in a 24-byte slot, so that chunks of
    /// this size keep the slots within the processor's cache. Tests set it small to check
    /// sessions that continue across chunks.
    pub resident_chunk_rows: usize,
    /// Whether a website's visitors are numbered by country when its columns are first
    /// loaded, so that per-country visitor bits lie together (see `resident::cluster`). On
    /// unless a measurement compares.
    pub cluster_visitors: bool,
    /// Memory for partial answers of recent questions over resident columns, so that asking
    /// again scans only the rows ingested since (0 turns it off).
    pub answer_cache_bytes: usize,
    /// Memory the DataFusion plans (Parquet scans, deletes, websites over the resident budget)
    /// may hold at once, across queries.
    pub query_memory_bytes: usize,
    /// Age past which the conversion model's statistics (realtime map, visitor profiles) are
    /// recounted, in the background.
    pub conversion_model_ttl: std::time::Duration,
    /// Visitors per website whose session attributes (about half a KiB each) ingest keeps in
    /// memory. Past it, those of visitors idle for longer than a session are dropped, and read
    /// back from storage when a goal or payment joins such a visitor's old session.
    pub session_attrs_in_memory: usize,
    /// Visitors per website whose state (current session, visit count, profile: about 250
    /// bytes each) ingest keeps in memory. Past it, the states of visitors idle for longer than
    /// a session are evicted (their ids kept in a Bloom filter, about 1.2 bytes each), and read
    /// back from storage when an event of theirs comes.
    pub visitor_states_in_memory: usize,
    /// Transaction ids per website that ingest keeps in memory to refuse repeated payments.
    /// Past it, they move to a Bloom filter, and a payment whose id it may hold is looked up in
    /// storage.
    pub transaction_ids_in_memory: usize,
    /// The longest a flush may make writes wait while it encodes a website's ingest state to
    /// save it with the data directory (estimated from the website's visitors, about 0.2 µs
    /// each), so that a restart after a crash reads the state back instead of rebuilding it
    /// from every stored event. Larger states are saved at a clean stop only; zero turns the
    /// saving at flushes off. See `crate::checkpoint`.
    pub checkpoint_max_pause: std::time::Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            flush_rows: 500_000,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            resident_budget_bytes: crate::resident::DEFAULT_BUDGET_BYTES,
            group_bitsets_bytes: 64 << 20,
            group_counting: GroupCounting::Auto,
            resident_chunk_rows: crate::resident::DEFAULT_CHUNK_ROWS,
            cluster_visitors: true,
            answer_cache_bytes: 128 << 20,
            query_memory_bytes: 1 << 30,
            conversion_model_ttl: crate::live::MODEL_TTL,
            session_attrs_in_memory: 100_000,
            visitor_states_in_memory: 1_000_000,
            transaction_ids_in_memory: 1_000_000,
            checkpoint_max_pause: std::time::Duration::from_millis(250),
        }
    }
}

/// When an ingested row is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// In the write-ahead log before the call returns.
    Logged,
    /// In a segment once a flush has written it.
    AtFlush,
}

/// What [`Engine::ingest`] did.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// Events stored.
    pub accepted: usize,
    /// Payments ignored because their transaction id was already stored.
    pub duplicates: usize,
    /// Events refused, by their index in the input, with the reason.
    pub rejected: Vec<(usize, Error)>,
    /// Ids of the stored events, in the order they were stored (time order per website);
    /// empty after a bulk load ([`Engine::ingest_bulk`], [`Engine::ingest_packed`]).
    pub event_ids: Vec<String>,
}

/// What [`Engine::flush`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Segments written.
    pub segments: usize,
    /// Rows written.
    pub rows: usize,
}

/// The analytics engine over one data directory.
pub struct Engine {
    /// The data directory: catalog, hot rows, write-ahead log, segment files.
    pub(crate) store: Store,
    pub(crate) ctx: SessionContext,
    pub(crate) config: EngineConfig,
    pub(crate) ingest_lock: tokio::sync::Mutex<()>,
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    /// Conversion model statistics per website, with when they were counted.
    pub(crate) models: Arc<std::sync::Mutex<crate::live::ModelCache>>,
    /// Held while a website's first model statistics are counted (see `Engine::first_model`).
    pub(crate) model_count: tokio::sync::Mutex<()>,
    /// Decoded columns that overview, breakdowns and time series are answered from.
    pub(crate) resident: Arc<ResidentStore>,
    /// Ingest states rebuilt from stored events (rather than read back from a saved one).
    rebuilds: std::sync::atomic::AtomicU64,
    /// Which websites' ingest states a flush saves. Only the flush, under the flush lock,
    /// uses it.
    checkpoints: std::sync::Mutex<Checkpoints>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.store.dir())
            .finish_non_exhaustive()
    }
}

pub(crate) fn poisoned<T>(_: T) -> Error {
    Error::Internal("engine lock poisoned by an earlier panic".into())
}

impl Engine {
    /// Opens (creating if needed) the data directory `dir` with default settings.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EngineConfig::default()).await
    }

    /// Opens the data directory `dir` with `config`.
    pub async fn open_with(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Self> {
        let (store, logged) = Store::open(dir.as_ref())?;
        let mut session_config =
            SessionConfig::new().with_target_partitions(config.target_partitions.max(1));
        let parquet = &mut session_config.options_mut().execution.parquet;
        // Rows are filtered inside the Parquet scan only where a table asks for it
        // (`EventsTable::with_row_filtering`: lookups of a few rows). Aggregates, whose filters
        // keep a large share of the rows, decode what pruning admits and filter it above the
        // scan: 1.2-1.8x faster on 4M events (benches/README.md, "Plans over Parquet"). The
        // session must not ask for it, since a scan's own setting cannot turn it off.
        parquet.pushdown_filters = false;
        parquet.reorder_filters = true;
        // Sorts and hash tables of the DataFusion plans share one bounded pool: a plan past it
        // fails with "resources exhausted" instead of taking the process's memory.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.query_memory_bytes.max(1 << 20), 1.0)
            .build_arc()?;
        let engine = Engine {
            store,
            ctx: SessionContext::new_with_config_rt(session_config, runtime),
            config: config.clone(),
            ingest_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            models: Arc::default(),
            model_count: tokio::sync::Mutex::new(()),
            resident: Arc::new(ResidentStore::new(&config)),
            rebuilds: std::sync::atomic::AtomicU64::new(0),
            checkpoints: std::sync::Mutex::default(),
        };
        engine.restore_logged(logged).await?;
        Ok(engine)
    }

    /// Saves each website's ingest state (its visitors' sessions, transaction ids, profiles),
    /// and its conversion model statistics when counted, with the data directory, for a website
    /// whose rows are all in segments, so that a later process reads them back instead of
    /// rebuilding them from every stored event. Call it at a
    /// clean stop, after the last [`Engine::flush`]. A saved state is used only while the
    /// website's segments are those it was saved with. (Each flush also saves the flushed
    /// websites' ingest state, see [`EngineConfig::checkpoint_max_pause`]; the rows logged
    /// after it are folded in when it is read back.)
    /// Returns the websites saved.
    pub async fn save_ingest_states(&self) -> Result<usize> {
        let _serial = self.ingest_lock.lock().await;
        let sites: Vec<String> = self.store.read()?.sites.keys().cloned().collect();
        let mut saved = 0;
        for site in sites {
            let tag = self.store.segments_tag(&site)?;
            let st = self.store.read()?;
            let Some(data) = st.sites.get(&site) else {
                continue;
            };
            let (Some(state), true) = (
                &data.ingest,
                data.hot.rows() == 0 && data.flushing.is_empty(),
            ) else {
                continue;
            };
            let (payload, _) = encode_timed(&site, state)?;
            self.store
                .save_encoded(&site, Saved::Ingest, tag, &payload)?;
            if let Some(model) = self.saved_model(&site)? {
                self.store.save_state(&site, Saved::Model, tag, &*model)?;
            }
            saved += 1;
        }
        Ok(saved)
    }

    /// Whether `site`'s ingest state is in memory (read back from a saved state, or rebuilt).
    pub fn has_ingest_state(&self, site: &str) -> Result<bool> {
        self.ingest_state_loaded(site)
    }

    /// How many ingest states this engine rebuilt from stored events (a saved state read back
    /// is not counted).
    pub fn ingest_state_rebuilds(&self) -> u64 {
        self.rebuilds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Puts the logged writes that no segment holds back into the hot buffers, as they were
    /// when the last process stopped.
    async fn restore_logged(&self, logged: wal::Replayed) -> Result<()> {
        for path in &logged.torn {
            tracing::warn!(
                "write-ahead log {} ends in a torn record (a write cut short, never acknowledged); ignored from there",
                path.display()
            );
        }
        let flushed = self.store.read()?.catalog.wal_flushed.clone();
        let mut by_site: HashMap<String, HotBuffer> = HashMap::new();
        for (file, record) in logged.records {
            let site = match &record {
                Record::Rows { site, .. }
                | Record::Events { site, .. }
                | Record::Delete { site, .. } => site.clone(),
            };
            if flushed.get(&site).is_some_and(|through| file <= *through) {
                continue;
            }
            let hot = by_site.entry(site.clone()).or_default();
            match record {
                // Logged by an older version, a batch may lack a column added since.
                Record::Rows { batch, .. } => hot.push_batch(crate::schema::conform(batch)?)?,
                Record::Events { rows, .. } => hot.push(rows)?,
                Record::Delete { deletion, .. } => {
                    let kept = self
                        .filter_batches(hot.snapshot()?, deletion.keep(&site)?)
                        .await?;
                    hot.replace(kept);
                }
            }
        }
        let mut st = self.store.write()?;
        for (site, hot) in by_site {
            if hot.rows() > 0 {
                st.sites.entry(site).or_default().hot = hot;
            }
        }
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The DataFusion session queries run in (for custom plans over [`Engine::selected_events`]).
    pub fn session_context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Adds a website; its id must be new.
    pub fn create_website(&self, website: Website) -> Result<()> {
        self.put_website(website, false)
    }

    /// Replaces an existing website's settings. Stored amounts keep the currency they were
    /// converted to at ingest.
    pub fn update_website(&self, website: Website) -> Result<()> {
        self.put_website(website, true)
    }

    /// Validates `website` and writes it to the catalog, which must (`replace`) or must not
    /// already hold its id.
    fn put_website(&self, website: Website, replace: bool) -> Result<()> {
        website.validate()?;
        let mut st = self.store.write()?;
        match (st.catalog.websites.contains_key(&website.id), replace) {
            (true, false) => {
                return Err(Error::AlreadyExists {
                    what: "website",
                    id: website.id,
                });
            }
            (false, true) => {
                return Err(Error::NotFound {
                    what: "website",
                    id: website.id,
                });
            }
            _ => {}
        }
        st.commit(self.store.dir(), |next| {
            next.websites.insert(website.id.clone(), website);
        })
    }

    /// A website's settings.
    pub fn website(&self, id: &str) -> Result<Website> {
        let st = self.store.read()?;
        st.catalog
            .websites
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: "website",
                id: id.to_owned(),
            })
    }

    /// Every website.
    pub fn websites(&self) -> Result<Vec<Website>> {
        Ok(self
            .store
            .read()?
            .catalog
            .websites
            .values()
            .cloned()
            .collect())
    }

    /// Validates and stores `events` (in any order; each website's are sorted by time first).
    /// Bad events are reported and skipped; the rest are stored, durably (in the write-ahead
    /// log) before this returns.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestReport> {
        let (events, refused) = ValidEvents::check(events);
        self.ingest_with(events, refused, Durability::Logged).await
    }

    /// Removes the tracker's report of payment `transaction_id` (see
    /// [`crate::event::TRACKER_TRANSACTION_PREFIX`]) before the provider's own report of it is
    /// stored, so that its revenue is counted once, at the provider's amount. Returns how many
    /// rows were removed (0 when the tracker never reported it, without touching storage).
    pub async fn supersede_tracker_payment(&self, site: &str, transaction_id: &str) -> Result<u64> {
        self.ensure_ingest_state(site).await?;
        let tracked = format!(
            "{}{transaction_id}",
            crate::event::TRACKER_TRANSACTION_PREFIX
        );
        let reported = {
            let st = self.store.read()?;
            st.sites
                .get(site)
                .and_then(|d| d.ingest.as_ref())
                .is_some_and(|i| {
                    i.transactions.contains(&tracked) || i.transactions.may_be_evicted(&tracked)
                })
        };
        if !reported {
            return Ok(0);
        }
        let what = crate::store::delete::PaymentDeletion {
            transaction_id: Some(tracked),
            ..Default::default()
        };
        self.delete_payments(site, &what).await
    }

    /// [`Engine::ingest`] for bulk loads that acknowledge only after their final
    /// [`Engine::flush`]: the rows skip the write-ahead log (half the work of a large import)
    /// and are durable once a flush has written them to a segment. A crash before that loses
    /// the rows not flushed yet, and nothing else. The report lists no event ids.
    pub async fn ingest_bulk(&self, events: Vec<Event>) -> Result<IngestReport> {
        let (events, refused) = ValidEvents::check(events);
        self.ingest_with(events, refused, Durability::AtFlush).await
    }

    /// [`Engine::ingest_bulk`] of events packed already ([`PackedEvents::pack`]): the same
    /// rows are stored, for less work on this thread. The report's places are those in the
    /// list that was checked.
    pub async fn ingest_packed(&self, mut events: PackedEvents) -> Result<IngestReport> {
        let _serial = self.ingest_lock.lock().await;
        let mut report = IngestReport::default();
        let site = events.site().to_owned();
        let website = match self.website(&site) {
            Ok(w) => w,
            Err(Error::NotFound { what, id }) => {
                report.rejected = events
                    .places()
                    .iter()
                    .map(|&i| {
                        (
                            i,
                            Error::NotFound {
                                what,
                                id: id.clone(),
                            },
                        )
                    })
                    .collect();
                return Ok(report);
            }
            Err(other) => return Err(other),
        };
        self.ensure_ingest_state_locked(&site).await?;
        events.sort_by_time();
        {
            let keys = events.keys();
            self.read_back_evicted(&site, &keys, &events.payment_ids())
                .await?;
            self.read_back_dropped_attrs(&site, &keys).await?;
        }
        let batch = {
            let mut st = self.store.write()?;
            let data = st.sites.entry(site.clone()).or_default();
            let Some(ingest) = data.ingest.as_mut() else {
                return Ok(report);
            };
            let batch = events.store(&website, ingest, &mut report)?;
            ingest.loading = true;
            ingest.evict_unless_loading(self.state_limits());
            ingest
                .sessions
                .forget_idle_attrs(self.config.session_attrs_in_memory);
            batch
        };
        report.rejected.sort_by_key(|(i, _)| *i);
        let Some(batch) = batch else {
            return Ok(report);
        };
        report.accepted = batch.num_rows();
        let hot_rows = {
            let mut st = self.store.write()?;
            let hot = &mut st.sites.entry(site).or_default().hot;
            hot.push_batch(batch)?;
            hot.rows()
        };
        drop(_serial);
        // Only a flush makes these rows durable: the bulk load must hear of a failed one.
        if hot_rows >= self.config.flush_rows {
            self.flush().await?;
        }
        Ok(report)
    }

    /// Stores `events`; `refused` are the write's invalid events, reported as they are.
    async fn ingest_with(
        &self,
        events: ValidEvents,
        refused: Vec<(usize, Error)>,
        durability: Durability,
    ) -> Result<IngestReport> {
        let _serial = self.ingest_lock.lock().await;
        let mut report = IngestReport {
            rejected: refused,
            ..IngestReport::default()
        };
        let mut by_site = Vec::new();
        for SiteEvents {
            site,
            index,
            events,
        } in SiteEvents::split(events)
        {
            let website = match self.website(&site) {
                Ok(w) => w,
                // Each event of an unknown website is rejected; a fault is the caller's error.
                Err(Error::NotFound { what, id }) => {
                    report.rejected.extend(index.into_iter().map(|i| {
                        let id = id.clone();
                        (i, Error::NotFound { what, id })
                    }));
                    continue;
                }
                Err(other) => return Err(other),
            };
            by_site.push((
                website,
                SiteEvents {
                    site,
                    index,
                    events,
                },
            ));
        }
        let mut to_flush = false;
        for (
            website,
            SiteEvents {
                site,
                index,
                events,
            },
        ) in by_site
        {
            self.ensure_ingest_state_locked(&site).await?;
            let (index, events) = in_time_order(index, events);
            {
                let keys: Vec<EventKey> = events.iter().map(EventKey::of).collect();
                self.read_back_evicted(&site, &keys, &payment_ids(&events))
                    .await?;
                self.read_back_dropped_attrs(&site, &keys).await?;
            }
            let mut rows = Vec::with_capacity(events.len());
            {
                let mut st = self.store.write()?;
                let data = st.sites.entry(site.clone()).or_default();
                let Some(ingest) = data.ingest.as_mut() else {
                    continue;
                };
                for (i, e) in index.into_iter().zip(events) {
                    match enrich(e, &website, ingest) {
                        Ok(Outcome::Stored(row)) => rows.push(row),
                        Ok(Outcome::Duplicate) => report.duplicates += 1,
                        Err(err) => report.rejected.push((i, err)),
                    }
                }
                ingest.loading |= durability == Durability::AtFlush;
                ingest.evict_unless_loading(self.state_limits());
                ingest
                    .sessions
                    .forget_idle_attrs(self.config.session_attrs_in_memory);
            }
            if rows.is_empty() {
                continue;
            }
            // Logged (unless bulk) before queries can see the rows; the ingest lock keeps log
            // order and buffer order the same, and keeps a flush from sealing the log in between.
            report.accepted += rows.len();
            // A bulk load has no caller waiting for the ids of millions of events.
            if durability == Durability::Logged {
                report
                    .event_ids
                    .extend(rows.iter().map(|r| r.event_id.clone()));
            }
            let hot_rows = self.log_and_buffer(&site, rows, durability)?;
            to_flush |= hot_rows >= self.config.flush_rows;
        }
        report.rejected.sort_by_key(|(i, _)| *i);
        drop(_serial);
        // Waiting after the lock is released lets concurrent writers share one fsync. A
        // duplicate payment waits too: the write it duplicates may still be on its way to disk.
        if durability == Durability::Logged {
            self.store
                .wal()
                .sync_through(self.store.wal().written())
                .await?;
        }
        if to_flush && let Err(e) = self.flush().await {
            match durability {
                // The rows are durable in the log: a failed flush is retried by the next one
                // and must not make the caller think they were not stored.
                Durability::Logged => {
                    tracing::error!("flush after ingest failed (rows stay in the log): {e}");
                }
                // Only a flush makes these rows durable: the bulk load must hear of it.
                Durability::AtFlush => return Err(e),
            }
        }
        Ok(report)
    }

    /// Appends `rows` of `site` to the write-ahead log, then to its hot buffer, in records of
    /// at most [`LOG_RECORD_ROWS`] rows (a record must stay far below the log's size limit
    /// however large the write). Returns the rows the hot buffer holds. The caller holds the
    /// ingest lock.
    fn log_and_buffer(
        &self,
        site: &str,
        mut rows: Vec<StoredEvent>,
        durability: Durability,
    ) -> Result<usize> {
        let mut hot_rows = 0;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(LOG_RECORD_ROWS));
            let chunk = std::mem::replace(&mut rows, rest);
            // A bulk write goes in as one batch even when a few of its events were refused:
            // moving its rows one by one into the pending list costs a copy each.
            let record = if chunk.len() >= SEAL_ROWS / 4 || durability == Durability::AtFlush {
                Record::Rows {
                    site: site.to_owned(),
                    batch: to_batch(&chunk)?,
                }
            } else {
                Record::Events {
                    site: site.to_owned(),
                    rows: chunk,
                }
            };
            if durability == Durability::Logged {
                self.store.wal().append(&record)?;
            }
            let mut st = self.store.write()?;
            let hot = &mut st.sites.entry(site.to_owned()).or_default().hot;
            match record {
                Record::Rows { batch, .. } => hot.push_batch(batch)?,
                Record::Events { rows, .. } => hot.push(rows)?,
                Record::Delete { .. } => {}
            }
            hot_rows = hot.rows();
        }
        Ok(hot_rows)
    }

    /// Rebuilds every website's ingest state (sessions, transaction ids, profiles) and visitor
    /// profile statistics now, so that the first write or visitor lookup after a restart does
    /// not pay for it. A write to a website waits while its state is being rebuilt.
    pub async fn warm_ingest(&self) -> Result<()> {
        for w in self.websites()? {
            {
                // Under the ingest lock: a delete meanwhile must see the state it edits.
                let _serial = self.ingest_lock.lock().await;
                self.ensure_ingest_state_locked(&w.id).await?;
            }
            self.conversion_stats(&w.id).await?;
        }
        Ok(())
    }

    /// Loads a website's session state from its stored events, once per process.
    pub(crate) async fn ensure_ingest_state(&self, site: &str) -> Result<()> {
        if self.ingest_state_loaded(site)? {
            return Ok(());
        }
        // Under the ingest lock, so that a rebuild already running (at start, or for a write)
        // is waited for rather than run twice, and no delete edits the state meanwhile.
        let _serial = self.ingest_lock.lock().await;
        self.ensure_ingest_state_locked(site).await
    }

    fn ingest_state_loaded(&self, site: &str) -> Result<bool> {
        Ok(self
            .store
            .read()?
            .sites
            .get(site)
            .is_some_and(|d| d.ingest.is_some()))
    }

    /// [`Engine::ensure_ingest_state`] for a caller that holds the ingest lock.
    async fn ensure_ingest_state_locked(&self, site: &str) -> Result<()> {
        if self.ingest_state_loaded(site)? {
            return Ok(());
        }
        // A saved state is that of the website's segments (saved at a clean stop, or as the
        // checkpoint of a flush); rows logged after it was taken are folded in.
        let tag = self.store.segments_tag(site)?;
        if let Some(saved) = self
            .store
            .load_state::<IngestState>(site, Saved::Ingest, tag)
        {
            let snap = self.store.snapshot(site, i64::MIN, i64::MAX)?;
            let mut state = if snap.hot.is_empty() {
                saved
            } else {
                let mut saved = saved;
                self.read_back_logged_visitors(&mut saved, &snap).await?;
                let unflushed = EventsTable::new(events_schema(), snap.hot, Vec::new());
                restore_onto(saved, self.ctx.read_table(Arc::new(unflushed))?).await?
            };
            state.evict_past(self.state_limits());
            let mut st = self.store.write()?;
            st.sites.entry(site.to_owned()).or_default().ingest = Some(state);
            return Ok(());
        }
        self.rebuilds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = self.events_table(site, None)?.in_time_order();
        let events = self.ctx.read_table(Arc::new(table))?;
        let mut restored = restore(events, self.state_limits()).await?;
        restored.evict_past(self.state_limits());
        let mut st = self.store.write()?;
        st.sites
            .entry(site.to_owned())
            .or_default()
            .ingest
            .get_or_insert(restored);
        Ok(())
    }

    /// Writes every hot buffer to a new Parquet segment and records it in the catalog, then
    /// merges a website's small segments once there are too many of them (see
    /// [`crate::store::compact`]).
    pub async fn flush(&self) -> Result<FlushReport> {
        let _serial = self.flush_lock.lock().await;
        let (sealed_log, checkpoints, mut taken) = {
            // No write may land between sealing the log and taking the buffers.
            let _ingest = self.ingest_lock.lock().await;
            let mut guard = self.store.write()?;
            let mut jobs = Vec::new();
            for (site, data) in guard.sites.iter_mut() {
                // A bulk load is over when a flush finds no bulk write since the last one.
                if let Some(ingest) = data.ingest.as_mut() {
                    ingest.evict_unless_loading(self.state_limits());
                    ingest.loading = false;
                }
                if data.hot.rows() == 0 {
                    continue;
                }
                let batches = data.hot.take()?;
                data.flushing = batches.clone();
                jobs.push((site.clone(), batches));
            }
            let sealed_log = if jobs.is_empty() && !self.store.wal().holds_records() {
                None
            } else {
                Some(self.store.wal().rotate()?)
            };
            // Each flushed website's ingest state is now exactly that of its segments once the
            // taken rows are in: encoded here, saved once they are, so that a restart after a
            // crash reads it back and folds in only the rows logged since. The ingest lock
            // keeps writers out meanwhile; queries only read the store, and go on.
            drop(guard);
            let guard = self.store.read()?;
            let mut checkpoints = Vec::new();
            let mut policy = self.checkpoints.lock().map_err(poisoned)?;
            for (site, _) in &jobs {
                let Some(state) = guard.sites.get(site).and_then(|d| d.ingest.as_ref()) else {
                    continue;
                };
                let visitors = state.sessions.visitors();
                if !policy.due(site, visitors, self.config.checkpoint_max_pause) {
                    continue;
                }
                // Under the ingest lock: writes wait for `took`.
                let (payload, took) = encode_timed(site, state)?;
                policy.taken(site, visitors, took);
                checkpoints.push((site.clone(), payload));
            }
            drop((policy, guard));
            (sealed_log, checkpoints, Taken { engine: self, jobs })
        };
        let flushed_sites: Vec<String> = taken.jobs.iter().map(|(s, _)| s.clone()).collect();
        let mut report = FlushReport::default();
        while let Some((site, batches)) = taken.jobs.last().cloned() {
            let meta = self.store.write_segment(&site, batches.clone()).await?;
            let mut st = self.store.write()?;
            let (rows, file) = (meta.rows, meta.file.clone());
            st.commit(self.store.dir(), |next| {
                next.segments.push(meta);
                if let Some(sealed) = sealed_log {
                    next.wal_flushed.insert(site.clone(), sealed);
                }
            })?;
            // Before the batches leave `flushing`, so no query decodes the new file.
            self.resident.adopt_flushed(&site, &file, &batches);
            st.sites.entry(site).or_default().flushing.clear();
            taken.jobs.pop();
            report.segments += 1;
            report.rows += rows;
        }
        if let Some(sealed) = sealed_log {
            self.store.wal().remove_through(sealed);
        }
        self.compact_locked().await?;
        self.store.remove_retired();
        // Compaction keeps the rows, so the states are still those of the segments now. No
        // delete can run in between: deletes take the flush lock too.
        for (site, payload) in checkpoints {
            let tag = self.store.segments_tag(&site)?;
            if let Err(e) = self.store.save_encoded(&site, Saved::Ingest, tag, &payload) {
                tracing::warn!("saving the ingest state of {site} after a flush failed: {e}");
            }
        }
        // The model statistics are small, and slow to count: saved at every flush, so that a
        // restart has some at once (read back as stale ones and recounted in the background).
        for site in flushed_sites {
            let Some(model) = self.saved_model(&site)? else {
                continue;
            };
            let tag = self.store.segments_tag(&site)?;
            if let Err(e) = self.store.save_state(&site, Saved::Model, tag, &*model) {
                tracing::warn!("saving the model statistics of {site} after a flush failed: {e}");
            }
        }
        Ok(report)
    }

    /// Removes the files of the segments that compaction or a delete replaced now, instead of
    /// [`crate::store::RETIRED_GRACE`] after (the time a query may still be reading them):
    /// for an owner done with the engine, no query of it running, such as `tally import` at
    /// its end. Without it, the segments an import's compactions joined stayed on disk beside
    /// their joined copy until the next open (at 4M events, 117 MB beside 130 MB). Returns how
    /// many files could not be removed (the next open removes them).
    pub fn remove_replaced_segments(&self) -> usize {
        self.store
            .remove_retired_older_than(std::time::Duration::ZERO)
    }

    /// A frame over `table` for a lookup of a few rows (one visitor, one session, some
    /// transaction ids): its Parquet scan filters rows itself, reading the other columns only
    /// where the filter columns match.
    pub(crate) fn lookup(&self, table: EventsTable) -> Result<DataFrame> {
        Ok(self.ctx.read_table(Arc::new(table.with_row_filtering()))?)
    }

    /// A snapshot table of `site`'s events that can fall in `range`.
    pub(crate) fn table(&self, site: &str, range: Option<DateRange>) -> Result<Arc<EventsTable>> {
        Ok(Arc::new(self.events_table(site, range)?))
    }

    /// [`Engine::table`], unshared.
    fn events_table(&self, site: &str, range: Option<DateRange>) -> Result<EventsTable> {
        let (lo, hi) = range.map_or((i64::MIN, i64::MAX), |r| {
            (r.start.timestamp_micros(), r.end.timestamp_micros())
        });
        self.events_table_us(site, lo, hi)
    }

    /// [`Engine::events_table`] over the segments that can hold events in `[lo, hi)` µs.
    pub(crate) fn events_table_us(&self, site: &str, lo: i64, hi: i64) -> Result<EventsTable> {
        let snap = self.store.snapshot(site, lo, hi)?;
        let segments = snap
            .segments
            .iter()
            .map(|s| self.store.segment_file(s))
            .collect();
        Ok(EventsTable::new(events_schema(), snap.hot, segments))
    }

    /// The plans of `q` over its website's events as stored (`Utf8` strings).
    fn scope(&self, q: &Query) -> Result<Scope> {
        Ok(self.scope_over(q, self.events_table(&q.website_id, q.range)?))
    }

    /// [`Engine::scope`] for the aggregate questions (overview, breakdowns, time series), its
    /// session attributes read as string views ([`EventsTable::with_string_views`]); their
    /// answers are numbers and group values read back as `Utf8`.
    fn aggregate_scope(&self, q: &Query) -> Result<Scope> {
        let table = self.events_table(&q.website_id, q.range)?;
        Ok(self.scope_over(q, table.with_string_views()))
    }

    fn scope_over(&self, q: &Query, table: EventsTable) -> Scope {
        Scope::new(
            self.ctx.clone(),
            Arc::new(table),
            &q.website_id,
            q.range,
            &q.filters,
        )
    }

    /// The events a query selects (range and filters applied), as a DataFrame for custom plans.
    pub fn selected_events(&self, q: &Query) -> Result<DataFrame> {
        self.scope(q)?.selected()
    }

    /// Visitors, sessions, bounce rate, session duration, revenue and conversion (DESIGN §4).
    pub async fn overview(&self, q: &Query) -> Result<Overview> {
        if let Some(o) = self.resident_overview(q).await? {
            return Ok(o);
        }
        self.aggregate_scope(q)?.overview().await
    }

    /// One page of a breakdown, with the total number of rows.
    pub async fn breakdown(
        &self,
        q: &Query,
        by: &Breakdown,
        paging: Paging,
    ) -> Result<BreakdownResult> {
        if let Breakdown::Campaign(fields) = by
            && fields.is_empty()
        {
            return Err(Error::invalid(
                "fields",
                "a campaign breakdown needs at least one campaign field",
            ));
        }
        let top = paging.offset.saturating_add(paging.limit);
        let (rows, total) = match self.resident_breakdown(q, by, top).await? {
            Some(found) => found,
            None => {
                let rows = self.aggregate_scope(q)?.breakdown(by).await?;
                let total = rows.len();
                (rows, total)
            }
        };
        let rows = rows
            .into_iter()
            .skip(paging.offset)
            .take(paging.limit)
            .collect();
        Ok(BreakdownResult { rows, total })
    }

    /// A time series: every bucket of the range (all time: the website's first to last event),
    /// with totals over the whole range.
    pub async fn timeseries(&self, q: &Query, interval: Interval) -> Result<Timeseries> {
        let website = self.website(&q.website_id)?;
        let tz = q.timezone.unwrap_or_else(|| website.tz());
        let range = match q.range {
            Some(r) => Some(r),
            None => self.time_span(q).await?.and_then(|(first, last)| {
                DateRange::new(first, last + TimeDelta::microseconds(1)).ok()
            }),
        };
        let Some(range) = range else {
            let now = chrono::Utc::now();
            let totals = SeriesTotals {
                visitors: 0,
                sessions: 0,
                revenue: Default::default(),
                conversion_rate: 0.0,
            };
            return Ok(Timeseries {
                interval,
                timezone: tz,
                buckets: Vec::new(),
                totals,
                range_start: now,
                range_end: now,
            });
        };
        let interval = effective_interval(interval, range, tz);
        let starts = bucket_starts(range, tz, interval)?;
        let ranged = Query {
            range: Some(range),
            ..q.clone()
        };
        let (counts, overview) = match self.resident_series(&ranged, &starts).await? {
            Some(answer) => answer,
            None => {
                let scope = self.aggregate_scope(&ranged)?;
                futures::try_join!(scope.buckets(&starts), scope.overview())?
            }
        };
        let renewals = website.include_renewal_revenue;
        let buckets = starts
            .iter()
            .zip(counts)
            .map(|(start, (visitors, sessions, revenue))| Bucket {
                start: start.with_timezone(&tz),
                visitors,
                sessions,
                revenue,
                conversion_rate: conversion_rate(&revenue, visitors, renewals),
            })
            .collect();
        let totals = SeriesTotals {
            visitors: overview.visitors,
            sessions: overview.sessions,
            revenue: overview.revenue,
            conversion_rate: conversion_rate(&overview.revenue, overview.visitors, renewals),
        };
        Ok(Timeseries {
            interval,
            timezone: tz,
            buckets,
            totals,
            range_start: range.start,
            range_end: range.end,
        })
    }

    /// When the first and the last event `q` selects (range and filters applied) happened;
    /// `None` when it selects none.
    pub async fn time_span(
        &self,
        q: &Query,
    ) -> Result<Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>> {
        let span = match self.resident_time_span(q).await? {
            Some(span) => span,
            None => self.aggregate_scope(q)?.time_span().await?,
        };
        Ok(span.and_then(|(lo, hi)| {
            Some((
                chrono::DateTime::from_timestamp_micros(lo)?,
                chrono::DateTime::from_timestamp_micros(hi)?,
            ))
        }))
    }

    /// Whether `visitor_id` has at least one page view on `website_id` (goals created through
    /// the API need one).
    pub async fn has_pageview(&self, website_id: &str, visitor_id: &str) -> Result<bool> {
        // The ingest state knows every visitor's page views: a lookup, not a scan of the
        // website's history (it is loaded once, in the background at `tally serve`'s start).
        self.ensure_ingest_state(website_id).await?;
        // A visitor idle for long may have left memory.
        let evicted = (self.store.read()?.sites.get(website_id))
            .and_then(|d| d.ingest.as_ref())
            .is_some_and(|i| i.sessions.may_be_evicted(visitor_id));
        if evicted {
            let _serial = self.ingest_lock.lock().await;
            self.read_back_visitor(website_id, visitor_id).await?;
        }
        let st = self.store.read()?;
        Ok(st
            .sites
            .get(website_id)
            .and_then(|d| d.ingest.as_ref())
            .is_some_and(|i| i.sessions.has_viewed(visitor_id)))
    }

    /// How many visitors' states ingest holds in memory for `site` (0 before its state is
    /// loaded): at most [`EngineConfig::visitor_states_in_memory`] plus those active in the
    /// last 30 minutes, once no bulk load is under way.
    pub fn visitor_states(&self, site: &str) -> Result<usize> {
        let st = self.store.read()?;
        let ingest = st.sites.get(site).and_then(|d| d.ingest.as_ref());
        Ok(ingest.map_or(0, |i| i.sessions.visitors()))
    }

    /// How much of a website's ingest state memory holds.
    fn state_limits(&self) -> crate::ingest::StateLimits {
        crate::ingest::StateLimits {
            visitors: self.config.visitor_states_in_memory,
            transactions: self.config.transaction_ids_in_memory,
        }
    }

    /// Rows held in hot buffers (not yet in segments).
    pub fn hot_rows(&self) -> Result<usize> {
        Ok(self
            .store
            .read()?
            .sites
            .values()
            .map(|d| d.hot.rows())
            .sum())
    }

    /// Segments left out of answers because their file was missing or damaged at open (see
    /// the log for which); they come back when the file is restored and the engine reopened.
    pub fn unavailable_segments(&self) -> Result<Vec<SegmentMeta>> {
        Ok(self.store.read()?.catalog.unavailable.clone())
    }

    /// The live segments.
    pub fn segments(&self) -> Result<Vec<SegmentMeta>> {
        Ok(self.store.read()?.catalog.segments.clone())
    }
}

/// Hot rows a flush took and has not yet recorded in a segment. Dropped early (an error, or the
/// flush's future cancelled), it puts them back ahead of newer rows, so nothing taken is lost.
struct Taken<'a> {
    engine: &'a Engine,
    jobs: Vec<(String, Vec<RecordBatch>)>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let Ok(mut st) = self.engine.store.write() else {
            return;
        };
        for (site, batches) in self.jobs.drain(..) {
            let data = st.sites.entry(site).or_default();
            data.flushing.clear();
            data.hot.restore(batches);
        }
    }
}

/// The valid events of one write that belong to one website, with their places in the write.
struct SiteEvents {
    site: String,
    index: Vec<usize>,
    events: Vec<Event>,
}

impl SiteEvents {
    /// A write's valid events split by website. A write of one website, the usual case, keeps
    /// its list as it is: events are large, and moving each into a list of its own costs a
    /// copy per event.
    fn split(events: ValidEvents) -> Vec<SiteEvents> {
        let (events, places) = events.into_parts();
        let one_site = events
            .first()
            .map(|e| e.website_id.clone())
            .filter(|first| events.iter().all(|e| e.website_id == *first));
        if let Some(site) = one_site {
            return vec![SiteEvents {
                site,
                index: places,
                events,
            }];
        }
        let mut out: Vec<SiteEvents> = Vec::new();
        let mut place: HashMap<String, usize> = HashMap::new();
        for (i, e) in places.into_iter().zip(events) {
            let at = *place.entry(e.website_id.clone()).or_insert_with(|| {
                out.push(SiteEvents {
                    site: e.website_id.clone(),
                    index: Vec::new(),
                    events: Vec::new(),
                });
                out.len() - 1
            });
            out[at].index.push(i);
            out[at].events.push(e);
        }
        out
    }
}

/// `events` (with their places `index`) in time order. Writes mostly arrive in time order:
/// checking is cheap, moving large events is not.
/// The transaction ids of the payments among `events`.
fn payment_ids(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Payment(p) => Some(p.transaction_id.as_str()),
            _ => None,
        })
        .collect()
}

fn in_time_order(index: Vec<usize>, events: Vec<Event>) -> (Vec<usize>, Vec<Event>) {
    if events.is_sorted_by_key(|e| e.ts) {
        return (index, events);
    }
    let mut pairs: Vec<(usize, Event)> = index.into_iter().zip(events).collect();
    pairs.sort_by_key(|(_, e)| e.ts);
    pairs.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pageview(site: &str, visitor: &str, second: i64) -> Event {
        let ts = chrono::DateTime::from_timestamp(1_750_000_000 + second, 0).unwrap_or_default();
        Event::pageview(site, visitor, ts, "example.com", "/")
    }

    /// Rows the Parquet scans under `plan` filtered themselves (0 when none did).
    fn rows_filtered_in_scan(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> usize {
        let own = plan
            .metrics()
            .and_then(|m| m.sum_by_name("pushdown_rows_pruned"))
            .map_or(0, |v| v.as_usize());
        own + plan
            .children()
            .into_iter()
            .map(rows_filtered_in_scan)
            .sum::<usize>()
    }

    #[tokio::test]
    async fn aggregates_over_parquet_read_hot_and_stored_rows_alike() {
        use crate::query::spec::{Dimension, Filter, FilterOp};
        let dir = tempfile::tempdir().unwrap();
        let plans_only = EngineConfig {
            resident_budget_bytes: 0,
            ..EngineConfig::default()
        };
        let engine = Engine::open_with(dir.path(), plans_only).await.unwrap();
        engine
            .create_website(Website::new("a", "example.com"))
            .unwrap();
        let view = |i: i64| {
            let mut e = pageview("a", &format!("v{i}"), i);
            e.attrs.country_code = Some(if i % 3 == 0 { "FR" } else { "US" }.into());
            e
        };
        engine.ingest((0..30).map(view).collect()).await.unwrap();
        engine.flush().await.unwrap();
        // These stay in the hot buffer: the scan casts them to the table's string views.
        engine.ingest((30..60).map(view).collect()).await.unwrap();
        let fr = Filter::new(Dimension::Country, FilterOp::Is, vec!["FR".into()]).unwrap();
        let only_fr = Query::new("a").with_filter(fr);
        assert_eq!(engine.overview(&only_fr).await.unwrap().visitors, 20);
        let countries = engine
            .breakdown(&Query::new("a"), &Breakdown::Country, Paging::default())
            .await
            .unwrap();
        let got: Vec<(String, u64)> = (countries.rows.iter())
            .map(|r| (r.values.concat(), r.visitors))
            .collect();
        assert_eq!(got, vec![("US".to_owned(), 40), ("FR".to_owned(), 20)]);
    }

    #[tokio::test]
    async fn only_lookups_filter_rows_inside_the_parquet_scan() {
        use datafusion::prelude::{col, lit};
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).await.unwrap();
        engine
            .create_website(Website::new("a", "example.com"))
            .unwrap();
        let views = (0..500).map(|i| pageview("a", &format!("v{i}"), i));
        engine.ingest(views.collect()).await.unwrap();
        engine.flush().await.unwrap();
        let one = col(crate::schema::col::VISITOR_ID).eq(lit("v7"));
        let run = async |frame: DataFrame| {
            let plan = frame.create_physical_plan().await.unwrap();
            let task = engine.session_context().task_ctx();
            let batches = datafusion::physical_plan::collect(Arc::clone(&plan), task)
                .await
                .unwrap();
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            (rows, rows_filtered_in_scan(&plan))
        };
        let table = engine.events_table_us("a", i64::MIN, i64::MAX).unwrap();
        let lookup = engine.lookup(table).unwrap().filter(one.clone()).unwrap();
        assert_eq!(run(lookup).await, (1, 499));
        let aggregate = engine.selected_events(&Query::new("a")).unwrap();
        assert_eq!(run(aggregate.filter(one).unwrap()).await, (1, 0));
    }

    #[test]
    fn a_write_is_validated_and_split_by_website_keeping_each_events_place() {
        let (checked, rejected) =
            ValidEvents::check(vec![pageview("a", "v1", 2), pageview("a", "v2", 1)]);
        assert!(rejected.is_empty());
        let one = SiteEvents::split(checked);
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].site.as_str(), one[0].index.clone()),
            ("a", vec![0, 1])
        );

        let mixed = vec![
            pageview("a", "v1", 1),
            pageview("b", "v2", 2),
            pageview("a", "", 3), // no visitor id
            pageview("b", "v3", 4),
            pageview("a", "v4", 5),
        ];
        let (checked, rejected) = ValidEvents::check(mixed);
        let split = SiteEvents::split(checked);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, 2);
        let places: Vec<(&str, Vec<usize>, Vec<&str>)> = split
            .iter()
            .map(|s| {
                let visitors = s.events.iter().map(|e| e.visitor_id.as_str()).collect();
                (s.site.as_str(), s.index.clone(), visitors)
            })
            .collect();
        assert_eq!(
            places,
            vec![
                ("a", vec![0, 4], vec!["v1", "v4"]),
                ("b", vec![1, 3], vec!["v2", "v3"]),
            ]
        );
    }

    #[test]
    fn events_out_of_time_order_are_sorted_with_their_places() {
        let events = vec![
            pageview("a", "v1", 3),
            pageview("a", "v2", 1),
            pageview("a", "v3", 2),
        ];
        let (index, events) = in_time_order(vec![10, 11, 12], events);
        assert_eq!(index, vec![11, 12, 10]);
        let visitors: Vec<&str> = events.iter().map(|e| e.visitor_id.as_str()).collect();
        assert_eq!(visitors, vec!["v2", "v3", "v1"]);
    }
}

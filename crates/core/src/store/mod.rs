//! Storage: the hot buffer, Parquet segments, the catalog, and the table provider that reads
//! them together (DESIGN §2, §3).
//!
//! Layout of a data directory:
//! ```text
//! catalog.json                         websites, settings, live segments (atomic replace)
//! segments/<website_id>/<id>.parquet   immutable, sorted by ts, one website each
//! LOCK                                 held by the one process that has the directory open
//! wal/<number>.log                     the write-ahead log (see [`wal`])
//! ```
//! Deletes rewrite the segments they touch and swap
//! them in the catalog, and so does compaction; replaced files are removed a minute later (or at
//! the next open).

pub mod buffer;
pub mod catalog;
pub mod compact;
pub mod delete;
pub(crate) mod lock;
pub mod segment;
pub mod table;
pub(crate) mod wal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::ingest::IngestState;
use crate::schema::events_schema;
use buffer::HotBuffer;
use catalog::{Catalog, SegmentMeta};
use lock::DirLock;
use table::SegmentFile;
use wal::Wal;

/// How long a replaced segment file outlives its replacement: longer than any query that could
/// still be reading it.
pub const RETIRED_GRACE: Duration = Duration::from_secs(60);

/// One website's rows that are not in a segment yet, and its ingest state.
#[derive(Debug, Default)]
pub(crate) struct SiteData {
    pub(crate) hot: HotBuffer,
    /// Batches being written by a flush: still visible to queries until the catalog lists them.
    pub(crate) flushing: Vec<RecordBatch>,
    pub(crate) ingest: Option<IngestState>,
}

/// The catalog and every website's unflushed rows, changed together under one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) catalog: Catalog,
    pub(crate) sites: HashMap<String, SiteData>,
}

impl State {
    /// The one way the catalog changes: `change` edits a copy, which is saved atomically and
    /// only then swapped in, so a failed save leaves both the file and the memory as they were.
    pub(crate) fn commit(&mut self, dir: &Path, change: impl FnOnce(&mut Catalog)) -> Result<()> {
        let mut next = self.catalog.clone();
        change(&mut next);
        next.save(dir)?;
        self.catalog = next;
        Ok(())
    }
}

/// What a query reads of one website at one moment.
pub(crate) struct Snapshot {
    /// Hot batches, those being flushed first.
    pub(crate) hot: Vec<RecordBatch>,
    /// How many of the last hot batches hold rows still pending (0 or 1).
    pub(crate) pending: usize,
    /// The live segments that can hold events of the range asked for.
    pub(crate) segments: Vec<SegmentMeta>,
}

/// A data directory, owned by the process that holds its lock: the catalog and the websites'
/// hot rows ([`State`]), the write-ahead log, and the replaced files waiting for removal.
/// Flushes, compaction and deletes (`Engine::flush`, [`compact`], [`delete`]) are operations
/// over it; [`State::commit`] is the only place a catalog is saved.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    state: RwLock<State>,
    wal: Wal,
    /// Segment files replaced by a compaction or a delete, with when.
    retired: Mutex<Vec<(Instant, PathBuf)>>,
    _lock: DirLock,
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("store lock poisoned by an earlier panic".into())
}

impl Store {
    /// Locks and opens the data directory `dir` (created if needed): the catalog (segments
    /// whose files are missing set aside and reported, files no segment lists removed) and the
    /// write-ahead log, with the logged records no segment holds yet.
    pub(crate) fn open(dir: &Path) -> Result<(Store, wal::Replayed)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let mut catalog = Catalog::load(&dir)?;
        let (moved, report) = catalog.check_files(&dir);
        for line in &report {
            tracing::error!("{line}");
        }
        if moved {
            catalog.save(&dir)?;
        }
        catalog.remove_orphans(&dir)?;
        let logged = wal::replay(&dir)?;
        let wal = Wal::open(&dir)?;
        let store = Store {
            state: RwLock::new(State {
                catalog,
                sites: HashMap::new(),
            }),
            wal,
            retired: Mutex::new(Vec::new()),
            _lock: lock,
            dir,
        };
        Ok((store, logged))
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The write-ahead log.
    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    /// The state, for reading.
    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, State>> {
        self.state.read().map_err(poisoned)
    }

    /// The state, for changing.
    pub(crate) fn write(&self) -> Result<RwLockWriteGuard<'_, State>> {
        self.state.write().map_err(poisoned)
    }

    /// Changes the catalog ([`State::commit`]).
    pub(crate) fn commit(&self, change: impl FnOnce(&mut Catalog)) -> Result<()> {
        self.write()?.commit(&self.dir, change)
    }

    /// A consistent snapshot of `site`: its hot batches and the segments that can hold events
    /// in `[lo, hi)` µs.
    pub(crate) fn snapshot(&self, site: &str, lo: i64, hi: i64) -> Result<Snapshot> {
        let mut guard = self.write()?;
        let st = &mut *guard;
        if !st.catalog.websites.contains_key(site) {
            return Err(Error::NotFound {
                what: "website",
                id: site.to_owned(),
            });
        }
        let segments = st
            .catalog
            .segments
            .iter()
            .filter(|s| s.website_id == site && s.overlaps(lo, hi))
            .cloned()
            .collect();
        let data = st.sites.entry(site.to_owned()).or_default();
        let mut hot = data.flushing.clone();
        hot.extend(data.hot.snapshot()?);
        Ok(Snapshot {
            hot,
            pending: usize::from(data.hot.has_pending()),
            segments,
        })
    }

    /// How a scan addresses a segment of the catalog.
    pub(crate) fn segment_file(&self, meta: &SegmentMeta) -> SegmentFile {
        let path = self.dir.join(&meta.file);
        SegmentFile {
            object_path: path.to_string_lossy().trim_start_matches('/').to_owned(),
            size: meta.bytes,
        }
    }

    /// Writes `batches` of `site` as a new segment (id from the catalog, sorted, durable) and
    /// describes it; the caller records it in the catalog.
    pub(crate) async fn write_segment(
        &self,
        site: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<SegmentMeta> {
        let id = {
            let mut st = self.write()?;
            st.catalog.next_segment_id += 1;
            st.catalog.next_segment_id - 1
        };
        let file = Catalog::segment_file(site, id);
        let path = self.dir.join(&file);
        let w = tokio::task::spawn_blocking(move || {
            segment::write_segment(&path, &events_schema(), &batches)
        })
        .await
        .map_err(|e| Error::Internal(format!("segment writer task failed: {e}")))??;
        Ok(SegmentMeta {
            id,
            website_id: site.to_owned(),
            file,
            rows: w.rows,
            min_ts_us: w.min_ts_us,
            max_ts_us: w.max_ts_us,
            bytes: w.bytes,
        })
    }

    /// Schedules the files of `segments` for removal.
    pub(crate) fn retire<'a>(&self, segments: impl Iterator<Item = &'a SegmentMeta>) {
        if let Ok(mut r) = self.retired.lock() {
            let now = Instant::now();
            r.extend(segments.map(|s| (now, self.dir.join(&s.file))));
        }
    }

    /// Removes retired files older than [`RETIRED_GRACE`].
    pub(crate) fn remove_retired(&self) {
        let Ok(mut r) = self.retired.lock() else {
            return;
        };
        r.retain(|(at, path)| {
            if at.elapsed() < RETIRED_GRACE {
                return true;
            }
            // A file already gone is fine; anything else is retried at the next flush.
            match std::fs::remove_file(path) {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            }
        });
    }
}

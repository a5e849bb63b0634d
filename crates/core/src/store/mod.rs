//! Storage: the hot buffer, Parquet segments, the catalog, and the table provider that reads
//! them together (DESIGN §2, §3).
//!
//! Layout of a data directory:
//! ```text
//! catalog.json                         websites, settings, live segments (atomic replace)
//! segments/<website_id>/<id>.parquet   immutable, sorted by ts, one website each
//! LOCK                                 held by the one process that has the directory open
//! wal/<number>.log                     the write-ahead log (see [`wal`])
//! saved/<website_id>.{ingest,model}    a website's ingest state and conversion model
//!                                      statistics, saved at a clean stop
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

/// Where saved states live, in the data directory.
const SAVED_DIR: &str = "saved";
/// The first bytes of a saved state file: the format's version. postcard is not
/// self-describing, so this must change whenever `IngestState`, `VisitorState`,
/// `VisitorProfile` or `ModelStats` change shape; a file of another version is then rebuilt
/// rather than misread.
const SAVED_MAGIC: &[u8; 8] = b"TALLYSV2";

/// What a website's state saved with the data directory at a clean stop holds; each is read
/// back only while the website's segments are those it was saved with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Saved {
    /// The ingest state (visitors' sessions, transaction ids, profiles).
    Ingest,
    /// The conversion model's statistics.
    Model,
}

impl Saved {
    fn extension(self) -> &'static str {
        match self {
            Saved::Ingest => "ingest",
            Saved::Model => "model",
        }
    }
}

/// `value` as a saved state file holds it.
pub(crate) fn encode_saved(what: Saved, value: &impl serde::Serialize) -> Result<Vec<u8>> {
    postcard::to_stdvec(value)
        .map_err(|e| Error::Internal(format!("encoding the saved {what:?}: {e}")))
}

/// The value in a saved state file, if it was saved with `tag` and its checksum holds.
#[cfg(test)]
fn decode_saved<T: serde::de::DeserializeOwned>(bytes: &[u8], tag: u64) -> Option<T> {
    decode_saved_any(bytes).and_then(|(value, saved_tag)| (saved_tag == tag).then_some(value))
}

/// The value in a saved state file and the tag it was saved with, if its checksum holds.
fn decode_saved_any<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<(T, u64)> {
    let (head, payload) = bytes.split_at_checked(SAVED_MAGIC.len() + 16)?;
    let (magic, numbers) = head.split_at(SAVED_MAGIC.len());
    let saved_tag = u64::from_le_bytes(numbers[..8].try_into().ok()?);
    let sum = u64::from_le_bytes(numbers[8..].try_into().ok()?);
    let whole = magic == SAVED_MAGIC && sum == xxhash_rust::xxh3::xxh3_64(payload);
    if !whole {
        return None;
    }
    Some((postcard::from_bytes(payload).ok()?, saved_tag))
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
        // Read access only: a query goes on while a flush encodes an ingest state.
        let st = self.read()?;
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
        let Some(data) = st.sites.get(site) else {
            return Ok(Snapshot {
                hot: Vec::new(),
                pending: 0,
                segments,
            });
        };
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
        let (id, file, path) = self.new_segment_file(site)?;
        let w = tokio::task::spawn_blocking(move || {
            segment::write_segment(&path, &events_schema(), &batches)
        })
        .await
        .map_err(|e| Error::Internal(format!("segment writer task failed: {e}")))??;
        Ok(SegmentMeta::written(id, site, file, w))
    }

    /// Joins `segments` of `site`, which follow one another in time in this order, into a new
    /// segment by copying their row groups as stored ([`segment::SegmentWriter::append_segment`]),
    /// and describes it; the caller records it in the catalog.
    pub(crate) async fn join_segments(
        &self,
        site: &str,
        segments: &[SegmentMeta],
    ) -> Result<SegmentMeta> {
        let (id, file, path) = self.new_segment_file(site)?;
        let sources: Vec<(PathBuf, SegmentMeta)> = segments
            .iter()
            .map(|s| (self.dir.join(&s.file), s.clone()))
            .collect();
        let w = tokio::task::spawn_blocking(move || {
            let mut w = segment::SegmentWriter::create(&path, &events_schema())?;
            for (source, s) in &sources {
                if let Err(e) = w.append_segment(source, s.rows, s.min_ts_us, s.max_ts_us) {
                    w.abandon();
                    return Err(e);
                }
            }
            w.finish()
        })
        .await
        .map_err(|e| Error::Internal(format!("segment writer task failed: {e}")))??;
        Ok(SegmentMeta::written(id, site, file, w))
    }

    /// [`Store::write_segment`] for more rows than should be held at once (compaction):
    /// `rows` yields batches in time order, handed to the writing thread through a channel of
    /// two, so memory stays a few batches and a row group whatever the segment's size.
    pub(crate) async fn write_segment_stream(
        &self,
        site: &str,
        mut rows: datafusion::execution::SendableRecordBatchStream,
    ) -> Result<SegmentMeta> {
        use futures::StreamExt;

        let (id, file, path) = self.new_segment_file(site)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = segment::SegmentWriter::create(&path, &events_schema())?;
            while let Some(batch) = rx.blocking_recv() {
                match batch.and_then(|b| w.write(&b)) {
                    Ok(()) => {}
                    Err(e) => {
                        w.abandon();
                        return Err(e);
                    }
                }
            }
            w.finish()
        });
        while let Some(batch) = rows.next().await {
            let failed = batch.is_err();
            // A closed channel means the writer failed: its error is awaited below.
            if tx.send(batch.map_err(Error::from)).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let w = writer
            .await
            .map_err(|e| Error::Internal(format!("segment writer task failed: {e}")))??;
        Ok(SegmentMeta::written(id, site, file, w))
    }

    /// The next segment id of the catalog, its file name and its path.
    fn new_segment_file(&self, site: &str) -> Result<(u64, String, PathBuf)> {
        let id = {
            let mut st = self.write()?;
            st.catalog.next_segment_id += 1;
            st.catalog.next_segment_id - 1
        };
        let file = Catalog::segment_file(site, id);
        let path = self.dir.join(&file);
        Ok((id, file, path))
    }

    /// A fingerprint of `site`'s segments in the catalog: an ingest state saved with it is the
    /// state of exactly these segments.
    pub(crate) fn segments_tag(&self, site: &str) -> Result<u64> {
        let st = self.read()?;
        let mut segments: Vec<&SegmentMeta> = st
            .catalog
            .segments
            .iter()
            .filter(|s| s.website_id == site)
            .collect();
        segments.sort_by_key(|s| s.id);
        let mut bytes = Vec::with_capacity(segments.len() * 40);
        for s in segments {
            for n in [s.id, s.rows as u64, s.bytes] {
                bytes.extend_from_slice(&n.to_le_bytes());
            }
            for t in [s.min_ts_us, s.max_ts_us] {
                bytes.extend_from_slice(&t.to_le_bytes());
            }
        }
        Ok(xxhash_rust::xxh3::xxh3_64(&bytes))
    }

    fn saved_file(&self, site: &str, what: Saved) -> PathBuf {
        self.dir
            .join(SAVED_DIR)
            .join(format!("{site}.{}", what.extension()))
    }

    /// Saves `value`, `site`'s state `what` as of the segments `tag` fingerprints (written to
    /// a temporary file and renamed, with a checksum).
    pub(crate) fn save_state(
        &self,
        site: &str,
        what: Saved,
        tag: u64,
        value: &impl serde::Serialize,
    ) -> Result<()> {
        self.save_encoded(site, what, tag, &[encode_saved(what, value)?])
    }

    /// [`Store::save_state`] of a value [`encode_saved`] encoded earlier (a checkpoint taken
    /// under a lock and written after it).
    ///
    /// The payload comes in parts, written one after the other (see
    /// [`crate::state_encoding`]).
    pub(crate) fn save_encoded(
        &self,
        site: &str,
        what: Saved,
        tag: u64,
        payload: &[Vec<u8>],
    ) -> Result<()> {
        use std::io::Write;
        let path = self.saved_file(site, what);
        let dir = self.dir.join(SAVED_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut sum = xxhash_rust::xxh3::Xxh3::new();
        payload.iter().for_each(|part| sum.update(part));
        let mut head = Vec::with_capacity(SAVED_MAGIC.len() + 16);
        head.extend_from_slice(SAVED_MAGIC);
        head.extend_from_slice(&tag.to_le_bytes());
        head.extend_from_slice(&sum.digest().to_le_bytes());
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&head)?;
            payload.iter().try_for_each(|part| file.write_all(part))
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// `site`'s saved state `what`, when it was saved with `tag` and reads back whole. A file
    /// that does not (saved before the segments changed, or damaged) is removed.
    pub(crate) fn load_state<T: serde::de::DeserializeOwned>(
        &self,
        site: &str,
        what: Saved,
        tag: u64,
    ) -> Option<T> {
        match self.load_state_any(site, what)? {
            (value, saved_tag) if saved_tag == tag => Some(value),
            _ => {
                let _ = std::fs::remove_file(self.saved_file(site, what));
                None
            }
        }
    }

    /// `site`'s saved state `what` whatever segments it was saved with, and that tag: for
    /// statistics that may be used while stale (the conversion model). A damaged file is
    /// removed.
    pub(crate) fn load_state_any<T: serde::de::DeserializeOwned>(
        &self,
        site: &str,
        what: Saved,
    ) -> Option<(T, u64)> {
        let path = self.saved_file(site, what);
        let bytes = std::fs::read(&path).ok()?;
        let value = decode_saved_any(&bytes);
        if value.is_none() {
            let _ = std::fs::remove_file(&path);
        }
        value
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
        self.remove_retired_older_than(RETIRED_GRACE);
    }

    /// Removes the retired files retired for at least `grace`; returns how many are left.
    pub(crate) fn remove_retired_older_than(&self, grace: Duration) -> usize {
        let Ok(mut r) = self.retired.lock() else {
            return 0;
        };
        r.retain(|(at, path)| {
            if at.elapsed() < grace {
                return true;
            }
            // A file already gone is fine; anything else is retried at the next flush.
            match std::fs::remove_file(path) {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            }
        });
        r.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A saved file is read back only whole, of this version, and for the segments it was
    /// saved with.
    #[test]
    fn a_saved_state_is_read_only_whole_and_for_its_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let value: Vec<(String, u64)> = vec![("a".into(), 1), ("b".into(), 2)];
        store.save_state("w", Saved::Model, 7, &value).unwrap();
        let back: Option<Vec<(String, u64)>> = store.load_state("w", Saved::Model, 7);
        assert_eq!(back.as_ref(), Some(&value));
        let path = store.saved_file("w", Saved::Model);
        let bytes = std::fs::read(&path).unwrap();
        for tamper in [0, SAVED_MAGIC.len() + 16] {
            let mut damaged = bytes.clone();
            damaged[tamper] ^= 1;
            assert!(decode_saved::<Vec<(String, u64)>>(&damaged, 7).is_none());
        }
        assert!(decode_saved::<Vec<(String, u64)>>(&bytes[..bytes.len() - 1], 7).is_none());
        // Another fingerprint: not used, and the file is gone.
        assert!(
            store
                .load_state::<Vec<(String, u64)>>("w", Saved::Model, 8)
                .is_none()
        );
        assert!(!path.exists());
    }
}

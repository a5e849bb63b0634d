//! Resident columns: each website's events decoded once into compact, dictionary-coded
//! [`chunk::Chunk`]s held in memory under a byte budget, and the kernels that answer the
//! overview, breakdowns and time series from them (DESIGN §3, "the target layout").
//!
//! Parquet stays the durable copy. A segment's chunks are decoded from its file on first use
//! (or taken over from the hot batches it was flushed from); a sealed hot batch is decoded once
//! and reused until it is flushed. Per website, visitor and session hashes are numbered densely
//! and strings get dictionary codes, so distinct counts are bitset work and a filter is
//! evaluated once per dictionary ([`select::Selection`]).
//!
//! When a website does not fit in the budget, [`ResidentStore::snapshot`] answers `None` and the
//! engine runs the DataFusion plans of `query::plan` over the Parquet segments instead; both give
//! the same answers, which the property tests check.

mod answers;
pub(crate) mod cache;
pub(crate) mod chunk;
pub(crate) mod cluster;
pub(crate) mod codes;
pub(crate) mod dict;
pub(crate) mod exec;
pub(crate) mod groups;
pub(crate) mod kernels;
pub(crate) mod parts;
pub(crate) mod revenue;
pub(crate) mod select;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::query::spec::Filter;
use cache::PartCache;
use chunk::{CODED, Chunk, SiteDicts, read_segment};
pub use kernels::GroupCounting;
use select::Selection;

/// Default memory budget of resident columns: about 4 GiB, room for about 75 million events
/// at the 57 bytes each that `ROW_BYTES` expects.
pub const DEFAULT_BUDGET_BYTES: usize = 4 << 30;

/// Resident bytes one event is expected to take, dictionaries and dense-number maps included:
/// time, kind, visitor, session, a code per coded column and its campaign combination, with
/// codes at two bytes (most columns need one, pages two or four, see [`codes::Codes`]). The
/// 4M-event comparison set takes 48 (benches/README.md). A website is made resident only when
/// its missing rows at this size fit the budget; what a chunk really holds is counted once it
/// is built, so the budget is kept to within the error of this estimate.
const ROW_BYTES: usize = 8 + 1 + 4 + 4 + 2 * CODED.len() + 2;

/// Default of the most rows of a chunk decoded from a segment (a compacted segment gives
/// several): the overview gathers each session a chunk owns in a 24-byte slot, and a quarter
/// million rows hold about a hundred thousand sessions, so the slots stay within the caches
/// whatever the size of the segments (measured in benches/README.md).
pub(crate) const DEFAULT_CHUNK_ROWS: usize = 1 << 18;

/// `batches` split into runs of consecutive batches of at most `max_rows` rows together (a
/// longer batch alone), at least one run.
fn runs_of_rows(batches: &[RecordBatch], max_rows: usize) -> Vec<&[RecordBatch]> {
    let mut runs = Vec::new();
    let (mut start, mut rows) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        if i > start && rows + b.num_rows() > max_rows {
            runs.push(&batches[start..i]);
            (start, rows) = (i, 0);
        }
        rows += b.num_rows();
    }
    runs.push(&batches[start..]);
    runs
}

/// The one chunk built from a single batch.
fn one_chunk(mut built: Vec<Arc<Chunk>>) -> Result<Arc<Chunk>> {
    match (built.pop(), built.is_empty()) {
        (Some(c), true) => Ok(c),
        _ => Err(Error::Internal(
            "one batch decoded into several chunks".into(),
        )),
    }
}

/// A segment file as the resident store addresses it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentRef {
    /// The catalog's relative path (the cache key).
    pub(crate) file: String,
    /// Where to read it.
    pub(crate) path: PathBuf,
    /// Rows, for the budget check before decoding.
    pub(crate) rows: usize,
}

/// Resident state of one website.
#[derive(Debug, Default)]
struct SiteResident {
    dicts: SiteDicts,
    /// Chunks of each live segment, by catalog path.
    segments: HashMap<String, Vec<Arc<Chunk>>>,
    /// Chunks of sealed hot batches, with the batch (which keeps its identity unique).
    hot: Vec<(RecordBatch, Arc<Chunk>)>,
    /// Bytes this website has counted against the budget.
    bytes: usize,
    /// How many visitors were numbered when they were last numbered by country ([`cluster`]),
    /// `None` before.
    clustered_visitors: Option<u32>,
}

/// A sealed batch's identity: the address of its first column, which clones share.
fn batch_key(b: &RecordBatch) -> (usize, usize) {
    let addr = b
        .columns()
        .first()
        .map_or(0, |c| Arc::as_ptr(c) as *const u8 as usize);
    (addr, b.num_rows())
}

/// Resident columns of every website, under one byte budget.
#[derive(Debug)]
pub(crate) struct ResidentStore {
    /// Kernels running at once: each spreads over the cores, so more would only queue there.
    gate: Arc<tokio::sync::Semaphore>,
    budget: usize,
    bitset_bytes: usize,
    counting: GroupCounting,
    /// Most rows of a chunk decoded from a segment.
    chunk_rows: usize,
    /// Whether visitors are numbered by country (when a website is first built, and again as
    /// new visitors come: [`cluster::due`]).
    cluster_visitors: bool,
    used: AtomicUsize,
    sites: Mutex<HashMap<String, Arc<Mutex<SiteResident>>>>,
    /// Base parts of recent questions.
    parts: Arc<PartCache>,
}

/// The chunks one query reads, and the website's dictionaries to compile filters and name
/// groups with.
pub(crate) struct ResidentSnapshot {
    /// Segments' chunks, then hot batches' chunks.
    pub(crate) chunks: Vec<Arc<Chunk>>,
    /// How many of the last chunks hold rows still pending in the hot buffer (replaced by the
    /// next ingest, so never part of a cached base).
    pub(crate) pending: usize,
    pub(crate) visitors: usize,
    pub(crate) sessions: usize,
    pub(crate) parts: Arc<PartCache>,
    pub(crate) bitset_bytes: usize,
    pub(crate) counting: GroupCounting,
    /// Permits to run a kernel (see [`ResidentStore`]'s `gate`).
    pub(crate) gate: Arc<tokio::sync::Semaphore>,
    site: Arc<Mutex<SiteResident>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::Internal("resident store lock poisoned by an earlier panic".into()))
}

impl ResidentStore {
    /// A store as `config` sets it: it holds at most `resident_budget_bytes` (0 turns resident
    /// answers off), its answers hold at most `group_bitsets_bytes` of group bitsets each, it
    /// decodes segments into chunks of at most `resident_chunk_rows` rows, and keeps up to
    /// `answer_cache_bytes` of partial answers.
    pub(crate) fn new(config: &crate::EngineConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        ResidentStore {
            gate: Arc::new(tokio::sync::Semaphore::new(cores)),
            budget: config.resident_budget_bytes,
            bitset_bytes: config.group_bitsets_bytes,
            counting: config.group_counting,
            chunk_rows: config.resident_chunk_rows.max(1),
            cluster_visitors: config.cluster_visitors,
            used: AtomicUsize::new(0),
            sites: Mutex::new(HashMap::new()),
            parts: Arc::new(PartCache::new(config.answer_cache_bytes)),
        }
    }

    /// Bytes held by resident columns and dictionaries.
    pub(crate) fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes held by cached partial answers.
    pub(crate) fn parts_bytes(&self) -> usize {
        self.parts.bytes()
    }

    fn site(&self, website: &str) -> Result<Arc<Mutex<SiteResident>>> {
        Ok(Arc::clone(
            lock(&self.sites)?.entry(website.to_owned()).or_default(),
        ))
    }

    /// Whether `bytes` more fit in the budget; counts them when they do.
    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + bytes <= self.budget).then_some(u + bytes)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The chunks of `website`'s hot batches and live segments, decoding what is missing and
    /// dropping what is no longer live. `None` when they do not fit in the budget. The last
    /// `pending` hot batches hold the buffer's pending rows.
    pub(crate) fn snapshot(
        &self,
        website: &str,
        hot: &[RecordBatch],
        pending: usize,
        segments: &[SegmentRef],
    ) -> Result<Option<ResidentSnapshot>> {
        if self.budget == 0 {
            return Ok(None);
        }
        let site = self.site(website)?;
        let mut guard = lock(&site)?;
        let st = &mut *guard;

        // Drop what is no longer live: flushed hot batches, replaced segments.
        let hot_keys: Vec<_> = hot.iter().map(batch_key).collect();
        let mut freed = 0;
        st.hot.retain(|(b, c)| {
            let keep = hot_keys.contains(&batch_key(b));
            if !keep {
                freed += c.bytes();
            }
            keep
        });
        st.segments.retain(|file, chunks| {
            let keep = segments.iter().any(|s| &s.file == file);
            if !keep {
                freed += chunks.iter().map(|c| c.bytes()).sum::<usize>();
            }
            keep
        });
        st.bytes -= freed;
        self.release(freed);

        // Decode nothing unless everything missing fits: a website is resident whole or not.
        let missing_rows: usize = segments
            .iter()
            .filter(|s| !st.segments.contains_key(&s.file))
            .map(|s| s.rows)
            .chain(
                hot.iter()
                    .filter(|b| !st.hot.iter().any(|(h, _)| batch_key(h) == batch_key(b)))
                    .map(RecordBatch::num_rows),
            )
            .sum();
        if self.used_bytes() + missing_rows * ROW_BYTES > self.budget {
            return Ok(None);
        }
        for seg in segments {
            if st.segments.contains_key(&seg.file) {
                continue;
            }
            let Some(built) =
                self.build(st, seg.rows, || read_segment(&seg.path, self.chunk_rows))?
            else {
                return Ok(None);
            };
            st.segments.insert(seg.file.clone(), built);
        }
        for b in hot {
            let key = batch_key(b);
            if st.hot.iter().any(|(h, _)| batch_key(h) == key) {
                continue;
            }
            let Some(chunk) = self.build(st, b.num_rows(), || Ok(vec![b.clone()]))? else {
                return Ok(None);
            };
            st.hot.push((b.clone(), one_chunk(chunk)?));
        }
        // When nobody holds a chunk: the first snapshot (which built them all), then again
        // once enough visitors were first seen since (see `cluster::due`).
        let numbered = st.dicts.visitors.len();
        if self.cluster_visitors && cluster::due(st.clustered_visitors, numbered) {
            let mut all: Vec<&mut Arc<Chunk>> = st
                .segments
                .values_mut()
                .flatten()
                .chain(st.hot.iter_mut().map(|(_, c)| c))
                .collect();
            if cluster::cluster(&mut all, &mut st.dicts)? {
                st.clustered_visitors = Some(numbered);
            }
        }
        let mut chunks = Vec::with_capacity(segments.len() + hot.len());
        for seg in segments {
            if let Some(have) = st.segments.get(&seg.file) {
                chunks.extend(have.iter().cloned());
            }
        }
        for b in hot {
            let key = batch_key(b);
            if let Some((_, c)) = st.hot.iter().find(|(h, _)| batch_key(h) == key) {
                chunks.push(Arc::clone(c));
            }
        }
        let visitors = st.dicts.visitors.len() as usize;
        let sessions = st.dicts.sessions.len() as usize;
        drop(guard);
        Ok(Some(ResidentSnapshot {
            chunks,
            pending: pending.min(hot.len()),
            visitors,
            sessions,
            parts: Arc::clone(&self.parts),
            bitset_bytes: self.bitset_bytes,
            counting: self.counting,
            gate: Arc::clone(&self.gate),
            site,
        }))
    }

    /// Decodes `rows` rows read by `read` into chunks of at most `chunk_rows` rows (and at
    /// least one batch), if the budget allows.
    fn build(
        &self,
        st: &mut SiteResident,
        rows: usize,
        read: impl FnOnce() -> Result<Vec<RecordBatch>>,
    ) -> Result<Option<Vec<Arc<Chunk>>>> {
        let estimate = rows * ROW_BYTES;
        if !self.reserve(estimate) {
            return Ok(None);
        }
        let dict_before = st.dicts.bytes();
        let built = read().and_then(|batches| {
            runs_of_rows(&batches, self.chunk_rows)
                .into_iter()
                .map(|run| Chunk::build(run, &mut st.dicts))
                .collect::<Result<Vec<_>>>()
        });
        self.release(estimate);
        let chunks = built?;
        let grown = chunks.iter().map(Chunk::bytes).sum::<usize>()
            + st.dicts.bytes().saturating_sub(dict_before);
        self.used.fetch_add(grown, Ordering::Relaxed);
        st.bytes += grown;
        Ok(Some(chunks.into_iter().map(Arc::new).collect()))
    }

    /// Hands the chunks of the hot batches a flush wrote to `file` over to that segment
    /// (decoding the batches no query had decoded yet), so the file need not be read back.
    ///
    /// Only a cache: when it cannot be done the next query decodes the file, so it never fails
    /// the flush, whose rows are already durable in the segment.
    pub(crate) fn adopt_flushed(&self, website: &str, file: &str, batches: &[RecordBatch]) {
        let _ = self.try_adopt_flushed(website, file, batches);
    }

    fn try_adopt_flushed(&self, website: &str, file: &str, batches: &[RecordBatch]) -> Result<()> {
        if self.budget == 0 {
            return Ok(());
        }
        let site = self.site(website)?;
        let mut guard = lock(&site)?;
        let st = &mut *guard;
        if st.segments.contains_key(file) {
            return Ok(());
        }
        let mut chunks = Vec::with_capacity(batches.len());
        for b in batches {
            let key = batch_key(b);
            let chunk = match st.hot.iter().position(|(h, _)| batch_key(h) == key) {
                Some(i) => Some(st.hot.swap_remove(i).1),
                // A batch that cannot be decoded is handled like one over the budget.
                None => self
                    .build(st, b.num_rows(), || Ok(vec![b.clone()]))
                    .and_then(|built| built.map(one_chunk).transpose())
                    .ok()
                    .flatten(),
            };
            match chunk {
                Some(c) => chunks.push(c),
                None => {
                    // Give back what was taken; the next query decides what fits.
                    let freed: usize = chunks.iter().map(|c| c.bytes()).sum();
                    st.bytes -= freed;
                    self.release(freed);
                    return Ok(());
                }
            }
        }
        st.segments.insert(file.to_owned(), chunks);
        Ok(())
    }

    /// Gives the chunks of segments merged into `file` to it (a cache, like
    /// [`ResidentStore::adopt_flushed`]: never fails the compaction).
    pub(crate) fn adopt_merged(&self, website: &str, file: &str, merged: &[String]) {
        let _ = self.try_adopt_merged(website, file, merged);
    }

    fn try_adopt_merged(&self, website: &str, file: &str, merged: &[String]) -> Result<()> {
        let site = self.site(website)?;
        let mut st = lock(&site)?;
        if !merged.iter().all(|m| st.segments.contains_key(m)) {
            return Ok(());
        }
        let mut chunks = Vec::new();
        for m in merged {
            chunks.extend(st.segments.remove(m).unwrap_or_default());
        }
        st.segments.insert(file.to_owned(), chunks);
        Ok(())
    }
}

impl ResidentSnapshot {
    /// Compiles a query's filters against the website's dictionaries.
    pub(crate) fn selection(&self, filters: &[Filter]) -> Result<Option<Selection>> {
        let st = lock(&self.site)?;
        Selection::compile(filters, &st.dicts)
    }

    /// Runs `f` with the website's dictionaries (to name groups, or to build a grouping).
    pub(crate) fn with_dicts<T>(&self, f: impl FnOnce(&SiteDicts) -> T) -> Result<T> {
        let st = lock(&self.site)?;
        Ok(f(&st.dicts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;

    fn batch(rows: i32) -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int32Array::from_iter_values(0..rows)) as _)])
            .unwrap()
    }

    #[test]
    fn segments_split_into_runs_of_batches_within_the_chunk_size() {
        let batches: Vec<RecordBatch> = [3, 3, 3, 10, 2].into_iter().map(batch).collect();
        let sizes = |max| -> Vec<usize> {
            runs_of_rows(&batches, max)
                .iter()
                .map(|run| run.iter().map(RecordBatch::num_rows).sum())
                .collect()
        };
        assert_eq!(sizes(6), [6, 3, 10, 2]);
        assert_eq!(sizes(100), [21]);
        assert_eq!(sizes(1), [3, 3, 3, 10, 2]);
        assert_eq!(runs_of_rows(&[], 6).len(), 1);
    }
}

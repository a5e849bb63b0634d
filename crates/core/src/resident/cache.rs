//! [`PartCache`]: the base parts of recent questions (see [`super::parts`]), under a byte
//! budget, so that a repeated question scans only the rows that arrived since.
//!
//! An entry is the part of one question (kind, filters, range) scanned from a set of stable
//! chunks (segments and sealed hot batches, which never change). It answers a later question
//! while every one of its chunks is still live and the question's range covers the same times
//! of them; the chunks that appeared since are scanned as a delta and merged. A delete or a
//! compaction that rebuilds chunks, or a delta grown past [`MAX_DELTA_ROWS`] (or a sixteenth
//! of the base), makes the next question scan everything and replace the entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use crate::resident::chunk::Chunk;
use crate::resident::parts::{BucketPart, GroupPart, OverviewPart};

/// A delta up to this many rows (or a sixteenth of the base, when more) is merged into a cached
/// base; past it the question is scanned whole and the base replaced.
pub(crate) const MAX_DELTA_ROWS: usize = 64 * 1024;

/// A partial answer of one kind.
#[derive(Debug)]
pub(crate) enum Part {
    Overview(OverviewPart),
    Groups(GroupPart),
    Buckets(BucketPart),
}

impl Part {
    /// Compacts the sets the scan left as whole-range bitsets, for keeping.
    pub(crate) fn compact(&mut self) {
        match self {
            Part::Overview(_) => {}
            Part::Groups(p) => p.compact(),
            Part::Buckets(p) => p.compact(),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        match self {
            Part::Overview(p) => p.bytes(),
            Part::Groups(p) => p.bytes(),
            Part::Buckets(p) => p.bytes(),
        }
    }
}

/// A cached base part and the chunks it was scanned from.
#[derive(Debug)]
pub(crate) struct Base {
    /// Ids of the chunks, sorted.
    chunks: Vec<u64>,
    rows: usize,
    /// Bytes held, for the budget.
    bytes: usize,
    pub(crate) part: Part,
}

/// The chunks a base part is scanned from, by id.
#[derive(Debug, Clone)]
pub(crate) struct ChunkSet {
    /// Sorted.
    ids: Vec<u64>,
    rows: usize,
}

impl ChunkSet {
    pub(crate) fn of(chunks: &[Arc<Chunk>]) -> ChunkSet {
        let mut ids: Vec<u64> = chunks.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ChunkSet {
            ids,
            rows: chunks.iter().map(|c| c.len()).sum(),
        }
    }
}

impl Base {
    /// `part` (compacted) as the base part of `chunks`.
    pub(crate) fn new(chunks: ChunkSet, mut part: Part) -> Base {
        part.compact();
        let bytes = chunks.ids.len() * 8 + part.bytes() + 64;
        Base {
            bytes,
            chunks: chunks.ids,
            rows: chunks.rows,
            part,
        }
    }

    /// The chunks of `live` this base does not cover, when every chunk of the base is live and
    /// the rest is small enough to merge.
    pub(crate) fn delta(&self, live: &[Arc<Chunk>]) -> Option<Vec<Arc<Chunk>>> {
        let mut covered = 0;
        let mut rest = Vec::new();
        for c in live {
            if self.chunks.binary_search(&c.id).is_ok() {
                covered += 1;
            } else {
                rest.push(Arc::clone(c));
            }
        }
        let rows: usize = rest.iter().map(|c| c.len()).sum();
        (covered == self.chunks.len() && rows <= MAX_DELTA_ROWS.max(self.rows / 16)).then_some(rest)
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Arc<Base>> for ByBytes {
    fn weight(&self, key: &String, base: &Arc<Base>) -> u64 {
        (key.len() + base.bytes) as u64
    }
}

/// Held while a question's base is scanned and kept (the guard can move to the thread that
/// compacts and keeps it).
pub(crate) type Flight = tokio::sync::Mutex<()>;

/// Base parts by question, at most `budget` bytes of them.
pub(crate) struct PartCache {
    entries: Option<Cache<String, Arc<Base>, ByBytes>>,
    /// Questions being scanned for a new base (at most one entry per asker waiting).
    flights: Mutex<HashMap<String, Weak<Flight>>>,
}

impl std::fmt::Debug for PartCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartCache")
            .field("entries", &self.entries.as_ref().map_or(0, Cache::len))
            .field("bytes", &self.entries.as_ref().map_or(0, Cache::weight))
            .finish()
    }
}

impl PartCache {
    /// A cache of at most `budget` bytes (0 keeps nothing).
    pub(crate) fn new(budget: usize) -> Self {
        // Few shards: an entry larger than its shard's share of the budget is not kept.
        let options = OptionsBuilder::new()
            .estimated_items_capacity((budget / (256 << 10)).clamp(64, 4096))
            .weight_capacity(budget as u64)
            .shards(2)
            .build();
        PartCache {
            flights: Mutex::new(HashMap::new()),
            entries: options
                .ok()
                .filter(|_| budget > 0)
                .map(|o| Cache::with_options(o, ByBytes, Default::default(), Default::default())),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<Base>> {
        self.entries.as_ref()?.get(key)
    }

    pub(crate) fn insert(&self, key: String, base: Base) {
        if let Some(entries) = &self.entries {
            entries.insert(key, Arc::new(base));
        }
    }

    /// Whether anything is kept.
    pub(crate) fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The lock that the scans of question `key` take in turn, so that concurrent askers of a
    /// question not cached yet wait for one scan instead of each running it.
    pub(crate) fn flight(&self, key: &str) -> Arc<Flight> {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flights.retain(|_, f| f.strong_count() > 0);
        if let Some(f) = flights.get(key).and_then(Weak::upgrade) {
            return f;
        }
        let f = Arc::new(Flight::new(()));
        flights.insert(key.to_owned(), Arc::downgrade(&f));
        f
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.weight() as usize)
    }
}

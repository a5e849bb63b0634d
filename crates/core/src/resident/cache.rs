//! [`PartCache`]: the base parts of recent questions (see [`super::parts`]), under a byte
//! budget, so that a repeated question scans only the rows that arrived since.
//!
//! An entry is the part of one question (kind, filters, range) scanned from a set of stable
//! chunks (segments and sealed hot batches, which never change). It answers a later question
//! while every one of its chunks is still live and the question's range covers the same times
//! of them; the chunks that appeared since are scanned as a delta and merged. A delete or a
//! compaction that rebuilds chunks, or a delta grown past [`MAX_DELTA_ROWS`] (or an eighth of
//! the base), makes the next question scan everything and replace the entry.

use std::sync::Arc;

use quick_cache::{OptionsBuilder, Weighter};
use quick_cache::sync::Cache;

use crate::resident::chunk::Chunk;
use crate::resident::parts::{BucketPart, GroupPart, OverviewPart};

/// A delta up to this many rows is merged into a cached base; past it (and past an eighth of
/// the base) the question is scanned whole and the base replaced.
pub(crate) const MAX_DELTA_ROWS: usize = 64 * 1024;

/// A partial answer of one kind.
#[derive(Debug)]
pub(crate) enum Part {
    Overview(OverviewPart),
    Groups(GroupPart),
    Buckets(BucketPart),
}

impl Part {
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

impl Base {
    pub(crate) fn new(chunks: &[Arc<Chunk>], part: Part) -> Base {
        let mut ids: Vec<u64> = chunks.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let bytes = ids.len() * 8 + part.bytes() + 64;
        Base {
            bytes,
            chunks: ids,
            rows: chunks.iter().map(|c| c.len()).sum(),
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
        (covered == self.chunks.len() && rows <= MAX_DELTA_ROWS.max(self.rows / 8)).then_some(rest)
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Arc<Base>> for ByBytes {
    fn weight(&self, key: &String, base: &Arc<Base>) -> u64 {
        (key.len() + base.bytes) as u64
    }
}

/// Base parts by question, at most `budget` bytes of them.
pub(crate) struct PartCache {
    entries: Option<Cache<String, Arc<Base>, ByBytes>>,
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
            entries: options.ok().filter(|_| budget > 0).map(|o| {
                Cache::with_options(o, ByBytes, Default::default(), Default::default())
            }),
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

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.weight() as usize)
    }
}

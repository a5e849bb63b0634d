//! Ids whose ingest state was evicted from memory, kept as a Bloom filter of their 64-bit
//! hashes (about 1.2 bytes an id, against the hundreds of bytes of the state itself) so that
//! ingest knows when to read a state back from storage: an id the filter has never seen is
//! certainly new, and needs no lookup. Callers hash ids (visitors by
//! [`crate::schema::visitor_hash`], the hash stored with their events, so that a rebuild can
//! mark visitors it never loads).

use growable_bloom_filter::GrowableBloom;
use serde::{Deserialize, Serialize};

/// How often an id never evicted is taken for an evicted one, costing a lookup in storage
/// that finds nothing.
const FALSE_POSITIVE_RATE: f64 = 0.01;
/// The filter's first size; it grows (as a scalable Bloom filter) past it.
const FIRST_CAPACITY: usize = 100_000;

/// The set of evicted ids, with false positives at [`FALSE_POSITIVE_RATE`] and no false
/// negatives. Empty (and allocation-free) until the first eviction.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct EvictedIds {
    filter: Option<GrowableBloom>,
}

impl EvictedIds {
    /// Remembers that the state of the id hashed to `hash` left memory.
    pub fn insert(&mut self, hash: u64) {
        self.filter
            .get_or_insert_with(|| GrowableBloom::new(FALSE_POSITIVE_RATE, FIRST_CAPACITY))
            .insert(hash);
    }

    /// Whether the state of the id hashed to `hash` may have left memory: `false` means it
    /// certainly did not.
    pub fn may_contain(&self, hash: u64) -> bool {
        self.filter.as_ref().is_some_and(|f| f.contains(hash))
    }

    /// Whether nothing was ever evicted.
    pub fn is_empty(&self) -> bool {
        self.filter.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicted_ids_are_always_found_and_others_rarely() {
        let hash = |id: String| crate::schema::visitor_hash(&id);
        let mut ids = EvictedIds::default();
        assert!(ids.is_empty() && !ids.may_contain(hash("a".into())));
        for i in 0..200_000 {
            ids.insert(hash(format!("evicted-{i}")));
        }
        assert!((0..200_000).all(|i| ids.may_contain(hash(format!("evicted-{i}")))));
        let false_positives = (0..100_000)
            .filter(|i| ids.may_contain(hash(format!("never-{i}"))))
            .count();
        // 1% asked for; far below 2% unless the filter is broken.
        assert!(false_positives < 2_000, "{false_positives}");
    }
}

//! The transaction ids of a website's stored payments, so that a payment reported twice is
//! counted once. The most recent are kept exactly, up to a limit; older ones are kept only as
//! a Bloom filter ([`EvictedIds`]), and a payment whose id the filter may hold is looked up in
//! storage before it is stored (see `crate::read_back`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::evicted::EvictedIds;

/// Transaction ids of stored payments.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TransactionIds {
    /// Ids stored since the last eviction (or read back from storage since), exactly.
    recent: HashSet<String, ahash::RandomState>,
    /// Ids evicted from `recent`.
    older: EvictedIds,
}

impl TransactionIds {
    /// Remembers a stored payment's id.
    pub fn insert(&mut self, id: &str) {
        if !self.recent.contains(id) {
            self.recent.insert(id.to_owned());
        }
    }

    /// Whether `id` is known to be stored. An id evicted from memory is known again only
    /// once read back ([`TransactionIds::insert`] after a lookup that
    /// [`TransactionIds::may_be_evicted`] asked for).
    pub fn contains(&self, id: &str) -> bool {
        self.recent.contains(id)
    }

    /// Whether `id` may be the id of a stored payment that memory no longer holds.
    pub fn may_be_evicted(&self, id: &str) -> bool {
        !self.recent.contains(id) && self.older.may_contain(hash(id))
    }

    /// Forgets a deleted payment's id (an evicted one stays in the filter, and a lookup then
    /// finds nothing).
    pub fn remove(&mut self, id: &str) {
        self.recent.remove(id);
    }

    /// Moves every id to the filter once more than `limit` are held exactly. Returns how many
    /// were moved.
    pub fn evict(&mut self, limit: usize) -> usize {
        if self.recent.len() <= limit {
            return 0;
        }
        for id in &self.recent {
            self.older.insert(hash(id));
        }
        let moved = self.recent.len();
        self.recent = HashSet::default();
        moved
    }
}

/// The hash a transaction id is filed under in the filter.
fn hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_past_the_limit_leave_memory_and_must_be_looked_up() {
        let mut ids = TransactionIds::default();
        ids.insert("a");
        ids.insert("b");
        assert_eq!(ids.evict(2), 0);
        assert!(ids.contains("a") && !ids.may_be_evicted("a"));
        ids.insert("c");
        assert_eq!(ids.evict(2), 3);
        assert!(!ids.contains("a") && ids.may_be_evicted("a"));
        assert!(!ids.may_be_evicted("never"));
        // Found in storage: known again.
        ids.insert("a");
        assert!(ids.contains("a") && !ids.may_be_evicted("a"));
        ids.remove("a");
        assert!(!ids.contains("a"));
    }
}

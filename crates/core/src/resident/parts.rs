//! Partial answers: what a kernel scan of some chunks knows, kept so that the scan of other
//! chunks can be merged into it exactly.
//!
//! An answer is a *base* part (the scan of a website's stable chunks, kept in
//! [`super::cache::PartCache`]) merged with an optional *delta* part (the scan of the chunks that
//! appeared since: rows ingested after the base was taken). Distinct counts merge as sets of
//! dense visitor and session numbers, revenue as per-visitor sums, session metrics as the
//! states of the sessions both parts saw. A merge that would need a session state the base did
//! not keep answers `None`, and the caller scans everything instead, so a merged answer is
//! always the answer of one scan over all the chunks.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use roaring::RoaringBitmap;

use crate::query::result::{Overview, Revenue};
use crate::resident::dict::Mix64;
use crate::resident::kernels::{BitSet, GroupTotals, SessionState};
use crate::resident::revenue::VisitorSums;

pub(crate) type Fast<K, V> = HashMap<K, V, BuildHasherDefault<Mix64>>;

/// What one visitor paid in a part's range.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pay {
    pub(crate) revenue: Revenue,
    /// One of the payments was not refunded.
    pub(crate) paid: bool,
}

impl Pay {
    pub(crate) fn add(&mut self, amount: f64, refunded: bool, renewal: bool) {
        add_revenue(&mut self.revenue, amount, refunded, renewal);
        self.paid |= !refunded;
    }
}

/// Adds one payment to `rev` (DESIGN §4's split).
pub(crate) fn add_revenue(rev: &mut Revenue, amount: f64, refunded: bool, renewal: bool) {
    if refunded {
        rev.refund += amount;
    } else if renewal {
        rev.renewal += amount;
    } else {
        rev.new += amount;
    }
}

fn plus(a: &mut Revenue, b: &Revenue) {
    a.new += b.new;
    a.renewal += b.renewal;
    a.refund += b.refund;
}

/// Session totals: count, bounces and summed duration (µs, an integer so that removing a
/// session's share is exact).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SessionTotals {
    pub(crate) sessions: u64,
    pub(crate) bounced: u64,
    pub(crate) duration_us: u64,
}

impl SessionTotals {
    /// Counts `s` when it is selected.
    pub(crate) fn add(&mut self, s: &SessionState) {
        if s.selected() {
            self.sessions += 1;
            self.bounced += u64::from(s.bounced());
            self.duration_us += s.duration_us();
        }
    }

    fn remove(&mut self, s: &SessionState) {
        if s.selected() {
            self.sessions -= 1;
            self.bounced -= u64::from(s.bounced());
            self.duration_us -= s.duration_us();
        }
    }

    pub(crate) fn merge(&mut self, o: &SessionTotals) {
        self.sessions += o.sessions;
        self.bounced += o.bounced;
        self.duration_us += o.duration_us;
    }
}

/// The overview's part of some chunks.
#[derive(Debug)]
pub(crate) struct OverviewPart {
    /// Visitors with a selected row.
    pub(crate) visitors: BitSet,
    pub(crate) visitor_count: u64,
    /// Totals over every session with a row in the range.
    pub(crate) totals: SessionTotals,
    /// Sessions with a row in the range.
    pub(crate) present: BitSet,
    /// States of the sessions a later part may continue (every session when `all_states`).
    pub(crate) states: Fast<u32, SessionState>,
    pub(crate) all_states: bool,
    /// Per visitor, the payments in the range (selected or not).
    pub(crate) pay: VisitorSums<Pay>,
    /// Payments of selected visitors, and how many of those visitors paid.
    pub(crate) revenue: Revenue,
    pub(crate) payers: u64,
}

impl OverviewPart {
    /// Heap bytes held (for the cache's budget).
    pub(crate) fn bytes(&self) -> usize {
        self.visitors.bytes()
            + self.present.bytes()
            + self.states.capacity() * (4 + std::mem::size_of::<SessionState>() + 8)
            + self.pay.bytes()
    }

    /// The overview of this part alone.
    pub(crate) fn finish(&self) -> Overview {
        overview_of(self.visitor_count, &self.totals, self.revenue, self.payers)
    }

    /// The overview of this part and `delta` (a part of other chunks that keeps every
    /// session's state); `None` when `delta` continues a session whose state was not kept.
    pub(crate) fn finish_with(&self, delta: &OverviewPart) -> Option<Overview> {
        if !delta.all_states {
            return None;
        }
        let mut totals = self.totals;
        for (s, d) in &delta.states {
            let merged = if self.present.contains(*s as usize) {
                let mine = self.states.get(s)?;
                totals.remove(mine);
                let mut m = *mine;
                m.merge(d);
                m
            } else {
                *d
            };
            totals.add(&merged);
        }
        let selected =
            |v: u32| self.visitors.contains(v as usize) || delta.visitors.contains(v as usize);
        let (mut revenue, mut payers) = (self.revenue, self.payers);
        let mut visitors = self.visitor_count;
        // Visitors the delta selects for the first time bring their earlier payments.
        for v in delta.visitors.difference(&self.visitors) {
            visitors += 1;
            if let Some(p) = self.pay.total(v) {
                plus(&mut revenue, &p.revenue);
                payers += u64::from(p.paid);
            }
        }
        for (v, p) in delta.pay.iter() {
            if !selected(v) {
                continue;
            }
            plus(&mut revenue, &p.revenue);
            let counted = self.pay.total(v).is_some_and(|b| b.paid);
            payers += u64::from(p.paid && !counted);
        }
        Some(overview_of(visitors, &totals, revenue, payers))
    }
}

/// The overview of the counts; `revenue` stays in micro-units, as the resident batches carry
/// it (so `revenue_per_visitor` is only meaningful once the reader has converted it).
fn overview_of(visitors: u64, t: &SessionTotals, revenue: Revenue, payers: u64) -> Overview {
    let avg_ms = if t.sessions == 0 {
        0.0
    } else {
        t.duration_us as f64 / t.sessions as f64 / 1000.0
    };
    Overview::from_counts(visitors, t.sessions, t.bounced, avg_ms, revenue, payers)
}

/// A set of dense numbers: as the scan left it (a bitset over the whole id space, quick to
/// hand over) or compacted into a roaring bitmap for keeping in the cache.
#[derive(Debug)]
pub(crate) enum Members {
    /// Bit `i` stands for `offset + i`; `count` bits are set.
    Bits {
        words: Box<[u64]>,
        offset: u32,
        count: u64,
    },
    /// Ascending, without repeats.
    Sorted(Vec<u32>),
    Roaring(RoaringBitmap),
}

impl Default for Members {
    fn default() -> Self {
        Members::Roaring(RoaringBitmap::new())
    }
}

impl Members {
    /// The members of a scan's bitset, bit `i` standing for `offset + i`.
    pub(crate) fn bits(words: Box<[u64]>, offset: u32) -> Members {
        let count = words.iter().map(|w| u64::from(w.count_ones())).sum();
        Members::Bits {
            words,
            offset,
            count,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Members::Bits { count, .. } => *count,
            Members::Sorted(ids) => ids.len() as u64,
            Members::Roaring(r) => r.len(),
        }
    }

    pub(crate) fn contains(&self, v: u32) -> bool {
        match self {
            Members::Bits { words, offset, .. } => v.checked_sub(*offset).is_some_and(|i| {
                words
                    .get(i as usize / 64)
                    .is_some_and(|w| w & (1 << (i % 64)) != 0)
            }),
            Members::Sorted(ids) => ids.binary_search(&v).is_ok(),
            Members::Roaring(r) => r.contains(v),
        }
    }

    /// The members, in ascending order.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Members::Bits { words, offset, .. } => {
                Box::new(words.iter().enumerate().flat_map(move |(i, w)| {
                    let mut left = *w;
                    std::iter::from_fn(move || {
                        (left != 0).then(|| {
                            let bit = left.trailing_zeros();
                            left &= left - 1;
                            offset + (i * 64) as u32 + bit
                        })
                    })
                }))
            }
            Members::Sorted(ids) => Box::new(ids.iter().copied()),
            Members::Roaring(r) => Box::new(r.iter()),
        }
    }

    /// Members of `other` that are not members of `self`.
    fn count_new(&self, other: &Members) -> u64 {
        other.iter().filter(|v| !self.contains(*v)).count() as u64
    }

    /// The same set as a roaring bitmap.
    pub(crate) fn compact(&mut self) {
        match self {
            Members::Bits { words, offset, .. } => {
                *self = Members::Roaring(roaring_of(words, *offset));
            }
            Members::Sorted(ids) => {
                let set = RoaringBitmap::from_sorted_iter(ids.iter().copied());
                *self = Members::Roaring(set.unwrap_or_default());
            }
            Members::Roaring(_) => {}
        }
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Members::Bits { words, .. } => words.len() * 8,
            Members::Sorted(ids) => ids.len() * 4,
            Members::Roaring(r) => r.serialized_size(),
        }
    }
}

/// The values a breakdown group stands for, as dictionary codes (stable as the website grows,
/// unlike a scan's group numbers).
pub(crate) type GroupKey = Box<[u32]>;

/// One group of a [`GroupPart`].
#[derive(Debug)]
pub(crate) struct GroupSet {
    /// Selected visitors with a row carrying the group's values.
    pub(crate) visitors: Members,
    /// Revenue (`new + renewal`) of those visitors in the part's range.
    pub(crate) paid: f64,
    /// The carrying rows.
    pub(crate) rows: u64,
}

/// A breakdown's part of some chunks.
#[derive(Debug, Default)]
pub(crate) struct GroupPart {
    pub(crate) groups: Fast<GroupKey, GroupSet>,
    /// Per visitor, revenue (`new + renewal`) of their payments in the range.
    pub(crate) revenue: VisitorSums,
}

impl GroupPart {
    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|(k, g)| 64 + k.len() * 4 + g.visitors.bytes())
            .sum::<usize>()
            + self.revenue.bytes()
    }

    /// Compacts every group's visitors for keeping.
    pub(crate) fn compact(&mut self) {
        self.groups.values_mut().for_each(|g| g.visitors.compact());
    }

    /// Each group's totals, this part alone.
    pub(crate) fn finish(&self) -> Vec<(GroupKey, GroupTotals)> {
        self.groups
            .iter()
            .map(|(k, g)| {
                let totals = GroupTotals {
                    visitors: g.visitors.len(),
                    revenue: g.paid,
                    completions: g.rows,
                };
                (k.clone(), totals)
            })
            .collect()
    }

    /// Each group's totals over this part and `delta`.
    pub(crate) fn finish_with(&self, delta: &GroupPart) -> Vec<(GroupKey, GroupTotals)> {
        let rev = |v: u32| self.revenue.get(v) + delta.revenue.get(v);
        let mut out = Vec::with_capacity(self.groups.len() + delta.groups.len());
        for (k, g) in &self.groups {
            let mut totals = GroupTotals {
                visitors: g.visitors.len(),
                revenue: g.paid,
                completions: g.rows,
            };
            // Later payments of the group's visitors.
            for (v, r) in delta.revenue.iter() {
                if g.visitors.contains(v) {
                    totals.revenue += r;
                }
            }
            if let Some(d) = delta.groups.get(k) {
                totals.completions += d.rows;
                for v in d.visitors.iter() {
                    if !g.visitors.contains(v) {
                        totals.visitors += 1;
                        totals.revenue += rev(v);
                    }
                }
            }
            out.push((k.clone(), totals));
        }
        for (k, d) in &delta.groups {
            if self.groups.contains_key(k) {
                continue;
            }
            let totals = GroupTotals {
                visitors: d.visitors.len(),
                revenue: d.visitors.iter().map(rev).sum(),
                completions: d.rows,
            };
            out.push((k.clone(), totals));
        }
        out
    }
}

/// One bucket of a [`BucketPart`].
#[derive(Debug, Default)]
pub(crate) struct BucketSets {
    /// Visitors and sessions with a selected row in the bucket.
    pub(crate) visitors: Members,
    pub(crate) sessions: Members,
    /// Payments in the bucket by its visitors.
    pub(crate) revenue: Revenue,
}

/// A time series' part of some chunks.
#[derive(Debug, Default)]
pub(crate) struct BucketPart {
    pub(crate) buckets: Vec<BucketSets>,
    /// Per bucket and visitor, the payments in the bucket (selected or not).
    pub(crate) pay: Fast<(u32, u32), Revenue>,
}

impl BucketPart {
    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| 64 + b.visitors.bytes() + b.sessions.bytes())
            .sum::<usize>()
            + self.pay.capacity() * 40
    }

    /// Compacts every bucket's sets for keeping.
    pub(crate) fn compact(&mut self) {
        for b in &mut self.buckets {
            b.visitors.compact();
            b.sessions.compact();
        }
    }

    /// Per bucket: visitors, sessions and revenue, this part alone.
    pub(crate) fn finish(&self) -> Vec<(u64, u64, Revenue)> {
        self.buckets
            .iter()
            .map(|b| (b.visitors.len(), b.sessions.len(), b.revenue))
            .collect()
    }

    /// Per bucket over this part and `delta` (of the same buckets).
    pub(crate) fn finish_with(&self, delta: &BucketPart) -> Vec<(u64, u64, Revenue)> {
        let mut out = self.finish();
        for (i, (d, o)) in delta.buckets.iter().zip(out.iter_mut()).enumerate() {
            let mine = &self.buckets[i];
            let b = i as u32;
            o.1 += mine.sessions.count_new(&d.sessions);
            for v in d.visitors.iter() {
                if !mine.visitors.contains(v) {
                    o.0 += 1;
                    if let Some(r) = self.pay.get(&(b, v)) {
                        plus(&mut o.2, r);
                    }
                }
            }
        }
        for ((b, v), r) in &delta.pay {
            let Some(o) = out.get_mut(*b as usize) else {
                continue;
            };
            let seen = |p: &BucketPart| p.buckets[*b as usize].visitors.contains(*v);
            if seen(self) || seen(delta) {
                plus(&mut o.2, r);
            }
        }
        out
    }
}

/// A set of bits as a roaring bitmap, bit `i` standing for `offset + i`.
///
/// Taken a container's span (65,536 bits) at a time: empty spans are skipped, sparse ones
/// listed, dense ones handed over as bytes.
pub(crate) fn roaring_of(words: &[u64], offset: u32) -> RoaringBitmap {
    const SPAN: usize = 1024; // words of one roaring container
    let mut out = RoaringBitmap::new();
    let mut bytes = Vec::new();
    let mut sparse = Vec::new();
    for (i, block) in words.chunks(SPAN).enumerate() {
        let count: u32 = block.iter().map(|w| w.count_ones()).sum();
        if count == 0 {
            continue;
        }
        let base = offset + (i * SPAN * 64) as u32;
        if count <= 4096 {
            sparse.clear();
            for (j, w) in block.iter().enumerate() {
                let mut left = *w;
                while left != 0 {
                    sparse.push(base + (j * 64) as u32 + left.trailing_zeros());
                    left &= left - 1;
                }
            }
            out |= RoaringBitmap::from_sorted_iter(sparse.iter().copied()).unwrap_or_default();
        } else {
            bytes.clear();
            for w in block {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
            out |= RoaringBitmap::from_lsb0_bytes(base, &bytes);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::roaring_of;

    #[test]
    fn roaring_of_keeps_every_bit_at_its_offset() {
        let mut words = vec![0u64; 3000];
        let mut want = Vec::new();
        // A dense first container, a sparse second one, an empty third, bits at the very end.
        for i in (0..65_536).step_by(3) {
            words[i / 64] |= 1 << (i % 64);
            want.push(i as u32);
        }
        for i in [65_536usize, 70_000, 100_001, 191_999] {
            words[i / 64] |= 1 << (i % 64);
            want.push(i as u32);
        }
        let got: Vec<u32> = roaring_of(&words, 7).iter().collect();
        let want: Vec<u32> = want.iter().map(|i| i + 7).collect();
        assert_eq!(got, want);
    }
}

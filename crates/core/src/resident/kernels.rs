//! The query kernels over resident chunks: overview, breakdown groups and time buckets, with the
//! meanings of DESIGN §4 (the same the DataFusion plans of `query::plan` compute, checked
//! against the reference model by the property tests).
//!
//! Distinct counts are work on dense numbers: a bitset over the visitors, arrays over the band
//! of session numbers a range touches, and per-group deduplication by scattering `(group, id)`
//! pairs into one array and marking each group's ids in a reused bitset.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::query::result::{Overview, Revenue};
use crate::resident::chunk::{Chunk, PaymentRow, kind_code};
use crate::resident::dict::Mix64;
use crate::resident::select::Selection;

/// A fixed-size set of small numbers.
#[derive(Debug, Clone)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub(crate) fn new(bits: usize) -> Self {
        BitSet {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    #[inline]
    pub(crate) fn insert(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let fresh = self.words[w] & b == 0;
        self.words[w] |= b;
        fresh
    }

    #[inline]
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    #[inline]
    fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1u64 << (i % 64));
    }

    pub(crate) fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Rows handled at a time: small enough for the masks and group numbers to stay in cache.
const BLOCK: usize = 4096;
/// A row in the query's range.
pub(crate) const IN_RANGE: u8 = 1;
/// A row in the range that the filters select.
pub(crate) const SELECTED: u8 = 2;

/// The rows one query reads: chunks, a time range `[start, end)` in µs, and the filters.
pub(crate) struct View<'a> {
    pub(crate) chunks: &'a [Arc<Chunk>],
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) selection: Option<&'a Selection>,
    /// Every visitor number of the chunks is below this.
    pub(crate) visitors: usize,
    /// Most bytes of per-group bitsets one answer may hold; past it, groups are deduplicated
    /// from `(group, id)` pairs instead.
    pub(crate) bitset_bytes: usize,
    /// Threads one answer may spread over.
    pub(crate) threads: usize,
}

impl View<'_> {
    /// The blocks of rows that can be in the range: `(chunk, first row, end row)`, at most
    /// [`BLOCK`] rows each.
    fn blocks(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            let span = chunk.span(self.start, self.end);
            let mut first = span.start;
            while first < span.end {
                let last = (first + BLOCK).min(span.end);
                out.push((c, first, last));
                first = last;
            }
        }
        out
    }

    /// Fills `mask` for rows `first..first + mask.len()` of `chunk` with [`IN_RANGE`] and
    /// [`SELECTED`] (only set with `IN_RANGE`); filters are evaluated one column at a time.
    fn mark(&self, chunk: &Chunk, first: usize, mask: &mut [u8]) {
        if chunk.needs_time_check(self.start, self.end) {
            let ts = &chunk.ts[first..first + mask.len()];
            for (x, t) in mask.iter_mut().zip(ts) {
                *x = u8::from(*t >= self.start && *t < self.end);
            }
        } else {
            mask.fill(IN_RANGE);
        }
        match self.selection {
            None => mask.iter_mut().for_each(|x| *x |= *x * SELECTED),
            Some(sel) => sel.mark(chunk, first, mask),
        }
    }

    /// Calls `f(chunk, first_row, mask)` for each block of chunk `c` in the range.
    fn for_each_block_of(&self, c: usize, mut f: impl FnMut(&Chunk, usize, &[u8])) {
        let chunk = &self.chunks[c];
        let span = chunk.span(self.start, self.end);
        let mut mask = vec![0u8; BLOCK.min(span.len())];
        let mut first = span.start;
        while first < span.end {
            let last = (first + BLOCK).min(span.end);
            let m = &mut mask[..last - first];
            self.mark(chunk, first, m);
            f(chunk, first, m);
            first = last;
        }
    }

    /// Calls `f(chunk, first_row, mask)` for each block of [`View::blocks`] with its mask
    /// ([`View::mark`]).
    fn for_each_block(&self, mut f: impl FnMut(&Chunk, usize, &[u8])) {
        let mut mask = vec![0u8; BLOCK];
        for (c, first, last) in self.blocks() {
            let chunk = &self.chunks[c];
            let m = &mut mask[..last - first];
            self.mark(chunk, first, m);
            f(chunk, first, m);
        }
    }

    /// Calls `f(chunk, payment)` for every payment in the range (selected or not).
    fn for_each_payment(&self, mut f: impl FnMut(&Chunk, &PaymentRow)) {
        for chunk in self.chunks {
            if chunk.payments.is_empty() || chunk.span(self.start, self.end).is_empty() {
                continue;
            }
            for p in &chunk.payments {
                let t = chunk.ts[p.row as usize];
                if t >= self.start && t < self.end {
                    f(chunk, p);
                }
            }
        }
    }

    /// The lowest and highest session number in the range (`None` without rows).
    fn session_band(&self) -> Option<(u32, u32)> {
        let mut band: Option<(u32, u32)> = None;
        for chunk in self.chunks {
            let span = chunk.span(self.start, self.end);
            let check = chunk.needs_time_check(self.start, self.end);
            let (mut lo, mut hi) = (u32::MAX, 0);
            for r in span {
                if check && !(chunk.ts[r] >= self.start && chunk.ts[r] < self.end) {
                    continue;
                }
                let s = chunk.session[r];
                lo = lo.min(s);
                hi = hi.max(s);
            }
            if lo <= hi {
                band = Some(band.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        band
    }
}

fn revenue_of(p: &PaymentRow, rev: &mut Revenue) {
    if p.refunded {
        rev.refund += p.amount;
    } else if p.renewal {
        rev.renewal += p.amount;
    } else {
        rev.new += p.amount;
    }
}

/// Session flags: page views seen (0, 1, 2 = more), a goal seen, the session seen at all.
const PV_MASK: u8 = 0b11;
const GOAL: u8 = 0b100;
const SEEN: u8 = 0b1000;
const SESSION_SELECTED: u8 = 0b1_0000;

/// The overview (DESIGN §4): session metrics over every event of a selected session in the
/// range, revenue of selected visitors' payments in the range.
pub(crate) fn overview(v: &View) -> Overview {
    let owned = owned_sessions(v.chunks);
    // Rows whose session another chunk owns: folded first, merged when the owner is counted.
    let mut visitors = BitSet::new(v.visitors);
    let mut foreign: HashMap<u32, SessionState, BuildHasherDefault<Mix64>> = HashMap::default();
    for (c, chunk) in v.chunks.iter().enumerate() {
        let (lo, hi) = owned[c];
        if chunk.sessions.0 >= lo && chunk.sessions.1 <= hi {
            continue; // it owns every session it holds
        }
        v.for_each_block_of(c, |chunk, first, mask| {
            let sessions = &chunk.session[first..first + mask.len()];
            for (i, m) in mask.iter().enumerate() {
                let s = sessions[i];
                if m & IN_RANGE == 0 || (s >= lo && s < hi) {
                    continue;
                }
                let selected = m & SELECTED != 0;
                if selected {
                    visitors.insert(chunk.visitor[first + i] as usize);
                }
                foreign.entry(s).or_default().add(
                    chunk.ts[first + i],
                    chunk.kind[first + i],
                    selected,
                );
            }
        });
    }
    // Each chunk counts the sessions it owns, the cores taking chunks in turn.
    let threads = v.threads.min(v.chunks.len()).max(1);
    let (foreign, owned) = (&foreign, &owned);
    let parts: Vec<(SessionTotals, Vec<u32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads)
            .map(|t| scope.spawn(move || owned_totals(v, owned, foreign, t, threads)))
            .collect();
        let mut parts = vec![owned_totals(v, owned, foreign, 0, threads)];
        parts.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        parts
    });
    let (mut sessions, mut bounced, mut duration) = (0u64, 0u64, 0f64);
    let mut merged: HashSet<u32> = HashSet::new();
    for (p, used) in parts {
        visitors
            .words
            .iter_mut()
            .zip(&p.visitors.words)
            .for_each(|(a, b)| *a |= b);
        sessions += p.sessions;
        bounced += p.bounced;
        duration += p.duration_us;
        merged.extend(used);
    }
    // Sessions none of whose rows lie in their owner: counted from their foreign rows alone.
    for (s, state) in foreign {
        if !merged.contains(s) && state.selected() {
            sessions += 1;
            bounced += u64::from(state.bounced());
            duration += state.duration_us();
        }
    }
    let visitor_count = visitors.count();
    let filtered = v.selection.is_some();
    let mut revenue = Revenue::default();
    let mut payers = Vec::new();
    v.for_each_payment(|chunk, p| {
        let who = chunk.visitor[p.row as usize];
        if filtered && !visitors.contains(who as usize) {
            return;
        }
        revenue_of(p, &mut revenue);
        if !p.refunded {
            payers.push(who);
        }
    });
    payers.sort_unstable();
    payers.dedup();
    let avg_us = if sessions == 0 {
        0.0
    } else {
        duration / sessions as f64
    };
    Overview::from_counts(
        visitor_count,
        sessions,
        bounced,
        avg_us / 1000.0,
        revenue,
        payers.len() as u64,
    )
}

/// One session's rows seen so far: first and last time, page views (0, 1, 2 = more), a goal,
/// and whether one of its rows is selected.
#[derive(Debug, Clone, Copy)]
struct SessionState {
    first: i64,
    last: i64,
    flags: u8,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            first: i64::MAX,
            last: i64::MIN,
            flags: 0,
        }
    }
}

impl SessionState {
    #[inline]
    fn add(&mut self, t: i64, kind: u8, selected: bool) {
        self.first = self.first.min(t);
        self.last = self.last.max(t);
        self.flags = add_flags(self.flags, kind, selected);
    }

    fn merge(&mut self, o: &SessionState) {
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        let pv = ((self.flags & PV_MASK) + (o.flags & PV_MASK)).min(2);
        self.flags = ((self.flags | o.flags) & !PV_MASK) | pv;
    }

    fn selected(&self) -> bool {
        self.flags & SESSION_SELECTED != 0
    }

    fn bounced(&self) -> bool {
        self.flags & PV_MASK == 1 && self.flags & GOAL == 0
    }

    fn duration_us(&self) -> f64 {
        (self.last - self.first) as f64
    }
}

/// `flags` with one more row of `kind`.
#[inline]
fn add_flags(flags: u8, kind: u8, selected: bool) -> u8 {
    let mut f = flags | SEEN;
    match kind {
        kind_code::PAGEVIEW => f = (f & !PV_MASK) | ((f & PV_MASK) + 1).min(2),
        kind_code::GOAL => f |= GOAL,
        _ => {}
    }
    if selected {
        f |= SESSION_SELECTED;
    }
    f
}

/// Which session numbers each chunk counts: disjoint bands, so that every session is counted
/// by one chunk. A chunk's band is the part of its own session numbers no chunk with lower
/// numbers has taken; chunks are mostly built in time order, so bands barely overlap.
fn owned_sessions(chunks: &[Arc<Chunk>]) -> Vec<(u32, u32)> {
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by_key(|&c| chunks[c].sessions);
    let mut owned = vec![(0, 0); chunks.len()];
    let mut taken = 0u32;
    for c in order {
        let (lo, hi) = chunks[c].sessions;
        let lo = lo.max(taken);
        let hi = hi.max(lo);
        owned[c] = (lo, hi);
        taken = hi;
    }
    owned
}

/// The session metrics of the sessions some chunks own, and the visitors of their rows.
struct SessionTotals {
    visitors: BitSet,
    sessions: u64,
    bounced: u64,
    duration_us: f64,
}

/// [`SessionTotals`] of the sessions owned by chunks `part`, `part + parts`, …, with their
/// foreign rows merged in; also which foreign sessions were merged.
fn owned_totals(
    v: &View,
    owned: &[(u32, u32)],
    foreign: &HashMap<u32, SessionState, BuildHasherDefault<Mix64>>,
    part: usize,
    parts: usize,
) -> (SessionTotals, Vec<u32>) {
    let mut out = SessionTotals {
        visitors: BitSet::new(v.visitors),
        sessions: 0,
        bounced: 0,
        duration_us: 0.0,
    };
    let mut merged = Vec::new();
    let (mut first_ts, mut last_ts, mut flags) = (Vec::new(), Vec::new(), Vec::new());
    for c in (part..v.chunks.len()).step_by(parts) {
        let (lo, hi) = owned[c];
        let width = (hi - lo) as usize;
        if width == 0 || v.chunks[c].span(v.start, v.end).is_empty() {
            continue;
        }
        first_ts.clear();
        first_ts.resize(width, i64::MAX);
        last_ts.clear();
        last_ts.resize(width, i64::MIN);
        flags.clear();
        flags.resize(width, 0u8);
        let visitors = &mut out.visitors;
        v.for_each_block_of(c, |chunk, first, mask| {
            let n = mask.len();
            let (ts, kinds) = (&chunk.ts[first..first + n], &chunk.kind[first..first + n]);
            let (sessions, who) = (
                &chunk.session[first..first + n],
                &chunk.visitor[first..first + n],
            );
            for i in 0..n {
                let m = mask[i];
                let s = sessions[i].wrapping_sub(lo) as usize;
                if m & IN_RANGE == 0 || s >= width {
                    continue;
                }
                let t = ts[i];
                first_ts[s] = first_ts[s].min(t);
                last_ts[s] = last_ts[s].max(t);
                let selected = m & SELECTED != 0;
                if selected {
                    visitors.insert(who[i] as usize);
                }
                flags[s] = add_flags(flags[s], kinds[i], selected);
            }
        });
        for s in 0..width {
            let mut state = SessionState {
                first: first_ts[s],
                last: last_ts[s],
                flags: flags[s],
            };
            if !foreign.is_empty() {
                let id = lo + s as u32;
                if let Some(f) = foreign.get(&id) {
                    state.merge(f);
                    merged.push(id);
                }
            }
            if state.selected() {
                out.sessions += 1;
                out.bounced += u64::from(state.bounced());
                out.duration_us += state.duration_us();
            }
        }
    }
    (out, merged)
}

/// Per visitor, revenue (`new + renewal`) of their payments in the range.
fn visitor_revenue(v: &View) -> HashMap<u32, f64, BuildHasherDefault<Mix64>> {
    let mut out = HashMap::default();
    v.for_each_payment(|chunk, p| {
        if !p.refunded {
            *out.entry(chunk.visitor[p.row as usize]).or_insert(0.0) += p.amount;
        }
    });
    out
}

/// `(group, id)` pairs gathered by a scan, deduplicated per group afterwards.
#[derive(Default)]
pub(crate) struct Pairs {
    groups: Vec<u32>,
    ids: Vec<u32>,
}

impl Pairs {
    #[inline]
    fn push(&mut self, group: u32, id: u32) {
        self.groups.push(group);
        self.ids.push(id);
    }

    /// For each of `n_groups` groups, the number of distinct ids and the sum of `weight` over
    /// them. Ids are below `id_space`.
    fn distinct(
        self,
        n_groups: usize,
        id_space: usize,
        weight: impl Fn(u32) -> f64,
    ) -> Vec<(u64, f64)> {
        let mut starts = vec![0usize; n_groups + 1];
        for g in &self.groups {
            starts[*g as usize + 1] += 1;
        }
        for i in 0..n_groups {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut scattered = vec![0u32; self.ids.len()];
        for (g, id) in self.groups.iter().zip(&self.ids) {
            let at = &mut fill[*g as usize];
            scattered[*at] = *id;
            *at += 1;
        }
        drop(self);
        let mut marks: Option<BitSet> = None;
        let mut out = vec![(0u64, 0f64); n_groups];
        for g in 0..n_groups {
            let ids = &mut scattered[starts[g]..starts[g + 1]];
            let (mut n, mut w) = (0u64, 0f64);
            // Marking in one reused bitset costs a (cached) random access per id; sorting costs
            // more from a few hundred ids on.
            if ids.len() >= 256 {
                let marks = marks.get_or_insert_with(|| BitSet::new(id_space));
                for id in ids.iter() {
                    if marks.insert(*id as usize) {
                        n += 1;
                        w += weight(*id);
                    }
                }
                for id in ids.iter() {
                    marks.remove(*id as usize);
                }
            } else {
                ids.sort_unstable();
                let mut prev = None;
                for id in ids.iter() {
                    if prev != Some(*id) {
                        n += 1;
                        w += weight(*id);
                        prev = Some(*id);
                    }
                }
            }
            out[g] = (n, w);
        }
        out
    }
}

/// How a breakdown names the group of a row.
pub(crate) trait Grouping {
    /// The groups of rows `first..first + out.len()`, [`NO_GROUP`] for a row that does not
    /// carry the breakdown's values.
    fn fill(&mut self, chunk: &Chunk, first: usize, out: &mut [u32]);
    /// Number of groups handed out.
    fn len(&self) -> usize;
    /// Every group number is below this, when known before the scan.
    fn bound(&self) -> Option<usize>;
}

/// The group of a row without the breakdown's values.
pub(crate) const NO_GROUP: u32 = u32::MAX;

/// One group row of a breakdown, before its values are named.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupTotals {
    pub(crate) visitors: u64,
    pub(crate) revenue: f64,
    pub(crate) completions: u64,
}

/// Per group: distinct selected visitors with a carrying event, their revenue in the range,
/// and the number of carrying events.
pub(crate) fn breakdown<G: Grouping + Clone + Send>(
    v: &View,
    grouping: &mut G,
) -> Vec<GroupTotals> {
    let words = v.visitors.div_ceil(64);
    match grouping.bound() {
        Some(n) if n.saturating_mul(words * 8) <= v.bitset_bytes => {
            breakdown_by_bitsets(v, grouping, n)
        }
        _ => breakdown_by_pairs(v, grouping),
    }
}

/// Per group, a bitset of the visitors seen (allocated at the group's first row) and the
/// group's rows.
struct GroupSets {
    words: usize,
    sets: Vec<Option<Box<[u64]>>>,
    rows: Vec<u64>,
}

impl GroupSets {
    fn new(n: usize, visitors: usize) -> Self {
        GroupSets {
            words: visitors.div_ceil(64),
            sets: vec![None; n],
            rows: vec![0; n],
        }
    }

    #[inline]
    fn add(&mut self, g: usize, who: u32) {
        self.rows[g] += 1;
        let words = self.words;
        let set = self.sets[g].get_or_insert_with(|| vec![0u64; words].into_boxed_slice());
        set[who as usize / 64] |= 1u64 << (who % 64);
    }

    /// Adds `other`'s visitors and rows to these.
    fn merge(&mut self, other: GroupSets) {
        for (g, set) in other.sets.into_iter().enumerate() {
            let Some(set) = set else { continue };
            match &mut self.sets[g] {
                Some(mine) => mine.iter_mut().zip(set.iter()).for_each(|(a, b)| *a |= b),
                slot @ None => *slot = Some(set),
            }
            self.rows[g] += other.rows[g];
        }
    }
}

/// [`breakdown`] for few groups: a visitor bitset per group, the rows split between the cores
/// and the bitsets merged.
fn breakdown_by_bitsets<G: Grouping + Clone + Send>(
    v: &View,
    grouping: &G,
    n: usize,
) -> Vec<GroupTotals> {
    let blocks = v.blocks();
    let threads = v.threads.min(blocks.len().div_ceil(16)).max(1);
    let per = blocks.len().div_ceil(threads).max(1);
    let scan = |part: &[(usize, usize, usize)], mut grouping: G| {
        let mut sets = GroupSets::new(n, v.visitors);
        let mut mask = vec![0u8; BLOCK];
        let mut groups = vec![NO_GROUP; BLOCK];
        for &(c, first, last) in part {
            let chunk = &v.chunks[c];
            let len = last - first;
            let (mask, groups) = (&mut mask[..len], &mut groups[..len]);
            v.mark(chunk, first, mask);
            grouping.fill(chunk, first, groups);
            let who = &chunk.visitor[first..last];
            for i in 0..len {
                if mask[i] & SELECTED != 0 && groups[i] != NO_GROUP {
                    sets.add(groups[i] as usize, who[i]);
                }
            }
        }
        sets
    };
    let mut parts = blocks.chunks(per);
    let first = parts.next().unwrap_or(&[]);
    let mut sets = std::thread::scope(|scope| {
        let others: Vec<_> = parts
            .map(|part| {
                let g = grouping.clone();
                scope.spawn(move || scan(part, g))
            })
            .collect();
        let mut sets = scan(first, grouping.clone());
        for h in others {
            if let Ok(other) = h.join() {
                sets.merge(other);
            }
        }
        sets
    });
    let revenue = visitor_revenue(v);
    let mut payers = BitSet::new(v.visitors);
    for who in revenue.keys() {
        payers.insert(*who as usize);
    }
    (0..n)
        .map(|g| {
            let Some(set) = sets.sets[g].take() else {
                return GroupTotals {
                    visitors: 0,
                    revenue: 0.0,
                    completions: 0,
                };
            };
            let visitors = set.iter().map(|w| u64::from(w.count_ones())).sum();
            let mut paid = 0.0;
            for (i, (w, p)) in set.iter().zip(&payers.words).enumerate() {
                let mut both = w & p;
                while both != 0 {
                    let who = (i * 64) as u32 + both.trailing_zeros();
                    paid += revenue.get(&who).copied().unwrap_or(0.0);
                    both &= both - 1;
                }
            }
            GroupTotals {
                visitors,
                revenue: paid,
                completions: sets.rows[g],
            }
        })
        .collect()
}

/// [`breakdown`] for many groups: `(group, visitor)` pairs, deduplicated per group.
fn breakdown_by_pairs(v: &View, grouping: &mut impl Grouping) -> Vec<GroupTotals> {
    let mut pairs = Pairs::default();
    let mut completions: Vec<u64> = Vec::new();
    let mut groups = vec![NO_GROUP; BLOCK];
    v.for_each_block(|chunk, first, mask| {
        let n = mask.len();
        let groups = &mut groups[..n];
        grouping.fill(chunk, first, groups);
        for i in 0..n {
            let g = groups[i];
            if mask[i] & SELECTED == 0 || g == NO_GROUP {
                continue;
            }
            let gi = g as usize;
            if gi >= completions.len() {
                completions.resize(gi + 1, 0);
            }
            completions[gi] += 1;
            // Repeats are dropped per group afterwards: a per-visitor "last group" check here
            // costs a random access per row and spares little when groups are many.
            pairs.push(g, chunk.visitor[first + i]);
        }
    });
    let n = grouping.len().max(completions.len());
    completions.resize(n, 0);
    let revenue = visitor_revenue(v);
    let distinct = pairs.distinct(n, v.visitors, |who| {
        revenue.get(&who).copied().unwrap_or(0.0)
    });
    distinct
        .into_iter()
        .zip(completions)
        .map(|((visitors, revenue), completions)| GroupTotals {
            visitors,
            revenue,
            completions,
        })
        .collect()
}

/// Per bucket: distinct selected visitors and sessions, and the revenue of payments in the
/// bucket by visitors selected in that bucket. `starts_us` are the bucket starts.
pub(crate) fn buckets(v: &View, starts_us: &[i64]) -> Vec<(u64, u64, Revenue)> {
    let n = starts_us.len();
    let Some((lo, hi)) = v.session_band() else {
        return vec![(0, 0, Revenue::default()); n];
    };
    let band = (hi - lo) as usize + 1;
    let bytes = n.saturating_mul((v.visitors.div_ceil(64) + band.div_ceil(64)) * 8);
    if bytes <= v.bitset_bytes {
        buckets_by_bitsets(v, starts_us, lo, band)
    } else {
        buckets_by_pairs(v, starts_us)
    }
}

/// The bucket of each time of a block: `None` before the first start.
fn bucket_of(starts_us: &[i64], t: i64) -> Option<u32> {
    let i = starts_us.partition_point(|&s| s <= t);
    (i > 0).then(|| (i - 1) as u32)
}

/// [`buckets`] for few buckets: a visitor bitset and a session bitset per bucket.
fn buckets_by_bitsets(
    v: &View,
    starts_us: &[i64],
    lo: u32,
    band: usize,
) -> Vec<(u64, u64, Revenue)> {
    let n = starts_us.len();
    let mut visitors = GroupSets::new(n, v.visitors);
    let mut sessions = GroupSets::new(n, band);
    v.for_each_block(|chunk, first, mask| {
        let ts = &chunk.ts[first..first + mask.len()];
        let who = &chunk.visitor[first..first + mask.len()];
        let session = &chunk.session[first..first + mask.len()];
        let mut current: Option<(i64, i64, u32)> = None;
        for i in 0..mask.len() {
            if mask[i] & SELECTED == 0 {
                continue;
            }
            let t = ts[i];
            // Rows are mostly in time order: reuse the last bucket while its bounds hold.
            let b = match current {
                Some((from, to, b)) if t >= from && t < to => b,
                _ => {
                    let Some(b) = bucket_of(starts_us, t) else {
                        continue;
                    };
                    let to = starts_us.get(b as usize + 1).copied().unwrap_or(i64::MAX);
                    current = Some((starts_us[b as usize], to, b));
                    b
                }
            };
            visitors.add(b as usize, who[i]);
            sessions.add(b as usize, session[i] - lo);
        }
    });
    let count = |sets: &GroupSets, b: usize| -> u64 {
        sets.sets[b]
            .as_ref()
            .map_or(0, |s| s.iter().map(|w| u64::from(w.count_ones())).sum())
    };
    let filtered = v.selection.is_some();
    let mut revenue = vec![Revenue::default(); n];
    v.for_each_payment(|chunk, p| {
        let r = p.row as usize;
        let Some(b) = bucket_of(starts_us, chunk.ts[r]) else {
            return;
        };
        let who = chunk.visitor[r] as usize;
        let selected = !filtered
            || visitors.sets[b as usize]
                .as_ref()
                .is_some_and(|s| s[who / 64] & (1 << (who % 64)) != 0);
        if selected {
            revenue_of(p, &mut revenue[b as usize]);
        }
    });
    (0..n)
        .map(|b| (count(&visitors, b), count(&sessions, b), revenue[b]))
        .collect()
}

/// [`buckets`] for many buckets: `(bucket, id)` pairs, deduplicated per bucket.
fn buckets_by_pairs(v: &View, starts_us: &[i64]) -> Vec<(u64, u64, Revenue)> {
    let n = starts_us.len();
    let bucket = |t: i64| bucket_of(starts_us, t);
    let filtered = v.selection.is_some();
    let mut payer = BitSet::new(v.visitors);
    let mut pays: Vec<(u32, u32, PaymentRow)> = Vec::new();
    v.for_each_payment(|chunk, p| {
        let r = p.row as usize;
        if let Some(b) = bucket(chunk.ts[r]) {
            payer.insert(chunk.visitor[r] as usize);
            pays.push((b, chunk.visitor[r], *p));
        }
    });
    let Some((lo, hi)) = v.session_band() else {
        return vec![(0, 0, Revenue::default()); n];
    };
    let mut visitor_pairs = Pairs::default();
    let mut session_pairs = Pairs::default();
    let mut last_v = vec![u32::MAX; v.visitors];
    let mut last_s = vec![u32::MAX; (hi - lo) as usize + 1];
    let mut paying_in: HashSet<(u32, u32)> = HashSet::new();
    v.for_each_block(|chunk, first, mask| {
        for (i, m) in mask.iter().enumerate() {
            if m & SELECTED == 0 {
                continue;
            }
            let r = first + i;
            let Some(b) = bucket(chunk.ts[r]) else {
                continue;
            };
            let who = chunk.visitor[r];
            if last_v[who as usize] != b {
                last_v[who as usize] = b;
                visitor_pairs.push(b, who);
                if filtered && payer.contains(who as usize) {
                    paying_in.insert((b, who));
                }
            }
            let s = chunk.session[r] - lo;
            if last_s[s as usize] != b {
                last_s[s as usize] = b;
                session_pairs.push(b, s);
            }
        }
    });
    let visitors = visitor_pairs.distinct(n, v.visitors, |_| 0.0);
    let sessions = session_pairs.distinct(n, last_s.len(), |_| 0.0);
    let mut revenue = vec![Revenue::default(); n];
    for (b, who, p) in &pays {
        if !filtered || paying_in.contains(&(*b, *who)) {
            revenue_of(p, &mut revenue[*b as usize]);
        }
    }
    (0..n)
        .map(|i| (visitors[i].0, sessions[i].0, revenue[i]))
        .collect()
}

/// The earliest and latest event time of the chunks, µs.
pub(crate) fn time_span(chunks: &[Arc<Chunk>]) -> Option<(i64, i64)> {
    chunks
        .iter()
        .filter(|c| c.len() > 0)
        .map(|c| (c.min_ts, c.max_ts))
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

//! The query kernels over resident chunks: overview, breakdown groups and time buckets, with the
//! meanings of DESIGN §4 (the same the DataFusion plans of `query::plan` compute, checked
//! against the reference model by the property tests).
//!
//! Distinct counts are work on dense numbers: a bitset over the visitors, arrays over the band
//! of session numbers a range touches, and per-group deduplication by scattering `(group, id)`
//! pairs into one array and marking each group's ids in a reused bitset.

use std::collections::HashMap;
use std::sync::Arc;

use crate::query::result::Revenue;
use crate::resident::chunk::{Chunk, PaymentRow, kind_code};
use crate::resident::parts::{
    BucketPart, BucketSets, Fast, GroupKey, GroupPart, GroupSet, Members, OverviewPart, Pay,
    SessionTotals, add_revenue,
};
use crate::resident::revenue::VisitorSums;
use crate::resident::select::Selection;
use crate::session::SESSION_TIMEOUT_US;

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

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// Adds every member of `other`.
    fn union_with(&mut self, other: &BitSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        self.words
            .iter_mut()
            .zip(&other.words)
            .for_each(|(a, b)| *a |= b);
    }

    /// The members of `self` that `other` lacks.
    pub(crate) fn difference<'a>(&'a self, other: &'a BitSet) -> impl Iterator<Item = u32> + 'a {
        self.words.iter().enumerate().flat_map(move |(i, w)| {
            let mut left = w & !other.words.get(i).copied().unwrap_or(0);
            std::iter::from_fn(move || {
                (left != 0).then(|| {
                    let bit = left.trailing_zeros();
                    left &= left - 1;
                    (i * 64) as u32 + bit
                })
            })
        })
    }
}

/// How breakdowns and time series deduplicate visitors and sessions per group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupCounting {
    /// Chosen by size: whole-website bitsets per group while they fit in cache, then one range
    /// of 65,536 visitors at a time, then sorted `(group, id)` pairs.
    #[default]
    Auto,
    /// One bitset over every visitor per group, when within the bitset bytes.
    Bitsets,
    /// Breakdowns one range of visitors at a time, when within the bitset bytes.
    Ranges,
    /// Sorted `(group, id)` pairs always.
    Pairs,
}

/// Rows handled at a time: small enough for the masks and group numbers to stay in cache.
pub(crate) const BLOCK: usize = 4096;
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
    /// Every session number of the chunks is below this.
    pub(crate) sessions: usize,
    /// Most bytes of per-group bitsets one answer may hold; past it, groups are deduplicated
    /// from `(group, id)` pairs instead.
    pub(crate) bitset_bytes: usize,
    /// Which way groups are deduplicated.
    pub(crate) counting: GroupCounting,
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

    /// Calls `f(chunk, row, mask)` for each of `rows` (ascending) of chunk `c` in the range,
    /// marking only the blocks that hold them.
    fn for_each_row_of(&self, c: usize, rows: &[u32], mut f: impl FnMut(&Chunk, usize, u8)) {
        let chunk = &self.chunks[c];
        let span = chunk.span(self.start, self.end);
        let mut rows = &rows[rows.partition_point(|&r| (r as usize) < span.start)..];
        let mut mask = vec![0u8; BLOCK];
        while let Some(&first) = rows.first() {
            let first = first as usize;
            if first >= span.end {
                break;
            }
            let last = (first + BLOCK).min(span.end);
            let m = &mut mask[..last - first];
            self.mark(chunk, first, m);
            let n = rows.partition_point(|&r| (r as usize) < last);
            for &r in &rows[..n] {
                f(chunk, r as usize, m[r as usize - first]);
            }
            rows = &rows[n..];
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

    /// The rows that can be in the range (a bound for sizing buffers).
    fn rows(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.span(self.start, self.end).len())
            .sum()
    }

    /// The payments of the chunks that overlap the range (a bound for sizing tables).
    fn payments(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| !c.span(self.start, self.end).is_empty())
            .map(|c| c.payments.len())
            .sum()
    }

    /// Calls `f(payment)` for every payment in the range (selected or not).
    fn for_each_payment(&self, mut f: impl FnMut(&PaymentRow)) {
        for chunk in self.chunks {
            if chunk.payments.is_empty() || chunk.span(self.start, self.end).is_empty() {
                continue;
            }
            for p in &chunk.payments {
                if p.ts >= self.start && p.ts < self.end {
                    f(p);
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
            let (lo, hi) = if !check && span.len() == chunk.len() && !span.is_empty() {
                // Every row is in the range: the chunk's own band, known since it was built.
                (chunk.sessions.0, chunk.sessions.1 - 1)
            } else {
                let (mut lo, mut hi) = (u32::MAX, 0);
                for r in span {
                    if check && !(chunk.ts[r] >= self.start && chunk.ts[r] < self.end) {
                        continue;
                    }
                    let s = chunk.session[r];
                    lo = lo.min(s);
                    hi = hi.max(s);
                }
                (lo, hi)
            };
            if lo <= hi {
                band = Some(band.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        band
    }
}

/// Session flags: page views seen (0, 1, 2 = more), a goal seen, the session seen at all.
const PV_MASK: u8 = 0b11;
const GOAL: u8 = 0b100;
const SEEN: u8 = 0b1000;
const SESSION_SELECTED: u8 = 0b1_0000;

/// Which session states an overview part keeps for later merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Every session's (a delta part: few rows).
    All,
    /// Those whose last row lies within [`TAIL_US`] of the part's newest row (a base part).
    Tail,
}

/// A later page view continues a session only within the session timeout of its last event,
/// so a base part keeps the states of the sessions that ended less than this before its
/// newest row. A goal may continue an older session; the merge then finds no state and the
/// answer is scanned whole.
const TAIL_US: i64 = 2 * SESSION_TIMEOUT_US;

/// The overview's part of the view's chunks (DESIGN §4): session metrics over every event of a
/// selected session in the range, revenue of selected visitors' payments in the range.
pub(crate) fn overview(v: &View, keep: Keep) -> OverviewPart {
    let horizon = match keep {
        Keep::All => i64::MIN,
        Keep::Tail => newest(v).map_or(i64::MIN, |t| t.saturating_sub(TAIL_US)),
    };
    let owned = owned_sessions(v.chunks);
    // Rows whose session another chunk owns: folded first, merged when the owner is counted.
    let mut visitors = BitSet::new(v.visitors);
    let mut foreign_rows: Vec<(u32, SessionState)> = Vec::new();
    for (c, chunk) in v.chunks.iter().enumerate() {
        let (lo, hi) = owned[c];
        if chunk.sessions.0 >= lo && chunk.sessions.1 <= hi {
            continue; // it owns every session it holds
        }
        let mut fold = |chunk: &Chunk, r: usize, m: u8| {
            let s = chunk.session[r];
            if m & IN_RANGE == 0 || (s >= lo && s < hi) {
                return;
            }
            let selected = m & SELECTED != 0;
            if selected {
                visitors.insert(chunk.visitor[r] as usize);
            }
            let mut state = SessionState::default();
            state.add(chunk.ts[r], chunk.kind[r], selected);
            foreign_rows.push((s, state));
        };
        if lo <= chunk.new_sessions_from && chunk.sessions.1 <= hi {
            // It owns every session that began in it: only the others' rows can be foreign.
            v.for_each_row_of(c, &chunk.older_session_rows, &mut fold);
        } else {
            v.for_each_block_of(c, |chunk, first, mask| {
                for (i, m) in mask.iter().enumerate() {
                    fold(chunk, first + i, *m);
                }
            });
        }
    }
    // Sorted by session (a radix sort: there are many, as chunks hold a fixed number of rows,
    // so a busier website has both more chunk boundaries and more sessions crossing each one:
    // 57,783 sessions at 40M events against 518 at 4M), then one state per session, so that
    // each owner walks its band's foreign states in step with its slots.
    radsort::sort_by_key(&mut foreign_rows, |(s, _)| *s);
    let mut foreign: Vec<(u32, SessionState)> = Vec::with_capacity(foreign_rows.len());
    for (s, state) in foreign_rows {
        match foreign.last_mut() {
            Some((last, folded)) if *last == s => folded.merge(&state),
            _ => foreign.push((s, state)),
        }
    }
    // Each chunk counts the sessions it owns, the cores taking chunks in turn.
    let threads = v.threads.min(v.chunks.len()).max(1);
    let (foreign, owned) = (foreign.as_slice(), &owned);
    let scans: Vec<OwnedScan> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads)
            .map(|t| scope.spawn(move || owned_totals(v, owned, foreign, horizon, t, threads)))
            .collect();
        let mut scans = vec![owned_totals(v, owned, foreign, horizon, 0, threads)];
        scans.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        scans
    });
    let mut totals = SessionTotals::default();
    let mut present = BitSet::new(v.sessions);
    let mut states: Fast<u32, SessionState> = HashMap::default();
    let mut merged: Vec<u32> = Vec::new();
    for scan in scans {
        visitors.union_with(&scan.visitors);
        present.union_with(&scan.present);
        totals.merge(&scan.totals);
        states.extend(scan.kept);
        merged.extend(scan.merged);
    }
    merged.sort_unstable();
    // Sessions none of whose rows lie in their owner: counted from their foreign rows alone.
    let mut merged = merged.as_slice();
    for (s, state) in foreign {
        while merged.first().is_some_and(|m| m < s) {
            merged = &merged[1..];
        }
        if merged.first() == Some(s) {
            continue;
        }
        totals.add(state);
        present.insert(*s as usize);
        if state.last >= horizon {
            states.insert(*s, *state);
        }
    }
    let mut payments = Vec::with_capacity(v.payments());
    v.for_each_payment(|p| payments.push((p.visitor, *p)));
    let pay: VisitorSums<Pay> = VisitorSums::fold(payments, |total: &mut Pay, p: PaymentRow| {
        total.add(p.amount, p.refunded, p.renewal)
    });
    let (mut revenue, mut payers) = (Revenue::default(), 0);
    for (who, p) in pay.iter() {
        if visitors.contains(who as usize) {
            revenue.new += p.revenue.new;
            revenue.renewal += p.revenue.renewal;
            revenue.refund += p.revenue.refund;
            payers += u64::from(p.paid);
        }
    }
    OverviewPart {
        visitor_count: visitors.count(),
        visitors,
        totals,
        present,
        states,
        all_states: keep == Keep::All,
        pay,
        revenue,
        payers,
    }
}

/// The newest time of a row that can be in the view's range.
fn newest(v: &View) -> Option<i64> {
    v.chunks
        .iter()
        .filter(|c| !c.span(v.start, v.end).is_empty())
        .map(|c| c.max_ts.min(v.end.saturating_sub(1)))
        .max()
}

/// One session's rows seen so far: first and last time, page views (0, 1, 2 = more), a goal,
/// and whether one of its rows is selected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionState {
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

    pub(crate) fn merge(&mut self, o: &SessionState) {
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        let pv = ((self.flags & PV_MASK) + (o.flags & PV_MASK)).min(2);
        self.flags = ((self.flags | o.flags) & !PV_MASK) | pv;
    }

    pub(crate) fn selected(&self) -> bool {
        self.flags & SESSION_SELECTED != 0
    }

    pub(crate) fn bounced(&self) -> bool {
        self.flags & PV_MASK == 1 && self.flags & GOAL == 0
    }

    pub(crate) fn duration_us(&self) -> u64 {
        u64::try_from(self.last - self.first).unwrap_or(0)
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

/// What the scan of the sessions some chunks own found.
struct OwnedScan {
    /// Visitors of their selected rows.
    visitors: BitSet,
    /// The sessions with a row in the range.
    present: BitSet,
    totals: SessionTotals,
    /// States of sessions that ended at or after the horizon.
    kept: Vec<(u32, SessionState)>,
    /// Foreign sessions merged into their owner's rows.
    merged: Vec<u32>,
}

/// [`OwnedScan`] of the sessions owned by chunks `part`, `part + parts`, …, with their foreign
/// rows merged in; keeps the states of sessions whose last row is at or after `horizon`.
fn owned_totals(
    v: &View,
    owned: &[(u32, u32)],
    foreign: &[(u32, SessionState)],
    horizon: i64,
    part: usize,
    parts: usize,
) -> OwnedScan {
    let mut out = OwnedScan {
        visitors: BitSet::new(v.visitors),
        present: BitSet::new(v.sessions),
        totals: SessionTotals::default(),
        kept: Vec::new(),
        merged: Vec::new(),
    };
    // One slot per owned session, so that a row touches one cache line.
    let mut slots: Vec<Slot> = Vec::new();
    for c in (part..v.chunks.len()).step_by(parts) {
        let (lo, hi) = owned[c];
        let width = (hi - lo) as usize;
        if width == 0 || v.chunks[c].span(v.start, v.end).is_empty() {
            continue;
        }
        slots.clear();
        slots.resize(width, Slot::EMPTY);
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
                let slot = &mut slots[s];
                slot.first = slot.first.min(t);
                slot.last = slot.last.max(t);
                slot.visitor = who[i];
                slot.flags = add_flags(slot.flags, kinds[i], m & SELECTED != 0);
            }
        });
        // The foreign states of this band, ascending like the slots.
        let mut foreign = &foreign[foreign.partition_point(|(s, _)| *s < lo)..];
        for (s, slot) in slots.iter().enumerate() {
            let id = lo + s as u32;
            let mut state = SessionState {
                first: slot.first,
                last: slot.last,
                flags: slot.flags,
            };
            if state.flags & SEEN == 0 {
                continue;
            }
            // A session is one visitor's: its visitor is selected when one of its rows is.
            if state.selected() {
                out.visitors.insert(slot.visitor as usize);
            }
            while foreign.first().is_some_and(|(f, _)| *f < id) {
                foreign = &foreign[1..];
            }
            if let Some((_, f)) = foreign.first().filter(|(f, _)| *f == id) {
                state.merge(f);
                out.merged.push(id);
            }
            out.present.insert(id as usize);
            out.totals.add(&state);
            if state.last >= horizon {
                out.kept.push((id, state));
            }
        }
    }
    out
}

/// A session's rows in its owner chunk, as [`owned_totals`] gathers them.
#[derive(Clone, Copy)]
struct Slot {
    first: i64,
    last: i64,
    visitor: u32,
    flags: u8,
}

impl Slot {
    const EMPTY: Slot = Slot {
        first: i64::MAX,
        last: i64::MIN,
        visitor: 0,
        flags: 0,
    };
}

/// Per visitor, revenue (`new + renewal`) of their payments in the range.
fn visitor_revenue(v: &View) -> VisitorSums {
    let mut pairs = Vec::with_capacity(v.payments());
    v.for_each_payment(|p| {
        if !p.refunded {
            pairs.push((p.visitor, p.amount));
        }
    });
    VisitorSums::from_pairs(pairs)
}

/// `(group, id)` pairs gathered by a scan, deduplicated per group afterwards.
#[derive(Default)]
pub(crate) struct Pairs {
    groups: Vec<u32>,
    ids: Vec<u32>,
}

impl Pairs {
    /// Room for `n` pairs reserved up front (only address space until pairs are written), so
    /// that gathering never copies what it has gathered.
    fn with_capacity(n: usize) -> Pairs {
        Pairs {
            groups: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
        }
    }

    #[inline]
    fn push(&mut self, group: u32, id: u32) {
        self.groups.push(group);
        self.ids.push(id);
    }

    /// For each of `n_groups` groups, its distinct ids (ascending) and the total of `weights`
    /// over them. Ids are below `id_space`.
    fn distinct(
        self,
        n_groups: usize,
        id_space: usize,
        weights: &VisitorSums,
    ) -> Vec<(Vec<u32>, f64)> {
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
        let mut out = Vec::with_capacity(n_groups);
        for g in 0..n_groups {
            let ids = &mut scattered[starts[g]..starts[g + 1]];
            // Marking in one reused bitset costs a (cached) random access per id; sorting costs
            // more from a few hundred ids on.
            let unique = if ids.len() >= 256 {
                let marks = marks.get_or_insert_with(|| BitSet::new(id_space));
                let mut unique = Vec::new();
                for id in ids.iter() {
                    if marks.insert(*id as usize) {
                        unique.push(*id);
                    }
                }
                if unique.len() * 8 >= marks.words.len() {
                    // Many: read them back in order from the bitset, clearing it.
                    unique.clear();
                    for (i, w) in marks.words.iter_mut().enumerate() {
                        let mut left = std::mem::take(w);
                        while left != 0 {
                            unique.push((i * 64) as u32 + left.trailing_zeros());
                            left &= left - 1;
                        }
                    }
                } else {
                    for id in &unique {
                        marks.remove(*id as usize);
                    }
                    unique.sort_unstable();
                }
                unique
            } else {
                ids.sort_unstable();
                let mut unique = ids.to_vec();
                unique.dedup();
                unique
            };
            let w = weights.sum_of_sorted(&unique);
            out.push((unique, w));
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
    /// The dictionary codes of the values group `g` stands for.
    fn key(&self, g: u32) -> GroupKey;
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

/// A breakdown's part of the view's chunks. Per group: distinct selected visitors with a
/// carrying event, their revenue in the range, and the number of carrying events.
pub(crate) fn breakdown<G: Grouping + Clone + Send + Sync>(
    v: &View,
    grouping: &mut G,
) -> GroupPart {
    let whole_bytes = |n: usize| n.saturating_mul(v.visitors.div_ceil(64) * 8);
    let ranges_fit = |n: usize| n < 1 << 16 && n.saturating_mul(RANGE_WORDS * 8) <= v.bitset_bytes;
    match (v.counting, grouping.bound()) {
        (GroupCounting::Auto, Some(n))
            if whole_bytes(n) <= SMALL_BITSETS_BYTES.min(v.bitset_bytes) =>
        {
            breakdown_by_bitsets(v, grouping, n)
        }
        (GroupCounting::Bitsets, Some(n)) if whole_bytes(n) <= v.bitset_bytes => {
            breakdown_by_bitsets(v, grouping, n)
        }
        (GroupCounting::Auto | GroupCounting::Ranges, Some(n)) if ranges_fit(n) => {
            breakdown_by_ranges(v, grouping, n)
        }
        _ => breakdown_by_pairs(v, grouping),
    }
}

/// Most bytes of whole-website group bitsets a thread sets bits in at random: about what the
/// caches hold. Past it, groups are deduplicated one range of visitors at a time.
const SMALL_BITSETS_BYTES: usize = 8 << 20;

/// Splits the view's blocks between the cores and runs `scan` on each share.
fn scan_shares<T: Send>(v: &View, scan: impl Fn(&[(usize, usize, usize)]) -> T + Sync) -> Vec<T> {
    let blocks = v.blocks();
    let threads = v.threads.min(blocks.len().div_ceil(16)).max(1);
    let per = blocks.len().div_ceil(threads).max(1);
    let mut shares = blocks.chunks(per);
    let first = shares.next().unwrap_or(&[]);
    let scan = &scan;
    std::thread::scope(|scope| {
        let others: Vec<_> = shares
            .map(|share| scope.spawn(move || scan(share)))
            .collect();
        let mut out = vec![scan(first)];
        out.extend(others.into_iter().filter_map(|h| h.join().ok()));
        out
    })
}

/// Calls `f(group, visitor)` for each selected row with the breakdown's values in the blocks
/// of `share`.
fn for_each_grouped<G: Grouping>(
    v: &View,
    share: &[(usize, usize, usize)],
    mut grouping: G,
    mut f: impl FnMut(u32, u32),
) {
    let mut mask = vec![0u8; BLOCK];
    let mut groups = vec![NO_GROUP; BLOCK];
    for &(c, first, last) in share {
        let chunk = &v.chunks[c];
        let len = last - first;
        let (mask, groups) = (&mut mask[..len], &mut groups[..len]);
        v.mark(chunk, first, mask);
        grouping.fill(chunk, first, groups);
        let who = &chunk.visitor[first..last];
        for i in 0..len {
            if mask[i] & SELECTED != 0 && groups[i] != NO_GROUP {
                f(groups[i], who[i]);
            }
        }
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

    /// Group `g`'s members, numbered from `offset`.
    fn members(&mut self, g: usize, offset: u32) -> Members {
        self.sets[g]
            .take()
            .map_or_else(Members::default, |s| Members::bits(s, offset))
    }
}

/// [`breakdown`] for few groups: a visitor bitset per group, the rows split between the cores
/// and the bitsets merged.
fn breakdown_by_bitsets<G: Grouping + Clone + Send + Sync>(
    v: &View,
    grouping: &G,
    n: usize,
) -> GroupPart {
    let mut shares = scan_shares(v, |share| {
        let mut sets = GroupSets::new(n, v.visitors);
        for_each_grouped(v, share, grouping.clone(), |g, who| {
            sets.add(g as usize, who)
        });
        sets
    })
    .into_iter();
    let mut sets = shares
        .next()
        .unwrap_or_else(|| GroupSets::new(n, v.visitors));
    for other in shares {
        sets.merge(other);
    }
    let revenue = visitor_revenue(v);
    let mut out = GroupPart::default();
    for g in 0..n {
        let Some(set) = &sets.sets[g] else {
            continue;
        };
        let paid = revenue.sum_in_bits(set, 0);
        out.groups.insert(
            grouping.key(g as u32),
            GroupSet {
                visitors: sets.members(g, 0),
                paid,
                rows: sets.rows[g],
            },
        );
    }
    out.revenue = revenue;
    out
}

/// Visitor numbers per range of [`breakdown_by_ranges`]: one roaring container's span.
const RANGE_SHIFT: u32 = 16;
/// Words of one group's bitset over a range.
const RANGE_WORDS: usize = 1 << (RANGE_SHIFT - 6);
/// Keys per page of a range's list.
const RANGE_PAGE: usize = 8192;

/// One core's share of a ranged scan: per range of visitors, `group << 16 | visitor & 0xffff`
/// of each selected row (in pages, so that lists grow without copying), and rows per group.
struct RangedKeys {
    ranges: Vec<Vec<Vec<u32>>>,
    rows: Vec<u64>,
}

impl RangedKeys {
    #[inline]
    fn push(&mut self, group: u32, who: u32) {
        let pages = &mut self.ranges[(who >> RANGE_SHIFT) as usize];
        let page = match pages.last_mut() {
            Some(page) if page.len() < RANGE_PAGE => page,
            _ => {
                pages.push(Vec::with_capacity(RANGE_PAGE));
                pages.last_mut().unwrap_or_else(|| unreachable!())
            }
        };
        page.push((group << RANGE_SHIFT) | (who & ((1 << RANGE_SHIFT) - 1)));
        self.rows[group as usize] += 1;
    }
}

/// [`breakdown`] for more groups than whole-website bitsets suit: the scan files each selected
/// row's `(group, visitor)` under its range of 65,536 visitors; each range is then deduplicated
/// in one 8 KiB bitset per group, which stays in cache, and read back in order.
/// Work and memory grow with the rows read, not with groups × visitors. Needs fewer than
/// 65,536 groups, numbered alike by every clone of the grouping.
fn breakdown_by_ranges<G: Grouping + Clone + Send + Sync>(
    v: &View,
    grouping: &G,
    n: usize,
) -> GroupPart {
    let range_count = v.visitors.div_ceil(1 << RANGE_SHIFT).max(1);
    let shares = scan_shares(v, |share| {
        let mut keys = RangedKeys {
            ranges: vec![Vec::new(); range_count],
            rows: vec![0; n],
        };
        for_each_grouped(v, share, grouping.clone(), |g, who| keys.push(g, who));
        keys
    });
    let revenue = visitor_revenue(v);
    // Each core deduplicates a run of consecutive ranges, so that its members come out in
    // order and the cores' runs join end to end.
    let threads = v.threads.clamp(1, range_count);
    let per = range_count.div_ceil(threads);
    let dedup = |ranges: std::ops::Range<usize>| {
        let mut sets: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0); n];
        let mut slot_of = vec![u32::MAX; n];
        let mut bits: Vec<u64> = Vec::new();
        let mut touched: Vec<u32> = Vec::new();
        for r in ranges {
            for share in &shares {
                for page in &share.ranges[r] {
                    for key in page {
                        let (g, low) = ((key >> RANGE_SHIFT) as usize, key & 0xffff);
                        let mut slot = slot_of[g];
                        if slot == u32::MAX {
                            slot = touched.len() as u32;
                            slot_of[g] = slot;
                            touched.push(g as u32);
                            bits.resize(touched.len() * RANGE_WORDS, 0);
                        }
                        bits[slot as usize * RANGE_WORDS + low as usize / 64] |= 1 << (low % 64);
                    }
                }
            }
            let base = (r << RANGE_SHIFT) as u32;
            for (slot, g) in touched.iter().enumerate() {
                let words = &mut bits[slot * RANGE_WORDS..(slot + 1) * RANGE_WORDS];
                let (members, paid) = &mut sets[*g as usize];
                *paid += revenue.sum_in_bits(words, base);
                for (i, w) in words.iter_mut().enumerate() {
                    let mut left = std::mem::take(w);
                    while left != 0 {
                        members.push(base + (i * 64) as u32 + left.trailing_zeros());
                        left &= left - 1;
                    }
                }
                slot_of[*g as usize] = u32::MAX;
            }
            touched.clear();
        }
        sets
    };
    let mut per_core = std::thread::scope(|scope| {
        let dedup = &dedup;
        let others: Vec<_> = (1..threads)
            .map(|t| scope.spawn(move || dedup(t * per..((t + 1) * per).min(range_count))))
            .collect();
        let mut out = vec![dedup(0..per.min(range_count))];
        out.extend(others.into_iter().filter_map(|h| h.join().ok()));
        out
    })
    .into_iter();
    let mut sets = per_core.next().unwrap_or_default();
    for later in per_core {
        for (mine, (members, paid)) in sets.iter_mut().zip(later) {
            mine.0.extend(members);
            mine.1 += paid;
        }
    }
    let groups = sets.into_iter().enumerate().map(|(g, (visitors, paid))| {
        let rows: u64 = shares.iter().map(|s| s.rows[g]).sum();
        (visitors, paid, rows)
    });
    sorted_part(grouping, groups, revenue)
}

/// The part of groups numbered in order, each with its members (ascending), their revenue
/// and its rows; groups without rows are left out.
fn sorted_part(
    grouping: &impl Grouping,
    groups: impl Iterator<Item = (Vec<u32>, f64, u64)>,
    revenue: VisitorSums,
) -> GroupPart {
    let mut out = GroupPart::default();
    for (g, (visitors, paid, rows)) in groups.enumerate() {
        if rows > 0 {
            let set = GroupSet {
                visitors: Members::Sorted(visitors),
                paid,
                rows,
            };
            out.groups.insert(grouping.key(g as u32), set);
        }
    }
    out.revenue = revenue;
    out
}

/// [`breakdown`] for many groups: `(group, visitor)` pairs, deduplicated per group.
fn breakdown_by_pairs(v: &View, grouping: &mut impl Grouping) -> GroupPart {
    let mut pairs = Pairs::with_capacity(v.rows());
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
    let distinct = pairs.distinct(n, v.visitors, &revenue);
    let groups = distinct
        .into_iter()
        .zip(completions)
        .map(|((visitors, paid), rows)| (visitors, paid, rows));
    sorted_part(grouping, groups, revenue)
}

/// A time series' part of the view's chunks. Per bucket: distinct selected visitors and
/// sessions, and the revenue of payments in the bucket by visitors selected in that bucket.
/// `starts_us` are the bucket starts.
pub(crate) fn buckets(v: &View, starts_us: &[i64]) -> BucketPart {
    let n = starts_us.len();
    let mut part = BucketPart {
        buckets: (0..n).map(|_| BucketSets::default()).collect(),
        pay: HashMap::with_capacity_and_hasher(v.payments(), Default::default()),
    };
    v.for_each_payment(|p| {
        if let Some(b) = bucket_of(starts_us, p.ts) {
            let who = p.visitor;
            add_revenue(
                part.pay.entry((b, who)).or_default(),
                p.amount,
                p.refunded,
                p.renewal,
            );
        }
    });
    let Some((lo, hi)) = v.session_band() else {
        return part;
    };
    let band = (hi - lo) as usize + 1;
    let bytes = n.saturating_mul((v.visitors.div_ceil(64) + band.div_ceil(64)) * 8);
    if bytes <= v.bitset_bytes && v.counting != GroupCounting::Pairs {
        buckets_by_bitsets(v, starts_us, lo, band, &mut part);
    } else {
        buckets_by_pairs(v, starts_us, lo, hi, &mut part);
    }
    for ((b, who), r) in &part.pay {
        let bucket = &mut part.buckets[*b as usize];
        if bucket.visitors.contains(*who) {
            bucket.revenue.new += r.new;
            bucket.revenue.renewal += r.renewal;
            bucket.revenue.refund += r.refund;
        }
    }
    part
}

/// The bucket of each time of a block: `None` before the first start.
fn bucket_of(starts_us: &[i64], t: i64) -> Option<u32> {
    let i = starts_us.partition_point(|&s| s <= t);
    (i > 0).then(|| (i - 1) as u32)
}

/// [`buckets`] for few buckets: a visitor bitset and a session bitset per bucket.
fn buckets_by_bitsets(v: &View, starts_us: &[i64], lo: u32, band: usize, out: &mut BucketPart) {
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
    for (b, bucket) in out.buckets.iter_mut().enumerate() {
        bucket.visitors = visitors.members(b, 0);
        bucket.sessions = sessions.members(b, lo);
    }
}

/// [`buckets`] for many buckets: `(bucket, id)` pairs, deduplicated per bucket.
fn buckets_by_pairs(v: &View, starts_us: &[i64], lo: u32, hi: u32, out: &mut BucketPart) {
    let n = starts_us.len();
    let bucket = |t: i64| bucket_of(starts_us, t);
    let mut visitor_pairs = Pairs::with_capacity(v.rows());
    let mut session_pairs = Pairs::with_capacity(v.rows());
    let mut last_v = vec![u32::MAX; v.visitors];
    let mut last_s = vec![u32::MAX; (hi - lo) as usize + 1];
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
            }
            let s = chunk.session[r] - lo;
            if last_s[s as usize] != b {
                last_s[s as usize] = b;
                session_pairs.push(b, s);
            }
        }
    });
    let visitors = visitor_pairs.distinct(n, v.visitors, &VisitorSums::default());
    let sessions = session_pairs.distinct(n, last_s.len(), &VisitorSums::default());
    for ((bucket, (vs, _)), (ss, _)) in out.buckets.iter_mut().zip(visitors).zip(sessions) {
        bucket.visitors = Members::Sorted(vs);
        bucket.sessions = Members::Sorted(ss.into_iter().map(|s| s + lo).collect());
    }
}

/// The earliest and latest event time of the chunks, µs.
pub(crate) fn time_span(chunks: &[Arc<Chunk>]) -> Option<(i64, i64)> {
    chunks
        .iter()
        .filter(|c| c.len() > 0)
        .map(|c| (c.min_ts, c.max_ts))
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

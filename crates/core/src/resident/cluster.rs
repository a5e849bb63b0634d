//! Numbering a website's visitors by country: at the first snapshot of a website's columns in
//! which no chunk is held elsewhere (normally the first, which loads them all), its dense
//! visitor numbers are given again so that the visitors of one country (by the first row each
//! was seen in) hold consecutive numbers, in their old order. Visitors first seen later are
//! numbered after them; once they are a quarter as many as those numbered by country
//! ([`due`]), the next snapshot in which no chunk is held numbers them all again.
//!
//! Distinct visitors are counted by setting bits in per-group visitor bitsets. Numbered in
//! order of first sight, a country's visitors are spread over the whole number range, so each
//! of a breakdown's group bitsets spans all of it: at 5M visitors, twelve groups are 7.5 MB a
//! core, past the caches, and every row's bit is a cache miss. Numbered by country, the bits a
//! breakdown by country, region or city sets (and those of a filter on a country) fall in one
//! band per country, so the lines touched are about one bitset's worth.
//!
//! Answers do not depend on the numbering: numbers only name visitors within one snapshot.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::resident::chunk::{Chunk, SiteDicts, coded_index};
use crate::schema::col as c;

/// New visitors since the last numbering by country before the next one, at least: fewer
/// touch too few cache lines to matter, and each numbering costs a pass over every row.
const RENUMBER_AFTER_MIN: u32 = 65_536;

/// Whether a website with `visitors` numbered, `clustered` of them when last numbered by
/// country (`None`: never), is due to be numbered again: first, then once the visitors seen
/// since are a quarter of those (at least [`RENUMBER_AFTER_MIN`]).
pub(crate) fn due(clustered: Option<u32>, visitors: u32) -> bool {
    clustered.is_none_or(|n| visitors.saturating_sub(n) >= (n / 4).max(RENUMBER_AFTER_MIN))
}

/// The new number of each old visitor number below `visitors`: visitors ordered by the country
/// code of the first row each appears in (chunks in the given order), ties by old number.
pub(crate) fn by_country(chunks: &[&Chunk], visitors: usize) -> Result<Vec<u32>> {
    let country = coded_index(c::COUNTRY_CODE)?;
    let unseen = u32::MAX;
    let mut first = vec![unseen; visitors];
    let mut block = Vec::new();
    for chunk in chunks {
        block.resize(chunk.len(), 0);
        chunk.codes[country].widen_into(0, &mut block);
        for (&v, &code) in chunk.visitor.iter().zip(&block) {
            let slot = first.get_mut(v as usize).ok_or_else(|| {
                Error::Internal(format!("visitor number {v} not below {visitors}"))
            })?;
            if *slot == unseen {
                *slot = code;
            }
        }
    }
    // A counting sort by code; visitors never seen (none, normally) go last.
    let codes = first
        .iter()
        .filter(|&&k| k != unseen)
        .max()
        .map_or(0, |m| *m as usize + 1);
    let mut starts = vec![0u32; codes + 1];
    for &k in &first {
        let k = if k == unseen { codes } else { k as usize };
        starts[k] += 1;
    }
    let mut next = 0u32;
    for s in &mut starts {
        let n = *s;
        *s = next;
        next += n;
    }
    Ok(first
        .iter()
        .map(|&k| {
            let k = if k == unseen { codes } else { k as usize };
            let n = starts[k];
            starts[k] += 1;
            n
        })
        .collect())
}

/// Gives `chunk`'s visitors their numbers in `renumber`, and the chunk a new id: a part of an
/// answer scanned from it before (`resident::cache`) holds the old numbers and must not be
/// merged with scans of it.
pub(crate) fn renumber(chunk: &mut Chunk, renumber: &[u32]) {
    chunk.renew_id();
    for v in &mut chunk.visitor {
        *v = renumber[*v as usize];
    }
    for p in &mut chunk.payments {
        p.visitor = renumber[p.visitor as usize];
    }
}

/// Numbers the visitors of `chunks` (every chunk of the website) and of `dicts` by country;
/// whether it did. Leaves them as they are when a chunk is shared: a snapshot being read
/// holds it.
pub(crate) fn cluster(chunks: &mut [&mut Arc<Chunk>], dicts: &mut SiteDicts) -> Result<bool> {
    if chunks.iter_mut().any(|c| Arc::get_mut(c).is_none()) {
        return Ok(false);
    }
    let visitors = dicts.visitors.len() as usize;
    let order = {
        let refs: Vec<&Chunk> = chunks.iter().map(|c| &***c).collect();
        by_country(&refs, visitors)?
    };
    for chunk in chunks.iter_mut().filter_map(|c| Arc::get_mut(c)) {
        renumber(chunk, &order);
    }
    dicts.visitors.renumber(&order);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SessionAttrs;
    use crate::schema::{StoredEvent, StoredPayment, kind, to_batch, visitor_hash};

    /// A page view (or, with `paid`, a payment) of `visitor` from `country` at second `t`.
    fn row(visitor: &str, country: &str, t: i64, paid: bool) -> StoredEvent {
        StoredEvent {
            website_id: "w".into(),
            ts_us: t * 1_000_000,
            kind: if paid { kind::PAYMENT } else { kind::PAGEVIEW },
            visitor_id: visitor.into(),
            session_id: format!("{visitor}-{country}"),
            event_id: format!("e{t}"),
            hostname: None,
            path: None,
            attrs: Arc::new(SessionAttrs {
                country_code: Some(country.into()),
                ..SessionAttrs::default()
            }),
            viewport_w: None,
            viewport_h: None,
            goal_name: None,
            goal_metadata: None,
            payment: paid.then(|| StoredPayment {
                amount: 5.0,
                original_amount: 5.0,
                original_currency: "USD".into(),
                renewal: false,
                refunded: false,
                transaction_id: format!("tx{t}"),
                email: None,
                name: None,
                customer_id: None,
            }),
            identity: None,
        }
    }

    /// Two chunks: a (US), b (DE), c (US) in the first; d (FR), b again from the US, and a
    /// payment of c in the second.
    fn chunks(dicts: &mut SiteDicts) -> Vec<Arc<Chunk>> {
        let first = [
            row("a", "US", 1, false),
            row("b", "DE", 2, false),
            row("c", "US", 3, false),
        ];
        let second = [
            row("d", "FR", 4, false),
            row("b", "US", 5, false),
            row("c", "US", 6, true),
        ];
        [&first[..], &second[..]]
            .into_iter()
            .map(|rows| Arc::new(Chunk::build(&[to_batch(rows).unwrap()], dicts).unwrap()))
            .collect()
    }

    #[test]
    fn visitors_of_a_country_are_numbered_together_in_their_old_order() {
        let mut dicts = SiteDicts::default();
        let mut built = chunks(&mut dicts);
        assert_eq!(built[0].visitor, [0, 1, 2]);
        assert_eq!(built[1].visitor, [3, 1, 2]);
        let ids = [built[0].id, built[1].id];
        let mut all: Vec<&mut Arc<Chunk>> = built.iter_mut().collect();
        assert!(cluster(&mut all, &mut dicts).unwrap());
        // Parts scanned from the chunks before name their old ids, so they are not reused.
        assert!(!ids.contains(&built[0].id) && !ids.contains(&built[1].id));
        // Countries by code (first seen first): US a, c; DE b (its first row); FR d.
        assert_eq!(built[0].visitor, [0, 2, 1]);
        assert_eq!(built[1].visitor, [3, 2, 1]);
        assert_eq!(built[1].payments[0].visitor, 1);
        let mut number = |v: &str| dicts.visitors.id(visitor_hash(v));
        assert_eq!(
            [number("a"), number("b"), number("c"), number("d")],
            [0, 2, 1, 3]
        );
        assert_eq!(dicts.visitors.len(), 4);
    }

    #[test]
    fn visitors_seen_later_join_their_country_at_the_next_numbering() {
        let mut dicts = SiteDicts::default();
        let mut built = chunks(&mut dicts);
        let mut all: Vec<&mut Arc<Chunk>> = built.iter_mut().collect();
        assert!(cluster(&mut all, &mut dicts).unwrap());
        let rows = [row("e", "US", 7, false), row("f", "DE", 8, false)];
        let later = Chunk::build(&[to_batch(&rows).unwrap()], &mut dicts).unwrap();
        built.push(Arc::new(later));
        assert_eq!(built[2].visitor, [4, 5]);
        let mut all: Vec<&mut Arc<Chunk>> = built.iter_mut().collect();
        assert!(cluster(&mut all, &mut dicts).unwrap());
        // US a, c, e; DE b, f; FR d.
        assert_eq!(built[0].visitor, [0, 3, 1]);
        assert_eq!(built[1].visitor, [5, 3, 1]);
        assert_eq!(built[2].visitor, [2, 4]);
    }

    #[test]
    fn numbering_is_due_first_then_after_a_quarter_more_visitors() {
        assert!(due(None, 0));
        assert!(!due(Some(1_000_000), 1_200_000));
        assert!(due(Some(1_000_000), 1_250_000));
        assert!(!due(Some(10), 65_000));
        assert!(due(Some(10), 65_546));
    }

    #[test]
    fn chunks_a_snapshot_holds_keep_their_numbers() {
        let mut dicts = SiteDicts::default();
        let mut built = chunks(&mut dicts);
        let held = Arc::clone(&built[1]);
        let mut all: Vec<&mut Arc<Chunk>> = built.iter_mut().collect();
        assert!(!cluster(&mut all, &mut dicts).unwrap());
        assert_eq!(built[0].visitor, [0, 1, 2]);
        assert_eq!(held.visitor, [3, 1, 2]);
        assert_eq!(dicts.visitors.id(visitor_hash("b")), 1);
    }
}

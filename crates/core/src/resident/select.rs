//! Dimension filters evaluated once per dictionary: each filter becomes, for the columns it
//! reads, a table of which codes pass, so testing a row is an array lookup per filter.
//!
//! The meaning is the one `query::filter` gives the DataFusion expressions (DESIGN §6):
//! `is` matches exactly, `contains` compares lower-cased strings, `is_not` lets a missing
//! session attribute through but never a missing page, hostname or goal, and a referrer value
//! also matches the raw host with or without `www.`.

use std::fmt;

use crate::error::Result;
use crate::query::filter::{dimension_column, normalized_values, referrer_host_values};
use crate::query::spec::{Dimension, Filter, FilterOp};
use crate::resident::chunk::{Chunk, SiteDicts, coded_index};
use crate::resident::dict::{NULL, StrDict};
use crate::resident::kernels::{IN_RANGE, SELECTED};
use crate::schema::col as c;

/// Which codes of one column pass.
#[derive(Debug)]
struct CodeTest {
    column: usize,
    pass: Vec<bool>,
}

impl CodeTest {
    fn new(
        column: &str,
        dicts: &SiteDicts,
        values: &[String],
        op: FilterOp,
        null_passes: bool,
    ) -> Result<Self> {
        let column = coded_index(column)?;
        let dict = &dicts.strings[column];
        let mut pass = vec![op == FilterOp::IsNot; dict.len()];
        pass[NULL as usize] = null_passes;
        match op {
            FilterOp::Is | FilterOp::IsNot => {
                for code in values.iter().filter_map(|v| dict.code(v)) {
                    pass[code as usize] = op == FilterOp::Is;
                }
            }
            FilterOp::Contains => mark_containing(dict, values, &mut pass),
        }
        Ok(CodeTest { column, pass })
    }

    #[inline]
    fn passes(&self, code: u32) -> bool {
        self.pass.get(code as usize).copied().unwrap_or(false)
    }
}

fn mark_containing(dict: &StrDict, values: &[String], pass: &mut [bool]) {
    let needles: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
    for (code, value) in dict.iter() {
        let lower = value.to_lowercase();
        pass[code as usize] = needles.iter().any(|n| lower.contains(n.as_str()));
    }
}

/// One filter: a test on its column, and for referrers a second one on the raw host.
#[derive(Debug)]
struct Term {
    main: CodeTest,
    /// The raw-host test of a referrer filter; `is`/`contains` pass either, `is_not` both.
    host: Option<CodeTest>,
    both: bool,
}

/// All filters of a query, ANDed.
pub(crate) struct Selection {
    terms: Vec<Term>,
    text: String,
}

impl fmt::Debug for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Selection {
    /// Compiles `filters` against the dictionaries; `None` when there are no filters.
    pub(crate) fn compile(filters: &[Filter], dicts: &SiteDicts) -> Result<Option<Selection>> {
        if filters.is_empty() {
            return Ok(None);
        }
        let mut terms = Vec::with_capacity(filters.len());
        for f in filters {
            let values = normalized_values(f);
            let null_passes = f.op == FilterOp::IsNot && !f.dimension.is_event_scoped();
            let main = CodeTest::new(
                dimension_column(f.dimension),
                dicts,
                &values,
                f.op,
                null_passes,
            )?;
            let host = if f.dimension == Dimension::Referrer {
                let hosts = match f.op {
                    FilterOp::Contains => values.clone(),
                    _ => referrer_host_values(&values),
                };
                Some(CodeTest::new(
                    c::REFERRER,
                    dicts,
                    &hosts,
                    f.op,
                    null_passes,
                )?)
            } else {
                None
            };
            terms.push(Term {
                main,
                host,
                both: f.op == FilterOp::IsNot,
            });
        }
        let text = filters
            .iter()
            .map(|f| format!("{} {} {:?}", f.dimension.name(), f.op.name(), f.values))
            .collect::<Vec<_>>()
            .join(" AND ");
        Ok(Some(Selection { terms, text }))
    }

    /// Sets [`SELECTED`] in `mask` for the rows `first..` of `chunk` that are [`IN_RANGE`] and
    /// pass every filter, evaluating one filter over the whole block at a time.
    pub(crate) fn mark(&self, chunk: &Chunk, first: usize, mask: &mut [u8]) {
        let n = mask.len();
        let mut ok: Vec<u8> = mask.iter().map(|m| m & IN_RANGE).collect();
        let (mut main, mut host) = (Vec::new(), Vec::new());
        let mut other = Vec::new();
        for t in &self.terms {
            let codes = &chunk.codes[t.main.column];
            match &t.host {
                None => codes.and_pass(first, &mut ok, &t.main.pass),
                Some(h) => {
                    main.resize(n, 0);
                    host.resize(n, 0);
                    other.resize(n, 0u8);
                    codes.widen_into(first, &mut main);
                    chunk.codes[h.column].widen_into(first, &mut host);
                    for (o, (a, b)) in other.iter_mut().zip(main.iter().zip(&host)) {
                        let (a, b) = (t.main.passes(*a), h.passes(*b));
                        *o = u8::from(if t.both { a && b } else { a || b });
                    }
                    ok.iter_mut().zip(&other).for_each(|(o, x)| *o &= x);
                }
            }
        }
        for (m, o) in mask.iter_mut().zip(&ok) {
            *m |= o * SELECTED;
        }
    }
}

//! The groups of a breakdown on resident chunks: which rows carry the breakdown's values, the
//! group number of each, and the values a group stands for.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::Result;
use crate::query::filter::dimension_column;
use crate::query::spec::{Breakdown, Dimension};
use crate::resident::chunk::{Chunk, SiteDicts, coded_index};
use crate::resident::dict::NULL;
use crate::resident::kernels::Grouping;
use crate::schema::col as c;

/// A hasher for small integer keys: one multiply spreads them over the table.
#[derive(Default)]
pub(crate) struct Mix64(u64);

impl Hasher for Mix64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type Fast<K> = HashMap<K, u32, BuildHasherDefault<Mix64>>;

/// The rows and groups of one breakdown.
pub(crate) enum Groups {
    /// One dimension column: the group is the value's code.
    Column { column: usize },
    /// Pages: `(hostname, path)` pairs numbered in order of first sight.
    Page {
        host: usize,
        path: usize,
        numbers: Fast<u64>,
        keys: Vec<(u32, u32)>,
    },
    /// Campaign fields: an empty string counts as no value; a row carries a campaign when one
    /// field has a value.
    Campaign {
        columns: Vec<usize>,
        empty: Vec<u32>,
        numbers: HashMap<Vec<u32>, u32>,
        keys: Vec<Vec<u32>>,
        scratch: Vec<u32>,
    },
}

impl Groups {
    /// The grouping of `by` over the website's columns.
    pub(crate) fn new(by: &Breakdown, dicts: &SiteDicts) -> Result<Groups> {
        let column = |d: Dimension| coded_index(dimension_column(d));
        Ok(match by {
            Breakdown::Country => Groups::Column { column: column(Dimension::Country)? },
            Breakdown::Region => Groups::Column { column: column(Dimension::Region)? },
            Breakdown::City => Groups::Column { column: column(Dimension::City)? },
            Breakdown::Device => Groups::Column { column: column(Dimension::Device)? },
            Breakdown::Browser => Groups::Column { column: column(Dimension::Browser)? },
            Breakdown::Os => Groups::Column { column: column(Dimension::Os)? },
            Breakdown::Referrer => Groups::Column { column: column(Dimension::Referrer)? },
            Breakdown::Hostname => Groups::Column { column: column(Dimension::Hostname)? },
            Breakdown::Goal => Groups::Column { column: column(Dimension::Goal)? },
            Breakdown::Page => Groups::Page {
                host: coded_index(c::HOSTNAME)?,
                path: coded_index(c::PATH)?,
                numbers: Fast::default(),
                keys: Vec::new(),
            },
            Breakdown::Campaign(fields) => {
                let columns = fields
                    .iter()
                    .map(|f| coded_index(f.name()))
                    .collect::<Result<Vec<_>>>()?;
                let empty = columns
                    .iter()
                    .map(|&i| dicts.strings[i].code("").unwrap_or(NULL))
                    .collect();
                Groups::Campaign {
                    scratch: vec![NULL; columns.len()],
                    columns,
                    empty,
                    numbers: HashMap::new(),
                    keys: Vec::new(),
                }
            }
        })
    }

    /// The values group `g` stands for (`""` for an empty campaign field).
    pub(crate) fn values(&self, g: u32, dicts: &SiteDicts) -> Vec<String> {
        let name = |column: usize, code: u32| {
            dicts.strings[column]
                .value(code)
                .unwrap_or_default()
                .to_owned()
        };
        match self {
            Groups::Column { column } => vec![name(*column, g)],
            Groups::Page { host, path, keys, .. } => {
                let (h, p) = keys[g as usize];
                vec![name(*host, h), name(*path, p)]
            }
            Groups::Campaign { columns, keys, .. } => columns
                .iter()
                .zip(&keys[g as usize])
                .map(|(column, code)| name(*column, *code))
                .collect(),
        }
    }
}

impl Grouping for Groups {
    #[inline]
    fn group(&mut self, chunk: &Chunk, r: usize) -> Option<u32> {
        match self {
            Groups::Column { column } => {
                let code = chunk.codes[*column][r];
                (code != NULL).then_some(code)
            }
            Groups::Page {
                host,
                path,
                numbers,
                keys,
            } => {
                let (h, p) = (chunk.codes[*host][r], chunk.codes[*path][r]);
                if h == NULL || p == NULL {
                    return None;
                }
                let next = keys.len() as u32;
                let g = *numbers.entry((u64::from(h) << 32) | u64::from(p)).or_insert(next);
                if g == next {
                    keys.push((h, p));
                }
                Some(g)
            }
            Groups::Campaign {
                columns,
                empty,
                numbers,
                keys,
                scratch,
            } => {
                let mut any = false;
                for (i, column) in columns.iter().enumerate() {
                    let code = chunk.codes[*column][r];
                    let code = if code == empty[i] { NULL } else { code };
                    any |= code != NULL;
                    scratch[i] = code;
                }
                if !any {
                    return None;
                }
                if let Some(g) = numbers.get(scratch.as_slice()) {
                    return Some(*g);
                }
                let g = keys.len() as u32;
                numbers.insert(scratch.clone(), g);
                keys.push(scratch.clone());
                Some(g)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Groups::Column { .. } => 0,
            Groups::Page { keys, .. } => keys.len(),
            Groups::Campaign { keys, .. } => keys.len(),
        }
    }
}

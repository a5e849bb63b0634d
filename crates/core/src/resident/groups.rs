//! The groups of a breakdown on resident chunks: which rows carry the breakdown's values, the
//! group number of each, and the values a group stands for.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::error::Result;
use crate::query::filter::dimension_column;
use crate::query::spec::{Breakdown, Dimension};
use crate::resident::chunk::{CAMPAIGN_COLUMNS, Chunk, SiteDicts, coded_index};
use crate::resident::dict::{Mix64, NULL};
use crate::resident::kernels::{Grouping, NO_GROUP};
use crate::resident::parts::GroupKey;
use crate::schema::col as c;

type Fast<K> = HashMap<K, u32, BuildHasherDefault<Mix64>>;

/// Most `(hostname, path)` combinations numbered densely; past it pages are numbered in order
/// of first sight.
const MAX_DENSE_PAGES: usize = 1 << 20;

/// The rows and groups of one breakdown.
#[derive(Clone)]
pub(crate) enum Groups {
    /// One dimension column: the group is the value's code (below `codes`).
    Column { column: usize, codes: usize },
    /// Pages on few hostnames: group `host × paths + path`.
    DensePage {
        host: usize,
        path: usize,
        paths: usize,
        hosts: usize,
    },
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
        numbers: Fast<Vec<u32>>,
        keys: Vec<Vec<u32>>,
        /// The group of each campaign combination of the website ([`Chunk::campaign`]),
        /// [`NO_GROUP`] for one that carries none of the fields. Fixed when the grouping is
        /// made (every chunk a query reads was decoded before), so clones number alike.
        by_combo: std::sync::Arc<Vec<u32>>,
    },
}

impl Groups {
    /// The grouping of `by` over the website's columns.
    /// Pages are numbered densely when hostnames × paths is at most [`MAX_DENSE_PAGES`], else
    /// hashed to compact numbers.
    pub(crate) fn new(by: &Breakdown, dicts: &SiteDicts) -> Result<Groups> {
        let column = |d: Dimension| -> Result<Groups> {
            let column = coded_index(dimension_column(d))?;
            Ok(Groups::Column {
                column,
                codes: dicts.strings[column].len(),
            })
        };
        Ok(match by {
            Breakdown::Country => column(Dimension::Country)?,
            Breakdown::Region => column(Dimension::Region)?,
            Breakdown::City => column(Dimension::City)?,
            Breakdown::Device => column(Dimension::Device)?,
            Breakdown::Browser => column(Dimension::Browser)?,
            Breakdown::Os => column(Dimension::Os)?,
            Breakdown::Referrer => column(Dimension::Referrer)?,
            Breakdown::Hostname => column(Dimension::Hostname)?,
            Breakdown::Goal => column(Dimension::Goal)?,
            Breakdown::Page => {
                let (host, path) = (coded_index(c::HOSTNAME)?, coded_index(c::PATH)?);
                let (hosts, paths) = (dicts.strings[host].len(), dicts.strings[path].len());
                // Numbered densely (`host × paths + path`) while that numbering stays small;
                // the kernel then picks bitsets or pairs by the bitset bytes it would take.
                match hosts.checked_mul(paths) {
                    Some(n) if n <= MAX_DENSE_PAGES => Groups::DensePage {
                        host,
                        path,
                        paths,
                        hosts,
                    },
                    _ => Groups::Page {
                        host,
                        path,
                        numbers: Fast::default(),
                        keys: Vec::new(),
                    },
                }
            }
            Breakdown::Campaign(fields) => {
                let columns = fields
                    .iter()
                    .map(|f| coded_index(f.name()))
                    .collect::<Result<Vec<_>>>()?;
                let empty = columns
                    .iter()
                    .map(|&i| dicts.strings[i].code("").unwrap_or(NULL))
                    .collect();
                let mut groups = Groups::Campaign {
                    columns,
                    empty,
                    numbers: Fast::default(),
                    keys: Vec::new(),
                    by_combo: std::sync::Arc::new(Vec::new()),
                };
                groups.number_combinations(dicts);
                groups
            }
        })
    }

    /// Numbers the groups of every campaign combination the website has (a campaign grouping).
    fn number_combinations(&mut self, dicts: &SiteDicts) {
        let Groups::Campaign {
            columns,
            empty,
            numbers,
            keys,
            by_combo,
            ..
        } = self
        else {
            return;
        };
        let positions: Vec<Option<usize>> = columns
            .iter()
            .map(|c| CAMPAIGN_COLUMNS.iter().position(|k| k == c))
            .collect();
        let mut table = vec![NO_GROUP; dicts.campaigns.len()];
        // In combination order, so that the numbering does not depend on the map's.
        let mut combos: Vec<(&[u32; 8], u32)> =
            dicts.campaigns.iter().map(|(k, v)| (k, *v)).collect();
        combos.sort_unstable_by_key(|(_, id)| *id);
        for (codes, id) in combos {
            let key: Vec<u32> = positions
                .iter()
                .zip(empty.iter())
                .map(|(p, e)| match p.map(|p| codes[p]) {
                    Some(code) if code != *e => code,
                    _ => NULL,
                })
                .collect();
            if key.iter().all(|c| *c == NULL) {
                continue;
            }
            let next = keys.len() as u32;
            let g = *numbers.entry(key.clone()).or_insert(next);
            if g == next {
                keys.push(key);
            }
            table[id as usize] = g;
        }
        *by_combo = std::sync::Arc::new(table);
    }

    /// Calls `f` with the dictionary columns of a group key's values, in order.
    fn with_value_columns<R>(&self, f: impl FnOnce(&[usize]) -> R) -> R {
        match self {
            Groups::Column { column, .. } => f(std::slice::from_ref(column)),
            Groups::DensePage { host, path, .. } | Groups::Page { host, path, .. } => {
                f(&[*host, *path])
            }
            Groups::Campaign { columns, .. } => f(columns),
        }
    }

    /// The values of a group's key (`""` for an empty campaign field).
    pub(crate) fn values(&self, key: &[u32], dicts: &SiteDicts) -> Vec<String> {
        self.with_value_columns(|columns| {
            columns
                .iter()
                .zip(key)
                .map(|(column, code)| value_of(dicts, *column, *code).to_owned())
                .collect()
        })
    }

    /// How the values of two group keys compare, as [`Groups::values`] would, without
    /// copying them.
    pub(crate) fn compare_values(
        &self,
        a: &[u32],
        b: &[u32],
        dicts: &SiteDicts,
    ) -> std::cmp::Ordering {
        self.with_value_columns(|columns| {
            columns
                .iter()
                .zip(a.iter().zip(b))
                .map(|(c, (x, y))| value_of(dicts, *c, *x).cmp(value_of(dicts, *c, *y)))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    }
}

/// The value of `code` in dictionary column `column` (`""` for none).
fn value_of(dicts: &SiteDicts, column: usize, code: u32) -> &str {
    dicts.strings[column].value(code).unwrap_or_default()
}

impl Grouping for Groups {
    fn fill(&mut self, chunk: &Chunk, first: usize, out: &mut [u32]) {
        let n = out.len();
        match self {
            Groups::Column { column, .. } => {
                chunk.codes[*column].map_into(first, out, |c| if c == NULL { NO_GROUP } else { c });
            }
            Groups::DensePage {
                host, path, paths, ..
            } => {
                let paths = *paths as u32;
                chunk.codes[*path].widen_into(first, out);
                let mut hosts = [0u32; crate::resident::kernels::BLOCK];
                let hosts = &mut hosts[..n];
                chunk.codes[*host].widen_into(first, hosts);
                for (o, h) in out.iter_mut().zip(hosts.iter()) {
                    *o = if *h == NULL || *o == NULL {
                        NO_GROUP
                    } else {
                        h * paths + *o
                    };
                }
            }
            Groups::Campaign { by_combo, .. } => {
                // One lookup a row.
                chunk.campaign.map_into(first, out, |combo| {
                    by_combo.get(combo as usize).copied().unwrap_or(NO_GROUP)
                });
            }
            Groups::Page { .. } => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.group(chunk, first + i).unwrap_or(NO_GROUP);
                }
            }
        }
    }

    fn bound(&self) -> Option<usize> {
        match self {
            Groups::Column { codes, .. } => Some(*codes),
            Groups::DensePage { paths, hosts, .. } => Some(paths * hosts),
            Groups::Page { .. } => None,
            Groups::Campaign { keys, .. } => Some(keys.len()),
        }
    }

    fn key(&self, g: u32) -> GroupKey {
        match self {
            Groups::Column { .. } => Box::new([g]),
            Groups::DensePage { paths, .. } => {
                let paths = *paths as u32;
                Box::new([g / paths, g % paths])
            }
            Groups::Page { keys, .. } => {
                let (h, p) = keys[g as usize];
                Box::new([h, p])
            }
            Groups::Campaign { keys, .. } => keys[g as usize].clone().into_boxed_slice(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Groups::Column { .. } | Groups::DensePage { .. } => 0,
            Groups::Page { keys, .. } => keys.len(),
            Groups::Campaign { keys, .. } => keys.len(),
        }
    }
}

impl Groups {
    /// The group of row `r` of the hashed groupings.
    fn group(&mut self, chunk: &Chunk, r: usize) -> Option<u32> {
        match self {
            Groups::Column { column, .. } => {
                let code = chunk.codes[*column].get(r);
                (code != NULL).then_some(code)
            }
            Groups::DensePage {
                host, path, paths, ..
            } => {
                let (h, p) = (chunk.codes[*host].get(r), chunk.codes[*path].get(r));
                (h != NULL && p != NULL).then(|| h * *paths as u32 + p)
            }
            Groups::Page {
                host,
                path,
                numbers,
                keys,
            } => {
                let (h, p) = (chunk.codes[*host].get(r), chunk.codes[*path].get(r));
                if h == NULL || p == NULL {
                    return None;
                }
                let next = keys.len() as u32;
                let g = *numbers
                    .entry((u64::from(h) << 32) | u64::from(p))
                    .or_insert(next);
                if g == next {
                    keys.push((h, p));
                }
                Some(g)
            }
            // Numbered once per query from the combinations (`number_combinations`).
            Groups::Campaign { by_combo, .. } => by_combo
                .get(chunk.campaign.get(r) as usize)
                .copied()
                .filter(|g| *g != NO_GROUP),
        }
    }
}

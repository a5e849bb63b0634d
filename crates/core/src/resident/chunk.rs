//! [`Chunk`]: a batch of one website's events decoded into the compact columns the resident
//! kernels read — times, kinds, dense visitor and session numbers, a dictionary code per
//! dimension column, and the payments apart.
//!
//! A chunk is built once from a Parquet segment (read with its string columns as dictionaries,
//! so each distinct value is looked up once per page rather than once per row) or from a sealed
//! hot batch, and never changes.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Schema, SchemaRef, TimestampMicrosecondType, UInt64Type,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use crate::error::{Error, Result};
use crate::money;
use crate::resident::codes::Codes;
use crate::resident::dict::{DenseIds, NULL, StrDict};
use crate::schema::{col as c, kind};

/// The string columns kept as dictionary codes, in the order of [`Chunk::codes`].
pub(crate) const CODED: [&str; 19] = [
    c::COUNTRY_CODE,
    c::REGION,
    c::CITY,
    c::DEVICE,
    c::BROWSER,
    c::OS,
    c::REFERRER_NAME,
    c::REFERRER,
    c::UTM_SOURCE,
    c::UTM_MEDIUM,
    c::UTM_CAMPAIGN,
    c::UTM_TERM,
    c::UTM_CONTENT,
    c::REF,
    c::SOURCE,
    c::VIA,
    c::PATH,
    c::HOSTNAME,
    c::GOAL_NAME,
];

/// The position of a coded column in [`CODED`].
pub(crate) fn coded_index(column: &str) -> Result<usize> {
    CODED
        .iter()
        .position(|n| *n == column)
        .ok_or_else(|| Error::Internal(format!("column {column} is not kept resident")))
}

/// Event kinds as the kernels see them.
pub(crate) mod kind_code {
    pub(crate) const OTHER: u8 = 0;
    pub(crate) const PAGEVIEW: u8 = 1;
    pub(crate) const GOAL: u8 = 2;
    pub(crate) const PAYMENT: u8 = 3;
}

/// The campaign columns (the eight fields of a campaign breakdown), in [`CODED`] positions.
pub(crate) const CAMPAIGN_COLUMNS: [usize; 8] = [8, 9, 10, 11, 12, 13, 14, 15];

/// The dictionaries and dense numbers of one website, shared by all its chunks.
#[derive(Debug, Default)]
pub(crate) struct SiteDicts {
    /// One dictionary per [`CODED`] column.
    pub(crate) strings: [StrDict; CODED.len()],
    pub(crate) visitors: DenseIds,
    pub(crate) sessions: DenseIds,
    /// Numbers of the combinations of the eight campaign codes seen in a row.
    pub(crate) campaigns: std::collections::HashMap<[u32; 8], u32>,
}

impl SiteDicts {
    /// Approximate heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.strings.iter().map(StrDict::bytes).sum::<usize>()
            + self.visitors.bytes()
            + self.sessions.bytes()
            + self.campaigns.capacity() * 48
    }
}

/// One payment of a chunk, with its row's time and visitor copied so that reading the
/// payments does not reach into the row columns at random.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaymentRow {
    /// Dense visitor number of the row.
    pub(crate) visitor: u32,
    /// Time of the row, µs since the epoch.
    pub(crate) ts: i64,
    /// Amount in micro-units of the website currency (0 when missing), so that sums of it do
    /// not depend on the order of their terms ([`crate::money`]).
    pub(crate) amount: f64,
    pub(crate) refunded: bool,
    pub(crate) renewal: bool,
}

/// Numbers chunks in the order they are built, so that a cached part can name the chunks it
/// was scanned from.
static NEXT_CHUNK_ID: AtomicU64 = AtomicU64::new(0);

/// Compact columns of a batch of events.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Unique in the process: no two chunks ever share it. Renewed when the chunk's visitors
    /// are numbered again, so that a cached part never meets the new numbers.
    pub(crate) id: u64,
    /// Event time, µs since the epoch.
    pub(crate) ts: Vec<i64>,
    /// [`kind_code`] of each event.
    pub(crate) kind: Vec<u8>,
    /// Dense visitor number.
    pub(crate) visitor: Vec<u32>,
    /// Dense session number.
    pub(crate) session: Vec<u32>,
    /// Dictionary codes, one column per [`CODED`] entry, each in the narrowest width that
    /// holds the chunk's codes.
    pub(crate) codes: Vec<Codes>,
    /// The number of each row's combination of the eight campaign codes
    /// ([`SiteDicts::campaigns`]): a campaign breakdown looks up one number a row.
    pub(crate) campaign: Codes,
    /// The payment events.
    pub(crate) payments: Vec<PaymentRow>,
    /// Whether `ts` is in ascending order (segments always are).
    pub(crate) sorted: bool,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    /// Lowest and highest session number of the rows (an empty band when there are none).
    pub(crate) sessions: (u32, u32),
    /// The first session number this chunk handed out: every session numbered from here on
    /// began in this chunk.
    pub(crate) new_sessions_from: u32,
    /// The rows (ascending) of sessions numbered before this chunk: continuations of sessions
    /// an earlier chunk holds the start of, usually few rows near the chunk's beginning.
    pub(crate) older_session_rows: Vec<u32>,
}

impl Chunk {
    /// Gives the chunk a new id, for when its contents change (see [`Chunk::id`]).
    pub(crate) fn renew_id(&mut self) {
        self.id = NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed);
    }

    /// Rows held.
    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// Approximate heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.len() * (8 + 1 + 4 + 4)
            + self.codes.iter().map(Codes::bytes).sum::<usize>()
            + self.campaign.bytes()
            + self.payments.len() * std::mem::size_of::<PaymentRow>()
            + self.older_session_rows.len() * 4
    }

    /// Rows that can fall in `[start, end)`: a sub-range when sorted, else every row (the caller
    /// then checks each row's time, see [`Chunk::needs_time_check`]).
    pub(crate) fn span(&self, start: i64, end: i64) -> std::ops::Range<usize> {
        if self.len() == 0 || self.max_ts < start || self.min_ts >= end {
            return 0..0;
        }
        if self.sorted {
            let lo = self.ts.partition_point(|&t| t < start);
            let hi = self.ts.partition_point(|&t| t < end);
            lo..hi
        } else {
            0..self.len()
        }
    }

    /// Whether rows of [`Chunk::span`] may still lie outside `[start, end)`.
    pub(crate) fn needs_time_check(&self, start: i64, end: i64) -> bool {
        !self.sorted && (self.min_ts < start || self.max_ts >= end)
    }

    /// Decodes `batches` (of one website) into one chunk, extending `dicts`.
    pub(crate) fn build(batches: &[RecordBatch], dicts: &mut SiteDicts) -> Result<Chunk> {
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut chunk = Chunk {
            id: NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed),
            ts: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            visitor: Vec::with_capacity(n),
            session: Vec::with_capacity(n),
            codes: Vec::new(),
            campaign: Codes::default(),
            payments: Vec::new(),
            sorted: true,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            sessions: (0, 0),
            new_sessions_from: dicts.sessions.len(),
            older_session_rows: Vec::new(),
        };
        // Codes are gathered wide and narrowed once the chunk's largest is known.
        let mut codes: Vec<Vec<u32>> = (0..CODED.len()).map(|_| Vec::with_capacity(n)).collect();
        let mut campaign = Vec::with_capacity(n);
        for b in batches {
            chunk.append(b, dicts, &mut codes, &mut campaign)?;
        }
        chunk.codes = codes.into_iter().map(Codes::narrowed).collect();
        chunk.campaign = Codes::narrowed(campaign);
        let from = chunk.new_sessions_from;
        chunk.older_session_rows = (0..chunk.session.len() as u32)
            .filter(|&r| chunk.session[r as usize] < from)
            .collect();
        chunk.sorted = chunk.ts.is_sorted();
        if let (Some(lo), Some(hi)) = (chunk.session.iter().min(), chunk.session.iter().max()) {
            chunk.sessions = (*lo, *hi + 1);
        }
        Ok(chunk)
    }

    /// Appends `b`'s rows, their codes to `codes` and `campaign`.
    fn append(
        &mut self,
        b: &RecordBatch,
        dicts: &mut SiteDicts,
        codes: &mut [Vec<u32>],
        campaign: &mut Vec<u32>,
    ) -> Result<()> {
        let base = self.len();
        let ts = column(b, c::TS)?;
        let ts = ts
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| wrong_type(c::TS))?;
        for t in ts.values().iter() {
            self.min_ts = self.min_ts.min(*t);
            self.max_ts = self.max_ts.max(*t);
        }
        self.ts.extend_from_slice(ts.values());

        let mut kinds = StrDict::default();
        let kind_of: Vec<u8> = {
            let codes = codes_of(&column(b, c::KIND)?, &mut kinds)?;
            let by_code: Vec<u8> = (0..kinds.len() as u32)
                .map(|code| match kinds.value(code) {
                    Some(kind::PAGEVIEW) => kind_code::PAGEVIEW,
                    Some(kind::GOAL) => kind_code::GOAL,
                    Some(kind::PAYMENT) => kind_code::PAYMENT,
                    _ => kind_code::OTHER,
                })
                .collect();
            codes.into_iter().map(|c| by_code[c as usize]).collect()
        };
        self.kind.extend_from_slice(&kind_of);

        let hashes = |name: &str| -> Result<Vec<u64>> {
            let a = column(b, name)?;
            let a = a
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| wrong_type(name))?;
            Ok(a.values().to_vec())
        };
        let visitors = hashes(c::VISITOR_HASH)?;
        self.visitor
            .extend(visitors.iter().map(|h| dicts.visitors.id(*h)));
        let sessions = hashes(c::SESSION_HASH)?;
        self.session
            .extend(sessions.iter().map(|h| dicts.sessions.id(*h)));

        for (i, name) in CODED.iter().enumerate() {
            codes[i].extend(codes_of(&column(b, name)?, &mut dicts.strings[i])?);
        }
        let rows = codes[0].len();
        #[allow(clippy::needless_range_loop)] // a row across eight of the columns
        for r in base..rows {
            let key = CAMPAIGN_COLUMNS.map(|c| codes[c][r]);
            let next = dicts.campaigns.len() as u32;
            campaign.push(*dicts.campaigns.entry(key).or_insert(next));
        }

        let amount = cast(&column(b, c::AMOUNT)?, &DataType::Float64)?;
        let amount = amount.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let flag = |name: &str| -> Result<Vec<bool>> {
            let a = cast(&column(b, name)?, &DataType::Boolean)?;
            let a = a.as_boolean();
            Ok((0..a.len()).map(|r| a.is_valid(r) && a.value(r)).collect())
        };
        let (refunded, renewal) = (flag(c::REFUNDED)?, flag(c::RENEWAL)?);
        for (r, k) in kind_of.iter().enumerate() {
            if *k == kind_code::PAYMENT {
                self.payments.push(PaymentRow {
                    visitor: self.visitor[base + r],
                    ts: self.ts[base + r],
                    amount: if amount.is_valid(r) {
                        money::to_micros(amount.value(r))
                    } else {
                        0.0
                    },
                    refunded: refunded[r],
                    renewal: renewal[r],
                });
            }
        }
        Ok(())
    }
}

fn column(b: &RecordBatch, name: &str) -> Result<ArrayRef> {
    b.column_by_name(name)
        .cloned()
        .ok_or_else(|| Error::Internal(format!("batch has no column {name}")))
}

fn wrong_type(name: &str) -> Error {
    Error::Internal(format!("column {name} has an unexpected type"))
}

/// The codes of a string column (plain or dictionary-encoded), interning each distinct value of
/// the batch once.
fn codes_of(array: &ArrayRef, dict: &mut StrDict) -> Result<Vec<u32>> {
    let as_dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let array = if array.data_type() == &as_dict {
        Arc::clone(array)
    } else {
        cast(array, &as_dict)?
    };
    let d = array
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| Error::Internal("dictionary cast failed".into()))?;
    let values = d.values().as_string::<i32>();
    let map: Vec<u32> = (0..values.len())
        .map(|i| {
            if values.is_null(i) {
                NULL
            } else {
                dict.intern(values.value(i))
            }
        })
        .collect();
    Ok(d.keys()
        .iter()
        .map(|k| {
            k.and_then(|k| usize::try_from(k).ok())
                .and_then(|k| map.get(k).copied())
                .unwrap_or(NULL)
        })
        .collect())
}

/// A segment's schema with the coded columns and `kind` read as dictionaries.
fn read_schema(file_schema: &Schema) -> SchemaRef {
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .map(|f| {
            if CODED.contains(&f.name().as_str()) || f.name() == c::KIND {
                Field::new(f.name(), dict.clone(), f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Reads the columns a chunk needs from a Parquet segment. Columns are found by name, so a
/// segment written before a column was added reads alike; one missing a column a chunk needs
/// is an error naming it. Batches hold at most `batch_rows` rows (and at most 64Ki).
pub(crate) fn read_segment(path: &Path, batch_rows: usize) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let footer = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())?;
    let schema = read_schema(footer.schema());
    let options = ArrowReaderOptions::new().with_schema(Arc::clone(&schema));
    let footer = ArrowReaderMetadata::try_new(Arc::clone(footer.metadata()), options)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer);
    let wanted: Vec<&str> = [
        c::TS,
        c::KIND,
        c::VISITOR_HASH,
        c::SESSION_HASH,
        c::AMOUNT,
        c::REFUNDED,
        c::RENEWAL,
    ]
    .into_iter()
    .chain(CODED)
    .collect();
    let mut indices = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let (i, _) = schema.column_with_name(name).ok_or_else(|| {
            Error::Internal(format!("segment {} has no `{name}` column", path.display()))
        })?;
        indices.push(i);
    }
    indices.sort_unstable();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_rows.clamp(1, 64 * 1024))
        .build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_campaign_columns_are_the_eight_campaign_fields() {
        let positions: Vec<usize> = crate::query::spec::CampaignField::ALL
            .iter()
            .map(|f| coded_index(f.name()).unwrap())
            .collect();
        assert_eq!(positions, CAMPAIGN_COLUMNS);
    }
}

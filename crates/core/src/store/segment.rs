//! Parquet segments: immutable files of one website's events sorted by time.
//!
//! A segment is written to a temporary file, fsynced, renamed into place and its directory
//! fsynced, so a crash leaves either the whole file or none of it. Row groups of
//! [`ROW_GROUP_ROWS`] rows with page-level statistics let a time range or a selective dimension
//! filter skip most of a file.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};
use crate::schema::col;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page (bounds what page-index pruning can skip).
pub const PAGE_ROWS: usize = 8 * 1024;

/// What a written segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenSegment {
    /// Number of rows.
    pub rows: usize,
    /// Earliest event, µs since the epoch.
    pub min_ts_us: i64,
    /// Latest event, µs since the epoch.
    pub max_ts_us: i64,
    /// File size in bytes.
    pub bytes: u64,
}

/// The times of a batch's `ts` column.
fn times(batch: &RecordBatch, ts_index: usize) -> Result<&TimestampMicrosecondArray> {
    batch
        .column(ts_index)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::invalid("ts", "column has the wrong type"))
}

/// `batches` in time order: as they are when they already are (the usual case: writes arrive
/// in time order, and each is sorted at ingest), else concatenated and sorted.
fn in_time_order(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    ts_index: usize,
) -> Result<Vec<RecordBatch>> {
    let mut last = i64::MIN;
    let mut ordered = true;
    for b in batches {
        let ts = times(b, ts_index)?;
        ordered &= ts.null_count() == 0
            && ts.values().first().is_none_or(|t| *t >= last)
            && ts.values().is_sorted();
        if !ordered {
            break;
        }
        last = ts.values().last().copied().unwrap_or(last);
    }
    if ordered {
        return Ok(batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .cloned()
            .collect());
    }
    let all = concat_batches(schema, batches)?;
    let order = sort_to_indices(all.column(ts_index), None, None)?;
    Ok(vec![take_record_batch(&all, &order)?])
}

/// Sorts `batches` by time and writes them durably to `path`.
pub fn write_segment(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<WrittenSegment> {
    let ts_index = schema.index_of(col::TS)?;
    let sorted = in_time_order(schema, batches, ts_index)?;
    let rows: usize = sorted.iter().map(RecordBatch::num_rows).sum();
    let (min_ts_us, max_ts_us) = match (sorted.first(), sorted.last()) {
        (Some(first), Some(last)) => (
            times(first, ts_index)?.value(0),
            times(last, ts_index)?.values().last().copied().unwrap_or(0),
        ),
        _ => (0, 0),
    };

    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: i32::try_from(ts_index).unwrap_or(1),
            descending: false,
            nulls_first: false,
        }]))
        .build();
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid("path", "segment path has no directory"))?;
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(schema), Some(props))?;
    for b in &sorted {
        writer.write(b)?;
    }
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(dir)?;
    let bytes = fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    Ok(WrittenSegment {
        rows,
        min_ts_us,
        max_ts_us,
        bytes,
    })
}

/// Makes a rename or create inside `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

//! Parquet segments: immutable files of one website's events sorted by time.
//!
//! A segment is written to a temporary file, fsynced, renamed into place and its directory
//! fsynced, so a crash leaves either the whole file or none of it. Row groups of
//! [`ROW_GROUP_ROWS`] rows with page-level statistics let a time range or a selective dimension
//! filter skip most of a file. A row group's columns are encoded on two threads (half the
//! columns each) and then written in order, so a flush takes about half the time on two cores.
//! Segments that follow one another in time are joined by copying their row groups as stored
//! ([`SegmentWriter::append_segment`]).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;

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
    let mut writer = SegmentWriter::create(path, schema)?;
    for b in in_time_order(schema, batches, ts_index)? {
        writer.write(&b)?;
    }
    writer.finish()
}

/// A segment written a batch at a time, for inputs too large to hold (compaction): batches
/// must come in time order. Nothing is visible at `path` until [`SegmentWriter::finish`].
pub struct SegmentWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    writer: SerializedFileWriter<File>,
    columns: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The row group being gathered: slices of the batches written, [`ROW_GROUP_ROWS`] rows
    /// at most.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    row_groups: usize,
    ts_index: usize,
    rows: usize,
    min_ts_us: Option<i64>,
    max_ts_us: i64,
}

impl SegmentWriter {
    /// Starts the segment in a temporary file beside `path`.
    pub fn create(path: &Path, schema: &SchemaRef) -> Result<SegmentWriter> {
        let ts_index = schema.index_of(col::TS)?;
        // zstd level 1: segments of the generated 1M events came out the same size as at
        // level 3 (36 MB; dictionary pages do most of the work), for less CPU per flush.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_write_batch_size(PAGE_ROWS)
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: i32::try_from(ts_index).unwrap_or(1),
                descending: false,
                nulls_first: false,
            }]))
            // Bloom filters for the one-id lookups (a visitor's history, an evicted visitor's
            // state, a payment that may repeat an evicted id): a scan reads only the row groups
            // that may hold the id. Each is folded to the size its row group needs once written.
            .set_column_bloom_filter_enabled(col::VISITOR_HASH.into(), true)
            .set_column_bloom_filter_fpp(col::VISITOR_HASH.into(), 0.01)
            .set_column_bloom_filter_max_ndv(col::VISITOR_HASH.into(), ROW_GROUP_ROWS as u64)
            .set_column_bloom_filter_enabled(col::TRANSACTION_ID.into(), true)
            .set_column_bloom_filter_fpp(col::TRANSACTION_ID.into(), 0.01)
            .set_column_bloom_filter_max_ndv(col::TRANSACTION_ID.into(), ROW_GROUP_ROWS as u64)
            // No min/max for the ids and their hashes: in a file sorted by time they span
            // every page, so they never pruned one, and each of their values cost two string
            // comparisons (a one-id lookup prunes with the Bloom filter above). No query
            // filters on the event id.
            .set_column_statistics_enabled(col::VISITOR_ID.into(), EnabledStatistics::None)
            .set_column_statistics_enabled(col::SESSION_ID.into(), EnabledStatistics::None)
            .set_column_statistics_enabled(col::VISITOR_HASH.into(), EnabledStatistics::None)
            .set_column_statistics_enabled(col::SESSION_HASH.into(), EnabledStatistics::None)
            .set_column_statistics_enabled(col::EVENT_ID.into(), EnabledStatistics::None)
            // Times, sorted, as deltas: 2.5 bytes an event before zstd rather than 8 (a file of
            // the generated events came out 7 % smaller, and was written 3 % faster, with the
            // event ids below). Event ids begin with their time, so neighbours share a prefix.
            .set_column_encoding(col::TS.into(), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(col::EVENT_ID.into(), Encoding::DELTA_BYTE_ARRAY)
            .set_column_dictionary_enabled(col::TS.into(), false)
            .set_column_dictionary_enabled(col::EVENT_ID.into(), false)
            .set_column_dictionary_enabled(col::VISITOR_ID.into(), false)
            .set_column_dictionary_enabled(col::SESSION_ID.into(), false)
            .set_column_dictionary_enabled(col::VISITOR_HASH.into(), false)
            .set_column_dictionary_enabled(col::SESSION_HASH.into(), false)
            .build();
        let dir = path
            .parent()
            .ok_or_else(|| Error::invalid("path", "segment path has no directory"))?;
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = path.with_extension("parquet.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        // The Arrow writer sets up the file (Parquet schema, the Arrow schema in its metadata);
        // row groups are then encoded here, column by column.
        let (writer, columns) = ArrowWriter::try_new(file, Arc::clone(schema), Some(props))?
            .into_serialized_writer()?;
        Ok(SegmentWriter {
            path: path.to_owned(),
            tmp,
            writer,
            columns,
            schema: Arc::clone(schema),
            pending: Vec::new(),
            pending_rows: 0,
            row_groups: 0,
            ts_index,
            rows: 0,
            min_ts_us: None,
            max_ts_us: i64::MIN,
        })
    }

    /// Appends `batch`, whose events must not be earlier than those written before.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let ts = times(batch, self.ts_index)?;
        let (Some(first), Some(last)) = (ts.values().first(), ts.values().last()) else {
            return Ok(());
        };
        if ts.null_count() > 0 || *first < self.max_ts_us || !ts.values().is_sorted() {
            return Err(Error::Internal(
                "a segment's batches must come in time order".into(),
            ));
        }
        self.min_ts_us.get_or_insert(*first);
        self.max_ts_us = *last;
        self.rows += batch.num_rows();
        let mut rest = batch.clone();
        while rest.num_rows() > 0 {
            let take = (ROW_GROUP_ROWS - self.pending_rows).min(rest.num_rows());
            self.pending.push(rest.slice(0, take));
            self.pending_rows += take;
            rest = rest.slice(take, rest.num_rows() - take);
            if self.pending_rows == ROW_GROUP_ROWS {
                self.write_row_group()?;
            }
        }
        Ok(())
    }

    /// Encodes the gathered rows as one row group on two threads, and appends it to the file
    /// with its columns in order. The threads take the columns one at a time from a shared
    /// queue: the near-unique id and time columns, which cost the most (plain values, all of
    /// zstd's work), come first in the schema, so the two finish together. A fixed split (even
    /// columns here, odd ones there) gave one thread the four heaviest and left the other
    /// idle for the end of every flush.
    fn write_row_group(&mut self) -> Result<()> {
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let writers = self.columns.create_column_writers(self.row_groups)?;
        let fields = self.schema.fields();
        if writers.len() != fields.len() {
            return Err(Error::Internal(
                "segment columns must be flat: one Parquet column per field".into(),
            ));
        }
        let queue = Mutex::new(writers.into_iter().enumerate().collect::<VecDeque<_>>());
        let encode = || -> Result<Vec<(usize, ArrowColumnChunk)>> {
            let mut done = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| Error::Internal("a column encoder panicked".into()))?
                    .pop_front();
                let Some((i, mut writer)) = next else {
                    return Ok(done);
                };
                for b in &batches {
                    for leaf in compute_leaves(&fields[i], b.column(i))? {
                        writer.write(&leaf)?;
                    }
                }
                done.push((i, writer.close()?));
            }
        };
        let (mine, theirs) = std::thread::scope(|scope| {
            let other = scope.spawn(encode);
            let mine = encode();
            let theirs = other
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a column encoder panicked".into())));
            (mine, theirs)
        });
        let mut chunks = mine?;
        chunks.extend(theirs?);
        chunks.sort_unstable_by_key(|(i, _)| *i);
        let mut row_group = self.writer.next_row_group()?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// Appends the row groups of the segment at `source` as they are stored, without decoding
    /// them (their pages, page indexes and Bloom filters are copied), for a compaction whose
    /// segments do not overlap in time. Its events, `rows` of them from `min_ts_us` to
    /// `max_ts_us`, must not be earlier than those written before.
    pub fn append_segment(
        &mut self,
        source: &Path,
        rows: usize,
        min_ts_us: i64,
        max_ts_us: i64,
    ) -> Result<()> {
        if min_ts_us < self.max_ts_us {
            return Err(Error::Internal(
                "a segment's batches must come in time order".into(),
            ));
        }
        if self.pending_rows > 0 {
            self.write_row_group()?;
        }
        let file = File::open(source).map_err(|e| Error::io(source, e))?;
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&file)?;
        if metadata.file_metadata().schema_descr().root_schema()
            != self.writer.schema_descr().root_schema()
        {
            return Err(Error::Internal(format!(
                "{} does not have the events' Parquet schema",
                source.display()
            )));
        }
        let (column_indexes, offset_indexes) = (metadata.column_index(), metadata.offset_index());
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let mut out = self.writer.next_row_group()?;
            for (c, column) in group.columns().iter().enumerate() {
                out.append_column(
                    &file,
                    ColumnCloseResult {
                        bytes_written: u64::try_from(column.compressed_size()).unwrap_or(0),
                        rows_written: u64::try_from(group.num_rows()).unwrap_or(0),
                        metadata: column.clone(),
                        bloom_filter: Sbbf::read_from_column_chunk(column, &file)?,
                        column_index: at(column_indexes, g, c),
                        offset_index: at(offset_indexes, g, c),
                    },
                )?;
            }
            out.close()?;
            self.row_groups += 1;
        }
        if rows > 0 {
            self.min_ts_us.get_or_insert(min_ts_us);
            self.max_ts_us = max_ts_us;
            self.rows += rows;
        }
        Ok(())
    }

    /// Gives the segment up: the temporary file is removed and nothing appears at its path.
    pub fn abandon(self) {
        drop(self.writer);
        if let Err(e) = fs::remove_file(&self.tmp) {
            tracing::warn!("could not remove {}: {e}", self.tmp.display());
        }
    }

    /// Closes the file, makes it durable and moves it to its path.
    pub fn finish(mut self) -> Result<WrittenSegment> {
        if self.pending_rows > 0 {
            self.write_row_group()?;
        }
        let SegmentWriter {
            path,
            tmp,
            writer,
            rows,
            min_ts_us,
            max_ts_us,
            ..
        } = self;
        let file = writer.into_inner()?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let bytes = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        Ok(WrittenSegment {
            rows,
            min_ts_us: min_ts_us.unwrap_or(0),
            max_ts_us: if min_ts_us.is_some() { max_ts_us } else { 0 },
            bytes,
        })
    }
}

/// The page index of column `c` of row group `g`, when the file has page indexes.
fn at<T: Clone>(indexes: Option<&Vec<Vec<T>>>, g: usize, c: usize) -> Option<T> {
    indexes.and_then(|all| all.get(g)?.get(c).cloned())
}

/// Makes a rename or create inside `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SessionAttrs;
    use crate::schema::{events_schema, pageview_row, to_batch};

    fn rows_at(times: &[i64]) -> RecordBatch {
        let rows: Vec<_> = times
            .iter()
            .map(|&t| pageview_row(t, SessionAttrs::default()))
            .collect();
        to_batch(&rows).unwrap()
    }

    #[test]
    fn a_streamed_segment_takes_batches_in_time_order_only_and_leaves_nothing_when_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segments").join("1.parquet");
        let mut w = SegmentWriter::create(&path, &events_schema()).unwrap();
        w.write(&rows_at(&[1, 2, 2])).unwrap();
        w.write(&rows_at(&[])).unwrap();
        w.write(&rows_at(&[5, 9])).unwrap();
        let written = w.finish().unwrap();
        assert_eq!(
            (written.rows, written.min_ts_us, written.max_ts_us),
            (5, 1, 9)
        );
        assert!(path.exists());

        let other = dir.path().join("segments").join("2.parquet");
        let mut w = SegmentWriter::create(&other, &events_schema()).unwrap();
        w.write(&rows_at(&[3, 4])).unwrap();
        assert!(
            w.write(&rows_at(&[2])).is_err(),
            "earlier than what was written"
        );
        assert!(w.write(&rows_at(&[7, 6])).is_err(), "not sorted within");
        w.abandon();
        let left: Vec<_> = fs::read_dir(dir.path().join("segments")).unwrap().collect();
        assert_eq!(
            left.len(),
            1,
            "only the finished segment, no temporary file"
        );
    }

    #[test]
    fn times_are_stored_as_deltas_and_event_ids_without_statistics() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.parquet");
        let schema = events_schema();
        let times: Vec<i64> = (0..10_000)
            .map(|i| 1_735_689_600_000_000 + i * 7_000)
            .collect();
        write_segment(&path, &schema, &[rows_at(&times)]).unwrap();

        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata().clone();
        let chunk = |name: &str| meta.row_group(0).column(schema.index_of(name).unwrap());
        assert!(
            chunk(col::TS)
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED)
        );
        assert!(
            chunk(col::EVENT_ID)
                .encodings()
                .any(|e| e == Encoding::DELTA_BYTE_ARRAY)
        );
        assert!(chunk(col::EVENT_ID).statistics().is_none());
        // Times and the dimensions keep the statistics that ranges and filters prune with.
        assert!(chunk(col::TS).statistics().is_some());
        assert!(chunk(col::COUNTRY_CODE).statistics().is_some());
        let mut read = Vec::new();
        for batch in reader.build().unwrap() {
            read.extend(times_of(&batch.unwrap()));
        }
        assert_eq!(read, times);
    }

    #[test]
    fn row_groups_encoded_on_two_threads_hold_every_row_in_order() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.parquet");
        let schema = events_schema();
        let mut w = SegmentWriter::create(&path, &schema).unwrap();
        // Batches that do not line up with row groups: 150,000 rows in pieces of 40,000.
        let times: Vec<i64> = (0..150_000).collect();
        for piece in times.chunks(40_000) {
            w.write(&rows_at(piece)).unwrap();
        }
        assert_eq!(w.finish().unwrap().rows, 150_000);

        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata().clone();
        let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, vec![65_536, 65_536, 18_928]);
        assert!(
            meta.row_groups()
                .iter()
                .all(|g| g.sorting_columns().is_some())
        );
        assert_eq!(reader.schema().fields(), schema.fields());
        let mut read = Vec::new();
        for batch in reader.build().unwrap() {
            read.extend(times_of(&batch.unwrap()));
        }
        assert_eq!(read, times);
        // Every column came through, not only the time: the visitor ids of the rows.
        let batch = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(batch, rows_at(&times[..batch.num_rows()]));
    }

    #[test]
    fn segments_that_follow_one_another_are_joined_with_their_pages_indexes_and_bloom_filters() {
        use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let dir = tempfile::tempdir().unwrap();
        let schema = events_schema();
        let pieces: [&[i64]; 3] = [&[1, 2, 2], &[2, 5, 7], &[9]];
        let mut sources = Vec::new();
        for (i, times) in pieces.iter().enumerate() {
            let path = dir.path().join(format!("{i}.parquet"));
            let mut w = SegmentWriter::create(&path, &schema).unwrap();
            w.write(&rows_at(times)).unwrap();
            sources.push((path, w.finish().unwrap()));
        }
        let joined = dir.path().join("joined.parquet");
        let mut w = SegmentWriter::create(&joined, &schema).unwrap();
        for (path, s) in &sources {
            w.append_segment(path, s.rows, s.min_ts_us, s.max_ts_us)
                .unwrap();
        }
        let written = w.finish().unwrap();
        assert_eq!(
            (written.rows, written.min_ts_us, written.max_ts_us),
            (7, 1, 9)
        );

        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(&joined).unwrap(),
            options,
        )
        .unwrap();
        let meta = reader.metadata().clone();
        assert_eq!(meta.num_row_groups(), 3);
        assert!(meta.column_index().is_some() && meta.offset_index().is_some());
        assert_eq!(reader.schema().fields(), schema.fields());
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let all = concat_batches(&schema, &batches).unwrap();
        assert_eq!(all, rows_at(&[1, 2, 2, 2, 5, 7, 9]));
        let file = SerializedFileReader::new_with_options(
            File::open(&joined).unwrap(),
            ReadOptionsBuilder::new()
                .with_reader_properties(
                    parquet::file::properties::ReaderProperties::builder()
                        .set_read_bloom_filter(true)
                        .build(),
                )
                .build(),
        )
        .unwrap();
        let hash_column = schema.index_of(col::VISITOR_HASH).unwrap();
        for g in 0..3 {
            let group = file.get_row_group(g).unwrap();
            assert!(group.get_column_bloom_filter(hash_column).is_some());
        }

        // One that starts before the end of what was written is refused.
        let mut w = SegmentWriter::create(&dir.path().join("x.parquet"), &schema).unwrap();
        let (second, s) = &sources[1];
        w.append_segment(second, s.rows, s.min_ts_us, s.max_ts_us)
            .unwrap();
        let (first, s) = &sources[0];
        assert!(
            w.append_segment(first, s.rows, s.min_ts_us, s.max_ts_us)
                .is_err()
        );
        w.abandon();
    }

    fn times_of(batch: &RecordBatch) -> Vec<i64> {
        let ts = batch.column(batch.schema().index_of(col::TS).unwrap());
        ts.as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .values()
            .to_vec()
    }
}

//! The hot buffer: events ingested since the last flush, as Arrow record batches.
//!
//! Rows gather in a small pending list and are sealed into a batch every [`SEAL_ROWS`] rows,
//! so that queries read a handful of large batches rather than one per event. A query's
//! snapshot includes the pending rows as one extra batch, built once and reused until the next
//! ingest.

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::schema::{StoredEvent, to_batch};

/// Rows per sealed batch.
pub const SEAL_ROWS: usize = 8192;

/// Events not yet written to a segment.
#[derive(Debug, Default)]
pub struct HotBuffer {
    sealed: Vec<RecordBatch>,
    pending: Vec<StoredEvent>,
    /// The pending rows as a batch, built by the first query after a write; behind its own
    /// lock so that queries need only read access to the buffer.
    pending_batch: std::sync::Mutex<Option<RecordBatch>>,
    rows: usize,
}

impl HotBuffer {
    /// Adds rows.
    pub fn push(&mut self, rows: impl IntoIterator<Item = StoredEvent>) -> Result<()> {
        for row in rows {
            self.pending.push(row);
            self.rows += 1;
            if self.pending.len() >= SEAL_ROWS {
                self.sealed.push(to_batch(&self.pending)?);
                self.pending.clear();
            }
        }
        *self
            .pending_batch
            .get_mut()
            .map_err(crate::engine::poisoned)? = None;
        Ok(())
    }

    /// Adds a batch of rows as it is (a large write, or one replayed from the log), after the
    /// rows already held.
    pub fn push_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if !self.pending.is_empty() {
            self.sealed.push(to_batch(&self.pending)?);
            self.pending.clear();
        }
        self.rows += batch.num_rows();
        self.sealed.push(batch);
        *self
            .pending_batch
            .get_mut()
            .map_err(crate::engine::poisoned)? = None;
        Ok(())
    }

    /// Number of rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the last batch of [`HotBuffer::snapshot`] holds pending rows (replaced by the
    /// next ingest) rather than a sealed batch.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Every row, as batches, for a query.
    pub fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        let mut pending = self.pending_batch.lock().map_err(crate::engine::poisoned)?;
        if pending.is_none() && !self.pending.is_empty() {
            *pending = Some(to_batch(&self.pending)?);
        }
        Ok(self
            .sealed
            .iter()
            .chain(pending.as_ref())
            .cloned()
            .collect())
    }

    /// Puts back batches that a failed flush took, ahead of newer rows.
    pub fn restore(&mut self, batches: Vec<RecordBatch>) {
        self.rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        let newer = std::mem::take(&mut self.sealed);
        self.sealed = batches.into_iter().chain(newer).collect();
    }

    /// Replaces every row with `batches` (what a delete kept).
    pub fn replace(&mut self, batches: Vec<RecordBatch>) {
        *self = HotBuffer::default();
        self.restore(batches);
    }

    /// Empties the buffer, returning every row as batches.
    pub fn take(&mut self) -> Result<Vec<RecordBatch>> {
        let batches = self.snapshot()?;
        *self = HotBuffer::default();
        Ok(batches)
    }
}

//! Compaction: every flush adds a segment per website, so a server flushing every 30 seconds
//! would soon make each query open thousands of files. After a flush, a website with more than
//! [`MAX_SMALL_SEGMENTS`] segments under [`SMALL_SEGMENT_ROWS`] rows has them merged into one,
//! copy-on-write like a delete: write the merged file, swap it in the catalog in one save, and
//! retire the old files, which are removed once no query can still be reading them.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use std::time::{Duration, Instant};

use crate::engine::{Engine, poisoned};
use crate::error::{Error, Result};
use crate::schema::events_schema;
use crate::store::catalog::{Catalog, SegmentMeta};
use crate::store::segment::write_segment;
use crate::store::table::EventsTable;

/// Segments with fewer rows than this are merged.
pub const SMALL_SEGMENT_ROWS: usize = 1_000_000;
/// A website may keep this many small segments before they are merged.
pub const MAX_SMALL_SEGMENTS: usize = 8;
/// How long a replaced file is kept for queries that started before the swap.
pub const RETIRED_GRACE: Duration = Duration::from_secs(60);

impl Engine {
    /// Merges small segments; the caller holds the flush lock. Returns the segments merged.
    pub(crate) async fn compact_locked(&self) -> Result<usize> {
        let small_by_site: Vec<(String, Vec<SegmentMeta>)> = {
            let st = self.state.read().map_err(poisoned)?;
            st.catalog
                .websites
                .keys()
                .map(|site| {
                    let small: Vec<SegmentMeta> = st
                        .catalog
                        .segments
                        .iter()
                        .filter(|s| &s.website_id == site && s.rows < SMALL_SEGMENT_ROWS)
                        .cloned()
                        .collect();
                    (site.clone(), small)
                })
                .filter(|(_, small)| small.len() > MAX_SMALL_SEGMENTS)
                .collect()
        };
        let mut merged = 0;
        for (site, small) in small_by_site {
            let files = small.iter().map(|s| self.segment_file(s)).collect();
            let table = Arc::new(EventsTable::new(events_schema(), Vec::new(), files));
            let batches = self.ctx.read_table(table)?.collect().await?;
            let meta = self.write_new_segment(&site, batches).await?;
            let merged_files: Vec<String> = small.iter().map(|s| s.file.clone()).collect();
            let new_file = meta.file.clone();
            let ids: Vec<u64> = small.iter().map(|s| s.id).collect();
            let mut st = self.state.write().map_err(poisoned)?;
            st.commit(&self.dir, |next| {
                next.segments.retain(|s| !ids.contains(&s.id));
                next.segments.push(meta);
            })?;
            drop(st);
            self.resident.adopt_merged(&site, &new_file, &merged_files);
            self.retire(small.iter());
            merged += small.len();
        }
        Ok(merged)
    }

    /// Writes `batches` of `site` as a new segment (id from the catalog, sorted, durable) and
    /// describes it; the caller records it in the catalog.
    pub(crate) async fn write_new_segment(
        &self,
        site: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<SegmentMeta> {
        let id = {
            let mut st = self.state.write().map_err(poisoned)?;
            st.catalog.next_segment_id += 1;
            st.catalog.next_segment_id - 1
        };
        let file = Catalog::segment_file(site, id);
        let path = self.dir.join(&file);
        let w =
            tokio::task::spawn_blocking(move || write_segment(&path, &events_schema(), &batches))
                .await
                .map_err(|e| Error::invalid("segment", format!("writer task failed: {e}")))??;
        Ok(SegmentMeta {
            id,
            website_id: site.to_owned(),
            file,
            rows: w.rows,
            min_ts_us: w.min_ts_us,
            max_ts_us: w.max_ts_us,
            bytes: w.bytes,
        })
    }

    /// Schedules the files of `segments` for removal.
    pub(crate) fn retire<'a>(&self, segments: impl Iterator<Item = &'a SegmentMeta>) {
        if let Ok(mut r) = self.retired.lock() {
            let now = Instant::now();
            r.extend(segments.map(|s| (now, self.dir.join(&s.file))));
        }
    }

    /// Removes retired files older than [`RETIRED_GRACE`].
    pub(crate) fn remove_retired(&self) {
        let Ok(mut r) = self.retired.lock() else {
            return;
        };
        r.retain(|(at, path)| {
            if at.elapsed() < RETIRED_GRACE {
                return true;
            }
            // A file already gone is fine; anything else is retried at the next flush.
            match std::fs::remove_file(path) {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            }
        });
    }
}

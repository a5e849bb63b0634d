//! Compaction: every flush adds a segment per website, so a server flushing every 30 seconds
//! would soon make each query open thousands of files. After a flush, a website with more than
//! [`MAX_SMALL_SEGMENTS`] segments under [`SMALL_SEGMENT_ROWS`] rows has them merged into one,
//! copy-on-write like a delete: write the merged file, swap it in the catalog in one save, and
//! retire the old files, which are removed once no query can still be reading them. Segments
//! that follow one another in time (the usual case) are joined by copying their row groups as
//! stored; others are merged in time order as they stream. Memory does not grow with their
//! size either way.

use std::sync::Arc;

use datafusion::prelude::col;

use crate::engine::Engine;
use crate::error::Result;
use crate::schema::{col as c, events_schema};
use crate::store::catalog::SegmentMeta;
use crate::store::table::EventsTable;

/// Segments with fewer rows than this are merged.
pub const SMALL_SEGMENT_ROWS: usize = 1_000_000;
/// A website may keep this many small segments before they are merged.
pub const MAX_SMALL_SEGMENTS: usize = 8;

impl Engine {
    /// Merges small segments; the caller holds the flush lock. Returns the segments merged.
    pub(crate) async fn compact_locked(&self) -> Result<usize> {
        let small_by_site: Vec<(String, Vec<SegmentMeta>)> = {
            let st = self.store.read()?;
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
        for (site, mut small) in small_by_site {
            small.sort_by_key(|s| (s.min_ts_us, s.max_ts_us, s.id));
            let meta = if follow_one_another(&small) {
                // The usual case (writes and imports arrive in time order): the files are
                // joined as stored, with no decoding and encoding again.
                self.store.join_segments(&site, &small).await?
            } else {
                // Each segment is sorted by time: merged as they stream, never held whole.
                let files = small.iter().map(|s| self.store.segment_file(s)).collect();
                let table = EventsTable::new(events_schema(), Vec::new(), files).in_time_order();
                let rows = self
                    .ctx
                    .read_table(Arc::new(table))?
                    .sort(vec![col(c::TS).sort(true, true)])?
                    .execute_stream()
                    .await?;
                self.store.write_segment_stream(&site, rows).await?
            };
            let merged_files: Vec<String> = small.iter().map(|s| s.file.clone()).collect();
            let new_file = meta.file.clone();
            let ids: Vec<u64> = small.iter().map(|s| s.id).collect();
            self.store.commit(|next| {
                next.segments.retain(|s| !ids.contains(&s.id));
                next.segments.push(meta);
            })?;
            self.resident.adopt_merged(&site, &new_file, &merged_files);
            self.store.retire(small.iter());
            merged += small.len();
        }
        Ok(merged)
    }
}

/// Whether `segments`, sorted by their first event, do not overlap in time: each one's events
/// come at or after the last of the one before.
fn follow_one_another(segments: &[SegmentMeta]) -> bool {
    segments
        .windows(2)
        .all(|pair| pair[0].max_ts_us <= pair[1].min_ts_us)
}

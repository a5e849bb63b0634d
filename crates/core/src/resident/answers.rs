//! The engine's questions answered from resident columns: each returns `None` when the website
//! does not fit in the resident budget, and the engine then runs its DataFusion plans.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::engine::{Engine, poisoned};
use crate::error::{Error, Result};
use crate::query::result::{BreakdownRow, Overview, Revenue};
use crate::query::spec::{Breakdown, Query};
use crate::resident::groups::Groups;
use crate::resident::kernels::{self, View};
use crate::resident::{ResidentSnapshot, SegmentRef};

impl Engine {
    /// The hot batches (with those being flushed) and every live segment of `site`.
    fn resident_parts(
        &self,
        site: &str,
    ) -> Result<(Vec<datafusion::arrow::record_batch::RecordBatch>, Vec<SegmentRef>)> {
        let mut guard = self.state.write().map_err(poisoned)?;
        let st = &mut *guard;
        if !st.catalog.websites.contains_key(site) {
            return Err(Error::NotFound {
                what: "website",
                id: site.to_owned(),
            });
        }
        let segments = st
            .catalog
            .segments
            .iter()
            .filter(|s| s.website_id == site)
            .map(|s| SegmentRef {
                file: s.file.clone(),
                path: self.dir.join(&s.file),
                rows: s.rows,
            })
            .collect();
        let data = st.sites.entry(site.to_owned()).or_default();
        let mut hot = data.flushing.clone();
        hot.extend(data.hot.snapshot()?);
        Ok((hot, segments))
    }

    /// Runs `answer` on a resident snapshot of `q`'s website on a blocking thread, with the
    /// view of `q`'s range and filters.
    async fn resident<T: Send + 'static>(
        &self,
        q: &Query,
        answer: impl FnOnce(&ResidentSnapshot, &View) -> Result<T> + Send + 'static,
    ) -> Result<Option<T>> {
        let (hot, segments) = self.resident_parts(&q.website_id)?;
        let store = Arc::clone(&self.resident);
        let q = q.clone();
        tokio::task::spawn_blocking(move || {
            let Some(snap) = store.snapshot(&q.website_id, &hot, &segments)? else {
                return Ok(None);
            };
            let selection = snap.selection(&q.filters)?;
            let (start, end) = q.range.map_or((i64::MIN, i64::MAX), |r| {
                (r.start.timestamp_micros(), r.end.timestamp_micros())
            });
            let view = View {
                chunks: &snap.chunks,
                start,
                end,
                selection: selection.as_ref(),
                visitors: snap.visitors,
            };
            answer(&snap, &view).map(Some)
        })
        .await
        .map_err(|e| Error::Internal(format!("resident query task failed: {e}")))?
    }

    /// Makes every website's columns resident (decoding its segments), so that the first
    /// query does not pay for it. Websites over the budget stay on Parquet.
    pub async fn warm(&self) -> Result<()> {
        for w in self.websites()? {
            self.resident(&Query::new(w.id), |_, _| Ok(())).await?;
        }
        Ok(())
    }

    /// Bytes held by resident columns and their dictionaries.
    pub fn resident_bytes(&self) -> usize {
        self.resident.used_bytes()
    }

    pub(crate) async fn resident_overview(&self, q: &Query) -> Result<Option<Overview>> {
        self.resident(q, |_, view| Ok(kernels::overview(view))).await
    }

    /// Every row of a breakdown, sorted (visitors desc, values asc).
    pub(crate) async fn resident_breakdown(
        &self,
        q: &Query,
        by: &Breakdown,
    ) -> Result<Option<Vec<BreakdownRow>>> {
        let by = by.clone();
        self.resident(q, move |snap, view| {
            let mut groups = snap.with_dicts(|d| Groups::new(&by, d))??;
            let totals = kernels::breakdown(view, &mut groups);
            let mut rows = snap.with_dicts(|d| {
                totals
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.visitors > 0)
                    .map(|(g, t)| BreakdownRow {
                        values: groups.values(g as u32, d),
                        visitors: t.visitors,
                        revenue: t.revenue,
                        completions: t.completions,
                    })
                    .collect::<Vec<_>>()
            })?;
            rows.sort_by(|a, b| b.visitors.cmp(&a.visitors).then_with(|| a.values.cmp(&b.values)));
            Ok(rows)
        })
        .await
    }

    /// The website's earliest and latest event (µs): `Some(None)` when it has none.
    pub(crate) async fn resident_time_span(&self, q: &Query) -> Result<Option<Option<(i64, i64)>>> {
        self.resident(q, |snap, _| Ok(kernels::time_span(&snap.chunks)))
            .await
    }

    /// Per-bucket counts and the totals of a time series over `q`'s range.
    pub(crate) async fn resident_series(
        &self,
        q: &Query,
        starts: &[DateTime<Utc>],
    ) -> Result<Option<(Vec<(u64, u64, Revenue)>, Overview)>> {
        let starts_us: Vec<i64> = starts.iter().map(DateTime::timestamp_micros).collect();
        self.resident(q, move |_, view| {
            Ok((kernels::buckets(view, &starts_us), kernels::overview(view)))
        })
        .await
    }
}

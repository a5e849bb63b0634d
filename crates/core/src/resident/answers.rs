//! The engine's questions answered from resident columns, each as a physical plan of one
//! [`ResidentAggregateExec`] run by DataFusion. Each returns `None` when the website does not
//! fit in the resident budget; the engine then runs its DataFusion plans over Parquet.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::money;
use crate::query::plan::{breakdown_rows, floats, ints, to_u64};
use crate::query::result::{BreakdownRow, Overview, Revenue};
use crate::query::spec::{Breakdown, Query};
use crate::resident::exec::{Question, ResidentAggregateExec};
use crate::resident::{ResidentSnapshot, SegmentRef, kernels};

/// A query's range in µs, all time when it has none.
fn range_us(q: &Query) -> (i64, i64) {
    q.range.map_or((i64::MIN, i64::MAX), |r| {
        (r.start.timestamp_micros(), r.end.timestamp_micros())
    })
}

impl Engine {
    /// The hot batches (with those being flushed) and every live segment of `site`.
    fn resident_parts(&self, site: &str) -> Result<(Vec<RecordBatch>, usize, Vec<SegmentRef>)> {
        let snap = self.store.snapshot(site, i64::MIN, i64::MAX)?;
        let segments = snap
            .segments
            .into_iter()
            .map(|s| SegmentRef {
                path: self.store.dir().join(&s.file),
                file: s.file,
                rows: s.rows,
            })
            .collect();
        Ok((snap.hot, snap.pending, segments))
    }

    /// A resident snapshot of `site` (decoding what is not resident yet, on a blocking
    /// thread); `None` when the website is over the budget.
    async fn resident_snapshot(&self, site: &str) -> Result<Option<Arc<ResidentSnapshot>>> {
        let (hot, pending, segments) = self.resident_parts(site)?;
        let store = Arc::clone(&self.resident);
        let site = site.to_owned();
        let snap =
            tokio::task::spawn_blocking(move || store.snapshot(&site, &hot, pending, &segments))
                .await
                .map_err(|e| Error::Internal(format!("resident snapshot task failed: {e}")))??;
        Ok(snap.map(Arc::new))
    }

    fn resident_plan(
        q: &Query,
        snap: &Arc<ResidentSnapshot>,
        question: Question,
    ) -> Arc<dyn ExecutionPlan> {
        Arc::new(ResidentAggregateExec::new(
            question,
            Arc::clone(snap),
            &q.website_id,
            range_us(q),
            &q.filters,
        ))
    }

    async fn run(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Vec<RecordBatch>> {
        Ok(collect(plan, self.ctx.task_ctx()).await?)
    }

    /// Makes every website's columns resident (decoding its segments), so that the first
    /// query does not pay for it. Websites over the budget stay on Parquet.
    pub async fn warm(&self) -> Result<()> {
        for w in self.websites()? {
            self.resident_snapshot(&w.id).await?;
        }
        Ok(())
    }

    /// Bytes held by resident columns and their dictionaries.
    pub fn resident_bytes(&self) -> usize {
        self.resident.used_bytes()
    }

    /// Bytes held by cached partial answers (see [`EngineConfig::answer_cache_bytes`]).
    ///
    /// [`EngineConfig::answer_cache_bytes`]: crate::EngineConfig::answer_cache_bytes
    pub fn answer_cache_bytes(&self) -> usize {
        self.resident.parts_bytes()
    }

    /// The physical plan that answers `q`'s overview, as DataFusion displays it: one
    /// `ResidentAggregateExec` with the range and filters pushed into it, or (over the resident
    /// budget) the DataFusion plan of the selected events over Parquet.
    pub async fn explain_overview(&self, q: &Query) -> Result<String> {
        let plan = match self.resident_snapshot(&q.website_id).await? {
            Some(snap) => Self::resident_plan(q, &snap, Question::Overview),
            None => self.selected_events(q)?.create_physical_plan().await?,
        };
        Ok(displayable(plan.as_ref()).indent(true).to_string())
    }

    pub(crate) async fn resident_overview(&self, q: &Query) -> Result<Option<Overview>> {
        let Some(snap) = self.resident_snapshot(&q.website_id).await? else {
            return Ok(None);
        };
        let batches = self
            .run(Self::resident_plan(q, &snap, Question::Overview))
            .await?;
        Ok(Some(overview_from(&batches)?))
    }

    /// The first `top` rows of a breakdown, sorted (visitors desc, values asc), and the number
    /// of rows in all. Only those rows are named.
    pub(crate) async fn resident_breakdown(
        &self,
        q: &Query,
        by: &Breakdown,
        top: usize,
    ) -> Result<Option<(Vec<BreakdownRow>, usize)>> {
        let Some(snap) = self.resident_snapshot(&q.website_id).await? else {
            return Ok(None);
        };
        let k = match by {
            Breakdown::Page => 2,
            Breakdown::Campaign(fields) => fields.len(),
            _ => 1,
        };
        let node = Arc::new(
            ResidentAggregateExec::new(
                Question::Breakdown(by.clone()),
                Arc::clone(&snap),
                &q.website_id,
                range_us(q),
                &q.filters,
            )
            .with_top(top),
        );
        let batches = self
            .run(Arc::clone(&node) as Arc<dyn ExecutionPlan>)
            .await?;
        let rows = breakdown_rows(&batches, k)?;
        Ok(Some((rows, node.groups())))
    }

    /// The website's earliest and latest event (µs): `Some(None)` when it has none.
    pub(crate) async fn resident_time_span(&self, q: &Query) -> Result<Option<Option<(i64, i64)>>> {
        Ok(self
            .resident_snapshot(&q.website_id)
            .await?
            .map(|snap| kernels::time_span(&snap.chunks)))
    }

    /// Per-bucket counts and the totals of a time series over `q`'s range: two plans over one
    /// snapshot, run side by side.
    pub(crate) async fn resident_series(
        &self,
        q: &Query,
        starts: &[DateTime<Utc>],
    ) -> Result<Option<(Vec<(u64, u64, Revenue)>, Overview)>> {
        let Some(snap) = self.resident_snapshot(&q.website_id).await? else {
            return Ok(None);
        };
        let starts_us = starts.iter().map(DateTime::timestamp_micros).collect();
        let (buckets, totals) = futures::try_join!(
            self.run(Self::resident_plan(q, &snap, Question::Buckets(starts_us))),
            self.run(Self::resident_plan(q, &snap, Question::Overview)),
        )?;
        let mut out = vec![(0u64, 0u64, Revenue::default()); starts.len()];
        for b in &buckets {
            let one = std::slice::from_ref(b);
            let (idx, v, s) = (ints(one, 0)?, ints(one, 1)?, ints(one, 2)?);
            let (new, renewal, refund) = (floats(one, 3)?, floats(one, 4)?, floats(one, 5)?);
            for r in 0..b.num_rows() {
                if let Some(slot) = idx[r].and_then(|i| out.get_mut(i as usize)) {
                    *slot = (
                        to_u64(v[r]),
                        to_u64(s[r]),
                        money::revenue_from_micros(Revenue {
                            new: new[r].unwrap_or(0.0),
                            renewal: renewal[r].unwrap_or(0.0),
                            refund: refund[r].unwrap_or(0.0),
                        }),
                    );
                }
            }
        }
        Ok(Some((out, overview_from(&totals)?)))
    }
}

/// The overview from the one row of an overview plan.
fn overview_from(batches: &[RecordBatch]) -> Result<Overview> {
    let int = |i| -> Result<u64> { Ok(to_u64(ints(batches, i)?.first().copied().flatten())) };
    let float = |i| -> Result<f64> {
        Ok(floats(batches, i)?
            .first()
            .copied()
            .flatten()
            .unwrap_or(0.0))
    };
    let (visitors, sessions, bounced) = (int(0)?, int(1)?, int(2)?);
    let revenue = money::revenue_from_micros(Revenue {
        new: float(4)?,
        renewal: float(5)?,
        refund: float(6)?,
    });
    Ok(Overview::from_counts(
        visitors,
        sessions,
        bounced,
        float(3)?,
        revenue,
        int(7)?,
    ))
}

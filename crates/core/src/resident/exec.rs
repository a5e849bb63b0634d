//! [`ResidentAggregateExec`]: the resident kernels as a DataFusion physical plan node.
//!
//! A leaf of the plan that scans a website's resident chunks with the query's range and filters
//! pushed into it (shown in the plan's display) and emits the aggregated answer as one record
//! batch: the overview's totals, a breakdown's sorted rows, or a time series' buckets. DataFusion
//! runs it like any other node (`collect`, `EXPLAIN`-style display, task context), so what the
//! engine answers stays a physical plan that can be inspected, while the work inside is the
//! bitset and dictionary-code kernels of [`super::kernels`], which DataFusion's generic hash
//! aggregation cannot match on this workload.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use crate::error::{Error, Result};
use crate::query::spec::{Breakdown, Filter};
use crate::resident::ResidentSnapshot;
use crate::resident::cache::{Base, ChunkSet, Part};
use crate::resident::chunk::Chunk;
use crate::resident::groups::Groups;
use crate::resident::kernels::{self, GroupTotals, Keep, View};
use crate::resident::parts::GroupKey;
use crate::resident::select::Selection;

/// What a [`ResidentAggregateExec`] computes.
#[derive(Debug, Clone)]
pub(crate) enum Question {
    /// One row: visitors, sessions, bounced_sessions, avg_duration_ms, revenue_new,
    /// revenue_renewal, revenue_refund, paying_visitors. Revenue, here and below, is in
    /// micro-units, as the plans' batches carry it ([`crate::money`]).
    Overview,
    /// Rows sorted by visitors desc, values asc: value_0.., visitors, revenue, completions.
    Breakdown(Breakdown),
    /// One row per bucket: bucket, visitors, sessions, revenue_new, revenue_renewal,
    /// revenue_refund. The bucket starts are µs since the epoch.
    Buckets(Vec<i64>),
}

impl Question {
    fn schema(&self) -> SchemaRef {
        let u = |n: &str| Field::new(n, DataType::UInt64, false);
        let f = |n: &str| Field::new(n, DataType::Float64, false);
        let fields = match self {
            Question::Overview => vec![
                u("visitors"),
                u("sessions"),
                u("bounced_sessions"),
                f("avg_duration_ms"),
                f("revenue_new"),
                f("revenue_renewal"),
                f("revenue_refund"),
                u("paying_visitors"),
            ],
            Question::Breakdown(by) => {
                let mut v: Vec<Field> = (0..value_count(by))
                    .map(|i| Field::new(format!("value_{i}"), DataType::Utf8, false))
                    .collect();
                v.extend([u("visitors"), f("revenue"), u("completions")]);
                v
            }
            Question::Buckets(_) => vec![
                Field::new("bucket", DataType::UInt32, false),
                u("visitors"),
                u("sessions"),
                f("revenue_new"),
                f("revenue_renewal"),
                f("revenue_refund"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// How many value columns a breakdown's rows have.
fn value_count(by: &Breakdown) -> usize {
    match by {
        Breakdown::Page => 2,
        Breakdown::Campaign(fields) => fields.len(),
        _ => 1,
    }
}

/// The resident scan, filter and aggregation of one question, fused into a leaf node.
pub(crate) struct ResidentAggregateExec {
    question: Question,
    snapshot: Arc<ResidentSnapshot>,
    website: String,
    start: i64,
    end: i64,
    filters: Vec<Filter>,
    props: Arc<PlanProperties>,
    /// Threads the kernel may use, decided when it is admitted.
    threads: usize,
    /// A breakdown emits (and names) only its first this many rows.
    top: Option<usize>,
    /// A breakdown's rows in all, set when it has run (shared by the node's copies).
    groups: Arc<std::sync::atomic::AtomicUsize>,
}

impl fmt::Debug for ResidentAggregateExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResidentAggregateExec")
            .field("question", &self.question)
            .field("website", &self.website)
            .finish_non_exhaustive()
    }
}

impl ResidentAggregateExec {
    /// The node answering `question` for `website` over `[start, end)` µs with `filters`.
    pub(crate) fn new(
        question: Question,
        snapshot: Arc<ResidentSnapshot>,
        website: &str,
        (start, end): (i64, i64),
        filters: &[Filter],
    ) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(question.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        ResidentAggregateExec {
            question,
            snapshot,
            website: website.to_owned(),
            start,
            end,
            filters: filters.to_vec(),
            props: Arc::new(props),
            threads: 1,
            top: None,
            groups: Arc::default(),
        }
    }

    /// The same node, emitting only the first `top` rows of a breakdown (the rest are counted,
    /// not named).
    pub(crate) fn with_top(mut self, top: usize) -> Self {
        self.top = Some(top);
        self
    }

    /// The rows of the breakdown in all, once the node has run.
    pub(crate) fn groups(&self) -> usize {
        self.groups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key of this question's cached base part: website, question, filters, and the range
    /// clamped to the UTC days that the stable chunks' times touch (plus one). Two ranges that
    /// clamp alike cover the same rows of those chunks, so a range ending "now" (or all time)
    /// keeps its base while new rows arrive, until they reach a day beyond the base's.
    fn cache_key(&self) -> String {
        const DAY: i64 = 86_400_000_000;
        let snap = &self.snapshot;
        let stable = &snap.chunks[..snap.chunks.len() - snap.pending];
        let (lo, hi) = kernels::time_span(stable).map_or((0, 0), |(lo, hi)| {
            let lo = lo.div_euclid(DAY) * DAY;
            let hi = (hi.div_euclid(DAY) + 2).saturating_mul(DAY);
            (lo, hi)
        });
        let (start, end) = (self.start.max(lo), self.end.min(hi));
        let (start, end) = if start < end { (start, end) } else { (0, 0) };
        let what = format!("{:?}\u{0}{:?}", self.question, self.filters);
        format!(
            "{}\u{0}{start}\u{0}{end}\u{0}{:032x}",
            self.website,
            xxhash_rust::xxh3::xxh3_128(what.as_bytes())
        )
    }

    /// The answer of one question: a cached base part of the stable chunks merged with a scan of
    /// the chunks that appeared since, or (on a miss, or when the merge cannot be done) a scan
    /// of everything whose stable part becomes the cached base.
    fn answer<T>(
        &self,
        selection: Option<&Selection>,
        scan: impl Fn(&View, Keep) -> Result<Part>,
        finish: impl Fn(&Part, Option<&Part>) -> Option<T>,
    ) -> Result<T> {
        let snap = &self.snapshot;
        let key = self.cache_key();
        let all = &snap.chunks[..];
        let cached = || -> Result<Option<T>> {
            let Some(base) = snap.parts.get(&key) else {
                return Ok(None);
            };
            let Some(delta) = base.delta(all) else {
                return Ok(None);
            };
            Ok(if delta.is_empty() {
                finish(&base.part, None)
            } else {
                let part = scan(&self.view(&delta, selection, 1), Keep::All)?;
                finish(&base.part, Some(&part))
            })
        };
        if let Some(answer) = cached()? {
            return Ok(answer);
        }
        // One scan per question at a time: others asking it wait for its base.
        let flight = snap.parts.flight(&key).blocking_lock_owned();
        if let Some(answer) = cached()? {
            return Ok(answer);
        }
        let (stable, pending) = all.split_at(all.len() - snap.pending);
        let base = scan(&self.view(stable, selection, self.threads), Keep::Tail)?;
        let merged = if pending.is_empty() {
            finish(&base, None)
        } else {
            let part = scan(&self.view(pending, selection, 1), Keep::All)?;
            finish(&base, Some(&part))
        };
        if snap.parts.enabled() {
            // Compacting the base costs about as much as answering from it: done after the
            // answer, still holding the question's flight so that its next askers find it.
            let (parts, chunks) = (Arc::clone(&snap.parts), ChunkSet::of(stable));
            let keep = move || {
                parts.insert(key, Base::new(chunks, base));
                drop(flight);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(keep)),
                Err(_) => keep(),
            }
        }
        if let Some(answer) = merged {
            return Ok(answer);
        }
        let whole = scan(&self.view(all, selection, self.threads), Keep::Tail)?;
        finish(&whole, None)
            .ok_or_else(|| Error::Internal("a part of another question was scanned".into()))
    }

    /// Runs the kernel (blocking: call it off the async runtime).
    fn compute(&self) -> Result<RecordBatch> {
        let snap = &self.snapshot;
        let selection = snap.selection(&self.filters)?;
        let selection = selection.as_ref();
        let schema = self.question.schema();
        let columns: Vec<ArrayRef> = match &self.question {
            Question::Overview => {
                let o = self.answer(
                    selection,
                    |view, keep| Ok(Part::Overview(kernels::overview(view, keep))),
                    |base, delta| match (base, delta) {
                        (Part::Overview(b), None) => Some(b.finish()),
                        (Part::Overview(b), Some(Part::Overview(d))) => b.finish_with(d),
                        _ => None,
                    },
                )?;
                vec![
                    Arc::new(UInt64Array::from(vec![o.visitors])),
                    Arc::new(UInt64Array::from(vec![o.sessions])),
                    Arc::new(UInt64Array::from(vec![o.bounced_sessions])),
                    Arc::new(Float64Array::from(vec![o.avg_session_duration_ms])),
                    Arc::new(Float64Array::from(vec![o.revenue.new])),
                    Arc::new(Float64Array::from(vec![o.revenue.renewal])),
                    Arc::new(Float64Array::from(vec![o.revenue.refund])),
                    Arc::new(UInt64Array::from(vec![o.paying_visitors])),
                ]
            }
            Question::Breakdown(by) => {
                let totals = self.answer(
                    selection,
                    |view, _| {
                        let mut groups = snap.with_dicts(|d| Groups::new(by, d))??;
                        Ok(Part::Groups(kernels::breakdown(view, &mut groups)))
                    },
                    |base, delta| match (base, delta) {
                        (Part::Groups(b), None) => Some(b.finish()),
                        (Part::Groups(b), Some(Part::Groups(d))) => Some(b.finish_with(d)),
                        _ => None,
                    },
                )?;
                let mut rows: Vec<&(GroupKey, GroupTotals)> =
                    totals.iter().filter(|(_, t)| t.visitors > 0).collect();
                self.groups
                    .store(rows.len(), std::sync::atomic::Ordering::Relaxed);
                // Only the rows asked for are sorted in full and named: the order's tie-break
                // compares values straight from the dictionaries.
                let rows = snap.with_dicts(|d| -> Result<Vec<(Vec<String>, GroupTotals)>> {
                    let naming = Groups::new(by, d)?;
                    let order = |a: &&(GroupKey, GroupTotals), b: &&(GroupKey, GroupTotals)| {
                        b.1.visitors
                            .cmp(&a.1.visitors)
                            .then_with(|| naming.compare_values(&a.0, &b.0, d))
                    };
                    if let Some(top) = self.top
                        && top < rows.len()
                    {
                        if top > 0 {
                            rows.select_nth_unstable_by(top - 1, order);
                        }
                        rows.truncate(top);
                    }
                    rows.sort_unstable_by(order);
                    Ok(rows
                        .into_iter()
                        .map(|(key, t)| (naming.values(key, d), *t))
                        .collect())
                })??;
                let mut cols: Vec<ArrayRef> = (0..value_count(by))
                    .map(|i| {
                        Arc::new(StringArray::from_iter_values(
                            rows.iter().map(|r| r.0[i].as_str()),
                        )) as ArrayRef
                    })
                    .collect();
                cols.push(Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.1.visitors),
                )));
                cols.push(Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.1.revenue),
                )));
                cols.push(Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.1.completions),
                )));
                cols
            }
            Question::Buckets(starts) => {
                let b = self.answer(
                    selection,
                    |view, _| Ok(Part::Buckets(kernels::buckets(view, starts))),
                    |base, delta| match (base, delta) {
                        (Part::Buckets(b), None) => Some(b.finish()),
                        (Part::Buckets(b), Some(Part::Buckets(d))) => Some(b.finish_with(d)),
                        _ => None,
                    },
                )?;
                vec![
                    Arc::new(UInt32Array::from_iter_values(0..b.len() as u32)),
                    Arc::new(UInt64Array::from_iter_values(b.iter().map(|x| x.0))),
                    Arc::new(UInt64Array::from_iter_values(b.iter().map(|x| x.1))),
                    Arc::new(Float64Array::from_iter_values(b.iter().map(|x| x.2.new))),
                    Arc::new(Float64Array::from_iter_values(
                        b.iter().map(|x| x.2.renewal),
                    )),
                    Arc::new(Float64Array::from_iter_values(b.iter().map(|x| x.2.refund))),
                ]
            }
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// The question's view of `chunks`.
    fn view<'a>(
        &'a self,
        chunks: &'a [Arc<Chunk>],
        selection: Option<&'a Selection>,
        threads: usize,
    ) -> View<'a> {
        View {
            chunks,
            start: self.start,
            end: self.end,
            selection,
            visitors: self.snapshot.visitors,
            sessions: self.snapshot.sessions,
            bitset_bytes: self.snapshot.bitset_bytes,
            counting: self.snapshot.counting,
            threads,
        }
    }
}

impl DisplayAs for ResidentAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let what = match &self.question {
            Question::Overview => "overview".to_owned(),
            Question::Breakdown(by) => format!("breakdown={by:?}"),
            Question::Buckets(starts) => format!("buckets={}", starts.len()),
        };
        write!(f, "ResidentAggregateExec: {what}, website={}", self.website)?;
        if self.start != i64::MIN || self.end != i64::MAX {
            write!(f, ", ts_us=[{}, {})", self.start, self.end)?;
        }
        let filter = self
            .filters
            .iter()
            .map(|x| format!("{} {} {:?}", x.dimension.name(), x.op.name(), x.values))
            .collect::<Vec<_>>();
        if !filter.is_empty() {
            write!(f, ", filter=[{}]", filter.join(" AND "))?;
        }
        write!(
            f,
            ", chunks={}, rows={}",
            self.snapshot.chunks.len(),
            self.snapshot.chunks.iter().map(|c| c.len()).sum::<usize>()
        )
    }
}

impl ExecutionPlan for ResidentAggregateExec {
    fn name(&self) -> &str {
        "ResidentAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut me = ResidentAggregateExec {
            question: self.question.clone(),
            snapshot: Arc::clone(&self.snapshot),
            website: self.website.clone(),
            start: self.start,
            end: self.end,
            filters: self.filters.clone(),
            props: Arc::clone(&self.props),
            threads: 1,
            top: self.top,
            groups: Arc::clone(&self.groups),
        };
        let batch = async move {
            // Fair (first come, first served) admission keeps tail latency in line under load.
            let gate = Arc::clone(&me.snapshot.gate);
            let _permit = Arc::clone(&gate)
                .acquire_owned()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            // Alone, an answer spreads over every core; beside others, each keeps to one, so
            // that none is slowed by splitting and merging.
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            me.threads = if gate.available_permits() + 1 >= cores {
                cores
            } else {
                1
            };
            tokio::task::spawn_blocking(move || me.compute())
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .map_err(|e| match e {
                    Error::DataFusion(e) => e,
                    other => DataFusionError::External(Box::new(other)),
                })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.question.schema(),
            futures::stream::once(batch),
        )))
    }
}

//! Queries as DataFusion plans, built with the DataFrame API from typed specs (never SQL text).
//!
//! Every answer starts from the same two frames of one [`Scope`]:
//! - `base`: the website's events in the range — what session metrics and revenue read;
//! - `selected`: `base` with the dimension filters, pushed into the scan.
//!
//! When there are no filters `selected` is `base`, and the joins that restrict sessions and
//! payments to selected visitors are left out of the plan.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::JoinType;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use datafusion::logical_expr::when;
use std::ops::Not;

use datafusion::prelude::{DataFrame, Expr, SessionContext, cast as cast_expr, col, lit};
use datafusion::scalar::ScalarValue;

use crate::error::Result;
use crate::money;
use crate::query::filter::{dimension_column, filters_expr};
use crate::query::result::{BreakdownRow, Overview, Revenue};
use crate::query::spec::{Breakdown, DateRange, Dimension, Filter};
use crate::query::time::BucketUdf;
use crate::schema::{TS_ZONE, col as c, kind};
use crate::store::table::EventsTable;

/// The events one query reads, with its filters.
pub struct Scope {
    ctx: SessionContext,
    table: Arc<EventsTable>,
    website_id: String,
    range: Option<DateRange>,
    filter: Option<Expr>,
}

fn ts_lit(t: DateTime<Utc>) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(t.timestamp_micros()),
        Some(TS_ZONE.into()),
    ))
}

pub(crate) fn int_case(cond: Expr) -> Expr {
    when(cond, lit(1i64))
        .otherwise(lit(0i64))
        .unwrap_or_else(|_| lit(0i64))
}

/// The row's amount in micro-units when `cond` holds, else 0 (sums of it are exact, see
/// [`crate::money`]).
fn money_case(cond: Expr) -> Expr {
    when(cond, money::micros_expr(col(c::AMOUNT)))
        .otherwise(lit(0.0f64))
        .unwrap_or_else(|_| lit(0.0f64))
}

pub(crate) fn is_kind(k: &str) -> Expr {
    col(c::KIND).eq(lit(k))
}

pub(crate) fn refunded() -> Expr {
    coalesce(vec![col(c::REFUNDED), lit(false)])
}

fn renewal() -> Expr {
    coalesce(vec![col(c::RENEWAL), lit(false)])
}

/// Revenue columns of a payment row, in micro-units: new, renewal, refund.
fn revenue_columns() -> [Expr; 3] {
    [
        money_case(refunded().not().and(renewal().not())).alias("rev_new"),
        money_case(refunded().not().and(renewal())).alias("rev_renewal"),
        money_case(refunded()).alias("rev_refund"),
    ]
}

impl Scope {
    /// A scope over `table` for `website_id`, `range` and `filters`.
    pub fn new(
        ctx: SessionContext,
        table: Arc<EventsTable>,
        website_id: &str,
        range: Option<DateRange>,
        filters: &[Filter],
    ) -> Self {
        Scope {
            ctx,
            table,
            website_id: website_id.to_owned(),
            range,
            filter: filters_expr(filters),
        }
    }

    fn is_filtered(&self) -> bool {
        self.filter.is_some()
    }

    /// The website's events in the range.
    pub fn base(&self) -> Result<DataFrame> {
        let mut pred = col(c::WEBSITE_ID).eq(lit(self.website_id.clone()));
        if let Some(r) = self.range {
            pred = pred
                .and(col(c::TS).gt_eq(ts_lit(r.start)))
                .and(col(c::TS).lt(ts_lit(r.end)));
        }
        Ok(self
            .ctx
            .read_table(Arc::clone(&self.table) as _)?
            .filter(pred)?)
    }

    /// The events the filters select.
    pub fn selected(&self) -> Result<DataFrame> {
        let base = self.base()?;
        Ok(match &self.filter {
            Some(f) => base.filter(f.clone())?,
            None => base,
        })
    }

    fn payments(&self) -> Result<DataFrame> {
        let [n, r, f] = revenue_columns();
        let paid = refunded().not().alias("paid");
        Ok(self.base()?.filter(is_kind(kind::PAYMENT))?.select(vec![
            col(c::VISITOR_HASH),
            n,
            r,
            f,
            paid,
        ])?)
    }

    /// Earliest and latest event of the website (µs), `None` when it has none.
    pub async fn time_span(&self) -> Result<Option<(i64, i64)>> {
        let ts = cast_expr(col(c::TS), DataType::Int64);
        let batches = self
            .base()?
            .aggregate(
                vec![],
                vec![min(ts.clone()).alias("lo"), max(ts).alias("hi")],
            )?
            .collect()
            .await?;
        let lo = ints(&batches, 0)?;
        let hi = ints(&batches, 1)?;
        Ok(match (lo.first(), hi.first()) {
            (Some(Some(lo)), Some(Some(hi))) => Some((*lo, *hi)),
            _ => None,
        })
    }

    /// The overview (DESIGN §4).
    pub async fn overview(&self) -> Result<Overview> {
        let (sessions, revenue) = futures::try_join!(self.session_totals(), self.revenue_totals())?;
        let (visitors, sessions, bounced, avg_duration_us) = sessions;
        let (revenue, paying) = revenue;
        Ok(Overview::from_counts(
            visitors,
            sessions,
            bounced,
            avg_duration_us / 1000.0,
            revenue,
            paying,
        ))
    }

    /// Visitors, sessions, bounced sessions and mean duration (µs) of the selected sessions.
    async fn session_totals(&self) -> Result<(u64, u64, u64, f64)> {
        let ts = cast_expr(col(c::TS), DataType::Int64);
        let mut stats = self.base()?.aggregate(
            vec![col(c::VISITOR_HASH), col(c::SESSION_HASH)],
            vec![
                min(ts.clone()).alias("first_us"),
                max(ts).alias("last_us"),
                sum(int_case(is_kind(kind::PAGEVIEW))).alias("pageviews"),
                sum(int_case(is_kind(kind::GOAL))).alias("goals"),
            ],
        )?;
        if self.is_filtered() {
            let sel = self.selected()?.aggregate(
                vec![
                    col(c::VISITOR_HASH).alias("sel_v"),
                    col(c::SESSION_HASH).alias("sel_s"),
                ],
                vec![],
            )?;
            stats = stats.join(
                sel,
                JoinType::LeftSemi,
                &[c::VISITOR_HASH, c::SESSION_HASH],
                &["sel_v", "sel_s"],
                None,
            )?;
        }
        let bounced = col("pageviews")
            .eq(lit(1i64))
            .and(col("goals").eq(lit(0i64)));
        let batches = stats
            .aggregate(
                vec![],
                vec![
                    count_distinct(col(c::VISITOR_HASH)).alias("visitors"),
                    count(lit(1i64)).alias("sessions"),
                    sum(int_case(bounced)).alias("bounced"),
                    avg(cast_expr(
                        col("last_us") - col("first_us"),
                        DataType::Float64,
                    ))
                    .alias("avg_us"),
                ],
            )?
            .collect()
            .await?;
        let visitors = first_int(&batches, 0)?;
        let sessions = first_int(&batches, 1)?;
        let bounced = first_int(&batches, 2)?;
        let avg_us = floats(&batches, 3)?
            .first()
            .copied()
            .flatten()
            .unwrap_or(0.0);
        Ok((visitors, sessions, bounced, avg_us))
    }

    /// Revenue of selected visitors in the range and how many of them paid.
    async fn revenue_totals(&self) -> Result<(Revenue, u64)> {
        let mut pay = self.payments()?;
        if self.is_filtered() {
            let sel = self
                .selected()?
                .aggregate(vec![col(c::VISITOR_HASH).alias("sel_v")], vec![])?;
            pay = pay.join(
                sel,
                JoinType::LeftSemi,
                &[c::VISITOR_HASH],
                &["sel_v"],
                None,
            )?;
        }
        let paid = when(col("paid"), col(c::VISITOR_HASH)).end()?;
        let batches = pay
            .aggregate(
                vec![],
                vec![
                    sum(col("rev_new")).alias("new"),
                    sum(col("rev_renewal")).alias("renewal"),
                    sum(col("rev_refund")).alias("refund"),
                    count_distinct(paid).alias("paying"),
                ],
            )?
            .collect()
            .await?;
        let revenue = money::revenue_from_micros(Revenue {
            new: first_float(&batches, 0)?,
            renewal: first_float(&batches, 1)?,
            refund: first_float(&batches, 2)?,
        });
        Ok((revenue, first_int(&batches, 3)?))
    }

    /// Every row of a breakdown, sorted (visitors desc, values asc).
    pub async fn breakdown(&self, by: &Breakdown) -> Result<Vec<BreakdownRow>> {
        let (values, carrier) = breakdown_values(by);
        let names: Vec<String> = (0..values.len()).map(|i| format!("value_{i}")).collect();
        let mut group: Vec<Expr> = values
            .iter()
            .zip(&names)
            .map(|(v, n)| v.clone().alias(n))
            .collect();
        group.push(col(c::VISITOR_HASH));
        let pairs = self
            .selected()?
            .filter(carrier)?
            .aggregate(group, vec![count(lit(1i64)).alias("events")])?;
        let per_visitor_revenue = self.payments()?.aggregate(
            vec![col(c::VISITOR_HASH).alias("pay_v")],
            vec![sum(col("rev_new") + col("rev_renewal")).alias("visitor_revenue")],
        )?;
        let mut sort = vec![col("visitors").sort(false, false)];
        sort.extend(names.iter().map(|n| col(n.as_str()).sort(true, true)));
        let batches = pairs
            .join(
                per_visitor_revenue,
                JoinType::Left,
                &[c::VISITOR_HASH],
                &["pay_v"],
                None,
            )?
            .aggregate(
                names.iter().map(|n| col(n.as_str())).collect(),
                vec![
                    count(lit(1i64)).alias("visitors"),
                    sum(coalesce(vec![col("visitor_revenue"), lit(0.0f64)])).alias("revenue"),
                    sum(col("events")).alias("completions"),
                ],
            )?
            .sort(sort)?
            .collect()
            .await?;
        breakdown_rows(&batches, names.len())
    }

    /// Per-bucket visitors, sessions and revenue for buckets starting at `starts`.
    pub async fn buckets(&self, starts: &[DateTime<Utc>]) -> Result<Vec<(u64, u64, Revenue)>> {
        let bucket = BucketUdf::new_udf(starts).call(vec![col(c::TS)]);
        let sel = self.selected()?.select(vec![
            bucket.clone().alias("bucket"),
            col(c::VISITOR_HASH),
            col(c::SESSION_HASH),
        ])?;
        let counts = sel.clone().aggregate(
            vec![col("bucket")],
            vec![
                count_distinct(col(c::VISITOR_HASH)).alias("visitors"),
                count_distinct(col(c::SESSION_HASH)).alias("sessions"),
            ],
        )?;
        let [n, r, f] = revenue_columns();
        let mut pay = self.base()?.filter(is_kind(kind::PAYMENT))?.select(vec![
            bucket.alias("pay_bucket"),
            col(c::VISITOR_HASH).alias("pay_v"),
            n,
            r,
            f,
        ])?;
        if self.is_filtered() {
            let sel_pairs = sel.aggregate(vec![col("bucket"), col(c::VISITOR_HASH)], vec![])?;
            pay = pay.join(
                sel_pairs,
                JoinType::LeftSemi,
                &["pay_bucket", "pay_v"],
                &["bucket", c::VISITOR_HASH],
                None,
            )?;
        }
        let revenue = pay.aggregate(
            vec![col("pay_bucket")],
            vec![
                sum(col("rev_new")).alias("new"),
                sum(col("rev_renewal")).alias("renewal"),
                sum(col("rev_refund")).alias("refund"),
            ],
        )?;
        let (counts, revenue) = futures::try_join!(counts.collect(), revenue.collect())?;
        let mut out = vec![(0u64, 0u64, Revenue::default()); starts.len()];
        for b in &counts {
            let idx = ints(std::slice::from_ref(b), 0)?;
            let v = ints(std::slice::from_ref(b), 1)?;
            let s = ints(std::slice::from_ref(b), 2)?;
            for r in 0..b.num_rows() {
                if let Some(slot) = idx[r]
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| out.get_mut(i))
                {
                    slot.0 = to_u64(v[r]);
                    slot.1 = to_u64(s[r]);
                }
            }
        }
        for b in &revenue {
            let one = std::slice::from_ref(b);
            let (idx, new, ren, refund) = (
                ints(one, 0)?,
                floats(one, 1)?,
                floats(one, 2)?,
                floats(one, 3)?,
            );
            for r in 0..b.num_rows() {
                if let Some(slot) = idx[r]
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| out.get_mut(i))
                {
                    slot.2 = money::revenue_from_micros(Revenue {
                        new: new[r].unwrap_or(0.0),
                        renewal: ren[r].unwrap_or(0.0),
                        refund: refund[r].unwrap_or(0.0),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Breakdown rows from batches of `k` value columns, then visitors, revenue (micro-units, see
/// [`crate::money`]) and completions.
pub(crate) fn breakdown_rows(batches: &[RecordBatch], k: usize) -> Result<Vec<BreakdownRow>> {
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Option<String>>> =
            (0..k).map(|i| strings(b, i)).collect::<Result<_>>()?;
        let one = std::slice::from_ref(b);
        let (visitors, revenue, completions) =
            (ints(one, k)?, floats(one, k + 1)?, ints(one, k + 2)?);
        for r in 0..b.num_rows() {
            rows.push(BreakdownRow {
                values: cols
                    .iter()
                    .map(|c| c[r].clone().unwrap_or_default())
                    .collect(),
                visitors: to_u64(visitors[r]),
                revenue: money::from_micros(revenue[r].unwrap_or(0.0)),
                completions: to_u64(completions[r]),
            });
        }
    }
    Ok(rows)
}

/// The grouped value expressions of a breakdown and the predicate for events that carry them.
fn breakdown_values(by: &Breakdown) -> (Vec<Expr>, Expr) {
    let single = |d: Dimension| {
        let column = col(dimension_column(d));
        (vec![column.clone()], column.is_not_null())
    };
    match by {
        Breakdown::Country => single(Dimension::Country),
        Breakdown::Region => single(Dimension::Region),
        Breakdown::City => single(Dimension::City),
        Breakdown::Device => single(Dimension::Device),
        Breakdown::Browser => single(Dimension::Browser),
        Breakdown::Os => single(Dimension::Os),
        Breakdown::Referrer => single(Dimension::Referrer),
        Breakdown::Hostname => single(Dimension::Hostname),
        Breakdown::Goal => single(Dimension::Goal),
        Breakdown::Page => (
            vec![col(c::HOSTNAME), col(c::PATH)],
            col(c::HOSTNAME)
                .is_not_null()
                .and(col(c::PATH).is_not_null()),
        ),
        Breakdown::Campaign(fields) => {
            let values = fields
                .iter()
                .map(|f| coalesce(vec![col(f.name()), lit("")]))
                .collect();
            let any_set = fields
                .iter()
                .map(|f| {
                    col(f.name())
                        .is_not_null()
                        .and(col(f.name()).not_eq(lit("")))
                })
                .reduce(Expr::or);
            (values, any_set.unwrap_or_else(|| lit(false)))
        }
    }
}

pub(crate) fn to_u64(v: Option<i64>) -> u64 {
    v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

pub(crate) fn ints(batches: &[RecordBatch], i: usize) -> Result<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for b in batches {
        let a = cast(b.column(i), &DataType::Int64)?;
        out.extend(a.as_primitive::<Int64Type>().iter());
    }
    Ok(out)
}

pub(crate) fn floats(batches: &[RecordBatch], i: usize) -> Result<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for b in batches {
        let a = cast(b.column(i), &DataType::Float64)?;
        out.extend(a.as_primitive::<Float64Type>().iter());
    }
    Ok(out)
}

pub(crate) fn strings(b: &RecordBatch, i: usize) -> Result<Vec<Option<String>>> {
    let a = cast(b.column(i), &DataType::Utf8)?;
    let s = a.as_string::<i32>();
    Ok((0..s.len())
        .map(|r| (!s.is_null(r)).then(|| s.value(r).to_owned()))
        .collect())
}

fn first_int(batches: &[RecordBatch], i: usize) -> Result<u64> {
    Ok(to_u64(ints(batches, i)?.first().copied().flatten()))
}

fn first_float(batches: &[RecordBatch], i: usize) -> Result<f64> {
    Ok(floats(batches, i)?
        .first()
        .copied()
        .flatten()
        .unwrap_or(0.0))
}

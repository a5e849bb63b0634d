//! Deleting goal and payment events (the `DELETE /goals` and `DELETE /payments` routes).
//!
//! A delete is copy-on-write: every segment holding a matching row is rewritten without it into
//! a new file, and the catalog swaps old for new in one atomic save; the hot buffer is filtered
//! in place under the ingest lock. Readers keep the snapshot they started with, so none sees half
//! a delete; replaced files are removed a minute later.

use datafusion::arrow::array::StringArray;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{Expr, col, lit};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::query::spec::DateRange;
use crate::schema::{TS_ZONE, col as c, events_schema, kind};
use crate::store::catalog::SegmentMeta;
use crate::store::table::EventsTable;
use crate::store::wal::Record;

/// Which goal events to delete: those matching every criterion given. At least one is needed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoalDeletion {
    /// Only this visitor's goals.
    pub visitor_id: Option<String>,
    /// Only goals with this name.
    pub name: Option<String>,
    /// Only goals in this range.
    pub range: Option<DateRange>,
}

/// Which payments to delete. A transaction id alone decides; otherwise every criterion given
/// must match, and at least one is needed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentDeletion {
    /// Exactly this payment.
    pub transaction_id: Option<String>,
    /// Only this visitor's payments.
    pub visitor_id: Option<String>,
    /// Only payments in this range.
    pub range: Option<DateRange>,
}

fn in_range(range: Option<DateRange>) -> Option<Expr> {
    let ts = |t: chrono::DateTime<chrono::Utc>| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(t.timestamp_micros()),
            Some(TS_ZONE.into()),
        ))
    };
    range.map(|r| col(c::TS).gt_eq(ts(r.start)).and(col(c::TS).lt(ts(r.end))))
}

/// `kind` rows matching every criterion; an error naming `field` when there is none.
fn all_of(kind: &str, criteria: [Option<Expr>; 3], field: &str, reason: &str) -> Result<Expr> {
    let criteria: Vec<Expr> = criteria.into_iter().flatten().collect();
    if criteria.is_empty() {
        return Err(Error::invalid(field, reason));
    }
    Ok(criteria
        .into_iter()
        .fold(col(c::KIND).eq(lit(kind.to_owned())), Expr::and))
}

fn equals(column: &str, value: &Option<String>) -> Option<Expr> {
    value.as_ref().map(|v| col(column).eq(lit(v.clone())))
}

impl GoalDeletion {
    fn predicate(&self) -> Result<Expr> {
        all_of(
            kind::GOAL,
            [
                equals(c::VISITOR_ID, &self.visitor_id),
                equals(c::GOAL_NAME, &self.name),
                in_range(self.range),
            ],
            "datafast_visitor_id",
            "give a visitor, a goal name or a time range to delete",
        )
    }
}

impl PaymentDeletion {
    fn predicate(&self) -> Result<Expr> {
        // A transaction id decides alone.
        let by_tx = self.transaction_id.is_some();
        all_of(
            kind::PAYMENT,
            [
                equals(c::TRANSACTION_ID, &self.transaction_id),
                if by_tx {
                    None
                } else {
                    equals(c::VISITOR_ID, &self.visitor_id)
                },
                if by_tx { None } else { in_range(self.range) },
            ],
            "transaction_id",
            "give a transaction id, a visitor or a time range to delete",
        )
    }
}

/// A logged delete: the write-ahead log records it so that replay removes the same rows from
/// the hot buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Deletion {
    Goals(GoalDeletion),
    Payments(PaymentDeletion),
}

impl Deletion {
    fn predicate(&self) -> Result<Expr> {
        match self {
            Deletion::Goals(g) => g.predicate(),
            Deletion::Payments(p) => p.predicate(),
        }
    }

    /// The rows of `website_id` a delete keeps.
    pub(crate) fn keep(&self, website_id: &str) -> Result<Expr> {
        Ok(col(c::WEBSITE_ID)
            .eq(lit(website_id.to_owned()))
            .and(self.predicate()?.is_not_true()))
    }
}

impl Engine {
    /// Deletes goal events; returns how many.
    pub async fn delete_goals(&self, website_id: &str, what: &GoalDeletion) -> Result<u64> {
        self.delete_where(website_id, Deletion::Goals(what.clone()))
            .await
    }

    /// Deletes payments; returns how many. A deleted transaction id may be recorded again.
    pub async fn delete_payments(&self, website_id: &str, what: &PaymentDeletion) -> Result<u64> {
        self.delete_where(website_id, Deletion::Payments(what.clone()))
            .await
    }

    /// `batches` without the rows `keep` rejects.
    pub(crate) async fn filter_batches(
        &self,
        batches: Vec<RecordBatch>,
        keep: Expr,
    ) -> Result<Vec<RecordBatch>> {
        if batches.is_empty() {
            return Ok(batches);
        }
        let table = std::sync::Arc::new(EventsTable::new(events_schema(), batches, Vec::new()));
        let kept = self.ctx.read_table(table)?.filter(keep)?.collect().await?;
        Ok(kept.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    /// Removes every row of `website_id` that `deletion` matches.
    async fn delete_where(&self, website_id: &str, deletion: Deletion) -> Result<u64> {
        let pred = deletion.predicate()?;
        let site = col(c::WEBSITE_ID).eq(lit(website_id.to_owned()));
        // Most deletes of a retried or mistaken request match nothing: find that out without
        // holding the locks every write waits on. (A row written meanwhile was not there when
        // the delete was asked; the count under the locks below decides for the rest.)
        let matching = self
            .ctx
            .read_table(self.table(website_id, None)?)?
            .filter(site.clone().and(pred.clone()))?
            .limit(0, Some(1))?
            .count()
            .await?;
        if matching == 0 {
            return Ok(0);
        }
        // Flush before ingest, the order every writer takes them in.
        let _flush = self.flush_lock.lock().await;
        let _ingest = self.ingest_lock.lock().await;
        let doomed = self.table(website_id, None)?;
        let batches = self
            .ctx
            .read_table(doomed)?
            .filter(site.clone().and(pred.clone()))?
            .select(vec![col(c::TRANSACTION_ID)])?
            .collect()
            .await?;
        let deleted: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if deleted == 0 {
            return Ok(0);
        }
        let mut removed_transactions = Vec::new();
        for b in &batches {
            let tx: &StringArray = crate::schema::column(b, c::TRANSACTION_ID)?;
            removed_transactions.extend(tx.iter().flatten().map(str::to_owned));
        }
        let keep = deletion.keep(website_id)?;
        // Logged first: replay removes the same rows from the hot buffer it rebuilds.
        let logged = self.store.wal().append(&Record::Delete {
            site: website_id.to_owned(),
            deletion,
        })?;
        self.store.wal().sync_through(logged).await?;

        // Segments: rewrite the ones that hold a matching row.
        let segments: Vec<SegmentMeta> = {
            let st = self.store.read()?;
            st.catalog
                .segments
                .iter()
                .filter(|s| s.website_id == website_id)
                .cloned()
                .collect()
        };
        let mut replaced = Vec::new();
        let mut added = Vec::new();
        for seg in segments {
            let table = std::sync::Arc::new(EventsTable::new(
                events_schema(),
                Vec::new(),
                vec![self.store.segment_file(&seg)],
            ));
            let hits = self
                .ctx
                .read_table(table.clone())?
                .filter(pred.clone())?
                .count()
                .await?;
            if hits == 0 {
                continue;
            }
            let kept = self
                .ctx
                .read_table(table)?
                .filter(keep.clone())?
                .collect()
                .await?;
            replaced.push(seg.id);
            if kept.iter().all(|b| b.num_rows() == 0) {
                continue;
            }
            added.push(self.store.write_segment(website_id, kept).await?);
        }

        // The hot buffer: filter it.
        let hot = {
            let mut st = self.store.write()?;
            st.sites
                .entry(website_id.to_owned())
                .or_default()
                .hot
                .snapshot()?
        };
        let kept_hot = self.filter_batches(hot, keep).await?;

        let mut st = self.store.write()?;
        let retired: Vec<SegmentMeta> = st
            .catalog
            .segments
            .iter()
            .filter(|s| replaced.contains(&s.id))
            .cloned()
            .collect();
        st.commit(self.store.dir(), |next| {
            next.segments.retain(|s| !replaced.contains(&s.id));
            next.segments.extend(added);
        })?;
        // Only once the catalog no longer lists them: a failed save keeps them live.
        self.store.retire(retired.iter());
        let data = st.sites.entry(website_id.to_owned()).or_default();
        data.hot.replace(kept_hot);
        if let Some(ingest) = data.ingest.as_mut() {
            for tx in &removed_transactions {
                ingest.transactions.remove(tx);
            }
        }
        Ok(deleted)
    }
}

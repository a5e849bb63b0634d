//! Ingest state that memory no longer holds, read back from storage when a write needs it:
//! - the whole state of visitors evicted while idle
//!   ([`crate::session::Sessionizer::evict_idle`]), with their profiles, when an event of
//!   theirs comes (a replay of their stored rows, as a rebuild at open would do);
//! - the ids of older payments ([`crate::transactions::TransactionIds::evict`]), when a
//!   payment may repeat one;
//! - the session attributes dropped from idle visitors' states
//!   ([`crate::session::Sessionizer::forget_idle_attrs`]), when an event joins such a
//!   visitor's old session.
//!
//! A write's evicted visitors are read back in one scan of the website's storage, and its
//! evicted payment ids in another; dropped attributes cost a scan of one session's time span
//! each. A write of one event (a tracker or API request) causes at most one of each, so their
//! number is bounded by the request rate limits. Segments' Bloom filters on the visitor hash
//! and the transaction id let a scan skip the row groups without the ids.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{col, lit};

use crate::engine::Engine;
use crate::error::Result;
use crate::event::{SessionAttrs, TRACKER_TRANSACTION_PREFIX};
use crate::ingest::{IngestState, REPLAYED_COLUMNS};
use crate::schema::{col as c, column, events_schema, visitor_hash};
use crate::session::{EventKey, StoredAttrs};
use crate::store::Snapshot;
use crate::store::table::EventsTable;

impl Engine {
    /// Reads back the evicted visitor states and transaction ids that writing the events
    /// `keys` describe, whose payments have the transaction ids `paid`, to `site` needs, into
    /// its ingest state. The caller holds the ingest lock.
    pub(crate) async fn read_back_evicted(
        &self,
        site: &str,
        keys: &[EventKey<'_>],
        paid: &[&str],
    ) -> Result<()> {
        let (visitors, transactions) = {
            let st = self.store.read()?;
            let Some(ingest) = st.sites.get(site).and_then(|d| d.ingest.as_ref()) else {
                return Ok(());
            };
            let visitors = if ingest.sessions.has_evicted() {
                evicted_visitors(ingest, keys.iter().map(|k| k.visitor_id))
            } else {
                Vec::new()
            };
            let transactions: Vec<String> = paid
                .iter()
                .flat_map(|tx| [Some(*tx), tx.strip_prefix(TRACKER_TRANSACTION_PREFIX)])
                .flatten()
                .filter(|tx| ingest.transactions.may_be_evicted(tx))
                .map(str::to_owned)
                .collect();
            (visitors, transactions)
        };
        self.read_back_visitors(site, visitors).await?;
        if transactions.is_empty() {
            return Ok(());
        }
        let stored = self.stored_transactions(site, &transactions).await?;
        let mut st = self.store.write()?;
        if let Some(ingest) = st.sites.get_mut(site).and_then(|d| d.ingest.as_mut()) {
            for tx in stored {
                ingest.transactions.insert(&tx);
            }
        }
        Ok(())
    }

    /// Reads back `visitor_id`'s state into `site`'s ingest state if it was evicted. The caller
    /// holds the ingest lock.
    pub(crate) async fn read_back_visitor(&self, site: &str, visitor_id: &str) -> Result<()> {
        let evicted = {
            let st = self.store.read()?;
            let ingest = st.sites.get(site).and_then(|d| d.ingest.as_ref());
            ingest.is_some_and(|i| i.sessions.may_be_evicted(visitor_id))
        };
        if evicted {
            self.read_back_visitors(site, vec![visitor_id.to_owned()])
                .await?;
        }
        Ok(())
    }

    /// Reads back the states of `visitor_ids`, evicted visitors of `site`, in one scan of its
    /// storage (a bulk write's evicted visitors cost one scan, not one each). The caller holds
    /// the ingest lock.
    async fn read_back_visitors(&self, site: &str, visitor_ids: Vec<String>) -> Result<()> {
        if visitor_ids.is_empty() {
            return Ok(());
        }
        let table = self.events_table_us(site, i64::MIN, i64::MAX)?;
        let rows = self.stored_visitor_rows(table, &visitor_ids).await?;
        let mut st = self.store.write()?;
        if let Some(ingest) = st.sites.get_mut(site).and_then(|d| d.ingest.as_mut()) {
            rows.iter().try_for_each(|b| ingest.replay(b))?;
        }
        Ok(())
    }

    /// Reads back into `state`, a saved state of `snap`'s segments, the evicted visitors that
    /// `snap`'s hot rows (logged after it was saved) name, from those segments: before the hot
    /// rows are replayed onto it, as they follow the visitor's stored ones.
    pub(crate) async fn read_back_logged_visitors(
        &self,
        state: &mut IngestState,
        snap: &Snapshot,
    ) -> Result<()> {
        if !state.sessions.has_evicted() {
            return Ok(());
        }
        let logged = (snap.hot.iter())
            .map(|b| column::<StringArray>(b, c::VISITOR_ID))
            .collect::<Result<Vec<_>>>()?;
        let ids = logged.iter().flat_map(|a| a.iter().flatten());
        let evicted = evicted_visitors(state, ids);
        if evicted.is_empty() {
            return Ok(());
        }
        let files = snap.segments.iter().map(|s| self.store.segment_file(s));
        let segments = EventsTable::new(events_schema(), Vec::new(), files.collect());
        let rows = self.stored_visitor_rows(segments, &evicted).await?;
        rows.iter().try_for_each(|b| state.replay(b))
    }

    /// The rows of `visitor_ids` in `table` that [`IngestState::replay`] reads, in time order.
    async fn stored_visitor_rows(
        &self,
        table: EventsTable,
        visitor_ids: &[String],
    ) -> Result<Vec<RecordBatch>> {
        let hashes = visitor_ids.iter().map(|v| lit(visitor_hash(v))).collect();
        let ids = visitor_ids.iter().map(|v| lit(v.as_str())).collect();
        Ok(self
            .lookup(table)?
            .filter(
                col(c::VISITOR_HASH)
                    .in_list(hashes, false)
                    .and(col(c::VISITOR_ID).in_list(ids, false)),
            )?
            .select_columns(&REPLAYED_COLUMNS)?
            .sort(vec![col(c::TS).sort(true, true)])?
            .collect()
            .await?)
    }

    /// Gives back to `site`'s visitor states the session attributes that
    /// [`crate::session::Sessionizer::forget_idle_attrs`] dropped, for the visitors whose first
    /// event among `keys` needs them, from the visitor's latest stored event. The caller holds
    /// the ingest lock.
    pub(crate) async fn read_back_dropped_attrs(
        &self,
        site: &str,
        keys: &[EventKey<'_>],
    ) -> Result<()> {
        let needed: Vec<StoredAttrs> = {
            let st = self.store.read()?;
            let ingest = st.sites.get(site).and_then(|d| d.ingest.as_ref());
            let Some(ingest) = ingest.filter(|i| i.sessions.lacks_attrs()) else {
                return Ok(());
            };
            // aHash: a lookup per event of every write while some visitor lacks attributes.
            let mut seen: std::collections::HashSet<&str, ahash::RandomState> =
                std::collections::HashSet::default();
            keys.iter()
                .filter(|k| seen.insert(k.visitor_id))
                .filter_map(|k| ingest.sessions.stored_attrs_needed(*k))
                .collect()
        };
        for at in needed {
            // A row deleted since (a goal) leaves the session without attributes.
            let attrs = self.stored_attrs(site, &at).await?.unwrap_or_default();
            let mut st = self.store.write()?;
            if let Some(ingest) = st.sites.get_mut(site).and_then(|d| d.ingest.as_mut()) {
                ingest.sessions.set_attrs(&at.visitor_id, Arc::new(attrs));
            }
        }
        Ok(())
    }

    /// The session attributes of the visitor's latest stored event in the session `at` names:
    /// a scan of the segments of the session's time span only.
    async fn stored_attrs(&self, site: &str, at: &StoredAttrs) -> Result<Option<SessionAttrs>> {
        use datafusion::prelude::{col, lit};
        use datafusion::scalar::ScalarValue;

        use crate::schema::{TS_ZONE, col as c};
        let (lo, hi) = (at.session_start_us, at.last_ts_us.saturating_add(1));
        let ts = |us: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(us),
                Some(TS_ZONE.into()),
            ))
        };
        let table = self.events_table_us(site, lo, hi)?;
        let batches = self
            .lookup(table)?
            .filter(
                col(c::VISITOR_ID)
                    .eq(lit(at.visitor_id.as_str()))
                    .and(col(c::SESSION_ID).eq(lit(at.session_id.as_str())))
                    .and(col(c::TS).gt_eq(ts(lo)))
                    .and(col(c::TS).lt(ts(hi))),
            )?
            // At one instant, the page view that landed the session carries its attributes.
            .sort(vec![
                col(c::TS).sort(false, false),
                col(c::KIND)
                    .eq(lit(crate::schema::kind::PAGEVIEW))
                    .sort(false, false),
            ])?
            .limit(0, Some(1))?
            .collect()
            .await?;
        Ok(batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| crate::schema::attrs_at(b, 0)))
    }

    /// Which of `transactions` `site` stores a payment with, in one scan.
    async fn stored_transactions(
        &self,
        site: &str,
        transactions: &[String],
    ) -> Result<HashSet<String>> {
        let ids = transactions.iter().map(|t| lit(t.as_str())).collect();
        let found = self
            .lookup(self.events_table_us(site, i64::MIN, i64::MAX)?)?
            .filter(col(c::TRANSACTION_ID).in_list(ids, false))?
            .select_columns(&[c::TRANSACTION_ID])?
            .collect()
            .await?;
        let mut stored = HashSet::new();
        for b in &found {
            let ids = column::<StringArray>(b, c::TRANSACTION_ID)?;
            stored.extend(ids.iter().flatten().map(str::to_owned));
        }
        Ok(stored)
    }
}

/// The distinct ids among `visitor_ids` whose state `state` may have evicted.
fn evicted_visitors<'a>(
    state: &IngestState,
    visitor_ids: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut seen: HashSet<&str, ahash::RandomState> = HashSet::default();
    visitor_ids
        .filter(|v| seen.insert(v) && state.sessions.may_be_evicted(v))
        .map(str::to_owned)
        .collect()
}

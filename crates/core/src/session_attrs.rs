//! Session attributes that ingest dropped from idle visitors' states (see
//! [`crate::session::Sessionizer::forget_idle_attrs`]), read back from storage when an event
//! joins such a visitor's old session.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Result;
use crate::event::{Event, SessionAttrs};
use crate::session::StoredAttrs;

impl Engine {
    /// Gives back to `site`'s visitor states the session attributes that
    /// [`crate::session::Sessionizer::forget_idle_attrs`] dropped, for the visitors whose first
    /// event in `events` needs them, from the visitor's latest stored event. The caller holds
    /// the ingest lock.
    pub(crate) async fn read_back_dropped_attrs(&self, site: &str, events: &[Event]) -> Result<()> {
        let needed: Vec<StoredAttrs> = {
            let st = self.store.read()?;
            let ingest = st.sites.get(site).and_then(|d| d.ingest.as_ref());
            let Some(ingest) = ingest.filter(|i| i.sessions.lacks_attrs()) else {
                return Ok(());
            };
            // aHash: a lookup per event of every write while some visitor lacks attributes.
            let mut seen: std::collections::HashSet<&str, ahash::RandomState> =
                std::collections::HashSet::default();
            events
                .iter()
                .filter(|e| seen.insert(e.visitor_id.as_str()))
                .filter_map(|e| ingest.sessions.stored_attrs_needed(e))
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
            .ctx
            .read_table(Arc::new(table))?
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
}

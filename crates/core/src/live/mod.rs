//! The live answers: visitors active right now ([`Engine::realtime_visitors`]), the realtime
//! map's visitors and events ([`Engine::live`]), one visitor's whole history
//! ([`Engine::visitor`]), and the conversion model behind their predictions
//! ([`Engine::conversion_stats`], see [`crate::query::model`]).
//!
//! Realtime answers read only a recent time range: the catalog keeps each segment's time
//! bounds, so the scan opens the hot buffer and the segments that overlap the window, whatever
//! the history behind them. What a live visitor needs from their whole history (how many
//! sessions they had, when the current one started, whether they paid, who they are) is kept
//! in memory by ingest, and the conversion model is counted once and reused for [`MODEL_TTL`].

mod rows;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use std::ops::Not;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::functions_aggregate::expr_fn::{count_distinct, first_value, max, sum};
use datafusion::logical_expr::when;
use datafusion::prelude::{DataFrame, Expr, col, lit};

pub use crate::ingest::VisitorProfile;
pub use rows::{EventRow, event_rows};

use crate::engine::{Engine, poisoned};
use crate::error::Result;
use crate::event::SessionAttrs;
use crate::money::{from_micros, micros_expr};
use crate::query::model::{Counts, ModelStats, PredictDim, Prediction, predict};
use crate::query::plan::{int_case, is_kind, refunded};
use crate::query::spec::{DateRange, Query};
use crate::schema::{col as c, kind, visitor_hash};
use crate::store::Saved;

/// Visitors with an event this recent are "realtime" (DESIGN §4).
pub const REALTIME_WINDOW: Duration = Duration::minutes(5);
/// The realtime map's window.
pub const MAP_WINDOW: Duration = Duration::minutes(10);
/// How long counted model statistics are reused.
pub const MODEL_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Event ids of goals created through the HTTP API start with this (they are `isServer`).
pub const SERVER_EVENT_ID_PREFIX: &str = "api-";

/// What ingest keeps in memory about one visitor.
#[derive(Debug, Default)]
struct Remembered {
    visit_count: u32,
    /// Current session id and its first event (µs).
    session: Option<(String, i64)>,
    profile: VisitorProfile,
}

pub(crate) type ModelCache = HashMap<String, CountedModel>;

/// A website's counted model statistics.
#[derive(Debug)]
pub(crate) struct CountedModel {
    /// When they were counted (or read back).
    at: Instant,
    stats: Arc<ModelStats>,
    /// A recount is running in the background.
    recounting: bool,
}

/// A visitor active on the realtime map.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveVisitor {
    /// Visitor id.
    pub visitor_id: String,
    /// Their current session's attributes (location, system, referrer, campaign).
    pub attrs: SessionAttrs,
    /// Path of their latest page view in the window.
    pub current_path: Option<String>,
    /// First event of their current session (remembered by ingest, so it may be before the
    /// window).
    pub session_start: DateTime<Utc>,
    /// Sessions they have had, all time.
    pub visit_count: u32,
    /// Customer and identity data, all time.
    pub profile: VisitorProfile,
    /// Their conversion prediction: `None` for customers and sites without payments.
    pub prediction: Option<Prediction>,
}

/// The realtime map's data.
#[derive(Debug, Clone)]
pub struct Live {
    /// Visitors with an event in the window, most recent first.
    pub visitors: Vec<LiveVisitor>,
    /// Every event in the window, newest first.
    pub events: Vec<EventRow>,
    /// The conversion model's statistics.
    pub model: Arc<ModelStats>,
}

/// One visitor's history.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitorActivity {
    /// Visitor id.
    pub visitor_id: String,
    /// Their latest page view (identity: location, system, viewport).
    pub latest_pageview: Option<EventRow>,
    /// Attributes of their first session (its campaign parameters).
    pub first_session: SessionAttrs,
    /// Distinct sessions.
    pub visit_count: u64,
    /// Page views.
    pub pageview_count: u64,
    /// First event.
    pub first_seen: DateTime<Utc>,
    /// Latest event.
    pub last_seen: DateTime<Utc>,
    /// First event of the latest session.
    pub current_session_start: DateTime<Utc>,
    /// Page views as `(hostname/path, time)`, oldest first.
    pub pages: Vec<(String, DateTime<Utc>)>,
    /// Goals as `(name, time, created through the API)`, oldest first.
    pub goals: Vec<(String, DateTime<Utc>, bool)>,
    /// Customer and identity data.
    pub profile: VisitorProfile,
    /// Their conversion prediction: `None` for customers and sites without payments.
    pub prediction: Option<Prediction>,
}

/// The values a visitor's prediction matches on.
pub fn prediction_values(a: &SessionAttrs) -> [(PredictDim, Option<&str>); 5] {
    [
        (PredictDim::Device, a.device.as_deref()),
        (PredictDim::Os, a.os.as_deref()),
        (PredictDim::Browser, a.browser.as_deref()),
        (PredictDim::Country, a.country_code.as_deref()),
        (PredictDim::Referrer, a.referrer_name.as_deref()),
    ]
}

fn paid() -> Expr {
    is_kind(kind::PAYMENT).and(refunded().not())
}

impl Engine {
    /// The website's events in `[from, to)`, oldest first.
    async fn events_between(
        &self,
        website_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<EventRow>> {
        let q = Query::new(website_id).with_range(DateRange::new(from, to)?);
        let batches = self
            .selected_events(&q)?
            .sort(vec![col(c::TS).sort(true, true)])?
            .collect()
            .await?;
        Ok(event_rows(&batches))
    }

    /// Distinct visitors with an event in the [`REALTIME_WINDOW`] before `now`.
    pub async fn realtime_visitors(&self, website_id: &str, now: DateTime<Utc>) -> Result<u64> {
        let q = Query::new(website_id).with_range(DateRange::new(
            now - REALTIME_WINDOW,
            now + Duration::seconds(1),
        )?);
        let batches = self
            .selected_events(&q)?
            .aggregate(
                vec![],
                vec![count_distinct(col(c::VISITOR_HASH)).alias("n")],
            )?
            .collect()
            .await?;
        Ok(batches
            .first()
            .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>())
            .map_or(0, |a| a.value(0).max(0) as u64))
    }

    /// The realtime map: visitors and events of the [`MAP_WINDOW`] before `now`.
    pub async fn live(&self, website_id: &str, now: DateTime<Utc>) -> Result<Live> {
        let events = self
            .events_between(website_id, now - MAP_WINDOW, now + Duration::seconds(1))
            .await?;
        self.ensure_ingest_state(website_id).await?;
        let model = self.conversion_stats(website_id).await?;
        // One pass, newest first: each visitor's latest event (in order of recency), latest
        // page, and the earliest event of their latest session in the window.
        struct Seen<'a> {
            latest: &'a EventRow,
            path: Option<&'a str>,
            session_start: DateTime<Utc>,
        }
        let mut order: Vec<&str> = Vec::new();
        let mut seen: HashMap<&str, Seen<'_>> = HashMap::new();
        for e in events.iter().rev() {
            let s = seen.entry(e.visitor_id.as_str()).or_insert_with(|| {
                order.push(e.visitor_id.as_str());
                Seen {
                    latest: e,
                    path: None,
                    session_start: e.ts,
                }
            });
            if s.path.is_none() && e.kind == kind::PAGEVIEW {
                s.path = e.path.as_deref();
            }
            if e.session_id == s.latest.session_id {
                s.session_start = e.ts;
            }
        }
        let mut visitors = Vec::with_capacity(order.len());
        for id in order {
            let s = &seen[id];
            let e = s.latest;
            let remembered = self.remembered(website_id, id)?;
            // ingest remembers when the session began, possibly before the window
            let session_start = match &remembered.session {
                Some((sid, start)) if *sid == e.session_id => {
                    DateTime::from_timestamp_micros(*start)
                        .map_or(s.session_start, |t| t.min(s.session_start))
                }
                _ => s.session_start,
            };
            let profile = remembered.profile;
            let prediction = if profile.first_payment_us.is_some() {
                None
            } else {
                predict(&model, &prediction_values(&e.attrs))
            };
            visitors.push(LiveVisitor {
                visitor_id: e.visitor_id.clone(),
                attrs: e.attrs.clone(),
                current_path: s.path.map(str::to_owned),
                session_start,
                visit_count: remembered.visit_count.max(1),
                profile,
                prediction,
            });
        }
        let mut events = events;
        events.reverse();
        Ok(Live {
            visitors,
            events,
            model,
        })
    }

    /// What ingest remembers of a visitor.
    fn remembered(&self, website_id: &str, visitor_id: &str) -> Result<Remembered> {
        let st = self.store.read()?;
        let ingest = st.sites.get(website_id).and_then(|d| d.ingest.as_ref());
        Ok(ingest.map_or_else(Remembered::default, |i| Remembered {
            visit_count: i.sessions.visit_count(visitor_id),
            session: i
                .sessions
                .current_session(visitor_id)
                .map(|(id, start)| (id.to_owned(), start)),
            profile: i.profiles.get(visitor_id).cloned().unwrap_or_default(),
        }))
    }

    /// Everything about one visitor, from their whole history; `None` for an unknown visitor.
    pub async fn visitor(
        &self,
        website_id: &str,
        visitor_id: &str,
    ) -> Result<Option<VisitorActivity>> {
        let batches = self
            .lookup(self.events_table_us(website_id, i64::MIN, i64::MAX)?)?
            .filter(
                col(c::WEBSITE_ID)
                    .eq(lit(website_id.to_owned()))
                    .and(col(c::VISITOR_HASH).eq(lit(visitor_hash(visitor_id))))
                    .and(col(c::VISITOR_ID).eq(lit(visitor_id.to_owned()))),
            )?
            .sort(vec![col(c::TS).sort(true, true)])?
            .collect()
            .await?;
        let rows = event_rows(&batches);
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let mut profile = VisitorProfile::default();
        let mut sessions = std::collections::HashSet::new();
        let mut pages = Vec::new();
        let mut goals = Vec::new();
        for r in &rows {
            sessions.insert(r.session_id.as_str());
            profile.observe(crate::ingest::ProfileEvent {
                kind: &r.kind,
                ts_us: r.ts.timestamp_micros(),
                refunded: r.refunded,
                name: r.customer_name.as_deref(),
                email: r.customer_email.as_deref(),
                customer_id: r.customer_id.as_deref(),
            });
            match r.kind.as_str() {
                kind::PAGEVIEW => pages.push((
                    format!(
                        "{}{}",
                        r.hostname.as_deref().unwrap_or(""),
                        r.path.as_deref().unwrap_or("")
                    ),
                    r.ts,
                )),
                kind::GOAL => goals.push((
                    r.goal_name.clone().unwrap_or_default(),
                    r.ts,
                    r.event_id.starts_with(SERVER_EVENT_ID_PREFIX),
                )),
                _ => {}
            }
        }
        let latest_pageview = rows
            .iter()
            .rev()
            .find(|r| r.kind == kind::PAGEVIEW)
            .cloned();
        let current_session_start = rows
            .iter()
            .find(|r| r.session_id == last.session_id)
            .map_or(last.ts, |r| r.ts);
        let prediction = if profile.first_payment_us.is_some() {
            None
        } else {
            let attrs = latest_pageview.as_ref().map_or(&last.attrs, |p| &p.attrs);
            let model = self.conversion_stats(website_id).await?;
            predict(&model, &prediction_values(attrs))
        };
        Ok(Some(VisitorActivity {
            visitor_id: visitor_id.to_owned(),
            first_session: first.attrs.clone(),
            visit_count: sessions.len() as u64,
            pageview_count: pages.len() as u64,
            first_seen: first.ts,
            last_seen: last.ts,
            current_session_start,
            latest_pageview,
            pages,
            goals,
            profile,
            prediction,
        }))
    }

    /// The conversion model's statistics for a website. Counted once, then recounted in the
    /// background once they are [`MODEL_TTL`] old: a request never waits for a recount (only
    /// the very first count, which `tally serve` makes at start), it gets the last counted
    /// statistics meanwhile.
    pub async fn conversion_stats(&self, website_id: &str) -> Result<Arc<ModelStats>> {
        let stale = {
            let mut models = self.models.lock().map_err(poisoned)?;
            match models.get_mut(website_id) {
                Some(m) if m.at.elapsed() < self.config.conversion_model_ttl || m.recounting => {
                    return Ok(Arc::clone(&m.stats));
                }
                Some(m) => {
                    m.recounting = true;
                    Some(Arc::clone(&m.stats))
                }
                None => None,
            }
        };
        let Some(stale) = stale else {
            return self.first_model(website_id).await;
        };
        let frame = self.model_stats_frame(website_id)?;
        let (models, site) = (Arc::clone(&self.models), website_id.to_owned());
        let recount = async move {
            let counted = count_model(frame).await;
            let Ok(mut models) = models.lock() else {
                return;
            };
            let Some(m) = models.get_mut(&site) else {
                return;
            };
            m.recounting = false;
            match counted {
                Ok(stats) => {
                    m.at = Instant::now();
                    m.stats = Arc::new(stats);
                }
                Err(e) => tracing::warn!("recounting the conversion model of {site}: {e}"),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(recount)),
            Err(_) => recount.await,
        }
        Ok(stale)
    }

    /// A website's first model statistics in this process: those saved with the data (at a
    /// clean stop or a flush), else counted. Saved ones are used even when rows were stored
    /// since (after a crash, or an import while the server was stopped): like statistics
    /// counted in this process, they are recounted in the background once they are
    /// [`MODEL_TTL`] old, so a restart does not spend its first seconds counting them. One
    /// count at a time: a request arriving while the start-up count runs waits for it.
    async fn first_model(&self, website_id: &str) -> Result<Arc<ModelStats>> {
        let _one = self.model_count.lock().await;
        if let Some(m) = self.models.lock().map_err(poisoned)?.get(website_id) {
            return Ok(Arc::clone(&m.stats));
        }
        let stats = match self.store.load_state_any(website_id, Saved::Model) {
            Some((saved, _)) => Arc::new(saved),
            None => Arc::new(count_model(self.model_stats_frame(website_id)?).await?),
        };
        self.models.lock().map_err(poisoned)?.insert(
            website_id.to_owned(),
            CountedModel {
                at: Instant::now(),
                stats: Arc::clone(&stats),
                recounting: false,
            },
        );
        Ok(stats)
    }

    /// The counted model statistics of `website_id`, if any (to be saved with the data).
    pub(crate) fn saved_model(&self, website_id: &str) -> Result<Option<Arc<ModelStats>>> {
        Ok(self
            .models
            .lock()
            .map_err(poisoned)?
            .get(website_id)
            .map(|m| Arc::clone(&m.stats)))
    }

    /// Counts the model statistics from all of the website's events (no cache): each visitor
    /// once, with the values of their first event, paying when they have a payment that was
    /// not refunded.
    pub async fn count_model_stats(&self, website_id: &str) -> Result<ModelStats> {
        count_model(self.model_stats_frame(website_id)?).await
    }

    /// The plan that counts the model statistics: one row per visitor.
    fn model_stats_frame(&self, website_id: &str) -> Result<DataFrame> {
        let first =
            |name: &str| first_value(col(name), vec![col(c::TS).sort(true, true)]).alias(name);
        // In micro-units, so that the sums do not depend on the order of the payments.
        let revenue = when(paid(), micros_expr(col(c::AMOUNT)))
            .otherwise(lit(0.0f64))?
            .alias("revenue");
        let paid_flag = int_case(paid());
        Ok(self.selected_events(&Query::new(website_id))?.aggregate(
            vec![col(c::VISITOR_HASH)],
            vec![
                first(c::DEVICE),
                first(c::OS),
                first(c::BROWSER),
                first(c::COUNTRY_CODE),
                first(c::REFERRER_NAME),
                max(paid_flag).alias("paid"),
                sum(revenue).alias("revenue"),
            ],
        )?)
    }
}

/// Runs `frame` ([`Engine::model_stats_frame`]) and counts its rows into the statistics.
/// Revenue is added up in micro-units ([`crate::money`]) and turned into currency units once
/// counted, so that it does not depend on the order of the rows.
async fn count_model(frame: DataFrame) -> Result<ModelStats> {
    let batches = frame.collect().await?;
    let dims = [
        (PredictDim::Device, c::DEVICE),
        (PredictDim::Os, c::OS),
        (PredictDim::Browser, c::BROWSER),
        (PredictDim::Country, c::COUNTRY_CODE),
        (PredictDim::Referrer, c::REFERRER_NAME),
    ];
    let mut stats = ModelStats::default();
    for b in &batches {
        let (Some(paid), Some(revenue)) = (
            b.column_by_name("paid")
                .and_then(|a| a.as_primitive_opt::<Int64Type>()),
            b.column_by_name("revenue")
                .and_then(|a| a.as_primitive_opt::<Float64Type>()),
        ) else {
            continue;
        };
        let values: Vec<_> = dims
            .iter()
            .map(|(d, name)| {
                (
                    *d,
                    b.column_by_name(name)
                        .and_then(|a| a.as_string_opt::<i32>()),
                )
            })
            .collect();
        for r in 0..b.num_rows() {
            let is_paid = paid.value(r) > 0;
            let rev = if revenue.is_valid(r) {
                revenue.value(r)
            } else {
                0.0
            };
            stats.baseline.add(is_paid, rev);
            for (d, col_values) in &values {
                if let Some(a) = col_values
                    && a.is_valid(r)
                {
                    stats
                        .by_value
                        .entry((*d, a.value(r).to_owned()))
                        .or_insert_with(Counts::default)
                        .add(is_paid, rev);
                }
            }
        }
    }
    for counts in std::iter::once(&mut stats.baseline).chain(stats.by_value.values_mut()) {
        counts.revenue = from_micros(counts.revenue);
    }
    Ok(stats)
}

//! From a validated [`Event`] to a [`StoredEvent`]: referrer classification, session
//! assignment, currency conversion, event ids and payment de-duplication.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use compact_str::CompactString;

use datafusion::arrow::array::{
    Array, BooleanArray, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::event::{Event, EventKind, SessionAttrs, TRACKER_TRANSACTION_PREFIX};
use crate::referrer;
use crate::schema::{StoredEvent, StoredIdentity, StoredPayment, kind};
use crate::schema::{col as c, column};
use crate::session::{EventKey, Sessionizer, SessionizerAfterVisitors};
use crate::transactions::TransactionIds;
use crate::website::Website;

/// Per-website state that ingest keeps between calls.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct IngestState {
    pub sessions: Sessionizer,
    /// Transaction ids already stored: a repeat is ignored, not counted twice.
    pub transactions: TransactionIds,
    /// Counter for generated event ids.
    pub next_event_seq: u64,
    /// Classified names of external referrer hosts seen so far (a memo, not saved).
    #[serde(skip)]
    pub referrer_names: HashMap<String, CompactString>,
    /// Who the visitors that paid or identified themselves are (those whose state is in
    /// `sessions`: a profile is evicted with its visitor, and read back with it).
    pub profiles: HashMap<String, VisitorProfile>,
    /// A bulk load has written since the last flush: nothing is evicted meanwhile (see
    /// [`IngestState::evict_unless_loading`]).
    #[serde(skip)]
    pub loading: bool,
}

/// An [`IngestState`]'s saved fields after the sessions' visitor map, in their order (see
/// [`crate::state_encoding`]).
#[derive(serde::Serialize)]
pub(crate) struct AfterVisitors<'a> {
    sessions: SessionizerAfterVisitors<'a>,
    transactions: &'a TransactionIds,
    next_event_seq: u64,
    profiles: &'a HashMap<String, VisitorProfile>,
}

impl IngestState {
    /// The saved fields after the sessions' visitor map.
    pub(crate) fn after_visitors(&self) -> AfterVisitors<'_> {
        AfterVisitors {
            sessions: self.sessions.after_visitors(),
            transactions: &self.transactions,
            next_event_seq: self.next_event_seq,
            profiles: &self.profiles,
        }
    }
}

/// How many times the visitor limit a bulk load may hold before it evicts anyway (4M visitors,
/// about 1 GB, at the default limit).
pub(crate) const LOADING_HEADROOM: usize = 4;

/// How much of a website's ingest state memory holds; past it, the rest is read back from
/// storage when a write needs it (see `crate::read_back`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateLimits {
    /// Visitors whose whole state is held (their profiles with them).
    pub visitors: usize,
    /// Transaction ids held exactly.
    pub transactions: usize,
}

impl IngestState {
    /// [`IngestState::evict_past`], unless a bulk load (an import) is under way: evicted
    /// midway, every visitor that comes back later in its file would cost a scan of storage.
    /// A load is over once a flush finds no bulk write since the one before; until then its
    /// visitors stay in memory, up to [`LOADING_HEADROOM`] times the limit, so that a caller
    /// whose every write is a bulk one still has its memory bounded.
    pub fn evict_unless_loading(&mut self, limits: StateLimits) {
        let ceiling = limits.visitors.saturating_mul(LOADING_HEADROOM);
        if !self.loading || self.sessions.visitors() > ceiling {
            self.evict_past(limits);
        }
    }

    /// Evicts what is past `limits`: idle visitors' states and profiles, and transaction ids.
    pub fn evict_past(&mut self, limits: StateLimits) {
        let profiles = &mut self.profiles;
        self.sessions.evict_idle(limits.visitors, |id| {
            profiles.remove(id);
        });
        self.transactions.evict(limits.transactions);
    }

    /// Takes in a batch of stored rows with [`REPLAYED_COLUMNS`], in time order (after the
    /// rows before them): the visitors' sessions, profiles and the transaction ids. The
    /// session attributes are left unknown.
    pub fn replay(&mut self, b: &RecordBatch) -> Result<()> {
        self.replay_some(b, None)
    }

    /// [`IngestState::replay`] of the visitors whose hashes `loaded` holds (all when `None`);
    /// the others' rows give only their transaction ids.
    fn replay_some(&mut self, b: &RecordBatch, loaded: Option<&VisitorHashes>) -> Result<()> {
        let hashes = column::<UInt64Array>(b, c::VISITOR_HASH)?;
        let s = |name: &str| column::<StringArray>(b, name);
        let ts = column::<TimestampMicrosecondArray>(b, c::TS)?;
        let (visitor, session, kind_col, tx) = (
            s(c::VISITOR_ID)?,
            s(c::SESSION_ID)?,
            s(c::KIND)?,
            s(c::TRANSACTION_ID)?,
        );
        let refunded = column::<BooleanArray>(b, c::REFUNDED).ok();
        let (names, emails, customer_ids) = (
            s(c::CUSTOMER_NAME)?,
            s(c::CUSTOMER_EMAIL)?,
            s(c::CUSTOMER_ID)?,
        );
        fn opt(a: &StringArray, r: usize) -> Option<&str> {
            a.is_valid(r).then(|| a.value(r))
        }
        for r in 0..b.num_rows() {
            if tx.is_valid(r) {
                self.transactions.insert(tx.value(r));
            }
            if loaded.is_some_and(|l| !l.contains(&hashes.value(r))) {
                continue;
            }
            let v = visitor.value(r);
            let k = kind_col.value(r);
            self.sessions
                .replay(v, session.value(r), ts.value(r), k == kind::PAGEVIEW);
            if k == kind::PAYMENT || k == kind::IDENTIFY {
                self.profiles
                    .entry(v.to_owned())
                    .or_default()
                    .observe(ProfileEvent {
                        kind: k,
                        ts_us: ts.value(r),
                        refunded: refunded.is_some_and(|a| a.is_valid(r) && a.value(r)),
                        name: opt(names, r),
                        email: opt(emails, r),
                        customer_id: opt(customer_ids, r),
                    });
            }
        }
        Ok(())
    }
}

/// The columns [`IngestState::replay`] reads.
pub(crate) const REPLAYED_COLUMNS: [&str; 10] = [
    c::TS,
    c::VISITOR_ID,
    c::VISITOR_HASH,
    c::SESSION_ID,
    c::KIND,
    c::TRANSACTION_ID,
    c::REFUNDED,
    c::CUSTOMER_NAME,
    c::CUSTOMER_EMAIL,
    c::CUSTOMER_ID,
];

/// What the engine remembers of a visitor that paid or was identified, for the live answers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VisitorProfile {
    /// Time of their first payment that was not refunded (µs): they are a customer.
    pub first_payment_us: Option<i64>,
    /// Customer name from their latest payment that had one.
    pub customer_name: Option<String>,
    /// Customer email from their latest payment that had one.
    pub customer_email: Option<String>,
    /// The site's user id from their latest `identify`.
    pub user_id: Option<String>,
    /// Display name from their latest `identify` that had one.
    pub display_name: Option<String>,
}

impl VisitorProfile {
    /// Takes in one stored event of the visitor (in time order).
    pub(crate) fn observe(&mut self, e: ProfileEvent<'_>) {
        match e.kind {
            kind::PAYMENT => {
                if !e.refunded && self.first_payment_us.is_none() {
                    self.first_payment_us = Some(e.ts_us);
                }
                if e.name.is_some() {
                    self.customer_name = e.name.map(str::to_owned);
                }
                if e.email.is_some() {
                    self.customer_email = e.email.map(str::to_owned);
                }
            }
            kind::IDENTIFY => {
                self.user_id = e.customer_id.map(str::to_owned);
                if e.name.is_some() {
                    self.display_name = e.name.map(str::to_owned);
                }
            }
            _ => {}
        }
    }
}

/// The columns of a stored event that a [`VisitorProfile`] reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProfileEvent<'a> {
    pub kind: &'a str,
    pub ts_us: i64,
    pub refunded: bool,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub customer_id: Option<&'a str>,
}

impl StoredEvent {
    fn profile_event(&self) -> ProfileEvent<'_> {
        let (name, email, customer_id) = match (&self.payment, &self.identity) {
            (Some(p), _) => (
                p.name.as_deref(),
                p.email.as_deref(),
                p.customer_id.as_deref(),
            ),
            (None, Some(i)) => (
                i.name.as_deref(),
                i.email.as_deref(),
                Some(i.user_id.as_str()),
            ),
            (None, None) => (None, None, None),
        };
        ProfileEvent {
            kind: self.kind,
            ts_us: self.ts_us,
            refunded: self.payment.as_ref().is_some_and(|p| p.refunded),
            name,
            email,
            customer_id,
        }
    }
}

/// What ingest did with one event.
#[derive(Debug)]
// Not boxed: the row is built once per event and moved straight into the write's rows, and a
// box cost an allocation and another copy per event.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    Stored(StoredEvent),
    /// A payment whose transaction id is already stored.
    Duplicate,
}

/// Referrer hosts whose names a website's ingest state remembers; past it new hosts are
/// classified each time (a lookup of a few slices, bounded by the host's length).
const MAX_REFERRER_NAMES: usize = 65_536;

/// Classifies the referrer of an event's own attributes `a` for a website on `site_hosts`
/// ([`Website::site_hosts`]), the event's page being on `hostname`. Names of external hosts
/// are remembered in `names`: a site sees few distinct referrers, and the list lookup tries
/// every parent domain.
pub(crate) fn classify_referrer(
    a: &mut SessionAttrs,
    hostname: Option<&str>,
    site_hosts: &[&str],
    names: &mut HashMap<String, CompactString>,
) {
    let same_site = |r: &str| {
        referrer::is_same_site(r, site_hosts)
            || hostname.is_some_and(|h| referrer::is_same_site(r, &[h]))
    };
    let name = match a.referrer.as_deref() {
        Some(r) if same_site(r) => {
            a.referrer = None;
            CompactString::const_new(referrer::DIRECT)
        }
        Some(r) => match names.get(r) {
            Some(n) => n.clone(),
            None => {
                let n = CompactString::from(referrer::classify(Some(r), &[]));
                if names.len() < MAX_REFERRER_NAMES {
                    names.insert(r.to_owned(), n.clone());
                }
                n
            }
        },
        None => CompactString::const_new(referrer::DIRECT),
    };
    a.referrer_name = Some(name);
}

/// Turns one validated event of `website` into a stored row. Events must be given in time order.
pub(crate) fn enrich(
    mut event: Event,
    website: &Website,
    state: &mut IngestState,
) -> Result<Outcome> {
    let payment = match &event.kind {
        EventKind::Payment(p) => {
            // A browser's report of a payment the provider already reported adds nothing.
            let reported = |tx: &str| state.transactions.contains(tx);
            if reported(&p.transaction_id)
                || p.transaction_id
                    .strip_prefix(TRACKER_TRANSACTION_PREFIX)
                    .is_some_and(reported)
            {
                return Ok(Outcome::Duplicate);
            }
            Some(StoredPayment {
                amount: website.convert(p.amount, &p.currency, event.ts.date_naive())?,
                original_amount: p.amount,
                original_currency: p.currency.clone(),
                renewal: p.renewal,
                refunded: p.refunded,
                transaction_id: p.transaction_id.clone(),
                email: p.email.clone(),
                name: p.name.clone(),
                customer_id: p.customer_id.clone(),
            })
        }
        _ => None,
    };
    // Classified only when they become the session's: the other events' are dropped.
    let assigned = {
        let (key, attrs, hostname) = EventKey::split(&mut event);
        let names = &mut state.referrer_names;
        state.sessions.assign_key(key, || {
            classify_referrer(attrs, hostname, &website.site_hosts(), names);
            std::mem::take(attrs)
        })
    };
    if let Some(p) = &payment {
        state.transactions.insert(&p.transaction_id);
    }
    let ts_us = event.ts.timestamp_micros();
    let event_id = event.event_id.take().unwrap_or_else(|| {
        state.next_event_seq += 1;
        event_id(ts_us, state.next_event_seq)
    });
    let kind_name = event.kind.name();
    let mut identity = None;
    let (hostname, path, goal_name, goal_metadata) = match event.kind {
        EventKind::Pageview => (event.hostname, event.path, None, None),
        EventKind::Goal { name, metadata } => (None, None, Some(name), properties_json(&metadata)),
        EventKind::Payment(_) => (None, None, None, None),
        EventKind::Identify(mut i) => {
            if let Some(image) = i.image.take() {
                i.properties.insert("image".to_owned(), image);
            }
            identity = Some(StoredIdentity {
                user_id: i.user_id,
                name: i.name,
                email: i.email,
            });
            (None, None, None, properties_json(&i.properties))
        }
        EventKind::ExternalLink { url, text } => {
            let mut props = BTreeMap::from([("url".to_owned(), url)]);
            if let Some(t) = text {
                props.insert("text".to_owned(), t);
            }
            (None, None, None, properties_json(&props))
        }
    };
    let stored = StoredEvent {
        website_id: event.website_id,
        ts_us,
        kind: kind_name,
        visitor_id: event.visitor_id,
        session_id: assigned.session_id.to_string(),
        event_id,
        hostname,
        path,
        attrs: Arc::clone(&assigned.attrs),
        viewport_w: event.viewport_width,
        viewport_h: event.viewport_height,
        goal_name,
        goal_metadata,
        payment,
        identity,
    };
    if matches!(stored.kind, kind::PAYMENT | kind::IDENTIFY) {
        state
            .profiles
            .entry(stored.visitor_id.clone())
            .or_default()
            .observe(stored.profile_event());
    }
    Ok(Outcome::Stored(stored))
}

/// A JSON object of string properties, `None` when there are none.
fn properties_json(props: &BTreeMap<String, String>) -> Option<String> {
    (!props.is_empty()).then(|| serde_json::to_string(props).unwrap_or_default())
}

/// Visitors by [`crate::schema::visitor_hash`].
type VisitorHashes = HashSet<u64, ahash::RandomState>;

/// Rebuilds a website's ingest state from its stored events (`events`: the website's whole
/// table), so that a reopened engine continues sessions and still refuses repeated payments.
///
/// Two passes, so that only narrow columns are ever sorted or held: the ids, times and
/// customer columns in time order give each visitor's sessions, transactions and profile; then
/// the session attributes are streamed once and kept for each visitor's latest session only.
///
/// With more visitors than `limits` lets memory hold, a first pass finds each visitor's latest
/// event (a DataFusion aggregation over the hashes, 16 bytes a visitor held here); only the
/// most recent are loaded, and the others are marked evicted, as if they had left memory.
pub(crate) async fn restore(
    events: datafusion::prelude::DataFrame,
    limits: StateLimits,
) -> Result<IngestState> {
    // Most websites have fewer visitors than the limit: replayed once, as they are. A replay
    // that passes the limit is given up, and the visitors to load picked first.
    let whole = Replay {
        loaded: None,
        stop_past: Some(limits.visitors),
    };
    if let Some(state) = replay_all(IngestState::default(), events.clone(), whole).await? {
        return Ok(state);
    }
    let mut state = IngestState::default();
    let loaded = visitors_to_load(&events, limits, &mut state).await?;
    replay_every(state, events, loaded.as_ref()).await
}

/// Which visitors [`replay_all`] loads.
#[derive(Clone, Copy)]
struct Replay<'a> {
    /// Those whose hashes it holds (all when `None`).
    loaded: Option<&'a VisitorHashes>,
    /// Give up once more than this many visitors are loaded.
    stop_past: Option<usize>,
}

/// The visitors a rebuild loads when there are more than `limits.visitors` (`None`: every
/// one): those of the last 30 minutes, and the latest active up to what a sweep keeps
/// ([`crate::session::kept_by_sweep`]), as an eviction would. The others are marked evicted in `state`.
async fn visitors_to_load(
    events: &datafusion::prelude::DataFrame,
    limits: StateLimits,
    state: &mut IngestState,
) -> Result<Option<VisitorHashes>> {
    use datafusion::functions_aggregate::expr_fn::max;
    use datafusion::prelude::col;

    let latest = events
        .clone()
        .aggregate(
            vec![col(c::VISITOR_HASH)],
            vec![max(col(c::TS)).alias("latest")],
        )?
        .collect()
        .await?;
    let mut visitors: Vec<(i64, u64)> = Vec::new();
    for b in &latest {
        let hashes = column::<UInt64Array>(b, c::VISITOR_HASH)?;
        let ts = column::<TimestampMicrosecondArray>(b, "latest")?;
        visitors.extend(
            ts.values()
                .iter()
                .copied()
                .zip(hashes.values().iter().copied()),
        );
    }
    if visitors.len() <= limits.visitors {
        return Ok(None);
    }
    visitors.sort_unstable_by(|a, b| b.cmp(a));
    let idle_before = visitors[0]
        .0
        .saturating_sub(crate::session::SESSION_TIMEOUT_US);
    let keep = crate::session::kept_by_sweep(limits.visitors);
    let mut loaded = VisitorHashes::default();
    for (i, &(ts, hash)) in visitors.iter().enumerate() {
        if i < keep || ts >= idle_before {
            loaded.insert(hash);
        } else {
            state.sessions.mark_evicted(hash);
        }
    }
    Ok(Some(loaded))
}

/// [`restore`] continued from `state`, the state of the events stored before `events` (a
/// saved state, and the rows logged after it was taken).
pub(crate) async fn restore_onto(
    state: IngestState,
    events: datafusion::prelude::DataFrame,
) -> Result<IngestState> {
    replay_every(state, events, None).await
}

/// [`replay_all`] without a limit: of the visitors `loaded` holds (all when `None`).
async fn replay_every(
    state: IngestState,
    events: datafusion::prelude::DataFrame,
    loaded: Option<&VisitorHashes>,
) -> Result<IngestState> {
    let how = Replay {
        loaded,
        stop_past: None,
    };
    replay_all(state, events, how)
        .await?
        .ok_or_else(|| Error::Internal("a replay without a limit stopped".into()))
}

/// Replays `events` onto `state` as `how` says; `None` when it gave up past its limit.
async fn replay_all(
    mut state: IngestState,
    events: datafusion::prelude::DataFrame,
    how: Replay<'_>,
) -> Result<Option<IngestState>> {
    use datafusion::prelude::col;
    use futures::StreamExt;

    // Generated event ids continue past any this or an earlier process may have given.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    state.next_event_seq = state.next_event_seq.max(now);
    // Streamed: over segments declared in time order the sort is a merge, so a batch at a
    // time is held, not the website's history.
    let mut batches = events
        .clone()
        .select_columns(&REPLAYED_COLUMNS)?
        .sort(vec![col(c::TS).sort(true, true)])?
        .execute_stream()
        .await?;
    // Pass 1: sessions, transactions and profiles, the attributes left unknown.
    while let Some(b) = batches.next().await {
        state.replay_some(&b?, how.loaded)?;
        if how.stop_past.is_some_and(|n| state.sessions.visitors() > n) {
            return Ok(None);
        }
    }
    // Pass 2: the attributes of the latest event of each visitor seen within a session's
    // length of the last event (a session's attributes can change once, when a page view lands
    // in a session that a goal started). Older visitors' are read back from storage if a goal
    // or payment joins their session (see `Sessionizer`).
    let recent = state
        .sessions
        .latest_ts_us()
        .saturating_sub(crate::session::SESSION_TIMEOUT_US);
    let recent = datafusion::scalar::ScalarValue::TimestampMicrosecond(
        Some(recent),
        Some(crate::schema::TS_ZONE.into()),
    );
    let mut rows = events
        .filter(col(c::TS).gt_eq(datafusion::prelude::lit(recent)))?
        .execute_stream()
        .await?;
    while let Some(b) = rows.next().await {
        let b = b?;
        let ts = column::<TimestampMicrosecondArray>(&b, c::TS)?;
        let visitor = column::<StringArray>(&b, c::VISITOR_ID)?;
        let session = column::<StringArray>(&b, c::SESSION_ID)?;
        for r in 0..b.num_rows() {
            let v = visitor.value(r);
            if state.sessions.needs_attrs(v, session.value(r), ts.value(r)) {
                state
                    .sessions
                    .set_attrs(v, Arc::new(crate::schema::attrs_at(&b, r)));
            }
        }
    }
    Ok(Some(state))
}

/// The id of an event that came without one: its time and the website's event counter, in hex.
/// Written digit by digit: `format!` took a twentieth of an import's work on the engine's
/// thread for it.
fn event_id(ts_us: i64, seq: u64) -> String {
    let mut id = String::with_capacity(33);
    push_event_id(&mut id, ts_us, seq);
    id
}

/// Appends the id [`event_id`] gives.
pub(crate) fn push_event_id(out: &mut String, ts_us: i64, seq: u64) {
    // `{:x}` of an `i64` writes its two's complement, as this does.
    push_hex(out, ts_us as u64);
    out.push('-');
    push_hex(out, seq);
}

/// Appends `v` in lower-case hex without leading zeros, as `{:x}` does.
fn push_hex(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let (mut start, mut rest) = (digits.len(), v);
    loop {
        start -= 1;
        digits[start] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_event_ids_are_the_time_and_counter_in_hex() {
        let cases = [
            (0_i64, 0_u64),
            (1_744_342_729_154_000, 1),
            (-5, 0xabc),
            (15, u64::MAX),
            (16, 0x10),
            (i64::MAX, 0x8000_0000_0000_0000),
        ];
        let edges = (0..64).flat_map(|k| {
            let (ts, seq) = (1_i64 << k, 1_u64 << k);
            [(ts, seq), (ts.wrapping_sub(1), seq - 1)]
        });
        for (ts, seq) in cases.into_iter().chain(edges) {
            assert_eq!(event_id(ts, seq), format!("{ts:x}-{seq:x}"));
        }
    }
}

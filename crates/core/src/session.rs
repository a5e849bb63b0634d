//! Sessions: which visit each event belongs to, and the attributes that visit carries.
//!
//! The rules (DESIGN §3), applied to each website's events in time order:
//! - an event with a `session_id` belongs to that session;
//! - a page view without one continues the visitor's latest session if the visitor's previous
//!   event is at most 30 minutes earlier, and starts a new derived session otherwise;
//! - a goal or payment without one joins the visitor's latest session, whatever its age (it was
//!   sent by a server about a visit that happened), or starts one if the visitor has none;
//! - a session's attributes are those of its first page view. Until a session has one, its
//!   events carry the attributes of the visitor's previous session (or their own, for a visitor
//!   never seen before).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, SessionAttrs};
use crate::evicted::EvictedIds;
use crate::schema::visitor_hash;

/// Inactivity after which a page view starts a new session.
pub const SESSION_TIMEOUT_US: i64 = 30 * 60 * 1_000_000;

/// What the engine remembers of a visitor between events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VisitorState {
    session_id: Arc<str>,
    last_ts_us: i64,
    /// The current session's attributes; `None` once the visitor has been idle for a while
    /// (see [`Sessionizer::forget_idle_attrs`]): they are then those of the visitor's event at
    /// `last_ts_us` in storage, read back by [`Sessionizer::stored_attrs_needed`]'s caller.
    attrs: Option<Arc<SessionAttrs>>,
    /// Whether the current session has had its first page view.
    landed: bool,
    /// Whether the visitor has ever had a page view (page views are never deleted).
    viewed: bool,
    /// Sessions the visitor has had, this one included.
    sessions: u32,
    /// When the current session's first event happened.
    session_start_us: i64,
}

impl VisitorState {
    fn assigned(&self) -> Assigned {
        Assigned {
            session_id: Arc::clone(&self.session_id),
            // Only when the stored attributes could not be read back (the row was deleted).
            attrs: self.attrs.clone().unwrap_or_default(),
        }
    }
}

/// The session a new event was assigned to.
#[derive(Debug, Clone)]
pub(crate) struct Assigned {
    pub session_id: Arc<str>,
    pub attrs: Arc<SessionAttrs>,
}

/// What session assignment reads of an event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventKey<'a> {
    pub visitor_id: &'a str,
    /// The tracker's session id, when it sent one.
    pub session_id: Option<&'a str>,
    pub ts_us: i64,
    pub is_pageview: bool,
}

impl<'a> EventKey<'a> {
    /// The key of `event`.
    pub fn of(event: &'a Event) -> Self {
        EventKey {
            visitor_id: &event.visitor_id,
            session_id: event.session_id.as_deref(),
            ts_us: event.ts.timestamp_micros(),
            is_pageview: matches!(event.kind, EventKind::Pageview),
        }
    }

    /// The key of `event`, its own attributes to take, and its page's hostname.
    pub fn split(event: &'a mut Event) -> (Self, &'a mut SessionAttrs, Option<&'a str>) {
        let Event {
            visitor_id,
            session_id,
            ts,
            kind,
            hostname,
            attrs,
            ..
        } = event;
        let key = EventKey {
            visitor_id,
            session_id: session_id.as_deref(),
            ts_us: ts.timestamp_micros(),
            is_pageview: matches!(kind, EventKind::Pageview),
        };
        (key, attrs, hostname.as_deref())
    }
}

/// Where to find the attributes a visitor's state no longer holds: the visitor's event in
/// `session_id` at `last_ts_us` (a session's events lie between `session_start_us` and it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredAttrs {
    pub visitor_id: String,
    pub session_id: String,
    pub session_start_us: i64,
    pub last_ts_us: i64,
}

/// Per-visitor session state of one website.
///
/// A visitor's session attributes are most of what is kept per visitor (twenty-odd strings).
/// They are needed while the session can continue, and after that only when a goal or payment
/// joins an old session; so past a limit, those of visitors idle for longer than a session
/// are dropped and read back from storage on such a rare event.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Sessionizer {
    /// Keyed by visitor id. aHash rather than SipHash: a lookup per event (and per stored
    /// event in a rebuild) at millions of visitors, with keys a client chooses, so a hasher
    /// seeded at random per process. A `CompactString` key holds an id of up to 24 bytes in
    /// the table itself: a lookup then compares it without following a pointer to the heap,
    /// a cache miss per event once the table outgrows the caches.
    visitors: HashMap<CompactString, VisitorState, ahash::RandomState>,
    /// Visitors whose state holds attributes.
    holding: usize,
    /// The visitors whose state took attributes, each with the time of its latest event then,
    /// about oldest first (events mostly come in time order): a sweep takes the idle ones from
    /// the front instead of visiting every visitor. Not saved: listed again by the first sweep
    /// after a load.
    #[serde(skip)]
    holders: VecDeque<(CompactString, i64)>,
    /// Whether `holders` lists every visitor whose state holds attributes.
    #[serde(skip)]
    holders_listed: bool,
    /// `holding` past which a sweep lists the holders again, in time order, for events that
    /// came far out of order (see [`Sessionizer::forget_idle_attrs`]).
    sweep_at: usize,
    /// The latest event time seen (µs): "idle" is measured against it, so that an import of
    /// old events ages visitors as its events do.
    latest_ts_us: i64,
    /// Visitors whose whole state was evicted (see [`Sessionizer::evict_idle`]): an event of
    /// one of them needs its state read back from storage first.
    evicted: EvictedIds,
    /// Visitors past which the next [`Sessionizer::evict_idle`] sweep runs.
    evict_at: usize,
}

/// A [`Sessionizer`]'s saved fields after its visitor map, in their order: with the map's
/// entries before them, the bytes of the whole (see [`crate::state_encoding`]).
#[derive(Serialize)]
pub(crate) struct SessionizerAfterVisitors<'a> {
    holding: usize,
    sweep_at: usize,
    latest_ts_us: i64,
    evicted: &'a EvictedIds,
    evict_at: usize,
}

impl Sessionizer {
    /// Every visitor's state, in the map's order.
    pub(crate) fn visitor_entries(&self) -> Vec<(&CompactString, &VisitorState)> {
        self.visitors.iter().collect()
    }

    /// The saved fields after the visitor map.
    pub(crate) fn after_visitors(&self) -> SessionizerAfterVisitors<'_> {
        SessionizerAfterVisitors {
            holding: self.holding,
            sweep_at: self.sweep_at,
            latest_ts_us: self.latest_ts_us,
            evicted: &self.evicted,
            evict_at: self.evict_at,
        }
    }

    /// Assigns `event` (whose attributes are already classified) to a session, taking the
    /// attributes out of it: they are the session's now, or dropped. Events must come in time
    /// order per visitor for the 30-minute rule to mean what it says.
    #[cfg(test)]
    pub fn assign(&mut self, event: &mut Event) -> Assigned {
        let (key, attrs, _) = EventKey::split(event);
        self.assign_key(key, || std::mem::take(attrs))
    }

    /// [`Sessionizer::assign`] of the event `key` describes; `own_attrs` gives the event's own
    /// (classified) attributes, and is called only when they become the session's.
    pub fn assign_key(
        &mut self,
        key: EventKey<'_>,
        own_attrs: impl FnOnce() -> SessionAttrs,
    ) -> Assigned {
        let EventKey {
            visitor_id,
            session_id,
            ts_us: ts,
            is_pageview,
        } = key;
        let own_attrs = || Some(Arc::new(own_attrs()));
        self.latest_ts_us = self.latest_ts_us.max(ts);
        let Some(p) = self.visitors.get_mut(visitor_id) else {
            self.took_attrs(visitor_id, ts);
            let session_id: Arc<str> = match session_id {
                Some(s) => Arc::from(s),
                None => derived_session(ts),
            };
            let state = VisitorState {
                session_id,
                last_ts_us: ts,
                attrs: own_attrs(),
                landed: is_pageview,
                viewed: is_pageview,
                sessions: 1,
                session_start_us: ts,
            };
            let assigned = state.assigned();
            self.visitors.insert(CompactString::from(visitor_id), state);
            return assigned;
        };
        let new_session: Option<Arc<str>> = match session_id {
            Some(s) if *s == *p.session_id => None,
            Some(s) => Some(Arc::from(s)),
            None if !is_pageview || ts - p.last_ts_us <= SESSION_TIMEOUT_US => None,
            None => Some(derived_session(ts)),
        };
        let takes_attrs = p.attrs.is_none();
        match new_session {
            None if is_pageview && !p.landed => {
                p.attrs = own_attrs();
                p.last_ts_us = ts;
                p.landed = true;
                p.viewed = true;
            }
            None => {
                p.attrs.get_or_insert_default();
                p.last_ts_us = ts.max(p.last_ts_us);
            }
            Some(session_id) => {
                let attrs = if is_pageview {
                    own_attrs()
                } else {
                    Some(p.attrs.clone().unwrap_or_default())
                };
                *p = VisitorState {
                    session_id,
                    last_ts_us: ts,
                    attrs,
                    landed: is_pageview,
                    viewed: is_pageview || p.viewed,
                    sessions: p.sessions + 1,
                    session_start_us: ts,
                };
            }
        }
        let (assigned, last_ts_us) = (p.assigned(), p.last_ts_us);
        if takes_attrs {
            self.took_attrs(visitor_id, last_ts_us);
        }
        assigned
    }

    /// Counts a visitor whose state has just taken attributes, and lists it for the sweeps.
    fn took_attrs(&mut self, visitor_id: &str, last_ts_us: i64) {
        self.holding += 1;
        if self.holders_listed {
            self.holders
                .push_back((CompactString::from(visitor_id), last_ts_us));
        }
    }

    /// Restores a visitor's state from an already stored event (used when reopening a data
    /// directory); stored events must be replayed in time order. The attributes are left
    /// unknown, for [`Sessionizer::set_attrs`] or storage to give.
    pub fn replay(&mut self, visitor_id: &str, session_id: &str, ts_us: i64, is_pageview: bool) {
        self.latest_ts_us = self.latest_ts_us.max(ts_us);
        let Some(p) = self.visitors.get_mut(visitor_id) else {
            let state = VisitorState {
                session_id: Arc::from(session_id),
                last_ts_us: ts_us,
                attrs: None,
                landed: is_pageview,
                viewed: is_pageview,
                sessions: 1,
                session_start_us: ts_us,
            };
            self.visitors.insert(CompactString::from(visitor_id), state);
            return;
        };
        if *p.session_id != *session_id {
            p.session_id = Arc::from(session_id);
            p.landed = false;
            p.sessions += 1;
            p.session_start_us = ts_us;
        }
        p.landed |= is_pageview;
        p.viewed |= is_pageview;
        p.last_ts_us = ts_us;
        if p.attrs.take().is_some() {
            self.holding -= 1;
        }
    }

    /// Evicts the whole state of visitors idle for longer than a session, oldest first, once
    /// more than `limit` visitors have one: down to [`kept_by_sweep`] where enough
    /// are idle. Their ids go to the evicted filter, for [`Sessionizer::may_be_evicted`], and
    /// `on_evict` hears each. A sweep visits every visitor, so the next one waits until an
    /// eighth more visitors have come. Returns how many were evicted.
    pub fn evict_idle(&mut self, limit: usize, mut on_evict: impl FnMut(&str)) -> usize {
        let before = self.visitors.len();
        if before <= limit.max(self.evict_at) {
            return 0;
        }
        let idle_before = self.latest_ts_us.saturating_sub(SESSION_TIMEOUT_US);
        let excess = before - kept_by_sweep(limit);
        let mut idle: Vec<i64> = self
            .visitors
            .values()
            .map(|v| v.last_ts_us)
            .filter(|&ts| ts < idle_before)
            .collect();
        // Evict the `excess` oldest idle ones (and any tied with the last of them).
        let cutoff = if idle.len() <= excess {
            idle_before
        } else {
            let (_, &mut nth, _) = idle.select_nth_unstable(excess - 1);
            nth + 1
        };
        drop(idle);
        let mut held_attrs = 0;
        let evicted = &mut self.evicted;
        self.visitors.retain(|id, v| {
            if v.last_ts_us >= cutoff {
                return true;
            }
            held_attrs += usize::from(v.attrs.is_some());
            evicted.insert(visitor_hash(id));
            on_evict(id);
            false
        });
        self.holding -= held_attrs;
        let after = self.visitors.len();
        self.evict_at = after + after / 8;
        // The table does not shrink by itself; shrinking rehashes it, so only once it is
        // mostly empty (after a large eviction, not the steady state's eighth).
        if self.visitors.capacity() > 2 * self.evict_at {
            self.visitors.shrink_to(self.evict_at);
        }
        before - after
    }

    /// Whether `visitor_id`'s state may have been evicted (and so may have to be read back from
    /// storage before an event of theirs is assigned): `false` for a visitor in memory, and
    /// for one certainly never seen.
    pub fn may_be_evicted(&self, visitor_id: &str) -> bool {
        !self.visitors.contains_key(visitor_id)
            && self.evicted.may_contain(visitor_hash(visitor_id))
    }

    /// Records that the visitor whose id hashes to `hash` ([`visitor_hash`]) has a state in
    /// storage only (a rebuild that does not load it).
    pub fn mark_evicted(&mut self, hash: u64) {
        self.evicted.insert(hash);
    }

    /// Whether any visitor's state was ever evicted.
    pub fn has_evicted(&self) -> bool {
        !self.evicted.is_empty()
    }

    /// How many visitors it holds a state for.
    pub fn visitors(&self) -> usize {
        self.visitors.len()
    }

    /// The latest event time seen (µs), 0 before any.
    pub fn latest_ts_us(&self) -> i64 {
        self.latest_ts_us
    }

    /// Whether `visitor_id` has had a page view.
    pub fn has_viewed(&self, visitor_id: &str) -> bool {
        self.visitors.get(visitor_id).is_some_and(|v| v.viewed)
    }

    /// The visitor's current session id and when its first event happened (µs).
    pub fn current_session(&self, visitor_id: &str) -> Option<(&str, i64)> {
        self.visitors
            .get(visitor_id)
            .map(|v| (&*v.session_id, v.session_start_us))
    }

    /// How many sessions `visitor_id` has had (a change of session counts one; a visitor's
    /// sessions do not interleave in time).
    pub fn visit_count(&self, visitor_id: &str) -> u32 {
        self.visitors.get(visitor_id).map_or(0, |v| v.sessions)
    }

    /// Whether an event of `visitor_id`'s at `ts_us` in `session_id` is the visitor's latest
    /// (whose attributes the session has now) and its state holds no attributes yet.
    pub fn needs_attrs(&self, visitor_id: &str, session_id: &str, ts_us: i64) -> bool {
        self.visitors.get(visitor_id).is_some_and(|v| {
            v.last_ts_us == ts_us && &*v.session_id == session_id && v.attrs.is_none()
        })
    }

    /// Sets the attributes of a visitor's current session (after [`Sessionizer::replay`], or
    /// read back from storage).
    pub fn set_attrs(&mut self, visitor_id: &str, attrs: Arc<SessionAttrs>) {
        if let Some(v) = self.visitors.get_mut(visitor_id)
            && v.attrs.replace(attrs).is_none()
        {
            let last_ts_us = v.last_ts_us;
            self.took_attrs(visitor_id, last_ts_us);
        }
    }

    /// Whether some visitor's state holds no attributes (so that an event may need
    /// [`Sessionizer::stored_attrs_needed`]).
    pub fn lacks_attrs(&self) -> bool {
        self.holding < self.visitors.len()
    }

    /// Where the attributes that assigning the event `key` describes would use are stored,
    /// when the visitor's state no longer holds them: a goal or payment joining (or following)
    /// an old session, or a page view continuing one. `None` when the state holds them or the
    /// event starts a session of its own.
    pub fn stored_attrs_needed(&self, key: EventKey<'_>) -> Option<StoredAttrs> {
        let p = self.visitors.get(key.visitor_id)?;
        if p.attrs.is_some() {
            return None;
        }
        let same_session = match key.session_id {
            Some(s) => *s == *p.session_id,
            None => key.ts_us - p.last_ts_us <= SESSION_TIMEOUT_US,
        };
        let own = key.is_pageview && (!same_session || !p.landed);
        (!own).then(|| StoredAttrs {
            visitor_id: key.visitor_id.to_owned(),
            session_id: p.session_id.to_string(),
            session_start_us: p.session_start_us,
            last_ts_us: p.last_ts_us,
        })
    }

    /// Drops the attributes of visitors idle for longer than a session once more than `limit`
    /// visitors hold them. Idle holders are taken from the front of the holders' list, so a
    /// sweep costs what it drops, not the number of visitors. Only when events came so far out
    /// of order that more than twice `limit` still hold attributes is the list rebuilt from
    /// every visitor, in time order; the next such rebuild then waits until the holders have
    /// doubled. Returns how many were dropped.
    pub fn forget_idle_attrs(&mut self, limit: usize) -> usize {
        if self.holding <= limit {
            return 0;
        }
        if !self.holders_listed {
            self.list_holders();
        }
        let mut dropped = self.drop_idle_from_front();
        if self.holding > limit.saturating_mul(2).max(self.sweep_at) {
            self.list_holders();
            dropped += self.drop_idle_from_front();
            self.sweep_at = self.holding.saturating_mul(2);
        }
        dropped
    }

    /// Lists every visitor whose state holds attributes, oldest latest event first.
    fn list_holders(&mut self) {
        let mut holders: Vec<(CompactString, i64)> = self
            .visitors
            .iter()
            .filter(|(_, v)| v.attrs.is_some())
            .map(|(id, v)| (id.clone(), v.last_ts_us))
            .collect();
        holders.sort_unstable_by_key(|(_, ts)| *ts);
        self.holders = holders.into();
        self.holders_listed = true;
    }

    /// Drops the attributes of the idle holders at the front of the list; a holder whose
    /// visitor has had an event since it was listed goes to the back with that time.
    fn drop_idle_from_front(&mut self) -> usize {
        let idle_before = self.latest_ts_us.saturating_sub(SESSION_TIMEOUT_US);
        let mut dropped = 0;
        for _ in 0..self.holders.len() {
            if self
                .holders
                .front()
                .is_none_or(|(_, ts)| *ts >= idle_before)
            {
                break;
            }
            let Some((id, _)) = self.holders.pop_front() else {
                break;
            };
            // Gone or without attributes: listed before a replay took them.
            let Some(v) = self.visitors.get_mut(&id).filter(|v| v.attrs.is_some()) else {
                continue;
            };
            if v.last_ts_us < idle_before {
                v.attrs = None;
                dropped += 1;
            } else {
                let last_ts_us = v.last_ts_us;
                self.holders.push_back((id, last_ts_us));
            }
        }
        self.holding = self.holding.saturating_sub(dropped);
        dropped
    }

    /// How many visitors' states hold their session's attributes now.
    #[cfg(test)]
    fn holding_attrs(&self) -> usize {
        self.visitors.values().filter(|v| v.attrs.is_some()).count()
    }
}

/// How many visitors a sweep at `limit` keeps: seven eighths. A sweep runs under the store's
/// write lock and costs about half a microsecond an evicted visitor: evicting more at a time
/// would hold the lock longer, evicting less would sweep (and visit every visitor) more often.
pub(crate) fn kept_by_sweep(limit: usize) -> usize {
    limit - limit / 8
}

/// The id of a session the engine starts for a visitor at `ts_us`.
pub fn derived_session_id(ts_us: i64) -> String {
    derived_session_text(ts_us).into()
}

/// [`derived_session_id`], shared.
fn derived_session(ts_us: i64) -> Arc<str> {
    Arc::from(derived_session_text(ts_us).as_str())
}

/// [`derived_session_id`], written with `itoa` on the stack (the id of a usual time fits a
/// `CompactString` inline): through `format!` and a `String` it cost a new session 400
/// instructions and an allocation more.
fn derived_session_text(ts_us: i64) -> CompactString {
    let mut digits = itoa::Buffer::new();
    let mut id = CompactString::const_new("auto-");
    id.push_str(digits.format(ts_us));
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    #[test]
    fn derived_session_ids_are_auto_and_the_time() {
        for ts in [0, 1, -1, 1_744_342_729_154_000, i64::MAX, i64::MIN] {
            assert_eq!(derived_session_id(ts), format!("auto-{ts}"));
        }
    }

    fn pv(v: &str, ts: DateTime<Utc>, country: &str) -> Event {
        let mut e = Event::pageview("w", v, ts, "a.com", "/");
        e.attrs.country_code = Some(country.into());
        e
    }

    #[test]
    fn thirty_minutes_of_inactivity_split_sessions() {
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut s = Sessionizer::default();
        let a = s.assign(&mut pv("v", t0, "US"));
        let b = s.assign(&mut pv("v", t0 + Duration::minutes(30), "FR"));
        let c = s.assign(&mut pv("v", t0 + Duration::minutes(61), "DE"));
        assert_eq!(a.session_id, b.session_id);
        assert_ne!(b.session_id, c.session_id);
        // the landing page's attributes win inside a session
        assert_eq!(b.attrs.country_code.as_deref(), Some("US"));
        assert_eq!(c.attrs.country_code.as_deref(), Some("DE"));
        assert_eq!(s.visit_count("v"), 2);
        let (_, start) = s.current_session("v").unwrap();
        assert_eq!(start, (t0 + Duration::minutes(61)).timestamp_micros());
        assert_eq!(s.visit_count("nobody"), 0);
    }

    #[test]
    fn goals_join_the_latest_session_whatever_its_age() {
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut s = Sessionizer::default();
        let a = s.assign(&mut pv("v", t0, "US"));
        let mut g = pv("v", t0 + Duration::days(3), "FR");
        g.kind = EventKind::Goal {
            name: "x".into(),
            metadata: Default::default(),
        };
        let b = s.assign(&mut g);
        assert_eq!(a.session_id, b.session_id);
        assert_eq!(b.attrs.country_code.as_deref(), Some("US"));
    }

    #[test]
    fn idle_visitors_attributes_are_dropped_past_the_limit_and_asked_for_again() {
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut s = Sessionizer::default();
        for (i, v) in ["a", "b", "c"].into_iter().enumerate() {
            s.assign(&mut pv(v, t0 + Duration::minutes(i as i64), "US"));
        }
        // Within the limit: nothing is dropped.
        assert_eq!(s.forget_idle_attrs(3), 0);
        assert_eq!(s.holding_attrs(), 3);
        // "d" arrives 40 minutes later: a, b and c have been idle for longer than a session.
        s.assign(&mut pv("d", t0 + Duration::minutes(42), "FR"));
        assert_eq!(s.forget_idle_attrs(1), 3);
        assert_eq!((s.holding_attrs(), s.holding), (1, 1));
        // A goal joining a's old session needs a's attributes back, found at a's last event.
        let mut goal = pv("a", t0 + Duration::days(2), "DE");
        goal.kind = EventKind::Goal {
            name: "x".into(),
            metadata: Default::default(),
        };
        let at = s
            .stored_attrs_needed(EventKey::of(&goal))
            .expect("a's attributes were dropped");
        assert_eq!(
            (at.visitor_id.as_str(), at.last_ts_us, at.session_start_us),
            ("a", t0.timestamp_micros(), t0.timestamp_micros())
        );
        // A page view past the session's end starts a session of its own: nothing to read.
        assert_eq!(
            s.stored_attrs_needed(EventKey::of(&pv("a", t0 + Duration::days(2), "DE"))),
            None
        );
        // Nor within it for a visitor whose state still holds them.
        let mut d_goal = goal.clone();
        d_goal.visitor_id = "d".into();
        assert_eq!(s.stored_attrs_needed(EventKey::of(&d_goal)), None);
        let back = SessionAttrs {
            country_code: Some("US".into()),
            ..SessionAttrs::default()
        };
        s.set_attrs("a", Arc::new(back));
        let joined = s.assign(&mut goal);
        assert_eq!(joined.attrs.country_code.as_deref(), Some("US"));
        assert_eq!(s.visit_count("a"), 1);
        assert_eq!((s.holding_attrs(), s.holding), (2, 2));
        // "e" makes three holders: "d" (idle since +42 min) goes; "a" (its goal just now)
        // stays.
        let later = t0 + Duration::days(2);
        s.assign(&mut pv("e", later, "FR"));
        assert_eq!(s.forget_idle_attrs(1), 1);
        // Holders in a session stay, however many: a sweep stops at the first of them.
        for v in ["f", "g", "h"] {
            s.assign(&mut pv(v, later, "FR"));
            assert_eq!(s.forget_idle_attrs(1), 0);
        }
        assert_eq!((s.holding_attrs(), s.holding), (5, 5));
        // An hour on, all five are idle and go at the next sweep.
        s.assign(&mut pv("i", later + Duration::hours(1), "FR"));
        assert_eq!(s.forget_idle_attrs(1), 5);
        assert_eq!((s.holding_attrs(), s.holding), (1, 1));
    }

    #[test]
    fn idle_visitors_past_the_limit_are_evicted_oldest_first_and_marked() {
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut s = Sessionizer::default();
        for i in 0..8 {
            s.assign(&mut pv(&format!("v{i}"), t0 + Duration::minutes(i), "US"));
        }
        // Within the limit: nothing goes.
        assert_eq!(s.evict_idle(8, |_| {}), 0);
        // An hour on, v0..v7 are idle. Limit 4: down to 4 (seven eighths of 4, rounded up),
        // oldest first; "now" stays.
        s.assign(&mut pv("now", t0 + Duration::minutes(70), "US"));
        let mut gone = Vec::new();
        assert_eq!(s.evict_idle(4, |id| gone.push(id.to_owned())), 5);
        gone.sort();
        assert_eq!(gone, ["v0", "v1", "v2", "v3", "v4"]);
        assert_eq!(s.visitors(), 4);
        assert_eq!((s.holding_attrs(), s.holding), (4, 4));
        for i in 0..5 {
            assert!(s.may_be_evicted(&format!("v{i}")));
        }
        assert!(!s.may_be_evicted("v5") && !s.may_be_evicted("now"));
        assert!(!s.may_be_evicted("never"));
        // Limit 0 takes only the idle: v5, v6 and v7, not "now" and "w".
        s.assign(&mut pv("w", t0 + Duration::minutes(71), "US"));
        assert_eq!(s.evict_idle(0, |_| {}), 3);
        assert_eq!(s.visitors(), 2);
        // A replay of v0's stored rows brings its state back.
        s.replay("v0", "auto-x", t0.timestamp_micros(), true);
        assert!(!s.may_be_evicted("v0") && s.has_viewed("v0"));
    }

    #[test]
    fn holders_listed_behind_a_later_one_are_still_dropped_once_they_pile_up() {
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut s = Sessionizer::default();
        s.assign(&mut pv("a", t0, "US"));
        s.assign(&mut pv("b", t0 + Duration::minutes(1), "US"));
        assert_eq!(s.forget_idle_attrs(1), 0, "both in a session");
        // A late event, then three older ones listed behind it.
        s.assign(&mut pv("late", t0 + Duration::minutes(100), "US"));
        for (i, v) in ["e1", "e2", "e3"].into_iter().enumerate() {
            s.assign(&mut pv(v, t0 + Duration::minutes(2 + i as i64), "US"));
        }
        // a and b go from the front; "late" stops that walk, and the four left holding (more
        // than twice the limit) make the sweep list the holders again in time order.
        assert_eq!(s.forget_idle_attrs(1), 5);
        assert_eq!((s.holding_attrs(), s.holding), (1, 1));
    }

    /// Memory of visitor states, for benches/README ("Bounded ingest state"): run with
    /// `cargo test --release -p tally-core --lib -- --ignored --nocapture memory_of_visitor_states`.
    #[test]
    #[ignore = "a measurement: a few seconds in release, far longer in debug"]
    fn memory_of_visitor_states() {
        fn rss() -> usize {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages: usize = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pages * 4096
        }
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let visitor = |i: usize| {
            let ts = t0 + Duration::seconds(i as i64);
            Event::pageview(
                "w",
                format!("{i:08x}-1111-2222-3333-444455556666"),
                ts,
                "a.com",
                "/",
            )
        };
        let n = 1_000_000;
        let mut s = Sessionizer::default();
        let before = rss();
        for i in 0..n {
            s.assign(&mut visitor(i));
            s.forget_idle_attrs(0);
        }
        let held = rss();
        let sweep = std::time::Instant::now();
        let evicted = s.evict_idle(0, |_| {});
        let sweep = sweep.elapsed();
        let after = rss();
        eprintln!(
            "{n} visitor states: {} B each; a sweep evicting {evicted} took {sweep:?}; {} B each still resident",
            (held - before) / n,
            after.saturating_sub(before) / n
        );
        let mut sweeps = Vec::new();
        for i in n..2 * n {
            s.assign(&mut visitor(i));
            s.forget_idle_attrs(0);
            let sweep = std::time::Instant::now();
            if s.evict_idle(100_000, |_| {}) > 0 {
                sweeps.push(sweep.elapsed());
            }
        }
        assert!(s.visitors() <= 100_000);
        sweeps.sort();
        eprintln!(
            "{n} more under a limit of 100,000: {} sweeps, median {:?}, longest {:?}; {} held, resident {} MB (was {} MB)",
            sweeps.len(),
            sweeps[sweeps.len() / 2],
            sweeps[sweeps.len() - 1],
            s.visitors(),
            rss().saturating_sub(before) >> 20,
            after.saturating_sub(before) >> 20
        );
    }
}

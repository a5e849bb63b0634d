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

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, SessionAttrs};

/// Inactivity after which a page view starts a new session.
pub const SESSION_TIMEOUT_US: i64 = 30 * 60 * 1_000_000;

/// What the engine remembers of a visitor between events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VisitorState {
    session_id: Arc<str>,
    last_ts_us: i64,
    attrs: Arc<SessionAttrs>,
    /// Whether the current session has had its first page view.
    landed: bool,
    /// Whether the visitor has ever had a page view (page views are never deleted).
    viewed: bool,
    /// Sessions the visitor has had, this one included.
    sessions: u32,
    /// When the current session's first event happened.
    session_start_us: i64,
}

/// The session a new event was assigned to.
#[derive(Debug, Clone)]
pub(crate) struct Assigned {
    pub session_id: String,
    pub attrs: Arc<SessionAttrs>,
}

/// Per-visitor session state of one website.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Sessionizer {
    visitors: HashMap<String, VisitorState>,
}

impl Sessionizer {
    /// Assigns `event` (whose attributes are already classified) to a session. Events must come
    /// in time order per visitor for the 30-minute rule to mean what it says.
    pub fn assign(&mut self, event: &Event) -> Assigned {
        let ts = event.ts.timestamp_micros();
        let is_pageview = matches!(event.kind, EventKind::Pageview);
        let prev = self.visitors.get(&event.visitor_id);
        let session_id: Arc<str> = match (&event.session_id, prev) {
            (Some(s), _) => Arc::from(s.as_str()),
            (None, Some(p)) if !is_pageview || ts - p.last_ts_us <= SESSION_TIMEOUT_US => {
                Arc::clone(&p.session_id)
            }
            (None, _) => Arc::from(derived_session_id(ts).as_str()),
        };
        let state = match prev {
            Some(p) if p.session_id == session_id => {
                if is_pageview && !p.landed {
                    VisitorState {
                        session_id,
                        last_ts_us: ts,
                        attrs: Arc::new(event.attrs.clone()),
                        landed: true,
                        viewed: true,
                        sessions: p.sessions,
                        session_start_us: p.session_start_us,
                    }
                } else {
                    VisitorState {
                        last_ts_us: ts.max(p.last_ts_us),
                        ..p.clone()
                    }
                }
            }
            _ => {
                let attrs = match prev {
                    Some(p) if !is_pageview => Arc::clone(&p.attrs),
                    _ => Arc::new(event.attrs.clone()),
                };
                VisitorState {
                    session_id,
                    last_ts_us: ts,
                    attrs,
                    landed: is_pageview,
                    viewed: is_pageview || prev.is_some_and(|p| p.viewed),
                    sessions: prev.map_or(0, |p| p.sessions) + 1,
                    session_start_us: ts,
                }
            }
        };
        let assigned = Assigned {
            session_id: state.session_id.to_string(),
            attrs: Arc::clone(&state.attrs),
        };
        self.visitors.insert(event.visitor_id.clone(), state);
        assigned
    }

    /// Restores a visitor's state from an already stored event (used when reopening a data
    /// directory); stored events must be replayed in time order.
    pub fn replay(
        &mut self,
        visitor_id: &str,
        session_id: &str,
        ts_us: i64,
        is_pageview: bool,
        attrs: Arc<SessionAttrs>,
    ) {
        let prev = self.visitors.get(visitor_id);
        let viewed = is_pageview || prev.is_some_and(|p| p.viewed);
        let (landed, sessions, session_start_us) = match prev {
            Some(p) if &*p.session_id == session_id => {
                (p.landed || is_pageview, p.sessions, p.session_start_us)
            }
            Some(p) => (is_pageview, p.sessions + 1, ts_us),
            None => (is_pageview, 1, ts_us),
        };
        self.visitors.insert(
            visitor_id.to_owned(),
            VisitorState {
                session_id: Arc::from(session_id),
                last_ts_us: ts_us,
                attrs,
                landed,
                viewed,
                sessions,
                session_start_us,
            },
        );
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
    /// (whose attributes the session has now) and the attributes are still the `unset` ones it
    /// was replayed with.
    pub fn needs_attrs(
        &self,
        visitor_id: &str,
        session_id: &str,
        ts_us: i64,
        unset: &Arc<SessionAttrs>,
    ) -> bool {
        self.visitors.get(visitor_id).is_some_and(|v| {
            v.last_ts_us == ts_us && &*v.session_id == session_id && Arc::ptr_eq(&v.attrs, unset)
        })
    }

    /// Sets the attributes of a visitor's current session (after [`Sessionizer::replay`]).
    pub fn set_attrs(&mut self, visitor_id: &str, attrs: Arc<SessionAttrs>) {
        if let Some(v) = self.visitors.get_mut(visitor_id) {
            v.attrs = attrs;
        }
    }
}

/// The id of a session the engine starts for a visitor at `ts_us`.
pub fn derived_session_id(ts_us: i64) -> String {
    format!("auto-{ts_us}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    fn pv(v: &str, ts: DateTime<Utc>, country: &str) -> Event {
        let mut e = Event::pageview("w", v, ts, "a.com", "/");
        e.attrs.country_code = Some(country.into());
        e
    }

    #[test]
    fn thirty_minutes_of_inactivity_split_sessions() {
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut s = Sessionizer::default();
        let a = s.assign(&pv("v", t0, "US"));
        let b = s.assign(&pv("v", t0 + Duration::minutes(30), "FR"));
        let c = s.assign(&pv("v", t0 + Duration::minutes(61), "DE"));
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
        let a = s.assign(&pv("v", t0, "US"));
        let mut g = pv("v", t0 + Duration::days(3), "FR");
        g.kind = EventKind::Goal {
            name: "x".into(),
            metadata: Default::default(),
        };
        let b = s.assign(&g);
        assert_eq!(a.session_id, b.session_id);
        assert_eq!(b.attrs.country_code.as_deref(), Some("US"));
    }
}

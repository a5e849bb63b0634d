//! Valid events packed for a bulk load ([`crate::Engine::ingest_packed`]).
//!
//! A page view's text (ids, page, session attributes) is copied into one buffer that the
//! whole batch shares. Packing happens on the thread that parses: from an [`Event`]
//! ([`PackedEvents::pack`], [`PackedEvents::push`]), or straight from the fields of a line
//! read by [`crate::import::LineParser::parse_into`] ([`PackedEvents::push_pageview`]), which
//! builds no `Event` at all. On the engine's thread a packed page view then costs no
//! allocation: its attributes become a [`SessionAttrs`] only when it starts a session (most
//! page views continue one, and their attributes would be dropped), and its row goes straight
//! into the batch's Arrow builders. Events of other kinds stay [`Event`]s and are stored as
//! any write's are.
//!
//! What is stored is the same as for [`crate::Engine::ingest_bulk`] of the same events (a
//! property test holds the two paths equal).

use compact_str::CompactString;

use crate::batch_builder::{EventsBuilder, RowRef};
use crate::engine::IngestReport;
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, PageviewRef, SessionAttrs, ValidEvents, printable_ascii};
use crate::ingest::{IngestState, Outcome, classify_referrer, enrich, push_event_id};
use crate::schema::{ATTRS, AttrValue, kind};
use crate::session::EventKey;
use crate::website::Website;

/// A string in [`PackedEvents`]' text: `len == NONE` stands for no value.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const NONE: Span = Span {
        start: 0,
        len: u32::MAX,
    };
}

/// A page view, its strings in the batch's text.
#[derive(Debug)]
struct Pageview {
    ts_us: i64,
    visitor_id: Span,
    session_id: Span,
    event_id: Span,
    hostname: Span,
    path: Span,
    viewport_w: Option<u32>,
    viewport_h: Option<u32>,
    /// The text attributes, in [`ATTRS`]' order (a float attribute's entry is unused).
    text_attrs: [Span; ATTRS.len()],
    /// The float attributes, in [`ATTRS`]' order.
    float_attrs: [Option<f64>; FLOAT_ATTRS],
    /// Whether every text attribute is within its bound in bytes (so in characters).
    attrs_bounded: bool,
}

/// The text of a usual page view, in bytes: ids, page and session attributes.
const TEXT_BYTES_PER_EVENT: usize = 192;

/// How many of [`ATTRS`] are floats (latitude and longitude).
const FLOAT_ATTRS: usize = 2;

/// The float attributes among [`ATTRS`], in order.
fn float_attr_list() -> impl Iterator<Item = &'static crate::schema::Attr> {
    ATTRS
        .iter()
        .filter(|a| matches!(a.value, AttrValue::Float { .. }))
}

/// One event of the batch.
#[derive(Debug)]
// The page view is the common case, kept inline: boxing it would cost the allocation per
// event that packing is there to avoid.
#[allow(clippy::large_enum_variant)]
enum Packed {
    Pageview(Pageview),
    /// An event of another kind: its place in [`PackedEvents`]' `others`.
    Other(usize),
}

/// Valid events of one website, packed; see the module docs. Events go in only through
/// [`PackedEvents::pack`] (events checked already) or the `push` methods, which check them.
#[derive(Debug)]
pub struct PackedEvents {
    site: String,
    text: String,
    events: Vec<Packed>,
    /// Each event's place in the list that was checked.
    places: Vec<usize>,
    /// The events that are not page views (each taken once, when stored).
    others: Vec<Option<Event>>,
}

impl PackedEvents {
    /// No events yet of website `site`, with room for `capacity` usual page views.
    pub fn new(site: &str, capacity: usize) -> PackedEvents {
        PackedEvents {
            site: site.to_owned(),
            // Room for the text of usual page views, so that it is seldom copied as it grows.
            text: String::with_capacity(capacity * TEXT_BYTES_PER_EVENT),
            events: Vec::with_capacity(capacity),
            places: Vec::with_capacity(capacity),
            others: Vec::new(),
        }
    }

    /// Packs the valid events of website `site`. An event of another website is refused, with
    /// its place in the list that was checked.
    pub fn pack(site: &str, valid: ValidEvents) -> (PackedEvents, Vec<(usize, Error)>) {
        let (events, places) = valid.into_parts();
        let mut packed = PackedEvents::new(site, events.len());
        let mut refused = Vec::new();
        for (event, place) in events.into_iter().zip(places) {
            if let Err(why) = packed.check_site(&event.website_id) {
                refused.push((place, why));
                continue;
            }
            packed.push_valid(event, place);
        }
        (packed, refused)
    }

    /// Adds `event` as the one at `place` in the caller's list, once [`Event::validate`]d and
    /// found to be of this website.
    pub fn push(&mut self, event: Event, place: usize) -> Result<()> {
        event.validate()?;
        self.check_site(&event.website_id)?;
        self.push_valid(event, place);
        Ok(())
    }

    /// [`PackedEvents::push`] of a page view given by its fields: the same checks, and the
    /// same packed event, without an [`Event`] to build and free.
    pub fn push_pageview(&mut self, view: PageviewRef<'_>, place: usize) -> Result<()> {
        // Packed first, so that one pass over the bytes packed checks every text field; the
        // text is taken back if the page view is refused.
        let mark = self.text.len();
        let packed = self.pageview(&view);
        let text_checked = packed
            .as_ref()
            .is_some_and(|p| p.attrs_bounded && printable_ascii(&self.text[mark..]));
        let checked = view
            .validate_checked_text(text_checked)
            .and_then(|()| self.check_site(view.website_id));
        if let Err(why) = checked {
            self.text.truncate(mark);
            return Err(why);
        }
        match packed {
            Some(p) => self.events.push(Packed::Pageview(p)),
            None => {
                self.others.push(Some(view.to_event()));
                self.events.push(Packed::Other(self.others.len() - 1));
            }
        }
        self.places.push(place);
        Ok(())
    }

    /// Refuses an event of another website than this load's.
    fn check_site(&self, website_id: &str) -> Result<()> {
        if website_id == self.site {
            return Ok(());
        }
        let why = format!("`{website_id}` is not the website of this load");
        Err(Error::invalid("website_id", why))
    }

    /// Adds `event`, valid and of this website.
    fn push_valid(&mut self, event: Event, place: usize) {
        let row = match event.as_pageview().and_then(|v| self.pageview(&v)) {
            Some(p) => Packed::Pageview(p),
            None => {
                self.others.push(Some(event));
                Packed::Other(self.others.len() - 1)
            }
        };
        self.events.push(row);
        self.places.push(place);
    }

    /// The website the events belong to.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// How many events there are.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Each event's place in the list that was checked.
    pub(crate) fn places(&self) -> &[usize] {
        &self.places
    }

    /// `view` packed, when its text fits the offsets.
    fn pageview(&mut self, view: &PageviewRef<'_>) -> Option<Pageview> {
        if self.text.len() > (u32::MAX / 2) as usize {
            return None;
        }
        let mut text_attrs = [Span::NONE; ATTRS.len()];
        let mut attrs_bounded = true;
        for (span, attr) in text_attrs.iter_mut().zip(&ATTRS) {
            if let AttrValue::Text {
                field, max_chars, ..
            } = attr.value
            {
                *span = self.push_text(field(view.attrs).as_deref());
                attrs_bounded &= span.len == Span::NONE.len || span.len as usize <= max_chars;
            }
        }
        let mut float_attrs = [None; FLOAT_ATTRS];
        for (value, attr) in float_attrs.iter_mut().zip(float_attr_list()) {
            if let AttrValue::Float { field, .. } = attr.value {
                *value = field(view.attrs);
            }
        }
        Some(Pageview {
            ts_us: view.ts.timestamp_micros(),
            visitor_id: self.push_text(Some(view.visitor_id)),
            session_id: self.push_text(view.session_id),
            event_id: self.push_text(view.event_id),
            hostname: self.push_text(view.hostname),
            path: self.push_text(view.path),
            viewport_w: view.viewport_width,
            viewport_h: view.viewport_height,
            text_attrs,
            float_attrs,
            attrs_bounded,
        })
    }

    /// Appends `s` to the text.
    fn push_text(&mut self, s: Option<&str>) -> Span {
        let Some(s) = s else {
            return Span::NONE;
        };
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }

    /// The time of `event` (one of these events), µs since the epoch.
    fn ts_us(others: &[Option<Event>], event: &Packed) -> i64 {
        match event {
            Packed::Pageview(p) => p.ts_us,
            Packed::Other(i) => others[*i].as_ref().map_or(0, |e| e.ts.timestamp_micros()),
        }
    }

    /// The time of the latest event, µs since the epoch.
    pub fn latest_ts_us(&self) -> Option<i64> {
        let ts = |p| Self::ts_us(&self.others, p);
        self.events.iter().map(ts).max()
    }

    /// How many of the events happened before `ts_us`.
    pub fn count_before(&self, ts_us: i64) -> usize {
        let ts = |p| Self::ts_us(&self.others, p);
        self.events.iter().filter(|p| ts(p) < ts_us).count()
    }

    /// The events in time order, keeping the list's order among equal times (as
    /// [`crate::Engine::ingest_bulk`] stores them).
    pub(crate) fn sort_by_time(&mut self) {
        let others = &self.others;
        let ts = |p: &Packed| Self::ts_us(others, p);
        if self.events.is_sorted_by_key(ts) {
            return;
        }
        let mut pairs: Vec<(Packed, usize)> =
            self.events.drain(..).zip(self.places.drain(..)).collect();
        pairs.sort_by_key(|(p, _)| ts(p));
        (self.events, self.places) = pairs.into_iter().unzip();
    }

    /// What session assignment reads of each event.
    pub(crate) fn keys(&self) -> Vec<EventKey<'_>> {
        let text = Text(&self.text);
        self.events
            .iter()
            .filter_map(|p| match p {
                Packed::Pageview(p) => Some(p.key(text)),
                Packed::Other(i) => self.others[*i].as_ref().map(EventKey::of),
            })
            .collect()
    }

    /// The transaction ids of the payments.
    pub(crate) fn payment_ids(&self) -> Vec<&str> {
        self.others
            .iter()
            .flatten()
            .filter_map(|e| match &e.kind {
                EventKind::Payment(p) => Some(p.transaction_id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Stores the events (in time order, see [`PackedEvents::sort_by_time`]) of `website`:
    /// assigns their sessions in `state` and returns their rows. A duplicate payment or a
    /// refused event goes to `report` instead.
    pub(crate) fn store(
        self,
        website: &Website,
        state: &mut IngestState,
        report: &mut IngestReport,
    ) -> Result<Option<datafusion::arrow::record_batch::RecordBatch>> {
        let PackedEvents {
            site,
            text,
            events,
            places,
            mut others,
        } = self;
        let text = Text(&text);
        let mut rows = EventsBuilder::with_capacity(events.len());
        let (mut stored, mut generated_id) = (0, String::with_capacity(33));
        let site_hosts = website.site_hosts();
        // By reference: moving each packed page view out of the list was a copy of its size.
        for (event, &place) in events.iter().zip(&places) {
            let p = match event {
                Packed::Pageview(p) => p,
                Packed::Other(i) => {
                    let Some(event) = others[*i].take() else {
                        continue;
                    };
                    match enrich(event, website, state) {
                        Ok(Outcome::Stored(row)) => {
                            rows.append(&row.as_row());
                            stored += 1;
                        }
                        Ok(Outcome::Duplicate) => report.duplicates += 1,
                        Err(err) => report.rejected.push((place, err)),
                    }
                    continue;
                }
            };
            let hostname = text.get(p.hostname);
            let names = &mut state.referrer_names;
            let assigned = state.sessions.assign_key(p.key(text), || {
                let mut attrs = p.attrs(text);
                classify_referrer(&mut attrs, hostname, &site_hosts, names);
                attrs
            });
            let event_id = match text.get(p.event_id) {
                Some(id) => id,
                None => {
                    state.next_event_seq += 1;
                    generated_id.clear();
                    push_event_id(&mut generated_id, p.ts_us, state.next_event_seq);
                    &generated_id
                }
            };
            rows.append(&RowRef {
                website_id: &site,
                ts_us: p.ts_us,
                kind: kind::PAGEVIEW,
                visitor_id: text.get(p.visitor_id).unwrap_or_default(),
                session_id: &assigned.session_id,
                event_id,
                hostname,
                path: text.get(p.path),
                attrs: &assigned.attrs,
                viewport_w: p.viewport_w,
                viewport_h: p.viewport_h,
                goal_name: None,
                goal_metadata: None,
                payment: None,
                customer_email: None,
                customer_name: None,
                customer_id: None,
            });
            stored += 1;
        }
        if stored == 0 {
            return Ok(None);
        }
        rows.finish().map(Some)
    }
}

/// The text of a [`PackedEvents`], read by span.
#[derive(Clone, Copy)]
struct Text<'a>(&'a str);

impl<'a> Text<'a> {
    fn get(self, span: Span) -> Option<&'a str> {
        if span.len == Span::NONE.len {
            return None;
        }
        let start = span.start as usize;
        self.0.get(start..start + span.len as usize)
    }
}

impl Pageview {
    fn key<'a>(&self, text: Text<'a>) -> EventKey<'a> {
        EventKey {
            visitor_id: text.get(self.visitor_id).unwrap_or_default(),
            session_id: text.get(self.session_id),
            ts_us: self.ts_us,
            is_pageview: true,
        }
    }

    /// Its own session attributes, as sent (not classified yet).
    fn attrs(&self, text: Text<'_>) -> SessionAttrs {
        let mut attrs = SessionAttrs::default();
        for (span, attr) in self.text_attrs.iter().zip(&ATTRS) {
            if let AttrValue::Text { field_mut, .. } = attr.value {
                *field_mut(&mut attrs) = text.get(*span).map(CompactString::from);
            }
        }
        for (value, attr) in self.float_attrs.iter().zip(float_attr_list()) {
            if let AttrValue::Float { field_mut, .. } = attr.value {
                *field_mut(&mut attrs) = *value;
            }
        }
        attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_float_attribute_has_its_place() {
        assert_eq!(float_attr_list().count(), FLOAT_ATTRS);
    }
}

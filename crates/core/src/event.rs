//! Events as the engine receives them: [`Event`], its [`EventKind`], and validation.
//!
//! An event is one page view, one custom goal completion or one payment of one visitor on one
//! website. Session attributes (where the visit came from, where the visitor is, what they use)
//! travel in [`SessionAttrs`]; at ingest the engine replaces them with the attributes of the
//! session's landing page (DESIGN §3), so what a caller sends on a goal or a payment is only a
//! fallback.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted identifier (website, visitor, session, transaction, event ids).
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted goal name, as the DataFast API documents.
pub const MAX_GOAL_NAME_LEN: usize = 64;
/// Most metadata properties on one goal, as the DataFast API documents.
pub const MAX_GOAL_METADATA: usize = 10;
/// Longest accepted metadata property name.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// Longest accepted metadata property value.
pub const MAX_METADATA_VALUE_LEN: usize = 255;
/// Most properties on one `identify` event.
pub const MAX_IDENTIFY_PROPERTIES: usize = 20;
/// Longest accepted URL or free-text identity field.
pub const MAX_URL_LEN: usize = 2048;
/// The transaction id of a payment reported by the tracker (the browser) is the provider's id
/// under this prefix, so that it can never take the place of the payment the provider's
/// server reports with the bare id (`POST /payments`), which supersedes it.
pub const TRACKER_TRANSACTION_PREFIX: &str = "tracker:";

/// Longest region, city, browser, OS, version or device name, in characters.
pub const MAX_ATTR_LEN: usize = 255;

/// One tracked event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The website the event belongs to.
    pub website_id: String,
    /// When it happened (UTC; stored with microsecond precision).
    pub ts: DateTime<Utc>,
    /// The visitor's stable id (the tracker's `datafast_visitor_id`).
    pub visitor_id: String,
    /// The tracker's session id; derived at ingest when absent (30 minutes of inactivity).
    pub session_id: Option<String>,
    /// A caller-chosen unique id; generated at ingest when absent.
    pub event_id: Option<String>,
    /// What happened, with the data that only that kind carries.
    pub kind: EventKind,
    /// Hostname of the page (page views only).
    pub hostname: Option<String>,
    /// Path of the page, without query string (page views only).
    pub path: Option<String>,
    /// Viewport width in CSS pixels.
    pub viewport_width: Option<u32>,
    /// Viewport height in CSS pixels.
    pub viewport_height: Option<u32>,
    /// Where the visit came from and who the visitor is; see the module docs.
    pub attrs: SessionAttrs,
}

/// The kind of an event and the data that only that kind carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKind {
    /// A page view.
    Pageview,
    /// A custom goal completion.
    Goal {
        /// Goal name: lowercase letters, digits, `_` and `-`, at most 64 characters.
        name: String,
        /// Up to 10 string properties.
        metadata: BTreeMap<String, String>,
    },
    /// A payment, refund or renewal.
    Payment(Payment),
    /// The tracker's `identify` call: the visitor is a known user of the site.
    Identify(Identity),
    /// A click on a link that leaves the site (the tracker's `external_link`).
    #[serde(rename = "external_link")]
    ExternalLink {
        /// Where the link goes.
        url: String,
        /// The link's text, when the tracker sent it.
        text: Option<String>,
    },
}

/// The user an `identify` event names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The site's own id for the user.
    pub user_id: String,
    /// Display name, when given.
    pub name: Option<String>,
    /// Email, when given.
    pub email: Option<String>,
    /// Avatar URL, when given.
    pub image: Option<String>,
    /// Other properties the site sent, as strings.
    pub properties: BTreeMap<String, String>,
}

/// The payment part of a payment event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// Amount in `currency` (converted to the website currency at ingest).
    pub amount: f64,
    /// ISO 4217 code, upper case (`USD`).
    pub currency: String,
    /// The payment provider's id; a repeat of a known id is ignored.
    pub transaction_id: String,
    /// A recurring payment.
    pub renewal: bool,
    /// A refunded payment.
    pub refunded: bool,
    /// Customer email, when known.
    pub email: Option<String>,
    /// Customer name, when known.
    pub name: Option<String>,
    /// The payment provider's customer id.
    pub customer_id: Option<String>,
}

/// Attributes of a session, copied from its landing page onto every event of the session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionAttrs {
    /// Raw referrer host (`www.google.com`), `None` for direct or same-site traffic.
    pub referrer: Option<CompactString>,
    /// Classified referrer name (`Google`, `X`, `news.ycombinator.com`, `Direct/None`).
    /// Filled in at ingest from `referrer`.
    pub referrer_name: Option<CompactString>,
    /// `utm_source` of the landing page URL.
    pub utm_source: Option<CompactString>,
    /// `utm_medium` of the landing page URL.
    pub utm_medium: Option<CompactString>,
    /// `utm_campaign` of the landing page URL.
    pub utm_campaign: Option<CompactString>,
    /// `utm_term` of the landing page URL.
    pub utm_term: Option<CompactString>,
    /// `utm_content` of the landing page URL.
    pub utm_content: Option<CompactString>,
    /// `ref` of the landing page URL.
    pub ref_: Option<CompactString>,
    /// `source` of the landing page URL.
    pub source: Option<CompactString>,
    /// `via` of the landing page URL.
    pub via: Option<CompactString>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country_code: Option<CompactString>,
    /// Region or state name.
    pub region: Option<CompactString>,
    /// The region's ISO 3166-2 subdivision code (`US-CO`), shown by the realtime map and the
    /// visitor profile.
    pub region_code: Option<CompactString>,
    /// City name.
    pub city: Option<CompactString>,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
    /// Browser name (`Chrome`).
    pub browser: Option<CompactString>,
    /// Browser version.
    pub browser_version: Option<CompactString>,
    /// Operating system name (`Mac OS`).
    pub os: Option<CompactString>,
    /// Operating system version.
    pub os_version: Option<CompactString>,
    /// `desktop`, `mobile` or `tablet`.
    pub device: Option<CompactString>,
    /// Device vendor (`Apple`).
    pub device_vendor: Option<CompactString>,
    /// Device model (`Macintosh`).
    pub device_model: Option<CompactString>,
}

/// Device types the engine accepts.
pub const DEVICE_TYPES: [&str; 3] = ["desktop", "mobile", "tablet"];

impl EventKind {
    /// The stored name of the kind (a value of [`crate::schema::kind`]).
    pub fn name(&self) -> &'static str {
        use crate::schema::kind;
        match self {
            EventKind::Pageview => kind::PAGEVIEW,
            EventKind::Goal { .. } => kind::GOAL,
            EventKind::Payment(_) => kind::PAYMENT,
            EventKind::Identify(_) => kind::IDENTIFY,
            EventKind::ExternalLink { .. } => kind::EXTERNAL_LINK,
        }
    }
}

/// Events that passed [`Event::validate`], in their order, each with its place in the list
/// [`ValidEvents::check`] was given. Only `check` makes one, so
/// [`crate::PackedEvents::pack`] and [`crate::Engine::ingest_packed`] take them without
/// validating again: a caller that parses on one thread and ingests on another validates on
/// the parsing one.
#[derive(Debug, Default)]
pub struct ValidEvents {
    events: Vec<Event>,
    places: Vec<usize>,
}

impl ValidEvents {
    /// The valid events of `events`, in order, and the place and reason of each invalid one
    /// (ascending).
    pub fn check(mut events: Vec<Event>) -> (ValidEvents, Vec<(usize, Error)>) {
        let mut refused = Vec::new();
        let mut places = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            match e.validate() {
                Ok(()) => places.push(i),
                Err(err) => refused.push((i, err)),
            }
        }
        if !refused.is_empty() {
            let mut kept = places.iter().peekable();
            let mut i = 0;
            events.retain(|_| {
                let keep = kept.next_if_eq(&&i).is_some();
                i += 1;
                keep
            });
        }
        (ValidEvents { events, places }, refused)
    }

    /// How many events there are.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, and the place of each in the list that was checked.
    pub(crate) fn into_parts(self) -> (Vec<Event>, Vec<usize>) {
        (self.events, self.places)
    }
}

impl Event {
    /// An event of `kind` without a page and with empty session attributes (a goal or payment
    /// sent by a server).
    pub fn new(
        website_id: impl Into<String>,
        visitor_id: impl Into<String>,
        ts: DateTime<Utc>,
        kind: EventKind,
    ) -> Self {
        Event {
            website_id: website_id.into(),
            ts,
            visitor_id: visitor_id.into(),
            session_id: None,
            event_id: None,
            kind,
            hostname: None,
            path: None,
            viewport_width: None,
            viewport_height: None,
            attrs: SessionAttrs::default(),
        }
    }

    /// A page view of `url_path` on `hostname` with empty session attributes.
    pub fn pageview(
        website_id: impl Into<String>,
        visitor_id: impl Into<String>,
        ts: DateTime<Utc>,
        hostname: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        Event {
            hostname: Some(hostname.into()),
            path: Some(path.into()),
            ..Event::new(website_id, visitor_id, ts, EventKind::Pageview)
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_ids_and_time(
            &self.website_id,
            &self.visitor_id,
            self.session_id.as_deref(),
            self.event_id.as_deref(),
            self.ts,
        )?;
        match &self.kind {
            EventKind::Pageview => check_pageview_path(self.path.as_deref())?,
            EventKind::Goal { name, metadata } => {
                check_goal_name(name)?;
                check_goal_metadata(metadata)?;
            }
            EventKind::Payment(p) => p.validate()?,
            EventKind::Identify(i) => i.validate()?,
            EventKind::ExternalLink { url, text } => {
                check_text("url", url, MAX_URL_LEN)?;
                if let Some(t) = text {
                    check_text("text", t, MAX_METADATA_VALUE_LEN)?;
                }
            }
        }
        check_page_and_attrs(self.hostname.as_deref(), self.path.as_deref(), &self.attrs)
    }

    /// The event's fields borrowed, when it is a page view.
    pub(crate) fn as_pageview(&self) -> Option<PageviewRef<'_>> {
        matches!(self.kind, EventKind::Pageview).then(|| PageviewRef {
            website_id: &self.website_id,
            ts: self.ts,
            visitor_id: &self.visitor_id,
            session_id: self.session_id.as_deref(),
            event_id: self.event_id.as_deref(),
            hostname: self.hostname.as_deref(),
            path: self.path.as_deref(),
            viewport_width: self.viewport_width,
            viewport_height: self.viewport_height,
            attrs: &self.attrs,
        })
    }
}

/// A page view's fields, borrowed: an [`Event`] of kind [`EventKind::Pageview`] without the
/// event that owns them. The import's parser reads them straight from the line and packs them
/// ([`crate::PackedEvents::push_pageview`]), so a page view costs no allocation of its own.
#[derive(Debug, Clone, Copy)]
pub struct PageviewRef<'a> {
    /// [`Event::website_id`].
    pub website_id: &'a str,
    /// [`Event::ts`].
    pub ts: DateTime<Utc>,
    /// [`Event::visitor_id`].
    pub visitor_id: &'a str,
    /// [`Event::session_id`].
    pub session_id: Option<&'a str>,
    /// [`Event::event_id`].
    pub event_id: Option<&'a str>,
    /// [`Event::hostname`].
    pub hostname: Option<&'a str>,
    /// [`Event::path`].
    pub path: Option<&'a str>,
    /// [`Event::viewport_width`].
    pub viewport_width: Option<u32>,
    /// [`Event::viewport_height`].
    pub viewport_height: Option<u32>,
    /// [`Event::attrs`].
    pub attrs: &'a SessionAttrs,
}

impl PageviewRef<'_> {
    /// The page view as an [`Event`] that owns its fields.
    pub fn to_event(&self) -> Event {
        Event {
            website_id: self.website_id.to_owned(),
            ts: self.ts,
            visitor_id: self.visitor_id.to_owned(),
            session_id: self.session_id.map(str::to_owned),
            event_id: self.event_id.map(str::to_owned),
            kind: EventKind::Pageview,
            hostname: self.hostname.map(str::to_owned),
            path: self.path.map(str::to_owned),
            viewport_width: self.viewport_width,
            viewport_height: self.viewport_height,
            attrs: self.attrs.clone(),
        }
    }

    /// [`Event::validate`] of the page view: the same checks, in the same order.
    pub fn validate(&self) -> Result<()> {
        check_ids_and_time(
            self.website_id,
            self.visitor_id,
            self.session_id,
            self.event_id,
            self.ts,
        )?;
        check_pageview_path(self.path)?;
        check_page_and_attrs(self.hostname, self.path, self.attrs)
    }

    /// [`PageviewRef::validate`], sped up for the usual page view by what the caller knows:
    /// `text_checked` says that every text field but `website_id` is printable ASCII and each
    /// attribute within its bound in bytes. Then only the checks that text cannot settle run;
    /// whatever they find, or when the text is not known good, the full validation runs, so the
    /// answer and its message are always those of [`PageviewRef::validate`].
    pub(crate) fn validate_checked_text(&self, text_checked: bool) -> Result<()> {
        let bounded = |s: Option<&str>, max: usize| s.is_none_or(|s| s.len() <= max);
        let nonempty_id =
            |s: Option<&str>| s.is_none_or(|s| !s.is_empty() && s.len() <= MAX_ID_LEN);
        let quick = text_checked
            && check_id("website_id", self.website_id).is_ok()
            && nonempty_id(Some(self.visitor_id))
            && nonempty_id(self.session_id)
            && nonempty_id(self.event_id)
            && crate::query::time::check_timestamp("timestamp", self.ts).is_ok()
            && check_pageview_path(self.path).is_ok()
            && bounded(self.hostname, crate::referrer::MAX_HOST_LEN)
            && bounded(self.path, MAX_URL_LEN)
            && check_attr_values(self.attrs).is_ok();
        if quick { Ok(()) } else { self.validate() }
    }
}

/// The checks every event starts with: its ids and its time.
fn check_ids_and_time(
    website_id: &str,
    visitor_id: &str,
    session_id: Option<&str>,
    event_id: Option<&str>,
    ts: DateTime<Utc>,
) -> Result<()> {
    check_id("website_id", website_id)?;
    check_id("visitor_id", visitor_id)?;
    if let Some(s) = session_id {
        check_id("session_id", s)?;
    }
    if let Some(s) = event_id {
        check_id("event_id", s)?;
    }
    crate::query::time::check_timestamp("timestamp", ts)
}

/// The session attributes that are not free text: device type, country code, coordinates.
fn check_attr_values(a: &SessionAttrs) -> Result<()> {
    if let Some(d) = &a.device
        && !DEVICE_TYPES.contains(&d.as_str())
    {
        return Err(Error::invalid(
            "device",
            format!("`{d}` is not one of desktop, mobile, tablet"),
        ));
    }
    if let Some(c) = &a.country_code
        && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(Error::invalid(
            "country",
            format!("`{c}` is not an ISO 3166-1 alpha-2 code"),
        ));
    }
    check_coordinate("latitude", a.latitude, 90.0)?;
    check_coordinate("longitude", a.longitude, 180.0)?;
    Ok(())
}

/// A page view is of a page: its URL had a path.
fn check_pageview_path(path: Option<&str>) -> Result<()> {
    if path.is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "url",
            "a pageview needs a page URL with a path",
        ));
    }
    Ok(())
}

/// The checks every event ends with: its session attributes, then every stored text within
/// its bound, so that no field can make an event (and what is kept per visitor or per value)
/// arbitrarily large.
fn check_page_and_attrs(
    hostname: Option<&str>,
    path: Option<&str>,
    a: &SessionAttrs,
) -> Result<()> {
    check_attr_values(a)?;
    let page = [
        ("hostname", hostname, crate::referrer::MAX_HOST_LEN),
        ("url", path, MAX_URL_LEN),
    ];
    for (field, value, max) in page {
        if let Some(v) = value {
            check_text(field, v, max)?;
        }
    }
    for attr in &crate::schema::ATTRS {
        if let crate::schema::AttrValue::Text {
            field, max_chars, ..
        } = attr.value
            && let Some(v) = field(a)
        {
            check_text(attr.column, v, max_chars)?;
        }
    }
    Ok(())
}

impl Payment {
    fn validate(&self) -> Result<()> {
        if !self.amount.is_finite() || self.amount < 0.0 {
            return Err(Error::invalid(
                "amount",
                "must be a finite number, zero or more",
            ));
        }
        if self.amount > 1e12 {
            return Err(Error::invalid("amount", "is larger than 10^12"));
        }
        if !(self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(Error::invalid(
                "currency",
                format!("`{}` is not a three-letter ISO 4217 code", self.currency),
            ));
        }
        check_id("transaction_id", &self.transaction_id)
    }
}

impl Identity {
    fn validate(&self) -> Result<()> {
        check_id("user_id", &self.user_id)?;
        for (field, v) in [
            ("name", &self.name),
            ("email", &self.email),
            ("image", &self.image),
        ] {
            if let Some(v) = v {
                check_text(field, v, MAX_URL_LEN)?;
            }
        }
        if self.properties.len() > MAX_IDENTIFY_PROPERTIES {
            return Err(Error::invalid(
                "properties",
                format!("at most {MAX_IDENTIFY_PROPERTIES} properties"),
            ));
        }
        for (k, v) in &self.properties {
            if k.is_empty() || k.len() > MAX_METADATA_KEY_LEN {
                return Err(Error::invalid(
                    "properties",
                    format!("property name `{k}` must be 1 to {MAX_METADATA_KEY_LEN} bytes"),
                ));
            }
            check_text("properties", v, MAX_METADATA_VALUE_LEN)?;
        }
        Ok(())
    }
}

/// Checks a free-text field: at most `max` characters, no control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    // Nearly every value is short printable ASCII: one pass over the bytes settles it.
    if value.len() <= max && printable_ascii(value) {
        return Ok(());
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks a goal name against the DataFast rule: lowercase letters, digits, `_`, `-`, 1–64 chars.
pub fn check_goal_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_GOAL_NAME_LEN {
        return Err(Error::invalid(
            "name",
            format!("must be 1 to {MAX_GOAL_NAME_LEN} characters"),
        ));
    }
    if !name.bytes().all(is_goal_name_byte) {
        return Err(Error::invalid(
            "name",
            format!("`{name}` may hold only lowercase letters, digits, `_` and `-`"),
        ));
    }
    Ok(())
}

fn check_goal_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_GOAL_METADATA {
        return Err(Error::invalid(
            "metadata",
            format!("at most {MAX_GOAL_METADATA} properties"),
        ));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.len() > MAX_METADATA_KEY_LEN || !k.bytes().all(is_goal_name_byte) {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "property name `{k}` must be 1 to 64 lowercase letters, digits, `_` or `-`"
                ),
            ));
        }
        if v.chars().count() > MAX_METADATA_VALUE_LEN {
            return Err(Error::invalid(
                "metadata",
                format!("value of `{k}` is over 255 characters"),
            ));
        }
    }
    Ok(())
}

fn is_goal_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

fn check_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_ID_LEN} bytes"),
        ));
    }
    if !printable_ascii(id) && id.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Whether every byte of `s` is printable ASCII. Every byte is looked at, with no early exit,
/// so that the compiler checks many at a time: an import checks a dozen fields of every event.
pub(crate) fn printable_ascii(s: &str) -> bool {
    s.bytes()
        .fold(true, |ok, b| ok & (b.wrapping_sub(0x20) < 0x5f))
}

fn check_coordinate(field: &str, value: Option<f64>, bound: f64) -> Result<()> {
    match value {
        Some(v) if !v.is_finite() || v.abs() > bound => Err(Error::invalid(
            field,
            format!("must be between -{bound} and {bound}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_pageview_without_path_names_the_url() {
        let mut e = Event::pageview("w", "v", at("2025-01-01T00:00:00Z"), "a.com", "/");
        e.path = None;
        let err = e.validate().unwrap_err().to_string();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn a_checked_batch_keeps_the_valid_events_in_order_and_names_the_others() {
        let ts = at("2025-01-01T00:00:00Z");
        let events: Vec<Event> = ["v1", "", "v3", "", "v5"]
            .iter()
            .map(|v| Event::pageview("w", *v, ts, "a.com", "/"))
            .collect();
        let (valid, refused) = ValidEvents::check(events);
        let places: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(places, vec![1, 3]);
        assert!(refused[0].1.to_string().contains("visitor_id"));
        let (kept, places) = valid.into_parts();
        let kept: Vec<String> = kept.into_iter().map(|e| e.visitor_id).collect();
        assert_eq!(kept, vec!["v1", "v3", "v5"]);
        assert_eq!(places, vec![0, 2, 4]);
    }

    #[test]
    fn goal_names_follow_the_documented_rule() {
        assert!(check_goal_name("newsletter_signup-2").is_ok());
        for bad in ["", "Signup", "sign up", &"x".repeat(65)] {
            assert!(check_goal_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payments_need_a_sane_amount_and_code() {
        let mut p = Payment {
            amount: 10.0,
            currency: "USD".into(),
            transaction_id: "t".into(),
            renewal: false,
            refunded: false,
            email: None,
            name: None,
            customer_id: None,
        };
        assert!(p.validate().is_ok());
        p.amount = f64::NAN;
        assert!(p.validate().unwrap_err().to_string().contains("amount"));
        p.amount = 1.0;
        p.currency = "usd".into();
        assert!(p.validate().unwrap_err().to_string().contains("currency"));
    }

    #[test]
    fn unknown_device_is_rejected() {
        let mut e = Event::pageview("w", "v", at("2025-01-01T00:00:00Z"), "a.com", "/");
        e.attrs.device = Some("fridge".into());
        assert!(e.validate().unwrap_err().to_string().contains("device"));
    }
}

//! The NDJSON import format (DESIGN §3): one JSON event a line.
//!
//! [`parse_line`] turns one line into a validated [`Event`]; [`parse_ndjson`] reads a whole
//! document, keeping the good lines and reporting each bad one with its line number and reason,
//! so that one typo never loses a file's worth of data. A [`LineParser`] parses many lines and
//! remembers the page URLs and referrers it has parsed, since a file repeats them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use quick_cache::unsync::Cache;
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::event::{Event, EventKind, PageviewRef, Payment, SessionAttrs};
use crate::packed::PackedEvents;

/// One line as it appears in the file; every field optional so that a missing one gets an
/// error that names it rather than a serde message. Fields that are only read (parsed, matched
/// or rewritten) borrow from the line instead of being copied out of it ([`line_str`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "line_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    website_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    visitor_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    url: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    referrer: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    country: Option<Cow<'a, str>>,
    region: Option<CompactString>,
    #[serde(borrow, default, deserialize_with = "line_str")]
    region_code: Option<Cow<'a, str>>,
    city: Option<CompactString>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    browser: Option<CompactString>,
    browser_version: Option<CompactString>,
    os: Option<CompactString>,
    os_version: Option<CompactString>,
    device: Option<CompactString>,
    device_vendor: Option<CompactString>,
    device_model: Option<CompactString>,
    viewport_width: Option<u32>,
    viewport_height: Option<u32>,
    // goal
    name: Option<String>,
    metadata: Option<BTreeMap<String, serde_json::Value>>,
    // payment
    amount: Option<f64>,
    currency: Option<String>,
    transaction_id: Option<String>,
    renewal: Option<bool>,
    refunded: Option<bool>,
    email: Option<String>,
    customer_id: Option<String>,
}

/// An optional string of a line, borrowed from it unless it has escapes. serde borrows into a
/// `Cow<str>` only when that is a field's whole type: inside an `Option` its `Cow` copied every
/// string into a new `String` (7 % of a parsing thread's time, benches/README.md).
fn line_str<'de, D>(deserializer: D) -> std::result::Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct LineStr<'de>(Cow<'de, str>);

    impl<'de> Deserialize<'de> for LineStr<'de> {
        fn deserialize<D>(deserializer: D) -> std::result::Result<Self, D::Error>
        where
            D: serde::Deserializer<'de>,
        {
            deserializer.deserialize_str(LineStrVisitor).map(LineStr)
        }
    }

    struct LineStrVisitor;

    impl<'de> serde::de::Visitor<'de> for LineStrVisitor {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    Ok(Option::<LineStr<'de>>::deserialize(deserializer)?.map(|s| s.0))
}

/// A line that could not be imported.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLine {
    /// 1-based line number in the input.
    pub line: usize,
    /// Why it was rejected (names the field).
    pub reason: String,
}

/// The outcome of reading an NDJSON document.
#[derive(Debug, Default)]
pub struct ParsedNdjson {
    /// The events of the good lines, in input order.
    pub events: Vec<Event>,
    /// The bad lines.
    pub rejected: Vec<RejectedLine>,
}

/// Reads every non-blank line of `text`; `website_id` is used for lines that do not name one.
pub fn parse_ndjson(text: &str, website_id: Option<&str>) -> ParsedNdjson {
    let mut out = ParsedNdjson::default();
    let mut parser = LineParser::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parser
            .parse_event(line, website_id)
            .and_then(|e| e.validate().map(|()| e))
        {
            Ok(e) => out.events.push(e),
            Err(e) => out.rejected.push(RejectedLine {
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    out
}

/// Parses and validates one line.
pub fn parse_line(line: &str, website_id: Option<&str>) -> Result<Event> {
    let event = parse_event(line, website_id)?;
    event.validate()?;
    Ok(event)
}

/// Parses one line without [`Event::validate`], for a caller that validates a whole batch at
/// once ([`crate::ValidEvents::check`]) or hands the events to [`crate::Engine::ingest`] or
/// [`crate::Engine::ingest_bulk`], which validate every event (with the same messages).
pub fn parse_event(line: &str, website_id: Option<&str>) -> Result<Event> {
    LineParser::default().parse_event(line, website_id)
}

/// How many distinct page URLs, and referrers, a [`LineParser`] remembers.
const REMEMBERED_URLS: usize = 4096;

/// Parses lines like [`parse_event`], remembering the parts of the last few thousand distinct
/// page URLs and referrers (a file repeats them, and URL parsing was a sixth of an import's
/// parsing time). Memory stays bounded whatever the input.
pub struct LineParser {
    pages: Cache<String, PageParts>,
    /// The last page URL's parts when `pages` did not take them.
    unremembered_page: Option<PageParts>,
    referrers: Cache<String, Option<CompactString>>,
}

impl Default for LineParser {
    fn default() -> Self {
        Self {
            pages: Cache::new(REMEMBERED_URLS),
            unremembered_page: None,
            referrers: Cache::new(REMEMBERED_URLS),
        }
    }
}

/// What an event keeps of its page URL.
struct PageParts {
    hostname: String,
    path: String,
    campaign: Campaign,
}

/// A line read by a [`LineParser`]: its strings still borrowed from the line, or from the
/// parser's remembered page URLs.
struct LineFields<'s> {
    website_id: Cow<'s, str>,
    ts: DateTime<Utc>,
    visitor_id: Cow<'s, str>,
    session_id: Option<Cow<'s, str>>,
    event_id: Option<Cow<'s, str>>,
    kind: EventKind,
    page: Option<&'s PageParts>,
    viewport_width: Option<u32>,
    viewport_height: Option<u32>,
    attrs: SessionAttrs,
}

impl LineFields<'_> {
    fn into_event(self) -> Event {
        Event {
            website_id: self.website_id.into_owned(),
            ts: self.ts,
            visitor_id: self.visitor_id.into_owned(),
            session_id: self.session_id.map(Cow::into_owned),
            event_id: self.event_id.map(Cow::into_owned),
            kind: self.kind,
            hostname: self.page.map(|p| p.hostname.clone()),
            path: self.page.map(|p| p.path.clone()),
            viewport_width: self.viewport_width,
            viewport_height: self.viewport_height,
            attrs: self.attrs,
        }
    }

    /// The fields borrowed, when the line is a page view.
    fn as_pageview(&self) -> Option<PageviewRef<'_>> {
        matches!(self.kind, EventKind::Pageview).then(|| PageviewRef {
            website_id: &self.website_id,
            ts: self.ts,
            visitor_id: &self.visitor_id,
            session_id: self.session_id.as_deref(),
            event_id: self.event_id.as_deref(),
            hostname: self.page.map(|p| p.hostname.as_str()),
            path: self.page.map(|p| p.path.as_str()),
            viewport_width: self.viewport_width,
            viewport_height: self.viewport_height,
            attrs: &self.attrs,
        })
    }
}

impl LineParser {
    /// [`parse_event`], with the page URL and referrer parsed once per distinct value.
    pub fn parse_event(&mut self, line: &str, website_id: Option<&str>) -> Result<Event> {
        self.read(line, website_id).map(LineFields::into_event)
    }

    /// Parses `line`, an event of website `website` (or of no website named), and adds it to
    /// `packed` as the event at `place` ([`PackedEvents::push`]). A page view goes in straight
    /// from the line's text, without an [`Event`] built and freed on the way: the same checks
    /// and the same packed event as [`LineParser::parse_event`] and then `push`.
    pub fn parse_into(
        &mut self,
        line: &str,
        website: &str,
        packed: &mut PackedEvents,
        place: usize,
    ) -> Result<()> {
        let fields = self.read(line, Some(website))?;
        if fields.website_id != website {
            let why = format!("`{}` is not the imported website", fields.website_id);
            return Err(Error::invalid("website_id", why));
        }
        match fields.as_pageview() {
            Some(view) => packed.push_pageview(view, place),
            None => packed.push(fields.into_event(), place),
        }
    }

    /// Reads one line's fields; see [`parse_event`].
    fn read<'s>(
        &'s mut self,
        line: &'s str,
        website_id: Option<&'s str>,
    ) -> Result<LineFields<'s>> {
        // Read in place: a line's struct is large (680 bytes), and returning it by value
        // copied it three times on the way.
        let mut l = Line::default();
        let mut de = serde_json::Deserializer::from_str(line);
        Line::deserialize_in_place(&mut de, &mut l)
            .and_then(|()| de.end())
            .map_err(|e| Error::invalid("line", e.to_string()))?;
        let website_id = l
            .website_id
            .take()
            .or_else(|| website_id.map(Cow::Borrowed))
            .ok_or_else(|| {
                Error::invalid(
                    "website_id",
                    "missing, and no website was given for the import",
                )
            })?;
        let kind_name = l
            .kind
            .as_deref()
            .ok_or_else(|| Error::invalid("type", "missing"))?;
        let ts = parse_timestamp(
            l.timestamp
                .as_deref()
                .ok_or_else(|| Error::invalid("timestamp", "missing"))?,
        )?;
        let visitor_id = l
            .visitor_id
            .take()
            .ok_or_else(|| Error::invalid("visitor_id", "missing"))?;
        let kind = match kind_name {
            "pageview" => EventKind::Pageview,
            "goal" => EventKind::Goal {
                name: l
                    .name
                    .take()
                    .ok_or_else(|| Error::invalid("name", "missing (a goal needs a name)"))?,
                metadata: metadata_strings(l.metadata.take().unwrap_or_default()),
            },
            "payment" => EventKind::Payment(Payment {
                amount: l.amount.ok_or_else(|| {
                    Error::invalid("amount", "missing (a payment needs an amount)")
                })?,
                currency: l
                    .currency
                    .take()
                    .ok_or_else(|| Error::invalid("currency", "missing"))?,
                transaction_id: l
                    .transaction_id
                    .take()
                    .ok_or_else(|| Error::invalid("transaction_id", "missing"))?,
                renewal: l.renewal.unwrap_or(false),
                refunded: l.refunded.unwrap_or(false),
                email: l.email.take(),
                name: l.name.take(),
                customer_id: l.customer_id.take(),
            }),
            other => {
                return Err(Error::invalid(
                    "type",
                    format!("`{other}` is not pageview, goal or payment"),
                ));
            }
        };
        let mut attrs = SessionAttrs {
            referrer: l
                .referrer
                .as_deref()
                .and_then(|r| remembered_referrer_host(&mut self.referrers, r)),
            country_code: l.country.as_deref().map(upper),
            region: l.region,
            region_code: l.region_code.as_deref().map(upper),
            city: l.city,
            latitude: l.latitude,
            longitude: l.longitude,
            browser: l.browser,
            browser_version: l.browser_version,
            os: l.os,
            os_version: l.os_version,
            device: l.device,
            device_vendor: l.device_vendor,
            device_model: l.device_model,
            ..SessionAttrs::default()
        };
        let page = match l.url.as_deref() {
            Some(u) => {
                let page = remembered_page(&mut self.pages, &mut self.unremembered_page, u)?;
                // `attrs` has no campaign yet: a URL without one leaves it so.
                if page.campaign.0.iter().any(Option::is_some) {
                    page.campaign.set(&mut attrs);
                }
                Some(page)
            }
            None => None,
        };
        Ok(LineFields {
            website_id,
            ts,
            visitor_id,
            session_id: l.session_id,
            event_id: l.event_id,
            kind,
            page,
            viewport_width: l.viewport_width,
            viewport_height: l.viewport_height,
            attrs,
        })
    }
}

/// The parts of page URL `u`, parsed once while remembered in `pages` (or kept in `spare`
/// when the cache does not take it).
fn remembered_page<'c>(
    pages: &'c mut Cache<String, PageParts>,
    spare: &'c mut Option<PageParts>,
    u: &str,
) -> Result<&'c PageParts> {
    let parse = || {
        let page = parse_page_url(u)?;
        Ok::<_, Error>(PageParts {
            campaign: Campaign::of(&page),
            hostname: page.hostname,
            path: page.path,
        })
    };
    match pages.get_or_insert_with(u, parse)? {
        Some(parts) => Ok(parts),
        None => Ok(spare.insert(parse()?)),
    }
}

/// [`referrer_host`] of `r`, parsed once while remembered in `referrers`.
fn remembered_referrer_host(
    referrers: &mut Cache<String, Option<CompactString>>,
    r: &str,
) -> Option<CompactString> {
    if let Some(h) = referrers.get(r) {
        return h.clone();
    }
    let host = referrer_host(r).map(CompactString::from);
    referrers.insert(r.to_owned(), host.clone());
    host
}

/// An RFC 3339 timestamp with offset (`2025-04-11T03:38:49.154Z`).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::invalid(
                "timestamp",
                format!("`{s}` is not an RFC 3339 date-time: {e}"),
            )
        })
}

/// A page URL split into the parts the engine stores.
#[derive(Debug, Clone, PartialEq)]
pub struct PageUrl {
    /// Lower-case host without port.
    pub hostname: String,
    /// Path, `/` at least, without query or fragment.
    pub path: String,
    /// Query parameters in order.
    pub query: Vec<(String, String)>,
}

impl PageUrl {
    /// The first non-empty value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// Copies the campaign parameters (UTM fields, `ref`, `source`, `via`) into `attrs`.
    pub fn set_campaign(&self, attrs: &mut SessionAttrs) {
        Campaign::of(self).set(attrs);
    }
}

/// The query parameters a session takes its campaign from, in [`Campaign`]'s order.
const CAMPAIGN_PARAMS: [&str; 8] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "ref",
    "source",
    "via",
];

/// The campaign parameters of a page URL.
#[derive(Clone)]
struct Campaign([Option<CompactString>; 8]);

impl Campaign {
    fn of(page: &PageUrl) -> Self {
        Self(CAMPAIGN_PARAMS.map(|key| {
            page.query
                .iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| CompactString::from(v.as_str()))
        }))
    }

    fn set(&self, attrs: &mut SessionAttrs) {
        let [
            utm_source,
            utm_medium,
            utm_campaign,
            utm_term,
            utm_content,
            ref_,
            source,
            via,
        ] = self.0.clone();
        attrs.utm_source = utm_source;
        attrs.utm_medium = utm_medium;
        attrs.utm_campaign = utm_campaign;
        attrs.utm_term = utm_term;
        attrs.utm_content = utm_content;
        attrs.ref_ = ref_;
        attrs.source = source;
        attrs.via = via;
    }
}

/// Parses an absolute `http(s)` page URL.
pub fn parse_page_url(s: &str) -> Result<PageUrl> {
    let url = Url::parse(s)
        .map_err(|e| Error::invalid("url", format!("`{s}` is not an absolute URL: {e}")))?;
    let hostname = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::invalid("url", format!("`{s}` has no host")))?
        .to_ascii_lowercase();
    let query = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok(PageUrl {
        hostname,
        path: url.path().to_owned(),
        query,
    })
}

/// The host of a referrer URL (or of a bare host name), lower case; `None` when empty or
/// unparseable, which the engine counts as direct traffic.
pub fn referrer_host(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let parsed = Url::parse(s)
        .or_else(|_| Url::parse(&format!("https://{s}")))
        .ok()?;
    parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
}

/// `s` in upper case.
fn upper(s: &str) -> CompactString {
    let mut s = CompactString::from(s);
    // Codes nearly always come in upper case already.
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        s.make_ascii_uppercase();
    }
    s
}

fn metadata_strings(m: BTreeMap<String, serde_json::Value>) -> BTreeMap<String, String> {
    m.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_strings_are_borrowed_from_it_unless_they_have_escapes() {
        let line =
            r#"{"type":"pageview","visitor_id":"v\"1","url":"https://a.com/","session_id":null}"#;
        let l: Line = serde_json::from_str(line).unwrap();
        assert!(matches!(l.kind, Some(Cow::Borrowed("pageview"))), "{l:?}");
        assert!(
            matches!(l.url, Some(Cow::Borrowed("https://a.com/"))),
            "{l:?}"
        );
        assert!(
            matches!(&l.visitor_id, Some(Cow::Owned(v)) if v == "v\"1"),
            "{l:?}"
        );
        assert!(l.session_id.is_none() && l.timestamp.is_none(), "{l:?}");
        let wrong = serde_json::from_str::<Line>(r#"{"url":5}"#).unwrap_err();
        assert!(wrong.to_string().contains("expected a string"), "{wrong}");
    }

    /// Read in place, a line is refused as serde refuses it whole: a field given twice, a
    /// field of no event, a string where a number goes, text after the object.
    #[test]
    fn a_line_read_in_place_is_refused_where_serde_refuses_it() {
        let mut parser = LineParser::default();
        let base = r#""type":"pageview","timestamp":"2025-01-01T00:00:00Z","visitor_id":"v","url":"https://a.com/""#;
        for (line, why) in [
            (
                format!(r#"{{{base},"url":"https://a.com/b"}}"#),
                "duplicate field `url`",
            ),
            (
                format!(r#"{{{base},"colour":"red"}}"#),
                "unknown field `colour`",
            ),
            (
                format!(r#"{{{base},"viewport_width":"wide"}}"#),
                "invalid type",
            ),
            (format!(r#"{{{base}}} {{}}"#), "trailing characters"),
        ] {
            let err = parser
                .parse_event(&line, Some("w"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{line}: {err}");
            let whole = serde_json::from_str::<Line>(&line).unwrap_err().to_string();
            assert!(err.contains(&whole), "{err} against {whole}");
        }
        assert!(
            parser
                .parse_event(&format!("{{{base}}}"), Some("w"))
                .is_ok()
        );
    }

    #[test]
    fn the_design_example_line_parses() {
        let line = r#"{"type":"pageview","timestamp":"2025-04-11T03:38:49.154Z","visitor_id":"v1","session_id":"s1",
 "url":"https://example.com/blog/a?utm_source=news&ref=indiepage","referrer":"https://www.google.com/",
 "country":"US","region":"California","city":"San Francisco","latitude":37.77,"longitude":-122.42,
 "browser":"Chrome","browser_version":"133.0.0.0","os":"Mac OS","os_version":"10.15.7",
 "device":"desktop","device_vendor":"Apple","device_model":"Macintosh","viewport_width":1728,"viewport_height":998}"#
            .replace('\n', "");
        let e = parse_line(&line, Some("w1")).unwrap();
        assert_eq!(e.website_id, "w1");
        assert_eq!(e.hostname.as_deref(), Some("example.com"));
        assert_eq!(e.path.as_deref(), Some("/blog/a"));
        assert_eq!(e.attrs.utm_source.as_deref(), Some("news"));
        assert_eq!(e.attrs.ref_.as_deref(), Some("indiepage"));
        assert_eq!(e.attrs.referrer.as_deref(), Some("www.google.com"));
        assert_eq!(e.ts.timestamp_millis(), 1_744_342_729_154);
        assert_eq!(e.attrs.region.as_deref(), Some("California"));
        assert_eq!(e.attrs.region_code, None);
        let coded = line.replace(r#""city""#, r#""region_code":"us-ca","city""#);
        let e = parse_line(&coded, Some("w1")).unwrap();
        assert_eq!(e.attrs.region_code.as_deref(), Some("US-CA"));
    }

    #[test]
    fn bad_lines_are_reported_with_their_number_and_field() {
        let text = "{\"type\":\"pageview\",\"timestamp\":\"2025-01-01T00:00:00Z\",\"visitor_id\":\"v\",\"url\":\"https://a.com/\"}\n\
                    \n\
                    {\"type\":\"payment\",\"timestamp\":\"2025-01-01T00:00:00Z\",\"visitor_id\":\"v\",\"currency\":\"USD\",\"transaction_id\":\"t\"}\n\
                    not json\n";
        let parsed = parse_ndjson(text, Some("w"));
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.rejected.len(), 2);
        assert_eq!(parsed.rejected[0].line, 3);
        assert!(
            parsed.rejected[0].reason.contains("amount"),
            "{:?}",
            parsed.rejected[0]
        );
        assert_eq!(parsed.rejected[1].line, 4);
    }

    #[test]
    fn a_line_parser_answers_what_a_fresh_parse_does_and_remembers_a_bounded_number() {
        let line = |url: &str, referrer: &str| {
            format!(
                r#"{{"type":"pageview","timestamp":"2025-01-01T00:00:00Z","visitor_id":"v","url":"{url}","referrer":"{referrer}"}}"#
            )
        };
        let lines = [
            line("https://a.com/x?utm_source=news&ref=p", "google.com"),
            line("https://a.com/x", "https://Google.com/search"),
            line("https://a.com/x?utm_source=news&ref=p", "google.com"),
            line("https://B.com/y?via=z&utm_medium=", ""),
            line("not a url", "google.com"),
            line("https://a.com/x", "https://Google.com/search"),
        ];
        let mut parser = LineParser::default();
        for l in &lines {
            let remembered = parser.parse_event(l, Some("w")).map_err(|e| e.to_string());
            let fresh = parse_event(l, Some("w")).map_err(|e| e.to_string());
            assert_eq!(remembered, fresh, "{l}");
        }
        for i in 0..3 * REMEMBERED_URLS {
            let url = format!("https://a.com/{i}");
            parser.parse_event(&line(&url, &url), Some("w")).unwrap();
        }
        assert!(parser.pages.len() <= REMEMBERED_URLS);
        assert!(parser.referrers.len() <= REMEMBERED_URLS);
    }

    /// What `lines` become through [`LineParser::parse_into`], and through
    /// [`LineParser::parse_event`] then [`PackedEvents::push`]: each line's outcome, then the
    /// packed events.
    fn both_ways(lines: &[String]) -> [(Vec<Result<(), String>>, String); 2] {
        let (mut direct, mut via_event) = (LineParser::default(), LineParser::default());
        let mut packed = [PackedEvents::new("w", 0), PackedEvents::new("w", 0)];
        let mut outcomes = [Vec::new(), Vec::new()];
        for (place, line) in lines.iter().enumerate() {
            let [a, b] = &mut packed;
            let got = direct.parse_into(line, "w", a, place);
            outcomes[0].push(got.map_err(|e| e.to_string()));
            let got = via_event.parse_event(line, Some("w")).and_then(|e| {
                if e.website_id != "w" {
                    let why = format!("`{}` is not the imported website", e.website_id);
                    return Err(Error::invalid("website_id", why));
                }
                b.push(e, place)
            });
            outcomes[1].push(got.map_err(|e| e.to_string()));
        }
        let [o0, o1] = outcomes;
        let [p0, p1] = packed;
        [(o0, format!("{p0:?}")), (o1, format!("{p1:?}"))]
    }

    #[test]
    fn a_line_packed_straight_from_its_text_is_what_its_event_packs_to() {
        let base = r#"{"type":"pageview","timestamp":"2025-01-01T00:00:00Z","visitor_id":"v1","url":"https://a.com/x?utm_source=news&via=p","referrer":"https://Google.com/","country":"us","region_code":"us-ny","device":"mobile","latitude":40.7,"longitude":-74.0,"viewport_width":390}"#;
        let mut lines: Vec<String> = vec![
            base.to_owned(),
            base.replace(r#""v1""#, r#""v\u0031\n""#),
            base.replace(r#""v1""#, r#""\u0076\u0031""#),
            base.replace(r#""visitor_id":"v1","#, ""),
            base.replace(
                r#""visitor_id":"v1""#,
                r#""visitor_id":"v1","website_id":"other""#,
            ),
            base.replace(
                r#""visitor_id":"v1""#,
                r#""visitor_id":"v1","website_id":"w""#,
            ),
            base.replace(
                r#""visitor_id":"v1""#,
                r#""visitor_id":"v1","session_id":"s","event_id":"e""#,
            ),
            base.replace(r#""visitor_id":"v1""#, r#""visitor_id":"v1","event_id":"""#),
            base.replace("mobile", "fridge"),
            base.replace(r#""us""#, r#""usa""#),
            base.replace("40.7", "91"),
            base.replace("https://a.com/x", "https://a.com"),
            base.replace("https://a.com/x", "not a url"),
            base.replace("2025-01-01T00:00:00Z", "1900-01-01T00:00:00Z"),
            base.replace(
                r#""region_code":"us-ny""#,
                &format!(r#""city":"{}""#, "c".repeat(300)),
            ),
            base.replace(r#""device""#, r#""city":"São Paulo","device""#),
            base.replace(r#""device""#, r#""city":"Sa\u0001o","device""#),
            base.replace(r#""device""#, r#""os":"\u0000","device""#),
            base.replace("https://a.com/x", r"https://a.com/caf\u00e9"),
            base.replace("pageview", "goal"),
            base.replace(
                r#""pageview""#,
                r#""goal","name":"signup","metadata":{"plan":"pro","n":2}"#,
            ),
            base.replace(
                r#""pageview""#,
                r#""payment","amount":9.5,"currency":"USD","transaction_id":"t1""#,
            ),
            base.replace(r#""pageview""#, r#""click""#),
            base.replace(r#""device":"mobile","#, r#""colour":"red","#),
            "not json".to_owned(),
        ];
        for e in crate::synthetic::events(400, 7) {
            lines.push(crate::synthetic::ndjson_line(&e).to_string());
        }
        let [direct, via_event] = both_ways(&lines);
        assert_eq!(direct.0, via_event.0);
        assert_eq!(direct.1, via_event.1);
        let accepted = direct.0.iter().filter(|o| o.is_ok()).count();
        assert!(
            accepted > 400 && accepted < lines.len(),
            "{accepted} of {}",
            lines.len()
        );
        assert!(
            direct.0[4]
                .as_ref()
                .unwrap_err()
                .contains("not the imported website")
        );
    }

    #[test]
    fn referrer_hosts_accept_urls_and_bare_hosts() {
        assert_eq!(
            referrer_host("https://News.YCombinator.com/item?id=1").as_deref(),
            Some("news.ycombinator.com")
        );
        assert_eq!(referrer_host("google.com").as_deref(), Some("google.com"));
        assert_eq!(referrer_host(""), None);
    }
}

//! Deterministic synthetic traffic: page views, goals and payments of one website with
//! realistic skew (a few pages, countries and referrers take most of the traffic). The benches
//! measure it and `tally serve --demo` shows it. The same arguments always give the same events;
//! [`ndjson_line`] writes one as a line of the import format.

use std::collections::BTreeMap;

use crate::{Event, EventKind, Payment, Website};
use chrono::{DateTime, Duration, Utc};

/// The website the generated events belong to.
pub const WEBSITE: &str = "bench";

/// The generated website: example.com in New York time, USD with a EUR rate.
pub fn website() -> Website {
    let mut w = Website::new(WEBSITE, "example.com");
    w.timezone = "America/New_York".into();
    w.exchange_rates.insert("EUR".into(), 1.1);
    w
}

/// First instant of the generated data.
pub fn start() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap_or_default()
}

/// Version of what the generator produces, raised whenever its output changes, so that the data
/// sets the benches keep on disk (named with it) are made again. 2: a visitor's place and system
/// agree across the slices of a data set.
pub const GENERATION: u32 = 2;

/// Days the generated data spans.
pub const DAYS: i64 = 90;

/// SplitMix64: tiny, fast, and fixed forever, so the data set never changes under the benches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in `0..n`, skewed towards small indices (roughly Zipf-like).
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as usize % n
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const COUNTRIES: [(&str, &str, &str, &str); 10] = [
    ("US", "California", "US-CA", "San Francisco"),
    ("US", "New York", "US-NY", "New York"),
    ("GB", "England", "GB-ENG", "London"),
    ("DE", "Berlin", "DE-BE", "Berlin"),
    ("FR", "Île-de-France", "FR-IDF", "Paris"),
    ("IN", "Karnataka", "IN-KA", "Bengaluru"),
    ("CA", "Ontario", "CA-ON", "Toronto"),
    ("BR", "São Paulo", "BR-SP", "São Paulo"),
    ("JP", "Tokyo", "JP-13", "Tokyo"),
    ("AU", "New South Wales", "AU-NSW", "Sydney"),
];
const SYSTEMS: [(&str, &str, &str); 6] = [
    ("Chrome", "Mac OS", "desktop"),
    ("Safari", "iOS", "mobile"),
    ("Chrome", "Windows", "desktop"),
    ("Chrome", "Android", "mobile"),
    ("Firefox", "Linux", "desktop"),
    ("Safari", "iOS", "tablet"),
];
const REFERRERS: [Option<&str>; 8] = [
    None,
    Some("https://www.google.com/"),
    Some("https://t.co/abc"),
    Some("https://news.ycombinator.com/"),
    Some("https://www.reddit.com/r/rust/"),
    Some("https://www.facebook.com/"),
    Some("https://duckduckgo.com/"),
    Some("https://blog.example.org/post"),
];
const CAMPAIGNS: [&str; 5] = [
    "",
    "?utm_source=news&utm_medium=email&utm_campaign=launch",
    "?ref=indiepage",
    "?via=partner",
    "?utm_source=twitter&utm_campaign=spring",
];
const GOALS: [&str; 5] = [
    "signup",
    "newsletter_signup",
    "faq_open",
    "pricing_click",
    "demo_request",
];

/// `n` events over the [`DAYS`] days from [`start`], in time order, from about `n / 8` visitors
/// (see [`events_between`]).
pub fn events(n: usize, seed: u64) -> Vec<Event> {
    events_between(WEBSITE, start(), DAYS, n, seed)
}

/// `n` events of `website_id` over `days` days from `from`, in time order: visits of one to six
/// page views a few minutes apart (about half of them single-page), some ending in a goal or a
/// payment.
pub fn events_between(
    website_id: &str,
    from: DateTime<Utc>,
    days: i64,
    n: usize,
    seed: u64,
) -> Vec<Event> {
    let span = Duration::days(days.max(1));
    events_in(website_id, from, span, n, (n / 8).max(1) as u64, seed)
}

/// `n` events of `website_id` over `span` from `from`, in time order, from visitors numbered
/// `0..visitors`: the generator of [`events_between`], for data sets built in slices (a slice
/// a few days long each, all drawing on one population of visitors). A visitor's place and
/// system (country, region, city, browser, OS, device) depend only on the visitor's number and
/// `visitors`, so the slices of one data set agree about each visitor.
pub fn events_in(
    website_id: &str,
    from: DateTime<Utc>,
    span: Duration,
    n: usize,
    visitors: u64,
    seed: u64,
) -> Vec<Event> {
    let mut rng = Rng(seed);
    let visitors = visitors.max(1);
    let span_us = span.num_microseconds().unwrap_or(i64::MAX).max(1);
    let mut out = Vec::with_capacity(n + 8);
    let mut visit = 0u64;
    while out.len() < n {
        visit += 1;
        let v = rng.below(visitors);
        // Visitor attributes are a function of the visitor and the population, not of the
        // slice's seed, so that a visitor's visits agree in every slice of one data set.
        let mut vr = Rng(v.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ visitors);
        let (country, region, region_code, city) = COUNTRIES[vr.skewed(COUNTRIES.len())];
        let (browser, os, device) = SYSTEMS[vr.skewed(SYSTEMS.len())];
        let referrer = REFERRERS[rng.skewed(REFERRERS.len())];
        let campaign = CAMPAIGNS[rng.skewed(CAMPAIGNS.len())];
        let mut ts = from + Duration::microseconds(rng.below(span_us as u64) as i64);
        let pages = 1 + rng.skewed(6);
        let new_event = |ts, path: String| {
            let mut e =
                Event::pageview(website_id, format!("visitor-{v}"), ts, "example.com", path);
            e.attrs.country_code = Some(country.into());
            e.attrs.region = Some(region.into());
            e.attrs.region_code = Some(region_code.into());
            e.attrs.city = Some(city.into());
            e.attrs.browser = Some(browser.into());
            e.attrs.os = Some(os.into());
            e.attrs.device = Some(device.into());
            e
        };
        for p in 0..pages {
            let path = match rng.skewed(200) {
                0 => "/".to_owned(),
                1 => "/pricing".to_owned(),
                2 => "/about".to_owned(),
                p => format!("/blog/post-{p}"),
            };
            let mut e = new_event(ts, path);
            if p == 0 {
                // the landing page carries where the visit came from
                if let Ok(url) =
                    crate::import::parse_page_url(&format!("https://example.com/{campaign}"))
                {
                    e.attrs.utm_source = url.param("utm_source").map(Into::into);
                    e.attrs.utm_medium = url.param("utm_medium").map(Into::into);
                    e.attrs.utm_campaign = url.param("utm_campaign").map(Into::into);
                    e.attrs.ref_ = url.param("ref").map(Into::into);
                    e.attrs.via = url.param("via").map(Into::into);
                }
                e.attrs.referrer = referrer
                    .and_then(crate::import::referrer_host)
                    .map(Into::into);
            }
            out.push(e);
            ts += Duration::seconds(30 + rng.below(210) as i64);
        }
        let roll = rng.below(100);
        if roll < 12 {
            let mut e = new_event(ts, String::new());
            (e.hostname, e.path) = (None, None);
            e.kind = EventKind::Goal {
                name: GOALS[rng.skewed(GOALS.len())].into(),
                metadata: BTreeMap::new(),
            };
            out.push(e);
        }
        if roll < 3 {
            let mut e = new_event(ts + Duration::seconds(60), String::new());
            (e.hostname, e.path) = (None, None);
            e.kind = EventKind::Payment(Payment {
                amount: [9.0, 29.0, 99.0, 299.0][rng.skewed(4)],
                currency: if rng.below(5) == 0 {
                    "EUR".into()
                } else {
                    "USD".into()
                },
                transaction_id: format!("tx-{visit}"),
                renewal: rng.below(4) == 0,
                refunded: rng.below(20) == 0,
                email: None,
                name: None,
                customer_id: None,
            });
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.ts);
    out.truncate(n);
    out
}

/// One event as a line of the NDJSON import format (DESIGN §3), without `website_id` (the
/// import names the website).
pub fn ndjson_line(e: &Event) -> serde_json::Value {
    let a = &e.attrs;
    let mut line = serde_json::Map::new();
    let mut set = |k: &str, v: serde_json::Value| {
        if !v.is_null() {
            line.insert(k.to_owned(), v);
        }
    };
    set("timestamp", e.ts.to_rfc3339().into());
    set("visitor_id", e.visitor_id.clone().into());
    set("session_id", e.session_id.clone().into());
    set("event_id", e.event_id.clone().into());
    match &e.kind {
        EventKind::Pageview => set("type", "pageview".into()),
        EventKind::Goal { name, metadata } => {
            set("type", "goal".into());
            set("name", name.clone().into());
            set(
                "metadata",
                serde_json::to_value(metadata).unwrap_or_default(),
            );
        }
        EventKind::Payment(p) => {
            set("type", "payment".into());
            set("amount", p.amount.into());
            set("currency", p.currency.clone().into());
            set("transaction_id", p.transaction_id.clone().into());
            set("renewal", p.renewal.into());
            set("refunded", p.refunded.into());
            set("email", p.email.clone().into());
            set("customer_id", p.customer_id.clone().into());
        }
        other => set(
            "type",
            serde_json::to_value(other).unwrap_or_default()["type"].clone(),
        ),
    }
    if let (Some(host), Some(path)) = (&e.hostname, &e.path) {
        let mut url = format!("https://{host}{path}");
        let query: Vec<String> = [
            ("utm_source", &a.utm_source),
            ("utm_medium", &a.utm_medium),
            ("utm_campaign", &a.utm_campaign),
            ("utm_term", &a.utm_term),
            ("utm_content", &a.utm_content),
            ("ref", &a.ref_),
            ("source", &a.source),
            ("via", &a.via),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        set("url", url.into());
    }
    set("referrer", a.referrer.as_deref().into());
    set("country", a.country_code.as_deref().into());
    set("region", a.region.as_deref().into());
    set("region_code", a.region_code.as_deref().into());
    set("city", a.city.as_deref().into());
    set("browser", a.browser.as_deref().into());
    set("os", a.os.as_deref().into());
    set("device", a.device.as_deref().into());
    serde_json::Value::Object(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_set_is_deterministic_and_valid() {
        let a = events(2000, 7);
        assert_eq!(a, events(2000, 7));
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts));
        for e in &a {
            e.validate().unwrap();
        }
        assert!(a.iter().any(|e| matches!(e.kind, EventKind::Payment(_))));
    }
}

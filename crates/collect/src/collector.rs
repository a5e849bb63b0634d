//! [`Collector`]: one tracker payload plus the request's User-Agent and address in, one
//! validated [`Event`] (or "a bot, dropped") out, with per-website counts of both.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tally_core::event::TRACKER_TRANSACTION_PREFIX;
use tally_core::import::{parse_page_url, referrer_host};
use tally_core::{CompactString, Event, EventKind, Identity, Payment, SessionAttrs, Website};

use crate::agent::AgentParser;
use crate::bot_log::BotLog;
use crate::error::{Error, Result};
use crate::geo::{GeoDb, Location};
use crate::payload::TrackerPayload;

/// What the request itself says about the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The client address (the peer, or the forwarded address behind a trusted proxy).
    pub addr: Option<IpAddr>,
}

/// The result of collecting one payload.
#[derive(Debug)]
pub enum Collected {
    /// An event ready for [`tally_core::Engine::ingest`].
    Event(Box<Event>),
    /// A bot's request: dropped and counted.
    Bot,
}

/// Counts of one website's tracker traffic since the collector started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CollectStats {
    /// Payloads turned into events.
    pub accepted: u64,
    /// Payloads dropped because a bot sent them.
    pub bots: u64,
    /// Payloads refused as invalid or from a domain the website does not allow.
    pub rejected: u64,
}

/// Turns tracker payloads into events. Build one per process: loading the User-Agent rules
/// takes about 130 ms.
#[derive(Debug)]
pub struct Collector {
    agents: AgentParser,
    geo: Option<GeoDb>,
    /// Key for the daily visitor ids of cookieless traffic.
    secret: Vec<u8>,
    stats: Mutex<HashMap<String, CollectStats>>,
    /// `(website, visitor id)` of recent bot requests, so that their visitor profile can say
    /// "a bot" rather than "unknown".
    bot_visitors: quick_cache::sync::Cache<(String, String), ()>,
    /// Where bot visitors are remembered across restarts, when the collector has a home.
    bot_log: Option<BotLog>,
}

/// Largest amount a tracker payment may carry, in its currency.
pub const MAX_TRACKER_AMOUNT: f64 = 1_000_000.0;

/// Bot visitor ids remembered, across websites.
pub const BOT_VISITORS_REMEMBERED: usize = 100_000;

/// Payment identifiers the SDK's `trackPayment` may carry, in the order Tally prefers them as
/// the transaction id.
pub const PAYMENT_IDS: [&str; 4] = [
    "stripe_session_id",
    "lemonsqueezy_order_id",
    "polar_checkout_id",
    "paddle_transaction_id",
];

impl Collector {
    /// A collector with an optional GeoIP database. `secret` keys the visitor ids derived for
    /// cookieless traffic; keep it stable across restarts so those ids stay stable within a day.
    pub fn new(geo: Option<GeoDb>, secret: &[u8]) -> Result<Self> {
        Ok(Collector {
            agents: AgentParser::load()?,
            geo,
            secret: secret.to_vec(),
            stats: Mutex::new(HashMap::new()),
            bot_visitors: quick_cache::sync::Cache::new(BOT_VISITORS_REMEMBERED),
            bot_log: None,
        })
    }

    /// Remembers bot visitors in the file at `path` (in the data directory), so that after a
    /// restart a bot's visitor id is still known as one; the ones it holds are loaded now.
    pub fn with_bot_log(mut self, path: &std::path::Path) -> Result<Self> {
        let (log, entries) = BotLog::open(path)
            .map_err(|e| Error::Data(format!("bot visitor log {}: {e}", path.display())))?;
        for entry in entries {
            self.bot_visitors.insert(entry, ());
        }
        self.bot_log = Some(log);
        Ok(self)
    }

    /// Whether a GeoIP database is loaded.
    pub fn has_geo(&self) -> bool {
        self.geo.is_some()
    }

    /// The User-Agent parser (shared cache).
    pub fn agents(&self) -> &AgentParser {
        &self.agents
    }

    /// Whether `visitor_id` sent bot requests to `website_id` recently.
    pub fn is_bot_visitor(&self, website_id: &str, visitor_id: &str) -> bool {
        self.bot_visitors
            .get(&(website_id.to_owned(), visitor_id.to_owned()))
            .is_some()
    }

    /// This website's counts so far.
    pub fn stats(&self, website_id: &str) -> CollectStats {
        self.stats
            .lock()
            .map(|s| s.get(website_id).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    fn count(&self, website_id: &str, f: impl FnOnce(&mut CollectStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(s.entry(website_id.to_owned()).or_default());
        }
    }

    /// Turns `payload`, received at `now` from `client`, into an event of `website` (whose id
    /// the caller looked up from `payload.website_id`). Errors name the payload field at fault.
    pub fn collect(
        &self,
        payload: &TrackerPayload,
        client: Client<'_>,
        website: &Website,
        now: DateTime<Utc>,
    ) -> Result<Collected> {
        let result = self.collect_uncounted(payload, client, website, now);
        self.count(&website.id, |s| match &result {
            Ok(Collected::Event(_)) => s.accepted += 1,
            Ok(Collected::Bot) => s.bots += 1,
            Err(_) => s.rejected += 1,
        });
        result
    }

    fn collect_uncounted(
        &self,
        payload: &TrackerPayload,
        client: Client<'_>,
        website: &Website,
        now: DateTime<Utc>,
    ) -> Result<Collected> {
        let page = parse_page_url(&payload.href).map_err(|_| {
            Error::invalid("href", format!("`{}` is not an absolute URL", payload.href))
        })?;
        let domain = payload
            .domain
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or(&page.hostname);
        check_domain(website, domain)?;

        let user_agent = client.user_agent.unwrap_or("");
        let agent = self.agents.parse(user_agent);
        if agent.bot {
            // Only ids a real visitor could have are remembered (the cache and its log are
            // bounded in entries; this bounds each entry).
            let id = payload.visitor_id.as_deref().filter(|v| {
                !v.is_empty() && v.len() <= tally_core::event::MAX_ID_LEN && !v.contains('\n')
            });
            if let Some(v) = id {
                let key = (website.id.clone(), v.to_owned());
                if self.bot_visitors.get(&key).is_none() {
                    if let Some(log) = &self.bot_log
                        && let Err(e) = log.record(&website.id, v)
                    {
                        // Only the memory across restarts is lost; the request is still a bot's.
                        tracing::warn!(error = %e, "could not remember a bot visitor");
                    }
                    self.bot_visitors.insert(key, ());
                }
            }
            return Ok(Collected::Bot);
        }
        let location = match (&self.geo, client.addr) {
            (Some(db), Some(addr)) => db.locate(addr),
            _ => Location::default(),
        };
        let text = |s: &Option<String>| s.as_deref().map(CompactString::from);
        let mut attrs = SessionAttrs {
            referrer: payload
                .referrer
                .as_deref()
                .and_then(referrer_host)
                .map(CompactString::from),
            country_code: text(&location.country_code),
            region: text(&location.region),
            region_code: text(&location.region_code),
            city: text(&location.city),
            latitude: location.latitude,
            longitude: location.longitude,
            browser: text(&agent.browser),
            browser_version: text(&agent.browser_version),
            os: text(&agent.os),
            os_version: text(&agent.os_version),
            device: Some(CompactString::from(agent.device)),
            device_vendor: text(&agent.device_vendor),
            device_model: text(&agent.device_model),
            ..SessionAttrs::default()
        };
        page.set_campaign(&mut attrs);

        let kind = event_kind(payload, website)?;
        let visitor_id = self.visitor_id(payload, client, website, now);
        let is_pageview = matches!(kind, EventKind::Pageview);
        let viewport = payload.viewport.unwrap_or_default();
        let pixels = |v: Option<f64>| {
            v.filter(|v| v.is_finite() && *v >= 0.0 && *v <= f64::from(u32::MAX))
                .map(|v| v as u32)
        };
        let event = Event {
            website_id: website.id.clone(),
            ts: now,
            visitor_id,
            session_id: payload
                .session_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            event_id: None,
            kind,
            hostname: is_pageview.then(|| page.hostname.clone()),
            path: is_pageview.then(|| page.path.clone()),
            viewport_width: pixels(viewport.width),
            viewport_height: pixels(viewport.height),
            attrs,
        };
        event.validate()?;
        Ok(Collected::Event(Box::new(event)))
    }

    /// The SDK's visitor id, or, in cookieless mode (or when it sent none), an id derived from
    /// the website, the day, the address and the User-Agent under the collector's key: stable
    /// for one browser for one day, and not reversible to the address.
    fn visitor_id(
        &self,
        payload: &TrackerPayload,
        client: Client<'_>,
        website: &Website,
        now: DateTime<Utc>,
    ) -> String {
        let given = payload
            .visitor_id
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty());
        match given {
            Some(v) if payload.cookieless != Some(true) => v.to_owned(),
            _ => {
                let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
                    .expect("HMAC takes keys of any length");
                let day = now.date_naive().to_string();
                let addr = client.addr.map(|a| a.to_string()).unwrap_or_default();
                for part in [
                    website.id.as_str(),
                    &day,
                    &addr,
                    client.user_agent.unwrap_or(""),
                ] {
                    mac.update(part.as_bytes());
                    mac.update(&[0]);
                }
                uuid_shaped(&mac.finalize().into_bytes()[..16])
            }
        }
    }
}

/// 16 bytes written as a version-4 UUID, the shape the SDK's own visitor ids have.
fn uuid_shaped(bytes: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(bytes);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Accepts the website's domain, its subdomains (`www.`, `app.`) and its allowed hostnames.
pub fn check_domain(website: &Website, domain: &str) -> Result<()> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let allowed = website.site_hosts().iter().any(|h| {
        let h = h.to_ascii_lowercase();
        d == h || d.strip_suffix(h.as_str()).is_some_and(|p| p.ends_with('.'))
    });
    if allowed {
        Ok(())
    } else {
        Err(Error::DomainNotAllowed(domain.to_owned()))
    }
}

/// The event kind and its data from the payload's `type` and `extraData`.
fn event_kind(payload: &TrackerPayload, website: &Website) -> Result<EventKind> {
    match payload.kind.as_str() {
        "pageview" => Ok(EventKind::Pageview),
        "custom" => {
            let name = payload
                .extra_str("eventName")
                .ok_or_else(|| Error::invalid("extraData.eventName", "missing"))?;
            Ok(EventKind::Goal {
                name: name.to_ascii_lowercase(),
                metadata: payload.extra_properties(&["eventName"]),
            })
        }
        "identify" => {
            let user_id = payload
                .extra_str("user_id")
                .ok_or_else(|| Error::invalid("extraData.user_id", "missing"))?;
            let mut properties = payload.extra_properties(&["user_id", "name", "image", "email"]);
            properties.retain(|_, v| !v.is_empty());
            Ok(EventKind::Identify(Identity {
                user_id,
                name: payload.extra_str("name"),
                email: payload.extra_str("email"),
                image: payload.extra_str("image"),
                properties,
            }))
        }
        "payment" => payment(payload, website).map(EventKind::Payment),
        "external_link" => Ok(EventKind::ExternalLink {
            url: payload
                .extra_str("url")
                .ok_or_else(|| Error::invalid("extraData.url", "missing"))?,
            text: payload.extra_str("text"),
        }),
        other => Err(Error::invalid(
            "type",
            format!("`{other}` is not pageview, custom, identify, payment or external_link"),
        )),
    }
}

/// A payment from the SDK's `trackPayment`. The browser knows the amount only when the site
/// passes it (at most [`MAX_TRACKER_AMOUNT`]); without one the payment is stored with amount 0,
/// so the visitor still counts as a customer. The transaction id is the provider's id, or the
/// email within the session, under [`TRACKER_TRANSACTION_PREFIX`]: a payload the SDK retries is
/// not counted twice, and the provider's own report (`POST /payments` with the bare id)
/// replaces it instead of being taken for a repeat.
fn payment(payload: &TrackerPayload, website: &Website) -> Result<Payment> {
    let amount = match payload.extra_data.as_ref().and_then(|x| x.get("amount")) {
        None | Some(serde_json::Value::Null) => 0.0,
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| Error::invalid("extraData.amount", format!("`{s}` is not a number")))?,
        Some(_) => return Err(Error::invalid("extraData.amount", "must be a number")),
    };
    // The browser's amount is the site's own report, kept within bounds no real checkout passes.
    if amount > MAX_TRACKER_AMOUNT {
        return Err(Error::invalid(
            "extraData.amount",
            format!("must be at most {MAX_TRACKER_AMOUNT}"),
        ));
    }
    let email = payload.extra_str("email");
    let provider_id = PAYMENT_IDS.iter().find_map(|k| payload.extra_str(k));
    let transaction_id = match (provider_id, &email) {
        (Some(id), _) => format!("{TRACKER_TRANSACTION_PREFIX}{id}"),
        (None, Some(e)) => format!(
            "{TRACKER_TRANSACTION_PREFIX}email:{e}:{}",
            payload.session_id.as_deref().unwrap_or_default()
        ),
        (None, None) => {
            return Err(Error::invalid(
                "extraData",
                format!(
                    "a payment needs `email` or one of {}",
                    PAYMENT_IDS.join(", ")
                ),
            ));
        }
    };
    Ok(Payment {
        amount,
        currency: payload
            .extra_str("currency")
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_else(|| website.currency.clone()),
        transaction_id,
        renewal: false,
        refunded: false,
        email,
        name: None,
        customer_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_and_allowed_hosts_pass_the_domain_check() {
        let mut w = Website::new("w", "example.com");
        w.allowed_hostnames = vec!["shop.other.io".into()];
        for ok in [
            "example.com",
            "www.example.com",
            "App.Example.com",
            "shop.other.io",
        ] {
            assert!(check_domain(&w, ok).is_ok(), "{ok}");
        }
        for bad in ["badexample.com", "example.com.evil.io", "other.io", ""] {
            assert!(check_domain(&w, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_ids_look_like_the_sdk_ones() {
        let id = uuid_shaped(&[0xab; 16]);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}

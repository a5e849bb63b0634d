//! User-Agent parsing: browser, operating system, device type, and whether it is a bot.
//!
//! Browser, OS and device come from the `ua-parser` crate driven by uap-core's
//! `regexes.yaml` (vendored under `data/uap-core`, Apache-2.0). uap-core names a few things
//! differently from the DataFast API (which shows `Mac OS`, `Chrome`, `Safari` whatever the
//! device), so [`BROWSER_NAMES`] and [`OS_NAMES`] fold those names. uap-core has no device
//! *type*; [`device_type`] derives desktop / mobile / tablet from the device family, the OS and
//! the `Mobile` token, the same signals browsers use to ask for a mobile site.
//!
//! Parsing one User-Agent costs about 7 µs, a cached answer about 30 ns (`cargo bench -p
//! tally-benches --bench collect`, figures in `benches/README.md`), and a site sees few distinct
//! User-Agents, so answers are kept in a bounded cache keyed by the whole string.

use std::borrow::Cow;
use std::sync::Arc;

use quick_cache::sync::Cache;
use ua_parser::{Extractor, device, os, user_agent};
use yaml_rust2::{Yaml, YamlLoader};

use crate::bots::BotPatterns;
use crate::error::{Error, Result};

const REGEXES_YAML: &str = include_str!("../data/uap-core/regexes.yaml");

/// Distinct User-Agents remembered by [`AgentParser`].
pub const CACHE_CAPACITY: usize = 20_000;

/// uap-core browser families shown under the DataFast name.
pub const BROWSER_NAMES: &[(&str, &str)] = &[
    ("Chrome Mobile", "Chrome"),
    ("Chrome Mobile iOS", "Chrome"),
    ("Chrome Mobile WebView", "Chrome"),
    ("Mobile Safari", "Safari"),
    ("Mobile Safari UI/WKWebView", "Safari"),
    ("Firefox Mobile", "Firefox"),
    ("Firefox iOS", "Firefox"),
    ("Edge Mobile", "Edge"),
    ("Opera Mobile", "Opera"),
    ("Facebook", "Facebook"),
];

/// uap-core OS families shown under the DataFast name.
pub const OS_NAMES: &[(&str, &str)] = &[("Mac OS X", "Mac OS")];

/// What a User-Agent says about the visitor's software and device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agent {
    /// Browser name (`Chrome`), `None` when unknown.
    pub browser: Option<String>,
    /// Browser version (`133.0.0.0`).
    pub browser_version: Option<String>,
    /// Operating system name (`Mac OS`).
    pub os: Option<String>,
    /// Operating system version (`10.15.7`).
    pub os_version: Option<String>,
    /// `desktop`, `mobile` or `tablet`.
    pub device: &'static str,
    /// Device maker (`Apple`).
    pub device_vendor: Option<String>,
    /// Device model (`iPhone`).
    pub device_model: Option<String>,
    /// A crawler, monitor or other non-human client.
    pub bot: bool,
}

/// The part of a User-Agent that is parsed and cached, in bytes.
pub const MAX_USER_AGENT_LEN: usize = 1024;

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses User-Agents with the vendored rules, remembering recent answers.
pub struct AgentParser {
    extractor: Extractor<'static>,
    bots: BotPatterns,
    cache: Cache<String, Arc<Agent>>,
}

impl std::fmt::Debug for AgentParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentParser")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl AgentParser {
    /// Compiles the vendored uap-core rules and bot patterns (about 130 ms; do it once).
    pub fn load() -> Result<Self> {
        Ok(AgentParser {
            extractor: load_extractor(REGEXES_YAML)?,
            bots: BotPatterns::load()?,
            cache: Cache::new(CACHE_CAPACITY),
        })
    }

    /// Parses `user_agent` (its first [`MAX_USER_AGENT_LEN`] bytes: real ones are far shorter,
    /// and the cache's bound is then a bound in bytes), from the cache when it was seen recently.
    pub fn parse(&self, user_agent: &str) -> Arc<Agent> {
        let user_agent = truncate(user_agent, MAX_USER_AGENT_LEN);
        if let Some(hit) = self.cache.get(user_agent) {
            return hit;
        }
        let agent = Arc::new(self.parse_uncached(user_agent));
        self.cache.insert(user_agent.to_owned(), Arc::clone(&agent));
        agent
    }

    /// Parses `user_agent` without looking at or filling the cache.
    pub fn parse_uncached(&self, user_agent: &str) -> Agent {
        let (ua, os, dev) = self.extractor.extract(user_agent);
        let known = |s: &str| (s != "Other").then(|| s.to_owned());
        let browser = ua.as_ref().and_then(|u| known(&u.family));
        let os_name = os.as_ref().and_then(|o| known(&o.os));
        let dev_family = dev.as_ref().map(|d| d.device.to_string());
        let bot = self.bots.is_bot(user_agent) || dev_family.as_deref() == Some("Spider");
        Agent {
            browser: browser.map(|b| rename(BROWSER_NAMES, b)),
            browser_version: ua.as_ref().and_then(|u| {
                join_version([u.major, u.minor, u.patch, u.patch_minor].map(|p| p.map(Cow::from)))
            }),
            os_version: os.as_ref().and_then(|o| {
                join_version([
                    o.major.clone(),
                    o.minor.clone(),
                    o.patch.clone(),
                    o.patch_minor.clone(),
                ])
            }),
            device: device_type(
                user_agent,
                os_name.as_deref(),
                dev_family.as_deref().unwrap_or("Other"),
            ),
            os: os_name.map(|o| rename(OS_NAMES, o)),
            device_vendor: dev
                .as_ref()
                .and_then(|d| d.brand.as_deref().map(str::to_owned)),
            device_model: dev
                .as_ref()
                .and_then(|d| d.model.as_deref().map(str::to_owned)),
            bot,
        }
    }
}

fn rename(table: &[(&str, &str)], name: String) -> String {
    table
        .iter()
        .find(|(from, _)| *from == name)
        .map_or(name, |(_, to)| (*to).to_owned())
}

/// `133.0.0.0` from the version parts present, stopping at the first missing one.
fn join_version(parts: [Option<Cow<'_, str>>; 4]) -> Option<String> {
    let present: Vec<Cow<'_, str>> = parts
        .into_iter()
        .map_while(|p| p.filter(|s| !s.is_empty()))
        .collect();
    (!present.is_empty()).then(|| present.join("."))
}

/// Desktop, mobile or tablet, from the uap-core device family, the OS and the UA's tokens.
pub fn device_type(user_agent: &str, os: Option<&str>, device_family: &str) -> &'static str {
    let family = device_family.to_ascii_lowercase();
    if family.contains("ipad")
        || family.contains("tablet")
        || family.contains("kindle")
        || user_agent.contains("Tablet")
    {
        return "tablet";
    }
    let mobile_token = user_agent.contains("Mobi");
    match os {
        // Android tablets leave out the `Mobile` token that Android phones send.
        Some("Android") if !mobile_token => "tablet",
        Some("Android" | "iOS" | "Windows Phone" | "BlackBerry OS" | "KaiOS") => "mobile",
        _ if mobile_token
            || family.contains("iphone")
            || family.contains("smartphone")
            || family.contains("phone") =>
        {
            "mobile"
        }
        _ => "desktop",
    }
}

/// Builds the extractor from a `regexes.yaml` document.
pub fn load_extractor(yaml: &str) -> Result<Extractor<'static>> {
    let docs = YamlLoader::load_from_str(yaml).map_err(|e| Error::Data(e.to_string()))?;
    let doc = docs
        .first()
        .ok_or_else(|| Error::Data("regexes.yaml is empty".into()))?;
    let section = |name: &str| -> Result<&Vec<Yaml>> {
        doc[name]
            .as_vec()
            .ok_or_else(|| Error::Data(format!("regexes.yaml has no `{name}` list")))
    };
    let ua = section("user_agent_parsers")?
        .iter()
        .try_fold(user_agent::Builder::new(), |b, p| {
            b.push(user_agent::Parser {
                regex: required(p, "regex")?,
                family_replacement: text(p, "family_replacement"),
                v1_replacement: text(p, "v1_replacement"),
                v2_replacement: text(p, "v2_replacement"),
                v3_replacement: text(p, "v3_replacement"),
                v4_replacement: text(p, "v4_replacement"),
            })
            .map_err(|e| Error::Data(e.to_string()))
        })?
        .build()
        .map_err(|e| Error::Data(e.to_string()))?;
    let os = section("os_parsers")?
        .iter()
        .try_fold(os::Builder::new(), |b, p| {
            b.push(os::Parser {
                regex: required(p, "regex")?,
                os_replacement: text(p, "os_replacement"),
                os_v1_replacement: text(p, "os_v1_replacement"),
                os_v2_replacement: text(p, "os_v2_replacement"),
                os_v3_replacement: text(p, "os_v3_replacement"),
                os_v4_replacement: text(p, "os_v4_replacement"),
            })
            .map_err(|e| Error::Data(e.to_string()))
        })?
        .build()
        .map_err(|e| Error::Data(e.to_string()))?;
    let dev = section("device_parsers")?
        .iter()
        .try_fold(device::Builder::new(), |b, p| {
            b.push(device::Parser {
                regex: required(p, "regex")?,
                regex_flag: (text(p, "regex_flag").as_deref() == Some("i"))
                    .then_some(device::Flag::IgnoreCase),
                device_replacement: text(p, "device_replacement"),
                brand_replacement: text(p, "brand_replacement"),
                model_replacement: text(p, "model_replacement"),
            })
            .map_err(|e| Error::Data(e.to_string()))
        })?
        .build()
        .map_err(|e| Error::Data(e.to_string()))?;
    Ok(Extractor { ua, os, dev })
}

/// A scalar of the rule as text (the YAML has a few unquoted numbers).
fn text(rule: &Yaml, key: &str) -> Option<Cow<'static, str>> {
    match &rule[key] {
        Yaml::String(s) => Some(Cow::Owned(s.clone())),
        Yaml::Integer(i) => Some(Cow::Owned(i.to_string())),
        Yaml::Real(r) => Some(Cow::Owned(r.clone())),
        _ => None,
    }
}

fn required(rule: &Yaml, key: &str) -> Result<Cow<'static, str>> {
    text(rule, key).ok_or_else(|| Error::Data(format!("a rule in regexes.yaml has no `{key}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_join_until_the_first_gap() {
        let v = |a: [Option<&'static str>; 4]| join_version(a.map(|p| p.map(Cow::from)));
        assert_eq!(
            v([Some("133"), Some("0"), Some("0"), Some("0")]).as_deref(),
            Some("133.0.0.0")
        );
        assert_eq!(
            v([Some("17"), Some("4"), None, Some("9")]).as_deref(),
            Some("17.4")
        );
        assert_eq!(v([None, None, None, None]), None);
    }

    #[test]
    fn android_without_the_mobile_token_is_a_tablet() {
        assert_eq!(
            device_type("Android 14; SM-X710", Some("Android"), "Samsung"),
            "tablet"
        );
        assert_eq!(
            device_type("Android 14; Mobile", Some("Android"), "Samsung"),
            "mobile"
        );
        assert_eq!(
            device_type("Windows NT 10.0", Some("Windows"), "Other"),
            "desktop"
        );
    }
}

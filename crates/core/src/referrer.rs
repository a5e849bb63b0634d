//! Referrer classification (DESIGN §4): a raw referrer host becomes the name people read.
//!
//! Known search engines, social networks and AI assistants get their names from Matomo's
//! `searchengine-and-social-list` (vendored under `data/`, CC0, see its `VERSION`), with the
//! display overrides in [`DISPLAY_NAMES`]. Other hosts are shown without `www.`. Empty and
//! same-site referrers are [`DIRECT`].

use std::collections::HashMap;
use std::sync::LazyLock;

use yaml_rust2::{Yaml, YamlLoader};

/// The name of direct (and same-site) traffic.
pub const DIRECT: &str = "Direct/None";

/// Names that differ from Matomo's: the product was renamed after the list named it.
pub const DISPLAY_NAMES: &[(&str, &str)] = &[("Twitter", "X"), ("reddit", "Reddit")];

const SEARCH_ENGINES: &str = include_str!("../data/searchengine-and-social-list/SearchEngines.yml");
const SOCIALS: &str = include_str!("../data/searchengine-and-social-list/Socials.yml");
const AI_ASSISTANTS: &str = include_str!("../data/searchengine-and-social-list/AIAssistants.yml");

/// Host pattern -> display name. Patterns are hosts (`google.com`) or hosts with a wildcard
/// top-level part (`google.{}`), as the list writes them.
static KNOWN_HOSTS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    load_flat_list(SOCIALS, &mut map);
    load_flat_list(AI_ASSISTANTS, &mut map);
    load_search_engines(SEARCH_ENGINES, &mut map);
    map
});

/// Classifies a referrer host for a page on `site_hosts` (the website's domain and the page's
/// hostname). Returns the display name.
pub fn classify(referrer_host: Option<&str>, site_hosts: &[&str]) -> String {
    match referrer_host {
        None => DIRECT.to_owned(),
        Some(h) if is_same_site(h, site_hosts) => DIRECT.to_owned(),
        Some(h) => known_name(h).unwrap_or_else(|| strip_www(h).to_owned()),
    }
}

/// Whether `host` is one of `site_hosts`, ignoring `www.` and case.
pub fn is_same_site(host: &str, site_hosts: &[&str]) -> bool {
    let host = strip_www(host);
    site_hosts
        .iter()
        .any(|s| !s.is_empty() && strip_www(s).eq_ignore_ascii_case(host))
}

/// `host` without a leading `www.`.
pub fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// The longest host name DNS allows; a longer "host" is no site's and is not looked up.
pub const MAX_HOST_LEN: usize = 253;

/// The list's name for `host`, trying the host and each parent domain, each both as written
/// and with its last one or two labels as the `{}` wildcard. Linear in the host's length: the
/// candidates are slices of it, and a host longer than [`MAX_HOST_LEN`] has none.
pub fn known_name(host: &str) -> Option<String> {
    if host.len() > MAX_HOST_LEN {
        return None;
    }
    let lower = host.to_ascii_lowercase();
    let host = strip_www(&lower);
    // Where each label starts, and where the host ends (as if a label started after it).
    let starts: Vec<usize> = std::iter::once(0)
        .chain(host.match_indices('.').map(|(i, _)| i + 1))
        .collect();
    let end = host.len() + 1;
    let mut wildcard = String::with_capacity(host.len() + 3);
    for (k, &start) in starts.iter().enumerate() {
        if let Some(n) = KNOWN_HOSTS.get(&host[start..]) {
            return Some(n.clone());
        }
        // The labels from `start` with the last one or two replaced by `{}`.
        for tld_labels in 1..=2usize {
            let Some(&cut) = starts
                .len()
                .checked_sub(tld_labels)
                .and_then(|i| starts.get(i))
            else {
                continue;
            };
            if cut <= start || starts.len() - k <= tld_labels || cut > end {
                continue;
            }
            wildcard.clear();
            wildcard.push_str(&host[start..cut - 1]);
            wildcard.push_str(".{}");
            if let Some(n) = KNOWN_HOSTS.get(wildcard.as_str()) {
                return Some(n.clone());
            }
        }
    }
    None
}

fn display_name(list_name: &str) -> String {
    DISPLAY_NAMES
        .iter()
        .find(|(from, _)| *from == list_name)
        .map_or_else(|| list_name.to_owned(), |(_, to)| (*to).to_owned())
}

fn insert(map: &mut HashMap<String, String>, host: &str, name: &str) {
    let host = strip_www(host.trim()).to_ascii_lowercase();
    if !host.is_empty() {
        map.entry(host).or_insert_with(|| display_name(name));
    }
}

/// `Name: [host, …]` documents (Socials.yml, AIAssistants.yml).
fn load_flat_list(text: &str, map: &mut HashMap<String, String>) {
    let Ok(docs) = YamlLoader::load_from_str(text) else {
        return;
    };
    let Some(Yaml::Hash(h)) = docs.first() else {
        return;
    };
    for (name, hosts) in h {
        let (Some(name), Some(hosts)) = (yaml_str(name), hosts.as_vec()) else {
            continue;
        };
        for host in hosts.iter().filter_map(Yaml::as_str) {
            insert(map, host, &name);
        }
    }
}

/// `Name: [{urls: [host, …], params: …}, …]` (SearchEngines.yml).
fn load_search_engines(text: &str, map: &mut HashMap<String, String>) {
    let Ok(docs) = YamlLoader::load_from_str(text) else {
        return;
    };
    let Some(Yaml::Hash(h)) = docs.first() else {
        return;
    };
    for (name, defs) in h {
        let (Some(name), Some(defs)) = (yaml_str(name), defs.as_vec()) else {
            continue;
        };
        for def in defs {
            let Some(urls) = def["urls"].as_vec() else {
                continue;
            };
            for host in urls.iter().filter_map(Yaml::as_str) {
                insert(map, host, &name);
            }
        }
    }
}

/// Keys are sometimes numbers in YAML (`1.cz` stays a string, `118 700` too, but be safe).
fn yaml_str(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_engines_and_networks_have_names() {
        let site = ["example.com"];
        assert_eq!(classify(Some("www.google.com"), &site), "Google");
        assert_eq!(classify(Some("www.google.co.uk"), &site), "Google");
        assert_eq!(classify(Some("google.de"), &site), "Google");
        assert_eq!(classify(Some("t.co"), &site), "X");
        assert_eq!(classify(Some("x.com"), &site), "X");
        assert_eq!(classify(Some("m.facebook.com"), &site), "Facebook");
        assert_eq!(classify(Some("www.bing.com"), &site), "Bing");
        assert_eq!(classify(Some("chatgpt.com"), &site), "ChatGPT");
    }

    #[test]
    fn others_lose_www_and_same_site_is_direct() {
        let site = ["example.com", "www.example.com"];
        assert_eq!(
            classify(Some("www.indiehackers.org"), &site),
            "indiehackers.org"
        );
        assert_eq!(
            classify(Some("newsletter.example.com"), &site),
            "newsletter.example.com"
        );
        assert_eq!(classify(Some("www.example.com"), &site), DIRECT);
        assert_eq!(classify(None, &site), DIRECT);
    }

    #[test]
    fn wildcard_entries_match_any_top_level_part() {
        // Matomo writes some engines as `yandex.{}`, `search.yahoo.{}`.
        let wild: Vec<&String> = KNOWN_HOSTS.keys().filter(|k| k.ends_with(".{}")).collect();
        assert!(!wild.is_empty());
        for key in wild.iter().take(50) {
            let stem = key.trim_end_matches(".{}");
            for host in [
                format!("{stem}.com"),
                format!("{stem}.co.uk"),
                format!("www.{stem}.de"),
            ] {
                assert_eq!(
                    known_name(&host).as_deref(),
                    Some(KNOWN_HOSTS[*key].as_str()),
                    "{host}"
                );
            }
        }
        assert_eq!(known_name("notgoogle.example"), None);
    }

    /// The lookup as first written (quadratic: a join per candidate), kept as the reference.
    fn known_name_by_joins(host: &str) -> Option<String> {
        let host = strip_www(&host.to_ascii_lowercase()).to_owned();
        let labels: Vec<&str> = host.split('.').collect();
        for start in 0..labels.len() {
            let suffix = labels[start..].join(".");
            if let Some(n) = KNOWN_HOSTS.get(&suffix) {
                return Some(n.clone());
            }
            let rest = &labels[start..];
            for tld_labels in 1..=2usize {
                if rest.len() > tld_labels {
                    let stem = rest[..rest.len() - tld_labels].join(".");
                    if let Some(n) = KNOWN_HOSTS.get(&format!("{stem}.{{}}")) {
                        return Some(n.clone());
                    }
                }
            }
        }
        None
    }

    #[test]
    fn the_linear_lookup_names_what_the_reference_names() {
        let mut hosts: Vec<String> = Vec::new();
        for key in KNOWN_HOSTS.keys() {
            let key = key.replace("{}", "com");
            hosts.push(key.clone());
            hosts.push(format!("www.{key}"));
            hosts.push(format!("a.b.{key}"));
            hosts.push(format!("{key}.co.uk"));
            hosts.push(format!("x{key}"));
        }
        hosts.extend(
            [
                "sub.images.google.fr",
                "t.co",
                "",
                ".",
                "a..b",
                "com",
                "www.",
            ]
            .map(String::from),
        );
        for h in &hosts {
            assert_eq!(known_name(h), known_name_by_joins(h), "{h}");
        }
    }

    #[test]
    fn hosts_longer_than_dns_allows_are_not_looked_up() {
        // 30,000 labels: the join-per-label lookup took 7.7 s on this; it is refused at once.
        let long = "a.".repeat(30_000) + "google.com";
        assert_eq!(known_name(&long), None);
        let deep = "b.".repeat(120) + "google.com";
        assert!(deep.len() <= MAX_HOST_LEN);
        assert_eq!(known_name(&deep).as_deref(), Some("Google"));
    }

    #[test]
    fn the_vendored_lists_load() {
        assert!(KNOWN_HOSTS.len() > 500, "{}", KNOWN_HOSTS.len());
    }
}

//! Real User-Agent strings of the major browsers, and every example the bot list ships.

use std::sync::LazyLock;

use tally_collect::agent::AgentParser;
use tally_collect::bots;

static PARSER: LazyLock<AgentParser> = LazyLock::new(|| AgentParser::load().unwrap());

/// (User-Agent, browser, browser version, os, os version, device, vendor)
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

pub const BROWSERS: &[Expected] = &[
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
        "Chrome",
        "133.0.0.0",
        "Mac OS",
        "10.15.7",
        "desktop",
        Some("Apple"),
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        "Edge",
        "131.0.2903.86",
        "Windows",
        "10",
        "desktop",
        None,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:134.0) Gecko/20100101 Firefox/134.0",
        "Firefox",
        "134.0",
        "Windows",
        "10",
        "desktop",
        None,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Firefox",
        "128.0",
        "Linux",
        "",
        "desktop",
        None,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
        "Safari",
        "18.2",
        "Mac OS",
        "10.15.7",
        "desktop",
        Some("Apple"),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
        "Safari",
        "18.2",
        "iOS",
        "18.2",
        "mobile",
        Some("Apple"),
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
        "Safari",
        "17.7",
        "iOS",
        "17.7",
        "tablet",
        Some("Apple"),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Chrome",
        "131.0.6778.73",
        "iOS",
        "18.1",
        "mobile",
        Some("Apple"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Mobile Safari/537.36",
        "Chrome",
        "132.0.0.0",
        "Android",
        "10",
        "mobile",
        None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
        "Samsung Internet",
        "27.0",
        "Android",
        "14",
        "mobile",
        Some("Samsung"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "131.0.0.0",
        "Android",
        "13",
        "tablet",
        None,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/116.0.0.0",
        "Opera",
        "116.0.0",
        "Windows",
        "10",
        "desktop",
        None,
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "131.0.0.0",
        "Chrome OS",
        "14541.0.0",
        "desktop",
        None,
    ),
];

#[test]
fn major_browsers_parse_to_their_names_versions_and_device_types() {
    for &(ua, browser, version, os, os_version, device, vendor) in BROWSERS {
        let a = PARSER.parse(ua);
        assert!(!a.bot, "{ua} taken for a bot");
        assert_eq!(a.browser.as_deref(), Some(browser), "{ua}");
        assert_eq!(a.browser_version.as_deref(), Some(version), "{ua}");
        assert_eq!(a.os.as_deref(), Some(os), "{ua}");
        assert_eq!(a.os_version.as_deref().unwrap_or(""), os_version, "{ua}");
        assert_eq!(a.device, device, "{ua}");
        if vendor.is_some() {
            assert_eq!(a.device_vendor.as_deref(), vendor, "{ua}");
        }
    }
}

#[test]
fn the_cache_answers_repeats_with_the_same_result() {
    let ua = BROWSERS[0].0;
    let first = PARSER.parse(ua);
    let again = PARSER.parse(ua);
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    assert_eq!(*first, PARSER.parse_uncached(ua));
}

#[test]
fn every_example_in_the_bot_list_is_a_bot() {
    let entries = bots::entries().unwrap();
    let mut checked = 0;
    for e in &entries {
        for ua in &e.instances {
            assert!(
                PARSER.parse_uncached(ua).bot,
                "{ua} (pattern {}) not a bot",
                e.pattern
            );
            checked += 1;
        }
    }
    assert!(checked > 2000, "only {checked} examples");
}

#[test]
fn empty_and_tool_user_agents_are_bots() {
    for ua in [
        "",
        "  ",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ] {
        assert!(PARSER.parse(ua).bot, "{ua:?}");
    }
}

#[test]
fn a_huge_user_agent_is_parsed_by_its_first_kilobyte() {
    let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36";
    // Hundreds of KiB of padding (with a multi-byte character at the cut) change nothing but
    // what the cache keeps.
    let huge = format!("{chrome} {}", "é".repeat(200_000));
    let agent = PARSER.parse(&huge);
    assert_eq!(agent.browser.as_deref(), Some("Chrome"));
    assert_eq!(agent.os.as_deref(), Some("Mac OS"));
    assert!(!agent.bot);
}

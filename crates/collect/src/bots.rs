//! Bot detection by User-Agent, from the `crawler-user-agents` pattern list (vendored under
//! `data/crawler-user-agents`, MIT). The patterns are RE2-compatible regular expressions, so
//! they compile unchanged into one [`regex::RegexSet`].

use regex::RegexSet;
use serde::Deserialize;

use crate::error::{Error, Result};

const PATTERNS_JSON: &str = include_str!("../data/crawler-user-agents/crawler-user-agents.json");

/// One entry of the vendored list.
#[derive(Debug, Deserialize)]
pub struct BotEntry {
    /// The regular expression matched against the whole User-Agent.
    pub pattern: String,
    /// Real User-Agent strings of this bot.
    #[serde(default)]
    pub instances: Vec<String>,
}

/// The vendored list, parsed.
pub fn entries() -> Result<Vec<BotEntry>> {
    serde_json::from_str(PATTERNS_JSON).map_err(|e| Error::Data(format!("bot patterns: {e}")))
}

/// Compiled bot patterns.
#[derive(Debug)]
pub struct BotPatterns {
    set: RegexSet,
}

impl BotPatterns {
    /// Compiles the vendored list.
    pub fn load() -> Result<Self> {
        let patterns: Vec<String> = entries()?.into_iter().map(|e| e.pattern).collect();
        let set = regex::RegexSetBuilder::new(&patterns)
            .size_limit(64 << 20)
            .build()
            .map_err(|e| Error::Data(format!("bot patterns: {e}")))?;
        Ok(BotPatterns { set })
    }

    /// Whether `user_agent` is a bot's. An empty or very short User-Agent counts as one: every
    /// browser sends a long one.
    pub fn is_bot(&self, user_agent: &str) -> bool {
        user_agent.trim().len() < 5 || self.set.is_match(user_agent)
    }
}

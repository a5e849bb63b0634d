//! # tally-collect
//!
//! Turns what the DataFast tracker SDK sends into [`tally_core::Event`]s: the page and its
//! campaign parameters from `href`, the referrer host (named by tally-core's referrer lists),
//! browser / OS / device from the User-Agent ([`agent`], uap-core rules), location from the
//! client address ([`geo`], a MaxMind DB file), and bots dropped by the `crawler-user-agents`
//! patterns ([`bots`]) and counted.
//!
//! ```
//! use tally_collect::{Client, Collected, Collector, TrackerPayload};
//! use tally_core::Website;
//!
//! let collector = Collector::new(None, b"secret")?;
//! let website = Website::new("site", "example.com");
//! let body = br#"{"websiteId":"site","domain":"example.com","visitorId":"v1",
//!   "sessionId":"s1","href":"https://example.com/pricing?utm_source=news",
//!   "referrer":"https://www.google.com/","type":"pageview"}"#;
//! let payload = TrackerPayload::from_json(body)?;
//! let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
//!               (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36";
//! let client = Client { user_agent: Some(chrome), addr: None };
//! let Collected::Event(event) = collector.collect(&payload, client, &website, chrono::Utc::now())?
//! else { panic!("not a bot") };
//! assert_eq!(event.path.as_deref(), Some("/pricing"));
//! assert_eq!(event.attrs.browser.as_deref(), Some("Chrome"));
//! assert_eq!(event.attrs.os.as_deref(), Some("Mac OS"));
//! assert_eq!(event.attrs.utm_source.as_deref(), Some("news"));
//! assert_eq!(collector.stats("site").accepted, 1);
//! # Ok::<(), tally_collect::Error>(())
//! ```

pub mod agent;
pub mod bot_log;
pub mod bots;
pub mod collector;
pub mod error;
pub mod geo;
pub mod payload;

pub use collector::{Client, CollectStats, Collected, Collector};
pub use error::{Error, Result};
pub use geo::{GeoDb, Location};
pub use payload::TrackerPayload;

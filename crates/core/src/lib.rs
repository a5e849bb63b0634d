//! # tally-core
//!
//! An embedded web-analytics engine. Feed it page views, custom goals, payments and identify
//! events; ask it for the numbers a product dashboard shows — overview, breakdowns, time
//! series — computed as Apache DataFusion plans over Arrow record batches and Parquet files,
//! with dimension filters pushed into the scan; and for the live answers ([`live`]): who is on
//! the site now, one visitor's history, and how likely they are to pay
//! ([`query::model`]).
//!
//! ```
//! use tally_core::{Engine, Event, Query, Website, Breakdown, Paging, Interval};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tally_core::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path()).await?;
//! engine.create_website(Website::new("site", "example.com"))?;
//!
//! let at = |s: &str| s.parse().unwrap();
//! engine.ingest(vec![
//!     Event::pageview("site", "visitor-1", at("2025-04-11T10:00:00Z"), "example.com", "/"),
//!     Event::pageview("site", "visitor-1", at("2025-04-11T10:01:00Z"), "example.com", "/pricing"),
//!     Event::pageview("site", "visitor-2", at("2025-04-11T11:00:00Z"), "example.com", "/"),
//! ]).await?;
//! engine.flush().await?; // optional: write the buffer to a Parquet segment
//!
//! let q = Query::new("site");
//! let overview = engine.overview(&q).await?;
//! assert_eq!((overview.visitors, overview.sessions), (2, 2));
//! assert_eq!(overview.bounce_rate, 50.0);
//!
//! let pages = engine.breakdown(&q, &Breakdown::Page, Paging::default()).await?;
//! assert_eq!(pages.rows[0].values, ["example.com", "/"]);
//! assert_eq!(pages.rows[0].visitors, 2);
//!
//! let series = engine.timeseries(&q, Interval::Day).await?;
//! assert_eq!(series.interval, Interval::Hour); // one day of data is answered hourly
//! # Ok(())
//! # }
//! ```
//!
//! The meaning of every number is defined in the project's `DESIGN.md` §4 and checked against
//! a plain-Rust reference model by property tests.

mod batch_builder;
mod checkpoint;
pub mod engine;
pub mod error;
pub mod event;
mod evicted;
pub mod import;
mod ingest;
pub mod live;
mod money;
pub mod packed;
pub mod query;
pub mod rates;
mod read_back;
pub mod referrer;
mod resident;
pub mod schema;
pub mod session;
mod state_encoding;
pub mod store;
pub mod synthetic;
mod transactions;
pub mod website;

pub use compact_str::CompactString;
pub use datafusion;
pub use datafusion::arrow;

pub use engine::{Engine, EngineConfig, FlushReport, IngestReport};
pub use error::{Error, Result};
pub use event::{Event, EventKind, Identity, PageviewRef, Payment, SessionAttrs, ValidEvents};
pub use live::{EventRow, Live, LiveVisitor, VisitorActivity, VisitorProfile};
pub use packed::PackedEvents;
pub use query::result::{
    BreakdownResult, BreakdownRow, Bucket, Overview, Revenue, SeriesTotals, Timeseries,
};
pub use query::spec::{
    Breakdown, CampaignField, DateRange, Dimension, Filter, FilterOp, Interval, Paging, Query,
};
pub use resident::GroupCounting;
pub use store::delete::{GoalDeletion, PaymentDeletion};
pub use website::Website;

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

//! # tally-api
//!
//! The DataFast v1 API contract for Tally, without HTTP: every route as one typed list
//! ([`Route`], with the access each needs), answered over the engine by [`respond`]. Query
//! strings become [`tally_core::Query`]s ([`params`]); goal and payment bodies are validated
//! ([`writes`]); the engine's typed answers become the documented JSON shapes ([`response`]),
//! with the display helpers they need ([`display`]). A server maps requests onto routes and
//! adds HTTP, authentication and limits; `tally query` uses the same list.
//!
//! ```
//! use tally_api::{Endpoint, Params, answer};
//! use tally_core::{Engine, Event, Website};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path()).await.unwrap();
//! engine.create_website(Website::new("site", "example.com")).unwrap();
//! let at = "2025-04-11T10:00:00Z".parse().unwrap();
//! engine.ingest(vec![Event::pageview("site", "v1", at, "example.com", "/")]).await.unwrap();
//!
//! let params = Params::parse("fields=visitors,sessions&startAt=2025-04-11&endAt=2025-04-11");
//! let body = answer(&engine, "site", Endpoint::Overview, &params).await.unwrap();
//! assert_eq!(body, r#"{"status":"success","data":[{"visitors":1,"sessions":1}]}"#);
//!
//! let err = answer(&engine, "site", Endpoint::Overview, &Params::parse("startAt=2025-04-11")).await.unwrap_err();
//! assert_eq!(err.status, 400);
//! # }
//! ```

pub mod display;
pub mod endpoint;
pub mod error;
pub mod live;
pub mod params;
pub mod response;
pub mod route;
pub mod settings;
pub mod writes;

pub use endpoint::{Endpoint, answer};
pub use error::{ApiError, Result};
pub use params::Params;
pub use route::{Access, Host, NoTracker, Route, respond};

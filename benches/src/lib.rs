//! # tally-benches
//!
//! Criterion benches of Tally (`benches/engine.rs`) over the deterministic synthetic data set
//! of [`tally_core::synthetic`], re-exported here.

pub use tally_core::synthetic::{DAYS, WEBSITE, events, start, website};

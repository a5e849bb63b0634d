//! How values are shown: country names and flags, currency symbols, time series labels and
//! money.

pub mod country;
pub mod currency;
pub mod label;
pub mod money;

use chrono::{DateTime, SecondsFormat, Utc};

/// An instant as the API shows it: RFC 3339 in UTC with milliseconds
/// (`2025-04-11T03:38:49.154Z`).
pub fn iso_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

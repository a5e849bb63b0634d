//! How values are shown: country names and flags, currency symbols, time series labels and
//! money.

pub mod country;
pub mod currency;
pub mod label;
pub mod money;

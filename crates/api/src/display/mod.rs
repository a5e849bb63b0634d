//! How values are shown: country names and flags, currency symbols, time series labels, money,
//! and the generated names of anonymous visitors.

pub mod country;
pub mod currency;
pub mod label;
pub mod money;
pub mod name;

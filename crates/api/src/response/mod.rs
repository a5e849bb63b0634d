//! The JSON shapes of every documented response, as serde types.
//!
//! Field names, nesting and key order follow the documentation's examples; optional fields
//! that a `fields` selection leaves out are skipped. Money and rates are rounded to two
//! decimals here and only here.

pub mod analytics;
pub mod breakdown;
pub mod live;
pub mod website;
pub mod writes;

use serde::Serialize;

/// `{"status":"success","data":…}`.
#[derive(Debug, Serialize)]
pub struct Success<T> {
    /// Always `"success"`.
    pub status: &'static str,
    /// The endpoint's data.
    pub data: T,
}

impl<T> Success<T> {
    /// Wraps `data`.
    pub fn new(data: T) -> Self {
        Success {
            status: "success",
            data,
        }
    }
}

/// `{"limit":…,"offset":…,"total":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pagination {
    /// Rows asked for.
    pub limit: usize,
    /// Rows skipped.
    pub offset: usize,
    /// Rows in all.
    pub total: usize,
}

/// A paginated list: `{"status":"success","data":[…],"pagination":{…}}`.
#[derive(Debug, Serialize)]
pub struct Paged<T> {
    /// Always `"success"`.
    pub status: &'static str,
    /// The rows.
    pub data: Vec<T>,
    /// Where the rows are in the whole list.
    pub pagination: Pagination,
}

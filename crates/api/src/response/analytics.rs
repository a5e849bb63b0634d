//! Overview and time series.

use serde::Serialize;

use crate::display::money::{Fixed2, Rounded};
use crate::response::Pagination;

/// One overview row; fields a `fields` selection leaves out are `None` and not written.
#[derive(Debug, Default, Serialize)]
pub struct OverviewRow {
    /// Distinct visitors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitors: Option<u64>,
    /// Distinct sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Percent of sessions that bounced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_rate: Option<Rounded>,
    /// Mean session duration in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_session_duration: Option<Rounded>,
    /// Currency symbol (`$`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// New + renewal revenue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Rounded>,
    /// Revenue per visitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue_per_visitor: Option<Rounded>,
    /// Percent of visitors who paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_rate: Option<Rounded>,
}

/// `revenueBreakdown`: always two decimals.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RevenueBreakdown {
    /// First-time purchases.
    pub new: Fixed2,
    /// Renewals.
    pub renewal: Fixed2,
    /// Refunds.
    pub refund: Fixed2,
}

impl From<tally_core::Revenue> for RevenueBreakdown {
    fn from(r: tally_core::Revenue) -> Self {
        RevenueBreakdown {
            new: Fixed2(r.new),
            renewal: Fixed2(r.renewal),
            refund: Fixed2(r.refund),
        }
    }
}

/// Time series totals.
#[derive(Debug, Default, Serialize)]
pub struct SeriesTotals {
    /// Distinct visitors over the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitors: Option<u64>,
    /// Distinct sessions over the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Revenue over the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Rounded>,
    /// Present whenever `revenue` is.
    #[serde(rename = "revenueBreakdown", skip_serializing_if = "Option::is_none")]
    pub revenue_breakdown: Option<RevenueBreakdown>,
    /// Revenue per visitor over the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_rate: Option<Rounded>,
}

/// One time series bucket.
#[derive(Debug, Default, Serialize)]
pub struct SeriesPoint {
    /// Distinct visitors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitors: Option<u64>,
    /// Display label (`17 Dec`).
    pub name: String,
    /// Distinct sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Revenue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Rounded>,
    /// Present whenever `revenue` is.
    #[serde(rename = "revenueBreakdown", skip_serializing_if = "Option::is_none")]
    pub revenue_breakdown: Option<RevenueBreakdown>,
    /// Revenue per visitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_rate: Option<Rounded>,
    /// Bucket start in the query's zone (`2025-12-17T00:00:00+05:30`).
    pub timestamp: String,
}

/// The time series response (not wrapped in `data`: its fields sit beside `status`).
#[derive(Debug, Serialize)]
pub struct TimeseriesResponse {
    /// Always `"success"`.
    pub status: &'static str,
    /// The fields asked for, in the order asked.
    pub fields: Vec<String>,
    /// The interval used (`hour` for a same-day range).
    pub interval: &'static str,
    /// The zone of the timestamps.
    pub timezone: String,
    /// Currency symbol, or null when revenue was not asked for.
    pub currency: Option<String>,
    /// The whole range.
    pub totals: SeriesTotals,
    /// One page of buckets.
    pub data: Vec<SeriesPoint>,
    /// Where the page is among all buckets.
    pub pagination: Pagination,
}

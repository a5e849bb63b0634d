//! Typed answers, at full precision (rounding belongs to the JSON layer).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::query::spec::Interval;

/// Revenue split as DESIGN §4 defines it, in the website currency.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Revenue {
    /// Payments neither refunded nor renewals.
    pub new: f64,
    /// Renewals that were not refunded.
    pub renewal: f64,
    /// Refunded payments.
    pub refund: f64,
}

impl Revenue {
    /// `new + renewal`: what "revenue" means everywhere.
    pub fn total(&self) -> f64 {
        self.new + self.renewal
    }
}

/// The overview of a range.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overview {
    /// Distinct visitors with a selected event.
    pub visitors: u64,
    /// Distinct sessions with a selected event.
    pub sessions: u64,
    /// Selected sessions with exactly one page view and no goal.
    pub bounced_sessions: u64,
    /// `bounced_sessions / sessions × 100` (0 without sessions).
    pub bounce_rate: f64,
    /// Mean of (last − first event) over selected sessions, in milliseconds.
    pub avg_session_duration_ms: f64,
    /// Payments in the range by selected visitors.
    pub revenue: Revenue,
    /// Selected visitors with a non-refunded payment in the range.
    pub paying_visitors: u64,
    /// `revenue.total() / visitors` (0 without visitors).
    pub revenue_per_visitor: f64,
    /// `paying_visitors / visitors × 100` (0 without visitors).
    pub conversion_rate: f64,
}

impl Overview {
    /// The overview of these counts, with the rates derived from them (DESIGN §4).
    pub fn from_counts(
        visitors: u64,
        sessions: u64,
        bounced_sessions: u64,
        avg_session_duration_ms: f64,
        revenue: Revenue,
        paying_visitors: u64,
    ) -> Overview {
        Overview {
            visitors,
            sessions,
            bounced_sessions,
            bounce_rate: percent(bounced_sessions, sessions),
            avg_session_duration_ms,
            revenue,
            paying_visitors,
            revenue_per_visitor: if visitors == 0 {
                0.0
            } else {
                revenue.total() / visitors as f64
            },
            conversion_rate: percent(paying_visitors, visitors),
        }
    }
}

/// One row of a breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownRow {
    /// The grouped values: one for most breakdowns, `[hostname, path]` for pages, the chosen
    /// fields for campaigns (`""` where empty).
    pub values: Vec<String>,
    /// Distinct selected visitors with an event carrying these values.
    pub visitors: u64,
    /// Revenue (`new + renewal`) of those visitors' payments in the range.
    pub revenue: f64,
    /// Goal breakdowns: selected goal events with this name.
    pub completions: u64,
}

/// A page of a breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownResult {
    /// Rows, sorted by visitors descending then values ascending, after offset and limit.
    pub rows: Vec<BreakdownRow>,
    /// Number of rows before offset and limit.
    pub total: usize,
}

/// One time series bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Bucket start in the query's zone.
    pub start: DateTime<Tz>,
    /// Distinct selected visitors in the bucket.
    pub visitors: u64,
    /// Distinct selected sessions in the bucket.
    pub sessions: u64,
    /// Payments in the bucket by visitors selected in the bucket.
    pub revenue: Revenue,
    /// Revenue per visitor (see [`conversion_rate`]).
    pub conversion_rate: f64,
}

/// Totals of a time series over its whole range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesTotals {
    /// Distinct selected visitors in the range.
    pub visitors: u64,
    /// Distinct selected sessions in the range.
    pub sessions: u64,
    /// Revenue in the range.
    pub revenue: Revenue,
    /// Revenue per visitor over the range.
    pub conversion_rate: f64,
}

/// A time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeseries {
    /// The interval used (hourly for a same-day range).
    pub interval: Interval,
    /// The zone of bucket starts.
    pub timezone: Tz,
    /// Every bucket of the range, empty ones with zeros.
    pub buckets: Vec<Bucket>,
    /// The query over the whole range.
    pub totals: SeriesTotals,
    /// The range answered (all time is resolved to the data's first and last events).
    pub range_start: DateTime<Utc>,
    /// End of the range answered (exclusive).
    pub range_end: DateTime<Utc>,
}

/// The time series conversion rate (DESIGN §4, the seed's arithmetic): revenue per visitor,
/// counting renewals only when the website says so. Zero without visitors.
pub fn conversion_rate(revenue: &Revenue, visitors: u64, include_renewals: bool) -> f64 {
    if visitors == 0 {
        return 0.0;
    }
    let counted = if include_renewals {
        revenue.total()
    } else {
        revenue.new
    };
    counted / visitors as f64
}

/// `part / whole × 100`, zero when `whole` is zero.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

//! Time series labels and timestamps.
//!
//! The documentation shows `"17 Dec"` for a day. The other intervals are our choice:
//! hour `"17 Dec 14:00"`, week `"15 Dec"` (the Monday it starts on), month `"Dec 2025"`.
//! Timestamps are RFC 3339 in the query's zone, `Z` when its offset is zero.

use chrono::{DateTime, SecondsFormat};
use chrono_tz::Tz;
use tally_core::Interval;

/// The display label of a bucket starting at `start`.
pub fn bucket_label(start: &DateTime<Tz>, interval: Interval) -> String {
    let fmt = match interval {
        Interval::Hour => "%d %b %H:%M",
        Interval::Day | Interval::Week => "%d %b",
        Interval::Month => "%b %Y",
    };
    start.format(fmt).to_string()
}

/// `2025-12-17T00:00:00+05:30`, or `2024-01-01T00:00:00Z` in a zone at UTC.
pub fn bucket_timestamp(start: &DateTime<Tz>) -> String {
    start.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn labels_and_timestamps_follow_the_documentation() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let t = tz.with_ymd_and_hms(2025, 12, 17, 0, 0, 0).unwrap();
        assert_eq!(bucket_label(&t, Interval::Day), "17 Dec");
        assert_eq!(bucket_timestamp(&t), "2025-12-17T00:00:00+05:30");
        assert_eq!(bucket_label(&t, Interval::Hour), "17 Dec 00:00");
        assert_eq!(bucket_label(&t, Interval::Month), "Dec 2025");
        let u = Tz::UTC.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(bucket_timestamp(&u), "2024-01-01T00:00:00Z");
    }
}

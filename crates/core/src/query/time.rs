//! Time zones and buckets (DESIGN §5).
//!
//! Buckets are computed here, in plain Rust with `chrono-tz`, as a sorted list of UTC boundary
//! instants; the plan then assigns each event its bucket by binary search over that list
//! ([`BucketUdf`]). DST days therefore have 23 or 25 hours, half-hour zones get half-hour-offset
//! hour boundaries, and a local midnight that does not exist (a DST jump at midnight) starts the
//! day at the first instant that does.

use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, ArrayRef, Int32Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};
use crate::query::spec::{DateRange, Interval};
use crate::schema::ts_type;

/// Most buckets one time series may have.
pub const MAX_BUCKETS: usize = 100_000;

/// Earliest timestamp the engine accepts.
pub fn min_timestamp() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Latest timestamp the engine accepts.
pub fn max_timestamp() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Checks that `ts` is within the years the engine handles (2000–2199).
pub fn check_timestamp(field: &str, ts: DateTime<Utc>) -> Result<()> {
    // The UTC year, not a comparison with `min_timestamp()` and `max_timestamp()`: building
    // those instants was most of the cost of checking an imported event's time.
    if !(2000..2200).contains(&ts.naive_utc().year()) {
        return Err(Error::invalid(
            field,
            format!("{ts} is outside the years 2000 to 2199"),
        ));
    }
    Ok(())
}

/// The first instant of local `date` in `tz` (midnight, or the first valid instant after a
/// DST gap that swallows midnight).
pub fn local_day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    first_valid_instant(tz, date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn first_valid_instant(tz: Tz, mut naive: NaiveDateTime) -> DateTime<Utc> {
    // Gaps are at most a few hours; step a quarter hour at a time.
    for _ in 0..(4 * 48) {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, _) => return earliest.with_timezone(&Utc),
            LocalResult::None => naive += Duration::minutes(15),
        }
    }
    Utc.from_utc_datetime(&naive)
}

/// The range covering local days `first..=last` in `tz` (how a date-only `startAt`/`endAt`
/// pair is read).
pub fn local_days(tz: Tz, first: NaiveDate, last: NaiveDate) -> Result<DateRange> {
    let end_day = last
        .succ_opt()
        .ok_or_else(|| Error::invalid("endAt", "is out of range"))?;
    DateRange::new(local_day_start(tz, first), local_day_start(tz, end_day))
}

/// The interval actually used: a range inside one local day is answered hourly.
pub fn effective_interval(interval: Interval, range: DateRange, tz: Tz) -> Interval {
    let first = range.start.with_timezone(&tz).date_naive();
    let last = (range.end - Duration::microseconds(1))
        .with_timezone(&tz)
        .date_naive();
    if first == last {
        Interval::Hour
    } else {
        interval
    }
}

/// The start of the bucket that contains `t`.
fn bucket_start(t: DateTime<Utc>, tz: Tz, interval: Interval) -> DateTime<Utc> {
    let local = t.with_timezone(&tz);
    match interval {
        Interval::Hour => {
            let naive = local.naive_local();
            let hour = naive
                .date()
                .and_hms_opt(naive.hour(), 0, 0)
                .unwrap_or(naive);
            // In a fall-back hour the earliest reading may lie before `t` by an hour: take the
            // latest instant with this local hour that is not after `t`.
            match tz.from_local_datetime(&hour) {
                LocalResult::Ambiguous(a, b) => {
                    let b = b.with_timezone(&Utc);
                    if b <= t { b } else { a.with_timezone(&Utc) }
                }
                _ => first_valid_instant(tz, hour),
            }
        }
        Interval::Day => local_day_start(tz, local.date_naive()),
        Interval::Week => {
            let d = local.date_naive();
            local_day_start(
                tz,
                d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
            )
        }
        Interval::Month => local_day_start(
            tz,
            local.date_naive().with_day(1).unwrap_or(local.date_naive()),
        ),
    }
}

/// The start of the bucket after the one starting at `start`.
fn next_bucket(start: DateTime<Utc>, tz: Tz, interval: Interval) -> DateTime<Utc> {
    match interval {
        Interval::Hour => {
            // Walk quarter hours until the local minute is zero again: this follows 30- and
            // 45-minute offset changes as well as whole-hour ones.
            let mut t = start + Duration::minutes(15);
            while t.with_timezone(&tz).minute() != 0 {
                t += Duration::minutes(15);
            }
            t
        }
        Interval::Day => local_day_start(
            tz,
            start.with_timezone(&tz).date_naive() + Duration::days(1),
        ),
        Interval::Week => local_day_start(
            tz,
            start.with_timezone(&tz).date_naive() + Duration::days(7),
        ),
        Interval::Month => {
            let d = start.with_timezone(&tz).date_naive();
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            local_day_start(tz, NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d))
        }
    }
}

/// Bucket start instants covering `range`: the first is at or before `range.start`, every
/// later one is inside the range. Bucket `i` is `[b[i], b[i+1])` intersected with the range.
pub fn bucket_starts(range: DateRange, tz: Tz, interval: Interval) -> Result<Vec<DateTime<Utc>>> {
    let mut out = vec![bucket_start(range.start, tz, interval)];
    loop {
        let last = *out.last().unwrap_or(&range.start);
        let next = next_bucket(last, tz, interval);
        if next >= range.end {
            return Ok(out);
        }
        if out.len() >= MAX_BUCKETS {
            return Err(Error::invalid(
                "interval",
                format!(
                    "the range has more than {MAX_BUCKETS} {} buckets; narrow it or use a coarser interval",
                    interval.name()
                ),
            ));
        }
        out.push(next);
    }
}

/// A scalar function `tally_bucket(ts)` that returns the index of the bucket holding `ts`
/// (the last start not after it), or null for an instant before the first bucket.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BucketUdf {
    starts_us: Vec<i64>,
    signature: Signature,
}

impl BucketUdf {
    /// The function for the given bucket starts.
    pub fn new_udf(starts: &[DateTime<Utc>]) -> ScalarUDF {
        ScalarUDF::new_from_impl(BucketUdf {
            starts_us: starts.iter().map(DateTime::timestamp_micros).collect(),
            signature: Signature::exact(vec![ts_type()], Volatility::Immutable),
        })
    }

    fn index(&self, ts: i64) -> Option<i32> {
        let i = self.starts_us.partition_point(|&s| s <= ts);
        if i == 0 {
            None
        } else {
            i32::try_from(i - 1).ok()
        }
    }
}

impl ScalarUDFImpl for BucketUdf {
    fn name(&self) -> &str {
        "tally_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "tally_bucket takes one argument".into(),
            ));
        };
        match arg {
            ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(v, _)) => Ok(
                ColumnarValue::Scalar(ScalarValue::Int32(v.and_then(|t| self.index(t)))),
            ),
            ColumnarValue::Array(a) => {
                let ts = a
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .ok_or_else(|| {
                        DataFusionError::Internal(
                            "tally_bucket expects microsecond timestamps".into(),
                        )
                    })?;
                let out: Int32Array = (0..ts.len())
                    .map(|i| {
                        if ts.is_null(i) {
                            None
                        } else {
                            self.index(ts.value(i))
                        }
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }
            other => Err(DataFusionError::Internal(format!(
                "tally_bucket got {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_accepted_from_the_first_instant_of_2000_to_the_last_of_2199() {
        let tick = Duration::microseconds(1);
        let (min, max) = (min_timestamp(), max_timestamp());
        for (ts, ok) in [
            (min - tick, false),
            (min, true),
            (max - tick, true),
            (max, false),
        ] {
            assert_eq!(check_timestamp("timestamp", ts).is_ok(), ok, "{ts}");
        }
        let far = DateTime::<Utc>::MIN_UTC;
        assert!(check_timestamp("timestamp", far).is_err());
        assert!(check_timestamp("timestamp", DateTime::<Utc>::MAX_UTC).is_err());
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn dst_days_have_23_and_25_hours() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let spring = local_days(
            tz,
            NaiveDate::from_ymd_opt(2025, 3, 9).unwrap(),
            NaiveDate::from_ymd_opt(2025, 3, 9).unwrap(),
        )
        .unwrap();
        assert_eq!(spring.end - spring.start, Duration::hours(23));
        assert_eq!(bucket_starts(spring, tz, Interval::Hour).unwrap().len(), 23);
        let fall = local_days(
            tz,
            NaiveDate::from_ymd_opt(2025, 11, 2).unwrap(),
            NaiveDate::from_ymd_opt(2025, 11, 2).unwrap(),
        )
        .unwrap();
        assert_eq!(fall.end - fall.start, Duration::hours(25));
        assert_eq!(bucket_starts(fall, tz, Interval::Hour).unwrap().len(), 25);
    }

    #[test]
    fn half_hour_zones_start_days_at_half_past() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let r = local_days(
            tz,
            NaiveDate::from_ymd_opt(2025, 12, 17).unwrap(),
            NaiveDate::from_ymd_opt(2025, 12, 19).unwrap(),
        )
        .unwrap();
        let b = bucket_starts(r, tz, Interval::Day).unwrap();
        assert_eq!(
            b,
            vec![
                utc("2025-12-16T18:30:00Z"),
                utc("2025-12-17T18:30:00Z"),
                utc("2025-12-18T18:30:00Z")
            ]
        );
        let hours = bucket_starts(r, tz, Interval::Hour).unwrap();
        assert_eq!(hours.len(), 72);
        assert_eq!(hours[1], utc("2025-12-16T19:30:00Z"));
    }

    #[test]
    fn weeks_start_monday_and_months_on_the_first() {
        let r = DateRange::new(utc("2025-01-15T12:00:00Z"), utc("2025-03-02T00:00:00Z")).unwrap();
        let w = bucket_starts(r, Tz::UTC, Interval::Week).unwrap();
        assert_eq!(w[0], utc("2025-01-13T00:00:00Z"));
        assert_eq!(w[1], utc("2025-01-20T00:00:00Z"));
        let m = bucket_starts(r, Tz::UTC, Interval::Month).unwrap();
        assert_eq!(
            m,
            vec![
                utc("2025-01-01T00:00:00Z"),
                utc("2025-02-01T00:00:00Z"),
                utc("2025-03-01T00:00:00Z")
            ]
        );
    }

    #[test]
    fn a_midnight_swallowed_by_dst_starts_the_day_at_one() {
        // Chile springs forward at 00:00 local on 2025-09-07.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let start = local_day_start(tz, NaiveDate::from_ymd_opt(2025, 9, 7).unwrap());
        assert_eq!(start.with_timezone(&tz).hour(), 1);
    }

    #[test]
    fn a_same_day_range_is_hourly() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        assert_eq!(
            effective_interval(Interval::Month, local_days(tz, d, d).unwrap(), tz),
            Interval::Hour
        );
        let two = local_days(tz, d, d.succ_opt().unwrap()).unwrap();
        assert_eq!(effective_interval(Interval::Day, two, tz), Interval::Day);
    }

    #[test]
    fn the_udf_finds_the_bucket() {
        let starts = [utc("2025-01-01T00:00:00Z"), utc("2025-01-02T00:00:00Z")];
        let udf = BucketUdf {
            starts_us: starts.iter().map(|t| t.timestamp_micros()).collect(),
            signature: Signature::exact(vec![ts_type()], Volatility::Immutable),
        };
        assert_eq!(
            udf.index(utc("2024-12-31T23:59:59Z").timestamp_micros()),
            None
        );
        assert_eq!(
            udf.index(utc("2025-01-01T00:00:00Z").timestamp_micros()),
            Some(0)
        );
        assert_eq!(
            udf.index(utc("2025-01-02T05:00:00Z").timestamp_micros()),
            Some(1)
        );
    }
}

//! Query-string parameters: decoding, lookup, and the parameters every analytics endpoint
//! shares (dates, zone, paging, filters).
//!
//! Every rejection is an [`ApiError`] with status 400 whose message names the parameter.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use tally_core::query::time::{check_timestamp, local_day_start};
use tally_core::{DateRange, Dimension, Filter, FilterOp, Paging};

use crate::display::country::{codes_containing, codes_for_value};
use crate::error::{ApiError, Result};

/// Why a lone `startAt` or `endAt` is refused.
const TOGETHER: &str = "startAt and endAt must be given together, or neither";

/// The decoded pairs of a query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes `a=1&b=x%20y` (`+` is a space; invalid UTF-8 is replaced, never a panic).
    pub fn parse(query: &str) -> Self {
        Params {
            pairs: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        }
    }

    /// Params from already decoded pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Params {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The value of a parameter that may appear at most once.
    pub fn get(&self, name: &str) -> Result<Option<&str>> {
        let mut found = self.pairs.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(ApiError::bad_param(name, "is given more than once"));
        }
        Ok(first.map(|(_, v)| v.as_str()))
    }

    /// A non-negative integer parameter.
    pub fn usize(&self, name: &str) -> Result<Option<usize>> {
        self.get(name)?
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    ApiError::bad_param(name, format!("`{v}` is not a whole number ≥ 0"))
                })
            })
            .transpose()
    }

    /// `limit` (1–1000, default 100) and `offset` (≥ 0, default 0).
    pub fn paging(&self) -> Result<Paging> {
        let limit = self.usize("limit")?.unwrap_or(Paging::DEFAULT_LIMIT);
        let offset = self.usize("offset")?.unwrap_or(0);
        Paging::new(limit, offset).map_err(|_| {
            ApiError::bad_param(
                "limit",
                format!("must be between 1 and {}", Paging::MAX_LIMIT),
            )
        })
    }

    /// `timezone`, or `default` when absent, as a zone and the name to echo.
    pub fn timezone(&self, default: &str) -> Result<(Tz, String)> {
        let name = self.get("timezone")?.unwrap_or(default);
        let tz = name.parse::<Tz>().map_err(|_| {
            ApiError::bad_param("timezone", format!("`{name}` is not an IANA time zone"))
        })?;
        Ok((tz, name.to_owned()))
    }

    /// `startAt` and `endAt` as a range in zone `tz`; `None` when both are absent.
    ///
    /// - dates (`2024-01-31`) are local days in `tz`, `endAt` inclusive;
    /// - date-times with an offset (`…Z`, `…+02:00`) are instants; `endAt` is inclusive of
    ///   that second (or millisecond, when it has a fraction);
    /// - date-times without an offset are local times in `tz`;
    /// - a full-day UTC pair (`…T00:00:00Z` to `…T23:59:59Z`) is read as plain dates in `tz`.
    pub fn date_range(&self, tz: Tz) -> Result<Option<DateRange>> {
        let (start, end) = match (self.get("startAt")?, self.get("endAt")?) {
            (None, None) => return Ok(None),
            // An unencoded `+` of an offset arrives as a space.
            (Some(s), Some(e)) => (s.trim().replace(' ', "+"), e.trim().replace(' ', "+")),
            (Some(_), None) => return Err(ApiError::bad_param("startAt", TOGETHER)),
            (None, Some(_)) => return Err(ApiError::bad_param("endAt", TOGETHER)),
        };
        let (start, end) = (start.as_str(), end.as_str());
        let range = match (full_day_utc(start, true), full_day_utc(end, false)) {
            (Some(first), Some(last)) => local_dates(tz, first, last)?,
            _ => {
                let s = parse_instant("startAt", start, tz, false)?;
                let e = parse_instant("endAt", end, tz, true)?;
                if e <= s {
                    return Err(ApiError::bad_param("endAt", "must not be before startAt"));
                }
                DateRange { start: s, end: e }
            }
        };
        check_timestamp("startAt", range.start).map_err(ApiError::from)?;
        check_timestamp("endAt", range.end - Duration::microseconds(1)).map_err(ApiError::from)?;
        Ok(Some(range))
    }

    /// The range of [`Params::date_range`] with its end shown as the last instant it includes:
    /// `endAt` itself when it is a date-time (`…T12:00:00.250Z`), the last second of the day
    /// when it names a whole day (`2023-01-31`, `…T23:59:59Z`). For delete answers.
    pub fn date_range_shown(&self, tz: Tz) -> Result<Option<(DateRange, DateTime<Utc>)>> {
        let Some(range) = self.date_range(tz)? else {
            return Ok(None);
        };
        let (start, end) = match (self.get("startAt")?, self.get("endAt")?) {
            (Some(s), Some(e)) => (s.trim().replace(' ', "+"), e.trim().replace(' ', "+")),
            _ => return Ok(None),
        };
        let whole_days = NaiveDate::parse_from_str(&end, "%Y-%m-%d").is_ok()
            || (full_day_utc(&start, true).is_some() && full_day_utc(&end, false).is_some());
        let last = if whole_days {
            range.end - Duration::seconds(1)
        } else {
            parse_instant("endAt", &end, tz, false)?
        };
        Ok(Some((range, last)))
    }

    /// Every `filter_<dimension>=<op>:<v1>,<v2>` parameter.
    pub fn filters(&self) -> Result<Vec<Filter>> {
        let mut out = Vec::new();
        for (key, value) in &self.pairs {
            let Some(dim_name) = key.strip_prefix("filter_") else {
                continue;
            };
            let dimension = Dimension::from_name(dim_name).ok_or_else(|| {
                let known: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                ApiError::bad_param(
                    key,
                    format!(
                        "unknown dimension `{dim_name}`; use one of {}",
                        known.join(", ")
                    ),
                )
            })?;
            let (op_name, list) = value.split_once(':').ok_or_else(|| {
                ApiError::bad_param(
                    key,
                    "must be <operator>:<value>[,<value>…], for example is:mobile",
                )
            })?;
            let op = FilterOp::from_name(op_name.trim()).ok_or_else(|| {
                ApiError::bad_param(
                    key,
                    format!("unknown operator `{op_name}`; use is, is_not or contains"),
                )
            })?;
            let values: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect();
            if values.is_empty() {
                return Err(ApiError::bad_param(key, "has no values"));
            }
            // The caller's list is held to the limits; a country list is then expanded to codes.
            let filter = Filter::new(dimension, op, values).map_err(ApiError::from)?;
            out.push(if dimension == Dimension::Country {
                let (op, codes) = country_values(key, op, filter.values)?;
                Filter::country_codes(op, codes).map_err(ApiError::from)?
            } else {
                filter
            });
            if out.len() > tally_core::query::spec::MAX_FILTERS {
                return Err(ApiError::bad_param(
                    key,
                    format!(
                        "one filter too many: at most {} filters are allowed",
                        tally_core::query::spec::MAX_FILTERS
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// `fields`, checked against `allowed`; `None` when absent.
    pub fn fields(&self, allowed: &[&str]) -> Result<Option<Vec<String>>> {
        let Some(raw) = self.get("fields")? else {
            return Ok(None);
        };
        let mut out: Vec<String> = Vec::new();
        for f in raw.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !allowed.contains(&f) {
                return Err(ApiError::bad_param(
                    "fields",
                    format!(
                        "unknown field `{f}`; valid fields are {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if !out.iter().any(|o| o == f) {
                out.push(f.to_owned());
            }
        }
        if out.is_empty() {
            return Err(ApiError::bad_param("fields", "lists no field"));
        }
        Ok(Some(out))
    }

    /// Logs (at debug level) the parameters this endpoint does not use, and otherwise ignores
    /// them, as DataFast does: integrations in the wild send extra ones (`range=all`,
    /// `groupBy=…`) and must keep working. Known parameters with bad values are still a 400.
    pub fn ignore_unknown(&self, known: &[&str]) {
        let unknown: std::collections::BTreeSet<&str> = self
            .pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !k.starts_with("filter_") && !known.contains(k))
            .collect();
        if !unknown.is_empty() {
            tracing::debug!(?unknown, "ignored parameters this endpoint does not use");
        }
    }
}

/// Country filter values may be names or codes; the core filters on codes.
fn country_values(key: &str, op: FilterOp, values: Vec<String>) -> Result<(FilterOp, Vec<String>)> {
    if op == FilterOp::Contains {
        // Each code once, however many of the values it contains (`contains:a,an,…`).
        let codes: Vec<String> = values
            .iter()
            .flat_map(|v| codes_containing(v))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // No country matches: keep a value no event carries, so the filter selects nothing.
        let codes = if codes.is_empty() {
            vec!["-".to_owned()]
        } else {
            codes
        };
        return Ok((FilterOp::Is, codes));
    }
    let codes = values
        .iter()
        .map(|v| {
            codes_for_value(v).ok_or_else(|| {
                ApiError::bad_param(key, format!("`{v}` is not a country name or ISO code"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((op, codes))
}

/// The date of a UTC midnight (start) or of a UTC `23:59:59` (end, with or without a fraction
/// of nines: `.999`), written with `Z` or a zero offset (`+00:00`): how clients write "this
/// whole day".
fn full_day_utc(s: &str, start: bool) -> Option<NaiveDate> {
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    if t.offset().local_minus_utc() != 0 {
        return None;
    }
    let (hms, nanos) = ((t.hour(), t.minute(), t.second()), t.nanosecond());
    let ok = if start {
        hms == (0, 0, 0) && nanos == 0
    } else {
        hms == (23, 59, 59) && (nanos == 0 || all_nines(nanos))
    };
    ok.then(|| t.date_naive())
}

/// Whether a fraction of a second written in nanoseconds is `.9`, `.99`, … `.999999999`.
fn all_nines(nanos: u32) -> bool {
    let digits = format!("{nanos:09}");
    digits.trim_end_matches('0').chars().all(|c| c == '9') && digits.starts_with('9')
}

fn local_dates(tz: Tz, first: NaiveDate, last: NaiveDate) -> Result<DateRange> {
    if last < first {
        return Err(ApiError::bad_param("endAt", "must not be before startAt"));
    }
    let end = last
        .succ_opt()
        .ok_or_else(|| ApiError::bad_param("endAt", "is out of range"))?;
    Ok(DateRange {
        start: local_day_start(tz, first),
        end: local_day_start(tz, end),
    })
}

/// One bound: a date, a date-time with offset, or a local date-time. `end` bounds are made
/// exclusive.
fn parse_instant(name: &str, s: &str, tz: Tz, end: bool) -> Result<DateTime<Utc>> {
    let bad = || {
        ApiError::bad_param(
            name,
            format!(
                "`{s}` is not an ISO 8601 date (2024-01-31) or date-time (2024-01-31T23:59:59Z)"
            ),
        )
    };
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end {
            d.succ_opt().ok_or_else(bad)?
        } else {
            d
        };
        return Ok(local_day_start(tz, day));
    }
    let (t, has_fraction) = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        (t.with_timezone(&Utc), t.timestamp_subsec_nanos() != 0)
    } else {
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| bad())?;
        let t = tz
            .from_local_datetime(&naive)
            .earliest()
            .ok_or_else(bad)?
            .with_timezone(&Utc);
        (t, naive.and_utc().timestamp_subsec_nanos() != 0)
    };
    if !end {
        return Ok(t);
    }
    let step = if has_fraction {
        Duration::milliseconds(1)
    } else {
        Duration::seconds(1)
    };
    // The last representable instant has no end after it.
    t.checked_add_signed(step).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(q)
    }

    #[test]
    fn whole_utc_days_are_read_as_local_dates_however_they_are_written() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let want = p("startAt=2024-01-01&endAt=2024-01-31")
            .date_range(tz)
            .unwrap();
        for q in [
            "startAt=2024-01-01T00:00:00Z&endAt=2024-01-31T23:59:59Z",
            "startAt=2024-01-01T00:00:00.000Z&endAt=2024-01-31T23:59:59.999Z",
            "startAt=2024-01-01T00:00:00+00:00&endAt=2024-01-31T23:59:59.999+00:00",
            "startAt=2024-01-01T00:00:00%2B00:00&endAt=2024-01-31T23:59:59.999999%2B00:00",
        ] {
            assert_eq!(p(q).date_range(tz).unwrap(), want, "{q}");
        }
        // Not a whole day: an instant range.
        let r = p("startAt=2024-01-01T00:00:00Z&endAt=2024-01-31T23:59:59.5Z")
            .date_range(tz)
            .unwrap()
            .unwrap();
        assert_eq!(r.start.to_rfc3339(), "2024-01-01T00:00:00+00:00");
    }

    #[test]
    fn a_shown_end_is_the_last_instant_included() {
        let shown = |q: &str| {
            p(q).date_range_shown(chrono_tz::UTC)
                .unwrap()
                .unwrap()
                .1
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        assert_eq!(
            shown("startAt=2023-01-01T00:00:00Z&endAt=2023-01-31T23:59:59Z"),
            "2023-01-31T23:59:59.000Z"
        );
        assert_eq!(
            shown("startAt=2023-01-01&endAt=2023-01-31"),
            "2023-01-31T23:59:59.000Z"
        );
        assert_eq!(
            shown("startAt=2023-01-01T00:00:00Z&endAt=2023-01-31T12:00:00.250Z"),
            "2023-01-31T12:00:00.250Z"
        );
    }

    #[test]
    fn the_last_representable_instant_is_a_400_not_a_panic() {
        for q in [
            "startAt=2024-01-01&endAt=+262143-12-31T23:59:59Z",
            "startAt=2024-01-01&endAt=+262143-12-31T23:59:59",
            "startAt=2024-01-01&endAt=+262143-12-31",
        ] {
            let err = p(q).date_range(chrono_tz::UTC).unwrap_err();
            assert_eq!(err.status, 400, "{q}");
        }
    }

    #[test]
    fn dates_are_local_days_and_the_end_is_inclusive() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let r = p("startAt=2024-01-01&endAt=2024-01-31")
            .date_range(tz)
            .unwrap()
            .unwrap();
        assert_eq!(r.start.to_rfc3339(), "2024-01-01T05:00:00+00:00");
        assert_eq!(r.end.to_rfc3339(), "2024-02-01T05:00:00+00:00");
    }

    #[test]
    fn a_full_day_utc_pair_is_read_as_dates_in_the_zone() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        let r = p("startAt=2025-12-17T00:00:00Z&endAt=2025-12-19T23:59:59Z")
            .date_range(tz)
            .unwrap()
            .unwrap();
        assert_eq!(r.start.to_rfc3339(), "2025-12-16T18:30:00+00:00");
        assert_eq!(r.end.to_rfc3339(), "2025-12-19T18:30:00+00:00");
    }

    #[test]
    fn instants_keep_their_offset_and_end_inclusive() {
        let r = p("startAt=2024-01-01T10:00:00%2B02:00&endAt=2024-01-01T12:00:00Z")
            .date_range(Tz::UTC)
            .unwrap()
            .unwrap();
        assert_eq!(r.start.to_rfc3339(), "2024-01-01T08:00:00+00:00");
        assert_eq!(r.end.to_rfc3339(), "2024-01-01T12:00:01+00:00");
    }

    #[test]
    fn one_bound_alone_names_both() {
        let e = p("startAt=2024-01-01").date_range(Tz::UTC).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains("startAt") && e.message.contains("endAt"),
            "{}",
            e.message
        );
        assert!(
            p("endAt=2024-01-01")
                .date_range(Tz::UTC)
                .unwrap_err()
                .message
                .contains("startAt")
        );
        assert!(
            p("startAt=2024-02-01&endAt=2024-01-01")
                .date_range(Tz::UTC)
                .unwrap_err()
                .message
                .contains("endAt")
        );
        assert!(
            p("startAt=yesterday&endAt=2024-01-01")
                .date_range(Tz::UTC)
                .unwrap_err()
                .message
                .contains("startAt")
        );
    }

    #[test]
    fn filters_parse_with_names_and_errors_name_the_parameter() {
        let many = p(&format!(
            "filter_country=contains:{}",
            vec!["a"; 100].join(",")
        ))
        .filters()
        .unwrap();
        let mut codes = many[0].values.clone();
        codes.dedup();
        assert_eq!(codes, many[0].values, "each code once");
        assert!(codes.len() < 250);
        let f = p("filter_country=is:United States of America,Canada&filter_page=contains:/blog")
            .filters()
            .unwrap();
        assert_eq!(f[0].values, ["US", "CA"]);
        // The documentation's own example (issue 15, item 1).
        let seed = p("filter_country=is:United States,Canada")
            .filters()
            .unwrap();
        assert_eq!(seed[0].values, ["US", "CA"]);
        assert_eq!(
            (f[1].dimension, f[1].op),
            (Dimension::Page, FilterOp::Contains)
        );
        for (q, name) in [
            ("filter_colour=is:red", "filter_colour"),
            ("filter_device=maybe:mobile", "filter_device"),
            ("filter_device=is:", "filter_device"),
            ("filter_device=mobile", "filter_device"),
            ("filter_country=is:Narnia", "filter_country"),
        ] {
            let e = p(q).filters().unwrap_err();
            assert!(e.message.contains(name), "{q}: {}", e.message);
        }
    }

    #[test]
    fn paging_fields_and_repeats() {
        assert_eq!(p("").paging().unwrap(), Paging::default());
        assert!(p("limit=0").paging().unwrap_err().message.contains("limit"));
        assert!(
            p("limit=1001")
                .paging()
                .unwrap_err()
                .message
                .contains("limit")
        );
        assert!(
            p("offset=-1")
                .paging()
                .unwrap_err()
                .message
                .contains("offset")
        );
        assert!(
            p("limit=1&limit=2")
                .paging()
                .unwrap_err()
                .message
                .contains("limit")
        );
        assert_eq!(
            p("fields=visitors,visitors")
                .fields(&["visitors"])
                .unwrap()
                .unwrap(),
            ["visitors"]
        );
        assert!(
            p("fields=visits")
                .fields(&["visitors"])
                .unwrap_err()
                .message
                .contains("visits")
        );
        assert!(
            p("timezone=Mars/Base")
                .timezone("UTC")
                .unwrap_err()
                .message
                .contains("timezone")
        );
    }
}

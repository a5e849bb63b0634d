//! ECB euro reference rates, for payments made in another currency than the website's.
//!
//! The European Central Bank's daily reference rates (1 EUR = x units, 1999 onwards) are
//! embedded from `crates/core/data/eurofxref-hist.csv` (source and terms in that folder's
//! README) and parsed on first use. An amount in A becomes `amount / rate(A) * rate(B)` in B,
//! with the rates of the payment's day or, on a weekend or holiday, of the last business day
//! before it. A payment after the table's last day uses its last rates; before 1999 there is
//! none.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::NaiveDate;

/// How many business days back a rate may come from when the currency was not quoted on the
/// payment's day (a gap in the table, not a currency the ECB stopped quoting years ago).
const MAX_STALE_ROWS: usize = 5;

/// The parsed table.
#[derive(Debug, Default)]
struct EcbRates {
    /// Column of each currency in `rows`.
    columns: HashMap<String, usize>,
    /// Business days, ascending, with each currency's rate (`None` where not quoted).
    rows: Vec<(NaiveDate, Vec<Option<f64>>)>,
}

static TABLE: LazyLock<EcbRates> =
    LazyLock::new(|| EcbRates::parse(include_str!("../data/eurofxref-hist.csv")));

impl EcbRates {
    fn parse(csv: &str) -> Self {
        let mut lines = csv.lines();
        let Some(header) = lines.next() else {
            return EcbRates::default();
        };
        let columns = header
            .split(',')
            .skip(1)
            .enumerate()
            .filter(|(_, code)| !code.trim().is_empty())
            .map(|(i, code)| (code.trim().to_owned(), i))
            .collect();
        let mut rows: Vec<(NaiveDate, Vec<Option<f64>>)> = lines
            .filter_map(|line| {
                let mut cells = line.split(',');
                let day = NaiveDate::parse_from_str(cells.next()?.trim(), "%Y-%m-%d").ok()?;
                let rates = cells
                    .map(|c| c.trim().parse::<f64>().ok().filter(|r| *r > 0.0))
                    .collect();
                Some((day, rates))
            })
            .collect();
        rows.sort_by_key(|(day, _)| *day);
        EcbRates { columns, rows }
    }

    /// Units of `currency` per euro on `day` (or the last business day before it).
    fn per_euro(&self, currency: &str, day: NaiveDate) -> Option<f64> {
        if currency == "EUR" {
            return Some(1.0);
        }
        let column = *self.columns.get(currency)?;
        let upto = self.rows.partition_point(|(d, _)| *d <= day);
        self.rows[..upto]
            .iter()
            .rev()
            .take(MAX_STALE_ROWS)
            .find_map(|(_, rates)| rates.get(column).copied().flatten())
    }
}

/// `amount` in `from` expressed in `to`, at the ECB reference rates of `day`; `None` when the
/// table has no rate for one of them then.
pub fn convert(amount: f64, from: &str, to: &str, day: NaiveDate) -> Option<f64> {
    if from == to {
        return Some(amount);
    }
    let table = &*TABLE;
    Some(amount / table.per_euro(from, day)? * table.per_euro(to, day)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn rates_of_the_day_or_the_business_day_before() {
        // 2026-10-30 (a Friday): 1 EUR = 1.1172 USD = 0.8338 GBP.
        let friday = day("2026-10-30");
        assert_eq!(convert(100.0, "EUR", "USD", friday), Some(100.0 * 1.1172));
        let gbp_to_usd = convert(10.0, "GBP", "USD", friday).unwrap();
        assert!((gbp_to_usd - 10.0 / 0.8338 * 1.1172).abs() < 1e-9);
        // The weekend after, and days past the table, use Friday's rates.
        assert_eq!(convert(1.0, "EUR", "USD", day("2026-11-01")), Some(1.1172));
        assert_eq!(convert(1.0, "EUR", "USD", day("2026-11-24")), Some(1.1172));
        // 1999-01-04 is the first day of the table.
        assert_eq!(convert(1.0, "EUR", "USD", day("1999-01-04")), Some(1.1789));
        assert_eq!(convert(1.0, "EUR", "USD", day("1998-12-31")), None);
    }

    #[test]
    fn unknown_or_long_unquoted_currencies_have_no_rate() {
        assert_eq!(convert(1.0, "XYZ", "USD", day("2025-01-10")), None);
        // The Cyprus pound was replaced by the euro in 2008.
        assert_eq!(convert(1.0, "CYP", "EUR", day("2025-01-10")), None);
        assert!(convert(1.0, "CYP", "EUR", day("2005-06-01")).is_some());
        assert_eq!(convert(7.0, "JPY", "JPY", day("1990-01-01")), Some(7.0));
    }
}

//! Currency symbols (`USD` → `$`), as the overview and time series show them.
//!
//! Every ISO 4217 currency's symbol comes from the `iso_currency` crate. A few are overridden
//! where the crate's symbol would be mistaken for another currency's on a dashboard (`$` for
//! the Canadian dollar) or is rarely used (`₣` for the Swiss franc): those are shown the way
//! browsers' `Intl.NumberFormat` shows them in English.

use iso_currency::Currency;

/// Symbols shown instead of the crate's.
const OVERRIDES: &[(&str, &str)] = &[
    ("AUD", "A$"),
    ("BRL", "R$"),
    ("CAD", "CA$"),
    ("CHF", "CHF"),
    ("HKD", "HK$"),
    ("MXN", "MX$"),
    ("NZD", "NZ$"),
    ("SGD", "S$"),
];

/// The symbol of an ISO 4217 code; the code itself for a code that is not a currency or a
/// currency without a symbol.
pub fn currency_symbol(code: &str) -> String {
    if let Some((_, symbol)) = OVERRIDES.iter().find(|(c, _)| *c == code) {
        return (*symbol).to_owned();
    }
    Currency::from_code(code)
        .map(|c| c.symbol().symbol)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iso_currency_has_a_symbol_or_its_code() {
        assert_eq!(currency_symbol("USD"), "$");
        assert_eq!(currency_symbol("EUR"), "€");
        assert_eq!(currency_symbol("GBP"), "£");
        assert_eq!(currency_symbol("JPY"), "¥");
        assert_eq!(currency_symbol("CAD"), "CA$");
        // Beyond the 30 the old hand-written table knew.
        assert_eq!(currency_symbol("KES"), "Ksh");
        assert_eq!(currency_symbol("XYZ"), "XYZ");
    }
}

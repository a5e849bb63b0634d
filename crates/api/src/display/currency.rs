//! Currency symbols (`USD` → `$`), as the overview and time series show them.

/// The symbol of an ISO 4217 code; the code itself for currencies without a common symbol.
pub fn currency_symbol(code: &str) -> String {
    let symbol = match code {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "CNY" => "¥",
        "INR" => "₹",
        "KRW" => "₩",
        "RUB" => "₽",
        "TRY" => "₺",
        "BRL" => "R$",
        "CAD" => "CA$",
        "AUD" => "A$",
        "NZD" => "NZ$",
        "MXN" => "MX$",
        "HKD" => "HK$",
        "SGD" => "S$",
        "CHF" => "CHF",
        "SEK" | "NOK" | "DKK" => "kr",
        "PLN" => "zł",
        "ILS" => "₪",
        "UAH" => "₴",
        "VND" => "₫",
        "PHP" => "₱",
        "THB" => "฿",
        "NGN" => "₦",
        "ZAR" => "R",
        _ => code,
    };
    symbol.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_codes_have_symbols() {
        assert_eq!(currency_symbol("USD"), "$");
        assert_eq!(currency_symbol("EUR"), "€");
        assert_eq!(currency_symbol("XYZ"), "XYZ");
    }
}

//! Country names and flags.
//!
//! Names are the ones people use (`United States`, `South Korea`, `Russia`, as the DataFast
//! documentation shows them), falling back to the ISO 3166-1 short names of the `isocountry`
//! crate. A filter value may be a code, the shown name, the ISO name or a common alias (`USA`,
//! `UK`, `Great Britain`, `Ivory Coast`, …). Flags are the SVGs the documentation links to.

use isocountry::CountryCode;

/// Where the documented flag images live (`…/3x2/US.svg`).
pub const FLAG_BASE_URL: &str = "https://purecatamphetamine.github.io/country-flag-icons/3x2";

/// Names shown instead of the ISO short name (which is often the formal one, `Korea (Republic
/// of)`).
const DISPLAY_OVERRIDES: &[(&str, &str)] = &[
    ("BN", "Brunei"),
    ("BO", "Bolivia"),
    ("CD", "DR Congo"),
    ("CV", "Cape Verde"),
    ("FK", "Falkland Islands"),
    ("FM", "Micronesia"),
    ("GB", "United Kingdom"),
    ("IR", "Iran"),
    ("KP", "North Korea"),
    ("KR", "South Korea"),
    ("LA", "Laos"),
    ("MD", "Moldova"),
    ("MF", "Saint Martin"),
    ("MK", "North Macedonia"),
    ("PS", "Palestine"),
    ("RU", "Russia"),
    ("SX", "Sint Maarten"),
    ("SY", "Syria"),
    ("SZ", "Eswatini"),
    ("TW", "Taiwan"),
    ("TZ", "Tanzania"),
    ("US", "United States"),
    ("VA", "Vatican City"),
    ("VE", "Venezuela"),
    ("VG", "British Virgin Islands"),
    ("VI", "U.S. Virgin Islands"),
    ("VN", "Vietnam"),
];

/// Other names a filter value may use for a country.
const ALIASES: &[(&str, &str)] = &[
    ("America", "US"),
    ("Britain", "GB"),
    ("Burma", "MM"),
    ("Czech Republic", "CZ"),
    ("Democratic Republic of the Congo", "CD"),
    ("East Timor", "TL"),
    ("England", "GB"),
    ("Great Britain", "GB"),
    ("Holland", "NL"),
    ("Hong Kong SAR", "HK"),
    ("Ivory Coast", "CI"),
    ("Korea", "KR"),
    ("Macau", "MO"),
    ("Macedonia", "MK"),
    ("Republic of Korea", "KR"),
    ("Republic of the Congo", "CG"),
    ("Swaziland", "SZ"),
    ("Türkiye", "TR"),
    ("Turkiye", "TR"),
    ("U.S.", "US"),
    ("U.S.A.", "US"),
    ("UAE", "AE"),
    ("UK", "GB"),
    ("United States", "US"),
    ("USA", "US"),
    ("Vatican", "VA"),
];

/// The display name of an ISO alpha-2 code; the code itself when it is not a known country.
pub fn country_name(code: &str) -> String {
    if let Some((_, name)) = DISPLAY_OVERRIDES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
    {
        return (*name).to_owned();
    }
    CountryCode::for_alpha2_caseless(code).map_or_else(|_| code.to_owned(), |c| c.name().to_owned())
}

/// The flag image URL of an ISO alpha-2 code.
pub fn flag_url(code: &str) -> String {
    format!("{FLAG_BASE_URL}/{}.svg", code.to_ascii_uppercase())
}

/// The alpha-2 codes a filter value names: an alpha-2 or alpha-3 code, or a country name
/// (the display name or the ISO name, any case). `None` when it names no country.
pub fn codes_for_value(value: &str) -> Option<String> {
    let v = value.trim();
    if let Ok(c) = CountryCode::for_alpha2_caseless(v) {
        return Some(c.alpha2().to_owned());
    }
    if let Ok(c) = CountryCode::for_alpha3_caseless(v) {
        return Some(c.alpha2().to_owned());
    }
    if let Some((_, code)) = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(v))
    {
        return Some((*code).to_owned());
    }
    CountryCode::iter()
        .find(|c| {
            c.name().eq_ignore_ascii_case(v) || country_name(c.alpha2()).eq_ignore_ascii_case(v)
        })
        .map(|c| c.alpha2().to_owned())
}

/// Alpha-2 codes of every country whose display name contains `needle`, ignoring case.
pub fn codes_containing(needle: &str) -> Vec<String> {
    let needle = needle.to_lowercase();
    CountryCode::iter()
        .filter(|c| {
            country_name(c.alpha2()).to_lowercase().contains(&needle)
                || c.alpha2().eq_ignore_ascii_case(&needle)
        })
        .map(|c| c.alpha2().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_documentation() {
        assert_eq!(country_name("US"), "United States");
        assert_eq!(country_name("KR"), "South Korea");
        assert_eq!(country_name("VN"), "Vietnam");
        assert_eq!(country_name("FR"), "France");
        assert_eq!(country_name("GB"), "United Kingdom");
        assert_eq!(country_name("DE"), "Germany");
        assert_eq!(country_name("ES"), "Spain");
        assert_eq!(
            flag_url("us"),
            "https://purecatamphetamine.github.io/country-flag-icons/3x2/US.svg"
        );
    }

    #[test]
    fn filter_values_may_be_names_or_codes() {
        for (value, code) in [
            ("United States", "US"),
            ("USA", "US"),
            ("UK", "GB"),
            ("great britain", "GB"),
            ("South Korea", "KR"),
            ("Korea (Republic of)", "KR"),
            ("Russia", "RU"),
            ("Russian Federation", "RU"),
            ("Vietnam", "VN"),
            ("Viet Nam", "VN"),
            ("Iran", "IR"),
            ("Ivory Coast", "CI"),
        ] {
            assert_eq!(codes_for_value(value).as_deref(), Some(code), "{value}");
        }
        assert_eq!(
            codes_for_value("United States of America").as_deref(),
            Some("US")
        );
        assert_eq!(codes_for_value("canada").as_deref(), Some("CA"));
        assert_eq!(codes_for_value("us").as_deref(), Some("US"));
        assert_eq!(codes_for_value("DEU").as_deref(), Some("DE"));
        assert_eq!(codes_for_value("United Kingdom").as_deref(), Some("GB"));
        assert_eq!(codes_for_value("Narnia"), None);
        assert!(codes_containing("united").contains(&"GB".to_owned()));
    }
}

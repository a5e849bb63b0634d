//! Websites and their settings, persisted in the catalog.
//!
//! Every event and every query names its website. A website's time zone is the default zone of
//! its queries, its currency is the one revenue is reported in (payments in other currencies are
//! converted with `exchange_rates` at ingest), and `include_renewal_revenue` decides whether the
//! time series conversion rate counts renewals (DESIGN §4).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A website and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Website {
    /// Identifier: 1–64 ASCII letters, digits, `_` or `-` (it names a directory).
    pub id: String,
    /// The site's domain (`example.com`); referrers from it count as direct traffic.
    pub domain: String,
    /// Display name.
    pub name: String,
    /// IANA time zone of the site, the default zone of its queries.
    pub timezone: String,
    /// ISO 4217 code revenue is reported in.
    pub currency: String,
    /// Whether renewals count in the time series conversion rate.
    pub include_renewal_revenue: bool,
    /// Units of `currency` per one unit of another currency (`{"EUR": 1.08}` for a USD site).
    #[serde(default)]
    pub exchange_rates: BTreeMap<String, f64>,
    /// Other hostnames that belong to the site (same-site referrers, tracker domains).
    #[serde(default)]
    pub allowed_hostnames: Vec<String>,
    /// The goal shown as the site's KPI.
    #[serde(default)]
    pub kpi: Option<String>,
    /// The KPI colour scheme.
    #[serde(default = "default_color")]
    pub kpi_color_scheme: String,
    /// Payment providers marked connected (`stripe`, `lemonsqueezy`, `polar`, `paddle`,
    /// `shopify`, `woocommerce`).
    #[serde(default)]
    pub connected_providers: Vec<String>,
    /// When the Paddle API key expires, if known.
    #[serde(default)]
    pub paddle_key_expires_at: Option<String>,
    /// The site's logo URL (for dashboards; `metadata?fields=…,logo`).
    #[serde(default)]
    pub logo: Option<String>,
}

/// Payment providers the integrations endpoint reports on.
pub const PAYMENT_PROVIDERS: [&str; 6] = [
    "stripe",
    "lemonsqueezy",
    "polar",
    "paddle",
    "shopify",
    "woocommerce",
];

fn default_color() -> String {
    "orange".to_owned()
}

impl Website {
    /// A website with default settings: UTC, USD, renewals included.
    pub fn new(id: impl Into<String>, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        Website {
            id: id.into(),
            name: domain.clone(),
            domain,
            timezone: "UTC".to_owned(),
            currency: "USD".to_owned(),
            include_renewal_revenue: true,
            exchange_rates: BTreeMap::new(),
            allowed_hostnames: Vec::new(),
            kpi: None,
            kpi_color_scheme: default_color(),
            connected_providers: Vec::new(),
            paddle_key_expires_at: None,
            logo: None,
        }
    }

    /// The parsed time zone.
    pub fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::invalid(
                "website_id",
                "must be 1 to 64 ASCII letters, digits, `_` or `-`",
            ));
        }
        if self.domain.trim().is_empty() {
            return Err(Error::invalid("domain", "must not be empty"));
        }
        parse_timezone(&self.timezone)?;
        if let Some(p) = self
            .connected_providers
            .iter()
            .find(|p| !PAYMENT_PROVIDERS.contains(&p.as_str()))
        {
            return Err(Error::invalid(
                "connected_providers",
                format!("`{p}` is not one of {}", PAYMENT_PROVIDERS.join(", ")),
            ));
        }
        check_currency("currency", &self.currency)?;
        for (code, rate) in &self.exchange_rates {
            check_currency("exchange_rates", code)?;
            if !rate.is_finite() || *rate <= 0.0 {
                return Err(Error::invalid(
                    "exchange_rates",
                    format!("rate for {code} must be a positive number"),
                ));
            }
        }
        Ok(())
    }

    /// Converts `amount` in `currency`, paid on `day`, to the website currency: at the rate in
    /// the website settings when there is one, else at the ECB reference rate of that day
    /// ([`crate::rates`]).
    pub fn convert(&self, amount: f64, currency: &str, day: chrono::NaiveDate) -> Result<f64> {
        if currency == self.currency {
            return Ok(amount);
        }
        if let Some(rate) = self.exchange_rates.get(currency) {
            return Ok(amount * rate);
        }
        crate::rates::convert(amount, currency, &self.currency, day).ok_or_else(|| {
            Error::invalid(
                "currency",
                format!(
                    "no exchange rate from {currency} to {} on {day}: neither in the ECB reference rates nor in the website settings",
                    self.currency
                ),
            )
        })
    }

    /// The hosts whose referrers count as the site itself.
    pub fn site_hosts(&self) -> Vec<&str> {
        std::iter::once(self.domain.as_str())
            .chain(self.allowed_hostnames.iter().map(String::as_str))
            .collect()
    }
}

/// Parses an IANA zone name, with an error that names `timezone`.
pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|_| Error::invalid("timezone", format!("`{name}` is not an IANA time zone")))
}

fn check_currency(field: &str, code: &str) -> Result<()> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{code}` is not a three-letter ISO 4217 code"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_uses_the_rate_or_names_the_currency() {
        let mut w = Website::new("w", "example.com");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 10, 30).unwrap();
        w.exchange_rates.insert("EUR".into(), 1.5);
        assert_eq!(w.convert(10.0, "USD", day).unwrap(), 10.0);
        // The operator's rate wins over the ECB's.
        assert_eq!(w.convert(10.0, "EUR", day).unwrap(), 15.0);
        // Without one, the ECB rate of the day: 1 EUR = 0.8338 GBP = 1.1172 USD.
        let gbp = w.convert(1.0, "GBP", day).unwrap();
        assert!((gbp - 1.1172 / 0.8338).abs() < 1e-9, "{gbp}");
        let err = w.convert(1.0, "XYZ", day).unwrap_err().to_string();
        assert!(err.contains("XYZ") && err.contains("currency"), "{err}");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut w = Website::new("w/..", "example.com");
        assert!(w.validate().unwrap_err().to_string().contains("website_id"));
        w.id = "ok".into();
        w.timezone = "Mars/Olympus".into();
        assert!(w.validate().unwrap_err().to_string().contains("timezone"));
    }
}

//! Website metadata and payment integrations.

use serde::Serialize;

/// `GET /analytics/metadata` row.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The website domain.
    pub domain: String,
    /// IANA zone.
    pub timezone: String,
    /// Display name.
    pub name: String,
    /// KPI colour scheme.
    pub kpi_color_scheme: String,
    /// KPI goal, or null.
    pub kpi: Option<String>,
    /// Currency code (`USD`).
    pub currency: String,
    /// Logo URL, or null; written only when `fields` asks for it (the seed's shape has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<Option<String>>,
}

impl From<&tally_core::Website> for Metadata {
    fn from(w: &tally_core::Website) -> Self {
        Metadata {
            domain: w.domain.clone(),
            timezone: w.timezone.clone(),
            name: w.name.clone(),
            kpi_color_scheme: w.kpi_color_scheme.clone(),
            kpi: w.kpi.clone(),
            currency: w.currency.clone(),
            logo: None,
        }
    }
}

/// `{"connected": bool}`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Connection {
    /// Whether the provider is connected.
    pub connected: bool,
}

/// Paddle's connection, with its key expiry.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaddleConnection {
    /// Whether Paddle is connected.
    pub connected: bool,
    /// Key expiry, when known.
    pub key_expires_at: Option<String>,
}

/// `GET /admin/websites/{id}/integrations` row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Integrations {
    /// Stripe.
    pub stripe: Connection,
    /// Lemon Squeezy.
    pub lemonsqueezy: Connection,
    /// Polar.
    pub polar: Connection,
    /// Paddle.
    pub paddle: PaddleConnection,
    /// Shopify.
    pub shopify: Connection,
    /// WooCommerce.
    pub woocommerce: Connection,
    /// Currency code.
    pub currency: String,
}

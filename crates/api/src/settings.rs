//! `GET /api/v1/admin/websites/{websiteId}/integrations`: payment provider connections and the
//! currency, from the website's settings.

use tally_core::Engine;

use crate::error::{Result, to_json};
use crate::response::Success;
use crate::response::website::{Connection, Integrations, PaddleConnection};

/// The integrations answer of `website`.
pub fn integrations(engine: &Engine, website: &str) -> Result<String> {
    let w = engine.website(website)?;
    let on = |p: &str| Connection {
        connected: w.connected_providers.iter().any(|c| c == p),
    };
    to_json(&Success::new([Integrations {
        stripe: on("stripe"),
        lemonsqueezy: on("lemonsqueezy"),
        polar: on("polar"),
        paddle: PaddleConnection {
            connected: on("paddle").connected,
            key_expires_at: w.paddle_key_expires_at.clone(),
        },
        shopify: on("shopify"),
        woocommerce: on("woocommerce"),
        currency: w.currency.clone(),
    }]))
}

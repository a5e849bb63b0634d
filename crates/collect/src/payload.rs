//! The JSON the DataFast tracker SDK (`datafast` on npm, 3.x) POSTs to `/api/events`, as its
//! `dist/web/index.js` builds it (`buildBasePayload` plus the `extraData` of each call).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One tracker event as sent. Fields Tally does not store (`language`, `timezone`, screen
/// size, `visitorFirstSeenAt`, `visitorSessionNumber`, `device`) are accepted and ignored;
/// unknown fields are ignored too, so a newer SDK keeps working.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackerPayload {
    /// The website the event belongs to.
    pub website_id: String,
    /// The hostname the tracker runs on (the SDK's `domain` option or `location.hostname`).
    #[serde(default)]
    pub domain: Option<String>,
    /// The visitor id the SDK keeps; a fresh random one per event in cookieless mode.
    #[serde(default)]
    pub visitor_id: Option<String>,
    /// The SDK's session id (`s` + a UUID, 30 minutes of inactivity).
    #[serde(default)]
    pub session_id: Option<String>,
    /// The page URL; for events other than page views, the last page's URL.
    pub href: String,
    /// `document.referrer` on the first page view, the previous page on later ones.
    #[serde(default)]
    pub referrer: Option<String>,
    /// `pageview`, `custom`, `identify`, `payment` or `external_link`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Window size in CSS pixels.
    #[serde(default)]
    pub viewport: Option<Viewport>,
    /// The call's data: `eventName` and properties, `user_id`, payment identifiers, link url.
    #[serde(default)]
    pub extra_data: Option<Map<String, Value>>,
    /// Ad click ids (`gclid`, `fbclid`, …) the SDK found in the URL.
    #[serde(default)]
    pub ad_click_ids: Option<BTreeMap<String, String>>,
    /// Set by the SDK's cookieless mode: the visitor id must come from the server.
    #[serde(default)]
    pub cookieless: Option<bool>,
}

/// The `viewport` object.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Viewport {
    /// Width in CSS pixels.
    #[serde(default)]
    pub width: Option<f64>,
    /// Height in CSS pixels.
    #[serde(default)]
    pub height: Option<f64>,
}

impl TrackerPayload {
    /// Parses a request body. The error names the field at fault (`extraData.amount: invalid
    /// type …`) or says where the JSON breaks.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                Error::Payload(inner.to_string())
            } else {
                Error::Payload(format!("`{path}`: {inner}"))
            }
        })
    }

    /// A string member of `extraData`, `None` when absent or empty.
    pub fn extra_str(&self, key: &str) -> Option<String> {
        match self.extra_data.as_ref()?.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The members of `extraData` other than `skip`, as strings (numbers and booleans are
    /// written out; null becomes the empty string; objects and arrays as JSON).
    pub fn extra_properties(&self, skip: &[&str]) -> BTreeMap<String, String> {
        let Some(extra) = &self.extra_data else {
            return BTreeMap::new();
        };
        extra
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_its_field() {
        let err = TrackerPayload::from_json(
            br#"{"websiteId":"w","href":"https://a.com/","type":"pageview","viewport":{"width":"x"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("viewport.width"), "{err}");
        let err = TrackerPayload::from_json(br#"{"websiteId":"w","type":"pageview"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("href"), "{err}");
        let err = TrackerPayload::from_json(b"{not json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid payload"), "{err}");
    }
}

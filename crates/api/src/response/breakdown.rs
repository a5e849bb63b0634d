//! The eleven breakdowns, each with its own key names.

use serde::Serialize;

use crate::display::money::Rounded;

/// `{"<key>": value, "visitors": n, "revenue": x}` for devices, referrers, regions, cities,
/// browsers, operating systems and hostnames; the key name is the endpoint's.
#[derive(Debug, Serialize)]
pub struct ValueRow {
    /// The key and its value, flattened in first position.
    #[serde(flatten)]
    pub value: KeyValue,
    /// Distinct visitors.
    pub visitors: u64,
    /// Their revenue.
    pub revenue: Rounded,
}

/// One `"key": "value"` pair, serialized as a map so rows keep the documented key name.
#[derive(Debug)]
pub struct KeyValue {
    /// `device`, `referrer`, `region`, `city`, `browser`, `operating_system` or `hostname`.
    pub key: &'static str,
    /// The value.
    pub value: String,
}

impl Serialize for KeyValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.key, &self.value)?;
        m.end()
    }
}

/// A page row.
#[derive(Debug, Serialize)]
pub struct PageRow {
    /// Page hostname.
    pub hostname: String,
    /// Page path.
    pub path: String,
    /// Distinct visitors.
    pub visitors: u64,
    /// Their revenue.
    pub revenue: Rounded,
}

/// A country row with its display name and flag.
#[derive(Debug, Serialize)]
pub struct CountryRow {
    /// ISO short name.
    pub country: String,
    /// Flag SVG URL.
    pub image: String,
    /// Distinct visitors.
    pub visitors: u64,
    /// Their revenue.
    pub revenue: Rounded,
}

/// The campaign fields of a campaign row; fields not asked for are left out.
#[derive(Debug, Default, Serialize)]
#[allow(missing_docs)]
pub struct Campaign {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// A campaign row.
#[derive(Debug, Serialize)]
pub struct CampaignRow {
    /// The campaign's fields (`""` where empty).
    pub campaign: Campaign,
    /// Distinct visitors.
    pub visitors: u64,
    /// Their revenue.
    pub revenue: Rounded,
}

/// A goal row; `fields=name,completions` leaves `visitors` out (`name` is the `goal` key).
#[derive(Debug, Serialize)]
pub struct GoalRow {
    /// Goal name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Goal events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<u64>,
    /// Distinct visitors who completed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitors: Option<u64>,
}

//! Realtime, the realtime map, and the visitor profile.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::display::money::Rounded;

/// `GET /analytics/realtime` row.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Realtime {
    /// Distinct visitors with an event in the last 5 minutes.
    pub visitors: u64,
}

/// `{"name": …}`.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    /// The name, or null when unknown.
    pub name: Option<String>,
}

/// `{"name": …, "version": …}`.
#[derive(Debug, Clone, Serialize)]
pub struct NamedVersion {
    /// The name.
    pub name: Option<String>,
    /// The version.
    pub version: Option<String>,
}

/// The eight first-session parameters; the realtime map writes all eight, the visitor
/// profile leaves out `via`.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(missing_docs)]
pub struct Params {
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Option<String>>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
}

/// A visitor on the realtime map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapVisitor {
    /// Visitor id.
    pub visitor_id: String,
    /// Where they are.
    pub location: MapLocation,
    /// What they use.
    pub system: MapSystem,
    /// Path of their latest page view.
    pub current_url: Option<String>,
    /// Their session's referrer.
    pub referrer: Option<String>,
    /// When their session started.
    pub session_start_time: String,
    /// Their number of sessions.
    pub visit_count: u64,
    /// First-session parameters.
    pub params: Params,
    /// Latitude, when known.
    pub latitude: Option<f64>,
    /// Longitude, when known.
    pub longitude: Option<f64>,
    /// Whether they have paid.
    pub is_customer: bool,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Customer email.
    pub customer_email: Option<String>,
    /// Identity from `identify` events.
    pub profile_data: ProfileData,
    /// Their predicted conversion, when a model exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_likelihood: Option<ConversionLikelihood>,
}

/// `location` of a map visitor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapLocation {
    /// City.
    pub city: Option<String>,
    /// ISO 3166-2 subdivision code (`US-CO`); `null` for events stored without one (the
    /// `regions` breakdown names regions in English).
    pub region: Option<String>,
    /// ISO alpha-2 code.
    pub country_code: Option<String>,
}

/// `system` of a map visitor.
#[derive(Debug, Clone, Serialize)]
pub struct MapSystem {
    /// Browser.
    pub browser: Named,
    /// Operating system.
    pub os: Named,
    /// Device type.
    pub device: DeviceType,
}

/// `{"type": …}`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceType {
    /// `desktop`, `mobile` or `tablet`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `profileData` of a map visitor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileData {
    /// Display name.
    pub display_name: Option<String>,
    /// The site's user id, from `identify`.
    pub user_id: Option<String>,
    /// Whether an `identify` event was seen.
    pub has_profile: bool,
    /// Whether `display_name` is generated.
    pub is_random_name: bool,
}

/// `conversionLikelihood` of a map visitor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionLikelihood {
    /// 0–100, 50 is the site's baseline.
    pub score: u32,
    /// 0–1.
    pub confidence: f64,
    /// No dimension had data: the baseline.
    pub is_baseline: bool,
    /// Dimensions that contributed.
    pub dimension_matches: Vec<String>,
    /// The raw estimates.
    pub raw: RawLikelihood,
}

/// `raw` of `conversionLikelihood`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawLikelihood {
    /// Predicted conversion rate (0–1).
    pub conversion_rate: f64,
    /// Average order value.
    pub average_value: Rounded,
    /// Rate × value.
    pub expected_value: Rounded,
}

/// `conversionMetrics` of the map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionMetrics {
    /// The site's conversion rate (0–1).
    pub baseline_conversion_rate: f64,
    /// The site's average order value.
    pub baseline_average_value: Rounded,
}

/// An event on the map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapEvent {
    /// Event id.
    #[serde(rename = "_id")]
    pub id: String,
    /// `pageview`, a goal name's kind, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Visitor id.
    pub visitor_id: String,
    /// When.
    pub timestamp: String,
    /// Page path.
    pub path: Option<String>,
    /// ISO alpha-2 code.
    pub country_code: Option<String>,
    /// Goal metadata and the like.
    pub extra_data: BTreeMap<String, String>,
    /// Session referrer.
    pub referrer: Option<String>,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Payment amount.
    pub amount: Option<Rounded>,
    /// Visitor display name.
    pub display_name: Option<String>,
}

/// A payment on the map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapPayment {
    /// Event id.
    #[serde(rename = "_id")]
    pub id: String,
    /// `payment_received`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When.
    pub timestamp: String,
    /// Customer name.
    pub name: Option<String>,
    /// Customer email.
    pub email: Option<String>,
    /// Amount.
    pub amount: Rounded,
    /// Currency code.
    pub currency: String,
    /// A renewal.
    pub renewal: bool,
    /// Visitor display name.
    pub display_name: Option<String>,
    /// The customer's first payment.
    pub is_new: bool,
    /// Shown on the map.
    pub visible: bool,
}

/// `GET /analytics/realtime/map` data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeMap {
    /// Number of visitors.
    pub count: u64,
    /// Active visitors (last 10 minutes).
    pub visitors: Vec<MapVisitor>,
    /// The site's baseline, when a model exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_metrics: Option<ConversionMetrics>,
    /// Whether predictions exist.
    pub has_conversion_predictions: bool,
    /// Recent events.
    pub recent_events: Vec<MapEvent>,
    /// Recent payments.
    pub recent_payments: Vec<MapPayment>,
}

/// `GET /visitors/{id}` data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitorProfile {
    /// Visitor id.
    pub visitor_id: String,
    /// From the latest page view.
    pub identity: Identity,
    /// Counts and timing.
    pub activity: Activity,
    /// Null for customers and sites without payments.
    pub prediction: Option<Prediction>,
}

/// `identity` of a visitor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Country code (the documentation shows the code here too).
    pub country: Option<String>,
    /// ISO alpha-2 code.
    pub country_code: Option<String>,
    /// ISO 3166-2 subdivision code (`US-CO`); `null` for events stored without one (the
    /// `regions` breakdown names regions in English).
    pub region: Option<String>,
    /// City.
    pub city: Option<String>,
    /// First-session parameters (without `via`).
    pub params: Params,
    /// Browser.
    pub browser: NamedVersion,
    /// Operating system.
    pub os: NamedVersion,
    /// Device.
    pub device: Device,
    /// Viewport.
    pub viewport: Viewport,
}

/// `device` of an identity.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// `desktop`, `mobile` or `tablet`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Model.
    pub model: Option<String>,
}

/// `viewport` of an identity.
#[derive(Debug, Clone, Serialize)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub width: Option<u32>,
    /// Height in CSS pixels.
    pub height: Option<u32>,
}

/// `activity` of a visitor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Sessions.
    pub visit_count: u64,
    /// Page views.
    pub page_view_count: u64,
    /// Milliseconds since the first visit.
    pub time_since_first_visit: i64,
    /// Milliseconds since the current visit began.
    pub time_since_current_visit: i64,
    /// First event.
    pub first_visit_at: String,
    /// Latest event.
    pub last_visit_at: String,
    /// Latest page (`codefa.st/`).
    pub current_url: Option<String>,
    /// Pages with their times.
    pub visited_pages: Vec<VisitedPage>,
    /// Goals completed.
    pub completed_custom_goals: Vec<CompletedGoal>,
}

/// A visited page.
#[derive(Debug, Clone, Serialize)]
pub struct VisitedPage {
    /// `host/path`.
    pub url: String,
    /// When.
    pub timestamp: String,
}

/// A completed goal.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedGoal {
    /// Goal name.
    pub name: String,
    /// Description, when known.
    pub description: Option<String>,
    /// Created through the API rather than the tracker.
    pub is_server: bool,
    /// When.
    pub timestamp: String,
}

/// `prediction` of a visitor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// 0–100, 50 is the baseline.
    pub score: u32,
    /// Predicted conversion rate (0–1).
    pub conversion_rate: f64,
    /// Rate × average order value.
    pub expected_value: f64,
    /// 0–1.
    pub confidence: f64,
}

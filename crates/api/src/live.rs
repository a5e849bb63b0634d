//! The live endpoints: `GET /analytics/realtime`, `GET /analytics/realtime/map` and
//! `GET /visitors/{id}`, from the engine's live answers to the documented JSON.

use chrono::{DateTime, Utc};
use tally_core::live::{EventRow, LiveVisitor, VisitorActivity, VisitorProfile};
use tally_core::query::model::Prediction as CorePrediction;
use tally_core::referrer::DIRECT;
use tally_core::schema::kind;
use tally_core::{CompactString, Engine, SessionAttrs};

use crate::display::iso_millis;
use crate::display::money::{Rounded, round_to};
use crate::error::{Result, to_json};
use crate::params::Params;
use crate::response::Success;
use crate::response::live::{
    Activity, CompletedGoal, ConversionLikelihood, ConversionMetrics, Device, DeviceType, Identity,
    MapEvent, MapLocation, MapPayment, MapSystem, MapVisitor, Named, NamedVersion,
    Params as SessionParams, Prediction, ProfileData, RawLikelihood, Realtime, RealtimeMap,
    Viewport, VisitedPage, VisitorProfile as ProfileResponse,
};

/// Most events and payments listed on the realtime map.
pub const MAP_EVENTS_LIMIT: usize = 100;

/// `GET /analytics/realtime`: takes no parameters (it is always "now").
pub async fn realtime(
    engine: &Engine,
    website_id: &str,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<String> {
    params.ignore_unknown(&[]);
    let visitors = engine.realtime_visitors(website_id, now).await?;
    to_json(&Success::new([Realtime { visitors }]))
}

/// `GET /analytics/realtime/map`: takes no parameters.
pub async fn realtime_map(
    engine: &Engine,
    website_id: &str,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<String> {
    params.ignore_unknown(&[]);
    let live = engine.live(website_id, now).await?;
    let has_model = live.model.has_payments();
    let profiles: std::collections::HashMap<&str, &VisitorProfile> = live
        .visitors
        .iter()
        .map(|v| (v.visitor_id.as_str(), &v.profile))
        .collect();
    let identified = |visitor: &str| profiles.get(visitor).and_then(|p| p.display_name.clone());
    let recent_events = live
        .events
        .iter()
        .take(MAP_EVENTS_LIMIT)
        .map(|e| MapEvent {
            id: e.event_id.clone(),
            kind: tracker_type(&e.kind).to_owned(),
            visitor_id: e.visitor_id.clone(),
            timestamp: iso_millis(e.ts),
            path: e.path.clone(),
            country_code: text(&e.attrs.country_code),
            extra_data: extra_data(e),
            referrer: referrer_name(&e.attrs),
            customer_name: e.customer_name.clone().or_else(|| {
                profiles
                    .get(e.visitor_id.as_str())
                    .and_then(|p| p.customer_name.clone())
            }),
            amount: e.amount.map(Rounded),
            display_name: identified(&e.visitor_id),
        })
        .collect();
    let recent_payments = live
        .events
        .iter()
        .filter(|e| e.kind == kind::PAYMENT)
        .take(MAP_EVENTS_LIMIT)
        .map(|e| MapPayment {
            id: e.event_id.clone(),
            kind: "payment_received".into(),
            timestamp: iso_millis(e.ts),
            name: e.customer_name.clone(),
            email: e.customer_email.clone(),
            amount: Rounded(e.original_amount.or(e.amount).unwrap_or(0.0)),
            currency: e.original_currency.clone().unwrap_or_default(),
            renewal: e.renewal,
            display_name: identified(&e.visitor_id),
            is_new: profiles
                .get(e.visitor_id.as_str())
                .and_then(|p| p.first_payment_us)
                .is_some_and(|first| first == e.ts.timestamp_micros()),
            visible: !e.refunded,
        })
        .collect();
    let data = RealtimeMap {
        count: live.visitors.len() as u64,
        visitors: live.visitors.iter().map(map_visitor).collect(),
        conversion_metrics: has_model.then(|| ConversionMetrics {
            baseline_conversion_rate: round_to(live.model.baseline_rate(), 4),
            baseline_average_value: Rounded(live.model.baseline_value()),
        }),
        has_conversion_predictions: has_model,
        recent_events,
        recent_payments,
    };
    to_json(&Success::new(data))
}

/// `GET /visitors/{id}`: `Ok(None)` when the website has no event of that visitor.
pub async fn visitor(
    engine: &Engine,
    website_id: &str,
    visitor_id: &str,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    params.ignore_unknown(&[]);
    let Some(v) = engine.visitor(website_id, visitor_id).await? else {
        return Ok(None);
    };
    to_json(&Success::new(visitor_profile(&v, now))).map(Some)
}

fn visitor_profile(v: &VisitorActivity, now: DateTime<Utc>) -> ProfileResponse {
    let latest = v.latest_pageview.as_ref();
    let a = latest.map(|p| &p.attrs);
    let get = |f: fn(&SessionAttrs) -> &Option<CompactString>| a.and_then(|a| text(f(a)));
    let mut params = session_params(&v.first_session);
    params.via = None;
    ProfileResponse {
        visitor_id: v.visitor_id.clone(),
        identity: Identity {
            country: get(|a| &a.country_code),
            country_code: get(|a| &a.country_code),
            region: get(|a| &a.region_code),
            city: get(|a| &a.city),
            params,
            browser: NamedVersion {
                name: get(|a| &a.browser),
                version: get(|a| &a.browser_version),
            },
            os: NamedVersion {
                name: get(|a| &a.os),
                version: get(|a| &a.os_version),
            },
            device: Device {
                kind: get(|a| &a.device),
                vendor: get(|a| &a.device_vendor),
                model: get(|a| &a.device_model),
            },
            viewport: Viewport {
                width: latest.and_then(|p| p.viewport_width),
                height: latest.and_then(|p| p.viewport_height),
            },
        },
        activity: Activity {
            visit_count: v.visit_count,
            page_view_count: v.pageview_count,
            time_since_first_visit: (now - v.first_seen).num_milliseconds().max(0),
            time_since_current_visit: (now - v.current_session_start).num_milliseconds().max(0),
            first_visit_at: iso_millis(v.first_seen),
            last_visit_at: iso_millis(v.last_seen),
            current_url: v.pages.last().map(|(url, _)| url.clone()),
            visited_pages: v
                .pages
                .iter()
                .map(|(url, ts)| VisitedPage {
                    url: url.clone(),
                    timestamp: iso_millis(*ts),
                })
                .collect(),
            completed_custom_goals: v
                .goals
                .iter()
                .map(|(name, ts, is_server)| CompletedGoal {
                    name: name.clone(),
                    description: None,
                    is_server: *is_server,
                    timestamp: iso_millis(*ts),
                })
                .collect(),
        },
        prediction: v.prediction.as_ref().map(|p| Prediction {
            score: p.score.round() as u32,
            conversion_rate: round_to(p.conversion_rate, 4),
            expected_value: round_to(p.expected_value, 3),
            confidence: round_to(p.confidence, 3),
        }),
    }
}

fn map_visitor(v: &LiveVisitor) -> MapVisitor {
    let a = &v.attrs;
    MapVisitor {
        visitor_id: v.visitor_id.clone(),
        location: MapLocation {
            city: text(&a.city),
            region: text(&a.region_code),
            country_code: text(&a.country_code),
        },
        system: MapSystem {
            browser: Named {
                name: text(&a.browser),
            },
            os: Named { name: text(&a.os) },
            device: DeviceType {
                kind: text(&a.device),
            },
        },
        current_url: v.current_path.clone(),
        referrer: referrer_name(a),
        session_start_time: iso_millis(v.session_start),
        visit_count: u64::from(v.visit_count),
        params: session_params(a),
        latitude: a.latitude,
        longitude: a.longitude,
        is_customer: v.profile.first_payment_us.is_some(),
        customer_name: v.profile.customer_name.clone(),
        customer_email: v.profile.customer_email.clone(),
        profile_data: profile_data(&v.profile),
        conversion_likelihood: v.prediction.as_ref().map(likelihood),
    }
}

/// As the seed shows: a visitor no `identify` event named has a `null` display name and
/// `isRandomName: true` (the dashboard invents a label; the API does not).
fn profile_data(p: &VisitorProfile) -> ProfileData {
    ProfileData {
        display_name: p.display_name.clone(),
        user_id: p.user_id.clone(),
        has_profile: p.user_id.is_some(),
        is_random_name: p.display_name.is_none(),
    }
}

fn likelihood(p: &CorePrediction) -> ConversionLikelihood {
    ConversionLikelihood {
        score: p.score.round() as u32,
        confidence: round_to(p.confidence, 3),
        is_baseline: p.is_baseline,
        dimension_matches: p
            .dimension_matches
            .iter()
            .map(|d| d.name().to_owned())
            .collect(),
        raw: RawLikelihood {
            conversion_rate: round_to(p.conversion_rate, 4),
            average_value: Rounded(p.average_value),
            expected_value: Rounded(p.expected_value),
        },
    }
}

fn session_params(a: &SessionAttrs) -> SessionParams {
    SessionParams {
        ref_: text(&a.ref_),
        source: text(&a.source),
        via: Some(text(&a.via)),
        utm_source: text(&a.utm_source),
        utm_medium: text(&a.utm_medium),
        utm_campaign: text(&a.utm_campaign),
        utm_content: text(&a.utm_content),
        utm_term: text(&a.utm_term),
    }
}

/// The session's referrer name, `null` for direct traffic.
/// An attribute as the response's owned text.
fn text(value: &Option<CompactString>) -> Option<String> {
    value.as_deref().map(str::to_owned)
}

fn referrer_name(a: &SessionAttrs) -> Option<String> {
    text(&a.referrer_name).filter(|r| r != DIRECT)
}

/// The tracker's name for a stored kind (`goal` was sent as `custom`).
fn tracker_type(stored: &str) -> &str {
    match stored {
        kind::GOAL => "custom",
        other => other,
    }
}

/// `extraData` of an event as the tracker sent it: a goal's `eventName` and metadata, an
/// identify's or external link's properties.
fn extra_data(e: &EventRow) -> std::collections::BTreeMap<String, String> {
    let mut extra = e.properties.clone();
    if let Some(name) = &e.goal_name {
        extra.insert("eventName".into(), name.clone());
    }
    extra
}

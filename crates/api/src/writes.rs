//! `POST`/`DELETE /api/v1/goals` and `/api/v1/payments`: the documented bodies and parameters,
//! their validation and messages, and the answers, over the engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;
use tally_core::event::{
    MAX_GOAL_METADATA, MAX_METADATA_KEY_LEN, MAX_METADATA_VALUE_LEN, check_goal_name,
};
use tally_core::{DateRange, Engine, Event, EventKind, GoalDeletion, Payment, PaymentDeletion};

use crate::display::iso_millis;
use crate::error::{ApiError, Result, to_json};
use crate::params::Params;
use crate::response::Success;
use crate::response::writes::{
    GoalCreated, GoalsDeleted, PaymentCreated, PaymentsDeleted, TimeRange,
};
use crate::route::Host;

fn bad(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::bad_param(field, reason)
}

fn body_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| bad("body", format!("not the expected JSON object: {e}")))
}

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(field, "is required"))
}

/// Removes HTML markup and script content, keeping the text.
fn strip_html(value: &str) -> Result<String> {
    // ammonia returns HTML-escaped text, and metadata is stored as plain text: un-escaping can
    // reveal markup that was entity-encoded (`&lt;script&gt;`), so strip again until nothing
    // changes. Each round removes a tag or one level of encoding; deeper nesting is refused.
    let mut text = value.to_owned();
    for _ in 0..MAX_STRIP_ROUNDS {
        let cleaned = ammonia::Builder::empty().clean(&text).to_string();
        let plain = cleaned
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        if plain == text {
            return Ok(plain);
        }
        text = plain;
    }
    Err(bad(
        "metadata",
        "a value nests encoded markup too deeply to be made plain text",
    ))
}

/// Rounds of tag stripping before a value is refused.
const MAX_STRIP_ROUNDS: usize = 8;

#[derive(Debug, Deserialize)]
struct GoalBody {
    datafast_visitor_id: Option<String>,
    name: Option<String>,
    metadata: Option<BTreeMap<String, Value>>,
}

fn goal_metadata(raw: BTreeMap<String, Value>) -> Result<BTreeMap<String, String>> {
    if raw.len() > MAX_GOAL_METADATA {
        return Err(bad(
            "metadata",
            format!("at most {MAX_GOAL_METADATA} properties"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_METADATA_KEY_LEN
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !key_ok {
            return Err(bad(
                "metadata",
                format!(
                    "property name `{k}` must be 1 to 64 lowercase letters, digits, `_` or `-`"
                ),
            ));
        }
        let text = match v {
            Value::String(s) => s,
            Value::Null => continue,
            other => other.to_string(),
        };
        let text = strip_html(&text)?;
        if text.chars().count() > MAX_METADATA_VALUE_LEN {
            return Err(bad(
                "metadata",
                format!("value of `{k}` is over {MAX_METADATA_VALUE_LEN} characters"),
            ));
        }
        out.insert(k, text);
    }
    Ok(out)
}

/// The 400 for a visitor whose tracker requests were dropped as a bot's.
pub(crate) fn bot_visitor(visitor: &str) -> ApiError {
    ApiError {
        status: 400,
        message: format!("Visitor `{visitor}` is a bot: its events are not stored"),
        detail: None,
    }
}

/// `POST /api/v1/goals`: a custom goal for a visitor with at least one page view, at `now`.
pub async fn create_goal(
    engine: &Engine,
    host: &dyn Host,
    website: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String> {
    let b: GoalBody = body_json(body)?;
    let visitor = required(&b.datafast_visitor_id, "datafast_visitor_id")?.to_owned();
    let name = required(&b.name, "name")?.to_owned();
    check_goal_name(&name)?;
    let metadata = goal_metadata(b.metadata.unwrap_or_default())?;
    if !engine.has_pageview(website, &visitor).await? {
        if host.is_bot_visitor(website, &visitor) {
            return Err(bot_visitor(&visitor));
        }
        return Err(ApiError::not_found(
            "Visitor not found: a goal needs at least one prior pageview",
        ));
    }
    let mut event = Event::new(website, visitor, now, EventKind::Goal { name, metadata });
    // The prefix marks the goal as created through the API (`isServer` in visitor profiles).
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| ApiError {
        detail: Some(e.to_string()),
        ..ApiError::internal()
    })?;
    event.event_id = Some(format!(
        "{}{}",
        tally_core::live::SERVER_EVENT_ID_PREFIX,
        hex::encode(id)
    ));
    let report = engine.ingest(vec![event]).await?;
    if let Some((_, e)) = report.rejected.into_iter().next() {
        return Err(e.into());
    }
    let event_id = report.event_ids.into_iter().next().unwrap_or_default();
    to_json(&Success::new([GoalCreated {
        message: "Custom event created successfully".into(),
        event_id,
    }]))
}

#[derive(Debug, Deserialize)]
struct PaymentBody {
    amount: Option<Value>,
    currency: Option<String>,
    transaction_id: Option<String>,
    datafast_visitor_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    customer_id: Option<String>,
    renewal: Option<bool>,
    refunded: Option<bool>,
    timestamp: Option<String>,
}

/// `POST /api/v1/payments`: idempotent on `transaction_id`; without a `timestamp`, at `now`.
pub async fn create_payment(
    engine: &Engine,
    website: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String> {
    let b: PaymentBody = body_json(body)?;
    let amount = match &b.amount {
        None | Some(Value::Null) => return Err(bad("amount", "is required")),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| bad("amount", "is not a finite number"))?,
        Some(_) => return Err(bad("amount", "must be a number, like 29.99")),
    };
    let currency = required(&b.currency, "currency")?.to_ascii_uppercase();
    let transaction_id = required(&b.transaction_id, "transaction_id")?.to_owned();
    let ts = match b.timestamp.as_deref() {
        Some(t) => tally_core::import::parse_timestamp(t)?,
        None => now,
    };
    // Unattributed payments get a visitor of their own, so that revenue still counts.
    let visitor = match b
        .datafast_visitor_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(v) => v.to_owned(),
        None => format!("payment:{transaction_id}"),
    };
    let payment = EventKind::Payment(Payment {
        amount,
        currency,
        transaction_id: transaction_id.clone(),
        renewal: b.renewal.unwrap_or(false),
        refunded: b.refunded.unwrap_or(false),
        email: b.email,
        name: b.name,
        customer_id: b.customer_id,
    });
    // The tracker's report of this payment, if any, gives way to the provider's.
    engine
        .supersede_tracker_payment(website, &transaction_id)
        .await?;
    let report = engine
        .ingest(vec![Event::new(website, visitor, ts, payment)])
        .await?;
    if let Some((_, e)) = report.rejected.into_iter().next() {
        return Err(e.into());
    }
    to_json(&PaymentCreated {
        message: "Payment recorded and attributed successfully".into(),
        transaction_id,
    })
}

/// The range of a delete: instants in UTC, shown with the last instant it includes.
fn delete_range(params: &Params) -> Result<(Option<DateRange>, Option<TimeRange>)> {
    Ok(match params.date_range_shown(Tz::UTC)? {
        Some((range, last)) => (
            Some(range),
            Some(TimeRange {
                start: iso_millis(range.start),
                end: iso_millis(last),
            }),
        ),
        None => (None, None),
    })
}

/// `DELETE /api/v1/goals`.
pub async fn delete_goals(engine: &Engine, website: &str, params: &Params) -> Result<String> {
    params.ignore_unknown(&["datafast_visitor_id", "name", "startAt", "endAt"]);
    let visitor = params.get("datafast_visitor_id")?.map(str::to_owned);
    let name = params.get("name")?.map(|n| {
        n.trim()
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("_")
    });
    let (range, time_range) = delete_range(params)?;
    let what = GoalDeletion {
        visitor_id: visitor.clone(),
        name: name.clone(),
        range,
    };
    let deleted = engine.delete_goals(website, &what).await?;
    if deleted == 0 {
        return Err(ApiError::not_found("No goal events matched"));
    }
    let message = if range.is_some() {
        "Goal events deleted successfully within time range"
    } else {
        "Goal events deleted successfully"
    };
    to_json(&Success::new([GoalsDeleted {
        message: message.into(),
        datafast_visitor_id: visitor,
        goal_name: name,
        time_range,
        deleted_count: deleted,
    }]))
}

/// `DELETE /api/v1/payments`: a transaction id decides alone; otherwise visitor and/or range.
pub async fn delete_payments(engine: &Engine, website: &str, params: &Params) -> Result<String> {
    params.ignore_unknown(&[
        "transaction_id",
        "tx_id",
        "datafast_visitor_id",
        "startAt",
        "endAt",
    ]);
    let tx = match (params.get("transaction_id")?, params.get("tx_id")?) {
        (Some(t), _) | (None, Some(t)) => Some(t.to_owned()),
        _ => None,
    };
    let visitor = params.get("datafast_visitor_id")?.map(str::to_owned);
    let (range, time_range) = if tx.is_some() {
        (None, None)
    } else {
        delete_range(params)?
    };
    let what = PaymentDeletion {
        transaction_id: tx.clone(),
        visitor_id: visitor.clone(),
        range,
    };
    let deleted = engine.delete_payments(website, &what).await?;
    if deleted == 0 {
        return Err(ApiError::not_found(if tx.is_some() {
            "Transaction not found"
        } else {
            "No payments matched"
        }));
    }
    let message = match (&tx, &visitor, range.is_some()) {
        (Some(_), _, _) => "Payment deleted successfully",
        (None, Some(_), true) => "All payments for visitor deleted successfully within time range",
        (None, Some(_), false) => "All payments for visitor deleted successfully",
        (None, None, _) => "All payments deleted successfully within time range",
    };
    to_json(&Success::new([PaymentsDeleted {
        datafast_visitor_id: if tx.is_some() { None } else { visitor },
        transaction_id: tx,
        message: message.into(),
        time_range,
        deleted_count: deleted,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripped_metadata_never_holds_markup() {
        for (input, want) in [
            ("<b>pro</b><script>alert(1)</script>", "pro"),
            ("&lt;script&gt;alert(1)&lt;/script&gt;", ""),
            ("&amp;lt;img src=x onerror=alert(1)&amp;gt;", ""),
            ("a < b && c > d", "a < b && c > d"),
            ("Tom & Jerry's \"show\"", "Tom & Jerry's \"show\""),
        ] {
            let got = strip_html(input).unwrap();
            assert_eq!(got, want, "{input}");
            assert_eq!(strip_html(&got).unwrap(), got, "stable: {input}");
        }
        let deep = (0..12).fold("<i>x</i>".to_owned(), |s, _| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        });
        assert!(strip_html(&deep).is_err());
    }
}

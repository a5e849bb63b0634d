//! Stored events read back as [`EventRow`]s, for the answers that list events rather than
//! count them (the realtime map, a visitor's history).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, TimestampMicrosecondType, UInt32Type};
use datafusion::arrow::record_batch::RecordBatch;

use crate::event::SessionAttrs;
use crate::schema::{attrs_at, col as c};

/// One stored event, every column decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// When (UTC).
    pub ts: DateTime<Utc>,
    /// A value of [`crate::schema::kind`].
    pub kind: String,
    /// Visitor id.
    pub visitor_id: String,
    /// Session id.
    pub session_id: String,
    /// Event id.
    pub event_id: String,
    /// Page hostname (page views).
    pub hostname: Option<String>,
    /// Page path (page views).
    pub path: Option<String>,
    /// The session's attributes.
    pub attrs: SessionAttrs,
    /// Viewport width.
    pub viewport_width: Option<u32>,
    /// Viewport height.
    pub viewport_height: Option<u32>,
    /// Goal name (goals).
    pub goal_name: Option<String>,
    /// Goal metadata, `identify` properties, or an external link's `url` and `text`.
    pub properties: BTreeMap<String, String>,
    /// Amount in the website currency (payments).
    pub amount: Option<f64>,
    /// Amount as paid (payments).
    pub original_amount: Option<f64>,
    /// Currency as paid (payments).
    pub original_currency: Option<String>,
    /// A renewal (payments).
    pub renewal: bool,
    /// Refunded (payments).
    pub refunded: bool,
    /// Transaction id (payments).
    pub transaction_id: Option<String>,
    /// Customer or identified user's name.
    pub customer_name: Option<String>,
    /// Customer or identified user's email.
    pub customer_email: Option<String>,
    /// Provider customer id, or the identified user's id.
    pub customer_id: Option<String>,
}

/// Decodes every row of `batches` (of the events schema).
pub fn event_rows(batches: &[RecordBatch]) -> Vec<EventRow> {
    let mut out = Vec::new();
    for b in batches {
        let s = |name: &str, r: usize| -> Option<String> {
            let a = b.column_by_name(name)?.as_string_opt::<i32>()?;
            a.is_valid(r).then(|| a.value(r).to_owned())
        };
        let f = |name: &str, r: usize| -> Option<f64> {
            let a = b.column_by_name(name)?.as_primitive_opt::<Float64Type>()?;
            a.is_valid(r).then(|| a.value(r))
        };
        let u = |name: &str, r: usize| -> Option<u32> {
            let a = b.column_by_name(name)?.as_primitive_opt::<UInt32Type>()?;
            a.is_valid(r).then(|| a.value(r))
        };
        let flag = |name: &str, r: usize| -> bool {
            b.column_by_name(name)
                .and_then(|a| a.as_boolean_opt().map(|a| a.is_valid(r) && a.value(r)))
                .unwrap_or(false)
        };
        let Some(ts) = b
            .column_by_name(c::TS)
            .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        else {
            continue;
        };
        for r in 0..b.num_rows() {
            out.push(EventRow {
                ts: DateTime::from_timestamp_micros(ts.value(r)).unwrap_or_default(),
                kind: s(c::KIND, r).unwrap_or_default(),
                visitor_id: s(c::VISITOR_ID, r).unwrap_or_default(),
                session_id: s(c::SESSION_ID, r).unwrap_or_default(),
                event_id: s(c::EVENT_ID, r).unwrap_or_default(),
                hostname: s(c::HOSTNAME, r),
                path: s(c::PATH, r),
                attrs: attrs_at(b, r),
                viewport_width: u(c::VIEWPORT_W, r),
                viewport_height: u(c::VIEWPORT_H, r),
                goal_name: s(c::GOAL_NAME, r),
                properties: s(c::GOAL_METADATA, r)
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
                amount: f(c::AMOUNT, r),
                original_amount: f(c::ORIGINAL_AMOUNT, r),
                original_currency: s(c::ORIGINAL_CURRENCY, r),
                renewal: flag(c::RENEWAL, r),
                refunded: flag(c::REFUNDED, r),
                transaction_id: s(c::TRANSACTION_ID, r),
                customer_name: s(c::CUSTOMER_NAME, r),
                customer_email: s(c::CUSTOMER_EMAIL, r),
                customer_id: s(c::CUSTOMER_ID, r),
            });
        }
    }
    out
}

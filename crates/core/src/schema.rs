//! The Arrow schema of the events table, its column names, and the conversion of stored events
//! into record batches.
//!
//! One row per event. Session attributes are denormalised onto every row (DESIGN §3), and
//! `visitor_hash` / `session_hash` are 64-bit hashes stored beside the ids so that distinct
//! counts are integer work.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::SessionAttrs;

/// Column names of the events table.
#[allow(missing_docs)]
pub mod col {
    pub const WEBSITE_ID: &str = "website_id";
    pub const TS: &str = "ts";
    pub const KIND: &str = "kind";
    pub const VISITOR_ID: &str = "visitor_id";
    pub const VISITOR_HASH: &str = "visitor_hash";
    pub const SESSION_ID: &str = "session_id";
    pub const SESSION_HASH: &str = "session_hash";
    pub const EVENT_ID: &str = "event_id";
    pub const HOSTNAME: &str = "hostname";
    pub const PATH: &str = "path";
    pub const REFERRER: &str = "referrer";
    pub const REFERRER_NAME: &str = "referrer_name";
    pub const UTM_SOURCE: &str = "utm_source";
    pub const UTM_MEDIUM: &str = "utm_medium";
    pub const UTM_CAMPAIGN: &str = "utm_campaign";
    pub const UTM_TERM: &str = "utm_term";
    pub const UTM_CONTENT: &str = "utm_content";
    pub const REF: &str = "ref";
    pub const SOURCE: &str = "source";
    pub const VIA: &str = "via";
    pub const COUNTRY_CODE: &str = "country_code";
    pub const REGION: &str = "region";
    pub const CITY: &str = "city";
    pub const LATITUDE: &str = "latitude";
    pub const LONGITUDE: &str = "longitude";
    pub const BROWSER: &str = "browser";
    pub const BROWSER_VERSION: &str = "browser_version";
    pub const OS: &str = "os";
    pub const OS_VERSION: &str = "os_version";
    pub const DEVICE: &str = "device";
    pub const DEVICE_VENDOR: &str = "device_vendor";
    pub const DEVICE_MODEL: &str = "device_model";
    pub const VIEWPORT_W: &str = "viewport_w";
    pub const VIEWPORT_H: &str = "viewport_h";
    pub const GOAL_NAME: &str = "goal_name";
    pub const GOAL_METADATA: &str = "goal_metadata";
    pub const AMOUNT: &str = "amount";
    pub const ORIGINAL_AMOUNT: &str = "original_amount";
    pub const ORIGINAL_CURRENCY: &str = "original_currency";
    pub const RENEWAL: &str = "renewal";
    pub const REFUNDED: &str = "refunded";
    pub const TRANSACTION_ID: &str = "transaction_id";
    pub const CUSTOMER_EMAIL: &str = "customer_email";
    pub const CUSTOMER_NAME: &str = "customer_name";
    pub const CUSTOMER_ID: &str = "customer_id";
    /// Added after the first release: older segments and logged batches lack it
    /// ([`super::conform`]).
    pub const REGION_CODE: &str = "region_code";
}

/// How a session attribute is stored.
#[derive(Clone, Copy)]
pub enum AttrValue {
    /// A text column, at most `max_chars` characters.
    Text {
        /// The field of [`SessionAttrs`].
        field: fn(&SessionAttrs) -> &Option<compact_str::CompactString>,
        /// The same field, to fill.
        field_mut: fn(&mut SessionAttrs) -> &mut Option<compact_str::CompactString>,
        /// Longest accepted value, in characters.
        max_chars: usize,
    },
    /// A `Float64` column.
    Float {
        /// The field of [`SessionAttrs`].
        field: fn(&SessionAttrs) -> Option<f64>,
        /// The same field, to fill.
        field_mut: fn(&mut SessionAttrs) -> &mut Option<f64>,
    },
}

/// A session attribute: its column and its field of [`SessionAttrs`]. [`ATTRS`] is the one
/// definition that the schema, the batch builder ([`to_batch`]), the row reader ([`attrs_at`])
/// and the input bounds ([`crate::event::Event::validate`]) share.
#[derive(Clone, Copy)]
pub struct Attr {
    /// Column name, also the field named in input errors.
    pub column: &'static str,
    /// How it is stored.
    pub value: AttrValue,
}

macro_rules! text_attr {
    ($column:expr, $field:ident, $max:expr) => {
        Attr {
            column: $column,
            value: AttrValue::Text {
                field: |a| &a.$field,
                field_mut: |a| &mut a.$field,
                max_chars: $max,
            },
        }
    };
}

macro_rules! float_attr {
    ($column:expr, $field:ident) => {
        Attr {
            column: $column,
            value: AttrValue::Float {
                field: |a| a.$field,
                field_mut: |a| &mut a.$field,
            },
        }
    };
}

/// Every session attribute, in column order.
pub static ATTRS: [Attr; 23] = {
    use crate::event::{MAX_ATTR_LEN, MAX_URL_LEN};
    use crate::referrer::MAX_HOST_LEN;
    use col::*;
    [
        text_attr!(REFERRER, referrer, MAX_HOST_LEN),
        text_attr!(REFERRER_NAME, referrer_name, MAX_HOST_LEN),
        text_attr!(UTM_SOURCE, utm_source, MAX_URL_LEN),
        text_attr!(UTM_MEDIUM, utm_medium, MAX_URL_LEN),
        text_attr!(UTM_CAMPAIGN, utm_campaign, MAX_URL_LEN),
        text_attr!(UTM_TERM, utm_term, MAX_URL_LEN),
        text_attr!(UTM_CONTENT, utm_content, MAX_URL_LEN),
        text_attr!(REF, ref_, MAX_URL_LEN),
        text_attr!(SOURCE, source, MAX_URL_LEN),
        text_attr!(VIA, via, MAX_URL_LEN),
        text_attr!(COUNTRY_CODE, country_code, MAX_ATTR_LEN),
        text_attr!(REGION, region, MAX_ATTR_LEN),
        text_attr!(REGION_CODE, region_code, MAX_ATTR_LEN),
        text_attr!(CITY, city, MAX_ATTR_LEN),
        float_attr!(LATITUDE, latitude),
        float_attr!(LONGITUDE, longitude),
        text_attr!(BROWSER, browser, MAX_ATTR_LEN),
        text_attr!(BROWSER_VERSION, browser_version, MAX_ATTR_LEN),
        text_attr!(OS, os, MAX_ATTR_LEN),
        text_attr!(OS_VERSION, os_version, MAX_ATTR_LEN),
        text_attr!(DEVICE, device, MAX_ATTR_LEN),
        text_attr!(DEVICE_VENDOR, device_vendor, MAX_ATTR_LEN),
        text_attr!(DEVICE_MODEL, device_model, MAX_ATTR_LEN),
    ]
};

/// Values of the `kind` column.
#[allow(missing_docs)]
pub mod kind {
    pub const PAGEVIEW: &str = "pageview";
    pub const GOAL: &str = "goal";
    pub const PAYMENT: &str = "payment";
    pub const IDENTIFY: &str = "identify";
    pub const EXTERNAL_LINK: &str = "external_link";
    /// Every kind.
    pub const ALL: [&str; 5] = [PAGEVIEW, GOAL, PAYMENT, IDENTIFY, EXTERNAL_LINK];
}

/// One of the [`kind`] constants. (An alias, so that serde does not take the `&'static str`
/// for a string borrowed from its input.)
pub type KindName = &'static str;

/// A stored kind as its name, read back as the `&'static str` constant of [`kind`].
mod kind_name {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let name = String::deserialize(d)?;
        super::kind::ALL
            .into_iter()
            .find(|k| *k == name)
            .ok_or_else(|| D::Error::custom(format!("unknown event kind `{name}`")))
    }
}

/// The time zone string of the `ts` column.
pub const TS_ZONE: &str = "UTC";

/// The data type of the `ts` column.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TS_ZONE.into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    let s = |name: &str| Field::new(name, DataType::Utf8, true);
    let f = |name: &str| Field::new(name, DataType::Float64, true);
    let attr = |a: &Attr| match a.value {
        AttrValue::Text { .. } => s(a.column),
        AttrValue::Float { .. } => f(a.column),
    };
    let head = [
        Field::new(WEBSITE_ID, DataType::Utf8, false),
        Field::new(TS, ts_type(), false),
        Field::new(KIND, DataType::Utf8, false),
        Field::new(VISITOR_ID, DataType::Utf8, false),
        Field::new(VISITOR_HASH, DataType::UInt64, false),
        Field::new(SESSION_ID, DataType::Utf8, false),
        Field::new(SESSION_HASH, DataType::UInt64, false),
        Field::new(EVENT_ID, DataType::Utf8, false),
        s(HOSTNAME),
        s(PATH),
    ];
    let tail = [
        Field::new(VIEWPORT_W, DataType::UInt32, true),
        Field::new(VIEWPORT_H, DataType::UInt32, true),
        s(GOAL_NAME),
        s(GOAL_METADATA),
        f(AMOUNT),
        f(ORIGINAL_AMOUNT),
        s(ORIGINAL_CURRENCY),
        Field::new(RENEWAL, DataType::Boolean, true),
        Field::new(REFUNDED, DataType::Boolean, true),
        s(TRANSACTION_ID),
        s(CUSTOMER_EMAIL),
        s(CUSTOMER_NAME),
        s(CUSTOMER_ID),
    ];
    let fields: Vec<Field> = head
        .into_iter()
        .chain(ATTRS.iter().map(attr))
        .chain(tail)
        .collect();
    Arc::new(Schema::new(fields))
});

/// The schema of the events table.
pub fn events_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The stable 64-bit hash used for `visitor_hash`.
pub fn visitor_hash(visitor_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(visitor_id.as_bytes())
}

/// The stable 64-bit hash used for `session_hash`: session ids are scoped to their visitor.
pub fn session_hash(visitor_id: &str, session_id: &str) -> u64 {
    session_hash_in(&mut Vec::new(), visitor_id, session_id)
}

/// [`session_hash`], its input built in `buf`: a caller hashing many rows reuses one buffer
/// instead of allocating for each.
pub(crate) fn session_hash_in(buf: &mut Vec<u8>, visitor_id: &str, session_id: &str) -> u64 {
    buf.clear();
    buf.extend_from_slice(visitor_id.as_bytes());
    buf.push(0);
    buf.extend_from_slice(session_id.as_bytes());
    xxhash_rust::xxh3::xxh3_64(buf)
}

/// The payment columns of a stored payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPayment {
    /// Amount in the website currency.
    pub amount: f64,
    /// Amount as paid.
    pub original_amount: f64,
    /// Currency as paid.
    pub original_currency: String,
    /// A recurring payment.
    pub renewal: bool,
    /// A refunded payment.
    pub refunded: bool,
    /// The payment provider's id.
    pub transaction_id: String,
    /// Customer email.
    pub email: Option<String>,
    /// Customer name.
    pub name: Option<String>,
    /// Provider's customer id.
    pub customer_id: Option<String>,
}

/// One row of the events table: an event after ingest resolved its session, attributes,
/// id and currency. Serialized (JSON) in the write-ahead log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Website id.
    pub website_id: String,
    /// Microseconds since the Unix epoch, UTC.
    pub ts_us: i64,
    /// `pageview`, `goal` or `payment`.
    #[serde(with = "kind_name")]
    pub kind: KindName,
    /// Visitor id.
    pub visitor_id: String,
    /// Session id (given or derived).
    pub session_id: String,
    /// Event id (given or generated).
    pub event_id: String,
    /// Page hostname (page views only).
    pub hostname: Option<String>,
    /// Page path (page views only).
    pub path: Option<String>,
    /// The session's attributes.
    pub attrs: Arc<SessionAttrs>,
    /// Viewport width.
    pub viewport_w: Option<u32>,
    /// Viewport height.
    pub viewport_h: Option<u32>,
    /// Goal name (goals only).
    pub goal_name: Option<String>,
    /// Properties as a JSON object of strings: a goal's metadata, an `identify` event's
    /// properties, an external link's `url` and `text` (stored in `goal_metadata`).
    pub goal_metadata: Option<String>,
    /// Payment columns (payments only).
    pub payment: Option<StoredPayment>,
    /// The user an `identify` event names, stored in the customer columns.
    pub identity: Option<StoredIdentity>,
}

/// The customer columns of a stored `identify` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredIdentity {
    /// The site's user id (`customer_id`).
    pub user_id: String,
    /// Display name (`customer_name`).
    pub name: Option<String>,
    /// Email (`customer_email`).
    pub email: Option<String>,
}

impl StoredEvent {
    pub(crate) fn customer_email(&self) -> Option<&str> {
        match (&self.payment, &self.identity) {
            (Some(p), _) => p.email.as_deref(),
            (None, Some(i)) => i.email.as_deref(),
            (None, None) => None,
        }
    }

    pub(crate) fn customer_name(&self) -> Option<&str> {
        match (&self.payment, &self.identity) {
            (Some(p), _) => p.name.as_deref(),
            (None, Some(i)) => i.name.as_deref(),
            (None, None) => None,
        }
    }

    pub(crate) fn customer_id(&self) -> Option<&str> {
        match (&self.payment, &self.identity) {
            (Some(p), _) => p.customer_id.as_deref(),
            (None, Some(i)) => Some(&i.user_id),
            (None, None) => None,
        }
    }
}

/// Builds one record batch of the events schema from stored events.
pub fn to_batch(rows: &[StoredEvent]) -> Result<RecordBatch> {
    let mut b = crate::batch_builder::EventsBuilder::with_capacity(rows.len());
    for r in rows {
        b.append(&r.as_row());
    }
    b.finish()
}

/// Column `name` of `batch` as the array type `T`; an internal error naming the column when it
/// is missing or of another type (never a panic over stored data).
pub fn column<'a, T: datafusion::arrow::array::Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|a| a.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            crate::error::Error::Internal(format!(
                "column `{name}` is missing or not of the events schema's type"
            ))
        })
}

/// `batch` in the events schema: a batch written before a column was added (an older segment
/// or logged batch) gets that column as nulls. Columns are matched by name.
pub fn conform(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = events_schema();
    if batch.schema() == schema {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Arc::clone(column),
            None => datafusion::arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The session attributes stored in row `row` of an events batch.
pub fn attrs_at(batch: &RecordBatch, row: usize) -> SessionAttrs {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;
    let s = |name: &str| {
        let a = batch.column_by_name(name)?;
        let a = a.as_string_opt::<i32>()?;
        (!a.is_null(row)).then(|| a.value(row).into())
    };
    let f = |name: &str| {
        let a = batch.column_by_name(name)?;
        let a = a.as_primitive_opt::<Float64Type>()?;
        (!a.is_null(row)).then(|| a.value(row))
    };
    let mut attrs = SessionAttrs::default();
    for a in &ATTRS {
        match a.value {
            AttrValue::Text { field_mut, .. } => *field_mut(&mut attrs) = s(a.column),
            AttrValue::Float { field_mut, .. } => *field_mut(&mut attrs) = f(a.column),
        }
    }
    attrs
}

/// A stored page view of visitor `v` at `ts_us` with `attrs`, for tests.
#[cfg(test)]
pub(crate) fn pageview_row(ts_us: i64, attrs: SessionAttrs) -> StoredEvent {
    StoredEvent {
        website_id: "w".into(),
        ts_us,
        kind: kind::PAGEVIEW,
        visitor_id: "v".into(),
        session_id: "s".into(),
        event_id: format!("e{ts_us}"),
        hostname: None,
        path: Some("/".into()),
        attrs: Arc::new(attrs),
        viewport_w: None,
        viewport_h: None,
        goal_name: None,
        goal_metadata: None,
        payment: None,
        identity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_runs() {
        // Stored in Parquet: a change here silently breaks every existing data directory.
        assert_eq!(visitor_hash("v1"), xxhash_rust::xxh3::xxh3_64(b"v1"));
        assert_ne!(session_hash("a", "bc"), session_hash("ab", "c"));
    }

    #[test]
    fn a_batch_without_a_newer_column_gets_it_as_nulls() {
        let row = pageview_row(
            0,
            SessionAttrs {
                city: Some("Denver".into()),
                region_code: Some("US-CO".into()),
                ..SessionAttrs::default()
            },
        );
        let full = to_batch(&[row]).unwrap();
        let old_schema = Arc::new(Schema::new(
            events_schema()
                .fields()
                .iter()
                .filter(|f| f.name() != col::REGION_CODE)
                .map(|f| f.as_ref().clone())
                .collect::<Vec<_>>(),
        ));
        let kept: Vec<usize> = old_schema
            .fields()
            .iter()
            .map(|f| events_schema().index_of(f.name()).unwrap())
            .collect();
        let old = full.project(&kept).unwrap();
        assert_eq!(old.schema().fields().len(), full.num_columns() - 1);
        let conformed = conform(old).unwrap();
        assert_eq!(conformed.schema(), events_schema());
        assert_eq!(attrs_at(&conformed, 0).region_code, None);
        assert_eq!(attrs_at(&conformed, 0).city, attrs_at(&full, 0).city);
        assert_eq!(attrs_at(&full, 0).region_code.as_deref(), Some("US-CO"));
    }

    #[test]
    fn an_empty_batch_has_the_schema() {
        let b = to_batch(&[]).unwrap();
        assert_eq!(b.num_rows(), 0);
        assert_eq!(b.schema(), events_schema());
    }
}

//! Record batches of the events schema built a row at a time: [`RowRef`] is one row borrowed
//! from wherever it lives (a [`StoredEvent`], or the text of a packed bulk load), and
//! [`EventsBuilder`] appends rows to the schema's column builders, in [`events_schema`]'s order.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
    UInt32Builder, UInt64Builder,
};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::event::SessionAttrs;
use crate::schema::{
    ATTRS, AttrValue, StoredEvent, StoredPayment, TS_ZONE, events_schema, session_hash_in,
    visitor_hash,
};

/// One row of the events table, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRef<'a> {
    pub website_id: &'a str,
    pub ts_us: i64,
    pub kind: &'static str,
    pub visitor_id: &'a str,
    pub session_id: &'a str,
    pub event_id: &'a str,
    pub hostname: Option<&'a str>,
    pub path: Option<&'a str>,
    pub attrs: &'a SessionAttrs,
    pub viewport_w: Option<u32>,
    pub viewport_h: Option<u32>,
    pub goal_name: Option<&'a str>,
    pub goal_metadata: Option<&'a str>,
    pub payment: Option<&'a StoredPayment>,
    pub customer_email: Option<&'a str>,
    pub customer_name: Option<&'a str>,
    pub customer_id: Option<&'a str>,
}

impl StoredEvent {
    /// This row, borrowed.
    pub(crate) fn as_row(&self) -> RowRef<'_> {
        RowRef {
            website_id: &self.website_id,
            ts_us: self.ts_us,
            kind: self.kind,
            visitor_id: &self.visitor_id,
            session_id: &self.session_id,
            event_id: &self.event_id,
            hostname: self.hostname.as_deref(),
            path: self.path.as_deref(),
            attrs: &self.attrs,
            viewport_w: self.viewport_w,
            viewport_h: self.viewport_h,
            goal_name: self.goal_name.as_deref(),
            goal_metadata: self.goal_metadata.as_deref(),
            payment: self.payment.as_ref(),
            customer_email: self.customer_email(),
            customer_name: self.customer_name(),
            customer_id: self.customer_id(),
        }
    }
}

/// The builder of one session attribute's column, with the attribute's field.
enum AttrBuilder {
    Text(
        Sparse<StringBuilder>,
        fn(&SessionAttrs) -> &Option<compact_str::CompactString>,
    ),
    Float(Float64Builder, fn(&SessionAttrs) -> Option<f64>),
}

/// A column that is null in many rows (the goal, payment and customer fields of page views,
/// the campaign and version attributes of most sessions): its nulls are counted and appended a
/// run at a time, for a fraction of the cost of one call per row.
struct Sparse<B> {
    builder: B,
    /// Nulls not appended to `builder` yet.
    nulls: usize,
}

/// A builder that appends a run of nulls in one call.
trait AppendNulls {
    fn append_nulls(&mut self, n: usize);
}

impl AppendNulls for StringBuilder {
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n);
    }
}

impl AppendNulls for Float64Builder {
    fn append_nulls(&mut self, n: usize) {
        Float64Builder::append_nulls(self, n);
    }
}

impl AppendNulls for BooleanBuilder {
    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n);
    }
}

impl<B: AppendNulls> Sparse<B> {
    fn new(builder: B) -> Self {
        Sparse { builder, nulls: 0 }
    }

    /// Appends `value` with `append`, or a null.
    fn append_option<T>(&mut self, value: Option<T>, append: impl FnOnce(&mut B, T)) {
        match value {
            None => self.nulls += 1,
            Some(v) => {
                self.append_pending_nulls();
                append(&mut self.builder, v);
            }
        }
    }

    /// The builder, with every row appended.
    fn builder(&mut self) -> &mut B {
        self.append_pending_nulls();
        &mut self.builder
    }

    fn append_pending_nulls(&mut self) {
        if self.nulls > 0 {
            self.builder.append_nulls(std::mem::take(&mut self.nulls));
        }
    }
}

/// Column builders for a batch of the events schema.
pub(crate) struct EventsBuilder {
    website_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    kind: StringBuilder,
    visitor_id: StringBuilder,
    visitor_hash: UInt64Builder,
    session_id: StringBuilder,
    session_hash: UInt64Builder,
    event_id: StringBuilder,
    hostname: StringBuilder,
    path: StringBuilder,
    /// In [`ATTRS`]' order.
    attrs: Vec<AttrBuilder>,
    viewport_w: UInt32Builder,
    viewport_h: UInt32Builder,
    goal_name: Sparse<StringBuilder>,
    goal_metadata: Sparse<StringBuilder>,
    amount: Sparse<Float64Builder>,
    original_amount: Sparse<Float64Builder>,
    original_currency: Sparse<StringBuilder>,
    renewal: Sparse<BooleanBuilder>,
    refunded: Sparse<BooleanBuilder>,
    transaction_id: Sparse<StringBuilder>,
    customer_email: Sparse<StringBuilder>,
    customer_name: Sparse<StringBuilder>,
    customer_id: Sparse<StringBuilder>,
    /// Reused for each row's session hash.
    hash_input: Vec<u8>,
}

impl EventsBuilder {
    /// Builders with room for `rows` rows of usual sizes (they grow past it).
    pub fn with_capacity(rows: usize) -> Self {
        let text = |bytes_per_row: usize| StringBuilder::with_capacity(rows, rows * bytes_per_row);
        let rare = || StringBuilder::with_capacity(rows, 0);
        EventsBuilder {
            website_id: text(16),
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(TS_ZONE),
            kind: text(8),
            visitor_id: text(16),
            visitor_hash: UInt64Builder::with_capacity(rows),
            session_id: text(24),
            session_hash: UInt64Builder::with_capacity(rows),
            event_id: text(24),
            hostname: text(16),
            path: text(16),
            attrs: ATTRS
                .iter()
                .map(|a| match a.value {
                    AttrValue::Text { field, .. } => AttrBuilder::Text(Sparse::new(text(8)), field),
                    AttrValue::Float { field, .. } => {
                        AttrBuilder::Float(Float64Builder::with_capacity(rows), field)
                    }
                })
                .collect(),
            viewport_w: UInt32Builder::with_capacity(rows),
            viewport_h: UInt32Builder::with_capacity(rows),
            goal_name: Sparse::new(rare()),
            goal_metadata: Sparse::new(rare()),
            amount: Sparse::new(Float64Builder::with_capacity(rows)),
            original_amount: Sparse::new(Float64Builder::with_capacity(rows)),
            original_currency: Sparse::new(rare()),
            renewal: Sparse::new(BooleanBuilder::with_capacity(rows)),
            refunded: Sparse::new(BooleanBuilder::with_capacity(rows)),
            transaction_id: Sparse::new(rare()),
            customer_email: Sparse::new(rare()),
            customer_name: Sparse::new(rare()),
            customer_id: Sparse::new(rare()),
            hash_input: Vec::new(),
        }
    }

    /// Appends row `r`.
    pub fn append(&mut self, r: &RowRef<'_>) {
        self.website_id.append_value(r.website_id);
        self.ts.append_value(r.ts_us);
        self.kind.append_value(r.kind);
        self.visitor_id.append_value(r.visitor_id);
        self.visitor_hash.append_value(visitor_hash(r.visitor_id));
        self.session_id.append_value(r.session_id);
        let hash = session_hash_in(&mut self.hash_input, r.visitor_id, r.session_id);
        self.session_hash.append_value(hash);
        self.event_id.append_value(r.event_id);
        self.hostname.append_option(r.hostname);
        self.path.append_option(r.path);
        let text = |b: &mut StringBuilder, v: &str| b.append_value(v);
        for builder in &mut self.attrs {
            match builder {
                AttrBuilder::Text(b, field) => b.append_option(field(r.attrs).as_deref(), text),
                AttrBuilder::Float(b, field) => b.append_option(field(r.attrs)),
            }
        }
        self.viewport_w.append_option(r.viewport_w);
        self.viewport_h.append_option(r.viewport_h);
        self.goal_name.append_option(r.goal_name, text);
        self.goal_metadata.append_option(r.goal_metadata, text);
        let p = r.payment;
        let float = Float64Builder::append_value;
        let flag = BooleanBuilder::append_value;
        self.amount.append_option(p.map(|p| p.amount), float);
        self.original_amount
            .append_option(p.map(|p| p.original_amount), float);
        self.original_currency
            .append_option(p.map(|p| p.original_currency.as_str()), text);
        self.renewal.append_option(p.map(|p| p.renewal), flag);
        self.refunded.append_option(p.map(|p| p.refunded), flag);
        self.transaction_id
            .append_option(p.map(|p| p.transaction_id.as_str()), text);
        self.customer_email.append_option(r.customer_email, text);
        self.customer_name.append_option(r.customer_name, text);
        self.customer_id.append_option(r.customer_id, text);
    }

    /// The batch of the rows appended; the builders are left empty.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        fn a(array: impl datafusion::arrow::array::Array + 'static) -> ArrayRef {
            Arc::new(array)
        }
        let mut columns: Vec<ArrayRef> = vec![
            a(self.website_id.finish()),
            a(self.ts.finish()),
            a(self.kind.finish()),
            a(self.visitor_id.finish()),
            a(self.visitor_hash.finish()),
            a(self.session_id.finish()),
            a(self.session_hash.finish()),
            a(self.event_id.finish()),
            a(self.hostname.finish()),
            a(self.path.finish()),
        ];
        columns.extend(self.attrs.iter_mut().map(|b| match b {
            AttrBuilder::Text(b, _) => a(b.builder().finish()),
            AttrBuilder::Float(b, _) => a(b.finish()),
        }));
        columns.extend([
            a(self.viewport_w.finish()),
            a(self.viewport_h.finish()),
            a(self.goal_name.builder().finish()),
            a(self.goal_metadata.builder().finish()),
            a(self.amount.builder().finish()),
            a(self.original_amount.builder().finish()),
            a(self.original_currency.builder().finish()),
            a(self.renewal.builder().finish()),
            a(self.refunded.builder().finish()),
            a(self.transaction_id.builder().finish()),
            a(self.customer_email.builder().finish()),
            a(self.customer_name.builder().finish()),
            a(self.customer_id.builder().finish()),
        ]);
        Ok(RecordBatch::try_new(events_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, StringArray};

    use super::*;

    #[test]
    fn a_sparse_column_keeps_each_value_in_its_row_between_runs_of_nulls() {
        let rows = [
            None,
            None,
            Some("a"),
            Some("b"),
            None,
            Some("c"),
            None,
            None,
        ];
        let mut column = Sparse::new(StringBuilder::new());
        for row in rows {
            column.append_option(row, |b: &mut StringBuilder, v: &str| b.append_value(v));
        }
        let built = column.builder().finish();
        let read: Vec<Option<&str>> = built.iter().collect();
        assert_eq!(read, rows);
        assert_eq!(built.null_count(), 5);
        // Finishing empties the builder; the next batch starts at its first row.
        column.append_option(Some("d"), |b: &mut StringBuilder, v: &str| {
            b.append_value(v)
        });
        let next: StringArray = column.builder().finish();
        assert_eq!(next.iter().collect::<Vec<_>>(), [Some("d")]);
    }
}

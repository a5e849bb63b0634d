//! Responses of the write routes: goals and payments, created and deleted.

use serde::Serialize;

/// `POST /goals` row: `{"message": …, "eventId": …}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoalCreated {
    /// `Custom event created successfully`.
    pub message: String,
    /// The new event's id.
    pub event_id: String,
}

/// `POST /payments`: documented without the success envelope.
#[derive(Debug, Serialize)]
pub struct PaymentCreated {
    /// `Payment recorded and attributed successfully`.
    pub message: String,
    /// The payment's transaction id.
    pub transaction_id: String,
}

/// The range a delete was limited to.
#[derive(Debug, Clone, Serialize)]
pub struct TimeRange {
    /// `2023-01-01T00:00:00.000Z`.
    pub start: String,
    /// `2023-01-31T23:59:59.000Z`.
    pub end: String,
}

/// `DELETE /goals` row.
#[derive(Debug, Serialize)]
pub struct GoalsDeleted {
    /// What was deleted.
    pub message: String,
    /// The visitor, when the delete named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datafast_visitor_id: Option<String>,
    /// The goal name, when the delete named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_name: Option<String>,
    /// The range, when the delete had one.
    #[serde(rename = "timeRange", skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
    /// How many goal events were deleted.
    #[serde(rename = "deletedCount")]
    pub deleted_count: u64,
}

/// `DELETE /payments` row.
#[derive(Debug, Serialize)]
pub struct PaymentsDeleted {
    /// The visitor, when the delete named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datafast_visitor_id: Option<String>,
    /// The transaction, when the delete named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// What was deleted.
    pub message: String,
    /// The range, when the delete had one.
    #[serde(rename = "timeRange", skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
    /// How many payments were deleted.
    #[serde(rename = "deletedCount")]
    pub deleted_count: u64,
}

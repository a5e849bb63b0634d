//! Route handlers, one module per part of the API.

pub mod admin;
pub mod api;
pub mod dashboard;
pub mod events;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;

use crate::error::{HttpError, Result};

/// The request body, or the envelope for a body that could not be read (413 past the limit).
pub(crate) fn body_bytes(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|r| match r.status().as_u16() {
        413 => HttpError::new(413, "Request body is too large"),
        s => HttpError::new(s, r.body_text()),
    })
}

//! Every failure leaves the server as the documented envelope
//! `{"status":"error","error":{"code":N,"message":"…"}}`; internal errors are logged, never
//! echoed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tally_api::ApiError;

/// A response-ready error: the API error, and optionally a `Retry-After` in seconds.
#[derive(Debug)]
pub struct HttpError {
    /// Status and message.
    pub api: ApiError,
    /// Seconds after which a rate-limited caller may retry.
    pub retry_after: Option<u64>,
}

impl HttpError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        HttpError {
            api: ApiError {
                status,
                message: message.into(),
                detail: None,
            },
            retry_after: None,
        }
    }
}

impl HttpError {
    /// Logs `e` (the caller only sees this error's message).
    pub(crate) fn with_log(self, e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        self
    }
}

impl From<ApiError> for HttpError {
    fn from(api: ApiError) -> Self {
        if api.status >= 500 {
            tracing::error!(
                detail = api.detail.as_deref().unwrap_or(""),
                "internal error"
            );
        }
        HttpError {
            api,
            retry_after: None,
        }
    }
}

impl From<tally_core::Error> for HttpError {
    fn from(e: tally_core::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// A JSON response with `status` and an already serialized `body`.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.api.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self.api.envelope()).unwrap_or_default();
        let mut r = json_response(status, body);
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// `Result` with [`HttpError`].
pub type Result<T, E = HttpError> = std::result::Result<T, E>;

//! The one error type of `tally-api`: an HTTP status and a message for the documented envelope
//! `{"status":"error","error":{"code":N,"message":"…"}}`.

use serde::Serialize;

/// A request the API refuses, or an answer it could not give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, naming the parameter when it is the caller's fault.
    pub message: String,
    /// For 5xx errors: the underlying cause, for the operator's log. Never sent to callers.
    pub detail: Option<String>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad_param(param: &str, reason: impl std::fmt::Display) -> Self {
        ApiError {
            status: 400,
            message: format!("Invalid parameter `{param}`: {reason}"),
            detail: None,
        }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            message: message.into(),
            detail: None,
        }
    }

    /// A 500 whose details are not shown to the caller (the server logs the source).
    pub fn internal() -> Self {
        ApiError {
            status: 500,
            message: "Internal server error".into(),
            detail: None,
        }
    }

    /// The documented error envelope.
    pub fn envelope(&self) -> ErrorEnvelope<'_> {
        ErrorEnvelope {
            status: "error",
            error: ErrorBody {
                code: self.status,
                message: &self.message,
            },
        }
    }
}

/// `{"status":"error","error":{…}}`.
#[derive(Debug, Serialize)]
pub struct ErrorEnvelope<'a> {
    /// Always `"error"`.
    pub status: &'static str,
    /// Code and message.
    pub error: ErrorBody<'a>,
}

/// The `error` object of the envelope.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The HTTP status code.
    pub code: u16,
    /// A descriptive message.
    pub message: &'a str,
}

impl From<tally_core::Error> for ApiError {
    fn from(e: tally_core::Error) -> Self {
        match e {
            tally_core::Error::InvalidInput { field, reason } => {
                ApiError::bad_param(&field, reason)
            }
            tally_core::Error::NotFound { what, id } => {
                ApiError::not_found(format!("{} not found: {id}", capitalize(what)))
            }
            tally_core::Error::AlreadyExists { what, id } => ApiError {
                status: 409,
                message: format!("{} already exists: {id}", capitalize(what)),
                detail: None,
            },
            tally_core::Error::DataFusion(e)
                if matches!(
                    e.find_root(),
                    tally_core::datafusion::error::DataFusionError::ResourcesExhausted(_)
                ) =>
            {
                ApiError {
                    status: 503,
                    message: "The query needs more memory than the server allows at once; \
                              retry later, or narrow its range or filters"
                        .into(),
                    detail: Some(e.to_string()),
                }
            }
            other => ApiError {
                detail: Some(other.to_string()),
                ..ApiError::internal()
            },
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `Result` with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Serializes a response body; a failure is an internal error (with its detail for the log).
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ApiError {
        detail: Some(e.to_string()),
        ..ApiError::internal()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_the_documented_shape() {
        let e = ApiError::bad_param("limit", "must be between 1 and 1000");
        let json = serde_json::to_string(&e.envelope()).unwrap();
        assert_eq!(
            json,
            r#"{"status":"error","error":{"code":400,"message":"Invalid parameter `limit`: must be between 1 and 1000"}}"#
        );
    }

    #[test]
    fn a_query_past_the_memory_pool_is_a_503_that_says_so() {
        let df = tally_core::datafusion::error::DataFusionError::ResourcesExhausted(
            "Failed to allocate 1 MB for GroupedHashAggregateStream".into(),
        );
        let e: ApiError = tally_core::Error::DataFusion(df).into();
        assert_eq!(e.status, 503);
        assert!(e.message.contains("more memory"), "{}", e.message);
        assert!(!e.message.contains("GroupedHash"));
    }

    #[test]
    fn core_errors_map_by_kind_and_hide_internals() {
        let nf: ApiError = tally_core::Error::NotFound {
            what: "website",
            id: "w".into(),
        }
        .into();
        assert_eq!(
            (nf.status, nf.message.as_str()),
            (404, "Website not found: w")
        );
        let io: ApiError =
            tally_core::Error::io("/secret/path", std::io::Error::other("disk")).into();
        assert_eq!(io.status, 500);
        assert!(!io.message.contains("secret"));
    }
}

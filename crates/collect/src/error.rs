//! The one error type of tally-collect.

/// Why a tracker payload could not become an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is not JSON of the tracker's shape; the message names the field when it can.
    #[error("invalid payload: {0}")]
    Payload(String),
    /// A field has a value the engine cannot store; `field` names it.
    #[error("invalid `{field}`: {message}")]
    Invalid {
        /// The payload field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The payload's `domain` is not the website's domain nor one of its allowed hostnames.
    #[error("domain `{0}` is not allowed for this website")]
    DomainNotAllowed(String),
    /// The engine refused the event (its message names the field).
    #[error(transparent)]
    Core(#[from] tally_core::Error),
    /// The GeoIP database could not be opened or read.
    #[error("GeoIP database: {0}")]
    Geo(#[from] maxminddb::MaxMindDbError),
    /// Vendored data (user-agent rules, bot patterns) failed to load: a build problem.
    #[error("vendored data: {0}")]
    Data(String),
}

impl Error {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

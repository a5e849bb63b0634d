//! The one error type of `tally-core`.
//!
//! Every fallible public function returns [`Result`]. Variants say *what kind* of failure it is
//! so that callers (the HTTP server, the CLI) can map them to a status or an exit code without
//! parsing messages: [`Error::InvalidInput`] is the caller's fault and names the offending field,
//! [`Error::NotFound`] is a missing website or visitor, the rest are the engine's own trouble.

use std::path::PathBuf;

/// Everything that can go wrong in `tally-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value supplied by the caller is not acceptable. `field` names it (`visitor_id`,
    /// `timestamp`, `filter_country`, …) and `reason` says why, in words a person can act on.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field or parameter.
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A thing the caller named does not exist (a website, a visitor).
    #[error("{what} not found: {id}")]
    NotFound {
        /// What kind of thing was looked up (`website`, `visitor`).
        what: &'static str,
        /// The identifier that was not found.
        id: String,
    },

    /// A thing the caller wanted to create exists already (a website id).
    #[error("{what} already exists: {id}")]
    AlreadyExists {
        /// What kind of thing it is.
        what: &'static str,
        /// Its identifier.
        id: String,
    },

    /// Reading or writing the data directory failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The catalog file could not be read or written.
    #[error("catalog error in {path}: {reason}")]
    Catalog {
        /// Path of the catalog file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// DataFusion failed to plan or run a query.
    #[error("query engine error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Arrow failed to build or convert a batch.
    #[error("arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// Parquet failed to write or read a segment.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// Another process has the data directory open for writing.
    #[error(
        "the data directory {path} is in use by {holder}; stop it, or run this command against it instead"
    )]
    Busy {
        /// The data directory.
        path: PathBuf,
        /// Who holds it (`process 1234`).
        holder: String,
    },

    /// A fault of the engine itself (a broken invariant, a failed worker task): never the
    /// caller's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

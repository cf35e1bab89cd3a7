//! The one error type every backend returns.

use std::time::Duration;

/// Result with the shared [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can match on.
///
/// Every variant carries what was asked (`what`, naming the operation and the
/// object) and why it failed, never secret material.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist, or is not visible to the caller's project.
    #[error("{what}: not found")]
    NotFound {
        /// The operation and object, e.g. `get secret 1b4e...`.
        what: String,
    },
    /// The caller is known but not allowed to do this.
    #[error("{what}: forbidden: {reason}")]
    Forbidden {
        /// The operation and object.
        what: String,
        /// Why, as the backend said it.
        reason: String,
    },
    /// The caller's credentials are missing, wrong, expired or revoked.
    #[error("{what}: not authenticated: {reason}")]
    Unauthenticated {
        /// The operation and object.
        what: String,
        /// Why, as the backend said it.
        reason: String,
    },
    /// The request itself is wrong (bad id, bad size, bad algorithm...).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// The field or value that was wrong.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The request conflicts with the object's state (e.g. delete of a
    /// secret that still has consumers, without force).
    #[error("{what}: conflict: {reason}")]
    Conflict {
        /// The operation and object.
        what: String,
        /// The conflicting state.
        reason: String,
    },
    /// The backend cannot serve now (connection refused, sealed, 503); retrying may work.
    #[error("{what}: backend unavailable: {reason}")]
    Unavailable {
        /// The operation and object.
        what: String,
        /// Why, as observed.
        reason: String,
    },
    /// The operation did not finish in time.
    #[error("{what}: timed out after {after:?}")]
    Timeout {
        /// The operation and object.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// The backend answered with an error the other kinds do not describe.
    #[error("{what}: backend error (status {status}): {message}")]
    Backend {
        /// The operation and object.
        what: String,
        /// HTTP (or backend-specific) status code.
        status: u16,
        /// The backend's message.
        message: String,
    },
    /// The configuration is missing or wrong.
    #[error("configuration: {reason}")]
    Config {
        /// What is wrong with it.
        reason: String,
    },
}

/// The kind of an [`Error`], for matching without the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Forbidden`].
    Forbidden,
    /// See [`Error::Unauthenticated`].
    Unauthenticated,
    /// See [`Error::InvalidInput`].
    InvalidInput,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::Unavailable`].
    Unavailable,
    /// See [`Error::Timeout`].
    Timeout,
    /// See [`Error::Backend`].
    Backend,
    /// See [`Error::Config`].
    Config,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Forbidden { .. } => ErrorKind::Forbidden,
            Error::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::Config { .. } => ErrorKind::Config,
        }
    }

    /// Whether the same call may succeed if repeated later (unavailable,
    /// timeout, or a 5xx/429 backend answer). Whether it is *safe* to
    /// repeat depends on the call being idempotent, which the caller knows.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::Timeout { .. } => true,
            Error::Backend { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Conflict {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Config`].
    pub fn config(reason: impl Into<String>) -> Self {
        Error::Config {
            reason: reason.into(),
        }
    }
}

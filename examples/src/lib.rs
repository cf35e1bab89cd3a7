//! Example storage services built on `keymgr` and `luks`: a Cinder-like volume
//! service, a Manila-like share service, Nova-like ephemeral disks and a
//! Glance-like image service.
//!
//! Each service keeps its state in one SQLite file ([`state::State`]) and its
//! "block devices" as LUKS files under the state directory. Secrets come from
//! whatever key manager the configuration names ([`config::ServiceConfig`]).

pub mod config;
pub mod device;
pub mod ephemeral;
pub mod image;
pub mod share;
pub mod state;
pub mod volume;

pub use config::ServiceConfig;

/// What a service request can fail with; messages name the object and never
/// carry secret material.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A bad request (HTTP 400 in the real service).
    #[error("400 Bad Request: {0}")]
    BadRequest(String),
    /// No such object.
    #[error("404 Not Found: {0}")]
    NotFound(String),
    /// The request conflicts with the object's state (HTTP 409).
    #[error("409 Conflict: {0}")]
    Conflict(String),
    /// A quota would be exceeded (HTTP 413).
    #[error("413 Over Quota: {0}")]
    OverQuota(String),
    /// The key manager failed.
    #[error("key manager: {0}")]
    Key(#[from] keymgr::Error),
    /// The LUKS layer failed.
    #[error("luks: {0}")]
    Luks(#[from] luks::Error),
    /// The state database failed.
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An external tool (qemu-img) failed or is missing.
    #[error("tool {tool}: {reason}")]
    Tool {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
}

impl ServiceError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
        let what = what.into();
        move |source| ServiceError::Io { what, source }
    }
}

/// Result of a service call.
pub type Result<T> = std::result::Result<T, ServiceError>;

/// A new random id for a service object.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

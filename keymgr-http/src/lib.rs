//! The HTTP layer shared by keymgr's HTTP backends (Barbican, Vault),
//! written once:
//!
//! - [`Backoff`] and [`Retry`]: exponential backoff with jitter, one
//!   `Retry-After` policy with one cap ([`RETRY_AFTER_CAP`]), and the retry
//!   loop a backend drives with its own verdict on each attempt;
//! - [`with_deadline`]: the one overall deadline per call (the configured
//!   timeout covers every attempt, wait and failover);
//! - [`TokenCache`]: a token kept until shortly before it expires
//!   ([`refresh_at`]), fetched once for concurrent callers;
//! - [`read_capped`]: a size-capped body reader whose buffers are zeroized;
//! - [`transport_error`] and [`describe`]: transport failures as the shared
//!   error kinds;
//! - [`client_builder`] and [`read_ca_bundle`]: the pooled client's common
//!   settings and the CA bundle it trusts;
//! - [`PoolScope`] and [`shared_client`]: one pooled client per transport
//!   configuration, shared by every manager built from one configuration.
//!
//! What a backend decides itself: which statuses are transient for it,
//! whether a call may be repeated, failover between nodes, and how an error
//! answer maps to an error kind (each backend's `errors.rs`).

mod backoff;
mod body;
mod client;
mod deadline;
mod errors;
mod pool;
mod token;

pub use backoff::{retry_after, Attempt, Backoff, Retry, RETRY_AFTER_CAP};
pub use body::{read_capped, BodyError, CappedBody, DEFAULT_BODY_LIMIT};
pub use client::{client_builder, read_ca_bundle, CaError};
pub use deadline::with_deadline;
pub use errors::{describe, transport_error};
pub use pool::{shared_client, PoolScope};
pub use token::{refresh_at, TokenCache};

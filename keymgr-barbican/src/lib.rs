//! OpenStack Barbican [`KeyManager`](keymgr_core::KeyManager) backend with
//! Keystone v3 authentication.
//!
//! - Keystone v3: password, token and application-credential auth; the
//!   token is cached until shortly before it expires and renewed once on a
//!   401; the `key-manager` endpoint comes from the service catalog (by
//!   interface and region) unless `barbican_endpoint` is set. Calls made on
//!   behalf of a user carry that user's token (see the `Context` rules on
//!   [`BarbicanKeyManager`]).
//! - Barbican v1: microversion negotiated from the version document (1.0,
//!   1.1 consumers, 1.2 delete refused while consumers exist unless forced),
//!   secrets, payloads, listing of every page with every filter, consumers,
//!   read ACLs, key orders polled with backoff and deleted when done.
//! - Transport: one pooled HTTP client per instance, timeouts, a custom CA
//!   bundle, jittered retries of idempotent calls (a `POST` is retried only
//!   when the connection could not even be opened).
//!
//! ```no_run
//! # async fn demo() -> keymgr_core::Result<()> {
//! use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager};
//! use keymgr_core::{KeyManager, KeySpec};
//!
//! let km = BarbicanKeyManager::new(BarbicanConfig::password(
//!     "http://127.0.0.1:5000/v3", "cinder", "password", "service", "Default",
//! ))?;
//! let ctx = km.own_context().await?;
//! let id = km.create_key(&ctx, &KeySpec::aes(256)).await?;
//! let key = km.get(&ctx, &id).await?;
//! assert_eq!(key.payload.len(), 32);
//! # Ok(()) }
//! ```
//!
//! Secrets (passwords, tokens, application-credential secrets, payloads)
//! are held in `secrecy`/`zeroize` types, marked sensitive in headers, and
//! never logged or shown by `Debug`.

mod acl;
mod config;
mod discovery;
mod errors;
mod keystone;
mod manager;
mod model;
mod orders;
mod transport;

/// The one door for fuzz targets and hostile-input tests: the answer
/// decoders. Not a stable API.
#[doc(hidden)]
pub mod internal;

pub use acl::SecretAcl;
pub use config::{AuthType, BarbicanConfig, EndpointType};
pub use discovery::MAX_MICROVERSION;
pub use manager::{BarbicanKeyManager, SecretFilter};

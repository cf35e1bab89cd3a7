//! The `KeyManager` contract shared by every keymgr backend.
//!
//! A storage service holds an `Arc<dyn KeyManager>` chosen by configuration and
//! never learns which backend is behind it. This crate defines:
//!
//! - [`KeyManager`], the async, object-safe trait every backend implements;
//! - the secret model: [`SecretKind`], [`SecretId`], [`Payload`], [`NewSecret`],
//!   [`Secret`], [`SecretMetadata`], [`Consumer`], [`KeySpec`];
//! - [`Context`], the tenant a call acts for;
//! - [`Error`], the one error type all backends return;
//! - the os-brick key-to-passphrase rule in [`passphrase`];
//! - with feature `testkit`, the conformance suite every backend's tests run.
//!
//! ```
//! use keymgr_core::{passphrase::passphrase_for, Payload, SecretKind};
//!
//! let key = Payload::from(vec![0x00, 0x0f, 0xa0]);
//! let pass = passphrase_for(SecretKind::Symmetric, &key).unwrap();
//! assert_eq!(pass.as_bytes(), b"000fa0");
//! ```

mod context;
pub mod encoding;
mod error;
mod id;
mod kind;
mod manager;
pub mod passphrase;
mod payload;
mod query;
mod secret;
mod spec;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use context::Context;
pub use error::{Error, ErrorKind, Result};
pub use id::SecretId;
pub use kind::SecretKind;
pub use manager::KeyManager;
pub use payload::Payload;
pub use query::{ListQuery, Page};
pub use secret::{Consumer, NewSecret, Secret, SecretMetadata};
pub use spec::KeySpec;

/// Re-exported so backends and callers name the same `async_trait`.
pub use async_trait::async_trait;
/// Re-exported for callers that build or read timestamps.
pub use time::OffsetDateTime;

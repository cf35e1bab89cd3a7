//! One embeddable, async API to the key managers storage services use.
//!
//! Pick a backend by configuration and hold it as `Arc<dyn KeyManager>`:
//!
//! ```
//! # #[cfg(feature = "mock")]
//! # async fn demo() -> keymgr::Result<()> {
//! use keymgr::{Config, Context, KeySpec};
//!
//! let config = Config::from_toml_str(r#"backend = "mock""#)?;
//! let km = keymgr::build(&config)?;
//! let ctx = Context::new("project-a", "alice");
//! let id = km.create_key(&ctx, &KeySpec::aes(256)).await?;
//! assert_eq!(km.get(&ctx, &id).await?.payload.len(), 32);
//! # Ok(())
//! # }
//! ```
//!
//! Backends are compiled in by feature: `mock` (default), `barbican`,
//! `vault`, `kmip`. Nothing outside the backend crates knows which one is in use.
//! The configuration is a keymgr TOML file, `KEYMGR_*` variables, or the
//! oslo.config INI file of an OpenStack service ([`oslo`]).

mod backends;
pub mod blocking;
mod config;
pub mod fixed_key;
mod kind;
pub mod oslo;

pub use backends::{build, from_config_file, from_env, BackendKind};
pub use config::{Config, ContextConfig};
pub use fixed_key::{FixedKey, MigrationKeyManager, FIXED_KEY_ID};
pub use keymgr_core::*;
pub use kind::{CASTELLAN_BARBICAN_CLASS, CASTELLAN_VAULT_CLASS};

//! HashiCorp Vault / OpenBao backend for keymgr, compatible with the keys
//! Castellan's Vault key manager stores.
//!
//! Secrets are KV records (v2 by default, or v1) in Castellan's layout (see the
//! `record` module), so keys written by Castellan read here and the reverse.
//! Beyond Castellan: the owning project and the consumers live in the same
//! record, so tenant isolation and consumer checks work; records are
//! created with check-and-set 0 so an id is never overwritten; delete
//! removes every version; several nodes fail over; read-after-write holds
//! on raft standbys through `X-Vault-Index`.
//!
//! ```no_run
//! # async fn demo() -> keymgr_core::Result<()> {
//! use keymgr_core::{Context, KeyManager, KeySpec};
//! use keymgr_vault::{VaultConfig, VaultKeyManager};
//!
//! let km = VaultKeyManager::new(VaultConfig::with_token("http://127.0.0.1:8200", "s.token"))?;
//! let id = km.create_key(&Context::new("p", "u"), &KeySpec::aes(256)).await?;
//! # let _ = id; Ok(())
//! # }
//! ```
//!
//! # Tenant isolation
//!
//! A record carries its owning project (`keymgr_project`); another
//! project gets `NotFound` for it, and never sees it in a listing.
//! Records with no owner, as Castellan writes them, are visible to every
//! project by default (`legacy_records_visible = true`): Castellan's Vault
//! backend has no notion of a project, so a deployment migrating from it
//! must still open its existing volumes. Set `legacy_records_visible =
//! false` to hide them.
//!
//! The owner and consumers are extra fields of the record (which Castellan
//! ignores) rather than KV v2 custom metadata, on both KV versions: the
//! owner is then written by the same check-and-set write that creates the
//! record (custom metadata is a second, separate write: a failure between
//! the two would leave an ownerless record visible to every project), and
//! consumer updates are check-and-set on the record's version (custom
//! metadata updates have no check-and-set).
//!
//! # Failures
//!
//! Connection failures, timeouts, 5xx, 412, 429, KV v2's transient 400
//! while a new mount upgrades, and a success whose body is not JSON are retried
//! (`max_retries`, exponential backoff with jitter, `Retry-After`
//! honoured); 503 (sealed or standby) and connection failures move to the
//! next node of `vault_url`; 307/308 redirects are followed (at most 3)
//! with the token kept. Every request sent is safe to repeat (see
//! the `transport` module): a create whose answer was lost is found again by
//! reading the id back after the check-and-set refusal, so it is neither
//! lost nor stored twice. Errors: 404 (an empty `errors` list, or a deleted
//! or destroyed version) is `NotFound`; 400 `InvalidInput` with the
//! server's message; 401 `Unauthenticated`; 403 `Forbidden` when the token
//! is valid, `Unauthenticated` when it is not (after one re-login for
//! AppRole/JWT, or one re-read of a token file); 412/429/5xx after the
//! retries `Unavailable` (so is an answer without the expected `data`:
//! never `NotFound` or an empty list); a timeout `Timeout`.
//!
//! # Limits
//!
//! Request and response bodies pass through reqwest's own buffers, which
//! are not zeroized. On KV v1 creates and consumer updates have no
//! check-and-set (a 122-bit random id makes a collision implausible; two
//! concurrent consumer updates of one record can lose one). A create whose
//! answer was lost and whose record cannot be read back within ~1.5 s is
//! stored again under a new id (the first record is then orphaned, never
//! lost or overwritten). Listing reads every record of the KV path (16 at
//! a time): cost grows with the number of records.

mod auth;
mod config;
mod errors;
mod manager;
mod model;
mod record;
mod transport;

/// The one door for fuzz targets and hostile-input tests: the record
/// decoder. Not a stable API.
#[doc(hidden)]
pub mod internal {
    pub use crate::record::Record;
}

pub use config::{AuthMethod, VaultConfig};
pub use manager::VaultKeyManager;
pub use record::castellan_record;
pub use transport::ClientStats;

//! The embedded keymgr backend: secrets in memory, or persisted in one
//! SQLite file with every secret sealed. No server needed.
//!
//! [`MockKeyManager`] follows Barbican's rules:
//!
//! - each secret belongs to the project of the [`Context`] that stored it;
//!   for any other project it is `NotFound`;
//! - consumers: adding one twice is not an error, removing an absent one is
//!   `NotFound`, deleting a secret that has consumers is `Conflict` unless
//!   forced;
//! - listing filters by kind and name, in creation order, with
//!   `limit` (default 100, at most 1000), `offset`, `total` and `next_offset`;
//! - an expired secret is treated as deleted: `NotFound` for every call,
//!   absent from listings, and dropped from the store at the next write;
//! - `create_key` draws from the operating system's random source.
//!
//! # The store file (format version 2)
//!
//! [`MockKeyManager::open_sealed`] keeps the secrets in one SQLite database
//! (the bundled SQLite of `rusqlite`) in WAL mode with `synchronous = FULL`:
//! a call returns after its transaction is durable. One row per secret,
//! consumers in their own table; every call is one SQLite transaction, so
//! its cost does not grow with the number of secrets (opening reads one
//! header row; `list` filters, counts and pages in SQL and decrypts only
//! the page it returns). Several threads and processes share one store
//! through SQLite's locking; a writer waits for another at most the busy
//! timeout (10 s, [`MockKeyManager::set_busy_timeout`]) and then fails with
//! [`SealedError::Busy`] (`Unavailable`). A kill at any point of a write
//! leaves the store as it was before or after it (SQLite's atomic commit).
//! Deleted rows are overwritten in the file (`PRAGMA secure_delete = ON`),
//! so a deleted secret's ciphertext does not stay in the database file (the
//! WAL is overwritten as it is reused and removed when the last handle
//! closes; copies made earlier, such as backups, keep what they hold).
//!
//! Sealing: the master key comes from a key file or an Argon2id passphrase
//! ([`MasterKey`]). `prk = HKDF-Extract(salt, ikm)` with the store's random
//! salt; each secret has its own AES-256-GCM key
//! `HKDF-SHA256-Expand(prk, "keymgr-mock/v2/entry" || id)` (the id's text
//! form). A secret's kind, name, algorithm, bit length, mode, creation time,
//! expiration and payload are sealed in its row; each consumer is sealed in
//! its own row under the secret's key. The associated data binds the salt,
//! the id, the project, the creation number and the row's other clear
//! columns, so a row cannot be moved to another id, project or store, or
//! altered, without failing to decrypt (reported as corruption). The
//! header row holds the key derivation (and Argon2 costs), the salt, a
//! key-check value `HKDF-Expand(prk, "keymgr-mock/v2/check")` and a SHA-256
//! of the header: a wrong key is `Unauthenticated` before anything is
//! written, a damaged header is corruption, not a wrong key.
//!
//! What the file shows in clear: project ids; a creation number per secret;
//! the id of each secret; the expiration time of secrets that have one (so
//! SQL can skip and purge expired secrets); keyed 128-bit tags
//! (HMAC-SHA256 under a key derived from the master key) of each secret's
//! kind and name within its project and of each consumer, which reveal
//! which secrets of a project share a kind or a name, not what it is; the
//! number of consumers of each secret; sizes.
//!
//! # What someone who can write the file can do
//!
//! Without the master key they cannot read or forge a secret, move one to
//! another project or id, or change a field: every such row fails to
//! decrypt and the call reports corruption (`Config`).
//! [`MockKeyManager::verify`] checks every row. They **can**, undetected:
//! delete secrets or consumer rows (e.g. to let a secret with consumers be
//! deleted without `force`); put back a row they copied earlier (a deleted
//! secret reappears, a removed consumer returns); replace the whole file
//! with an older copy (roll back); and see the metadata listed above. Rows
//! are authenticated one by one, not as a whole (that is what makes a write
//! cost independent of the store's size), so detecting deletion or rollback
//! needs state kept elsewhere, which this backend does not have. Protect
//! the file (and its directory) with the same care as the key file; a
//! store whose integrity against a local writer matters belongs in
//! Barbican or Vault.
//!
//! # Migration from version 1
//!
//! A file in the version-1 format (one sealed file rewritten at every
//! write, magic `KMGRSEAL`) at the configured path is migrated when it is
//! opened: it is read and authenticated completely first (a file that
//! cannot be fully read, e.g. truncated, damaged or opened with the wrong
//! key, is refused with a typed error and left untouched); then its secrets
//! and consumers, with their ids, creation order and times, are written in
//! one transaction to a new SQLite file, the old file is kept as
//! `<path>.v1.bak` (mode 0600), and the new file takes its place **at the
//! same path** (one rename). The salt and key derivation are kept, so the
//! same key file or passphrase opens the migrated store. Processes running
//! the old version must be stopped first: they would keep writing the old
//! file they hold open.
//!
//! Errors: [`SealedError::WrongKey`] becomes `Unauthenticated`; corrupt,
//! truncated or unsupported files, bad key files and out-of-bounds KDF
//! costs become `Config`; I/O, database and busy errors become
//! `Unavailable`. If the file is removed or replaced while a manager has it
//! open, calls fail with `Unavailable` rather than silently using another
//! store.
//!
//! The manager is synchronous inside (one SQLite connection behind a
//! `std::sync::Mutex`) and the [`KeyManager`] methods run their short
//! transactions inline, without `spawn_blocking`: the library needs no
//! particular runtime. A call may wait for another writer up to the busy
//! timeout.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use keymgr_core::{Context, KeyManager, KeySpec};
//! use keymgr_mock::MockKeyManager;
//!
//! let km = MockKeyManager::new();
//! let ctx = Context::new("project-a", "alice");
//! let id = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();
//! assert_eq!(km.get(&ctx, &id).await.unwrap().payload.len(), 32);
//! let other = Context::new("project-b", "bob");
//! assert!(km.get(&other, &id).await.is_err());
//! # });
//! ```

mod codec;
mod config;
mod crypto;
mod db;
mod error;
mod file;
mod master;
mod migrate;
mod store;
mod v1;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use keymgr_core::{
    async_trait, Consumer, Context, KeyManager, KeySpec, ListQuery, NewSecret, OffsetDateTime,
    Page, Result, Secret, SecretId, SecretMetadata,
};

pub use config::{default_key_file_for, MockConfig};
pub use db::DEFAULT_BUSY_TIMEOUT;
pub use error::SealedError;
pub use master::{Argon2Params, MasterKey, MASTER_KEY_LEN};
pub use migrate::backup_path;
pub use store::{DEFAULT_PAGE_SIZE, MAX_FIELD_LEN, MAX_PAGE_SIZE, MAX_PAYLOAD_LEN};

use db::Db;
use store::Store;

enum Inner {
    Memory(Store),
    File(Box<Db>),
}

/// The embedded key manager. See the crate documentation.
///
/// `Debug` shows where the secrets live, never their contents.
pub struct MockKeyManager {
    inner: Mutex<Inner>,
    path: Option<PathBuf>,
}

impl Default for MockKeyManager {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MockKeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockKeyManager")
            .field(
                "storage",
                &if self.path.is_some() {
                    "sealed file"
                } else {
                    "memory"
                },
            )
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl MockKeyManager {
    /// An empty store kept in memory only.
    pub fn new() -> Self {
        MockKeyManager {
            inner: Mutex::new(Inner::Memory(Store::default())),
            path: None,
        }
    }

    /// Opens the store at `path`, or creates it (empty, with its
    /// directory, mode 0700, and the file mode 0600) when there is none;
    /// a version-1 sealed file there is migrated first (see the crate
    /// documentation). A file that exists but cannot be opened with
    /// `master` is an error and is left untouched. Opening reads one
    /// header row, whatever the number of secrets.
    pub fn open_sealed(path: impl AsRef<Path>, master: MasterKey) -> Result<Self, SealedError> {
        let path = path.as_ref();
        let db = Db::open(path, master)?;
        Ok(MockKeyManager {
            inner: Mutex::new(Inner::File(Box::new(db))),
            path: Some(path.to_path_buf()),
        })
    }

    /// The store file, or `None` for a memory-only store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Sets how long a call waits for other writers of the store file
    /// before failing with `Unavailable` ([`SealedError::Busy`]); the
    /// default is [`DEFAULT_BUSY_TIMEOUT`]. No effect in memory.
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), SealedError> {
        match &mut *self.lock() {
            Inner::Memory(_) => Ok(()),
            Inner::File(db) => db.set_busy_timeout(timeout),
        }
    }

    /// Reads and authenticates every row of the store file (and runs
    /// SQLite's integrity check): the number of secrets, or the first
    /// damaged or altered row as `Config`. Costs time proportional to the
    /// store; the other calls check only the rows they touch.
    pub fn verify(&self) -> Result<usize> {
        match &mut *self.lock() {
            Inner::Memory(s) => Ok(s.records.len()),
            Inner::File(db) => db.read(|ops| ops.verify()),
        }
    }

    /// Stores many secrets for one project in **one** transaction (one
    /// fsync), in order; their ids. All or none are stored. For imports and
    /// for filling benchmark stores; each secret is sealed exactly as
    /// [`KeyManager::store`] seals it.
    pub fn store_batch(
        &self,
        ctx: &Context,
        secrets: impl IntoIterator<Item = NewSecret>,
    ) -> Result<Vec<SecretId>> {
        match &mut *self.lock() {
            Inner::Memory(s) => {
                let t = now();
                s.purge_expired(t);
                let mut copy = s.clone();
                let ids = secrets
                    .into_iter()
                    .map(|n| copy.store(ctx, n, t))
                    .collect::<Result<Vec<_>>>()?;
                *s = copy;
                Ok(ids)
            }
            Inner::File(db) => db.write(|ops| {
                secrets
                    .into_iter()
                    .map(|n| ops.store(ctx, n))
                    .collect::<Result<Vec<_>>>()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half
        // changed (operations check before they change, and a file
        // transaction rolls back), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a read: against memory, or in one read transaction.
    fn read<T>(
        &self,
        mem: impl FnOnce(&Store, OffsetDateTime) -> Result<T>,
        file: impl FnOnce(&db::Ops<'_>) -> Result<T>,
    ) -> Result<T> {
        match &mut *self.lock() {
            Inner::Memory(s) => mem(s, now()),
            Inner::File(db) => db.read(file),
        }
    }

    /// Runs a change: in memory after purging expired secrets, or in one
    /// write transaction (committed only when the change succeeds).
    fn write<T>(
        &self,
        mem: impl FnOnce(&mut Store, OffsetDateTime) -> Result<T>,
        file: impl FnOnce(&db::Ops<'_>) -> Result<T>,
    ) -> Result<T> {
        match &mut *self.lock() {
            Inner::Memory(s) => {
                let t = now();
                s.purge_expired(t);
                mem(s, t)
            }
            Inner::File(db) => db.write(file),
        }
    }
}

#[async_trait]
impl KeyManager for MockKeyManager {
    fn backend_name(&self) -> &'static str {
        "mock"
    }

    /// Barbican's form, as the store keeps Barbican's semantics: a
    /// hyphenated lower-case UUID (32 hex digits are accepted and converted).
    fn parse_id(&self, input: &str) -> Result<SecretId> {
        SecretId::parse(input)?.to_hyphenated_uuid()
    }

    async fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId> {
        self.write(
            |s, t| s.create_key(ctx, spec, t),
            |o| o.store(ctx, store::new_key(ctx, spec)?),
        )
    }

    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        // The secret moves into whichever branch runs.
        let mut secret = Some(secret.into_normalized()?);
        let mut take = || {
            secret
                .take()
                .ok_or_else(|| keymgr_core::Error::Unavailable {
                    what: "store".into(),
                    reason: "internal: the secret was already used".into(),
                })
        };
        match &mut *self.lock() {
            Inner::Memory(s) => {
                let t = now();
                s.purge_expired(t);
                s.store(ctx, take()?, t)
            }
            Inner::File(db) => db.write(|o| o.store(ctx, take()?)),
        }
    }

    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        let id = &id.to_hyphenated_uuid()?;
        self.read(|s, t| s.get(ctx, id, t), |o| o.get(ctx, id))
    }

    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        let id = &id.to_hyphenated_uuid()?;
        self.read(|s, t| s.metadata(ctx, id, t), |o| o.metadata(ctx, id))
    }

    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        self.read(|s, t| s.list(ctx, query, t), |o| o.list(ctx, query))
    }

    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(
            |s, t| s.delete(ctx, id, force, t),
            |o| o.delete(ctx, id, force),
        )
    }

    async fn clone_secret(&self, ctx: &Context, id: &SecretId) -> Result<SecretId> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(
            |s, t| s.clone_secret(ctx, id, t),
            |o| o.clone_secret(ctx, id),
        )
    }

    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(
            |s, t| s.add_consumer(ctx, id, consumer, t).map(|_| ()),
            |o| o.add_consumer(ctx, id, consumer),
        )
    }

    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(
            |s, t| s.remove_consumer(ctx, id, consumer, t),
            |o| o.remove_consumer(ctx, id, consumer),
        )
    }

    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        let id = &id.to_hyphenated_uuid()?;
        self.read(
            |s, t| s.list_consumers(ctx, id, t),
            |o| o.list_consumers(ctx, id),
        )
    }
}

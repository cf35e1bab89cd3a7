//! The embedded keymgr backend: secrets in memory, optionally persisted to
//! one sealed file. No server needed.
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
//! With [`MockKeyManager::open_sealed`] every change is written to one file
//! sealed with AES-256-GCM (see "File format" below): the master
//! key comes from a key file or an Argon2id passphrase ([`MasterKey`]). Writes
//! replace the file atomically under an exclusive lock on `<path>.lock`, after
//! re-reading it if another process changed it, so several processes can
//! share one store without losing writes. A file that cannot be read
//! (truncated, corrupt, wrong key) gives a typed [`SealedError`] and is
//! never overwritten. If the file disappears while a manager has it open,
//! calls fail with `Unavailable` rather than silently starting an empty
//! store. Temporary files left by a writer that died are removed the next
//! time the store is opened.
//!
//! Errors: [`SealedError::WrongKey`] becomes `Unauthenticated`; corrupt,
//! truncated or unsupported files, bad key files and out-of-bounds KDF
//! costs become `Config` (the message says the file was left unchanged);
//! I/O failures become `Unavailable`.
//!
//! The manager is synchronous inside (a `std::sync::Mutex`) and the
//! [`KeyManager`] methods run their short file I/O inline, without
//! `spawn_blocking`: the library needs no particular runtime, and a sealed
//! store is small. A call may wait for another process's write (the file
//! lock) for as long as that write takes.
//!
//! # File format
//!
//! ```text
//! header (132 bytes, integers little-endian)
//!   0  magic "KMGRSEAL"
//!   8  u16 format version (1)
//!  10  u8  kdf: 1 = key file, 2 = Argon2id passphrase
//!  11  u8  reserved (0)
//!  12  u32 argon2 memory KiB, u32 iterations, u32 parallelism (0 for a key file)
//!  24  16 bytes salt (random per file; Argon2 salt and HKDF salt)
//!  40  u64 generation (+1 on every write)
//!  48  u64 next creation sequence number
//!  56  u32 entry count
//!  60  u64 file length
//!  68  32 bytes key check value: HKDF-Expand(prk, "keymgr-mock/v1/check")
//! 100  32 bytes SHA-256 of bytes 0..100 (detects a damaged header, so that a
//!      damaged header is reported as corruption, not as a wrong key)
//! entries, each:
//!   16 bytes secret id, u16 project length, project (UTF-8),
//!   12 bytes nonce, u32 ciphertext length, ciphertext (AES-256-GCM, tag last)
//!   key  = HKDF-Expand(prk, "keymgr-mock/v1/entry" || id)
//!   AAD  = "keymgr-mock/v1/entry" || salt || id || u16 project length || project
//! trailer: HMAC-SHA256(HKDF-Expand(prk, "keymgr-mock/v1/mac"), every byte before it)
//! ```
//!
//! `prk = HKDF-Extract(salt, ikm)` where `ikm` is the key file's 32 bytes or
//! Argon2id(passphrase, salt, header costs). The trailer authenticates the
//! whole file (no entry can be dropped, reordered or spliced from another
//! file); each entry's plaintext holds the creation sequence number, kind,
//! timestamps, name, algorithm, bit length, mode, consumers and payload.
//! Project ids are stored in clear (they name tenants, not secrets).
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

mod config;
mod error;
mod file;
mod master;
mod sealed;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use keymgr_core::{
    async_trait, Consumer, Context, KeyManager, KeySpec, ListQuery, NewSecret, OffsetDateTime,
    Page, Result, Secret, SecretId, SecretMetadata,
};

pub use config::{default_key_file_for, default_store_path, MockConfig};
pub use error::SealedError;
pub use master::{Argon2Params, MasterKey, MASTER_KEY_LEN};
pub use store::{DEFAULT_PAGE_SIZE, MAX_FIELD_LEN, MAX_PAGE_SIZE, MAX_PAYLOAD_LEN};

use file::SealedFile;
use store::Store;

struct Inner {
    store: Store,
    file: Option<SealedFile>,
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
            inner: Mutex::new(Inner {
                store: Store::default(),
                file: None,
            }),
            path: None,
        }
    }

    /// Opens the sealed store at `path`, or creates it (empty, with its
    /// directory, mode 0700, and the file mode 0600) when there is none.
    /// A file that exists but cannot be read with `master` is an error and
    /// is left untouched.
    pub fn open_sealed(path: impl AsRef<Path>, master: MasterKey) -> Result<Self, SealedError> {
        let path = path.as_ref();
        let (file, store) = SealedFile::open(path, master)?;
        Ok(MockKeyManager {
            inner: Mutex::new(Inner {
                store,
                file: Some(file),
            }),
            path: Some(path.to_path_buf()),
        })
    }

    /// The sealed file, or `None` for a memory-only store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half
        // changed (operations check before they change), so a poisoned
        // lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a read against the current contents (re-read first if the
    /// file changed).
    fn read<T>(&self, f: impl FnOnce(&Store, OffsetDateTime) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let Inner { store, file } = &mut *g;
        if let Some(file) = file {
            file.refresh(store)?;
        }
        f(store, now())
    }

    /// Runs a change: under the file lock, re-read the file if it changed,
    /// apply, and write the file. Nothing is written when `f` fails.
    fn write<T>(&self, f: impl FnOnce(&mut Store, OffsetDateTime) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let Inner { store, file } = &mut *g;
        let t = now();
        match file {
            None => {
                store.purge_expired(t);
                f(store, t)
            }
            Some(file) => {
                let _lock = file.lock_exclusive()?;
                file.refresh(store)?;
                let purged = store.purge_expired(t);
                let out = f(store, t);
                if out.is_ok() {
                    if let Err(e) = file.commit(store) {
                        // The in-memory store is ahead of the file: make
                        // the next call read the file again.
                        file.invalidate();
                        tracing::warn!(error = %e, "writing the sealed store failed");
                        return Err(e.into());
                    }
                } else if purged {
                    // Purging changed the store without writing it.
                    file.invalidate();
                }
                out
            }
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
        self.write(|s, t| s.create_key(ctx, spec, t))
    }

    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        let secret = secret.into_normalized()?;
        self.write(|s, t| s.store(ctx, secret, t))
    }

    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        let id = &id.to_hyphenated_uuid()?;
        self.read(|s, t| s.get(ctx, id, t))
    }

    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        let id = &id.to_hyphenated_uuid()?;
        self.read(|s, t| s.metadata(ctx, id, t))
    }

    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        self.read(|s, t| s.list(ctx, query, t))
    }

    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(|s, t| s.delete(ctx, id, force, t))
    }

    async fn clone_secret(&self, ctx: &Context, id: &SecretId) -> Result<SecretId> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(|s, t| s.clone_secret(ctx, id, t))
    }

    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(|s, t| s.add_consumer(ctx, id, consumer, t).map(|_| ()))
    }

    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        self.write(|s, t| s.remove_consumer(ctx, id, consumer, t))
    }

    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        let id = &id.to_hyphenated_uuid()?;
        self.read(|s, t| s.list_consumers(ctx, id, t))
    }
}

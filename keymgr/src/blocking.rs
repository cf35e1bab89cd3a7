//! A blocking wrapper for programs without an async runtime.
//!
//! The library never starts a runtime of its own; this wrapper does, on
//! request, for command-line tools and scripts.
//!
//! ```
//! # #[cfg(feature = "mock")]
//! # fn demo() -> keymgr::Result<()> {
//! use keymgr::{blocking::BlockingKeyManager, Config, Context, KeySpec};
//! let km = BlockingKeyManager::new(keymgr::build(&Config::new(keymgr::BackendKind::Mock))?)?;
//! let ctx = Context::new("p", "u");
//! let id = km.create_key(&ctx, &KeySpec::aes(256))?;
//! assert_eq!(km.get(&ctx, &id)?.payload.expose().len(), 32);
//! // Anything without a shortcut: run a future on the wrapper's runtime.
//! let copy = km.run(km.inner().clone_secret(&ctx, &id))?;
//! km.delete(&ctx, &copy, false)?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use keymgr_core::{
    Consumer, Context, Error, KeyManager, KeySpec, ListQuery, NewSecret, Page, Result, Secret,
    SecretId, SecretMetadata,
};

/// A key manager with its own single-threaded tokio runtime.
#[derive(Debug)]
pub struct BlockingKeyManager {
    runtime: tokio::runtime::Runtime,
    inner: Arc<dyn KeyManager>,
}

impl BlockingKeyManager {
    /// Wraps `inner`, starting a current-thread runtime.
    pub fn new(inner: Arc<dyn KeyManager>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::config(format!("cannot start an async runtime: {e}")))?;
        Ok(BlockingKeyManager { runtime, inner })
    }

    /// The wrapped async key manager.
    pub fn inner(&self) -> &Arc<dyn KeyManager> {
        &self.inner
    }
}

/// Blocking shortcuts for every [`KeyManager`] call, each run to completion on
/// the wrapper's runtime.
impl BlockingKeyManager {
    /// Runs any future to completion on this wrapper's runtime (e.g. a call on
    /// [`inner`](Self::inner) that borrows local values).
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }

    /// [`KeyManager::create_key`].
    pub fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId> {
        self.run(self.inner.create_key(ctx, spec))
    }

    /// [`KeyManager::store`].
    pub fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        self.run(self.inner.store(ctx, secret))
    }

    /// [`KeyManager::get`].
    pub fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        self.run(self.inner.get(ctx, id))
    }

    /// [`KeyManager::metadata`].
    pub fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        self.run(self.inner.metadata(ctx, id))
    }

    /// [`KeyManager::list`].
    pub fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        self.run(self.inner.list(ctx, query))
    }

    /// [`KeyManager::list_all`].
    pub fn list_all(&self, ctx: &Context, query: &ListQuery) -> Result<Vec<SecretMetadata>> {
        self.run(self.inner.list_all(ctx, query))
    }

    /// [`KeyManager::delete`].
    pub fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        self.run(self.inner.delete(ctx, id, force))
    }

    /// [`KeyManager::clone_secret`].
    pub fn clone_secret(&self, ctx: &Context, id: &SecretId) -> Result<SecretId> {
        self.run(self.inner.clone_secret(ctx, id))
    }

    /// [`KeyManager::add_consumer`].
    pub fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        self.run(self.inner.add_consumer(ctx, id, consumer))
    }

    /// [`KeyManager::remove_consumer`].
    pub fn remove_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        self.run(self.inner.remove_consumer(ctx, id, consumer))
    }

    /// [`KeyManager::list_consumers`].
    pub fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        self.run(self.inner.list_consumers(ctx, id))
    }
}

//! A blocking wrapper for programs without an async runtime.
//!
//! The library never starts a runtime of its own; this wrapper does, on
//! request, for command-line tools and scripts.
//!
//! ```
//! # #[cfg(feature = "mock")]
//! # fn demo() -> keymgr::Result<()> {
//! use keymgr::{blocking::BlockingKeyManager, Config, Context, KeySpec};
//! let km = BlockingKeyManager::new(keymgr::build(&Config::new("mock"))?)?;
//! let ctx = Context::new("p", "u");
//! let id = km.block_on(|km| Box::pin(async move { km.create_key(&ctx, &KeySpec::aes(256)).await }))?;
//! # let _ = id;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keymgr_core::{Error, KeyManager, Result};

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

    /// Runs `f` on the wrapped manager to completion.
    pub fn block_on<T>(
        &self,
        f: impl FnOnce(Arc<dyn KeyManager>) -> Pin<Box<dyn Future<Output = T> + Send>>,
    ) -> T {
        self.runtime.block_on(f(self.inner.clone()))
    }
}

//! One pooled HTTP client per transport configuration, shared by every
//! manager built from one configuration.
//!
//! A `reqwest::Client` holds its connection pool (one pool per host inside
//! it); cloning it shares that pool. A [`PoolScope`] stands for "one
//! configuration": the managers built inside [`PoolScope::enter`] ask
//! [`shared_client`] with the same key (every setting that shapes the
//! client: backend, timeout, TLS verification, CA file) and get clones of
//! one client, so they reuse each other's open connections instead of each
//! opening its own to the same server. Outside a scope (a backend built
//! directly) every manager gets its own client, as before.
//!
//! Why not one process-wide client per key: a client's connections belong
//! to the async runtime that opened them; independent callers (tests with
//! a runtime each, blocking wrappers) would be handed connections of a
//! runtime that has shut down. A scope is the caller saying the managers
//! belong together.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Clients built so far, by scope and key.
fn registry() -> &'static Mutex<HashMap<(u64, String), reqwest::Client>> {
    static CLIENTS: OnceLock<Mutex<HashMap<(u64, String), reqwest::Client>>> = OnceLock::new();
    CLIENTS.get_or_init(|| Mutex::new(HashMap::new()))
}

thread_local! {
    static CURRENT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// A set of managers that share HTTP clients (one configuration). When it
/// is dropped its clients are forgotten by the registry; managers built in
/// it keep theirs.
#[derive(Debug)]
pub struct PoolScope {
    id: u64,
}

impl Default for PoolScope {
    fn default() -> Self {
        PoolScope::new()
    }
}

impl PoolScope {
    /// A new scope, sharing nothing yet.
    pub fn new() -> PoolScope {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        PoolScope {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Runs `f` (which builds managers) inside this scope on this thread.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let outer = CURRENT.with(|c| c.replace(Some(self.id)));
        struct Restore(Option<u64>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(outer);
        f()
    }
}

impl Drop for PoolScope {
    fn drop(&mut self) {
        let mut clients = registry().lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|(scope, _), _| *scope != self.id);
    }
}

/// The client for `key`: inside a [`PoolScope`], a clone of the one built
/// earlier in the scope for the same key (same connection pool), else the
/// one `build` makes, kept for the scope; outside a scope, `build()`.
/// `key` must name every setting `build` uses; it holds no secret.
pub fn shared_client<E>(
    key: &str,
    build: impl FnOnce() -> Result<reqwest::Client, E>,
) -> Result<reqwest::Client, E> {
    let Some(scope) = CURRENT.with(Cell::get) else {
        return build();
    };
    let mut clients = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(&(scope, key.to_string())) {
        return Ok(c.clone());
    }
    let c = build()?;
    clients.insert((scope, key.to_string()), c.clone());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str, builds: &mut u32) -> reqwest::Client {
        shared_client::<()>(key, || {
            *builds += 1;
            Ok(reqwest::Client::new())
        })
        .unwrap()
    }

    #[test]
    fn one_scope_one_client_per_key() {
        let mut builds = 0;
        let scope = PoolScope::new();
        scope.enter(|| {
            get("a", &mut builds);
            get("a", &mut builds);
        });
        assert_eq!(builds, 1, "the second manager reuses the first's client");
        scope.enter(|| get("b", &mut builds));
        assert_eq!(builds, 2, "other transport settings get their own client");
        PoolScope::new().enter(|| get("a", &mut builds));
        assert_eq!(builds, 3, "another configuration gets its own client");
        get("a", &mut builds);
        get("a", &mut builds);
        assert_eq!(builds, 5, "outside a scope nothing is shared");
        let failed = scope.enter(|| shared_client::<&str>("c", || Err("no")));
        assert!(failed.is_err());
        scope.enter(|| get("c", &mut builds));
        assert_eq!(builds, 6, "a failed build is not remembered");
        let id = scope.id;
        drop(scope);
        assert!(!registry().lock().unwrap().keys().any(|(s, _)| *s == id));
    }
}

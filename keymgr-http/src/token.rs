//! A token cache that refreshes before expiry.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymgr_core::Result;

/// When to stop using a token that lives `lifetime` from now: a minute
/// before it ends, or a quarter of its lifetime before when it lives less
/// than four minutes (so a short lease is renewed before, never after).
pub fn refresh_at(lifetime: Duration) -> Instant {
    let margin = Duration::from_secs(60).min(lifetime / 4);
    Instant::now() + lifetime.saturating_sub(margin)
}

/// One cached token (or any credential), kept until its refresh time.
/// Concurrent callers wait for one fetch rather than each doing one, and a
/// fetch that fails fails every caller that was waiting for it (they do not
/// each try again in turn, which would make the last of N callers wait N
/// times the timeout of a token service that never answers).
pub struct TokenCache<T> {
    slot: tokio::sync::Mutex<Slot<T>>,
}

struct Slot<T> {
    /// The token and when to stop using it (`None`: until invalidated).
    token: Option<(Arc<T>, Option<Instant>)>,
    /// The last failed fetch: when it started, when it failed, and why.
    failed: Option<(Instant, Instant, keymgr_core::Error)>,
}

impl<T> Default for TokenCache<T> {
    fn default() -> Self {
        TokenCache {
            slot: tokio::sync::Mutex::new(Slot {
                token: None,
                failed: None,
            }),
        }
    }
}

impl<T> std::fmt::Debug for TokenCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl<T> TokenCache<T> {
    /// The cached token while it is fresh, else the one `fetch` returns
    /// with its refresh time (`None`: kept until invalidated).
    pub async fn get<F>(&self, fetch: impl FnOnce() -> F) -> Result<Arc<T>>
    where
        F: Future<Output = Result<(T, Option<Instant>)>>,
    {
        let arrived = Instant::now();
        let mut slot = self.slot.lock().await;
        if let Some((t, until)) = slot.token.as_ref() {
            if until.is_none_or(|at| Instant::now() < at) {
                return Ok(t.clone());
            }
        }
        // A fetch that was under way when this caller arrived has failed:
        // its answer is this caller's too.
        if let Some((started, ended, e)) = &slot.failed {
            if *started <= arrived && arrived <= *ended {
                return Err(e.clone());
            }
        }
        let started = Instant::now();
        match fetch().await {
            Ok((t, until)) => {
                let t = Arc::new(t);
                slot.token = Some((t.clone(), until));
                slot.failed = None;
                Ok(t)
            }
            Err(e) => {
                slot.failed = Some((started, Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Forgets `stale` (after the server refused it), unless another caller
    /// already replaced it.
    pub async fn invalidate(&self, stale: &Arc<T>) {
        let mut slot = self.slot.lock().await;
        if slot
            .token
            .as_ref()
            .is_some_and(|(t, _)| Arc::ptr_eq(t, stale))
        {
            slot.token = None;
        }
    }

    /// Forgets whatever is cached.
    pub async fn clear(&self) {
        let mut slot = self.slot.lock().await;
        slot.token = None;
        slot.failed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let left = refresh_at(Duration::from_secs(3600)) - Instant::now();
        assert!(left <= Duration::from_secs(3540) && left > Duration::from_secs(3530));
        let left = refresh_at(Duration::from_secs(120)) - Instant::now();
        assert!(left <= Duration::from_secs(90) && left > Duration::from_secs(85));
        assert!(refresh_at(Duration::ZERO) <= Instant::now());
    }

    #[tokio::test]
    async fn fresh_tokens_are_reused_stale_ones_fetched_again() {
        let cache = TokenCache::default();
        let mut fetches = 0;
        let a = cache
            .get(|| {
                fetches += 1;
                async { Ok((1, None)) }
            })
            .await
            .unwrap();
        let b = cache.get(|| async { unreachable!() }).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        cache.invalidate(&Arc::new(1)).await;
        let c = cache.get(|| async { unreachable!() }).await.unwrap();
        assert!(
            Arc::ptr_eq(&a, &c),
            "only the stale token itself is forgotten"
        );
        cache.invalidate(&a).await;
        let d = cache
            .get(|| {
                fetches += 1;
                async { Ok((2, Some(Instant::now()))) }
            })
            .await
            .unwrap();
        assert_eq!(*d, 2);
        let e = cache
            .get(|| {
                fetches += 1;
                async { Ok((3, None)) }
            })
            .await
            .unwrap();
        assert_eq!((*e, fetches), (3, 3), "an expired token is fetched again");
        cache.clear().await;
        assert!(cache
            .get(|| async { Err(keymgr_core::Error::config("x")) })
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn callers_waiting_on_a_failed_fetch_share_its_error() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Arc::new(TokenCache::<u32>::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let t0 = tokio::time::Instant::now();
        let calls = (0..8).map(|_| {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            async move {
                cache
                    .get(|| async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        // A token service that never answers within the timeout.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        Err(keymgr_core::Error::Timeout {
                            what: "keystone".into(),
                            after: Duration::from_secs(2),
                        })
                    })
                    .await
            }
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.unwrap_err().kind(), keymgr_core::ErrorKind::Timeout);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for all");
        assert_eq!(t0.elapsed(), Duration::from_secs(2), "not 8 x 2 s");
        // A caller arriving after the failure tries again.
        let t = cache.get(|| async { Ok((7, None)) }).await.unwrap();
        assert_eq!(*t, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_wait_for_one_fetch() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        // A slow token service: every caller arrives meanwhile.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(("token", Some(Instant::now() + Duration::from_secs(60))))
                    })
                    .await
                    .unwrap()
            }));
        }
        let first = tasks.remove(0).await.unwrap();
        for t in tasks {
            assert!(Arc::ptr_eq(&first, &t.await.unwrap()));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch, no stampede");

        // After a refusal, concurrent callers again fetch once between them.
        cache.invalidate(&first).await;
        let again = (0..16).map(|_| {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tokio::spawn(async move {
                cache
                    .get(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(("new", None))
                    })
                    .await
                    .unwrap()
            })
        });
        for t in again.collect::<Vec<_>>() {
            assert_eq!(*t.await.unwrap(), "new");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}

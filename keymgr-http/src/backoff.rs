//! Exponential backoff with jitter, the `Retry-After` policy, and the retry
//! loop.

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;

/// The longest `Retry-After` honoured: a server asking for more is waited
/// on this long (the call's deadline still bounds the whole call).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// Waits between attempts: `base * 2^n`, capped at `cap`, jittered to
/// 50-100% so clients that failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait (before jitter).
    pub base: Duration,
    /// No backoff wait is longer.
    pub cap: Duration,
}

impl Backoff {
    /// The wait before retry number `n` (0-based): `base * 2^n`, capped,
    /// jittered to [50%, 100%).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.min(16));
        exp.min(self.cap).mul_f64(jitter())
    }

    /// The wait before retry `n` when the answer may have carried a
    /// `Retry-After`: the longer of the backoff and the server's wish
    /// (capped at [`RETRY_AFTER_CAP`]).
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let d = self.delay(n);
        match retry_after {
            Some(after) => d.max(after.min(RETRY_AFTER_CAP)),
            None => d,
        }
    }
}

/// A factor in [0.5, 1.0) from the OS random source.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: the full wait, never a shorter one.
        return 1.0 - f64::EPSILON;
    }
    0.5 + 0.5 * (f64::from(u32::from_le_bytes(b)) / 4_294_967_296.0)
}

/// A `Retry-After` given in seconds, if the answer carries one. (The
/// HTTP-date form is not used by Barbican or Vault and is ignored.)
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What one attempt came to, as the backend judges it.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Final: returned as is.
    Done(T),
    /// Worth another attempt if any is left (after the backoff, or the
    /// `Retry-After` when longer); `last` is returned when none is.
    Again {
        /// What to return when no retry is left.
        last: T,
        /// The server's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
}

/// How many times to retry, and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The waits.
    pub backoff: Backoff,
}

impl Retry {
    /// Runs `attempt(n)` (n = 0, 1, ...) until it is [`Attempt::Done`] or
    /// the retries are used up, waiting [`Backoff::wait`] in between.
    /// `on_retry(n)` is called before each wait (for counters and logs).
    /// The caller bounds the whole loop with [`crate::with_deadline`].
    pub async fn run<T, F>(
        &self,
        mut attempt: impl FnMut(u32) -> F,
        mut on_retry: impl FnMut(u32, Duration),
    ) -> T
    where
        F: Future<Output = Attempt<T>>,
    {
        let mut n = 0u32;
        loop {
            match attempt(n).await {
                Attempt::Done(t) => return t,
                Attempt::Again { last, retry_after } => {
                    if n >= self.retries {
                        return last;
                    }
                    let wait = self.backoff.wait(n, retry_after);
                    on_retry(n, wait);
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
            }
        }
    }

    /// The part of `left` one attempt may take when `n` attempts were made
    /// and the rest are shared between at most `ways` (so a hung attempt
    /// still leaves time for the others).
    pub fn share(&self, n: u32, left: Duration, ways: u32) -> Duration {
        let tries_left = self.retries.saturating_sub(n) + 1;
        left.div_f64(f64::from(tries_left.min(ways).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for n in 0..40 {
            let d = b.delay(n);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << n.min(16))
                .min(Duration::from_secs(1));
            assert!(d >= full / 2 && d < full, "attempt {n}: {d:?} vs {full:?}");
        }
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| b.delay(3)).collect();
        assert!(samples.len() > 1, "no jitter");
    }

    #[test]
    fn retry_after_is_parsed_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None, "dates are not used");
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(20),
        };
        assert_eq!(
            b.wait(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(b.wait(0, Some(Duration::from_secs(3600))), RETRY_AFTER_CAP);
        assert!(b.wait(5, Some(Duration::ZERO)) < Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_stops_when_done_or_out_of_retries() {
        let r = Retry {
            retries: 3,
            backoff: Backoff {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(40),
            },
        };
        let mut calls = 0;
        let mut retried = Vec::new();
        let out = r
            .run(
                |n| {
                    calls += 1;
                    async move {
                        Attempt::Again {
                            last: n,
                            retry_after: None,
                        }
                    }
                },
                |n, _| retried.push(n),
            )
            .await;
        assert_eq!((out, calls), (3, 4));
        assert_eq!(retried, [0, 1, 2]);
        let out = r
            .run(
                |n| async move {
                    if n == 1 {
                        Attempt::Done("ok")
                    } else {
                        Attempt::Again {
                            last: "no",
                            retry_after: None,
                        }
                    }
                },
                |_, _| {},
            )
            .await;
        assert_eq!(out, "ok");
        assert_eq!(
            r.share(0, Duration::from_secs(8), 2),
            Duration::from_secs(4)
        );
        assert_eq!(
            r.share(3, Duration::from_secs(8), 9),
            Duration::from_secs(8)
        );
        assert_eq!(
            r.share(0, Duration::from_secs(8), u32::MAX),
            Duration::from_secs(2)
        );
    }
}

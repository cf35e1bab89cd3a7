//! The one deadline of a call: the configured timeout covers every
//! attempt, wait and failover, and its error names where the call went.

use std::future::Future;
use std::time::Duration;

use keymgr_core::{Error, Result};
use tokio::time::Instant;

/// Runs `call(deadline)` within `timeout`. A timeout, whether the whole
/// call ran out or an attempt inside it reported one, is
/// `Timeout { what: "{what} ({place})", after }`, `place` naming the URL
/// (computed only then).
pub async fn with_deadline<T, F>(
    timeout: Duration,
    what: &str,
    place: impl FnOnce() -> String,
    call: impl FnOnce(Instant) -> F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, call(deadline)).await {
        Ok(Err(Error::Timeout { what, after })) => Err(Error::Timeout {
            what: format!("{what} ({})", place()),
            after,
        }),
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            what: format!("{what} ({})", place()),
            after: timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_covers_the_whole_call_and_names_the_place() {
        let t0 = Instant::now();
        let r: Result<()> = with_deadline(
            Duration::from_secs(2),
            "get secret",
            || "http://h/x".into(),
            |_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            },
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("get secret (http://h/x)"), "{e}");
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        let r = with_deadline(
            Duration::from_secs(2),
            "w",
            || "p".into(),
            |d| async move {
                assert_eq!(d, t0 + Duration::from_secs(4));
                Ok(5)
            },
        )
        .await;
        assert_eq!(r.unwrap(), 5);
        let r: Result<()> = with_deadline(
            Duration::from_secs(2),
            "w",
            || "p".into(),
            |_| async {
                Err(Error::Timeout {
                    what: "inner".into(),
                    after: Duration::from_secs(1),
                })
            },
        )
        .await;
        assert!(r.unwrap_err().to_string().contains("inner (p)"));
    }
}

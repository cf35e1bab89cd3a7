//! One HTTP exchange with retries, and the mapping of failures to the
//! shared error kinds.
//!
//! Retry rules: a connection that could not be opened never carried the
//! request, so it is retried for every method; a timeout, a broken
//! connection, a 5xx or a 429 is retried only when the call is idempotent
//! (the caller says so). Waits double from the configured base, are capped,
//! and are jittered to 50-100% so clients that failed together do not
//! return together.

use std::time::Duration;

use keymgr_core::{Error, Result};
use reqwest::header::HeaderMap;
use zeroize::Zeroizing;

/// The largest response body accepted (Barbican's own limit on secrets is
/// far smaller; this only bounds memory on a misbehaving peer).
const MAX_BODY: usize = 16 << 20;

/// How transient failures are retried.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first wait.
    pub base: Duration,
    /// No wait is longer.
    pub cap: Duration,
    /// The per-request timeout (reported in `Timeout` errors).
    pub timeout: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `n` (0-based): base * 2^n, capped, jittered.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.min(16));
        exp.min(self.cap).mul_f64(jitter())
    }
}

/// A factor in [0.5, 1.0) from the OS random source (a v4 UUID's random bits).
pub(crate) fn jitter() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() & 0xffff_ffff) as f64;
    0.5 + 0.5 * (bits / 4_294_967_296.0)
}

/// A complete answer: status, headers and body (zeroized when dropped,
/// since payload answers carry key material).
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Zeroizing<Vec<u8>>,
    /// Whether an earlier attempt may have reached the server and done its
    /// work (a lost answer, a 5xx): a retried delete that then finds
    /// nothing has in fact succeeded.
    pub uncertain: bool,
}

impl Reply {
    /// The body as JSON of type `T`, or a backend error naming `what`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Backend {
            what: what.to_string(),
            status: self.status,
            message: format!("unexpected answer: {e}"),
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends the request `build` makes (once per attempt), retrying as the
/// module documentation says, and reads the whole answer. Any HTTP status
/// is returned as a [`Reply`] once retries are over; only transport
/// failures become errors here. The configured timeout is one deadline for
/// the whole exchange, retries and waits included; its error names the URL.
pub(crate) async fn exchange<F>(
    policy: &RetryPolicy,
    what: &str,
    idempotent: bool,
    build: F,
) -> Result<Reply>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let url = || {
        build()
            .build()
            .map(|r| {
                let mut u = r.url().clone();
                u.set_query(None);
                u.to_string()
            })
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + policy.timeout;
    let call = exchange_retrying(policy, what, idempotent, deadline, &build);
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Err(Error::Timeout { what, after })) => Err(Error::Timeout {
            what: format!("{what} ({})", url()),
            after,
        }),
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            what: format!("{what} ({})", url()),
            after: policy.timeout,
        }),
    }
}

/// The retry loop of [`exchange`]. An idempotent call's attempt may take
/// its share of the time left (so a hung attempt still leaves time for the
/// retries); a call that is not repeated may take all of it.
async fn exchange_retrying<F>(
    policy: &RetryPolicy,
    what: &str,
    idempotent: bool,
    deadline: tokio::time::Instant,
    build: &F,
) -> Result<Reply>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let mut uncertain = false;
    let mut attempt = 0u32;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let share = if idempotent {
            left.div_f64(f64::from(policy.retries.saturating_sub(attempt)) + 1.0)
        } else {
            left
        };
        let outcome = match build().timeout(share).send().await {
            Ok(resp) => read(resp).await,
            Err(e) => Err(e),
        };
        let retries_left = attempt < policy.retries;
        match outcome {
            Ok((status, _, _, true)) => {
                return Err(Error::Backend {
                    what: what.to_string(),
                    status,
                    message: format!("the answer is longer than {MAX_BODY} bytes"),
                });
            }
            Ok((status, headers, body, false)) => {
                let transient = status == 429 || status >= 500;
                if transient && idempotent && retries_left {
                    let mut wait = policy.delay(attempt);
                    if let Some(after) = retry_after(&headers) {
                        wait = wait.max(after.min(policy.cap));
                    }
                    tracing::debug!(what, status, attempt, ?wait, "transient answer, retrying");
                    uncertain |= status >= 500;
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Ok(Reply {
                    status,
                    headers,
                    body,
                    uncertain,
                });
            }
            Err(e) => {
                let not_sent = e.is_connect();
                if (not_sent || idempotent) && retries_left {
                    let wait = policy.delay(attempt);
                    tracing::debug!(what, attempt, ?wait, error = %e, "transport failure, retrying");
                    uncertain |= !not_sent;
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let mut err = transport_error(what, &e, policy.timeout);
                if let Error::Unavailable { reason, .. } = &mut err {
                    if !idempotent && !not_sent {
                        // A POST whose answer was lost may have been carried out.
                        reason.push_str(
                            " (the request may have reached the server, so its outcome is unknown; \
                             it was not repeated)",
                        );
                    }
                }
                return Err(err);
            }
        }
    }
}

/// Status, headers, body, and whether the body was longer than [`MAX_BODY`].
type Read = (u16, HeaderMap, Zeroizing<Vec<u8>>, bool);

async fn read(mut resp: reqwest::Response) -> std::result::Result<Read, reqwest::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let expected = resp.content_length().unwrap_or(0).min(MAX_BODY as u64) as usize;
    let mut body = Zeroizing::new(Vec::with_capacity(expected));
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            // Never hand on a cut answer (a cut payload would be a wrong key).
            return Ok((status, headers, body, true));
        }
        append_wiping(&mut body, &chunk);
    }
    Ok((status, headers, body, false))
}

/// Appends `chunk` to `body`. When `body` must grow, its bytes move to a new
/// buffer and the old one is wiped as it drops (`Vec::extend_from_slice`
/// would reallocate and free the old block with the secret still in it).
fn append_wiping(body: &mut Zeroizing<Vec<u8>>, chunk: &[u8]) {
    let need = body.len() + chunk.len();
    if need > body.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(2 * body.capacity())));
        bigger.extend_from_slice(body);
        *body = bigger;
    }
    body.extend_from_slice(chunk);
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A transport failure as a shared error: timeouts as `Timeout`, the rest
/// (refused, reset, TLS) as `Unavailable`.
pub(crate) fn transport_error(what: &str, e: &reqwest::Error, timeout: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            what: what.to_string(),
            after: timeout,
        };
    }
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        src = s.source();
    }
    Error::Unavailable {
        what: what.to_string(),
        reason,
    }
}

/// The message of an OpenStack error body: Barbican's
/// `{"code","title","description"}`, keystonemiddleware's and Keystone's
/// `{"error": {"code","title","message"}}`, or plain text.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let obj = v.get("error").unwrap_or(&v);
        for key in ["description", "message", "title"] {
            if let Some(s) = obj.get(key).and_then(|x| x.as_str()) {
                if !s.is_empty() {
                    return clean(s);
                }
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(no message)".to_string()
    } else {
        clean(text)
    }
}

fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    if s.chars().count() > 500 {
        out.push('…');
    }
    out
}

/// An error answer as a shared error, keeping the server's description.
pub(crate) fn status_error(what: &str, status: u16, body: &[u8]) -> Error {
    let message = error_message(body);
    let what = what.to_string();
    match status {
        400 | 406 | 411 | 413 | 415 | 422 => Error::InvalidInput {
            what,
            reason: message,
        },
        401 => Error::Unauthenticated {
            what,
            reason: message,
        },
        403 => Error::Forbidden {
            what,
            reason: message,
        },
        404 => Error::NotFound { what },
        409 => Error::Conflict {
            what,
            reason: message,
        },
        502..=504 => Error::Unavailable {
            what,
            reason: format!("status {status}: {message}"),
        },
        _ => Error::Backend {
            what,
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    #[test]
    fn append_wiping_keeps_every_byte_across_growth() {
        let mut body = Zeroizing::new(Vec::with_capacity(3));
        let mut expect = Vec::new();
        for i in 0..40u8 {
            let chunk: Vec<u8> = (0..i).map(|j| i ^ j).collect();
            append_wiping(&mut body, &chunk);
            expect.extend_from_slice(&chunk);
            assert_eq!(&body[..], &expect[..], "after chunk {i}");
        }
    }

    #[test]
    fn error_bodies_keep_the_description() {
        let b = br#"{"code": 400, "title": "Bad Request", "description": "Provided object does not match schema 'Secret': payload is empty"}"#;
        let e = status_error("store secret", 400, b);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("payload is empty"), "{e}");
        let b = br#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;
        let e = status_error("get secret x", 401, b);
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.to_string().contains("requires authentication"));
        assert_eq!(status_error("x", 403, b"").kind(), ErrorKind::Forbidden);
        assert_eq!(status_error("x", 404, b"").kind(), ErrorKind::NotFound);
        assert_eq!(status_error("x", 409, b"").kind(), ErrorKind::Conflict);
        assert_eq!(status_error("x", 503, b"").kind(), ErrorKind::Unavailable);
        let e = status_error("x", 500, b"<html>\n\x00oops</html>");
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.is_retryable());
        assert!(!e.to_string().contains('\n'));
        let long = vec![b'a'; 5000];
        assert!(error_message(&long).chars().count() <= 501);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            retries: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        for n in 0..40 {
            let d = p.delay(n);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << n.min(16))
                .min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
        }
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| p.delay(3)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}

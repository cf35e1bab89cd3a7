//! One HTTP exchange with retries, and the mapping of failures to the
//! shared error kinds.
//!
//! Retry rules: a connection that could not be opened never carried the
//! request, so it is retried for every method; a timeout, a broken
//! connection, a 5xx or a 429 is retried only when the call is idempotent
//! (the caller says so). Waits double from the configured base, are capped,
//! and are jittered to 50-100% so clients that failed together do not
//! return together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keymgr_core::{Error, Result};
use keymgr_http::{
    read_capped, retry_after, transport_error, with_deadline, Attempt, BodyError, Retry,
    DEFAULT_BODY_LIMIT,
};
use reqwest::header::HeaderMap;
use zeroize::Zeroizing;

/// How transient failures are retried.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// How many retries, and the waits between them.
    pub retry: Retry,
    /// The deadline of one whole call (reported in `Timeout` errors).
    pub timeout: Duration,
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
    with_deadline(policy.timeout, what, url, |deadline| {
        exchange_retrying(policy, what, idempotent, deadline, &build)
    })
    .await
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
    let uncertain = &AtomicBool::new(false);
    let retry = &policy.retry;
    let attempt = move |n: u32| async move {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let share = if idempotent {
            retry.share(n, left, u32::MAX)
        } else {
            left
        };
        let outcome = match build().timeout(share).send().await {
            Ok(resp) => {
                let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
                match read_capped(resp, DEFAULT_BODY_LIMIT).await {
                    Ok(body) => Ok((status, headers, body)),
                    Err(BodyError::Transport(e)) => Err(e),
                    Err(e @ BodyError::TooLong { .. }) => {
                        // Never hand on a cut answer (a cut payload would be a wrong key).
                        return Attempt::Done(Err(Error::Backend {
                            what: what.to_string(),
                            status,
                            message: e.to_string(),
                        }));
                    }
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((status, headers, body)) => {
                let transient = status == 429 || status >= 500;
                let wait_for = retry_after(&headers);
                let reply = Reply {
                    status,
                    headers,
                    body,
                    uncertain: uncertain.load(Ordering::Relaxed),
                };
                if transient && idempotent {
                    tracing::debug!(what, status, attempt = n, "transient answer");
                    uncertain.fetch_or(status >= 500, Ordering::Relaxed);
                    return Attempt::Again {
                        last: Ok(reply),
                        retry_after: wait_for,
                    };
                }
                Attempt::Done(Ok(reply))
            }
            Err(e) => {
                let not_sent = e.is_connect();
                let mut err = transport_error(what, &e, policy.timeout);
                if not_sent || idempotent {
                    tracing::debug!(what, attempt = n, error = %e, "transport failure");
                    uncertain.fetch_or(!not_sent, Ordering::Relaxed);
                    return Attempt::Again {
                        last: Err(err),
                        retry_after: None,
                    };
                }
                if let Error::Unavailable { reason, .. } = &mut err {
                    // A POST whose answer was lost may have been carried out.
                    reason.push_str(
                        " (the request may have reached the server, so its outcome is unknown; \
                         it was not repeated)",
                    );
                }
                Attempt::Done(Err(err))
            }
        }
    };
    retry
        .run(attempt, |n, wait| {
            tracing::debug!(what, attempt = n, ?wait, "retrying")
        })
        .await
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
}

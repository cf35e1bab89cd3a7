//! Vault's requests over the shared HTTP layer (`keymgr-http`): nodes and
//! failover, retries, redirects, and read-after-write (`X-Vault-Index`).

//! The HTTP layer: nodes, login, retries, redirects, read-after-write.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use keymgr_core::{Error, Result};
use keymgr_http::{
    client_builder, describe, read_ca_bundle, read_capped, shared_client, with_deadline, Attempt,
    Backoff, BodyError, CaError, Retry, TokenCache, DEFAULT_BODY_LIMIT,
};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::VaultConfig;

use crate::auth::Login;
use crate::model::{Access, Answer};

/// How many 307/308 redirects one request follows.
const MAX_REDIRECTS: usize = 3;

/// The waits between attempts: 100 ms doubled each time, at most 5 s,
/// jittered.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
};

/// Why one exchange failed before an answer could be used.
enum SendError {
    /// The connection failed or timed out.
    Transport(reqwest::Error),
    /// The answer (with this status) was longer than the body cap.
    TooLong { status: u16, limit: usize },
}

/// A pooled HTTP client for a set of Vault nodes.
pub(crate) struct VaultClient {
    pub(crate) http: reqwest::Client,
    pub(crate) nodes: Vec<String>,
    pub(crate) current: AtomicUsize,
    pub(crate) login: Login,
    pub(crate) cached: TokenCache<SecretString>,
    pub(crate) namespace: Option<String>,
    pub(crate) last_index: Mutex<Option<String>>,
    pub(crate) max_retries: u32,
    pub(crate) stats: Counters,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("nodes", &self.nodes)
            .field("namespace", &self.namespace)
            .field("max_retries", &self.max_retries)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    /// Builds the client from validated options (no network yet).
    pub(crate) fn new(cfg: &VaultConfig) -> Result<Self> {
        cfg.validate()?;
        let timeout = cfg.timeout()?;
        let login = Login::from_config(cfg)?;
        // Managers built from one configuration share one client (one pool).
        let key = format!(
            "vault|{timeout:?}|{}|{:?}",
            cfg.verify_ssl, cfg.ssl_ca_crt_file
        );
        let http = shared_client(&key, || {
            let mut builder =
                client_builder(concat!("keymgr-vault/", env!("CARGO_PKG_VERSION")), timeout)
                    .redirect(reqwest::redirect::Policy::none());
            if let Some(ca) = &cfg.ssl_ca_crt_file {
                let certs = read_ca_bundle(ca).map_err(|e| {
                    Error::config(match e {
                        CaError::Read(e) => {
                            format!("cannot read ssl_ca_crt_file {}: {e}", ca.display())
                        }
                        CaError::NotPem(e) => format!(
                            "ssl_ca_crt_file {} is not a PEM certificate bundle: {e}",
                            ca.display()
                        ),
                        CaError::Empty => {
                            format!("ssl_ca_crt_file {} holds no PEM certificate", ca.display())
                        }
                    })
                })?;
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if !cfg.verify_ssl {
                tracing::warn!(
                    "[vault] verify_ssl = false: Vault's https certificate is not verified"
                );
                builder = builder.danger_accept_invalid_certs(true);
            }
            builder
                .build()
                .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))
        })?;
        Ok(VaultClient {
            http,
            nodes: cfg.nodes()?,
            current: AtomicUsize::new(0),
            login,
            cached: TokenCache::default(),
            namespace: cfg.namespace.clone(),
            last_index: Mutex::new(None),
            max_retries: cfg.max_retries.min(20),
            stats: Counters::default(),
            timeout,
        })
    }

    /// Sends an authenticated request to `/v1/{path}` with retries, failover
    /// and one re-login on 403 when the token can be renewed.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        access: Access,
        what: &str,
    ) -> Result<Answer> {
        let mut relogged = false;
        loop {
            let token = token_header(&self.token().await?, what)?;
            let ans = self
                .send_with_retries(method.clone(), path, body, access, Some(&token), what)
                .await?;
            if ans.status == StatusCode::FORBIDDEN && self.can_relogin() && !relogged {
                relogged = true;
                self.stats.relogins.fetch_add(1, Ordering::Relaxed);
                self.forget_token().await;
                continue;
            }
            return Ok(ans);
        }
    }

    fn node(&self) -> (usize, &str) {
        let i = self.current.load(Ordering::Relaxed) % self.nodes.len();
        (i, &self.nodes[i])
    }

    fn fail_over(&self, from: usize) {
        let _ = self.current.compare_exchange(
            from,
            (from + 1) % self.nodes.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Sends one request, retrying what may succeed later.
    ///
    /// Retried: connection failures and timeouts, 5xx (503 = sealed or
    /// standby: the next node is tried), 412 (a standby has not yet caught up
    /// with `X-Vault-Index`), 429 (after `Retry-After`) and KV v2's 400
    /// "waiting for the primary to upgrade" of a freshly mounted store. Every request
    /// this crate sends is safe to repeat after an ambiguous failure: reads
    /// and deletes are idempotent; KV v2 writes carry check-and-set (a
    /// create that already landed answers "check-and-set parameter did not
    /// match", which the caller resolves by reading the record back); KV v1
    /// writes put the same whole record again; a repeated login only mints
    /// another token.
    /// The configured timeout is one deadline for the whole call, retries,
    /// failovers and waits included; its error names the URL.
    pub(crate) async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        access: Access,
        token: Option<&HeaderValue>,
        what: &str,
    ) -> Result<Answer> {
        with_deadline(
            self.timeout,
            what,
            || format!("{}/v1/{path}", self.node().1),
            |deadline| self.send_retrying(method, path, body, access, token, what, deadline),
        )
        .await
    }

    /// The retry loop of [`Self::send_with_retries`]. With several nodes an
    /// attempt may take its node's share of the time left, so a hung node
    /// still leaves time to fail over to the others.
    #[allow(clippy::too_many_arguments)]
    async fn send_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        access: Access,
        token: Option<&HeaderValue>,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Answer> {
        let retry = Retry {
            retries: self.max_retries,
            backoff: BACKOFF,
        };
        let (method, retry) = (&method, &retry);
        let attempt = move |n: u32| async move {
            let (node_ix, node) = self.node();
            let url = format!("{node}/v1/{path}");
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let share = retry.share(n, left, self.nodes.len() as u32);
            let result = self
                .send_following_redirects(method, url, body, access, token, share)
                .await;
            match result {
                Err(SendError::TooLong { status, limit }) => Attempt::Done(Err(Error::Backend {
                    what: what.to_string(),
                    status,
                    message: format!("the answer is longer than {limit} bytes"),
                })),
                Err(SendError::Transport(e)) => {
                    tracing::debug!(node = %node, error = %describe(&e), "Vault request failed; failing over");
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    self.fail_over(node_ix);
                    let last = if e.is_timeout() {
                        Error::Timeout {
                            what: what.to_string(),
                            after: self.timeout,
                        }
                    } else {
                        Error::Unavailable {
                            what: what.to_string(),
                            reason: format!(
                                "no Vault node answered after {} attempts: {}",
                                n + 1,
                                describe(&e)
                            ),
                        }
                    };
                    Attempt::Again {
                        last: Err(last),
                        retry_after: None,
                    }
                }
                // A success whose body is not JSON: the answer was broken
                // on the way; the request is sent again (every request is
                // safe to repeat, see above).
                Ok((ans, _)) if ans.malformed && ans.status.is_success() => {
                    tracing::debug!(node = %node, "Vault answered a body that is not JSON");
                    Attempt::Again {
                        last: Err(Error::Unavailable {
                            what: what.to_string(),
                            reason: format!(
                                "Vault's answer (status {}) was not JSON after {} attempts",
                                ans.status.as_u16(),
                                n + 1
                            ),
                        }),
                        retry_after: None,
                    }
                }
                Ok((ans, headers)) => {
                    let retry_after = match ans.status.as_u16() {
                        // Sealed, standby or overloaded node: try the next one.
                        503 => {
                            tracing::debug!(node = %node, "Vault node sealed or standby (503); failing over");
                            self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                            self.fail_over(node_ix);
                            None
                        }
                        500..=599 | 412 => None,
                        // A KV v2 mount just created (or upgraded from v1)
                        // refuses requests for a moment.
                        400 if ans.is_kv_upgrading() => None,
                        429 => keymgr_http::retry_after(&headers),
                        _ => return Attempt::Done(Ok(ans)),
                    };
                    Attempt::Again {
                        last: Ok(ans),
                        retry_after,
                    }
                }
            }
        };
        retry
            .run(attempt, |_, _| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            })
            .await
    }

    /// The index to send with reads, if any write was seen.
    fn read_index(&self) -> Option<String> {
        self.last_index.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// Keeps the newer of the stored and the received `X-Vault-Index`.
    fn remember_index(&self, received: &str) {
        if let Ok(mut g) = self.last_index.lock() {
            let keep_old = g
                .as_deref()
                .is_some_and(|old| index_is_newer(old, received));
            if !keep_old {
                *g = Some(received.to_string());
            }
        }
    }

    async fn send_following_redirects(
        &self,
        method: &Method,
        mut url: String,
        body: Option<&str>,
        access: Access,
        token: Option<&HeaderValue>,
        timeout: Duration,
    ) -> std::result::Result<(Answer, HeaderMap), SendError> {
        let mut redirects = 0;
        loop {
            let mut req = self.http.request(method.clone(), &url).timeout(timeout);
            if let Some(t) = token {
                req = req.header("X-Vault-Token", t.clone());
            }
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            // Reads and writes alike: an OpenBao standby checks a KV v2
            // write's check-and-set against its own copy, which may lag
            // the active node (measured: a CAS write right after another
            // one through a standby fails, 300 ms later it passes). With
            // the last write's index the standby forwards whatever it
            // has not applied yet to the active node.
            {
                if let Some(idx) = self.read_index() {
                    req = req
                        .header("X-Vault-Index", idx)
                        .header("X-Vault-Inconsistent", "forward-active-node");
                }
            }
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.map_err(SendError::Transport)?;
            let status = resp.status();
            if matches!(status.as_u16(), 307 | 308) && redirects < MAX_REDIRECTS {
                if let Some(loc) = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                {
                    if let Ok(next) = resp.url().join(loc) {
                        if matches!(next.scheme(), "http" | "https") {
                            tracing::debug!(to = %next.origin().ascii_serialization(), "following a Vault redirect");
                            self.stats.redirects.fetch_add(1, Ordering::Relaxed);
                            url = next.to_string();
                            redirects += 1;
                            continue;
                        }
                    }
                }
            }
            let headers = resp.headers().clone();
            if access == Access::Write && status.is_success() {
                if let Some(idx) = headers.get("X-Vault-Index").and_then(|v| v.to_str().ok()) {
                    self.remember_index(idx);
                }
            }
            let bytes = match read_capped(resp, DEFAULT_BODY_LIMIT).await {
                Ok(b) => b,
                Err(BodyError::Transport(e)) => return Err(SendError::Transport(e)),
                Err(BodyError::TooLong { limit }) => {
                    return Err(SendError::TooLong {
                        status: status.as_u16(),
                        limit,
                    })
                }
            };
            let (body, malformed) = if bytes.iter().all(u8::is_ascii_whitespace) {
                (Value::Null, false)
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(v) => (v, false),
                    Err(_) => (Value::Null, true),
                }
            };
            return Ok((
                Answer {
                    status,
                    body,
                    malformed,
                },
                headers,
            ));
        }
    }

    /// Counters of what the client had to do to get answers.
    pub(crate) fn stats(&self) -> ClientStats {
        ClientStats {
            retries: self.stats.retries.load(Ordering::Relaxed),
            failovers: self.stats.failovers.load(Ordering::Relaxed),
            redirects: self.stats.redirects.load(Ordering::Relaxed),
            relogins: self.stats.relogins.load(Ordering::Relaxed),
        }
    }
}

/// The token as a sensitive `X-Vault-Token` value; a token an HTTP header
/// cannot carry is `Unauthenticated` before anything is sent (never an
/// empty header).
fn token_header(token: &SecretString, what: &str) -> Result<HeaderValue> {
    let mut v =
        HeaderValue::from_str(token.expose_secret()).map_err(|_| Error::Unauthenticated {
            what: what.to_string(),
            reason: "the Vault token has characters an HTTP header cannot carry".into(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) retries: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) relogins: AtomicU64,
}

/// What the Vault client had to do so far to get its answers (see
/// [`VaultKeyManager::stats`](crate::VaultKeyManager::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent again after a retryable failure.
    pub retries: u64,
    /// Moves to the next node (connection failure, sealed, standby).
    pub failovers: u64,
    /// 307/308 redirects followed.
    pub redirects: u64,
    /// Logins repeated after a 403.
    pub relogins: u64,
}

/// OpenBao's `X-Vault-Index` is base64 of `{"cluster": id, "value": raft index}`.
fn parse_index(idx: &str) -> Option<(String, u64)> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(idx.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(idx.trim()))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let cluster = v.get("cluster")?.as_str()?.to_string();
    let value = match v.get("value")? {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    Some((cluster, value))
}

/// Whether `old` is strictly newer than `new` (same cluster, higher index):
/// then a late answer of an earlier write must not replace it. Indexes that
/// do not parse (HashiCorp Vault's own format) are kept newest-received.
fn index_is_newer(old: &str, new: &str) -> bool {
    match (parse_index(old), parse_index(new)) {
        (Some((c1, v1)), Some((c2, v2))) => c1 == c2 && v1 > v2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn idx(cluster: &str, v: u64) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{{\"cluster\":\"{cluster}\",\"value\":\"{v}\"}}"))
    }

    #[test]
    fn a_token_a_header_cannot_carry_is_unauthenticated() {
        let e = token_header(&SecretString::from("s.tok\nen"), "get x").unwrap_err();
        assert_eq!(e.kind(), keymgr_core::ErrorKind::Unauthenticated);
        assert!(!e.to_string().contains("s.tok"), "{e}");
        assert!(token_header(&SecretString::from("s.token"), "get x")
            .unwrap()
            .is_sensitive());
    }

    #[test]
    fn a_late_older_index_does_not_replace_a_newer_one() {
        assert_eq!(parse_index(&idx("c", 12)), Some(("c".into(), 12)));
        assert!(index_is_newer(&idx("c", 12), &idx("c", 11)));
        assert!(!index_is_newer(&idx("c", 12), &idx("c", 13)));
        assert!(!index_is_newer(&idx("c", 12), &idx("other", 1)));
        assert!(!index_is_newer("v1:opaque", &idx("c", 1)));
        assert!(parse_index("not base64 !").is_none());
        assert!(parse_index(&base64::engine::general_purpose::STANDARD.encode("[1]")).is_none());
    }
}

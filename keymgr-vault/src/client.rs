//! The HTTP layer: nodes, login, retries, redirects, read-after-write.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keymgr_core::{Error, Result};
use keymgr_http::{
    describe, read_capped, refresh_at, with_deadline, Attempt, Backoff, BodyError, Retry,
    TokenCache, DEFAULT_BODY_LIMIT,
};
use reqwest::{header::HeaderMap, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::{AuthMethod, VaultConfig};

/// How many 307/308 redirects one request follows.
const MAX_REDIRECTS: usize = 3;

/// How to get a token.
enum Login {
    Static(SecretString),
    /// A token read from a file, read again after a 403 (a Vault agent
    /// sink rotates it).
    File(std::path::PathBuf),
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: Option<SecretString>,
    },
    Jwt {
        mount: String,
        role: String,
        file: std::path::PathBuf,
    },
}

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

/// Whether a request changes state (sent after the last write's index) or reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A read: sent with the last write's `X-Vault-Index`.
    Read,
    /// A write: its answer's `X-Vault-Index` is kept.
    Write,
}

/// An answer: status and JSON body (`Null` when empty or not JSON).
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body (`Null` when empty or not JSON).
    pub body: Value,
    /// Whether a body was there but was not JSON (a broken answer: a
    /// proxy's error page, a truncated transfer).
    pub malformed: bool,
}

impl Answer {
    /// Whether this is KV v2's transient refusal while a mount is being
    /// upgraded from non-versioned data (right after it is mounted).
    pub fn is_kv_upgrading(&self) -> bool {
        self.status.as_u16() == 400
            && self
                .errors()
                .contains("upgrade from non-versioned to versioned data")
    }

    /// The `errors` array of a Vault error body, joined.
    pub fn errors(&self) -> String {
        match self.body.get("errors").and_then(Value::as_array) {
            Some(errs) if !errs.is_empty() => errs
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => self
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_string(),
        }
    }
}

/// A pooled HTTP client for a set of Vault nodes.
pub struct VaultClient {
    http: reqwest::Client,
    nodes: Vec<String>,
    current: AtomicUsize,
    login: Login,
    cached: TokenCache<SecretString>,
    namespace: Option<String>,
    last_index: Mutex<Option<String>>,
    max_retries: u32,
    stats: Counters,
    timeout: Duration,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("nodes", &self.nodes)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn read_token_file(path: &std::path::Path) -> Result<SecretString> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read token file {}: {e}", path.display()))
        })?);
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::config(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(t.to_string()))
}

impl VaultClient {
    /// Builds the client from validated options (no network yet).
    pub fn new(cfg: &VaultConfig) -> Result<Self> {
        cfg.validate()?;
        let timeout = cfg.timeout()?;
        let login = if let Some(t) = &cfg.root_token_id {
            Login::Static(t.clone())
        } else if let Some(p) = cfg.static_token_file() {
            // Read once now so a missing file is a configuration error.
            read_token_file(&p)?;
            Login::File(p)
        } else {
            let method = cfg.auth_method.unwrap_or(AuthMethod::Approle);
            let mount = |d: &str| cfg.auth_path.clone().unwrap_or_else(|| d.to_string());
            match method {
                AuthMethod::Token => {
                    return Err(Error::config(
                        "[vault] auth_method = token needs root_token_id or root_token_file",
                    ))
                }
                AuthMethod::Approle => Login::AppRole {
                    mount: mount("approle"),
                    role_id: cfg.approle_role_id.clone().ok_or_else(|| {
                        Error::config(
                            "[vault] approle auth needs approle_role_id (or set root_token_id)",
                        )
                    })?,
                    secret_id: cfg.approle_secret_id.clone(),
                },
                AuthMethod::Jwt | AuthMethod::Kubernetes => Login::Jwt {
                    mount: mount(if method == AuthMethod::Jwt {
                        "jwt"
                    } else {
                        "kubernetes"
                    }),
                    role: cfg.token_role.clone().ok_or_else(|| {
                        Error::config("[vault] jwt/kubernetes auth needs token_role")
                    })?,
                    file: cfg.token_file.clone().ok_or_else(|| {
                        Error::config("[vault] jwt/kubernetes auth needs token_file")
                    })?,
                },
            }
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("keymgr-vault/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(ca) = &cfg.ssl_ca_crt_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::config(format!("cannot read ssl_ca_crt_file {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::config(format!(
                    "ssl_ca_crt_file {} is not a PEM certificate bundle: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() || !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(Error::config(format!(
                    "ssl_ca_crt_file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if !cfg.verify_ssl {
            tracing::warn!("[vault] verify_ssl = false: Vault's https certificate is not verified");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
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

    /// Whether the client can log in again (not a static token).
    fn can_relogin(&self) -> bool {
        !matches!(self.login, Login::Static(_))
    }

    async fn token(&self) -> Result<SecretString> {
        let t = match &self.login {
            Login::Static(t) => return Ok(t.clone()),
            // Kept until a 403 makes it read again.
            Login::File(p) => {
                self.cached
                    .get(|| async { Ok((read_token_file(p)?, None)) })
                    .await?
            }
            _ => self.cached.get(|| self.login()).await?,
        };
        Ok(SecretString::clone(&t))
    }

    async fn forget_token(&self) {
        self.cached.clear().await;
    }

    /// Logs in: the token and when to log in again (before its lease ends).
    async fn login(&self) -> Result<(SecretString, Option<Instant>)> {
        let (mount, body) = match &self.login {
            Login::Static(_) | Login::File(_) => {
                return Err(Error::config("a static Vault token cannot log in"))
            }
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let mut b = serde_json::json!({ "role_id": role_id.expose_secret() });
                if let Some(s) = secret_id {
                    b["secret_id"] = Value::String(s.expose_secret().to_string());
                }
                (mount.clone(), b)
            }
            Login::Jwt { mount, role, file } => {
                let jwt = read_token_file(file)?;
                (
                    mount.clone(),
                    serde_json::json!({ "role": role, "jwt": jwt.expose_secret() }),
                )
            }
        };
        let body = Zeroizing::new(body.to_string());
        let path = format!("auth/{mount}/login");
        let what = format!("log in to Vault at {path}");
        let ans = self
            .send_with_retries(Method::POST, &path, Some(&body), Access::Write, None, &what)
            .await?;
        match ans.status.as_u16() {
            200 => {}
            400 | 401 | 403 => {
                return Err(Error::Unauthenticated {
                    what,
                    reason: ans.errors(),
                })
            }
            s => {
                return Err(Error::Backend {
                    what,
                    status: s,
                    message: ans.errors(),
                })
            }
        }
        let auth = ans.body.get("auth");
        let token = auth
            .and_then(|a| a.get("client_token"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Backend {
                what: what.clone(),
                status: 200,
                message: "the login answer has no auth.client_token".into(),
            })?;
        let lease = auth
            .and_then(|a| a.get("lease_duration"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        tracing::debug!(mount = %mount, lease_seconds = lease, "logged in to Vault");
        Ok((
            SecretString::from(token.to_string()),
            (lease > 0).then(|| refresh_at(Duration::from_secs(lease))),
        ))
    }

    /// Sends an authenticated request to `/v1/{path}` with retries, failover
    /// and one re-login on 403 when the token can be renewed.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        access: Access,
        what: &str,
    ) -> Result<Answer> {
        let mut relogged = false;
        loop {
            let token = self.token().await?;
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

    /// Whether the configured token is accepted at all (`lookup-self`).
    pub async fn token_is_valid(&self) -> bool {
        match self
            .request(
                Method::GET,
                "auth/token/lookup-self",
                None,
                Access::Read,
                "token lookup",
            )
            .await
        {
            Ok(a) => a.status.is_success(),
            Err(_) => false,
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
    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        access: Access,
        token: Option<&SecretString>,
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
        token: Option<&SecretString>,
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
        token: Option<&SecretString>,
        timeout: Duration,
    ) -> std::result::Result<(Answer, HeaderMap), SendError> {
        let mut redirects = 0;
        loop {
            let mut req = self.http.request(method.clone(), &url).timeout(timeout);
            if let Some(t) = token {
                let mut value = reqwest::header::HeaderValue::from_str(t.expose_secret())
                    .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
                value.set_sensitive(true);
                req = req.header("X-Vault-Token", value);
            }
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            if access == Access::Read {
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
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            retries: self.stats.retries.load(Ordering::Relaxed),
            failovers: self.stats.failovers.load(Ordering::Relaxed),
            redirects: self.stats.redirects.load(Ordering::Relaxed),
            relogins: self.stats.relogins.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Counters {
    retries: AtomicU64,
    failovers: AtomicU64,
    redirects: AtomicU64,
    relogins: AtomicU64,
}

/// What a [`VaultClient`] had to do so far to get its answers.
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
    fn the_kv_upgrade_refusal_is_recognised() {
        let ans = |status: u16, msg: &str| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: serde_json::json!({ "errors": [msg] }),
            malformed: false,
        };
        let upgrading = "Waiting for the primary to upgrade from non-versioned to versioned data. \
                         This backend will be unavailable for a brief period";
        assert!(ans(400, upgrading).is_kv_upgrading());
        assert!(!ans(400, "check-and-set parameter did not match").is_kv_upgrading());
        assert!(!ans(500, upgrading).is_kv_upgrading());
        assert_eq!(
            ans(400, "a").errors(),
            "a",
            "the server's message is kept for InvalidInput"
        );
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

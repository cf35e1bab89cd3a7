//! The HTTP layer: nodes, login, retries, redirects, read-after-write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keymgr_core::{Error, Result};
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

struct CachedToken {
    token: SecretString,
    /// When to log in again (80% of the lease); `None` never.
    refresh_at: Option<Instant>,
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
    /// Parsed body.
    pub body: Value,
}

impl Answer {
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
    cached: tokio::sync::Mutex<Option<CachedToken>>,
    namespace: Option<String>,
    last_index: Mutex<Option<String>>,
    max_retries: u32,
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
        } else if let Some(p) = &cfg.root_token_file {
            Login::Static(read_token_file(p)?)
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
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(ca) = &cfg.ssl_ca_crt_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::config(format!("cannot read ssl_ca_crt_file {}: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                Error::config(format!(
                    "ssl_ca_crt_file {} is not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(VaultClient {
            http,
            nodes: cfg.nodes()?,
            current: AtomicUsize::new(0),
            login,
            cached: tokio::sync::Mutex::new(None),
            namespace: cfg.namespace.clone(),
            last_index: Mutex::new(None),
            max_retries: cfg.max_retries.min(20),
            timeout,
        })
    }

    /// Whether the client can log in again (not a static token).
    fn can_relogin(&self) -> bool {
        !matches!(self.login, Login::Static(_))
    }

    async fn token(&self) -> Result<SecretString> {
        if let Login::Static(t) = &self.login {
            return Ok(t.clone());
        }
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.refresh_at.is_none_or(|at| Instant::now() < at) {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.login().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn forget_token(&self) {
        *self.cached.lock().await = None;
    }

    async fn login(&self) -> Result<CachedToken> {
        let (mount, body) = match &self.login {
            Login::Static(_) => unreachable!("static tokens never log in"),
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
        Ok(CachedToken {
            token: SecretString::from(token.to_string()),
            refresh_at: (lease > 0).then(|| Instant::now() + Duration::from_secs(lease * 4 / 5)),
        })
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

    fn backoff(attempt: u32) -> Duration {
        let base = 50u64 << attempt.min(6);
        let jitter = {
            let mut b = [0u8; 2];
            let _ = getrandom::fill(&mut b);
            u16::from_le_bytes(b) as u64 % (base / 2 + 1)
        };
        Duration::from_millis(base + jitter)
    }

    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        access: Access,
        token: Option<&SecretString>,
        what: &str,
    ) -> Result<Answer> {
        let mut attempt = 0u32;
        loop {
            let (node_ix, node) = self.node();
            let url = format!("{node}/v1/{path}");
            let result = self
                .send_following_redirects(&method, url, body, access, token)
                .await;
            let retry_after = match &result {
                Err(e) => {
                    tracing::debug!(node = %node, error = %e, "Vault request failed; failing over");
                    self.fail_over(node_ix);
                    None
                }
                Ok((ans, headers)) => match ans.status.as_u16() {
                    // Sealed, standby or overloaded node: try the next one.
                    503 => {
                        self.fail_over(node_ix);
                        None
                    }
                    500 | 502 | 504 | 412 => None,
                    429 => headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30))),
                    _ => {
                        let (ans, _) = result.expect("matched Ok");
                        return Ok(ans);
                    }
                },
            };
            if attempt >= self.max_retries {
                return match result {
                    Ok((ans, _)) => Ok(ans),
                    Err(e) if e.is_timeout() => Err(Error::Timeout {
                        what: what.to_string(),
                        after: self.timeout,
                    }),
                    Err(e) => Err(Error::Unavailable {
                        what: what.to_string(),
                        reason: format!("no Vault node answered: {}", without_url(&e)),
                    }),
                };
            }
            tokio::time::sleep(retry_after.unwrap_or_else(|| Self::backoff(attempt))).await;
            attempt += 1;
        }
    }

    async fn send_following_redirects(
        &self,
        method: &Method,
        mut url: String,
        body: Option<&str>,
        access: Access,
        token: Option<&SecretString>,
    ) -> std::result::Result<(Answer, HeaderMap), reqwest::Error> {
        let mut redirects = 0;
        loop {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = token {
                req = req.header("X-Vault-Token", t.expose_secret());
            }
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            if access == Access::Read {
                let idx = self.last_index.lock().map(|g| g.clone()).unwrap_or(None);
                if let Some(idx) = idx {
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
            let resp = req.send().await?;
            let status = resp.status();
            if matches!(status.as_u16(), 307 | 308) && redirects < MAX_REDIRECTS {
                if let Some(loc) = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                {
                    url = resp
                        .url()
                        .join(loc)
                        .map(|u| u.to_string())
                        .unwrap_or_else(|_| loc.to_string());
                    redirects += 1;
                    continue;
                }
            }
            let headers = resp.headers().clone();
            if access == Access::Write && status.is_success() {
                if let Some(idx) = headers.get("X-Vault-Index").and_then(|v| v.to_str().ok()) {
                    if let Ok(mut g) = self.last_index.lock() {
                        *g = Some(idx.to_string());
                    }
                }
            }
            let bytes = Zeroizing::new(resp.bytes().await?.to_vec());
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Ok((Answer { status, body }, headers));
        }
    }
}

/// An error's text without the URL (which names the node, not a secret,
/// but keeps messages short).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    format!("{kind} ({})", s.trim())
}

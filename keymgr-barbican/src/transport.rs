//! Barbican's requests over the shared HTTP layer (`keymgr-http`): one
//! call's headers and tokens (re-authenticated once after a 401), and one
//! exchange with retries.
//!
//! Retry rules: a connection that could not be opened never carried the
//! request, so it is retried for every method; a timeout, a broken
//! connection, a 5xx or a 429 is retried only when the call is idempotent
//! (the caller says so). Waits double from the configured base, are capped,
//! and are jittered to 50-100% so clients that failed together do not
//! return together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keymgr_core::Context;
use keymgr_core::{Error, Result};
use keymgr_http::{
    client_builder, read_ca_bundle, read_capped, retry_after, shared_client, transport_error,
    with_deadline, Attempt, BodyError, CaError, Retry, DEFAULT_BODY_LIMIT,
};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::BarbicanConfig;
use crate::errors::status_error;
use crate::keystone::Token;
use crate::manager::BarbicanKeyManager;

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
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Backend {
            what: what.to_string(),
            status: self.status,
            message: format!("unexpected answer: {e}"),
        })
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The pooled HTTP client for `cfg`: the shared settings, TLS
/// verification as configured, and the CA bundle of `verify_ssl_path`;
/// the same client (and connection pool) for every manager built from
/// the same transport settings.
pub(crate) fn http_client(cfg: &BarbicanConfig, timeout: Duration) -> Result<reqwest::Client> {
    // Managers built from one configuration share one client (one pool).
    let key = format!(
        "barbican|{timeout:?}|{}|{:?}",
        cfg.verify_ssl, cfg.verify_ssl_path
    );
    shared_client(&key, || build_client(cfg, timeout))
}

fn build_client(cfg: &BarbicanConfig, timeout: Duration) -> Result<reqwest::Client> {
    let mut b = client_builder(
        concat!("keymgr-barbican/", env!("CARGO_PKG_VERSION")),
        timeout,
    );
    if !cfg.verify_ssl {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some(path) = &cfg.verify_ssl_path {
        let certs = read_ca_bundle(path).map_err(|e| {
            let why = match e {
                CaError::Read(e) => e.to_string(),
                CaError::NotPem(e) => format!("not PEM certificates: {e}"),
                CaError::Empty => "no certificate in the file".into(),
            };
            Error::config(format!(
                "[barbican] verify_ssl_path {}: {why}",
                path.display()
            ))
        })?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| Error::config(format!("[barbican] HTTP client: {e}")))
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

/// Which token(s) a request carries.
pub(crate) enum Auth {
    Own(Arc<Token>),
    User {
        token: SecretString,
        service: Option<Arc<Token>>,
    },
}

/// One Barbican call.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    /// Under the versioned root, e.g. `secrets/ID/payload`.
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Zeroizing<Vec<u8>>>,
    pub(crate) accept: &'a str,
    pub(crate) idempotent: bool,
    pub(crate) what: String,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: impl Into<String>, what: impl Into<String>) -> Self {
        let idempotent = method != Method::POST;
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            accept: "application/json",
            idempotent,
            what: what.into(),
        }
    }
    pub(crate) fn json<T: Serialize>(mut self, body: &T) -> Result<Self> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Error::invalid(&self.what, e.to_string()))?;
        self.body = Some(Zeroizing::new(bytes));
        Ok(self)
    }
}

impl BarbicanKeyManager {
    pub(crate) async fn auth_for(&self, ctx: &Context, what: &str) -> Result<Auth> {
        if let Some(user) = &ctx.user_token {
            let service = match &self.inner.service {
                Some(s) => Some(s.token(&self.inner.http, &self.inner.policy).await?),
                None => None,
            };
            return Ok(Auth::User {
                token: user.clone(),
                service,
            });
        }
        let t = self.own_token().await?;
        let p = &ctx.project_id;
        if !p.is_empty()
            && t.project_id.as_deref() != Some(p.as_str())
            && t.project_name.as_deref() != Some(p.as_str())
        {
            return Err(Error::Forbidden {
                what: what.to_string(),
                reason: format!(
                    "the context's project {p:?} is not the project these credentials are scoped to ({}); pass the user's token in the context to act for another project",
                    t.project_id.as_deref().unwrap_or("none")
                ),
            });
        }
        Ok(Auth::Own(t))
    }

    /// Sends `call`, re-authenticating once after a 401 with our own
    /// credentials (or the service token). Returns the answer whatever
    /// its status.
    pub(crate) async fn send(&self, ctx: &Context, call: &Call<'_>) -> Result<(Reply, u8)> {
        let root = self.root().await?;
        let mv = self.negotiate(&root).await?;
        let url = format!(
            "{root}/{}/{}",
            self.inner.cfg.barbican_api_version.trim_matches('/'),
            call.path
        );
        let mut reauthed = false;
        loop {
            let auth = self.auth_for(ctx, &call.what).await?;
            let mut headers = HeaderMap::new();
            let (main, service) = match &auth {
                Auth::Own(t) => (t.secret.clone(), None),
                Auth::User { token, service } => {
                    (token.clone(), service.as_ref().map(|s| s.secret.clone()))
                }
            };
            headers.insert("X-Auth-Token", secret_header(&main, &call.what)?);
            if let Some(s) = &service {
                headers.insert("X-Service-Token", secret_header(s, &call.what)?);
            }
            headers.insert(
                "OpenStack-API-Version",
                HeaderValue::from_str(&format!("key-manager 1.{mv}"))
                    .map_err(|_| Error::invalid("microversion", mv.to_string()))?,
            );
            headers.insert(
                "Accept",
                HeaderValue::from_str(call.accept)
                    .map_err(|_| Error::invalid("Accept header", call.accept))?,
            );
            if call.body.is_some() {
                headers.insert("Content-Type", HeaderValue::from_static("application/json"));
            }
            let http = &self.inner.http;
            let reply = exchange(&self.inner.policy, &call.what, call.idempotent, || {
                let mut rb = http
                    .request(call.method.clone(), &url)
                    .headers(headers.clone());
                if !call.query.is_empty() {
                    rb = rb.query(&call.query);
                }
                if let Some(b) = &call.body {
                    rb = rb.body(b.to_vec());
                }
                rb
            })
            .await?;
            tracing::debug!(
                method = %call.method,
                path = %call.path,
                status = reply.status,
                "barbican call"
            );
            if reply.status == 401 && !reauthed {
                let retry = match &auth {
                    Auth::Own(t) => {
                        self.inner.keystone.invalidate(t).await;
                        true
                    }
                    Auth::User {
                        service: Some(s), ..
                    } => {
                        if let Some(k) = &self.inner.service {
                            k.invalidate(s).await;
                        }
                        true
                    }
                    Auth::User { service: None, .. } => false,
                };
                if retry {
                    reauthed = true;
                    continue;
                }
            }
            return Ok((reply, mv));
        }
    }

    /// Sends `call` and maps an error status to the shared kinds.
    pub(crate) async fn ok(&self, ctx: &Context, call: &Call<'_>) -> Result<(Reply, u8)> {
        let (reply, mv) = self.send(ctx, call).await?;
        if reply.is_success() {
            Ok((reply, mv))
        } else {
            Err(status_error(&call.what, reply.status, &reply.body))
        }
    }
}

fn secret_header(s: &SecretString, what: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(s.expose_secret()).map_err(|_| Error::Unauthenticated {
        what: what.to_string(),
        reason: "the token has characters an HTTP header cannot carry".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

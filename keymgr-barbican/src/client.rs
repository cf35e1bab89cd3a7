//! The Barbican v1 client and its `KeyManager` implementation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use keymgr_core::{
    Consumer, Context, Error, KeyManager, KeySpec, ListQuery, NewSecret, Page, Payload, Result,
    Secret, SecretId, SecretMetadata,
};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{parse_microversion, BarbicanConfig};
use crate::http::{exchange, status_error, Reply, RetryPolicy};
use crate::keystone::{find_endpoint, Keystone, Token};
use crate::model::{
    format_time, offset_of, ConsumerListJson, OrderJson, RefJson, SecretJson, SecretListJson,
};
use keymgr_http::{Backoff, Retry};

/// The newest Barbican microversion this client knows: 1.2.
pub const MAX_MICROVERSION: u8 = 2;

/// The page size used when following every page of a listing
/// (Barbican's own maximum, `max_limit_paging`, is 100 by default).
const PAGE: usize = 100;

/// A [`KeyManager`] on OpenStack Barbican v1, authenticated by Keystone v3.
///
/// One instance holds one pooled HTTP client, its Keystone token (renewed
/// shortly before it expires, and once on a 401), and the microversion
/// negotiated with each endpoint. Cloning is cheap and shares all of it.
///
/// # How the [`Context`] is used
///
/// Barbican enforces tenant isolation itself, from the token a request
/// carries; this client only chooses which token that is:
///
/// - `ctx.user_token` set: the call is made *on behalf of that user*: the
///   user's token goes in `X-Auth-Token` (and, with service credentials
///   configured, this service's token in `X-Service-Token`). Barbican then
///   applies the user's own project and roles; `ctx.project_id` is not
///   checked here. An expired or revoked user token is `Unauthenticated`.
/// - no user token: the key manager's own credentials are used, which are
///   scoped to one project. `ctx.project_id` must then be empty or name
///   that project (by id or name), else the call is `Forbidden` before any
///   request is sent: a context never silently acts in another project.
///   [`BarbicanKeyManager::own_context`] gives the matching context.
///
/// `ctx.user_id` and `ctx.roles` are informational: Barbican takes both from
/// the token.
#[derive(Clone)]
pub struct BarbicanKeyManager {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BarbicanConfig,
    http: reqwest::Client,
    policy: RetryPolicy,
    keystone: Keystone,
    service: Option<Keystone>,
    max_mv: u8,
    versions: Mutex<HashMap<String, u8>>,
}

impl fmt::Debug for BarbicanKeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarbicanKeyManager")
            .field("barbican_endpoint", &self.inner.cfg.barbican_endpoint)
            .field("auth_endpoint", &self.inner.cfg.auth_endpoint)
            .field("auth_type", &self.inner.cfg.auth_type)
            .finish_non_exhaustive()
    }
}

/// Read access of a secret (Barbican's ACL for the `read` operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAcl {
    /// User ids allowed to read the secret besides its project's members.
    pub read_users: Vec<String>,
    /// Whether the secret's project members may read it (Barbican's
    /// `project-access`; true unless turned off).
    pub project_access: bool,
}

/// Barbican's full set of listing filters (see [`BarbicanKeyManager::list_filtered`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretFilter {
    /// Kind, name and paging, as in [`KeyManager::list`].
    pub query: ListQuery,
    /// `alg`: algorithm.
    pub algorithm: Option<String>,
    /// `mode`.
    pub mode: Option<String>,
    /// `bits`: bit length.
    pub bits: Option<u32>,
    /// `acl_only`: only secrets readable through a user ACL.
    pub acl_only: bool,
    /// `created`, e.g. `gt:2026-01-01T00:00:00` (Barbican's date filter syntax).
    pub created: Option<String>,
    /// `updated`, same syntax.
    pub updated: Option<String>,
    /// `expiration`, same syntax.
    pub expiration: Option<String>,
    /// `sort`, e.g. `created:desc,name`.
    pub sort: Option<String>,
}

/// Which token(s) a request carries.
enum Auth {
    Own(Arc<Token>),
    User {
        token: SecretString,
        service: Option<Arc<Token>>,
    },
}

/// One Barbican call.
struct Call<'a> {
    method: Method,
    /// Under the versioned root, e.g. `secrets/ID/payload`.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Zeroizing<Vec<u8>>>,
    accept: &'a str,
    idempotent: bool,
    what: String,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: impl Into<String>, what: impl Into<String>) -> Self {
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
    fn json<T: Serialize>(mut self, body: &T) -> Result<Self> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Error::invalid(&self.what, e.to_string()))?;
        self.body = Some(Zeroizing::new(bytes));
        Ok(self)
    }
}

impl BarbicanKeyManager {
    /// A key manager for `cfg` (checked with [`BarbicanConfig::validate`]).
    /// Nothing is sent until the first call: authentication is lazy.
    pub fn new(cfg: BarbicanConfig) -> Result<Self> {
        cfg.validate()?;
        let timeout = cfg.timeout_duration();
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("keymgr-barbican/", env!("CARGO_PKG_VERSION")));
        if !cfg.verify_ssl {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &cfg.verify_ssl_path {
            let pem = std::fs::read(path).map_err(|e| {
                Error::config(format!(
                    "[barbican] verify_ssl_path {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::config(format!(
                    "[barbican] verify_ssl_path {}: not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::config(format!(
                    "[barbican] verify_ssl_path {}: no certificate in the file",
                    path.display()
                )));
            }
            b = b.tls_certs_merge(certs);
        }
        let http = b
            .build()
            .map_err(|e| Error::config(format!("[barbican] HTTP client: {e}")))?;
        let base = Duration::from_secs_f64(cfg.http_retry_delay);
        let policy = RetryPolicy {
            retry: Retry {
                retries: cfg.http_retries,
                backoff: Backoff {
                    base,
                    cap: Duration::from_secs(5).max(base),
                },
            },
            timeout,
        };
        let max_mv = match &cfg.max_microversion {
            Some(m) => parse_microversion(m)?.min(MAX_MICROVERSION),
            None => MAX_MICROVERSION,
        };
        Ok(BarbicanKeyManager {
            inner: Arc::new(Inner {
                keystone: Keystone::main(&cfg)?,
                service: Keystone::service(&cfg)?,
                cfg,
                http,
                policy,
                max_mv,
                versions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &BarbicanConfig {
        &self.inner.cfg
    }

    /// A context for the project and user this key manager authenticated
    /// as (authenticating if needed).
    pub async fn own_context(&self) -> Result<Context> {
        let t = self.own_token().await?;
        Ok(Context::new(
            t.project_id.clone().unwrap_or_default(),
            t.user_id.clone(),
        ))
    }

    /// The microversion used with the endpoint, as `1.N`.
    pub async fn microversion(&self) -> Result<String> {
        let root = self.root().await?;
        Ok(format!("1.{}", self.negotiate(&root).await?))
    }

    async fn own_token(&self) -> Result<Arc<Token>> {
        self.inner
            .keystone
            .token(&self.inner.http, &self.inner.policy)
            .await
    }

    /// Barbican's unversioned root URL.
    async fn root(&self) -> Result<String> {
        let raw = match &self.inner.cfg.barbican_endpoint {
            Some(e) => e.clone(),
            None => {
                let t = self.own_token().await?;
                let cfg = &self.inner.cfg;
                find_endpoint(
                    &t.catalog,
                    "key-manager",
                    cfg.barbican_endpoint_type.as_str(),
                    cfg.barbican_region_name.as_deref(),
                )
                .ok_or_else(|| {
                    Error::config(format!(
                        "no {} key-manager endpoint{} in the service catalog; set barbican_endpoint",
                        cfg.barbican_endpoint_type.as_str(),
                        cfg.barbican_region_name
                            .as_deref()
                            .map(|r| format!(" in region {r}"))
                            .unwrap_or_default()
                    ))
                })?
            }
        };
        let trimmed = raw.trim_end_matches('/');
        let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
        Ok(root.to_string())
    }

    /// The microversion for `root`, negotiated once from its version document.
    async fn negotiate(&self, root: &str) -> Result<u8> {
        if let Some(v) = lock(&self.inner.versions).get(root) {
            return Ok(*v);
        }
        let what = "Barbican version discovery";
        let url = format!("{root}/");
        let http = &self.inner.http;
        let reply = exchange(&self.inner.policy, what, true, || {
            http.get(&url)
                .header("Accept", "application/json")
                .header("OpenStack-API-Version", "key-manager latest")
        })
        .await?;
        if reply.status >= 500 {
            // Not an answer to learn from: do not cache a guess.
            return Err(status_error(what, reply.status, &reply.body));
        }
        // A document that cannot be read means a server older than
        // microversions: 1.0.
        let doc: serde_json::Value = reply.json(what).unwrap_or(serde_json::Value::Null);
        let server_max = server_max_microversion(&doc);
        let mv = server_max.min(self.inner.max_mv);
        tracing::debug!(root, server_max, mv, "Barbican microversion negotiated");
        lock(&self.inner.versions).insert(root.to_string(), mv);
        Ok(mv)
    }

    async fn auth_for(&self, ctx: &Context, what: &str) -> Result<Auth> {
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
    async fn send(&self, ctx: &Context, call: &Call<'_>) -> Result<(Reply, u8)> {
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
    async fn ok(&self, ctx: &Context, call: &Call<'_>) -> Result<(Reply, u8)> {
        let (reply, mv) = self.send(ctx, call).await?;
        if reply.is_success() {
            Ok((reply, mv))
        } else {
            Err(status_error(&call.what, reply.status, &reply.body))
        }
    }

    async fn secret_json(&self, ctx: &Context, id: &SecretId, what: &str) -> Result<SecretJson> {
        let id = &id.to_hyphenated_uuid()?;
        let call = Call::new(Method::GET, format!("secrets/{id}"), what);
        let (reply, _) = self.ok(ctx, &call).await?;
        reply.json(what)
    }

    async fn require_consumers(&self, what: &str) -> Result<u8> {
        let root = self.root().await?;
        let mv = self.negotiate(&root).await?;
        if mv < 1 {
            return Err(Error::invalid(
                what,
                "secret consumers need Barbican microversion 1.1 (this endpoint or configuration allows only 1.0)",
            ));
        }
        Ok(mv)
    }

    /// Barbican's listing with every filter it has: one page.
    pub async fn list_filtered(&self, ctx: &Context, filter: &SecretFilter) -> Result<Page> {
        let q = &filter.query;
        let what = "list secrets";
        let mut call = Call::new(Method::GET, "secrets", what);
        call.query.push(("offset", q.offset.to_string()));
        if let Some(l) = q.limit {
            call.query.push(("limit", l.clamp(1, PAGE).to_string()));
        }
        if let Some(n) = &q.name {
            // Barbican unquotes the (already decoded) name once more
            // (`unquote_plus`): send it form-encoded so it survives.
            call.query.push((
                "name",
                url::form_urlencoded::byte_serialize(n.as_bytes()).collect(),
            ));
        }
        if let Some(k) = q.kind {
            call.query.push(("secret_type", k.as_str().to_string()));
        }
        if let Some(a) = &filter.algorithm {
            call.query.push(("alg", a.clone()));
        }
        if let Some(m) = &filter.mode {
            call.query.push(("mode", m.clone()));
        }
        if let Some(b) = filter.bits {
            call.query.push(("bits", b.to_string()));
        }
        if filter.acl_only {
            call.query.push(("acl_only", "true".into()));
        }
        for (k, v) in [
            ("created", &filter.created),
            ("updated", &filter.updated),
            ("expiration", &filter.expiration),
            ("sort", &filter.sort),
        ] {
            if let Some(v) = v {
                call.query.push((k, v.clone()));
            }
        }
        let (reply, _) = self.ok(ctx, &call).await?;
        let list: SecretListJson = reply.json(what)?;
        let got = list.secrets.len();
        let next_offset = list
            .next
            .as_deref()
            .map(|n| offset_of(n).unwrap_or(q.offset + got));
        let secrets = list
            .secrets
            .into_iter()
            .map(|s| s.into_metadata(what))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            secrets,
            total: list.total,
            next_offset,
        })
    }

    /// Every secret matching `filter`, following Barbican's `next` links
    /// from `filter.query.offset` to the last page.
    pub async fn list_all_filtered(
        &self,
        ctx: &Context,
        filter: &SecretFilter,
    ) -> Result<Vec<SecretMetadata>> {
        let mut f = filter.clone();
        f.query.limit = Some(f.query.limit.unwrap_or(PAGE).clamp(1, PAGE));
        let mut out = Vec::new();
        loop {
            let page = self.list_filtered(ctx, &f).await?;
            let got = page.secrets.len();
            out.extend(page.secrets);
            match page.next_offset {
                Some(next) if got > 0 && next > f.query.offset => f.query.offset = next,
                _ => return Ok(out),
            }
        }
    }

    /// The secret's read ACL.
    pub async fn get_acl(&self, ctx: &Context, id: &SecretId) -> Result<SecretAcl> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("get ACL of secret {id}");
        let call = Call::new(Method::GET, format!("secrets/{id}/acl"), &what);
        let (reply, _) = self.ok(ctx, &call).await?;
        let v: serde_json::Value = reply.json(&what)?;
        let read = v.get("read");
        let users = read
            .and_then(|r| r.get("users"))
            .and_then(|u| u.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let project_access = read
            .and_then(|r| r.get("project-access"))
            .and_then(|p| p.as_bool())
            .unwrap_or(true);
        Ok(SecretAcl {
            read_users: users,
            project_access,
        })
    }

    /// Replaces the secret's read ACL: exactly `users` may read it, and
    /// its project's members too when `project_access`.
    pub async fn set_acl(
        &self,
        ctx: &Context,
        id: &SecretId,
        users: &[String],
        project_access: bool,
    ) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("set ACL of secret {id}");
        let body =
            serde_json::json!({ "read": { "users": users, "project-access": project_access } });
        let call = Call::new(Method::PUT, format!("secrets/{id}/acl"), &what).json(&body)?;
        self.ok(ctx, &call).await.map(|_| ())
    }

    /// Changes part of the read ACL: the user list when `users` is given
    /// (replacing it), the project access when `project_access` is.
    pub async fn update_acl(
        &self,
        ctx: &Context,
        id: &SecretId,
        users: Option<&[String]>,
        project_access: Option<bool>,
    ) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("update ACL of secret {id}");
        let mut read = serde_json::Map::new();
        if let Some(u) = users {
            read.insert("users".into(), serde_json::json!(u));
        }
        if let Some(p) = project_access {
            read.insert("project-access".into(), serde_json::json!(p));
        }
        let body = serde_json::json!({ "read": read });
        let call = Call::new(Method::PATCH, format!("secrets/{id}/acl"), &what).json(&body)?;
        self.ok(ctx, &call).await.map(|_| ())
    }

    /// Removes the secret's ACL: back to project access and no extra users.
    pub async fn delete_acl(&self, ctx: &Context, id: &SecretId) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("delete ACL of secret {id}");
        let call = Call::new(Method::DELETE, format!("secrets/{id}/acl"), &what);
        self.ok(ctx, &call).await.map(|_| ())
    }

    async fn poll_order(&self, ctx: &Context, order: &str, what: &str) -> Result<OrderJson> {
        let cfg = &self.inner.cfg;
        let cap = Duration::from_secs_f64(cfg.retry_delay.max(0.05));
        let budget = Duration::from_secs_f64(cfg.retry_delay * f64::from(cfg.number_of_retries))
            .min(Duration::from_secs(7 * 86_400));
        let deadline = Instant::now() + budget;
        let mut wait = Duration::from_millis(20);
        loop {
            let call = Call::new(Method::GET, format!("orders/{order}"), what);
            let (reply, _) = self.ok(ctx, &call).await?;
            let o: OrderJson = reply.json(what)?;
            if o.status != "PENDING" {
                return Ok(o);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("{what} (order {order} still PENDING)"),
                    after: budget,
                });
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
            wait = (wait * 2).min(cap);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn secret_header(s: &SecretString, what: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(s.expose_secret()).map_err(|_| Error::Unauthenticated {
        what: what.to_string(),
        reason: "the token has characters an HTTP header cannot carry".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The highest `1.N` the version document announces for v1 (0 when it
/// announces none, as a 1.0-only server does).
fn server_max_microversion(doc: &serde_json::Value) -> u8 {
    let versions = match doc.get("versions") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(obj) => obj
            .get("values")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default(),
        None => doc
            .get("version")
            .map(|v| vec![v.clone()])
            .unwrap_or_default(),
    };
    versions
        .iter()
        .filter(|v| {
            v.get("id")
                .and_then(|i| i.as_str())
                .is_none_or(|i| i == "v1")
        })
        .filter_map(|v| v.get("max_version").and_then(|m| m.as_str()))
        .filter_map(|m| parse_microversion(m).ok())
        .max()
        .unwrap_or(0)
}

#[derive(Serialize)]
struct StoreBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    secret_type: &'static str,
    payload: &'a str,
    payload_content_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_content_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bit_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
}

/// The store request, as Castellan makes it through python-barbicanclient:
/// every kind travels base64-encoded as `application/octet-stream`, so that
/// python-barbicanclient hands its callers bytes (os-brick's
/// `get_passphrase_from_secret` takes nothing else) and Barbican keeps every
/// byte (it strips white space from `text/plain` payloads). Private keys,
/// public keys and certificates go as the PEM Castellan writes.
fn store_body(s: &NewSecret) -> Result<Zeroizing<Vec<u8>>> {
    let stored = keymgr_core::encoding::to_pem(s.kind, &s.payload)?;
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(stored.expose()));
    let (payload, content_type, encoding) =
        (encoded.as_str(), "application/octet-stream", Some("base64"));
    let body = StoreBody {
        name: s.name.as_deref(),
        secret_type: s.kind.as_str(),
        payload,
        payload_content_type: content_type,
        payload_content_encoding: encoding,
        algorithm: s.algorithm.as_deref(),
        bit_length: s.bit_length,
        mode: s.mode.as_deref(),
        expiration: s.expiration.map(format_time).transpose()?,
    };
    serde_json::to_vec(&body)
        .map(Zeroizing::new)
        .map_err(|e| Error::invalid("secret", e.to_string()))
}

/// The last path segment of an href (an order's id).
fn last_segment(href: &str) -> Option<String> {
    let url = url::Url::parse(href).ok()?;
    let seg = url.path_segments()?.rfind(|s| !s.is_empty())?;
    uuid::Uuid::parse_str(seg).ok().map(|u| u.to_string())
}

#[keymgr_core::async_trait]
impl KeyManager for BarbicanKeyManager {
    fn backend_name(&self) -> &'static str {
        "barbican"
    }

    /// Barbican's form: a hyphenated lower-case UUID (32 hex digits and
    /// secret hrefs are accepted and converted).
    fn parse_id(&self, input: &str) -> Result<SecretId> {
        SecretId::parse(input)?.to_hyphenated_uuid()
    }

    async fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId> {
        spec.validate()?;
        let what = format!("create_key aes-{}", spec.bit_length);
        // A 512-bit AES key is the two halves of an XTS key; Barbican's
        // crypto plugins accept that length only with mode "xts".
        let mode = spec
            .mode
            .clone()
            .or_else(|| (spec.bit_length == 512).then(|| "xts".to_string()));
        let mut meta = serde_json::json!({
            "algorithm": "aes",
            "bit_length": spec.bit_length,
            "payload_content_type": "application/octet-stream",
        });
        if let Some(n) = &spec.name {
            meta["name"] = serde_json::json!(n);
        }
        if let Some(m) = &mode {
            meta["mode"] = serde_json::json!(m);
        }
        if let Some(e) = spec.expiration {
            meta["expiration"] = serde_json::json!(format_time(e)?);
        }
        let body = serde_json::json!({ "type": "key", "meta": meta });
        let call = Call::new(Method::POST, "orders", &what).json(&body)?;
        let (reply, _) = self.ok(ctx, &call).await?;
        let r: RefJson = reply.json(&what)?;
        let order = r
            .order_ref
            .as_deref()
            .and_then(last_segment)
            .ok_or_else(|| Error::Backend {
                what: what.clone(),
                status: reply.status,
                message: "the answer has no valid order_ref".into(),
            })?;
        let outcome = self.poll_order(ctx, &order, &what).await;
        if outcome.is_ok() {
            // The order only records how the key was made: remove it.
            let del = Call::new(
                Method::DELETE,
                format!("orders/{order}"),
                format!("delete order {order}"),
            );
            if let Err(e) = self.ok(ctx, &del).await {
                tracing::warn!(order = %order, error = %e, "could not delete a finished key order");
            }
        }
        let o = outcome?;
        match o.status.as_str() {
            "ACTIVE" => o
                .secret_ref
                .as_deref()
                .ok_or_else(|| Error::Backend {
                    what: what.clone(),
                    status: 200,
                    message: "an ACTIVE order without secret_ref".into(),
                })
                .and_then(|s| {
                    SecretId::parse(s).map_err(|e| Error::Backend {
                        what: what.clone(),
                        status: 200,
                        message: format!("bad secret_ref: {e}"),
                    })
                }),
            status => {
                let code = match &o.error_status_code {
                    Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(500),
                    Some(serde_json::Value::String(s)) => s.parse().unwrap_or(500),
                    _ => 500,
                };
                let reason = o
                    .error_reason
                    .clone()
                    .unwrap_or_else(|| format!("order status {status}"));
                let body = serde_json::json!({ "description": reason }).to_string();
                Err(status_error(
                    &what,
                    u16::try_from(code).unwrap_or(500),
                    body.as_bytes(),
                ))
            }
        }
    }

    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        let secret = secret.into_normalized()?;
        let what = format!("store {} secret", secret.kind);
        let mut call = Call::new(Method::POST, "secrets", &what);
        call.body = Some(store_body(&secret)?);
        let (reply, _) = self.ok(ctx, &call).await?;
        let r: RefJson = reply.json(&what)?;
        let href = r.secret_ref.ok_or_else(|| Error::Backend {
            what: what.clone(),
            status: reply.status,
            message: "the answer has no secret_ref".into(),
        })?;
        SecretId::parse(&href).map_err(|e| Error::Backend {
            what,
            status: reply.status,
            message: format!("bad secret_ref: {e}"),
        })
    }

    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("get secret {id}");
        let meta = self.secret_json(ctx, id, &what).await?;
        let accept = meta
            .default_content_type()
            .unwrap_or_else(|| "application/octet-stream".into());
        let metadata = meta.into_metadata(&what)?;
        let mut call = Call::new(Method::GET, format!("secrets/{id}/payload"), &what);
        call.accept = &accept;
        let (mut reply, _) = self.ok(ctx, &call).await?;
        let mut payload = Payload::from(std::mem::take(&mut *reply.body));
        if keymgr_core::encoding::pem_label(metadata.kind).is_some() {
            // Barbican holds PEM; callers get the DER Castellan's objects hold.
            payload =
                keymgr_core::encoding::normalize_der(metadata.kind, &payload).map_err(|e| {
                    Error::Backend {
                        what: what.clone(),
                        status: reply.status,
                        message: format!(
                            "the stored {} is neither PEM nor DER: {e}",
                            metadata.kind
                        ),
                    }
                })?;
        }
        Ok(Secret { metadata, payload })
    }

    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("metadata of secret {id}");
        self.secret_json(ctx, id, &what).await?.into_metadata(&what)
    }

    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        self.list_filtered(
            ctx,
            &SecretFilter {
                query: query.clone(),
                ..SecretFilter::default()
            },
        )
        .await
    }

    async fn list_all(&self, ctx: &Context, query: &ListQuery) -> Result<Vec<SecretMetadata>> {
        self.list_all_filtered(
            ctx,
            &SecretFilter {
                query: query.clone(),
                ..SecretFilter::default()
            },
        )
        .await
    }

    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("delete secret {id}");
        let root = self.root().await?;
        let mv = self.negotiate(&root).await?;
        if mv == 1 && !force {
            // 1.1 knows consumers but deletes regardless: refuse here.
            let consumers = self.list_consumers(ctx, id).await?;
            if !consumers.is_empty() {
                return Err(Error::conflict(
                    what,
                    format!(
                        "the secret has {} consumer(s); delete with force",
                        consumers.len()
                    ),
                ));
            }
        }
        let mut call = Call::new(Method::DELETE, format!("secrets/{id}"), &what);
        if force && mv >= 2 {
            call.query.push(("force", "true".into()));
        }
        let (reply, _) = self.send(ctx, &call).await?;
        match reply.status {
            200..=299 => Ok(()),
            // A retried delete whose first attempt went through.
            404 if reply.uncertain => Ok(()),
            // Barbican 1.2 answers 400 SecretHasConsumers.
            400 if !force && mv >= 2 => {
                let msg = crate::http::error_message(&reply.body);
                if msg.to_ascii_lowercase().contains("consumer") {
                    Err(Error::conflict(what, msg))
                } else {
                    Err(status_error(&what, 400, &reply.body))
                }
            }
            s => Err(status_error(&what, s, &reply.body)),
        }
    }

    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("add consumer to secret {id}");
        self.require_consumers(&what).await?;
        let mut call =
            Call::new(Method::POST, format!("secrets/{id}/consumers"), &what).json(consumer)?;
        // Barbican creates or updates: repeating the call is harmless.
        call.idempotent = true;
        self.ok(ctx, &call).await.map(|_| ())
    }

    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("remove consumer from secret {id}");
        self.require_consumers(&what).await?;
        let call =
            Call::new(Method::DELETE, format!("secrets/{id}/consumers"), &what).json(consumer)?;
        let (reply, _) = self.send(ctx, &call).await?;
        match reply.status {
            200..=299 => Ok(()),
            404 if reply.uncertain => Ok(()),
            s => Err(status_error(&what, s, &reply.body)),
        }
    }

    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        let id = &id.to_hyphenated_uuid()?;
        let what = format!("list consumers of secret {id}");
        self.require_consumers(&what).await?;
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let mut call = Call::new(Method::GET, format!("secrets/{id}/consumers"), &what);
            call.query.push(("limit", PAGE.to_string()));
            call.query.push(("offset", offset.to_string()));
            let (reply, _) = self.ok(ctx, &call).await?;
            let page: ConsumerListJson = reply.json(&what)?;
            let got = page.consumers.len();
            out.extend(page.consumers.into_iter().map(Consumer::from));
            match page
                .next
                .as_deref()
                .map(|n| offset_of(n).unwrap_or(offset + got))
            {
                Some(next) if got > 0 && next > offset => offset = next,
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::SecretKind;

    fn body_of(s: &NewSecret) -> serde_json::Value {
        serde_json::from_slice(&store_body(s).unwrap()).unwrap()
    }

    #[test]
    fn every_kind_goes_base64_as_octet_stream() {
        let b = body_of(&NewSecret::new(SecretKind::Symmetric, vec![0u8, 1, 255]).named("k"));
        assert_eq!(b["payload"], "AAH/");
        assert_eq!(b["payload_content_type"], "application/octet-stream");
        assert_eq!(b["payload_content_encoding"], "base64");
        assert_eq!(b["secret_type"], "symmetric");
        assert_eq!(b["algorithm"], "aes");
        assert_eq!(b["bit_length"], 24);
        assert_eq!(b["name"], "k");

        // Passphrases too, as Castellan sends them: python-barbicanclient then
        // returns bytes (os-brick needs them) and Barbican strips nothing.
        for p in ["p\tw", " lead", "trail\n", "\u{1f}x", "ünï"] {
            let b = body_of(&NewSecret::new(
                SecretKind::Passphrase,
                p.as_bytes().to_vec(),
            ));
            assert_eq!(
                b["payload_content_type"], "application/octet-stream",
                "{p:?}"
            );
            assert_eq!(b["payload_content_encoding"], "base64");
            assert_eq!(b["secret_type"], "passphrase");
            use base64::Engine;
            let back = base64::engine::general_purpose::STANDARD
                .decode(b["payload"].as_str().unwrap())
                .unwrap();
            assert_eq!(back, p.as_bytes());
        }
    }

    #[test]
    fn version_documents_give_the_max_microversion() {
        let new = serde_json::json!({"versions": [{"id": "v1", "status": "CURRENT", "min_version": "1.0", "max_version": "1.2"}]});
        assert_eq!(server_max_microversion(&new), 2);
        let old = serde_json::json!({"versions": {"values": [{"id": "v1", "status": "stable"}]}});
        assert_eq!(server_max_microversion(&old), 0);
        let one = serde_json::json!({"version": {"id": "v1", "max_version": "1.1"}});
        assert_eq!(server_max_microversion(&one), 1);
        assert_eq!(server_max_microversion(&serde_json::Value::Null), 0);
    }

    #[test]
    fn order_ids_come_from_hrefs() {
        assert_eq!(
            last_segment("http://h:1/v1/orders/1258c03d-021d-471d-bf3c-b08b56f164b5").as_deref(),
            Some("1258c03d-021d-471d-bf3c-b08b56f164b5")
        );
        assert_eq!(last_segment("http://h:1/v1/orders/../x"), None);
        assert_eq!(last_segment("nonsense"), None);
    }

    #[test]
    fn new_is_lazy_and_checks_the_config() {
        let km = BarbicanKeyManager::new(BarbicanConfig::password(
            "http://127.0.0.1:9/v3",
            "u",
            "secret-pw",
            "p",
            "Default",
        ))
        .unwrap();
        assert_eq!(km.backend_name(), "barbican");
        assert!(!format!("{km:?}").contains("secret-pw"));
        let err = BarbicanKeyManager::new(BarbicanConfig::default()).unwrap_err();
        assert_eq!(err.kind(), keymgr_core::ErrorKind::Config);
        let mut cfg = BarbicanConfig::password("http://k", "u", "p", "p", "d");
        cfg.verify_ssl_path = Some("/nonexistent/ca.pem".into());
        assert!(BarbicanKeyManager::new(cfg)
            .unwrap_err()
            .to_string()
            .contains("verify_ssl_path"));
    }

    #[tokio::test]
    async fn unreachable_keystone_is_unavailable_after_retries() {
        let mut cfg = BarbicanConfig::password("http://127.0.0.1:9/v3", "u", "p", "p", "Default");
        cfg.http_retries = 2;
        cfg.http_retry_delay = 0.01;
        let km = BarbicanKeyManager::new(cfg).unwrap();
        let ctx = Context::new("", "u");
        let err = km.get(&ctx, &SecretId::new_random()).await.unwrap_err();
        assert_eq!(err.kind(), keymgr_core::ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("keystone authentication"), "{err}");
    }
}

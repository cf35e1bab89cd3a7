//! [`BarbicanKeyManager`]: the `KeyManager` implementation on Barbican v1.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use keymgr_core::{
    Consumer, Context, Error, KeyManager, KeySpec, ListQuery, NewSecret, Page, Payload, Result,
    Secret, SecretId, SecretMetadata,
};
use reqwest::Method;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{parse_microversion, BarbicanConfig};
use crate::discovery::MAX_MICROVERSION;
use crate::errors::status_error;
use crate::keystone::{Keystone, Token};
use crate::model::{format_time, offset_of, ConsumerListJson, RefJson, SecretJson, SecretListJson};
use crate::orders::last_segment;
use crate::transport::{http_client, Call, RetryPolicy};
use keymgr_http::{Backoff, Retry};

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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: BarbicanConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) policy: RetryPolicy,
    pub(crate) keystone: Keystone,
    pub(crate) service: Option<Keystone>,
    pub(crate) max_mv: u8,
    pub(crate) versions: Mutex<HashMap<String, u8>>,
    /// `get`s in flight, by project and id, that identical concurrent
    /// `get`s wait for instead of asking again. An entry lives only while
    /// its fetch runs; nothing is cached after it.
    pub(crate) inflight: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Option<Secret>>>>>,
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

impl BarbicanKeyManager {
    /// A key manager for `cfg` (checked with [`BarbicanConfig::validate`]).
    /// Nothing is sent until the first call: authentication is lazy.
    pub fn new(cfg: BarbicanConfig) -> Result<Self> {
        cfg.validate()?;
        let timeout = cfg.timeout_duration();
        let http = http_client(&cfg, timeout)?;
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
                inflight: Mutex::new(HashMap::new()),
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

    pub(crate) async fn own_token(&self) -> Result<Arc<Token>> {
        self.inner
            .keystone
            .token(&self.inner.http, &self.inner.policy)
            .await
    }

    /// A secret with its payload in one round trip's time: the metadata and
    /// the payload (as `application/octet-stream`, what keymgr and Castellan
    /// store) are asked for at once; the payload is asked again only when
    /// the metadata names another content type.
    async fn fetch_secret(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        const OCTETS: &str = "application/octet-stream";
        let what = format!("get secret {id}");
        let mut call = Call::new(Method::GET, format!("secrets/{id}/payload"), &what);
        call.accept = OCTETS;
        let (meta, guess) = tokio::join!(self.secret_json(ctx, id, &what), self.ok(ctx, &call));
        let meta = meta?;
        let accept = meta.default_content_type().unwrap_or_else(|| OCTETS.into());
        let metadata = meta.into_metadata(&what)?;
        let (mut reply, _) = if accept == OCTETS {
            guess?
        } else {
            drop(guess);
            call.accept = &accept;
            self.ok(ctx, &call).await?
        };
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

    pub(crate) async fn secret_json(
        &self,
        ctx: &Context,
        id: &SecretId,
        what: &str,
    ) -> Result<SecretJson> {
        let id = &id.to_hyphenated_uuid()?;
        let call = Call::new(Method::GET, format!("secrets/{id}"), what);
        let (reply, _) = self.ok(ctx, &call).await?;
        reply.json(what)
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
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        let id = id.to_hyphenated_uuid()?;
        // Identical concurrent reads with the manager's own credentials
        // (one token, one project) share one fetch. A call on behalf of a
        // user (its own token) is never shared: Barbican decides per token.
        if ctx.user_token.is_some() {
            return self.fetch_secret(ctx, &id).await;
        }
        let key = format!("{}\n{}", ctx.project_id, id.as_str());
        let cell = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            inflight.entry(key.clone()).or_default().clone()
        };
        let mut mine = None;
        let shared = cell
            .get_or_init(|| async {
                let r = self.fetch_secret(ctx, &id).await;
                let ok = r.as_ref().ok().cloned();
                mine = Some(r);
                ok
            })
            .await
            .clone();
        {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                inflight.remove(&key);
            }
        }
        match (mine, shared) {
            // This call did the fetch: its own answer, error included.
            (Some(r), _) => r,
            (None, Some(secret)) => Ok(secret),
            // The shared fetch failed: ask on our own (errors are not shared).
            (None, None) => self.fetch_secret(ctx, &id).await,
        }
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
                let msg = crate::errors::error_message(&reply.body);
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

//! [`VaultKeyManager`]: the `KeyManager` implementation on KV records.

use futures::stream::{self, StreamExt, TryStreamExt};
use keymgr_core::{
    async_trait, Consumer, Context, Error, KeyManager, KeySpec, ListQuery, NewSecret,
    OffsetDateTime, Page, Result, Secret, SecretId, SecretKind, SecretMetadata,
};
use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::VaultConfig;
use crate::errors::status_error;
use crate::model::{Access, Answer};
use crate::record::Record;
use crate::transport::{ClientStats, VaultClient};

/// How many records a listing reads at once.
const LIST_CONCURRENCY: usize = 16;
/// Default page size of `list`.
const DEFAULT_PAGE: usize = 100;
/// Check-and-set attempts for a consumer update under contention.
const CAS_ATTEMPTS: usize = 8;

/// The Vault / OpenBao key manager.
#[derive(Debug)]
pub struct VaultKeyManager {
    client: VaultClient,
    mount: String,
    prefix: String,
    kv_version: u8,
    legacy_visible: bool,
    transit: Option<String>,
}

impl VaultKeyManager {
    /// Builds the backend; no network until the first call (lazy login).
    pub fn new(config: VaultConfig) -> Result<Self> {
        let client = VaultClient::new(&config)?;
        let prefix = config
            .kv_path
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        Ok(VaultKeyManager {
            client,
            mount: config.kv_mountpoint.trim_matches('/').to_string(),
            prefix,
            kv_version: config.kv_version,
            legacy_visible: config.legacy_records_visible,
            transit: config
                .transit_mountpoint
                .as_deref()
                .map(|t| t.trim_matches('/').to_string()),
        })
    }

    /// Counters of what the client had to do so far to get its answers
    /// (retries, failovers, redirects, re-logins).
    pub fn stats(&self) -> ClientStats {
        self.client.stats()
    }

    /// The KV path of a record, as Castellan builds it: the id's 32 hex
    /// digits (a hyphenated UUID is converted; any other id is used as given).
    pub(crate) fn record_path(&self, id: &SecretId) -> String {
        let name = record_name(id);
        match self.kv_version {
            1 => format!("{}/{}{}", self.mount, self.prefix, name),
            _ => format!("{}/data/{}{}", self.mount, self.prefix, name),
        }
    }

    fn metadata_path(&self, id: &SecretId) -> String {
        format!("{}/metadata/{}{}", self.mount, self.prefix, record_name(id))
    }

    fn list_path(&self) -> String {
        match self.kv_version {
            1 => format!("{}/{}?list=true", self.mount, self.prefix),
            _ => format!("{}/metadata/{}?list=true", self.mount, self.prefix),
        }
    }

    /// Maps a non-success answer to the shared error kinds (a 403 is
    /// `Unauthenticated` when the token itself is no longer accepted).
    async fn error(&self, ans: &Answer, what: &str) -> Error {
        let token_valid = ans.status != 403 || self.client.token_is_valid().await;
        status_error(ans, what, token_valid)
    }

    /// Reads a record visible to `ctx`, with its KV v2 version.
    async fn read(&self, ctx: &Context, id: &SecretId, what: &str) -> Result<(Record, u64)> {
        let ans = self
            .client
            .request(Method::GET, &self.record_path(id), None, Access::Read, what)
            .await?;
        if !ans.status.is_success() {
            return Err(self.error(&ans, what).await);
        }
        let mut body = ans.body;
        if !body.get("data").is_some_and(Value::is_object) {
            return Err(Error::Unavailable {
                what: what.to_string(),
                reason: format!(
                    "Vault answered status {} without a `data` object",
                    ans.status.as_u16()
                ),
            });
        }
        let (data, version) = match self.kv_version {
            1 => (body.get_mut("data").map(Value::take), 0),
            _ => {
                let d = body.get_mut("data");
                let version = d
                    .as_ref()
                    .and_then(|d| d.pointer("/metadata/version"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                (d.and_then(|d| d.get_mut("data")).map(Value::take), version)
            }
        };
        let data = match data {
            Some(v) if v.is_object() => v,
            // KV v2 answers a deleted or destroyed version with null data.
            _ => return Err(Error::not_found(what)),
        };
        let rec = Record::from_json(id.clone(), data)?;
        let visible = match &rec.project {
            Some(p) => *p == ctx.project_id,
            None => self.legacy_visible,
        };
        let expired = rec
            .metadata
            .expiration
            .is_some_and(|e| e <= OffsetDateTime::now_utc());
        if !visible || expired {
            return Err(Error::not_found(what));
        }
        Ok((rec, version))
    }

    /// Writes a record; `cas` is the KV v2 check-and-set version (0 = must not exist).
    async fn write(&self, rec: &Record, cas: Option<u64>, what: &str) -> Result<Answer> {
        let inner = rec.to_json();
        let body = Zeroizing::new(match (self.kv_version, cas) {
            (1, _) => inner.to_string(),
            (_, Some(v)) => format!(
                "{{\"options\":{{\"cas\":{v}}},\"data\":{}}}",
                inner.as_str()
            ),
            (_, None) => format!("{{\"data\":{}}}", inner.as_str()),
        });
        self.client
            .request(
                Method::POST,
                &self.record_path(&rec.metadata.id),
                Some(&body),
                Access::Write,
                what,
            )
            .await
    }

    fn is_cas_mismatch(ans: &Answer) -> bool {
        ans.status.as_u16() == 400 && ans.errors().contains("check-and-set")
    }

    /// Stores a new record under a fresh id; never overwrites.
    async fn create(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        // Castellan's Vault backend keeps the DER its objects hold (as hex).
        let secret = secret.into_normalized()?;
        for _ in 0..3 {
            let id = new_id();
            let what = format!("store secret {id} in Vault");
            let rec = Record::new(id.clone(), &ctx.project_id, secret.clone());
            let cas = (self.kv_version == 2).then_some(0);
            let ans = self.write(&rec, cas, &what).await?;
            if ans.status.is_success() {
                return Ok(id);
            }
            if Self::is_cas_mismatch(&ans) {
                // Either an earlier attempt of this same write landed (its
                // answer was lost and the client sent it again), or the id
                // was taken: read it back to tell which.
                if self.landed(ctx, &rec, &what).await? {
                    return Ok(id);
                }
                continue;
            }
            return Err(self.error(&ans, &what).await);
        }
        Err(Error::conflict(
            "store secret in Vault",
            "three fresh ids were all taken",
        ))
    }

    /// After a check-and-set refusal of a create: whether the record at the
    /// id is the one this create wrote (same bytes, kind and creation time),
    /// i.e. an earlier attempt whose answer was lost did land. The read is
    /// repeated briefly while it is not found, since a raft standby may not
    /// have applied that write yet.
    async fn landed(&self, ctx: &Context, rec: &Record, what: &str) -> Result<bool> {
        let id = &rec.metadata.id;
        for attempt in 0..5u64 {
            match self.read(ctx, id, what).await {
                Ok((got, _)) => {
                    return Ok(got.payload.expose() == rec.payload.expose()
                        && got.metadata.created == rec.metadata.created
                        && got.metadata.kind == rec.metadata.kind
                        && got.project == rec.project)
                }
                Err(e) if e.kind() == keymgr_core::ErrorKind::NotFound => {
                    tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
                }
                // Another project's record, or one that does not parse: not ours.
                Err(Error::Backend { status: 200, .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Applies `change` to a record's consumers with check-and-set.
    async fn update_consumers(
        &self,
        ctx: &Context,
        id: &SecretId,
        what: &str,
        change: impl Fn(&mut Vec<Consumer>) -> Result<bool>,
    ) -> Result<()> {
        let mut refused = false;
        for _ in 0..CAS_ATTEMPTS {
            let (mut rec, version) = self.read(ctx, id, what).await?;
            match change(&mut rec.metadata.consumers) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                // The change is already there after a refused write: an
                // earlier attempt whose answer was lost did land (or a
                // concurrent caller made the same change). Either way the
                // record is as asked.
                Err(e) if refused && e.kind() == keymgr_core::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
            let cas = (self.kv_version == 2).then_some(version);
            let ans = self.write(&rec, cas, what).await?;
            if ans.status.is_success() {
                return Ok(());
            }
            if !Self::is_cas_mismatch(&ans) {
                return Err(self.error(&ans, what).await);
            }
            refused = true;
        }
        Err(Error::conflict(
            what,
            "the record kept changing under concurrent updates",
        ))
    }

    /// `n` random bytes from Transit's `random` endpoint.
    async fn transit_random(&self, mount: &str, n: usize) -> Result<Zeroizing<Vec<u8>>> {
        let what = format!("generate {n} random bytes with Transit at {mount}/random");
        let ans = self
            .client
            .request(
                Method::POST,
                &format!("{mount}/random/{n}"),
                Some("{\"format\":\"hex\"}"),
                Access::Read,
                &what,
            )
            .await?;
        if !ans.status.is_success() {
            return Err(self.error(&ans, &what).await);
        }
        let mut body = ans.body;
        let hex_text = match body.pointer_mut("/data/random_bytes").map(Value::take) {
            Some(Value::String(s)) => Zeroizing::new(s),
            _ => {
                return Err(Error::Backend {
                    what,
                    status: ans.status.as_u16(),
                    message: "the answer has no data.random_bytes".into(),
                })
            }
        };
        let bytes =
            Zeroizing::new(
                hex::decode(hex_text.as_bytes()).map_err(|_| Error::Backend {
                    what: what.clone(),
                    status: ans.status.as_u16(),
                    message: "data.random_bytes is not hex".into(),
                })?,
            );
        if bytes.len() != n {
            return Err(Error::Backend {
                what,
                status: ans.status.as_u16(),
                message: format!("asked for {n} random bytes, got {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    async fn list_ids(&self) -> Result<Vec<SecretId>> {
        let what = "list secrets in Vault";
        let ans = self
            .client
            .request(Method::GET, &self.list_path(), None, Access::Read, what)
            .await?;
        if ans.status.as_u16() == 404 {
            return Ok(Vec::new());
        }
        if !ans.status.is_success() {
            return Err(self.error(&ans, what).await);
        }
        if ans.body.pointer("/data/keys").is_none_or(|k| !k.is_array()) {
            return Err(Error::Unavailable {
                what: what.to_string(),
                reason: format!(
                    "Vault answered status {} without a `data.keys` list",
                    ans.status.as_u16()
                ),
            });
        }
        Ok(ans
            .body
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .filter(|k| k.len() == 32)
                    .filter_map(|k| SecretId::parse(k).ok()?.to_simple_uuid().ok())
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl KeyManager for VaultKeyManager {
    fn backend_name(&self) -> &'static str {
        "vault"
    }

    /// Castellan's Vault form: 32 lower-case hex digits (a hyphenated UUID
    /// is converted).
    fn parse_id(&self, input: &str) -> Result<SecretId> {
        SecretId::parse(input)?.to_simple_uuid()
    }

    async fn create_key(&self, ctx: &Context, spec: &KeySpec) -> Result<SecretId> {
        spec.validate()?;
        let bytes = match &self.transit {
            Some(mount) => self.transit_random(mount, spec.byte_len()).await?,
            None => {
                let mut bytes = Zeroizing::new(vec![0u8; spec.byte_len()]);
                getrandom::fill(&mut bytes).map_err(|e| Error::Unavailable {
                    what: "generate a key".into(),
                    reason: format!("the OS random source failed: {e}"),
                })?;
                bytes
            }
        };
        let mut secret = NewSecret::new(SecretKind::Symmetric, bytes);
        secret.algorithm = Some(spec.algorithm.clone());
        secret.bit_length = Some(spec.bit_length);
        secret.name = spec.name.clone();
        secret.mode = spec.mode.clone();
        secret.expiration = spec.expiration;
        self.create(ctx, secret).await
    }

    async fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        self.create(ctx, secret).await
    }

    async fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        let id = &id.to_simple_uuid()?;
        Ok(self
            .read(ctx, id, &format!("get secret {id}"))
            .await?
            .0
            .into_secret())
    }

    async fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        let id = &id.to_simple_uuid()?;
        Ok(self
            .read(ctx, id, &format!("metadata of secret {id}"))
            .await?
            .0
            .metadata)
    }

    async fn list(&self, ctx: &Context, query: &ListQuery) -> Result<Page> {
        let ids = self.list_ids().await?;
        let mut found: Vec<SecretMetadata> = stream::iter(ids)
            .map(|id| async move {
                match self.read(ctx, &id, "list secrets").await {
                    Ok((rec, _)) => Ok(Some(rec.metadata)),
                    Err(e) if e.kind() == keymgr_core::ErrorKind::NotFound => Ok(None),
                    // A record that does not parse is not ours to list.
                    Err(Error::Backend { status: 200, .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .try_filter_map(|m| async move { Ok(m) })
            .try_collect()
            .await?;
        found.retain(|m| query.matches(m));
        found.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let total = found.len();
        let limit = query.limit.unwrap_or(DEFAULT_PAGE).max(1);
        let secrets: Vec<_> = found.into_iter().skip(query.offset).take(limit).collect();
        let end = query.offset.saturating_add(secrets.len());
        Ok(Page {
            secrets,
            total: Some(total),
            next_offset: (end < total).then_some(end),
        })
    }

    async fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        let id = &id.to_simple_uuid()?;
        let what = format!("delete secret {id}");
        let (rec, _) = self.read(ctx, id, &what).await?;
        if !force && !rec.metadata.consumers.is_empty() {
            return Err(Error::conflict(
                what,
                format!(
                    "the secret has {} consumer(s); remove them or delete with force",
                    rec.metadata.consumers.len()
                ),
            ));
        }
        let path = match self.kv_version {
            1 => self.record_path(id),
            _ => self.metadata_path(id),
        };
        let ans = self
            .client
            .request(Method::DELETE, &path, None, Access::Write, &what)
            .await?;
        if ans.status.is_success() {
            Ok(())
        } else {
            Err(self.error(&ans, &what).await)
        }
    }

    async fn add_consumer(&self, ctx: &Context, id: &SecretId, consumer: &Consumer) -> Result<()> {
        let id = &id.to_simple_uuid()?;
        let what = format!("add consumer to secret {id}");
        self.update_consumers(ctx, id, &what, |cs| {
            if cs.contains(consumer) {
                return Ok(false);
            }
            cs.push(consumer.clone());
            Ok(true)
        })
        .await
    }

    async fn remove_consumer(
        &self,
        ctx: &Context,
        id: &SecretId,
        consumer: &Consumer,
    ) -> Result<()> {
        let id = &id.to_simple_uuid()?;
        let what = format!("remove consumer from secret {id}");
        self.update_consumers(ctx, id, &what, |cs| {
            let before = cs.len();
            cs.retain(|c| c != consumer);
            if cs.len() == before {
                return Err(Error::not_found(format!(
                    "consumer {}/{}/{} of secret {id}",
                    consumer.service, consumer.resource_type, consumer.resource_id
                )));
            }
            Ok(true)
        })
        .await
    }

    async fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        let id = &id.to_simple_uuid()?;
        Ok(self
            .read(ctx, id, &format!("consumers of secret {id}"))
            .await?
            .0
            .metadata
            .consumers)
    }
}

/// A fresh id in Castellan's Vault form (`uuid4().hex`).
fn new_id() -> SecretId {
    SecretId::parse(&uuid::Uuid::new_v4().simple().to_string())
        .expect("32 hex digits are a valid id")
}

/// The record name of an id: its 32 hex digits when it is a UUID.
fn record_name(id: &SecretId) -> String {
    id.to_simple_uuid()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| id.to_string())
}

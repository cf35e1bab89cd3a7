//! A Manila-like share service with "bring your own key" share encryption.
//!
//! Share types carry the tenant-visible extra spec `encryption_support`
//! (`share` or `share_server`); the back end ("driver") reports the
//! capability `encryption_support` as a list. A share created with an
//! `encryption_key_ref` is checked against the key manager before anything is
//! written: the secret must exist, be visible to the tenant and be usable as a
//! key (kind symmetric, passphrase or opaque).
//!
//! In `share_server` mode shares with the same key ref and network reuse one
//! share server; distinct server keys per project are limited by the quota
//! `server_encryption_keys`. The service registers itself as a consumer of the
//! secret (service `manila`, resource type `share` or `share-server`) so the
//! key cannot be deleted under a live share, and removes that on delete.
//!
//! The back end is handed a [`KeyAccess`] (the key manager, a context and the
//! secret id), fetches the key itself and formats / opens the share's LUKS2
//! volume in userspace.

use std::sync::Arc;

use keymgr::passphrase::passphrase_for;
use keymgr::{Consumer, Context, ErrorKind, KeyManager, SecretId, SecretKind};
use luks::LuksType;

use crate::config::ServiceConfig;
use crate::device::{self, DeviceSpec};
use crate::state::State;
use crate::{new_id, Result, ServiceError};

/// Record kind of share types.
pub const KIND_SHARE_TYPE: &str = "share_type";
/// Record kind of shares.
pub const KIND_SHARE: &str = "share";
/// Record kind of share servers.
pub const KIND_SHARE_SERVER: &str = "share_server";
/// Record kind of per-project share quotas.
pub const KIND_SHARE_QUOTA: &str = "share_quota";
/// The consumer service name Manila registers.
pub const CONSUMER_SERVICE: &str = "manila";
const MIB: u64 = 1 << 20;

/// Where a share type wants encryption done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncryptionSupport {
    /// One key per share.
    Share,
    /// One key per share server, shared by its shares.
    ShareServer,
}

impl EncryptionSupport {
    /// The extra-spec value.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionSupport::Share => "share",
            EncryptionSupport::ShareServer => "share_server",
        }
    }
}

impl std::str::FromStr for EncryptionSupport {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "share" => Ok(EncryptionSupport::Share),
            "share_server" => Ok(EncryptionSupport::ShareServer),
            other => Err(ServiceError::BadRequest(format!(
                "encryption_support {other:?}: expected \"share\" or \"share_server\""
            ))),
        }
    }
}

/// A share type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShareType {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Extra spec `encryption_support` (tenant visible); None: no encryption.
    pub encryption_support: Option<EncryptionSupport>,
}

/// A share.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShareRecord {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: String,
    /// Size in MiB.
    pub size_mib: u64,
    /// Share type id.
    pub share_type_id: String,
    /// Share network.
    pub network: String,
    /// The tenant's key (Barbican secret ref), when encrypted.
    pub encryption_key_ref: Option<String>,
    /// The share server holding it (share_server mode).
    pub share_server_id: Option<String>,
    /// `available`.
    pub status: String,
}

/// How a back end reaches the key it was handed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AccessRecord {
    /// `context`: the tenant context of the request (embedded/Vault);
    /// `app_credential`: a Keystone application credential restricted to
    /// reading this one secret (Barbican).
    pub method: String,
    /// Project of the context.
    pub project_id: String,
    /// User of the context.
    pub user_id: String,
    /// Application credential id (Barbican).
    pub app_credential_id: Option<String>,
    /// The mode-0600 file holding the application credential's secret.
    #[serde(default)]
    pub credential_file: Option<String>,
}

/// How share servers get their own access to the tenant's secret (the
/// Barbican ACL + application credential scheme); without one, the back end
/// uses the request's context.
#[keymgr::async_trait]
pub trait AccessGranter: Send + Sync + std::fmt::Debug {
    /// Grants the back end of share server `server_id` read access to
    /// `secret`, acting as `ctx`; returns what to record.
    async fn grant(
        &self,
        ctx: &Context,
        secret: &SecretId,
        server_id: &str,
        state_dir: &std::path::Path,
    ) -> Result<AccessRecord>;
    /// What the back end uses to fetch the key with a recorded grant.
    fn key_access(&self, rec: &AccessRecord, secret: &SecretId) -> Result<KeyAccess>;
    /// Revokes a grant; `secret_still_shared` when another share server of
    /// the project still uses the secret (keep the ACL entry then).
    async fn revoke(
        &self,
        ctx: &Context,
        rec: &AccessRecord,
        secret: &SecretId,
        secret_still_shared: bool,
    ) -> Result<()>;
}

/// A share server (share_server mode).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShareServer {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: String,
    /// Share network.
    pub network: String,
    /// The key every share on it uses.
    pub encryption_key_ref: String,
    /// What the back end was handed.
    pub access: AccessRecord,
    /// `active`.
    pub status: String,
}

/// Per-project share quotas.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShareQuota {
    /// Distinct keys over all share servers of the project.
    pub server_encryption_keys: u32,
}

/// A request to create a share.
#[derive(Debug, Clone, Default)]
pub struct CreateShare {
    /// Size in MiB.
    pub size_mib: u64,
    /// Share type name or id.
    pub share_type: String,
    /// Share network (default `default`).
    pub network: Option<String>,
    /// The tenant's key ref.
    pub encryption_key_ref: Option<String>,
}

/// What the back end is handed to fetch a key itself.
#[derive(Debug, Clone)]
pub struct KeyAccess {
    /// The key manager the back end talks to.
    pub km: Arc<dyn KeyManager>,
    /// The context it acts with.
    pub ctx: Context,
    /// The secret.
    pub secret: SecretId,
}

/// The back end ("driver"): its capabilities, and the LUKS2 volumes of shares.
#[derive(Debug, Clone)]
pub struct ShareDriver {
    /// Capability `encryption_support` (a list).
    pub encryption_support: Vec<EncryptionSupport>,
    cfg: ServiceConfig,
}

impl ShareDriver {
    fn spec(&self) -> DeviceSpec {
        DeviceSpec {
            luks_type: LuksType::Luks2,
            cipher: "aes-xts-plain64".into(),
            key_size: 512,
            pbkdf: self.cfg.pbkdf.clone(),
        }
    }

    async fn passphrase(&self, access: &KeyAccess) -> Result<keymgr::passphrase::Passphrase> {
        let secret = access.km.get(&access.ctx, &access.secret).await?;
        Ok(passphrase_for(secret.kind(), &secret.payload)?)
    }

    /// Creates the share's storage: a LUKS2 volume keyed by the secret the
    /// back end fetches with `access` (plain file when `access` is None).
    pub async fn create_share(
        &self,
        share_id: &str,
        size_mib: u64,
        access: Option<&KeyAccess>,
    ) -> Result<()> {
        let path = self.cfg.device_path(&format!("share-{share_id}"));
        match access {
            Some(a) => {
                let pass = self.passphrase(a).await?;
                device::format(&path, size_mib * MIB, &self.spec(), pass.as_bytes())
            }
            None => {
                let f = std::fs::File::create(&path)
                    .map_err(ServiceError::io(format!("creating share {share_id}")))?;
                f.set_len(size_mib * MIB)
                    .map_err(ServiceError::io(format!("sizing share {share_id}")))
            }
        }
    }

    /// Opens a share's storage for I/O.
    pub async fn open_share(
        &self,
        share_id: &str,
        access: Option<&KeyAccess>,
    ) -> Result<ShareHandle> {
        let path = self.cfg.device_path(&format!("share-{share_id}"));
        match access {
            Some(a) => {
                let pass = self.passphrase(a).await?;
                Ok(ShareHandle::Encrypted(Box::new(device::open(
                    &path,
                    pass.as_bytes(),
                )?)))
            }
            None => Ok(ShareHandle::Plain(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(ServiceError::io(format!("opening share {share_id}")))?,
            )),
        }
    }

    /// Removes a share's storage.
    pub fn delete_share(&self, share_id: &str) {
        let _ = std::fs::remove_file(self.cfg.device_path(&format!("share-{share_id}")));
    }
}

/// An open share: the same device handle as a volume's, each write synced.
pub type ShareHandle = device::DeviceHandle;

/// The share service.
#[derive(Debug, Clone)]
pub struct ShareService {
    /// Configuration (key manager, context).
    pub cfg: ServiceConfig,
    /// State.
    pub state: Arc<State>,
    /// The back end.
    pub driver: ShareDriver,
    /// Per-share-server access grants (Barbican); None: the request context.
    pub granter: Option<std::sync::Arc<dyn AccessGranter>>,
}

fn ref_error(r: &str, e: keymgr::Error) -> ServiceError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::InvalidInput => {
            ServiceError::BadRequest(format!(
                "encryption_key_ref {r}: the secret does not exist or is not visible to this project ({e})"
            ))
        }
        _ => ServiceError::Key(e),
    }
}

impl ShareService {
    /// A service over `cfg`'s state directory; the driver's capability comes
    /// from `cfg.share_driver_support`.
    pub fn new(cfg: ServiceConfig) -> Result<ShareService> {
        let state = Arc::new(State::open(&cfg.state_dir)?);
        let encryption_support = cfg
            .share_driver_support
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<_>>>()?;
        Ok(ShareService {
            driver: ShareDriver {
                encryption_support,
                cfg: cfg.clone(),
            },
            cfg,
            state,
            granter: None,
        })
    }

    /// The same service acting for `ctx`.
    pub fn as_user(&self, ctx: Context) -> ShareService {
        let cfg = self.cfg.with_context(ctx);
        ShareService {
            driver: ShareDriver {
                encryption_support: self.driver.encryption_support.clone(),
                cfg: cfg.clone(),
            },
            cfg,
            state: self.state.clone(),
            granter: self.granter.clone(),
        }
    }

    /// The same service with share servers getting their own grants.
    pub fn with_granter(mut self, granter: std::sync::Arc<dyn AccessGranter>) -> ShareService {
        self.granter = Some(granter);
        self
    }

    fn ctx(&self) -> &Context {
        &self.cfg.ctx
    }

    fn project(&self) -> &str {
        &self.cfg.ctx.project_id
    }

    /// Creates a share type; `encryption_support` is the extra spec
    /// (`share`, `share_server`, or None for no encryption).
    pub fn create_type(&self, name: &str, encryption_support: Option<&str>) -> Result<ShareType> {
        let encryption_support = encryption_support
            .map(str::parse::<EncryptionSupport>)
            .transpose()?;
        if self.find_type(name)?.is_some() {
            return Err(ServiceError::Conflict(format!("share type {name} exists")));
        }
        let t = ShareType {
            id: new_id(),
            name: name.into(),
            encryption_support,
        };
        self.state.put(KIND_SHARE_TYPE, &t.id, "", &t)?;
        Ok(t)
    }

    /// A share type by name or id.
    pub fn find_type(&self, name_or_id: &str) -> Result<Option<ShareType>> {
        Ok(self
            .list_types()?
            .into_iter()
            .find(|t| t.id == name_or_id || t.name == name_or_id))
    }

    /// All share types.
    pub fn list_types(&self) -> Result<Vec<ShareType>> {
        self.state.list(KIND_SHARE_TYPE, None)
    }

    /// A share of this project.
    pub fn get(&self, id: &str) -> Result<ShareRecord> {
        let s: ShareRecord = self.state.need(KIND_SHARE, id)?;
        if s.project != self.project() {
            return Err(ServiceError::NotFound(format!("share {id}")));
        }
        Ok(s)
    }

    /// This project's shares.
    pub fn list(&self) -> Result<Vec<ShareRecord>> {
        self.state.list(KIND_SHARE, Some(self.project()))
    }

    /// This project's share servers.
    pub fn list_servers(&self) -> Result<Vec<ShareServer>> {
        self.state.list(KIND_SHARE_SERVER, Some(self.project()))
    }

    /// A share server of this project.
    pub fn get_server(&self, id: &str) -> Result<ShareServer> {
        let s: ShareServer = self.state.need(KIND_SHARE_SERVER, id)?;
        if s.project != self.project() {
            return Err(ServiceError::NotFound(format!("share server {id}")));
        }
        Ok(s)
    }

    /// This project's quota.
    pub fn quota(&self) -> Result<ShareQuota> {
        Ok(self
            .state
            .get(KIND_SHARE_QUOTA, self.project())?
            .unwrap_or(ShareQuota {
                server_encryption_keys: self.cfg.server_keys_quota,
            }))
    }

    /// Sets this project's `server_encryption_keys` quota.
    pub fn set_quota(&self, server_encryption_keys: u32) -> Result<ShareQuota> {
        let q = ShareQuota {
            server_encryption_keys,
        };
        self.state
            .put(KIND_SHARE_QUOTA, self.project(), self.project(), &q)?;
        Ok(q)
    }

    /// Checks a key ref with the key manager: it must parse, exist, be
    /// visible to this project and be of a kind usable as a key. Nothing is
    /// written. Errors are 400-style and name the ref.
    pub async fn validate_key_ref(&self, r: &str) -> Result<SecretId> {
        let id = self.cfg.km.parse_id(r).map_err(|e| {
            ServiceError::BadRequest(format!(
                "encryption_key_ref {r:?} is not a secret reference: {e}"
            ))
        })?;
        let meta = self
            .cfg
            .km
            .metadata(self.ctx(), &id)
            .await
            .map_err(|e| ref_error(r, e))?;
        if !matches!(
            meta.kind,
            SecretKind::Symmetric | SecretKind::Passphrase | SecretKind::Opaque
        ) {
            return Err(ServiceError::BadRequest(format!(
                "encryption_key_ref {r}: a {} secret cannot be used as an encryption key \
                 (symmetric, passphrase or opaque expected)",
                meta.kind.as_str()
            )));
        }
        let secret = self
            .cfg
            .km
            .get(self.ctx(), &id)
            .await
            .map_err(|e| ref_error(r, e))?;
        if secret.payload.is_empty() {
            return Err(ServiceError::BadRequest(format!(
                "encryption_key_ref {r}: the secret is empty"
            )));
        }
        passphrase_for(secret.kind(), &secret.payload).map_err(|e| {
            ServiceError::BadRequest(format!("encryption_key_ref {r}: unusable as a key: {e}"))
        })?;
        Ok(id)
    }

    fn consumer(resource_type: &str, id: &str) -> Consumer {
        Consumer::new(CONSUMER_SERVICE, resource_type, id)
    }

    fn access_for(&self, a: &AccessRecord, secret: &SecretId) -> Result<KeyAccess> {
        if a.method != "context" {
            return match &self.granter {
                Some(g) => g.key_access(a, secret),
                None => Err(ServiceError::Conflict(format!(
                    "access method {} needs its granter configured",
                    a.method
                ))),
            };
        }
        Ok(self.context_key_access(a, secret))
    }

    fn context_key_access(&self, a: &AccessRecord, secret: &SecretId) -> KeyAccess {
        let mut ctx = Context::new(a.project_id.clone(), a.user_id.clone());
        ctx.roles = self.ctx().roles.clone();
        if a.project_id == self.ctx().project_id && a.user_id == self.ctx().user_id {
            ctx = self.ctx().clone();
        }
        KeyAccess {
            km: self.cfg.km.clone(),
            ctx,
            secret: secret.clone(),
        }
    }

    fn context_access(&self) -> AccessRecord {
        AccessRecord {
            method: "context".into(),
            project_id: self.ctx().project_id.clone(),
            user_id: self.ctx().user_id.clone(),
            app_credential_id: None,
            credential_file: None,
        }
    }

    /// Creates a share. With an `encryption_key_ref` the type must support
    /// encryption and the driver must offer that mode; the ref is validated
    /// before anything is written.
    pub async fn create(&self, req: &CreateShare) -> Result<ShareRecord> {
        let stype = self
            .find_type(&req.share_type)?
            .ok_or_else(|| ServiceError::NotFound(format!("share type {}", req.share_type)))?;
        if req.size_mib == 0 {
            return Err(ServiceError::BadRequest(
                "size must be at least 1 MiB".into(),
            ));
        }
        let network = req.network.clone().unwrap_or_else(|| "default".into());
        let key = match &req.encryption_key_ref {
            None => None,
            Some(r) => {
                let Some(mode) = stype.encryption_support else {
                    return Err(ServiceError::BadRequest(format!(
                        "share type {} does not support encryption (no encryption_support extra spec); \
                         encryption_key_ref {r} cannot be used",
                        stype.name
                    )));
                };
                if !self.driver.encryption_support.contains(&mode) {
                    return Err(ServiceError::BadRequest(format!(
                        "no back end offers encryption_support {} (share type {})",
                        mode.as_str(),
                        stype.name
                    )));
                }
                // Recorded in the key manager's own form (a Vault id as its
                // 32 hex digits, whatever form the caller gave).
                let secret = self.validate_key_ref(r).await?;
                Some((mode, secret.to_string(), secret))
            }
        };
        let id = new_id();
        let km = &self.cfg.km;
        let mut share = ShareRecord {
            id: id.clone(),
            project: self.project().into(),
            size_mib: req.size_mib,
            share_type_id: stype.id.clone(),
            network: network.clone(),
            encryption_key_ref: None,
            share_server_id: None,
            status: "creating".into(),
        };
        match key {
            None => self.driver.create_share(&id, req.size_mib, None).await?,
            Some((EncryptionSupport::Share, r, secret)) => {
                let consumer = Self::consumer("share", &id);
                km.add_consumer(self.ctx(), &secret, &consumer).await?;
                let access = self.access_for(&self.context_access(), &secret)?;
                if let Err(e) = self
                    .driver
                    .create_share(&id, req.size_mib, Some(&access))
                    .await
                {
                    let _ = km.remove_consumer(self.ctx(), &secret, &consumer).await;
                    self.driver.delete_share(&id);
                    return Err(e);
                }
                share.encryption_key_ref = Some(r);
            }
            Some((EncryptionSupport::ShareServer, r, secret)) => {
                let server = self.server_for(&r, &secret, &network).await?;
                let access = match self.access_for(&server.access, &secret) {
                    Ok(a) => a,
                    Err(e) => {
                        self.cleanup_server_if_unused(&server.id).await?;
                        return Err(e);
                    }
                };
                if let Err(e) = self
                    .driver
                    .create_share(&id, req.size_mib, Some(&access))
                    .await
                {
                    self.driver.delete_share(&id);
                    self.cleanup_server_if_unused(&server.id).await?;
                    return Err(e);
                }
                share.encryption_key_ref = Some(r);
                share.share_server_id = Some(server.id);
            }
        }
        share.status = "available".into();
        self.state.put(KIND_SHARE, &id, &share.project, &share)?;
        Ok(share)
    }

    /// The share server for (key ref, network): an existing one is reused;
    /// otherwise a new one, within the `server_encryption_keys` quota.
    async fn server_for(&self, r: &str, secret: &SecretId, network: &str) -> Result<ShareServer> {
        let servers = self.list_servers()?;
        if let Some(s) = servers
            .iter()
            .find(|s| s.encryption_key_ref == r && s.network == network && s.status == "active")
        {
            return Ok(s.clone());
        }
        let mut keys: Vec<&str> = servers
            .iter()
            .map(|s| s.encryption_key_ref.as_str())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let quota = self.quota()?.server_encryption_keys;
        if !keys.contains(&r) && keys.len() as u64 >= u64::from(quota) {
            return Err(ServiceError::OverQuota(format!(
                "server_encryption_keys quota of project {} is {quota}; {} keys are in use \
                 by share servers, encryption_key_ref {r} would be one more",
                self.project(),
                keys.len()
            )));
        }
        let id = new_id();
        let access = match &self.granter {
            Some(g) => {
                g.grant(self.ctx(), secret, &id, &self.cfg.state_dir)
                    .await?
            }
            None => self.context_access(),
        };
        let consumer = Self::consumer("share-server", &id);
        if let Err(e) = self
            .cfg
            .km
            .add_consumer(self.ctx(), secret, &consumer)
            .await
        {
            if let Some(g) = &self.granter {
                let shared = keys.contains(&r);
                let _ = g.revoke(self.ctx(), &access, secret, shared).await;
            }
            return Err(e.into());
        }
        let server = ShareServer {
            id: id.clone(),
            project: self.project().into(),
            network: network.into(),
            encryption_key_ref: r.into(),
            access,
            status: "active".into(),
        };
        self.state
            .put(KIND_SHARE_SERVER, &id, &server.project, &server)?;
        Ok(server)
    }

    async fn cleanup_server_if_unused(&self, server_id: &str) -> Result<bool> {
        let shares = self.list()?;
        if shares
            .iter()
            .any(|s| s.share_server_id.as_deref() == Some(server_id))
        {
            return Ok(false);
        }
        self.delete_server(server_id).await?;
        Ok(true)
    }

    /// Deletes a share server without shares: its consumer registration is
    /// removed (and its back-end credential revoked).
    pub async fn delete_server(&self, server_id: &str) -> Result<()> {
        let server = self.get_server(server_id)?;
        if self
            .list()?
            .iter()
            .any(|s| s.share_server_id.as_deref() == Some(server_id))
        {
            return Err(ServiceError::Conflict(format!(
                "share server {server_id} still has shares"
            )));
        }
        let secret = SecretId::parse(&server.encryption_key_ref)?;
        self.remove_consumer(&secret, &Self::consumer("share-server", server_id))
            .await?;
        if server.access.method != "context" {
            let Some(g) = &self.granter else {
                return Err(ServiceError::Conflict(format!(
                    "share server {server_id}: its {} grant needs the granter configured to be revoked",
                    server.access.method
                )));
            };
            let shared = self
                .list_servers()?
                .iter()
                .any(|s| s.id != server.id && s.encryption_key_ref == server.encryption_key_ref);
            g.revoke(self.ctx(), &server.access, &secret, shared)
                .await?;
        }
        self.state.delete(KIND_SHARE_SERVER, server_id)?;
        Ok(())
    }

    async fn remove_consumer(&self, secret: &SecretId, c: &Consumer) -> Result<()> {
        match self.cfg.km.remove_consumer(self.ctx(), secret, c).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                eprintln!(
                    "warning: secret {secret} or its consumer {}/{} was already gone",
                    c.resource_type, c.resource_id
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The access the back end uses for `share`.
    fn access_of(&self, share: &ShareRecord) -> Result<Option<KeyAccess>> {
        let Some(r) = &share.encryption_key_ref else {
            return Ok(None);
        };
        let secret = SecretId::parse(r)?;
        let rec = match &share.share_server_id {
            Some(sid) => self.get_server(sid)?.access,
            None => self.context_access(),
        };
        Ok(Some(self.access_for(&rec, &secret)?))
    }

    /// Opens a share's data (the back end fetches the key).
    pub async fn open(&self, id: &str) -> Result<ShareHandle> {
        let share = self.get(id)?;
        let access = self.access_of(&share)?;
        self.driver.open_share(id, access.as_ref()).await
    }

    /// Writes `data` at `offset` of share `id`.
    pub async fn write(&self, id: &str, offset: u64, data: &[u8]) -> Result<()> {
        let h = self.open(id).await?;
        check_range(&h, offset, data.len() as u64)?;
        h.write_at(data, offset)
    }

    /// Reads `len` bytes at `offset` of share `id`.
    pub async fn read(&self, id: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let h = self.open(id).await?;
        check_range(&h, offset, len)?;
        let len = usize::try_from(len)
            .map_err(|_| ServiceError::BadRequest(format!("length {len} too large")))?;
        let mut buf = vec![0u8; len];
        h.read_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Deletes a share: its storage, its consumer registration, and its
    /// share server when it was the last share on it.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let share = self.get(id)?;
        self.driver.delete_share(id);
        self.state.delete(KIND_SHARE, id)?;
        match (&share.encryption_key_ref, &share.share_server_id) {
            (Some(r), None) => {
                let secret = SecretId::parse(r)?;
                self.remove_consumer(&secret, &Self::consumer("share", id))
                    .await?;
            }
            (Some(_), Some(sid)) => {
                self.cleanup_server_if_unused(sid).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_range(h: &ShareHandle, offset: u64, len: u64) -> Result<()> {
    let size = h.size()?;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(ServiceError::BadRequest(format!(
            "range {offset}+{len} is outside the share ({size} bytes)"
        ))),
    }
}

/// `share` subcommands of the `examples` binary.
#[derive(Debug, clap::Subcommand)]
pub enum ShareCmd {
    /// Create a share type; `--encryption-support share|share_server` makes it encryptable.
    TypeCreate {
        /// Type name.
        name: String,
        /// Extra spec `encryption_support`: `share` or `share_server`.
        #[arg(long)]
        encryption_support: Option<String>,
    },
    /// List share types.
    TypeList,
    /// Create a share; with `--encryption-key-ref` the secret is validated first.
    Create {
        /// Size in MiB.
        #[arg(long, default_value_t = 4)]
        size: u64,
        /// Share type name or id.
        #[arg(long)]
        share_type: String,
        /// Share network (share servers are per key ref and network).
        #[arg(long)]
        network: Option<String>,
        /// The tenant's secret (id or Barbican href).
        #[arg(long)]
        encryption_key_ref: Option<String>,
    },
    /// List this project's shares.
    List,
    /// Show one share.
    Show {
        /// Share id.
        id: String,
    },
    /// Write a file into a share at an offset.
    Write {
        /// Share id.
        id: String,
        /// File to write.
        #[arg(long)]
        input: std::path::PathBuf,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Read bytes from a share to a file (or stdout with `-`).
    Read {
        /// Share id.
        id: String,
        /// Output file, `-` for stdout.
        #[arg(long)]
        output: String,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Bytes to read.
        #[arg(long)]
        length: u64,
    },
    /// Delete a share (and its share server when it was the last share on it).
    Delete {
        /// Share id.
        id: String,
    },
    /// List this project's share servers.
    ServerList,
    /// Delete a share server that has no shares.
    ServerDelete {
        /// Share server id.
        id: String,
    },
    /// Show or set this project's `server_encryption_keys` quota.
    Quota {
        /// New value of `server_encryption_keys`.
        #[arg(long)]
        server_encryption_keys: Option<u32>,
    },
}

/// Runs a `share` subcommand and returns what to print.
pub async fn run_cli(cfg: &ServiceConfig, cmd: ShareCmd) -> Result<String> {
    let svc = ShareService::new(cfg.clone())?;
    let json = |v: &dyn erased::Json| v.to_json();
    Ok(match cmd {
        ShareCmd::TypeCreate {
            name,
            encryption_support,
        } => json(&svc.create_type(&name, encryption_support.as_deref())?),
        ShareCmd::TypeList => json(&svc.list_types()?),
        ShareCmd::Create {
            size,
            share_type,
            network,
            encryption_key_ref,
        } => json(
            &svc.create(&CreateShare {
                size_mib: size,
                share_type,
                network,
                encryption_key_ref,
            })
            .await?,
        ),
        ShareCmd::List => json(&svc.list()?),
        ShareCmd::Show { id } => json(&svc.get(&id)?),
        ShareCmd::Write { id, input, offset } => {
            let data = std::fs::read(&input)
                .map_err(ServiceError::io(format!("reading {}", input.display())))?;
            svc.write(&id, offset, &data).await?;
            format!(
                "wrote {} bytes at offset {offset} of share {id}",
                data.len()
            )
        }
        ShareCmd::Read {
            id,
            output,
            offset,
            length,
        } => {
            let data = svc.read(&id, offset, length).await?;
            if output == "-" {
                use std::io::Write;
                std::io::stdout()
                    .write_all(&data)
                    .map_err(ServiceError::io("writing stdout"))?;
                String::new()
            } else {
                std::fs::write(&output, &data)
                    .map_err(ServiceError::io(format!("writing {output}")))?;
                format!(
                    "read {} bytes at offset {offset} of share {id} into {output}",
                    data.len()
                )
            }
        }
        ShareCmd::Delete { id } => {
            svc.delete(&id).await?;
            format!("deleted share {id}")
        }
        ShareCmd::ServerList => json(&svc.list_servers()?),
        ShareCmd::ServerDelete { id } => {
            svc.delete_server(&id).await?;
            format!("deleted share server {id}")
        }
        ShareCmd::Quota {
            server_encryption_keys,
        } => match server_encryption_keys {
            Some(n) => json(&svc.set_quota(n)?),
            None => json(&svc.quota()?),
        },
    })
}

#[cfg(feature = "barbican")]
pub mod barbican;

mod erased {
    /// Pretty JSON of any serializable value.
    pub(super) trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<unprintable: {e}>"))
        }
    }
}

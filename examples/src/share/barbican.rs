//! Barbican-only share server access (feature `barbican`): the tenant's
//! secret ACL grants the Manila service user read access, and each share
//! server gets a Keystone application credential of the tenant restricted by
//! access rules to `GET` that one secret and its payload. Only that credential
//! is handed to the back end; it is deleted with the share server.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use keymgr::{Context, KeyManager, SecretId};
use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager};
use zeroize::Zeroizing;

use super::{AccessGranter, AccessRecord, KeyAccess};
use crate::{Result, ServiceError};

/// The tenant user the application credentials belong to.
#[derive(Clone)]
pub struct TenantUser {
    /// Keystone user id.
    pub user_id: String,
    /// User name (password authentication).
    pub user_name: String,
    /// Password.
    pub password: Zeroizing<String>,
    /// Project id the credentials are scoped to.
    pub project_id: String,
    /// Domain name of the user.
    pub domain: String,
}

impl std::fmt::Debug for TenantUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantUser")
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .field("project_id", &self.project_id)
            .finish()
    }
}

/// Grants share servers access through Barbican ACLs and Keystone
/// application credentials.
#[derive(Debug)]
pub struct BarbicanGranter {
    /// Keystone v3 URL (`.../v3`).
    pub keystone_url: String,
    /// The tenant's Barbican client (ACL calls).
    pub owner: Arc<BarbicanKeyManager>,
    /// The tenant user creating the application credentials.
    pub tenant: TenantUser,
    /// The Manila service user given read access in the ACL.
    pub service_user_id: String,
    http: reqwest::Client,
}

fn ks_err(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Tool {
        tool: "keystone".into(),
        reason: format!("{what}: {e}"),
    }
}

impl BarbicanGranter {
    /// A granter; `owner` is the tenant's Barbican client.
    pub fn new(
        keystone_url: impl Into<String>,
        owner: Arc<BarbicanKeyManager>,
        tenant: TenantUser,
        service_user_id: impl Into<String>,
    ) -> BarbicanGranter {
        BarbicanGranter {
            keystone_url: keystone_url.into().trim_end_matches('/').to_string(),
            owner,
            tenant,
            service_user_id: service_user_id.into(),
            http: reqwest::Client::new(),
        }
    }

    async fn token(&self) -> Result<Zeroizing<String>> {
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.tenant.user_name, "domain": {"name": self.tenant.domain},
                "password": self.tenant.password.as_str()}}},
            "scope": {"project": {"id": self.tenant.project_id}}
        }});
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.keystone_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| ks_err("token request", e))?;
        if resp.status().as_u16() != 201 {
            return Err(ks_err(
                "token request",
                format!("HTTP {} for user {}", resp.status(), self.tenant.user_name),
            ));
        }
        let t = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ks_err("token request", "no X-Subject-Token"))?;
        Ok(Zeroizing::new(t.to_string()))
    }

    /// Whether application credential `id` of the tenant user exists.
    pub async fn app_credential_exists(&self, id: &str) -> Result<bool> {
        let token = self.token().await?;
        let resp = self
            .http
            .get(format!(
                "{}/users/{}/application_credentials/{id}",
                self.keystone_url, self.tenant.user_id
            ))
            .header("X-Auth-Token", token.as_str())
            .send()
            .await
            .map_err(|e| ks_err("application credential lookup", e))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(ks_err("application credential lookup", format!("HTTP {s}"))),
        }
    }

    async fn create_app_credential(
        &self,
        secret: &SecretId,
        server_id: &str,
    ) -> Result<(String, Zeroizing<String>)> {
        let token = self.token().await?;
        let rules = serde_json::json!([
            {"service": "key-manager", "method": "GET", "path": format!("/v1/secrets/{secret}")},
            {"service": "key-manager", "method": "GET", "path": format!("/v1/secrets/{secret}/payload")},
        ]);
        let body = serde_json::json!({"application_credential": {
            "name": format!("manila-share-server-{server_id}"),
            "description": "read access to one secret for a share server's back end",
            "access_rules": rules,
        }});
        let resp = self
            .http
            .post(format!(
                "{}/users/{}/application_credentials",
                self.keystone_url, self.tenant.user_id
            ))
            .header("X-Auth-Token", token.as_str())
            .json(&body)
            .send()
            .await
            .map_err(|e| ks_err("application credential create", e))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(ks_err(
                "application credential create",
                format!("HTTP {status}"),
            ));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| ks_err("application credential create", e))?;
        let ac = &v["application_credential"];
        match (ac["id"].as_str(), ac["secret"].as_str()) {
            (Some(id), Some(sec)) => Ok((id.to_string(), Zeroizing::new(sec.to_string()))),
            _ => Err(ks_err(
                "application credential create",
                "reply without id or secret",
            )),
        }
    }

    async fn delete_app_credential(&self, id: &str) -> Result<()> {
        let token = self.token().await?;
        let resp = self
            .http
            .delete(format!(
                "{}/users/{}/application_credentials/{id}",
                self.keystone_url, self.tenant.user_id
            ))
            .header("X-Auth-Token", token.as_str())
            .send()
            .await
            .map_err(|e| ks_err("application credential delete", e))?;
        match resp.status().as_u16() {
            204 | 404 => Ok(()),
            s => Err(ks_err("application credential delete", format!("HTTP {s}"))),
        }
    }
}

fn write_0600(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(ServiceError::io(format!("creating {}", path.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(ServiceError::io(format!("writing {}", path.display())))
}

#[keymgr::async_trait]
impl AccessGranter for BarbicanGranter {
    async fn grant(
        &self,
        ctx: &Context,
        secret: &SecretId,
        server_id: &str,
        state_dir: &Path,
    ) -> Result<AccessRecord> {
        // 1. the ACL: the service user may read the secret
        let acl = self.owner.get_acl(ctx, secret).await?;
        if !acl.read_users.contains(&self.service_user_id) {
            let mut users = acl.read_users.clone();
            users.push(self.service_user_id.clone());
            self.owner
                .update_acl(ctx, secret, Some(&users), None)
                .await?;
        }
        // 2. an application credential restricted to this secret
        let (id, sec) = self.create_app_credential(secret, server_id).await?;
        let dir = state_dir.join("credentials");
        std::fs::create_dir_all(&dir)
            .map_err(ServiceError::io(format!("creating {}", dir.display())))?;
        let file = dir.join(format!("{id}.secret"));
        if let Err(e) = write_0600(&file, sec.as_bytes()) {
            let _ = self.delete_app_credential(&id).await;
            return Err(e);
        }
        Ok(AccessRecord {
            method: "app_credential".into(),
            project_id: self.tenant.project_id.clone(),
            user_id: self.tenant.user_id.clone(),
            app_credential_id: Some(id),
            credential_file: Some(file.display().to_string()),
        })
    }

    fn key_access(&self, rec: &AccessRecord, secret: &SecretId) -> Result<KeyAccess> {
        let (Some(id), Some(file)) = (&rec.app_credential_id, &rec.credential_file) else {
            return Err(ServiceError::Conflict(
                "share server grant without an application credential".into(),
            ));
        };
        let sec = Zeroizing::new(
            std::fs::read_to_string(file).map_err(ServiceError::io(format!("reading {file}")))?,
        );
        let km: Arc<dyn KeyManager> = Arc::new(BarbicanKeyManager::new(
            BarbicanConfig::application_credential(&self.keystone_url, id, sec.as_str()),
        )?);
        Ok(KeyAccess {
            km,
            ctx: Context::new("", ""),
            secret: secret.clone(),
        })
    }

    async fn revoke(
        &self,
        ctx: &Context,
        rec: &AccessRecord,
        secret: &SecretId,
        secret_still_shared: bool,
    ) -> Result<()> {
        if let Some(id) = &rec.app_credential_id {
            self.delete_app_credential(id).await?;
        }
        if let Some(file) = &rec.credential_file {
            if let Ok(meta) = std::fs::metadata(file) {
                let len = usize::try_from(meta.len()).unwrap_or(0);
                let _ = std::fs::write(file, vec![0u8; len]);
            }
            let _ = std::fs::remove_file(file);
        }
        if !secret_still_shared {
            match self.owner.get_acl(ctx, secret).await {
                Ok(acl) if acl.read_users.contains(&self.service_user_id) => {
                    let users: Vec<String> = acl
                        .read_users
                        .into_iter()
                        .filter(|u| *u != self.service_user_id)
                        .collect();
                    self.owner
                        .update_acl(ctx, secret, Some(&users), None)
                        .await?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == keymgr::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

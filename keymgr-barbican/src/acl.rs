//! Secret ACLs: Barbican's read access list of a secret.

use keymgr_core::{Context, Result, SecretId};
use reqwest::Method;

use crate::manager::BarbicanKeyManager;
use crate::transport::Call;

/// Read access of a secret (Barbican's ACL for the `read` operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAcl {
    /// User ids allowed to read the secret besides its project's members.
    pub read_users: Vec<String>,
    /// Whether the secret's project members may read it (Barbican's
    /// `project-access`; true unless turned off).
    pub project_access: bool,
}

impl BarbicanKeyManager {
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
}

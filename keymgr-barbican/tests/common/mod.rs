//! Test helpers over the Keystone + Barbican environment started by
//! `scripts/servers/openstack.sh` (read through
//! `keymgr_test_support::env::OpenStackEnv`): a configuration and context
//! per user, and a few direct Keystone calls tests need (user tokens,
//! application credentials, token revocation).
#![allow(dead_code)]

use keymgr_barbican::BarbicanConfig;
use keymgr_core::Context;
use keymgr_test_support::env::{OpenStackEnv, OsUser as User};
use serde_json::{json, Value};

/// What the tests do with the environment.
pub(crate) trait Keystone {
    /// Password credentials of `u` scoped to its project, catalog lookup.
    fn password_config(&self, u: &User) -> BarbicanConfig;
    /// A context in `u`'s project, acting with the key manager's own credentials.
    fn ctx(&self, u: &User) -> Context;
    /// A context carrying `u`'s own token.
    async fn user_ctx(&self, u: &User) -> Context;
    /// A project-scoped token of `u`, straight from Keystone.
    async fn token(&self, u: &User) -> String;
    /// Revokes `token` (a user may revoke their own).
    async fn revoke(&self, token: &str);
    /// Creates an application credential of `u` (optionally restricted by
    /// access rules); returns its id and secret.
    async fn app_cred(&self, u: &User, name: &str, access_rules: Option<Value>)
        -> (String, String);
}

impl Keystone for OpenStackEnv {
    /// Password credentials of `u` scoped to its project, catalog lookup.
    fn password_config(&self, u: &User) -> BarbicanConfig {
        let mut c = BarbicanConfig::password(
            &self.keystone_url,
            &u.name,
            &u.password,
            &u.project,
            &self.domain,
        );
        c.http_retries = 4;
        c.http_retry_delay = 0.1;
        c
    }

    /// A context in `u`'s project, acting with the key manager's own credentials.
    fn ctx(&self, u: &User) -> Context {
        Context::new(&u.project_id, &u.id).with_roles(["member"])
    }

    /// A context carrying `u`'s own token.
    async fn user_ctx(&self, u: &User) -> Context {
        let t = self.token(u).await;
        self.ctx(u).with_user_token(t)
    }

    /// A project-scoped token of `u`, straight from Keystone.
    async fn token(&self, u: &User) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": u.name, "domain": {"name": self.domain}, "password": u.password}}},
            "scope": {"project": {"id": u.project_id}}
        }});
        let resp = reqwest::Client::new()
            .post(format!("{}/auth/tokens", self.keystone_url))
            .json(&body)
            .send()
            .await
            .expect("keystone reachable");
        assert_eq!(resp.status().as_u16(), 201, "token for {}", u.name);
        resp.headers()["X-Subject-Token"]
            .to_str()
            .unwrap()
            .to_string()
    }

    /// Revokes `token` (a user may revoke their own).
    async fn revoke(&self, token: &str) {
        let resp = reqwest::Client::new()
            .delete(format!("{}/auth/tokens", self.keystone_url))
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204, "revoke token");
    }

    /// Creates an application credential of `u` (optionally restricted by
    /// access rules); returns its id and secret.
    async fn app_cred(
        &self,
        u: &User,
        name: &str,
        access_rules: Option<Value>,
    ) -> (String, String) {
        let token = self.token(u).await;
        let mut ac = json!({"name": name});
        if let Some(r) = access_rules {
            ac["access_rules"] = r;
        }
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/users/{}/application_credentials",
                self.keystone_url, u.id
            ))
            .header("X-Auth-Token", &token)
            .json(&json!({ "application_credential": ac }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "create application credential: {v}");
        (
            v["application_credential"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
            v["application_credential"]["secret"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }
}

/// A name unique to this run.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

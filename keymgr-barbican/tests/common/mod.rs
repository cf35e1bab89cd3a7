//! Test helpers: the Keystone + Barbican environment started by
//! `scripts/servers/openstack.sh` (read from `KEYMGR_TEST_*` variables),
//! and a few direct Keystone calls tests need (user tokens, application
//! credentials, token revocation).
#![allow(dead_code)]

use keymgr_barbican::BarbicanConfig;
use keymgr_core::Context;
use serde_json::{json, Value};

/// A provisioned user and the project it is a member of.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: String,
    pub id: String,
    pub password: String,
    pub project: String,
    pub project_id: String,
}

/// The running test environment.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub keystone: String,
    pub barbican: String,
    pub domain: String,
    pub a: User,
    pub b: User,
    pub service: User,
    pub restart: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The environment, or `None` (after saying why) when the servers are not
/// running. With `KEYMGR_REQUIRE_TOOLS=1` a missing environment fails.
pub(crate) fn env(test: &str) -> Option<Env> {
    let get = || -> Option<Env> {
        let user = |k: &str| -> Option<User> {
            Some(User {
                name: var(&format!("KEYMGR_TEST_OS_USER_{k}"))?,
                id: var(&format!("KEYMGR_TEST_OS_USER_{k}_ID"))?,
                password: var(&format!("KEYMGR_TEST_OS_PASSWORD_{k}"))?,
                project: var(&format!("KEYMGR_TEST_OS_PROJECT_{k}"))?,
                project_id: var(&format!("KEYMGR_TEST_OS_PROJECT_{k}_ID"))?,
            })
        };
        Some(Env {
            keystone: var("KEYMGR_TEST_KEYSTONE_URL")?,
            barbican: var("KEYMGR_TEST_BARBICAN_URL")?,
            domain: var("KEYMGR_TEST_OS_DOMAIN").unwrap_or_else(|| "Default".into()),
            a: user("A")?,
            b: user("B")?,
            service: User {
                name: var("KEYMGR_TEST_OS_SERVICE_USER")?,
                id: var("KEYMGR_TEST_OS_SERVICE_USER_ID")?,
                password: var("KEYMGR_TEST_OS_SERVICE_PASSWORD")?,
                project: var("KEYMGR_TEST_OS_SERVICE_PROJECT")?,
                project_id: String::new(),
            },
            restart: var("KEYMGR_TEST_BARBICAN_RESTART"),
        })
    };
    match get() {
        Some(e) => Some(e),
        None => {
            let why = "Keystone/Barbican test environment not running (KEYMGR_TEST_KEYSTONE_URL etc. unset; start it with `bash scripts/servers/openstack.sh start DIR` and source DIR/env)";
            if keymgr_test_support::testenv::tools_required() {
                panic!("{test}: {why}, and KEYMGR_REQUIRE_TOOLS=1");
            }
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

impl Env {
    /// Password credentials of `u` scoped to its project, catalog lookup.
    pub(crate) fn password_config(&self, u: &User) -> BarbicanConfig {
        let mut c = BarbicanConfig::password(
            &self.keystone,
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
    pub(crate) fn ctx(&self, u: &User) -> Context {
        Context::new(&u.project_id, &u.id).with_roles(["member"])
    }

    /// A context carrying `u`'s own token.
    pub(crate) async fn user_ctx(&self, u: &User) -> Context {
        let t = self.token(u).await;
        self.ctx(u).with_user_token(t)
    }

    /// A project-scoped token of `u`, straight from Keystone.
    pub(crate) async fn token(&self, u: &User) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": u.name, "domain": {"name": self.domain}, "password": u.password}}},
            "scope": {"project": {"id": u.project_id}}
        }});
        let resp = reqwest::Client::new()
            .post(format!("{}/auth/tokens", self.keystone))
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
    pub(crate) async fn revoke(&self, token: &str) {
        let resp = reqwest::Client::new()
            .delete(format!("{}/auth/tokens", self.keystone))
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204, "revoke token");
    }

    /// Creates an application credential of `u` (optionally restricted by
    /// access rules); returns its id and secret.
    pub(crate) async fn app_cred(
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
                self.keystone, u.id
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

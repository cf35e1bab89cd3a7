//! What the Vault tests build from the OpenBao servers started by
//! scripts/servers/openbao.sh (read through
//! `keymgr_test_support::env::VaultEnv`): a configuration, a raw client.
#![allow(dead_code)]

use keymgr_test_support::env::VaultEnv;
use keymgr_vault::VaultConfig;

/// Root-token configuration for the dev server.
pub(crate) fn token_config(env: &VaultEnv) -> VaultConfig {
    VaultConfig::with_token(&env.addr, &env.root_token)
}

/// AppRole configuration for the dev server, reached at `addr`.
pub(crate) fn approle_config(env: &VaultEnv, addr: &str) -> VaultConfig {
    VaultConfig::with_approle(addr, &env.approle.role_id, &env.approle.secret_id)
}

/// A raw HTTP client with the root token, for writing and reading records
/// exactly as Castellan does.
pub(crate) struct Raw {
    pub http: reqwest::Client,
    pub addr: String,
    pub token: String,
}

impl Raw {
    /// A raw client of the dev server with its root token.
    pub(crate) fn new(env: &VaultEnv) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            addr: env.addr.clone(),
            token: env.root_token.clone(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("raw Vault request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }
}

//! Test environment: the OpenBao servers started by scripts/servers/openbao.sh.
#![allow(dead_code)]

pub(crate) mod fault;

use keymgr_vault::VaultConfig;

/// An environment variable, or `None` after printing why the test skips
/// (a failure instead when KEYMGR_REQUIRE_TOOLS=1).
pub(crate) fn env(name: &str) -> Option<String> {
    keymgr_test_support::testenv::server_var(name, "OpenBao")
}

/// Token config for the dev server, or `None` (skip).
pub(crate) fn dev_token_config() -> Option<VaultConfig> {
    Some(VaultConfig::with_token(
        env("KEYMGR_TEST_VAULT_ADDR")?,
        env("KEYMGR_TEST_VAULT_TOKEN")?,
    ))
}

/// A raw HTTP client with the root token, for writing and reading records
/// exactly as Castellan does.
pub(crate) struct Raw {
    pub http: reqwest::Client,
    pub addr: String,
    pub token: String,
}

impl Raw {
    pub(crate) fn dev() -> Option<Raw> {
        Some(Raw {
            http: reqwest::Client::new(),
            addr: env("KEYMGR_TEST_VAULT_ADDR")?,
            token: env("KEYMGR_TEST_VAULT_TOKEN")?,
        })
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

//! The shared conformance suite against a real OpenBao dev server.

mod common;

use keymgr_core::{testkit, Context};
use keymgr_vault::{VaultConfig, VaultKeyManager};

fn contexts() -> (Context, Context) {
    (
        Context::new("project-a", "alice"),
        Context::new("project-b", "bob"),
    )
}

#[tokio::test]
async fn kv2_with_token() {
    let Some(cfg) = common::dev_token_config() else {
        return;
    };
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn kv1_with_token() {
    let Some(mut cfg) = common::dev_token_config() else {
        return;
    };
    cfg.kv_mountpoint = common::env("KEYMGR_TEST_VAULT_KV1_MOUNT").unwrap();
    cfg.kv_version = 1;
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

fn approle_config() -> Option<VaultConfig> {
    Some(VaultConfig::with_approle(
        common::env("KEYMGR_TEST_VAULT_ADDR")?,
        common::env("KEYMGR_TEST_VAULT_ROLE_ID")?,
        common::env("KEYMGR_TEST_VAULT_SECRET_ID")?,
    ))
}

#[tokio::test]
async fn kv2_with_approle_and_a_path_prefix() {
    let Some(mut cfg) = approle_config() else {
        return;
    };
    cfg.kv_path = Some("keymgr/approle".into());
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn kv1_with_approle() {
    let Some(mut cfg) = approle_config() else {
        return;
    };
    cfg.kv_mountpoint = common::env("KEYMGR_TEST_VAULT_KV1_MOUNT").unwrap();
    cfg.kv_version = 1;
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

//! The shared conformance suite against a real OpenBao dev server.

mod common;

use keymgr_test_support::env::VaultEnv;

use keymgr_core::{testkit, Context, KeyManager};
use keymgr_vault::{VaultConfig, VaultKeyManager};

fn contexts() -> (Context, Context) {
    (
        Context::new("project-a", "alice"),
        Context::new("project-b", "bob"),
    )
}

#[tokio::test]
async fn kv2_with_token() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let cfg = common::token_config(&env);
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn kv1_with_token() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let mut cfg = common::token_config(&env);
    cfg.kv_mountpoint = env.kv1_mount.clone();
    cfg.kv_version = 1;
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn kv2_with_approle_and_a_path_prefix() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let mut cfg = common::approle_config(&env, &env.addr);
    cfg.kv_path = Some("keymgr/approle".into());
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn kv1_with_approle() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let mut cfg = common::approle_config(&env, &env.addr);
    cfg.kv_mountpoint = env.kv1_mount.clone();
    cfg.kv_version = 1;
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn kv2_with_jwt_login_configured_by_castellan_names() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let (addr, role, file) = (&env.addr, &env.jwt.role, env.jwt.token_file.display());
    let cfg: VaultConfig = toml::from_str(&format!(
        "vault_url = \"{addr}\"\nauth_method = \"jwt\"\ntoken_role = \"{role}\"\n\
         token_file = \"{file}\"\nkv_mountpoint = \"secret\"\nkv_path = \"keymgr/jwt\"\n\
         kv_version = 2\ntimeout = 30"
    ))
    .unwrap();
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn create_key_with_transit_random_bytes() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let mut cfg = common::token_config(&env);
    cfg.transit_mountpoint = Some(env.transit_mount.clone());
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, _) = contexts();
    let mut seen = std::collections::BTreeSet::new();
    for bits in [128u32, 256, 512] {
        let id = km
            .create_key(&a, &keymgr_core::KeySpec::aes(bits))
            .await
            .unwrap();
        let s = km.get(&a, &id).await.unwrap();
        assert_eq!(s.payload.len() * 8, bits as usize);
        assert!(
            seen.insert(s.payload.expose().to_vec()),
            "repeated key bytes"
        );
        km.delete(&a, &id, false).await.unwrap();
    }
    // A Transit mount that does not exist is an error, not a silent fallback.
    let mut cfg = common::token_config(&env);
    cfg.transit_mountpoint = Some("no-such-transit".into());
    let km = VaultKeyManager::new(cfg).unwrap();
    let e = km
        .create_key(&a, &keymgr_core::KeySpec::aes(256))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            keymgr_core::ErrorKind::NotFound | keymgr_core::ErrorKind::InvalidInput
        ),
        "{e}"
    );
}

#[tokio::test]
async fn kv2_in_a_namespace() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    // OpenBao has namespaces: make one with its own KV v2 mount.
    let ns = format!("keymgr-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (st, _) = raw
        .call(
            reqwest::Method::POST,
            &format!("sys/namespaces/{ns}"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(st, 200, "create namespace");
    let resp = raw
        .http
        .post(format!("{}/v1/sys/mounts/secret", raw.addr))
        .header("X-Vault-Token", &raw.token)
        .header("X-Vault-Namespace", &ns)
        .json(&serde_json::json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "mount in namespace");
    let mut cfg = common::token_config(&env);
    cfg.namespace = Some(ns.clone());
    let km = VaultKeyManager::new(cfg).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
    // A record of the namespace is not in the root namespace's mount.
    let id = km
        .store(
            &a,
            keymgr_core::NewSecret::new(keymgr_core::SecretKind::Opaque, vec![5u8; 4]),
        )
        .await
        .unwrap();
    let root = VaultKeyManager::new(common::token_config(&env)).unwrap();
    let e = root.get(&a, &id).await.unwrap_err();
    assert_eq!(e.kind(), keymgr_core::ErrorKind::NotFound, "{e}");
    assert_eq!(km.get(&a, &id).await.unwrap().payload.expose(), &[5u8; 4]);
}

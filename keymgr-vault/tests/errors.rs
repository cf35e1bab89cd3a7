//! Errors from a real server map to the shared kinds.

mod common;

use keymgr_test_support::env::VaultEnv;

use keymgr_core::{Context, ErrorKind, KeyManager, KeySpec, SecretId};
use keymgr_vault::{VaultConfig, VaultKeyManager};
use reqwest::Method;

#[tokio::test]
async fn bad_token_is_unauthenticated_and_missing_is_not_found() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let ctx = Context::new("p", "u");
    let km = VaultKeyManager::new(VaultConfig::with_token(&env.addr, "not-a-token")).unwrap();
    let e = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains("not-a-token"));

    let km = VaultKeyManager::new(common::token_config(&env)).unwrap();
    let e = km.get(&ctx, &SecretId::new_random()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // A deleted (soft-deleted) latest version is NotFound too (the other 404 shape).
    let raw = common::Raw::new(&env);
    let id = km.create_key(&ctx, &KeySpec::aes(128)).await.unwrap();
    let (st, _) = raw
        .call(
            Method::DELETE,
            &format!("secret/data/{}", id.to_simple_uuid().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let e = km.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn a_token_without_rights_is_forbidden() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    // A valid token whose policy allows nothing on secret/.
    let (st, body) = raw
        .call(
            Method::POST,
            "auth/token/create",
            Some(serde_json::json!({"policies": ["default"], "ttl": "5m"})),
        )
        .await;
    assert_eq!(st, 200);
    let weak = body["auth"]["client_token"].as_str().unwrap().to_string();
    let km = VaultKeyManager::new(VaultConfig::with_token(&raw.addr, weak)).unwrap();
    let e = km
        .create_key(&Context::new("p", "u"), &KeySpec::aes(256))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
}

#[tokio::test]
async fn nothing_listening_is_unavailable_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = VaultConfig::with_token(format!("http://127.0.0.1:{port}"), "t");
    cfg.max_retries = 1;
    let km = VaultKeyManager::new(cfg).unwrap();
    let e = km
        .get(&Context::new("p", "u"), &SecretId::new_random())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
}

#[test]
fn config_errors_are_clear() {
    let parse = |t: &str| toml::from_str::<VaultConfig>(t);
    assert!(parse("bogus = 1").is_err());
    let c: VaultConfig = parse("vault_url = \"ftp://x\"\nroot_token_id = \"t\"").unwrap();
    let e = VaultKeyManager::new(c).unwrap_err();
    assert!(e.to_string().contains("vault_url"), "{e}");
    let c: VaultConfig = parse("kv_version = 3\nroot_token_id = \"t\"").unwrap();
    assert!(VaultKeyManager::new(c)
        .unwrap_err()
        .to_string()
        .contains("kv_version"));
    let c: VaultConfig = parse("").unwrap();
    assert!(VaultKeyManager::new(c)
        .unwrap_err()
        .to_string()
        .contains("approle_role_id"));
    let c: VaultConfig = parse("root_token_id = \"s3cr3t-tok\"").unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-tok"));
}

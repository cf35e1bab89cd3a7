//! https with a custom CA (`ssl_ca_crt_file`) against OpenBao's TLS dev server.

use keymgr_core::{Context, ErrorKind, KeyManager, NewSecret, SecretKind};
use keymgr_test_support::env::VaultEnv;
use keymgr_vault::{VaultConfig, VaultKeyManager};

#[tokio::test]
async fn a_custom_ca_is_trusted_and_an_unknown_one_is_not() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let (addr, ca, token) = (
        env.tls.addr.as_str(),
        env.tls.ca_file.display(),
        env.root_token.as_str(),
    );
    let ctx = Context::new("tls", "u");
    let cfg: VaultConfig = toml::from_str(&format!(
        "vault_url = \"{addr}\"\nssl_ca_crt_file = \"{ca}\"\nuse_ssl = true\ntimeout = 10"
    ))
    .map(|mut c: VaultConfig| {
        c.root_token_id = Some(token.to_string().into());
        c
    })
    .unwrap();
    let km = VaultKeyManager::new(cfg).unwrap();
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![7u8; 16]))
        .await
        .expect("store over https with the custom CA");
    assert_eq!(
        km.get(&ctx, &id).await.unwrap().payload.expose(),
        &[7u8; 16]
    );

    // Without the CA the server's certificate is refused: typed, no token in it.
    let mut cfg = VaultConfig::with_token(addr, token);
    cfg.max_retries = 0;
    let e = VaultKeyManager::new(cfg)
        .unwrap()
        .get(&ctx, &id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!e.to_string().contains(token));

    // verify_ssl = false (tests only) skips verification.
    let mut cfg = VaultConfig::with_token(addr, token);
    cfg.verify_ssl = false;
    let insecure = VaultKeyManager::new(cfg).unwrap();
    assert_eq!(
        insecure.get(&ctx, &id).await.unwrap().payload.expose(),
        &[7u8; 16]
    );

    // A CA file that is not PEM is a configuration error.
    let bad = std::env::temp_dir().join(format!("not-a-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut cfg = VaultConfig::with_token(addr, token);
    cfg.ssl_ca_crt_file = Some(bad.clone());
    let e = VaultKeyManager::new(cfg).unwrap_err();
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("ssl_ca_crt_file"), "{e}");
    km.delete(&ctx, &id, false).await.unwrap();
}

//! Configuration and credential failures are typed and name what was
//! wrong, never a key's bytes.

mod common;

use keymgr_core::{Context, ErrorKind, KeyManager, KeySpec};
use keymgr_kmip::{KmipConfig, KmipKeyManager};

#[test]
fn missing_or_bad_files_are_config_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let e = KmipKeyManager::new(KmipConfig::new("127.0.0.1", &missing, &missing, &missing))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("nope.pem"), "{e}");

    let Some(good) = common::config() else {
        return;
    };
    let junk = dir.path().join("junk.key");
    std::fs::write(&junk, "not a key: s3cret-bytes\n").unwrap();
    let mut cfg = good.clone();
    cfg.keyfile = junk;
    let e = KmipKeyManager::new(cfg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("keyfile"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(
        !format!("{good:?}").contains("BEGIN"),
        "Debug shows paths only"
    );
}

#[tokio::test]
async fn a_certificate_without_client_auth_is_refused_with_a_typed_error() {
    let Some(mut cfg) = common::config() else {
        return;
    };
    // The server's own certificate: signed by the same CA, but its
    // extendedKeyUsage is serverAuth only.
    let pki = cfg.certfile.parent().unwrap().to_path_buf();
    cfg.certfile = pki.join("server.crt");
    cfg.keyfile = pki.join("server.key");
    cfg.timeout = 5.0;
    cfg.kmip_version = Some("1.4".into());
    let km = KmipKeyManager::new(cfg).unwrap();
    let e = km
        .create_key(&Context::new("p", "u"), &KeySpec::aes(256))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("client certificate"), "{e}");
}

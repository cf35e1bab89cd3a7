//! No secret reaches `Debug`, `Display` or error text of the public types
//! that carry one: payloads, secrets, new secrets, passphrases, contexts with
//! a user token, LUKS volume keys and unlock requests, master keys, and the
//! facade's configuration (passwords, tokens, AppRole and application
//! credential secrets).

use keymgr::passphrase::{legacy_passphrase, passphrase_for};
use keymgr::{Config, Context, NewSecret, Payload, SecretKind};
use tests::assert_no_secret;

const KEY: &[u8] = b"\x8e\x13super-secret-key-bytes\x00\xff-0123456789";
const PASS: &[u8] = b"correct-horse-battery-staple-42";
const TOKEN: &str = "gAAAAABtoken-never-printed-0123456789";

fn check(text: &str, what: &str) {
    assert_no_secret(text, KEY, what);
    assert_no_secret(text, PASS, what);
    assert_no_secret(text, TOKEN.as_bytes(), what);
}

#[test]
fn secret_carrying_core_types_redact_debug_and_display() {
    let payload = Payload::copy_from(KEY);
    check(&format!("{payload:?} {payload:#?}"), "Payload Debug");
    let ns = NewSecret::new(SecretKind::Symmetric, KEY.to_vec()).named("n");
    check(&format!("{ns:?} {ns:#?}"), "NewSecret Debug");
    let pass = passphrase_for(SecretKind::Symmetric, &payload).unwrap();
    check(&format!("{pass:?}"), "Passphrase Debug");
    // The os-brick passphrase of KEY is its hex: that form must not show either.
    assert!(!format!("{pass:?}").contains(&hex::encode(KEY)));
    let legacy = legacy_passphrase(&payload);
    check(&format!("{legacy:?}"), "legacy Passphrase Debug");
    let pp = NewSecret::new(SecretKind::Passphrase, PASS.to_vec());
    check(&format!("{pp:?}"), "passphrase NewSecret Debug");
    let ctx = Context::new("p", "u").with_user_token(TOKEN);
    check(&format!("{ctx:?} {ctx:#?}"), "Context Debug");
    // Errors of validation name the problem, not the bytes.
    let bad = NewSecret::new(
        SecretKind::Passphrase,
        b"\xff\xfenot-utf8-secret-bytes".to_vec(),
    );
    if let Err(e) = bad.validate() {
        let t = format!("{e} {e:?}");
        assert_no_secret(
            &t,
            b"\xff\xfenot-utf8-secret-bytes",
            "NewSecret::validate error",
        );
    }
    let e = passphrase_for(
        SecretKind::Passphrase,
        &Payload::copy_from(b"\xffbad-utf8-passphrase-bytes"),
    )
    .unwrap_err();
    assert_no_secret(
        &format!("{e} {e:?}"),
        b"\xffbad-utf8-passphrase-bytes",
        "passphrase_for error",
    );
}

#[tokio::test]
async fn secrets_read_back_redact_debug() {
    let km = keymgr_mock_backend();
    let ctx = Context::new("p", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Symmetric, KEY.to_vec()))
        .await
        .unwrap();
    let s = km.get(&ctx, &id).await.unwrap();
    assert_eq!(s.payload.expose(), KEY);
    check(&format!("{s:?} {s:#?}"), "Secret Debug");
}

fn keymgr_mock_backend() -> std::sync::Arc<dyn keymgr::KeyManager> {
    keymgr::build(&Config::new(keymgr::BackendKind::Mock)).unwrap()
}

#[test]
fn luks_volume_keys_and_unlock_requests_redact_debug() {
    let vk = luks::VolumeKey::new(KEY.to_vec());
    check(&format!("{vk:?}"), "VolumeKey Debug");
    let u = luks::Unlock::Passphrase {
        passphrase: PASS,
        slot: None,
    };
    check(&format!("{u:?}"), "Unlock Debug");
    // A wrong passphrase's error does not echo it.
    let dir = tempfile::tempdir().unwrap();
    let img = tests::small_luks2_volume(dir.path(), b"right-passphrase-x");
    let v = luks::Volume::open(&img).unwrap();
    let Err(e) = v.unlock(PASS, None) else {
        panic!("a wrong passphrase must fail");
    };
    check(&format!("{e} {e:?}"), "luks unlock error");
    let u = v.unlock(b"right-passphrase-x", None).unwrap();
    assert_no_secret(
        &format!("{:?}", v.dump()),
        b"right-passphrase-x",
        "luks dump",
    );
    drop(u);
}

#[test]
fn master_keys_redact_debug() {
    let mk = keymgr_mock::MasterKey::from_bytes([0x5au8; 32]);
    check(&format!("{mk:?}"), "MasterKey Debug");
    assert!(!format!("{mk:?}").contains(&hex::encode([0x5au8; 32])));
}

/// `keymgr::Config` holds the backend section as TOML, credentials included.
#[test]
fn facade_config_debug_hides_credentials() {
    let text = format!(
        "backend = \"barbican\"\n[barbican]\nauth_endpoint = \"http://k/v3\"\nusername = \"u\"\npassword = \"{}\"\ntoken = \"{TOKEN}\"\napplication_credential_secret = \"{}\"\n",
        std::str::from_utf8(PASS).unwrap(),
        "appcred-secret-never-printed-77"
    );
    let c = Config::from_toml_str(&text).unwrap();
    let dbg = format!("{c:?} {c:#?}");
    check(&dbg, "keymgr::Config Debug");
    assert_no_secret(
        &dbg,
        b"appcred-secret-never-printed-77",
        "keymgr::Config Debug",
    );
    let v = Config::from_toml_str(&format!(
        "backend = \"vault\"\n[vault]\nvault_url = \"http://v\"\nroot_token_id = \"{TOKEN}\"\napprole_secret_id = \"approle-secret-id-never-printed\"\n"
    ))
    .unwrap();
    let dbg = format!("{v:?}");
    check(&dbg, "keymgr::Config Debug (vault)");
    assert_no_secret(
        &dbg,
        b"approle-secret-id-never-printed",
        "keymgr::Config Debug (vault)",
    );
}

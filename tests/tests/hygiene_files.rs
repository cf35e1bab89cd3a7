//! Files holding keys are created with mode 0600: the embedded backend's
//! sealed store and its key file, and LUKS header backups (which hold every
//! keyslot's encrypted volume key).

use std::os::unix::fs::PermissionsExt;

use keymgr::{Config, Context, NewSecret, SecretKind};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Shows the umask lets a plain file be read by others, so a 0600 mode below
/// is the library's choice, not the umask's.
fn plain_file_is_world_readable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("probe");
    std::fs::write(&p, b"x").unwrap();
    if mode(&p) & 0o044 == 0 {
        eprintln!("note: the umask already hides new files from others; these checks tell less");
    }
}

#[tokio::test]
async fn sealed_store_and_key_file_are_0600() {
    plain_file_is_world_readable();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.sealed");
    let key = dir.path().join("store.key");
    let mut c = Config::new(keymgr::BackendKind::Mock);
    c.section.insert(
        "path".into(),
        toml::Value::String(store.to_string_lossy().into()),
    );
    c.section.insert(
        "key_file".into(),
        toml::Value::String(key.to_string_lossy().into()),
    );
    let km = keymgr::build(&c).unwrap();
    let ctx = Context::new("p", "u");
    km.store(&ctx, NewSecret::new(SecretKind::Symmetric, vec![7u8; 32]))
        .await
        .unwrap();
    assert!(store.exists(), "the sealed store was not written");
    assert_eq!(mode(&store), 0o600, "sealed store mode");
    if key.exists() {
        assert_eq!(mode(&key), 0o600, "key file mode");
    }
    // A second write (temp file + rename) keeps the mode.
    km.store(&ctx, NewSecret::new(SecretKind::Opaque, vec![1u8; 8]))
        .await
        .unwrap();
    assert_eq!(mode(&store), 0o600, "sealed store mode after a rewrite");
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && std::fs::metadata(&p).unwrap().len() > 0 {
            assert_eq!(mode(&p), 0o600, "{} holds key material", p.display());
        }
    }
}

#[test]
fn new_master_key_file_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    let mk = keymgr_mock::MasterKey::generate().unwrap();
    mk.write_new_key_file(&key).unwrap();
    assert_eq!(mode(&key), 0o600, "master key file mode");
    let key2 = dir.path().join("auto.key");
    keymgr_mock::MasterKey::load_or_create_key_file(&key2).unwrap();
    assert_eq!(mode(&key2), 0o600, "auto-created key file mode");
}

#[test]
fn luks_header_backup_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let img = tests::small_luks2_volume(dir.path(), b"pass");
    let b = dir.path().join("hdr.backup");
    luks::Volume::open(&img).unwrap().backup_header(&b).unwrap();
    assert_eq!(mode(&b), 0o600, "header backup mode");
}

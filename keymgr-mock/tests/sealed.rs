//! The sealed file: persistence, permissions, damage, wrong keys, config,
//! and two processes writing at once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keymgr_core::{
    Consumer, Context, ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, OffsetDateTime,
    SecretKind,
};
use keymgr_mock::{
    default_key_file_for, default_store_path, Argon2Params, MasterKey, MockConfig, MockKeyManager,
    SealedError,
};
use proptest::prelude::*;
use sha2::Digest;

const TINY: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};
const HEADER_LEN: usize = 132;

fn ctx_a() -> Context {
    Context::new("project-a", "alice")
}

fn ctx_b() -> Context {
    Context::new("project-b", "bob")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A store with a few secrets of both projects; returns (dir, store path, key file).
fn populated() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s").join("store.sealed");
    let key = dir.path().join("s").join("store.key");
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_or_create_key_file(&key).unwrap())
        .unwrap();
    rt().block_on(async {
        let a = ctx_a();
        let id = km
            .store(
                &a,
                NewSecret::new(SecretKind::Symmetric, vec![0xa5; 32]).named("vol"),
            )
            .await
            .unwrap();
        km.add_consumer(&a, &id, &Consumer::new("cinder", "volume", "v-1"))
            .await
            .unwrap();
        km.store(
            &ctx_b(),
            NewSecret::new(SecretKind::Passphrase, b"hunter2".to_vec()),
        )
        .await
        .unwrap();
        km.create_key(&a, &KeySpec::aes(512).named("xts"))
            .await
            .unwrap();
    });
    (dir, path, key)
}

fn open_err(path: &Path, master: MasterKey) -> SealedError {
    match MockKeyManager::open_sealed(path, master) {
        Ok(_) => panic!("opening {} succeeded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn data_persists_across_reopen_with_metadata_and_order() {
    let (_dir, path, key) = populated();
    let (before, after) = rt().block_on(async {
        let km1 =
            MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
        let before = km1.list_all(&ctx_a(), &ListQuery::all()).await.unwrap();
        drop(km1);
        let km2 =
            MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
        let after = km2.list_all(&ctx_a(), &ListQuery::all()).await.unwrap();
        let s = km2.get(&ctx_a(), &after[0].id).await.unwrap();
        assert_eq!(s.payload.expose(), &[0xa5; 32]);
        let x = km2.get(&ctx_a(), &after[1].id).await.unwrap();
        assert_eq!(x.payload.len(), 64);
        assert_eq!(x.metadata.bit_length, Some(512));
        let b = km2.list_all(&ctx_b(), &ListQuery::all()).await.unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(
            km2.get(&ctx_b(), &b[0].id).await.unwrap().payload.expose(),
            b"hunter2"
        );
        (before, after)
    });
    assert_eq!(before.len(), 2);
    assert_eq!(
        before, after,
        "metadata (ids, order, created, consumers) survives"
    );
    assert_eq!(after[0].name.as_deref(), Some("vol"));
    assert_eq!(after[1].name.as_deref(), Some("xts"));
    assert_eq!(
        after[0].consumers,
        vec![Consumer::new("cinder", "volume", "v-1")]
    );
    assert!(after[0].created.is_some());
}

#[test]
fn files_are_private_and_no_temporary_files_remain() {
    let (dir, path, key) = populated();
    assert_eq!(mode_of(&path), 0o600, "store file mode");
    assert_eq!(mode_of(&key), 0o600, "key file mode");
    let mut lock = path.clone().into_os_string();
    lock.push(".lock");
    assert_eq!(mode_of(Path::new(&lock)), 0o600, "lock file mode");
    assert_eq!(
        mode_of(&dir.path().join("s")),
        0o700,
        "created directory mode"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".tmp.")),
        "temporary files left behind: {names:?}"
    );
    // The store is replaced by renaming the temporary file, so the mode the
    // store has after many writes is the temporary file's mode.
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    rt().block_on(async {
        for i in 0..5u8 {
            km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, vec![i + 1]))
                .await
                .unwrap();
            assert_eq!(mode_of(&path), 0o600, "store file mode after write {i}");
        }
    });
}

#[test]
fn the_file_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([1u8; 32])).unwrap();
    let marker = b"PLAINTEXT-MARKER-0123456789".to_vec();
    rt().block_on(async {
        km.store(
            &ctx_a(),
            NewSecret::new(SecretKind::Opaque, marker.clone()).named("NAME-MARKER"),
        )
        .await
        .unwrap();
    });
    let bytes = std::fs::read(&path).unwrap();
    for needle in [&marker[..], b"NAME-MARKER"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{:?} found in the file",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn every_header_byte_flip_is_a_typed_error_not_a_wrong_key_and_the_file_is_unchanged() {
    let (_dir, path, key) = populated();
    let good = std::fs::read(&path).unwrap();
    for i in 0..HEADER_LEN {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let e = open_err(&path, MasterKey::load_key_file(&key).unwrap());
        assert!(
            matches!(
                e,
                SealedError::Corrupt { .. }
                    | SealedError::NotASealedStore { .. }
                    | SealedError::UnsupportedVersion { .. }
            ),
            "header byte {i}: {e}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "header byte {i}: file changed"
        );
        let core: keymgr_core::Error = e.into();
        assert_eq!(core.kind(), ErrorKind::Config, "header byte {i}");
    }
    std::fs::write(&path, &good).unwrap();
    MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap())
        .expect("the restored file opens");
}

#[test]
fn every_entry_and_trailer_byte_flip_is_corruption_and_the_file_is_unchanged() {
    let (_dir, path, key) = populated();
    let good = std::fs::read(&path).unwrap();
    let master = MasterKey::load_key_file(&key).unwrap();
    let bytes32: [u8; 32] = std::fs::read(&key).unwrap().try_into().unwrap();
    drop(master);
    for i in HEADER_LEN..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let e = open_err(&path, MasterKey::from_bytes(bytes32));
        assert!(matches!(e, SealedError::Corrupt { .. }), "byte {i}: {e}");
        assert_eq!(std::fs::read(&path).unwrap(), bad, "byte {i}: file changed");
    }
}

#[test]
fn truncation_at_every_point_is_reported_as_truncation_and_the_file_is_unchanged() {
    let (_dir, path, key) = populated();
    let good = std::fs::read(&path).unwrap();
    let bytes32: [u8; 32] = std::fs::read(&key).unwrap().try_into().unwrap();
    for cut in 0..good.len() {
        std::fs::write(&path, &good[..cut]).unwrap();
        let e = open_err(&path, MasterKey::from_bytes(bytes32));
        match &e {
            SealedError::Truncated {
                expected, actual, ..
            } => {
                assert_eq!(*actual, cut as u64);
                if cut >= HEADER_LEN {
                    assert_eq!(*expected, Some(good.len() as u64), "cut {cut}");
                }
            }
            other => panic!("cut at {cut}: expected Truncated, got {other}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &good[..cut],
            "cut {cut}: file changed"
        );
    }
    let mut longer = good.clone();
    longer.extend_from_slice(b"junk");
    std::fs::write(&path, &longer).unwrap();
    assert!(matches!(
        open_err(&path, MasterKey::from_bytes(bytes32)),
        SealedError::Corrupt { .. }
    ));
}

#[test]
fn a_wrong_key_file_is_wrong_key_not_corruption_and_the_file_is_unchanged() {
    let (dir, path, _key) = populated();
    let good = std::fs::read(&path).unwrap();
    let other_key = dir.path().join("other.key");
    let e = open_err(
        &path,
        MasterKey::load_or_create_key_file(&other_key).unwrap(),
    );
    assert!(matches!(e, SealedError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("key file"), "{e}");
    let core: keymgr_core::Error = e.into();
    assert_eq!(core.kind(), ErrorKind::Unauthenticated);
    let e = open_err(&path, MasterKey::from_passphrase("pw").unwrap());
    assert!(matches!(e, SealedError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("sealed with a key file"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn a_wrong_passphrase_is_wrong_key_and_the_right_one_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let pass = |p: &str| {
        MasterKey::from_passphrase(p)
            .unwrap()
            .with_argon2_params(TINY)
            .unwrap()
    };
    {
        let km = MockKeyManager::open_sealed(&path, pass("right one")).unwrap();
        rt().block_on(async {
            km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, b"x".to_vec()))
                .await
                .unwrap();
        });
    }
    let good = std::fs::read(&path).unwrap();
    let e = open_err(&path, pass("wrong one"));
    assert!(matches!(e, SealedError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("passphrase"), "{e}");
    let e = open_err(&path, MasterKey::from_bytes([0u8; 32]));
    assert!(matches!(e, SealedError::WrongKey { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), good);
    // The header's costs are used, not the caller's.
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_passphrase("right one").unwrap())
        .unwrap();
    let n = rt()
        .block_on(km.list_all(&ctx_a(), &ListQuery::all()))
        .unwrap()
        .len();
    assert_eq!(n, 1);
    assert!(MasterKey::from_passphrase("").is_err());
}

/// Rewrites the header's Argon2 costs and fixes the header checksum, as a
/// hostile file would.
fn with_costs(good: &[u8], m: u32, t: u32, p: u32) -> Vec<u8> {
    let mut b = good.to_vec();
    b[12..16].copy_from_slice(&m.to_le_bytes());
    b[16..20].copy_from_slice(&t.to_le_bytes());
    b[20..24].copy_from_slice(&p.to_le_bytes());
    let sum = sha2::Sha256::digest(&b[..100]);
    b[100..132].copy_from_slice(&sum);
    b
}

#[test]
fn out_of_bounds_kdf_costs_are_refused_before_deriving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let master = || {
        MasterKey::from_passphrase("pw")
            .unwrap()
            .with_argon2_params(TINY)
            .unwrap()
    };
    drop(MockKeyManager::open_sealed(&path, master()).unwrap());
    let good = std::fs::read(&path).unwrap();
    for (m, t, p) in [
        (u32::MAX, 1, 1),
        ((1 << 20) + 1, 1, 1),
        (64, 0, 1),
        (64, 1000, 1),
        (64, 1, 0),
        (64, 1, 17),
        (4, 1, 1),
    ] {
        let bad = with_costs(&good, m, t, p);
        std::fs::write(&path, &bad).unwrap();
        let started = std::time::Instant::now();
        let e = open_err(&path, master());
        assert!(
            matches!(e, SealedError::KdfParams { .. }),
            "({m},{t},{p}): {e}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
    // In bounds but different from the ones the key was made with: the
    // key check fails as a wrong key would, without touching the file.
    let bad = with_costs(&good, 128, 1, 1);
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        open_err(&path, master()),
        SealedError::WrongKey { .. }
    ));
    assert_eq!(std::fs::read(&path).unwrap(), bad);
}

#[test]
fn bad_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 31, 33, 64] {
        let p = dir.path().join(format!("k{len}"));
        std::fs::write(&p, vec![1u8; len]).unwrap();
        let e = MasterKey::load_key_file(&p).unwrap_err();
        assert!(matches!(e, SealedError::KeyFile { .. }), "{len}: {e}");
        let e = MasterKey::load_or_create_key_file(&p).unwrap_err();
        assert!(matches!(e, SealedError::KeyFile { .. }), "{len}: {e}");
        assert_eq!(
            std::fs::read(&p).unwrap().len(),
            len,
            "key file {len} changed"
        );
    }
    let e = MasterKey::load_key_file(dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, SealedError::Io { .. }), "{e}");
    let created = dir.path().join("new").join("k");
    let k1 = MasterKey::load_or_create_key_file(&created).unwrap();
    let bytes = std::fs::read(&created).unwrap();
    assert_eq!(bytes.len(), 32);
    assert_eq!(mode_of(&created), 0o600);
    assert!(bytes.iter().any(|b| *b != 0));
    let _k2 = MasterKey::load_or_create_key_file(&created).unwrap();
    assert_eq!(
        std::fs::read(&created).unwrap(),
        bytes,
        "an existing key file is kept"
    );
    assert_eq!(format!("{k1:?}"), "MasterKey(key, [REDACTED])");
}

#[test]
fn an_open_manager_refuses_to_write_over_a_file_damaged_under_it() {
    let (_dir, path, key) = populated();
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    rt().block_on(async {
        let e = km
            .store(
                &ctx_a(),
                NewSecret::new(SecretKind::Opaque, b"new".to_vec()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("corrupt"), "{e}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "damaged file overwritten"
        );
        let e = km.list(&ctx_a(), &ListQuery::all()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        // Truncated under it: same.
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        let e = km
            .create_key(&ctx_a(), &KeySpec::aes(256))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), &good[..good.len() / 2]);
        // Restored: works again, and nothing of the refused calls happened.
        std::fs::write(&path, &good).unwrap();
        let all = km.list_all(&ctx_a(), &ListQuery::all()).await.unwrap();
        assert_eq!(all.len(), 2);
        km.store(
            &ctx_a(),
            NewSecret::new(SecretKind::Opaque, b"new".to_vec()),
        )
        .await
        .unwrap();
        assert_eq!(
            km.list_all(&ctx_a(), &ListQuery::all())
                .await
                .unwrap()
                .len(),
            3
        );
    });
}

#[test]
fn a_file_replaced_by_another_store_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let other = dir.path().join("other.sealed");
    let k = [3u8; 32];
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes(k)).unwrap();
    let km_other = MockKeyManager::open_sealed(&other, MasterKey::from_bytes(k)).unwrap();
    rt().block_on(async {
        km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, b"1".to_vec()))
            .await
            .unwrap();
        for _ in 0..3 {
            km_other
                .store(&ctx_a(), NewSecret::new(SecretKind::Opaque, b"2".to_vec()))
                .await
                .unwrap();
        }
        std::fs::copy(&other, &path).unwrap();
        assert_eq!(
            km.list_all(&ctx_a(), &ListQuery::all())
                .await
                .unwrap()
                .len(),
            3
        );
    });
}

#[test]
fn expired_secrets_are_not_found_and_dropped_at_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([2u8; 32])).unwrap();
    rt().block_on(async {
        let a = ctx_a();
        let mut ns = NewSecret::new(SecretKind::Opaque, b"short-lived".to_vec()).named("exp");
        let exp = OffsetDateTime::now_utc() + Duration::from_millis(800);
        ns.expiration = Some(exp);
        let id = km.store(&a, ns).await.unwrap();
        let keep = km
            .store(&a, NewSecret::new(SecretKind::Opaque, b"kept".to_vec()))
            .await
            .unwrap();
        let m = km.metadata(&a, &id).await;
        if OffsetDateTime::now_utc() < exp {
            assert_eq!(m.unwrap().expiration, Some(exp));
        } else {
            eprintln!(
                "this machine took longer than the secret's lifetime; before-expiry check skipped"
            );
        }
        let len_before = std::fs::metadata(&path).unwrap().len();
        let wait = exp - OffsetDateTime::now_utc() + Duration::from_millis(50);
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
        assert_eq!(
            km.get(&a, &id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            km.metadata(&a, &id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            km.delete(&a, &id, true).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let listed = km.list_all(&a, &ListQuery::all()).await.unwrap();
        assert_eq!(
            listed.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            vec![keep.clone()]
        );
        km.add_consumer(&a, &keep, &Consumer::new("s", "t", "r"))
            .await
            .unwrap();
        assert!(
            std::fs::metadata(&path).unwrap().len() < len_before + 20,
            "the expired entry is still in the file"
        );
        let mut past = NewSecret::new(SecretKind::Opaque, b"x".to_vec());
        past.expiration = Some(OffsetDateTime::now_utc() - Duration::from_secs(1));
        assert_eq!(
            km.store(&a, past).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    });
}

#[test]
fn debug_output_never_shows_payloads_or_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let key = [0x5au8; 32];
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes(key)).unwrap();
    let mem = MockKeyManager::new();
    let secret = b"TOP-SECRET-PAYLOAD".to_vec();
    rt().block_on(async {
        km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, secret.clone()))
            .await
            .unwrap();
        mem.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, secret.clone()))
            .await
            .unwrap();
    });
    for dbg in [
        format!("{km:?}"),
        format!("{km:#?}"),
        format!("{mem:?}"),
        format!("{:?}", MasterKey::from_bytes(key)),
        format!(
            "{:?}",
            MasterKey::from_passphrase("TOP-SECRET-PASS").unwrap()
        ),
    ] {
        assert!(!dbg.contains("TOP-SECRET"), "{dbg}");
        assert!(
            !dbg.contains("90, 90") && !dbg.to_lowercase().contains("5a5a"),
            "{dbg}"
        );
    }
    assert!(format!("{km:?}").contains("store.sealed"));
}

#[test]
fn config_memory_default_key_file_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    // Memory only.
    let km = MockKeyManager::from_config(&MockConfig::default()).unwrap();
    assert!(km.path().is_none());
    let e = MockKeyManager::from_config(&MockConfig {
        key_file: Some(dir.path().join("k")),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);

    // Path only: the key file beside it is created, 0600.
    let path = dir.path().join("data").join("store.sealed");
    let cfg: MockConfig = toml::from_str(&format!("path = {:?}", path.to_str().unwrap())).unwrap();
    let km = MockKeyManager::from_config(&cfg).unwrap();
    let key = default_key_file_for(&path);
    assert_eq!(key, dir.path().join("data").join("store.sealed.key"));
    assert_eq!(mode_of(&key), 0o600);
    let id = rt
        .block_on(km.create_key(&ctx_a(), &KeySpec::aes(256)))
        .unwrap();
    drop(km);
    let km = MockKeyManager::from_config(&cfg).unwrap();
    rt.block_on(km.get(&ctx_a(), &id)).unwrap();
    drop(km);

    // The store exists but its key file is gone: an error, nothing created.
    let moved = dir.path().join("moved.key");
    std::fs::rename(&key, &moved).unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = MockKeyManager::from_config(&cfg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        !key.exists(),
        "a new key file was created for an existing store"
    );
    // Another key: Unauthenticated, file unchanged.
    let e = MockKeyManager::from_config(&MockConfig {
        key_file: Some(dir.path().join("fresh.key")),
        ..cfg.clone()
    });
    let e = e.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Config,
        "missing explicit key file for an existing store: {e}"
    );
    MasterKey::load_or_create_key_file(dir.path().join("fresh.key")).unwrap();
    let e = MockKeyManager::from_config(&MockConfig {
        key_file: Some(dir.path().join("fresh.key")),
        ..cfg.clone()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let km = MockKeyManager::from_config(&MockConfig {
        key_file: Some(moved),
        ..cfg.clone()
    })
    .unwrap();
    rt.block_on(km.get(&ctx_a(), &id)).unwrap();

    // Both kinds of key, unknown fields, unset passphrase variable.
    let e = MockKeyManager::from_config(&MockConfig {
        passphrase_env: Some("X".into()),
        key_file: Some(dir.path().join("k")),
        ..cfg.clone()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(toml::from_str::<MockConfig>("pth = \"/x\"").is_err());
    let e = MockKeyManager::from_config(&MockConfig {
        path: Some(dir.path().join("p.sealed")),
        passphrase_env: Some("KEYMGR_MOCK_TEST_SURELY_UNSET_VAR".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string().contains("KEYMGR_MOCK_TEST_SURELY_UNSET_VAR"),
        "{e}"
    );
    assert!(!dir.path().join("p.sealed").exists());
}

#[test]
fn config_passphrase_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sealed");
    // SAFETY-free: set_var is safe in edition 2021; this variable is unique to this test.
    std::env::set_var("KEYMGR_MOCK_TEST_PASSPHRASE", "env pass phrase");
    let cfg: MockConfig = toml::from_str(&format!(
        "path = {:?}\npassphrase_env = \"KEYMGR_MOCK_TEST_PASSPHRASE\"\nargon2_memory_kib = 64\nargon2_iterations = 1\n",
        path.to_str().unwrap()
    ))
    .unwrap();
    let km = MockKeyManager::from_config(&cfg).unwrap();
    let id = rt()
        .block_on(km.store(
            &ctx_a(),
            NewSecret::new(SecretKind::Passphrase, b"p".to_vec()),
        ))
        .unwrap();
    drop(km);
    let km = MockKeyManager::from_config(&cfg).unwrap();
    assert_eq!(
        rt().block_on(km.get(&ctx_a(), &id))
            .unwrap()
            .payload
            .expose(),
        b"p"
    );
    let e = MockKeyManager::open_sealed(&path, MasterKey::from_passphrase("nope").unwrap())
        .unwrap_err();
    assert!(matches!(e, SealedError::WrongKey { .. }));
    let e = keymgr_core::Error::from(e);
    assert!(!e.to_string().contains("env pass phrase"));
}

#[test]
fn default_store_path_is_under_the_user_data_dir() {
    if let Some(p) = default_store_path() {
        assert!(p.ends_with("keymgr/store.sealed"), "{}", p.display());
        assert!(default_key_file_for(&p).ends_with("keymgr/store.sealed.key"));
    } else {
        eprintln!("no user data directory on this machine; nothing to check");
    }
}

#[test]
fn threads_with_separate_managers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    drop(MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let km =
                    MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap();
                rt().block_on(async {
                    for i in 0..10 {
                        km.store(
                            &ctx_a(),
                            NewSecret::new(SecretKind::Opaque, vec![t as u8, i as u8])
                                .named(format!("t{t}-{i}")),
                        )
                        .await
                        .unwrap();
                    }
                })
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap();
    let all = rt()
        .block_on(km.list_all(&ctx_a(), &ListQuery::all()))
        .unwrap();
    assert_eq!(all.len(), 40);
}

const CHILD_ENV: &str = "KEYMGR_MOCK_TEST_CHILD";
const CHILD_N: usize = 40;

/// Not a test of its own: the body of a child process of
/// `two_processes_writing_at_once_lose_nothing` (does nothing otherwise).
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(4, '|');
    let (path, key, tag, go) = (
        PathBuf::from(parts.next().unwrap()),
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap().to_string(),
        PathBuf::from(parts.next().unwrap()),
    );
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "start signal never came"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    rt().block_on(async {
        for i in 0..CHILD_N {
            let a = ctx_a();
            let id = km
                .store(
                    &a,
                    NewSecret::new(SecretKind::Opaque, format!("{tag}:{i}").into_bytes())
                        .named(format!("{tag}-{i}")),
                )
                .await
                .unwrap();
            if i % 4 == 0 {
                km.add_consumer(&a, &id, &Consumer::new("svc", "res", &tag))
                    .await
                    .unwrap();
            }
        }
    });
}

#[test]
fn two_processes_writing_at_once_lose_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let key = dir.path().join("store.key");
    let go = dir.path().join("go");
    drop(
        MockKeyManager::open_sealed(&path, MasterKey::load_or_create_key_file(&key).unwrap())
            .unwrap(),
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|tag| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env(
                    CHILD_ENV,
                    format!(
                        "{}|{}|{tag}|{}",
                        path.display(),
                        key.display(),
                        go.display()
                    ),
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&go, b"go").unwrap();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child did not run child_writer: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    rt().block_on(async {
        let a = ctx_a();
        let all = km.list_all(&a, &ListQuery::all()).await.unwrap();
        assert_eq!(all.len(), 2 * CHILD_N, "secrets lost between two processes");
        for tag in ["p1", "p2"] {
            for i in 0..CHILD_N {
                let name = format!("{tag}-{i}");
                let m = all
                    .iter()
                    .find(|m| m.name.as_deref() == Some(name.as_str()))
                    .unwrap_or_else(|| panic!("{name} lost"));
                let s = km.get(&a, &m.id).await.unwrap();
                assert_eq!(s.payload.expose(), format!("{tag}:{i}").as_bytes());
                assert_eq!(
                    m.consumers.len(),
                    usize::from(i % 4 == 0),
                    "{name} consumers"
                );
            }
        }
        // Each process's secrets are in its own creation order.
        for tag in ["p1", "p2"] {
            let order: Vec<usize> = all
                .iter()
                .filter_map(|m| {
                    m.name
                        .as_deref()?
                        .strip_prefix(&format!("{tag}-"))?
                        .parse()
                        .ok()
                })
                .collect();
            assert_eq!(order, (0..CHILD_N).collect::<Vec<_>>());
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random damage to a real file, opened through the public API: never
    /// a panic, never accepted, never rewritten.
    #[test]
    fn damaged_files_never_open_and_are_never_rewritten(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sealed");
        let key = [4u8; 32];
        {
            let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes(key)).unwrap();
            rt().block_on(async {
                km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, b"abc".to_vec()).named("n")).await.unwrap();
                km.store(&ctx_b(), NewSecret::new(SecretKind::Symmetric, vec![1u8; 16])).await.unwrap();
            });
        }
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        for (at, v) in edits {
            let i = at % bad.len();
            bad[i] = v;
        }
        if let Some(c) = cut {
            bad.truncate(c % (bad.len() + 1));
        }
        prop_assume!(bad != good);
        std::fs::write(&path, &bad).unwrap();
        let res = MockKeyManager::open_sealed(&path, MasterKey::from_bytes(key));
        prop_assert!(res.is_err());
        prop_assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
}

#[test]
fn stale_temporary_files_are_removed_at_open_and_a_vanished_store_is_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    drop(MockKeyManager::open_sealed(&path, MasterKey::from_bytes([6u8; 32])).unwrap());
    let stale = dir.path().join(".store.sealed.tmp.999999.deadbeef0000");
    let unrelated = dir.path().join(".other.tmp.1.x");
    std::fs::write(&stale, b"half written").unwrap();
    std::fs::write(&unrelated, b"not ours").unwrap();
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([6u8; 32])).unwrap();
    assert!(!stale.exists(), "stale temporary file kept");
    assert!(unrelated.exists(), "someone else's file removed");

    std::fs::remove_file(&path).unwrap();
    rt().block_on(async {
        let e = km.list(&ctx_a(), &ListQuery::all()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        let e = km
            .store(&ctx_a(), NewSecret::new(SecretKind::Opaque, b"x".to_vec()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    });
    assert!(!path.exists(), "a vanished store was silently recreated");
}

//! The store file: persistence, permissions, damage, tampering, wrong
//! keys, config, kill -9 during writes, and many threads and processes
//! writing at once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keymgr_core::{
    Consumer, Context, ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, OffsetDateTime,
    SecretKind,
};
use keymgr_mock::{
    default_key_file_for, Argon2Params, MasterKey, MockConfig, MockKeyManager, SealedError,
};

const TINY: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

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
    // The file and SQLite's companions (-wal, -shm) stay private while
    // the store is written.
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    rt().block_on(async {
        for i in 0..5u8 {
            km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, vec![i + 1]))
                .await
                .unwrap();
            assert_eq!(mode_of(&path), 0o600, "store file mode after write {i}");
            for suffix in ["-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let p = PathBuf::from(p);
                if p.exists() {
                    assert_eq!(mode_of(&p), 0o600, "{suffix} mode after write {i}");
                }
            }
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

fn sql(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn truncated_foreign_and_damaged_files_are_refused_with_typed_errors_and_left_untouched() {
    let (dir, path, key) = populated();
    let good = std::fs::read(&path).unwrap();
    assert!(good.len() >= 4096 * 3, "a store of several pages");
    for cut in [1usize, 15, 99, 100, 4095, 4096, 8192, good.len() - 1] {
        let bad = good[..cut].to_vec();
        std::fs::write(&path, &bad).unwrap();
        let e = open_err(&path, MasterKey::load_key_file(&key).unwrap());
        assert!(
            matches!(e, SealedError::Truncated { .. }),
            "cut at {cut}: {e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bad, "cut at {cut}: changed");
    }
    // Not a store: other bytes, another SQLite database.
    std::fs::write(&path, b"hello, this is not a store at all").unwrap();
    let e = open_err(&path, MasterKey::load_key_file(&key).unwrap());
    assert!(matches!(e, SealedError::NotASealedStore { .. }), "{e}");
    let other = dir.path().join("other.db");
    sql(&other)
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let other_bytes = std::fs::read(&other).unwrap();
    let e = open_err(&other, MasterKey::load_key_file(&key).unwrap());
    assert!(matches!(e, SealedError::NotASealedStore { .. }), "{e}");
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes);
    // A damaged header row is corruption, not a wrong key; a header of
    // another version is unsupported.
    std::fs::write(&path, &good).unwrap();
    let header: Vec<u8> = sql(&path)
        .query_row("SELECT v FROM meta WHERE k = 'header'", [], |r| r.get(0))
        .unwrap();
    for (at, expect_version) in [(0usize, true), (5, false), (20, false), (60, false)] {
        std::fs::write(&path, &good).unwrap();
        let mut h = header.clone();
        h[at] ^= 0x01;
        sql(&path)
            .execute("UPDATE meta SET v = ?1 WHERE k = 'header'", [&h])
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let e = open_err(&path, MasterKey::load_key_file(&key).unwrap());
        if expect_version {
            assert!(
                matches!(e, SealedError::UnsupportedVersion { .. }),
                "byte {at}: {e}"
            );
        } else {
            assert!(matches!(e, SealedError::Corrupt { .. }), "byte {at}: {e}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "byte {at}: changed");
    }
    // Damaged pages: a typed error, never a panic.
    std::fs::write(&path, &good).unwrap();
    let mut bad = good.clone();
    for b in &mut bad[4096..good.len()] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bad).unwrap();
    match MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()) {
        Err(e) => assert!(matches!(e, SealedError::Corrupt { .. }), "{e}"),
        Ok(km) => {
            let e = km.verify().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        }
    }
}

#[test]
fn rows_altered_moved_or_swapped_are_detected_deleted_rows_are_not() {
    let (_dir, path, key) = populated();
    let open =
        || MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    let ids: Vec<String> = {
        let km = open();
        let a = rt()
            .block_on(km.list_all(&ctx_a(), &ListQuery::all()))
            .unwrap();
        a.iter().map(|m| m.id.to_string()).collect()
    };
    let good = std::fs::read(&path).unwrap();
    let tamper = |stmt: &str| {
        std::fs::write(&path, &good).unwrap();
        sql(&path).execute_batch(stmt).unwrap();
        let km = open();
        let id = keymgr_core::SecretId::parse(&ids[0]).unwrap();
        let got = rt().block_on(km.get(&ctx_a(), &id));
        (got.map(|_| ()), km.verify())
    };
    // Moved to another project: the row no longer decrypts.
    let (_, v) = tamper(&format!(
        "UPDATE secrets SET project = 'project-b' WHERE id = '{}'",
        ids[0]
    ));
    assert_eq!(v.unwrap_err().kind(), ErrorKind::Config);
    // Ciphertexts swapped between two secrets.
    let (g, v) = tamper(&format!(
        "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE id = '{1}'),
                            nonce = (SELECT nonce FROM secrets WHERE id = '{1}') WHERE id = '{0}'",
        ids[0], ids[1]
    ));
    assert_eq!(g.unwrap_err().kind(), ErrorKind::Config);
    assert_eq!(v.unwrap_err().kind(), ErrorKind::Config);
    // A flipped ciphertext byte; a changed expiration column.
    let (g, _) = tamper(&format!(
        "UPDATE secrets SET sealed = zeroblob(length(sealed)) WHERE id = '{}'",
        ids[0]
    ));
    assert_eq!(g.unwrap_err().kind(), ErrorKind::Config);
    let (g, _) = tamper(&format!(
        "UPDATE secrets SET expires = 1 WHERE id = '{}'",
        ids[1]
    ));
    assert!(g.is_ok(), "the first secret is untouched");
    // A consumer row moved to another secret.
    let (_, v) = tamper(&format!(
        "UPDATE consumers SET secret_seq = (SELECT seq FROM secrets WHERE id = '{}')",
        ids[1]
    ));
    assert_eq!(v.unwrap_err().kind(), ErrorKind::Config);
    // Deleting a whole row is NOT detected (documented): the secret is gone.
    let (g, v) = tamper(&format!(
        "DELETE FROM consumers; DELETE FROM secrets WHERE id = '{}'",
        ids[0]
    ));
    assert_eq!(g.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(v.unwrap(), 2);
}

#[test]
fn a_deleted_secrets_ciphertext_is_removed_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([3u8; 32])).unwrap();
    let id = rt()
        .block_on(km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, vec![7u8; 200])))
        .unwrap();
    drop(km);
    let sealed: Vec<u8> = sql(&path)
        .query_row("SELECT sealed FROM secrets", [], |r| r.get(0))
        .unwrap();
    let contains = |p: &Path| {
        let b = std::fs::read(p).unwrap_or_default();
        b.windows(sealed.len()).any(|w| w == &sealed[..])
    };
    assert!(
        contains(&path),
        "the ciphertext is in the file before the delete"
    );
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([3u8; 32])).unwrap();
    rt().block_on(km.delete(&ctx_a(), &id, false)).unwrap();
    drop(km);
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(!contains(&path), "the ciphertext is still in the file");
    assert!(
        !contains(Path::new(&wal)),
        "the ciphertext is still in the WAL"
    );
}

#[test]
fn a_vanished_store_is_unavailable_not_recreated() {
    let (_dir, path, key) = populated();
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let e = rt()
        .block_on(km.list(&ctx_a(), &ListQuery::all()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!path.exists());
}

#[test]
fn a_store_busy_longer_than_the_timeout_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([4u8; 32])).unwrap();
    km.set_busy_timeout(Duration::from_millis(200)).unwrap();
    let mut holder = sql(&path);
    let tx = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let t0 = std::time::Instant::now();
    let e = rt()
        .block_on(km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, vec![1])))
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("busy"), "{e}");
    drop(tx);
    rt().block_on(km.store(&ctx_a(), NewSecret::new(SecretKind::Opaque, vec![1])))
        .unwrap();
}

const CHILD_ENV: &str = "KEYMGR_MOCK_TEST_CHILD";

/// Not a test of its own: the body of the child processes of the tests
/// below (does nothing otherwise). Writes until killed or until the
/// deadline, printing `ACK <id>` after each store returned.
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let path = PathBuf::from(parts.next().unwrap());
    let tag = parts.next().unwrap().to_string();
    let millis: u64 = parts.next().unwrap().parse().unwrap();
    let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_millis(millis);
    let mut out = std::io::stdout().lock();
    let mut i = 0u64;
    while std::time::Instant::now() < deadline {
        let id = rt()
            .block_on(km.store(
                &ctx_a(),
                NewSecret::new(SecretKind::Opaque, format!("{tag}:{i}").into_bytes()),
            ))
            .unwrap();
        use std::io::Write;
        writeln!(out, "ACK {id}").unwrap();
        out.flush().unwrap();
        i += 1;
    }
}

fn spawn_child(path: &Path, tag: &str, millis: u64) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{tag}|{millis}", path.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn acks(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.find("ACK ").map(|at| l[at + 4..].trim().to_string()))
        .collect()
}

fn all_ids(path: &Path) -> Vec<String> {
    let km = MockKeyManager::open_sealed(path, MasterKey::from_bytes([8u8; 32])).unwrap();
    km.verify().unwrap();
    rt().block_on(km.list_all(&ctx_a(), &ListQuery::all()))
        .unwrap()
        .iter()
        .map(|m| m.id.to_string())
        .collect()
}

#[test]
fn kill_9_during_writes_leaves_every_acknowledged_secret_and_a_readable_store() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    drop(MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap());
    let mut acked = Vec::new();
    for round in 0..6u64 {
        let mut child = spawn_child(&path, &format!("k{round}"), 60_000);
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        // SIGKILL: no destructor, no checkpoint, mid-transaction.
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        acked.extend(acks(&out.stdout));
    }
    assert!(!acked.is_empty(), "the children wrote nothing");
    let present = all_ids(&path);
    let set: std::collections::HashSet<&String> = present.iter().collect();
    assert_eq!(set.len(), present.len(), "an id twice");
    for id in &acked {
        assert!(set.contains(id), "acknowledged secret {id} lost");
    }
    // At most one write per kill was in flight and unacknowledged.
    assert!(
        present.len() <= acked.len() + 6,
        "{} present, {} acknowledged",
        present.len(),
        acked.len()
    );
}

#[test]
fn sixteen_threads_and_four_processes_writing_at_once_lose_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let secs: u64 = std::env::var("KEYMGR_MOCK_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    drop(MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap());
    let children: Vec<_> = (0..4)
        .map(|p| spawn_child(&path, &format!("p{p}"), secs * 1000))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let km =
                    MockKeyManager::open_sealed(&path, MasterKey::from_bytes([8u8; 32])).unwrap();
                let mut ids = Vec::new();
                let mut i = 0u32;
                while std::time::Instant::now() < deadline {
                    let id = rt()
                        .block_on(km.store(
                            &ctx_a(),
                            NewSecret::new(SecretKind::Opaque, format!("t{t}:{i}").into_bytes()),
                        ))
                        .unwrap();
                    ids.push(id.to_string());
                    i += 1;
                }
                ids
            })
        })
        .collect();
    let mut acked: Vec<String> = Vec::new();
    for t in threads {
        acked.extend(t.join().unwrap());
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a child writer failed");
        let a = acks(&out.stdout);
        assert!(!a.is_empty(), "a child wrote nothing");
        acked.extend(a);
    }
    let present = all_ids(&path);
    let mut sorted = present.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), present.len(), "an id listed twice");
    let mut want = acked.clone();
    want.sort();
    assert_eq!(sorted, want, "exactly the acknowledged secrets");
    eprintln!(
        "{} secrets written by 16 threads and 4 processes in {secs} s",
        acked.len()
    );
}

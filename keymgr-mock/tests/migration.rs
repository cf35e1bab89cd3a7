//! Migration of a version-1 sealed file (the fixture written by the code
//! that last wrote that format) to the SQLite store.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keymgr_core::{Context, ErrorKind, KeyManager, ListQuery, SecretId};
use keymgr_mock::{backup_path, MasterKey, MockConfig, MockKeyManager, SealedError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A copy of the fixture in a fresh directory: (dir, store, key file).
fn copy_fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let key = dir.path().join("store.sealed.key");
    std::fs::copy(fixture("v1-store.sealed"), &path).unwrap();
    std::fs::copy(fixture("v1-store.key"), &key).unwrap();
    for p in [&path, &key] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, path, key)
}

/// Checks every secret the fixture's description lists, byte for byte.
fn check_against_description(km: &MockKeyManager) {
    let desc = std::fs::read_to_string(fixture("v1-store.expected")).unwrap();
    let lines: Vec<&str> = desc.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 10, "the fixture describes ten secrets");
    rt().block_on(async {
        let mut listed: Vec<(String, String)> = Vec::new();
        for p in ["project-a", "project-b"] {
            let ctx = Context::new(p, "u");
            for m in km.list_all(&ctx, &ListQuery::all()).await.unwrap() {
                listed.push((p.to_string(), m.id.to_string()));
            }
        }
        let want: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].to_string())
            })
            .collect();
        assert_eq!(
            listed, want,
            "the same secrets, in the same order, per project"
        );
        for l in &lines {
            let f: Vec<&str> = l.split('\t').collect();
            let ctx = Context::new(f[0], "u");
            let id = SecretId::parse(f[1]).unwrap();
            let s = km.get(&ctx, &id).await.unwrap();
            let m = &s.metadata;
            let opt = |v: &str| (v != "-").then(|| v.to_string());
            assert_eq!(m.id.to_string(), f[1]);
            assert_eq!(m.kind.as_str(), f[2], "{}", f[1]);
            assert_eq!(m.name, opt(f[3]), "{}", f[1]);
            assert_eq!(m.algorithm, opt(f[4]), "{}", f[1]);
            assert_eq!(m.bit_length.map(|b| b.to_string()), opt(f[5]));
            assert_eq!(m.mode, opt(f[6]), "{}", f[1]);
            assert_eq!(
                m.created.unwrap().unix_timestamp_nanos().to_string(),
                f[7],
                "creation time of {}",
                f[1]
            );
            assert_eq!(
                m.expiration.map(|e| e.unix_timestamp_nanos().to_string()),
                opt(f[8])
            );
            let consumers: Vec<String> = m
                .consumers
                .iter()
                .map(|c| format!("{}/{}/{}", c.service, c.resource_type, c.resource_id))
                .collect();
            let want_c: Vec<String> = if f[9] == "-" {
                vec![]
            } else {
                f[9].split(';').map(str::to_string).collect()
            };
            assert_eq!(consumers, want_c, "consumers of {}", f[1]);
            assert_eq!(s.payload.expose(), &unhex(f[10])[..], "payload of {}", f[1]);
            // Another project does not see it.
            let other = Context::new(
                if f[0] == "project-a" {
                    "project-b"
                } else {
                    "project-a"
                },
                "u",
            );
            assert_eq!(
                km.get(&other, &id).await.unwrap_err().kind(),
                ErrorKind::NotFound
            );
        }
    });
}

fn is_sqlite(p: &Path) -> bool {
    std::fs::read(p).unwrap().starts_with(b"SQLite format 3\0")
}

#[test]
fn the_v1_fixture_migrates_completely_keeps_a_backup_and_stays_migrated() {
    let (_dir, path, key) = copy_fixture();
    let original = std::fs::read(&path).unwrap();
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    assert!(is_sqlite(&path), "the store at the same path is now SQLite");
    let bak = backup_path(&path);
    assert_eq!(
        std::fs::read(&bak).unwrap(),
        original,
        "the old file is kept as is"
    );
    assert_eq!(
        std::fs::metadata(&bak).unwrap().permissions().mode() & 0o777,
        0o600
    );
    check_against_description(&km);
    assert_eq!(km.verify().unwrap(), 10);
    // New secrets come after the migrated ones; a reopen migrates nothing.
    let ctx = Context::new("project-a", "u");
    let id = rt()
        .block_on(km.create_key(&ctx, &keymgr_core::KeySpec::aes(256)))
        .unwrap();
    drop(km);
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    assert_eq!(std::fs::read(&bak).unwrap(), original);
    let all = rt().block_on(km.list_all(&ctx, &ListQuery::all())).unwrap();
    assert_eq!(
        all.last().unwrap().id,
        id,
        "creation order continues after the migrated secrets"
    );
    assert_eq!(all.len(), 8);
}

#[test]
fn migration_through_the_configuration_uses_the_default_key_file() {
    let (_dir, path, _key) = copy_fixture();
    let cfg = MockConfig {
        path: Some(path.clone()),
        ..Default::default()
    };
    let km = MockKeyManager::from_config(&cfg).unwrap();
    assert!(is_sqlite(&path));
    check_against_description(&km);
}

#[test]
fn a_v1_file_that_cannot_be_fully_read_is_refused_and_left_untouched() {
    let (_dir, path, key) = copy_fixture();
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 7].to_vec()),
        ("flipped entry byte", {
            let mut b = good.clone();
            b[good.len() / 2] ^= 1;
            b
        }),
        ("flipped trailer byte", {
            let mut b = good.clone();
            let n = b.len();
            b[n - 1] ^= 0x80;
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let e = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap())
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        assert!(
            matches!(
                e,
                SealedError::Truncated { .. } | SealedError::Corrupt { .. }
            ),
            "{what}: {e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}: file changed");
        assert!(!backup_path(&path).exists(), "{what}: a backup was made");
    }
    std::fs::write(&path, &good).unwrap();
    let e = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([0u8; 32]))
        .err()
        .unwrap();
    assert!(matches!(e, SealedError::WrongKey { .. }), "{e}");
    assert_eq!(
        keymgr_core::Error::from(e).kind(),
        ErrorKind::Unauthenticated
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "wrong key: file changed"
    );
    let leftovers: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_processes_opening_a_v1_store_at_once_migrate_it_once() {
    let (_dir, path, key) = copy_fixture();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (path, key) = (path.clone(), key.clone());
            std::thread::spawn(move || {
                MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap()
            })
        })
        .collect();
    let kms: Vec<MockKeyManager> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for km in &kms {
        check_against_description(km);
    }
}

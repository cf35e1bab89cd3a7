//! The shared conformance suite against every flavour of the embedded backend.

use keymgr_core::{testkit, Context};
use keymgr_mock::{Argon2Params, MasterKey, MockKeyManager};

fn contexts() -> (Context, Context) {
    (
        Context::new("project-a", "alice").with_roles(["member"]),
        Context::new("project-b", "bob").with_roles(["member"]),
    )
}

/// Tiny Argon2 costs: these tests are about the store, not the KDF.
const TINY: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

#[tokio::test]
async fn in_memory_passes_conformance() {
    let km = MockKeyManager::new();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn sealed_key_file_passes_conformance_and_keeps_it_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let key = dir.path().join("store.key");
    let (a, b) = contexts();
    {
        let km =
            MockKeyManager::open_sealed(&path, MasterKey::load_or_create_key_file(&key).unwrap())
                .unwrap();
        testkit::run_conformance(&km, &a, &b).await;
    }
    // The suite deletes what it created; a reopened store must be as clean
    // and pass again.
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_key_file(&key).unwrap()).unwrap();
    let left = keymgr_core::KeyManager::list_all(&km, &a, &keymgr_core::ListQuery::all())
        .await
        .unwrap();
    assert!(left.is_empty(), "the suite left {} secrets", left.len());
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn sealed_passphrase_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let master = MasterKey::from_passphrase("correct horse battery staple")
        .unwrap()
        .with_argon2_params(TINY)
        .unwrap();
    let km = MockKeyManager::open_sealed(&path, master).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn two_managers_on_one_file_pass_conformance_as_one_backend() {
    // A backend that writes through one handle and reads through another
    // must still behave as one store: the second manager sees every change.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sealed");
    let km1 = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([5u8; 32])).unwrap();
    let km2 = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([5u8; 32])).unwrap();
    let (a, b) = contexts();
    testkit::run_conformance(&km1, &a, &b).await;
    let id = keymgr_core::KeyManager::create_key(&km1, &a, &keymgr_core::KeySpec::aes(256))
        .await
        .unwrap();
    let via2 = keymgr_core::KeyManager::get(&km2, &a, &id).await.unwrap();
    let via1 = keymgr_core::KeyManager::get(&km1, &a, &id).await.unwrap();
    assert_eq!(via1.payload.expose(), via2.payload.expose());
    testkit::run_conformance(&km2, &a, &b).await;
}

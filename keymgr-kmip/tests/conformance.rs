//! The shared conformance suite against a real PyKMIP server.

mod common;

use keymgr_core::{testkit, Context, KeyManager};
use keymgr_kmip::KmipKeyManager;

fn contexts() -> (Context, Context) {
    (
        Context::new("project-a", "alice"),
        Context::new("project-b", "bob"),
    )
}

#[tokio::test]
async fn negotiated_version() {
    let Some(cfg) = common::config() else {
        return;
    };
    let km = KmipKeyManager::new(cfg).unwrap();
    // PyKMIP offers 2.0 down to 1.0: the best this client speaks is 1.4.
    assert_eq!(km.kmip_version().await.unwrap(), "1.4");
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test]
async fn pinned_kmip_1_2_without_offset_items() {
    let Some(mut cfg) = common::config() else {
        return;
    };
    cfg.kmip_version = Some("1.2".into());
    let km = KmipKeyManager::new(cfg).unwrap();
    assert_eq!(km.kmip_version().await.unwrap(), "1.2");
    assert_eq!(km.backend_name(), "kmip");
    let (a, b) = contexts();
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumer_updates_of_one_client_are_all_kept() {
    let Some(cfg) = common::config() else {
        return;
    };
    let km = std::sync::Arc::new(KmipKeyManager::new(cfg).unwrap());
    let (a, _) = contexts();
    let id = km
        .store(
            &a,
            keymgr_core::NewSecret::new(keymgr_core::SecretKind::Opaque, b"shared".to_vec()),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (km, a, id) = (km.clone(), a.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let c = keymgr_core::Consumer::new("cinder", "volume", format!("v{i}"));
            km.add_consumer(&a, &id, &c).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(km.list_consumers(&a, &id).await.unwrap().len(), 8);
    km.delete(&a, &id, true).await.unwrap();
}

//! Check-and-set updates through an OpenBao raft *standby*: consumer
//! updates (read, then a KV v2 write with `cas`) made back to back through
//! a standby must all succeed. A standby checks `cas` against its own copy,
//! which may lag the active node; keymgr sends the last write's
//! `X-Vault-Index` with writes too, so the standby forwards them until it
//! has caught up. Before that, every remove right after an add failed with
//! `Conflict` ("the record kept changing") when the first configured node
//! was not the leader (found by scripts/load.sh after a leader change).

mod common;

use keymgr_core::{Consumer, Context, KeyManager, NewSecret, SecretKind};
use keymgr_test_support::env::VaultClusterEnv;
use keymgr_vault::{VaultConfig, VaultKeyManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_updates_through_a_standby_do_not_conflict() {
    let Some(cluster) = VaultClusterEnv::load() else {
        return;
    };
    let token = cluster.root_token.clone();
    let ca = cluster.ca_file.clone();
    let mut http = reqwest::Client::builder();
    if let Some(ca) = &ca {
        let pem = std::fs::read(ca).unwrap();
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    let http = http.build().unwrap();
    // A node that is not the leader.
    let mut standby = None;
    for node in &cluster.nodes {
        let v: serde_json::Value = http
            .get(format!("{node}/v1/sys/leader"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["is_self"] == serde_json::Value::Bool(false) {
            standby = Some(node.clone());
            break;
        }
    }
    let standby = standby.expect("a 3-node cluster has a standby");
    let mut cfg = VaultConfig::with_token(standby, token);
    cfg.ssl_ca_crt_file = ca;
    let km = VaultKeyManager::new(cfg).unwrap();
    let ctx = Context::new("standby-project", "u");
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, b"standby cas".to_vec()),
        )
        .await
        .unwrap();
    for i in 0..10 {
        let c = Consumer::new("cinder", "volume", format!("vol-{i}"));
        km.add_consumer(&ctx, &id, &c)
            .await
            .unwrap_or_else(|e| panic!("add #{i} through a standby: {e}"));
        km.remove_consumer(&ctx, &id, &c)
            .await
            .unwrap_or_else(|e| panic!("remove #{i} through a standby: {e}"));
    }
    assert!(km.list_consumers(&ctx, &id).await.unwrap().is_empty());
    km.delete(&ctx, &id, false).await.unwrap();
}

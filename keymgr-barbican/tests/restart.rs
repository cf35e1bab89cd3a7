//! Barbican restarted in the middle of a loop of operations: idempotent
//! calls recover by retrying, nothing is lost or duplicated. A test binary
//! of its own, so no other Barbican test runs while the server is down.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use keymgr_barbican::BarbicanKeyManager;
use keymgr_core::{Consumer, ErrorKind, KeyManager, ListQuery, NewSecret, SecretKind};

use common::{unique, Keystone};
use keymgr_test_support::env::OpenStackEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barbican_restart_mid_loop_loses_and_duplicates_nothing() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let Some(restart) = env.barbican_restart.clone() else {
        keymgr_test_support::testenv::skip_or_fail(
            "barbican_restart_mid_loop_loses_and_duplicates_nothing",
            "the environment has no command restarting Barbican (scripts/servers/openstack.sh exports one)",
        );
        return;
    };
    let mut cfg = env.password_config(&env.user_a);
    // Enough patience for a restart (a few seconds): 0.2, 0.4, ... 5 s.
    cfg.http_retries = 12;
    cfg.http_retry_delay = 0.2;
    let km = BarbicanKeyManager::new(cfg).unwrap();
    let ctx = env.ctx(&env.user_a);
    let name = unique("restart");
    // Warm up: token, endpoint and microversion known before the restart.
    km.list(&ctx, &ListQuery::all().name(&name)).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let mut restarter = None;
    let mut alive: BTreeMap<keymgr_core::SecretId, Vec<u8>> = BTreeMap::new();
    let mut store_failures = 0usize;
    let mut after_restart = 0usize;
    let mut i = 0u32;
    while after_restart < 5 {
        i += 1;
        assert!(i < 500, "the restart never finished");
        if i == 3 {
            let done = done.clone();
            let cmd = restart.clone();
            restarter = Some(std::thread::spawn(move || {
                let st = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .status()
                    .expect("run the restart command");
                done.store(true, Ordering::SeqCst);
                st
            }));
        }
        if done.load(Ordering::SeqCst) {
            after_restart += 1;
        }
        let payload = format!("secret number {i}").into_bytes();
        let id = match km
            .store(
                &ctx,
                NewSecret::new(SecretKind::Opaque, payload.clone()).named(&name),
            )
            .await
        {
            Ok(id) => id,
            Err(e) => {
                // A store caught in flight is not retried (it may have
                // happened): it must fail as retryable, not hang or lie.
                assert!(e.is_retryable(), "store failed with {e}");
                store_failures += 1;
                continue;
            }
        };
        alive.insert(id.clone(), payload.clone());
        let got = km
            .get(&ctx, &id)
            .await
            .unwrap_or_else(|e| panic!("get #{i}: {e}"));
        assert_eq!(got.payload.expose(), &payload[..]);
        let c = Consumer::new("cinder", "volume", format!("vol-{i}"));
        km.add_consumer(&ctx, &id, &c)
            .await
            .unwrap_or_else(|e| panic!("add_consumer #{i}: {e}"));
        let meta = km
            .metadata(&ctx, &id)
            .await
            .unwrap_or_else(|e| panic!("metadata #{i}: {e}"));
        assert_eq!(meta.consumers, vec![c.clone()]);
        let listed = km
            .list_all(&ctx, &ListQuery::all().name(&name))
            .await
            .unwrap_or_else(|e| panic!("list #{i}: {e}"));
        assert!(listed.iter().any(|m| m.id == id));
        if i.is_multiple_of(2) {
            km.remove_consumer(&ctx, &id, &c)
                .await
                .unwrap_or_else(|e| panic!("remove_consumer #{i}: {e}"));
            km.delete(&ctx, &id, false)
                .await
                .unwrap_or_else(|e| panic!("delete #{i}: {e}"));
            alive.remove(&id);
            assert_eq!(
                km.get(&ctx, &id).await.unwrap_err().kind(),
                ErrorKind::NotFound
            );
        }
    }
    let status = restarter.unwrap().join().unwrap();
    assert!(status.success(), "restart command failed: {status}");

    let listed = km
        .list_all(&ctx, &ListQuery::all().name(&name))
        .await
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|m| m.id.clone()).collect();
    let unique_ids: BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique_ids.len(), "a secret listed twice");
    for (id, payload) in &alive {
        assert!(unique_ids.contains(id), "secret {id} lost");
        assert_eq!(
            km.get(&ctx, id).await.unwrap().payload.expose(),
            &payload[..]
        );
    }
    let extra = unique_ids.len() - alive.len();
    assert!(
        extra <= store_failures,
        "{extra} secrets nobody got an id for, but only {store_failures} stores failed"
    );
    eprintln!(
        "restart loop: {i} iterations, {} secrets kept, {store_failures} stores failed in flight, {extra} of those happened",
        alive.len()
    );
    for id in unique_ids {
        km.delete(&ctx, &id, true).await.unwrap();
    }
}

//! High availability on a real 3-node OpenBao raft cluster: creates and
//! reads spread over all nodes while the leader steps down and while a node
//! is killed and restarted. Every created key must read back with its
//! bytes; no read may return a wrong payload; failures must be typed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keymgr_core::{Context, ErrorKind, KeyManager, NewSecret, SecretKind};
use keymgr_test_support::env::VaultClusterEnv;
use keymgr_vault::{VaultConfig, VaultKeyManager};

async fn leader(http: &reqwest::Client, nodes: &[String]) -> Option<String> {
    for n in nodes {
        if let Ok(r) = http.get(format!("{n}/v1/sys/leader")).send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(addr) = v["leader_address"].as_str().filter(|a| !a.is_empty()) {
                    return Some(addr.trim_end_matches('/').to_string());
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_survive_step_down_and_node_restart() {
    let Some(cluster) = VaultClusterEnv::load() else {
        return;
    };
    let token = cluster.root_token.clone();
    let ctl = cluster.node_ctl.clone();
    let dir = cluster.dir.display().to_string();
    let started = Instant::now();
    let nodes: Vec<String> = cluster.nodes.clone();
    assert_eq!(nodes.len(), 3);

    // One manager per node, each starting on a different node and failing over to the others.
    let managers: Vec<Arc<VaultKeyManager>> = (0..3)
        .map(|i| {
            let mut order = nodes.clone();
            order.rotate_left(i);
            let mut cfg = VaultConfig::with_token(order.join(","), token.clone());
            cfg.timeout = 5.0;
            cfg.max_retries = 8;
            Arc::new(VaultKeyManager::new(cfg).unwrap())
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (w, km) in managers.iter().enumerate() {
        let (km, stop) = (km.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let ctx = Context::new("ha-project", "u");
            let mut created = Vec::new();
            let (mut retried, mut i) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let payload: Vec<u8> = format!("worker {w} key {i}").into_bytes();
                i += 1;
                let id = match km
                    .store(&ctx, NewSecret::new(SecretKind::Opaque, payload.clone()))
                    .await
                {
                    Ok(id) => id,
                    Err(e) => {
                        assert!(
                            matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                            "untyped store failure: {e}"
                        );
                        retried += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                // Read-after-write, possibly on a standby: must see the new record.
                loop {
                    match km.get(&ctx, &id).await {
                        Ok(s) => {
                            assert_eq!(s.payload.expose(), &payload[..], "wrong payload for {id}");
                            break;
                        }
                        Err(e) => {
                            assert!(
                                matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                                "read after write of {id}: {e}"
                            );
                            retried += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                created.push((id, payload));
            }
            (created, retried)
        }));
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let node_ctl = |verb: &'static str, n: usize| {
        let cmd = format!("{ctl} {verb} {dir} {n}");
        async move {
            let status = tokio::process::Command::new("bash")
                .arg("-c")
                .arg(&cmd)
                .status()
                .await
                .unwrap();
            assert!(status.success(), "{cmd} failed");
        }
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. The leader steps down.
    let old = leader(&http, &nodes).await.expect("a leader");
    let r = http
        .put(format!("{old}/v1/sys/step-down"))
        .header("X-Vault-Token", &token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "step-down: {}", r.status());
    let t0 = Instant::now();
    let mut new_leader = None;
    while t0.elapsed() < Duration::from_secs(8) {
        if let Some(l) = leader(&http, &nodes).await.filter(|l| *l != old) {
            new_leader = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The node that stepped down may win the next election again.
    let new_leader = match new_leader {
        Some(l) => l,
        None => leader(&http, &nodes)
            .await
            .expect("a leader after the step-down"),
    };
    eprintln!("leader stepped down: {old} -> {new_leader}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. The new leader crashes (SIGKILL) while the loop goes on against
    //    the two others, then comes back and is unsealed.
    let victim = nodes
        .iter()
        .position(|n| *n == new_leader)
        .expect("the leader is one of the nodes")
        + 1;
    eprintln!("killing node {victim}");
    node_ctl("kill-node", victim).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    node_ctl("start-node", victim).await;
    eprintln!("node {victim} restarted and unsealed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    let mut retried = 0;
    for w in workers {
        let (created, r) = w.await.unwrap();
        retried += r;
        all.extend(created);
    }
    assert!(
        all.len() >= 30,
        "too few operations completed: {}",
        all.len()
    );
    // Every key reads back with its bytes, through every node's manager.
    let ctx = Context::new("ha-project", "u");
    let ctx_ref = &ctx;
    let checks = all.iter().flat_map(|(id, payload)| {
        managers.iter().map(move |km| {
            let ctx = ctx_ref;
            async move {
                // A manager that did not write this key holds no X-Vault-Index
                // for it, and a node just restarted may still be replaying the
                // raft log: such a standby can answer 404 for a moment. A key
                // is lost only if it never shows up; a wrong payload fails at once.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    match km.get(ctx, id).await {
                        Ok(s) => {
                            assert_eq!(s.payload.expose(), &payload[..], "wrong payload for {id}");
                            return;
                        }
                        Err(e)
                            if std::time::Instant::now() < deadline
                                && matches!(
                                    e.kind(),
                                    ErrorKind::NotFound
                                        | ErrorKind::Unavailable
                                        | ErrorKind::Timeout
                                ) =>
                        {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(e) => panic!("key {id} lost: {e}"),
                    }
                }
            }
        })
    });
    futures::stream::iter(checks)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let stats: Vec<_> = managers.iter().map(|km| km.stats()).collect();
    eprintln!("HA client stats per manager: {stats:?}");
    let absorbed: u64 = stats.iter().map(|s| s.retries + s.failovers).sum();
    assert!(
        absorbed > 0,
        "a killed node and a step-down must have cost some retries or failovers"
    );
    eprintln!(
        "HA: {} keys created and verified on 3 nodes, {} typed failures retried",
        all.len(),
        retried
    );
    let exercised = started.elapsed();
    // Cleanup on a cluster that just lost a node, on a loaded CI machine: a
    // delete whose answer is lost (Timeout) may still have been applied, so a
    // retry that finds the secret gone (NotFound) counts as done.
    let cleanup = all.iter().map(|(id, _)| {
        let km = &managers[0];
        let ctx = &ctx;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                match km.delete(ctx, id, true).await {
                    Ok(()) => return,
                    Err(e) if attempts > 1 && e.kind() == ErrorKind::NotFound => return,
                    Err(e)
                        if Instant::now() < deadline
                            && matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) =>
                    {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => panic!("cleanup of {id} after {attempts} attempt(s): {e}"),
                }
            }
        }
    });
    futures::stream::iter(cleanup)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    for (id, _) in all.iter().take(16) {
        let e = managers[0]
            .get(&ctx, id)
            .await
            .expect_err("deleted key still readable");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{id}: {e}");
    }
    assert!(
        exercised < Duration::from_secs(90),
        "the HA workload and its checks took {exercised:?}"
    );
}

//! Client cost of fetching one secret through keymgr, for
//! `scripts/bench-clients.sh`: stores one 32-byte key, times SEQ sequential
//! `get`s with one client reused (median latency), then 64 concurrent tasks
//! doing `get` for SECONDS (throughput). Prints one JSON line.
//!
//! The sequential `get`s are timed twice: through [`keymgr::blocking`] (a
//! current-thread runtime: synchronous calls, as Castellan's are; this is
//! `median_ms`) and through the async API on a multi-threaded runtime
//! (`median_async_ms`, where a wake-up may cross threads). The 64-way load
//! runs on the multi-threaded runtime.
//!
//! Usage: `bench-get vault|barbican|kmip [SEQ] [SECONDS]` with the test
//! environment's variables (KEYMGR_TEST_VAULT_*, KEYMGR_TEST_KEYSTONE_URL,
//! KEYMGR_TEST_KMIP_*, ...).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymgr::blocking::BlockingKeyManager;
use keymgr::{Config, Context, NewSecret, SecretKind};
use keymgr_test_support::env::{KmipEnv, OpenStackEnv, VaultEnv};

/// Median and sum of `lat` (sorted in place).
fn median_and_total(lat: &mut [Duration]) -> (Duration, Duration) {
    lat.sort();
    (lat[lat.len() / 2], lat.iter().sum())
}

/// The `[kmip]` section for the PyKMIP server of scripts/servers/pykmip.sh.
fn kmip_config() -> Config {
    let env = KmipEnv::read().unwrap_or_else(|m| panic!("{m}"));
    let mut c = Config::new(keymgr::BackendKind::Kmip);
    let path = |p: &std::path::Path| toml::Value::String(p.display().to_string());
    c.section
        .insert("host".into(), toml::Value::String(env.host.clone()));
    c.section
        .insert("port".into(), toml::Value::Integer(env.port.into()));
    c.section.insert("certfile".into(), path(&env.certfile));
    c.section.insert("keyfile".into(), path(&env.keyfile));
    c.section.insert("ca_certs".into(), path(&env.ca_certs));
    c.section.insert("timeout".into(), toml::Value::Float(60.0));
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("vault")
        .to_string();
    let seq: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
        .max(1);
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let (cfg, ctx): (Config, Context) = match backend.as_str() {
        "vault" => (
            tests::vault_config(&VaultEnv::read().unwrap_or_else(|m| panic!("{m}")), None).0,
            Context::new("bench", "bench"),
        ),
        "barbican" => (
            tests::barbican_config(
                &OpenStackEnv::read().unwrap_or_else(|m| panic!("{m}")),
                None,
                None,
            )
            .0,
            Context::new("", "bench"),
        ),
        "kmip" => (kmip_config(), Context::new("bench", "bench")),
        other => panic!("unknown backend {other}"),
    };
    let payload: Vec<u8> = (0..32u8).collect();

    // Sequential, synchronous: one blocking client reused.
    let km = BlockingKeyManager::new(keymgr::build(&cfg).expect("backend")).expect("runtime");
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Symmetric, payload.clone()).named("bench"),
        )
        .expect("store");
    // One warm-up call (token, connection), as Castellan's first call also pays it.
    km.get(&ctx, &id).expect("get");
    let mut lat = Vec::with_capacity(seq);
    for _ in 0..seq {
        let t = Instant::now();
        let s = km.get(&ctx, &id).expect("get");
        lat.push(t.elapsed());
        assert_eq!(s.payload.expose(), &payload[..]);
    }
    let (median, total) = median_and_total(&mut lat);

    // Async, multi-threaded runtime: its own client (connections belong to
    // the runtime that opened them).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (median_async, done, errors, elapsed) = rt.block_on(async {
        let km = keymgr::build(&cfg).expect("backend");
        km.get(&ctx, &id).await.expect("get");
        let mut lat = Vec::with_capacity(seq);
        for _ in 0..seq {
            let t = Instant::now();
            let s = km.get(&ctx, &id).await.expect("get");
            lat.push(t.elapsed());
            assert_eq!(s.payload.expose(), &payload[..]);
        }
        let (median_async, _) = median_and_total(&mut lat);

        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (km, ctx, id) = (km.clone(), ctx.clone(), id.clone());
            let (done, errors) = (done.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    match km.get(&ctx, &id).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let elapsed = start.elapsed().as_secs_f64();
        (
            median_async,
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            elapsed,
        )
    });
    drop(rt);
    km.delete(&ctx, &id, true).expect("delete");
    println!(
        "{{\"client\":\"keymgr\",\"backend\":\"{backend}\",\"seq\":{seq},\"median_ms\":{:.3},\"median_async_ms\":{:.3},\"total_s\":{:.3},\"ops_64\":{done},\"errors_64\":{errors},\"throughput_64\":{:.1}}}",
        median.as_secs_f64() * 1e3,
        median_async.as_secs_f64() * 1e3,
        total.as_secs_f64(),
        done as f64 / elapsed
    );
}

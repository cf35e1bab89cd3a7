//! Client cost of fetching one secret through keymgr, for
//! `scripts/bench-clients.sh`: stores one 32-byte key, times SEQ sequential
//! `get`s with one client reused (median latency), then 64 concurrent tasks
//! doing `get` for SECONDS (throughput). Prints one JSON line.
//!
//! Usage: `bench-get vault|barbican [SEQ] [SECONDS]` with the test
//! environment's variables (KEYMGR_TEST_VAULT_*, KEYMGR_TEST_KEYSTONE_URL, ...).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymgr::{Context, NewSecret, SecretKind};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map(String::as_str).unwrap_or("vault");
    let seq: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let (cfg, ctx) = match backend {
        "vault" => (
            tests::vault_config(None)
                .expect("KEYMGR_TEST_VAULT_ADDR/TOKEN")
                .0,
            Context::new("bench", "bench"),
        ),
        "barbican" => (
            tests::barbican_config(None, None)
                .expect("KEYMGR_TEST_KEYSTONE_URL and user A")
                .0,
            Context::new("", "bench"),
        ),
        other => panic!("unknown backend {other}"),
    };
    let km = keymgr::build(&cfg).expect("backend");
    let payload: Vec<u8> = (0..32u8).collect();
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Symmetric, payload.clone()).named("bench"),
        )
        .await
        .expect("store");
    // One warm-up call (token, connection), as Castellan's first call also pays it.
    km.get(&ctx, &id).await.expect("get");
    let mut lat = Vec::with_capacity(seq);
    for _ in 0..seq {
        let t = Instant::now();
        let s = km.get(&ctx, &id).await.expect("get");
        lat.push(t.elapsed());
        assert_eq!(s.payload.expose(), &payload[..]);
    }
    lat.sort();
    let median = lat[lat.len() / 2];
    let total: Duration = lat.iter().sum();

    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (km, ctx, done, errors) = (km.clone(), ctx.clone(), done.clone(), errors.clone());
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
    km.delete(&ctx, &id, true).await.expect("delete");
    println!(
        "{{\"client\":\"keymgr\",\"backend\":\"{backend}\",\"seq\":{seq},\"median_ms\":{:.3},\"total_s\":{:.3},\"ops_64\":{},\"errors_64\":{},\"throughput_64\":{:.1}}}",
        median.as_secs_f64() * 1e3,
        total.as_secs_f64(),
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        done.load(Ordering::Relaxed) as f64 / elapsed
    );
}

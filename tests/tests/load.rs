//! 64 concurrent tasks doing create/get/clone/delete against every backend:
//! nothing but typed, retryable refusals, no wrong payload. The suite runs
//! a short bounded load; `KEYMGR_LOAD_SECONDS=60` makes it the full run.

use tests::{backends, load};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_against_each_backend() {
    let seconds: f64 = std::env::var("KEYMGR_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();
    for b in backends(dir.path()) {
        let r = load::run(b.km.clone(), b.ctx.clone(), 64, seconds).await;
        eprintln!(
            "load {}: {} operations in {:.1} s = {:.0} ops/s; retried errors {:?}",
            b.name,
            r.operations,
            r.elapsed.as_secs_f64(),
            r.throughput(),
            r.errors
        );
        assert!(r.operations > 0, "{}: no operation completed", b.name);
        assert_eq!(r.wrong_payloads, 0, "{}: wrong payloads under load", b.name);
        assert!(
            r.untyped.is_empty(),
            "{}: untyped or non-retryable errors: {:?}",
            b.name,
            &r.untyped[..r.untyped.len().min(5)]
        );
    }
}

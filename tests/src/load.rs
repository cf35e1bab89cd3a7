//! A bounded load driver: N tasks doing create/get/clone/delete for a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymgr::{Context, ErrorKind, KeyManager, KeySpec};

/// What a load run did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Completed operations.
    pub operations: u64,
    /// Errors by kind (each was retried).
    pub errors: BTreeMap<String, u64>,
    /// Errors that were not a typed, retryable refusal, with their text.
    pub untyped: Vec<String>,
    /// Keys whose bytes did not read back as written.
    pub wrong_payloads: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Operations per second.
    pub fn throughput(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `tasks` concurrent loops of create, get, clone, get clone, delete
/// both, for `seconds`, and checks every payload read back.
pub async fn run(km: Arc<dyn KeyManager>, ctx: Context, tasks: usize, seconds: f64) -> LoadReport {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (km, ctx) = (km.clone(), ctx.clone());
        handles.push(tokio::spawn(async move {
            let mut r = LoadReport::default();
            while Instant::now() < deadline {
                if let Err(e) = one_round(&*km, &ctx, &mut r).await {
                    *r.errors.entry(format!("{:?}", e.kind())).or_default() += 1;
                    if !(e.is_retryable() || e.kind() == ErrorKind::Unavailable) {
                        r.untyped.push(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            r
        }));
    }
    let mut total = LoadReport::default();
    for h in handles {
        let r = h.await.expect("load task panicked");
        total.operations += r.operations;
        total.wrong_payloads += r.wrong_payloads;
        total.untyped.extend(r.untyped);
        for (k, v) in r.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    total.elapsed = start.elapsed();
    total
}

async fn one_round(km: &dyn KeyManager, ctx: &Context, r: &mut LoadReport) -> keymgr::Result<()> {
    let id = km.create_key(ctx, &KeySpec::aes(256).named("load")).await?;
    r.operations += 1;
    let original = km.get(ctx, &id).await?;
    r.operations += 1;
    let copy = km.clone_secret(ctx, &id).await?;
    r.operations += 1;
    let cloned = km.get(ctx, &copy).await?;
    r.operations += 1;
    if cloned.payload.expose() != original.payload.expose() || original.payload.len() != 32 {
        r.wrong_payloads += 1;
    }
    km.delete(ctx, &copy, false).await?;
    km.delete(ctx, &id, false).await?;
    r.operations += 2;
    Ok(())
}

//! The backend fault matrix: every operation through a [`FaultProxy`] with
//! every [`Fault`], checked against the real server through a direct client.

use std::sync::Arc;
use std::time::Duration;

use keymgr::{ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, SecretKind};

use keymgr_test_support::proxy::{Fault, FaultProxy, Rule};

/// The faults of the matrix; `delay` should exceed the proxied client's timeout.
pub fn all_faults(delay: Duration) -> Vec<Fault> {
    vec![
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Delay(delay),
        Fault::Truncate,
        Fault::NotJson,
        Fault::WrongContentType,
    ]
}

/// The operations of the matrix.
pub const OPS: [&str; 7] = [
    "get",
    "metadata",
    "list",
    "store",
    "create_key",
    "delete",
    "clone",
];

/// The outcome of the matrix.
#[derive(Debug, Default)]
pub struct MatrixReport {
    /// (fault, operation) cells run.
    pub cells: u64,
    /// Cells where the call succeeded (possibly after a retry).
    pub succeeded: u64,
    /// Cells where the call returned a typed error, by kind.
    pub typed_errors: std::collections::BTreeMap<String, u64>,
    /// Violations found (wrong kind, duplicate secret, leftover clone, wrong payload, hang).
    pub violations: Vec<String>,
    /// Faults the proxy injected in all.
    pub injected: u64,
    /// Cells whose fault never fired (the operation made no matching request).
    pub not_fired: Vec<String>,
    /// Cells where a create whose answer was lost after the server acted
    /// (reset after, truncated or undecodable answer) failed and left the one
    /// secret the server made: the ambiguity no client can resolve without an
    /// idempotency key (Barbican has none). Never more than one.
    pub orphans_after_lost_answer: Vec<String>,
}

/// Error kinds a transport fault may legitimately surface as.
pub const TRANSPORT_KINDS: [ErrorKind; 3] = [
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::Backend,
];

fn method_of(op: &str) -> &'static str {
    match op {
        "get" | "metadata" | "list" => "GET",
        "delete" => "DELETE",
        _ => "POST",
    }
}

/// Runs every fault against every operation. `proxied` talks to the server
/// through `proxy`, `direct` without it; `ctx` is the tenant for both.
/// `write_method` is the method the backend uses to create (POST for
/// Barbican, PUT/POST for Vault: give what its store uses).
pub async fn run_matrix(
    name: &str,
    proxied: Arc<dyn KeyManager>,
    direct: Arc<dyn KeyManager>,
    proxy: &FaultProxy,
    ctx: &keymgr::Context,
    write_method: &str,
    faults: &[Fault],
) -> MatrixReport {
    let mut rep = MatrixReport::default();
    for fault in faults {
        for op in OPS {
            rep.cells += 1;
            let cell = format!("{name}: {} on {op}", fault.name());
            let tag = format!(
                "faults-{}-{}",
                &keymgr::SecretId::new_random().as_str()[..8],
                op
            );
            let payload: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            let original = direct
                .store(
                    ctx,
                    NewSecret::new(SecretKind::Symmetric, payload.clone()).named(tag.clone()),
                )
                .await
                .expect("setup store through the direct client");
            let method = match method_of(op) {
                "POST" => write_method,
                m => m,
            };
            proxy.clear();
            let before = proxy.counters().total_injected();
            proxy.inject(Rule::once(fault.clone()).method(method));
            let spec = KeySpec::aes(256).named(tag.clone());
            let new_name =
                NewSecret::new(SecretKind::Opaque, b"fault-store".to_vec()).named(tag.clone());
            let fut = async {
                match op {
                    "get" => proxied.get(ctx, &original).await.map(|s| {
                        if s.payload.expose() != &payload[..] {
                            Some("get returned a wrong payload".to_string())
                        } else {
                            None
                        }
                    }),
                    "metadata" => proxied
                        .metadata(ctx, &original)
                        .await
                        .map(|m| (m.id != original).then(|| "metadata of another id".to_string())),
                    "list" => proxied
                        .list_all(ctx, &ListQuery::all().name(tag.clone()))
                        .await
                        .map(|l| {
                            (l.len() != 1 || l[0].id != original)
                                .then(|| format!("list by name gave {} entries", l.len()))
                        }),
                    "store" => proxied.store(ctx, new_name).await.map(|_| None),
                    "create_key" => proxied.create_key(ctx, &spec).await.map(|_| None),
                    "delete" => proxied.delete(ctx, &original, false).await.map(|_| None),
                    _ => proxied.clone_secret(ctx, &original).await.map(|_| None),
                }
            };
            let res = tokio::time::timeout(Duration::from_secs(120), fut).await;
            let fired = proxy.counters().total_injected() > before;
            proxy.clear();
            if !fired {
                rep.not_fired.push(cell.clone());
            }
            let mut failure: Option<(ErrorKind, String)> = None;
            let ok = match res {
                Err(_) => {
                    rep.violations
                        .push(format!("{cell}: no answer within 120 s"));
                    false
                }
                Ok(Ok(problem)) => {
                    rep.succeeded += 1;
                    if let Some(p) = problem {
                        rep.violations.push(format!("{cell}: {p}"));
                    }
                    true
                }
                Ok(Err(e)) => {
                    failure = Some((e.kind(), e.to_string()));
                    *rep.typed_errors
                        .entry(format!("{:?}", e.kind()))
                        .or_default() += 1;
                    // A delete whose answer was lost may be retried and find the secret gone.
                    let tolerated = TRANSPORT_KINDS.contains(&e.kind())
                        || (op == "delete" && e.kind() == ErrorKind::NotFound);
                    if !tolerated {
                        rep.violations.push(format!(
                            "{cell}: error of kind {:?} for a transport fault: {e}",
                            e.kind()
                        ));
                    }
                    false
                }
            };
            // What the server holds now, seen without the proxy.
            let named = direct
                .list_all(ctx, &ListQuery::all().name(tag.clone()))
                .await
                .expect("direct list");
            let expected_without_original = match op {
                "store" | "create_key" | "clone" => usize::from(ok),
                _ => 0,
            };
            let original_there = named.iter().any(|m| m.id == original);
            let others = named.len() - usize::from(original_there);
            match op {
                "store" | "create_key" | "clone" => {
                    if others > 1 {
                        rep.violations.push(format!(
                            "{cell}: {others} secrets created by one call (a non-idempotent call was repeated)"
                        ));
                    } else if !ok && others == 1 && fault.reaches_server() {
                        rep.orphans_after_lost_answer.push(cell.clone());
                        // The caller must learn that the call may have been carried out.
                        if let Some((ErrorKind::Unavailable, text)) = &failure {
                            if !text.contains("outcome is unknown") {
                                rep.violations.push(format!(
                                    "{cell}: a lost answer left a secret, but the error does not say the outcome is unknown: {text}"
                                ));
                            }
                        }
                    } else if others != expected_without_original {
                        rep.violations.push(format!(
                            "{cell}: call {} but {others} new secret(s) left on the server",
                            if ok { "succeeded" } else { "failed" }
                        ));
                    }
                }
                "delete" => {
                    if ok && original_there {
                        rep.violations.push(format!(
                            "{cell}: delete succeeded but the secret is still there"
                        ));
                    }
                }
                _ => {
                    if !original_there {
                        rep.violations
                            .push(format!("{cell}: a read removed the secret"));
                    }
                }
            }
            for m in named {
                let _ = direct.delete(ctx, &m.id, true).await;
            }
        }
    }
    rep.injected = proxy.counters().total_injected();
    rep
}

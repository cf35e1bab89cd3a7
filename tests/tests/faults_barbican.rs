//! Backend faults against the real Keystone and Barbican: a fault-injecting
//! proxy in front of Barbican (every operation × every fault) and one in
//! front of Keystone (token requests). Each call succeeds after a retry or
//! returns a typed error of a transport kind; a store or key order whose
//! answer was lost is never repeated into two secrets; a failed clone leaves
//! nothing behind.

use std::time::Duration;

use keymgr::{ErrorKind, ListQuery};
use keymgr_test_support::env::OpenStackEnv;
use keymgr_test_support::proxy::{FaultProxy, Rule};
use tests::faults::{all_faults, run_matrix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_barbican_call_survives_every_fault() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let proxy = FaultProxy::start(&env.barbican_url).await.unwrap();
    let (mut c, _) = tests::barbican_config(&env, None, Some(&proxy.url("")));
    c.section.insert("timeout".into(), toml::Value::Float(5.0));
    let proxied = keymgr::build(&c).unwrap();
    let (d, _) = tests::barbican_config(&env, None, None);
    let direct = keymgr::build(&d).unwrap();
    let ctx = keymgr::Context::new("", "tester");
    // Warm the proxied client (token, microversion) so faults hit the operation itself.
    proxied
        .list(&ctx, &ListQuery::all().page(0, 1))
        .await
        .unwrap();
    let rep = run_matrix(
        "barbican",
        proxied,
        direct,
        &proxy,
        &ctx,
        "POST",
        &all_faults(Duration::from_secs(6)),
    )
    .await;
    eprintln!("barbican fault matrix: {rep:#?}");
    assert!(
        rep.injected >= rep.cells / 2,
        "too few faults fired: {rep:?}"
    );
    assert!(
        rep.violations.is_empty(),
        "violations: {:#?}",
        rep.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_faults_give_typed_errors_and_recover() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let proxy = FaultProxy::start(&env.keystone_url).await.unwrap();
    let mut fired = 0;
    for fault in all_faults(Duration::from_secs(9)) {
        let (mut c, _) = tests::barbican_config(&env, Some(&proxy.url("/v3")), None);
        c.section.insert("timeout".into(), toml::Value::Float(8.0));
        let km = keymgr::build(&c).unwrap();
        let ctx = keymgr::Context::new("", "tester");
        proxy.clear();
        let before = proxy.counters().total_injected();
        proxy.inject(
            Rule::once(fault.clone())
                .method("POST")
                .path("/auth/tokens"),
        );
        let res = tokio::time::timeout(
            Duration::from_secs(120),
            km.list(&ctx, &ListQuery::all().page(0, 1)),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: no answer within 120 s", fault.name()));
        fired += proxy.counters().total_injected() - before;
        if let Err(e) = &res {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Unavailable
                        | ErrorKind::Timeout
                        | ErrorKind::Backend
                        | ErrorKind::Unauthenticated
                ),
                "{}: token fault gave {:?}: {e}",
                fault.name(),
                e.kind()
            );
        }
        // The fault is gone: the same client now works (nothing poisoned its token cache).
        km.list(&ctx, &ListQuery::all().page(0, 1))
            .await
            .unwrap_or_else(|e| panic!("{}: no recovery after the fault: {e}", fault.name()));
        eprintln!(
            "keystone {}: first call {}",
            fault.name(),
            match &res {
                Ok(_) => "succeeded (retried)".to_string(),
                Err(e) => format!("{:?}", e.kind()),
            }
        );
    }
    assert!(fired >= 5, "only {fired} Keystone faults fired");
}

//! Backend faults against the real OpenBao: a fault-injecting proxy between
//! the Vault backend and the server; every operation meets every fault
//! (reset before/after the server acted, 500/502/503, a delay past the
//! timeout, truncated and non-JSON bodies, a wrong Content-Type). Each call
//! succeeds (after a retry) or returns a transport-kind typed error, a
//! retried write never creates two secrets, and a failed clone leaves nothing.

use std::time::Duration;

use keymgr_test_support::env::VaultEnv;
use keymgr_test_support::proxy::FaultProxy;
use tests::faults::{all_faults, run_matrix};

async fn setup() -> Option<(FaultProxy, keymgr::Config, keymgr::Config)> {
    let env = VaultEnv::load()?;
    let proxy = FaultProxy::start(&env.addr).await.unwrap();
    let (mut c, _) = tests::vault_config(&env, Some(&proxy.url("")));
    c.section.insert("timeout".into(), toml::Value::Float(2.0));
    let (d, _) = tests::vault_config(&env, None);
    Some((proxy, c, d))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vault_call_survives_every_fault() {
    let Some((proxy, c, d)) = setup().await else {
        return;
    };
    let proxied = keymgr::build(&c).unwrap();
    let direct = keymgr::build(&d).unwrap();
    let ctx = keymgr::Context::new("faults", "tester");
    let rep = run_matrix(
        "vault",
        proxied,
        direct,
        &proxy,
        &ctx,
        "POST",
        &all_faults(Duration::from_secs(3)),
    )
    .await;
    eprintln!("vault fault matrix: {rep:#?}");
    assert_eq!(
        rep.not_fired,
        Vec::<String>::new(),
        "faults that never fired"
    );
    // Includes a 200 whose body is not JSON: retried, never NotFound (cbc9a44).
    assert!(
        rep.violations.is_empty(),
        "violations: {:#?}",
        rep.violations
    );
    // Client-chosen ids with check-and-set: even a lost answer leaves no orphan.
    assert!(
        rep.orphans_after_lost_answer.is_empty(),
        "orphans: {:?}",
        rep.orphans_after_lost_answer
    );
}

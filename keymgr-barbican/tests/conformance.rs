//! The shared conformance suite against a real Keystone and a real Barbican
//! (`scripts/servers/openstack.sh`), with password and application-credential
//! auth; skipped with a reason when they are not running, failed instead when
//! `KEYMGR_REQUIRE_TOOLS=1`.

mod common;

use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager};
use keymgr_core::testkit;

use common::{unique, Keystone};
use keymgr_test_support::env::OpenStackEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_password_auth() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    let a = env.ctx(&env.user_a);
    // Project B acts through its user's own token: Barbican isolates.
    let b = env.user_ctx(&env.user_b).await;
    testkit::run_conformance(&km, &a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_application_credential_auth() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let (id, secret) = env.app_cred(&env.user_b, &unique("conf"), None).await;
    let mut cfg = BarbicanConfig::application_credential(&env.keystone_url, id, secret);
    cfg.http_retries = 4;
    let km = BarbicanKeyManager::new(cfg).unwrap();
    let own = km.own_context().await.unwrap();
    assert_eq!(
        own.project_id, env.user_b.project_id,
        "an app credential is scoped to its project"
    );
    let a = env.ctx(&env.user_b);
    let b = env.user_ctx(&env.user_a).await;
    testkit::run_conformance(&km, &a, &b).await;
}

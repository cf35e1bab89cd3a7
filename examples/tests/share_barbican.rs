//! Barbican-only share parts (feature `barbican`): the ACL grant to the
//! service user and the per-share-server application credential restricted
//! to one secret, against the test environment's Keystone + Barbican.
#![cfg(feature = "barbican")]

mod common;

use std::sync::Arc;

use examples::share::barbican::{BarbicanGranter, TenantUser};
use examples::share::{CreateShare, ShareService};
use keymgr::{ErrorKind, KeyManager, KeySpec, NewSecret, SecretKind};
use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager};
use keymgr_test_support::env::OpenStackEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_server_gets_acl_and_restricted_app_credential() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let a = env.user_a.clone();
    let (keystone, user, user_id, password, project, project_id, service_user) = (
        env.keystone_url,
        a.name,
        a.id,
        a.password,
        a.project,
        a.project_id,
        env.service.id,
    );

    let dir = tempfile::tempdir().unwrap();
    let b = common::backends(dir.path())
        .into_iter()
        .find(|b| b.name == "barbican")
        .expect("barbican backend configured");
    let cfg = common::config(&b, dir.path(), "");
    let owner = Arc::new(
        BarbicanKeyManager::new(BarbicanConfig::password(
            &keystone, &user, &password, &project, "Default",
        ))
        .unwrap(),
    );
    let granter = Arc::new(BarbicanGranter::new(
        &keystone,
        owner.clone(),
        TenantUser {
            user_id,
            user_name: user,
            password: zeroize::Zeroizing::new(password),
            project_id,
            domain: "Default".into(),
        },
        &service_user,
    ));
    let svc = ShareService::new(cfg.clone())
        .unwrap()
        .with_granter(granter.clone());
    let (km, ctx) = (cfg.km.clone(), cfg.ctx.clone());
    svc.create_type("enc-server", Some("share_server")).unwrap();
    let key = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Passphrase, b"byok share server key".to_vec()),
        )
        .await
        .unwrap();
    let other = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();

    let req = |net: &str| CreateShare {
        size_mib: 1,
        share_type: "enc-server".into(),
        network: Some(net.into()),
        encryption_key_ref: Some(key.to_string()),
    };
    let s1 = svc.create(&req("n1")).await.unwrap();
    let s2 = svc.create(&req("n1")).await.unwrap();
    assert_eq!(s1.share_server_id, s2.share_server_id);
    let server = svc
        .get_server(s1.share_server_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(server.access.method, "app_credential");
    let acid = server.access.app_credential_id.clone().unwrap();
    let file = server.access.credential_file.clone().unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(granter.app_credential_exists(&acid).await.unwrap());
    let acl = owner.get_acl(&ctx, &key).await.unwrap();
    assert!(acl.read_users.contains(&service_user), "ACL: {acl:?}");

    // the back end works with only the credential it was handed
    let h = svc.open(&s1.id).await.unwrap();
    h.write_at(b"written through the app credential", 100)
        .unwrap();
    drop(h);
    let got = svc.read(&s1.id, 100, 34).await.unwrap();
    assert_eq!(got, b"written through the app credential");
    // ... and that credential reads that one secret only
    let restricted = BarbicanKeyManager::new(BarbicanConfig::application_credential(
        &keystone,
        &acid,
        std::fs::read_to_string(&file).unwrap(),
    ))
    .unwrap();
    let own = keymgr::Context::new("", "");
    assert!(restricted.get(&own, &key).await.is_ok());
    let denied = restricted.get(&own, &other).await.unwrap_err();
    assert!(
        matches!(
            denied.kind(),
            ErrorKind::Forbidden | ErrorKind::Unauthenticated
        ),
        "{denied}"
    );
    let denied = restricted.delete(&own, &key, true).await.unwrap_err();
    assert!(
        matches!(
            denied.kind(),
            ErrorKind::Forbidden | ErrorKind::Unauthenticated
        ),
        "{denied}"
    );

    // deleting the last share deletes the server, its credential and the ACL entry
    svc.delete(&s1.id).await.unwrap();
    assert!(granter.app_credential_exists(&acid).await.unwrap());
    svc.delete(&s2.id).await.unwrap();
    assert!(svc.list_servers().unwrap().is_empty());
    assert!(!granter.app_credential_exists(&acid).await.unwrap());
    assert!(!std::path::Path::new(&file).exists());
    let acl = owner.get_acl(&ctx, &key).await.unwrap();
    assert!(!acl.read_users.contains(&service_user), "ACL: {acl:?}");
    km.delete(&ctx, &key, false).await.unwrap();
    km.delete(&ctx, &other, false).await.unwrap();
}

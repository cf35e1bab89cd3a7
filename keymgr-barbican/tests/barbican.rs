//! keymgr-barbican against a real Keystone and a real Barbican
//! (`scripts/servers/openstack.sh`); skipped with a reason when they are
//! not running, failed instead when `KEYMGR_REQUIRE_TOOLS=1`.

mod common;

use std::collections::BTreeSet;

use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager, SecretFilter};
use keymgr_core::{
    Consumer, Context, ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, SecretKind,
};
use serde_json::json;

use common::{unique, Keystone};
use keymgr_test_support::env::OpenStackEnv;

fn kind_of<T: std::fmt::Debug>(r: keymgr_core::Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_returns_every_secret_beyond_100() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    let ctx = env.ctx(&env.user_a);
    // '+' and spaces: Barbican decodes the name filter twice.
    let name = format!("{} many + more", unique("list"));
    let mut ids = BTreeSet::new();
    for i in 0..105u32 {
        let id = km
            .store(
                &ctx,
                NewSecret::new(SecretKind::Opaque, i.to_be_bytes().to_vec()).named(&name),
            )
            .await
            .unwrap();
        ids.insert(id);
    }
    let all = km
        .list_all(&ctx, &ListQuery::all().name(&name))
        .await
        .unwrap();
    assert_eq!(all.len(), 105, "every secret, once");
    assert_eq!(
        all.iter().map(|m| m.id.clone()).collect::<BTreeSet<_>>(),
        ids
    );

    // Barbican's own page size is 10 when none is asked for.
    let first = km.list(&ctx, &ListQuery::all().name(&name)).await.unwrap();
    assert_eq!(first.secrets.len(), 10);
    assert_eq!(first.total, Some(105));
    assert_eq!(first.next_offset, Some(10));
    // More than Barbican's maximum page (100) is capped, and paging goes on.
    let big = km
        .list(&ctx, &ListQuery::all().name(&name).page(0, 500))
        .await
        .unwrap();
    assert_eq!(big.secrets.len(), 100);
    assert_eq!(big.next_offset, Some(100));
    let small = km
        .list_all(&ctx, &ListQuery::all().name(&name).page(0, 7))
        .await
        .unwrap();
    assert_eq!(small.len(), 105);

    // Barbican-only filters.
    let filtered = km
        .list_all_filtered(
            &ctx,
            &SecretFilter {
                query: ListQuery::all().name(&name),
                sort: Some("created:desc".into()),
                ..SecretFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(filtered.len(), 105);
    let created: Vec<_> = filtered.iter().map(|m| m.created.unwrap()).collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "sorted by created desc"
    );

    for id in ids {
        km.delete(&ctx, &id, false).await.unwrap();
    }
    assert!(km
        .list_all(&ctx, &ListQuery::all().name(&name))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_are_used_and_bad_ones_are_unauthenticated() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    // The key manager's own credentials are alice's (project A) ...
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    let token_b = env.token(&env.user_b).await;
    let bob = env.ctx(&env.user_b).with_user_token(token_b.clone());
    // ... but with bob's token the secret lands in project B.
    let id = km
        .store(
            &bob,
            NewSecret::new(SecretKind::Passphrase, b"bob's".to_vec()).named(unique("ut")),
        )
        .await
        .unwrap();
    let hidden = [ErrorKind::NotFound, ErrorKind::Forbidden];
    assert!(hidden.contains(&kind_of(km.get(&env.ctx(&env.user_a), &id).await)));
    let km_b = BarbicanKeyManager::new(env.password_config(&env.user_b)).unwrap();
    assert_eq!(
        km_b.get(&env.ctx(&env.user_b), &id)
            .await
            .unwrap()
            .payload
            .expose(),
        b"bob's"
    );

    // Project B without B's token: refused here, nothing sent.
    let err = km.get(&env.ctx(&env.user_b), &id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert!(err.to_string().contains("user's token"), "{err}");

    // A garbage token, then a revoked one: Unauthenticated.
    let junk = env.ctx(&env.user_b).with_user_token("gAAAAABnot-a-token");
    assert_eq!(
        kind_of(km.get(&junk, &id).await),
        ErrorKind::Unauthenticated
    );
    env.revoke(&token_b).await;
    let err = km.get(&bob, &id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    let err = km.list(&bob, &ListQuery::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    km_b.delete(&env.ctx(&env.user_b), &id, false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_token_is_sent_with_user_tokens() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let mut cfg = env.password_config(&env.user_a);
    cfg.service_username = Some(env.service.name.clone());
    cfg.service_password = Some(env.service.password.clone().into());
    cfg.service_user_domain_name = Some(env.domain.clone());
    cfg.service_project_name = Some(env.service.project.clone());
    cfg.service_project_domain_name = Some(env.domain.clone());
    let km = BarbicanKeyManager::new(cfg).unwrap();
    let bob = env.user_ctx(&env.user_b).await;
    let id = km
        .create_key(&bob, &KeySpec::aes(256).named(unique("svc")))
        .await
        .unwrap();
    assert_eq!(km.get(&bob, &id).await.unwrap().payload.len(), 32);
    km.delete(&bob, &id, false).await.unwrap();

    // Wrong service credentials are reported, not ignored.
    let mut cfg = env.password_config(&env.user_a);
    cfg.service_username = Some(env.service.name.clone());
    cfg.service_password = Some("wrong".to_string().into());
    cfg.service_user_domain_name = Some(env.domain.clone());
    let km = BarbicanKeyManager::new(cfg).unwrap();
    assert_eq!(
        kind_of(km.list(&bob, &ListQuery::all()).await),
        ErrorKind::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_block_delete_at_1_2_unless_forced() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    assert_eq!(km.microversion().await.unwrap(), "1.2");
    let ctx = env.ctx(&env.user_a);
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Symmetric, vec![9u8; 32]).named(unique("cons")),
        )
        .await
        .unwrap();
    let c = Consumer::new("cinder", "volume", unique("vol"));
    km.add_consumer(&ctx, &id, &c).await.unwrap();
    let err = km.delete(&ctx, &id, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string().contains("consumers"),
        "Barbican's description kept: {err}"
    );
    assert_eq!(
        km.metadata(&ctx, &id).await.unwrap().consumers,
        vec![c.clone()]
    );
    km.delete(&ctx, &id, true).await.unwrap();
    assert_eq!(kind_of(km.get(&ctx, &id).await), ErrorKind::NotFound);

    // Capped at 1.1 the refusal is the client's own; at 1.0 there are no consumers.
    let mut cfg = env.password_config(&env.user_a);
    cfg.max_microversion = Some("1.1".into());
    let km11 = BarbicanKeyManager::new(cfg).unwrap();
    assert_eq!(km11.microversion().await.unwrap(), "1.1");
    let id = km11
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, vec![1u8]).named(unique("cons11")),
        )
        .await
        .unwrap();
    km11.add_consumer(&ctx, &id, &c).await.unwrap();
    assert_eq!(
        kind_of(km11.delete(&ctx, &id, false).await),
        ErrorKind::Conflict
    );
    km11.delete(&ctx, &id, true).await.unwrap();

    let mut cfg = env.password_config(&env.user_a);
    cfg.max_microversion = Some("1.0".into());
    let km10 = BarbicanKeyManager::new(cfg).unwrap();
    let id = km10
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, vec![2u8]).named(unique("cons10")),
        )
        .await
        .unwrap();
    assert_eq!(
        kind_of(km10.add_consumer(&ctx, &id, &c).await),
        ErrorKind::InvalidInput
    );
    assert!(km10.metadata(&ctx, &id).await.unwrap().consumers.is_empty());
    km10.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_allow_reading_one_secret_only() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let owner = BarbicanKeyManager::new(env.password_config(&env.user_b)).unwrap();
    let ctx = env.ctx(&env.user_b);
    let name = unique("share");
    let allowed = owner
        .store(
            &ctx,
            NewSecret::new(SecretKind::Passphrase, b"share-server".to_vec()).named(&name),
        )
        .await
        .unwrap();
    let other = owner
        .store(
            &ctx,
            NewSecret::new(SecretKind::Passphrase, b"not yours".to_vec()).named(&name),
        )
        .await
        .unwrap();
    let rules = json!([
        {"service": "key-manager", "method": "GET", "path": format!("/v1/secrets/{allowed}")},
        {"service": "key-manager", "method": "GET", "path": format!("/v1/secrets/{allowed}/payload")},
    ]);
    let (acid, acsecret) = env
        .app_cred(&env.user_b, &unique("manila"), Some(rules))
        .await;
    let mut cfg = BarbicanConfig::application_credential(&env.keystone_url, acid, acsecret);
    cfg.http_retries = 1;
    let km = BarbicanKeyManager::new(cfg).unwrap();
    let own = Context::new("", "");

    let s = km.get(&own, &allowed).await.unwrap();
    assert_eq!(s.payload.expose(), b"share-server");
    assert_eq!(s.kind(), SecretKind::Passphrase);

    let denied = [ErrorKind::Unauthenticated, ErrorKind::Forbidden];
    for (what, r) in [
        ("get other", km.get(&own, &other).await.map(|_| ())),
        (
            "metadata other",
            km.metadata(&own, &other).await.map(|_| ()),
        ),
        ("list", km.list(&own, &ListQuery::all()).await.map(|_| ())),
        ("delete allowed", km.delete(&own, &allowed, true).await),
        (
            "store",
            km.store(&own, NewSecret::new(SecretKind::Opaque, vec![1u8]))
                .await
                .map(|_| ()),
        ),
        (
            "create_key",
            km.create_key(&own, &KeySpec::aes(128)).await.map(|_| ()),
        ),
        ("acl", km.set_acl(&own, &allowed, &[], false).await),
    ] {
        let k = r
            .err()
            .unwrap_or_else(|| panic!("{what}: allowed by a restricted credential"));
        assert!(denied.contains(&k.kind()), "{what}: {k}");
    }
    // Nothing changed.
    let left = owner
        .list_all(&ctx, &ListQuery::all().name(&name))
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    owner.delete(&ctx, &allowed, false).await.unwrap();
    owner.delete(&ctx, &other, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_grant_read_to_another_user() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    let ctx = env.ctx(&env.user_a);
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, vec![5u8; 8]).named(unique("acl")),
        )
        .await
        .unwrap();
    let acl = km.get_acl(&ctx, &id).await.unwrap();
    assert!(acl.project_access && acl.read_users.is_empty(), "{acl:?}");

    let bob = env.user_ctx(&env.user_b).await;
    let hidden = [ErrorKind::NotFound, ErrorKind::Forbidden];
    assert!(hidden.contains(&kind_of(km.get(&bob, &id).await)));
    km.set_acl(&ctx, &id, std::slice::from_ref(&env.user_b.id), true)
        .await
        .unwrap();
    let acl = km.get_acl(&ctx, &id).await.unwrap();
    assert_eq!(acl.read_users, vec![env.user_b.id.clone()]);
    assert_eq!(km.get(&bob, &id).await.unwrap().payload.expose(), &[5u8; 8]);
    // Listing the secrets shared with bob.
    let shared = km
        .list_all_filtered(
            &bob,
            &SecretFilter {
                acl_only: true,
                ..SecretFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(shared.iter().any(|m| m.id == id));

    km.update_acl(&ctx, &id, None, Some(false)).await.unwrap();
    let acl = km.get_acl(&ctx, &id).await.unwrap();
    assert!(!acl.project_access);
    assert_eq!(acl.read_users, vec![env.user_b.id.clone()]);

    km.delete_acl(&ctx, &id).await.unwrap();
    let acl = km.get_acl(&ctx, &id).await.unwrap();
    assert!(acl.project_access && acl.read_users.is_empty());
    assert!(hidden.contains(&kind_of(km.get(&bob, &id).await)));
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiration_and_whitespace_passphrases_round_trip() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    let ctx = env.ctx(&env.user_a);
    let exp = keymgr_core::OffsetDateTime::now_utc() + time::Duration::days(3);
    let mut ns = NewSecret::new(SecretKind::Passphrase, b"  padded passphrase\n".to_vec());
    ns.expiration = Some(exp);
    let id = km.store(&ctx, ns).await.unwrap();
    let s = km.get(&ctx, &id).await.unwrap();
    assert_eq!(
        s.payload.expose(),
        b"  padded passphrase\n",
        "bytes kept exactly"
    );
    assert_eq!(s.kind(), SecretKind::Passphrase);
    let got = s.metadata.expiration.expect("expiration kept");
    assert!(
        (got - exp).abs() < time::Duration::seconds(1),
        "{got} vs {exp}"
    );
    km.delete(&ctx, &id, false).await.unwrap();

    let mut spec = KeySpec::aes(256).named(unique("exp"));
    spec.expiration = Some(exp);
    let id = km.create_key(&ctx, &spec).await.unwrap();
    let m = km.metadata(&ctx, &id).await.unwrap();
    assert!((m.expiration.unwrap() - exp).abs() < time::Duration::seconds(1));
    km.delete(&ctx, &id, false).await.unwrap();

    // A configured endpoint (no catalog lookup) and the internal interface both work.
    let mut cfg = env.password_config(&env.user_a);
    cfg.barbican_endpoint = Some(format!("{}/v1", env.barbican_url));
    assert!(BarbicanKeyManager::new(cfg)
        .unwrap()
        .list(&ctx, &ListQuery::all())
        .await
        .is_ok());
    let mut cfg = env.password_config(&env.user_a);
    cfg.barbican_endpoint_type = keymgr_barbican::EndpointType::Internal;
    cfg.barbican_region_name = Some("RegionOne".into());
    assert!(BarbicanKeyManager::new(cfg)
        .unwrap()
        .list(&ctx, &ListQuery::all())
        .await
        .is_ok());
    let mut cfg = env.password_config(&env.user_a);
    cfg.barbican_region_name = Some("Nowhere".into());
    let err = BarbicanKeyManager::new(cfg)
        .unwrap()
        .list(&ctx, &ListQuery::all())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // Wrong password: Unauthenticated with Keystone's reason.
    let mut cfg = env.password_config(&env.user_a);
    cfg.password = Some("nope".to_string().into());
    let err = BarbicanKeyManager::new(cfg)
        .unwrap()
        .list(&ctx, &ListQuery::all())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(!err.to_string().contains("nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_variant_reaches_the_right_project() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let u = &env.user_a;
    let mut variants = Vec::new();

    // Password with ids instead of names.
    let mut c = env.password_config(u);
    c.username = None;
    c.user_domain_name = None;
    c.user_id = Some(u.id.clone());
    c.project_name = None;
    c.project_domain_name = None;
    c.project_id = Some(u.project_id.clone());
    variants.push(("password by ids", c));

    // A token exchanged for a project-scoped one.
    let c = BarbicanConfig {
        auth_endpoint: Some(env.keystone_url.clone()),
        auth_type: keymgr_barbican::AuthType::Token,
        token: Some(env.token(u).await.into()),
        project_name: Some(u.project.clone()),
        project_domain_name: Some(env.domain.clone()),
        ..BarbicanConfig::default()
    };
    variants.push(("token", c));

    // An application credential by name and user.
    let ac_name = unique("byname");
    let (_, secret) = env.app_cred(u, &ac_name, None).await;
    let c = BarbicanConfig {
        auth_endpoint: Some(env.keystone_url.clone()),
        auth_type: keymgr_barbican::AuthType::ApplicationCredential,
        application_credential_name: Some(ac_name),
        application_credential_secret: Some(secret.into()),
        username: Some(u.name.clone()),
        user_domain_name: Some(env.domain.clone()),
        ..BarbicanConfig::default()
    };
    variants.push(("application credential by name", c));

    for (what, cfg) in variants {
        let km = BarbicanKeyManager::new(cfg).unwrap();
        let own = km
            .own_context()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(own.project_id, u.project_id, "{what}");
        assert_eq!(own.user_id, u.id, "{what}");
        let ctx = env.ctx(u);
        let id = km
            .store(
                &ctx,
                NewSecret::new(SecretKind::Opaque, vec![3u8; 3]).named(unique("auth")),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[3u8; 3]);
        km.delete(&ctx, &id, false).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_key_leaves_no_order_behind() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    // Project B's user, through its own token, so the count is not
    // disturbed by the other tests (which create keys in project A).
    let token = env.token(&env.user_b).await;
    let orders = || async {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/orders?limit=1", env.barbican_url))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["total"].as_u64().unwrap_or(0)
    };
    let km = BarbicanKeyManager::new(env.password_config(&env.user_a)).unwrap();
    let ctx = env.ctx(&env.user_b).with_user_token(token.clone());
    let before = orders().await;
    let mut ids = Vec::new();
    for bits in [128, 256, 512] {
        let id = km
            .create_key(&ctx, &KeySpec::aes(bits).named(unique("ord")))
            .await
            .unwrap();
        let s = km.get(&ctx, &id).await.unwrap();
        assert_eq!(s.payload.len() * 8, bits as usize);
        if bits == 512 {
            assert_eq!(s.metadata.mode.as_deref(), Some("xts"));
        }
        ids.push(id);
    }
    assert_eq!(orders().await, before, "finished key orders are deleted");
    // A spec Barbican's crypto plugin refuses (512 bits without XTS): the
    // order fails and Barbican reports it as a server error (code 500,
    // "Process TypeOrder failure"); the failed order is removed as well.
    let err = km
        .create_key(&ctx, &KeySpec::aes(512).with_mode("cbc"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Backend | ErrorKind::InvalidInput),
        "{err}"
    );
    assert!(err.to_string().contains("create_key aes-512"), "{err}");
    assert_eq!(orders().await, before, "failed key orders are deleted");
    for id in ids {
        km.delete(&ctx, &id, false).await.unwrap();
    }
}

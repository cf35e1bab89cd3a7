//! Injected faults between the client and the real OpenBao dev server:
//! lost answers of writes, 429 with Retry-After, 412, 5xx, 307 redirects,
//! sealed nodes, dead nodes, revoked tokens and rotated token files.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keymgr_core::{Consumer, Context, ErrorKind, KeyManager, ListQuery, NewSecret, SecretKind};
use keymgr_test_support::env::VaultEnv;
use keymgr_test_support::proxy::{Fault, FaultProxy, Rule};
use keymgr_vault::{VaultConfig, VaultKeyManager};
use reqwest::Method;

async fn proxied() -> Option<(FaultProxy, String)> {
    let env = VaultEnv::load()?;
    let proxy = FaultProxy::start(&env.addr).await.unwrap();
    Some((proxy, env.root_token))
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_neither_lost_nor_duplicated() {
    let Some((proxy, token)) = proxied().await else {
        return;
    };
    let km = VaultKeyManager::new(VaultConfig::with_token(proxy.url(""), &token)).unwrap();
    let ctx = Context::new("faults", "u");
    let name = unique("lost-answer");
    proxy.inject(
        Rule::once(Fault::ResetAfter)
            .method("POST")
            .path("/v1/secret/data/"),
    );
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, b"exactly once".to_vec()).named(&name),
        )
        .await
        .expect("the create is resolved after a lost answer");
    let posts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "the write was sent twice: {posts:?}");
    assert_eq!(posts[0].path, posts[1].path, "both attempts used one id");
    assert!(posts[0].path.ends_with(id.as_str()));
    assert_eq!(
        km.get(&ctx, &id).await.unwrap().payload.expose(),
        b"exactly once"
    );
    let listed = km
        .list_all(&ctx, &ListQuery::all().name(&name))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "one record, not two: {listed:?}");
    assert_eq!(km.stats().retries, 1);

    // The same for a consumer removal whose answer was lost.
    let c = Consumer::new("cinder", "volume", "v1");
    km.add_consumer(&ctx, &id, &c).await.unwrap();
    proxy.inject(
        Rule::once(Fault::ResetAfter)
            .method("POST")
            .path(id.as_str()),
    );
    km.remove_consumer(&ctx, &id, &c)
        .await
        .expect("a removal that landed is done");
    assert!(km.list_consumers(&ctx, &id).await.unwrap().is_empty());
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn throttling_and_transient_errors_are_retried() {
    let Some((proxy, token)) = proxied().await else {
        return;
    };
    let km = VaultKeyManager::new(VaultConfig::with_token(proxy.url(""), &token)).unwrap();
    let ctx = Context::new("faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![9u8; 4]))
        .await
        .unwrap();

    proxy.inject(
        Rule::once(Fault::RetryAfter(429, 1))
            .method("GET")
            .path(id.as_str()),
    );
    let t0 = Instant::now();
    km.get(&ctx, &id).await.expect("get after a 429");
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "Retry-After was honoured: {:?}",
        t0.elapsed()
    );

    proxy.inject(
        Rule::once(Fault::Status(412))
            .method("GET")
            .path(id.as_str())
            .times(2),
    );
    proxy.inject(
        Rule::once(Fault::Status(500))
            .method("GET")
            .path(id.as_str()),
    );
    proxy.inject(
        Rule::once(Fault::Status(502))
            .method("GET")
            .path(id.as_str()),
    );
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[9u8; 4]);
    assert_eq!(km.stats().retries, 5);

    // More failures than retries: a typed, retryable error naming the call.
    let mut cfg = VaultConfig::with_token(proxy.url(""), &token);
    cfg.max_retries = 1;
    let km1 = VaultKeyManager::new(cfg).unwrap();
    proxy.inject(
        Rule::once(Fault::Status(500))
            .method("GET")
            .path(id.as_str())
            .times(2),
    );
    let e = km1.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.is_retryable() && e.to_string().contains(&id.to_string()),
        "{e}"
    );
    // 400 is the caller's mistake: not retried, the server's message kept.
    proxy.inject(
        Rule::once(Fault::Status(400))
            .method("GET")
            .path(id.as_str()),
    );
    let e = km1.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("injected fault"), "{e}");
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn redirects_are_followed_with_the_token() {
    let Some((proxy, token)) = proxied().await else {
        return;
    };
    let km = VaultKeyManager::new(VaultConfig::with_token(proxy.url(""), &token)).unwrap();
    let ctx = Context::new("faults", "u");
    proxy.inject(
        Rule::once(Fault::Redirect)
            .method("POST")
            .path("/v1/secret/data/"),
    );
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![1u8; 8]))
        .await
        .expect("a redirected write lands with the token");
    assert_eq!(km.stats().redirects, 1);
    assert!(proxy.seen().iter().all(|s| s.has_header("x-vault-token")));
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[1u8; 8]);

    // A chain of redirects across two proxies is followed too.
    let looping = FaultProxy::start(&proxy.url("")).await.unwrap();
    let km2 = VaultKeyManager::new(VaultConfig::with_token(looping.url(""), &token)).unwrap();
    looping.inject(Rule::once(Fault::Redirect).method("GET").path("/v1/"));
    proxy.inject(Rule::once(Fault::Redirect).method("GET").path("/v1/"));
    // looping -> proxy -> upstream: two hops, within the bound.
    km2.get(&ctx, &id)
        .await
        .expect("two redirects are followed");
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn sealed_and_dead_nodes_fail_over_to_the_next() {
    let Some((sealed, token)) = proxied().await else {
        return;
    };
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    sealed.inject(
        Rule::once(Fault::Status(503))
            .method("GET")
            .path("/v1/")
            .times(1000),
    );
    sealed.inject(
        Rule::once(Fault::Status(503))
            .method("POST")
            .path("/v1/")
            .times(1000),
    );
    let nodes = format!("{dead},{},{}", sealed.url(""), sealed.upstream());
    let km = VaultKeyManager::new(VaultConfig::with_token(nodes, &token)).unwrap();
    let ctx = Context::new("faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![2u8; 8]))
        .await
        .expect("the third node takes the write");
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[2u8; 8]);
    assert!(km.stats().failovers >= 2);
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn a_revoked_approle_token_is_replaced_by_logging_in_again() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let role = env.approle.role_id.clone();
    let secret = env.approle.secret_id.clone();
    // Log in through a proxy to learn the token the client got.
    let proxy = FaultProxy::start(&raw.addr).await.unwrap();
    let km = VaultKeyManager::new(VaultConfig::with_approle(proxy.url(""), role, secret)).unwrap();
    let ctx = Context::new("faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![3u8; 8]))
        .await
        .unwrap();
    // Revoke every token minted by AppRole login (the client's among them).
    let (st, body) = raw
        .call(Method::GET, "auth/token/accessors?list=true", None)
        .await;
    assert_eq!(st, 200);
    for acc in body["data"]["keys"].as_array().unwrap() {
        let (_, info) = raw
            .call(
                Method::POST,
                "auth/token/lookup-accessor",
                Some(serde_json::json!({ "accessor": acc })),
            )
            .await;
        // Only the shared role's tokens (other tests here use other roles).
        if info["data"]["path"] == "auth/approle/login"
            && info["data"]["meta"]["role_name"] == "keymgr"
        {
            raw.call(
                Method::POST,
                "auth/token/revoke-accessor",
                Some(serde_json::json!({ "accessor": acc })),
            )
            .await;
        }
    }
    let s = km
        .get(&ctx, &id)
        .await
        .expect("the client logs in again after a 403");
    assert_eq!(s.payload.expose(), &[3u8; 8]);
    assert_eq!(km.stats().relogins, 1);
    let logins = proxy
        .seen()
        .iter()
        .filter(|s| s.path.contains("auth/approle/login"))
        .count();
    assert_eq!(logins, 2, "one lazy login, one after the revocation");
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn a_rotated_token_file_is_read_again_after_a_403() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let dir = std::env::temp_dir().join(unique("keymgr-vault-token"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    // First a token that is then revoked, then the working one.
    let (_, body) = raw
        .call(
            Method::POST,
            "auth/token/create",
            Some(serde_json::json!({"policies": ["root"], "ttl": "5m"})),
        )
        .await;
    let short = body["auth"]["client_token"].as_str().unwrap().to_string();
    std::fs::write(&file, format!("{short}\n")).unwrap();
    let cfg: VaultConfig = toml::from_str(&format!(
        "vault_url = [\"{}\"]\ntoken_file = \"{}\"",
        raw.addr,
        file.display()
    ))
    .unwrap();
    let km = VaultKeyManager::new(cfg).unwrap();
    let ctx = Context::new("faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![4u8; 8]))
        .await
        .unwrap();
    raw.call(
        Method::POST,
        "auth/token/revoke",
        Some(serde_json::json!({ "token": short })),
    )
    .await;
    std::fs::write(&file, &raw.token).unwrap();
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[4u8; 8]);
    assert_eq!(km.stats().relogins, 1);
    km.delete(&ctx, &id, false).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_short_lease_is_replaced_before_it_ends() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let role = unique("short");
    let (st, _) = raw
        .call(
            Method::POST,
            &format!("auth/approle/role/{role}"),
            Some(serde_json::json!({
                "token_policies": ["keymgr"], "token_ttl": "3s", "token_max_ttl": "3s"
            })),
        )
        .await;
    assert_eq!(st, 204);
    let (_, b) = raw
        .call(
            Method::GET,
            &format!("auth/approle/role/{role}/role-id"),
            None,
        )
        .await;
    let role_id = b["data"]["role_id"].as_str().unwrap().to_string();
    let (_, b) = raw
        .call(
            Method::POST,
            &format!("auth/approle/role/{role}/secret-id"),
            Some(serde_json::json!({})),
        )
        .await;
    let secret_id = b["data"]["secret_id"].as_str().unwrap().to_string();
    let proxy = FaultProxy::start(&raw.addr).await.unwrap();
    let km =
        VaultKeyManager::new(VaultConfig::with_approle(proxy.url(""), role_id, secret_id)).unwrap();
    let ctx = Context::new("faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![6u8; 8]))
        .await
        .unwrap();
    // Past 80% of the 3 s lease, before its end: a fresh login first.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[6u8; 8]);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    km.delete(&ctx, &id, false).await.unwrap();
    let logins = proxy
        .seen()
        .iter()
        .filter(|s| s.path.contains("auth/approle/login"))
        .count();
    assert_eq!(logins, 3, "a login per lease");
    assert_eq!(
        km.stats().relogins,
        0,
        "no request was refused for an expired token"
    );
}

#[tokio::test]
async fn a_success_whose_body_is_broken_is_retried_then_unavailable_never_not_found() {
    let Some((proxy, token)) = proxied().await else {
        return;
    };
    let km = VaultKeyManager::new(VaultConfig::with_token(proxy.url(""), &token)).unwrap();
    let ctx = Context::new("faults", "u");
    let name = unique("broken-body");
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, vec![8u8; 8]).named(&name),
        )
        .await
        .unwrap();
    // Once: retried, the real answer wins.
    proxy.inject(
        Rule::once(Fault::Body(200, "<html>proxy</html>".into()))
            .method("GET")
            .path(id.as_str()),
    );
    proxy.inject(
        Rule::once(Fault::Body(200, "{\"trunc".into()))
            .method("GET")
            .path("list=true"),
    );
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[8u8; 8]);
    let listed = km
        .list_all(&ctx, &ListQuery::all().name(&name))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    // Always: a typed transport error, not "not found" nor an empty list.
    let mut cfg = VaultConfig::with_token(proxy.url(""), &token);
    cfg.max_retries = 1;
    let km1 = VaultKeyManager::new(cfg).unwrap();
    proxy.inject(
        Rule::once(Fault::Body(200, "not json".into()))
            .method("GET")
            .path(id.as_str())
            .times(2),
    );
    let e = km1.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    proxy.inject(
        Rule::once(Fault::Body(200, "not json".into()))
            .method("GET")
            .path("list=true")
            .times(2),
    );
    let e = km1.list(&ctx, &ListQuery::all()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // JSON without the expected shape is no better.
    proxy.inject(
        Rule::once(Fault::Body(200, "{}".into()))
            .method("GET")
            .path(id.as_str()),
    );
    let e = km1.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn an_answer_over_the_body_cap_is_a_typed_error_not_read_whole() {
    let Some((proxy, token)) = proxied().await else {
        return;
    };
    let km = VaultKeyManager::new(VaultConfig::with_token(proxy.url(""), &token)).unwrap();
    let ctx = Context::new("faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![5u8; 8]))
        .await
        .unwrap();
    // 17 MiB of JSON string: over the 16 MiB cap, never held whole.
    let huge: Arc<str> = format!("\"{}\"", "k".repeat(17 << 20)).into();
    proxy.inject(
        Rule::once(Fault::Body(200, huge.clone()))
            .method("GET")
            .path(id.as_str()),
    );
    let e = km.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.to_string().contains("longer than"), "{e}");
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.expose(), &[5u8; 8]);
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn a_token_a_header_cannot_carry_is_unauthenticated_before_sending() {
    let Some((proxy, _token)) = proxied().await else {
        return;
    };
    let km = VaultKeyManager::new(VaultConfig::with_token(proxy.url(""), "s.bad\ntoken")).unwrap();
    let ctx = Context::new("faults", "u");
    let id = keymgr_core::SecretId::new_random();
    let e = km.get(&ctx, &id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(
        proxy.seen().is_empty(),
        "nothing is sent (never an empty X-Vault-Token): {:?}",
        proxy.seen()
    );
}

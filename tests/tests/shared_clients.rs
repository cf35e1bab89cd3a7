//! The client work the load figures ask for, against the real Keystone and
//! Barbican: one Keystone token for concurrent callers (a single fetch, no
//! stampede), identical concurrent `get`s of one id coalesced, a `get` in
//! two requests sent together, and one connection pool for the managers
//! built from one configuration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use keymgr::{NewSecret, SecretKind};
use keymgr_test_support::env::OpenStackEnv;
use keymgr_test_support::proxy::FaultProxy;

fn servers() -> Option<OpenStackEnv> {
    OpenStackEnv::load()
}

fn count(proxy: &FaultProxy, method: &str, path_part: &str) -> usize {
    proxy
        .counters()
        .log
        .iter()
        .filter(|l| l.method == method && l.path.contains(path_part))
        .count()
}

/// A stored secret (through the real servers) and its bytes.
async fn stored(env: &OpenStackEnv) -> (keymgr::SecretId, Vec<u8>) {
    let (c, _) = tests::barbican_config(env, None, None);
    let km = keymgr::build(&c).unwrap();
    let bytes: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(7)).collect();
    let id = km
        .store(
            &keymgr::Context::new("", "tester"),
            NewSecret::new(SecretKind::Opaque, bytes.clone()),
        )
        .await
        .unwrap();
    (id, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_keystone_token() {
    let Some(env) = servers() else {
        return;
    };
    let (id, bytes) = stored(&env).await;
    let proxy = FaultProxy::start(&env.keystone_url).await.unwrap();
    let (c, _) = tests::barbican_config(&env, Some(&proxy.url("/v3")), None);
    let km = keymgr::build(&c).unwrap();
    let ctx = keymgr::Context::new("", "tester");
    // 32 callers start at once on a manager that has no token yet.
    let calls = (0..32).map(|_| km.metadata(&ctx, &id));
    for r in futures::future::join_all(calls).await {
        r.expect("every caller succeeds");
    }
    assert_eq!(
        count(&proxy, "POST", "/auth/tokens"),
        1,
        "one token fetch for 32 concurrent callers: {:?}",
        proxy.counters().log
    );
    let got = km.get(&ctx, &id).await.unwrap();
    assert_eq!(got.payload.expose(), &bytes[..]);
    assert_eq!(
        count(&proxy, "POST", "/auth/tokens"),
        1,
        "the token is reused"
    );
    km.delete(&ctx, &id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_concurrent_gets_are_one_fetch_of_two_requests() {
    let Some(env) = servers() else {
        return;
    };
    let (id, bytes) = stored(&env).await;
    let proxy = FaultProxy::start(&env.barbican_url).await.unwrap();
    let (c, _) = tests::barbican_config(&env, None, Some(&proxy.url("")));
    let km = keymgr::build(&c).unwrap();
    let ctx = keymgr::Context::new("", "tester");

    // One get: the metadata and the payload, nothing else.
    let one = km.get(&ctx, &id).await.unwrap();
    assert_eq!(one.payload.expose(), &bytes[..]);
    let path = format!("/secrets/{}", id.as_str());
    let (meta0, payload0) = (
        count(&proxy, "GET", &path) - count(&proxy, "GET", "/payload"),
        count(&proxy, "GET", "/payload"),
    );
    assert_eq!((meta0, payload0), (1, 1), "{:?}", proxy.counters().log);

    // 16 identical gets at once: one fetch, every caller gets the bytes.
    let calls = (0..16).map(|_| km.get(&ctx, &id));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().payload.expose(), &bytes[..]);
    }
    let payloads = count(&proxy, "GET", "/payload") - payload0;
    assert_eq!(
        payloads, 1,
        "16 concurrent gets of one id coalesce into one fetch"
    );

    // Nothing is cached after the fetch: a later get asks again.
    km.get(&ctx, &id).await.unwrap();
    assert_eq!(count(&proxy, "GET", "/payload") - payload0, 2);
    km.delete(&ctx, &id, true).await.unwrap();
}

/// A TCP forwarder that counts the connections clients open.
async fn counting_forwarder(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            let up = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(up).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managers_built_from_one_config_share_connections() {
    let Some(env) = servers() else {
        return;
    };
    let (id, _) = stored(&env).await;
    let upstream = env
        .barbican_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (url, accepted) = counting_forwarder(upstream).await;
    let ctx = keymgr::Context::new("", "tester");
    let (c, _) = tests::barbican_config(&env, None, Some(&url));

    let first = keymgr::build(&c).unwrap();
    first.metadata(&ctx, &id).await.unwrap();
    first.metadata(&ctx, &id).await.unwrap();
    let after_one = accepted.load(Ordering::SeqCst);
    if after_one > 1 {
        // The light set's wsgiref server (HTTP/1.0) closes every
        // connection: there is no pool to share. Not a missing tool, so
        // not a failure under KEYMGR_REQUIRE_TOOLS; the production set
        // (gunicorn, keep-alive) runs it.
        eprintln!(
            "skipped: managers_built_from_one_config_share_connections: this Barbican closed \
             {after_one} connections for 2 calls (no keep-alive: the light set); \
             run with KEYMGR_SERVERS=production"
        );
        first.delete(&ctx, &id, true).await.unwrap();
        return;
    }
    let second = keymgr::build(&c).unwrap();
    second.metadata(&ctx, &id).await.unwrap();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a second manager from the same config reuses the first's connection"
    );
    let (other, _) = tests::barbican_config(&env, None, Some(&url));
    let third = keymgr::build(&other).unwrap();
    third.metadata(&ctx, &id).await.unwrap();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "another configuration has its own pool"
    );
    third.delete(&ctx, &id, true).await.unwrap();
}

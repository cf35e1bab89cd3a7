//! Typed errors for a server that never answers, an answer that is lost,
//! and a TLS record torn in the middle of an answer; and no duplicates:
//! a write whose answer was lost is never sent again.

mod common;

use std::time::{Duration, Instant};

use keymgr_core::{Context, ErrorKind, KeyManager, ListQuery, NewSecret, SecretKind};
use keymgr_kmip::KmipKeyManager;
use keymgr_test_support::tls_proxy::{TlsFault as Mode, TlsFaultProxy as Proxy};

async fn setup_with(timeout: f64) -> Option<(Proxy, KmipKeyManager)> {
    let mut cfg = common::config()?;
    let proxy = Proxy::start(format!("{}:{}", cfg.host, cfg.port)).await;
    cfg.port = proxy.port;
    cfg.timeout = timeout;
    let km = KmipKeyManager::new(cfg).unwrap();
    // Negotiate through the proxy while it passes everything.
    km.kmip_version().await.unwrap();
    Some((proxy, km))
}

/// The proxy and a client with a 1.5 s deadline (the fault tests wait it out).
async fn setup() -> Option<(Proxy, KmipKeyManager)> {
    setup_with(1.5).await
}

async fn count(km: &KmipKeyManager, ctx: &Context, name: &str) -> usize {
    km.list_all(ctx, &ListQuery::all().name(name))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let Some((proxy, km)) = setup().await else {
        return;
    };
    let ctx = Context::new("p-faults", "u");
    proxy.set(Mode::Silent);
    let start = Instant::now();
    let e = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![1u8; 8]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn lost_and_torn_answers_are_unavailable_and_never_duplicated() {
    let Some((proxy, km)) = setup().await else {
        return;
    };
    let ctx = Context::new("p-faults", "u");
    let run = std::process::id();
    for (i, mode) in [Mode::LoseAnswer, Mode::TornAnswer].into_iter().enumerate() {
        let name = format!("fault-{run}-{i}");
        proxy.set(mode);
        let e = km
            .store(
                &ctx,
                NewSecret::new(SecretKind::Opaque, vec![i as u8; 8]).named(&name),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{mode:?}: {e}");
        assert!(e.to_string().contains("may have carried out"), "{e}");
        proxy.set(Mode::Pass);
        // The server did it once; keymgr did not send it again.
        let found = km
            .list_all(&ctx, &ListQuery::all().name(&name))
            .await
            .unwrap();
        assert_eq!(
            found.len(),
            1,
            "{mode:?}: a write whose answer was lost is stored once"
        );

        // A read whose answer is lost or torn: a typed error, then a
        // working connection once the proxy passes again.
        proxy.set(mode);
        let e = km.get(&ctx, &found[0].id).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{mode:?}: {e}");
        proxy.set(Mode::Pass);
        let s = km.get(&ctx, &found[0].id).await.unwrap();
        assert_eq!(s.payload.expose(), &[i as u8; 8]);
        km.delete(&ctx, &found[0].id, false).await.unwrap();
        assert_eq!(count(&km, &ctx, &name).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_gets_share_at_most_sixteen_connections() {
    let Some((proxy, km)) = setup_with(30.0).await else {
        return;
    };
    let km = std::sync::Arc::new(km);
    let ctx = Context::new("p-faults", "u");
    let id = km
        .store(&ctx, NewSecret::new(SecretKind::Symmetric, vec![9u8; 32]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (km, ctx, id) = (km.clone(), ctx.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            km.get(&ctx, &id).await.map(|s| s.payload.expose().to_vec())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), vec![9u8; 32]);
    }
    assert!(
        proxy.max_open() <= 16,
        "{} connections at once",
        proxy.max_open()
    );
    km.delete(&ctx, &id, false).await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_nothing_was_sent() {
    let Some(mut cfg) = common::config() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.port = listener.local_addr().unwrap().port();
    drop(listener);
    cfg.kmip_version = Some("1.4".into());
    let km = KmipKeyManager::new(cfg).unwrap();
    let e = km
        .store(
            &Context::new("p-faults", "u"),
            NewSecret::new(SecretKind::Opaque, vec![1u8; 8]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!e.to_string().contains("may have carried out"), "{e}");
}

//! Typed errors for a server that never answers, an answer that is lost,
//! and a TLS record torn in the middle of an answer; and no duplicates:
//! a write whose answer was lost is never sent again.

mod common;

use std::time::{Duration, Instant};

use common::fault::{Mode, Proxy};
use keymgr_core::{Context, ErrorKind, KeyManager, ListQuery, NewSecret, SecretKind};
use keymgr_kmip::KmipKeyManager;

async fn setup() -> Option<(Proxy, KmipKeyManager)> {
    let mut cfg = common::config()?;
    let proxy = Proxy::start(format!("{}:{}", cfg.host, cfg.port)).await;
    cfg.port = proxy.port;
    cfg.timeout = 1.5;
    let km = KmipKeyManager::new(cfg).unwrap();
    // Negotiate through the proxy while it passes everything.
    km.kmip_version().await.unwrap();
    Some((proxy, km))
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

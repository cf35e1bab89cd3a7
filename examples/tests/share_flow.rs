//! The share service's flows on every available backend.

mod common;

use examples::share::{CreateShare, ShareService};
use examples::{ServiceConfig, ServiceError};
use keymgr::{Consumer, ErrorKind, KeySpec, NewSecret, SecretId, SecretKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_flows_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for b in common::backends(dir.path()) {
        eprintln!("== share flows on {}", b.name);
        let (b, state) = common::with_own_state(b, dir.path());
        let extra = "server_encryption_keys_quota = 2\n";
        let cfg = common::config(&b, &state, extra);
        flows(cfg, || common::config(&b, &state, extra)).await;
    }
}

fn shares_on_disk(cfg: &ServiceConfig) -> usize {
    std::fs::read_dir(cfg.state_dir.join("devices"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("share-")
        })
        .count()
}

async fn flows(cfg: ServiceConfig, restart: impl Fn() -> ServiceConfig) {
    let svc = ShareService::new(cfg.clone()).unwrap();
    let (km, ctx) = (cfg.km.clone(), cfg.ctx.clone());
    svc.create_type("plain", None).unwrap();
    svc.create_type("enc-share", Some("share")).unwrap();
    svc.create_type("enc-server", Some("share_server")).unwrap();
    assert!(matches!(
        svc.create_type("x", Some("disk")),
        Err(ServiceError::BadRequest(_))
    ));
    let k1 = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();
    let k2 = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Passphrase, b"tenant passphrase".to_vec()),
        )
        .await
        .unwrap();
    let k3 = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, vec![9u8; 40]))
        .await
        .unwrap();
    let priv_key = km
        .store(
            &ctx,
            NewSecret::new(
                SecretKind::Private,
                keymgr_core::testkit::sample_payloads(SecretKind::Private).remove(0),
            ),
        )
        .await
        .unwrap();

    // refusals, before anything is written
    let req = |t: &str, r: Option<String>, net: &str| CreateShare {
        size_mib: 1,
        share_type: t.into(),
        encryption_key_ref: r,
        network: Some(net.into()),
    };
    let e = svc
        .create(&req("plain", Some(k1.to_string()), "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::BadRequest(m) if m.contains("does not support encryption")),
        "{e}"
    );
    let bogus = SecretId::new_random().to_string();
    let e = svc
        .create(&req("enc-share", Some(bogus.clone()), "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::BadRequest(m) if m.contains(&bogus)),
        "{e}"
    );
    assert!(e.to_string().starts_with("400"), "{e}");
    let e = svc
        .create(&req("enc-share", Some("not-a-uuid".into()), "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::BadRequest(m) if m.contains("not-a-uuid")),
        "{e}"
    );
    let e = svc
        .create(&req("enc-share", Some(priv_key.to_string()), "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::BadRequest(m) if m.contains(&priv_key.to_string()) && m.contains("private")),
        "{e}"
    );
    assert_eq!(shares_on_disk(&cfg), 0);
    assert!(svc.list().unwrap().is_empty());

    // share mode: consumer share/<id>
    let s1 = svc
        .create(&req("enc-share", Some(k2.to_string()), "n1"))
        .await
        .unwrap();
    let c = km.list_consumers(&ctx, &k2).await.unwrap();
    assert_eq!(c, vec![Consumer::new("manila", "share", &s1.id)]);
    let e = km.delete(&ctx, &k2, false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "key in use by a live share");

    // share_server mode: reuse per (key, network); quota on distinct keys
    let a = svc
        .create(&req("enc-server", Some(k1.to_string()), "n1"))
        .await
        .unwrap();
    let b = svc
        .create(&req("enc-server", Some(k1.to_string()), "n1"))
        .await
        .unwrap();
    assert_eq!(a.share_server_id, b.share_server_id);
    let c_ = svc
        .create(&req("enc-server", Some(k1.to_string()), "n2"))
        .await
        .unwrap();
    assert_ne!(a.share_server_id, c_.share_server_id);
    let d = svc
        .create(&req("enc-server", Some(k3.to_string()), "n1"))
        .await
        .unwrap();
    assert_ne!(a.share_server_id, d.share_server_id);
    assert_eq!(svc.list_servers().unwrap().len(), 3);
    let k4 = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();
    let e = svc
        .create(&req("enc-server", Some(k4.to_string()), "n1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::OverQuota(m) if m.contains("server_encryption_keys")),
        "{e}"
    );
    svc.set_quota(3).unwrap();
    let f = svc
        .create(&req("enc-server", Some(k4.to_string()), "n1"))
        .await
        .unwrap();
    let mut cons = km.list_consumers(&ctx, &k1).await.unwrap();
    cons.sort();
    assert_eq!(cons.len(), 2);
    assert!(cons
        .iter()
        .all(|c| c.service == "manila" && c.resource_type == "share-server"));

    // data survives a restart of the service
    for (s, text) in [
        (&s1, b"share one".as_slice()),
        (&a, b"server share a"),
        (&d, b"opaque key share"),
    ] {
        let h = svc.open(&s.id).await.unwrap();
        h.write_at(text, 8192).unwrap();
        let raw = std::fs::read(cfg.device_path(&format!("share-{}", s.id))).unwrap();
        assert!(!common::contains(&raw, text), "plaintext on disk");
    }
    drop(svc);
    let svc = ShareService::new(restart()).unwrap();
    for (s, text) in [
        (&s1, b"share one".as_slice()),
        (&a, b"server share a"),
        (&d, b"opaque key share"),
    ] {
        let h = svc.open(&s.id).await.unwrap();
        let mut buf = vec![0u8; text.len()];
        h.read_at(&mut buf, 8192).unwrap();
        assert_eq!(buf, text);
    }

    // deletes remove consumers; servers go with their last share
    svc.delete(&a.id).await.unwrap();
    assert_eq!(
        km.list_consumers(&ctx, &k1).await.unwrap().len(),
        2,
        "server still has share b"
    );
    svc.delete(&b.id).await.unwrap();
    svc.delete(&c_.id).await.unwrap();
    assert!(km.list_consumers(&ctx, &k1).await.unwrap().is_empty());
    for s in [&s1, &d, &f] {
        svc.delete(&s.id).await.unwrap();
    }
    assert!(svc.list_servers().unwrap().is_empty());
    assert_eq!(shares_on_disk(&cfg), 0);
    for k in [k1, k2, k3, k4, priv_key] {
        km.delete(&ctx, &k, false).await.unwrap();
    }
}

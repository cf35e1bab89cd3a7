//! The share service's BYOK details (Manila share encryption) against
//! the embedded backend, and Vault / Barbican when the test environment has
//! them.

mod common;

use examples::share::{CreateShare, ShareService};
use examples::ServiceError;
use keymgr::{Consumer, Context, ErrorKind, KeySpec, NewSecret, SecretId, SecretKind};

fn device_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("devices"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn req(_label: &str, stype: &str, net: &str, key: Option<&str>) -> CreateShare {
    CreateShare {
        size_mib: 2,
        share_type: stype.into(),
        network: Some(net.into()),
        encryption_key_ref: key.map(str::to_string),
    }
}

async fn consumers(svc: &ShareService, id: &SecretId) -> Vec<Consumer> {
    svc.cfg
        .km
        .list_consumers(&svc.cfg.ctx, id)
        .await
        .expect("list consumers")
}

fn has(cs: &[Consumer], rtype: &str, rid: &str) -> bool {
    cs.iter()
        .any(|c| c.service == "manila" && c.resource_type == rtype && c.resource_id == rid)
}

fn expect_bad_request(r: examples::Result<impl std::fmt::Debug>, must_name: &str, what: &str) {
    match r {
        Err(ServiceError::BadRequest(msg)) => {
            assert!(
                msg.contains(must_name),
                "{what}: message {msg:?} does not name {must_name:?}"
            );
            let shown = format!("{}", ServiceError::BadRequest(msg.clone()));
            assert!(
                shown.starts_with("400"),
                "{what}: not a 400-style error: {shown}"
            );
        }
        other => panic!("{what}: expected a 400 Bad Request, got {other:?}"),
    }
}

async fn flow(b: &common::Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(b, dir.path(), "server_encryption_keys_quota = 2\n");
    let svc = ShareService::new(cfg.clone()).unwrap();
    let km = cfg.km.clone();
    let ctx = cfg.ctx.clone();
    let n = b.name;

    svc.create_type("plain", None).unwrap();
    svc.create_type("per-share", Some("share")).unwrap();
    svc.create_type("per-server", Some("share_server")).unwrap();
    assert!(matches!(
        svc.create_type("plain", None),
        Err(ServiceError::Conflict(_))
    ));

    // the tenant's keys
    let k_sym = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();
    let k_pass = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Passphrase, b"correct horse battery".to_vec()),
        )
        .await
        .unwrap();
    let mut opaque = vec![0u8; 32];
    getrandom::fill(&mut opaque).unwrap();
    opaque[0] = 0; // a leading zero byte must survive the hex rule
    let k_opaque = km
        .store(&ctx, NewSecret::new(SecretKind::Opaque, opaque))
        .await
        .unwrap();
    let k_priv = km
        .store(
            &ctx,
            NewSecret::new(
                SecretKind::Private,
                keymgr_core::testkit::sample_payloads(SecretKind::Private).remove(0),
            ),
        )
        .await
        .unwrap();
    let k_other = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();
    let k_third = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();

    // ---- validation: 400 naming the ref, nothing written
    let missing = SecretId::new_random().to_string();
    expect_bad_request(
        svc.create(&req("m", "per-share", "n1", Some(&missing)))
            .await,
        &missing,
        "missing secret",
    );
    expect_bad_request(
        svc.create(&req("m", "per-share", "n1", Some("not-a-secret-ref")))
            .await,
        "not-a-secret-ref",
        "malformed ref",
    );
    let priv_ref = k_priv.to_string();
    expect_bad_request(
        svc.create(&req("m", "per-share", "n1", Some(&priv_ref)))
            .await,
        &priv_ref,
        "private key kind",
    );
    let sym_ref = k_sym.to_string();
    expect_bad_request(
        svc.create(&req("m", "plain", "n1", Some(&sym_ref))).await,
        "plain",
        "type without encryption_support",
    );
    if b.second_project {
        let other = Context::new(format!("{}-b", ctx.project_id), "bob");
        let theirs = km.create_key(&other, &KeySpec::aes(256)).await.unwrap();
        let theirs_ref = theirs.to_string();
        expect_bad_request(
            svc.create(&req("m", "per-share", "n1", Some(&theirs_ref)))
                .await,
            &theirs_ref,
            "another project's secret",
        );
        assert!(consumers(&svc.as_user(other.clone()), &theirs)
            .await
            .is_empty());
        km.delete(&other, &theirs, true).await.unwrap();
    }
    assert!(
        svc.list().unwrap().is_empty(),
        "{n}: a refused share left a record"
    );
    assert!(svc.list_servers().unwrap().is_empty());
    assert!(
        device_files(dir.path()).is_empty(),
        "{n}: a refused share left files: {:?}",
        device_files(dir.path())
    );
    for k in [&k_sym, &k_priv] {
        assert!(
            consumers(&svc, k).await.is_empty(),
            "{n}: refused share registered a consumer"
        );
    }

    // a driver without share_server support refuses that mode
    let mut narrow_cfg = cfg.clone();
    narrow_cfg.share_driver_support = vec!["share".into()];
    let narrow = ShareService::new(narrow_cfg).unwrap();
    let pass_ref = k_pass.to_string();
    expect_bad_request(
        narrow
            .create(&req("m", "per-server", "n1", Some(&pass_ref)))
            .await,
        "share_server",
        "driver without share_server capability",
    );

    // ---- share mode: one key per share, all usable kinds
    let mut per_share = Vec::new();
    for (k, label) in [(&k_sym, "sym"), (&k_pass, "pass"), (&k_opaque, "opaque")] {
        let s = svc
            .create(&req(label, "per-share", "n1", Some(k.as_str())))
            .await
            .unwrap_or_else(|e| panic!("{n}: share with {label} key: {e}"));
        assert_eq!(s.status, "available");
        assert!(s.share_server_id.is_none());
        assert!(
            has(&consumers(&svc, k).await, "share", &s.id),
            "{n}: consumer of {label}"
        );
        let data = format!("share {label} data on {n}: PLAINTEXT-MARKER-{label}").into_bytes();
        svc.write(&s.id, 4096 + 7, &data).await.unwrap();
        assert_eq!(
            svc.read(&s.id, 4096 + 7, data.len() as u64).await.unwrap(),
            data
        );
        per_share.push((s, k, data));
    }
    // the key cannot be deleted under a live share
    let err = km.delete(&ctx, &k_sym, false).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "{n}: delete under a live share: {err}"
    );
    // out-of-range I/O is refused
    assert!(matches!(
        svc.read(&per_share[0].0.id, 2 << 20, 1).await,
        Err(ServiceError::BadRequest(_))
    ));

    // ---- share_server mode: reuse per (key ref, network), quota on distinct keys
    let a1 = svc
        .create(&req("a1", "per-server", "net1", Some(&pass_ref)))
        .await
        .unwrap();
    let a2 = svc
        .create(&req("a2", "per-server", "net1", Some(&pass_ref)))
        .await
        .unwrap();
    let a3 = svc
        .create(&req("a3", "per-server", "net2", Some(&pass_ref)))
        .await
        .unwrap();
    let other_ref = k_other.to_string();
    let b1 = svc
        .create(&req("b1", "per-server", "net1", Some(&other_ref)))
        .await
        .unwrap();
    let srv = |s: &examples::share::ShareRecord| s.share_server_id.clone().unwrap();
    assert_eq!(
        srv(&a1),
        srv(&a2),
        "{n}: same key+network must reuse the server"
    );
    assert_ne!(
        srv(&a1),
        srv(&a3),
        "{n}: another network gets another server"
    );
    assert_ne!(srv(&a1), srv(&b1), "{n}: another key gets another server");
    assert_eq!(svc.list_servers().unwrap().len(), 3);
    let cs = consumers(&svc, &k_pass).await;
    assert!(has(&cs, "share-server", &srv(&a1)) && has(&cs, "share-server", &srv(&a3)));
    // a third distinct key is over the quota of 2, and nothing is left behind
    let files_before = device_files(dir.path());
    let third_ref = k_third.to_string();
    match svc
        .create(&req("c1", "per-server", "net1", Some(&third_ref)))
        .await
    {
        Err(ServiceError::OverQuota(m)) => assert!(m.contains("server_encryption_keys"), "{m}"),
        other => panic!("{n}: expected over quota, got {other:?}"),
    }
    assert_eq!(device_files(dir.path()), files_before);
    assert!(consumers(&svc, &k_third).await.is_empty());
    // a known key on a new network is within the quota (distinct keys still 2)
    let b2 = svc
        .create(&req("b2", "per-server", "net3", Some(&other_ref)))
        .await
        .unwrap();
    // raising the quota lets the third key in
    svc.set_quota(3).unwrap();
    let c1 = svc
        .create(&req("c1", "per-server", "net1", Some(&third_ref)))
        .await
        .unwrap();
    for (s, tag) in [
        (&a1, "a1"),
        (&a2, "a2"),
        (&a3, "a3"),
        (&b1, "b1"),
        (&b2, "b2"),
        (&c1, "c1"),
    ] {
        svc.write(
            &s.id,
            0,
            format!("server share {tag} PLAINTEXT-MARKER").as_bytes(),
        )
        .await
        .unwrap();
    }

    // ---- restart: a new service and key manager over the same state dir
    drop(svc);
    drop(narrow);
    let cfg2 = common::config(b, dir.path(), "server_encryption_keys_quota = 2\n");
    let svc = ShareService::new(cfg2).unwrap();
    for (s, _, data) in &per_share {
        assert_eq!(
            svc.read(&s.id, 4096 + 7, data.len() as u64).await.unwrap(),
            *data,
            "{n}: share {} after restart",
            s.id
        );
    }
    let got = svc.read(&a2.id, 0, 27).await.unwrap();
    assert_eq!(got, b"server share a2 PLAINTEXT-MARKER".get(..27).unwrap());
    assert_eq!(
        svc.quota().unwrap().server_encryption_keys,
        3,
        "quota persisted"
    );
    // nothing in the state dir holds plaintext
    for f in device_files(dir.path()) {
        let raw = std::fs::read(dir.path().join("devices").join(&f)).unwrap();
        assert!(
            !common::contains(&raw, b"PLAINTEXT-MARKER"),
            "{n}: {f} holds plaintext"
        );
    }

    // ---- delete: consumers go, servers go with their last share
    for (s, k, _) in &per_share {
        svc.delete(&s.id).await.unwrap();
        assert!(!has(&consumers(&svc, k).await, "share", &s.id));
    }
    assert!(matches!(
        svc.get(&per_share[0].0.id),
        Err(ServiceError::NotFound(_))
    ));
    km.delete(&ctx, &k_sym, false)
        .await
        .expect("key deletable once its share is gone");
    svc.delete(&a1.id).await.unwrap();
    assert!(
        svc.get_server(&srv(&a2)).is_ok(),
        "{n}: server kept while a2 lives"
    );
    assert!(matches!(
        svc.delete_server(&srv(&a2)).await,
        Err(ServiceError::Conflict(_))
    ));
    svc.delete(&a2.id).await.unwrap();
    assert!(
        svc.get_server(&srv(&a1)).is_err(),
        "{n}: server gone with its last share"
    );
    assert!(!has(
        &consumers(&svc, &k_pass).await,
        "share-server",
        &srv(&a1)
    ));
    for s in [&a3, &b1, &b2, &c1] {
        svc.delete(&s.id).await.unwrap();
    }
    assert!(svc.list_servers().unwrap().is_empty());
    for k in [&k_pass, &k_opaque, &k_other, &k_third, &k_priv] {
        assert!(
            consumers(&svc, k).await.is_empty(),
            "{n}: consumers left on {k}"
        );
        km.delete(&ctx, k, false).await.unwrap();
    }
    assert!(
        device_files(dir.path()).is_empty(),
        "{:?}",
        device_files(dir.path())
    );
}

#[tokio::test]
async fn share_flow_every_backend() {
    // the mock backend's sealed store lives here, outside each flow's state dir
    let keys = tempfile::tempdir().unwrap();
    for b in common::backends(keys.path()) {
        eprintln!("share flow on {}", b.name);
        flow(&b).await;
    }
}

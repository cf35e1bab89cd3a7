//! No secret payload, passphrase, token or password reaches the logs at any
//! level, through any backend, in successful and failing calls.

use keymgr::passphrase::passphrase_for;
use keymgr::{Consumer, Context, KeySpec, ListQuery, NewSecret, SecretKind};
use tests::{assert_no_secret, backends, LogCapture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_every_operation_hold_no_secret() {
    let logs = LogCapture::install();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for b in backends(dir.path()) {
        let (km, ctx) = (&b.km, &b.ctx);
        let mut secrets: Vec<Vec<u8>> = Vec::new();
        for (kind, payload) in [
            (
                SecretKind::Symmetric,
                b"\x13\x37sym-key-bytes-0123456789abcdef".to_vec(),
            ),
            (
                SecretKind::Passphrase,
                b"hunter2-passphrase-never-logged".to_vec(),
            ),
            (
                SecretKind::Opaque,
                b"opaque\x00\xffsecret-bytes-xyz".to_vec(),
            ),
            (
                SecretKind::Private,
                keymgr_core::testkit::sample_payloads(SecretKind::Private).remove(0),
            ),
        ] {
            let id = km
                .store(ctx, NewSecret::new(kind, payload.clone()).named("hygiene"))
                .await
                .unwrap();
            let got = km.get(ctx, &id).await.unwrap();
            assert_eq!(got.payload.expose(), &payload[..]);
            let pass = passphrase_for(kind, &got.payload).unwrap();
            secrets.push(pass.as_bytes().to_vec());
            km.metadata(ctx, &id).await.unwrap();
            let copy = km.clone_secret(ctx, &id).await.unwrap();
            let c = Consumer::new("cinder", "volume", "v-hygiene");
            km.add_consumer(ctx, &id, &c).await.unwrap();
            km.list_consumers(ctx, &id).await.unwrap();
            let _ = km.delete(ctx, &id, false).await.unwrap_err();
            km.delete(ctx, &id, true).await.unwrap();
            km.delete(ctx, &copy, false).await.unwrap();
            // Failing calls log too.
            let _ = km.get(ctx, &id).await.unwrap_err();
            secrets.push(payload);
        }
        let gen = km.create_key(ctx, &KeySpec::aes(256)).await.unwrap();
        secrets.push(km.get(ctx, &gen).await.unwrap().payload.expose().to_vec());
        km.list_all(ctx, &ListQuery::all().name("hygiene"))
            .await
            .unwrap();
        km.delete(ctx, &gen, false).await.unwrap();
        let _ = km.get(&Context::new("other-project", "x"), &gen).await;

        let text = logs.text();
        for s in &secrets {
            assert_no_secret(&text, s, &format!("a {} secret", b.name));
        }
        for cred in &b.credentials {
            assert_no_secret(
                &text,
                cred.as_bytes(),
                &format!("the {} credential", b.name),
            );
        }
        checked.push((b.name, secrets.len()));
    }
    // The capture itself works: the server backends log their HTTP traffic at TRACE,
    // and a deliberately logged marker is found.
    tracing::trace!(marker = "capture-self-check-8c1f", "self check");
    assert!(
        logs.text().contains("capture-self-check-8c1f"),
        "the log capture saw nothing"
    );
    eprintln!(
        "hygiene: checked {checked:?}; {} bytes of TRACE logs searched",
        logs.len()
    );
}

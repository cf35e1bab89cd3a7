//! Ephemeral storage encryption on every available backend.

mod common;

use examples::ephemeral::{dm_crypt_unavailable_reason, EphemeralService};
use keymgr::{ErrorKind, SecretId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_flows_on_every_backend() {
    if let Some(reason) = dm_crypt_unavailable_reason() {
        eprintln!("SKIP plain dm-crypt (cryptsetup create) path: {reason}");
    }
    let dir = tempfile::tempdir().unwrap();
    for b in common::backends(dir.path()) {
        eprintln!("== ephemeral flows on {}", b.name);
        let (b, state) = common::with_own_state(b, dir.path());
        let extra = "[ephemeral_storage_encryption]\nenabled = true\n";
        let backing = state.join("compute-host-disk0");
        let marker: Vec<u8> = b"INSTANCE-A-SECRET-DATA-".repeat(40);

        // instance A writes, then the compute host "crashes": no cleanup
        let a_key;
        {
            let svc = EphemeralService::new(common::config(&b, &state, extra)).unwrap();
            let a = svc.boot(2, Some(&backing)).await.unwrap();
            a_key = a.key_id.clone().expect("a key per instance");
            let meta = svc
                .cfg
                .km
                .metadata(&svc.cfg.ctx, &SecretId::parse(&a_key).unwrap())
                .await
                .unwrap();
            assert_eq!(meta.bit_length, Some(512), "key_size default 512");
            let h = svc.open(&a.id).await.unwrap();
            for i in 0..8u64 {
                h.write_at(&marker, i * 65536).unwrap();
            }
            let raw = std::fs::read(&backing).unwrap();
            assert!(
                !common::contains(&raw, &marker[..23]),
                "plaintext written in clear"
            );
            assert!(
                !common::contains(&raw, a_key.as_bytes()),
                "key id in the disk"
            );
            std::mem::forget(h);
        }
        // the same backing file reused by instance B after the crash
        let svc = EphemeralService::new(common::config(&b, &state, extra)).unwrap();
        let bi = svc.boot(2, Some(&backing)).await.unwrap();
        assert_ne!(
            bi.key_id.as_deref(),
            Some(a_key.as_str()),
            "new key per instance"
        );
        let raw = std::fs::read(&backing).unwrap();
        assert!(!common::contains(&raw, &marker[..23]));
        let h = svc.open(&bi.id).await.unwrap();
        let mut buf = vec![0u8; marker.len()];
        for i in 0..8u64 {
            h.read_at(&mut buf, i * 65536).unwrap();
            assert!(
                !common::contains(&buf, b"INSTANCE-A"),
                "A's data visible to B"
            );
        }
        // B cannot be opened with A's key
        let a_pass = examples::device::passphrase_of(
            svc.cfg.km.as_ref(),
            &svc.cfg.ctx,
            &SecretId::parse(&a_key).unwrap(),
        )
        .await
        .unwrap();
        assert!(!examples::device::opens(&backing, a_pass.as_bytes()).unwrap());
        // delete: key gone, disk gone
        let b_key = SecretId::parse(bi.key_id.as_deref().unwrap()).unwrap();
        svc.delete(&bi.id).await.unwrap();
        let e = svc.cfg.km.get(&svc.cfg.ctx, &b_key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!backing.exists());
        // the crashed instance is cleaned up later; its key goes with it
        svc.delete(&svc.list().unwrap()[0].id.clone())
            .await
            .unwrap();
        assert!(svc.list().unwrap().is_empty());

        // disabled: no key, a plain disk
        let off = EphemeralService::new(common::config(
            &b,
            &state,
            "[ephemeral_storage_encryption]\nenabled = false\n",
        ))
        .unwrap();
        let p = off.boot(1, None).await.unwrap();
        assert!(p.key_id.is_none());
        off.delete(&p.id).await.unwrap();
    }
}

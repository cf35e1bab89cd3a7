//! The image service (and volume-from-image) on every available backend.

mod common;

use std::collections::BTreeMap;

use examples::image::{EncryptOptions, Image, ImageService};
use examples::volume::{CreateVolume, Encryption, VolumeService};
use examples::ServiceError;
use keymgr::{Consumer, ErrorKind, SecretId, SecretKind};
use luks::LuksType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_flows_on_every_backend() {
    let qemu = common::have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    for b in common::backends(dir.path()) {
        eprintln!("== image flows on {}", b.name);
        let (b, state) = common::with_own_state(b, dir.path());
        let cfg = common::config(&b, &state, "");
        let images = ImageService::new(cfg.clone()).unwrap();
        let vols = VolumeService::new(cfg.clone()).unwrap();
        flows(&images, &vols, qemu).await;
    }
}

async fn key_exists(svc: &ImageService, k: &str) -> bool {
    match svc
        .cfg
        .km
        .get(&svc.cfg.ctx, &SecretId::parse(k).unwrap())
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("{e}"),
    }
}

async fn flows(images: &ImageService, vols: &VolumeService, qemu: bool) {
    vols.create_type(
        "enc",
        Some(Encryption {
            provider: "luks2".into(),
            cipher: "aes-xts-plain64".into(),
            key_size: 256,
        }),
    )
    .unwrap();
    vols.create_type("plain", None).unwrap();
    let src = images.cfg.state_dir.join("guest.raw");
    let content: Vec<u8> = (0..300_000u32)
        .map(|i| (i % 251) as u8)
        .chain(b"GUEST-IMAGE-MARKER".iter().copied())
        .collect();
    std::fs::write(&src, &content).unwrap();

    let mut cases = vec![
        ("raw", LuksType::Luks2, SecretKind::Passphrase),
        ("raw", LuksType::Luks1, SecretKind::Symmetric),
    ];
    if qemu {
        cases.push(("qcow2", LuksType::Luks1, SecretKind::Symmetric));
        cases.push(("qcow2", LuksType::Luks1, SecretKind::Passphrase));
    }
    for (fmt, lt, kind) in cases {
        eprintln!("-- image {fmt} {lt:?} {kind:?}");
        let img = images
            .create_encrypted(
                "guest",
                &src,
                &EncryptOptions {
                    disk_format: fmt.into(),
                    luks_type: lt,
                    secret_kind: kind,
                    deletion_policy: "on_image_deletion".into(),
                },
            )
            .await
            .unwrap();
        let p = &img.properties;
        let want_fmt = if fmt == "raw" && lt == LuksType::Luks2 {
            "LUKSv2"
        } else {
            "LUKSv1"
        };
        assert_eq!(p["os_encrypt_format"], want_fmt);
        assert_eq!(
            img.container_format,
            if fmt == "raw" { "luks" } else { "bare" }
        );
        let key = p["os_encrypt_key_id"].clone();
        let meta = images
            .cfg
            .km
            .metadata(&images.cfg.ctx, &SecretId::parse(&key).unwrap())
            .await
            .unwrap();
        assert_eq!(meta.kind, kind);
        assert_eq!(
            meta.consumers,
            vec![Consumer::new("glance", "image", &img.id)]
        );
        assert!(p["os_decrypt_size"].parse::<u64>().unwrap() >= content.len() as u64);
        let raw = std::fs::read(images.image_path(&img.id)).unwrap();
        assert!(
            !common::contains(&raw, b"GUEST-IMAGE-MARKER"),
            "plaintext in the image file"
        );
        let plain = images.read_plaintext(&img.id).await.unwrap();
        assert_eq!(&plain[..content.len()], &content[..]);

        // an encrypted image needs an encrypted type: refused before any copy
        let before = vols.list().unwrap().len();
        let e = vols
            .create(&CreateVolume {
                image_id: Some(img.id.clone()),
                volume_type: Some("plain".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ServiceError::BadRequest(m) if m.contains("encrypted volume type")),
            "{e}"
        );
        let e = vols
            .create(&CreateVolume {
                image_id: Some(img.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, ServiceError::BadRequest(_)));
        assert_eq!(vols.list().unwrap().len(), before);

        let v = vols
            .create(&CreateVolume {
                image_id: Some(img.id.clone()),
                volume_type: Some("enc".into()),
                size_mib: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let vkey = v.encryption_key_id.clone().unwrap();
        assert_ne!(vkey, key, "image secret cloned for the volume");
        let vpath = vols.cfg.device_path(&format!("volume-{}", v.id));
        assert!(luks::Volume::open(&vpath).is_ok(), "volume is raw LUKS");
        // deleting the image deletes its key (policy on_image_deletion, no other consumer)
        let warnings = images.delete(&img.id).await.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!key_exists(images, &key).await);
        let h = vols.attach(&v.id).await.unwrap();
        assert!(h.size().unwrap() >= content.len() as u64);
        let mut buf = vec![0u8; content.len()];
        h.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, content, "volume opens with its own key");
        vols.detach(&v.id).unwrap();
        vols.delete(&v.id).await.unwrap();
    }

    // do_not_delete: key kept, with a warning
    let img = images
        .create_encrypted(
            "keep",
            &src,
            &EncryptOptions {
                deletion_policy: "do_not_delete".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = img.key_id().unwrap();
    let w = images.delete(&img.id).await.unwrap();
    assert!(w.iter().any(|w| w.contains("do_not_delete")), "{w:?}");
    assert!(key_exists(images, &key).await);
    images
        .cfg
        .km
        .delete(&images.cfg.ctx, &SecretId::parse(&key).unwrap(), true)
        .await
        .unwrap();

    // another consumer remains: key kept, with a warning
    let img = images
        .create_encrypted("shared", &src, &EncryptOptions::default())
        .await
        .unwrap();
    let key = SecretId::parse(&img.key_id().unwrap()).unwrap();
    let other = Consumer::new("nova", "instance", "i-1");
    images
        .cfg
        .km
        .add_consumer(&images.cfg.ctx, &key, &other)
        .await
        .unwrap();
    let w = images.delete(&img.id).await.unwrap();
    assert!(w.iter().any(|w| w.contains("consumer")), "{w:?}");
    assert!(key_exists(images, key.as_str()).await);
    images
        .cfg
        .km
        .remove_consumer(&images.cfg.ctx, &key, &other)
        .await
        .unwrap();
    images
        .cfg
        .km
        .delete(&images.cfg.ctx, &key, false)
        .await
        .unwrap();

    // image from an encrypted volume; then legacy cinder_* properties are read
    let v = vols
        .create(&CreateVolume {
            size_mib: 1,
            volume_type: Some("enc".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let h = vols.attach(&v.id).await.unwrap();
    h.write_at(b"uploaded volume", 0).unwrap();
    vols.detach(&v.id).unwrap();
    let img = images.create_from_volume("from-vol", &v.id).await.unwrap();
    assert_eq!(img.container_format, "luks");
    assert_eq!(img.properties["os_encrypt_format"], "LUKSv2");
    assert_ne!(
        img.key_id(),
        v.encryption_key_id,
        "key cloned for the image"
    );
    vols.delete(&v.id).await.unwrap();
    assert_eq!(
        &images.read_plaintext(&img.id).await.unwrap()[..15],
        b"uploaded volume"
    );
    let legacy_key = images
        .cfg
        .km
        .clone_secret(
            &images.cfg.ctx,
            &SecretId::parse(&img.key_id().unwrap()).unwrap(),
        )
        .await
        .unwrap();
    let mut props = BTreeMap::new();
    props.insert(
        "cinder_encryption_key_id".to_string(),
        legacy_key.to_string(),
    );
    props.insert(
        "cinder_encryption_key_deletion_policy".to_string(),
        "on_image_deletion".to_string(),
    );
    let legacy = images
        .import(
            Image {
                id: String::new(),
                project: String::new(),
                name: "legacy".into(),
                disk_format: "raw".into(),
                container_format: "bare".into(),
                size: 0,
                properties: props,
                decrypt_size: None,
            },
            &images.image_path(&img.id),
        )
        .await
        .unwrap();
    assert_eq!(legacy.key_id(), Some(legacy_key.to_string()));
    let v2 = vols
        .create(&CreateVolume {
            image_id: Some(legacy.id.clone()),
            volume_type: Some("enc".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let h = vols.attach(&v2.id).await.unwrap();
    let mut buf = [0u8; 15];
    h.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"uploaded volume");
    vols.detach(&v2.id).unwrap();
    vols.delete(&v2.id).await.unwrap();
    images.delete(&legacy.id).await.unwrap();
    assert!(!key_exists(images, legacy_key.as_str()).await);
    images.delete(&img.id).await.unwrap();

    // a plain image into an encrypted volume is encrypted on the way
    let plain = images.create_plain("plain", &src).await.unwrap();
    let v3 = vols
        .create(&CreateVolume {
            image_id: Some(plain.id.clone()),
            volume_type: Some("enc".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let raw = std::fs::read(vols.cfg.device_path(&format!("volume-{}", v3.id))).unwrap();
    assert!(!common::contains(&raw, b"GUEST-IMAGE-MARKER"));
    vols.delete(&v3.id).await.unwrap();
    images.delete(&plain.id).await.unwrap();
}

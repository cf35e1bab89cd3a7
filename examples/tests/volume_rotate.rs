//! Volume keys of their own: a re-keyed copy (clone, snapshot -> volume) and the
//! user's "rotate my key" are reencrypted under a new volume key, so deleting the
//! source's (or the old) secret shreds what only it opened. Embedded store backend;
//! cryptsetup checks the result when it is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use examples::volume::{CreateVolume, Encryption, RotateOptions, Rotation, VolumeService};
use examples::{device, ServiceError};
use keymgr::{ErrorKind, KeySpec, SecretId};
use luks::{SectorCipher, Volume};

fn enc(provider: &str, key_size: u32) -> Option<Encryption> {
    Some(Encryption {
        provider: provider.into(),
        cipher: "aes-xts-plain64".into(),
        key_size,
    })
}

/// The volume service on the embedded store, in `dir`.
fn service(dir: &Path) -> VolumeService {
    let b = common::backends(dir).into_iter().next().unwrap();
    let (b, state) = common::with_own_state(b, dir);
    let svc = VolumeService::new(common::config(&b, &state, "")).unwrap();
    svc.create_type("luks2", enc("luks2", 512)).unwrap();
    svc.create_type("luks1", enc("luks", 256)).unwrap();
    svc
}

fn path_of(svc: &VolumeService, id: &str) -> PathBuf {
    svc.cfg.device_path(&format!("volume-{id}"))
}

async fn pass_of(svc: &VolumeService, key: &str) -> Vec<u8> {
    device::passphrase_of(
        svc.cfg.km.as_ref(),
        &svc.cfg.ctx,
        &SecretId::parse(key).unwrap(),
    )
    .await
    .unwrap()
    .as_bytes()
    .to_vec()
}

/// The volume key of the device, recovered with the passphrase of secret `key`.
async fn master_key(svc: &VolumeService, path: &Path, key: &str) -> Vec<u8> {
    let pass = pass_of(svc, key).await;
    let (_, k) = Volume::open(path)
        .unwrap()
        .recover_volume_key(&pass, None)
        .unwrap();
    k.as_bytes().to_vec()
}

/// `len` bytes of the data area at `pos` decrypted with `key` directly (no digest
/// check): what someone holding that volume key reads from the device.
fn decrypt_with(path: &Path, key: &[u8], pos: u64, len: usize) -> Vec<u8> {
    let layout = Volume::open_read_only(path).unwrap().data_layout().unwrap();
    let sector = layout.sector_size as u64;
    let start = pos / sector * sector;
    let end = (pos + len as u64).div_ceil(sector) * sector;
    let mut buf = vec![0u8; (end - start) as usize];
    let f = std::fs::File::open(path).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, layout.offset + start).unwrap();
    let (c, m) = layout.cipher.split_once('-').unwrap();
    SectorCipher::new(c, m, key)
        .unwrap()
        .decrypt_sectors(&mut buf, sector as usize, layout.iv_for(start), true)
        .unwrap();
    let at = (pos - start) as usize;
    buf[at..at + len].to_vec()
}

async fn key_gone(svc: &VolumeService, id: &str) -> bool {
    matches!(
        svc.cfg.km.get(&svc.cfg.ctx, &SecretId::parse(id).unwrap()).await,
        Err(e) if e.kind() == ErrorKind::NotFound
    )
}

const HEAD: &[u8] = b"head of the volume";
const TAIL: &[u8] = b"tail of the volume";

async fn new_volume(svc: &VolumeService, t: &str, size_mib: u64) -> String {
    let v = svc
        .create(&CreateVolume {
            size_mib,
            volume_type: Some(t.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let h = svc.attach(&v.id).await.unwrap();
    h.write_at(HEAD, 4096).unwrap();
    h.write_at(TAIL, (size_mib << 20) - TAIL.len() as u64)
        .unwrap();
    drop(h);
    svc.detach(&v.id).unwrap();
    v.id
}

async fn assert_data(svc: &VolumeService, id: &str, size_mib: u64) {
    let h = svc.attach(id).await.unwrap();
    let mut buf = vec![0u8; HEAD.len()];
    h.read_at(&mut buf, 4096).unwrap();
    assert_eq!(buf, HEAD, "volume {id}: head");
    h.read_at(&mut buf, (size_mib << 20) - TAIL.len() as u64)
        .unwrap();
    assert_eq!(buf, TAIL, "volume {id}: tail");
    drop(h);
    svc.detach(id).unwrap();
}

/// cryptsetup (when installed) opens `path` with `pass`, refuses `wrong`, and dumps
/// the volume key `want`.
fn cryptsetup_agrees(path: &Path, pass: &[u8], wrong: &[u8], want: &[u8]) {
    let Some(cs) = keymgr_test_support::testenv::tool_on_path("cryptsetup") else {
        return;
    };
    let dir = path.parent().unwrap();
    let good = device::SecretFile::new(dir, pass).unwrap();
    let bad = device::SecretFile::new(dir, wrong).unwrap();
    let test = |f: &device::SecretFile| {
        Command::new(&cs)
            .args(["open", "--test-passphrase", "--key-file"])
            .arg(f.path())
            .arg(path)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        test(&good),
        "cryptsetup opens {} with the new secret",
        path.display()
    );
    assert!(!test(&bad), "cryptsetup refuses the old secret");
    let out = Command::new(&cs)
        .args(["luksDump", "--dump-volume-key", "-q", "--key-file"])
        .arg(good.path())
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "MK dump:\t<hex bytes over several lines>"
    let hex: String = text
        .split_once("dump:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no volume key in {text}"))
        .split_whitespace()
        .take_while(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(hex::decode(hex).unwrap(), want, "cryptsetup's volume key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekeyed_copy_has_a_volume_key_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    for t in ["luks2", "luks1"] {
        eprintln!("== copies of a {t} volume");
        let src = new_volume(&svc, t, 2).await;
        let src_path = path_of(&svc, &src);
        let src_key = svc.get(&src).unwrap().encryption_key_id.unwrap();
        let src_mk = master_key(&svc, &src_path, &src_key).await;
        let src_pass = pass_of(&svc, &src_key).await;
        let snap = svc.snapshot(&src).await.unwrap();
        let clone = svc
            .create(&CreateVolume {
                source_volid: Some(src.clone()),
                volume_type: Some(t.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let from_snap = svc
            .create(&CreateVolume {
                snapshot_id: Some(snap.id.clone()),
                size_mib: 3,
                volume_type: Some(t.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(from_snap.size_mib, 3);
        let copies = [clone, from_snap];
        let mut mks = vec![src_mk.clone()];
        for c in &copies {
            let p = path_of(&svc, &c.id);
            let k = c.encryption_key_id.clone().unwrap();
            assert_ne!(k, src_key, "a secret of its own");
            let mk = master_key(&svc, &p, &k).await;
            assert!(!mks.contains(&mk), "{t}: a volume key of its own");
            assert_eq!(
                decrypt_with(&p, &mk, 4096, HEAD.len()),
                HEAD,
                "{t}: its own key decrypts it"
            );
            assert_ne!(
                decrypt_with(&p, &src_mk, 4096, HEAD.len()),
                HEAD,
                "{t}: the source's volume key no longer decrypts the copy"
            );
            assert!(!device::opens(&p, &src_pass).unwrap());
            cryptsetup_agrees(&p, &pass_of(&svc, &k).await, &src_pass, &mk);
            mks.push(mk);
        }
        // the source, its snapshot and their secrets gone: the copies keep their data
        svc.delete_snapshot(&snap.id).await.unwrap();
        svc.delete(&src).await.unwrap();
        assert!(key_gone(&svc, &src_key).await);
        for c in &copies {
            // the data as written to the source (of 2 MiB)
            assert_data(&svc, &c.id, 2).await;
            svc.delete(&c.id).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_my_key_reencrypts_under_the_new_secret() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let (km, ctx) = (svc.cfg.km.clone(), svc.cfg.ctx.clone());
    for t in ["luks2", "luks1"] {
        eprintln!("== rotating the key of a {t} volume");
        let id = new_volume(&svc, t, 2).await;
        let p = path_of(&svc, &id);
        let k0 = svc.get(&id).unwrap().encryption_key_id.unwrap();
        let mk0 = master_key(&svc, &p, &k0).await;
        let pass0 = pass_of(&svc, &k0).await;

        // refused while attached
        drop(svc.attach(&id).await.unwrap());
        match svc.rotate_key(&id, None).await {
            Err(ServiceError::Conflict(m)) => assert!(m.contains("in-use"), "{m}"),
            other => panic!("rotating an attached volume: {other:?}"),
        }
        svc.detach(&id).unwrap();

        // the service makes the new secret
        let v = svc.rotate_key(&id, None).await.unwrap();
        let k1 = v.encryption_key_id.clone().unwrap();
        assert_ne!(k1, k0);
        assert!(v.rotating_to.is_none());
        assert!(key_gone(&svc, &k0).await, "{t}: the old secret is deleted");
        let meta = km
            .metadata(&ctx, &SecretId::parse(&k1).unwrap())
            .await
            .unwrap();
        assert!(
            meta.consumers.iter().any(|c| c.resource_id == id),
            "{t}: the volume consumes its new secret: {:?}",
            meta.consumers
        );
        let mk1 = master_key(&svc, &p, &k1).await;
        assert_ne!(mk1, mk0, "{t}: a new volume key");
        assert_ne!(decrypt_with(&p, &mk0, 4096, HEAD.len()), HEAD);
        assert_eq!(decrypt_with(&p, &mk1, 4096, HEAD.len()), HEAD);
        assert!(!device::opens(&p, &pass0).unwrap());
        assert_data(&svc, &id, 2).await;
        cryptsetup_agrees(&p, &pass_of(&svc, &k1).await, &pass0, &mk1);

        // bring your own: the volume owns a clone; the caller may delete theirs
        let mine = km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap();
        let v = svc.rotate_key(&id, Some(mine.as_str())).await.unwrap();
        let k2 = v.encryption_key_id.clone().unwrap();
        assert_ne!(k2, mine.to_string(), "a clone of the caller's key");
        assert!(key_gone(&svc, &k1).await);
        let my_pass = pass_of(&svc, mine.as_str()).await;
        assert!(device::opens(&p, &my_pass).unwrap(), "os-brick's rule");
        km.delete(&ctx, &mine, true).await.unwrap();
        let mk2 = master_key(&svc, &p, &k2).await;
        assert_ne!(mk2, mk1);
        assert_data(&svc, &id, 2).await;

        // the current key again: refused, nothing left behind
        let same = km.get(&ctx, &SecretId::parse(&k2).unwrap()).await.unwrap();
        let again = km
            .store(&ctx, keymgr::NewSecret::from_secret(&same))
            .await
            .unwrap();
        let before = km
            .list_all(&ctx, &keymgr::ListQuery::all())
            .await
            .unwrap()
            .len();
        match svc.rotate_key(&id, Some(again.as_str())).await {
            Err(ServiceError::BadRequest(m)) => assert!(m.contains("current key"), "{m}"),
            other => panic!("rotating to the same key: {other:?}"),
        }
        let after = km
            .list_all(&ctx, &keymgr::ListQuery::all())
            .await
            .unwrap()
            .len();
        assert_eq!(before, after, "a refused rotation leaves no key behind");
        km.delete(&ctx, &again, true).await.unwrap();
        svc.delete(&id).await.unwrap();
        assert!(key_gone(&svc, &k2).await);
    }
    // a legacy volume (mangled passphrase, never attached) rotates too
    let mut payload = vec![0x01u8, 0x0a, 0x00, 0x0f];
    payload.extend((0..28).map(|i| 0x30 + i as u8));
    let lk = km
        .store(
            &ctx,
            keymgr::NewSecret::new(keymgr::SecretKind::Symmetric, payload),
        )
        .await
        .unwrap();
    let v = svc
        .create(&CreateVolume {
            size_mib: 1,
            volume_type: Some("luks2".into()),
            encryption_key_id: Some(lk.to_string()),
            legacy_passphrase: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let lp = path_of(&svc, &v.id);
    let old = v.encryption_key_id.clone().unwrap();
    assert!(!device::opens(&lp, &pass_of(&svc, &old).await).unwrap());
    let r = svc.rotate_key(&v.id, None).await.unwrap();
    let k = r.encryption_key_id.unwrap();
    assert!(device::opens(&lp, &pass_of(&svc, &k).await).unwrap());
    assert!(key_gone(&svc, &old).await);
    svc.delete(&v.id).await.unwrap();

    // nothing to rotate on a plain volume
    svc.create_type("plain", None).unwrap();
    let v = svc
        .create(&CreateVolume {
            size_mib: 1,
            volume_type: Some("plain".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        svc.rotate_key(&v.id, None).await,
        Err(ServiceError::BadRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    const SIZE: u64 = 4;
    let small = RotateOptions {
        hotzone_size: Some(1 << 20),
        ..Default::default()
    };

    // stopped after the first hotzone
    let id = new_volume(&svc, "luks2", SIZE).await;
    let p = path_of(&svc, &id);
    let k0 = svc.get(&id).unwrap().encryption_key_id.unwrap();
    let mut calls = 0;
    let r = svc
        .rotate_key_with(&id, None, &small, &mut |_| {
            calls += 1;
            false
        })
        .await
        .unwrap();
    let Rotation::Stopped(at) = r else {
        panic!("not stopped: {r:?}")
    };
    assert_eq!((at.done, at.total), (1 << 20, SIZE << 20));
    let v = svc.get(&id).unwrap();
    assert_eq!(
        v.encryption_key_id.as_deref(),
        Some(k0.as_str()),
        "not switched yet"
    );
    let pending = v.rotating_to.clone().expect("the new secret is recorded");
    assert!(device::in_reencryption(&p).unwrap());
    let images = examples::image::ImageService {
        cfg: svc.cfg.clone(),
        state: svc.state.clone(),
    };
    for e in [
        svc.attach(&id).await.err(),
        svc.snapshot(&id).await.err(),
        svc.extend(&id, 8).err(),
        svc.create(&CreateVolume {
            source_volid: Some(id.clone()),
            volume_type: Some("luks2".into()),
            ..Default::default()
        })
        .await
        .err(),
        images.create_from_volume("copy", &id).await.err(),
    ] {
        assert!(matches!(e, Some(ServiceError::Conflict(_))), "{e:?}");
    }
    // another key while one is pending: refused
    let other = svc
        .cfg
        .km
        .create_key(&svc.cfg.ctx, &KeySpec::aes(256))
        .await
        .unwrap();
    assert!(matches!(
        svc.rotate_key(&id, Some(other.as_str())).await,
        Err(ServiceError::Conflict(_))
    ));
    let v = svc.rotate_key(&id, None).await.unwrap();
    assert_eq!(v.encryption_key_id.as_deref(), Some(pending.as_str()));
    assert!(key_gone(&svc, &k0).await);
    assert!(!device::in_reencryption(&p).unwrap());
    assert_data(&svc, &id, SIZE).await;
    svc.delete(&id).await.unwrap();

    // a machine dying at each of these writes, torn (with 1 MiB hotzones: 0 the new
    // keyslot, 2 the first header's second copy, 5 a hot header, 9 the next hotzone's
    // checksums, 20 a post header, 26 the final header's second copy): the next call
    // finishes the job
    for write in [0u64, 2, 5, 9, 20, 26] {
        let id = new_volume(&svc, "luks2", SIZE).await;
        let k0 = svc.get(&id).unwrap().encryption_key_id.unwrap();
        let crash = RotateOptions {
            crash_at_write: Some((write, 100)),
            ..small.clone()
        };
        let e = svc
            .rotate_key_with(&id, None, &crash, &mut |_| true)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("simulated crash"), "{e}");
        let v = svc.rotate_key(&id, None).await.unwrap();
        assert_ne!(v.encryption_key_id.as_deref(), Some(k0.as_str()));
        assert!(key_gone(&svc, &k0).await, "crash at write {write}");
        assert_data(&svc, &id, SIZE).await;
        svc.delete(&id).await.unwrap();
    }

    // the service died after the data was done but before its bookkeeping: the
    // reencryption is finished here by the luks crate itself, then the next call
    // only switches the record and deletes the old secret
    let id = new_volume(&svc, "luks2", SIZE).await;
    let p = path_of(&svc, &id);
    let k0 = svc.get(&id).unwrap().encryption_key_id.unwrap();
    svc.rotate_key_with(&id, None, &small, &mut |_| false)
        .await
        .unwrap();
    let pending = svc.get(&id).unwrap().rotating_to.unwrap();
    let (old, new) = (pass_of(&svc, &k0).await, pass_of(&svc, &pending).await);
    let keys = [luks::reencrypt::KeyChange {
        passphrase: &old,
        new_passphrase: Some(&new),
        slot: None,
    }];
    let out = luks::reencrypt::reencrypt(
        &p,
        &keys,
        &luks::reencrypt::ReencryptOptions {
            resume_only: true,
            pbkdf: svc.cfg.pbkdf.clone(),
            ..Default::default()
        },
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(out, luks::reencrypt::Outcome::Finished);
    assert!(!device::opens(&p, &old).unwrap());
    let v = svc.rotate_key(&id, None).await.unwrap();
    assert_eq!(v.encryption_key_id.as_deref(), Some(pending.as_str()));
    assert!(key_gone(&svc, &k0).await);
    assert_data(&svc, &id, SIZE).await;
    svc.delete(&id).await.unwrap();

    // a pending rotation's volume can still be deleted: both secrets go
    let id = new_volume(&svc, "luks2", SIZE).await;
    let k0 = svc.get(&id).unwrap().encryption_key_id.unwrap();
    svc.rotate_key_with(&id, None, &small, &mut |_| false)
        .await
        .unwrap();
    let pending = svc.get(&id).unwrap().rotating_to.unwrap();
    svc.delete(&id).await.unwrap();
    assert!(key_gone(&svc, &k0).await && key_gone(&svc, &pending).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_from_an_encrypted_image_may_be_reencrypted() {
    use examples::image::{EncryptOptions, ImageService};
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let images = ImageService {
        cfg: svc.cfg.clone(),
        state: svc.state.clone(),
    };
    let guest = dir.path().join("guest.raw");
    let mut data = vec![0u8; 1 << 20];
    data[4096..4096 + HEAD.len()].copy_from_slice(HEAD);
    std::fs::write(&guest, &data).unwrap();
    // raw LUKS2 is reencrypted in place; raw LUKS1 is copied into a new container
    for lt in [luks::LuksType::Luks2, luks::LuksType::Luks1] {
        eprintln!("== a volume from a raw {lt:?} image");
        let img = images
            .create_encrypted(
                "guest",
                &guest,
                &EncryptOptions {
                    luks_type: lt,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let img_key = img.key_id().unwrap();
        let img_mk = master_key(&svc, &images.image_path(&img.id), &img_key).await;
        let req = CreateVolume {
            image_id: Some(img.id.clone()),
            volume_type: Some("luks2".into()),
            size_mib: 2,
            ..Default::default()
        };
        // as before: the image's volume key, under a clone of its secret
        let kept = svc.create(&req).await.unwrap();
        let kept_key = kept.encryption_key_id.clone().unwrap();
        assert_eq!(
            master_key(&svc, &path_of(&svc, &kept.id), &kept_key).await,
            img_mk
        );
        // reencrypted: a volume key and a secret of its own
        let own = svc
            .create(&CreateVolume {
                reencrypt: true,
                ..req.clone()
            })
            .await
            .unwrap();
        let own_key = own.encryption_key_id.clone().unwrap();
        let p = path_of(&svc, &own.id);
        let mk = master_key(&svc, &p, &own_key).await;
        assert_ne!(mk, img_mk, "{lt:?}: a volume key of its own");
        assert_ne!(decrypt_with(&p, &img_mk, 4096, HEAD.len()), HEAD);
        let img_pass = pass_of(&svc, &img_key).await;
        assert!(!device::opens(&p, &img_pass).unwrap());
        cryptsetup_agrees(&p, &pass_of(&svc, &own_key).await, &img_pass, &mk);
        let meta = svc
            .cfg
            .km
            .metadata(&svc.cfg.ctx, &SecretId::parse(&own_key).unwrap())
            .await
            .unwrap();
        assert!(meta.consumers.iter().any(|c| c.resource_id == own.id));
        images.delete(&img.id).await.unwrap();
        assert!(key_gone(&svc, &img_key).await);
        let h = svc.attach(&own.id).await.unwrap();
        assert_eq!(h.size().unwrap(), 2 << 20);
        let mut buf = vec![0u8; HEAD.len()];
        h.read_at(&mut buf, 4096).unwrap();
        assert_eq!(buf, HEAD);
        drop(h);
        svc.detach(&own.id).unwrap();
        for v in [kept, own] {
            svc.delete(&v.id).await.unwrap();
        }
    }
    // only for a volume from an image
    assert!(matches!(
        svc.create(&CreateVolume {
            size_mib: 1,
            volume_type: Some("luks2".into()),
            reencrypt: true,
            ..Default::default()
        })
        .await,
        Err(ServiceError::BadRequest(_))
    ));
}

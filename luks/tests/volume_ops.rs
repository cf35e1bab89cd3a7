//! Volume operations without external tools: 32 LUKS2 keyslots, change-key
//! keeping the slot and moving the area, every metadata size, detached headers,
//! read-only handles, header backup/restore round trips, option validation.

use luks::internal::HDR_SIZES;
use luks::{
    format, Error, FormatOptions, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType, Unlock, Volume,
};
use std::path::{Path, PathBuf};

fn img(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    p
}

fn fast() -> PbkdfOptions {
    PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2)
}

fn ks_opts(slot: Option<u32>) -> KeyslotOptions {
    KeyslotOptions {
        key_slot: slot,
        pbkdf: fast(),
    }
}

fn l2(bits: u32) -> FormatOptions {
    FormatOptions {
        luks_type: LuksType::Luks2,
        key_size_bits: Some(bits),
        pbkdf: fast(),
        ..Default::default()
    }
}

#[test]
fn luks2_holds_32_keyslots_and_refuses_a_33rd() {
    let dir = tempfile::tempdir().unwrap();
    let p = img(dir.path(), "a.img", 17 << 20);
    // 256-bit keys: 32 areas of 128 KiB fit the default keyslots area
    format(&p, &l2(256), b"pass-0").unwrap();
    let mut v = Volume::open(&p).unwrap();
    for i in 1..32u32 {
        let pass = format!("pass-{i}");
        let s = v
            .add_key(
                Unlock::Passphrase {
                    passphrase: b"pass-0",
                    slot: Some(0),
                },
                pass.as_bytes(),
                &ks_opts(None),
            )
            .unwrap();
        assert_eq!(s, i);
    }
    assert!(matches!(
        v.add_key(
            Unlock::Passphrase {
                passphrase: b"pass-0",
                slot: Some(0)
            },
            b"x",
            &ks_opts(None)
        ),
        Err(Error::NoFreeSlot)
    ));
    let v = Volume::open(&p).unwrap();
    assert_eq!(v.active_keyslots().len(), 32);
    assert_eq!(v.test_passphrase(b"pass-31", None).unwrap(), 31);
    assert_eq!(v.test_passphrase(b"pass-17", Some(17)).unwrap(), 17);
    assert!(matches!(
        v.test_passphrase(b"pass-17", Some(16)),
        Err(Error::NoMatchingKey)
    ));
    // all areas distinct and inside the keyslots area
    let md = v.luks2_metadata().unwrap();
    let mut areas: Vec<(u64, u64)> = md
        .keyslots
        .values()
        .map(|k| (k.area.offset, k.area.size))
        .collect();
    areas.sort();
    for w in areas.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0);
    }
}

#[test]
fn change_key_keeps_slot_moves_area_and_wipes_old() {
    let dir = tempfile::tempdir().unwrap();
    let p = img(dir.path(), "c.img", 17 << 20);
    format(&p, &l2(512), b"old").unwrap();
    let mut v = Volume::open(&p).unwrap();
    let before = v.luks2_metadata().unwrap().keyslots[&0].area.clone();
    let data = v.unlock(b"old", None).unwrap();
    data.write_at(b"payload survives", 12345).unwrap();
    drop(data);
    let slot = v.change_key(b"old", b"new", None, &ks_opts(None)).unwrap();
    assert_eq!(slot, 0);
    let v = Volume::open(&p).unwrap();
    let after = v.luks2_metadata().unwrap().keyslots[&0].area.clone();
    assert_ne!(
        before.offset, after.offset,
        "new material went to a free area"
    );
    assert!(matches!(
        v.test_passphrase(b"old", None),
        Err(Error::NoMatchingKey)
    ));
    let data = v.unlock(b"new", Some(0)).unwrap();
    let mut buf = [0u8; 16];
    data.read_at(&mut buf, 12345).unwrap();
    assert_eq!(&buf, b"payload survives");
    // the old area is wiped: no longer the bytes that were there
    let raw = std::fs::read(&p).unwrap();
    let old = &raw[before.offset as usize..(before.offset + before.size) as usize];
    assert!(old.iter().all(|&b| b == 0), "old keyslot area not wiped");
}

#[test]
fn luks1_change_key_moves_to_free_slot_and_remove_kill() {
    let dir = tempfile::tempdir().unwrap();
    let p = img(dir.path(), "l1.img", 3 << 20);
    let opts = FormatOptions {
        luks_type: LuksType::Luks1,
        pbkdf: fast(),
        ..Default::default()
    };
    format(&p, &opts, b"one").unwrap();
    let mut v = Volume::open(&p).unwrap();
    let s = v
        .add_key(
            Unlock::Passphrase {
                passphrase: b"one",
                slot: None,
            },
            b"two",
            &ks_opts(Some(6)),
        )
        .unwrap();
    assert_eq!(s, 6);
    let ns = v.change_key(b"one", b"uno", None, &ks_opts(None)).unwrap();
    assert_eq!(ns, 1, "LUKS1 change goes to the first free slot");
    assert_eq!(v.active_keyslots(), vec![1, 6]);
    assert!(matches!(
        v.test_passphrase(b"one", None),
        Err(Error::NoMatchingKey)
    ));
    assert_eq!(v.remove_key(b"two").unwrap(), 6);
    assert!(matches!(v.kill_slot(6), Err(Error::SlotInactive(6))));
    assert!(matches!(v.kill_slot(8), Err(Error::SlotOutOfRange { .. })));
    v.kill_slot(1).unwrap();
    assert!(Volume::open(&p).unwrap().active_keyslots().is_empty());
    // the volume key still opens the data
    assert!(matches!(
        v.test_passphrase(b"uno", None),
        Err(Error::NoMatchingKey)
    ));
}

#[test]
fn every_metadata_size_formats_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    for (i, &hs) in HDR_SIZES.iter().enumerate() {
        let p = img(dir.path(), &format!("h{i}.img"), 17 << 20);
        let mut o = l2(256);
        o.luks2_metadata_size = Some(hs);
        o.sector_size = Some(if i % 2 == 0 { 512 } else { 4096 });
        let info = format(&p, &o, b"pw").unwrap();
        assert_eq!(info.data_offset, 16 << 20, "data stays at 16 MiB");
        let v = Volume::open(&p).unwrap();
        let d = v.dump();
        assert_eq!(d.hdr_size, hs);
        assert_eq!(d.keyslots_size, (16 << 20) - 2 * hs);
        assert_eq!(d.keyslots[0].area_offset, 2 * hs);
        assert!(v.needs_repair().is_none());
        let u = v.unlock(b"pw", None).unwrap();
        assert_eq!(u.size(), 1 << 20);
        assert!(d.text().contains(&format!("Metadata area: \t{hs} [bytes]")));
    }
}

#[test]
fn detached_headers() {
    let dir = tempfile::tempdir().unwrap();
    for t in [LuksType::Luks1, LuksType::Luks2] {
        let hdr = img(dir.path(), &format!("{t:?}.hdr"), 16 << 20);
        let data = img(dir.path(), &format!("{t:?}.data"), 1 << 20);
        let o = FormatOptions {
            luks_type: t,
            offset_sectors: Some(0),
            pbkdf: fast(),
            sector_size: Some(512),
            ..Default::default()
        };
        let info = format(&hdr, &o, b"pw").unwrap();
        assert_eq!(info.data_offset, 0);
        // the header alone cannot be used for data
        let v = Volume::open(&hdr).unwrap();
        assert!(matches!(v.unlock(b"pw", None), Err(Error::Unsupported(_))));
        let v = Volume::open_detached(&hdr, &data).unwrap();
        let u = v.unlock(b"pw", None).unwrap();
        assert_eq!(u.layout().offset, 0);
        assert_eq!(u.size(), 1 << 20);
        u.write_at(b"detached", 4000).unwrap();
        drop(u);
        let raw = std::fs::read(&data).unwrap();
        assert!(
            !raw.windows(8).any(|w| w == b"detached"),
            "data is encrypted"
        );
        let u = Volume::open_detached(&hdr, &data)
            .unwrap()
            .unlock(b"pw", None)
            .unwrap();
        let mut b = [0u8; 8];
        u.read_at(&mut b, 4000).unwrap();
        assert_eq!(&b, b"detached");
    }
}

#[test]
fn read_only_handles_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let p = img(dir.path(), "ro.img", 17 << 20);
    format(&p, &l2(256), b"pw").unwrap();
    let mut v = Volume::open_read_only(&p).unwrap();
    let u = v.unlock(b"pw", None).unwrap();
    assert!(matches!(u.write_at(b"x", 0), Err(Error::Io { .. })));
    assert!(matches!(
        v.add_key(
            Unlock::Passphrase {
                passphrase: b"pw",
                slot: None
            },
            b"x",
            &ks_opts(None)
        ),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        u.read_at(&mut [0u8; 2], u.size() - 1),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn backup_restore_round_trip_without_tools() {
    let dir = tempfile::tempdir().unwrap();
    for t in [LuksType::Luks1, LuksType::Luks2] {
        let p = img(dir.path(), &format!("{t:?}.img"), 17 << 20);
        let o = FormatOptions {
            luks_type: t,
            pbkdf: fast(),
            ..Default::default()
        };
        format(&p, &o, b"before").unwrap();
        let v = Volume::open(&p).unwrap();
        let bk = dir.path().join(format!("{t:?}.backup"));
        v.backup_header(&bk).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&bk).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::metadata(&bk).unwrap().len(), v.metadata_len());
        assert!(v.backup_header(&bk).is_err(), "never overwrites a backup");
        let mut v = v;
        v.change_key(b"before", b"after", None, &ks_opts(None))
            .unwrap();
        assert!(Volume::open(&p)
            .unwrap()
            .test_passphrase(b"before", None)
            .is_err());
        let v = Volume::restore_header(&p, &bk).unwrap();
        assert!(v.test_passphrase(b"before", None).is_ok());
        assert!(v.test_passphrase(b"after", None).is_err());
        // garbage is not a backup
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![0u8; 1 << 16]).unwrap();
        assert!(matches!(
            Volume::restore_header(&p, &junk),
            Err(Error::Backup(_))
        ));
    }
}

#[test]
fn format_options_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let p = img(dir.path(), "o.img", 17 << 20);
    let bad: Vec<(FormatOptions, &str)> = vec![
        (
            FormatOptions {
                key_size_bits: Some(100),
                ..l2(256)
            },
            "--key-size",
        ),
        (
            FormatOptions {
                sector_size: Some(1000),
                ..l2(256)
            },
            "--sector-size",
        ),
        (
            FormatOptions {
                label: Some("x".repeat(48)),
                ..l2(256)
            },
            "--label",
        ),
        (
            FormatOptions {
                uuid: Some("not-a-uuid".into()),
                ..l2(256)
            },
            "--uuid",
        ),
        (
            FormatOptions {
                luks2_metadata_size: Some(12288),
                ..l2(256)
            },
            "--luks2-metadata-size",
        ),
        (
            FormatOptions {
                luks_type: LuksType::Luks1,
                pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Argon2id),
                ..l2(256)
            },
            "--pbkdf",
        ),
        (
            FormatOptions {
                pbkdf: PbkdfOptions {
                    force_iterations: Some(10),
                    ..fast()
                },
                ..l2(256)
            },
            "--pbkdf-force-iterations",
        ),
        (
            FormatOptions {
                pbkdf: PbkdfOptions {
                    memory_kib: Some(8 << 20),
                    force_iterations: Some(4),
                    pbkdf: Some(PbkdfType::Argon2id),
                    parallel: Some(1),
                    ..Default::default()
                },
                ..l2(256)
            },
            "--pbkdf-memory",
        ),
        (
            FormatOptions {
                cipher: Some("twofish".into()),
                ..l2(256)
            },
            "--cipher",
        ),
    ];
    for (o, opt) in bad {
        match format(&p, &o, b"pw") {
            Err(Error::InvalidOption { option, .. }) => assert_eq!(option, opt),
            other => panic!("{opt}: {other:?}"),
        }
    }
    // unsupported cipher is refused before the device is touched
    match format(
        &p,
        &FormatOptions {
            cipher: Some("serpent-xts-plain64".into()),
            ..l2(256)
        },
        b"pw",
    ) {
        Err(Error::Cipher(_)) | Err(Error::InvalidOption { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(std::fs::read(&p).unwrap().iter().all(|&b| b == 0));
    let small = img(dir.path(), "small.img", 1 << 20);
    assert!(matches!(
        format(&small, &l2(256), b"pw"),
        Err(Error::DeviceTooSmall { .. })
    ));
    // uuid and label are kept
    let o = FormatOptions {
        uuid: Some("12345678-1234-4234-8234-123456789abc".into()),
        label: Some("my label".into()),
        subsystem: Some("keymgr".into()),
        ..l2(256)
    };
    let info = format(&p, &o, b"pw").unwrap();
    assert_eq!(info.uuid, "12345678-1234-4234-8234-123456789abc");
    let d = Volume::open(&p).unwrap().dump();
    assert_eq!(
        (d.label.as_str(), d.subsystem.as_str()),
        ("my label", "keymgr")
    );
}

#[test]
fn volume_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let p = img(dir.path(), "vk.img", 17 << 20);
    let key = vec![0x42u8; 64];
    let o = FormatOptions {
        volume_key: Some(zeroize::Zeroizing::new(key.clone())),
        ..l2(512)
    };
    format(&p, &o, b"pw").unwrap();
    let mut v = Volume::open(&p).unwrap();
    let (_, k) = v.recover_volume_key(b"pw", None).unwrap();
    assert_eq!(k.as_bytes(), &key[..]);
    assert!(!format!("{k:?}").contains("42"), "Debug hides the key");
    assert!(matches!(
        v.unlock_with_volume_key(&[0x43; 64]),
        Err(Error::WrongVolumeKey)
    ));
    assert!(matches!(
        v.unlock_with_volume_key(&[0x42; 32]),
        Err(Error::WrongVolumeKey)
    ));
    let s = v
        .add_key(Unlock::VolumeKey(&key), b"by key", &ks_opts(Some(9)))
        .unwrap();
    assert_eq!(s, 9);
    assert_eq!(
        v.unlock(b"by key", None).unwrap().volume_key().as_bytes(),
        &key[..]
    );
}

#[test]
fn bulk_export_import_agree_with_read_at() {
    let dir = tempfile::tempdir().unwrap();
    for (t, ss) in [
        (LuksType::Luks2, 4096u32),
        (LuksType::Luks2, 512),
        (LuksType::Luks1, 512),
    ] {
        let p = img(
            dir.path(),
            &format!("bulk-{t:?}-{ss}.img"),
            (16 << 20) + (5 << 20),
        );
        let o = FormatOptions {
            luks_type: t,
            sector_size: (t == LuksType::Luks2).then_some(ss),
            pbkdf: fast(),
            ..Default::default()
        };
        format(&p, &o, b"pw").unwrap();
        let u = Volume::open(&p).unwrap().unlock(b"pw", None).unwrap();
        let size = u.size();
        let plain: Vec<u8> = (0..size - 1000).map(|i| (i * 7 + i / 4099) as u8).collect();
        // import at an unaligned offset, export the same range and the whole segment
        let n = u.import_from(&mut &plain[..], 333, &|_| {}).unwrap();
        assert_eq!(n, plain.len() as u64);
        let mut out = Vec::new();
        let done = std::cell::Cell::new(0);
        u.export_to(&mut out, 333, Some(plain.len() as u64), &|b| done.set(b))
            .unwrap();
        assert!(out == plain, "{t:?} {ss}: export differs from import");
        assert_eq!(done.get(), plain.len() as u64);
        let mut tail = vec![0u8; 4000];
        u.read_at(&mut tail, 333 + plain.len() as u64 - 4000)
            .unwrap();
        assert_eq!(&tail[..], &plain[plain.len() - 4000..]);
        // too much input
        let big = vec![1u8; size as usize];
        assert!(matches!(
            u.import_from(&mut &big[..], 1, &|_| {}),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            u.export_to(&mut Vec::new(), size, Some(1), &|_| {}),
            Err(Error::OutOfBounds { .. })
        ));
    }
}

//! Interoperability with cryptsetup 2.6: images it makes open here, data written
//! here decrypts with an independent AES (Python `cryptography`) under the volume
//! key cryptsetup prints, volumes formatted here pass cryptsetup's checks, and
//! keyslot changes made on either side are seen by the other.

mod common;

use common::*;
use luks::{
    format, Error, FormatOptions, HashAlg, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType,
    Unlock, Volume,
};
use std::path::{Path, PathBuf};

const A: &[u8] = b"first passphrase";
const B: &[u8] = b"second \x00 binary\npassphrase";
const C: &[u8] = b"third";

fn args_of(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn run_cs(cs: &Path, args: &[String]) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(cs, &a);
}

/// cryptsetup luksFormat with key file `kf`.
fn cs_format(cs: &Path, img: &Path, kf: &Path, extra: &[String]) {
    let mut a = args_of(&["luksFormat", "-q", "--key-file"]);
    a.push(kf.display().to_string());
    a.extend_from_slice(extra);
    a.push(img.display().to_string());
    run_cs(cs, &a);
}

/// cryptsetup luksAddKey: `new` added with `existing`, optionally at `slot`.
fn cs_add_key(cs: &Path, img: &Path, existing: &Path, new: &Path, slot: Option<u32>, pbkdf: &str) {
    let mut a = args_of(&["luksAddKey", "-q", "--key-file"]);
    a.push(existing.display().to_string());
    if let Some(s) = slot {
        a.push("--key-slot".into());
        a.push(s.to_string());
    }
    a.extend(fast_kdf_args(pbkdf));
    a.push(img.display().to_string());
    a.push(new.display().to_string());
    run_cs(cs, &a);
}

struct Keys {
    a: PathBuf,
    b: PathBuf,
    c: PathBuf,
}

fn keys(dir: &Path) -> Keys {
    Keys {
        a: secret_file(dir, "a.key", A),
        b: secret_file(dir, "b.key", B),
        c: secret_file(dir, "c.key", C),
    }
}

/// Writes a pattern here at an unaligned offset, then decrypts the raw sectors with
/// the oracle under `vk` and compares.
fn check_write_against_oracle(py: &Path, dir: &Path, img: &Path, vk: &[u8], mode: &str, seed: u64) {
    let v = Volume::open(img).unwrap();
    let data = v.unlock_with_volume_key(vk).unwrap();
    let layout = data.layout().clone();
    let ss = layout.sector_size as u64;
    let off = 3 * ss + 77;
    let plain = pattern(2 * ss as usize + 1000, seed);
    data.write_at(&plain, off).unwrap();
    let mut back = vec![0u8; plain.len()];
    data.read_at(&mut back, off).unwrap();
    assert_eq!(back, plain, "read back here");
    drop(data);
    // raw ciphertext of the covering sectors
    let start = off / ss * ss;
    let end = (off + plain.len() as u64).div_ceil(ss) * ss;
    let raw = std::fs::read(img).unwrap();
    let ct = &raw[(layout.offset + start) as usize..(layout.offset + end) as usize];
    let pt = oracle_decrypt(py, dir, vk, mode, ss as u32, layout.iv_for(start), ct);
    let s = (off - start) as usize;
    assert_eq!(
        &pt[s..s + plain.len()],
        &plain[..],
        "oracle decryption ({mode}, sector {ss})"
    );
}

#[test]
fn cryptsetup_images_open_here_and_data_matches_oracle() {
    let Some(cs) = tool("cryptsetup") else { return };
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "l1-xts512",
            vec!["--type", "luks1", "--hash", "sha256"],
            "pbkdf2",
        ),
        (
            "l1-xts256-sha1",
            vec!["--type", "luks1", "--hash", "sha1", "--key-size", "256"],
            "pbkdf2",
        ),
        (
            "l1-cbc-sha512",
            vec![
                "--type",
                "luks1",
                "--hash",
                "sha512",
                "--cipher",
                "aes-cbc-essiv:sha256",
                "--key-size",
                "256",
            ],
            "pbkdf2",
        ),
        (
            "l2-argon2id-4k",
            vec!["--type", "luks2", "--sector-size", "4096"],
            "argon2id",
        ),
        (
            "l2-argon2i-512-256",
            vec![
                "--type",
                "luks2",
                "--sector-size",
                "512",
                "--key-size",
                "256",
            ],
            "argon2i",
        ),
        (
            "l2-pbkdf2-sha512-4k",
            vec![
                "--type",
                "luks2",
                "--hash",
                "sha512",
                "--sector-size",
                "4096",
            ],
            "pbkdf2",
        ),
        (
            "l2-cbc-512",
            vec![
                "--type",
                "luks2",
                "--cipher",
                "aes-cbc-essiv:sha256",
                "--key-size",
                "256",
                "--sector-size",
                "512",
            ],
            "pbkdf2",
        ),
    ];
    for (name, extra, pbkdf) in cases {
        let img = sparse_file(dir.path(), &format!("{name}.img"), 24 << 20);
        let mut e = args_of(&extra);
        e.extend(fast_kdf_args(pbkdf));
        cs_format(&cs, &img, &k.a, &e);
        cs_add_key(&cs, &img, &k.a, &k.b, Some(3), pbkdf);
        let vk = cs_volume_key(&cs, &img, &k.a);
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.active_keyslots(), vec![0, 3], "{name}");
        let (slot, key) = v.recover_volume_key(A, None).unwrap();
        assert_eq!((slot, key.as_bytes()), (0, &vk[..]), "{name}");
        let (slot, key) = v.recover_volume_key(B, Some(3)).unwrap();
        assert_eq!((slot, key.as_bytes()), (3, &vk[..]), "{name}");
        assert!(
            matches!(v.test_passphrase(B, Some(0)), Err(Error::NoMatchingKey)),
            "{name}"
        );
        assert!(
            matches!(v.test_passphrase(C, None), Err(Error::NoMatchingKey)),
            "{name}"
        );
        assert!(matches!(
            v.unlock_with_volume_key(&[0u8; 64][..vk.len()]),
            Err(Error::WrongVolumeKey)
        ));
        let d = v.dump();
        if extra.contains(&"4096") {
            assert_eq!(d.sector_size, 4096, "{name}");
        } else {
            assert_eq!(d.sector_size, 512, "{name}");
        }
        assert_eq!(d.key_size_bits as usize, vk.len() * 8);
        let mode = if name.contains("cbc") {
            "cbc-essiv:sha256"
        } else {
            "xts-plain64"
        };
        check_write_against_oracle(&py, dir.path(), &img, &vk, mode, name.len() as u64);
        // and through a passphrase unlock: same plaintext
        let data = v.unlock(B, None).unwrap();
        let ss = data.layout().sector_size as u64;
        let mut buf = vec![0u8; 100];
        data.read_at(&mut buf, 3 * ss + 77).unwrap();
        assert_eq!(
            buf,
            pattern(2 * ss as usize + 1000, name.len() as u64)[..100].to_vec()
        );
        // cryptsetup still accepts both keys after our data writes
        assert!(cs_accepts(&cs, &img, &k.a, None) && cs_accepts(&cs, &img, &k.b, Some(3)));
    }
}

fn fast(kind: PbkdfType) -> PbkdfOptions {
    PbkdfOptions::fast_for_tests(kind)
}

#[test]
fn formatted_here_passes_cryptsetup() {
    let Some(cs) = tool("cryptsetup") else { return };
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let l1 = |cipher: &str, bits: u32, hash: HashAlg| FormatOptions {
        luks_type: LuksType::Luks1,
        cipher: Some(cipher.into()),
        key_size_bits: Some(bits),
        hash: Some(hash),
        pbkdf: fast(PbkdfType::Pbkdf2),
        ..Default::default()
    };
    let l2 = |kind: PbkdfType, sector: u32, bits: u32| FormatOptions {
        luks_type: LuksType::Luks2,
        key_size_bits: Some(bits),
        sector_size: Some(sector),
        pbkdf: fast(kind),
        ..Default::default()
    };
    let uuid = "0b7e2a4c-3f0e-4a43-9d5d-6b1f7b2a9c11";
    let cases: Vec<(&str, FormatOptions)> = vec![
        (
            "l1-xts512-sha256",
            l1("aes-xts-plain64", 512, HashAlg::Sha256),
        ),
        ("l1-xts256-sha1", l1("aes-xts-plain64", 256, HashAlg::Sha1)),
        (
            "l1-cbc-sha512",
            l1("aes-cbc-essiv:sha256", 256, HashAlg::Sha512),
        ),
        (
            "l1-qemu-layout",
            FormatOptions {
                align_payload_sectors: Some(8),
                ..l1("aes-xts-plain64", 512, HashAlg::Sha256)
            },
        ),
        (
            "l1-offset",
            FormatOptions {
                offset_sectors: Some(8192),
                uuid: Some(uuid.into()),
                ..l1("aes-xts-plain64", 512, HashAlg::Sha256)
            },
        ),
        ("l2-argon2id-4k-512", l2(PbkdfType::Argon2id, 4096, 512)),
        ("l2-argon2i-512-256", l2(PbkdfType::Argon2i, 512, 256)),
        (
            "l2-pbkdf2-4k-256",
            FormatOptions {
                hash: Some(HashAlg::Sha512),
                ..l2(PbkdfType::Pbkdf2, 4096, 256)
            },
        ),
        (
            "l2-label-uuid-meta",
            FormatOptions {
                label: Some("my label".into()),
                subsystem: Some("sub".into()),
                uuid: Some(uuid.into()),
                luks2_metadata_size: Some(64 << 10),
                luks2_keyslots_size: Some(4 << 20),
                ..l2(PbkdfType::Argon2id, 512, 512)
            },
        ),
        (
            "l2-meta-4m",
            FormatOptions {
                luks2_metadata_size: Some(4 << 20),
                ..l2(PbkdfType::Argon2i, 4096, 512)
            },
        ),
        (
            "l2-cbc",
            FormatOptions {
                cipher: Some("aes-cbc-essiv:sha256".into()),
                ..l2(PbkdfType::Pbkdf2, 512, 256)
            },
        ),
        (
            "l2-offset",
            FormatOptions {
                offset_sectors: Some(65536),
                ..l2(PbkdfType::Pbkdf2, 4096, 512)
            },
        ),
    ];
    for (name, opts) in cases {
        let img = sparse_file(dir.path(), &format!("{name}.img"), 40 << 20);
        let info = format(&img, &opts, A).unwrap();
        assert!(
            cs_accepts(&cs, &img, &k.a, None),
            "{name}: cryptsetup refuses the passphrase"
        );
        assert!(
            !cs_accepts(&cs, &img, &k.b, None),
            "{name}: cryptsetup accepts a wrong passphrase"
        );
        let dump = run_ok(&cs, &["luksDump", &img.display().to_string()]);
        let text = String::from_utf8_lossy(&dump.stdout).to_string();
        assert!(text.contains(&info.uuid), "{name}: {text}");
        if let Some(u) = &opts.uuid {
            assert_eq!(&info.uuid, u);
        }
        if let Some(m) = opts.luks2_metadata_size {
            assert!(
                text.contains(&format!("Metadata area: \t{m} [bytes]")),
                "{name}: {text}"
            );
        }
        if let Some(l) = &opts.label {
            assert!(text.contains(l.as_str()), "{name}: label missing in {text}");
        }
        if opts.luks_type == LuksType::Luks2 {
            let j = run_ok(
                &cs,
                &[
                    "luksDump",
                    "--dump-json-metadata",
                    &img.display().to_string(),
                ],
            );
            let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
            assert_eq!(
                v["segments"]["0"]["sector_size"],
                opts.sector_size.unwrap(),
                "{name}"
            );
            let kdf = &v["keyslots"]["0"]["kdf"]["type"];
            assert_eq!(kdf, opts.pbkdf.pbkdf.unwrap().name(), "{name}");
            if let Some(o) = opts.offset_sectors {
                assert_eq!(v["segments"]["0"]["offset"], (o * 512).to_string());
            }
        } else {
            let want = match (opts.offset_sectors, opts.align_payload_sectors) {
                (Some(o), _) => o,
                (None, Some(8)) => 4040,
                _ => 4096,
            };
            assert!(
                text.contains(&format!("Payload offset:\t{want}")),
                "{name}: {text}"
            );
        }
        let vk = cs_volume_key(&cs, &img, &k.a);
        assert_eq!(vk.len() as u32 * 8, info.key_size_bits);
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.recover_volume_key(A, None).unwrap().1.as_bytes(), &vk[..]);
        let mode = if name.contains("cbc") {
            "cbc-essiv:sha256"
        } else {
            "xts-plain64"
        };
        check_write_against_oracle(&py, dir.path(), &img, &vk, mode, 7);
    }
}

#[test]
fn keyslot_changes_here_seen_by_cryptsetup() {
    let Some(cs) = tool("cryptsetup") else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    for (t, kind) in [
        (LuksType::Luks1, PbkdfType::Pbkdf2),
        (LuksType::Luks2, PbkdfType::Argon2id),
        (LuksType::Luks2, PbkdfType::Pbkdf2),
    ] {
        let img = sparse_file(dir.path(), &format!("ks-{t:?}-{kind:?}.img"), 20 << 20);
        let opts = FormatOptions {
            luks_type: t,
            pbkdf: fast(kind),
            ..Default::default()
        };
        format(&img, &opts, A).unwrap();
        let ko = KeyslotOptions {
            key_slot: None,
            pbkdf: fast(kind),
        };
        let mut v = Volume::open(&img).unwrap();
        let sb = v
            .add_key(
                Unlock::Passphrase {
                    passphrase: A,
                    slot: None,
                },
                B,
                &ko,
            )
            .unwrap();
        assert_eq!(sb, 1);
        assert!(cs_accepts(&cs, &img, &k.a, Some(0)));
        assert!(cs_accepts(&cs, &img, &k.b, Some(1)));
        // add by volume key at a chosen slot
        let vk = v.recover_volume_key(A, None).unwrap().1;
        let s5 = v
            .add_key(
                Unlock::VolumeKey(vk.as_bytes()),
                C,
                &KeyslotOptions {
                    key_slot: Some(5),
                    pbkdf: fast(kind),
                },
            )
            .unwrap();
        assert_eq!(s5, 5);
        assert!(cs_accepts(&cs, &img, &k.c, Some(5)));
        // slot already taken
        assert!(matches!(
            v.add_key(
                Unlock::Passphrase {
                    passphrase: A,
                    slot: None
                },
                C,
                &KeyslotOptions {
                    key_slot: Some(5),
                    pbkdf: fast(kind)
                }
            ),
            Err(Error::SlotActive(5))
        ));
        // remove C (slot 5), change B -> C
        assert_eq!(v.remove_key(C).unwrap(), 5);
        assert!(!cs_accepts(&cs, &img, &k.c, None));
        let sc = v.change_key(B, C, None, &ko).unwrap();
        assert!(cs_accepts(&cs, &img, &k.c, Some(sc)), "{t:?}");
        assert!(
            !cs_accepts(&cs, &img, &k.b, None),
            "{t:?}: old passphrase still accepted"
        );
        assert!(cs_accepts(&cs, &img, &k.a, None));
        // kill A's slot
        v.kill_slot(0).unwrap();
        assert!(!cs_accepts(&cs, &img, &k.a, None));
        assert!(cs_accepts(&cs, &img, &k.c, None));
        assert!(matches!(v.kill_slot(0), Err(Error::SlotInactive(0))));
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.active_keyslots(), vec![sc]);
        // the key is unchanged through all of this
        assert_eq!(
            v.recover_volume_key(C, None).unwrap().1.as_bytes(),
            vk.as_bytes()
        );
        assert_eq!(cs_volume_key(&cs, &img, &k.c), vk.as_bytes());
        run_ok(&cs, &["luksDump", &img.display().to_string()]);
    }
}

#[test]
fn keyslot_changes_by_cryptsetup_seen_here() {
    let Some(cs) = tool("cryptsetup") else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    for (t, kind) in [
        ("luks1", "pbkdf2"),
        ("luks2", "argon2i"),
        ("luks2", "pbkdf2"),
    ] {
        let img = sparse_file(dir.path(), &format!("rev-{t}-{kind}.img"), 20 << 20);
        let mut e = args_of(&["--type", t]);
        e.extend(fast_kdf_args(kind));
        cs_format(&cs, &img, &k.a, &e);
        cs_add_key(&cs, &img, &k.a, &k.b, None, kind);
        // change B -> C
        let mut a = args_of(&["luksChangeKey", "-q", "--key-file"]);
        a.push(k.b.display().to_string());
        a.extend(fast_kdf_args(kind));
        a.push(img.display().to_string());
        a.push(k.c.display().to_string());
        run_cs(&cs, &a);
        let v = Volume::open(&img).unwrap();
        v.test_passphrase(A, None).unwrap();
        v.test_passphrase(C, None).unwrap();
        assert!(
            matches!(v.test_passphrase(B, None), Err(Error::NoMatchingKey)),
            "{t}"
        );
        // remove A
        let mut a = args_of(&["luksRemoveKey", "-q", "--key-file"]);
        a.push(k.a.display().to_string());
        a.push(img.display().to_string());
        run_cs(&cs, &a);
        let mut v = Volume::open(&img).unwrap();
        assert!(matches!(
            v.test_passphrase(A, None),
            Err(Error::NoMatchingKey)
        ));
        assert_eq!(v.active_keyslots().len(), 1);
        // then add here, and cryptsetup sees it
        let ko = KeyslotOptions {
            key_slot: None,
            pbkdf: if kind == "pbkdf2" {
                fast(PbkdfType::Pbkdf2)
            } else {
                fast(PbkdfType::Argon2id)
            },
        };
        v.add_key(
            Unlock::Passphrase {
                passphrase: C,
                slot: None,
            },
            A,
            &ko,
        )
        .unwrap();
        assert!(cs_accepts(&cs, &img, &k.a, None));
        assert!(cs_accepts(&cs, &img, &k.c, None));
        assert!(!cs_accepts(&cs, &img, &k.b, None));
    }
}

#[test]
fn luks2_tokens_and_backup_restore_with_cryptsetup() {
    let Some(cs) = tool("cryptsetup") else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let img = sparse_file(dir.path(), "tok.img", 20 << 20);
    format(
        &img,
        &FormatOptions {
            pbkdf: fast(PbkdfType::Pbkdf2),
            ..Default::default()
        },
        A,
    )
    .unwrap();
    let mut v = Volume::open(&img).unwrap();
    let tok = serde_json::json!({"type": "keymgr-test", "keyslots": ["0"], "key_ref": "abc", "extra": {"n": 1}});
    let id = v.add_token(None, &tok).unwrap();
    let j = run_ok(
        &cs,
        &[
            "luksDump",
            "--dump-json-metadata",
            &img.display().to_string(),
        ],
    );
    let jv: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(jv["tokens"][id.to_string()]["key_ref"], "abc");
    assert_eq!(jv["tokens"][id.to_string()]["extra"]["n"], 1);
    // backup, damage, restore
    let bk = dir.path().join("hdr.bak");
    v.backup_header(&bk).unwrap();
    drop(v);
    let mut b = std::fs::read(&img).unwrap();
    b[..4096].fill(0);
    b[16384..16384 + 4096].fill(0);
    std::fs::write(&img, &b).unwrap();
    assert!(Volume::open(&img).is_err());
    assert!(!cs_accepts_or_err(&cs, &img, &k.a));
    let v = Volume::restore_header(&img, &bk).unwrap();
    assert_eq!(v.tokens().unwrap().len(), 1);
    assert!(cs_accepts(&cs, &img, &k.a, None));
    // cryptsetup's own header backup restores here too
    let cbk = dir.path().join("cs.bak");
    run_ok(
        &cs,
        &[
            "luksHeaderBackup",
            "--header-backup-file",
            &cbk.display().to_string(),
            &img.display().to_string(),
        ],
    );
    let mut b = std::fs::read(&img).unwrap();
    b[..4096].fill(0);
    std::fs::write(&img, &b).unwrap();
    let v = Volume::restore_header(&img, &cbk).unwrap();
    v.test_passphrase(A, None).unwrap();
    assert!(cs_accepts(&cs, &img, &k.a, None));
}

/// Like `cs_accepts` but a refused header (status other than 0/2) counts as refusal.
fn cs_accepts_or_err(cs: &Path, img: &Path, key: &Path) -> bool {
    let o = run(
        cs,
        &[
            "open",
            "--test-passphrase",
            "--key-file",
            &key.display().to_string(),
            &img.display().to_string(),
        ],
    );
    o.status.success()
}

#[test]
fn luks1_detached_header() {
    let Some(cs) = tool("cryptsetup") else { return };
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let hdr = sparse_file(dir.path(), "hdr.img", 2 << 20);
    let data_img = sparse_file(dir.path(), "data.img", 1 << 20);
    let opts = FormatOptions {
        luks_type: LuksType::Luks1,
        offset_sectors: Some(0),
        pbkdf: fast(PbkdfType::Pbkdf2),
        ..Default::default()
    };
    let info = format(&hdr, &opts, A).unwrap();
    assert_eq!(info.data_offset, 0);
    assert!(cs_accepts(&cs, &hdr, &k.a, None));
    let dump = run_ok(&cs, &["luksDump", &hdr.display().to_string()]);
    assert!(String::from_utf8_lossy(&dump.stdout).contains("Payload offset:\t0"));
    // without the data device, the header alone gives no data access
    let v = Volume::open(&hdr).unwrap();
    assert!(v.unlock(A, None).is_err());
    let v = Volume::open_detached(&hdr, &data_img).unwrap();
    let data = v.unlock(A, None).unwrap();
    assert_eq!(data.size(), 1 << 20);
    assert_eq!(data.layout().offset, 0);
    let plain = pattern(5000, 3);
    data.write_at(&plain, 1234).unwrap();
    drop(data);
    let vk = cs_volume_key(&cs, &hdr, &k.a);
    let raw = std::fs::read(&data_img).unwrap();
    let pt = oracle_decrypt(
        &py,
        dir.path(),
        &vk,
        "xts-plain64",
        512,
        2,
        &raw[1024..6656],
    );
    assert_eq!(&pt[210..5210], &plain[..]);
}

#[test]
fn iter_time_benchmark_and_many_keyslots() {
    let Some(cs) = tool("cryptsetup") else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    // --iter-time: the benchmark picks the cost (pbkdf2 and a small-memory argon2id)
    let img = sparse_file(dir.path(), "bench.img", 20 << 20);
    let opts = FormatOptions {
        sector_size: Some(512),
        pbkdf: PbkdfOptions {
            pbkdf: Some(PbkdfType::Pbkdf2),
            iter_time_ms: Some(50),
            ..Default::default()
        },
        ..Default::default()
    };
    format(&img, &opts, A).unwrap();
    let j = run_ok(
        &cs,
        &[
            "luksDump",
            "--dump-json-metadata",
            &img.display().to_string(),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let iters = v["keyslots"]["0"]["kdf"]["iterations"].as_u64().unwrap();
    assert!(iters >= 1000, "{iters}");
    assert!(cs_accepts(&cs, &img, &k.a, None));
    let mut vol = Volume::open(&img).unwrap();
    let ko = KeyslotOptions {
        key_slot: None,
        pbkdf: PbkdfOptions {
            pbkdf: Some(PbkdfType::Argon2id),
            iter_time_ms: Some(50),
            memory_kib: Some(1024),
            parallel: Some(1),
            ..Default::default()
        },
    };
    let s = vol
        .add_key(
            Unlock::Passphrase {
                passphrase: A,
                slot: None,
            },
            B,
            &ko,
        )
        .unwrap();
    let j = run_ok(
        &cs,
        &[
            "luksDump",
            "--dump-json-metadata",
            &img.display().to_string(),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let kdf = &v["keyslots"][s.to_string()]["kdf"];
    assert_eq!(kdf["type"], "argon2id");
    assert!(kdf["time"].as_u64().unwrap() >= 4);
    assert!(kdf["memory"].as_u64().unwrap() <= 1024);
    assert!(cs_accepts(&cs, &img, &k.b, Some(s)));
    // fill all 32 LUKS2 keyslots
    let fastko = KeyslotOptions {
        key_slot: None,
        pbkdf: fast(PbkdfType::Pbkdf2),
    };
    let vk = vol.recover_volume_key(A, Some(0)).unwrap().1;
    for _ in 2..32 {
        vol.add_key(Unlock::VolumeKey(vk.as_bytes()), C, &fastko)
            .unwrap();
    }
    assert_eq!(vol.active_keyslots(), (0..32).collect::<Vec<u32>>());
    assert!(matches!(
        vol.add_key(Unlock::VolumeKey(vk.as_bytes()), C, &fastko),
        Err(Error::NoFreeSlot)
    ));
    assert!(matches!(
        vol.add_key(
            Unlock::VolumeKey(vk.as_bytes()),
            C,
            &KeyslotOptions {
                key_slot: Some(32),
                pbkdf: fast(PbkdfType::Pbkdf2)
            }
        ),
        Err(Error::SlotOutOfRange { slot: 32, .. })
    ));
    assert!(cs_accepts(&cs, &img, &k.c, Some(31)));
    assert!(cs_accepts(&cs, &img, &k.a, Some(0)));
    let d = vol.dump();
    assert_eq!(d.keyslots.len(), 32);
    let text = d.text();
    assert!(text.contains("31: luks2"), "{text}");
    // LUKS1 has 8
    let img1 = sparse_file(dir.path(), "l1.img", 4 << 20);
    format(
        &img1,
        &FormatOptions {
            luks_type: LuksType::Luks1,
            pbkdf: fast(PbkdfType::Pbkdf2),
            ..Default::default()
        },
        A,
    )
    .unwrap();
    let mut v1 = Volume::open(&img1).unwrap();
    for _ in 1..8 {
        v1.add_key(
            Unlock::Passphrase {
                passphrase: A,
                slot: Some(0),
            },
            C,
            &fastko,
        )
        .unwrap();
    }
    assert!(matches!(
        v1.add_key(
            Unlock::Passphrase {
                passphrase: A,
                slot: Some(0)
            },
            C,
            &fastko
        ),
        Err(Error::NoFreeSlot)
    ));
    assert!(cs_accepts(&cs, &img1, &k.c, Some(7)));
}

#[test]
fn cryptsetup_priority_and_tokens_respected_and_preserved() {
    let Some(cs) = tool("cryptsetup") else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let img = sparse_file(dir.path(), "prio.img", 20 << 20);
    let mut e = args_of(&["--type", "luks2"]);
    e.extend(fast_kdf_args("pbkdf2"));
    cs_format(&cs, &img, &k.a, &e);
    cs_add_key(&cs, &img, &k.a, &k.b, Some(1), "pbkdf2");
    let ims = img.display().to_string();
    run_ok(
        &cs,
        &["config", "--priority", "ignore", "--key-slot", "1", &ims],
    );
    let tok = dir.path().join("tok.json");
    std::fs::write(
        &tok,
        br#"{"type":"x-keymgr","keyslots":["1"],"key_description":"d","nested":{"a":[1,2,3]}}"#,
    )
    .unwrap();
    run_ok(
        &cs,
        &[
            "token",
            "import",
            "--json-file",
            &tok.display().to_string(),
            "--token-id",
            "3",
            &ims,
        ],
    );
    let mut v = Volume::open(&img).unwrap();
    // priority ignore: skipped unless the slot is named (as cryptsetup does)
    assert!(matches!(
        v.test_passphrase(B, None),
        Err(Error::NoMatchingKey)
    ));
    assert_eq!(v.test_passphrase(B, Some(1)).unwrap(), 1);
    assert!(!cs_accepts(&cs, &img, &k.b, None));
    let toks = v.tokens().unwrap();
    assert_eq!(toks.len(), 1);
    assert_eq!(toks[0].0, 3);
    assert_eq!(toks[0].1["nested"]["a"][2], 3);
    // rewrite the header here (new keyslot): token, priority and unknown JSON survive
    v.add_key(
        Unlock::Passphrase {
            passphrase: A,
            slot: None,
        },
        C,
        &KeyslotOptions {
            key_slot: None,
            pbkdf: fast(PbkdfType::Pbkdf2),
        },
    )
    .unwrap();
    let out = run_ok(&cs, &["token", "export", "--token-id", "3", &ims]);
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["nested"]["a"], serde_json::json!([1, 2, 3]));
    assert_eq!(t["key_description"], "d");
    let j = run_ok(&cs, &["luksDump", "--dump-json-metadata", &ims]);
    let jv: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(jv["keyslots"]["1"]["priority"], 0);
    assert!(cs_accepts(&cs, &img, &k.c, None));
    assert!(cs_accepts(&cs, &img, &k.b, Some(1)));
    // removing the keyslot drops it from the token's list
    v.kill_slot(1).unwrap();
    let out = run_ok(&cs, &["token", "export", "--token-id", "3", &ims]);
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["keyslots"], serde_json::json!([]));
    v.remove_token(3).unwrap();
    assert!(!run(&cs, &["token", "export", "--token-id", "3", &ims])
        .status
        .success());
}

/// Simulated crashes around a LUKS2 keyslot addition: the new material goes to an
/// area the old header does not use, and the two header copies are written in
/// order, so every intermediate state opens (here and with cryptsetup).
#[test]
fn luks2_add_key_crash_states() {
    let Some(cs) = tool("cryptsetup") else { return };
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let img = sparse_file(dir.path(), "crash.img", 20 << 20);
    format(
        &img,
        &FormatOptions {
            sector_size: Some(512),
            pbkdf: fast(PbkdfType::Pbkdf2),
            ..Default::default()
        },
        A,
    )
    .unwrap();
    let before = std::fs::read(&img).unwrap();
    let hdr = Volume::open(&img).unwrap().dump().hdr_size as usize;
    let mut v = Volume::open(&img).unwrap();
    v.add_key(
        Unlock::Passphrase {
            passphrase: A,
            slot: None,
        },
        B,
        &KeyslotOptions {
            key_slot: None,
            pbkdf: fast(PbkdfType::Pbkdf2),
        },
    )
    .unwrap();
    drop(v);
    let after = std::fs::read(&img).unwrap();
    // 1. crash after the material, before any header copy: old headers + new body
    let mut s1 = after.clone();
    s1[..2 * hdr].copy_from_slice(&before[..2 * hdr]);
    std::fs::write(&img, &s1).unwrap();
    let v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().is_none());
    v.test_passphrase(A, None).unwrap();
    assert!(matches!(
        v.test_passphrase(B, None),
        Err(Error::NoMatchingKey)
    ));
    assert!(cs_accepts(&cs, &img, &k.a, None) && !cs_accepts(&cs, &img, &k.b, None));
    // 2. crash after the primary copy: the newer primary wins, the secondary is repaired on write
    let mut s2 = after.clone();
    s2[hdr..2 * hdr].copy_from_slice(&before[hdr..2 * hdr]);
    std::fs::write(&img, &s2).unwrap();
    let mut v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().is_some());
    v.test_passphrase(B, None).unwrap();
    assert!(cs_accepts(&cs, &img, &k.b, None));
    v.repair().unwrap();
    let fixed = std::fs::read(&img).unwrap();
    let v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().is_none());
    assert_ne!(fixed[hdr..2 * hdr], before[hdr..2 * hdr]);
    // 3. primary torn (garbage in its JSON area), secondary new: opens from the secondary
    let mut s3 = after.clone();
    s3[4096..8192].fill(0xee);
    std::fs::write(&img, &s3).unwrap();
    let v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().unwrap().contains("primary"));
    v.test_passphrase(B, None).unwrap();
    assert!(cs_accepts(&cs, &img, &k.b, None));
}

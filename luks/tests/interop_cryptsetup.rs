//! Interoperability with cryptsetup 2.6: images it makes open here, data written
//! here decrypts with an independent AES (Python `cryptography`) under the volume
//! key cryptsetup prints, volumes formatted here pass cryptsetup's checks, and
//! keyslot changes made on either side are seen by the other. The format
//! variations are tables of named cases, checked by one loop each.

#[path = "common/cases.rs"]
mod cases;
mod common;

use cases::{check_named, cs_dump, cs_json, cs_token_import};
use common::*;
use luks::{
    format, Error, FormatOptions, HashAlg, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType,
    Unlock, Volume, VolumeInfo,
};
use std::path::{Path, PathBuf};

const A: &[u8] = b"first passphrase";
const B: &[u8] = b"second \x00 binary\npassphrase";
const C: &[u8] = b"third";

fn args_of(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

/// cryptsetup `action -q --key-file KEY OPTS.. IMG [NEW]` (luksFormat,
/// luksAddKey, luksChangeKey, luksRemoveKey).
fn cs_key_cmd(
    cs: &Path,
    action: &str,
    key: &Path,
    opts: &[String],
    img: &Path,
    new: Option<&Path>,
) {
    let mut a = args_of(&[action, "-q", "--key-file"]);
    a.push(key.display().to_string());
    a.extend_from_slice(opts);
    a.push(img.display().to_string());
    a.extend(new.map(|p| p.display().to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_ok(cs, &a);
}

/// cryptsetup luksFormat: LUKS `luks_type` with a fast `kdf` keyslot for key file
/// `kf`, then `extra`.
fn cs_format(cs: &Path, img: &Path, kf: &Path, luks_type: &str, kdf: &str, extra: &[&str]) {
    let mut e = args_of(&["--type", luks_type]);
    e.extend(args_of(extra));
    e.extend(fast_kdf_args(kdf));
    cs_key_cmd(cs, "luksFormat", kf, &e, img, None);
}

/// cryptsetup luksAddKey: `new` added with `existing`, optionally at `slot`.
fn cs_add_key(cs: &Path, img: &Path, existing: &Path, new: &Path, slot: Option<u32>, pbkdf: &str) {
    let mut a = Vec::new();
    if let Some(s) = slot {
        a.push("--key-slot".into());
        a.push(s.to_string());
    }
    a.extend(fast_kdf_args(pbkdf));
    cs_key_cmd(cs, "luksAddKey", existing, &a, img, Some(new));
}

/// `cryptsetup token export`: token `id` of `img`, if there is one.
fn cs_token(cs: &Path, img: &Path, id: u32) -> Option<serde_json::Value> {
    let (id, img) = (id.to_string(), img.display().to_string());
    let o = run(cs, &["token", "export", "--token-id", &id, &img]);
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).expect("token JSON"))
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

/// cryptsetup (None: skip), a temporary folder, and key files there of A, B and C.
fn setup() -> Option<(PathBuf, tempfile::TempDir, Keys)> {
    let cs = tool("cryptsetup")?;
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    Some((cs, dir, k))
}

/// Format options: `luks_type` with a fast `kind` keyslot, the rest default.
fn fast_format(luks_type: LuksType, kind: PbkdfType) -> FormatOptions {
    FormatOptions {
        luks_type,
        pbkdf: fast(kind),
        ..Default::default()
    }
}

/// A new `size`-byte image `name` in `dir`, formatted here with `opts` and passphrase A.
fn format_new(dir: &Path, name: &str, size: u64, opts: &FormatOptions) -> (PathBuf, VolumeInfo) {
    let img = sparse_file(dir, name, size);
    let info = format(&img, opts, A).unwrap();
    (img, info)
}

fn fast(kind: PbkdfType) -> PbkdfOptions {
    PbkdfOptions::fast_for_tests(kind)
}

/// A fast `kind` keyslot at `slot` (or the first free one).
fn fast_slot(slot: Option<u32>, kind: PbkdfType) -> KeyslotOptions {
    KeyslotOptions {
        key_slot: slot,
        pbkdf: fast(kind),
    }
}

/// Adds passphrase `new` in a fast `kind` keyslot at `at` (or the first free
/// one), unlocking with passphrase `with` (from `slot`, or any).
fn add_pass(
    v: &mut Volume,
    (with, slot): (&[u8], Option<u32>),
    new: &[u8],
    at: Option<u32>,
    kind: PbkdfType,
) -> luks::Result<u32> {
    let unlock = Unlock::Passphrase {
        passphrase: with,
        slot,
    };
    v.add_key(unlock, new, &fast_slot(at, kind))
}

/// The cipher mode of a case named `…cbc…` (else XTS).
fn mode_of(name: &str) -> &'static str {
    if name.contains("cbc") {
        "cbc-essiv:sha256"
    } else {
        "xts-plain64"
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
    let Some((cs, dir, k)) = setup() else { return };
    let Some(py) = python() else { return };
    // name (its length seeds the data pattern), type, KDF, more luksFormat arguments, sector size
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, &[&str], u32); 7] = [
        ("l1-xts512",           "luks1", "pbkdf2",   &["--hash", "sha256"], 512),
        ("l1-xts256-sha1",      "luks1", "pbkdf2",   &["--hash", "sha1", "--key-size", "256"], 512),
        ("l1-cbc-sha512",       "luks1", "pbkdf2",   &["--hash", "sha512", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"], 512),
        ("l2-argon2id-4k",      "luks2", "argon2id", &["--sector-size", "4096"], 4096),
        ("l2-argon2i-512-256",  "luks2", "argon2i",  &["--sector-size", "512", "--key-size", "256"], 512),
        ("l2-pbkdf2-sha512-4k", "luks2", "pbkdf2",   &["--hash", "sha512", "--sector-size", "4096"], 4096),
        ("l2-cbc-512",          "luks2", "pbkdf2",   &["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--sector-size", "512"], 512),
    ];
    check_named(
        "cryptsetup images",
        cases,
        |(name, t, pbkdf, extra, sector)| {
            let img = sparse_file(dir.path(), &format!("{name}.img"), 24 << 20);
            cs_format(&cs, &img, &k.a, t, pbkdf, extra);
            cs_add_key(&cs, &img, &k.a, &k.b, Some(3), pbkdf);
            let vk = cs_volume_key(&cs, &img, &k.a);
            let v = Volume::open(&img).unwrap();
            assert_eq!(v.active_keyslots(), vec![0, 3]);
            let (slot, key) = v.recover_volume_key(A, None).unwrap();
            assert_eq!((slot, key.as_bytes()), (0, &vk[..]));
            let (slot, key) = v.recover_volume_key(B, Some(3)).unwrap();
            assert_eq!((slot, key.as_bytes()), (3, &vk[..]));
            assert!(matches!(
                v.test_passphrase(B, Some(0)),
                Err(Error::NoMatchingKey)
            ));
            assert!(matches!(
                v.test_passphrase(C, None),
                Err(Error::NoMatchingKey)
            ));
            assert!(matches!(
                v.unlock_with_volume_key(&[0u8; 64][..vk.len()]),
                Err(Error::WrongVolumeKey)
            ));
            let d = v.dump();
            assert_eq!(d.sector_size, sector);
            assert_eq!(d.key_size_bits as usize, vk.len() * 8);
            let seed = name.len() as u64;
            check_write_against_oracle(&py, dir.path(), &img, &vk, mode_of(name), seed);
            // and through a passphrase unlock: same plaintext
            let data = v.unlock(B, None).unwrap();
            let ss = data.layout().sector_size as u64;
            let mut buf = vec![0u8; 100];
            data.read_at(&mut buf, 3 * ss + 77).unwrap();
            assert_eq!(buf, pattern(2 * ss as usize + 1000, seed)[..100].to_vec());
            // cryptsetup still accepts both keys after our data writes
            assert!(cs_accepts(&cs, &img, &k.a, None) && cs_accepts(&cs, &img, &k.b, Some(3)));
        },
    );
}

#[test]
fn formatted_here_passes_cryptsetup() {
    let Some((cs, dir, k)) = setup() else { return };
    let Some(py) = python() else { return };
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
    let uuid = Some("0b7e2a4c-3f0e-4a43-9d5d-6b1f7b2a9c11".to_string());
    let (xts, cbc) = ("aes-xts-plain64", "aes-cbc-essiv:sha256");
    use HashAlg::*;
    use PbkdfType::*;
    #[rustfmt::skip]
    let cases = [
        ("l1-xts512-sha256", l1(xts, 512, Sha256)),
        ("l1-xts256-sha1", l1(xts, 256, Sha1)),
        ("l1-cbc-sha512", l1(cbc, 256, Sha512)),
        ("l1-qemu-layout", FormatOptions { align_payload_sectors: Some(8), ..l1(xts, 512, Sha256) }),
        ("l1-offset", FormatOptions { offset_sectors: Some(8192), uuid: uuid.clone(), ..l1(xts, 512, Sha256) }),
        ("l2-argon2id-4k-512", l2(Argon2id, 4096, 512)),
        ("l2-argon2i-512-256", l2(Argon2i, 512, 256)),
        ("l2-pbkdf2-4k-256", FormatOptions { hash: Some(Sha512), ..l2(Pbkdf2, 4096, 256) }),
        ("l2-label-uuid-meta", FormatOptions {
            label: Some("my label".into()), subsystem: Some("sub".into()), uuid: uuid.clone(),
            luks2_metadata_size: Some(64 << 10), luks2_keyslots_size: Some(4 << 20),
            ..l2(Argon2id, 512, 512)
        }),
        ("l2-meta-4m", FormatOptions { luks2_metadata_size: Some(4 << 20), ..l2(Argon2i, 4096, 512) }),
        ("l2-cbc", FormatOptions { cipher: Some(cbc.into()), ..l2(Pbkdf2, 512, 256) }),
        ("l2-offset", FormatOptions { offset_sectors: Some(65536), ..l2(Pbkdf2, 4096, 512) }),
    ];
    check_named("formatted here", cases, |(name, opts)| {
        let (img, info) = format_new(dir.path(), &format!("{name}.img"), 40 << 20, &opts);
        assert!(
            cs_accepts(&cs, &img, &k.a, None),
            "cryptsetup refuses the passphrase"
        );
        assert!(
            !cs_accepts(&cs, &img, &k.b, None),
            "cryptsetup accepts a wrong passphrase"
        );
        let text = cs_dump(&cs, &img);
        assert!(text.contains(&info.uuid), "{text}");
        if let Some(u) = &opts.uuid {
            assert_eq!(&info.uuid, u);
        }
        if let Some(m) = opts.luks2_metadata_size {
            let want = format!("Metadata area: \t{m} [bytes]");
            assert!(text.contains(&want), "{text}");
        }
        if let Some(l) = &opts.label {
            assert!(text.contains(l.as_str()), "label missing in {text}");
        }
        if opts.luks_type == LuksType::Luks2 {
            let v = cs_json(&cs, &img);
            assert_eq!(v["segments"]["0"]["sector_size"], opts.sector_size.unwrap());
            let kdf = &v["keyslots"]["0"]["kdf"]["type"];
            assert_eq!(kdf, opts.pbkdf.pbkdf.unwrap().name());
            if let Some(o) = opts.offset_sectors {
                assert_eq!(v["segments"]["0"]["offset"], (o * 512).to_string());
            }
        } else {
            let want = match (opts.offset_sectors, opts.align_payload_sectors) {
                (Some(o), _) => o,
                (None, Some(8)) => 4040,
                _ => 4096,
            };
            assert!(text.contains(&format!("Payload offset:\t{want}")), "{text}");
        }
        let vk = cs_volume_key(&cs, &img, &k.a);
        assert_eq!(vk.len() as u32 * 8, info.key_size_bits);
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.recover_volume_key(A, None).unwrap().1.as_bytes(), &vk[..]);
        check_write_against_oracle(&py, dir.path(), &img, &vk, mode_of(name), 7);
    });
}

#[test]
fn keyslot_changes_here_seen_by_cryptsetup() {
    let Some((cs, dir, k)) = setup() else { return };
    let cases = [
        ("luks1-pbkdf2", LuksType::Luks1, PbkdfType::Pbkdf2),
        ("luks2-argon2id", LuksType::Luks2, PbkdfType::Argon2id),
        ("luks2-pbkdf2", LuksType::Luks2, PbkdfType::Pbkdf2),
    ];
    check_named("keyslot changes here", cases, |(_, t, kind)| {
        let name = format!("ks-{t:?}-{kind:?}.img");
        let (img, _) = format_new(dir.path(), &name, 20 << 20, &fast_format(t, kind));
        let mut v = Volume::open(&img).unwrap();
        let sb = add_pass(&mut v, (A, None), B, None, kind).unwrap();
        assert_eq!(sb, 1);
        assert!(cs_accepts(&cs, &img, &k.a, Some(0)));
        assert!(cs_accepts(&cs, &img, &k.b, Some(1)));
        // add by volume key at a chosen slot
        let vk = v.recover_volume_key(A, None).unwrap().1;
        let by_vk = Unlock::VolumeKey(vk.as_bytes());
        let s5 = v.add_key(by_vk, C, &fast_slot(Some(5), kind)).unwrap();
        assert_eq!(s5, 5);
        assert!(cs_accepts(&cs, &img, &k.c, Some(5)));
        // slot already taken
        let taken = add_pass(&mut v, (A, None), C, Some(5), kind);
        assert!(matches!(taken, Err(Error::SlotActive(5))));
        // remove C (slot 5), change B -> C
        assert_eq!(v.remove_key(C).unwrap(), 5);
        assert!(!cs_accepts(&cs, &img, &k.c, None));
        let sc = v.change_key(B, C, None, &fast_slot(None, kind)).unwrap();
        assert!(cs_accepts(&cs, &img, &k.c, Some(sc)));
        assert!(
            !cs_accepts(&cs, &img, &k.b, None),
            "old passphrase still accepted"
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
        let now = v.recover_volume_key(C, None).unwrap().1;
        assert_eq!(now.as_bytes(), vk.as_bytes());
        assert_eq!(cs_volume_key(&cs, &img, &k.c), vk.as_bytes());
        cs_dump(&cs, &img);
    });
}

#[test]
fn keyslot_changes_by_cryptsetup_seen_here() {
    let Some((cs, dir, k)) = setup() else { return };
    // name, type, cryptsetup's KDF, the KDF of the keyslot added here
    let cases = [
        ("luks1-pbkdf2", "luks1", "pbkdf2", PbkdfType::Pbkdf2),
        ("luks2-argon2i", "luks2", "argon2i", PbkdfType::Argon2id),
        ("luks2-pbkdf2", "luks2", "pbkdf2", PbkdfType::Pbkdf2),
    ];
    check_named(
        "keyslot changes by cryptsetup",
        cases,
        |(_, t, kind, here)| {
            let img = sparse_file(dir.path(), &format!("rev-{t}-{kind}.img"), 20 << 20);
            cs_format(&cs, &img, &k.a, t, kind, &[]);
            cs_add_key(&cs, &img, &k.a, &k.b, None, kind);
            // change B -> C
            let kdf = fast_kdf_args(kind);
            cs_key_cmd(&cs, "luksChangeKey", &k.b, &kdf, &img, Some(&k.c));
            let v = Volume::open(&img).unwrap();
            v.test_passphrase(A, None).unwrap();
            v.test_passphrase(C, None).unwrap();
            assert!(matches!(
                v.test_passphrase(B, None),
                Err(Error::NoMatchingKey)
            ));
            // remove A
            cs_key_cmd(&cs, "luksRemoveKey", &k.a, &[], &img, None);
            let mut v = Volume::open(&img).unwrap();
            assert!(matches!(
                v.test_passphrase(A, None),
                Err(Error::NoMatchingKey)
            ));
            assert_eq!(v.active_keyslots().len(), 1);
            // then add here, and cryptsetup sees it
            add_pass(&mut v, (C, None), A, None, here).unwrap();
            assert!(cs_accepts(&cs, &img, &k.a, None));
            assert!(cs_accepts(&cs, &img, &k.c, None));
            assert!(!cs_accepts(&cs, &img, &k.b, None));
        },
    );
}

#[test]
fn luks2_tokens_and_backup_restore_with_cryptsetup() {
    let Some((cs, dir, k)) = setup() else { return };
    let opts = fast_format(LuksType::Luks2, PbkdfType::Pbkdf2);
    let (img, _) = format_new(dir.path(), "tok.img", 20 << 20, &opts);
    let mut v = Volume::open(&img).unwrap();
    let tok = serde_json::json!({"type": "keymgr-test", "keyslots": ["0"], "key_ref": "abc", "extra": {"n": 1}});
    let id = v.add_token(None, &tok).unwrap();
    let jv = cs_json(&cs, &img);
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
    let Some((cs, dir, k)) = setup() else { return };
    let Some(py) = python() else { return };
    let data_img = sparse_file(dir.path(), "data.img", 1 << 20);
    let opts = FormatOptions {
        offset_sectors: Some(0),
        ..fast_format(LuksType::Luks1, PbkdfType::Pbkdf2)
    };
    let (hdr, info) = format_new(dir.path(), "hdr.img", 2 << 20, &opts);
    assert_eq!(info.data_offset, 0);
    assert!(cs_accepts(&cs, &hdr, &k.a, None));
    assert!(cs_dump(&cs, &hdr).contains("Payload offset:\t0"));
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
    let Some((cs, dir, k)) = setup() else { return };
    // --iter-time: the benchmark picks the cost (pbkdf2 and a small-memory argon2id)
    let opts = FormatOptions {
        sector_size: Some(512),
        pbkdf: PbkdfOptions {
            pbkdf: Some(PbkdfType::Pbkdf2),
            iter_time_ms: Some(50),
            ..Default::default()
        },
        ..Default::default()
    };
    let (img, _) = format_new(dir.path(), "bench.img", 20 << 20, &opts);
    let v = cs_json(&cs, &img);
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
    let by_a = Unlock::Passphrase {
        passphrase: A,
        slot: None,
    };
    let s = vol.add_key(by_a, B, &ko).unwrap();
    let v = cs_json(&cs, &img);
    let kdf = &v["keyslots"][s.to_string()]["kdf"];
    assert_eq!(kdf["type"], "argon2id");
    assert!(kdf["time"].as_u64().unwrap() >= 4);
    assert!(kdf["memory"].as_u64().unwrap() <= 1024);
    assert!(cs_accepts(&cs, &img, &k.b, Some(s)));
    // fill all 32 LUKS2 keyslots
    let fastko = fast_slot(None, PbkdfType::Pbkdf2);
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
    let at_32 = fast_slot(Some(32), PbkdfType::Pbkdf2);
    assert!(matches!(
        vol.add_key(Unlock::VolumeKey(vk.as_bytes()), C, &at_32),
        Err(Error::SlotOutOfRange { slot: 32, .. })
    ));
    assert!(cs_accepts(&cs, &img, &k.c, Some(31)));
    assert!(cs_accepts(&cs, &img, &k.a, Some(0)));
    let d = vol.dump();
    assert_eq!(d.keyslots.len(), 32);
    let text = d.text();
    assert!(text.contains("31: luks2"), "{text}");
    // LUKS1 has 8
    let opts1 = fast_format(LuksType::Luks1, PbkdfType::Pbkdf2);
    let (img1, _) = format_new(dir.path(), "l1.img", 4 << 20, &opts1);
    let mut v1 = Volume::open(&img1).unwrap();
    for _ in 1..8 {
        add_pass(&mut v1, (A, Some(0)), C, None, PbkdfType::Pbkdf2).unwrap();
    }
    assert!(matches!(
        add_pass(&mut v1, (A, Some(0)), C, None, PbkdfType::Pbkdf2),
        Err(Error::NoFreeSlot)
    ));
    assert!(cs_accepts(&cs, &img1, &k.c, Some(7)));
}

#[test]
fn cryptsetup_priority_and_tokens_respected_and_preserved() {
    let Some((cs, dir, k)) = setup() else { return };
    let img = sparse_file(dir.path(), "prio.img", 20 << 20);
    cs_format(&cs, &img, &k.a, "luks2", "pbkdf2", &[]);
    cs_add_key(&cs, &img, &k.a, &k.b, Some(1), "pbkdf2");
    let ims = img.display().to_string();
    run_ok(
        &cs,
        &["config", "--priority", "ignore", "--key-slot", "1", &ims],
    );
    let tok =
        br#"{"type":"x-keymgr","keyslots":["1"],"key_description":"d","nested":{"a":[1,2,3]}}"#;
    cs_token_import(&cs, dir.path(), &img, tok, 3);
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
    add_pass(&mut v, (A, None), C, None, PbkdfType::Pbkdf2).unwrap();
    let t = cs_token(&cs, &img, 3).expect("token 3 exported");
    assert_eq!(t["nested"]["a"], serde_json::json!([1, 2, 3]));
    assert_eq!(t["key_description"], "d");
    let jv = cs_json(&cs, &img);
    assert_eq!(jv["keyslots"]["1"]["priority"], 0);
    assert!(cs_accepts(&cs, &img, &k.c, None));
    assert!(cs_accepts(&cs, &img, &k.b, Some(1)));
    // removing the keyslot drops it from the token's list
    v.kill_slot(1).unwrap();
    let t = cs_token(&cs, &img, 3).expect("token 3 exported");
    assert_eq!(t["keyslots"], serde_json::json!([]));
    v.remove_token(3).unwrap();
    assert!(cs_token(&cs, &img, 3).is_none());
}

/// Simulated crashes around a LUKS2 keyslot addition: the new material goes to an
/// area the old header does not use, and the two header copies are written in
/// order, so every intermediate state opens (here and with cryptsetup).
#[test]
fn luks2_add_key_crash_states() {
    let Some((cs, dir, k)) = setup() else { return };
    let opts = FormatOptions {
        sector_size: Some(512),
        ..fast_format(LuksType::Luks2, PbkdfType::Pbkdf2)
    };
    let (img, _) = format_new(dir.path(), "crash.img", 20 << 20, &opts);
    let before = std::fs::read(&img).unwrap();
    let hdr = Volume::open(&img).unwrap().dump().hdr_size as usize;
    let mut v = Volume::open(&img).unwrap();
    add_pass(&mut v, (A, None), B, None, PbkdfType::Pbkdf2).unwrap();
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

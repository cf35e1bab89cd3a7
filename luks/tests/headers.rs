//! Header parsing against images made by cryptsetup, and hostile variations of
//! them: each must fail with its specific typed error, never panic. The
//! variations are tables of named cases (an edit of a good image and the typed
//! error it must give) checked by one loop, `run_hostile`.

#[path = "common/cases.rs"]
mod cases;
mod common;

use cases::{check_named, cs_dump, cs_token_import};
use common::*;
use luks::internal::BinHeader;
use luks::{Dump, Error, Volume};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The passphrase of every image made by `cs_image`.
const PASS: &[u8] = b"correct horse";

fn cs_image(dir: &Path, name: &str, args: &[String]) -> Option<(PathBuf, PathBuf)> {
    let cs = tool("cryptsetup")?;
    let img = sparse_file(dir, name, 20 << 20);
    let key = secret_file(dir, &format!("{name}.key"), PASS);
    let mut a = vec!["luksFormat", "-q", "--key-file"];
    let ks = key.display().to_string();
    let is = img.display().to_string();
    a.push(&ks);
    a.extend(args.iter().map(String::as_str));
    a.push(&is);
    run_ok(&cs, &a);
    Some((img, key))
}

/// A temporary folder for cryptsetup's images, or None (skip) without cryptsetup.
fn cs_dir() -> Option<tempfile::TempDir> {
    tool("cryptsetup")?;
    Some(tempfile::tempdir().unwrap())
}

/// An image made by cryptsetup in a folder of its own.
struct Made {
    dir: tempfile::TempDir,
    img: PathBuf,
    key: PathBuf,
    cs: PathBuf,
}

/// `cs_image` in a new folder, or None (skip) without cryptsetup.
fn cs_made(name: &str, args: &[String]) -> Option<Made> {
    let dir = cs_dir()?;
    let (img, key) = cs_image(dir.path(), name, args)?;
    let cs = tool("cryptsetup")?;
    Some(Made { dir, img, key, cs })
}

/// luksFormat arguments: LUKS2 with a fast `kdf` keyslot, then `extra`.
fn luks2_args(kdf: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["--type".to_string(), "luks2".into()];
    a.extend(fast_kdf_args(kdf));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// luksFormat arguments: LUKS1 with 1000 PBKDF2 iterations, then `extra`.
fn luks1_args(extra: &[&str]) -> Vec<String> {
    let base = ["--type", "luks1", "--pbkdf-force-iterations", "1000"];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn read_json(img: &Path) -> (BinHeader, Value) {
    let b = std::fs::read(img).unwrap();
    let bin = BinHeader::parse(&b[..4096], 0).unwrap();
    let area = &b[4096..bin.hdr_size as usize];
    let text = luks::internal::json_text(area).unwrap();
    (bin, serde_json::from_slice(text).unwrap())
}

/// Rewrites both copies with `json` (raw text) and valid checksums.
fn write_json_raw(img: &Path, bin: &BinHeader, text: &[u8]) {
    let mut b = std::fs::read(img).unwrap();
    let mut area = vec![0u8; bin.hdr_size as usize - 4096];
    area[..text.len()].copy_from_slice(text);
    for off in [0, bin.hdr_size] {
        let mut h = bin.clone();
        h.hdr_offset = off;
        let bytes = h.serialize(&area).unwrap();
        b[off as usize..(off + bin.hdr_size) as usize].copy_from_slice(&bytes);
    }
    std::fs::write(img, b).unwrap();
}

fn write_json(img: &Path, bin: &BinHeader, v: &Value) {
    write_json_raw(img, bin, &serde_json::to_vec(v).unwrap());
}

/// Checks of a dump beyond the ones every parsed image gets.
type DumpCheck = Option<fn(&Dump)>;

#[test]
fn cryptsetup_luks2_headers_parse() {
    let Some(dir) = cs_dir() else { return };
    #[rustfmt::skip]
    let cases: [(&str, &str, &[&str], DumpCheck); 4] = [
        ("argon2id", "argon2id", &[], None),
        ("argon2i-512-256", "argon2i", &["--sector-size", "512", "--key-size", "256"], None),
        ("pbkdf2-sha512-64k-label", "pbkdf2", &["--hash", "sha512", "--luks2-metadata-size", "64k", "--label", "lbl", "--subsystem", "sub"],
            Some(|d| { assert_eq!(d.label, "lbl"); assert_eq!(d.subsystem, "sub"); assert_eq!(d.hdr_size, 64 << 10); })),
        ("cbc-4m-8m-offset", "pbkdf2", &["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--luks2-metadata-size", "4m", "--luks2-keyslots-size", "8m", "--offset", "32768"],
            Some(|d| { assert_eq!(d.hdr_size, 4 << 20); assert_eq!(d.keyslots_size, 8 << 20); assert_eq!(d.data_offset, 32768 * 512); })),
    ];
    check_named("cryptsetup LUKS2", cases, |(name, kdf, extra, more)| {
        let args = luks2_args(kdf, extra);
        let (img, _) = cs_image(dir.path(), &format!("l2-{name}.img"), &args).unwrap();
        let (_, json) = read_json(&img);
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.version(), 2);
        assert!(v.needs_repair().is_none());
        let d = v.dump();
        let seg = &json["segments"]["0"];
        assert_eq!(d.data_offset.to_string(), seg["offset"].as_str().unwrap());
        assert_eq!(d.sector_size as u64, seg["sector_size"].as_u64().unwrap());
        assert_eq!(d.cipher, seg["encryption"].as_str().unwrap());
        assert_eq!(d.keyslots.len(), 1);
        assert_eq!(
            d.keyslots[0].area_offset.to_string(),
            json["keyslots"]["0"]["area"]["offset"].as_str().unwrap()
        );
        if let Some(check) = more {
            check(&d);
        }
        // our re-serialization of their JSON is the same document
        assert_eq!(d.json.unwrap(), json);
    });
}

#[test]
fn cryptsetup_luks1_headers_parse() {
    let Some(dir) = cs_dir() else { return };
    #[rustfmt::skip]
    let cases: [(&str, &[&str], u64); 3] = [
        ("xts512-sha256", &[], 4096),
        ("xts256-sha1", &["--key-size", "256", "--hash", "sha1"], 4096),
        ("cbc-sha512-align8", &["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--hash", "sha512", "--align-payload", "8"], 2056),
    ];
    check_named("cryptsetup LUKS1", cases, |(name, extra, offset)| {
        let args = luks1_args(extra);
        let (img, _) = cs_image(dir.path(), &format!("l1-{name}.img"), &args).unwrap();
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.version(), 1);
        assert_eq!(v.dump().data_offset, offset * 512);
        assert_eq!(v.active_keyslots(), vec![0]);
    });
}

/// A hostile change to a good image.
enum Edit {
    /// Sets the LUKS2 JSON value at a pointer (`/a/b`) to a JSON text.
    Set(&'static str, &'static str),
    /// Changes the LUKS2 JSON document some other way.
    Json(fn(&mut Value)),
    /// Replaces the JSON area's text, given the good text and the area's size.
    Text(fn(&[u8], usize) -> Vec<u8>),
    /// Changes the image's bytes.
    Bytes(fn(&mut Vec<u8>)),
}

/// What the hostile image must give.
enum Want {
    /// `Error::Field` naming this field (from the only header, or the primary copy).
    Field(&'static str),
    /// `Error::KdfLimit` on this parameter (from the primary copy).
    KdfLimit(&'static str),
    /// The primary copy's error (or the only error), matching.
    Primary(fn(&Error) -> bool),
    /// The error of `Volume::open` itself, matching.
    Open(fn(&Error) -> bool),
    /// The header opens; unlocking with the right passphrase fails, matching.
    Unlock(fn(&Error) -> bool),
}

/// A named hostile case.
type Hostile = (&'static str, Edit, Want);

/// A good image to make hostile variations of.
struct Base {
    img: PathBuf,
    bytes: Vec<u8>,
    /// LUKS2 only: the binary header and the JSON document.
    json: Option<(BinHeader, Value)>,
}

impl Base {
    fn luks2(img: &Path) -> Base {
        Base {
            img: img.to_path_buf(),
            bytes: std::fs::read(img).unwrap(),
            json: Some(read_json(img)),
        }
    }

    fn luks1(img: &Path) -> Base {
        Base {
            img: img.to_path_buf(),
            bytes: std::fs::read(img).unwrap(),
            json: None,
        }
    }
}

/// Sets the value at `pointer` (keys only, as LUKS2 JSON has) like `v["a"]["b"] = ..`.
fn set_at(v: &mut Value, pointer: &str, json: &str) {
    let mut at = v;
    for key in pointer.split('/').skip(1) {
        at = &mut at[key];
    }
    *at = serde_json::from_str(json).unwrap();
}

/// Replaces keyslot 0's KDF by an argon2 one (keeping the salt).
fn argon2_kdf(v: &mut Value, kind: &str, memory: u64, cpus: u64) {
    let salt = v["keyslots"]["0"]["kdf"]["salt"].clone();
    v["keyslots"]["0"]["kdf"] =
        serde_json::json!({"type": kind, "time": 4, "memory": memory, "cpus": cpus, "salt": salt});
}

fn put_u32(b: &mut [u8], at: usize, x: u32) {
    b[at..at + 4].copy_from_slice(&x.to_be_bytes());
}

/// The primary copy's error when both LUKS2 copies are bad, else the error.
fn unwrap_primary(r: luks::Result<Volume>) -> Error {
    match r {
        Err(Error::NoValidHeader { primary, .. }) => *primary,
        Err(e) => e,
        Ok(_) => panic!("hostile header accepted"),
    }
}

/// Writes each case's image from `base` and checks what opening it gives;
/// returns the number of cases.
fn run_hostile(table: &str, base: &Base, cases: Vec<Hostile>) -> usize {
    let img = &base.img;
    check_named(table, cases, |(_, edit, want)| {
        let mut bytes = base.bytes.clone();
        if let Edit::Bytes(f) = edit {
            f(&mut bytes);
        }
        std::fs::write(img, &bytes).unwrap();
        let luks2 = || base.json.as_ref().expect("a LUKS2 base image");
        match edit {
            Edit::Set(pointer, json) => {
                let (bin, good) = luks2();
                let mut v = good.clone();
                set_at(&mut v, pointer, json);
                write_json(img, bin, &v);
            }
            Edit::Json(f) => {
                let (bin, good) = luks2();
                let mut v = good.clone();
                f(&mut v);
                write_json(img, bin, &v);
            }
            Edit::Text(f) => {
                let (bin, good) = luks2();
                let text = f(
                    &serde_json::to_vec(good).unwrap(),
                    bin.hdr_size as usize - 4096,
                );
                write_json_raw(img, bin, &text);
            }
            Edit::Bytes(_) => {}
        }
        let r = Volume::open(img);
        match want {
            Want::Field(want) => match unwrap_primary(r) {
                Error::Field { field, problem } => {
                    assert_eq!(field, want, "{problem}");
                    eprintln!("{field}: {problem}");
                }
                other => panic!("expected field {want}, got {other:?}"),
            },
            Want::KdfLimit(want) => match unwrap_primary(r) {
                Error::KdfLimit { field, .. } => assert_eq!(field, want),
                other => panic!("expected KDF limit {want}, got {other}"),
            },
            Want::Primary(ok) => {
                let e = unwrap_primary(r);
                assert!(ok(&e), "{e}");
            }
            Want::Open(ok) => match r {
                Err(e) => assert!(ok(&e), "{e:?}"),
                Ok(_) => panic!("hostile header accepted"),
            },
            Want::Unlock(ok) => match r.expect("the header parses").unlock(PASS, None) {
                Err(e) => assert!(ok(&e), "{e:?}"),
                Ok(_) => panic!("hostile image unlocked"),
            },
        }
    })
}

#[rustfmt::skip]
fn luks2_json_cases() -> Vec<Hostile> {
    use Edit::*;
    use Want::*;
    vec![
        ("offset not decimal",       Set("/keyslots/0/area/offset", r#""0x8000""#),               Field("keyslots.0.area.offset")),
        ("offset negative",          Set("/keyslots/0/area/offset", r#""-32768""#),               Field("keyslots.0.area.offset")),
        ("offset overflow",          Set("/keyslots/0/area/offset", r#""18446744073709551616""#), Field("keyslots.0.area.offset")),
        ("offset as number",         Set("/keyslots/0/area/offset", "32768"),                     Field("keyslots.0.area.offset")),
        ("area in header",           Set("/keyslots/0/area/offset", r#""16384""#),                Field("keyslots.0.area.offset")),
        ("area past keyslots",       Set("/keyslots/0/area/offset", r#""16773120""#),             Field("keyslots.0.area.offset")),
        ("area misaligned",          Set("/keyslots/0/area/offset", r#""32769""#),                Field("keyslots.0.area.offset")),
        ("area size overflow",       Set("/keyslots/0/area/size", r#""18446744073709551615""#),   Field("keyslots.0.area.size")),
        ("area too small",           Set("/keyslots/0/area/size", r#""4096""#),                   Field("keyslots.0.area.size")),
        ("stripes",                  Set("/keyslots/0/af/stripes", "3999"),                       Field("keyslots.0.af.stripes")),
        ("af hash",                  Set("/keyslots/0/af/hash", r#""md5""#),                      Field("keyslots.0.af.hash")),
        ("keyslot id",               Json(|v| { let k = v["keyslots"]["0"].clone(); v["keyslots"]["32"] = k; }), Field("keyslots.32")),
        ("keyslot type",             Set("/keyslots/0/type", r#""luks3""#),                       Field("keyslots.0.type")),
        ("luks2 slot as reencrypt",  Set("/keyslots/0/type", r#""reencrypt""#),                   Field("keyslots.0.key_size")),
        ("kdf type",                 Set("/keyslots/0/kdf/type", r#""scrypt""#),                  Field("keyslots.0.kdf.type")),
        ("salt",                     Set("/keyslots/0/kdf/salt", r#""!!""#),                      Field("keyslots.0.kdf.salt")),
        ("key size",                 Set("/keyslots/0/key_size", "-1"),                           Field("keyslots.0.key_size")),
        ("segment misaligned",       Set("/segments/0/offset", r#""16777217""#),                  Field("segments.0.offset")),
        ("segment in keyslots",      Set("/segments/0/offset", r#""1048576""#),                   Field("segments.0.offset")),
        ("sector size",              Set("/segments/0/sector_size", "8192"),                      Field("segments.0.sector_size")),
        ("segment type",             Set("/segments/0/type", r#""zero""#),                        Field("segments.0.type")),
        ("integrity",                Set("/segments/0/integrity", r#"{"type":"hmac(sha256)"}"#),  Field("segments.0.integrity")),
        ("dynamic not last",         Json(|v| { let mut s = v["segments"]["0"].clone(); s["offset"] = "20971520".into(); v["segments"]["1"] = s; }), Field("segments.0.size")),
        ("segment ids gap",          Json(|v| { let s = v["segments"].as_object_mut().unwrap().remove("0").unwrap(); v["segments"]["1"] = s; }), Field("segments.1")),
        ("digest dangling keyslot",  Set("/digests/0/keyslots", r#"["5"]"#),                      Field("digests.0.keyslots")),
        ("digest dangling segment",  Set("/digests/0/segments", r#"["3"]"#),                      Field("digests.0.segments")),
        ("digest length",            Set("/digests/0/digest", r#""AAAA""#),                       Field("digests.0.digest")),
        ("json_size",                Set("/config/json_size", r#""4096""#),                       Field("config.json_size")),
        ("keyslots_size misaligned", Set("/config/keyslots_size", r#""16744447""#),               Field("config.keyslots_size")),
        ("token dangling",           Set("/tokens/0", r#"{"type":"x","keyslots":["9"]}"#),        Field("tokens.0.keyslots")),
        ("token no type",            Set("/tokens/0", r#"{"keyslots":[]}"#),                      Field("tokens.0.type")),
        ("missing config",           Json(|v| { v.as_object_mut().unwrap().remove("config"); }),  Field("(root).config")),
        // KDF limits checked at parse time
        ("argon2 memory",            Json(|v| argon2_kdf(v, "argon2id", 4194305, 1)),             KdfLimit("memory")),
        ("argon2 cpus",              Json(|v| argon2_kdf(v, "argon2i", 64, 5)),                   KdfLimit("cpus")),
        ("pbkdf2 iterations",        Set("/keyslots/0/kdf/iterations", "4294967296"),             KdfLimit("iterations")),
        ("digest iterations",        Set("/digests/0/iterations", "4294967296"),                  KdfLimit("iterations")),
        // requirements
        ("mandatory requirement",    Set("/config/requirements", r#"{"mandatory": ["online-reencrypt-v3"]}"#),
                                     Primary(|e| matches!(e, Error::UnknownRequirement(r) if r == "online-reencrypt-v3"))),
        ("reencrypt without keyslot", Set("/config/requirements", r#"{"mandatory": ["online-reencrypt-v2"]}"#),
                                     Field("config.requirements.mandatory")),
        // raw JSON area problems
        ("space before JSON",        Text(|t, _| [b" ".as_slice(), t].concat()),                  Primary(|e| matches!(e, Error::Json(_)))),
        ("garbage after NUL",        Text(|t, _| [t, b"\0garbage"].concat()),                     Primary(|e| matches!(e, Error::JsonTrailingData))),
        ("extra brace",              Text(|t, _| [t, b"}"].concat()),                             Primary(|e| matches!(e, Error::Json(_)))),
        ("not terminated",           Text(|_, n| [b"{".as_slice(), &vec![b' '; n - 1]].concat()), Primary(|e| matches!(e, Error::JsonNotTerminated))),
    ]
}

#[test]
fn hostile_luks2_json() {
    let Some(m) = cs_made("base.img", &luks2_args("pbkdf2", &[])) else {
        return;
    };
    let n = run_hostile(
        "hostile LUKS2 JSON",
        &Base::luks2(&m.img),
        luks2_json_cases(),
    );
    assert!(n >= 40, "{n} cases");
}

#[rustfmt::skip]
fn luks2_binary_cases() -> Vec<Hostile> {
    use Edit::*;
    use Want::*;
    vec![
        ("both copies damaged", Bytes(|b| { b[5000] ^= 0x55; b[16384 + 5000] ^= 0x55; }),
            Open(|e| matches!(e, Error::NoValidHeader { primary, secondary }
                if matches!(**primary, Error::Checksum { offset: 0 }) && matches!(**secondary, Error::Checksum { offset: 16384 })))),
        ("hdr_size not allowed in both", Bytes(|b| { b[8..16].copy_from_slice(&12288u64.to_be_bytes()); b[16384 + 8..16384 + 16].copy_from_slice(&12288u64.to_be_bytes()); }),
            Field("hdr_size")),
        ("wrong version", Bytes(|b| b[7] = 3),                  Open(|e| matches!(e, Error::UnsupportedVersion(3)))),
        ("no magic at all", Bytes(|b| *b = vec![0u8; 1 << 20]), Open(|e| matches!(e, Error::BadMagic))),
    ]
}

#[test]
fn hostile_binary_headers_and_repair() {
    let Some(m) = cs_made("bin.img", &luks2_args("pbkdf2", &[])) else {
        return;
    };
    let (img, key, cs) = (&m.img, &m.key, &m.cs);
    let base = Base::luks2(img);
    // bad checksum on the primary only: opens from the secondary, flagged for repair
    let mut b = base.bytes.clone();
    b[5000] ^= 0x55;
    std::fs::write(img, &b).unwrap();
    let mut v = Volume::open(img).unwrap();
    assert!(
        v.needs_repair().unwrap().contains("primary"),
        "{:?}",
        v.needs_repair()
    );
    v.repair().unwrap();
    let v = Volume::open(img).unwrap();
    assert!(v.needs_repair().is_none());
    assert!(cs_accepts(cs, img, key, None));
    run_hostile("hostile LUKS2 binary", &base, luks2_binary_cases());
    // stale secondary (older seqid) is repaired on the next write
    std::fs::write(img, &base.bytes).unwrap();
    let mut v = Volume::open(img).unwrap();
    v.add_token(
        None,
        &serde_json::json!({"type":"x-test","keyslots":["0"],"payload":{"a":1}}),
    )
    .unwrap();
    let mut b = std::fs::read(img).unwrap();
    b[16384..32768].copy_from_slice(&base.bytes[16384..32768]);
    std::fs::write(img, &b).unwrap();
    let mut v = Volume::open(img).unwrap();
    assert!(v.needs_repair().is_some());
    assert_eq!(v.tokens().unwrap().len(), 1, "the newer primary wins");
    v.remove_token(0).unwrap();
    let v = Volume::open(img).unwrap();
    assert!(v.needs_repair().is_none());
    assert!(v.tokens().unwrap().is_empty());
}

#[test]
fn tokens_and_unknown_json_preserved() {
    let Some(Made { dir, img, key, cs }) = cs_made("tok.img", &luks2_args("pbkdf2", &[])) else {
        return;
    };
    let (bin, mut json) = read_json(&img);
    json["keyslots"]["0"]["x_vendor"] = serde_json::json!({"keep": [1, 2, 3]});
    json["config"]["flags"] = serde_json::json!(["allow-discards"]);
    json["x_top"] = "kept".into();
    write_json(&img, &bin, &json);
    // cryptsetup itself still accepts it
    assert!(cs_accepts(&cs, &img, &key, None));
    let mut v = Volume::open(&img).unwrap();
    let id = v
        .add_token(
            None,
            &serde_json::json!({"type":"keymgr-ref","keyslots":["0"],"key_id":"abc"}),
        )
        .unwrap();
    assert_eq!(id, 0);
    let (_, after) = read_json(&img);
    assert_eq!(
        after["keyslots"]["0"]["x_vendor"],
        json["keyslots"]["0"]["x_vendor"]
    );
    assert_eq!(after["x_top"], "kept");
    assert_eq!(
        after["config"]["flags"],
        serde_json::json!(["allow-discards"])
    );
    assert_eq!(after["tokens"]["0"]["key_id"], "abc");
    // cryptsetup sees the token and still opens
    let dump = cs_dump(&cs, &img);
    assert!(dump.contains("keymgr-ref"), "{dump}");
    assert!(cs_accepts(&cs, &img, &key, None));
    // a token added by cryptsetup is listed here
    let tok = br#"{"type":"luks2-keyring","keyslots":["0"],"key_description":"d"}"#;
    cs_token_import(&cs, dir.path(), &img, tok, 5);
    let mut v = Volume::open(&img).unwrap();
    let ids: Vec<u32> = v.tokens().unwrap().iter().map(|t| t.0).collect();
    assert_eq!(ids, vec![0, 5]);
    v.remove_token(0).unwrap();
    assert!(!cs_dump(&cs, &img).contains("keymgr-ref"));
}

#[rustfmt::skip]
fn luks1_cases() -> Vec<Hostile> {
    use Edit::*;
    use Want::*;
    // offsets in the LUKS1 header: keyslot 0 at 208, 48 bytes a keyslot
    const KS0: usize = 208;
    const KS1: usize = 208 + 48;
    vec![
        ("unknown hash",             Bytes(|b| { b[72..104].fill(0); b[72..75].copy_from_slice(b"md5"); }), Field("hash_spec")),
        ("unterminated string",      Bytes(|b| b[8..40].fill(b'a')),                   Field("cipher_name")),
        ("digest iterations 0",      Bytes(|b| put_u32(b, 164, 0)),                    Field("mk_digest_iter")),
        ("material inside header",   Bytes(|b| put_u32(b, KS0 + 40, 1)),               Field("keyslot0.key_material_offset")),
        ("two slots on one area",    Bytes(|b| { let k0 = b[KS0 + 40..KS0 + 44].to_vec(); b[KS1 + 40..KS1 + 44].copy_from_slice(&k0); }),
                                     Field("keyslot1.key_material_offset")),
        ("active slot 0 iterations", Bytes(|b| put_u32(b, KS0 + 4, 0)),                Field("keyslot0.iterations")),
        // the header parses, the data is refused without reading
        ("payload beyond device",    Bytes(|b| put_u32(b, 104, 0x0100_0000)),          Unlock(|_| true)),
        // typed error on unlock, no panic
        ("unsupported cipher",       Bytes(|b| { b[8..40].fill(0); b[8..15].copy_from_slice(b"twofish"); }),
                                     Unlock(|e| matches!(e, Error::Cipher(_) | Error::Field { .. } | Error::Unsupported(_)))),
        ("truncated device",         Bytes(|b| b.truncate(300)),                       Open(|e| matches!(e, Error::DeviceTooSmall { .. }))),
    ]
}

#[test]
fn hostile_luks1_headers() {
    let Some(m) = cs_made("h1.img", &luks1_args(&[])) else {
        return;
    };
    run_hostile("hostile LUKS1", &Base::luks1(&m.img), luks1_cases());
}

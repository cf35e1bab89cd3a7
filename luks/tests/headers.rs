//! Header parsing against images made by cryptsetup, and hostile variations of
//! them: each must fail with its specific typed error, never panic.

mod common;

use common::*;
use luks::luks2::binary::BinHeader;
use luks::{Error, Problem, Volume};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn cs_image(dir: &Path, name: &str, args: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let cs = tool("cryptsetup")?;
    let img = sparse_file(dir, name, 20 << 20);
    let key = secret_file(dir, &format!("{name}.key"), b"correct horse");
    let mut a = vec!["luksFormat", "-q", "--key-file"];
    let ks = key.display().to_string();
    let is = img.display().to_string();
    a.push(&ks);
    a.extend_from_slice(args);
    a.push(&is);
    run_ok(&cs, &a);
    Some((img, key))
}

fn read_json(img: &Path) -> (BinHeader, Value) {
    let b = std::fs::read(img).unwrap();
    let bin = BinHeader::parse(&b[..4096], 0).unwrap();
    let area = &b[4096..bin.hdr_size as usize];
    let text = luks::luks2::json::json_text(area).unwrap();
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

#[test]
fn cryptsetup_luks2_headers_parse() {
    let dir = tempfile::tempdir().unwrap();
    for (i, args) in [
        vec![
            "--type",
            "luks2",
            "--pbkdf",
            "argon2id",
            "--pbkdf-memory",
            "32",
            "--pbkdf-force-iterations",
            "4",
            "--pbkdf-parallel",
            "1",
        ],
        vec![
            "--type",
            "luks2",
            "--pbkdf",
            "argon2i",
            "--pbkdf-memory",
            "32",
            "--pbkdf-force-iterations",
            "4",
            "--pbkdf-parallel",
            "1",
            "--sector-size",
            "512",
            "--key-size",
            "256",
        ],
        vec![
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--hash",
            "sha512",
            "--luks2-metadata-size",
            "64k",
            "--label",
            "lbl",
            "--subsystem",
            "sub",
        ],
        vec![
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--luks2-metadata-size",
            "4m",
            "--luks2-keyslots-size",
            "8m",
            "--offset",
            "32768",
        ],
    ]
    .iter()
    .enumerate()
    {
        let Some((img, _)) = cs_image(dir.path(), &format!("l2-{i}.img"), args) else {
            return;
        };
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
        // our re-serialization of their JSON is the same document
        assert_eq!(d.json.unwrap(), json, "case {i}");
        if i == 2 {
            assert_eq!(d.label, "lbl");
            assert_eq!(d.subsystem, "sub");
            assert_eq!(d.hdr_size, 64 << 10);
        }
        if i == 3 {
            assert_eq!(d.hdr_size, 4 << 20);
            assert_eq!(d.keyslots_size, 8 << 20);
            assert_eq!(d.data_offset, 32768 * 512);
        }
    }
}

#[test]
fn cryptsetup_luks1_headers_parse() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (args, offset)) in [
        (
            vec!["--type", "luks1", "--pbkdf-force-iterations", "1000"],
            4096u64,
        ),
        (
            vec![
                "--type",
                "luks1",
                "--pbkdf-force-iterations",
                "1000",
                "--key-size",
                "256",
                "--hash",
                "sha1",
            ],
            4096,
        ),
        (
            vec![
                "--type",
                "luks1",
                "--pbkdf-force-iterations",
                "1000",
                "--cipher",
                "aes-cbc-essiv:sha256",
                "--key-size",
                "256",
                "--hash",
                "sha512",
                "--align-payload",
                "8",
            ],
            2056,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let Some((img, _)) = cs_image(dir.path(), &format!("l1-{i}.img"), &args) else {
            return;
        };
        let v = Volume::open(&img).unwrap();
        assert_eq!(v.version(), 1);
        let d = v.dump();
        assert_eq!(d.data_offset, offset * 512, "case {i}");
        assert_eq!(v.active_keyslots(), vec![0]);
    }
}

fn expect_field(r: luks::Result<Volume>, want_field: &str) -> Problem {
    match r {
        Err(Error::Field { field, problem }) => {
            assert_eq!(field, want_field, "{problem}");
            problem
        }
        Err(Error::NoValidHeader { primary, .. }) => match *primary {
            Error::Field { field, problem } => {
                assert_eq!(field, want_field, "{problem}");
                problem
            }
            other => panic!("expected field {want_field}, got {other}"),
        },
        other => panic!("expected field {want_field}, got {other:?}"),
    }
}

fn unwrap_primary(r: luks::Result<Volume>) -> Error {
    match r {
        Err(Error::NoValidHeader { primary, .. }) => *primary,
        Err(e) => e,
        Ok(_) => panic!("hostile header accepted"),
    }
}

#[test]
fn hostile_luks2_json() {
    let dir = tempfile::tempdir().unwrap();
    let Some((img, _)) = cs_image(
        dir.path(),
        "base.img",
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    ) else {
        return;
    };
    let (bin, good) = read_json(&img);
    let base = std::fs::read(&img).unwrap();
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "offset not decimal",
            |v| v["keyslots"]["0"]["area"]["offset"] = "0x8000".into(),
            "keyslots.0.area.offset",
        ),
        (
            "offset negative",
            |v| v["keyslots"]["0"]["area"]["offset"] = "-32768".into(),
            "keyslots.0.area.offset",
        ),
        (
            "offset overflow",
            |v| v["keyslots"]["0"]["area"]["offset"] = "18446744073709551616".into(),
            "keyslots.0.area.offset",
        ),
        (
            "offset as number",
            |v| v["keyslots"]["0"]["area"]["offset"] = 32768.into(),
            "keyslots.0.area.offset",
        ),
        (
            "area in header",
            |v| v["keyslots"]["0"]["area"]["offset"] = "16384".into(),
            "keyslots.0.area.offset",
        ),
        (
            "area past keyslots",
            |v| v["keyslots"]["0"]["area"]["offset"] = "16773120".into(),
            "keyslots.0.area.offset",
        ),
        (
            "area misaligned",
            |v| v["keyslots"]["0"]["area"]["offset"] = "32769".into(),
            "keyslots.0.area.offset",
        ),
        (
            "area size overflow",
            |v| v["keyslots"]["0"]["area"]["size"] = "18446744073709551615".into(),
            "keyslots.0.area.size",
        ),
        (
            "area too small",
            |v| v["keyslots"]["0"]["area"]["size"] = "4096".into(),
            "keyslots.0.area.size",
        ),
        (
            "stripes",
            |v| v["keyslots"]["0"]["af"]["stripes"] = 3999.into(),
            "keyslots.0.af.stripes",
        ),
        (
            "af hash",
            |v| v["keyslots"]["0"]["af"]["hash"] = "md5".into(),
            "keyslots.0.af.hash",
        ),
        (
            "keyslot id",
            |v| {
                let k = v["keyslots"]["0"].clone();
                v["keyslots"]["32"] = k;
            },
            "keyslots.32",
        ),
        (
            "keyslot type",
            |v| v["keyslots"]["0"]["type"] = "reencrypt".into(),
            "keyslots.0.type",
        ),
        (
            "kdf type",
            |v| v["keyslots"]["0"]["kdf"]["type"] = "scrypt".into(),
            "keyslots.0.kdf.type",
        ),
        (
            "salt",
            |v| v["keyslots"]["0"]["kdf"]["salt"] = "!!".into(),
            "keyslots.0.kdf.salt",
        ),
        (
            "key size",
            |v| v["keyslots"]["0"]["key_size"] = (-1).into(),
            "keyslots.0.key_size",
        ),
        (
            "segment misaligned",
            |v| v["segments"]["0"]["offset"] = "16777217".into(),
            "segments.0.offset",
        ),
        (
            "segment in keyslots",
            |v| v["segments"]["0"]["offset"] = "1048576".into(),
            "segments.0.offset",
        ),
        (
            "sector size",
            |v| v["segments"]["0"]["sector_size"] = 8192.into(),
            "segments.0.sector_size",
        ),
        (
            "segment type",
            |v| v["segments"]["0"]["type"] = "linear".into(),
            "segments.0.type",
        ),
        (
            "integrity",
            |v| v["segments"]["0"]["integrity"] = serde_json::json!({"type":"hmac(sha256)"}),
            "segments.0.integrity",
        ),
        (
            "dynamic not last",
            |v| {
                let mut s = v["segments"]["0"].clone();
                s["offset"] = "20971520".into();
                v["segments"]["1"] = s;
            },
            "segments.0.size",
        ),
        (
            "segment ids gap",
            |v| {
                let s = v["segments"]["0"].clone();
                v["segments"].as_object_mut().unwrap().remove("0");
                v["segments"]["1"] = s;
            },
            "segments.1",
        ),
        (
            "digest dangling keyslot",
            |v| v["digests"]["0"]["keyslots"] = serde_json::json!(["5"]),
            "digests.0.keyslots",
        ),
        (
            "digest dangling segment",
            |v| v["digests"]["0"]["segments"] = serde_json::json!(["3"]),
            "digests.0.segments",
        ),
        (
            "digest length",
            |v| v["digests"]["0"]["digest"] = "AAAA".into(),
            "digests.0.digest",
        ),
        (
            "json_size",
            |v| v["config"]["json_size"] = "4096".into(),
            "config.json_size",
        ),
        (
            "keyslots_size misaligned",
            |v| v["config"]["keyslots_size"] = "16744447".into(),
            "config.keyslots_size",
        ),
        (
            "token dangling",
            |v| v["tokens"]["0"] = serde_json::json!({"type":"x","keyslots":["9"]}),
            "tokens.0.keyslots",
        ),
        (
            "token no type",
            |v| v["tokens"]["0"] = serde_json::json!({"keyslots":[]}),
            "tokens.0.type",
        ),
        (
            "missing config",
            |v| {
                v.as_object_mut().unwrap().remove("config");
            },
            "(root).config",
        ),
    ];
    let n = cases.len();
    for (name, edit, field) in cases {
        std::fs::write(&img, &base).unwrap();
        let mut v = good.clone();
        edit(&mut v);
        write_json(&img, &bin, &v);
        let p = expect_field(Volume::open(&img), field);
        eprintln!("{name}: {field}: {p}");
    }
    // KDF limits checked at parse time
    for (edit, fld) in [
        (
            (|v: &mut Value| v["keyslots"]["0"]["kdf"] = serde_json::json!({"type":"argon2id","time":4,"memory":4194305,"cpus":1,"salt":v["keyslots"]["0"]["kdf"]["salt"].clone()}))
                as Edit,
            "memory",
        ),
        (
            |v: &mut Value| v["keyslots"]["0"]["kdf"] = serde_json::json!({"type":"argon2i","time":4,"memory":64,"cpus":5,"salt":v["keyslots"]["0"]["kdf"]["salt"].clone()}),
            "cpus",
        ),
        (
            |v: &mut Value| v["keyslots"]["0"]["kdf"]["iterations"] = 4294967296u64.into(),
            "iterations",
        ),
        (
            |v: &mut Value| v["digests"]["0"]["iterations"] = 4294967296u64.into(),
            "iterations",
        ),
    ] {
        std::fs::write(&img, &base).unwrap();
        let mut v = good.clone();
        edit(&mut v);
        write_json(&img, &bin, &v);
        match unwrap_primary(Volume::open(&img)) {
            Error::KdfLimit { field, .. } => assert_eq!(field, fld),
            other => panic!("{other}"),
        }
    }
    // requirements
    std::fs::write(&img, &base).unwrap();
    let mut v = good.clone();
    v["config"]["requirements"] = serde_json::json!({"mandatory": ["online-reencrypt-v2"]});
    write_json(&img, &bin, &v);
    assert!(
        matches!(unwrap_primary(Volume::open(&img)), Error::UnknownRequirement(r) if r == "online-reencrypt-v2")
    );
    // raw JSON area problems
    let text = serde_json::to_vec(&good).unwrap();
    for (raw, check) in [
        ([b" ".as_slice(), &text].concat(), "start"),
        ([text.as_slice(), b"\0garbage"].concat(), "trailing"),
        ([text.as_slice(), b"}"].concat(), "json"),
    ] {
        std::fs::write(&img, &base).unwrap();
        write_json_raw(&img, &bin, &raw);
        let e = unwrap_primary(Volume::open(&img));
        match check {
            "trailing" => assert!(matches!(e, Error::JsonTrailingData), "{e}"),
            _ => assert!(matches!(e, Error::Json(_)), "{e}"),
        }
    }
    std::fs::write(&img, &base).unwrap();
    let mut full = vec![b' '; bin.hdr_size as usize - 4096];
    full[0] = b'{';
    write_json_raw(&img, &bin, &full[..full.len()]);
    assert!(matches!(
        unwrap_primary(Volume::open(&img)),
        Error::JsonNotTerminated
    ));
    assert!(n >= 30);
}

#[test]
fn hostile_binary_headers_and_repair() {
    let dir = tempfile::tempdir().unwrap();
    let Some((img, key)) = cs_image(
        dir.path(),
        "bin.img",
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    ) else {
        return;
    };
    let cs = tool("cryptsetup").unwrap();
    let base = std::fs::read(&img).unwrap();
    // bad checksum on the primary only: opens from the secondary, flagged for repair
    let mut b = base.clone();
    b[5000] ^= 0x55;
    std::fs::write(&img, &b).unwrap();
    let mut v = Volume::open(&img).unwrap();
    assert!(
        v.needs_repair().unwrap().contains("primary"),
        "{:?}",
        v.needs_repair()
    );
    v.repair().unwrap();
    let v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().is_none());
    assert!(cs_accepts(&cs, &img, &key, None));
    // both copies damaged
    let mut b = base.clone();
    b[5000] ^= 0x55;
    b[16384 + 5000] ^= 0x55;
    std::fs::write(&img, &b).unwrap();
    match Volume::open(&img) {
        Err(Error::NoValidHeader { primary, secondary }) => {
            assert!(matches!(*primary, Error::Checksum { offset: 0 }));
            assert!(matches!(*secondary, Error::Checksum { offset: 16384 }));
        }
        other => panic!("{other:?}"),
    }
    // hdr_size not allowed in both
    let mut b = base.clone();
    b[8..16].copy_from_slice(&12288u64.to_be_bytes());
    b[16384 + 8..16384 + 16].copy_from_slice(&12288u64.to_be_bytes());
    std::fs::write(&img, &b).unwrap();
    assert!(
        matches!(unwrap_primary(Volume::open(&img)), Error::Field { ref field, .. } if field == "hdr_size")
    );
    // wrong version
    let mut b = base.clone();
    b[7] = 3;
    std::fs::write(&img, &b).unwrap();
    assert!(matches!(
        Volume::open(&img),
        Err(Error::UnsupportedVersion(3))
    ));
    // no magic at all
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    assert!(matches!(Volume::open(&img), Err(Error::BadMagic)));
    // stale secondary (older seqid) is repaired on the next write
    std::fs::write(&img, &base).unwrap();
    let mut v = Volume::open(&img).unwrap();
    v.add_token(
        None,
        &serde_json::json!({"type":"x-test","keyslots":["0"],"payload":{"a":1}}),
    )
    .unwrap();
    let mut b = std::fs::read(&img).unwrap();
    b[16384..32768].copy_from_slice(&base[16384..32768]);
    std::fs::write(&img, &b).unwrap();
    let mut v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().is_some());
    assert_eq!(v.tokens().unwrap().len(), 1, "the newer primary wins");
    v.remove_token(0).unwrap();
    let v = Volume::open(&img).unwrap();
    assert!(v.needs_repair().is_none());
    assert!(v.tokens().unwrap().is_empty());
}

#[test]
fn tokens_and_unknown_json_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let Some((img, key)) = cs_image(
        dir.path(),
        "tok.img",
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    ) else {
        return;
    };
    let cs = tool("cryptsetup").unwrap();
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
    let o = run_ok(&cs, &["luksDump", &img.display().to_string()]);
    let dump = String::from_utf8_lossy(&o.stdout);
    assert!(dump.contains("keymgr-ref"), "{dump}");
    assert!(cs_accepts(&cs, &img, &key, None));
    // a token added by cryptsetup is listed here
    let tok = dir.path().join("t.json");
    std::fs::write(
        &tok,
        br#"{"type":"luks2-keyring","keyslots":["0"],"key_description":"d"}"#,
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
            "5",
            &img.display().to_string(),
        ],
    );
    let v = Volume::open(&img).unwrap();
    let ids: Vec<u32> = v.tokens().unwrap().iter().map(|t| t.0).collect();
    assert_eq!(ids, vec![0, 5]);
    let mut v = v;
    v.remove_token(0).unwrap();
    let o = run_ok(&cs, &["luksDump", &img.display().to_string()]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("keymgr-ref"));
}

#[test]
fn hostile_luks1_headers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((img, _)) = cs_image(
        dir.path(),
        "h1.img",
        &["--type", "luks1", "--pbkdf-force-iterations", "1000"],
    ) else {
        return;
    };
    let base = std::fs::read(&img).unwrap();
    let put = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        edit(&mut b);
        std::fs::write(&img, &b).unwrap();
    };
    // unknown hash
    put(&|b| {
        b[72..104].fill(0);
        b[72..75].copy_from_slice(b"md5");
    });
    expect_field(Volume::open(&img), "hash_spec");
    // unterminated string field
    put(&|b| b[8..40].fill(b'a'));
    expect_field(Volume::open(&img), "cipher_name");
    // digest iterations 0
    put(&|b| b[164..168].copy_from_slice(&0u32.to_be_bytes()));
    expect_field(Volume::open(&img), "mk_digest_iter");
    // keyslot 0 material inside the header
    put(&|b| b[208 + 40..208 + 44].copy_from_slice(&1u32.to_be_bytes()));
    expect_field(Volume::open(&img), "keyslot0.key_material_offset");
    // two keyslots on the same area
    put(&|b| {
        let k0 = b[208 + 40..208 + 44].to_vec();
        b[208 + 48 + 40..208 + 48 + 44].copy_from_slice(&k0);
    });
    expect_field(Volume::open(&img), "keyslot1.key_material_offset");
    // active keyslot with 0 iterations
    put(&|b| b[208 + 4..208 + 8].copy_from_slice(&0u32.to_be_bytes()));
    expect_field(Volume::open(&img), "keyslot0.iterations");
    // payload beyond the device: the header parses, the data is refused without reading
    put(&|b| b[104..108].copy_from_slice(&0x0100_0000u32.to_be_bytes()));
    let v = Volume::open(&img).unwrap();
    assert!(v.unlock(b"correct horse", None).is_err());
    // unsupported cipher: typed error on unlock, no panic
    put(&|b| {
        b[8..40].fill(0);
        b[8..15].copy_from_slice(b"twofish");
    });
    let v = Volume::open(&img).unwrap();
    match v.unlock(b"correct horse", None) {
        Err(Error::Cipher(_)) | Err(Error::Field { .. }) | Err(Error::Unsupported(_)) => {}
        other => panic!("{other:?}"),
    }
    // truncated device
    std::fs::write(&img, &base[..300]).unwrap();
    assert!(matches!(
        Volume::open(&img),
        Err(Error::DeviceTooSmall { .. })
    ));
}

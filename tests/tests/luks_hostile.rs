//! Hostile LUKS headers: each malformed header derived from a valid one gives
//! its specific typed error, never a panic, never an allocation driven by an
//! unchecked size; one damaged LUKS2 copy still opens and is repaired on the
//! next write.

use luks::{Error, FormatOptions, LuksType, PbkdfOptions, PbkdfType, Problem, Volume};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASS: &[u8] = b"hostile-test";
const HDR: usize = 16384;

fn base(luks_type: LuksType) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.img");
    std::fs::write(&path, vec![0u8; 4 << 20]).unwrap();
    let opts = FormatOptions {
        luks_type,
        pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
        luks2_keyslots_size: Some(1 << 20),
        align_payload_sectors: Some(8),
        ..FormatOptions::default()
    };
    luks::format(&path, &opts, PASS).unwrap();
    std::fs::read(&path).unwrap()
}

fn json_of(copy: &[u8]) -> Value {
    let area = &copy[4096..HDR];
    let end = area.iter().position(|b| *b == 0).unwrap();
    serde_json::from_slice(&area[..end]).unwrap()
}

fn reseal(img: &mut [u8], at: usize) {
    let copy = &mut img[at..at + HDR];
    copy[448..512].fill(0);
    let sum = Sha256::digest(&*copy);
    copy[448..480].copy_from_slice(&sum);
}

fn put_json(img: &mut [u8], at: usize, text: &[u8]) {
    let area = &mut img[at + 4096..at + HDR];
    area.fill(0);
    area[..text.len()].copy_from_slice(text);
    reseal(img, at);
}

/// Both copies with the JSON changed by `f` and valid checksums.
fn mutate(img: &[u8], f: impl Fn(&mut Value)) -> Vec<u8> {
    let mut out = img.to_vec();
    for at in [0, HDR] {
        let mut v = json_of(&out[at..]);
        f(&mut v);
        let text = serde_json::to_vec(&v).unwrap();
        put_json(&mut out, at, &text);
    }
    out
}

/// Both copies with raw bytes of the binary header changed, checksums fixed.
fn binary(img: &[u8], f: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut out = img.to_vec();
    for at in [0, HDR] {
        f(&mut out[at..at + HDR]);
        reseal(&mut out, at);
    }
    out
}

fn ks(v: &mut Value) -> &mut Value {
    &mut v["keyslots"]["0"]
}

fn field_is(e: &Error, part: &str, p: fn(&Problem) -> bool) -> bool {
    match e {
        Error::Field { field, problem } => field.contains(part) && p(problem),
        Error::NoValidHeader { primary, .. } => field_is(primary, part, p),
        _ => false,
    }
}

fn inner(e: &Error) -> &Error {
    match e {
        Error::NoValidHeader { primary, .. } => inner(primary),
        e => e,
    }
}

type Check = Box<dyn Fn(&Error) -> bool>;

enum Stage {
    Open,
    Unlock,
}

struct Case {
    name: &'static str,
    image: Vec<u8>,
    stage: Stage,
    expect: Check,
}

fn case(name: &'static str, image: Vec<u8>, expect: impl Fn(&Error) -> bool + 'static) -> Case {
    Case {
        name,
        image,
        stage: Stage::Open,
        expect: Box::new(expect),
    }
}

fn at_unlock(
    name: &'static str,
    image: Vec<u8>,
    expect: impl Fn(&Error) -> bool + 'static,
) -> Case {
    Case {
        name,
        image,
        stage: Stage::Unlock,
        expect: Box::new(expect),
    }
}

fn luks2_cases() -> Vec<Case> {
    let b = base(LuksType::Luks2);
    let not_dec = |p: &Problem| matches!(p, Problem::NotDecimal);
    let overflow = |p: &Problem| matches!(p, Problem::Overflow | Problem::NotDecimal);
    let any = |_: &Problem| true;
    vec![
        case(
            "area offset not a number",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!("abc")),
            move |e| field_is(e, "area.offset", not_dec),
        ),
        case(
            "area offset negative",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!("-32768")),
            move |e| field_is(e, "area.offset", not_dec),
        ),
        case(
            "area offset 2^64",
            mutate(&b, |v| {
                ks(v)["area"]["offset"] = json!("18446744073709551616")
            }),
            move |e| field_is(e, "area.offset", overflow),
        ),
        case(
            "area offset as JSON number",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!(32768)),
            |e| field_is(e, "area.offset", |p| matches!(p, Problem::WrongType(_))),
        ),
        case(
            "area offset with leading plus",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!("+32768")),
            move |e| field_is(e, "area.offset", not_dec),
        ),
        case(
            "area offset misaligned",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!("32769")),
            |e| field_is(e, "area", |p| matches!(p, Problem::Misaligned { .. })),
        ),
        case(
            "area inside the binary headers",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!("4096")),
            |e| {
                field_is(e, "area", |p| {
                    matches!(p, Problem::OutsideOf(_) | Problem::Overlaps(_))
                })
            },
        ),
        case(
            "area past the keyslots area",
            mutate(&b, |v| ks(v)["area"]["offset"] = json!("4194304")),
            |e| field_is(e, "area", |p| matches!(p, Problem::OutsideOf(_))),
        ),
        case(
            "area size 2^64-1",
            mutate(&b, |v| {
                ks(v)["area"]["size"] = json!("18446744073709551615")
            }),
            |e| {
                field_is(e, "area", |p| {
                    matches!(
                        p,
                        Problem::OutsideOf(_) | Problem::Overflow | Problem::OutOfRange { .. }
                    )
                })
            },
        ),
        case(
            "area size zero",
            mutate(&b, |v| ks(v)["area"]["size"] = json!("0")),
            move |e| field_is(e, "area", any),
        ),
        case(
            "area too small for the key material",
            mutate(&b, |v| ks(v)["area"]["size"] = json!("4096")),
            move |e| field_is(e, "area", any),
        ),
        case(
            "two keyslots share an area",
            mutate(&b, |v| {
                let k = v["keyslots"]["0"].clone();
                v["keyslots"]["1"] = k;
            }),
            |e| field_is(e, "keyslots", |p| matches!(p, Problem::Overlaps(_))),
        ),
        case(
            "keyslot id not a number",
            mutate(&b, |v| {
                let k = v["keyslots"]["0"].take();
                v["keyslots"] = json!({"zero": k});
            }),
            move |e| field_is(e, "keyslots", any),
        ),
        case(
            "keyslot id 32",
            mutate(&b, |v| {
                let k = v["keyslots"]["0"].take();
                v["keyslots"] = json!({"32": k});
                v["digests"]["0"]["keyslots"] = json!(["32"]);
            }),
            |e| {
                field_is(e, "keyslots", |p| {
                    matches!(p, Problem::OutOfRange { .. } | Problem::Invalid(_))
                })
            },
        ),
        case(
            "keyslot type unknown",
            mutate(&b, |v| ks(v)["type"] = json!("luks3")),
            |e| field_is(e, "type", |p| matches!(p, Problem::Unsupported(_))),
        ),
        case(
            "keyslot key_size zero",
            mutate(&b, |v| ks(v)["key_size"] = json!(0)),
            move |e| field_is(e, "key_size", any),
        ),
        case(
            "keyslot key_size huge",
            mutate(&b, |v| ks(v)["key_size"] = json!(1u64 << 40)),
            move |e| field_is(e, "key_size", any),
        ),
        case(
            "AF stripes 3999",
            mutate(&b, |v| ks(v)["af"]["stripes"] = json!(3999)),
            move |e| field_is(e, "stripes", any),
        ),
        case(
            "AF type unknown",
            mutate(&b, |v| ks(v)["af"]["type"] = json!("shamir")),
            move |e| field_is(e, "af", any),
        ),
        case(
            "AF hash unknown",
            mutate(&b, |v| ks(v)["af"]["hash"] = json!("md5")),
            move |e| field_is(e, "hash", any),
        ),
        case(
            "KDF type unknown",
            mutate(&b, |v| ks(v)["kdf"]["type"] = json!("scrypt")),
            move |e| field_is(e, "kdf", any),
        ),
        case(
            "KDF salt not base64",
            mutate(&b, |v| ks(v)["kdf"]["salt"] = json!("!!!not base64!!!")),
            move |e| field_is(e, "salt", any),
        ),
        case(
            "KDF iterations as a string",
            mutate(&b, |v| ks(v)["kdf"]["iterations"] = json!("1000")),
            move |e| field_is(e, "iterations", any),
        ),
        case(
            "PBKDF2 iterations 2^32",
            mutate(&b, |v| ks(v)["kdf"]["iterations"] = json!(1u64 << 32)),
            |e| {
                matches!(inner(e), Error::KdfLimit { .. })
                    || field_is(e, "iterations", |p| matches!(p, Problem::OutOfRange { .. }))
            },
        ),
        case(
            "Argon2 memory 8 GiB",
            mutate(
                &b,
                |v| ks(v)["kdf"] = json!({"type": "argon2id", "time": 4, "memory": 8u64 << 20, "cpus": 1, "salt": v["keyslots"]["0"]["kdf"]["salt"].clone()}),
            ),
            |e| {
                matches!(
                    inner(e),
                    Error::KdfLimit {
                        field: "memory",
                        ..
                    }
                )
            },
        ),
        case(
            "Argon2 cpus 64",
            mutate(
                &b,
                |v| ks(v)["kdf"] = json!({"type": "argon2id", "time": 4, "memory": 1024, "cpus": 64, "salt": v["keyslots"]["0"]["kdf"]["salt"].clone()}),
            ),
            |e| matches!(inner(e), Error::KdfLimit { .. }),
        ),
        case(
            "area encryption unknown",
            mutate(&b, |v| ks(v)["area"]["encryption"] = json!("rot13-ecb")),
            move |e| {
                field_is(e, "encryption", any)
                    || matches!(inner(e), Error::Cipher(_) | Error::Unsupported(_))
            },
        ),
        case(
            "segments missing",
            mutate(&b, |v| {
                v.as_object_mut().unwrap().remove("segments");
            }),
            |e| field_is(e, "segments", |p| matches!(p, Problem::Missing)),
        ),
        case(
            "keyslots missing",
            mutate(&b, |v| {
                v.as_object_mut().unwrap().remove("keyslots");
            }),
            |e| field_is(e, "keyslots", |p| matches!(p, Problem::Missing)),
        ),
        case(
            "digests missing",
            mutate(&b, |v| {
                v.as_object_mut().unwrap().remove("digests");
            }),
            |e| field_is(e, "digests", |p| matches!(p, Problem::Missing)),
        ),
        case(
            "config missing",
            mutate(&b, |v| {
                v.as_object_mut().unwrap().remove("config");
            }),
            |e| field_is(e, "config", |p| matches!(p, Problem::Missing)),
        ),
        case(
            "segment offset not a number",
            mutate(&b, |v| v["segments"]["0"]["offset"] = json!("x")),
            move |e| field_is(e, "segments.0.offset", not_dec),
        ),
        case(
            "segment inside the keyslots area",
            mutate(&b, |v| v["segments"]["0"]["offset"] = json!("16384")),
            move |e| field_is(e, "segment", any),
        ),
        case(
            "segment offset misaligned",
            mutate(&b, |v| v["segments"]["0"]["offset"] = json!("2097153")),
            move |e| field_is(e, "segment", any),
        ),
        case(
            "segment sector size 1000",
            mutate(&b, |v| v["segments"]["0"]["sector_size"] = json!(1000)),
            move |e| field_is(e, "sector_size", any),
        ),
        case(
            "segment size not whole sectors",
            mutate(&b, |v| v["segments"]["0"]["size"] = json!("1000")),
            move |e| field_is(e, "segments.0", any),
        ),
        case(
            "segment iv_tweak not a number",
            mutate(&b, |v| v["segments"]["0"]["iv_tweak"] = json!("seven")),
            move |e| field_is(e, "iv_tweak", not_dec),
        ),
        case(
            "segment type unknown",
            mutate(&b, |v| v["segments"]["0"]["type"] = json!("zero")),
            move |e| field_is(e, "segments.0", any),
        ),
        case(
            "dynamic segment not last",
            mutate(&b, |v| {
                let s = v["segments"]["0"].clone();
                let mut s1 = s.clone();
                s1["offset"] = json!("3145728");
                s1["size"] = json!("4096");
                v["segments"]["1"] = s1;
            }),
            move |e| field_is(e, "segment", any),
        ),
        case(
            "segments overlap",
            mutate(&b, |v| {
                let mut s0 = v["segments"]["0"].clone();
                s0["size"] = json!("1048576");
                let mut s1 = s0.clone();
                s1["offset"] = json!("2101248");
                s1["size"] = "dynamic".into();
                v["segments"]["0"] = s0;
                v["segments"]["1"] = s1;
            }),
            |e| {
                field_is(e, "segment", |p| {
                    matches!(p, Problem::Overlaps(_) | Problem::Invalid(_))
                })
            },
        ),
        case(
            "segments with a gap",
            mutate(&b, |v| {
                let mut s0 = v["segments"]["0"].clone();
                s0["size"] = json!("4096");
                let mut s1 = s0.clone();
                s1["offset"] = json!("3145728");
                s1["size"] = "dynamic".into();
                v["segments"]["0"] = s0;
                v["segments"]["1"] = s1;
            }),
            move |e| field_is(e, "segment", any),
        ),
        case(
            "digest names a missing keyslot",
            mutate(&b, |v| v["digests"]["0"]["keyslots"] = json!(["0", "7"])),
            |e| field_is(e, "digests", |p| matches!(p, Problem::Dangling(_))),
        ),
        case(
            "digest names a missing segment",
            mutate(&b, |v| v["digests"]["0"]["segments"] = json!(["3"])),
            |e| field_is(e, "digests", |p| matches!(p, Problem::Dangling(_))),
        ),
        case(
            "digest type unknown",
            mutate(&b, |v| v["digests"]["0"]["type"] = json!("sha3")),
            move |e| field_is(e, "digests", any),
        ),
        case(
            "digest salt not base64",
            mutate(&b, |v| v["digests"]["0"]["salt"] = json!("%%%")),
            move |e| field_is(e, "salt", any),
        ),
        case(
            "token names a missing keyslot",
            mutate(&b, |v| {
                v["tokens"]["0"] = json!({"type": "x", "keyslots": ["9"]})
            }),
            |e| field_is(e, "tokens", |p| matches!(p, Problem::Dangling(_))),
        ),
        case(
            "config json_size not the area",
            mutate(&b, |v| v["config"]["json_size"] = json!("4096")),
            move |e| field_is(e, "json_size", any),
        ),
        case(
            "config keyslots_size misaligned",
            mutate(&b, |v| v["config"]["keyslots_size"] = json!("1048577")),
            move |e| field_is(e, "keyslots_size", any),
        ),
        case(
            "config keyslots_size past the data",
            mutate(&b, |v| {
                v["config"]["keyslots_size"] = json!("1099511627776")
            }),
            move |e| field_is(e, "keyslots_size", any) || field_is(e, "segment", any),
        ),
        case(
            "unknown mandatory requirement",
            mutate(&b, |v| {
                v["config"]["requirements"] = json!({"mandatory": ["online-reencrypt-v9"]})
            }),
            |e| matches!(inner(e), Error::UnknownRequirement(r) if r == "online-reencrypt-v9"),
        ),
        case(
            "JSON root is an array",
            {
                let mut o = b.clone();
                put_json(&mut o, 0, b"[1,2]");
                put_json(&mut o, HDR, b"[1,2]");
                o
            },
            |e| matches!(inner(e), Error::Field { .. } | Error::Json(_)),
        ),
        case(
            "JSON does not start with {",
            {
                let mut o = b.clone();
                put_json(&mut o, 0, b"x{}");
                put_json(&mut o, HDR, b"x{}");
                o
            },
            |e| matches!(inner(e), Error::Json(_)),
        ),
        case(
            "garbage after the JSON",
            {
                let mut o = b.clone();
                for at in [0, HDR] {
                    let mut t = serde_json::to_vec(&json_of(&o[at..])).unwrap();
                    t.extend_from_slice(b"\0\0garbage");
                    put_json(&mut o, at, &t);
                }
                o
            },
            |e| matches!(inner(e), Error::JsonTrailingData),
        ),
        case(
            "JSON not NUL-terminated",
            {
                let mut o = b.clone();
                for at in [0, HDR] {
                    let mut t = serde_json::to_vec(&json_of(&o[at..])).unwrap();
                    t.resize(HDR - 4096, b' ');
                    put_json(&mut o, at, &t);
                }
                o
            },
            |e| matches!(inner(e), Error::JsonNotTerminated | Error::Json(_)),
        ),
        case(
            "bad magic on both copies",
            binary(&b, |c| c[0] = b'X'),
            |e| matches!(inner(e), Error::BadMagic),
        ),
        case("version 3", binary(&b, |c| c[7] = 3), |e| {
            matches!(inner(e), Error::UnsupportedVersion(3) | Error::Field { .. })
        }),
        case(
            "hdr_size not an allowed size",
            binary(&b, |c| c[8..16].copy_from_slice(&12345u64.to_be_bytes())),
            move |e| field_is(e, "hdr_size", any),
        ),
        case(
            "bad checksum on both copies",
            {
                let mut o = b.clone();
                o[300] ^= 1;
                o[HDR + 300] ^= 1;
                o
            },
            |e| matches!(inner(e), Error::Checksum { .. }),
        ),
        case(
            "hdr_offset of the secondary wrong",
            {
                let mut o = b.clone();
                o[HDR + 256..HDR + 264].copy_from_slice(&0u64.to_be_bytes());
                reseal(&mut o, HDR);
                o[300] ^= 1;
                o
            },
            move |e| field_is(e, "hdr_offset", any) || matches!(inner(e), Error::Checksum { .. }),
        ),
        at_unlock(
            "cipher_null keyslot with a passphrase",
            mutate(&b, |v| {
                ks(v)["area"]["encryption"] = json!("cipher_null-ecb")
            }),
            |e| {
                matches!(
                    inner(e),
                    Error::NoMatchingKey
                        | Error::Unsupported(_)
                        | Error::Cipher(_)
                        | Error::Field { .. }
                )
            },
        ),
        at_unlock(
            "segment cipher unsupported",
            mutate(&b, |v| {
                v["segments"]["0"]["encryption"] = json!("twofish-xts-plain64")
            }),
            |e| {
                matches!(
                    inner(e),
                    Error::Cipher(_) | Error::Unsupported(_) | Error::Field { .. }
                )
            },
        ),
    ]
}

fn luks1_cases() -> Vec<Case> {
    let b = base(LuksType::Luks1);
    let set32 = |img: &[u8], off: usize, v: u32| {
        let mut o = img.to_vec();
        o[off..off + 4].copy_from_slice(&v.to_be_bytes());
        o
    };
    // LUKS1 layout: payload_offset at 104, key_bytes 108,
    // mk_digest_iter 164 (not 180: that is inside the uuid); keyslot 0 at 208: active 0, iterations 4, salt 8..40, km_offset 40, stripes 44.
    let any = |_: &Problem| true;
    vec![
        case("LUKS1 stripes 3999", set32(&b, 208 + 44, 3999), move |e| {
            field_is(e, "stripes", any)
        }),
        case("LUKS1 key_bytes 0", set32(&b, 108, 0), move |e| {
            field_is(e, "key_bytes", any)
        }),
        case(
            "LUKS1 key_bytes 2^32-1",
            set32(&b, 108, u32::MAX),
            move |e| field_is(e, "key_bytes", any),
        ),
        case(
            "LUKS1 payload overlaps key material",
            set32(&b, 104, 9),
            move |e| {
                field_is(e, "", |p| {
                    matches!(
                        p,
                        Problem::Overlaps(_) | Problem::OutsideOf(_) | Problem::OutOfRange { .. }
                    )
                })
            },
        ),
        case(
            "LUKS1 key material inside the header",
            set32(&b, 208 + 40, 1),
            move |e| field_is(e, "", any),
        ),
        case(
            "LUKS1 two slots share key material",
            {
                let o = set32(&b, 208 + 48, 0x00AC71F3);
                let off = u32::from_be_bytes(b[208 + 40..208 + 44].try_into().unwrap());
                let mut o = set32(&o, 208 + 48 + 40, off);
                o[208 + 48 + 4..208 + 48 + 8].copy_from_slice(&1000u32.to_be_bytes());
                o[208 + 48 + 44..208 + 48 + 48].copy_from_slice(&4000u32.to_be_bytes());
                o
            },
            move |e| field_is(e, "", |p| matches!(p, Problem::Overlaps(_))),
        ),
        case(
            "LUKS1 active flag garbage",
            set32(&b, 208, 0x12345678),
            move |e| field_is(e, "", any),
        ),
        case("LUKS1 slot iterations 0", set32(&b, 208 + 4, 0), move |e| {
            field_is(e, "iterations", any)
        }),
        case("LUKS1 digest iterations 0", set32(&b, 164, 0), move |e| {
            field_is(e, "iter", any)
        }),
        case(
            "LUKS1 hash unknown",
            {
                let mut o = b.clone();
                o[72..104].fill(0);
                o[72..75].copy_from_slice(b"md5");
                o
            },
            move |e| field_is(e, "hash", any),
        ),
        case(
            "LUKS1 cipher mode garbage",
            {
                let mut o = b.clone();
                o[40..72].fill(0xff);
                o
            },
            move |e| field_is(e, "cipher", any),
        ),
        case("LUKS1 truncated to 500 bytes", b[..500].to_vec(), |e| {
            matches!(
                inner(e),
                Error::DeviceTooSmall { .. } | Error::Io { .. } | Error::Field { .. }
            )
        }),
        at_unlock(
            "LUKS1 cipher unsupported",
            {
                let mut o = b.clone();
                o[8..40].fill(0);
                o[8..15].copy_from_slice(b"twofish");
                o
            },
            |e| {
                matches!(
                    inner(e),
                    Error::Cipher(_) | Error::Unsupported(_) | Error::Field { .. }
                )
            },
        ),
    ]
}

#[test]
fn every_hostile_header_gets_its_own_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = luks2_cases();
    cases.extend(luks1_cases());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.img"));
        std::fs::write(&path, &c.image).unwrap();
        // Open-stage cases may fail at open or, when the header is only
        // refused once keys are involved, at unlock; unlock-stage cases must
        // open (the header is well formed) and fail at unlock.
        let result = match (Volume::open(&path), &c.stage) {
            (Err(e), Stage::Open) => Some(e),
            (Err(e), Stage::Unlock) => {
                failures.push(format!(
                    "{}: refused at open, expected at unlock: {e:?}",
                    c.name
                ));
                continue;
            }
            (Ok(v), _) => v.unlock(PASS, None).err(),
        };
        match result {
            Some(e) if (c.expect)(&e) => {}
            Some(e) => failures.push(format!("{}: unexpected error {e:?}", c.name)),
            None => failures.push(format!("{}: accepted", c.name)),
        }
    }
    eprintln!(
        "hostile headers: {} cases, {} as expected",
        cases.len(),
        cases.len() - failures.len()
    );
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn one_damaged_copy_opens_and_is_repaired_on_the_next_write() {
    let b = base(LuksType::Luks2);
    let dir = tempfile::tempdir().unwrap();
    for damaged in [0usize, HDR] {
        let path = dir.path().join("one.img");
        let mut img = b.clone();
        img[damaged + 5000] ^= 0x55; // inside the JSON area: checksum now wrong
        std::fs::write(&path, &img).unwrap();
        let mut vol = Volume::open(&path).expect("one good copy is enough");
        assert!(vol.needs_repair().is_some(), "the damage is reported");
        vol.unlock(PASS, None).expect("unlocks with the good copy");
        vol.add_key(
            luks::Unlock::Passphrase {
                passphrase: PASS,
                slot: None,
            },
            b"second",
            &luks::KeyslotOptions {
                key_slot: None,
                pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            },
        )
        .unwrap();
        let after = std::fs::read(&path).unwrap();
        let (p, s) = (json_of(&after[..]), json_of(&after[HDR..]));
        assert_eq!(p, s, "both copies equal after the write");
        let vol = Volume::open(&path).unwrap();
        assert!(vol.needs_repair().is_none(), "repaired");
        vol.unlock(b"second", None).unwrap();
        vol.unlock(PASS, None).unwrap();
    }
}

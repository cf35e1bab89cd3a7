//! IEEE 1619 XTS-AES known answers (tests/data/xts_vectors.txt) through
//! `SectorCipher`, for every XTS backend compiled in.

use luks::{Backend, CipherError, SectorCipher};

struct Vector {
    n: u32,
    key: Vec<u8>,
    unit: u64,
    pt: Vec<u8>,
    ct: Vec<u8>,
}

/// Reads the vector file: paragraphs of `name = value` lines, `#` comments.
fn read_vectors() -> Vec<Vector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/xts_vectors.txt");
    let text = std::fs::read_to_string(path).expect("vector file");
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields = std::collections::HashMap::new();
        for line in para
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (k, v) = line
                .split_once(" = ")
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            fields.insert(k.to_string(), v.to_string());
        }
        if fields.is_empty() {
            continue;
        }
        let get = |k: &str| {
            fields
                .get(k)
                .unwrap_or_else(|| panic!("missing {k} in {para}"))
                .clone()
        };
        out.push(Vector {
            n: get("vector").parse().unwrap(),
            key: hex::decode(get("key")).unwrap(),
            unit: get("unit").parse().unwrap(),
            pt: hex::decode(get("pt")).unwrap(),
            ct: hex::decode(get("ct")).unwrap(),
        });
    }
    out
}

#[test]
fn vector_file_is_complete() {
    let v = read_vectors();
    let ns: Vec<u32> = v.iter().map(|v| v.n).collect();
    assert_eq!(ns, [1, 2, 3, 4, 5, 10, 11, 12, 13, 14]);
    assert!(v.iter().all(|v| v.pt.len() == v.ct.len() && v.pt != v.ct));
}

#[test]
fn ieee1619_sector_vectors_every_backend() {
    let vectors: Vec<Vector> = read_vectors()
        .into_iter()
        .filter(|v| v.pt.len() == 512)
        .collect();
    assert_eq!(vectors.len(), 7);
    let mut checked = 0;
    for v in &vectors {
        for &b in Backend::available() {
            let c = match SectorCipher::with_backend("aes", "xts-plain64", &v.key, b) {
                Ok(c) => c,
                // AWS-LC has no AES-128-XTS: the 32-byte key vectors are pure Rust only.
                Err(CipherError::BackendUnsupported { .. })
                    if b == Backend::AwsLc && v.key.len() == 32 =>
                {
                    continue
                }
                Err(e) => panic!("vector {} backend {b}: {e}", v.n),
            };
            assert_eq!(c.backend(), b);
            let mut buf = v.pt.clone();
            c.encrypt_sectors(&mut buf, 512, v.unit, true).unwrap();
            assert_eq!(
                hex::encode(&buf),
                hex::encode(&v.ct),
                "vector {} encrypt, backend {b}",
                v.n
            );
            c.decrypt_sectors(&mut buf, 512, v.unit, false).unwrap();
            assert_eq!(buf, v.pt, "vector {} decrypt, backend {b}", v.n);
            checked += 1;
        }
    }
    assert!(checked >= 6);
}

#[test]
fn ieee1619_vectors_as_part_of_a_larger_buffer() {
    // The vector's data unit is sector k of a 3-sector buffer starting at unit - k.
    for v in read_vectors()
        .into_iter()
        .filter(|v| v.pt.len() == 512 && v.unit >= 2)
    {
        for &b in Backend::available() {
            let Ok(c) = SectorCipher::with_backend("aes", "xts-plain64", &v.key, b) else {
                continue;
            };
            let mut buf = vec![0x5au8; 3 * 512];
            buf[1024..].copy_from_slice(&v.pt);
            c.encrypt_sectors(&mut buf, 512, v.unit - 2, true).unwrap();
            assert_eq!(&buf[1024..], &v.ct[..], "vector {} backend {b}", v.n);
        }
    }
}

#[test]
fn xts_plain_truncates_to_32_bits() {
    let v14 = read_vectors().into_iter().find(|v| v.n == 14).unwrap();
    assert!(v14.unit > u64::from(u32::MAX));
    for &b in Backend::available() {
        let plain = SectorCipher::with_backend("aes", "xts-plain", &v14.key, b).unwrap();
        let plain64 = SectorCipher::with_backend("aes", "xts-plain64", &v14.key, b).unwrap();
        let mut a = v14.pt.clone();
        let mut c = v14.pt.clone();
        plain.encrypt_sectors(&mut a, 512, v14.unit, false).unwrap();
        plain64
            .encrypt_sectors(&mut c, 512, v14.unit & 0xffff_ffff, false)
            .unwrap();
        assert_eq!(a, c);
        assert_ne!(a, v14.ct, "plain must differ from plain64 above 2^32");
        // Vector 13's unit is exactly 2^32 - 1: identical under both IV modes.
        let v13 = read_vectors().into_iter().find(|v| v.n == 13).unwrap();
        let mut d = v13.pt.clone();
        SectorCipher::with_backend("aes", "xts-plain", &v13.key, b)
            .unwrap()
            .encrypt_sectors(&mut d, 512, v13.unit, true)
            .unwrap();
        assert_eq!(d, v13.ct);
    }
}

#[test]
fn iv_counts_512_byte_units_with_4096_byte_sectors() {
    // LUKS2 with 4096-byte sectors: sector i of a buffer gets IV first + 8 i.
    let key: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(1))
        .collect();
    for &b in Backend::available() {
        let c = SectorCipher::with_backend("aes", "xts-plain64", &key, b).unwrap();
        let data: Vec<u8> = (0..4 * 4096).map(|i| (i % 251) as u8).collect();
        let mut whole = data.clone();
        c.encrypt_sectors(&mut whole, 4096, 800, true).unwrap();
        for i in 0..4 {
            let mut one = data[i * 4096..(i + 1) * 4096].to_vec();
            c.encrypt_sectors(&mut one, 4096, 800 + 8 * i as u64, false)
                .unwrap();
            assert_eq!(
                one,
                &whole[i * 4096..(i + 1) * 4096],
                "sector {i} backend {b}"
            );
        }
        let mut counted = data.clone();
        c.encrypt_sectors(&mut counted, 4096, 800, false).unwrap();
        assert_ne!(
            counted[4096..],
            whole[4096..],
            "units flag must change the IV of later sectors"
        );
        assert_eq!(counted[..4096], whole[..4096]);
    }
}

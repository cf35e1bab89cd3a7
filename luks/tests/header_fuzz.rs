//! Random damage to headers formatted here (byte flips in the binary headers,
//! the JSON area and the keyslot areas, and truncation): opening and unlocking
//! return a value or a typed error, never panic; damage confined to one LUKS2
//! copy still opens; and what parses survives parse -> write -> parse unchanged (the
//! property the fuzz targets `luks1_header` and `luks2_header` check).

use luks::internal::{BinHeader, Luks1Header, Metadata, BIN_LEN, HEADER_LEN};
use luks::{format, FormatOptions, LuksType, PbkdfOptions, PbkdfType, Volume};
use proptest::prelude::*;
use std::sync::OnceLock;

fn base(t: LuksType) -> &'static Vec<u8> {
    static L1: OnceLock<Vec<u8>> = OnceLock::new();
    static L2: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if t == LuksType::Luks1 { &L1 } else { &L2 };
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("base.img");
        std::fs::File::create(&p)
            .unwrap()
            .set_len((2 << 20) + (64 << 10))
            .unwrap();
        let o = FormatOptions {
            luks_type: t,
            key_size_bits: Some(256),
            pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            luks2_keyslots_size: (t == LuksType::Luks2).then_some(256 << 10),
            sector_size: (t == LuksType::Luks2).then_some(512),
            ..Default::default()
        };
        format(&p, &o, b"pw").unwrap();
        std::fs::read(&p).unwrap()
    })
}

fn try_open(bytes: &[u8]) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.img");
    std::fs::write(&p, bytes).unwrap();
    let v = Volume::open(&p).ok()?;
    let _ = v.dump().text();
    Some(v.unlock(b"pw", None).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn luks2_random_damage_never_panics(flips in proptest::collection::vec((0usize..(32 << 10), any::<u8>()), 1..8),
                                        one_copy in any::<bool>()) {
        let mut b = base(LuksType::Luks2).clone();
        for (pos, x) in &flips {
            // one_copy: confine the damage to the primary copy (first 16 KiB)
            let pos = if one_copy { pos % (16 << 10) } else { *pos };
            b[pos] ^= x | 1;
        }
        let r = try_open(&b);
        if one_copy {
            // the secondary copy is intact: the volume opens and unlocks
            prop_assert_eq!(r, Some(true));
        }
    }

    #[test]
    fn luks1_random_damage_never_panics(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
        let mut b = base(LuksType::Luks1).clone();
        for (pos, x) in &flips {
            b[*pos] ^= x | 1;
        }
        let _ = try_open(&b);
    }

    #[test]
    fn truncated_images_never_panic(len in 0usize..(300 << 10), l1 in any::<bool>()) {
        let b = base(if l1 { LuksType::Luks1 } else { LuksType::Luks2 });
        let _ = try_open(&b[..len.min(b.len())]);
    }

    #[test]
    fn keyslot_area_damage_is_a_wrong_key_not_a_panic(pos in 0usize..128_000, x in 1u8..) {
        // 256-bit key: the AF material is 32 * 4000 = 128000 bytes from the area start
        let mut b = base(LuksType::Luks2).clone();
        b[(32 << 10) + pos] ^= x;
        prop_assert_eq!(try_open(&b), Some(false));
    }

    #[test]
    fn luks1_header_parse_write_parse_is_identity(flips in proptest::collection::vec((0usize..HEADER_LEN, any::<u8>()), 0..4)) {
        let mut b = base(LuksType::Luks1)[..HEADER_LEN].to_vec();
        for (pos, x) in &flips {
            b[*pos] ^= x | 1;
        }
        if let Ok(h) = Luks1Header::parse(&b) {
            if h.validate().is_ok() {
                let again = Luks1Header::parse(&h.to_bytes().unwrap()).unwrap();
                prop_assert_eq!(again, h);
            }
        }
    }

    #[test]
    fn luks2_header_parse_write_parse_is_identity(flips in proptest::collection::vec((0usize..(16 << 10), any::<u8>()), 0..4)) {
        let mut b = base(LuksType::Luks2)[..16 << 10].to_vec();
        for (pos, x) in &flips {
            b[*pos] ^= x | 1;
        }
        if let Ok(h) = BinHeader::parse(&b[..BIN_LEN], 0) {
            if let Some(area) = b.get(BIN_LEN..h.hdr_size as usize) {
                let copy = h.serialize(area).unwrap();
                prop_assert_eq!(BinHeader::parse(&copy[..BIN_LEN], 0).unwrap(), h);
            }
        }
        if let Ok(md) = Metadata::parse_area(&b[BIN_LEN..], 16 << 10) {
            let text = md.to_area((16 << 10) - BIN_LEN as u64).unwrap();
            prop_assert_eq!(Metadata::parse_area(&text, 16 << 10).unwrap(), md);
        }
    }
}

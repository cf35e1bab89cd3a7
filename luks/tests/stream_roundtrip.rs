//! Streaming engine against the single-threaded `SectorCipher` path: random
//! regions (unaligned ends), sector sizes, IV tweaks, thread counts and batch
//! sizes.

#[path = "common/cases.rs"]
mod cases;
mod common;

use cases::check_named;
use luks::SectorCipher;
use luks::{decrypt_to_writer_with, encrypt_from_reader_with, Region, StreamOptions};
use proptest::prelude::*;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

/// `common::pattern`'s multiplier, and its inverse modulo 2^64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const GOLDEN_INV: u64 = 0xF1DE_83E1_9937_733D;
const _: () = assert!(GOLDEN.wrapping_mul(GOLDEN_INV) == 1);

/// Deterministic bytes: the xorshift stream started at `seed | 1`, which is
/// `common::pattern` of the seed that its multiplier maps to `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    common::pattern(len, seed.wrapping_mul(GOLDEN_INV))
}

struct Dev {
    _dir: tempfile::TempDir,
    file: File,
}

fn device(len: usize, seed: u64) -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev.img");
    let mut f = File::create(&path).unwrap();
    f.write_all(&pattern(len, seed)).unwrap();
    drop(f);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    Dev { _dir: dir, file }
}

/// AES-XTS with a 512-bit key from `pattern(64, seed)`.
fn xts(seed: u64) -> SectorCipher {
    SectorCipher::new("aes", "xts-plain64", &pattern(64, seed)).unwrap()
}

/// A LUKS-style region: IVs in 512-byte units from 0.
fn region(data_offset: u64, offset: u64, len: u64, sector_size: usize) -> Region {
    Region {
        data_offset,
        offset,
        len,
        sector_size,
        iv_in_512_units: true,
        iv_tweak: 0,
    }
}

/// Single-threaded reference: decrypts the whole encrypted area sector by sector.
fn plaintext_of(dev: &File, r: &Region, area_sectors: u64, c: &SectorCipher) -> Vec<u8> {
    let ss = r.sector_size;
    let mut out = vec![0u8; area_sectors as usize * ss];
    dev.read_exact_at(&mut out, r.data_offset).unwrap();
    for (s, sector) in out.chunks_mut(ss).enumerate() {
        c.decrypt_sectors(sector, ss, r.iv_of_sector(s as u64), r.iv_in_512_units)
            .unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn encrypt_then_decrypt_matches_reference(
        ss in prop_oneof![Just(512usize), Just(4096)],
        area_sectors in 1u64..48,
        start_frac in 0.0f64..1.0, len_frac in 0.0f64..1.0,
        threads in 1usize..5, batch_sectors in 1usize..6,
        tweak in 0u64..1000, units in any::<bool>(), seed in any::<u64>(),
        mode in prop_oneof![Just("xts-plain64"), Just("cbc-essiv:sha256")],
    ) {
        let key = pattern(if mode.starts_with("xts") { 64 } else { 32 }, seed ^ 0x55);
        let c = SectorCipher::new("aes", mode, &key).unwrap();
        let data_offset = 3 * 4096u64;
        let area = area_sectors * ss as u64;
        let dev = device(data_offset as usize + area as usize + 777, seed);
        let offset = (start_frac * area as f64) as u64;
        let len = ((area - offset) as f64 * len_frac) as u64;
        let r = Region { data_offset, offset, len, sector_size: ss, iv_in_512_units: units, iv_tweak: tweak };
        let opts = StreamOptions { threads, batch: batch_sectors * ss };

        let before = plaintext_of(&dev.file, &r, area_sectors, &c);
        let mut raw_before = vec![0u8; data_offset as usize];
        dev.file.read_exact_at(&mut raw_before, 0).unwrap();
        let input = pattern(len as usize, seed ^ 0xabc);
        let last = std::cell::Cell::new(0u64);
        let n = encrypt_from_reader_with(&dev.file, &r, &c, &mut &input[..], &|p| last.set(p), &opts).unwrap();
        prop_assert_eq!(n, len);
        prop_assert_eq!(last.get(), len);

        // The area now holds `input` at `offset` and the old plaintext elsewhere.
        let after = plaintext_of(&dev.file, &r, area_sectors, &c);
        let (o, l) = (offset as usize, len as usize);
        prop_assert_eq!(&after[o..o + l], &input[..]);
        prop_assert_eq!(&after[..o], &before[..o]);
        prop_assert_eq!(&after[o + l..], &before[o + l..]);
        // Nothing before the area was touched.
        let mut raw_after = vec![0u8; data_offset as usize];
        dev.file.read_exact_at(&mut raw_after, 0).unwrap();
        prop_assert_eq!(raw_after, raw_before);

        // Decrypting the region gives the input back, and the whole area the reference.
        let mut out = Vec::new();
        let got = decrypt_to_writer_with(&dev.file, &r, &c, &mut out, &|_| {}, &opts).unwrap();
        prop_assert_eq!(got, len);
        prop_assert_eq!(&out, &input);
        let whole = Region { offset: 0, len: area, ..r };
        let mut all = Vec::new();
        decrypt_to_writer_with(&dev.file, &whole, &c, &mut all, &|_| {}, &opts).unwrap();
        prop_assert_eq!(all, after);
    }
}

#[test]
fn many_batches_default_options() {
    // 9 MiB + a partial sector: several 1 MiB batches through all cores.
    let c = xts(7);
    let len = (9 << 20) + 1000;
    let dev = device(4096 + len + 4096, 9);
    let r = region(4096, 0, len as u64, 4096);
    let input = pattern(len, 11);
    let calls = std::cell::Cell::new(0);
    luks::encrypt_from_reader(&dev.file, &r, &c, &mut &input[..], &|_| {
        calls.set(calls.get() + 1)
    })
    .unwrap();
    assert!(calls.get() >= 9, "progress called {} times", calls.get());
    let mut out = Vec::new();
    let seen = std::cell::Cell::new(0u64);
    luks::decrypt_to_writer(&dev.file, &r, &c, &mut out, &|p| {
        assert!(p >= seen.get());
        seen.set(p)
    })
    .unwrap();
    assert_eq!(seen.get(), len as u64);
    assert!(out == input);
    // Sector 5 with the one-shot path.
    let mut s5 = vec![0u8; 4096];
    dev.file.read_exact_at(&mut s5, 4096 + 5 * 4096).unwrap();
    c.decrypt_sectors(&mut s5, 4096, 40, true).unwrap();
    assert!(s5 == input[5 * 4096..6 * 4096]);
}

/// A transfer that must fail.
enum Op {
    /// Encrypts this many pattern bytes into the region.
    Encrypt(usize),
    /// Decrypts the region into a vector.
    Decrypt,
    /// Decrypts the region into a writer that fails after this many writes.
    DecryptFailingAfter(usize),
}

/// A writer that fails ("disk full") after `.0` writes.
struct Fail(usize);

impl Write for Fail {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        self.0 -= 1;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A named failing transfer: device length, region, options (None: the
/// functions without options), the transfer, and a check of its error.
type ErrCase = (
    &'static str,
    usize,
    Region,
    Option<StreamOptions>,
    Op,
    fn(&luks::Error) -> bool,
);

/// Runs each case on a fresh device (pattern seed 2) with `xts(1)`: it must
/// return an error (never panic) that its check accepts.
fn check_errors(table: &str, cases: Vec<ErrCase>) -> usize {
    let c = xts(1);
    check_named(table, cases, |(_, dev_len, r, opts, op, ok)| {
        let dev = device(dev_len, 2);
        let none = &|_: u64| {};
        let e = match (op, opts) {
            (Op::Encrypt(n), Some(o)) => {
                let input = pattern(n, 3);
                encrypt_from_reader_with(&dev.file, &r, &c, &mut &input[..], none, &o).unwrap_err()
            }
            (Op::Decrypt, Some(o)) => {
                decrypt_to_writer_with(&dev.file, &r, &c, &mut Vec::new(), none, &o).unwrap_err()
            }
            (Op::Decrypt, None) => {
                luks::decrypt_to_writer(&dev.file, &r, &c, &mut Vec::new(), none).unwrap_err()
            }
            (Op::DecryptFailingAfter(n), Some(o)) => {
                decrypt_to_writer_with(&dev.file, &r, &c, &mut Fail(n), none, &o).unwrap_err()
            }
            _ => unreachable!("no such case"),
        };
        assert!(ok(&e), "{e}");
    })
}

fn opts(threads: usize, batch: usize) -> Option<StreamOptions> {
    Some(StreamOptions { threads, batch })
}

#[rustfmt::skip]
#[test]
fn input_longer_than_region_is_an_error() {
    let r = region(0, 100, 1000, 512);
    let out_of_bounds: fn(&luks::Error) -> bool = |e| matches!(e, luks::Error::OutOfBounds { .. });
    check_errors("input longer than region", vec![
        ("1 thread",  8192, r, opts(1, 512), Op::Encrypt(1001), out_of_bounds),
        ("2 threads", 8192, r, opts(2, 512), Op::Encrypt(1001), out_of_bounds),
    ]);
}

#[rustfmt::skip]
#[test]
fn short_device_is_an_error_not_a_panic() {
    let r = region(512, 0, 16 * 512, 512);
    check_errors("short device", vec![
        ("1 thread",           3 * 512, r, opts(1, 1024), Op::Decrypt, |_| true),
        ("3 threads",          3 * 512, r, opts(3, 1024), Op::Decrypt, |_| true),
        ("sector size 1000",   3 * 512, Region { sector_size: 1000, ..r }, None, Op::Decrypt, |_| true),
        ("offset near u64 max", 3 * 512, Region { offset: u64::MAX - 10, len: 100, ..r }, None, Op::Decrypt, |_| true),
    ]);
}

#[rustfmt::skip]
#[test]
fn failing_writer_stops_cleanly() {
    let r = region(0, 0, 64 * 4096, 4096);
    check_errors("failing writer", vec![
        ("disk full after 3 writes", 64 * 4096, r, opts(4, 4096), Op::DecryptFailingAfter(3), |e| e.to_string().contains("disk full")),
    ]);
}

//! Property tests of the userspace I/O: random positional and stream writes and
//! reads (offsets and lengths crossing sectors and the 1 MiB work chunk) read back
//! what a plain in-memory model holds, also after reopening the volume.

use luks::{format, Error, FormatOptions, LuksType, PbkdfOptions, PbkdfType, Volume};
use proptest::prelude::*;
use std::io::{Read, Seek, SeekFrom, Write};

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize, seed: u8 },
    Read { off: u64, len: usize },
    Stream { off: u64, len: usize, seed: u8 },
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    let len = prop_oneof![1usize..600, 1usize..9000, 1_000_000usize..1_200_000];
    (0..size, len, any::<u8>(), 0u8..3).prop_map(move |(off, len, seed, k)| {
        let len = len.min((size - off) as usize).max(1);
        let off = off.min(size - len as u64);
        match k {
            0 => Op::Write { off, len, seed },
            1 => Op::Read { off, len },
            _ => Op::Stream { off, len, seed },
        }
    })
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn volume(
    dir: &std::path::Path,
    t: LuksType,
    sector: Option<u32>,
) -> (std::path::PathBuf, Vec<u8>) {
    let img = dir.join("v.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(if t == LuksType::Luks1 {
        4 << 20
    } else {
        19 << 20
    })
    .unwrap();
    let opts = FormatOptions {
        luks_type: t,
        sector_size: sector,
        pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
        ..Default::default()
    };
    format(&img, &opts, b"p").unwrap();
    let key = Volume::open(&img)
        .unwrap()
        .recover_volume_key(b"p", None)
        .unwrap()
        .1;
    (img, key.as_bytes().to_vec())
}

fn run_ops(t: LuksType, sector: Option<u32>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (img, key) = volume(dir.path(), t, sector);
    let v = Volume::open(&img).unwrap();
    let data = v.unlock_with_volume_key(&key).unwrap();
    let size = data.size();
    prop_assert!(size > 1 << 20);
    let mut model = vec![0u8; size as usize];
    data.read_at(&mut model, 0).unwrap();
    for o in ops {
        match o {
            Op::Write { off, len, seed } => {
                let off = off % size;
                let len = len.min((size - off) as usize);
                let b = bytes(len, seed);
                data.write_at(&b, off).unwrap();
                model[off as usize..off as usize + len].copy_from_slice(&b);
            }
            Op::Read { off, len } => {
                let off = off % size;
                let len = len.min((size - off) as usize);
                let mut b = vec![0u8; len];
                data.read_at(&mut b, off).unwrap();
                prop_assert!(
                    b == model[off as usize..off as usize + len],
                    "read at {} len {}",
                    off,
                    len
                );
            }
            Op::Stream { off, len, seed } => {
                let off = off % size;
                let len = len.min((size - off) as usize);
                let b = bytes(len, seed);
                let mut s = data.stream();
                s.seek(SeekFrom::Start(off)).unwrap();
                s.write_all(&b).unwrap();
                model[off as usize..off as usize + len].copy_from_slice(&b);
                s.seek(SeekFrom::Current(-(len as i64))).unwrap();
                let mut back = vec![0u8; len];
                s.read_exact(&mut back).unwrap();
                prop_assert!(back == b);
            }
        }
    }
    drop(data);
    drop(v);
    let v = Volume::open(&img).unwrap();
    let data = v.unlock(b"p", None).unwrap();
    let mut all = vec![0u8; size as usize];
    let mut s = data.stream();
    s.read_exact(&mut all).unwrap();
    let mut extra = [0u8; 1];
    prop_assert_eq!(s.read(&mut extra).unwrap(), 0, "read past the end");
    prop_assert!(all == model, "contents after reopen");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn luks2_4096_random_io(ops in proptest::collection::vec(op(3 << 20), 1..10)) {
        run_ops(LuksType::Luks2, Some(4096), ops)?;
    }

    #[test]
    fn luks2_512_random_io(ops in proptest::collection::vec(op(3 << 20), 1..10)) {
        run_ops(LuksType::Luks2, Some(512), ops)?;
    }

    #[test]
    fn luks1_random_io(ops in proptest::collection::vec(op(1 << 20), 1..10)) {
        run_ops(LuksType::Luks1, None, ops)?;
    }
}

#[test]
fn out_of_bounds_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (img, key) = volume(dir.path(), LuksType::Luks2, Some(4096));
    let v = Volume::open(&img).unwrap();
    let data = v.unlock_with_volume_key(&key).unwrap();
    let size = data.size();
    let mut b = [0u8; 10];
    assert!(matches!(
        data.read_at(&mut b, size - 5),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        data.write_at(&b, u64::MAX - 2),
        Err(Error::OutOfBounds { .. })
    ));
    data.read_at(&mut b, size - 10).unwrap();
    let mut s = data.stream();
    s.seek(SeekFrom::End(0)).unwrap();
    assert!(s.write(&b).is_err(), "write past the end");
    assert!(s.seek(SeekFrom::Current(-(size as i64) - 1)).is_err());
    drop(data);
    let ro = Volume::open_read_only(&img)
        .unwrap()
        .unlock_with_volume_key(&key)
        .unwrap();
    assert!(
        ro.write_at(&b, 0).is_err(),
        "read-only volume accepted a write"
    );
    assert_eq!(ro.layout().sector_size, 4096);
    assert_eq!(ro.layout().iv_for(8192), ro.layout().iv_tweak + 16);
}

/// Throughput of positional I/O over a 64 MiB LUKS2 volume (prints MB/s).
/// Run with `cargo test --release -p luks --test io_props -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("t.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(80 << 20)
        .unwrap();
    for sector in [512u32, 4096] {
        let opts = FormatOptions {
            sector_size: Some(sector),
            pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            ..Default::default()
        };
        format(&img, &opts, b"p").unwrap();
        let v = Volume::open(&img).unwrap();
        let data = v.unlock(b"p", None).unwrap();
        let n = 64usize << 20;
        let buf = bytes(1 << 20, 1);
        let t = std::time::Instant::now();
        for i in 0..n / buf.len() {
            data.write_at(&buf, (i * buf.len()) as u64).unwrap();
        }
        data.sync().unwrap();
        let w = t.elapsed().as_secs_f64();
        let mut rb = vec![0u8; 1 << 20];
        let t = std::time::Instant::now();
        let step = rb.len();
        for i in 0..n / step {
            data.read_at(&mut rb, (i * step) as u64).unwrap();
        }
        let r = t.elapsed().as_secs_f64();
        let mut small = vec![0u8; 1000];
        let t = std::time::Instant::now();
        for i in 0..2000u64 {
            data.write_at(&small, i * 7919 % (n as u64 - 1000)).unwrap();
            data.read_at(&mut small, i * 104_729 % (n as u64 - 1000))
                .unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "sector {sector}: write {:.0} MB/s, read {:.0} MB/s (1 MiB aligned); unaligned 1000-byte write+read pairs: {:.0} us/pair",
            n as f64 / w / 1e6,
            n as f64 / r / 1e6,
            s / 2000.0 * 1e6
        );
    }
}

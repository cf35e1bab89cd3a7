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

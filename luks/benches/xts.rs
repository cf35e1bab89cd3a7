//! Criterion benchmarks of the data path and of unlocking.
//!
//! * `xts/<backend>/<encrypt|decrypt>/<sector size>`: AES-256-XTS (64-byte
//!   key, `xts-plain64`) over a 1 MiB buffer of 512- or 4096-byte sectors, one
//!   thread, for every backend compiled in ([`Backend::available`]).
//! * `cbc-essiv/<encrypt|decrypt>/4096`: AES-256-CBC-ESSIV, for comparison.
//! * `unlock/<kdf>`: [`Volume::test_passphrase`] on a LUKS2 header with fixed
//!   KDF parameters (pbkdf2-sha256 100 000 iterations; argon2id t=4, 64 MiB,
//!   2 lanes), the work `cryptsetup open --test-passphrase` does.
//!
//! Run with `cargo bench -p luks --bench xts` (add `-- xts/` to run one group).

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use luks::{format, FormatOptions, HashAlg, LuksType, PbkdfOptions, PbkdfType, Volume};
use luks::{Backend, SectorCipher};
use std::hint::black_box;
use std::time::Duration;

const BUF: usize = 1 << 20;

fn key64() -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(151).wrapping_add(7))
        .collect()
}

fn xts(c: &mut Criterion) {
    let key = key64();
    let mut g = c.benchmark_group("xts");
    g.throughput(Throughput::Bytes(BUF as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for &backend in Backend::available() {
        let cipher =
            SectorCipher::with_backend("aes", "xts-plain64", &key, backend).expect("cipher");
        for sector in [512usize, 4096] {
            let mut buf = vec![0x5au8; BUF];
            g.bench_with_input(
                BenchmarkId::new(format!("{backend}/encrypt"), sector),
                &sector,
                |b, &ss| {
                    b.iter(|| {
                        cipher
                            .encrypt_sectors(black_box(&mut buf), ss, 1000, true)
                            .expect("encrypt")
                    })
                },
            );
            g.bench_with_input(
                BenchmarkId::new(format!("{backend}/decrypt"), sector),
                &sector,
                |b, &ss| {
                    b.iter(|| {
                        cipher
                            .decrypt_sectors(black_box(&mut buf), ss, 1000, true)
                            .expect("decrypt")
                    })
                },
            );
        }
    }
    g.finish();

    let mut g = c.benchmark_group("cbc-essiv");
    g.throughput(Throughput::Bytes(BUF as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    let cipher = SectorCipher::new("aes", "cbc-essiv:sha256", &key[..32]).expect("cipher");
    let mut buf = vec![0x5au8; BUF];
    g.bench_function(BenchmarkId::new("encrypt", 4096), |b| {
        b.iter(|| {
            cipher
                .encrypt_sectors(black_box(&mut buf), 4096, 1000, true)
                .expect("encrypt")
        })
    });
    g.bench_function(BenchmarkId::new("decrypt", 4096), |b| {
        b.iter(|| {
            cipher
                .decrypt_sectors(black_box(&mut buf), 4096, 1000, true)
                .expect("decrypt")
        })
    });
    g.finish();
}

fn unlock(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("unlock");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    let kdfs = [
        (
            "pbkdf2-sha256-100000",
            PbkdfOptions {
                pbkdf: Some(PbkdfType::Pbkdf2),
                hash: Some(HashAlg::Sha256),
                force_iterations: Some(100_000),
                ..PbkdfOptions::default()
            },
        ),
        (
            "argon2id-t4-m65536-p2",
            PbkdfOptions {
                pbkdf: Some(PbkdfType::Argon2id),
                force_iterations: Some(4),
                memory_kib: Some(65536),
                parallel: Some(2),
                ..PbkdfOptions::default()
            },
        ),
    ];
    for (name, pbkdf) in kdfs {
        let path = dir.path().join(format!("{name}.img"));
        std::fs::File::create(&path)
            .and_then(|f| f.set_len(32 << 20))
            .expect("create image");
        let opts = FormatOptions {
            luks_type: LuksType::Luks2,
            pbkdf,
            ..FormatOptions::default()
        };
        format(&path, &opts, b"bench passphrase").expect("format");
        let vol = Volume::open(&path).expect("open");
        g.bench_function(name, |b| {
            b.iter(|| {
                vol.test_passphrase(black_box(b"bench passphrase"), None)
                    .expect("unlock")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, xts, unlock);
criterion_main!(benches);

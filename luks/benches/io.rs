//! Criterion benchmarks of positional I/O on an unlocked LUKS2 volume (a 64 MiB
//! file, aes-xts-plain64), for 512- and 4096-byte sectors:
//!
//! * `io/write-1MiB/<sector>` and `io/read-1MiB/<sector>`: aligned 1 MiB
//!   `write_at` / `read_at` (throughput in bytes);
//! * `io/unaligned-1000B-write+read/<sector>`: a 1000-byte `write_at` then
//!   `read_at` at unaligned offsets (read-modify-write of partial sectors).
//!
//! Run with `cargo bench -p luks --bench io`. (This replaces an ignored test that
//! printed the same timings.)

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use luks::{format, FormatOptions, PbkdfOptions, PbkdfType, Volume};
use std::hint::black_box;
use std::time::Duration;

const MIB: usize = 1 << 20;
const DATA: u64 = 64 << 20;

fn io(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut g = c.benchmark_group("io");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for sector in [512u32, 4096] {
        let img = dir.path().join(format!("io-{sector}.img"));
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(DATA + (16 << 20)))
            .expect("create image");
        let opts = FormatOptions {
            sector_size: Some(sector),
            pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            ..Default::default()
        };
        format(&img, &opts, b"p").expect("format");
        let data = Volume::open(&img)
            .expect("open")
            .unlock(b"p", None)
            .expect("unlock");
        let size = data.layout().size;
        let chunks = size / MIB as u64;
        let buf: Vec<u8> = (0..MIB).map(|i| (i as u8).wrapping_mul(31)).collect();
        g.throughput(Throughput::Bytes(MIB as u64));
        let mut i = 0u64;
        g.bench_with_input(BenchmarkId::new("write-1MiB", sector), &sector, |b, _| {
            b.iter(|| {
                data.write_at(black_box(&buf), (i % chunks) * MIB as u64)
                    .expect("write");
                i += 1;
            })
        });
        let mut rb = vec![0u8; MIB];
        g.bench_with_input(BenchmarkId::new("read-1MiB", sector), &sector, |b, _| {
            b.iter(|| {
                data.read_at(black_box(&mut rb), (i % chunks) * MIB as u64)
                    .expect("read");
                i += 1;
            })
        });
        g.throughput(Throughput::Elements(1));
        let mut small = vec![0u8; 1000];
        let span = size - 1000;
        g.bench_with_input(
            BenchmarkId::new("unaligned-1000B-write+read", sector),
            &sector,
            |b, _| {
                b.iter(|| {
                    data.write_at(black_box(&small), i * 7919 % span)
                        .expect("write");
                    data.read_at(black_box(&mut small), i * 104_729 % span)
                        .expect("read");
                    i += 1;
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, io);
criterion_main!(benches);

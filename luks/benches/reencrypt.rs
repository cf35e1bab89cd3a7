//! Criterion benchmark of offline LUKS2 reencryption (`luks::reencrypt`): a volume
//! of `REENCRYPT_MIB` MiB (default 64, aes-xts-plain64, 4096-byte sectors) is
//! reencrypted under a new volume key, once per resilience mode
//! (`reencrypt/<mode>`, throughput in data bytes). Each iteration is a whole run:
//! init (new keyslot and digest), every hotzone, the final header. The volume lives
//! in a temporary folder (`TMPDIR`), so syncs cost what that file system costs.
//! The side-by-side figures with cryptsetup are in `scripts/bench.sh` (f).
//!
//! Run with `cargo bench -p luks --bench reencrypt`.

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use luks::reencrypt::{reencrypt, KeyChange, ReencryptOptions, ResilienceKind};
use luks::{format, FormatOptions, PbkdfOptions, PbkdfType};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mib: u64 = std::env::var("REENCRYPT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().expect("temporary folder");
    let img = dir.path().join("re.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len((mib << 20) + (16 << 20)))
        .expect("create image");
    let fast = PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2);
    let opts = FormatOptions {
        sector_size: Some(4096),
        pbkdf: fast.clone(),
        ..Default::default()
    };
    format(&img, &opts, b"p").expect("format");
    let keys = [KeyChange {
        passphrase: b"p",
        new_passphrase: None,
        slot: None,
    }];
    let mut g = c.benchmark_group("reencrypt");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(mib << 20));
    for (name, r) in [
        ("checksum", ResilienceKind::Checksum),
        ("journal", ResilienceKind::Journal),
        ("none", ResilienceKind::None),
    ] {
        let o = ReencryptOptions {
            resilience: r,
            pbkdf: fast.clone(),
            ..Default::default()
        };
        g.bench_with_input(BenchmarkId::new(name, mib), &o, |b, o| {
            b.iter(|| reencrypt(&img, &keys, o, &mut |_| true).expect("reencrypt"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

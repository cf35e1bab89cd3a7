//! Measures the KDFs on this machine: PBKDF2 iterations per second for each
//! hash, Argon2id time for 64 MiB with 1 and 4 lanes, and the parameters
//! `--iter-time 1000` would pick. Run with `cargo run --release -p luks --example kdf_speed`.

use luks::{benchmark_kdf, Kdf};
use luks::{Argon2Variant, HashAlg, PbkdfType};
use std::time::Instant;

fn main() -> Result<(), luks::Error> {
    for hash in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512] {
        let iterations = 200_000;
        let k = Kdf::Pbkdf2 { hash, iterations };
        let t = Instant::now();
        k.derive(b"passphrase", &[7; 32], 64)?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "pbkdf2-{hash}: {:.0} iterations/s (64-byte output)",
            iterations as f64 / s
        );
    }
    for lanes in [1u32, 4] {
        let k = Kdf::argon2_checked(Argon2Variant::Argon2id, 4, 65536, lanes as u64)?;
        let t = Instant::now();
        k.derive(b"passphrase", &[7; 32], 64)?;
        println!(
            "argon2id t=4 m=64MiB p={lanes}: {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let k = benchmark_kdf(PbkdfType::Pbkdf2, HashAlg::Sha256, 1000, 64, 0, 0)?;
    println!(
        "--pbkdf pbkdf2 --iter-time 1000 -> {k:?} (benchmark took {:.2} s)",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let k = benchmark_kdf(PbkdfType::Argon2id, HashAlg::Sha256, 1000, 64, 262144, 2)?;
    println!("--pbkdf argon2id --iter-time 1000 --pbkdf-memory 262144 --pbkdf-parallel 2 -> {k:?} (benchmark took {:.2} s)", t.elapsed().as_secs_f64());
    Ok(())
}

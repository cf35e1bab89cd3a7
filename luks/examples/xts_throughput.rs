//! AES-256-XTS throughput of [`SectorCipher`] on 1 and N threads, in GB/s
//! (10^9 bytes per second, the unit `openssl speed` uses).
//!
//! ```text
//! cargo run --release -p luks --example xts_throughput -- [--seconds S] [--threads N]
//!     [--sector 512|4096] [--backend aws-lc|rustcrypto|all] [--op encrypt|decrypt|both]
//! ```
//!
//! Each thread works on its own 1 MiB buffer of whole sectors (the batch size
//! of the streaming code), calling `encrypt_sectors` / `decrypt_sectors`
//! repeatedly for `--seconds` (default 2). `--threads` defaults to the number
//! of CPUs; the 1-thread figure is always printed too. Every result is one
//! line `xts backend=.. op=.. sector=.. threads=.. gbps=.. cpu_gbps=..`
//! (parsed by scripts/bench.sh): `gbps` is bytes per wall-clock second of all
//! threads together, `cpu_gbps` bytes per second of CPU time the threads got
//! (from `/proc/thread-self/schedstat`; the per-core speed even when other
//! processes share the cores, comparable to `openssl speed`, which divides by
//! user CPU time).

use luks::{Backend, SectorCipher};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const BUF: usize = 1 << 20;

struct Args {
    seconds: f64,
    threads: usize,
    sector: usize,
    backends: Vec<Backend>,
    ops: Vec<bool>,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("xts_throughput: {msg}");
    eprintln!(
        "usage: xts_throughput [--seconds S] [--threads N] [--sector 512|4096] [--backend aws-lc|rustcrypto|all] [--op encrypt|decrypt|both]"
    );
    ExitCode::from(2)
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seconds: 2.0,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sector: 4096,
        backends: Backend::available().to_vec(),
        ops: vec![true, false],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = val()?.parse().map_err(|_| "bad --seconds".to_string())?,
            "--threads" => a.threads = val()?.parse().map_err(|_| "bad --threads".to_string())?,
            "--sector" => a.sector = val()?.parse().map_err(|_| "bad --sector".to_string())?,
            "--backend" => {
                let v = val()?;
                a.backends = match v.as_str() {
                    "all" => Backend::available().to_vec(),
                    name => vec![*Backend::available()
                        .iter()
                        .find(|b| b.name() == name)
                        .ok_or_else(|| format!("backend {name} is not in this build"))?],
                };
            }
            "--op" => {
                a.ops = match val()?.as_str() {
                    "encrypt" => vec![true],
                    "decrypt" => vec![false],
                    "both" => vec![true, false],
                    o => return Err(format!("unknown --op {o}")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(a.seconds > 0.0 && a.seconds <= 600.0) || a.threads == 0 || a.threads > 1024 {
        return Err("--seconds must be in (0, 600], --threads in 1..=1024".into());
    }
    Ok(a)
}

/// Nanoseconds this thread has run on a CPU, when Linux says.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Bytes per wall-clock second and per CPU second (if known) of `threads`
/// threads each running `cipher` on its own buffer.
fn measure(
    cipher: &SectorCipher,
    sector: usize,
    encrypt: bool,
    threads: usize,
    secs: f64,
) -> Result<(f64, Option<f64>), String> {
    let dur = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let results: Vec<Result<(u64, Option<u64>), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut buf = vec![(t as u8).wrapping_mul(37); BUF];
                    let mut done = 0u64;
                    let mut iv = (t as u64) << 40;
                    let cpu0 = thread_cpu_ns();
                    let begin = Instant::now();
                    while begin.elapsed() < dur {
                        let r = if encrypt {
                            cipher.encrypt_sectors(&mut buf, sector, iv, true)
                        } else {
                            cipher.decrypt_sectors(&mut buf, sector, iv, true)
                        };
                        r.map_err(|e| e.to_string())?;
                        iv = iv.wrapping_add((BUF / 512) as u64);
                        done += BUF as u64;
                    }
                    std::hint::black_box(&buf);
                    let cpu = cpu0.and_then(|a| thread_cpu_ns().map(|b| b.saturating_sub(a)));
                    Ok((done, cpu))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut total = 0u64;
    let mut cpu_ns = Some(0u64);
    for r in results {
        let (done, cpu) = r?;
        total += done;
        cpu_ns = cpu_ns.zip(cpu).map(|(a, b)| a + b);
    }
    let per_cpu = cpu_ns
        .filter(|&ns| ns > 0)
        .map(|ns| total as f64 / (ns as f64 / 1e9));
    Ok((total as f64 / elapsed, per_cpu))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let key: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(151).wrapping_add(7))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "# AES-256-XTS, {}-byte sectors, 1 MiB buffers, {} s per figure, {cpus} CPUs",
        args.sector, args.seconds
    );
    let mut thread_counts = vec![1];
    if args.threads > 1 {
        thread_counts.push(args.threads);
    }
    for &backend in &args.backends {
        let cipher = match SectorCipher::with_backend("aes", "xts-plain64", &key, backend) {
            Ok(c) => c,
            Err(e) => return usage(&e.to_string()),
        };
        for &encrypt in &args.ops {
            let op = if encrypt { "encrypt" } else { "decrypt" };
            let mut single = None;
            for &n in &thread_counts {
                let (bps, cpu_bps) = match measure(&cipher, args.sector, encrypt, n, args.seconds) {
                    Ok(b) => b,
                    Err(e) => return usage(&e),
                };
                let gbps = bps / 1e9;
                let scaling = single
                    .map(|s: f64| format!(" scaling={:.2}", gbps / s))
                    .unwrap_or_default();
                let cpu = cpu_bps
                    .map(|c| format!(" cpu_gbps={:.3}", c / 1e9))
                    .unwrap_or_default();
                println!(
                    "xts backend={backend} op={op} sector={} threads={n} gbps={gbps:.3}{cpu}{scaling}",
                    args.sector
                );
                single.get_or_insert(gbps);
            }
        }
    }
    ExitCode::SUCCESS
}

//! Measures the embedded store at several sizes; run by
//! `scripts/bench-store.sh` (not a test).
//!
//! `bench_store DIR SIZE...` fills a fresh store in DIR to each SIZE with
//! [`MockKeyManager::store_batch`] (10,000 secrets per transaction, spread
//! over 100 projects; the fill is not measured), then times, in the
//! measured project, `create_key`, `get`, `metadata`, `list` (first page
//! of 100) and `delete`, each call one durable transaction, and prints a
//! Markdown table row per size. `bench_store --fill PATH KEY N PROJECT`
//! only fills a store (for the CLI measurements).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keymgr_core::{Context, KeyManager, KeySpec, ListQuery, NewSecret, SecretKind};
use keymgr_mock::{MasterKey, MockKeyManager};

const OPS: usize = 300;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn fill(km: &MockKeyManager, n: usize, projects: &[Context]) {
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(10_000);
        // One project per batch, rotating.
        let ctx = &projects[(done / 10_000) % projects.len()];
        let batch = (0..chunk).map(|i| {
            NewSecret::new(SecretKind::Symmetric, vec![(done + i) as u8 | 1; 32])
                .named(format!("fill-{}", done + i))
        });
        km.store_batch(ctx, batch).unwrap();
        done += chunk;
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn time<T>(mut f: impl FnMut(usize) -> T, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            std::hint::black_box(f(i));
            t.elapsed()
        })
        .collect()
}

fn file_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--fill") {
        let (path, key, n, project) = (&args[1], &args[2], args[3].parse().unwrap(), &args[4]);
        let km =
            MockKeyManager::open_sealed(path, MasterKey::load_or_create_key_file(key).unwrap())
                .unwrap();
        fill(&km, n, &[Context::new(project.as_str(), "bench")]);
        return;
    }
    let dir = PathBuf::from(&args[0]);
    let projects: Vec<Context> = (0..100)
        .map(|p| Context::new(format!("p{p}"), "bench"))
        .collect();
    let ctx = &projects[0];
    println!("| secrets | fill s | open ms | create p50/p99 ms | get p50/p99 | metadata p50/p99 | list 100 p50/p99 | delete p50/p99 | bytes/secret |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for size in &args[1..] {
        let n: usize = size.parse().unwrap();
        let path = dir.join(format!("bench-{n}.store"));
        let _ = std::fs::remove_file(&path);
        let key = MasterKey::from_bytes([0x42; 32]);
        let km = MockKeyManager::open_sealed(&path, key).unwrap();
        let t = Instant::now();
        fill(&km, n, &projects);
        let fill_s = t.elapsed().as_secs_f64();
        drop(km);
        let bytes = file_bytes(&path);
        let mut open: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let km =
                    MockKeyManager::open_sealed(&path, MasterKey::from_bytes([0x42; 32])).unwrap();
                let e = t.elapsed();
                drop(km);
                e
            })
            .collect();
        let km = MockKeyManager::open_sealed(&path, MasterKey::from_bytes([0x42; 32])).unwrap();
        let rt = rt();
        let mut ids = Vec::new();
        let mut create = time(
            |_| ids.push(rt.block_on(km.create_key(ctx, &KeySpec::aes(256))).unwrap()),
            OPS,
        );
        let mut get = time(
            |i| rt.block_on(km.get(ctx, &ids[(i * 7) % OPS])).unwrap(),
            OPS,
        );
        let mut meta = time(
            |i| rt.block_on(km.metadata(ctx, &ids[(i * 11) % OPS])).unwrap(),
            OPS,
        );
        let mut list = time(
            |_| {
                rt.block_on(km.list(ctx, &ListQuery::all().page(0, 100)))
                    .unwrap()
            },
            OPS / 3,
        );
        let mut del = time(
            |i| rt.block_on(km.delete(ctx, &ids[i], false)).unwrap(),
            OPS,
        );
        println!(
            "| {n} | {fill_s:.1} | {:.2} | {:.2} / {:.2} | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
            pct(&mut open, 0.5),
            pct(&mut create, 0.5),
            pct(&mut create, 0.99),
            pct(&mut get, 0.5),
            pct(&mut get, 0.99),
            pct(&mut meta, 0.5),
            pct(&mut meta, 0.99),
            pct(&mut list, 0.5),
            pct(&mut list, 0.99),
            pct(&mut del, 0.5),
            pct(&mut del, 0.99),
            if n == 0 { "-".to_string() } else { (bytes / n as u64).to_string() },
        );
        drop(km);
        let _ = std::fs::remove_file(&path);
    }
}

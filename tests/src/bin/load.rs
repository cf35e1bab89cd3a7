//! The mixed-workload load run behind scripts/load.sh: for each backend
//! and concurrency, create 10%, store 10%, get 60%, metadata 10%, consumer
//! add/remove 5%, delete 5% for a time; per-operation p50/p99 and
//! throughput; an audit of every acknowledged secret; and the final line
//! `N ops, M errors, lost L, duplicated D`. Exits 1 when an audit is not
//! clean (lost, duplicated, wrong payload, or an error that is neither
//! transient nor a typed refusal such as a conflict).
//!
//! Usage: load [--backends mock,vault,barbican] [--seconds N]
//! [--concurrency 64[,8,1]] [--fault-at S --fault-cmd CMD --fault-backend B]
//! [--json FILE]. Servers come from the KEYMGR_TEST_* environment
//! (scripts/servers/*/ `start DIR` writes it); the Vault backend uses the
//! raft cluster (KEYMGR_TEST_VAULT_CLUSTER, with its CA) when there is one.

use std::io::Write as _;
use std::sync::Arc;

use keymgr::{Config, KeyManager};
use keymgr_test_support::env::{OpenStackEnv, VaultClusterEnv, VaultEnv};
use tests::mixed::{self, Fault, MixedReport, Op};

struct Args {
    backends: Vec<String>,
    seconds: f64,
    concurrency: Vec<usize>,
    fault: Option<(Fault, String)>,
    json: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: load [--backends mock,vault,barbican] [--seconds N] [--concurrency 64,8,1] \
         [--fault-at S --fault-cmd CMD --fault-backend B] [--json FILE]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        backends: vec!["mock".into(), "vault".into(), "barbican".into()],
        seconds: 10.0,
        concurrency: vec![64],
        fault: None,
        json: None,
    };
    let (mut at, mut cmd, mut fb) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--backends" => a.backends = v.split(',').map(str::to_string).collect(),
            "--seconds" => a.seconds = v.parse().unwrap_or_else(|_| usage()),
            "--concurrency" => {
                a.concurrency = v
                    .split(',')
                    .map(|c| c.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--fault-at" => at = Some(v.parse::<f64>().unwrap_or_else(|_| usage())),
            "--fault-cmd" => cmd = Some(v),
            "--fault-backend" => fb = Some(v),
            "--json" => a.json = Some(v),
            _ => usage(),
        }
    }
    if let (Some(at), Some(command)) = (at, cmd) {
        a.fault = Some((Fault { at, command }, fb.unwrap_or_default()));
    }
    a
}

fn vault() -> Option<Arc<dyn KeyManager>> {
    let mut c = Config::new(keymgr::BackendKind::Vault);
    // The raft cluster when there is one, else the dev server.
    let (url, token, ca) = match VaultClusterEnv::read() {
        Ok(cluster) => (cluster.nodes.join(","), cluster.root_token, cluster.ca_file),
        Err(_) => {
            let dev = VaultEnv::read().ok()?;
            (dev.addr, dev.root_token, None)
        }
    };
    let s = &mut c.section;
    s.insert("vault_url".into(), toml::Value::String(url));
    s.insert("root_token_id".into(), toml::Value::String(token));
    if let Some(ca) = ca {
        s.insert(
            "ssl_ca_crt_file".into(),
            toml::Value::String(ca.to_string_lossy().into_owned()),
        );
    }
    s.insert("timeout".into(), toml::Value::Float(30.0));
    s.insert("max_retries".into(), toml::Value::Integer(8));
    Some(keymgr::build(&c).expect("vault backend"))
}

fn backend(name: &str, state: &std::path::Path) -> Option<(Arc<dyn KeyManager>, keymgr::Context)> {
    match name {
        "mock" => {
            let mut c = Config::new(keymgr::BackendKind::Mock);
            c.section.insert(
                "path".into(),
                toml::Value::String(state.join("store.sealed").to_string_lossy().into()),
            );
            Some((
                keymgr::build(&c).expect("mock backend"),
                keymgr::Context::new("load", "tester"),
            ))
        }
        "vault" => Some((vault()?, keymgr::Context::new("load", "tester"))),
        "barbican" => {
            let env = OpenStackEnv::read().ok()?;
            let (mut c, _) = tests::barbican_config(&env, None, None);
            c.section.insert("timeout".into(), toml::Value::Integer(30));
            Some((
                keymgr::build(&c).expect("barbican backend"),
                keymgr::Context::new("", "tester"),
            ))
        }
        _ => usage(),
    }
}

fn ms(d: Option<std::time::Duration>) -> String {
    d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

fn print(name: &str, tasks: usize, r: &MixedReport) {
    println!(
        "== {name}, {tasks}-way, {:.1} s: {} ops, {:.0} ops/s",
        r.elapsed.as_secs_f64(),
        r.operations(),
        r.throughput()
    );
    println!(
        "   {:<9} {:>7} {:>9} {:>9} {:>9}",
        "op", "count", "p50 ms", "p99 ms", "ops/s"
    );
    for op in Op::ALL {
        let n = r.latencies.get(&op).map_or(0, Vec::len);
        println!(
            "   {:<9} {:>7} {:>9} {:>9} {:>9.0}",
            op.name(),
            n,
            ms(r.quantile(op, 0.5)),
            ms(r.quantile(op, 0.99)),
            n as f64 / r.elapsed.as_secs_f64().max(1e-9)
        );
    }
    if !r.errors.is_empty() {
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for e in &r.errors {
            *kinds
                .entry(format!("{:?}/{}", e.kind, e.op.name()))
                .or_default() += 1;
        }
        println!("   errors: {kinds:?}");
        for e in r.untyped().take(5) {
            println!(
                "   untyped error at {:.1} s ({}): {}",
                e.at,
                e.op.name(),
                e.text
            );
        }
    }
    if let Some(f) = &r.fault {
        let window = r
            .error_window(f.began)
            .map(|(a, b)| format!("errors from {a:.1} s to {b:.1} s ({:.1} s window)", b - a))
            .unwrap_or_else(|| "no errors after it".into());
        println!(
            "   fault: ran {:.1}-{:.1} s ({}); {window}",
            f.began,
            f.ended,
            if f.ok { "ok" } else { "FAILED" }
        );
    }
    println!(
        "   audit: {} live secrets read back; lost {}, duplicated {}, orphans {}, wrong payloads {}, deleted-but-listed {}",
        r.audited,
        r.lost.len(),
        r.duplicated.len(),
        r.orphans,
        r.wrong_payloads,
        r.resurrected
    );
}

fn json(name: &str, tasks: usize, r: &MixedReport) -> serde_json::Value {
    let ops: serde_json::Map<String, serde_json::Value> = Op::ALL
        .iter()
        .map(|&op| {
            let q = |x| r.quantile(op, x).map(|d| d.as_secs_f64() * 1e3);
            (
                op.name().to_string(),
                serde_json::json!({
                    "count": r.latencies.get(&op).map_or(0, Vec::len),
                    "p50_ms": q(0.5),
                    "p99_ms": q(0.99),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "client": "keymgr", "backend": name, "concurrency": tasks,
        "seconds": r.elapsed.as_secs_f64(), "ops": r.operations(),
        "throughput": r.throughput(), "errors": r.errors.len(),
        "lost": r.lost.len(), "duplicated": r.duplicated.len(), "orphans": r.orphans,
        "fault": r.fault.as_ref().map(|f| serde_json::json!({
            "began": f.began, "ended": f.ended, "ok": f.ok,
            "window": r.error_window(f.began),
        })),
        "operations": ops,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse();
    let state = std::env::temp_dir().join(format!("keymgr-load-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("state folder");
    let run_id = format!(
        "load-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let (mut ops, mut errors, mut lost, mut dup, mut clean) =
        (0usize, 0usize, 0usize, 0usize, true);
    for name in &args.backends {
        let Some((km, ctx)) = backend(name, &state) else {
            println!("== {name}: skipped, its server is not in the environment (KEYMGR_TEST_*)");
            continue;
        };
        for &tasks in &args.concurrency {
            let fault = args
                .fault
                .as_ref()
                .filter(|(_, b)| b.is_empty() || b == name)
                .map(|(f, _)| f.clone());
            let prefix = format!("{run_id}-{name}-{tasks}");
            let r = mixed::run(km.clone(), ctx.clone(), &prefix, tasks, args.seconds, fault).await;
            print(name, tasks, &r);
            if let Some(path) = &args.json {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("json file");
                writeln!(f, "{}", json(name, tasks, &r)).expect("json write");
            }
            println!(
                "{name} {tasks}-way: {} ops, {} errors, lost {}, duplicated {}",
                r.operations(),
                r.errors.len(),
                r.lost.len(),
                r.duplicated.len()
            );
            ops += r.operations();
            errors += r.errors.len();
            lost += r.lost.len();
            dup += r.duplicated.len();
            clean &= r.clean() && r.fault.as_ref().is_none_or(|f| f.ok);
        }
    }
    let _ = std::fs::remove_dir_all(&state);
    println!("{ops} ops, {errors} errors, lost {lost}, duplicated {dup}");
    if !clean {
        std::process::exit(1);
    }
}

//! A mixed workload at fixed concurrency, with latency per operation and an
//! end-of-run audit of every acknowledged secret (scripts/load.sh).
//!
//! The mix: create 10%, store 10%, get 60%, metadata 10%, consumer add and
//! remove 5%, delete 5%. Every secret a run makes carries a unique name
//! `PREFIX-TASK-SEQ`, so the audit can tell, from one listing of the
//! project, the acknowledged secrets that are missing (lost), the names that
//! exist twice (duplicated: one request made two secrets), and the secrets
//! whose create was never acknowledged (orphans: the answer was lost; the
//! orphan case SECURITY.md names).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keymgr::{
    Consumer, Context, ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, SecretId, SecretKind,
};
use zeroize::Zeroizing;

/// The operations of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `create_key` (AES-256).
    Create,
    /// `store` of 32 caller bytes.
    Store,
    /// `get` with payload, checked against what was stored.
    Get,
    /// `metadata`.
    Metadata,
    /// `add_consumer` then `remove_consumer` (each timed as one operation).
    Consumer,
    /// `delete`.
    Delete,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 6] = [
        Op::Create,
        Op::Store,
        Op::Get,
        Op::Metadata,
        Op::Consumer,
        Op::Delete,
    ];

    /// The operation's short name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Store => "store",
            Op::Get => "get",
            Op::Metadata => "metadata",
            Op::Consumer => "consumer",
            Op::Delete => "delete",
        }
    }

    /// The operation for a draw in 0..100, by the mix's weights.
    fn pick(draw: u64) -> Op {
        match draw % 100 {
            0..=9 => Op::Create,
            10..=19 => Op::Store,
            20..=79 => Op::Get,
            80..=89 => Op::Metadata,
            90..=94 => Op::Consumer,
            _ => Op::Delete,
        }
    }
}

/// A secret the run holds: its id, name and the bytes it must read back as
/// (unknown for a generated key until its first read).
struct Live {
    id: SecretId,
    payload: Known,
}

/// Bytes a secret must read back as, when known.
type Known = Option<Zeroizing<Vec<u8>>>;

/// What every task shares.
struct Shared {
    /// Acknowledged secrets not being deleted, by name.
    live: Mutex<Vec<(String, Live)>>,
    /// Names of acknowledged secrets and their ids (for the audit).
    acknowledged: Mutex<HashMap<String, SecretId>>,
    /// Ids whose delete was acknowledged.
    deleted: Mutex<HashSet<String>>,
    /// Next unique sequence number.
    seq: AtomicU64,
}

/// One error seen during the run.
#[derive(Clone, Debug)]
pub struct ErrorEvent {
    /// Seconds since the run started.
    pub at: f64,
    /// The operation.
    pub op: Op,
    /// Its kind.
    pub kind: ErrorKind,
    /// Whether it was a typed transient refusal (unavailable, timeout, 5xx, 429).
    pub transient: bool,
    /// Whether it was a typed answer the caller can act on: transient, or a
    /// definite refusal (conflict, not found, forbidden, unauthenticated).
    pub typed: bool,
    /// Its text.
    pub text: String,
}

/// A fault to inject during the run: a shell command run at a time.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Seconds after the load starts.
    pub at: f64,
    /// The command (`sh -c`), e.g. `bash scripts/servers/production/openstack.sh restart-postgres DIR`.
    pub command: String,
}

/// When an injected fault ran and how it ended.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// Seconds after the load started that the command began.
    pub began: f64,
    /// Seconds after the load started that it returned.
    pub ended: f64,
    /// Whether it exited 0.
    pub ok: bool,
}

/// The result of one run and its audit.
#[derive(Debug, Default)]
pub struct MixedReport {
    /// Latencies of successful operations.
    pub latencies: BTreeMap<Op, Vec<Duration>>,
    /// Errors in time order.
    pub errors: Vec<ErrorEvent>,
    /// Reads that returned other bytes than were stored.
    pub wrong_payloads: u64,
    /// Wall time of the load (audit excluded).
    pub elapsed: Duration,
    /// Acknowledged live secrets the audit checked.
    pub audited: usize,
    /// Acknowledged, never deleted, and missing or unreadable at the end.
    pub lost: Vec<String>,
    /// Names that exist more than once in the listing.
    pub duplicated: Vec<String>,
    /// Secrets of the run whose create was never acknowledged.
    pub orphans: usize,
    /// Acknowledged deletes whose secret is still listed.
    pub resurrected: usize,
    /// The injected fault, if one ran.
    pub fault: Option<FaultRecord>,
}

impl MixedReport {
    /// Successful operations.
    pub fn operations(&self) -> usize {
        self.latencies.values().map(Vec::len).sum()
    }

    /// Successful operations per second.
    pub fn throughput(&self) -> f64 {
        self.operations() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of `op`'s latencies.
    pub fn quantile(&self, op: Op, q: f64) -> Option<Duration> {
        let v = self.latencies.get(&op)?;
        if v.is_empty() {
            return None;
        }
        let mut v = v.clone();
        v.sort();
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    }

    /// Errors that were neither transient nor a definite typed refusal.
    pub fn untyped(&self) -> impl Iterator<Item = &ErrorEvent> {
        self.errors.iter().filter(|e| !e.typed)
    }

    /// Typed refusals that were not transient (e.g. a conflict).
    pub fn refusals(&self) -> impl Iterator<Item = &ErrorEvent> {
        self.errors.iter().filter(|e| e.typed && !e.transient)
    }

    /// First and last error at or after `from` seconds, if any.
    pub fn error_window(&self, from: f64) -> Option<(f64, f64)> {
        let mut it = self.errors.iter().filter(|e| e.at >= from);
        let first = it.next()?.at;
        let last = self
            .errors
            .iter()
            .filter(|e| e.at >= from)
            .map(|e| e.at)
            .fold(first, f64::max);
        Some((first, last))
    }

    /// Whether the audit found nothing lost, duplicated, wrong or untyped.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.wrong_payloads == 0
            && self.resurrected == 0
            && self.untyped().next().is_none()
    }
}

/// A small per-task random source (xorshift64*), seeded per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn is_transient(e: &keymgr::Error) -> bool {
    e.is_retryable() || matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
}

/// Runs the mix with `tasks` concurrent tasks for `seconds`, then audits.
/// Names start with `prefix` (unique per run). `seed` secrets are made
/// before the clock starts, so reads have something to read.
pub async fn run(
    km: Arc<dyn KeyManager>,
    ctx: Context,
    prefix: &str,
    tasks: usize,
    seconds: f64,
    fault: Option<Fault>,
) -> MixedReport {
    let shared = Arc::new(Shared {
        live: Mutex::new(Vec::new()),
        acknowledged: Mutex::new(HashMap::new()),
        deleted: Mutex::new(HashSet::new()),
        seq: AtomicU64::new(0),
    });
    // Seed: one secret per task, at most 64, not timed.
    let mut seeds = Vec::new();
    for t in 0..tasks.clamp(1, 64) {
        let (km, ctx, shared, prefix) =
            (km.clone(), ctx.clone(), shared.clone(), prefix.to_string());
        seeds.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
            for _ in 0..5 {
                if do_store(&*km, &ctx, &shared, &prefix, t, &mut rng)
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    for s in seeds {
        s.await.expect("seed task panicked");
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let injector = fault.map(|f| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(f.at));
            let began = start.elapsed().as_secs_f64();
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(&f.command)
                .status()
                .is_ok_and(|s| s.success());
            FaultRecord {
                began,
                ended: start.elapsed().as_secs_f64(),
                ok,
            }
        })
    });
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (km, ctx, shared, prefix) =
            (km.clone(), ctx.clone(), shared.clone(), prefix.to_string());
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ ((t as u64 + 1) << 17) ^ now_nanos());
            let mut lat: BTreeMap<Op, Vec<Duration>> = BTreeMap::new();
            let mut errors = Vec::new();
            let mut wrong = 0u64;
            while Instant::now() < deadline {
                let op = Op::pick(rng.next());
                let began = Instant::now();
                let r = one(&*km, &ctx, &shared, &prefix, t, op, &mut rng).await;
                match r {
                    Ok(Outcome::Done) => lat.entry(op).or_default().push(began.elapsed()),
                    Ok(Outcome::Wrong) => {
                        wrong += 1;
                        lat.entry(op).or_default().push(began.elapsed())
                    }
                    Ok(Outcome::Skipped) => {}
                    Err(e) => {
                        errors.push(ErrorEvent {
                            at: start.elapsed().as_secs_f64(),
                            op,
                            kind: e.kind(),
                            transient: is_transient(&e),
                            typed: is_transient(&e)
                                || matches!(
                                    e.kind(),
                                    ErrorKind::Conflict
                                        | ErrorKind::NotFound
                                        | ErrorKind::Forbidden
                                        | ErrorKind::Unauthenticated
                                ),
                            text: e.to_string(),
                        });
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (lat, errors, wrong)
        }));
    }
    let mut report = MixedReport::default();
    for h in handles {
        let (lat, errors, wrong) = h.await.expect("load task panicked");
        for (op, v) in lat {
            report.latencies.entry(op).or_default().extend(v);
        }
        report.errors.extend(errors);
        report.wrong_payloads += wrong;
    }
    report.elapsed = start.elapsed();
    if let Some(i) = injector {
        report.fault = Some(
            tokio::task::spawn_blocking(move || i.join().expect("fault injector panicked"))
                .await
                .expect("fault injector join"),
        );
    }
    report
        .errors
        .sort_by(|a, b| a.at.partial_cmp(&b.at).unwrap_or(std::cmp::Ordering::Equal));
    audit(&*km, &ctx, &shared, prefix, &mut report).await;
    report
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

enum Outcome {
    Done,
    Wrong,
    Skipped,
}

async fn do_store(
    km: &dyn KeyManager,
    ctx: &Context,
    shared: &Shared,
    prefix: &str,
    task: usize,
    rng: &mut Rng,
) -> keymgr::Result<()> {
    let name = format!(
        "{prefix}-{task}-{}",
        shared.seq.fetch_add(1, Ordering::Relaxed)
    );
    let mut bytes = Zeroizing::new(Vec::with_capacity(32));
    for _ in 0..4 {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    let secret = NewSecret::new(SecretKind::Opaque, bytes.to_vec()).named(name.clone());
    let id = km.store(ctx, secret).await?;
    acknowledge(shared, name, id, Some(bytes));
    Ok(())
}

fn acknowledge(shared: &Shared, name: String, id: SecretId, payload: Option<Zeroizing<Vec<u8>>>) {
    shared
        .acknowledged
        .lock()
        .unwrap()
        .insert(name.clone(), id.clone());
    shared
        .live
        .lock()
        .unwrap()
        .push((name, Live { id, payload }));
}

/// A random live secret's id and known payload (the secret stays live).
fn pick_live(shared: &Shared, rng: &mut Rng) -> Option<(usize, SecretId, Known)> {
    let live = shared.live.lock().unwrap();
    if live.is_empty() {
        return None;
    }
    let i = (rng.next() % live.len() as u64) as usize;
    Some((i, live[i].1.id.clone(), live[i].1.payload.clone()))
}

/// Takes a random live secret out of the pool (for exclusive use).
fn take_live(shared: &Shared, rng: &mut Rng) -> Option<(String, Live)> {
    let mut live = shared.live.lock().unwrap();
    if live.is_empty() {
        return None;
    }
    let i = (rng.next() % live.len() as u64) as usize;
    Some(live.swap_remove(i))
}

/// Whether a NotFound for `id` is explained by a delete (not a loss).
fn was_deleted(shared: &Shared, id: &SecretId) -> bool {
    shared.deleted.lock().unwrap().contains(id.as_str())
        || !shared
            .live
            .lock()
            .unwrap()
            .iter()
            .any(|(_, l)| l.id.as_str() == id.as_str())
}

async fn one(
    km: &dyn KeyManager,
    ctx: &Context,
    shared: &Shared,
    prefix: &str,
    task: usize,
    op: Op,
    rng: &mut Rng,
) -> keymgr::Result<Outcome> {
    match op {
        Op::Create => {
            let name = format!(
                "{prefix}-{task}-{}",
                shared.seq.fetch_add(1, Ordering::Relaxed)
            );
            let id = km
                .create_key(ctx, &KeySpec::aes(256).named(name.clone()))
                .await?;
            acknowledge(shared, name, id, None);
            Ok(Outcome::Done)
        }
        Op::Store => do_store(km, ctx, shared, prefix, task, rng)
            .await
            .map(|()| Outcome::Done),
        Op::Get => {
            let Some((_, id, want)) = pick_live(shared, rng) else {
                return Ok(Outcome::Skipped);
            };
            let got = match km.get(ctx, &id).await {
                Ok(s) => s,
                // A consumer or delete task took it meanwhile and deleted it.
                Err(e) if e.kind() == ErrorKind::NotFound && was_deleted(shared, &id) => {
                    return Ok(Outcome::Skipped)
                }
                Err(e) => return Err(e),
            };
            match want {
                Some(w) if got.payload.expose() != w.as_slice() => Ok(Outcome::Wrong),
                Some(_) => Ok(Outcome::Done),
                None => {
                    // A generated key: remember its bytes at the first read.
                    let mut live = shared.live.lock().unwrap();
                    if let Some((_, l)) =
                        live.iter_mut().find(|(_, l)| l.id.as_str() == id.as_str())
                    {
                        if l.payload.is_none() {
                            l.payload = Some(Zeroizing::new(got.payload.expose().to_vec()));
                        } else if l.payload.as_deref().map(Vec::as_slice)
                            != Some(got.payload.expose())
                        {
                            return Ok(Outcome::Wrong);
                        }
                    }
                    Ok(Outcome::Done)
                }
            }
        }
        Op::Metadata => {
            let Some((_, id, _)) = pick_live(shared, rng) else {
                return Ok(Outcome::Skipped);
            };
            match km.metadata(ctx, &id).await {
                Ok(_) => Ok(Outcome::Done),
                Err(e) if e.kind() == ErrorKind::NotFound && was_deleted(shared, &id) => {
                    Ok(Outcome::Skipped)
                }
                Err(e) => Err(e),
            }
        }
        Op::Consumer => {
            let Some((name, l)) = take_live(shared, rng) else {
                return Ok(Outcome::Skipped);
            };
            // Barbican keeps resource ids in 36 characters (a volume UUID).
            let consumer = Consumer::new("load", "volume", format!("{:016x}", rng.next()));
            let r = async {
                km.add_consumer(ctx, &l.id, &consumer).await?;
                // Removal is idempotent for the audit: retry it so the
                // secret is left without consumers (delete refuses those).
                let mut tries = 0;
                loop {
                    match km.remove_consumer(ctx, &l.id, &consumer).await {
                        Ok(()) => return Ok(()),
                        Err(e) if e.kind() == ErrorKind::NotFound && tries > 0 => return Ok(()),
                        Err(e) if is_transient(&e) && tries < 20 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            .await;
            shared.live.lock().unwrap().push((name, l));
            r.map(|()| Outcome::Done)
        }
        Op::Delete => {
            let Some((name, l)) = take_live(shared, rng) else {
                return Ok(Outcome::Skipped);
            };
            match km.delete(ctx, &l.id, false).await {
                Ok(()) => {
                    shared
                        .deleted
                        .lock()
                        .unwrap()
                        .insert(l.id.as_str().to_string());
                    Ok(Outcome::Done)
                }
                Err(e) => {
                    // Not acknowledged: whether it is gone is unknown.
                    // Retry a transient failure until the answer is known
                    // (NotFound after a lost answer means it was deleted);
                    // after a definite refusal the secret stays live.
                    let mut gone = false;
                    if is_transient(&e) {
                        for _ in 0..50 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            match km.delete(ctx, &l.id, false).await {
                                Ok(()) => gone = true,
                                Err(e2) if e2.kind() == ErrorKind::NotFound => gone = true,
                                Err(e2) if is_transient(&e2) => continue,
                                Err(_) => {}
                            }
                            break;
                        }
                    }
                    if gone {
                        shared
                            .deleted
                            .lock()
                            .unwrap()
                            .insert(l.id.as_str().to_string());
                    } else {
                        shared.live.lock().unwrap().push((name, l));
                    }
                    Err(e)
                }
            }
        }
    }
}

/// Lists the project, reads back every acknowledged live secret, and
/// cleans up everything the run made.
async fn audit(
    km: &dyn KeyManager,
    ctx: &Context,
    shared: &Shared,
    prefix: &str,
    report: &mut MixedReport,
) {
    let query = ListQuery::all().page(0, 100);
    let listing = retry_transient(|| km.list_all(ctx, &query))
        .await
        .expect("the audit could not list the project");
    let mut by_name: HashMap<String, Vec<SecretId>> = HashMap::new();
    let dash = format!("{prefix}-");
    for m in &listing {
        if let Some(n) = m.name.as_deref().filter(|n| n.starts_with(&dash)) {
            by_name.entry(n.to_string()).or_default().push(m.id.clone());
        }
    }
    let acknowledged = shared.acknowledged.lock().unwrap().clone();
    let deleted = shared.deleted.lock().unwrap().clone();
    let live: Vec<(String, SecretId, Known)> = shared
        .live
        .lock()
        .unwrap()
        .iter()
        .map(|(n, l)| (n.clone(), l.id.clone(), l.payload.clone()))
        .collect();
    for (name, ids) in &by_name {
        if ids.len() > 1 {
            report.duplicated.push(name.clone());
        }
        if !acknowledged.contains_key(name) {
            report.orphans += 1;
        }
        if ids.iter().any(|i| deleted.contains(i.as_str())) {
            report.resurrected += 1;
        }
    }
    report.audited = live.len();
    // Read back every live acknowledged secret, 16 at a time.
    let mut lost = Vec::new();
    let by_name_ref = &by_name;
    for chunk in live.chunks(16) {
        let checks = chunk.iter().map(|(name, id, want)| async move {
            let listed = by_name_ref
                .get(name)
                .is_some_and(|ids| ids.iter().any(|i| i.as_str() == id.as_str()));
            let read = retry_transient(|| km.get(ctx, id)).await;
            let ok = match (&read, want) {
                (Ok(s), Some(w)) => s.payload.expose() == w.as_slice(),
                (Ok(_), None) => true,
                (Err(_), _) => false,
            };
            (listed && ok).then_some(()).ok_or_else(|| name.clone())
        });
        for r in futures::future::join_all(checks).await {
            if let Err(name) = r {
                lost.push(name);
            }
        }
    }
    report.lost = lost;
    // Clean up: everything of the run still listed.
    let mut all: Vec<SecretId> = by_name.into_values().flatten().collect();
    all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    for chunk in all.chunks(16) {
        let dels = chunk.iter().map(|id| async move {
            let _ = retry_transient(|| km.delete(ctx, id, true)).await;
        });
        futures::future::join_all(dels).await;
    }
}

/// Calls `f` until it is not a transient failure (at most 30 s of tries).
async fn retry_transient<T, F, Fut>(mut f: F) -> keymgr::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = keymgr::Result<T>>,
{
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Err(e) if is_transient(&e) && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            r => return r,
        }
    }
}

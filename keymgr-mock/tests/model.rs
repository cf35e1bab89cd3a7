//! Model-based test: random operation sequences across two projects run
//! against the backend and against a plain `HashMap` model; every result
//! (including the kind of every error) must agree.
//!
//! Run against a memory store, and against a sealed file with two managers
//! on the same file (operations alternate between them) that are also
//! closed and reopened mid-sequence.

use std::collections::HashMap;
use std::path::PathBuf;

use keymgr_core::{
    Consumer, Context, ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, Result, SecretId,
    SecretKind, SecretMetadata,
};
use keymgr_mock::{MasterKey, MockKeyManager, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use proptest::prelude::*;

const BITS: [u32; 6] = [128, 192, 256, 512, 100, 0];

#[derive(Debug, Clone)]
enum IdRef {
    /// The n-th id returned so far (modulo their number).
    Known(usize),
    /// An id never stored.
    Unknown,
}

#[derive(Debug, Clone)]
enum Op {
    Store {
        p: usize,
        kind: usize,
        payload: Vec<u8>,
        name: Option<u8>,
    },
    CreateKey {
        p: usize,
        bits: usize,
        name: Option<u8>,
    },
    Get {
        p: usize,
        r: IdRef,
    },
    Metadata {
        p: usize,
        r: IdRef,
    },
    Delete {
        p: usize,
        r: IdRef,
        force: bool,
    },
    AddConsumer {
        p: usize,
        r: IdRef,
        c: u8,
    },
    RemoveConsumer {
        p: usize,
        r: IdRef,
        c: u8,
    },
    ListConsumers {
        p: usize,
        r: IdRef,
    },
    Clone {
        p: usize,
        r: IdRef,
    },
    List {
        p: usize,
        kind: Option<usize>,
        name: Option<u8>,
        offset: usize,
        limit: Option<usize>,
    },
    /// Sealed runs: close every manager and open the file again.
    Reopen,
    /// Sealed runs: use the other manager on the same file from now on.
    Switch,
}

fn id_ref() -> impl Strategy<Value = IdRef> {
    prop_oneof![9 => any::<usize>().prop_map(IdRef::Known), 1 => Just(IdRef::Unknown)]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => proptest::collection::vec(any::<u8>(), 1..40),
        4 => "[a-z0-9 ✓]{1,12}".prop_map(String::into_bytes),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0usize..2;
    prop_oneof![
        6 => (p.clone(), 0usize..6, payload(), proptest::option::of(0u8..3))
            .prop_map(|(p, kind, payload, name)| Op::Store { p, kind, payload, name }),
        2 => (p.clone(), 0usize..BITS.len(), proptest::option::of(0u8..3))
            .prop_map(|(p, bits, name)| Op::CreateKey { p, bits, name }),
        3 => (p.clone(), id_ref()).prop_map(|(p, r)| Op::Get { p, r }),
        1 => (p.clone(), id_ref()).prop_map(|(p, r)| Op::Metadata { p, r }),
        3 => (p.clone(), id_ref(), any::<bool>()).prop_map(|(p, r, force)| Op::Delete { p, r, force }),
        3 => (p.clone(), id_ref(), 0u8..3).prop_map(|(p, r, c)| Op::AddConsumer { p, r, c }),
        2 => (p.clone(), id_ref(), 0u8..3).prop_map(|(p, r, c)| Op::RemoveConsumer { p, r, c }),
        1 => (p.clone(), id_ref()).prop_map(|(p, r)| Op::ListConsumers { p, r }),
        2 => (p.clone(), id_ref()).prop_map(|(p, r)| Op::Clone { p, r }),
        3 => (
            p,
            proptest::option::of(0usize..6),
            proptest::option::of(0u8..3),
            0usize..6,
            proptest::option::of(0usize..4),
        )
            .prop_map(|(p, kind, name, offset, limit)| Op::List { p, kind, name, offset, limit }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Switch),
    ]
}

fn ctx(p: usize) -> Context {
    Context::new(format!("proj-{p}"), format!("user-{p}"))
}

fn consumer(c: u8) -> Consumer {
    Consumer::new(format!("svc{}", c % 2), "volume", format!("res-{c}"))
}

fn name(n: Option<u8>) -> Option<String> {
    n.map(|n| format!("name-{n}"))
}

/// What the model knows about a secret.
#[derive(Debug, Clone)]
struct Entry {
    project: usize,
    seq: u64,
    kind: SecretKind,
    name: Option<String>,
    algorithm: Option<String>,
    bit_length: Option<u32>,
    mode: Option<String>,
    payload: Vec<u8>,
    consumers: Vec<Consumer>,
}

#[derive(Default)]
struct Model {
    entries: HashMap<SecretId, Entry>,
    next_seq: u64,
}

impl Model {
    fn visible(&self, p: usize, id: &SecretId) -> std::result::Result<&Entry, ErrorKind> {
        match self.entries.get(id) {
            Some(e) if e.project == p => Ok(e),
            _ => Err(ErrorKind::NotFound),
        }
    }

    fn insert(&mut self, id: SecretId, mut e: Entry) {
        e.seq = self.next_seq;
        self.next_seq += 1;
        assert!(
            self.entries.insert(id.clone(), e).is_none(),
            "backend reused id {id}"
        );
    }
}

fn check_meta(m: &SecretMetadata, id: &SecretId, e: &Entry) {
    assert_eq!(m.id, *id);
    assert_eq!(m.kind, e.kind, "kind of {id}");
    assert_eq!(m.name, e.name, "name of {id}");
    assert_eq!(m.algorithm, e.algorithm, "algorithm of {id}");
    assert_eq!(m.bit_length, e.bit_length, "bit length of {id}");
    assert_eq!(m.mode, e.mode, "mode of {id}");
    assert_eq!(m.consumers, e.consumers, "consumers of {id}");
    assert!(m.created.is_some(), "created of {id}");
    assert_eq!(m.expiration, None);
}

/// The backend's error kind must be the model's.
fn agree<T: std::fmt::Debug>(op: &Op, got: &Result<T>, want: std::result::Result<(), ErrorKind>) {
    match (got, want) {
        (Ok(_), Ok(())) => {}
        (Err(e), Err(k)) => assert_eq!(e.kind(), k, "{op:?}: backend said {e}"),
        (got, want) => panic!("{op:?}: backend {got:?}, model {want:?}"),
    }
}

/// The managers under test: one in memory, or two on one sealed file.
struct Backends {
    sealed: Option<(PathBuf, [u8; 32])>,
    managers: Vec<MockKeyManager>,
    current: usize,
}

impl Backends {
    fn memory() -> Self {
        Backends {
            sealed: None,
            managers: vec![MockKeyManager::new()],
            current: 0,
        }
    }

    fn sealed(path: PathBuf) -> Self {
        let key = [0x11u8; 32];
        let managers = (0..2)
            .map(|_| MockKeyManager::open_sealed(&path, MasterKey::from_bytes(key)).unwrap())
            .collect();
        Backends {
            sealed: Some((path, key)),
            managers,
            current: 0,
        }
    }

    fn km(&self) -> &MockKeyManager {
        &self.managers[self.current]
    }

    fn reopen(&mut self) {
        if let Some((path, key)) = &self.sealed {
            self.managers.clear();
            for _ in 0..2 {
                self.managers
                    .push(MockKeyManager::open_sealed(path, MasterKey::from_bytes(*key)).unwrap());
            }
        }
    }

    fn switch(&mut self) {
        self.current = (self.current + 1) % self.managers.len();
    }
}

async fn run(ops: Vec<Op>, mut b: Backends) {
    let mut model = Model::default();
    let mut ids: Vec<SecretId> = Vec::new();
    let pick = |ids: &Vec<SecretId>, r: &IdRef| -> SecretId {
        match r {
            IdRef::Known(n) if !ids.is_empty() => ids[n % ids.len()].clone(),
            _ => SecretId::new_random(),
        }
    };
    for op in &ops {
        match op {
            Op::Reopen => b.reopen(),
            Op::Switch => b.switch(),
            Op::Store {
                p,
                kind,
                payload,
                name: n,
            } => {
                let kind = SecretKind::ALL[*kind];
                let ns = NewSecret {
                    name: name(*n),
                    mode: (kind == SecretKind::Symmetric).then(|| "xts".to_string()),
                    ..NewSecret::new(kind, payload.clone())
                };
                // Keys and certificates must be DER or PEM (kept as DER).
                let normalized = keymgr_core::encoding::normalize_der(
                    kind,
                    &keymgr_core::Payload::from(payload.clone()),
                )
                .ok();
                let valid = !payload.is_empty()
                    && normalized.is_some()
                    && (kind != SecretKind::Passphrase || std::str::from_utf8(payload).is_ok());
                let got = b.km().store(&ctx(*p), ns.clone()).await;
                agree(
                    op,
                    &got,
                    if valid {
                        Ok(())
                    } else {
                        Err(ErrorKind::InvalidInput)
                    },
                );
                if let Ok(id) = got {
                    ids.push(id.clone());
                    model.insert(
                        id,
                        Entry {
                            project: *p,
                            seq: 0,
                            kind,
                            name: ns.name,
                            algorithm: ns.algorithm,
                            bit_length: ns.bit_length,
                            mode: ns.mode,
                            payload: normalized.map(|p| p.expose().to_vec()).unwrap_or_default(),
                            consumers: Vec::new(),
                        },
                    );
                }
            }
            Op::CreateKey { p, bits, name: n } => {
                let bits = BITS[*bits];
                let spec = KeySpec {
                    name: name(*n),
                    ..KeySpec::aes(bits)
                };
                let valid = matches!(bits, 128 | 192 | 256 | 512);
                let got = b.km().create_key(&ctx(*p), &spec).await;
                agree(
                    op,
                    &got,
                    if valid {
                        Ok(())
                    } else {
                        Err(ErrorKind::InvalidInput)
                    },
                );
                if let Ok(id) = got {
                    // The bytes are random: learn them once, then hold the
                    // backend to them.
                    let s = b.km().get(&ctx(*p), &id).await.unwrap();
                    assert_eq!(s.payload.len() as u32 * 8, bits);
                    ids.push(id.clone());
                    model.insert(
                        id,
                        Entry {
                            project: *p,
                            seq: 0,
                            kind: SecretKind::Symmetric,
                            name: spec.name,
                            algorithm: Some("aes".into()),
                            bit_length: Some(bits),
                            mode: None,
                            payload: s.payload.expose().to_vec(),
                            consumers: Vec::new(),
                        },
                    );
                }
            }
            Op::Get { p, r } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id);
                let got = b.km().get(&ctx(*p), &id).await;
                agree(op, &got, want.map(|_| ()));
                if let (Ok(s), Ok(e)) = (&got, want) {
                    check_meta(&s.metadata, &id, e);
                    assert_eq!(s.payload.expose(), &e.payload[..], "payload of {id}");
                }
            }
            Op::Metadata { p, r } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id);
                let got = b.km().metadata(&ctx(*p), &id).await;
                agree(op, &got, want.map(|_| ()));
                if let (Ok(m), Ok(e)) = (&got, want) {
                    check_meta(m, &id, e);
                }
            }
            Op::ListConsumers { p, r } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id);
                let got = b.km().list_consumers(&ctx(*p), &id).await;
                agree(op, &got, want.map(|_| ()));
                if let (Ok(c), Ok(e)) = (&got, want) {
                    assert_eq!(c, &e.consumers);
                }
            }
            Op::Delete { p, r, force } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id).and_then(|e| {
                    if !force && !e.consumers.is_empty() {
                        Err(ErrorKind::Conflict)
                    } else {
                        Ok(())
                    }
                });
                let got = b.km().delete(&ctx(*p), &id, *force).await;
                agree(op, &got, want);
                if want.is_ok() {
                    model.entries.remove(&id);
                }
            }
            Op::AddConsumer { p, r, c } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id).map(|_| ());
                let got = b.km().add_consumer(&ctx(*p), &id, &consumer(*c)).await;
                agree(op, &got, want);
                if want.is_ok() {
                    let e = model.entries.get_mut(&id).unwrap();
                    if !e.consumers.contains(&consumer(*c)) {
                        e.consumers.push(consumer(*c));
                    }
                }
            }
            Op::RemoveConsumer { p, r, c } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id).and_then(|e| {
                    if e.consumers.contains(&consumer(*c)) {
                        Ok(())
                    } else {
                        Err(ErrorKind::NotFound)
                    }
                });
                let got = b.km().remove_consumer(&ctx(*p), &id, &consumer(*c)).await;
                agree(op, &got, want);
                if want.is_ok() {
                    model
                        .entries
                        .get_mut(&id)
                        .unwrap()
                        .consumers
                        .retain(|x| x != &consumer(*c));
                }
            }
            Op::Clone { p, r } => {
                let id = pick(&ids, r);
                let want = model.visible(*p, &id).cloned();
                let got = b.km().clone_secret(&ctx(*p), &id).await;
                agree(op, &got, want.as_ref().map(|_| ()).map_err(|k| *k));
                if let (Ok(new), Ok(mut e)) = (got, want) {
                    assert_ne!(new, id);
                    e.consumers.clear();
                    ids.push(new.clone());
                    model.insert(new, e);
                }
            }
            Op::List {
                p,
                kind,
                name: n,
                offset,
                limit,
            } => {
                let q = ListQuery {
                    kind: kind.map(|k| SecretKind::ALL[k]),
                    name: name(*n),
                    limit: *limit,
                    offset: *offset,
                };
                let mut hits: Vec<(&SecretId, &Entry)> = model
                    .entries
                    .iter()
                    .filter(|(_, e)| {
                        e.project == *p
                            && q.kind.is_none_or(|k| k == e.kind)
                            && q.name.as_ref().is_none_or(|n| e.name.as_ref() == Some(n))
                    })
                    .collect();
                hits.sort_by_key(|(_, e)| e.seq);
                let lim = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
                let want: Vec<SecretId> = hits
                    .iter()
                    .skip(*offset)
                    .take(lim)
                    .map(|(id, _)| (*id).clone())
                    .collect();
                let end = offset + want.len();
                let page = b.km().list(&ctx(*p), &q).await.unwrap();
                let got: Vec<SecretId> = page.secrets.iter().map(|m| m.id.clone()).collect();
                assert_eq!(got, want, "{op:?}");
                assert_eq!(page.total, Some(hits.len()), "{op:?} total");
                assert_eq!(
                    page.next_offset,
                    (end < hits.len()).then_some(end),
                    "{op:?} next_offset"
                );
                for m in &page.secrets {
                    check_meta(m, &m.id, &model.entries[&m.id]);
                }
            }
        }
    }
    // Finally every secret of both projects agrees, through a fresh
    // manager for sealed runs.
    b.reopen();
    for p in 0..2 {
        let all = b.km().list_all(&ctx(p), &ListQuery::all()).await.unwrap();
        let want = model.entries.values().filter(|e| e.project == p).count();
        assert_eq!(all.len(), want, "project {p} at the end");
        for m in all {
            let e = &model.entries[&m.id];
            let s = b.km().get(&ctx(p), &m.id).await.unwrap();
            check_meta(&s.metadata, &m.id, e);
            assert_eq!(s.payload.expose(), &e.payload[..]);
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn memory_backend_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        block_on(run(ops, Backends::memory()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn sealed_backend_with_two_managers_and_reopens_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let dir = tempfile::tempdir().unwrap();
        block_on(run(ops, Backends::sealed(dir.path().join("store.sealed"))));
    }
}

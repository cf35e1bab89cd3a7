//! The backend conformance suite: one behaviour, every backend.
//!
//! Each backend's tests start a live instance (a real server where there is
//! one) and call [`run_conformance`] with two contexts in two different
//! projects. The suite panics with a message naming the broken rule, like
//! any test assertion. It creates only secrets with names unique to the run
//! and deletes what it created.
//!
//! ```no_run
//! # async fn demo(km: &dyn keymgr_core::KeyManager) {
//! use keymgr_core::{testkit, Context};
//! let a = Context::new("project-a", "alice");
//! let b = Context::new("project-b", "bob");
//! testkit::run_conformance(km, &a, &b).await;
//! # }
//! ```

use std::collections::BTreeSet;
use std::fmt::Debug;

use crate::{
    Consumer, Context, ErrorKind, KeyManager, KeySpec, ListQuery, NewSecret, Result, SecretId,
    SecretKind,
};

/// What a backend supports, where backends legitimately differ.
#[derive(Debug, Clone)]
pub struct Options {
    /// The backend keeps consumers and refuses a delete with consumers
    /// unless forced (Barbican microversion 1.2, mock, vault).
    pub consumers: bool,
    /// The kinds to round-trip (all by default).
    pub kinds: Vec<SecretKind>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            consumers: true,
            kinds: SecretKind::ALL.to_vec(),
        }
    }
}

/// Runs the whole suite with default [`Options`].
pub async fn run_conformance(km: &dyn KeyManager, a: &Context, b: &Context) {
    run_conformance_with(km, a, b, &Options::default()).await
}

/// Runs the whole suite.
pub async fn run_conformance_with(km: &dyn KeyManager, a: &Context, b: &Context, opts: &Options) {
    assert_ne!(
        a.project_id, b.project_id,
        "the conformance suite needs two contexts in different projects"
    );
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut created = Vec::new();
    create_key_rules(km, a, &run, &mut created).await;
    payload_round_trips(km, a, &run, opts, &mut created).await;
    store_refusals(km, a).await;
    pem_becomes_der(km, a, &mut created).await;
    listing(km, a, &run, &mut created).await;
    isolation(km, a, b, &run, &mut created).await;
    clone_independence(km, a, &run).await;
    if opts.consumers {
        consumers(km, a, &run).await;
    }
    deleted_ids_are_not_found(km, a, &run).await;
    for id in created {
        let _ = km.delete(a, &id, true).await;
    }
}

/// Payloads that look empty, or are binary, per kind.
pub fn sample_payloads(kind: SecretKind) -> Vec<Vec<u8>> {
    let mut key = vec![0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x0f;
    }
    key[0] = 0;
    key[31] = 0xff;
    match kind {
        SecretKind::Symmetric => vec![key, vec![0u8; 16], vec![0xff; 64]],
        SecretKind::Opaque => vec![
            vec![0],
            vec![0, 0, 0, 0],
            b"\n".to_vec(),
            (0..=255u8).collect(),
        ],
        SecretKind::Passphrase => vec![
            "correct horse battery staple".into(),
            "pässwörd ✓ with\ttab".into(),
            "0".into(),
        ],
        // DER, as Castellan's objects hold them (throwaway test vectors).
        SecretKind::Private => vec![
            include_bytes!("../testdata/rsa1024.pkcs8.der").to_vec(),
            include_bytes!("../testdata/p256.pkcs8.der").to_vec(),
        ],
        SecretKind::Public => vec![
            include_bytes!("../testdata/rsa1024.spki.der").to_vec(),
            include_bytes!("../testdata/p256.spki.der").to_vec(),
        ],
        SecretKind::Certificate => vec![include_bytes!("../testdata/p256.cert.der").to_vec()],
    }
}

fn expect_err<T: Debug>(res: Result<T>, allowed: &[ErrorKind], what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected an error of kind {allowed:?}, got Ok({v:?})"),
        Err(e) => assert!(
            allowed.contains(&e.kind()),
            "{what}: expected an error of kind {allowed:?}, got {:?}: {e}",
            e.kind()
        ),
    }
}

/// A returned id is in the backend's own form: `parse_id` gives it back,
/// and a UUID id given in the other UUID form reaches the same secret.
async fn id_forms(km: &dyn KeyManager, a: &Context, id: &SecretId) {
    let again = km
        .parse_id(id.as_str())
        .unwrap_or_else(|e| panic!("parse_id of the returned id {id}: {e}"));
    assert_eq!(&again, id, "parse_id gives a returned id back unchanged");
    if let Some(uuid) = id.to_uuid() {
        let other = if id.as_str().contains('-') {
            uuid.simple().to_string()
        } else {
            uuid.hyphenated().to_string()
        };
        let parsed = km
            .parse_id(&other)
            .unwrap_or_else(|e| panic!("parse_id of {other}: {e}"));
        assert_eq!(
            &parsed, id,
            "the other UUID form parses to the backend's own"
        );
        let generic = SecretId::parse(&other).expect("generic parse");
        let m = km
            .metadata(a, &generic)
            .await
            .unwrap_or_else(|e| panic!("metadata by the other UUID form {other}: {e}"));
        assert_eq!(&m.id, id, "metadata reports the id in the backend's form");
    }
}

async fn create_key_rules(
    km: &dyn KeyManager,
    a: &Context,
    run: &str,
    created: &mut Vec<SecretId>,
) {
    for bits in [128u32, 192, 256, 512] {
        let spec = KeySpec::aes(bits).named(format!("ck-{run}-{bits}"));
        let id = km
            .create_key(a, &spec)
            .await
            .unwrap_or_else(|e| panic!("create_key aes-{bits}: {e}"));
        created.push(id.clone());
        let s = km
            .get(a, &id)
            .await
            .unwrap_or_else(|e| panic!("get created key: {e}"));
        id_forms(km, a, &id).await;
        assert_eq!(
            s.payload.len(),
            bits as usize / 8,
            "created aes-{bits} key length"
        );
        assert_eq!(s.kind(), SecretKind::Symmetric, "created key kind");
        assert_eq!(s.metadata.bit_length, Some(bits), "created key bit length");
        assert_eq!(
            s.metadata
                .algorithm
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("aes"),
            "created key algorithm"
        );
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(spec.name.as_deref().unwrap())
        );
        assert!(
            s.payload.expose().iter().any(|b| *b != 0),
            "created key is all zeros"
        );
    }
    let k1 = km
        .create_key(a, &KeySpec::aes(256))
        .await
        .expect("create_key");
    let k2 = km
        .create_key(a, &KeySpec::aes(256))
        .await
        .expect("create_key");
    created.extend([k1.clone(), k2.clone()]);
    assert_ne!(k1, k2, "two created keys share an id");
    let (p1, p2) = (km.get(a, &k1).await.unwrap(), km.get(a, &k2).await.unwrap());
    assert_ne!(
        p1.payload.expose(),
        p2.payload.expose(),
        "two created keys share bytes"
    );

    let mut des = KeySpec::aes(256);
    des.algorithm = "des".into();
    expect_err(
        km.create_key(a, &des).await,
        &[ErrorKind::InvalidInput],
        "create_key des",
    );
    for bits in [0u32, 100, 384, 1024] {
        expect_err(
            km.create_key(a, &KeySpec::aes(bits)).await,
            &[ErrorKind::InvalidInput],
            &format!("create_key aes-{bits}"),
        );
    }
}

async fn payload_round_trips(
    km: &dyn KeyManager,
    a: &Context,
    run: &str,
    opts: &Options,
    created: &mut Vec<SecretId>,
) {
    for &kind in &opts.kinds {
        for (i, bytes) in sample_payloads(kind).into_iter().enumerate() {
            let name = format!("rt-{run}-{kind}-{i}");
            let id = km
                .store(a, NewSecret::new(kind, bytes.clone()).named(&name))
                .await
                .unwrap_or_else(|e| panic!("store {kind} #{i}: {e}"));
            created.push(id.clone());
            let s = km
                .get(a, &id)
                .await
                .unwrap_or_else(|e| panic!("get {kind} #{i}: {e}"));
            assert_eq!(
                s.payload.expose(),
                &bytes[..],
                "payload of {kind} #{i} changed in a round trip"
            );
            assert_eq!(s.kind(), kind, "kind of {kind} #{i}");
            assert_eq!(s.id(), &id, "id of {kind} #{i}");
            assert_eq!(
                s.metadata.name.as_deref(),
                Some(name.as_str()),
                "name of {kind} #{i}"
            );
            let m = km
                .metadata(a, &id)
                .await
                .unwrap_or_else(|e| panic!("metadata {kind}: {e}"));
            assert_eq!((m.id, m.kind, m.name.clone()), (id, kind, Some(name)));
            if kind == SecretKind::Symmetric {
                assert_eq!(
                    m.bit_length,
                    Some(bytes.len() as u32 * 8),
                    "symmetric bit length"
                );
            }
        }
    }
}

async fn store_refusals(km: &dyn KeyManager, a: &Context) {
    expect_err(
        km.store(a, NewSecret::new(SecretKind::Opaque, Vec::new()))
            .await,
        &[ErrorKind::InvalidInput],
        "store of an empty payload",
    );
    expect_err(
        km.store(
            a,
            NewSecret::new(SecretKind::Passphrase, vec![0xff, 0xfe, 0x00]),
        )
        .await,
        &[ErrorKind::InvalidInput],
        "store of a passphrase that is not UTF-8",
    );
    for kind in [
        SecretKind::Private,
        SecretKind::Public,
        SecretKind::Certificate,
    ] {
        expect_err(
            km.store(a, NewSecret::new(kind, b"not DER, not PEM".to_vec()))
                .await,
            &[ErrorKind::InvalidInput],
            &format!("store of a {kind} that is neither DER nor PEM"),
        );
    }
}

/// A PEM given on store is kept as the DER Castellan's objects hold.
async fn pem_becomes_der(km: &dyn KeyManager, a: &Context, created: &mut Vec<SecretId>) {
    for kind in [
        SecretKind::Private,
        SecretKind::Public,
        SecretKind::Certificate,
    ] {
        let der = sample_payloads(kind).remove(0);
        let pem = crate::encoding::to_pem(kind, &crate::Payload::from(der.clone())).expect("PEM");
        let id = km
            .store(a, NewSecret::new(kind, pem.expose().to_vec()))
            .await
            .unwrap_or_else(|e| panic!("store of a {kind} as PEM: {e}"));
        created.push(id.clone());
        let got = km
            .get(a, &id)
            .await
            .unwrap_or_else(|e| panic!("get {kind}: {e}"));
        assert_eq!(
            got.payload.expose(),
            &der[..],
            "a {kind} stored as PEM comes back as its DER"
        );
    }
}

async fn listing(km: &dyn KeyManager, a: &Context, run: &str, created: &mut Vec<SecretId>) {
    let name = format!("list-{run}");
    let mut ids = BTreeSet::new();
    for i in 0..5u8 {
        let kind = if i < 3 {
            SecretKind::Opaque
        } else {
            SecretKind::Passphrase
        };
        let payload = if kind == SecretKind::Opaque {
            vec![i; 8]
        } else {
            format!("pass-{i}").into_bytes()
        };
        let id = km
            .store(a, NewSecret::new(kind, payload).named(&name))
            .await
            .expect("store for listing");
        created.push(id.clone());
        ids.insert(id);
    }
    let all: BTreeSet<_> = km
        .list_all(a, &ListQuery::all().name(&name))
        .await
        .expect("list_all by name")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        all, ids,
        "list_all by name returns exactly the secrets with that name"
    );

    let paged = km
        .list_all(a, &ListQuery::all().name(&name).page(0, 2))
        .await
        .expect("list_all with page size 2");
    let paged_ids: BTreeSet<_> = paged.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        paged.len(),
        5,
        "paging by 2 returns every secret exactly once"
    );
    assert_eq!(paged_ids, ids, "paging by 2 returns the same secrets");

    let first = km
        .list(a, &ListQuery::all().name(&name).page(0, 2))
        .await
        .expect("list page");
    assert_eq!(first.secrets.len(), 2, "a page of limit 2 has 2 secrets");
    assert!(
        first.next_offset.is_some(),
        "a first page of 2 out of 5 has a next page"
    );
    let last = km
        .list(a, &ListQuery::all().name(&name).page(4, 2))
        .await
        .expect("list last page");
    assert_eq!(
        last.secrets.len(),
        1,
        "the page at offset 4 of 5 has 1 secret"
    );

    let pass: BTreeSet<_> = km
        .list_all(
            a,
            &ListQuery::all().name(&name).kind(SecretKind::Passphrase),
        )
        .await
        .expect("list by kind")
        .into_iter()
        .map(|m| {
            assert_eq!(m.kind, SecretKind::Passphrase, "kind filter");
            m.id
        })
        .collect();
    assert_eq!(pass.len(), 2, "kind filter keeps the 2 passphrases");
    let none = km
        .list_all(a, &ListQuery::all().name(format!("no-such-{run}")))
        .await
        .expect("list with no match");
    assert!(none.is_empty(), "a name nobody used lists nothing");
}

async fn isolation(
    km: &dyn KeyManager,
    a: &Context,
    b: &Context,
    run: &str,
    created: &mut Vec<SecretId>,
) {
    let name = format!("iso-{run}");
    let id = km
        .store(
            a,
            NewSecret::new(SecretKind::Symmetric, vec![0x42; 32]).named(&name),
        )
        .await
        .expect("store for isolation");
    created.push(id.clone());
    let hidden = [ErrorKind::NotFound, ErrorKind::Forbidden];
    expect_err(km.get(b, &id).await, &hidden, "project B get of A's secret");
    expect_err(
        km.metadata(b, &id).await,
        &hidden,
        "project B metadata of A's secret",
    );
    expect_err(
        km.clone_secret(b, &id).await,
        &hidden,
        "project B clone of A's secret",
    );
    expect_err(
        km.delete(b, &id, true).await,
        &hidden,
        "project B forced delete of A's secret",
    );
    expect_err(
        km.add_consumer(b, &id, &Consumer::new("svc", "thing", "x"))
            .await,
        &hidden,
        "project B add_consumer on A's secret",
    );
    let listed = km
        .list_all(b, &ListQuery::all().name(&name))
        .await
        .expect("project B list");
    assert!(
        listed.iter().all(|m| m.id != id),
        "project B lists A's secret"
    );
    let still = km
        .get(a, &id)
        .await
        .expect("A's secret survives B's attempts");
    assert_eq!(still.payload.expose(), &[0x42; 32]);
}

async fn clone_independence(km: &dyn KeyManager, a: &Context, run: &str) {
    let name = format!("clone-{run}");
    let mut ns = NewSecret::new(SecretKind::Symmetric, vec![7u8; 64]).named(&name);
    ns.mode = Some("xts".into());
    let orig = km.store(a, ns).await.expect("store for clone");
    let copy = km.clone_secret(a, &orig).await.expect("clone_secret");
    assert_ne!(orig, copy, "a clone has a new id");
    let (o, c) = (
        km.get(a, &orig).await.unwrap(),
        km.get(a, &copy).await.unwrap(),
    );
    assert_eq!(o.payload.expose(), c.payload.expose(), "clone payload");
    assert_eq!(
        (
            c.metadata.kind,
            c.metadata.name.clone(),
            c.metadata.algorithm.clone(),
            c.metadata.bit_length
        ),
        (
            o.metadata.kind,
            o.metadata.name.clone(),
            o.metadata.algorithm.clone(),
            o.metadata.bit_length
        ),
        "a clone keeps kind, name, algorithm and bit length"
    );
    km.delete(a, &copy, false).await.expect("delete clone");
    assert_eq!(
        km.get(a, &orig)
            .await
            .expect("original after clone deleted")
            .payload
            .expose(),
        &[7u8; 64]
    );
    let copy2 = km.clone_secret(a, &orig).await.expect("second clone");
    km.delete(a, &orig, false).await.expect("delete original");
    assert_eq!(
        km.get(a, &copy2)
            .await
            .expect("clone after original deleted")
            .payload
            .expose(),
        &[7u8; 64]
    );
    km.delete(a, &copy2, false)
        .await
        .expect("delete second clone");
}

async fn consumers(km: &dyn KeyManager, a: &Context, run: &str) {
    let id = km
        .store(
            a,
            NewSecret::new(SecretKind::Opaque, b"consumed".to_vec()).named(format!("cons-{run}")),
        )
        .await
        .expect("store for consumers");
    let c1 = Consumer::new("cinder", "volume", format!("vol-{run}"));
    let c2 = Consumer::new("glance", "image", format!("img-{run}"));
    km.add_consumer(a, &id, &c1).await.expect("add consumer");
    km.add_consumer(a, &id, &c1)
        .await
        .expect("adding the same consumer again is not an error");
    km.add_consumer(a, &id, &c2)
        .await
        .expect("add second consumer");
    let mut listed = km.list_consumers(a, &id).await.expect("list consumers");
    listed.sort();
    let mut want = vec![c1.clone(), c2.clone()];
    want.sort();
    assert_eq!(listed, want, "consumers listed once each");
    let mut meta = km.metadata(a, &id).await.expect("metadata").consumers;
    meta.sort();
    assert_eq!(meta, want, "metadata shows the consumers");

    expect_err(
        km.delete(a, &id, false).await,
        &[ErrorKind::Conflict],
        "delete of a consumed secret without force",
    );
    km.get(a, &id)
        .await
        .expect("a refused delete leaves the secret");

    km.remove_consumer(a, &id, &c1)
        .await
        .expect("remove consumer");
    expect_err(
        km.remove_consumer(a, &id, &c1).await,
        &[ErrorKind::NotFound],
        "removing an absent consumer",
    );
    assert_eq!(
        km.list_consumers(a, &id).await.expect("list consumers"),
        vec![c2.clone()]
    );
    expect_err(
        km.delete(a, &id, false).await,
        &[ErrorKind::Conflict],
        "delete with one consumer left",
    );
    km.delete(a, &id, true)
        .await
        .expect("forced delete of a consumed secret");
    expect_err(
        km.get(a, &id).await,
        &[ErrorKind::NotFound],
        "get after forced delete",
    );
}

async fn deleted_ids_are_not_found(km: &dyn KeyManager, a: &Context, run: &str) {
    let id = km
        .store(
            a,
            NewSecret::new(SecretKind::Opaque, b"gone".to_vec()).named(format!("gone-{run}")),
        )
        .await
        .expect("store for delete");
    km.delete(a, &id, false).await.expect("delete");
    let nf = [ErrorKind::NotFound];
    expect_err(km.get(a, &id).await, &nf, "get of a deleted id");
    expect_err(km.metadata(a, &id).await, &nf, "metadata of a deleted id");
    expect_err(
        km.delete(a, &id, false).await,
        &nf,
        "delete of a deleted id",
    );
    expect_err(km.clone_secret(a, &id).await, &nf, "clone of a deleted id");
    expect_err(
        km.add_consumer(a, &id, &Consumer::new("s", "t", "r")).await,
        &nf,
        "add_consumer on a deleted id",
    );
    let never = SecretId::new_random();
    expect_err(km.get(a, &never).await, &nf, "get of an id never stored");
}

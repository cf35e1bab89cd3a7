//! Writes the version-1 sealed-file fixture of `tests/fixtures/` with the
//! code of this commit (the last one that writes version 1). Run once:
//! `cargo run -p keymgr-mock --example make_v1_fixture -- keymgr-mock/tests/fixtures`.

use std::io::Write;
use std::path::PathBuf;

use keymgr_core::{
    Consumer, Context, KeyManager, KeySpec, ListQuery, NewSecret, OffsetDateTime, SecretKind,
};
use keymgr_mock::{MasterKey, MockKeyManager};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("output directory"));
    let path = dir.join("v1-store.sealed");
    let key = dir.join("v1-store.key");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&key);
    let km = MockKeyManager::open_sealed(&path, MasterKey::load_or_create_key_file(&key).unwrap())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let a = Context::new("project-a", "alice");
        let b = Context::new("project-b", "bob");
        let exp = OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap(); // 2100-01-01
        let k1 = km
            .create_key(&a, &KeySpec::aes(256).named("vol-1"))
            .await
            .unwrap();
        km.add_consumer(&a, &k1, &Consumer::new("cinder", "volume", "v-1"))
            .await
            .unwrap();
        km.add_consumer(&a, &k1, &Consumer::new("nova", "instance", "i-9"))
            .await
            .unwrap();
        km.create_key(&a, &KeySpec::aes(512).named("xts").with_mode("xts"))
            .await
            .unwrap();
        for (i, kind) in SecretKind::ALL.into_iter().enumerate() {
            let mut payload: Vec<u8> = (0..(17 + 31 * i)).map(|j| (j * 7 + i) as u8).collect();
            if kind == SecretKind::Passphrase {
                payload = "pass phrase ünïcode".as_bytes().to_vec();
            }
            let mut s = NewSecret::new(kind, payload).named(format!("{}-{i}", kind.as_str()));
            if i % 2 == 0 {
                s.algorithm = Some("alg".into());
                s.bit_length = Some(8 * (i as u32 + 1));
            }
            if i == 3 {
                s.expiration = Some(exp);
            }
            let ctx = if i % 3 == 2 { &b } else { &a };
            km.store(ctx, s).await.unwrap();
        }
        let unnamed = km
            .store(&b, NewSecret::new(SecretKind::Opaque, vec![0u8; 1]))
            .await
            .unwrap();
        km.add_consumer(&b, &unnamed, &Consumer::new("glance", "image", "img-é"))
            .await
            .unwrap();
        let gone = km
            .store(&a, NewSecret::new(SecretKind::Opaque, vec![1u8; 3]).named("deleted"))
            .await
            .unwrap();
        km.delete(&a, &gone, false).await.unwrap();
        km.clone_secret(&a, &k1).await.unwrap();

        // The description: every secret, in listing order per project.
        let mut out = std::fs::File::create(dir.join("v1-store.expected")).unwrap();
        writeln!(out, "# project\tid\tkind\tname\talgorithm\tbit_length\tmode\tcreated_unix_nanos\texpiration_unix_nanos\tconsumers(service/type/id;...)\tpayload_hex").unwrap();
        for ctx in [&a, &b] {
            for m in km.list_all(ctx, &ListQuery::all()).await.unwrap() {
                let s = km.get(ctx, &m.id).await.unwrap();
                let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                let consumers: Vec<String> = m
                    .consumers
                    .iter()
                    .map(|c| format!("{}/{}/{}", c.service, c.resource_type, c.resource_id))
                    .collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    ctx.project_id,
                    m.id,
                    m.kind.as_str(),
                    o(&m.name),
                    o(&m.algorithm),
                    m.bit_length.map_or("-".into(), |b| b.to_string()),
                    o(&m.mode),
                    m.created.unwrap().unix_timestamp_nanos(),
                    m.expiration.map_or("-".into(), |e| e.unix_timestamp_nanos().to_string()),
                    if consumers.is_empty() { "-".into() } else { consumers.join(";") },
                    hex(s.payload.expose()),
                )
                .unwrap();
            }
        }
    });
    drop(km);
    let mut lock = path.clone().into_os_string();
    lock.push(".lock");
    let _ = std::fs::remove_file(lock);
}

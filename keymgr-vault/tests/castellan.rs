//! Records written the way Castellan writes them read here, and the reverse.

mod common;

use keymgr_test_support::env::VaultEnv;

use keymgr_core::{Context, KeyManager, NewSecret, SecretId, SecretKind};
use keymgr_vault::{castellan_record, VaultKeyManager};
use reqwest::Method;

#[tokio::test]
async fn castellan_records_read_here_on_kv2_and_kv1() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    for (mount, version) in [("secret".to_string(), 2u8), (env.kv1_mount.clone(), 1)] {
        let mut cfg = common::token_config(&env);
        cfg.kv_mountpoint = mount.clone();
        cfg.kv_version = version;
        let km = VaultKeyManager::new(cfg).unwrap();
        let ctx = Context::new("any-project", "u");

        // As Castellan 5.8's create_key writes: uuid4().hex id, the id as
        // the name, `created` as integer seconds.
        let id_hex = uuid::Uuid::new_v4().simple().to_string();
        let key = [0u8, 1, 2, 0xfe, 0xff, 0x10, 0x0f, 0x80];
        let body = castellan_record(
            SecretKind::Symmetric,
            &key,
            Some("AES"),
            Some(64),
            Some(&id_hex),
            Some(1_700_000_000),
            version,
        );
        let path = if version == 2 {
            format!("{mount}/data/{id_hex}")
        } else {
            format!("{mount}/{id_hex}")
        };
        let (st, _) = raw.call(Method::POST, &path, Some(body)).await;
        assert!(st == 200 || st == 204, "raw write status {st}");

        let id = SecretId::parse(&id_hex).unwrap();
        let s = km
            .get(&ctx, &id)
            .await
            .expect("a Castellan record reads here");
        assert_eq!(s.payload.expose(), &key);
        assert_eq!(s.kind(), SecretKind::Symmetric);
        assert_eq!(s.metadata.algorithm.as_deref(), Some("AES"));
        assert_eq!(s.metadata.bit_length, Some(64));
        assert_eq!(s.metadata.name.as_deref(), Some(id_hex.as_str()));
        assert_eq!(
            s.metadata.created.map(|t| t.unix_timestamp()),
            Some(1_700_000_000)
        );

        // Each kind Castellan knows.
        for kind in SecretKind::ALL {
            let id_hex = uuid::Uuid::new_v4().simple().to_string();
            let payload = b"castellan \x00 bytes".to_vec();
            let path = if version == 2 {
                format!("{mount}/data/{id_hex}")
            } else {
                format!("{mount}/{id_hex}")
            };
            let body = castellan_record(kind, &payload, None, None, Some("n"), None, version);
            raw.call(Method::POST, &path, Some(body)).await;
            let s = km
                .get(&ctx, &SecretId::parse(&id_hex).unwrap())
                .await
                .unwrap();
            assert_eq!((s.kind(), s.payload.expose().to_vec()), (kind, payload));
            km.delete(&ctx, s.id(), false).await.unwrap();
        }
        km.delete(&ctx, &id, false).await.unwrap();
    }
}

#[tokio::test]
async fn records_written_here_are_in_castellans_layout() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let km = VaultKeyManager::new(common::token_config(&env)).unwrap();
    let ctx = Context::new("p1", "u");
    let payload = vec![0u8, 0xaa, 0x05, 0xff];
    let mut ns = NewSecret::new(SecretKind::Symmetric, payload.clone()).named("vol-key");
    ns.algorithm = Some("AES".into());
    let id = km.store(&ctx, ns).await.unwrap();
    let (st, body) = raw
        .call(
            Method::GET,
            &format!("secret/data/{}", id.to_simple_uuid().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let rec = &body["data"]["data"];
    // Exactly what Castellan's get() reads.
    assert_eq!(rec["type"], "symmetric");
    assert_eq!(rec["value"], "00aa05ff");
    assert_eq!(rec["algorithm"], "AES");
    assert_eq!(rec["bit_length"], 32);
    assert_eq!(rec["name"], "vol-key");
    assert!(
        rec["created"].is_i64(),
        "created is POSIX seconds: {}",
        rec["created"]
    );
    assert_eq!(rec["keymgr_project"], "p1");
    // The id is the 32-hex-digit form Castellan uses.
    assert_eq!(
        id.as_str().len(),
        32,
        "Vault ids are Castellan's 32 hex digits: {id}"
    );

    // Check-and-set: a second create at the same id is refused by Vault.
    let (st, _) = raw
        .call(
            Method::POST,
            &format!("secret/data/{}", id.to_simple_uuid().unwrap()),
            Some(serde_json::json!({"options": {"cas": 0}, "data": {"x": 1}})),
        )
        .await;
    assert_eq!(st, 400, "cas 0 refuses to overwrite");
    // Delete removes every version (metadata gone).
    km.delete(&ctx, &id, false).await.unwrap();
    let (st, _) = raw
        .call(
            Method::GET,
            &format!("secret/metadata/{}", id.to_simple_uuid().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 404, "no version left after delete");
}

/// Reads a record the way Castellan's `get` does: `data` (and `data.data`
/// on KV v2), `type` looked up in its type table, `value` unhexlified.
fn castellan_get(body: &serde_json::Value, kv_version: u8) -> (String, Vec<u8>) {
    let mut rec = &body["data"];
    if kv_version > 1 {
        rec = &rec["data"];
    }
    let ty = rec["type"].as_str().expect("type").to_string();
    assert!(
        [
            "opaque",
            "passphrase",
            "private",
            "public",
            "symmetric",
            "certificate"
        ]
        .contains(&ty.as_str()),
        "Castellan knows type {ty}"
    );
    for field in ["algorithm", "bit_length", "name", "created"] {
        assert!(rec.get(field).is_some(), "Castellan reads `{field}`");
    }
    let value = hex::decode(rec["value"].as_str().expect("value")).expect("hex value");
    (ty, value)
}

#[tokio::test]
async fn every_kind_written_here_reads_as_castellan_reads_it_with_a_kv_path() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let kv1 = env.kv1_mount.clone();
    for (mount, version) in [("secret".to_string(), 2u8), (kv1, 1)] {
        let mut cfg = common::token_config(&env);
        cfg.kv_mountpoint = mount.clone();
        cfg.kv_version = version;
        cfg.kv_path = Some("castellan/compat".into());
        let km = VaultKeyManager::new(cfg).unwrap();
        let ctx = Context::new("p1", "u");
        for kind in SecretKind::ALL {
            let bytes = keymgr_core::testkit::sample_payloads(kind).remove(0);
            let id = km
                .store(&ctx, NewSecret::new(kind, bytes.clone()))
                .await
                .unwrap();
            // Castellan's URL: {mount}/data/{kv_path}/{id} (v2), {mount}/{kv_path}/{id} (v1).
            let path = if version == 2 {
                format!(
                    "{mount}/data/castellan/compat/{}",
                    id.to_simple_uuid().unwrap()
                )
            } else {
                format!("{mount}/castellan/compat/{}", id.to_simple_uuid().unwrap())
            };
            let (st, body) = raw.call(Method::GET, &path, None).await;
            assert_eq!(st, 200, "{path}");
            assert_eq!(castellan_get(&body, version), (kind.to_string(), bytes));
            // Castellan's list: LIST of {mount}/metadata/{kv_path} (v2) shows the id.
            let list_path = if version == 2 {
                format!("{mount}/metadata/castellan/compat?list=true")
            } else {
                format!("{mount}/castellan/compat?list=true")
            };
            let (_, listed) = raw.call(Method::GET, &list_path, None).await;
            assert!(listed["data"]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == &serde_json::json!(id.to_simple_uuid().unwrap().to_string())));
            km.delete(&ctx, &id, true).await.unwrap();
        }
    }
}

#[tokio::test]
async fn castellan_deletes_and_destroyed_versions_are_not_found_and_not_listed() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let km = VaultKeyManager::new(common::token_config(&env)).unwrap();
    let ctx = Context::new("p-del", "u");
    let name = format!("castellan-del-{}", uuid::Uuid::new_v4().simple());
    let a = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, vec![1u8; 4]).named(&name),
        )
        .await
        .unwrap();
    let b = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Opaque, vec![2u8; 4]).named(&name),
        )
        .await
        .unwrap();
    // Castellan's delete: DELETE of the data path (soft-deletes the latest version).
    let (st, _) = raw
        .call(
            Method::DELETE,
            &format!("secret/data/{}", a.to_simple_uuid().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 204);
    // Destroy: the other 404 shape (version destroyed).
    let (st, _) = raw
        .call(
            Method::POST,
            &format!("secret/destroy/{}", b.to_simple_uuid().unwrap()),
            Some(serde_json::json!({"versions": [1]})),
        )
        .await;
    assert_eq!(st, 204);
    for id in [a.clone(), b.clone()] {
        let e = km.get(&ctx, &id).await.unwrap_err();
        assert_eq!(e.kind(), keymgr_core::ErrorKind::NotFound, "{e}");
    }
    let listed = km
        .list_all(&ctx, &keymgr_core::ListQuery::all().name(&name))
        .await
        .unwrap();
    assert!(
        listed.is_empty(),
        "deleted records are not listed: {listed:?}"
    );
    // Our delete of what Castellan soft-deleted still removes every version.
    for id in [a.clone(), b.clone()] {
        raw.call(
            Method::DELETE,
            &format!("secret/metadata/{}", id.to_simple_uuid().unwrap()),
            None,
        )
        .await;
    }
}

#[tokio::test]
async fn records_without_an_owner_are_shared_unless_configured_otherwise() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let raw = common::Raw::new(&env);
    let id_hex = uuid::Uuid::new_v4().simple().to_string();
    let body = castellan_record(SecretKind::Passphrase, b"legacy", None, None, None, None, 2);
    let (st, _) = raw
        .call(Method::POST, &format!("secret/data/{id_hex}"), Some(body))
        .await;
    assert_eq!(st, 200);
    let id = SecretId::parse(&id_hex).unwrap();
    let shared = VaultKeyManager::new(common::token_config(&env)).unwrap();
    for project in ["p1", "p2"] {
        let s = shared.get(&Context::new(project, "u"), &id).await.unwrap();
        assert_eq!(s.payload.expose(), b"legacy");
        assert_eq!(s.metadata.name, None);
        assert_eq!(s.metadata.created, None);
    }
    let mut cfg = common::token_config(&env);
    cfg.legacy_records_visible = false;
    let strict = VaultKeyManager::new(cfg).unwrap();
    let e = strict.get(&Context::new("p1", "u"), &id).await.unwrap_err();
    assert_eq!(e.kind(), keymgr_core::ErrorKind::NotFound, "{e}");
    shared
        .delete(&Context::new("p1", "u"), &id, false)
        .await
        .unwrap();
}

//! Records written the way Castellan writes them read here, and the reverse.

mod common;

use keymgr_core::{Context, KeyManager, NewSecret, SecretId, SecretKind};
use keymgr_vault::{castellan_record, VaultKeyManager};
use reqwest::Method;

#[tokio::test]
async fn castellan_records_read_here_on_kv2_and_kv1() {
    let Some(raw) = common::Raw::dev() else {
        return;
    };
    for (mount, version) in [
        ("secret".to_string(), 2u8),
        (common::env("KEYMGR_TEST_VAULT_KV1_MOUNT").unwrap(), 1),
    ] {
        let mut cfg = common::dev_token_config().unwrap();
        cfg.kv_mountpoint = mount.clone();
        cfg.kv_version = version;
        let km = VaultKeyManager::new(cfg).unwrap();
        let ctx = Context::new("any-project", "u");

        // As Castellan's create_key: uuid4().hex, name defaulted to an int time.
        let id_hex = uuid::Uuid::new_v4().simple().to_string();
        let key = [0u8, 1, 2, 0xfe, 0xff, 0x10, 0x0f, 0x80];
        let body = castellan_record(
            SecretKind::Symmetric,
            &key,
            Some("AES"),
            Some(64),
            None,
            Some(1_700_000_000),
            version,
        );
        let mut body = body;
        if version == 2 {
            body["data"]["name"] = serde_json::json!(1_700_000_000);
        } else {
            body["name"] = serde_json::json!(1_700_000_000);
        }
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
        assert_eq!(s.metadata.name.as_deref(), Some("1700000000"));
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
            km.delete(&ctx, &s.id(), false).await.unwrap();
        }
        km.delete(&ctx, &id, false).await.unwrap();
    }
}

#[tokio::test]
async fn records_written_here_are_in_castellans_layout() {
    let Some(raw) = common::Raw::dev() else {
        return;
    };
    let km = VaultKeyManager::new(common::dev_token_config().unwrap()).unwrap();
    let ctx = Context::new("p1", "u");
    let payload = vec![0u8, 0xaa, 0x05, 0xff];
    let mut ns = NewSecret::new(SecretKind::Symmetric, payload.clone()).named("vol-key");
    ns.algorithm = Some("AES".into());
    let id = km.store(&ctx, ns).await.unwrap();
    let (st, body) = raw
        .call(Method::GET, &format!("secret/data/{}", id.simple()), None)
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
    assert_eq!(id.simple().len(), 32);

    // Check-and-set: a second create at the same id is refused by Vault.
    let (st, _) = raw
        .call(
            Method::POST,
            &format!("secret/data/{}", id.simple()),
            Some(serde_json::json!({"options": {"cas": 0}, "data": {"x": 1}})),
        )
        .await;
    assert_eq!(st, 400, "cas 0 refuses to overwrite");
    // Delete removes every version (metadata gone).
    km.delete(&ctx, &id, false).await.unwrap();
    let (st, _) = raw
        .call(
            Method::GET,
            &format!("secret/metadata/{}", id.simple()),
            None,
        )
        .await;
    assert_eq!(st, 404, "no version left after delete");
}

//! Castellan itself (the Python library, in the test virtualenv) reads
//! what keymgr writes, and keymgr reads what Castellan writes, on KV v2 and
//! KV v1 with a `kv_path`.

mod common;

use keymgr_test_support::env::VaultEnv;
use keymgr_test_support::python::{python_with, run_probe};

use keymgr_core::{testkit::sample_payloads, Context, KeyManager, NewSecret, SecretId, SecretKind};
use keymgr_vault::VaultKeyManager;

/// Reads the given ids with Castellan's VaultKeyManager, then creates a
/// key and stores a passphrase with it; prints what it saw as JSON. The
/// token comes through the environment, never the command line.
const PROBE: &str = r#"
import json, os, sys
from oslo_config import cfg
from castellan.key_manager import vault_key_manager as vkm
from castellan.common.objects import passphrase
req = json.load(sys.stdin)
conf = cfg.ConfigOpts()
conf([])
conf.register_opts(vkm._vault_opts, group="vault")
for k, v in req["conf"].items():
    conf.set_override(k, v, group="vault")
conf.set_override("root_token_id", os.environ["CASTELLAN_VAULT_TOKEN"], group="vault")
km = vkm.VaultKeyManager(conf)
out = {"read": {}, "written": []}
for key_id in req["ids"]:
    obj = km.get(None, key_id)
    out["read"][key_id] = {"type": km._secret_type_dict[type(obj)],
                           "hex": obj.get_encoded().hex(), "name": obj.name}
kid = km.create_key(None, "AES", 256)
out["written"].append({"id": kid, "type": "symmetric",
                       "hex": km.get(None, kid).get_encoded().hex()})
pp = "castellan passphrase \u2713".encode()
pid = km.store(None, passphrase.Passphrase(pp, name="pp"))
out["written"].append({"id": pid, "type": "passphrase", "hex": pp.hex()})
print(json.dumps(out))
"#;

#[tokio::test]
async fn castellan_and_keymgr_read_each_others_keys() {
    let (Some(py), Some(env)) = (
        python_with("castellan.key_manager.vault_key_manager", "Castellan"),
        VaultEnv::load(),
    ) else {
        return;
    };
    let raw = common::Raw::new(&env);
    let kv1 = env.kv1_mount.clone();
    for (mount, version) in [("secret".to_string(), 2u8), (kv1, 1)] {
        let mut cfg = common::token_config(&env);
        cfg.kv_mountpoint = mount.clone();
        cfg.kv_version = version;
        cfg.kv_path = Some("castellan/real".into());
        let km = VaultKeyManager::new(cfg).unwrap();
        let ctx = Context::new("p-castellan", "u");

        let mut mine = Vec::new();
        for kind in SecretKind::ALL {
            let bytes = sample_payloads(kind).remove(0);
            let id = km
                .store(
                    &ctx,
                    NewSecret::new(kind, bytes.clone()).named(format!("k-{kind}")),
                )
                .await
                .unwrap();
            mine.push((id, kind, bytes));
        }
        let req = serde_json::json!({
            "conf": {"vault_url": raw.addr, "kv_mountpoint": mount,
                     "kv_version": version, "kv_path": "castellan/real"},
            "ids": mine.iter().map(|(id, _, _)| id.to_simple_uuid().unwrap().to_string()).collect::<Vec<_>>(),
        });
        let out = run_probe(
            &py,
            PROBE,
            req.to_string().as_bytes(),
            &[("CASTELLAN_VAULT_TOKEN", &raw.token)],
        );
        let seen: serde_json::Value = serde_json::from_slice(&out).unwrap();

        // Castellan reads keymgr's records: kind, bytes and name.
        for (id, kind, bytes) in &mine {
            let r = &seen["read"][id.to_simple_uuid().unwrap().to_string()];
            assert_eq!(r["type"], kind.as_str(), "KV v{version} {kind}");
            assert_eq!(r["hex"], hex::encode(bytes), "KV v{version} {kind} bytes");
            assert_eq!(r["name"], format!("k-{kind}"));
        }
        // keymgr reads Castellan's (any project: Castellan records have no owner).
        for w in seen["written"].as_array().unwrap() {
            let id = SecretId::parse(w["id"].as_str().unwrap()).unwrap();
            let s = km
                .get(&Context::new("any", "u"), &id)
                .await
                .unwrap_or_else(|e| panic!("KV v{version}: Castellan's {}: {e}", w["type"]));
            assert_eq!(hex::encode(s.payload.expose()), w["hex"].as_str().unwrap());
            assert_eq!(s.kind().as_str(), w["type"].as_str().unwrap());
            if s.kind() == SecretKind::Symmetric {
                assert_eq!(s.metadata.algorithm.as_deref(), Some("AES"));
                assert_eq!(s.metadata.bit_length, Some(256));
                // Castellan's create_key names the key by its id.
                assert_eq!(
                    s.metadata.name.as_deref(),
                    Some(id.to_simple_uuid().unwrap().to_string().as_str())
                );
                assert!(s.metadata.created.is_some());
            }
            km.delete(&Context::new("any", "u"), &id, false)
                .await
                .unwrap();
        }
        for (id, _, _) in mine {
            km.delete(&ctx, &id, false).await.unwrap();
        }
    }
}

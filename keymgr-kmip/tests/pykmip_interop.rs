//! PyKMIP's own client (`kmip.pie.client.ProxyKmipClient`, in the test
//! virtualenv) reads what keymgr stores, and keymgr reads what it
//! registers, byte for byte.

mod common;

use keymgr_core::{
    testkit::sample_payloads, Consumer, Context, ErrorKind, KeyManager, KeySpec, NewSecret,
    SecretId, SecretKind,
};
use keymgr_kmip::KmipKeyManager;
use keymgr_test_support::env::KmipEnv;
use keymgr_test_support::python::{python_with, run_probe};

/// Reads the given ids with ProxyKmipClient, then registers a symmetric
/// key (and activates it), a password and a PKCS#8 private key carrying
/// the project entry keymgr looks for; prints what it saw and wrote as JSON.
const PROBE: &str = r#"
import json, os, sys
from kmip.pie.client import ProxyKmipClient
from kmip.pie import objects
from kmip.core import enums
req = json.load(sys.stdin)
c = ProxyKmipClient(config="client", config_file=req["client_conf"])
c.open()
out = {"read": {}, "written": []}
for uid in req["ids"]:
    obj = c.get(uid)
    out["read"][uid] = {"type": obj.object_type.name, "hex": obj.value.hex(),
                        "names": list(obj.names)}
asi = [{"application_namespace": "x-keymgr-project", "application_data": req["project"]}]
def reg(obj, kind):
    obj._application_specific_informations = asi
    uid = c.register(obj)
    if kind == "symmetric":
        c.activate(uid)  # an Active key: keymgr's delete must revoke it first
    out["written"].append({"id": uid, "kind": kind, "hex": obj.value.hex(), "name": obj.names[0]})
reg(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, bytes(range(32)), name="py-aes"), "symmetric")
reg(objects.SecretData("pykmip pässword".encode(), enums.SecretDataType.PASSWORD, name="py-pass"), "passphrase")
reg(objects.PrivateKey(enums.CryptographicAlgorithm.RSA, 1024, bytes.fromhex(req["private_hex"]),
                       enums.KeyFormatType.PKCS_8, name="py-private"), "private")
c.close()
print(json.dumps(out))
"#;

fn run(py: &str, req: serde_json::Value) -> serde_json::Value {
    let out = run_probe(py, PROBE, req.to_string().as_bytes(), &[]);
    serde_json::from_slice(&out).expect("probe prints JSON")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn pykmip_and_keymgr_read_each_others_objects() {
    let (Some(py), Some(env)) = (
        python_with("kmip.pie.client", "PyKMIP's client"),
        KmipEnv::load(),
    ) else {
        return;
    };
    let cfg = common::config_for(&env);
    let km = KmipKeyManager::new(cfg).unwrap();
    let ctx = Context::new("p-interop", "u");

    // keymgr stores every kind (and creates a key); PyKMIP reads them.
    let mut mine: Vec<(SecretId, &str, Vec<u8>)> = Vec::new();
    let kmip_type = |k: SecretKind| match k {
        SecretKind::Symmetric => "SYMMETRIC_KEY",
        SecretKind::Passphrase => "SECRET_DATA",
        SecretKind::Opaque => "OPAQUE_DATA",
        SecretKind::Private => "PRIVATE_KEY",
        SecretKind::Public => "PUBLIC_KEY",
        SecretKind::Certificate => "CERTIFICATE",
    };
    for kind in SecretKind::ALL {
        let bytes = sample_payloads(kind).remove(0);
        let id = km
            .store(
                &ctx,
                NewSecret::new(kind, bytes.clone()).named(format!("km-{kind}")),
            )
            .await
            .unwrap();
        mine.push((id, kmip_type(kind), bytes));
    }
    let created = km
        .create_key(&ctx, &KeySpec::aes(256).named("km-created"))
        .await
        .unwrap();
    let created_bytes = km
        .get(&ctx, &created)
        .await
        .unwrap()
        .payload
        .expose()
        .to_vec();
    mine.push((created.clone(), "SYMMETRIC_KEY", created_bytes));

    let private = sample_payloads(SecretKind::Private).remove(0);
    let ids: Vec<&str> = mine.iter().map(|(id, _, _)| id.as_str()).collect();
    let out = run(
        &py,
        serde_json::json!({
            "ids": ids,
            "project": ctx.project_id,
            "private_hex": hex(&private),
            "client_conf": env.client_conf,
        }),
    );
    for (id, ty, bytes) in &mine {
        let seen = &out["read"][id.as_str()];
        assert_eq!(seen["type"], *ty, "PyKMIP's object type of {id}");
        assert_eq!(seen["hex"], hex(bytes), "PyKMIP's bytes of {id} ({ty})");
        assert_eq!(
            seen["names"].as_array().unwrap().len(),
            1,
            "one Name on {id}"
        );
    }

    // What PyKMIP registered, keymgr reads byte for byte.
    let written = out["written"].as_array().unwrap();
    assert_eq!(written.len(), 3);
    for w in written {
        let id = km.parse_id(w["id"].as_str().unwrap()).unwrap();
        assert!(
            id.as_str().bytes().all(|b| b.is_ascii_digit()),
            "PyKMIP ids are its own decimal Unique Identifiers: {id}"
        );
        let s = km.get(&ctx, &id).await.unwrap();
        assert_eq!(
            hex(s.payload.expose()),
            w["hex"].as_str().unwrap(),
            "bytes of {id}"
        );
        assert_eq!(
            s.kind().as_str(),
            w["kind"].as_str().unwrap(),
            "kind of {id}"
        );
        assert_eq!(
            s.metadata.name.as_deref(),
            w["name"].as_str(),
            "name of {id}"
        );
        if s.kind() == SecretKind::Symmetric {
            assert_eq!(s.metadata.algorithm.as_deref(), Some("aes"));
            assert_eq!(s.metadata.bit_length, Some(256));
        }
        // Another project does not see it.
        let e = km
            .get(&Context::new("p-other", "u"), &id)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        // PyKMIP has no Add Attribute: an object without keymgr's consumer
        // entry cannot take consumers there, and says so with a typed error.
        let e = km
            .add_consumer(&ctx, &id, &Consumer::new("cinder", "volume", "v"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(km.list_consumers(&ctx, &id).await.unwrap().is_empty());
        // Revoke (for the Active key) then Destroy.
        km.delete(&ctx, &id, false).await.unwrap();
        let e = km.get(&ctx, &id).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    for (id, _, _) in mine {
        km.delete(&ctx, &id, true).await.unwrap();
    }
}

//! The Python fleet reads what keymgr writes, and keymgr reads what the
//! fleet writes, through the fleet's own code: Castellan 5.8, os-brick and
//! python-barbicanclient (in the test virtualenv), on the real Keystone +
//! Barbican and the real OpenBao that `scripts/test.sh` starts.
//!
//! For every kind (passphrases with non-ASCII text and leading/trailing
//! white space included) and both backends:
//! - keymgr stores; Castellan gets by the id keymgr printed, byte for byte
//!   (DER for keys and certificates, as Castellan's objects hold them);
//!   python-barbicanclient hands over bytes, never `str`; os-brick's
//!   `get_passphrase_from_secret` equals keymgr's `passphrase_for`;
//! - Castellan stores; keymgr gets by the id Castellan printed, and returns
//!   what Castellan's own `get` returns;
//! - the ids each side lists are the ids the other printed, as text.
//!
//! os-brick's own provider map and its plain `CryptsetupEncryptor` command
//! are checked against `luks::Provider` and `luks::kernel` too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use keymgr::passphrase::passphrase_for;
use keymgr::{Context, KeyManager, ListQuery, NewSecret, Payload, SecretId, SecretKind};
use keymgr_core::testkit::sample_payloads;
use keymgr_test_support::env::{OpenStackEnv, VaultEnv};
use keymgr_test_support::python::{python_with, run_probe};
use serde_json::{json, Value};

/// Castellan, os-brick and python-barbicanclient acting as a Python
/// service would. Reads a request on stdin, prints what it saw as JSON.
/// Credentials come through the environment, never the command line.
const PROBE: &str = r#"
import binascii, json, os, sys
from oslo_config import cfg
from castellan import options
from castellan import key_manager
from castellan.common.objects import (symmetric_key, passphrase, opaque_data,
                                      private_key, public_key, x_509)
from os_brick import utils as brick_utils

req = json.load(sys.stdin)
conf = cfg.ConfigOpts()
if req["backend"] == "vault":
    options.set_defaults(conf, backend="vault", vault_url=os.environ["KEYMGR_TEST_VAULT_ADDR"],
                         vault_root_token_id=os.environ["KEYMGR_TEST_VAULT_TOKEN"],
                         vault_kv_mountpoint="secret", vault_kv_version=2)
    conf.set_override("kv_path", req["kv_path"], group="vault")
    ctx = None
else:
    from castellan.common.credentials import keystone_password
    options.set_defaults(conf, backend="barbican", auth_endpoint=os.environ["KEYMGR_TEST_KEYSTONE_URL"])
    ctx = keystone_password.KeystonePassword(
        password=os.environ["KEYMGR_TEST_OS_PASSWORD_A"], auth_url=os.environ["KEYMGR_TEST_KEYSTONE_URL"],
        username=os.environ["KEYMGR_TEST_OS_USER_A"], user_domain_name="Default",
        project_name=os.environ["KEYMGR_TEST_OS_PROJECT_A"], project_domain_name="Default")
km = key_manager.API(conf)

out = {"read": {}, "written": [], "listed": []}
for item in req["read"]:
    key_id = item["id"]
    r = {}
    try:
        obj = km.get(ctx, key_id)
        r["type"] = obj.managed_type()
        r["hex"] = obj.get_encoded().hex()
        r["brick"] = brick_utils.get_passphrase_from_secret(obj)
        if req["backend"] == "barbican":
            # What python-barbicanclient itself hands a caller.
            raw = km._get_secret(ctx, key_id).payload
            r["client_payload_type"] = type(raw).__name__
    except Exception as e:
        r["error"] = "%s: %s" % (type(e).__name__, e)
    out["read"][key_id] = r

def make(kind, data, name):
    if kind == "symmetric":
        return symmetric_key.SymmetricKey("AES", len(data) * 8, data, name=name)
    if kind == "passphrase":
        return passphrase.Passphrase(data, name=name)
    if kind == "opaque":
        return opaque_data.OpaqueData(data, name=name)
    if kind == "private":
        return private_key.PrivateKey("RSA", 1024, data, name=name)
    if kind == "public":
        return public_key.PublicKey("RSA", 1024, data, name=name)
    if kind == "certificate":
        return x_509.X509(data, name=name)
    raise ValueError(kind)

for item in req["write"]:
    obj = make(item["kind"], binascii.unhexlify(item["hex"]), item["name"])
    kid = km.store(ctx, obj)
    got = km.get(ctx, kid)
    out["written"].append({"id": kid, "kind": item["kind"], "hex": got.get_encoded().hex(),
                           "brick": brick_utils.get_passphrase_from_secret(got)})

if req["backend"] == "vault":
    out["listed"] = [o.id for o in km.list(ctx, metadata_only=True)]
else:
    # Castellan's own list stops at python-barbicanclient's default page of
    # 10; list by name through the same client and take ids as Castellan does.
    client = km._get_barbican_client(ctx)
    for name in req["names"]:
        for s in client.secrets.list(name=name, limit=100):
            out["listed"].append(km._retrieve_secret_uuid(s.secret_ref))
print(json.dumps(out))
"#;

/// os-brick's own provider maps, and the commands its plain
/// `CryptsetupEncryptor` runs to attach a volume (recorded, not run).
const BRICK_PROBE: &str = r#"
import json, os, sys
from oslo_concurrency import processutils
from os_brick import encryptors
from os_brick.encryptors import cryptsetup

req = json.load(sys.stdin)
class Key:
    def __init__(self, kind, data): self.kind, self.data = kind, data
    def managed_type(self): return self.kind
    def get_encoded(self): return self.data
class KM:
    def get(self, ctx, key_id): return Key(req["kind"], bytes.fromhex(req["hex"]))
calls = []
def execute(*cmd, **kw):
    if cmd[:2] == ("cryptsetup", "status"):
        raise processutils.ProcessExecutionError(exit_code=4)
    calls.append({"cmd": list(cmd), "stdin": kw.get("process_input")})
    return ("", "")
enc = cryptsetup.CryptsetupEncryptor(root_helper=None,
        connection_info={"data": {"device_path": req["device"]}}, keymgr=KM(),
        execute=execute, encryption_key_id="k")
enc.attach_volume(None, cipher="aes-xts-plain64", key_size="256")
print(json.dumps({"legacy": encryptors.LEGACY_PROVIDER_CLASS_TO_FORMAT_MAP,
                  "formats": list(encryptors.FORMAT_TO_FRONTEND_ENCRYPTOR_MAP),
                  "calls": calls}))
"#;

fn python() -> Option<String> {
    python_with(
        "castellan, os_brick, barbicanclient",
        "Castellan, os-brick and python-barbicanclient",
    )
}

fn run_python(py: &str, script: &str, request: &Value) -> Value {
    let out = run_probe(py, script, request.to_string().as_bytes(), &[]);
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("probe output: {e}: {}", String::from_utf8_lossy(&out)))
}

/// What keymgr stores for the matrix: every kind, and passphrases that
/// text handling would damage.
fn keymgr_payloads() -> Vec<(SecretKind, Vec<u8>)> {
    let mut v = Vec::new();
    for kind in SecretKind::ALL {
        for p in sample_payloads(kind) {
            v.push((kind, p));
        }
    }
    for p in [
        "  leading and trailing  ",
        "\ttab and newline\n",
        "pässwörd ✓ 日本",
    ] {
        v.push((SecretKind::Passphrase, p.as_bytes().to_vec()));
    }
    v
}

fn kind_of(s: &str) -> SecretKind {
    s.parse().unwrap_or_else(|e| panic!("kind {s:?}: {e}"))
}

async fn matrix(py: &str, backend: &str, km: Arc<dyn KeyManager>, ctx: Context, kv_path: &str) {
    let run = &uuid_hex()[..10];
    // 1. keymgr writes, the fleet reads.
    let mut mine: Vec<(SecretId, SecretKind, Vec<u8>)> = Vec::new();
    for (i, (kind, payload)) in keymgr_payloads().into_iter().enumerate() {
        let id = km
            .store(
                &ctx,
                NewSecret::new(kind, payload.clone()).named(format!("fleet-{run}-k{i}")),
            )
            .await
            .unwrap_or_else(|e| panic!("{backend}: keymgr store {kind}: {e}"));
        mine.push((id, kind, payload));
    }
    // A PEM given to keymgr is read by Castellan as the DER.
    let cert_der = sample_payloads(SecretKind::Certificate).remove(0);
    let cert_pem =
        keymgr::encoding::to_pem(SecretKind::Certificate, &Payload::from(cert_der.clone()))
            .unwrap()
            .expose()
            .to_vec();
    let id = km
        .store(
            &ctx,
            NewSecret::new(SecretKind::Certificate, cert_pem).named(format!("fleet-{run}-pem")),
        )
        .await
        .unwrap();
    mine.push((id, SecretKind::Certificate, cert_der));

    // 2. the fleet writes, keymgr reads.
    let mut theirs = Vec::new();
    for (i, (kind, payload)) in keymgr_payloads().into_iter().enumerate() {
        theirs.push(json!({"kind": kind.as_str(), "hex": hex::encode(&payload),
                           "name": format!("fleet-{run}-c{i}")}));
    }
    let names: Vec<String> = (0..keymgr_payloads().len())
        .map(|i| format!("fleet-{run}-k{i}"))
        .chain([format!("fleet-{run}-pem")])
        .collect();
    let request = json!({
        "backend": backend,
        "kv_path": kv_path,
        "read": mine.iter().map(|(id, kind, _)| json!({"id": id.to_string(), "kind": kind.as_str()})).collect::<Vec<_>>(),
        "write": theirs,
        "names": names,
    });
    let seen = run_python(py, PROBE, &request);

    for (id, kind, payload) in &mine {
        let r = &seen["read"][id.as_str()];
        assert!(
            r.get("error").is_none(),
            "{backend}: Castellan/os-brick failed on keymgr's {kind} {id}: {}",
            r["error"]
        );
        assert_eq!(
            r["type"],
            kind.as_str(),
            "{backend}: Castellan's type of {id}"
        );
        assert_eq!(
            r["hex"].as_str().unwrap(),
            hex::encode(payload),
            "{backend}: Castellan reads keymgr's {kind} {id} byte for byte"
        );
        let ours = passphrase_for(*kind, &Payload::from(payload.clone())).unwrap();
        assert_eq!(
            r["brick"].as_str().unwrap().as_bytes(),
            ours.as_bytes(),
            "{backend}: os-brick's passphrase of {kind} {id} is keymgr's"
        );
        if backend == "barbican" {
            assert_eq!(
                r["client_payload_type"], "bytes",
                "{backend}: python-barbicanclient hands over bytes for {kind}"
            );
        }
    }

    let written = seen["written"].as_array().unwrap();
    assert_eq!(written.len(), keymgr_payloads().len());
    let mut their_ids = BTreeSet::new();
    for w in written {
        let printed = w["id"].as_str().unwrap();
        let kind = kind_of(w["kind"].as_str().unwrap());
        let id: SecretId = printed.parse().unwrap();
        assert_eq!(
            km.parse_id(printed).unwrap().as_str(),
            printed,
            "{backend}: keymgr's own form of Castellan's id is the id Castellan printed"
        );
        let s = km.get(&ctx, &id).await.unwrap_or_else(|e| {
            panic!("{backend}: keymgr get of Castellan's {kind} {printed}: {e}")
        });
        assert_eq!(s.kind(), kind, "{backend}: kind of {printed}");
        assert_eq!(
            hex::encode(s.payload.expose()),
            w["hex"].as_str().unwrap(),
            "{backend}: keymgr reads Castellan's {kind} {printed} as Castellan does"
        );
        assert_eq!(
            passphrase_for(kind, &s.payload).unwrap().as_bytes(),
            w["brick"].as_str().unwrap().as_bytes(),
            "{backend}: passphrase_for equals os-brick's for {printed}"
        );
        assert_eq!(s.id().as_str(), printed, "{backend}: the id keymgr reports");
        their_ids.insert(printed.to_string());
    }

    // 3. listings: each side's ids, as the other printed them.
    let listed_by_them: BTreeSet<String> = seen["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for (id, _, _) in &mine {
        assert!(
            listed_by_them.contains(id.as_str()),
            "{backend}: Castellan lists keymgr's {id} as keymgr printed it ({listed_by_them:?})"
        );
    }
    let listed_by_us: BTreeSet<String> = km
        .list_all(&ctx, &ListQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    for id in &their_ids {
        assert!(
            listed_by_us.contains(id),
            "{backend}: keymgr lists Castellan's {id} as Castellan printed it"
        );
    }

    for (id, _, _) in &mine {
        km.delete(&ctx, id, true).await.unwrap();
    }
    for id in &their_ids {
        km.delete(&ctx, &id.parse().unwrap(), true).await.unwrap();
    }
}

fn uuid_hex() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_fleet_reads_keymgr_and_keymgr_reads_the_fleet() {
    let Some(py) = python() else { return };
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let (mut cfg, _) = tests::vault_config(&env, None);
    let kv_path = format!("fleet-{}", &uuid_hex()[..8]);
    cfg.section
        .insert("kv_path".into(), toml::Value::String(kv_path.clone()));
    let km = keymgr::build(&cfg).unwrap();
    matrix(&py, "vault", km, Context::new("fleet", "tester"), &kv_path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barbican_fleet_reads_keymgr_and_keymgr_reads_the_fleet() {
    let Some(py) = python() else { return };
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let (cfg, _) = tests::barbican_config(&env, None, None);
    let km = keymgr::build(&cfg).unwrap();
    matrix(&py, "barbican", km, Context::new("", "tester"), "").await;
}

/// os-brick's provider names map as `luks::Provider` maps them, and the plain
/// `CryptsetupEncryptor` runs the command `luks::kernel` runs, with the same
/// passphrase on stdin.
#[test]
fn os_brick_providers_and_plain_command_are_ours() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("vdb");
    std::fs::write(&device, b"").unwrap();
    let key = [0x00u8, 0x0f, 0xa0, 0x12, 0xff, 0x01, 0x10, 0x00];
    let seen = run_python(
        &py,
        BRICK_PROBE,
        &json!({"kind": "symmetric", "hex": hex::encode(key), "device": device.to_str().unwrap()}),
    );

    let legacy: BTreeMap<String, Value> = serde_json::from_value(seen["legacy"].clone()).unwrap();
    for (class, format) in &legacy {
        match format.as_str() {
            Some(f) => assert_eq!(
                luks::Provider::parse(class).unwrap().as_str(),
                f,
                "os-brick maps {class} to {f}"
            ),
            None => assert!(
                luks::Provider::is_noop(class),
                "{class} is os-brick's no-op"
            ),
        }
    }
    for f in seen["formats"].as_array().unwrap() {
        let f = f.as_str().unwrap();
        assert_eq!(luks::Provider::parse(f).unwrap().as_str(), f);
    }

    // Our command, recorded by a stand-in cryptsetup.
    let record = dir.path().join("record");
    let fake = dir.path().join("cryptsetup");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}.args\ncat > {0}.stdin\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::env::set_var("KEYMGR_CRYPTSETUP", &fake);
    let pass = passphrase_for(SecretKind::Symmetric, &Payload::from(key.to_vec())).unwrap();
    let real_device = std::fs::canonicalize(&device).unwrap();
    luks::kernel::create_plain_passphrase(
        "crypt-vdb",
        &real_device,
        pass.as_bytes(),
        &luks::kernel::PlainPassphraseOptions {
            cipher: Some("aes-xts-plain64".into()),
            key_size_bits: Some(256),
        },
    )
    .unwrap();
    let ours: Vec<String> = std::fs::read_to_string(record.with_extension("args"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let ours_stdin = std::fs::read(record.with_extension("stdin")).unwrap();

    let calls = seen["calls"].as_array().unwrap();
    let create = calls
        .iter()
        .find(|c| c["cmd"][1] == "create")
        .expect("os-brick ran cryptsetup create");
    let theirs: Vec<String> = create["cmd"].as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours, theirs, "the same cryptsetup command as os-brick");
    assert_eq!(
        ours_stdin,
        create["stdin"].as_str().unwrap().as_bytes(),
        "the same passphrase on stdin"
    );
    assert_eq!(ours_stdin, b"000fa012ff011000", "the os-brick hex rule");
}

//! The `keymgr` CLI driven by oslo.config INI files in Cinder's shape,
//! against the real Barbican and the real OpenBao, and Castellan's fixed
//! key opening a volume cryptsetup formatted with it.
#![cfg(feature = "mock")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn keymgr(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keymgr"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYMGR_") && !k.starts_with("KEYMGR_TEST_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config").arg(config).args(args).output().unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = keymgr(config, args);
    assert!(
        out.status.success(),
        "keymgr {args:?} with {}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What Cinder's own sections look like; keymgr ignores them.
const CINDER_SERVICE_SECTIONS: &str = "[DEFAULT]
debug = True
transport_url = rabbit://openstack:RABBIT_PASS@controller
enabled_backends = lvm
auth_strategy = keystone
my_ip = 10.0.0.11

[database]
connection = mysql+pymysql://cinder:CINDER_DBPASS@controller/cinder

[keystone_authtoken]
www_authenticate_uri = http://controller:5000
auth_url = http://controller:5000
memcached_servers = controller:11211
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = cinder
password = CINDER_PASS

[lvm]
volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
volume_group = cinder-volumes
";

/// Stores a key with one process, reads it with another, deletes it.
fn store_then_get(dir: &Path, config: &Path) {
    let key: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(37) ^ 0x5c).collect();
    let kf = dir.join("k");
    std::fs::write(&kf, &key).unwrap();
    let id = ok(
        config,
        &[
            "secret",
            "store",
            "--kind",
            "symmetric",
            "--file",
            kf.to_str().unwrap(),
        ],
    );
    let id = id.trim();
    let out = dir.join("out");
    let _ = std::fs::remove_file(&out);
    ok(
        config,
        &["secret", "get", id, "--output", out.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&out).unwrap(), key, "{}", config.display());
    ok(config, &["secret", "delete", id]);
    assert!(!keymgr(
        config,
        &["secret", "get", id, "--output", out.to_str().unwrap()]
    )
    .status
    .success());
}

#[cfg(feature = "barbican")]
#[test]
fn cinder_conf_drives_the_cli_against_barbican() {
    let Some(env) = keymgr_test_support::env::OpenStackEnv::load() else {
        return;
    };
    let (url, user, pw, project) = (
        &env.keystone_url,
        &env.user_a.name,
        &env.user_a.password,
        &env.user_a.project,
    );
    let (su, spw, sproject) = (
        &env.service.name,
        &env.service.password,
        &env.service.project,
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, (backend, name)) in [
        ("barbican", "cinder.conf"),
        (keymgr::CASTELLAN_BARBICAN_CLASS, "cinder-no-extension"),
    ]
    .into_iter()
    .enumerate()
    {
        let (backend_opt, auth_opt) = if i == 0 {
            ("backend", format!("auth_url = {url}"))
        } else {
            ("api_class", String::new())
        };
        let barbican_auth = if i == 0 {
            String::new()
        } else {
            format!("auth_endpoint = {url}\n")
        };
        let conf = format!(
            "{CINDER_SERVICE_SECTIONS}
[key_manager]
{backend_opt} = {backend}
auth_type = keystone_password
{auth_opt}
username = {user}
password = \"{pw}\"
user_domain_name = Default
project_name = {project}
project_domain_name = Default

[barbican]
{barbican_auth}barbican_endpoint_type = public
barbican_region_name = RegionOne
number_of_retries = 20
retry_delay = 1
verify_ssl = true
send_service_user_token = true

[barbican_service_user]
auth_type = password
auth_url = {url}
username = {su}
password = {spw}
project_name = {sproject}
user_domain_name = Default
project_domain_name = Default

[vault]
vault_url = http://127.0.0.1:8200
kv_version = 2
"
        );
        let path = dir.path().join(name);
        std::fs::write(&path, conf).unwrap();
        store_then_get(dir.path(), &path);
    }
    // A wrong password is Keystone's refusal, not a silent fallback.
    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        format!(
            "[key_manager]\nbackend = barbican\nauth_url = {url}\nusername = {user}\npassword = wrong-password\nuser_domain_name = Default\nproject_name = {project}\nproject_domain_name = Default\n"
        ),
    )
    .unwrap();
    let out = keymgr(&bad, &["secret", "list"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-password"));
}

#[cfg(feature = "vault")]
#[test]
fn cinder_conf_drives_the_cli_against_openbao() {
    let Some((addr, token)) = common::openbao() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for backend in ["vault", keymgr::CASTELLAN_VAULT_CLASS] {
        let conf = format!(
            "{CINDER_SERVICE_SECTIONS}
[key_manager]
backend = {backend}

[barbican]
barbican_endpoint_type = internal

[vault]
vault_url = {addr}
root_token_id = {token}
kv_mountpoint = secret
kv_version = 2
use_ssl = false
timeout = 10
"
        );
        let path = dir.path().join("cinder.conf");
        std::fs::write(&path, conf).unwrap();
        store_then_get(dir.path(), &path);
    }
}

#[test]
fn ini_errors_name_section_and_option() {
    let dir = tempfile::tempdir().unwrap();
    for (conf, needle) in [
        ("[DEFAULT]\ndebug = true\n", "no [key_manager] section"),
        (
            "[key_manager]\nbackend = kmip\n",
            "kmip is not a Castellan backend",
        ),
        (
            "[key_manager]\nbackend = vault\n[vault]\nvault_uri = http://x\n",
            "[vault] vault_uri",
        ),
        ("[key_manager\nbackend = vault\n", "line 1"),
    ] {
        let path = dir.path().join("x.conf");
        std::fs::write(&path, conf).unwrap();
        let out = keymgr(&path, &["secret", "list"]);
        assert!(!out.status.success(), "{conf}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle) && err.contains("x.conf"),
            "{conf}: {err}"
        );
    }
}

/// The fixed key of the tests, and its os-brick passphrase (lower-case hex).
const FIXED: &str = "00112233445566778899AABBCCDDEEFF0123456789abcdeffedcba9876543210";

/// Formats `img` with cryptsetup itself, as os-brick would for a
/// ConfKeyManager-era volume: the passphrase is the key's lower-case hex.
fn format_with_fixed_key(dir: &Path, img: &Path) {
    let pass = dir.join("hexpass");
    std::fs::write(&pass, FIXED.to_ascii_lowercase()).unwrap();
    std::fs::write(img, vec![0u8; 24 << 20]).unwrap();
    let st = Command::new("cryptsetup")
        .args(["luksFormat", "--batch-mode", "--type", "luks1"])
        .args(["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"])
        .arg("--key-file")
        .arg(&pass)
        .arg(img)
        .status()
        .unwrap();
    assert!(st.success(), "cryptsetup luksFormat");
}

fn test_passphrase(config: &Path, img: &Path, id: &str) -> Option<i32> {
    keymgr(
        config,
        &[
            "luks",
            "test-passphrase",
            img.to_str().unwrap(),
            "--key-ref",
            id,
        ],
    )
    .status
    .code()
}

#[test]
fn fixed_key_opens_a_volume_cryptsetup_formatted_with_it() {
    if !common::tool("cryptsetup") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("legacy.img");
    format_with_fixed_key(dir.path(), &img);
    let store = dir.path().join("store.sealed").display().to_string();
    let configs = [
        ("top.toml", format!("backend = \"mock\"\nfixed_key = \"{FIXED}\"\n[mock]\npath = {store:?}\n")),
        ("table.toml", format!("[key_manager]\nbackend = \"embedded\"\nfixed_key = \"{FIXED}\"\n[mock]\npath = {store:?}\n")),
    ];
    for (name, text) in &configs {
        let cfg = dir.path().join(name);
        std::fs::write(&cfg, text).unwrap();
        for id in [keymgr::FIXED_KEY_ID, "00000000000000000000000000000000"] {
            assert_eq!(test_passphrase(&cfg, &img, id), Some(0), "{name} {id}");
        }
        // Delete of the fixed id is a no-op: the volume still opens.
        ok(&cfg, &["secret", "delete", keymgr::FIXED_KEY_ID]);
        assert_eq!(test_passphrase(&cfg, &img, keymgr::FIXED_KEY_ID), Some(0));
        let meta: serde_json::Value = serde_json::from_str(&ok(
            &cfg,
            &["--json", "secret", "metadata", keymgr::FIXED_KEY_ID],
        ))
        .unwrap();
        assert_eq!(meta["bit_length"], 256, "{meta}");
        // Other ids still go to the real store.
        store_then_get(dir.path(), &cfg);
    }
    // Without fixed_key the id is unknown; with another key no keyslot opens.
    let plain = dir.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!("backend = \"mock\"\n[mock]\npath = {store:?}\n"),
    )
    .unwrap();
    assert_eq!(test_passphrase(&plain, &img, keymgr::FIXED_KEY_ID), Some(1));
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "backend = \"mock\"\nfixed_key = \"{}\"\n[mock]\npath = {store:?}\n",
            "11".repeat(32)
        ),
    )
    .unwrap();
    assert_eq!(test_passphrase(&other, &img, keymgr::FIXED_KEY_ID), Some(2));
}

#[cfg(feature = "vault")]
#[test]
fn fixed_key_from_a_cinder_conf_beside_openbao() {
    if !common::tool("cryptsetup") {
        return;
    }
    let Some((addr, token)) = common::openbao() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("legacy.img");
    format_with_fixed_key(dir.path(), &img);
    let path = dir.path().join("cinder.conf");
    std::fs::write(
        &path,
        format!(
            "{CINDER_SERVICE_SECTIONS}\n[key_manager]\nbackend = vault\nfixed_key = {FIXED}\n\n[vault]\nvault_url = {addr}\nroot_token_id = {token}\n"
        ),
    )
    .unwrap();
    assert_eq!(test_passphrase(&path, &img, keymgr::FIXED_KEY_ID), Some(0));
    store_then_get(dir.path(), &path);
}

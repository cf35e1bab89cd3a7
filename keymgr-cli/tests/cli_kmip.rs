//! The facade and the CLI against the real PyKMIP server: a `[kmip]`
//! section with PyKMIP's client option names, `KEYMGR_KMIP_*` variables,
//! and a LUKS2 volume formatted with `--key-ref` to a key the KMIP server
//! generated, which cryptsetup opens with the os-brick passphrase.
#![cfg(feature = "kmip")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use keymgr_test_support::env::KmipEnv;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "keymgr {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn luks2_volume_on_a_kmip_key_opens_in_cryptsetup() {
    let Some(k) = KmipEnv::load() else {
        return;
    };
    if !common::tool("cryptsetup") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keymgr.toml");
    std::fs::write(
        &config,
        format!(
            "backend = \"kmip\"\n[context]\nproject_id = \"cli-kmip\"\n[kmip]\nhost = {:?}\nport = {}\n\
             certfile = {:?}\nkeyfile = {:?}\nca_certs = {:?}\ntimeout = 20\n",
            k.host, k.port, k.certfile, k.keyfile, k.ca_certs
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        ok(
            Command::new(env!("CARGO_BIN_EXE_keymgr"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
                .unwrap(),
            &format!("{args:?}"),
        )
    };
    // The KMIP server generates the key (Create); its id is PyKMIP's number.
    let id = run(&[
        "secret",
        "create",
        "--bits",
        "256",
        "--name",
        "cli-kmip-luks",
    ]);
    let id = id.trim().to_string();
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id:?}");
    let img = dir.path().join("v.img");
    std::fs::write(&img, vec![0u8; 20 << 20]).unwrap();
    run(&[
        "luks",
        "format",
        img.to_str().unwrap(),
        "--type",
        "luks2",
        "--key-ref",
        &id,
        "--pbkdf",
        "pbkdf2",
        "--pbkdf-force-iterations",
        "1000",
    ]);
    // os-brick's passphrase: the key's bytes as hex. The key, read through
    // the environment-configured facade (pinned to KMIP 1.2).
    let out = dir.path().join("key");
    ok(
        Command::new(env!("CARGO_BIN_EXE_keymgr"))
            .env("KEYMGR_BACKEND", "kmip")
            .env("KEYMGR_KMIP_HOST", &k.host)
            .env("KEYMGR_KMIP_PORT", k.port.to_string())
            .env("KEYMGR_KMIP_CERTFILE", &k.certfile)
            .env("KEYMGR_KMIP_KEYFILE", &k.keyfile)
            .env("KEYMGR_KMIP_CA_CERTS", &k.ca_certs)
            .env("KEYMGR_KMIP_KMIP_VERSION", "1.2")
            .env("KEYMGR_PROJECT", "cli-kmip")
            .args(["secret", "get", &id, "--output", out.to_str().unwrap()])
            .output()
            .unwrap(),
        "secret get (environment)",
    );
    let key = std::fs::read(&out).unwrap();
    assert_eq!(key.len(), 32);
    let pass = dir.path().join("hexpass");
    std::fs::write(&pass, hex::encode(&key)).unwrap();
    assert!(
        cryptsetup_accepts(&img, &pass),
        "cryptsetup refuses the os-brick passphrase"
    );
    std::fs::write(&pass, hex::encode([0u8; 32])).unwrap();
    assert!(!cryptsetup_accepts(&img, &pass));

    // Another project does not see the key.
    let other = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .arg("--config")
        .arg(&config)
        .env("KEYMGR_PROJECT", "someone-else")
        .args(["--project", "someone-else", "secret", "metadata", &id])
        .output()
        .unwrap();
    assert!(!other.status.success());
    run(&["secret", "delete", &id]);
}

fn cryptsetup_accepts(image: &Path, key_file: &Path) -> bool {
    Command::new("cryptsetup")
        .args(["open", "--test-passphrase", "--key-file"])
        .arg(key_file)
        .arg(image)
        .status()
        .unwrap()
        .success()
}

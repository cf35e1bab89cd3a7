//! The facade and the CLI against a real OpenBao, configured with Castellan's option names.
#![cfg(feature = "vault")]

mod common;

use std::process::Command;

#[test]
fn cli_round_trip_through_vault_config_file() {
    let Some((addr, token)) = common::openbao() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let config = dir.path().join("keymgr.toml");
    std::fs::write(
        &config,
        format!(
            "backend = \"vault\"\n[context]\nproject_id = \"cli-vault\"\n[vault]\nvault_url = \"{addr}\"\nroot_token_file = {token_file:?}\nkv_mountpoint = \"secret\"\nkv_version = 2\ntimeout = 10\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keymgr"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keymgr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let key: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(7)).collect();
    std::fs::write(dir.path().join("k"), &key).unwrap();
    let id = run(&[
        "secret",
        "store",
        "--kind",
        "symmetric",
        "--file",
        dir.path().join("k").to_str().unwrap(),
    ]);
    let id = id.trim();
    run(&[
        "secret",
        "get",
        id,
        "--output",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), key);
    let meta: serde_json::Value =
        serde_json::from_str(&run(&["--json", "secret", "metadata", id])).unwrap();
    assert_eq!(meta["bit_length"], 512);
    run(&["secret", "delete", id]);

    // Another project cannot see it; the facade from environment variables works too.
    let out = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .env("KEYMGR_BACKEND", "vault")
        .env("KEYMGR_VAULT_VAULT_URL", &addr)
        .env("KEYMGR_VAULT_ROOT_TOKEN_FILE", &token_file)
        .env("KEYMGR_PROJECT", "someone-else")
        .args(["secret", "metadata", id])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

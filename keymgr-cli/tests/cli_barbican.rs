//! The facade and the CLI against real Keystone + Barbican, with Castellan's option names.
#![cfg(feature = "barbican")]

use std::path::Path;
mod common;

use std::process::Command;

use keymgr_test_support::env::{OpenStackEnv, OsUser};

fn write_config(path: &Path, env: &OpenStackEnv, u: &OsUser) {
    std::fs::write(
        path,
        format!(
            "backend = \"barbican\"\n[barbican]\nauth_endpoint = \"{}\"\nauth_type = \"password\"\nusername = \"{}\"\npassword = \"{}\"\nuser_domain_name = \"Default\"\nproject_name = \"{}\"\nproject_domain_name = \"Default\"\nbarbican_endpoint_type = \"public\"\nbarbican_region_name = \"RegionOne\"\nnumber_of_retries = 20\nretry_delay = 1\n",
            env.keystone_url, u.name, u.password, u.project
        ),
    )
    .unwrap();
}

fn run(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args);
    assert!(
        out.status.success(),
        "keymgr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn secrets_and_acls_through_the_cli() {
    let Some(env) = OpenStackEnv::load() else {
        return;
    };
    let ub_id = env.user_b.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cb) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    write_config(&ca, &env, &env.user_a);
    write_config(&cb, &env, &env.user_b);

    let key: Vec<u8> = (0..32u8).map(|b| b ^ 0xa5).collect();
    std::fs::write(dir.path().join("k"), &key).unwrap();
    let id = ok(
        &ca,
        &[
            "secret",
            "store",
            "--kind",
            "symmetric",
            "--file",
            dir.path().join("k").to_str().unwrap(),
            "--name",
            "cli-acl",
        ],
    );
    let id = id.trim().to_string();
    ok(
        &ca,
        &[
            "secret",
            "get",
            &id,
            "--output",
            dir.path().join("out").to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), key);

    // Project B's user cannot read it...
    let out = run(
        &cb,
        &[
            "secret",
            "get",
            &id,
            "--output",
            dir.path().join("b").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "B read A's secret without an ACL");
    // ...until A's ACL names that user.
    let acl: serde_json::Value = serde_json::from_str(&ok(
        &ca,
        &["--json", "secret", "acl", "set", &id, "--read-user", &ub_id],
    ))
    .unwrap();
    assert_eq!(acl["read_users"], serde_json::json!([ub_id]));
    ok(
        &cb,
        &[
            "secret",
            "get",
            &id,
            "--output",
            dir.path().join("b").to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), key);
    ok(&ca, &["secret", "acl", "delete", &id]);
    let out = run(
        &cb,
        &[
            "secret",
            "get",
            &id,
            "--output",
            dir.path().join("b2").to_str().unwrap(),
        ],
    );
    assert!(
        !out.status.success(),
        "B still reads after the ACL was removed"
    );

    let created = ok(&ca, &["secret", "create", "--bits", "256"]);
    ok(&ca, &["secret", "delete", created.trim()]);
    ok(&ca, &["secret", "delete", &id]);
}

//! Every name of a backend reads the same section and environment prefix:
//! a secret stored by one `keymgr` process through one configuration is
//! read back by another process, for every alias, on the embedded store
//! and on the real OpenBao and Barbican when they are running.
#![cfg(feature = "mock")]

mod common;

use std::path::Path;
use std::process::Command;

use keymgr::{Config, Context, KeySpec};

/// `backend = "embedded"` with a `[mock]` section must open the sealed
/// store, not a memory-only one (issue 11's bug).
#[tokio::test]
async fn embedded_alias_reads_the_mock_section() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sealed");
    let text = format!(
        "backend = \"embedded\"\n[mock]\npath = {:?}\n",
        store.display().to_string()
    );
    let ctx = Context::new("p", "u");
    let id = {
        let km = keymgr::build(&Config::from_toml_str(&text).unwrap()).unwrap();
        km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap()
    };
    assert!(store.exists(), "the sealed store was not written");
    let km = keymgr::build(&Config::from_toml_str(&text).unwrap()).unwrap();
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.len(), 32);
}

/// How one process is configured: a file, or variables.
enum How<'a> {
    File(&'a Path),
    Env(&'a [(String, String)]),
}

fn keymgr(how: &How<'_>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keymgr"));
    // No stray configuration from the caller's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYMGR_") && !k.starts_with("KEYMGR_TEST_") {
            cmd.env_remove(k);
        }
    }
    match how {
        How::File(p) => {
            cmd.arg("--config").arg(p);
        }
        How::Env(vars) => {
            cmd.envs(vars.iter().map(|(a, b)| (a, b)));
        }
    }
    cmd.args(args).output().unwrap()
}

/// Stores a key in one process and reads it in another; `label` names the case.
fn round_trip(dir: &Path, how: &How<'_>, label: &str) {
    let key: Vec<u8> = label.bytes().cycle().take(32).collect();
    let kf = dir.join("key.bin");
    std::fs::write(&kf, &key).unwrap();
    let out = keymgr(
        how,
        &[
            "secret",
            "store",
            "--kind",
            "symmetric",
            "--file",
            kf.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{label}: store: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let got = dir.join("got.bin");
    let _ = std::fs::remove_file(&got);
    let out = keymgr(
        how,
        &["secret", "get", &id, "--output", got.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{label}: get {id} in a second process: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&got).unwrap(), key, "{label}");
    let out = keymgr(how, &["secret", "delete", &id]);
    assert!(
        out.status.success(),
        "{label}: delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The TOML forms of one alias: top-level `backend`, and `[key_manager] backend`.
fn toml_forms(alias: &str, section: &str, body: &str) -> [String; 2] {
    [
        format!("backend = \"{alias}\"\n[{section}]\n{body}"),
        format!("[key_manager]\nbackend = \"{alias}\"\n[{section}]\n{body}"),
    ]
}

#[test]
fn every_mock_alias_round_trips_across_two_processes() {
    for alias in ["mock", "embedded", "Embedded", "MOCK"] {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.sealed");
        let body = format!("path = {:?}\n", store.display().to_string());
        for (i, text) in toml_forms(alias, "mock", &body).iter().enumerate() {
            let cfg = dir.path().join(format!("c{i}.toml"));
            std::fs::write(&cfg, text).unwrap();
            round_trip(dir.path(), &How::File(&cfg), &format!("toml {alias} #{i}"));
        }
        let env = vars(&[
            ("KEYMGR_BACKEND", alias),
            ("KEYMGR_MOCK_PATH", store.to_str().unwrap()),
        ]);
        round_trip(dir.path(), &How::Env(&env), &format!("env {alias}"));
        assert!(store.exists(), "{alias}: no sealed store was written");
    }
}

#[test]
fn alias_sections_and_prefixes_are_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "backend = \"embedded\"\n[embedded]\npath = {:?}\n",
            dir.path().join("s").display().to_string()
        ),
    )
    .unwrap();
    let out = keymgr(&How::File(&cfg), &["secret", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[embedded] is not read") && err.contains("[mock]"),
        "{err}"
    );
    let env = vars(&[
        ("KEYMGR_BACKEND", "embedded"),
        ("KEYMGR_EMBEDDED_PATH", "/tmp/x"),
    ]);
    let out = keymgr(&How::Env(&env), &["secret", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYMGR_MOCK_"));
    std::fs::write(&cfg, "backend = \"mock\"\n[mock]\npaht = \"/tmp/x\"\n").unwrap();
    let out = keymgr(&How::File(&cfg), &["secret", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[mock]") && err.contains("paht"), "{err}");
}

#[cfg(feature = "vault")]
#[test]
fn every_vault_alias_round_trips_across_two_processes() {
    let Some((addr, token)) = common::openbao() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let body = format!(
        "vault_url = \"{addr}\"\nroot_token_file = {:?}\n",
        token_file.display().to_string()
    );
    for alias in [
        "vault",
        "VAULT",
        "openbao",
        "OpenBao",
        keymgr::CASTELLAN_VAULT_CLASS,
    ] {
        for (i, text) in toml_forms(alias, "vault", &body).iter().enumerate() {
            let cfg = dir.path().join(format!("c{i}.toml"));
            std::fs::write(&cfg, text).unwrap();
            round_trip(dir.path(), &How::File(&cfg), &format!("toml {alias} #{i}"));
        }
        let env = vars(&[
            ("KEYMGR_BACKEND", alias),
            ("KEYMGR_VAULT_VAULT_URL", &addr),
            ("KEYMGR_VAULT_ROOT_TOKEN_FILE", token_file.to_str().unwrap()),
        ]);
        round_trip(dir.path(), &How::Env(&env), &format!("env {alias}"));
    }
}

#[cfg(feature = "barbican")]
#[test]
fn every_barbican_alias_round_trips_across_two_processes() {
    let Some(env) = keymgr_test_support::env::OpenStackEnv::load() else {
        return;
    };
    let (url, user, pw, project) = (
        &env.keystone_url,
        &env.user_a.name,
        &env.user_a.password,
        &env.user_a.project,
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = [
        ("auth_endpoint", url.as_str()),
        ("username", user.as_str()),
        ("password", pw.as_str()),
        ("user_domain_name", "Default"),
        ("project_name", project.as_str()),
        ("project_domain_name", "Default"),
    ];
    let body: String = opts
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\"\n"))
        .collect();
    for alias in ["barbican", "Barbican", keymgr::CASTELLAN_BARBICAN_CLASS] {
        for (i, text) in toml_forms(alias, "barbican", &body).iter().enumerate() {
            let cfg = dir.path().join(format!("c{i}.toml"));
            std::fs::write(&cfg, text).unwrap();
            round_trip(dir.path(), &How::File(&cfg), &format!("toml {alias} #{i}"));
        }
        let mut env = vec![("KEYMGR_BACKEND".to_string(), alias.to_string())];
        env.extend(opts.iter().map(|(k, v)| {
            (
                format!("KEYMGR_BARBICAN_{}", k.to_uppercase()),
                v.to_string(),
            )
        }));
        round_trip(dir.path(), &How::Env(&env), &format!("env {alias}"));
    }
}

//! `keymgr secret ...` end to end on the embedded sealed store.
#![cfg(feature = "mock")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keymgr.toml");
        std::fs::write(
            &config,
            format!(
                "backend = \"mock\"\n[context]\nproject_id = \"project-a\"\nuser_id = \"alice\"\n[mock]\npath = {:?}\nkey_file = {:?}\n",
                dir.path().join("store.sealed"),
                dir.path().join("store.key")
            ),
        )
        .unwrap();
        Cli { dir, config }
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keymgr"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.env_remove("KEYMGR_PROJECT").env_remove("KEYMGR_USER");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "keymgr {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn store_then_get_round_trips_binary_bytes_exactly() {
    let cli = Cli::new();
    let key: Vec<u8> = (0..=255u8).rev().chain([0, 0, b'\n', b'\r', 0]).collect();
    std::fs::write(cli.path("in.bin"), &key).unwrap();
    let id = cli.ok(
        &[
            "secret",
            "store",
            "--kind",
            "symmetric",
            "--file",
            cli.path("in.bin").to_str().unwrap(),
            "--name",
            "byok",
        ],
        None,
    );
    let id = id.trim();
    cli.ok(
        &[
            "secret",
            "get",
            id,
            "--output",
            cli.path("out.bin").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(std::fs::read(cli.path("out.bin")).unwrap(), key);
    assert_eq!(mode(&cli.path("out.bin")), 0o600);

    // Through stdin and stdout too, with every byte kept (no newline stripping).
    let id2 = cli.ok(&["secret", "store", "--kind", "opaque"], Some(b"\0two\n\n"));
    let out = cli.run(&["secret", "get", id2.trim(), "--output", "-"], None);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"\0two\n\n");

    // Metadata as JSON, without the payload.
    let meta = cli.ok(&["--json", "secret", "metadata", id], None);
    let v: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(v["kind"], "symmetric");
    assert_eq!(v["name"], "byok");
    assert_eq!(v["bit_length"], key.len() * 8);
    assert!(!meta.contains(&hex::encode(&key[..8])));
}

#[test]
fn another_projects_id_is_not_found() {
    let cli = Cli::new();
    let id = cli.ok(&["secret", "create", "--bits", "256"], None);
    let out = cli.run(
        &[
            "--project",
            "project-b",
            "secret",
            "get",
            id.trim(),
            "--output",
            cli.path("x").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") || err.contains("forbidden"),
        "{err}"
    );
    assert!(!cli.path("x").exists(), "nothing is written when get fails");
}

#[test]
fn list_clone_consumers_and_delete() {
    let cli = Cli::new();
    let id = cli
        .ok(&["secret", "create", "--name", "k"], None)
        .trim()
        .to_string();
    let copy = cli.ok(&["secret", "clone", &id], None).trim().to_string();
    assert_ne!(id, copy);
    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "secret", "list", "--name", "k"], None)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    cli.ok(
        &[
            "secret",
            "consumer",
            "add",
            &id,
            "--service",
            "cinder",
            "--resource-type",
            "volume",
            "--resource-id",
            "v1",
        ],
        None,
    );
    let consumers = cli.ok(&["secret", "consumer", "list", &id], None);
    assert_eq!(consumers.trim(), "cinder volume v1");
    let refused = cli.run(&["secret", "delete", &id], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("conflict"));
    cli.ok(&["secret", "delete", &id, "--force"], None);
    cli.ok(&["secret", "delete", &copy], None);
    let listed = cli.ok(&["secret", "list", "--name", "k"], None);
    assert!(listed.trim().is_empty(), "{listed}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let cli = Cli::new();
    let out = cli.run(&["secret", "get", "not-a-uuid", "--output", "x"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret id"));
    let out = cli.run(&["secret", "create", "--bits", "100"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bit length"));
    let out = cli.run(&["secret", "store", "--kind", "opaque"], Some(b""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    std::fs::write(cli.path("bad.toml"), "backend = \"nope\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .args([
            "--config",
            cli.path("bad.toml").to_str().unwrap(),
            "secret",
            "list",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown backend"));
}

//! The `share` subcommands of the `keymgr-examples` binary, each call a new
//! process over one state directory (embedded backend, tiny KDF costs).

use std::path::Path;
use std::process::Command;

fn run(state: &Path, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keymgr-examples"))
        .arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run keymgr-examples");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(state: &Path, config: &Path, args: &[&str]) -> String {
    let (good, out, err) = run(state, config, args);
    assert!(good, "{args:?} failed: {err}");
    out
}

fn json_id(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).expect("JSON output");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn share_cli_session_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("examples.toml");
    std::fs::write(
        &config,
        format!(
            "{}[examples]\npbkdf2_force_iterations = 1000\n",
            examples::config::default_mock_toml(&state)
        ),
    )
    .unwrap();
    let (s, c) = (state.as_path(), config.as_path());

    let help = ok(s, c, &["share", "--help"]);
    for cmd in ["type-create", "create", "write", "read", "delete", "quota"] {
        assert!(help.contains(cmd), "share --help lacks {cmd}: {help}");
    }
    ok(
        s,
        c,
        &[
            "share",
            "type-create",
            "gold",
            "--encryption-support",
            "share_server",
        ],
    );
    let (good, _, err) = run(
        s,
        c,
        &[
            "share",
            "type-create",
            "bad",
            "--encryption-support",
            "disk",
        ],
    );
    assert!(!good && err.contains("encryption_support"), "{err}");

    let key = ok(s, c, &["key", "create", "--bits", "256"])
        .trim()
        .to_string();
    let missing = "0b7c4f3e-0000-4000-8000-000000000000";
    let (good, _, err) = run(
        s,
        c,
        &[
            "share",
            "create",
            "--share-type",
            "gold",
            "--encryption-key-ref",
            missing,
        ],
    );
    assert!(!good, "a missing key ref was accepted");
    assert!(err.contains("400") && err.contains(missing), "{err}");

    let share = json_id(&ok(
        s,
        c,
        &[
            "share",
            "create",
            "--share-type",
            "gold",
            "--size",
            "1",
            "--network",
            "n1",
            "--encryption-key-ref",
            &key,
        ],
    ));
    let input = dir.path().join("in.txt");
    std::fs::write(&input, b"cli share PLAINTEXT").unwrap();
    ok(
        s,
        c,
        &[
            "share",
            "write",
            &share,
            "--input",
            input.to_str().unwrap(),
            "--offset",
            "700",
        ],
    );
    // a new process reads it back
    let back = ok(
        s,
        c,
        &[
            "share", "read", &share, "--output", "-", "--offset", "700", "--length", "19",
        ],
    );
    assert_eq!(back, "cli share PLAINTEXT");
    let raw = std::fs::read(state.join("devices").join(format!("share-{share}.img"))).unwrap();
    assert!(
        !raw.windows(9).any(|w| w == b"PLAINTEXT"),
        "plaintext on disk"
    );

    // the key is in use: the key manager refuses to delete it
    let (good, _, err) = run(s, c, &["key", "delete", &key]);
    assert!(!good && err.contains("consumer"), "{err}");
    let shown = ok(s, c, &["key", "show", &key]);
    assert!(
        shown.contains("share-server") && shown.contains("manila"),
        "{shown}"
    );

    ok(s, c, &["share", "delete", &share]);
    assert_eq!(ok(s, c, &["share", "server-list"]).trim(), "[]");
    ok(s, c, &["key", "delete", &key]);
}

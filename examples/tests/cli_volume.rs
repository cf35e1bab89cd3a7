//! The README quick start: the volume flow through the `keymgr-examples`
//! binary, one process per command, on the embedded backend.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keymgr-examples"))
        .args(["--config", dir.join("c.toml").to_str().unwrap()])
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (s, o, e) = run(dir, args);
    assert!(s, "{args:?} failed: {e}");
    o
}

fn id(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn quick_start_volume_flow_across_processes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "{}[examples]\npbkdf2_force_iterations = 1000\n",
            examples::config::default_mock_toml(&dir.join("state"))
        ),
    )
    .unwrap();
    let help = ok(dir, &["volume", "--help"]);
    for sub in [
        "create",
        "attach",
        "extend",
        "transfer",
        "snapshot-create",
        "rotate-key",
    ] {
        assert!(help.contains(sub), "{help}");
    }
    ok(
        dir,
        &[
            "volume",
            "type-create",
            "luks2",
            "--encrypted",
            "--key-size",
            "512",
        ],
    );
    let key = ok(dir, &["key", "create"]).trim().to_string();
    let v = id(&ok(
        dir,
        &[
            "volume",
            "create",
            "--size",
            "2",
            "--type",
            "luks2",
            "--encryption-key-id",
            &key,
        ],
    ));
    ok(dir, &["key", "delete", &key]);
    ok(dir, &["volume", "attach", &v]);
    ok(
        dir,
        &[
            "volume",
            "write",
            &v,
            "--offset",
            "512",
            "--data",
            "quick start PLAINTEXT",
        ],
    );
    let back = ok(
        dir,
        &["volume", "read", &v, "--offset", "512", "--length", "21"],
    );
    assert_eq!(back.trim(), "quick start PLAINTEXT");
    let raw = std::fs::read(dir.join("state/devices").join(format!("volume-{v}.img"))).unwrap();
    assert!(
        !raw.windows(9).any(|w| w == b"PLAINTEXT"),
        "plaintext on disk"
    );
    let (s, _, e) = run(dir, &["volume", "delete", &v]);
    assert!(!s && e.contains("409"), "{e}");
    ok(dir, &["volume", "detach", &v]);
    // rotate my key: a new secret and volume key; the data stays
    let before: serde_json::Value = serde_json::from_str(&ok(dir, &["volume", "list"])).unwrap();
    let rotated: serde_json::Value =
        serde_json::from_str(&ok(dir, &["volume", "rotate-key", &v])).unwrap();
    assert_ne!(rotated["encryption_key_id"], before[0]["encryption_key_id"]);
    let (s, _, e) = run(
        dir,
        &[
            "key",
            "show",
            before[0]["encryption_key_id"].as_str().unwrap(),
        ],
    );
    assert!(
        !s && e.contains("not found"),
        "the old secret is deleted: {e}"
    );
    ok(dir, &["volume", "attach", &v]);
    let back = ok(
        dir,
        &["volume", "read", &v, "--offset", "512", "--length", "21"],
    );
    assert_eq!(back.trim(), "quick start PLAINTEXT");
    ok(dir, &["volume", "detach", &v]);
    let (s, _, e) = run(
        dir,
        &[
            "volume",
            "create",
            "--size",
            "1",
            "--type",
            "luks2",
            "--encryption-key-id",
            "nope",
        ],
    );
    assert!(!s && e.contains("400") && e.contains("nope"), "{e}");
    ok(dir, &["volume", "delete", &v]);
    assert_eq!(ok(dir, &["volume", "list"]).trim(), "[]");
}

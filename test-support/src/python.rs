//! The peers' own Python code (Castellan, os-brick, python-barbicanclient,
//! PyKMIP) run from a test: the interpreter of the venv `scripts/setup.sh`
//! makes (`KEYMGR_PYTHON`) and a probe script that reads a JSON request on
//! standard input and prints its answer.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::testenv::skip_or_fail;

/// `KEYMGR_PYTHON` if it imports `modules` (a Python import list, e.g.
/// `"castellan, os_brick"`), or `None` after reporting that `what` cannot
/// run (a panic under `KEYMGR_REQUIRE_TOOLS=1`).
pub fn python_with(modules: &str, what: &str) -> Option<String> {
    let Some(py) = std::env::var("KEYMGR_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        skip_or_fail(what, "KEYMGR_PYTHON is not set (scripts/test.sh sets it)");
        return None;
    };
    let imports = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !imports {
        skip_or_fail(
            what,
            &format!("{py} cannot import {modules} (scripts/setup.sh installs them)"),
        );
        return None;
    }
    Some(py)
}

/// Runs `script` with `py`, `request` on its standard input and `env` added
/// to its environment (credentials go there, never on the command line);
/// its standard output. Panics with the script's standard error if it fails.
pub fn run_probe(py: &str, script: &str, request: &[u8], env: &[(&str, &str)]) -> Vec<u8> {
    let mut child = Command::new(py)
        .args(["-c", script])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {py}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request)
        .expect("write the probe's request");
    let out = child.wait_with_output().expect("wait for the probe");
    assert!(
        out.status.success(),
        "the Python probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

//! What the CLI tests need from the test environment: a server's variable or
//! a tool, skipping with a printed reason, or failing when
//! `KEYMGR_REQUIRE_TOOLS=1` (set by scripts/test.sh).
#![allow(dead_code)]

fn required() -> bool {
    keymgr_test_support::testenv::tools_required()
}

/// The variable `name` that the script starting `server` exports, or `None` (skip).
pub(crate) fn env(name: &str, server: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if required() => {
            panic!("{name} is not set: {server} was not started (run scripts/test.sh)")
        }
        _ => {
            eprintln!("skipped: {name} is not set; start {server} with scripts/test.sh");
            None
        }
    }
}

/// Whether the tool `name` runs (`name --version`); `false` means skip.
pub(crate) fn tool(name: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if required() {
            panic!("{name} is not installed (scripts/setup.sh installs it)");
        }
        eprintln!("skipped: {name} is not installed; run scripts/setup.sh");
    }
    found
}

/// The test OpenBao's address and root token, or `None` (skip).
pub(crate) fn openbao() -> Option<(String, String)> {
    Some((
        env("KEYMGR_TEST_VAULT_ADDR", "OpenBao")?,
        env("KEYMGR_TEST_VAULT_TOKEN", "OpenBao")?,
    ))
}

//! What the CLI tests need from the test environment: a server (through
//! `keymgr_test_support::env`) or a tool, skipping with a printed reason, or
//! failing when `KEYMGR_REQUIRE_TOOLS=1` (set by scripts/test.sh).
#![allow(dead_code)]

fn required() -> bool {
    keymgr_test_support::testenv::tools_required()
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
    let env = keymgr_test_support::env::VaultEnv::load()?;
    Some((env.addr, env.root_token))
}

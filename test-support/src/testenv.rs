//! What tests need from their environment: a server's
//! variable or a tool on `PATH`. When one is missing the test skips with a
//! printed `skipped: …` reason, or fails when `KEYMGR_REQUIRE_TOOLS=1` (set by
//! scripts/test.sh), so CI never passes by skipping.
//!
//! ```
//! use keymgr_test_support::testenv;
//!
//! fn needs_server() {
//!     let Some(addr) = testenv::server_var("KEYMGR_DOC_EXAMPLE_UNSET", "a doc server") else {
//!         return; // printed "skipped: …", or panicked when tools are required
//!     };
//!     assert!(!addr.is_empty());
//! }
//! # if !testenv::tools_required() { needs_server(); }
//! ```

use std::path::PathBuf;

/// The variable that turns a skip into a failure.
pub const REQUIRE_VAR: &str = "KEYMGR_REQUIRE_TOOLS";

/// Whether missing tools and servers fail the tests (`KEYMGR_REQUIRE_TOOLS=1`).
pub fn tools_required() -> bool {
    std::env::var(REQUIRE_VAR).as_deref() == Ok("1")
}

/// Reports that `test` cannot run because of `reason`: prints
/// `skipped: {test}: {reason}` and returns, or panics naming the reason and
/// `KEYMGR_REQUIRE_TOOLS=1` when tools are required.
pub fn skip_or_fail(test: &str, reason: &str) {
    if tools_required() {
        panic!("{test}: {reason}, and {REQUIRE_VAR}=1");
    }
    eprintln!("skipped: {test}: {reason}");
}

/// The non-empty variable `name` exported by the script that starts
/// `server`, or `None` after [`skip_or_fail`] (a panic when required).
pub fn server_var(name: &str, server: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip_or_fail(
                name,
                &format!("not set: {server} was not started (run scripts/test.sh)"),
            );
            None
        }
    }
}

/// The path of the executable `name` found on `PATH` (or in /usr/sbin, /sbin),
/// without reporting anything when it is absent.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/sbin".into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The path of the tool `name`, or `None` after [`skip_or_fail`] saying it
/// is not installed (a panic when required).
pub fn tool_on_path(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        skip_or_fail(name, "not found on PATH (scripts/setup.sh installs it)");
    }
    found
}

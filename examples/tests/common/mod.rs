//! Shared test setup: one service configuration per available backend.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use examples::ServiceConfig;
use keymgr_test_support::env::{OpenStackEnv, VaultEnv};

/// A backend to run a flow against: name and keymgr TOML (without the
/// `[examples]` section).
pub(crate) struct Backend {
    pub name: &'static str,
    pub toml: String,
    /// Whether a second project can be used (transfers).
    pub second_project: bool,
}

/// Skips with `reason` (a failure under `KEYMGR_REQUIRE_TOOLS=1`).
pub(crate) fn skip(reason: &str) {
    keymgr_test_support::testenv::skip_or_fail("examples", reason);
}

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The mock backend (sealed store inside the state dir) plus Vault and
/// Barbican when their variables are set.
pub(crate) fn backends(state_dir: &Path) -> Vec<Backend> {
    let mut out = vec![Backend {
        name: "mock",
        toml: format!(
            "{}[context]\nproject_id = \"proj-a\"\nuser_id = \"alice\"\n",
            examples::config::default_mock_toml(state_dir)
        ),
        second_project: true,
    }];
    if let Some(env) = VaultEnv::load() {
        let (addr, token) = (&env.addr, &env.root_token);
        out.push(Backend {
            name: "vault",
            toml: format!(
                "backend = \"vault\"\n[context]\nproject_id = \"examples-{}\"\nuser_id = \"alice\"\n[vault]\nvault_url = {addr:?}\nroot_token_id = {token:?}\n",
                run_id()
            ),
            second_project: true,
        });
    }
    if let Some(env) = OpenStackEnv::load() {
        let (url, user, pass, project) = (
            &env.keystone_url,
            &env.user_a.name,
            &env.user_a.password,
            &env.user_a.project,
        );
        out.push(Backend {
            name: "barbican",
            toml: format!(
                "backend = \"barbican\"\n[context]\nproject_id = {project:?}\n[barbican]\nauth_endpoint = {url:?}\nauth_type = \"password\"\nusername = {user:?}\npassword = {pass:?}\nuser_domain_name = \"Default\"\nproject_name = {project:?}\nproject_domain_name = \"Default\"\n"
            ),
            second_project: false,
        });
    }
    out
}

/// `b` with its own state folder `root/<name>` (created), into which the
/// mock backend's sealed store moves too.
pub(crate) fn with_own_state(b: Backend, root: &Path) -> (Backend, PathBuf) {
    let state = root.join(b.name);
    std::fs::create_dir_all(&state).unwrap();
    let toml = b.toml.replace(
        &examples::config::default_mock_toml(root),
        &examples::config::default_mock_toml(&state),
    );
    (Backend { toml, ..b }, state)
}

/// The service configuration for `b` over `state_dir`, with tiny KDF costs.
pub(crate) fn config(b: &Backend, state_dir: &Path, extra: &str) -> ServiceConfig {
    let toml = format!(
        "{}\n[examples]\npbkdf2_force_iterations = 1000\n{extra}",
        b.toml
    );
    ServiceConfig::from_toml(state_dir, &toml).unwrap_or_else(|e| panic!("{}: config: {e}", b.name))
}

/// Whether `needle` occurs in `hay`.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// qemu-img present, else skip (or fail under KEYMGR_REQUIRE_TOOLS=1).
pub(crate) fn have_qemu_img() -> bool {
    let ok = std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip("qemu-img is not installed");
    }
    ok
}

//! What the CLI tests need from the test environment: a server (through
//! `keymgr_test_support::env`) or a tool, skipping with a printed reason, or
//! failing when `KEYMGR_REQUIRE_TOOLS=1` (set by scripts/test.sh).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A `keymgr` run against its own embedded store in a temporary folder
/// (`--config` to a `[mock]` section), with helpers for files in that folder.
pub(crate) struct Env {
    dir: tempfile::TempDir,
    /// The configuration file.
    pub(crate) config: PathBuf,
}

impl Env {
    /// A fresh folder, store and configuration.
    pub(crate) fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keymgr.toml");
        std::fs::write(
            &config,
            format!(
                "backend = \"mock\"\n[context]\nproject_id = \"p\"\n[mock]\npath = {:?}\n",
                dir.path().join("store.sealed")
            ),
        )
        .unwrap();
        Env { dir, config }
    }
    /// A file in the folder.
    pub(crate) fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// The path as a `&'static str` (leaked: a test's few paths) for argument lists.
    pub(crate) fn s(&self, name: &str) -> &'static str {
        Box::leak(self.p(name).to_string_lossy().into_owned().into_boxed_str())
    }
    /// Runs `keymgr --config CONFIG ARGS…`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keymgr"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }
    /// [`Env::run`], which must succeed; its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "keymgr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// Stores `bytes` (written to the file `name`) as a `kind` secret; its id.
    pub(crate) fn store(&self, kind: &str, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.p(name), bytes).unwrap();
        let f = self.s(name);
        self.ok(&["secret", "store", "--kind", kind, "--file", f])
            .trim()
            .to_string()
    }
}

/// Whether cryptsetup opens `image` with the passphrase in `key_file`.
pub(crate) fn cryptsetup_accepts(image: &Path, key_file: &Path) -> bool {
    Command::new("cryptsetup")
        .args(["open", "--test-passphrase", "--key-file"])
        .arg(key_file)
        .arg(image)
        .status()
        .unwrap()
        .success()
}

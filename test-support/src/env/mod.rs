//! Typed environments of the test servers, built from the `KEYMGR_TEST_*`
//! variables that `scripts/servers/*.sh start DIR` write to `DIR/env`.
//!
//! One file per kind of server; each environment has
//! - `read()`: the variables, or the first one missing ([`MissingVar`]),
//!   reporting nothing;
//! - `load()`: the same, but a missing variable is reported through
//!   [`testenv::skip_or_fail`](crate::testenv::skip_or_fail): a printed
//!   `skipped: …` and `None`, or a panic under `KEYMGR_REQUIRE_TOOLS=1`.
//!
//! A new kind of server adds a file here with its struct, `read` and `load`
//! (built from [`Vars`]), and a line in this module.

mod kmip;
mod openbao;
mod openstack;

pub use kmip::KmipEnv;
pub use openbao::{VaultAppRole, VaultClusterEnv, VaultEnv, VaultJwt, VaultTls};
pub use openstack::{OpenStackEnv, OsServiceUser, OsUser};

use std::fmt;

/// A variable a test server's environment needs is not set (or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// The variable, e.g. `KEYMGR_TEST_VAULT_ADDR`.
    pub var: String,
    /// The server whose start script exports it, e.g. `OpenBao`.
    pub server: &'static str,
    /// The script that starts it, e.g. `scripts/servers/openbao.sh`.
    pub script: &'static str,
}

impl fmt::Display for MissingVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not set: {} was not started (`bash {} start DIR` and source DIR/env, or run scripts/test.sh)",
            self.var, self.server, self.script
        )
    }
}

impl std::error::Error for MissingVar {}

/// The variables of one server: reads them, naming the server when one is missing.
pub(crate) struct Vars {
    server: &'static str,
    script: &'static str,
}

impl Vars {
    /// The variables `server` gets from `script`.
    pub(crate) const fn of(server: &'static str, script: &'static str) -> Vars {
        Vars { server, script }
    }

    /// The non-empty variable `name`, or `None`.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// The non-empty variable `name`, or which one is missing.
    pub(crate) fn required(&self, name: &str) -> Result<String, MissingVar> {
        self.optional(name).ok_or_else(|| MissingVar {
            var: name.to_string(),
            server: self.server,
            script: self.script,
        })
    }

    /// `Some(env)`, or `None` after reporting the missing variable
    /// (a panic under `KEYMGR_REQUIRE_TOOLS=1`).
    pub(crate) fn load<T>(&self, read: Result<T, MissingVar>) -> Option<T> {
        read.map_err(|m| crate::testenv::skip_or_fail(self.server, &m.to_string()))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_names_itself_its_server_and_how_to_start_it() {
        let vars = Vars::of("OpenBao", "scripts/servers/openbao.sh");
        let m = vars
            .required("KEYMGR_TEST_SURELY_NEVER_SET_BY_ANY_SCRIPT")
            .unwrap_err();
        assert_eq!(m.var, "KEYMGR_TEST_SURELY_NEVER_SET_BY_ANY_SCRIPT");
        let text = m.to_string();
        assert!(text.starts_with("KEYMGR_TEST_SURELY_NEVER_SET_BY_ANY_SCRIPT is not set: OpenBao"));
        assert!(
            text.contains("bash scripts/servers/openbao.sh start DIR"),
            "{text}"
        );
        assert_eq!(
            vars.optional("KEYMGR_TEST_SURELY_NEVER_SET_BY_ANY_SCRIPT"),
            None
        );
    }
}

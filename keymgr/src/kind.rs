//! The backend kind: every accepted name of a backend parsed once into one
//! typed value, with the one section and environment prefix it reads.

use std::fmt;
use std::str::FromStr;

use keymgr_core::{Error, Result};

/// The backends this facade knows, whether or not compiled in.
///
/// Parsed, case-insensitively, from any of a backend's names:
///
/// | kind | names | section | environment prefix |
/// |---|---|---|---|
/// | `Mock` | `mock`, `embedded` | `[mock]` | `KEYMGR_MOCK_` |
/// | `Barbican` | `barbican`, `castellan.key_manager.barbican_key_manager.BarbicanKeyManager` | `[barbican]` | `KEYMGR_BARBICAN_` |
/// | `Vault` | `vault`, `openbao`, `castellan.key_manager.vault_key_manager.VaultKeyManager` | `[vault]` | `KEYMGR_VAULT_` |
/// | `Kmip` | `kmip` | `[kmip]` | `KEYMGR_KMIP_` |
///
/// An alias names the backend only: its options always live in the
/// canonical section (`[mock]`, never `[embedded]`).
///
/// ```
/// use keymgr::BackendKind;
/// let k: BackendKind = "OpenBao".parse().unwrap();
/// assert_eq!(k, BackendKind::Vault);
/// assert_eq!(k.section(), "vault");
/// assert_eq!("embedded".parse::<BackendKind>().unwrap().env_prefix(), "KEYMGR_MOCK_");
/// assert!("vualt".parse::<BackendKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The embedded store (`keymgr-mock`).
    Mock,
    /// OpenStack Barbican (`keymgr-barbican`).
    Barbican,
    /// HashiCorp Vault or OpenBao (`keymgr-vault`).
    Vault,
    /// A KMIP server: storage arrays' and HSMs' key managers (`keymgr-kmip`).
    Kmip,
}

/// Castellan's class path of its Barbican key manager.
pub const CASTELLAN_BARBICAN_CLASS: &str =
    "castellan.key_manager.barbican_key_manager.BarbicanKeyManager";
/// Castellan's class path of its Vault key manager.
pub const CASTELLAN_VAULT_CLASS: &str = "castellan.key_manager.vault_key_manager.VaultKeyManager";

impl BackendKind {
    /// Every kind.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Mock,
        BackendKind::Barbican,
        BackendKind::Vault,
        BackendKind::Kmip,
    ];

    /// The canonical name: `mock`, `barbican`, `vault` or `kmip`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Mock => "mock",
            BackendKind::Barbican => "barbican",
            BackendKind::Vault => "vault",
            BackendKind::Kmip => "kmip",
        }
    }

    /// Every name that parses to this kind (lower case), canonical first.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            BackendKind::Mock => &["mock", "embedded"],
            BackendKind::Barbican => &[
                "barbican",
                "castellan.key_manager.barbican_key_manager.barbicankeymanager",
            ],
            BackendKind::Vault => &[
                "vault",
                "openbao",
                "castellan.key_manager.vault_key_manager.vaultkeymanager",
            ],
            BackendKind::Kmip => &["kmip"],
        }
    }

    /// The name of the configuration section holding this backend's options.
    pub fn section(self) -> &'static str {
        self.name()
    }

    /// The prefix of the environment variables setting this backend's
    /// options (`KEYMGR_VAULT_` + option name in upper case).
    pub fn env_prefix(self) -> &'static str {
        match self {
            BackendKind::Mock => "KEYMGR_MOCK_",
            BackendKind::Barbican => "KEYMGR_BARBICAN_",
            BackendKind::Vault => "KEYMGR_VAULT_",
            BackendKind::Kmip => "KEYMGR_KMIP_",
        }
    }

    /// The kind one of `name`'s aliases (any case) names, if any.
    fn lookup(name: &str) -> Option<BackendKind> {
        let lower = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.aliases().iter().any(|a| *a == lower))
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(k) = Self::lookup(s) {
            return Ok(k);
        }
        let hint = if s.trim().ends_with("ConfKeyManager") {
            " (the ConfKeyManager is not a backend here: choose barbican or vault and set fixed_key, as Castellan's migration key manager does)"
        } else {
            ""
        };
        Err(Error::config(format!(
            "unknown backend {s:?}: expected mock (or embedded), barbican, vault (or openbao), kmip, \
             {CASTELLAN_BARBICAN_CLASS} or {CASTELLAN_VAULT_CLASS}{hint}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_in_any_case_parses_to_one_kind() {
        for (name, kind) in [
            ("mock", BackendKind::Mock),
            ("Embedded", BackendKind::Mock),
            ("EMBEDDED", BackendKind::Mock),
            ("barbican", BackendKind::Barbican),
            ("Barbican", BackendKind::Barbican),
            (CASTELLAN_BARBICAN_CLASS, BackendKind::Barbican),
            ("vault", BackendKind::Vault),
            ("VAULT", BackendKind::Vault),
            ("OpenBao", BackendKind::Vault),
            (CASTELLAN_VAULT_CLASS, BackendKind::Vault),
            (" vault ", BackendKind::Vault),
            ("kmip", BackendKind::Kmip),
            ("KMIP", BackendKind::Kmip),
        ] {
            assert_eq!(name.parse::<BackendKind>().unwrap(), kind, "{name}");
        }
        for k in BackendKind::ALL {
            assert_eq!(k.aliases()[0], k.name());
            assert_eq!(k.section(), k.name());
            assert_eq!(
                k.env_prefix(),
                format!("KEYMGR_{}_", k.name().to_uppercase())
            );
            assert_eq!(k.to_string().parse::<BackendKind>().unwrap(), k);
        }
    }

    #[test]
    fn unknown_names_are_config_errors_naming_them() {
        for bad in [
            "",
            "vualt",
            "pykmip",
            "castellan.key_manager.not_a.KeyManager",
        ] {
            let e = bad.parse::<BackendKind>().unwrap_err();
            assert_eq!(e.kind(), keymgr_core::ErrorKind::Config);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let e = "cinder.keymgr.conf_key_mgr.ConfKeyManager"
            .parse::<BackendKind>()
            .unwrap_err();
        assert!(e.to_string().contains("fixed_key"), "{e}");
    }
}

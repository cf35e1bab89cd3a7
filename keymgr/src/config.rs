//! The facade's configuration: which backend, and its options.
//!
//! A TOML file names the backend and carries the section of that backend,
//! with Castellan's option names where Castellan has one:
//!
//! ```toml
//! backend = "vault"            # see BackendKind: mock|embedded, barbican, vault|openbao, kmip, Castellan's class paths
//! fixed_key = "0123...ef"      # optional: Castellan's fixed_key (hex), see MigrationKeyManager
//!
//! [context]                    # who the command-line tool acts for
//! project_id = "demo"
//! user_id = "admin"
//!
//! [vault]                      # the chosen backend's canonical section
//! vault_url = "http://127.0.0.1:8200"
//! root_token_id = "..."
//! kv_mountpoint = "secret"
//! ```
//!
//! `backend` and `fixed_key` may instead sit in a `[key_manager]` table,
//! as in Castellan's files (not both places). Whatever alias names the
//! backend, its options are read from the canonical section (`[mock]`,
//! `[barbican]`, `[vault]`, `[kmip]`); a section named by an alias (`[embedded]`,
//! `[openbao]`), the section of a backend that is not chosen, or any other
//! unknown key is a `Config` error naming it, and so is an option the
//! chosen backend does not have (when the backend is built).
//!
//! The same can come from the environment: `KEYMGR_BACKEND` names the
//! backend, `KEYMGR_FIXED_KEY` the fixed key, and
//! `KEYMGR_<BACKEND>_<OPTION>` sets an option of the canonical section
//! (`KEYMGR_VAULT_VAULT_URL`, `KEYMGR_BARBICAN_AUTH_ENDPOINT`, ...), for
//! every alias of the backend. Variables with an alias prefix
//! (`KEYMGR_EMBEDDED_`, `KEYMGR_OPENBAO_`) are refused.
//!
//! [`Config::from_file`] also reads the oslo.config INI files of the
//! services (see [`crate::oslo`]).

use std::path::Path;

use keymgr_core::{Context, Error, Result};

use crate::fixed_key::FixedKey;
use crate::BackendKind;

/// A parsed configuration: the backend, its section, the optional fixed
/// key and the default context of the command-line tool.
///
/// `Debug` shows the section's option names, never their values (the
/// section holds passwords, tokens and secret ids), and never the fixed key.
#[derive(Clone)]
pub struct Config {
    /// Which backend.
    pub backend: BackendKind,
    /// The backend's own section (`[mock]`, `[barbican]`, `[vault]`), as TOML.
    pub section: toml::Table,
    /// The `[context]` section.
    pub context: ContextConfig,
    /// Castellan's `fixed_key`: when set, [`crate::build`] wraps the
    /// backend in a [`crate::MigrationKeyManager`].
    pub fixed_key: Option<FixedKey>,
    /// The HTTP clients (connection pools) shared by every manager
    /// [`crate::build`] makes from this configuration and its clones.
    pub(crate) pool: std::sync::Arc<keymgr_http::PoolScope>,
}

/// The `[context]` section: who the command-line tool acts for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Project (tenant) id.
    pub project_id: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl ContextConfig {
    /// The context this section describes; missing ids default to
    /// `default` (project) and the login name (user).
    pub fn to_context(&self) -> Context {
        let user = self
            .user_id
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "user".into());
        Context::new(
            self.project_id.clone().unwrap_or_else(|| "default".into()),
            user,
        )
        .with_roles(self.roles.iter().cloned())
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<&str> = self.section.keys().map(String::as_str).collect();
        f.debug_struct("Config")
            .field("backend", &self.backend)
            .field("section_options", &options)
            .field("context", &self.context)
            .field("fixed_key", &self.fixed_key)
            .finish()
    }
}

/// The top-level TOML keys the facade reads itself.
const TOP_LEVEL: [&str; 4] = ["backend", "fixed_key", "context", "key_manager"];

impl Config {
    /// A configuration for `backend` with an empty section.
    pub fn new(backend: BackendKind) -> Self {
        Config {
            backend,
            section: toml::Table::new(),
            context: ContextConfig::default(),
            fixed_key: None,
            pool: Default::default(),
        }
    }

    /// Parses a TOML configuration; every top-level key must be one the
    /// facade reads (see the module documentation).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::from_toml_str_with_sections(text, &[])
    }

    /// As [`Config::from_toml_str`], for a file shared with a program that
    /// reads its own top-level tables besides the facade's: the tables
    /// named in `other_sections` are left to it.
    pub fn from_toml_str_with_sections(text: &str, other_sections: &[&str]) -> Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::config(format!("not valid TOML: {e}")))?;
        let mut key_manager = match table.remove("key_manager") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(Error::config("[key_manager] must be a table")),
            None => toml::Table::new(),
        };
        let backend = one_of_two(&mut table, &mut key_manager, "backend")?
            .ok_or_else(|| Error::config("`backend` is missing (mock, barbican, vault or kmip)"))?;
        let backend: BackendKind = backend.parse()?;
        let fixed_key = one_of_two(&mut table, &mut key_manager, "fixed_key")?
            .map(|hex| FixedKey::from_hex(&hex))
            .transpose()?;
        if let Some(k) = key_manager.keys().next() {
            return Err(Error::config(format!(
                "[key_manager] has no option `{k}` (it takes backend and fixed_key)"
            )));
        }
        let context = match table.remove("context") {
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| Error::config(format!("[context]: {e}")))?,
            None => ContextConfig::default(),
        };
        let section = match table.remove(backend.section()) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(Error::config(format!(
                    "[{}] must be a table",
                    backend.section()
                )))
            }
            None => toml::Table::new(),
        };
        for key in table.keys() {
            if other_sections.contains(&key.as_str()) {
                continue;
            }
            return Err(unexpected_key(key, backend));
        }
        Ok(Config {
            backend,
            section,
            context,
            fixed_key,
            pool: Default::default(),
        })
    }

    /// Reads and parses a configuration file: an oslo.config INI file (as
    /// Cinder's, Nova's or Glance's, read by [`crate::oslo`]) or a TOML
    /// file.
    ///
    /// Which: a name ending in `.conf` or `.ini` is INI, one ending in
    /// `.toml` is TOML; any other name is INI when its first line that is
    /// neither blank nor a comment is a `[section]` header and the text is
    /// not valid TOML, and TOML otherwise.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let parsed = if is_ini(path, &text) {
            crate::oslo::config_from_ini(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| Error::config(format!("{}: {e}", path.display())))
    }

    /// Builds a configuration from `KEYMGR_*` variables, or `None` when
    /// `KEYMGR_BACKEND` is not set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(std::env::vars())
    }

    /// As [`Config::from_env`], from any list of variables.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Option<Self>> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let Some(backend) = vars
            .iter()
            .find(|(k, _)| k == "KEYMGR_BACKEND")
            .map(|(_, v)| v.as_str())
        else {
            return Ok(None);
        };
        let backend: BackendKind = backend
            .parse()
            .map_err(|e| Error::config(format!("KEYMGR_BACKEND: {e}")))?;
        let prefix = backend.env_prefix();
        let mut config = Config::new(backend);
        for (k, v) in &vars {
            if let Some(opt) = k.strip_prefix(prefix) {
                config
                    .section
                    .insert(opt.to_ascii_lowercase(), env_value(v));
                continue;
            }
            for kind in BackendKind::ALL {
                for alias in &kind.aliases()[1..] {
                    let alias_prefix = format!("KEYMGR_{}_", alias.to_ascii_uppercase());
                    if k.starts_with(&alias_prefix) {
                        return Err(Error::config(format!(
                            "{k}: {alias:?} names the {kind} backend, whose variables start with {}",
                            kind.env_prefix()
                        )));
                    }
                }
            }
        }
        for (k, v) in vars {
            match k.as_str() {
                "KEYMGR_PROJECT" => config.context.project_id = Some(v),
                "KEYMGR_USER" => config.context.user_id = Some(v),
                "KEYMGR_ROLES" => {
                    config.context.roles = v.split(',').map(|r| r.trim().to_string()).collect()
                }
                "KEYMGR_FIXED_KEY" => {
                    config.fixed_key = Some(
                        FixedKey::from_hex(&v)
                            .map_err(|e| Error::config(format!("KEYMGR_FIXED_KEY: {e}")))?,
                    )
                }
                _ => {}
            }
        }
        Ok(Some(config))
    }

    /// Deserializes the backend section into the backend's own config type,
    /// naming the section in errors.
    pub fn section_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        toml::Value::Table(self.section.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                Error::config(format!("[{}]: {}", self.backend.section(), e.message()))
            })
    }
}

/// The string value of `key`, given at the top level or in `[key_manager]`.
fn one_of_two(
    top: &mut toml::Table,
    key_manager: &mut toml::Table,
    key: &str,
) -> Result<Option<String>> {
    let as_string = |v: toml::Value, place: &str| match v {
        toml::Value::String(s) => Ok(s),
        other => Err(Error::config(format!(
            "{place}`{key}` must be a string, found {}",
            other.type_str()
        ))),
    };
    match (top.remove(key), key_manager.remove(key)) {
        (Some(_), Some(_)) => Err(Error::config(format!(
            "`{key}` is given both at the top level and in [key_manager]: keep one"
        ))),
        (Some(v), None) => as_string(v, "").map(Some),
        (None, Some(v)) => as_string(v, "[key_manager] ").map(Some),
        (None, None) => Ok(None),
    }
}

/// The error for a top-level key the facade does not read.
fn unexpected_key(key: &str, chosen: BackendKind) -> Error {
    if let Ok(kind) = key.parse::<BackendKind>() {
        if kind == chosen {
            return Error::config(format!(
                "[{key}] is not read: the options of the {kind} backend go in [{}]",
                kind.section()
            ));
        }
        return Error::config(format!(
            "[{key}] configures the {kind} backend, but the backend is {chosen}: remove it or choose {kind}"
        ));
    }
    Error::config(format!(
        "unknown top-level key or section `{key}`: expected {} or [{}]",
        TOP_LEVEL.join(", "),
        chosen.section()
    ))
}

/// Whether the file at `path` with `text` is an oslo.config INI file (see
/// [`Config::from_file`]).
fn is_ini(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("conf") || e.eq_ignore_ascii_case("ini") => true,
        Some(e) if e.eq_ignore_ascii_case("toml") => false,
        _ => {
            let first = text
                .trim_start_matches('\u{feff}')
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
            first.is_some_and(|l| l.starts_with('[') && l.ends_with(']'))
                && text.parse::<toml::Table>().is_err()
        }
    }
}

/// An environment value as TOML: integers and booleans typed, the rest strings.
fn env_value(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = v.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_section_and_context() {
        let c = Config::from_toml_str(
            "backend = \"vault\"\n[context]\nproject_id = \"p\"\n[vault]\nvault_url = \"http://x\"\ntimeout = 5\n",
        )
        .unwrap();
        assert_eq!(c.backend, BackendKind::Vault);
        assert_eq!(c.section["vault_url"].as_str(), Some("http://x"));
        assert_eq!(c.section["timeout"].as_integer(), Some(5));
        assert_eq!(c.context.to_context().project_id, "p");
        assert!(c.fixed_key.is_none());
    }

    #[test]
    fn every_alias_reads_the_canonical_section() {
        for (name, section) in [
            ("mock", "mock"),
            ("embedded", "mock"),
            ("Embedded", "mock"),
            ("barbican", "barbican"),
            (crate::kind::CASTELLAN_BARBICAN_CLASS, "barbican"),
            ("vault", "vault"),
            ("VAULT", "vault"),
            ("openbao", "vault"),
            (crate::kind::CASTELLAN_VAULT_CLASS, "vault"),
        ] {
            let text = format!("backend = \"{name}\"\n[{section}]\nmarker = 1\n");
            let c = Config::from_toml_str(&text).unwrap();
            assert_eq!(c.backend.section(), section, "{name}");
            assert_eq!(c.section["marker"].as_integer(), Some(1), "{name}");
            let text = format!("[key_manager]\nbackend = \"{name}\"\n[{section}]\nmarker = 2\n");
            let c = Config::from_toml_str(&text).unwrap();
            assert_eq!(c.section["marker"].as_integer(), Some(2), "{name}");
        }
    }

    #[test]
    fn stray_sections_are_errors_naming_them() {
        for (text, needle) in [
            (
                "backend = \"embedded\"\n[embedded]\npath = \"/x\"\n",
                "[embedded] is not read",
            ),
            ("backend = \"openbao\"\n[openbao]\n", "go in [vault]"),
            (
                "backend = \"vault\"\n[barbican]\nx = 1\n",
                "[barbican] configures the barbican backend, but the backend is vault",
            ),
            ("backend = \"mock\"\n[vualt]\n", "`vualt`"),
            ("backend = \"mock\"\nbakend = \"vault\"\n", "`bakend`"),
            (
                "backend = \"mock\"\n[key_manager]\nbackend = \"mock\"\n",
                "both",
            ),
            (
                "backend = \"mock\"\n[key_manager]\napi_class = \"mock\"\n",
                "`api_class`",
            ),
            ("backend = \"mock\"\nmock = 3\n", "[mock] must be a table"),
            (
                "backend = \"mock\"\nfixed_key = 7\n",
                "`fixed_key` must be a string",
            ),
            ("backend = \"mock\"\nfixed_key = \"xyz\"\n", "fixed_key"),
            ("backend = \"pykmip\"\n", "unknown backend \"pykmip\""),
        ] {
            let e = Config::from_toml_str(text).unwrap_err();
            assert_eq!(e.kind(), keymgr_core::ErrorKind::Config, "{text}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
        let c = Config::from_toml_str_with_sections(
            "backend = \"mock\"\n[examples]\nx = 1\n",
            &["examples"],
        )
        .unwrap();
        assert_eq!(c.backend, BackendKind::Mock);
    }

    #[test]
    fn debug_shows_option_names_not_values() {
        let c = Config::from_toml_str(
            "backend = \"vault\"\nfixed_key = \"00112233445566778899aabbccddeeff\"\n[vault]\nroot_token_id = \"s.sup3r-secret\"\n",
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("root_token_id"), "{d}");
        assert!(!d.contains("sup3r"), "{d}");
        assert!(!d.contains("8899"), "{d}");
    }

    #[test]
    fn config_errors_name_the_problem() {
        let e = Config::from_toml_str("[vault]\n").unwrap_err();
        assert!(e.to_string().contains("`backend` is missing"), "{e}");
        let e = Config::from_toml_str("backend = 3").unwrap_err();
        assert!(e.to_string().contains("must be a string"), "{e}");
        let e = Config::from_toml_str("backend = \"mock\"\n[context]\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("[context]"), "{e}");
        let e = Config::from_toml_str("backend = ").unwrap_err();
        assert!(e.to_string().contains("TOML"), "{e}");
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_vars_fill_the_selected_section_only() {
        let c = Config::from_vars(vars(&[
            ("KEYMGR_BACKEND", "Vault"),
            ("KEYMGR_VAULT_VAULT_URL", "http://127.0.0.1:1"),
            ("KEYMGR_VAULT_KV_VERSION", "1"),
            ("KEYMGR_BARBICAN_AUTH_ENDPOINT", "http://k"),
            ("KEYMGR_PROJECT", "proj"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.backend, BackendKind::Vault);
        assert_eq!(c.section["vault_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(c.section["kv_version"].as_integer(), Some(1));
        assert!(!c.section.contains_key("auth_endpoint"));
        assert_eq!(c.context.project_id.as_deref(), Some("proj"));
        assert!(Config::from_vars(Vec::new()).unwrap().is_none());
    }

    #[test]
    fn env_aliases_use_the_canonical_prefix() {
        for name in ["embedded", "EMBEDDED", "mock"] {
            let c = Config::from_vars(vars(&[
                ("KEYMGR_BACKEND", name),
                ("KEYMGR_MOCK_PATH", "/tmp/x"),
                ("KEYMGR_FIXED_KEY", "0011"),
            ]))
            .unwrap()
            .unwrap();
            assert_eq!(c.section["path"].as_str(), Some("/tmp/x"), "{name}");
            assert_eq!(c.fixed_key.unwrap().len(), 2);
        }
        let c = Config::from_vars(vars(&[
            ("KEYMGR_BACKEND", "openbao"),
            ("KEYMGR_VAULT_VAULT_URL", "http://v"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.section["vault_url"].as_str(), Some("http://v"));
        let e = Config::from_vars(vars(&[
            ("KEYMGR_BACKEND", "embedded"),
            ("KEYMGR_EMBEDDED_PATH", "/tmp/x"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("KEYMGR_MOCK_"), "{e}");
        let e = Config::from_vars(vars(&[("KEYMGR_BACKEND", "vualt")])).unwrap_err();
        assert!(e.to_string().contains("KEYMGR_BACKEND"), "{e}");
    }

    #[test]
    fn ini_or_toml_by_name_then_content() {
        let ini = "# cinder\n[DEFAULT]\ndebug = True\n";
        let toml = "backend = \"mock\"\n";
        assert!(is_ini(Path::new("a.conf"), toml));
        assert!(is_ini(Path::new("a.INI"), toml));
        assert!(!is_ini(Path::new("a.toml"), ini));
        assert!(is_ini(Path::new("cinder"), ini));
        assert!(!is_ini(Path::new("cfg"), toml));
        assert!(!is_ini(Path::new("cfg"), "[mock]\npath = \"/x\"\n"));
        assert!(!is_ini(Path::new("cfg"), ""));
    }
}

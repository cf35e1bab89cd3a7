//! The facade's configuration: which backend, and its options.
//!
//! A TOML file names the backend and carries one section per backend, with
//! Castellan's option names where Castellan has one:
//!
//! ```toml
//! backend = "vault"            # "mock" | "barbican" | "vault"
//!
//! [context]                    # who the command-line tool acts for
//! project_id = "demo"
//! user_id = "admin"
//!
//! [vault]
//! vault_url = "http://127.0.0.1:8200"
//! root_token_id = "..."
//! kv_mountpoint = "secret"
//! ```
//!
//! The same can come from the environment: `KEYMGR_BACKEND` names the
//! backend and `KEYMGR_<BACKEND>_<OPTION>` sets an option of its section
//! (`KEYMGR_VAULT_VAULT_URL`, `KEYMGR_BARBICAN_AUTH_ENDPOINT`, ...).

use std::path::Path;

use keymgr_core::{Context, Error, Result};

/// A parsed configuration: the backend's name, its section, and the
/// default context of the command-line tool.
///
/// `Debug` shows the section's option names, never their values (the
/// section holds passwords, tokens and secret ids).
#[derive(Clone)]
pub struct Config {
    /// `mock`, `barbican` or `vault`.
    pub backend: String,
    /// The backend's own section (`[mock]`, `[barbican]`, `[vault]`), as TOML.
    pub section: toml::Table,
    /// The `[context]` section.
    pub context: ContextConfig,
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
            .finish()
    }
}

impl Config {
    /// A configuration for `backend` with an empty section.
    pub fn new(backend: impl Into<String>) -> Self {
        Config {
            backend: backend.into(),
            section: toml::Table::new(),
            context: ContextConfig::default(),
        }
    }

    /// Parses a TOML configuration.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::config(format!("not valid TOML: {e}")))?;
        let backend = match table.remove("backend") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(Error::config(format!(
                    "`backend` must be a string, found {}",
                    other.type_str()
                )))
            }
            None => {
                return Err(Error::config(
                    "`backend` is missing (mock, barbican or vault)",
                ))
            }
        };
        let context = match table.remove("context") {
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| Error::config(format!("[context]: {e}")))?,
            None => ContextConfig::default(),
        };
        let section = match table.remove(&backend) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(Error::config(format!("[{backend}] must be a table"))),
            None => toml::Table::new(),
        };
        Ok(Config {
            backend,
            section,
            context,
        })
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::from_toml_str(&text).map_err(|e| Error::config(format!("{}: {e}", path.display())))
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
            .map(|(_, v)| v.to_ascii_lowercase())
        else {
            return Ok(None);
        };
        let prefix = format!("KEYMGR_{}_", backend.to_ascii_uppercase());
        let mut config = Config::new(backend);
        for (k, v) in &vars {
            if let Some(opt) = k.strip_prefix(&prefix) {
                config
                    .section
                    .insert(opt.to_ascii_lowercase(), env_value(v));
            }
        }
        for (k, v) in vars {
            match k.as_str() {
                "KEYMGR_PROJECT" => config.context.project_id = Some(v),
                "KEYMGR_USER" => config.context.user_id = Some(v),
                "KEYMGR_ROLES" => {
                    config.context.roles = v.split(',').map(|r| r.trim().to_string()).collect()
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
            .map_err(|e: toml::de::Error| Error::config(format!("[{}]: {e}", self.backend)))
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
            "backend = \"vault\"\n[context]\nproject_id = \"p\"\n[vault]\nvault_url = \"http://x\"\ntimeout = 5\n[barbican]\nx = 1\n",
        )
        .unwrap();
        assert_eq!(c.backend, "vault");
        assert_eq!(c.section["vault_url"].as_str(), Some("http://x"));
        assert_eq!(c.section["timeout"].as_integer(), Some(5));
        assert!(!c.section.contains_key("x"));
        assert_eq!(c.context.to_context().project_id, "p");
    }

    #[test]
    fn debug_shows_option_names_not_values() {
        let c = Config::from_toml_str(
            "backend = \"vault\"\n[vault]\nroot_token_id = \"s.sup3r-secret\"\n",
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("root_token_id"), "{d}");
        assert!(!d.contains("sup3r"), "{d}");
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

    #[test]
    fn env_vars_fill_the_selected_section_only() {
        let vars = [
            ("KEYMGR_BACKEND", "Vault"),
            ("KEYMGR_VAULT_VAULT_URL", "http://127.0.0.1:1"),
            ("KEYMGR_VAULT_KV_VERSION", "1"),
            ("KEYMGR_BARBICAN_AUTH_ENDPOINT", "http://k"),
            ("KEYMGR_PROJECT", "proj"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        let c = Config::from_vars(vars).unwrap().unwrap();
        assert_eq!(c.backend, "vault");
        assert_eq!(c.section["vault_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(c.section["kv_version"].as_integer(), Some(1));
        assert!(!c.section.contains_key("auth_endpoint"));
        assert_eq!(c.context.project_id.as_deref(), Some("proj"));
        assert!(Config::from_vars(Vec::new()).unwrap().is_none());
    }
}

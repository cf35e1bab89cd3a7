//! Configuration of the embedded backend, as the facade reads it.

use std::path::{Path, PathBuf};

use keymgr_core::{Error, Result};

use crate::{Argon2Params, MasterKey, MockKeyManager};

/// The `[mock]` section of a keymgr configuration.
///
/// ```toml
/// [mock]
/// path = "/var/lib/svc/keys.sealed"   # omit for a memory-only store
/// key_file = "/var/lib/svc/keys.key"  # default: <path>.key, created if the store is new
/// # or: passphrase_env = "SVC_STORE_PASSPHRASE"   (Argon2id)
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// The sealed file; `None` keeps secrets in memory only.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A key file of 32 random bytes. When neither this nor
    /// `passphrase_env` is set, `<path>.key` is used. A missing key file
    /// is created (mode 0600) only when the store file does not exist yet.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name of an environment variable holding the passphrase (the
    /// passphrase itself never goes in a configuration file).
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// Argon2id memory (KiB) for a *new* passphrase-sealed file.
    #[serde(default)]
    pub argon2_memory_kib: Option<u32>,
    /// Argon2id passes for a new passphrase-sealed file.
    #[serde(default)]
    pub argon2_iterations: Option<u32>,
    /// Argon2id lanes for a new passphrase-sealed file.
    #[serde(default)]
    pub argon2_parallelism: Option<u32>,
}

/// The key file used for the store at `store` when the configuration
/// names none: the store's file name with `.key` appended
/// (`store.sealed` → `store.sealed.key`).
pub fn default_key_file_for(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_owned();
    s.push(".key");
    PathBuf::from(s)
}

impl MockConfig {
    /// The master key the configuration describes, for the store at `path`.
    pub fn master_key(&self, path: &Path) -> Result<MasterKey> {
        let has_params = self.argon2_memory_kib.is_some()
            || self.argon2_iterations.is_some()
            || self.argon2_parallelism.is_some();
        match (&self.key_file, &self.passphrase_env) {
            (Some(_), Some(_)) => Err(Error::config(
                "[mock]: set key_file or passphrase_env, not both",
            )),
            (None, Some(var)) => {
                let pass = std::env::var(var).map_err(|e| {
                    Error::config(format!(
                        "[mock]: passphrase_env names {var:?}, which is {}",
                        match e {
                            std::env::VarError::NotPresent => "not set",
                            std::env::VarError::NotUnicode(_) => "not valid Unicode",
                        }
                    ))
                })?;
                if pass.is_empty() {
                    return Err(Error::config(format!(
                        "[mock]: the passphrase in {var:?} is empty"
                    )));
                }
                let d = Argon2Params::DEFAULT;
                let params = Argon2Params {
                    memory_kib: self.argon2_memory_kib.unwrap_or(d.memory_kib),
                    iterations: self.argon2_iterations.unwrap_or(d.iterations),
                    parallelism: self.argon2_parallelism.unwrap_or(d.parallelism),
                };
                Ok(MasterKey::from_passphrase(pass)?.with_argon2_params(params)?)
            }
            (key_file, None) => {
                if has_params {
                    return Err(Error::config(
                        "[mock]: argon2_* options apply only with passphrase_env",
                    ));
                }
                let key_file = key_file
                    .clone()
                    .unwrap_or_else(|| default_key_file_for(path));
                let store_exists = std::fs::symlink_metadata(path).is_ok();
                let key = if store_exists {
                    match MasterKey::load_key_file(&key_file) {
                        Err(crate::SealedError::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            return Err(Error::config(format!(
                                "[mock]: the sealed store {} exists but its key file {} does not",
                                path.display(),
                                key_file.display()
                            )))
                        }
                        other => other?,
                    }
                } else {
                    MasterKey::load_or_create_key_file(&key_file)?
                };
                Ok(key)
            }
        }
    }
}

impl MockKeyManager {
    /// Builds the backend a `[mock]` section describes: memory only
    /// without `path`, else the sealed file opened (or created) with the
    /// configured master key. Errors are `Config` (bad settings, unusable
    /// file), `Unauthenticated` (wrong key) or `Unavailable` (I/O).
    pub fn from_config(config: &MockConfig) -> Result<Self> {
        let Some(path) = &config.path else {
            if config.key_file.is_some() || config.passphrase_env.is_some() {
                return Err(Error::config(
                    "[mock]: key_file and passphrase_env need a path (the sealed store file)",
                ));
            }
            return Ok(MockKeyManager::new());
        };
        let master = config.master_key(path)?;
        Ok(MockKeyManager::open_sealed(path, master)?)
    }
}

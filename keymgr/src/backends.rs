//! Building the configured backend.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use keymgr_core::{Error, KeyManager, Result};

use crate::Config;

/// The backends this facade knows, whether or not compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded store (`keymgr-mock`).
    Mock,
    /// OpenStack Barbican (`keymgr-barbican`).
    Barbican,
    /// HashiCorp Vault or OpenBao (`keymgr-vault`).
    Vault,
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mock" | "embedded" => Ok(BackendKind::Mock),
            "barbican" => Ok(BackendKind::Barbican),
            "vault" | "openbao" => Ok(BackendKind::Vault),
            _ => Err(Error::config(format!(
                "unknown backend {s:?}: expected mock, barbican or vault"
            ))),
        }
    }
}

/// Builds the backend `config` names.
///
/// A backend whose feature is not compiled in is a `Config` error saying
/// which feature to enable.
pub fn build(config: &Config) -> Result<Arc<dyn KeyManager>> {
    match config.backend.parse::<BackendKind>()? {
        BackendKind::Mock => build_mock(config),
        BackendKind::Barbican => build_barbican(config),
        BackendKind::Vault => build_vault(config),
    }
}

/// Reads a TOML file and builds its backend.
pub fn from_config_file(path: &Path) -> Result<Arc<dyn KeyManager>> {
    build(&Config::from_file(path)?)
}

/// Builds the backend named by `KEYMGR_BACKEND` and `KEYMGR_*` variables,
/// or `None` when `KEYMGR_BACKEND` is not set.
pub fn from_env() -> Result<Option<Arc<dyn KeyManager>>> {
    Config::from_env()?.map(|c| build(&c)).transpose()
}

#[cfg(not(all(feature = "mock", feature = "barbican", feature = "vault")))]
fn not_compiled(name: &str) -> Error {
    Error::config(format!(
        "backend {name:?} is not compiled into this build: enable the keymgr feature \"{name}\""
    ))
}

#[cfg(feature = "mock")]
fn build_mock(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_mock::MockConfig = config.section_as()?;
    Ok(Arc::new(keymgr_mock::MockKeyManager::from_config(&cfg)?))
}

#[cfg(not(feature = "mock"))]
fn build_mock(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled("mock"))
}

#[cfg(feature = "barbican")]
fn build_barbican(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_barbican::BarbicanConfig = config.section_as()?;
    Ok(Arc::new(keymgr_barbican::BarbicanKeyManager::new(cfg)?))
}

#[cfg(not(feature = "barbican"))]
fn build_barbican(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled("barbican"))
}

#[cfg(feature = "vault")]
fn build_vault(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_vault::VaultConfig = config.section_as()?;
    Ok(Arc::new(keymgr_vault::VaultKeyManager::new(cfg)?))
}

#[cfg(not(feature = "vault"))]
fn build_vault(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled("vault"))
}

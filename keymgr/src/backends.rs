//! Building the configured backend.

use std::path::Path;
use std::sync::Arc;

use keymgr_core::{KeyManager, Result};

use crate::fixed_key::MigrationKeyManager;
use crate::Config;

pub use crate::kind::BackendKind;

/// Builds the backend `config` names, wrapped in Castellan's migration key
/// manager ([`MigrationKeyManager`]) when `fixed_key` is configured.
///
/// A backend whose feature is not compiled in is a `Config` error saying
/// which feature to enable. An embedded store without `path` keeps its
/// secrets in memory only; that is logged as a warning, never chosen
/// silently in place of a configured file.
pub fn build(config: &Config) -> Result<Arc<dyn KeyManager>> {
    // Managers built from one configuration share its HTTP clients.
    let km = config.pool.enter(|| match config.backend {
        BackendKind::Mock => build_mock(config),
        BackendKind::Barbican => build_barbican(config),
        BackendKind::Vault => build_vault(config),
        BackendKind::Kmip => build_kmip(config),
    })?;
    Ok(match &config.fixed_key {
        Some(key) => Arc::new(MigrationKeyManager::new(km, key.clone())),
        None => km,
    })
}

/// Reads a configuration file (TOML or oslo.config INI, see
/// [`Config::from_file`]) and builds its backend.
pub fn from_config_file(path: &Path) -> Result<Arc<dyn KeyManager>> {
    build(&Config::from_file(path)?)
}

/// Builds the backend named by `KEYMGR_BACKEND` and `KEYMGR_*` variables,
/// or `None` when `KEYMGR_BACKEND` is not set.
pub fn from_env() -> Result<Option<Arc<dyn KeyManager>>> {
    Config::from_env()?.map(|c| build(&c)).transpose()
}

#[cfg(not(all(
    feature = "mock",
    feature = "barbican",
    feature = "vault",
    feature = "kmip"
)))]
fn not_compiled(kind: BackendKind) -> keymgr_core::Error {
    let name = kind.name();
    keymgr_core::Error::config(format!(
        "backend {name:?} is not compiled into this build: enable the keymgr feature \"{name}\""
    ))
}

#[cfg(feature = "mock")]
fn build_mock(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_mock::MockConfig = config.section_as()?;
    if cfg.path.is_none() {
        tracing::warn!(
            "the embedded store has no `path` in [mock]: secrets are kept in memory and lost when the process ends"
        );
    }
    Ok(Arc::new(keymgr_mock::MockKeyManager::from_config(&cfg)?))
}

#[cfg(not(feature = "mock"))]
fn build_mock(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled(BackendKind::Mock))
}

#[cfg(feature = "barbican")]
fn build_barbican(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_barbican::BarbicanConfig = config.section_as()?;
    Ok(Arc::new(keymgr_barbican::BarbicanKeyManager::new(cfg)?))
}

#[cfg(not(feature = "barbican"))]
fn build_barbican(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled(BackendKind::Barbican))
}

#[cfg(feature = "vault")]
fn build_vault(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_vault::VaultConfig = config.section_as()?;
    Ok(Arc::new(keymgr_vault::VaultKeyManager::new(cfg)?))
}

#[cfg(not(feature = "vault"))]
fn build_vault(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled(BackendKind::Vault))
}

#[cfg(feature = "kmip")]
fn build_kmip(config: &Config) -> Result<Arc<dyn KeyManager>> {
    let cfg: keymgr_kmip::KmipConfig = config.section_as()?;
    Ok(Arc::new(keymgr_kmip::KmipKeyManager::new(cfg)?))
}

#[cfg(not(feature = "kmip"))]
fn build_kmip(_: &Config) -> Result<Arc<dyn KeyManager>> {
    Err(not_compiled(BackendKind::Kmip))
}

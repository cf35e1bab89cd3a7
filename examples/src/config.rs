//! Service configuration: the key manager, the acting context, where state
//! lives, LUKS KDF costs and the `[ephemeral_storage_encryption]` section.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keymgr::{Config, Context, KeyManager};
use luks::{PbkdfOptions, PbkdfType};

use crate::{Result, ServiceError};

/// Nova's `[ephemeral_storage_encryption]` options.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralConfig {
    /// Encrypt ephemeral disks.
    #[serde(default)]
    pub enabled: bool,
    /// dm-crypt / LUKS cipher.
    #[serde(default = "default_cipher")]
    pub cipher: String,
    /// Key size in bits.
    #[serde(default = "default_key_size")]
    pub key_size: u32,
}

fn default_cipher() -> String {
    "aes-xts-plain64".into()
}
fn default_key_size() -> u32 {
    512
}

impl Default for EphemeralConfig {
    fn default() -> Self {
        EphemeralConfig {
            enabled: false,
            cipher: default_cipher(),
            key_size: default_key_size(),
        }
    }
}

/// The `[examples]` section: costs and limits of the example services.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesSection {
    /// Force this many PBKDF2 iterations for every keyslot (tests, demos);
    /// unset means cryptsetup's defaults (argon2id benchmark for LUKS2).
    pub pbkdf2_force_iterations: Option<u32>,
    /// The share driver's `encryption_support` capability (default both).
    pub share_driver_encryption_support: Option<Vec<String>>,
    /// Default quota `server_encryption_keys` per project.
    pub server_encryption_keys_quota: Option<u32>,
}

/// Everything a service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The state directory: `state.db` and `devices/`.
    pub state_dir: PathBuf,
    /// The key manager.
    pub km: Arc<dyn KeyManager>,
    /// Who the request acts for.
    pub ctx: Context,
    /// KDF options of every keyslot the services write.
    pub pbkdf: PbkdfOptions,
    /// Nova ephemeral encryption options.
    pub ephemeral: EphemeralConfig,
    /// Share driver capability `encryption_support`.
    pub share_driver_support: Vec<String>,
    /// Default `server_encryption_keys` quota.
    pub server_keys_quota: u32,
}

/// The default configuration: a sealed mock store inside the state dir.
pub fn default_mock_toml(state_dir: &Path) -> String {
    let store = state_dir.join("keys.sealed");
    format!(
        "backend = \"mock\"\n[mock]\npath = {:?}\n",
        store.display().to_string()
    )
}

impl ServiceConfig {
    /// Builds the configuration from keymgr TOML text (which may also hold
    /// `[examples]` and `[ephemeral_storage_encryption]`).
    pub fn from_toml(state_dir: &Path, toml_text: &str) -> Result<ServiceConfig> {
        std::fs::create_dir_all(state_dir.join("devices")).map_err(ServiceError::io(format!(
            "creating {}",
            state_dir.display()
        )))?;
        let kcfg = Config::from_toml_str_with_sections(
            toml_text,
            &["examples", "ephemeral_storage_encryption"],
        )?;
        let table: toml::Table = toml_text
            .parse()
            .map_err(|e| ServiceError::BadRequest(format!("config: {e}")))?;
        let ephemeral: EphemeralConfig = match table.get("ephemeral_storage_encryption") {
            Some(v) => v.clone().try_into().map_err(|e| {
                ServiceError::BadRequest(format!("[ephemeral_storage_encryption]: {e}"))
            })?,
            None => EphemeralConfig::default(),
        };
        let ex: ExamplesSection = match table.get("examples") {
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e| ServiceError::BadRequest(format!("[examples]: {e}")))?,
            None => ExamplesSection::default(),
        };
        let pbkdf = match ex.pbkdf2_force_iterations {
            Some(n) => PbkdfOptions {
                pbkdf: Some(PbkdfType::Pbkdf2),
                force_iterations: Some(n),
                ..Default::default()
            },
            None => PbkdfOptions::default(),
        };
        Ok(ServiceConfig {
            state_dir: state_dir.to_path_buf(),
            km: keymgr::build(&kcfg)?,
            ctx: kcfg.context.to_context(),
            pbkdf,
            ephemeral,
            share_driver_support: ex
                .share_driver_encryption_support
                .unwrap_or_else(|| vec!["share".into(), "share_server".into()]),
            server_keys_quota: ex.server_encryption_keys_quota.unwrap_or(10),
        })
    }

    /// The same configuration acting for another project/user.
    pub fn with_context(&self, ctx: Context) -> ServiceConfig {
        ServiceConfig {
            ctx,
            ..self.clone()
        }
    }

    /// qemu-img's LUKS `iter-time` (ms): 1 when test costs are forced, else 2000.
    pub fn qemu_iter_time_ms(&self) -> u32 {
        if self.pbkdf.force_iterations.is_some() {
            1
        } else {
            2000
        }
    }

    /// The file standing in for block device `name`.
    pub fn device_path(&self, name: &str) -> PathBuf {
        self.state_dir.join("devices").join(format!("{name}.img"))
    }
}

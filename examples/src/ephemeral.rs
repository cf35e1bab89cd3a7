//! Nova-like ephemeral storage encryption: one new key per instance, made
//! at boot, fetched right before the disk is created and never written in
//! clear; the disk is a LUKS2 file in userspace (plain dm-crypt needs
//! device-mapper), wiped before each use so a crashed instance's backing
//! file exposes nothing to the next one; the key dies with the instance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keymgr::{ErrorKind, KeySpec};

use crate::config::ServiceConfig;
use crate::device::{self, DeviceSpec};
use crate::state::State;
use crate::volume::{parse_ref, VolumeHandle};
use crate::{new_id, Result, ServiceError};

/// Record kind of instances.
pub const KIND_INSTANCE: &str = "instance";
const MIB: u64 = 1 << 20;

/// An instance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// Id.
    pub id: String,
    /// Project.
    pub project: String,
    /// Ephemeral disk backing file.
    pub disk: PathBuf,
    /// Disk size in MiB.
    pub size_mib: u64,
    /// The instance's key (None when encryption is disabled).
    pub key_id: Option<String>,
}

/// Whether plain dm-crypt (`cryptsetup create`) could be used here, or why not.
pub fn dm_crypt_unavailable_reason() -> Option<String> {
    if !Path::new("/dev/mapper/control").exists() {
        return Some("device-mapper is not available (/dev/mapper/control missing)".into());
    }
    let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
    if !misc.contains("device-mapper") {
        return Some("device-mapper is not registered in /proc/misc".into());
    }
    Some("kernel dm-crypt activation is not used by this example (userspace LUKS2 only)".into())
}

/// The ephemeral storage service.
#[derive(Debug, Clone)]
pub struct EphemeralService {
    /// Configuration.
    pub cfg: ServiceConfig,
    /// State.
    pub state: Arc<State>,
}

impl EphemeralService {
    /// A service over `cfg`'s state directory.
    pub fn new(cfg: ServiceConfig) -> Result<EphemeralService> {
        let state = Arc::new(State::open(&cfg.state_dir)?);
        Ok(EphemeralService { cfg, state })
    }

    /// Boots an instance with an ephemeral disk of `size_mib` on `backing`
    /// (default: a new file in the state dir). Any previous content of the
    /// backing file is wiped first.
    pub async fn boot(&self, size_mib: u64, backing: Option<&Path>) -> Result<Instance> {
        let e = &self.cfg.ephemeral;
        let ctx = &self.cfg.ctx;
        let km = &self.cfg.km;
        let id = new_id();
        let disk = backing
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.cfg.device_path(&format!("instance-{id}-disk.eph0")));
        // the key is made at boot, before the disk exists
        let key_id = if e.enabled {
            Some(km.create_key(ctx, &KeySpec::aes(e.key_size)).await?)
        } else {
            None
        };
        let inst = Instance {
            id: id.clone(),
            project: ctx.project_id.clone(),
            disk: disk.clone(),
            size_mib: size_mib.max(1),
            key_id: key_id.as_ref().map(|k| k.to_string()),
        };
        self.state.put(KIND_INSTANCE, &id, &inst.project, &inst)?;
        wipe(&disk)?;
        if let Some(k) = &key_id {
            if let Some(reason) = dm_crypt_unavailable_reason() {
                eprintln!(
                    "ephemeral: plain dm-crypt skipped: {reason}; using a LUKS2 file in userspace"
                );
            }
            // fetched immediately before the disk is created; held only in memory
            let pass = device::passphrase_of(km.as_ref(), ctx, k).await?;
            let spec = DeviceSpec {
                luks_type: luks::LuksType::Luks2,
                cipher: e.cipher.clone(),
                key_size: e.key_size,
                pbkdf: self.cfg.pbkdf.clone(),
            };
            device::format(&disk, inst.size_mib * MIB, &spec, pass.as_bytes())?;
        } else {
            let f = std::fs::File::create(&disk).map_err(ServiceError::io("creating disk"))?;
            f.set_len(inst.size_mib * MIB)
                .map_err(ServiceError::io("sizing disk"))?;
        }
        Ok(inst)
    }

    /// An instance of the project.
    pub fn get(&self, id: &str) -> Result<Instance> {
        let i: Instance = self.state.need(KIND_INSTANCE, id)?;
        if i.project != self.cfg.ctx.project_id {
            return Err(ServiceError::NotFound(format!("instance {id}")));
        }
        Ok(i)
    }

    /// The project's instances.
    pub fn list(&self) -> Result<Vec<Instance>> {
        self.state
            .list(KIND_INSTANCE, Some(&self.cfg.ctx.project_id))
    }

    /// Opens an instance's ephemeral disk.
    pub async fn open(&self, id: &str) -> Result<VolumeHandle> {
        let i = self.get(id)?;
        match &i.key_id {
            Some(k) => {
                let pass =
                    device::passphrase_of(self.cfg.km.as_ref(), &self.cfg.ctx, &parse_ref(k)?)
                        .await?;
                Ok(VolumeHandle::Encrypted(Box::new(device::open(
                    &i.disk,
                    pass.as_bytes(),
                )?)))
            }
            None => Ok(VolumeHandle::Plain(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&i.disk)
                    .map_err(ServiceError::io("opening disk"))?,
            )),
        }
    }

    /// Deletes an instance: its disk is wiped and removed, its key deleted.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let i = self.get(id)?;
        wipe(&i.disk)?;
        let _ = std::fs::remove_file(&i.disk);
        if let Some(k) = &i.key_id {
            match self
                .cfg
                .km
                .delete(&self.cfg.ctx, &parse_ref(k)?, false)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.state.delete(KIND_INSTANCE, id)?;
        Ok(())
    }
}

/// Overwrites an existing file with zeros (no-op when missing).
fn wipe(path: &Path) -> Result<()> {
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return Ok(());
    };
    let len = f.metadata().map_err(ServiceError::io("stat disk"))?.len();
    luks::wipe(&f, 0, len)?;
    f.sync_all().map_err(ServiceError::io("sync disk"))
}

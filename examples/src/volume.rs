//! A Cinder-like volume service with bring-your-own-key encryption.
//!
//! Encrypted volume types name the provider as Cinder stores it and
//! os-brick reads it (`luks` = LUKS1, `luks2`, `plain`, or os-brick's
//! encryptor class paths; see [`luks::Provider`]), the cipher and the key
//! size. Plain dm-crypt needs the kernel's device-mapper, and this service
//! attaches volumes in userspace: a plain type can be created (Cinder's types
//! are shared with Nova), but a volume of it is refused with the reason. A volume's key is the caller's key cloned (so the
//! volume owns its copy) or a new key; the LUKS passphrase follows
//! os-brick's rule. Copies (snapshot -> volume, volume -> volume) are
//! reencrypted under a volume key and a secret of their own (so are, on request,
//! volumes from encrypted images); the user's key rotation reencrypts a volume
//! under a new secret (resumable); legacy mangled-passphrase volumes are
//! fixed on first open; transfers move the key to the recipient.

use std::fs::File;
use std::sync::Arc;

use keymgr::{Consumer, Context, ErrorKind, KeySpec, NewSecret, SecretId};
use luks::{LuksType, Provider};

use crate::config::ServiceConfig;
use crate::device::{self, DeviceSpec};
use crate::image::{Image, ImageService};
use crate::state::State;
use crate::{new_id, Result, ServiceError};

/// Record kind of volume types.
pub const KIND_TYPE: &str = "volume_type";
/// Record kind of volumes.
pub const KIND_VOLUME: &str = "volume";
/// Record kind of snapshots.
pub const KIND_SNAPSHOT: &str = "snapshot";
const MIB: u64 = 1 << 20;

/// A volume type's encryption spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encryption {
    /// The provider as given (`luks`, `luks2`, `plain` or an os-brick class path).
    pub provider: String,
    /// `aes-xts-plain64`.
    pub cipher: String,
    /// 256 or 512.
    pub key_size: u32,
}

/// A volume type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VolumeType {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Encryption, when encrypted.
    pub encryption: Option<Encryption>,
}

/// A volume.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VolumeRecord {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: String,
    /// Size in MiB.
    pub size_mib: u64,
    /// Volume type id.
    pub type_id: Option<String>,
    /// The volume's own key, when encrypted.
    pub encryption_key_id: Option<String>,
    /// `available` or `in-use`.
    pub status: String,
    /// Where it came from (`snapshot:ID`, `volume:ID`, `image:ID`).
    pub source: Option<String>,
    /// The key a key rotation in progress moves the volume to (the volume's own,
    /// registered as a consumer); set before the data is touched, cleared once the
    /// rotation is done. See [`VolumeService::rotate_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotating_to: Option<String>,
}

/// Tuning of [`VolumeService::rotate_key_with`].
#[derive(Debug, Clone, Default)]
pub struct RotateOptions {
    /// Bytes rewritten per hotzone (default: the reencryption's own).
    pub hotzone_size: Option<u64>,
    /// Test hook: the reencryption fails at this device write, as a machine dying
    /// mid-run would (see `luks::reencrypt::ReencryptOptions`).
    #[doc(hidden)]
    pub crash_at_write: Option<(u64, usize)>,
}

/// How [`VolumeService::rotate_key_with`] ended.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The volume is under a new volume key opened by its new secret; the old
    /// secret is deleted.
    Done(VolumeRecord),
    /// Stopped by the progress callback: call again to resume.
    Stopped(luks::reencrypt::Progress),
}

/// A snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRecord {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: String,
    /// The volume it was taken from.
    pub volume_id: String,
    /// Size in MiB.
    pub size_mib: u64,
    /// Volume type id.
    pub type_id: Option<String>,
    /// The snapshot's own key (a clone of the volume's).
    pub encryption_key_id: Option<String>,
}

/// A request to create a volume.
#[derive(Debug, Clone, Default)]
pub struct CreateVolume {
    /// Size in MiB (may be 0 with a source: then the source's).
    pub size_mib: u64,
    /// Type name or id.
    pub volume_type: Option<String>,
    /// The caller's key to use (cloned).
    pub encryption_key_id: Option<String>,
    /// Source snapshot.
    pub snapshot_id: Option<String>,
    /// Source volume (clone).
    pub source_volid: Option<String>,
    /// Source image.
    pub image_id: Option<String>,
    /// Format with the legacy mangled passphrase (to reproduce old volumes).
    pub legacy_passphrase: bool,
    /// From an encrypted image: reencrypt the volume under a volume key and a
    /// secret of its own, instead of keeping the image's volume key with a clone of
    /// the image's secret. (Copies of volumes and snapshots are always reencrypted;
    /// a volume from a plaintext image has a key of its own anyway.)
    pub reencrypt: bool,
}

/// An open volume: userspace reads and writes of its plaintext, each write
/// synced to the device file (the one [`device::DeviceHandle`]).
pub type VolumeHandle = device::DeviceHandle;

/// The volume service.
#[derive(Debug, Clone)]
pub struct VolumeService {
    /// Configuration (key manager, context).
    pub cfg: ServiceConfig,
    /// State.
    pub state: Arc<State>,
}

fn km_err(what: &str, e: keymgr::Error) -> ServiceError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::InvalidInput => {
            ServiceError::BadRequest(format!("{what}: {e}"))
        }
        _ => ServiceError::Key(e),
    }
}

/// Parses a key reference, naming it when malformed.
pub fn parse_ref(r: &str) -> Result<SecretId> {
    SecretId::parse(r)
        .map_err(|e| ServiceError::BadRequest(format!("encryption key ref {r:?}: {e}")))
}

impl VolumeService {
    /// A service over `cfg`'s state directory.
    pub fn new(cfg: ServiceConfig) -> Result<VolumeService> {
        let state = Arc::new(State::open(&cfg.state_dir)?);
        Ok(VolumeService { cfg, state })
    }

    /// The same service acting for `ctx`.
    pub fn as_user(&self, ctx: Context) -> VolumeService {
        VolumeService {
            cfg: self.cfg.with_context(ctx),
            state: self.state.clone(),
        }
    }

    fn ctx(&self) -> &Context {
        &self.cfg.ctx
    }

    /// Creates a volume type (`encryption` None: plain).
    pub fn create_type(&self, name: &str, encryption: Option<Encryption>) -> Result<VolumeType> {
        if let Some(e) = &encryption {
            if let Err(err) = e.provider.parse::<Provider>() {
                return Err(ServiceError::BadRequest(format!(
                    "volume type {name}: {err}"
                )));
            }
            if e.cipher != "aes-xts-plain64" {
                return Err(ServiceError::BadRequest(format!(
                    "volume type {name}: cipher {:?} (aes-xts-plain64)",
                    e.cipher
                )));
            }
            if !matches!(e.key_size, 256 | 512) {
                return Err(ServiceError::BadRequest(format!(
                    "volume type {name}: key size {} (256 or 512)",
                    e.key_size
                )));
            }
        }
        if self.find_type(name)?.is_some() {
            return Err(ServiceError::Conflict(format!("volume type {name} exists")));
        }
        let t = VolumeType {
            id: new_id(),
            name: name.into(),
            encryption,
        };
        self.state.put(KIND_TYPE, &t.id, "", &t)?;
        Ok(t)
    }

    /// A type by name or id.
    pub fn find_type(&self, name_or_id: &str) -> Result<Option<VolumeType>> {
        Ok(self
            .state
            .list::<VolumeType>(KIND_TYPE, None)?
            .into_iter()
            .find(|t| t.name == name_or_id || t.id == name_or_id))
    }

    /// Every volume type.
    pub fn list_types(&self) -> Result<Vec<VolumeType>> {
        self.state.list(KIND_TYPE, None)
    }

    /// A volume of the caller's project.
    pub fn get(&self, id: &str) -> Result<VolumeRecord> {
        let v: VolumeRecord = self.state.need(KIND_VOLUME, id)?;
        if v.project != self.ctx().project_id {
            return Err(ServiceError::NotFound(format!("volume {id}")));
        }
        Ok(v)
    }

    /// The caller's volumes.
    pub fn list(&self) -> Result<Vec<VolumeRecord>> {
        self.state.list(KIND_VOLUME, Some(&self.ctx().project_id))
    }

    /// A snapshot of the caller's project.
    pub fn get_snapshot(&self, id: &str) -> Result<SnapshotRecord> {
        let s: SnapshotRecord = self.state.need(KIND_SNAPSHOT, id)?;
        if s.project != self.ctx().project_id {
            return Err(ServiceError::NotFound(format!("snapshot {id}")));
        }
        Ok(s)
    }

    fn type_of(&self, type_id: &Option<String>) -> Result<Option<VolumeType>> {
        match type_id {
            Some(t) => self.state.get(KIND_TYPE, t),
            None => Ok(None),
        }
    }

    fn device_spec(&self, e: &Encryption) -> Result<DeviceSpec> {
        Ok(DeviceSpec {
            luks_type: luks_type_of(e)?,
            cipher: e.cipher.clone(),
            key_size: e.key_size,
            pbkdf: self.cfg.pbkdf.clone(),
        })
    }

    fn consumer(kind: &str, id: &str) -> Consumer {
        Consumer::new("cinder", kind, id)
    }

    /// Clones the caller's key `r` (validated: it must be visible) so the
    /// volume owns its copy.
    async fn clone_caller_key(&self, r: &str) -> Result<SecretId> {
        let id = parse_ref(r)?;
        self.cfg
            .km
            .clone_secret(self.ctx(), &id)
            .await
            .map_err(|e| km_err(&format!("encryption key {r}"), e))
    }

    /// Creates a volume: empty, or from a snapshot, a volume or an image.
    pub async fn create(&self, req: &CreateVolume) -> Result<VolumeRecord> {
        let vtype = match &req.volume_type {
            Some(t) => Some(
                self.find_type(t)?
                    .ok_or_else(|| ServiceError::NotFound(format!("volume type {t}")))?,
            ),
            None => None,
        };
        let enc = vtype.as_ref().and_then(|t| t.encryption.clone());
        let type_id = vtype.as_ref().map(|t| t.id.clone());
        if enc.is_none() && req.encryption_key_id.is_some() {
            return Err(ServiceError::BadRequest(
                "an encryption key id needs an encrypted volume type".into(),
            ));
        }
        let id = new_id();
        let path = self.cfg.device_path(&format!("volume-{id}"));
        // the source: (device file, its key, size)
        let source: Option<(std::path::PathBuf, Option<String>, u64, String)> =
            if let Some(s) = &req.snapshot_id {
                let s = self.get_snapshot(s)?;
                Some((
                    self.cfg.device_path(&format!("snapshot-{}", s.id)),
                    s.encryption_key_id,
                    s.size_mib,
                    format!("snapshot:{}", s.id),
                ))
            } else if let Some(v) = &req.source_volid {
                let v = self.get(v)?;
                Self::not_rotating(&v)?;
                Some((
                    self.cfg.device_path(&format!("volume-{}", v.id)),
                    v.encryption_key_id,
                    v.size_mib,
                    format!("volume:{}", v.id),
                ))
            } else {
                None
            };
        if req.reencrypt && req.image_id.is_none() {
            return Err(ServiceError::BadRequest(
                "reencrypt is for a volume from an encrypted image; copies of volumes and \
                 snapshots are always reencrypted"
                    .into(),
            ));
        }
        if let Some(image_id) = &req.image_id {
            return self
                .create_from_image(&id, image_id, req, type_id, enc)
                .await;
        }
        let size_mib = match &source {
            Some((_, _, s, _)) if req.size_mib == 0 => *s,
            Some((_, _, s, _)) if req.size_mib < *s => {
                return Err(ServiceError::BadRequest(format!(
                    "size {} MiB is smaller than the source's {s} MiB",
                    req.size_mib
                )))
            }
            _ => req.size_mib,
        };
        if size_mib == 0 {
            return Err(ServiceError::BadRequest(
                "size must be at least 1 MiB".into(),
            ));
        }
        let km = &self.cfg.km;
        let key_id: Option<SecretId> = match (&enc, &source) {
            (None, Some((_, Some(_), _, _))) => {
                return Err(ServiceError::BadRequest(
                    "the source is encrypted: the new volume needs an encrypted type".into(),
                ))
            }
            (None, _) => {
                match &source {
                    Some((src, _, _, _)) => std::fs::copy(src, &path)
                        .map(|_| ())
                        .map_err(ServiceError::io("copying source"))?,
                    None => {
                        let f = File::create(&path).map_err(ServiceError::io("creating volume"))?;
                        f.set_len(size_mib * MIB)
                            .map_err(ServiceError::io("sizing volume"))?;
                    }
                }
                if let Some((_, _, s, _)) = &source {
                    if size_mib > *s {
                        device::extend(&path, (size_mib - s) * MIB)?;
                    }
                }
                None
            }
            (Some(_), Some((_, None, _, _))) => return Err(ServiceError::BadRequest(
                "the source is not encrypted; copying it into an encrypted type is not supported"
                    .into(),
            )),
            (Some(e), Some((src, Some(src_key), s, _))) => {
                let src_key = parse_ref(src_key)?;
                let src_secret = km.get(self.ctx(), &src_key).await?;
                if let Some(r) = &req.encryption_key_id {
                    let caller = km
                        .get(self.ctx(), &parse_ref(r)?)
                        .await
                        .map_err(|err| km_err(&format!("encryption key {r}"), err))?;
                    if caller.payload.expose() != src_secret.payload.expose()
                        || caller.kind() != src_secret.kind()
                    {
                        return Err(ServiceError::Conflict(format!(
                            "encryption key {r} differs from the key of the encrypted source; \
                             an encrypted copy is opened with the source's key, then reencrypted under a key \
                             of its own"
                        )));
                    }
                }
                // A key of its own and a volume key of its own: the copy is reencrypted
                // (LUKS2) or its plaintext copied into a new container (LUKS1), so that
                // deleting the source's key shreds nothing the copy holds.
                let spec = self.device_spec(e)?;
                let old = device::passphrase_of(km.as_ref(), self.ctx(), &src_key).await?;
                let new_key = km.create_key(self.ctx(), &KeySpec::aes(e.key_size)).await?;
                let res = async {
                    let new = device::passphrase_of(km.as_ref(), self.ctx(), &new_key).await?;
                    device::reencrypted_copy(src, &path, old.as_bytes(), new.as_bytes(), &spec)?;
                    if size_mib > *s {
                        device::extend(&path, (size_mib - s) * MIB)?;
                    }
                    Ok::<(), ServiceError>(())
                }
                .await;
                if let Err(err) = res {
                    let _ = km.delete(self.ctx(), &new_key, true).await;
                    let _ = std::fs::remove_file(&path);
                    return Err(err);
                }
                Some(new_key)
            }
            (Some(e), None) => {
                // Checked before any key is made, so a refusal leaves none behind.
                let spec = self.device_spec(e)?;
                let key = match &req.encryption_key_id {
                    Some(r) => self.clone_caller_key(r).await?,
                    None => km.create_key(self.ctx(), &KeySpec::aes(e.key_size)).await?,
                };
                let pass = if req.legacy_passphrase {
                    device::legacy_passphrase_of(km.as_ref(), self.ctx(), &key).await?
                } else {
                    device::passphrase_of(km.as_ref(), self.ctx(), &key).await?
                };
                if let Err(err) = device::format(&path, size_mib * MIB, &spec, pass.as_bytes()) {
                    let _ = km.delete(self.ctx(), &key, true).await;
                    let _ = std::fs::remove_file(&path);
                    return Err(err);
                }
                Some(key)
            }
        };
        self.finish_create(id, size_mib, type_id, key_id, source.map(|s| s.3))
            .await
    }

    async fn finish_create(
        &self,
        id: String,
        size_mib: u64,
        type_id: Option<String>,
        key_id: Option<SecretId>,
        source: Option<String>,
    ) -> Result<VolumeRecord> {
        if let Some(k) = &key_id {
            self.cfg
                .km
                .add_consumer(self.ctx(), k, &Self::consumer("volume", &id))
                .await?;
        }
        let v = VolumeRecord {
            id: id.clone(),
            project: self.ctx().project_id.clone(),
            size_mib,
            type_id,
            encryption_key_id: key_id.map(|k| k.to_string()),
            status: "available".into(),
            source,
            rotating_to: None,
        };
        self.state.put(KIND_VOLUME, &id, &v.project, &v)?;
        Ok(v)
    }

    async fn create_from_image(
        &self,
        id: &str,
        image_id: &str,
        req: &CreateVolume,
        type_id: Option<String>,
        enc: Option<Encryption>,
    ) -> Result<VolumeRecord> {
        let images = ImageService {
            cfg: self.cfg.clone(),
            state: self.state.clone(),
        };
        let image: Image = images.get(image_id)?;
        let path = self.cfg.device_path(&format!("volume-{id}"));
        let img_path = images.image_path(&image.id);
        let km = &self.cfg.km;
        match (image.key_id(), &enc) {
            (Some(_), None) => Err(ServiceError::BadRequest(format!(
                "image {image_id} is encrypted: the volume needs an encrypted volume type"
            ))),
            (Some(img_key), Some(e)) => {
                if req.encryption_key_id.is_some() {
                    return Err(ServiceError::BadRequest(
                        "an encrypted image brings its own key; do not pass an encryption key id"
                            .into(),
                    ));
                }
                let key = km
                    .clone_secret(self.ctx(), &parse_ref(&img_key)?)
                    .await
                    .map_err(|e| km_err(&format!("image key {img_key}"), e))?;
                let pass = device::passphrase_of(km.as_ref(), self.ctx(), &key).await?;
                let decrypt = image.decrypt_size.unwrap_or(0);
                let size_mib = req.size_mib.max(decrypt.div_ceil(MIB)).max(1);
                let res = if image.disk_format == "qcow2" {
                    crate::image::qcow2_luks_to_raw_luks(
                        &self.cfg,
                        &img_path,
                        &path,
                        pass.as_bytes(),
                    )
                } else {
                    std::fs::copy(&img_path, &path)
                        .map(|_| ())
                        .map_err(ServiceError::io("copying image"))
                };
                if let Err(e) = res {
                    let _ = km.delete(self.ctx(), &key, true).await;
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                let key = if req.reencrypt {
                    match self.own_volume_key(&path, e, &key, pass.as_bytes()).await {
                        Ok(k) => k,
                        Err(e) => {
                            let _ = km.delete(self.ctx(), &key, true).await;
                            let _ = std::fs::remove_file(&path);
                            return Err(e);
                        }
                    }
                } else {
                    key
                };
                let pass = device::passphrase_of(km.as_ref(), self.ctx(), &key).await?;
                let have = device::open(&path, pass.as_bytes())?.size();
                if size_mib * MIB > have {
                    device::extend(&path, size_mib * MIB - have)?;
                }
                self.finish_create(
                    id.to_string(),
                    size_mib,
                    type_id,
                    Some(key),
                    Some(format!("image:{image_id}")),
                )
                .await
            }
            (None, _) => {
                let data = std::fs::read(&img_path).map_err(ServiceError::io("reading image"))?;
                let size_mib = req.size_mib.max((data.len() as u64).div_ceil(MIB)).max(1);
                let v = Box::pin(self.create(&CreateVolume {
                    size_mib,
                    volume_type: req.volume_type.clone(),
                    encryption_key_id: req.encryption_key_id.clone(),
                    ..Default::default()
                }))
                .await?;
                let h = self.open_device(&v).await?;
                h.write_at(&data, 0)?;
                let mut v = v;
                v.source = Some(format!("image:{image_id}"));
                self.state.put(KIND_VOLUME, &v.id, &v.project, &v)?;
                Ok(v)
            }
        }
    }

    /// Gives the device at `path` (opened by `pass`) a new volume key under a new
    /// secret of its own (of `e`'s size), and deletes `key`, the secret that opened it.
    /// On failure the new secret is deleted; the caller cleans up `key` and `path`.
    async fn own_volume_key(
        &self,
        path: &std::path::Path,
        e: &Encryption,
        key: &SecretId,
        pass: &[u8],
    ) -> Result<SecretId> {
        let km = &self.cfg.km;
        let spec = self.device_spec(e)?;
        let new_key = km.create_key(self.ctx(), &KeySpec::aes(e.key_size)).await?;
        let res = async {
            let new = device::passphrase_of(km.as_ref(), self.ctx(), &new_key).await?;
            device::new_volume_key(path, pass, new.as_bytes(), &spec)?;
            km.delete(self.ctx(), key, true).await?;
            Ok::<(), ServiceError>(())
        }
        .await;
        match res {
            Ok(()) => Ok(new_key),
            Err(err) => {
                let _ = km.delete(self.ctx(), &new_key, true).await;
                Err(err)
            }
        }
    }

    /// Opens a volume's device. A LUKS volume that only the legacy mangled
    /// passphrase opens is fixed first: the correct passphrase is added,
    /// checked, and the legacy one removed.
    pub async fn open_device(&self, v: &VolumeRecord) -> Result<VolumeHandle> {
        Self::not_rotating(v)?;
        let path = self.cfg.device_path(&format!("volume-{}", v.id));
        let Some(k) = &v.encryption_key_id else {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(ServiceError::io(format!("opening volume {}", v.id)))?;
            return Ok(VolumeHandle::Plain(f));
        };
        let km = self.cfg.km.as_ref();
        let key = parse_ref(k)?;
        let pass = device::passphrase_of(km, self.ctx(), &key).await?;
        if !device::opens(&path, pass.as_bytes())? {
            let legacy = device::legacy_passphrase_of(km, self.ctx(), &key).await?;
            if !device::opens(&path, legacy.as_bytes())? {
                return Err(ServiceError::Conflict(format!(
                    "volume {}: its key opens no keyslot",
                    v.id
                )));
            }
            eprintln!(
                "volume {}: opened with the legacy passphrase; re-keying to the correct one",
                v.id
            );
            device::rekey(&path, legacy.as_bytes(), pass.as_bytes(), &self.cfg.pbkdf)?;
        }
        Ok(VolumeHandle::Encrypted(Box::new(device::open(
            &path,
            pass.as_bytes(),
        )?)))
    }

    /// Attaches: opens the device (fixing legacy passphrases) and marks it in-use.
    pub async fn attach(&self, id: &str) -> Result<VolumeHandle> {
        let mut v = self.get(id)?;
        let h = self.open_device(&v).await?;
        v.status = "in-use".into();
        self.state.put(KIND_VOLUME, id, &v.project, &v)?;
        Ok(h)
    }

    /// A handle of an attached volume.
    pub async fn handle(&self, id: &str) -> Result<VolumeHandle> {
        let v = self.get(id)?;
        if v.status != "in-use" {
            return Err(ServiceError::Conflict(format!(
                "volume {id} is not attached"
            )));
        }
        self.open_device(&v).await
    }

    /// Detaches.
    pub fn detach(&self, id: &str) -> Result<()> {
        let mut v = self.get(id)?;
        if v.status != "in-use" {
            return Err(ServiceError::Conflict(format!(
                "volume {id} is not attached"
            )));
        }
        v.status = "available".into();
        self.state.put(KIND_VOLUME, id, &v.project, &v)
    }

    /// Extends a detached volume to `new_size_mib`.
    pub fn extend(&self, id: &str, new_size_mib: u64) -> Result<VolumeRecord> {
        let mut v = self.get(id)?;
        Self::not_rotating(&v)?;
        if v.status != "available" {
            return Err(ServiceError::Conflict(format!(
                "volume {id} is {}",
                v.status
            )));
        }
        if new_size_mib <= v.size_mib {
            return Err(ServiceError::BadRequest(format!(
                "new size {new_size_mib} MiB must exceed {} MiB",
                v.size_mib
            )));
        }
        device::extend(
            &self.cfg.device_path(&format!("volume-{id}")),
            (new_size_mib - v.size_mib) * MIB,
        )?;
        v.size_mib = new_size_mib;
        self.state.put(KIND_VOLUME, id, &v.project, &v)?;
        Ok(v)
    }

    /// Deletes a key the service owns: consumer removed, key deleted; a
    /// missing key is not an error.
    async fn drop_key(&self, key: &str, consumer: &Consumer) -> Result<()> {
        let key = parse_ref(key)?;
        let km = &self.cfg.km;
        match km.remove_consumer(self.ctx(), &key, consumer).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        match km.delete(self.ctx(), &key, false).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                eprintln!("key {key} was already gone");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The volume `id`, or a conflict unless it is detached and has no snapshots
    /// (what delete and transfer require).
    fn detached_without_snapshots(&self, id: &str) -> Result<VolumeRecord> {
        let v = self.get(id)?;
        if v.status != "available" {
            return Err(ServiceError::Conflict(format!(
                "volume {id} is {}",
                v.status
            )));
        }
        let snaps: Vec<SnapshotRecord> = self.state.list(KIND_SNAPSHOT, Some(&v.project))?;
        if snaps.iter().any(|s| s.volume_id == id) {
            return Err(ServiceError::Conflict(format!("volume {id} has snapshots")));
        }
        Ok(v)
    }

    /// Deletes a detached volume without snapshots, and its key.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let v = self.detached_without_snapshots(id)?;
        for k in v.encryption_key_id.iter().chain(&v.rotating_to) {
            self.drop_key(k, &Self::consumer("volume", id)).await?;
        }
        let _ = std::fs::remove_file(self.cfg.device_path(&format!("volume-{id}")));
        let _ = std::fs::remove_file(device::rekeying_path(
            &self.cfg.device_path(&format!("volume-{id}")),
        ));
        self.state.delete(KIND_VOLUME, id)?;
        Ok(())
    }

    /// Snapshots a volume: a copy of its device with a clone of its key.
    pub async fn snapshot(&self, volume_id: &str) -> Result<SnapshotRecord> {
        let v = self.get(volume_id)?;
        Self::not_rotating(&v)?;
        let id = new_id();
        std::fs::copy(
            self.cfg.device_path(&format!("volume-{volume_id}")),
            self.cfg.device_path(&format!("snapshot-{id}")),
        )
        .map_err(ServiceError::io("copying volume"))?;
        let key = match &v.encryption_key_id {
            Some(k) => {
                let c = self.cfg.km.clone_secret(self.ctx(), &parse_ref(k)?).await?;
                self.cfg
                    .km
                    .add_consumer(self.ctx(), &c, &Self::consumer("snapshot", &id))
                    .await?;
                Some(c.to_string())
            }
            None => None,
        };
        let s = SnapshotRecord {
            id: id.clone(),
            project: v.project.clone(),
            volume_id: volume_id.into(),
            size_mib: v.size_mib,
            type_id: v.type_id.clone(),
            encryption_key_id: key,
        };
        self.state.put(KIND_SNAPSHOT, &id, &s.project, &s)?;
        Ok(s)
    }

    /// Deletes a snapshot and its key.
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let s = self.get_snapshot(id)?;
        if let Some(k) = &s.encryption_key_id {
            self.drop_key(k, &Self::consumer("snapshot", id)).await?;
        }
        let _ = std::fs::remove_file(self.cfg.device_path(&format!("snapshot-{id}")));
        self.state.delete(KIND_SNAPSHOT, id)?;
        Ok(())
    }

    /// Transfers a detached volume to `to`: its key is copied under the
    /// recipient's context and the old one deleted.
    pub async fn transfer(&self, id: &str, to: &Context) -> Result<VolumeRecord> {
        let mut v = self.detached_without_snapshots(id)?;
        Self::not_rotating(&v)?;
        if let Some(k) = &v.encryption_key_id {
            let km = &self.cfg.km;
            let old = parse_ref(k)?;
            let secret = km.get(self.ctx(), &old).await?;
            let new = km.store(to, NewSecret::from_secret(&secret)).await?;
            km.add_consumer(to, &new, &Self::consumer("volume", id))
                .await?;
            self.drop_key(k, &Self::consumer("volume", id)).await?;
            v.encryption_key_id = Some(new.to_string());
        }
        v.project = to.project_id.clone();
        self.state.put(KIND_VOLUME, id, &v.project, &v)?;
        Ok(v)
    }

    /// Rotates the key of a detached encrypted volume (the user's "rotate my key",
    /// Cinder BYOK): see [`VolumeService::rotate_key_with`], run to the end.
    pub async fn rotate_key(&self, id: &str, new_key_ref: Option<&str>) -> Result<VolumeRecord> {
        match self
            .rotate_key_with(id, new_key_ref, &RotateOptions::default(), &mut |_| true)
            .await?
        {
            Rotation::Done(v) => Ok(v),
            Rotation::Stopped(p) => Err(ServiceError::Conflict(format!(
                "volume {id}: the key rotation stopped at {} of {} bytes; call again to resume",
                p.done, p.total
            ))),
        }
    }

    /// Rotates the key of a detached encrypted volume: every sector is reencrypted
    /// under a new volume key whose passphrase comes from the new secret (os-brick's
    /// rule), a clone of the caller's `new_key_ref` (BYOK: the volume owns its copy, as
    /// at creation) or, when `None`, a new key of the volume type's size. LUKS2 is
    /// reencrypted in place with resilience `checksum` (cryptsetup's protocol); LUKS1,
    /// which cannot be, gets its plaintext copied into a new container that replaces
    /// the old one by a rename.
    ///
    /// The new secret is registered (consumer, then `rotating_to`) before any data is
    /// touched; the record's key ref is switched only after the reencryption finished;
    /// then the old secret (the volume's own: a clone or a key this service made) loses
    /// its consumer and is deleted. An interrupted rotation (stopped by `progress`, an
    /// error, a crash) is resumed by calling again, with no key or the same one; until
    /// then the volume refuses attach, snapshot, extend and transfer.
    pub async fn rotate_key_with(
        &self,
        id: &str,
        new_key_ref: Option<&str>,
        opts: &RotateOptions,
        progress: &mut (dyn FnMut(luks::reencrypt::Progress) -> bool + Send),
    ) -> Result<Rotation> {
        let mut v = self.get(id)?;
        if v.status != "available" {
            return Err(ServiceError::Conflict(format!(
                "volume {id} is {}: detach it to rotate its key",
                v.status
            )));
        }
        let Some(old_ref) = v.encryption_key_id.clone() else {
            return Err(ServiceError::BadRequest(format!(
                "volume {id} is not encrypted: it has no key to rotate"
            )));
        };
        let enc = self
            .type_of(&v.type_id)?
            .and_then(|t| t.encryption)
            .ok_or_else(|| {
                ServiceError::Conflict(format!("volume {id}: its encrypted volume type is gone"))
            })?;
        let spec = self.device_spec(&enc)?;
        let km = &self.cfg.km;
        let path = self.cfg.device_path(&format!("volume-{id}"));
        let resuming = v.rotating_to.is_some();
        let new_key = match &v.rotating_to {
            Some(pending) => {
                let pending = parse_ref(pending)?;
                if let Some(r) = new_key_ref {
                    let given = km
                        .get(self.ctx(), &parse_ref(r)?)
                        .await
                        .map_err(|e| km_err(&format!("encryption key {r}"), e))?;
                    let mine = km.get(self.ctx(), &pending).await?;
                    if given.payload.expose() != mine.payload.expose()
                        || given.kind() != mine.kind()
                    {
                        return Err(ServiceError::Conflict(format!(
                            "volume {id}: a rotation to another key is in progress; call \
                             again without a key (or with the same one) to finish it"
                        )));
                    }
                }
                pending
            }
            None => {
                let key = match new_key_ref {
                    Some(r) => self.clone_caller_key(r).await?,
                    None => {
                        km.create_key(self.ctx(), &KeySpec::aes(enc.key_size))
                            .await?
                    }
                };
                let registered = async {
                    let old = device::passphrase_of(km.as_ref(), self.ctx(), &parse_ref(&old_ref)?)
                        .await?;
                    let new = device::passphrase_of(km.as_ref(), self.ctx(), &key).await?;
                    if old.as_bytes() == new.as_bytes() {
                        return Err(ServiceError::BadRequest(format!(
                            "volume {id}: the new key is the volume's current key"
                        )));
                    }
                    km.add_consumer(self.ctx(), &key, &Self::consumer("volume", id))
                        .await?;
                    v.rotating_to = Some(key.to_string());
                    self.state.put(KIND_VOLUME, id, &v.project, &v)
                }
                .await;
                if let Err(e) = registered {
                    let _ = km.delete(self.ctx(), &key, true).await;
                    return Err(e);
                }
                key
            }
        };
        let new = device::passphrase_of(km.as_ref(), self.ctx(), &new_key).await?;
        let in_reencryption = device::in_reencryption(&path)?;
        // Done already when a run died after the data but before the bookkeeping (the
        // old key may then be deleted already).
        let done = resuming && !in_reencryption && device::opens(&path, new.as_bytes())?;
        if !done {
            let old_key = parse_ref(&old_ref)?;
            let old = device::passphrase_of(km.as_ref(), self.ctx(), &old_key).await?;
            let legacy = device::legacy_passphrase_of(km.as_ref(), self.ctx(), &old_key).await?;
            // the old passphrase, else (a never opened legacy volume) the legacy one
            let wrong = |e: Option<&ServiceError>| {
                matches!(e, Some(ServiceError::Luks(luks::Error::NoMatchingKey)))
                    && !in_reencryption
            };
            if device::is_luks2(&path)? {
                let ropts = luks::reencrypt::ReencryptOptions {
                    pbkdf: self.cfg.pbkdf.clone(),
                    hotzone_size: opts.hotzone_size,
                    crash_at_write: opts.crash_at_write,
                    ..Default::default()
                };
                let mut run = |olds: &[&[u8]]| {
                    device::reencrypt(&path, olds, new.as_bytes(), &ropts, &mut *progress)
                };
                // resuming: the old keyslot's passphrase may be either
                let both = [old.as_bytes(), legacy.as_bytes()];
                let mut res = run(if in_reencryption { &both } else { &both[..1] });
                if wrong(res.as_ref().err()) {
                    res = run(&[legacy.as_bytes()]);
                }
                match res? {
                    luks::reencrypt::Outcome::Finished => {}
                    luks::reencrypt::Outcome::Stopped(p) => return Ok(Rotation::Stopped(p)),
                    other => {
                        return Err(ServiceError::Conflict(format!(
                            "volume {id}: the reencryption ended with {other:?}"
                        )))
                    }
                }
            } else {
                // the old container stays until the new one replaces it (a rename)
                let mut res = device::new_volume_key(&path, old.as_bytes(), new.as_bytes(), &spec);
                if wrong(res.as_ref().err()) {
                    res = device::new_volume_key(&path, legacy.as_bytes(), new.as_bytes(), &spec);
                }
                res?;
            }
        }
        // The old secret decrypts nothing any more: shred it, then switch the record.
        self.drop_key(&old_ref, &Self::consumer("volume", id))
            .await?;
        v.encryption_key_id = v.rotating_to.take();
        self.state.put(KIND_VOLUME, id, &v.project, &v)?;
        Ok(Rotation::Done(v))
    }

    /// A conflict while a key rotation of `v` is in progress.
    pub(crate) fn not_rotating(v: &VolumeRecord) -> Result<()> {
        match &v.rotating_to {
            Some(_) => Err(ServiceError::Conflict(format!(
                "volume {}: a key rotation is in progress; rotate its key again to finish it",
                v.id
            ))),
            None => Ok(()),
        }
    }

    /// The type record of a volume.
    pub fn volume_type(&self, v: &VolumeRecord) -> Result<Option<VolumeType>> {
        self.type_of(&v.type_id)
    }
}

/// The LUKS version of an encryption spec; plain dm-crypt is refused, as
/// this service attaches volumes in userspace.
pub fn luks_type_of(e: &Encryption) -> Result<LuksType> {
    match e.provider.parse::<Provider>()?.luks_type() {
        Some(t) => Ok(t),
        None => Err(ServiceError::BadRequest(format!(
            "provider {:?} is plain dm-crypt (os-brick's CryptsetupEncryptor), which needs the \
             kernel's device-mapper; this service attaches volumes in userspace (luks or luks2)",
            e.provider
        ))),
    }
}

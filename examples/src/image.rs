//! A Glance-like image service with standardized image encryption:
//! raw LUKS containers (`container_format` `luks`) or qcow2 with LUKS
//! encryption, described by the `os_encrypt_*` properties (the older
//! `cinder_encryption_key_*` ones are read too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keymgr::{Consumer, ErrorKind, KeySpec, NewSecret, SecretId, SecretKind};
use luks::LuksType;

use crate::config::ServiceConfig;
use crate::device::{self, DeviceSpec, SecretFile};
use crate::state::State;
use crate::volume::{parse_ref, VolumeRecord, VolumeService};
use crate::{new_id, Result, ServiceError};

/// Record kind of images.
pub const KIND_IMAGE: &str = "image";

/// An image.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Image {
    /// Id.
    pub id: String,
    /// Owning project.
    pub project: String,
    /// Name.
    pub name: String,
    /// `raw` or `qcow2`.
    pub disk_format: String,
    /// `bare` or `luks`.
    pub container_format: String,
    /// Stored size in bytes.
    pub size: u64,
    /// Properties (`os_encrypt_*`, ...).
    pub properties: BTreeMap<String, String>,
    /// Decrypted size, from `os_decrypt_size`.
    pub decrypt_size: Option<u64>,
}

impl Image {
    /// The key id: `os_encrypt_key_id`, else legacy `cinder_encryption_key_id`.
    pub fn key_id(&self) -> Option<String> {
        self.properties
            .get("os_encrypt_key_id")
            .or_else(|| self.properties.get("cinder_encryption_key_id"))
            .cloned()
    }

    /// The deletion policy (default `on_image_deletion`).
    pub fn deletion_policy(&self) -> String {
        self.properties
            .get("os_encrypt_key_deletion_policy")
            .or_else(|| self.properties.get("cinder_encryption_key_deletion_policy"))
            .cloned()
            .unwrap_or_else(|| "on_image_deletion".into())
    }
}

/// How to encrypt a new image.
#[derive(Debug, Clone)]
pub struct EncryptOptions {
    /// `raw` (a raw LUKS container) or `qcow2` (qcow2 with LUKS encryption).
    pub disk_format: String,
    /// LUKS version of a raw container (qcow2 is always LUKSv1).
    pub luks_type: LuksType,
    /// Secret type: `passphrase` or `symmetric`.
    pub secret_kind: SecretKind,
    /// `on_image_deletion` or `do_not_delete`.
    pub deletion_policy: String,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            disk_format: "raw".into(),
            luks_type: LuksType::Luks2,
            secret_kind: SecretKind::Symmetric,
            deletion_policy: "on_image_deletion".into(),
        }
    }
}

/// The image service.
#[derive(Debug, Clone)]
pub struct ImageService {
    /// Configuration.
    pub cfg: ServiceConfig,
    /// State.
    pub state: Arc<State>,
}

fn consumer(id: &str) -> Consumer {
    Consumer::new("glance", "image", id)
}

/// Converts a qcow2+LUKS image to a raw LUKS volume with `qemu-img convert`,
/// the passphrase passed in a 0600 file (`--object secret,file=`).
pub fn qcow2_luks_to_raw_luks(
    cfg: &ServiceConfig,
    src: &Path,
    dst: &Path,
    pass: &[u8],
) -> Result<()> {
    let sf = SecretFile::new(&cfg.state_dir, pass)?;
    let out_opts = format!(
        "key-secret=sec0,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,iter-time={}",
        cfg.qemu_iter_time_ms()
    );
    let obj = format!("secret,id=sec0,file={}", sf.path().display());
    let src_opts = format!(
        "driver=qcow2,file.filename={},encrypt.key-secret=sec0",
        src.display()
    );
    let dst_s = dst.display().to_string();
    device::qemu_img(&[
        "convert",
        "--object",
        &obj,
        "--image-opts",
        &src_opts,
        "-O",
        "luks",
        "-o",
        &out_opts,
        &dst_s,
    ])?;
    Ok(())
}

impl ImageService {
    /// A service over `cfg`'s state directory.
    pub fn new(cfg: ServiceConfig) -> Result<ImageService> {
        let state = Arc::new(State::open(&cfg.state_dir)?);
        Ok(ImageService { cfg, state })
    }

    /// The file holding image `id`.
    pub fn image_path(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("images").join(id)
    }

    /// An image of the caller's project.
    pub fn get(&self, id: &str) -> Result<Image> {
        let i: Image = self.state.need(KIND_IMAGE, id)?;
        if i.project != self.cfg.ctx.project_id {
            return Err(ServiceError::NotFound(format!("image {id}")));
        }
        Ok(i)
    }

    /// The caller's images.
    pub fn list(&self) -> Result<Vec<Image>> {
        self.state.list(KIND_IMAGE, Some(&self.cfg.ctx.project_id))
    }

    fn prepare(&self, id: &str) -> Result<PathBuf> {
        let dir = self.cfg.state_dir.join("images");
        std::fs::create_dir_all(&dir).map_err(ServiceError::io("creating images dir"))?;
        Ok(self.image_path(id))
    }

    async fn save(&self, mut image: Image, key: Option<&SecretId>) -> Result<Image> {
        if let Some(k) = key {
            self.cfg
                .km
                .add_consumer(&self.cfg.ctx, k, &consumer(&image.id))
                .await?;
        }
        image.size = std::fs::metadata(self.image_path(&image.id))
            .map_err(ServiceError::io("stat image"))?
            .len();
        self.state
            .put(KIND_IMAGE, &image.id, &image.project, &image)?;
        Ok(image)
    }

    /// Uploads a plain (unencrypted) image from `file`.
    pub async fn create_plain(&self, name: &str, file: &Path) -> Result<Image> {
        let id = new_id();
        let path = self.prepare(&id)?;
        std::fs::copy(file, &path)
            .map_err(ServiceError::io(format!("reading {}", file.display())))?;
        let image = Image {
            id,
            project: self.cfg.ctx.project_id.clone(),
            name: name.into(),
            disk_format: "raw".into(),
            container_format: "bare".into(),
            size: 0,
            properties: BTreeMap::new(),
            decrypt_size: None,
        };
        self.save(image, None).await
    }

    /// Creates an encrypted image from the plaintext in `file`, with a new
    /// secret of `opts.secret_kind`.
    pub async fn create_encrypted(
        &self,
        name: &str,
        file: &Path,
        opts: &EncryptOptions,
    ) -> Result<Image> {
        let data =
            std::fs::read(file).map_err(ServiceError::io(format!("reading {}", file.display())))?;
        let data = zeroize::Zeroizing::new(data);
        let ctx = &self.cfg.ctx;
        let km = &self.cfg.km;
        let key = match opts.secret_kind {
            SecretKind::Passphrase => {
                let mut raw = [0u8; 24];
                getrandom::fill(&mut raw)
                    .map_err(|e| ServiceError::BadRequest(format!("random: {e}")))?;
                let text = zeroize::Zeroizing::new(hex::encode(raw).into_bytes());
                km.store(
                    ctx,
                    NewSecret::new(SecretKind::Passphrase, text.to_vec())
                        .named(format!("image {name}")),
                )
                .await?
            }
            SecretKind::Symmetric => {
                km.create_key(ctx, &KeySpec::aes(256).named(format!("image {name}")))
                    .await?
            }
            other => {
                return Err(ServiceError::BadRequest(format!(
                    "image secret type {} (passphrase or symmetric)",
                    other.as_str()
                )))
            }
        };
        let pass = device::passphrase_of(km.as_ref(), ctx, &key).await?;
        let id = new_id();
        let path = self.prepare(&id)?;
        let plain_len = (data.len() as u64).div_ceil(512).max(1) * 512;
        let (container, fmt) = match opts.disk_format.as_str() {
            "raw" => {
                let spec = DeviceSpec {
                    luks_type: opts.luks_type,
                    cipher: "aes-xts-plain64".into(),
                    key_size: 512,
                    pbkdf: self.cfg.pbkdf.clone(),
                };
                device::format(&path, plain_len, &spec, pass.as_bytes())?;
                let v = device::open(&path, pass.as_bytes())?;
                v.write_at(&data, 0)?;
                v.sync()?;
                let f = if opts.luks_type == LuksType::Luks1 {
                    "LUKSv1"
                } else {
                    "LUKSv2"
                };
                ("luks", f)
            }
            "qcow2" => {
                // qemu-img reads the plaintext from the caller's file directly
                let sf = SecretFile::new(&self.cfg.state_dir, pass.as_bytes())?;
                let obj = format!("secret,id=sec0,file={}", sf.path().display());
                let enc_opts = format!(
                    "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time={}",
                    self.cfg.qemu_iter_time_ms()
                );
                let src = file.display().to_string();
                let dst = path.display().to_string();
                device::qemu_img(&[
                    "convert", "-f", "raw", "-O", "qcow2", "--object", &obj, "-o", &enc_opts, &src,
                    &dst,
                ])?;
                ("bare", "LUKSv1")
            }
            other => {
                let _ = km.delete(ctx, &key, true).await;
                return Err(ServiceError::BadRequest(format!(
                    "disk format {other:?} (raw or qcow2)"
                )));
            }
        };
        let mut properties = BTreeMap::new();
        properties.insert("os_encrypt_format".into(), fmt.into());
        properties.insert("os_encrypt_key_id".into(), key.to_string());
        properties.insert(
            "os_encrypt_key_deletion_policy".into(),
            opts.deletion_policy.clone(),
        );
        properties.insert("os_decrypt_size".into(), plain_len.to_string());
        let image = Image {
            id,
            project: ctx.project_id.clone(),
            name: name.into(),
            disk_format: opts.disk_format.clone(),
            container_format: container.into(),
            size: 0,
            properties,
            decrypt_size: Some(plain_len),
        };
        self.save(image, Some(&key)).await
    }

    /// Uploads a volume as an image: an encrypted volume's LUKS device is
    /// copied as is and its key cloned for the image.
    pub async fn create_from_volume(&self, name: &str, volume_id: &str) -> Result<Image> {
        let vols = VolumeService {
            cfg: self.cfg.clone(),
            state: self.state.clone(),
        };
        let v: VolumeRecord = vols.get(volume_id)?;
        VolumeService::not_rotating(&v)?;
        let id = new_id();
        let path = self.prepare(&id)?;
        std::fs::copy(self.cfg.device_path(&format!("volume-{volume_id}")), &path)
            .map_err(ServiceError::io("copying volume"))?;
        let mut properties = BTreeMap::new();
        let mut key = None;
        let mut decrypt_size = None;
        let mut container = "bare";
        if let Some(k) = &v.encryption_key_id {
            let c = self
                .cfg
                .km
                .clone_secret(&self.cfg.ctx, &parse_ref(k)?)
                .await?;
            let fmt = match vols.volume_type(&v)?.and_then(|t| t.encryption) {
                Some(e) if crate::volume::luks_type_of(&e)? == LuksType::Luks1 => "LUKSv1",
                _ => "LUKSv2",
            };
            properties.insert("os_encrypt_format".into(), fmt.into());
            properties.insert("os_encrypt_key_id".into(), c.to_string());
            properties.insert(
                "os_encrypt_key_deletion_policy".into(),
                "on_image_deletion".into(),
            );
            properties.insert("os_decrypt_size".into(), (v.size_mib << 20).to_string());
            decrypt_size = Some(v.size_mib << 20);
            container = "luks";
            key = Some(c);
        }
        let image = Image {
            id,
            project: self.cfg.ctx.project_id.clone(),
            name: name.into(),
            disk_format: "raw".into(),
            container_format: container.into(),
            size: 0,
            properties,
            decrypt_size,
        };
        self.save(image, key.as_ref()).await
    }

    /// Registers an image whose properties were set elsewhere (e.g. with the
    /// legacy `cinder_encryption_key_*` names), taking over its file.
    pub async fn import(&self, mut image: Image, file: &Path) -> Result<Image> {
        image.id = new_id();
        image.project = self.cfg.ctx.project_id.clone();
        let path = self.prepare(&image.id)?;
        std::fs::copy(file, &path).map_err(ServiceError::io("copying image"))?;
        let key = image.key_id().map(|k| parse_ref(&k)).transpose()?;
        self.save(image, key.as_ref()).await
    }

    /// Decrypts an image's content (for checks and demos).
    pub async fn read_plaintext(&self, id: &str) -> Result<Vec<u8>> {
        let image = self.get(id)?;
        let path = self.image_path(id);
        let Some(k) = image.key_id() else {
            return std::fs::read(&path).map_err(ServiceError::io("reading image"));
        };
        let pass =
            device::passphrase_of(self.cfg.km.as_ref(), &self.cfg.ctx, &parse_ref(&k)?).await?;
        let raw_path;
        let _tmp;
        if image.disk_format == "qcow2" {
            let t = self.cfg.state_dir.join(format!(".convert-{}", new_id()));
            qcow2_luks_to_raw_luks(&self.cfg, &path, &t, pass.as_bytes())?;
            raw_path = t.clone();
            _tmp = Some(RemoveOnDrop(t));
        } else {
            raw_path = path;
            _tmp = None;
        }
        let v = device::open(&raw_path, pass.as_bytes())?;
        let n = image.decrypt_size.unwrap_or(v.size()).min(v.size());
        let mut buf = vec![0u8; n as usize];
        v.read_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// Deletes an image. Its key is deleted when the policy is
    /// `on_image_deletion` and no other consumer remains; otherwise kept,
    /// with a warning returned.
    pub async fn delete(&self, id: &str) -> Result<Vec<String>> {
        let image = self.get(id)?;
        let mut warnings = Vec::new();
        if let Some(k) = image.key_id() {
            let key = parse_ref(&k)?;
            let (km, ctx) = (&self.cfg.km, &self.cfg.ctx);
            match km.remove_consumer(ctx, &key, &consumer(id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            if image.deletion_policy() == "on_image_deletion" {
                match km.list_consumers(ctx, &key).await {
                    Ok(c) if c.is_empty() => match km.delete(ctx, &key, false).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => warnings.push(format!("key {key} not deleted: {e}")),
                    },
                    Ok(c) => warnings.push(format!(
                        "key {key} not deleted: {} other consumer(s) remain",
                        c.len()
                    )),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => warnings.push(format!("key {key} not deleted: {e}")),
                }
            } else {
                warnings.push(format!(
                    "key {key} kept: deletion policy is {}",
                    image.deletion_policy()
                ));
            }
        }
        let _ = std::fs::remove_file(self.image_path(id));
        self.state.delete(KIND_IMAGE, id)?;
        for w in &warnings {
            eprintln!("warning: image {id}: {w}");
        }
        Ok(warnings)
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

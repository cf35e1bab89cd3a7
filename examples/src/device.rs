//! The encrypted block device: a file holding a LUKS volume, written and
//! read through the `luks` crate in userspace; and the passphrase a secret
//! gives (os-brick's rule).

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use keymgr::passphrase::{legacy_passphrase, passphrase_for, Passphrase};
use keymgr::{Context, KeyManager, SecretId};
use luks::reencrypt::{KeyChange, Outcome, Progress, ReencryptOptions, ResilienceKind};
use luks::{FormatOptions, KeyslotOptions, LuksType, PbkdfOptions, Unlock, UnlockedVolume, Volume};

use crate::{Result, ServiceError};

/// How to format a device.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// LUKS1 or LUKS2.
    pub luks_type: LuksType,
    /// Cipher, e.g. `aes-xts-plain64`.
    pub cipher: String,
    /// Volume key size in bits.
    pub key_size: u32,
    /// KDF options of the keyslots.
    pub pbkdf: PbkdfOptions,
}

/// Bytes to reserve for the header before data (sparse; trimmed after format).
fn header_reserve(t: LuksType) -> u64 {
    match t {
        LuksType::Luks1 => 4 << 20,
        LuksType::Luks2 => 17 << 20,
    }
}

/// Creates (or truncates) `path` and formats it with a data area of exactly
/// `data_bytes`, the first keyslot opened by `passphrase`.
pub fn format(path: &Path, data_bytes: u64, spec: &DeviceSpec, passphrase: &[u8]) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ServiceError::io(format!("creating {}", path.display())))?;
    file.set_len(data_bytes + header_reserve(spec.luks_type))
        .map_err(ServiceError::io(format!("sizing {}", path.display())))?;
    let opts = FormatOptions {
        luks_type: spec.luks_type,
        cipher: Some(spec.cipher.clone()),
        key_size_bits: Some(spec.key_size),
        pbkdf: spec.pbkdf.clone(),
        sector_size: Some(512),
        ..Default::default()
    };
    let info = luks::format_file(&file, &opts, passphrase)?;
    file.set_len(info.data_offset + data_bytes)
        .map_err(ServiceError::io(format!("sizing {}", path.display())))?;
    Ok(())
}

/// Opens the device with `passphrase` for userspace I/O.
pub fn open(path: &Path, passphrase: &[u8]) -> Result<UnlockedVolume> {
    Ok(Volume::open(path)?.unlock(passphrase, None)?)
}

/// Whether `passphrase` opens a keyslot of the device.
pub fn opens(path: &Path, passphrase: &[u8]) -> Result<bool> {
    match Volume::open_read_only(path)?.test_passphrase(passphrase, None) {
        Ok(_) => Ok(true),
        Err(luks::Error::NoMatchingKey) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Re-keys: adds `new`, checks it opens, removes `old` (no-op when equal).
pub fn rekey(path: &Path, old: &[u8], new: &[u8], pbkdf: &PbkdfOptions) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let mut vol = Volume::open(path)?;
    vol.add_key(
        Unlock::Passphrase {
            passphrase: old,
            slot: None,
        },
        new,
        &KeyslotOptions {
            key_slot: None,
            pbkdf: pbkdf.clone(),
        },
    )?;
    if !opens(path, new)? {
        return Err(ServiceError::Conflict(format!(
            "{}: new passphrase does not open after re-key",
            path.display()
        )));
    }
    let mut vol = Volume::open(path)?;
    vol.remove_key(old)?;
    Ok(())
}

/// Plaintext bytes copied at a time by [`copy_plaintext`].
const COPY_CHUNK: usize = 4 << 20;

/// Whether the device is LUKS2 (the version that can be reencrypted in place).
pub fn is_luks2(path: &Path) -> Result<bool> {
    Ok(Volume::open_read_only(path)?.version() == 2)
}

/// Whether a LUKS2 reencryption of the device is in progress (interrupted).
pub fn in_reencryption(path: &Path) -> Result<bool> {
    Ok(Volume::open_read_only(path)?
        .luks2_metadata()
        .is_some_and(|m| m.reencrypt.is_some()))
}

/// Reencrypts the LUKS2 device under a new random volume key (cryptsetup's offline
/// protocol, see [`luks::reencrypt`]); its keyslot is re-wrapped for `new` in place of
/// `old`. A reencryption already in progress is resumed instead: then `old` may be any
/// of `olds` (the one that opens the old volume key). `progress` returning `false` stops
/// the run after the current hotzone (resumable).
pub fn reencrypt(
    path: &Path,
    olds: &[&[u8]],
    new: &[u8],
    opts: &ReencryptOptions,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<Outcome> {
    let keys: Vec<KeyChange<'_>> = olds
        .iter()
        .map(|old| KeyChange {
            passphrase: old,
            new_passphrase: Some(new),
            slot: None,
        })
        .collect();
    Ok(luks::reencrypt::reencrypt(path, &keys, opts, progress)?)
}

/// Copies the plaintext of the device `src` (opened by `src_pass`) into `dst`,
/// formatted anew with `spec` and `dst_pass`: a new volume key. Synced.
pub fn copy_plaintext(
    src: &Path,
    src_pass: &[u8],
    dst: &Path,
    spec: &DeviceSpec,
    dst_pass: &[u8],
) -> Result<()> {
    let from = open(src, src_pass)?;
    let size = from.size();
    format(dst, size, spec, dst_pass)?;
    let to = open(dst, dst_pass)?;
    let mut buf = zeroize::Zeroizing::new(vec![0u8; COPY_CHUNK]);
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(COPY_CHUNK as u64) as usize;
        from.read_at(&mut buf[..n], at)?;
        to.write_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(to.sync()?)
}

/// A copy of the encrypted device `src` (opened by `old`) at `dst` whose volume key
/// is new and opened by `new` only: a LUKS2 copy is reencrypted, a LUKS1 one (which
/// cannot be) gets its plaintext copied into a new container of `spec`. On failure
/// `dst` may be left half-written: the caller removes it.
pub fn reencrypted_copy(
    src: &Path,
    dst: &Path,
    old: &[u8],
    new: &[u8],
    spec: &DeviceSpec,
) -> Result<()> {
    if !is_luks2(src)? {
        return copy_plaintext(src, old, dst, spec, new);
    }
    std::fs::copy(src, dst).map_err(ServiceError::io("copying source"))?;
    new_volume_key(dst, old, new, spec)
}

/// Where [`new_volume_key`] writes the new container of a LUKS1 device before it
/// replaces the device (left behind only by a crash; overwritten by the next run).
pub fn rekeying_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".rekeying");
    PathBuf::from(tmp)
}

/// Gives the device a new volume key opened by `new` only. LUKS2 is reencrypted in
/// place without resilience: for a device that is thrown away on failure. LUKS1 gets
/// its plaintext copied into a new container of `spec` that replaces it by a rename,
/// so a failure leaves the old device as it was.
pub fn new_volume_key(path: &Path, old: &[u8], new: &[u8], spec: &DeviceSpec) -> Result<()> {
    if !is_luks2(path)? {
        let tmp = rekeying_path(path);
        let res = copy_plaintext(path, old, &tmp, spec, new).and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(ServiceError::io(format!("replacing {}", path.display())))
        });
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return res;
    }
    let opts = ReencryptOptions {
        resilience: ResilienceKind::None,
        pbkdf: spec.pbkdf.clone(),
        ..Default::default()
    };
    match reencrypt(path, &[old], new, &opts, &mut |_| true)? {
        Outcome::Finished => Ok(()),
        other => Err(ServiceError::Conflict(format!(
            "{}: the reencryption ended with {other:?}",
            path.display()
        ))),
    }
}

/// Grows the device file by `extra` bytes of data.
pub fn extend(path: &Path, extra: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(ServiceError::io(format!("opening {}", path.display())))?;
    let len = f
        .metadata()
        .map_err(ServiceError::io(format!("stat {}", path.display())))?
        .len();
    f.set_len(len + extra)
        .map_err(ServiceError::io(format!("extending {}", path.display())))
}

/// An open device (a volume's or a share's): userspace reads and writes of
/// its plaintext. Every write is synced to the device file before it returns,
/// whether the device is encrypted or plain.
#[derive(Debug)]
pub enum DeviceHandle {
    /// A LUKS device, unlocked in userspace.
    Encrypted(Box<UnlockedVolume>),
    /// A plain device file.
    Plain(std::fs::File),
}

impl DeviceHandle {
    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self {
            DeviceHandle::Encrypted(v) => Ok(v.read_at(buf, offset)?),
            DeviceHandle::Plain(f) => f
                .read_exact_at(buf, offset)
                .map_err(ServiceError::io("reading device")),
        }
    }

    /// Writes `buf` at `offset` durably: synced to the device file.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        match self {
            DeviceHandle::Encrypted(v) => {
                v.write_at(buf, offset)?;
                Ok(v.sync()?)
            }
            DeviceHandle::Plain(f) => {
                f.write_all_at(buf, offset)
                    .map_err(ServiceError::io("writing device"))?;
                f.sync_all().map_err(ServiceError::io("syncing device"))
            }
        }
    }

    /// Plaintext size in bytes.
    pub fn size(&self) -> Result<u64> {
        match self {
            DeviceHandle::Encrypted(v) => Ok(v.size()),
            DeviceHandle::Plain(f) => {
                Ok(f.metadata().map_err(ServiceError::io("stat device"))?.len())
            }
        }
    }
}

/// The passphrase of secret `id` (os-brick rule), fetched with `ctx`.
pub async fn passphrase_of(
    km: &dyn KeyManager,
    ctx: &Context,
    id: &SecretId,
) -> Result<Passphrase> {
    let secret = km.get(ctx, id).await?;
    Ok(passphrase_for(secret.kind(), &secret.payload)?)
}

/// The legacy mangled passphrase of secret `id`.
pub async fn legacy_passphrase_of(
    km: &dyn KeyManager,
    ctx: &Context,
    id: &SecretId,
) -> Result<Passphrase> {
    let secret = km.get(ctx, id).await?;
    Ok(legacy_passphrase(&secret.payload))
}

/// A secret written to a mode-0600 file for a tool's `--object secret,file=`;
/// overwritten and removed on drop.
#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
    len: usize,
}

impl SecretFile {
    /// Writes `bytes` to a new 0600 file in `dir`.
    pub fn new(dir: &Path, bytes: &[u8]) -> Result<SecretFile> {
        let path = dir.join(format!(".secret-{}", crate::new_id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(ServiceError::io(format!("creating {}", path.display())))?;
        f.write_all(bytes)
            .map_err(ServiceError::io(format!("writing {}", path.display())))?;
        Ok(SecretFile {
            path,
            len: bytes.len(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, vec![0u8; self.len]);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs qemu-img with `args` (no secrets in them: only file references).
pub fn qemu_img(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .output()
        .map_err(|e| ServiceError::Tool {
            tool: "qemu-img".into(),
            reason: format!("cannot run: {e}"),
        })?;
    if !out.status.success() {
        return Err(ServiceError::Tool {
            tool: "qemu-img".into(),
            reason: format!(
                "{} failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write through a plain handle is synced: `/dev/null` takes the bytes
    /// but refuses `fsync` (EINVAL), so a handle that syncs reports the
    /// failed sync where one that does not would return `Ok`.
    #[test]
    fn a_plain_write_is_synced() {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap();
        // The volume service's handle (it did not sync before) and the share
        // service's are now both this one.
        let h: crate::volume::VolumeHandle = crate::share::ShareHandle::Plain(null);
        match h.write_at(b"data", 0) {
            Err(ServiceError::Io { what, source }) => {
                assert_eq!(what, "syncing device");
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
            }
            other => panic!("the write was not synced: {other:?}"),
        }
    }
}

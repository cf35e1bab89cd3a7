//! [`Volume`]: opening a volume (header read and validated, device lock), its accessors,
//! and unlocking: recovering the volume key from a passphrase (every keyslot in priority
//! order, or one) or checking a given volume key, then [`UnlockedVolume`].
//! Keyslot changes are in [`crate::keyslot_ops`], tokens in [`crate::luks2::token`].

use crate::device::{self, round_up};
use crate::error::{Error, Result};
use crate::header::{read_header, Hdr};
use crate::io::{DataLayout, UnlockedVolume};
use crate::kdf::Kdf;
use crate::keyslot;
use crate::luks1;
use crate::luks2;
use crate::luks2::disk::write_luks2;
use crate::luks2::json::{self, Metadata};
use crate::volume_key::VolumeKey;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A LUKS volume whose header has been read and validated (not unlocked).
#[derive(Debug)]
pub struct Volume {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) hdr: Hdr,
    pub(crate) writable: bool,
    pub(crate) data_file: Option<File>,
}

fn open_file(path: &Path) -> Result<(File, bool)> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let f = File::open(path).map_err(Error::io("opening the device"))?;
            Ok((f, false))
        }
        Err(e) => Err(Error::Io {
            context: "opening the device",
            source: e,
        }),
    }
}

/// An exclusive `flock` on the device, released when dropped (so that other tools such as
/// cryptsetup can open the device between operations).
#[derive(Debug)]
pub(crate) struct LockGuard(File);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Takes the exclusive lock on `file` (see [`LockGuard`]).
pub(crate) fn lock(file: &File) -> Result<LockGuard> {
    // a second handle on the same open file description: flock belongs to it
    let handle = file.try_clone().map_err(Error::io("locking the device"))?;
    handle.lock().map_err(Error::io("locking the device"))?;
    Ok(LockGuard(handle))
}
impl Volume {
    /// Opens a volume and validates its header (read-write when permitted, else read-only).
    pub fn open(path: impl AsRef<Path>) -> Result<Volume> {
        let path = path.as_ref();
        let (file, writable) = open_file(path)?;
        let hdr = read_header(&file)?;
        Ok(Volume {
            file,
            path: path.to_path_buf(),
            hdr,
            writable,
            data_file: None,
        })
    }

    /// Opens a volume read-only.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Volume> {
        let path = path.as_ref();
        let file = File::open(path).map_err(Error::io("opening the device"))?;
        let hdr = read_header(&file)?;
        Ok(Volume {
            file,
            path: path.to_path_buf(),
            hdr,
            writable: false,
            data_file: None,
        })
    }

    /// Opens a detached header (`--header`) whose data lives on `data_path`.
    pub fn open_detached(
        header_path: impl AsRef<Path>,
        data_path: impl AsRef<Path>,
    ) -> Result<Volume> {
        let mut v = Volume::open(header_path)?;
        let (data, w) = open_file(data_path.as_ref())?;
        v.writable &= w;
        v.data_file = Some(data);
        Ok(v)
    }

    /// The path given to open.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// LUKS version (1 or 2).
    pub fn version(&self) -> u8 {
        match self.hdr {
            Hdr::V1(_) => 1,
            Hdr::V2(_) => 2,
        }
    }

    /// The UUID.
    pub fn uuid(&self) -> &str {
        match &self.hdr {
            Hdr::V1(h) => &h.uuid,
            Hdr::V2(l) => &l.bin.uuid,
        }
    }

    /// Why the LUKS2 header copies need repair (repaired on the next write), if they do.
    pub fn needs_repair(&self) -> Option<&str> {
        match &self.hdr {
            Hdr::V1(_) => None,
            Hdr::V2(l) => l.repair.as_deref(),
        }
    }

    /// The LUKS2 metadata (None for LUKS1). Its type is in the hidden `internal` module:
    /// not a stable API.
    #[doc(hidden)]
    pub fn luks2_metadata(&self) -> Option<&Metadata> {
        match &self.hdr {
            Hdr::V1(_) => None,
            Hdr::V2(l) => Some(&l.md),
        }
    }

    /// The LUKS1 header (None for LUKS2). Its type is in the hidden `internal` module:
    /// not a stable API.
    #[doc(hidden)]
    pub fn luks1_header(&self) -> Option<&luks1::Header> {
        match &self.hdr {
            Hdr::V1(h) => Some(h),
            Hdr::V2(_) => None,
        }
    }

    /// Active keyslot numbers.
    pub fn active_keyslots(&self) -> Vec<u32> {
        match &self.hdr {
            Hdr::V1(h) => (0..8u32)
                .filter(|&i| h.keyslots[i as usize].active)
                .collect(),
            Hdr::V2(l) => l.md.keyslots.keys().copied().collect(),
        }
    }

    pub(crate) fn max_slot(&self) -> u32 {
        match self.hdr {
            Hdr::V1(_) => luks1::NUM_SLOTS as u32 - 1,
            Hdr::V2(_) => json::MAX_KEYSLOTS - 1,
        }
    }

    /// Checks a candidate volume key against the digest (for `slot`, or any digest of segment 0).
    pub(crate) fn verify_key(&self, key: &[u8], slot: Option<u32>) -> Result<bool> {
        match &self.hdr {
            Hdr::V1(h) => {
                if key.len() != h.key_bytes as usize {
                    return Ok(false);
                }
                let mut d = [0u8; 20];
                h.hash
                    .pbkdf2(key, &h.mk_digest_salt, h.mk_digest_iter, &mut d);
                Ok(device::ct_eq(&d, &h.mk_digest))
            }
            Hdr::V2(l) => {
                for d in l.md.digests.values() {
                    // a keyslot opens the volume only if its digest is the data segment's
                    // (an unbound keyslot, or one left by an interrupted reencryption, holds
                    // another key)
                    let applies = match slot {
                        Some(s) => d.keyslots.contains(&s) && d.segments.contains(&0),
                        None => d.segments.contains(&0),
                    };
                    if !applies {
                        continue;
                    }
                    Kdf::pbkdf2_checked(d.hash, d.iterations as u64)?;
                    let mut out = Zeroizing::new(vec![0u8; d.digest.len()]);
                    d.hash.pbkdf2(key, &d.salt, d.iterations, &mut out);
                    if device::ct_eq(&out, &d.digest) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    fn try_slot(&self, slot: u32, passphrase: &[u8]) -> Result<Option<VolumeKey>> {
        let cand = match &self.hdr {
            Hdr::V1(h) => luks1::open_keyslot(&self.file, h, slot, passphrase)?,
            Hdr::V2(l) => luks2::keyslot::open_keyslot(&self.file, l, slot, passphrase)?,
        };
        Ok(if self.verify_key(&cand, Some(slot))? {
            Some(VolumeKey(cand))
        } else {
            None
        })
    }

    /// Recovers the volume key with a passphrase, trying every active keyslot
    /// (LUKS2: high priority first, priority 0 skipped unless named; a keyslot whose
    /// cipher is not supported is skipped) or only `slot`.
    /// Returns the keyslot that opened.
    pub fn recover_volume_key(
        &self,
        passphrase: &[u8],
        slot: Option<u32>,
    ) -> Result<(u32, VolumeKey)> {
        if let Some(s) = slot {
            if s > self.max_slot() {
                return Err(Error::SlotOutOfRange {
                    slot: s,
                    max: self.max_slot(),
                });
            }
            return self
                .try_slot(s, passphrase)?
                .map(|k| (s, k))
                .ok_or(Error::NoMatchingKey);
        }
        let mut order = self.active_keyslots();
        if let Hdr::V2(l) = &self.hdr {
            let prio = |s: &u32| l.md.keyslots.get(s).and_then(|k| k.priority).unwrap_or(1);
            order.retain(|s| prio(s) != 0);
            order.sort_by_key(|s| std::cmp::Reverse(prio(s)));
        }
        // As cryptsetup: a keyslot this implementation cannot open (its cipher is not
        // supported) is skipped, and the next one is tried.
        let mut unusable = None;
        let mut tried = false;
        for s in order {
            match self.try_slot(s, passphrase) {
                Ok(Some(k)) => return Ok((s, k)),
                Ok(None) => tried = true,
                Err(e) if e.is_unsupported_keyslot() => {
                    unusable.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match unusable {
            // every keyslot was unusable: say why rather than "no key matches"
            Some(e) if !tried => Err(e),
            _ => Err(Error::NoMatchingKey),
        }
    }

    /// `open --test-passphrase`: the keyslot that opens with the passphrase.
    pub fn test_passphrase(&self, passphrase: &[u8], slot: Option<u32>) -> Result<u32> {
        self.recover_volume_key(passphrase, slot).map(|(s, _)| s)
    }

    /// The data layout of segment 0 (offset, size, sector size, IV rule, cipher).
    pub fn data_layout(&self) -> Result<DataLayout> {
        let data = self.data_file.as_ref().unwrap_or(&self.file);
        let dev_size = device::size(data)?;
        let (offset, size, sector_size, iv_tweak, spec) = match &self.hdr {
            Hdr::V1(h) => {
                if h.payload_offset == 0 && self.data_file.is_none() {
                    return Err(Error::Unsupported(
                        "detached LUKS1 header: open it with open_detached".into(),
                    ));
                }
                (
                    h.payload_offset as u64 * 512,
                    None,
                    512u32,
                    0u64,
                    format!("{}-{}", h.cipher_name, h.cipher_mode),
                )
            }
            Hdr::V2(l) => {
                if l.md.reencrypt.is_some() {
                    return Err(Error::ReencryptionInProgress);
                }
                if l.md.segments.len() != 1 {
                    return Err(Error::Unsupported(format!(
                        "{} data segments (reencryption in progress?)",
                        l.md.segments.len()
                    )));
                }
                let s = &l.md.segments[&0];
                if s.linear {
                    return Err(Error::Unsupported(
                        "the data segment is plaintext (linear): the volume was decrypted".into(),
                    ));
                }
                if s.offset == 0 && self.data_file.is_none() {
                    return Err(Error::Unsupported(
                        "detached LUKS2 header (data offset 0): open it with open_detached".into(),
                    ));
                }
                (
                    s.offset,
                    s.size,
                    s.sector_size,
                    s.iv_tweak,
                    s.encryption.clone(),
                )
            }
        };
        let size = match size {
            Some(s) => {
                if offset.saturating_add(s) > dev_size {
                    return Err(Error::DeviceTooSmall {
                        needed: offset.saturating_add(s),
                        have: dev_size,
                    });
                }
                s
            }
            None => {
                // as cryptsetup: a data offset at or past the end of the device is refused
                if offset >= dev_size {
                    return Err(Error::DeviceTooSmall {
                        needed: offset.saturating_add(sector_size as u64),
                        have: dev_size,
                    });
                }
                dev_size.saturating_sub(offset) / sector_size as u64 * sector_size as u64
            }
        };
        Ok(DataLayout {
            offset,
            size,
            dynamic: matches!(&self.hdr, Hdr::V1(_))
                || self
                    .luks2_metadata()
                    .is_some_and(|m| m.segments[&0].size.is_none()),
            sector_size,
            iv_tweak,
            cipher: spec,
        })
    }

    fn unlocked(&self, key: VolumeKey) -> Result<UnlockedVolume> {
        let layout = self.data_layout()?;
        let (c, m) = keyslot::split_spec(&layout.cipher)?;
        let cipher = keyslot::make_cipher(c, m, key.as_bytes(), "segments.0.encryption")?;
        let data = self.data_file.as_ref().unwrap_or(&self.file);
        let file = data
            .try_clone()
            .map_err(Error::io("duplicating the device handle"))?;
        Ok(UnlockedVolume::new(
            file,
            layout,
            cipher,
            self.writable,
            key,
        ))
    }

    /// Unlocks with a passphrase (all active keyslots, or only `slot`).
    pub fn unlock(&self, passphrase: &[u8], slot: Option<u32>) -> Result<UnlockedVolume> {
        let (_, key) = self.recover_volume_key(passphrase, slot)?;
        self.unlocked(key)
    }

    /// Unlocks with the volume key (checked against the digest).
    pub fn unlock_with_volume_key(&self, key: &[u8]) -> Result<UnlockedVolume> {
        if !self.verify_key(key, None)? {
            return Err(Error::WrongVolumeKey);
        }
        self.unlocked(VolumeKey::new(key.to_vec()))
    }

    pub(crate) fn need_writable(&self) -> Result<LockGuard> {
        if !self.writable {
            return Err(Error::Io {
                context: "changing the header",
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "opened read-only",
                ),
            });
        }
        if self.luks2_metadata().is_some_and(|m| m.reencrypt.is_some()) {
            return Err(Error::ReencryptionInProgress);
        }
        // callers re-read the header under the lock: another writer may have changed it
        lock(&self.file)
    }

    pub(crate) fn reload(&mut self) -> Result<()> {
        let hdr = read_header(&self.file)?;
        self.hdr = hdr;
        Ok(())
    }

    /// Rewrites the LUKS2 header (both copies, new seqid): repairs a damaged or stale copy.
    pub fn repair(&mut self) -> Result<()> {
        let _guard = self.need_writable()?;
        self.reload()?;
        if let Hdr::V2(l) = &mut self.hdr {
            let mut nl = (**l).clone();
            write_luks2(&self.file, &mut nl)?;
            **l = nl;
        }
        Ok(())
    }

    /// Bytes of metadata (headers and keyslot areas) a header backup holds.
    pub fn metadata_len(&self) -> u64 {
        match &self.hdr {
            Hdr::V1(h) => {
                if h.payload_offset == 0 {
                    round_up(h.keyslots_end(), 4096)
                } else {
                    h.payload_offset as u64 * 512
                }
            }
            Hdr::V2(l) => 2 * l.bin.hdr_size + l.md.config.keyslots_size,
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{FormatOptions, KeyslotOptions, LuksType, PbkdfOptions};
    use crate::{format, PbkdfType, Unlock};

    fn fast() -> PbkdfOptions {
        PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2)
    }

    /// A LUKS2 volume with "first" in keyslot 0 and "second" in keyslot 1, whose
    /// keyslot 0 area cipher is then changed to one this crate does not implement.
    fn volume_with_unsupported_slot_0(dir: &Path) -> PathBuf {
        let path = dir.join("v.img");
        File::create(&path).unwrap().set_len(4 << 20).unwrap();
        let opts = FormatOptions {
            luks_type: LuksType::Luks2,
            pbkdf: fast(),
            luks2_keyslots_size: Some(1 << 20),
            ..Default::default()
        };
        format(&path, &opts, b"first").unwrap();
        let mut vol = Volume::open(&path).unwrap();
        let slot = vol
            .add_key(
                Unlock::Passphrase {
                    passphrase: b"first",
                    slot: None,
                },
                b"second",
                &KeyslotOptions {
                    key_slot: None,
                    pbkdf: fast(),
                },
            )
            .unwrap();
        assert_eq!(slot, 1);
        let Hdr::V2(l) = &mut vol.hdr else {
            unreachable!("formatted as LUKS2")
        };
        let mut nl = (**l).clone();
        nl.md.keyslots.get_mut(&0).unwrap().area.encryption = "twofish-xts-plain64".into();
        write_luks2(&vol.file, &mut nl).unwrap();
        path
    }

    #[test]
    fn a_keyslot_with_an_unsupported_cipher_is_skipped_and_the_next_one_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = volume_with_unsupported_slot_0(dir.path());
        let vol = Volume::open(&path).unwrap();
        // slot 0 comes first in the order (same priority): it must not stop the loop
        assert_eq!(vol.test_passphrase(b"second", None).unwrap(), 1);
        let (slot, _) = vol.recover_volume_key(b"second", None).unwrap();
        assert_eq!(slot, 1);
        assert!(vol.unlock(b"second", None).is_ok());
        // a wrong passphrase is still "no key matches", not the skipped slot's error
        assert!(matches!(
            vol.unlock(b"wrong", None),
            Err(Error::NoMatchingKey)
        ));
        // naming the unusable slot says why it cannot be used, before any KDF
        let e = vol.test_passphrase(b"first", Some(0)).unwrap_err();
        assert!(e.is_unsupported_keyslot(), "{e:?}");
        assert!(e.to_string().contains("twofish"), "{e}");
    }

    #[test]
    fn when_every_keyslot_is_unsupported_the_error_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = volume_with_unsupported_slot_0(dir.path());
        let mut vol = Volume::open(&path).unwrap();
        vol.kill_slot(1).unwrap();
        let e = vol.test_passphrase(b"first", None).unwrap_err();
        assert!(e.is_unsupported_keyslot(), "{e:?}");
    }

    #[test]
    fn a_luks1_keyslot_refuses_argon2_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.img");
        File::create(&path).unwrap().set_len(4 << 20).unwrap();
        let opts = FormatOptions {
            luks_type: LuksType::Luks1,
            pbkdf: fast(),
            ..Default::default()
        };
        format(&path, &opts, b"first").unwrap();
        let mut vol = Volume::open(&path).unwrap();
        let e = vol
            .add_key(
                Unlock::Passphrase {
                    passphrase: b"first",
                    slot: None,
                },
                b"second",
                &KeyslotOptions {
                    key_slot: None,
                    pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Argon2id),
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    option: "--pbkdf",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(vol.active_keyslots(), vec![0]);
        let e = format(
            &path,
            &FormatOptions {
                luks_type: LuksType::Luks1,
                pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Argon2i),
                ..Default::default()
            },
            b"x",
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    option: "--pbkdf",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

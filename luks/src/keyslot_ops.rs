//! Keyslot management (`luksAddKey`, `luksChangeKey`, `luksRemoveKey`, `luksKillSlot`):
//! the methods of [`Volume`] that add, replace and remove keyslots. Each re-reads the
//! header under the device lock; the format-specific writing is in [`crate::luks1`] and
//! [`crate::luks2::keyslot`].

use crate::device;
use crate::error::{Error, Result};
use crate::header::Hdr;
use crate::keyslot;
use crate::luks1;
use crate::luks2;
use crate::options::KeyslotOptions;
use crate::volume::Volume;
use crate::volume_key::VolumeKey;

/// How to prove the right to change a volume: a passphrase (all slots or one) or the volume key.
#[derive(Clone, Copy)]
pub enum Unlock<'a> {
    /// A passphrase, trying every active keyslot (or only `slot`).
    Passphrase {
        /// The passphrase bytes (every byte counts).
        passphrase: &'a [u8],
        /// Only this keyslot.
        slot: Option<u32>,
    },
    /// The volume key itself.
    VolumeKey(&'a [u8]),
}

impl std::fmt::Debug for Unlock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlock::Passphrase { slot, .. } => {
                write!(f, "Unlock::Passphrase {{ slot: {slot:?}, .. }}")
            }
            Unlock::VolumeKey(_) => write!(f, "Unlock::VolumeKey(..)"),
        }
    }
}

impl Volume {
    fn get_key(&self, how: Unlock<'_>) -> Result<(Option<u32>, VolumeKey)> {
        match how {
            Unlock::Passphrase { passphrase, slot } => {
                let (s, k) = self.recover_volume_key(passphrase, slot)?;
                Ok((Some(s), k))
            }
            Unlock::VolumeKey(k) => {
                if !self.verify_key(k, None)? {
                    return Err(Error::WrongVolumeKey);
                }
                Ok((None, VolumeKey::new(k.to_vec())))
            }
        }
    }

    fn free_slot(&self, wanted: Option<u32>) -> Result<u32> {
        let active = self.active_keyslots();
        match wanted {
            Some(s) if s > self.max_slot() => Err(Error::SlotOutOfRange {
                slot: s,
                max: self.max_slot(),
            }),
            Some(s) if active.contains(&s) => Err(Error::SlotActive(s)),
            Some(s) => Ok(s),
            None => (0..=self.max_slot())
                .find(|s| !active.contains(s))
                .ok_or(Error::NoFreeSlot),
        }
    }

    /// Writes a keyslot for `vk` with `passphrase` into `slot` (material first, then header).
    /// `replacing`: the LUKS2 slot whose area stays in use until the header switches.
    fn write_slot(
        &mut self,
        slot: u32,
        vk: &VolumeKey,
        passphrase: &[u8],
        opts: &KeyslotOptions,
        replacing: Option<u32>,
    ) -> Result<Option<(u64, u64)>> {
        match &mut self.hdr {
            Hdr::V1(h) => {
                luks1::write_keyslot(&self.file, h, slot, vk, passphrase, opts)?;
                Ok(None)
            }
            Hdr::V2(l) => {
                luks2::keyslot::write_keyslot(&self.file, l, slot, vk, passphrase, opts, replacing)
            }
        }
    }

    /// `luksAddKey`: adds `new_passphrase` in a free keyslot (or `opts.key_slot`).
    /// Material is written and synced before the header that points to it.
    pub fn add_key(
        &mut self,
        existing: Unlock<'_>,
        new_passphrase: &[u8],
        opts: &KeyslotOptions,
    ) -> Result<u32> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let (_, vk) = self.get_key(existing)?;
        let slot = self.free_slot(opts.key_slot)?;
        self.write_slot(slot, &vk, new_passphrase, opts, None)?;
        Ok(slot)
    }

    /// `luksChangeKey`: replaces the passphrase of the keyslot that `old_passphrase`
    /// opens (or `slot`). LUKS2 keeps the keyslot number and writes the new material
    /// into a free area before switching the header, then wipes the old area.
    /// LUKS1 moves the key to a free keyslot when there is one (else rewrites in place).
    /// Returns the keyslot now holding the new passphrase.
    pub fn change_key(
        &mut self,
        old_passphrase: &[u8],
        new_passphrase: &[u8],
        slot: Option<u32>,
        opts: &KeyslotOptions,
    ) -> Result<u32> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let (old_slot, vk) = self.recover_volume_key(old_passphrase, slot)?;
        match &self.hdr {
            Hdr::V1(_) => {
                let target = match opts.key_slot {
                    Some(s) if s == old_slot => s,
                    other => self.free_slot(other).unwrap_or(old_slot),
                };
                self.write_slot(target, &vk, new_passphrase, opts, None)?;
                if target != old_slot {
                    self.kill_slot_inner(old_slot)?;
                }
                Ok(target)
            }
            Hdr::V2(_) => {
                let target = opts.key_slot.unwrap_or(old_slot);
                if target != old_slot {
                    self.free_slot(Some(target))?;
                    self.write_slot(target, &vk, new_passphrase, opts, None)?;
                    self.kill_slot_inner(old_slot)?;
                } else if let Some((off, len)) =
                    self.write_slot(target, &vk, new_passphrase, opts, Some(old_slot))?
                {
                    device::wipe(&self.file, off, len)?;
                }
                Ok(target)
            }
        }
    }

    /// `luksRemoveKey`: removes the keyslot that `passphrase` opens. Returns its number.
    pub fn remove_key(&mut self, passphrase: &[u8]) -> Result<u32> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let (slot, _) = self.recover_volume_key(passphrase, None)?;
        self.kill_slot_inner(slot)?;
        Ok(slot)
    }

    /// `luksKillSlot`: removes keyslot `slot` (the header stops pointing to it, then
    /// its material is wiped).
    pub fn kill_slot(&mut self, slot: u32) -> Result<()> {
        let _guard = self.need_writable()?;
        self.reload()?;
        if slot > self.max_slot() {
            return Err(Error::SlotOutOfRange {
                slot,
                max: self.max_slot(),
            });
        }
        self.kill_slot_inner(slot)
    }

    fn kill_slot_inner(&mut self, slot: u32) -> Result<()> {
        let (off, len) = match &mut self.hdr {
            Hdr::V1(h) => {
                if !h.keyslots[slot as usize].active {
                    return Err(Error::SlotInactive(slot));
                }
                let mut nh = h.clone();
                let s = &mut nh.keyslots[slot as usize];
                s.active = false;
                s.iterations = 0;
                s.salt = [0; 32];
                let off = s.key_material_offset as u64 * 512;
                let len = keyslot::material_len(nh.key_bytes as usize, s.stripes) as u64;
                luks1::write_header(&self.file, &nh)?;
                *h = nh;
                (off, len)
            }
            Hdr::V2(l) => {
                let mut nl = (**l).clone();
                let k = nl
                    .md
                    .keyslots
                    .remove(&slot)
                    .ok_or(Error::SlotInactive(slot))?;
                for d in nl.md.digests.values_mut() {
                    d.keyslots.retain(|&s| s != slot);
                }
                for t in nl.md.tokens.values_mut() {
                    t.keyslots.retain(|&s| s != slot);
                }
                luks2::disk::write_luks2(&self.file, &mut nl)?;
                **l = nl;
                (k.area.offset, k.area.size)
            }
        };
        device::wipe(&self.file, off, len)
    }
}

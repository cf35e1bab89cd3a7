//! LUKS2 keyslots (type `luks2`): their parameters, the allocation of their areas in the
//! keyslots area, opening one with a passphrase and writing one.

use crate::device::{self, round_up};
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::keyslot::{self, SlotParams};
use crate::luks2::disk::{write_luks2, L2};
use crate::luks2::json::{self, Area};
use crate::options::KeyslotOptions;
use crate::random::random;
use crate::volume_key::VolumeKey;
use std::fs::File;
use zeroize::Zeroizing;

/// Where and how keyslot `k`'s material is stored (`field` names it in errors).
pub(crate) fn slot_params_v2<'a>(k: &'a json::Keyslot, field: &'a str) -> Result<SlotParams<'a>> {
    Ok(SlotParams {
        offset: k.area.offset,
        key_len: k.key_size as usize,
        stripes: k.stripes,
        af_hash: k.af_hash,
        kdf: k.kdf,
        salt: &k.salt,
        cipher: keyslot::split_spec(&k.area.encryption).map_err(|_| {
            Error::field(
                format!("{field}.area.encryption"),
                Problem::Invalid(k.area.encryption.clone()),
            )
        })?,
        area_key_len: k.area.key_size as usize,
        field,
        cipher_field: format!("{field}.area.encryption"),
    })
}

/// Decrypts keyslot `slot` with `passphrase` into a candidate volume key (not yet checked
/// against the digest).
pub(crate) fn open_keyslot(
    file: &File,
    l: &L2,
    slot: u32,
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let k = l.md.keyslots.get(&slot).ok_or(Error::SlotInactive(slot))?;
    let field = format!("keyslots.{slot}");
    keyslot::open(file, &slot_params_v2(k, &field)?, passphrase)
}

/// Finds room for a keyslot area of `size` bytes in the LUKS2 keyslots area,
/// ignoring the area of `except`.
pub(crate) fn alloc_area(l: &L2, size: u64, except: Option<u32>) -> Result<u64> {
    let start = 2 * l.bin.hdr_size;
    let end = start + l.md.config.keyslots_size;
    let mut used: Vec<(u64, u64)> =
        l.md.keyslots
            .iter()
            .filter(|(i, _)| Some(**i) != except)
            .map(|(_, k)| (k.area.offset, k.area.offset + k.area.size))
            .collect();
    used.sort();
    let mut cand = start;
    for (a, b) in used {
        if cand + size <= a {
            break;
        }
        cand = cand.max(round_up(b, 4096));
    }
    if cand + size <= end {
        Ok(cand)
    } else {
        Err(Error::NoSpace { needed: size })
    }
}

/// Writes keyslot `slot` for `vk` with `passphrase` (material first, then both header
/// copies). `replacing`: the slot whose area stays in use until the header switches.
/// Returns the replaced slot's old area when the new material went elsewhere (to be wiped).
pub(crate) fn write_keyslot(
    file: &File,
    l: &mut L2,
    slot: u32,
    vk: &VolumeKey,
    passphrase: &[u8],
    opts: &KeyslotOptions,
    replacing: Option<u32>,
) -> Result<Option<(u64, u64)>> {
    let key_len = vk.as_bytes().len();
    let digest_id =
        l.md.digests
            .iter()
            .find(|(_, d)| d.segments.contains(&0))
            .map(|(i, _)| *i)
            .ok_or_else(|| Error::field("digests", Problem::Missing))?;
    let (spec, area_key) =
        l.md.keyslots
            .values()
            .next()
            .map(|k| (k.area.encryption.clone(), k.area.key_size))
            .unwrap_or_else(|| {
                let s =
                    l.md.segments
                        .get(&0)
                        .map(|s| s.encryption.clone())
                        .unwrap_or_else(|| "aes-xts-plain64".into());
                (s, key_len as u32)
            });
    let (spec, area_key) = if spec.starts_with("cipher_null") {
        ("aes-xts-plain64".to_string(), 64)
    } else {
        (spec, area_key)
    };
    let mut pb = opts.pbkdf.clone();
    if pb.hash.is_none() {
        pb.hash = Some(l.md.digests[&digest_id].hash);
    }
    let kdf = pb.resolve(false, key_len)?;
    let size = round_up((key_len * crate::af::STRIPES as usize) as u64, 4096);
    let old_area = replacing
        .and_then(|r| l.md.keyslots.get(&r))
        .map(|k| (k.area.offset, k.area.size));
    let offset = match alloc_area(l, size, None) {
        Ok(o) => o,
        // no room beside the old area: overwrite it in place (not crash safe)
        Err(e) => match replacing {
            Some(r) => alloc_area(l, size, Some(r)).map_err(|_| e)?,
            None => return Err(e),
        },
    };
    let ks = json::Keyslot::new(
        key_len as u32,
        pb.hash.unwrap_or(HashAlg::Sha256),
        Area {
            offset,
            size,
            encryption: spec,
            key_size: area_key,
        },
        kdf,
        random(32)?,
    );
    let field = format!("keyslots.{slot}");
    let p = slot_params_v2(&ks, &field)?;
    let material = keyslot::seal(&p, vk.as_bytes(), passphrase)?;
    device::write_at(file, &material, offset)?;
    device::sync(file)?;
    let mut nl = l.clone();
    let ks = match nl.md.keyslots.get(&slot) {
        Some(old) => old.replaced_by(ks),
        None => ks,
    };
    nl.md.keyslots.insert(slot, ks);
    let d = nl
        .md
        .digests
        .get_mut(&digest_id)
        .ok_or_else(|| Error::field("digests", Problem::Missing))?;
    if !d.keyslots.contains(&slot) {
        d.keyslots.push(slot);
        d.keyslots.sort();
    }
    write_luks2(file, &mut nl)?;
    *l = nl;
    Ok(old_area.filter(|&(o, _)| o != offset))
}

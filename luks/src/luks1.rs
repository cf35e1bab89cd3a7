//! LUKS1: the on-disk header (592 bytes, big-endian) and its validation, and its
//! keyslots (parameters, opening, writing).

use crate::af::STRIPES;
use crate::device;
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::kdf::Kdf;
use crate::keyslot::{self, SlotParams};
use crate::options::KeyslotOptions;
use crate::random::random;
use crate::volume_key::VolumeKey;
use std::fs::File;
use zeroize::Zeroizing;

/// Magic of a LUKS header (both versions).
pub(crate) const MAGIC: [u8; 6] = *b"LUKS\xba\xbe";
/// Size of the LUKS1 header in bytes.
pub const HEADER_LEN: usize = 592;
/// Number of keyslots of LUKS1.
pub(crate) const NUM_SLOTS: usize = 8;
/// `active` value of an enabled keyslot.
pub(crate) const KEY_ENABLED: u32 = 0x00AC_71F3;
/// `active` value of a disabled keyslot.
pub(crate) const KEY_DISABLED: u32 = 0x0000_DEAD;
/// Size of salts and of the master-key digest salt.
pub(crate) const SALT_LEN: usize = 32;
/// Size of the master-key digest.
pub(crate) const DIGEST_LEN: usize = 20;
/// Keyslot areas are aligned to this many bytes (cryptsetup and qemu).
pub(crate) const KEYSLOT_ALIGN: u64 = 4096;

/// One LUKS1 keyslot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    /// Whether the slot holds a key.
    pub active: bool,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// PBKDF2 salt.
    pub salt: [u8; SALT_LEN],
    /// Start of the key material, in 512-byte sectors.
    pub key_material_offset: u32,
    /// AF stripes (always 4000).
    pub stripes: u32,
}

/// A parsed, validated LUKS1 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Cipher name, e.g. `aes`.
    pub cipher_name: String,
    /// Cipher mode, e.g. `xts-plain64`.
    pub cipher_mode: String,
    /// Hash for PBKDF2, AF and the digest.
    pub hash: HashAlg,
    /// Start of the payload in 512-byte sectors (0: detached header).
    pub payload_offset: u32,
    /// Volume key length in bytes.
    pub key_bytes: u32,
    /// PBKDF2 digest of the volume key.
    pub mk_digest: [u8; DIGEST_LEN],
    /// Salt of the digest.
    pub mk_digest_salt: [u8; SALT_LEN],
    /// Iterations of the digest.
    pub mk_digest_iter: u32,
    /// UUID text.
    pub uuid: String,
    /// The 8 keyslots.
    pub keyslots: [Keyslot; NUM_SLOTS],
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn cstr(b: &[u8], field: &str) -> Result<String> {
    // cryptsetup reads at most len-1 characters: a field without NUL is refused
    let Some(end) = b.iter().position(|&c| c == 0) else {
        return Err(Error::field(
            field,
            Problem::Invalid("not NUL-terminated".into()),
        ));
    };
    let s = &b[..end];
    if !s.iter().all(|c| c.is_ascii_graphic()) {
        return Err(Error::field(
            field,
            Problem::Invalid("not printable ASCII".into()),
        ));
    }
    Ok(String::from_utf8_lossy(s).into_owned())
}

fn put_str(dst: &mut [u8], s: &str, field: &'static str) -> Result<()> {
    if s.len() >= dst.len() || s.bytes().any(|c| c == 0) {
        return Err(Error::field(field, Problem::Invalid("too long".into())));
    }
    dst[..s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}

/// Sectors of one keyslot's key material for a key of `key_bytes`.
pub(crate) fn material_sectors(key_bytes: u32, stripes: u32) -> u64 {
    (key_bytes as u64 * stripes as u64).div_ceil(512)
}

/// Sectors of one keyslot's area as cryptsetup and qemu lay it out (aligned to 4096 bytes).
pub(crate) fn aligned_area_sectors(key_bytes: u32) -> u64 {
    (key_bytes as u64 * STRIPES as u64).div_ceil(KEYSLOT_ALIGN) * KEYSLOT_ALIGN / 512
}

impl Header {
    /// Parses and validates a header from its first 592 bytes.
    pub fn parse(b: &[u8]) -> Result<Header> {
        if b.len() < HEADER_LEN {
            return Err(Error::DeviceTooSmall {
                needed: HEADER_LEN as u64,
                have: b.len() as u64,
            });
        }
        if b[..6] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u16::from_be_bytes([b[6], b[7]]);
        if version != 1 {
            return Err(Error::UnsupportedVersion(version));
        }
        let cipher_name = cstr(&b[8..40], "cipher_name")?;
        let cipher_mode = cstr(&b[40..72], "cipher_mode")?;
        let hash_name = cstr(&b[72..104], "hash_spec")?;
        let hash = HashAlg::parse(&hash_name, "hash_spec")?;
        let payload_offset = be32(b, 104);
        let key_bytes = be32(b, 108);
        if !(16..=64).contains(&key_bytes) {
            return Err(Error::field(
                "key_bytes",
                Problem::OutOfRange {
                    min: 16,
                    max: 64,
                    found: key_bytes as u64,
                },
            ));
        }
        let mut mk_digest = [0u8; DIGEST_LEN];
        mk_digest.copy_from_slice(&b[112..132]);
        let mut mk_digest_salt = [0u8; SALT_LEN];
        mk_digest_salt.copy_from_slice(&b[132..164]);
        let mk_digest_iter = be32(b, 164);
        if mk_digest_iter == 0 {
            return Err(Error::field(
                "mk_digest_iter",
                Problem::OutOfRange {
                    min: 1,
                    max: u32::MAX as u64,
                    found: 0,
                },
            ));
        }
        let uuid = cstr(&b[168..208], "uuid")?;
        let mut slots = Vec::with_capacity(NUM_SLOTS);
        for i in 0..NUM_SLOTS {
            let o = 208 + i * 48;
            let active = match be32(b, o) {
                KEY_ENABLED => true,
                KEY_DISABLED => false,
                other => {
                    return Err(Error::field(
                        format!("keyslot{i}.active"),
                        Problem::Invalid(format!("0x{other:08x}")),
                    ))
                }
            };
            let mut salt = [0u8; SALT_LEN];
            salt.copy_from_slice(&b[o + 8..o + 40]);
            slots.push(Keyslot {
                active,
                iterations: be32(b, o + 4),
                salt,
                key_material_offset: be32(b, o + 40),
                stripes: be32(b, o + 44),
            });
        }
        let keyslots: [Keyslot; NUM_SLOTS] = slots.try_into().map_err(|_| Error::BadMagic)?;
        let h = Header {
            cipher_name,
            cipher_mode,
            hash,
            payload_offset,
            key_bytes,
            mk_digest,
            mk_digest_salt,
            mk_digest_iter,
            uuid,
            keyslots,
        };
        h.validate()?;
        Ok(h)
    }

    /// Checks keyslot geometry: stripes, iterations, areas after the header,
    /// not overlapping each other nor the payload.
    pub fn validate(&self) -> Result<()> {
        let mut areas: Vec<(u64, u64, usize)> = Vec::new();
        for (i, s) in self.keyslots.iter().enumerate() {
            if s.stripes != STRIPES {
                return Err(Error::field(
                    format!("keyslot{i}.stripes"),
                    Problem::OutOfRange {
                        min: STRIPES as u64,
                        max: STRIPES as u64,
                        found: s.stripes as u64,
                    },
                ));
            }
            if s.active && s.iterations == 0 {
                return Err(Error::field(
                    format!("keyslot{i}.iterations"),
                    Problem::OutOfRange {
                        min: 1,
                        max: u32::MAX as u64,
                        found: 0,
                    },
                ));
            }
            let start = s.key_material_offset as u64;
            // The header occupies the first 592 bytes: sectors 0 and 1.
            if start * 512 < HEADER_LEN as u64 {
                return Err(Error::field(
                    format!("keyslot{i}.key_material_offset"),
                    Problem::Overlaps("the header".into()),
                ));
            }
            let end = start + material_sectors(self.key_bytes, s.stripes);
            if self.payload_offset != 0 && end > self.payload_offset as u64 {
                return Err(Error::field(
                    format!("keyslot{i}.key_material_offset"),
                    Problem::Overlaps("the payload".into()),
                ));
            }
            for &(a, b, j) in &areas {
                if start < b && a < end {
                    return Err(Error::field(
                        format!("keyslot{i}.key_material_offset"),
                        Problem::Overlaps(format!("keyslot{j}")),
                    ));
                }
            }
            areas.push((start, end, i));
        }
        Ok(())
    }

    /// End of the keyslot areas in bytes (the smallest size a detached header file can have).
    pub fn keyslots_end(&self) -> u64 {
        self.keyslots
            .iter()
            .map(|s| {
                (s.key_material_offset as u64 + material_sectors(self.key_bytes, s.stripes)) * 512
            })
            .max()
            .unwrap_or(HEADER_LEN as u64)
    }

    /// Serializes the header to its 592 bytes.
    pub fn to_bytes(&self) -> Result<[u8; HEADER_LEN]> {
        let mut b = [0u8; HEADER_LEN];
        b[..6].copy_from_slice(&MAGIC);
        b[6..8].copy_from_slice(&1u16.to_be_bytes());
        put_str(&mut b[8..40], &self.cipher_name, "cipher_name")?;
        put_str(&mut b[40..72], &self.cipher_mode, "cipher_mode")?;
        put_str(&mut b[72..104], self.hash.name(), "hash_spec")?;
        b[104..108].copy_from_slice(&self.payload_offset.to_be_bytes());
        b[108..112].copy_from_slice(&self.key_bytes.to_be_bytes());
        b[112..132].copy_from_slice(&self.mk_digest);
        b[132..164].copy_from_slice(&self.mk_digest_salt);
        b[164..168].copy_from_slice(&self.mk_digest_iter.to_be_bytes());
        put_str(&mut b[168..208], &self.uuid, "uuid")?;
        for (i, s) in self.keyslots.iter().enumerate() {
            let o = 208 + i * 48;
            let act = if s.active { KEY_ENABLED } else { KEY_DISABLED };
            b[o..o + 4].copy_from_slice(&act.to_be_bytes());
            b[o + 4..o + 8].copy_from_slice(&s.iterations.to_be_bytes());
            b[o + 8..o + 40].copy_from_slice(&s.salt);
            b[o + 40..o + 44].copy_from_slice(&s.key_material_offset.to_be_bytes());
            b[o + 44..o + 48].copy_from_slice(&s.stripes.to_be_bytes());
        }
        Ok(b)
    }
}

/// Writes `h` (validated) at offset 0 and syncs.
pub(crate) fn write_header(file: &File, h: &Header) -> Result<()> {
    h.validate()?;
    device::write_at(file, &h.to_bytes()?, 0)?;
    device::sync(file)
}

/// Where and how keyslot `i`'s material is stored.
pub(crate) fn slot_params(h: &Header, i: usize) -> SlotParams<'_> {
    let s = &h.keyslots[i];
    SlotParams {
        offset: s.key_material_offset as u64 * 512,
        key_len: h.key_bytes as usize,
        stripes: s.stripes,
        af_hash: h.hash,
        kdf: Kdf::Pbkdf2 {
            hash: h.hash,
            iterations: s.iterations,
        },
        salt: &s.salt,
        cipher: (&h.cipher_name, &h.cipher_mode),
        area_key_len: h.key_bytes as usize,
        field: "keyslot",
        cipher_field: "cipher_name".into(),
    }
}

/// Decrypts keyslot `slot` with `passphrase` into a candidate volume key (not yet checked
/// against the digest).
pub(crate) fn open_keyslot(
    file: &File,
    h: &Header,
    slot: u32,
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if !h.keyslots[slot as usize].active {
        return Err(Error::SlotInactive(slot));
    }
    keyslot::open(file, &slot_params(h, slot as usize), passphrase)
}

/// Writes keyslot `slot` of `h` for `vk` with `passphrase`: material first (synced),
/// then the header.
pub(crate) fn write_keyslot(
    file: &File,
    h: &mut Header,
    slot: u32,
    vk: &VolumeKey,
    passphrase: &[u8],
    opts: &KeyslotOptions,
) -> Result<()> {
    let key_len = vk.as_bytes().len();
    let mut pb = opts.pbkdf.clone();
    pb.hash = Some(h.hash);
    let iterations = pb.resolve_luks1(key_len)?;
    let mut nh = h.clone();
    let s = &mut nh.keyslots[slot as usize];
    s.active = true;
    s.iterations = iterations;
    s.salt.copy_from_slice(&random(32)?);
    let p = slot_params(&nh, slot as usize);
    let material = keyslot::seal(&p, vk.as_bytes(), passphrase)?;
    device::write_at(file, &material, p.offset)?;
    device::sync(file)?;
    write_header(file, &nh)?;
    *h = nh;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        let area = aligned_area_sectors(64) as u32;
        let keyslots = std::array::from_fn(|i| Keyslot {
            active: i == 0,
            iterations: if i == 0 { 1000 } else { 0 },
            salt: [i as u8; 32],
            key_material_offset: 8 + i as u32 * area,
            stripes: STRIPES,
        });
        Header {
            cipher_name: "aes".into(),
            cipher_mode: "xts-plain64".into(),
            hash: HashAlg::Sha256,
            payload_offset: 4040,
            key_bytes: 64,
            mk_digest: [1; 20],
            mk_digest_salt: [2; 32],
            mk_digest_iter: 1000,
            uuid: "21cc2d2f-0118-44c0-afb9-9605c23813c4".into(),
            keyslots,
        }
    }

    #[test]
    fn round_trip_and_qemu_layout() {
        let h = sample();
        assert_eq!(
            h.keyslots[7].key_material_offset as u64 + aligned_area_sectors(64),
            4040
        );
        let b = h.to_bytes().unwrap();
        assert_eq!(Header::parse(&b).unwrap(), h);
    }

    #[test]
    fn rejects_bad_fields() {
        let mut b = sample().to_bytes().unwrap();
        b[0] = b'X';
        assert!(matches!(Header::parse(&b), Err(Error::BadMagic)));
        let mut h = sample();
        h.keyslots[3].stripes = 3999;
        let e = Header::parse(&h.to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(e, Error::Field { ref field, .. } if field == "keyslot3.stripes"),
            "{e}"
        );
        let mut h = sample();
        h.payload_offset = 4000;
        let e = Header::parse(&h.to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(e, Error::Field { ref field, problem: Problem::Overlaps(_) } if field == "keyslot7.key_material_offset"),
            "{e}"
        );
        let mut h = sample();
        h.keyslots[2].key_material_offset = 600;
        let e = Header::parse(&h.to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Field {
                    problem: Problem::Overlaps(_),
                    ..
                }
            ),
            "{e}"
        );
        let mut h = sample();
        h.key_bytes = 1000;
        let e = Header::parse(&h.to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(e, Error::Field { ref field, .. } if field == "key_bytes"),
            "{e}"
        );
        let mut b = sample().to_bytes().unwrap();
        b[208 + 48 + 3] = 0x11;
        let e = Header::parse(&b).unwrap_err();
        assert!(
            matches!(e, Error::Field { ref field, .. } if field == "keyslot1.active"),
            "{e}"
        );
    }
}

//! The LUKS2 binary header (4096 bytes, big-endian) of each metadata copy.

use crate::error::{Error, Problem, Result};
use sha2::{Digest, Sha256};

/// Magic of the primary copy.
pub(crate) const MAGIC_PRIMARY: [u8; 6] = *b"LUKS\xba\xbe";
/// Magic of the secondary copy.
pub(crate) const MAGIC_SECONDARY: [u8; 6] = *b"SKUL\xba\xbe";
/// Size of the binary header.
pub const BIN_LEN: usize = 4096;
/// Metadata sizes (binary header + JSON area) cryptsetup allows.
pub const HDR_SIZES: [u64; 9] = [
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
];

/// The fields of one binary header copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinHeader {
    /// Size of this copy: binary header + JSON area.
    pub hdr_size: u64,
    /// Sequence number, increased on every update.
    pub seqid: u64,
    /// Label (at most 47 bytes).
    pub label: String,
    /// Checksum algorithm (`sha256`).
    pub checksum_alg: String,
    /// Salt of this copy.
    pub salt: [u8; 64],
    /// UUID text.
    pub uuid: String,
    /// Subsystem (at most 47 bytes).
    pub subsystem: String,
    /// Offset of this copy on the device.
    pub hdr_offset: u64,
}

fn be64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_be_bytes(a)
}

fn cstr(b: &[u8], field: &str) -> Result<String> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| Error::field(field, Problem::Invalid("not NUL-terminated".into())))?;
    String::from_utf8(b[..end].to_vec())
        .map_err(|_| Error::field(field, Problem::Invalid("not UTF-8".into())))
}

fn put(dst: &mut [u8], s: &str, field: &'static str) -> Result<()> {
    if s.len() >= dst.len() || s.bytes().any(|c| c == 0) {
        return Err(Error::field(
            field,
            Problem::Invalid(format!(
                "longer than {} bytes or contains NUL",
                dst.len() - 1
            )),
        ));
    }
    dst[..s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}

/// Whether `size` is an allowed metadata size.
pub(crate) fn allowed_size(size: u64) -> bool {
    HDR_SIZES.contains(&size)
}

impl BinHeader {
    /// Parses the first 4096 bytes of a copy expected at `expected_offset`
    /// (0 for the primary). The checksum is verified separately by [`verify_checksum`].
    pub fn parse(b: &[u8], expected_offset: u64) -> Result<BinHeader> {
        if b.len() < BIN_LEN {
            return Err(Error::DeviceTooSmall {
                needed: BIN_LEN as u64,
                have: b.len() as u64,
            });
        }
        let want = if expected_offset == 0 {
            MAGIC_PRIMARY
        } else {
            MAGIC_SECONDARY
        };
        if b[..6] != want {
            return Err(Error::BadMagic);
        }
        let version = u16::from_be_bytes([b[6], b[7]]);
        if version != 2 {
            return Err(Error::UnsupportedVersion(version));
        }
        let hdr_size = be64(b, 8);
        if !allowed_size(hdr_size) {
            return Err(Error::field(
                "hdr_size",
                Problem::Unsupported(hdr_size.to_string()),
            ));
        }
        let hdr_offset = be64(b, 256);
        if hdr_offset != expected_offset {
            return Err(Error::field(
                "hdr_offset",
                Problem::Invalid(format!("{hdr_offset} but the copy is at {expected_offset}")),
            ));
        }
        let checksum_alg = cstr(&b[72..104], "checksum_alg")?;
        if checksum_alg != "sha256" {
            return Err(Error::field(
                "checksum_alg",
                Problem::Unsupported(checksum_alg),
            ));
        }
        let mut salt = [0u8; 64];
        salt.copy_from_slice(&b[104..168]);
        Ok(BinHeader {
            hdr_size,
            seqid: be64(b, 16),
            label: cstr(&b[24..72], "label")?,
            checksum_alg,
            salt,
            uuid: cstr(&b[168..208], "uuid")?,
            subsystem: cstr(&b[208..256], "subsystem")?,
            hdr_offset,
        })
    }

    /// Serializes the binary header with `json_area` (of `hdr_size - 4096` bytes)
    /// into a whole copy, with the checksum computed.
    pub fn serialize(&self, json_area: &[u8]) -> Result<Vec<u8>> {
        if json_area.len() as u64 + BIN_LEN as u64 != self.hdr_size {
            return Err(Error::field(
                "hdr_size",
                Problem::Invalid("JSON area size mismatch".into()),
            ));
        }
        let mut b = vec![0u8; self.hdr_size as usize];
        let magic = if self.hdr_offset == 0 {
            MAGIC_PRIMARY
        } else {
            MAGIC_SECONDARY
        };
        b[..6].copy_from_slice(&magic);
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&self.hdr_size.to_be_bytes());
        b[16..24].copy_from_slice(&self.seqid.to_be_bytes());
        put(&mut b[24..72], &self.label, "label")?;
        put(&mut b[72..104], &self.checksum_alg, "checksum_alg")?;
        b[104..168].copy_from_slice(&self.salt);
        put(&mut b[168..208], &self.uuid, "uuid")?;
        put(&mut b[208..256], &self.subsystem, "subsystem")?;
        b[256..264].copy_from_slice(&self.hdr_offset.to_be_bytes());
        b[BIN_LEN..].copy_from_slice(json_area);
        let sum = Sha256::digest(&b);
        b[448..480].copy_from_slice(&sum);
        Ok(b)
    }
}

/// Verifies the sha256 checksum of a whole copy (binary header + JSON area).
pub fn verify_checksum(copy: &[u8], offset: u64) -> Result<()> {
    if copy.len() < BIN_LEN {
        return Err(Error::Checksum { offset });
    }
    let mut h = Sha256::new();
    h.update(&copy[..448]);
    h.update([0u8; 64]);
    h.update(&copy[512..]);
    let sum = h.finalize();
    if sum[..] != copy[448..480] {
        return Err(Error::Checksum { offset });
    }
    Ok(())
}

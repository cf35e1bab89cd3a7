//! Keyslot material: passphrase -> KDF -> area key; volume key -> AF split ->
//! area encryption (512-byte sectors, IV from 0), and the reverse.

use crate::af;
use crate::cipher::{CipherError, SectorCipher};
use crate::device;
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::kdf::Kdf;
use std::fs::File;
use zeroize::Zeroizing;

/// Splits a LUKS cipher spec such as `aes-xts-plain64` into (`aes`, `xts-plain64`).
pub(crate) fn split_spec(spec: &str) -> Result<(&str, &str)> {
    match spec.split_once('-') {
        Some((c, m)) if !c.is_empty() && !m.is_empty() => Ok((c, m)),
        _ => Err(Error::InvalidOption {
            option: "--cipher",
            reason: format!("{spec:?} is not cipher-mode"),
        }),
    }
}

/// Builds a sector cipher, refusing `cipher_null` (a keyslot or segment
/// without encryption is never acted upon).
pub(crate) fn make_cipher(
    cipher: &str,
    mode: &str,
    key: &[u8],
    field: &str,
) -> Result<SectorCipher> {
    if cipher == "cipher_null" {
        return Err(Error::field(
            field,
            Problem::Unsupported("cipher_null".into()),
        ));
    }
    SectorCipher::new(cipher, mode, key).map_err(|e| Error::Cipher(e.to_string()))
}

/// Bytes of encrypted material for a key of `key_len` bytes (AF size rounded up to sectors).
pub(crate) fn material_len(key_len: usize, stripes: u32) -> usize {
    (key_len * stripes as usize).div_ceil(512) * 512
}

/// Where and how a keyslot's material is stored.
pub(crate) struct SlotParams<'a> {
    /// Byte offset of the material.
    pub offset: u64,
    /// Volume key length.
    pub key_len: usize,
    /// AF stripes.
    pub stripes: u32,
    /// AF hash.
    pub af_hash: HashAlg,
    /// KDF.
    pub kdf: Kdf,
    /// KDF salt.
    pub salt: &'a [u8],
    /// Area cipher name and mode.
    pub cipher: (&'a str, &'a str),
    /// Area key length.
    pub area_key_len: usize,
    /// Field name for errors.
    pub field: &'a str,
    /// Field naming the area cipher, for errors.
    pub cipher_field: String,
}

/// Derives the area key and decrypts+merges the material into a candidate volume key.
pub(crate) fn open(
    file: &File,
    p: &SlotParams<'_>,
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    p.kdf.check_limits()?;
    check_supported(p)?;
    let len = material_len(p.key_len, p.stripes);
    let mut buf = Zeroizing::new(vec![0u8; len]);
    device::read_at(file, &mut buf, p.offset)?;
    let area_key = p.kdf.derive(passphrase, p.salt, p.area_key_len)?;
    let c = make_cipher(p.cipher.0, p.cipher.1, &area_key, p.field)?;
    c.decrypt_sectors(&mut buf, 512, 0, true)
        .map_err(|e| Error::Cipher(e.to_string()))?;
    af::merge(&buf, p.key_len, p.stripes, p.af_hash)
}

/// Refuses, before the costly KDF, a keyslot whose area cipher this implementation does
/// not support: an error on the cipher's field with [`Problem::Unsupported`], which the
/// try-every-keyslot unlock skips.
fn check_supported(p: &SlotParams<'_>) -> Result<()> {
    let (cipher, mode) = p.cipher;
    if cipher == "cipher_null" {
        return Err(Error::field(
            p.cipher_field.as_str(),
            Problem::Unsupported("cipher_null".into()),
        ));
    }
    let probe = Zeroizing::new(vec![0u8; p.area_key_len]);
    match SectorCipher::new(cipher, mode, &probe) {
        Err(CipherError::Unsupported { .. }) => Err(Error::field(
            p.cipher_field.as_str(),
            Problem::Unsupported(format!("cipher {cipher}-{mode}")),
        )),
        _ => Ok(()),
    }
}

/// Builds the encrypted material for `volume_key` (to be written at `p.offset`).
pub(crate) fn seal(
    p: &SlotParams<'_>,
    volume_key: &[u8],
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let split = af::split(volume_key, p.stripes, p.af_hash)?;
    let mut buf = Zeroizing::new(vec![0u8; material_len(p.key_len, p.stripes)]);
    buf[..split.len()].copy_from_slice(&split);
    let area_key = p.kdf.derive(passphrase, p.salt, p.area_key_len)?;
    let c = make_cipher(p.cipher.0, p.cipher.1, &area_key, p.field)?;
    c.encrypt_sectors(&mut buf, 512, 0, true)
        .map_err(|e| Error::Cipher(e.to_string()))?;
    Ok(buf)
}

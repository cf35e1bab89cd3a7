//! Sector ciphers: the encryption of LUKS data segments and keyslot areas.
//!
//! [`SectorCipher`] encrypts and decrypts whole sectors in place, with the IV
//! of each sector derived from its number the way dm-crypt does:
//!
//! | LUKS mode          | key bytes    | IV of sector `n`                                   |
//! |--------------------|--------------|----------------------------------------------------|
//! | `xts-plain64`      | 32, 48, 64   | `n` as 64-bit little endian, zero padded to 16     |
//! | `xts-plain`        | 32, 48, 64   | `n mod 2^32` as 32-bit little endian, zero padded  |
//! | `xts-plain64be`    | 32, 48, 64   | `n` as 64-bit big endian in the last 8 bytes       |
//! | `cbc-plain64`      | 16, 24, 32   | as `plain64`                                       |
//! | `cbc-plain`        | 16, 24, 32   | as `plain`                                         |
//! | `cbc-essiv:sha256` | 16, 24, 32   | AES-256 with key SHA-256(key) of the `plain64` IV  |
//!
//! The cipher name must be `aes`. For XTS the key is both halves (data key,
//! then tweak key).
//!
//! # Backends
//!
//! XTS has two implementations, chosen at build time (feature `aws-lc`, on by
//! default) and overridable at run time with [`SectorCipher::with_backend`]
//! (meant for benchmarks and tests):
//!
//! * [`Backend::AwsLc`]: AWS-LC's `EVP_aes_256_xts` (AVX-512/VAES assembly),
//!   through the crate's only `unsafe` module. AWS-LC only has XTS for
//!   AES-256 (64-byte keys) and refuses keys whose two halves are equal (the
//!   FIPS rule); for those keys the cipher transparently uses the pure-Rust
//!   backend, so every volume cryptsetup can open opens here too.
//! * [`Backend::RustCrypto`]: pure Rust over the `aes` crate (AES-NI, VAES
//!   256/512 selected at run time), batching whole sectors through its
//!   multi-block API.
//!
//! CBC modes always use the pure-Rust code.
//!
//! Key material is zeroized when the cipher is dropped, and `Debug` never
//! shows it.

#[cfg(feature = "aws-lc")]
mod awslc;
mod cbc;
mod xts;

use aes::cipher::KeyInit;
use aes::{Aes128, Aes192, Aes256};
use std::fmt;

/// Errors of sector encryption. None of them carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The cipher or mode (or IV generator) is not implemented.
    #[error("unsupported cipher {cipher:?} with mode {mode:?}")]
    Unsupported {
        /// Cipher name as given (e.g. `aes`).
        cipher: String,
        /// Mode as given (e.g. `xts-plain64`).
        mode: String,
    },
    /// The key length does not fit the cipher and mode.
    #[error("a {got}-byte key is not valid for {spec} (expected {expected} bytes)")]
    KeySize {
        /// `cipher-mode`.
        spec: String,
        /// Length of the key given.
        got: usize,
        /// Accepted lengths, for the message.
        expected: &'static str,
    },
    /// The buffer is not a whole number of sectors.
    #[error("buffer of {len} bytes is not a whole number of {sector_size}-byte sectors")]
    Length {
        /// Buffer length.
        len: usize,
        /// Sector size asked for.
        sector_size: usize,
    },
    /// The sector size is not a power of two in 512..=4096.
    #[error("sector size {0} is not a power of two between 512 and 4096")]
    SectorSize(usize),
    /// The backend asked for with [`SectorCipher::with_backend`] cannot do this cipher.
    #[error("backend {backend} cannot do {spec} with a {key_len}-byte key")]
    BackendUnsupported {
        /// Backend name.
        backend: &'static str,
        /// `cipher-mode`.
        spec: String,
        /// Key length.
        key_len: usize,
    },
    /// The crypto library reported a failure (no detail that could leak data).
    #[error("crypto library failure in {0}")]
    Library(&'static str),
}

/// An XTS implementation. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// AWS-LC's `EVP_aes_256_xts` (feature `aws-lc`).
    AwsLc,
    /// Pure Rust over the `aes` crate.
    RustCrypto,
}

impl Backend {
    /// The backend [`SectorCipher::new`] uses for XTS in this build.
    pub const fn build_default() -> Backend {
        if cfg!(feature = "aws-lc") {
            Backend::AwsLc
        } else {
            Backend::RustCrypto
        }
    }

    /// The backends compiled into this build.
    pub fn available() -> &'static [Backend] {
        if cfg!(feature = "aws-lc") {
            &[Backend::AwsLc, Backend::RustCrypto]
        } else {
            &[Backend::RustCrypto]
        }
    }

    /// Short name (`aws-lc`, `rustcrypto`).
    pub const fn name(self) -> &'static str {
        match self {
            Backend::AwsLc => "aws-lc",
            Backend::RustCrypto => "rustcrypto",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the 16-byte IV is made from a sector number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IvGen {
    /// 32-bit little endian (the number is truncated).
    Plain,
    /// 64-bit little endian.
    Plain64,
    /// 64-bit big endian in the last 8 bytes.
    Plain64Be,
}

impl IvGen {
    #[inline]
    pub(crate) fn iv(self, n: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        match self {
            IvGen::Plain => iv[..4].copy_from_slice(&(n as u32).to_le_bytes()),
            IvGen::Plain64 => iv[..8].copy_from_slice(&n.to_le_bytes()),
            IvGen::Plain64Be => iv[8..].copy_from_slice(&n.to_be_bytes()),
        }
        iv
    }
}

/// The IVs of the sectors of one buffer: sector `i` has number `first + i * step`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IvSeq {
    pub(crate) gen: IvGen,
    pub(crate) first: u64,
    pub(crate) step: u64,
}

impl IvSeq {
    /// IV of sector `i` of the buffer (sector numbers wrap like dm-crypt's `u64`).
    #[inline]
    pub(crate) fn iv(&self, i: usize) -> [u8; 16] {
        self.gen
            .iv(self.first.wrapping_add((i as u64).wrapping_mul(self.step)))
    }
}

enum Engine {
    Xts128(Box<xts::Xts<Aes128>>),
    Xts192(Box<xts::Xts<Aes192>>),
    Xts256(Box<xts::Xts<Aes256>>),
    /// Boxed like the others, so every variant is one pointer: an inline
    /// variant would leave unused bytes (stale stack contents) inside a heap
    /// `SectorCipher` holding another variant.
    #[cfg(feature = "aws-lc")]
    AwsLc(Box<awslc::AwsLcXts>),
    Cbc128(Box<cbc::Cbc<Aes128>>),
    Cbc192(Box<cbc::Cbc<Aes192>>),
    Cbc256(Box<cbc::Cbc<Aes256>>),
}

/// A sector cipher for one key: `Send + Sync`, usable from many threads at once.
///
/// Key material (and expanded key schedules) is zeroized on drop; `Debug`
/// shows the algorithm only.
pub struct SectorCipher {
    engine: Engine,
    iv_gen: IvGen,
    key_len: usize,
    spec: String,
    backend: Backend,
}

impl fmt::Debug for SectorCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectorCipher")
            .field("spec", &self.spec)
            .field("key_len", &self.key_len)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ModeKind {
    Xts,
    Cbc { essiv: bool },
}

fn parse_mode(cipher: &str, mode: &str) -> Result<(ModeKind, IvGen), CipherError> {
    let unsupported = || CipherError::Unsupported {
        cipher: cipher.to_string(),
        mode: mode.to_string(),
    };
    if cipher != "aes" {
        return Err(unsupported());
    }
    let (chain, ivmode) = mode.split_once('-').ok_or_else(unsupported)?;
    let kind_iv = match (chain, ivmode) {
        ("xts", "plain64") => (ModeKind::Xts, IvGen::Plain64),
        ("xts", "plain") => (ModeKind::Xts, IvGen::Plain),
        ("xts", "plain64be") => (ModeKind::Xts, IvGen::Plain64Be),
        ("cbc", "plain64") => (ModeKind::Cbc { essiv: false }, IvGen::Plain64),
        ("cbc", "plain") => (ModeKind::Cbc { essiv: false }, IvGen::Plain),
        ("cbc", "plain64be") => (ModeKind::Cbc { essiv: false }, IvGen::Plain64Be),
        ("cbc", "essiv:sha256") => (ModeKind::Cbc { essiv: true }, IvGen::Plain64),
        _ => return Err(unsupported()),
    };
    Ok(kind_iv)
}

impl SectorCipher {
    /// Builds a cipher. `cipher` and `mode` as LUKS names them: (`aes`,
    /// `xts-plain64`), (`aes`, `cbc-essiv:sha256`), (`aes`, `xts-plain`),
    /// (`aes`, `cbc-plain64`) ...; `key` is the whole volume or keyslot key
    /// (for XTS both halves: 32, 48 or 64 bytes). XTS uses the build's
    /// default backend ([`Backend::build_default`]).
    pub fn new(cipher: &str, mode: &str, key: &[u8]) -> Result<SectorCipher, CipherError> {
        Self::build(cipher, mode, key, None)
    }

    /// Like [`SectorCipher::new`] but forces the XTS backend. For benchmarks
    /// and tests that compare the backends; applications should use `new`.
    /// Fails with [`CipherError::BackendUnsupported`] when the backend is not
    /// compiled in or cannot handle the key (AWS-LC: 64-byte keys with
    /// distinct halves only) or the mode (CBC is pure Rust only).
    pub fn with_backend(
        cipher: &str,
        mode: &str,
        key: &[u8],
        backend: Backend,
    ) -> Result<SectorCipher, CipherError> {
        Self::build(cipher, mode, key, Some(backend))
    }

    fn build(
        cipher: &str,
        mode: &str,
        key: &[u8],
        forced: Option<Backend>,
    ) -> Result<SectorCipher, CipherError> {
        let (kind, iv_gen) = parse_mode(cipher, mode)?;
        let spec = format!("{cipher}-{mode}");
        let unsupported_backend = |b: Backend| CipherError::BackendUnsupported {
            backend: b.name(),
            spec: spec.clone(),
            key_len: key.len(),
        };
        let (engine, backend) = match kind {
            ModeKind::Xts => {
                if !matches!(key.len(), 32 | 48 | 64) {
                    return Err(CipherError::KeySize {
                        spec,
                        got: key.len(),
                        expected: "32, 48 or 64",
                    });
                }
                let want = forced.unwrap_or(Backend::build_default());
                match want {
                    Backend::AwsLc => {
                        #[cfg(feature = "aws-lc")]
                        {
                            match awslc::AwsLcXts::new(key) {
                                Some(x) => (Engine::AwsLc(Box::new(x)), Backend::AwsLc),
                                None if forced.is_none() => {
                                    (xts_engine(key, &spec)?, Backend::RustCrypto)
                                }
                                None => return Err(unsupported_backend(Backend::AwsLc)),
                            }
                        }
                        #[cfg(not(feature = "aws-lc"))]
                        {
                            return Err(unsupported_backend(Backend::AwsLc));
                        }
                    }
                    Backend::RustCrypto => (xts_engine(key, &spec)?, Backend::RustCrypto),
                }
            }
            ModeKind::Cbc { essiv } => {
                if forced == Some(Backend::AwsLc) {
                    return Err(unsupported_backend(Backend::AwsLc));
                }
                let bad = |_| CipherError::KeySize {
                    spec: spec.clone(),
                    got: key.len(),
                    expected: "16, 24 or 32",
                };
                let engine = match key.len() {
                    16 => Engine::Cbc128(Box::new(
                        cbc::Cbc::new(Aes128::new_from_slice(key).map_err(bad)?, key, essiv)
                            .map_err(bad)?,
                    )),
                    24 => Engine::Cbc192(Box::new(
                        cbc::Cbc::new(Aes192::new_from_slice(key).map_err(bad)?, key, essiv)
                            .map_err(bad)?,
                    )),
                    32 => Engine::Cbc256(Box::new(
                        cbc::Cbc::new(Aes256::new_from_slice(key).map_err(bad)?, key, essiv)
                            .map_err(bad)?,
                    )),
                    n => {
                        return Err(CipherError::KeySize {
                            spec,
                            got: n,
                            expected: "16, 24 or 32",
                        })
                    }
                };
                (engine, Backend::RustCrypto)
            }
        };
        Ok(SectorCipher {
            engine,
            iv_gen,
            key_len: key.len(),
            spec,
            backend,
        })
    }

    /// Length in bytes of the key this cipher was built with.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// `cipher-mode`, e.g. `aes-xts-plain64`.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The backend actually in use (CBC modes and keys AWS-LC refuses report
    /// [`Backend::RustCrypto`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Encrypts whole sectors in place. `buf.len()` must be a multiple of
    /// `sector_size` (512..=4096, power of two). Sector `i` of `buf` uses IV
    /// number `first_iv + i * (sector_size / 512)` when `iv_in_512_units`,
    /// else `first_iv + i`.
    pub fn encrypt_sectors(
        &self,
        buf: &mut [u8],
        sector_size: usize,
        first_iv: u64,
        iv_in_512_units: bool,
    ) -> Result<(), CipherError> {
        self.run(buf, sector_size, first_iv, iv_in_512_units, true)
    }

    /// Decrypts whole sectors in place; same rules as [`SectorCipher::encrypt_sectors`].
    pub fn decrypt_sectors(
        &self,
        buf: &mut [u8],
        sector_size: usize,
        first_iv: u64,
        iv_in_512_units: bool,
    ) -> Result<(), CipherError> {
        self.run(buf, sector_size, first_iv, iv_in_512_units, false)
    }

    fn run(
        &self,
        buf: &mut [u8],
        sector_size: usize,
        first_iv: u64,
        iv_in_512_units: bool,
        encrypt: bool,
    ) -> Result<(), CipherError> {
        if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(CipherError::SectorSize(sector_size));
        }
        if !buf.len().is_multiple_of(sector_size) {
            return Err(CipherError::Length {
                len: buf.len(),
                sector_size,
            });
        }
        if buf.is_empty() {
            return Ok(());
        }
        let step = if iv_in_512_units {
            (sector_size / 512) as u64
        } else {
            1
        };
        let ivs = IvSeq {
            gen: self.iv_gen,
            first: first_iv,
            step,
        };
        match &self.engine {
            Engine::Xts128(x) => x.process(buf, sector_size, &ivs, encrypt),
            Engine::Xts192(x) => x.process(buf, sector_size, &ivs, encrypt),
            Engine::Xts256(x) => x.process(buf, sector_size, &ivs, encrypt),
            #[cfg(feature = "aws-lc")]
            Engine::AwsLc(x) => return x.process(buf, sector_size, &ivs, encrypt),
            Engine::Cbc128(c) => c.process(buf, sector_size, &ivs, encrypt),
            Engine::Cbc192(c) => c.process(buf, sector_size, &ivs, encrypt),
            Engine::Cbc256(c) => c.process(buf, sector_size, &ivs, encrypt),
        }
        Ok(())
    }
}

fn xts_engine(key: &[u8], spec: &str) -> Result<Engine, CipherError> {
    let half = key.len() / 2;
    let (k1, k2) = key.split_at(half);
    let bad = |_| CipherError::KeySize {
        spec: spec.to_string(),
        got: key.len(),
        expected: "32, 48 or 64",
    };
    Ok(match half {
        16 => Engine::Xts128(Box::new(xts::Xts::new(k1, k2).map_err(bad)?)),
        24 => Engine::Xts192(Box::new(xts::Xts::new(k1, k2).map_err(bad)?)),
        _ => Engine::Xts256(Box::new(xts::Xts::new(k1, k2).map_err(bad)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iv_generators() {
        assert_eq!(
            IvGen::Plain64.iv(0x0102_0304_0506_0708)[..8],
            [8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            IvGen::Plain.iv(0x1_0000_0002)[..],
            [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(IvGen::Plain64Be.iv(1)[15], 1);
        let s = IvSeq {
            gen: IvGen::Plain64,
            first: u64::MAX,
            step: 8,
        };
        assert_eq!(s.iv(1)[..8], 7u64.to_le_bytes());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(
            SectorCipher::new("twofish", "xts-plain64", &[0; 64]),
            Err(CipherError::Unsupported { .. })
        ));
        assert!(matches!(
            SectorCipher::new("aes", "ecb", &[0; 32]),
            Err(CipherError::Unsupported { .. })
        ));
        assert!(matches!(
            SectorCipher::new("aes", "xts-plain64", &[0; 16]),
            Err(CipherError::KeySize { got: 16, .. })
        ));
        assert!(matches!(
            SectorCipher::new("aes", "cbc-essiv:sha256", &[0; 64]),
            Err(CipherError::KeySize { .. })
        ));
        let c = SectorCipher::new("aes", "xts-plain64", &[7; 64]).unwrap();
        let mut buf = vec![0u8; 1000];
        assert_eq!(
            c.encrypt_sectors(&mut buf, 512, 0, true),
            Err(CipherError::Length {
                len: 1000,
                sector_size: 512
            })
        );
        assert_eq!(
            c.encrypt_sectors(&mut buf, 1000, 0, true),
            Err(CipherError::SectorSize(1000))
        );
        assert_eq!(
            c.decrypt_sectors(&mut buf, 8192, 0, true),
            Err(CipherError::SectorSize(8192))
        );
        let mut empty = [];
        assert_eq!(c.encrypt_sectors(&mut empty, 512, 0, true), Ok(()));
    }

    #[test]
    fn debug_hides_key() {
        let key = [0xabu8; 64];
        let c = SectorCipher::new("aes", "xts-plain64", &key).unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("aes-xts-plain64"), "{d}");
        assert!(
            !d.to_lowercase().contains("ab, ab") && !d.contains("171") && !d.contains("abab"),
            "{d}"
        );
    }
}

//! Options of format and keyslot operations, one field per cryptsetup option.

use crate::error::{Error, Result};
use crate::hash::HashAlg;
use crate::kdf::{self, Kdf, PbkdfType};
use zeroize::Zeroizing;

/// LUKS version (`--type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LuksType {
    /// `luks1`
    Luks1,
    /// `luks2` (cryptsetup's default)
    #[default]
    Luks2,
}

impl std::str::FromStr for LuksType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "luks1" => Ok(LuksType::Luks1),
            "luks2" | "luks" => Ok(LuksType::Luks2),
            _ => Err(Error::InvalidOption {
                option: "--type",
                reason: format!("unknown type {s:?}"),
            }),
        }
    }
}

/// KDF options of a new keyslot (`--pbkdf`, `--iter-time`, `--pbkdf-force-iterations`,
/// `--pbkdf-memory`, `--pbkdf-parallel`; `--hash` for PBKDF2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbkdfOptions {
    /// `--pbkdf` (default: argon2id for LUKS2, pbkdf2 for LUKS1).
    pub pbkdf: Option<PbkdfType>,
    /// `--hash` for PBKDF2 (default sha256).
    pub hash: Option<HashAlg>,
    /// `--iter-time` in milliseconds (default 2000).
    pub iter_time_ms: Option<u32>,
    /// `--pbkdf-force-iterations`: PBKDF2 iterations or Argon2 time cost, no benchmark.
    pub force_iterations: Option<u32>,
    /// `--pbkdf-memory` in KiB (Argon2; default 1 GiB capped at half the RAM).
    pub memory_kib: Option<u32>,
    /// `--pbkdf-parallel` (Argon2; default min(4, CPUs)).
    pub parallel: Option<u32>,
}

impl PbkdfOptions {
    /// Tiny costs for tests: PBKDF2 1000 iterations, or Argon2 4 passes over 32 KiB on one lane.
    pub fn fast_for_tests(kind: PbkdfType) -> PbkdfOptions {
        match kind {
            PbkdfType::Pbkdf2 => PbkdfOptions {
                pbkdf: Some(kind),
                force_iterations: Some(1000),
                ..Default::default()
            },
            _ => PbkdfOptions {
                pbkdf: Some(kind),
                force_iterations: Some(4),
                memory_kib: Some(32),
                parallel: Some(1),
                ..Default::default()
            },
        }
    }

    /// Checks every option against its allowed range, without deriving or
    /// benchmarking anything (so a command can refuse bad options first).
    pub fn check(&self, luks1: bool) -> Result<()> {
        let kind = self.pbkdf.unwrap_or(if luks1 {
            PbkdfType::Pbkdf2
        } else {
            PbkdfType::Argon2id
        });
        if luks1 && kind != PbkdfType::Pbkdf2 {
            return Err(Error::InvalidOption {
                option: "--pbkdf",
                reason: "LUKS1 supports only pbkdf2".into(),
            });
        }
        let range = |option: &'static str, v: u64, min: u64, max: u64, unit: &str| {
            if v < min || v > max {
                Err(Error::InvalidOption {
                    option,
                    reason: format!("{v} is outside the allowed {min}..={max} {unit}"),
                })
            } else {
                Ok(())
            }
        };
        if let Some(t) = self.iter_time_ms {
            range("--iter-time", t.into(), 1, u32::MAX.into(), "milliseconds")?;
        }
        match kind {
            PbkdfType::Pbkdf2 => {
                if self.memory_kib.is_some() || self.parallel.is_some() {
                    return Err(Error::InvalidOption {
                        option: if self.memory_kib.is_some() {
                            "--pbkdf-memory"
                        } else {
                            "--pbkdf-parallel"
                        },
                        reason: "applies to Argon2 only, not pbkdf2".into(),
                    });
                }
                if let Some(n) = self.force_iterations {
                    range(
                        "--pbkdf-force-iterations",
                        n.into(),
                        kdf::MIN_PBKDF2_ITERATIONS.into(),
                        kdf::MAX_PBKDF2_ITERATIONS,
                        "iterations",
                    )?;
                }
            }
            PbkdfType::Argon2i | PbkdfType::Argon2id => {
                if let Some(m) = self.memory_kib {
                    range(
                        "--pbkdf-memory",
                        m.into(),
                        kdf::MIN_ARGON2_MEMORY_KIB,
                        kdf::MAX_ARGON2_MEMORY_KIB,
                        "KiB",
                    )?;
                }
                if let Some(p) = self.parallel {
                    range(
                        "--pbkdf-parallel",
                        p.into(),
                        1,
                        kdf::MAX_ARGON2_THREADS,
                        "threads",
                    )?;
                }
                if let Some(t) = self.force_iterations {
                    range(
                        "--pbkdf-force-iterations",
                        t.into(),
                        kdf::MIN_ARGON2_TIME.into(),
                        u32::MAX.into(),
                        "passes",
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Resolves the options into KDF parameters (benchmarking when no iterations are forced).
    pub fn resolve(&self, luks1: bool, key_len: usize) -> Result<Kdf> {
        self.check(luks1)?;
        let kind = self.pbkdf.unwrap_or(if luks1 {
            PbkdfType::Pbkdf2
        } else {
            PbkdfType::Argon2id
        });
        if luks1 && kind != PbkdfType::Pbkdf2 {
            return Err(Error::InvalidOption {
                option: "--pbkdf",
                reason: "LUKS1 supports only pbkdf2".into(),
            });
        }
        let hash = self.hash.unwrap_or(HashAlg::Sha256);
        let iter_time = self.iter_time_ms.unwrap_or(kdf::DEFAULT_ITER_TIME_MS);
        match kind {
            PbkdfType::Pbkdf2 => Ok(Kdf::Pbkdf2 {
                hash,
                iterations: self.pbkdf2_iterations(key_len)?,
            }),
            PbkdfType::Argon2i | PbkdfType::Argon2id => {
                let memory = self.memory_kib.unwrap_or_else(kdf::default_memory_kib);
                let parallel = self.parallel.unwrap_or_else(kdf::default_parallel);
                let variant = if kind == PbkdfType::Argon2i {
                    kdf::Argon2Variant::Argon2i
                } else {
                    kdf::Argon2Variant::Argon2id
                };
                let bad = |option: &'static str, e: Error| Error::InvalidOption {
                    option,
                    reason: e.to_string(),
                };
                match self.force_iterations {
                    Some(t) if t < kdf::MIN_ARGON2_TIME => Err(Error::InvalidOption {
                        option: "--pbkdf-force-iterations",
                        reason: format!("Argon2 needs at least {} passes", kdf::MIN_ARGON2_TIME),
                    }),
                    Some(t) => {
                        Kdf::argon2_checked(variant, t as u64, memory as u64, parallel as u64)
                            .map_err(|e| bad("--pbkdf-memory", e))
                    }
                    None => kdf::benchmark(kind, hash, iter_time, key_len, memory, parallel)
                        .map_err(|e| bad("--pbkdf-memory", e)),
                }
            }
        }
    }

    /// Resolves the options of a LUKS1 keyslot (PBKDF2 only): its iteration count.
    pub(crate) fn resolve_luks1(&self, key_len: usize) -> Result<u32> {
        self.check(true)?;
        if self.pbkdf.is_some_and(|k| k != PbkdfType::Pbkdf2) {
            return Err(Error::InvalidOption {
                option: "--pbkdf",
                reason: "LUKS1 supports only pbkdf2".into(),
            });
        }
        self.pbkdf2_iterations(key_len)
    }

    /// PBKDF2 iterations: forced (at least 1000) or benchmarked.
    fn pbkdf2_iterations(&self, key_len: usize) -> Result<u32> {
        if self.memory_kib.is_some() || self.parallel.is_some() {
            return Err(Error::InvalidOption {
                option: if self.memory_kib.is_some() {
                    "--pbkdf-memory"
                } else {
                    "--pbkdf-parallel"
                },
                reason: "applies to Argon2 only, not pbkdf2".into(),
            });
        }
        let hash = self.hash.unwrap_or(HashAlg::Sha256);
        let iter_time = self.iter_time_ms.unwrap_or(kdf::DEFAULT_ITER_TIME_MS);
        match self.force_iterations {
            Some(n) if n < kdf::MIN_PBKDF2_ITERATIONS => Err(Error::InvalidOption {
                option: "--pbkdf-force-iterations",
                reason: format!("PBKDF2 needs at least {}", kdf::MIN_PBKDF2_ITERATIONS),
            }),
            Some(n) => Ok(n),
            None => Ok(kdf::benchmark_pbkdf2(hash, iter_time, key_len)),
        }
    }
}

/// Options of `luksFormat`, one field per cryptsetup option.
#[derive(Clone, Default)]
pub struct FormatOptions {
    /// `--type` (default luks2).
    pub luks_type: LuksType,
    /// `--cipher` (default `aes-xts-plain64`).
    pub cipher: Option<String>,
    /// `--key-size` in bits (default 512 for XTS, 256 otherwise).
    pub key_size_bits: Option<u32>,
    /// `--hash`: PBKDF2, AF and digest hash (default sha256).
    pub hash: Option<HashAlg>,
    /// KDF options of the first keyslot.
    pub pbkdf: PbkdfOptions,
    /// `--sector-size` (LUKS2 only; default 4096 on regular files whose size allows it, as
    /// cryptsetup 2.6 does, else 512).
    pub sector_size: Option<u32>,
    /// `--uuid` (default random).
    pub uuid: Option<String>,
    /// `--label` (LUKS2 only).
    pub label: Option<String>,
    /// `--subsystem` (LUKS2 only).
    pub subsystem: Option<String>,
    /// `--offset`: data offset in 512-byte sectors (LUKS1: 0 means detached header).
    pub offset_sectors: Option<u64>,
    /// `--align-payload` in 512-byte sectors (default 2048 = 1 MiB; 8 gives qemu's layout).
    pub align_payload_sectors: Option<u64>,
    /// `--luks2-metadata-size` in bytes (16 KiB .. 4 MiB, default 16 KiB).
    pub luks2_metadata_size: Option<u64>,
    /// `--luks2-keyslots-size` in bytes (default: up to 16 MiB of metadata in total).
    pub luks2_keyslots_size: Option<u64>,
    /// `--key-slot` of the first keyslot (default 0).
    pub key_slot: Option<u32>,
    /// `--volume-key-file` content: use this volume key instead of a random one.
    pub volume_key: Option<Zeroizing<Vec<u8>>>,
}

impl FormatOptions {
    /// Checks every option that can be checked without the device (ranges,
    /// UUID syntax, keyslot number, KDF options), before any benchmark or
    /// write. [`crate::format`] checks them again with the device.
    pub fn check(&self) -> Result<()> {
        let luks1 = self.luks_type == LuksType::Luks1;
        if let Some(bits) = self.key_size_bits {
            if bits % 8 != 0 || !(128..=512).contains(&bits) {
                return Err(Error::InvalidOption {
                    option: "--key-size",
                    reason: format!("{bits} is not a multiple of 8 in the allowed 128..=512 bits"),
                });
            }
        }
        if let Some(s) = self.sector_size {
            if luks1 && s != 512 {
                return Err(Error::InvalidOption {
                    option: "--sector-size",
                    reason: format!("{s}: LUKS1 uses 512-byte sectors"),
                });
            }
            if !(512..=4096).contains(&s) || !s.is_power_of_two() {
                return Err(Error::InvalidOption {
                    option: "--sector-size",
                    reason: format!("{s} is not one of 512, 1024, 2048, 4096 bytes"),
                });
            }
        }
        if let Some(slot) = self.key_slot {
            let max = if luks1 { 7 } else { 31 };
            if slot > max {
                return Err(Error::InvalidOption {
                    option: "--key-slot",
                    reason: format!("{slot} is outside the allowed 0..={max}"),
                });
            }
        }
        if let Some(u) = &self.uuid {
            if uuid::Uuid::parse_str(u).is_err() {
                return Err(Error::InvalidOption {
                    option: "--uuid",
                    reason: format!("{u:?} is not a UUID"),
                });
            }
        }
        if let (false, Some(o), None) = (luks1, self.offset_sectors, self.luks2_keyslots_size) {
            // Room for both metadata copies and one keyslot of the key size.
            let hdr = self.luks2_metadata_size.unwrap_or(16 << 10);
            let xts = self.cipher.as_deref().is_none_or(|c| c.contains("xts"));
            let bits = self.key_size_bits.unwrap_or(if xts { 512 } else { 256 });
            let key_len = u64::from(bits / 8);
            let area = (key_len * u64::from(crate::af::STRIPES)).div_ceil(4096) * 4096;
            let min = (2 * hdr + area).div_ceil(512);
            if o != 0 && o < min {
                return Err(Error::InvalidOption {
                    option: "--offset",
                    reason: format!(
                        "{o} sectors leaves no room for the metadata and one keyslot: at least {min} sectors of 512 bytes"
                    ),
                });
            }
            if o % 8 != 0 {
                return Err(Error::InvalidOption {
                    option: "--offset",
                    reason: format!("{o} sectors is not a multiple of 8 sectors (4096 bytes)"),
                });
            }
        }
        if luks1 && self.label.is_some() {
            return Err(Error::InvalidOption {
                option: "--label",
                reason: "LUKS1 has no label".into(),
            });
        }
        self.pbkdf.check(luks1)
    }
}

impl std::fmt::Debug for FormatOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatOptions")
            .field("luks_type", &self.luks_type)
            .field("cipher", &self.cipher)
            .field("key_size_bits", &self.key_size_bits)
            .field("hash", &self.hash)
            .field("pbkdf", &self.pbkdf)
            .field("sector_size", &self.sector_size)
            .field("uuid", &self.uuid)
            .field("label", &self.label)
            .field("subsystem", &self.subsystem)
            .field("offset_sectors", &self.offset_sectors)
            .field("align_payload_sectors", &self.align_payload_sectors)
            .field("luks2_metadata_size", &self.luks2_metadata_size)
            .field("luks2_keyslots_size", &self.luks2_keyslots_size)
            .field("key_slot", &self.key_slot)
            .field(
                "volume_key",
                &self.volume_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Options of a keyslot added by `luksAddKey` / `luksChangeKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyslotOptions {
    /// `--key-slot` for the new key (default: the first free one).
    pub key_slot: Option<u32>,
    /// KDF options (default: as format's).
    pub pbkdf: PbkdfOptions,
}

//! Opening, formatting and changing LUKS volumes.

use crate::device;
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::io::{DataLayout, UnlockedVolume};
use crate::kdf::Kdf;
use crate::keyslot::{self, SlotParams};
use crate::luks1;
use crate::luks2::binary::{self, BinHeader, BIN_LEN, HDR_SIZES};
use crate::luks2::json::{self, Area, DigestEntry, Metadata, Segment, Token};
use crate::options::{FormatOptions, KeyslotOptions, LuksType};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A volume key (the key of the data segment). Zeroized on drop, never printed.
#[derive(Clone)]
pub struct VolumeKey(Zeroizing<Vec<u8>>);

impl VolumeKey {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> VolumeKey {
        VolumeKey(Zeroizing::new(bytes))
    }
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VolumeKey(<{} bytes redacted>)", self.0.len())
    }
}

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

/// What a format produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// 1 or 2.
    pub version: u8,
    /// UUID.
    pub uuid: String,
    /// Keyslot holding the passphrase.
    pub keyslot: u32,
    /// Data offset in bytes.
    pub data_offset: u64,
    /// Data sector size.
    pub sector_size: u32,
    /// Cipher spec.
    pub cipher: String,
    /// Volume key bits.
    pub key_size_bits: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct L2 {
    pub(crate) bin: BinHeader,
    pub(crate) md: Metadata,
    /// Why the copies need rewriting (one damaged or stale), if they do.
    pub(crate) repair: Option<String>,
}

// one per open volume: the size difference does not matter
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Hdr {
    V1(luks1::Header),
    V2(Box<L2>),
}

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

pub(crate) fn lock(file: &File) -> Result<LockGuard> {
    // a second handle on the same open file description: flock belongs to it
    let handle = file.try_clone().map_err(Error::io("locking the device"))?;
    handle.lock().map_err(Error::io("locking the device"))?;
    Ok(LockGuard(handle))
}

fn random(len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).map_err(|e| Error::Unsupported(format!("RNG: {e}")))?;
    Ok(v)
}

fn round_up(v: u64, a: u64) -> u64 {
    if a == 0 {
        v
    } else {
        v.div_ceil(a) * a
    }
}

/// Reads one LUKS2 copy at `offset` (0 = primary).
fn read_l2_copy(file: &File, offset: u64, dev_size: u64) -> Result<(BinHeader, Metadata)> {
    if offset + BIN_LEN as u64 > dev_size {
        return Err(Error::DeviceTooSmall {
            needed: offset + BIN_LEN as u64,
            have: dev_size,
        });
    }
    let mut b = vec![0u8; BIN_LEN];
    device::read_at(file, &mut b, offset)?;
    let bin = BinHeader::parse(&b, offset)?;
    if offset != 0 && bin.hdr_size != offset {
        return Err(Error::field(
            "hdr_size",
            Problem::Invalid("secondary copy size differs from its offset".into()),
        ));
    }
    if offset + bin.hdr_size > dev_size {
        return Err(Error::DeviceTooSmall {
            needed: offset + bin.hdr_size,
            have: dev_size,
        });
    }
    // hdr_size is one of the allowed sizes (<= 4 MiB): a bounded allocation.
    let mut copy = vec![0u8; bin.hdr_size as usize];
    device::read_at(file, &mut copy, offset)?;
    binary::verify_checksum(&copy, offset)?;
    let md = Metadata::parse_area(&copy[BIN_LEN..], bin.hdr_size)?;
    Ok((bin, md))
}

fn read_luks2(file: &File, dev_size: u64) -> Result<L2> {
    let primary = read_l2_copy(file, 0, dev_size);
    let mut secondary = Err(Error::BadMagic);
    let candidates: Vec<u64> = match &primary {
        Ok((b, _)) => vec![b.hdr_size],
        Err(_) => HDR_SIZES.to_vec(),
    };
    let single = candidates.len() == 1;
    for off in candidates {
        let r = read_l2_copy(file, off, dev_size);
        let bad_magic = matches!(r, Err(Error::BadMagic) | Err(Error::DeviceTooSmall { .. }));
        if !bad_magic || single {
            secondary = r;
            break;
        }
    }
    match (primary, secondary) {
        (Ok((pb, pm)), Ok((sb, sm))) => {
            if sb.seqid > pb.seqid {
                Ok(L2 {
                    bin: sb,
                    md: sm,
                    repair: Some("primary copy is older than the secondary".into()),
                })
            } else {
                let repair = (sb.seqid != pb.seqid || sm != pm)
                    .then(|| "secondary copy differs".to_string());
                Ok(L2 {
                    bin: pb,
                    md: pm,
                    repair,
                })
            }
        }
        (Ok((pb, pm)), Err(e)) => Ok(L2 {
            bin: pb,
            md: pm,
            repair: Some(format!("secondary copy damaged: {e}")),
        }),
        (Err(e), Ok((sb, sm))) => Ok(L2 {
            bin: sb,
            md: sm,
            repair: Some(format!("primary copy damaged: {e}")),
        }),
        (Err(p), Err(s)) => {
            if matches!(p, Error::BadMagic) && matches!(s, Error::BadMagic) {
                Err(Error::BadMagic)
            } else {
                Err(Error::NoValidHeader {
                    primary: Box::new(p),
                    secondary: Box::new(s),
                })
            }
        }
    }
}

pub(crate) fn read_header(file: &File) -> Result<Hdr> {
    let dev_size = device::size(file)?;
    let mut first = [0u8; BIN_LEN];
    let n = dev_size.min(BIN_LEN as u64) as usize;
    device::read_at(file, &mut first[..n], 0)?;
    if n >= 8 && first[..6] == luks1::MAGIC && u16::from_be_bytes([first[6], first[7]]) == 1 {
        return Ok(Hdr::V1(luks1::Header::parse(&first[..n])?));
    }
    if n >= 8 && first[..6] == luks1::MAGIC && u16::from_be_bytes([first[6], first[7]]) != 2 {
        return Err(Error::UnsupportedVersion(u16::from_be_bytes([
            first[6], first[7],
        ])));
    }
    Ok(Hdr::V2(Box::new(read_luks2(file, dev_size)?)))
}

fn write_luks2(file: &File, l2: &mut L2) -> Result<()> {
    l2.md.validate(l2.bin.hdr_size)?;
    let area = l2.md.to_area(l2.bin.hdr_size - BIN_LEN as u64)?;
    l2.bin.seqid = l2
        .bin
        .seqid
        .checked_add(1)
        .ok_or_else(|| Error::field("seqid", Problem::Overflow))?;
    for offset in [0, l2.bin.hdr_size] {
        let mut b = l2.bin.clone();
        b.hdr_offset = offset;
        b.salt.copy_from_slice(&random(64)?);
        let bytes = b.serialize(&area)?;
        device::write_at(file, &bytes, offset)?;
        device::sync(file)?;
    }
    l2.bin.hdr_offset = 0;
    l2.repair = None;
    Ok(())
}

fn write_luks1(file: &File, h: &luks1::Header) -> Result<()> {
    h.validate()?;
    device::write_at(file, &h.to_bytes()?, 0)?;
    device::sync(file)
}

fn zero_range(file: &File, from: u64, to: u64) -> Result<()> {
    let buf = vec![0u8; 1 << 20];
    let mut o = from;
    while o < to {
        let n = (to - o).min(buf.len() as u64) as usize;
        device::write_at(file, &buf[..n], o)?;
        o += n as u64;
    }
    Ok(())
}

fn new_uuid(opt: &Option<String>) -> Result<String> {
    match opt {
        Some(u) => uuid::Uuid::parse_str(u)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| Error::InvalidOption {
                option: "--uuid",
                reason: format!("{u:?} is not a UUID"),
            }),
        None => Ok(uuid::Uuid::new_v4().hyphenated().to_string()),
    }
}

/// Formats `path` (an existing file or block device) as a LUKS volume with one
/// keyslot holding `passphrase`. Everything before the data offset is overwritten.
///
/// ```no_run
/// use luks::{format, FormatOptions, LuksType, PbkdfOptions, PbkdfType, Volume};
/// let opts = FormatOptions {
///     luks_type: LuksType::Luks2,
///     pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Argon2id),
///     ..Default::default()
/// };
/// let info = format("disk.img", &opts, b"secret")?;
/// let vol = Volume::open("disk.img")?.unlock(b"secret", None)?;
/// vol.write_at(b"hello", 0)?;
/// # Ok::<(), luks::Error>(())
/// ```
pub fn format(
    path: impl AsRef<Path>,
    opts: &FormatOptions,
    passphrase: &[u8],
) -> Result<VolumeInfo> {
    let path = path.as_ref();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("opening the device"))?;
    format_file(&file, opts, passphrase)
}

/// Formats an open file or block device (see [`format()`]).
pub fn format_file(file: &File, opts: &FormatOptions, passphrase: &[u8]) -> Result<VolumeInfo> {
    let _guard = lock(file)?;
    let spec = opts
        .cipher
        .clone()
        .unwrap_or_else(|| "aes-xts-plain64".to_string());
    let (cname, cmode) = keyslot::split_spec(&spec)?;
    let bits = match (opts.key_size_bits, &opts.volume_key) {
        (Some(b), _) => b,
        (None, Some(k)) => k.len() as u32 * 8,
        (None, None) if cmode.starts_with("xts") => 512,
        (None, None) => 256,
    };
    if bits % 8 != 0 || !(128..=512).contains(&bits) {
        return Err(Error::InvalidOption {
            option: "--key-size",
            reason: format!("{bits} bits"),
        });
    }
    let key_len = (bits / 8) as usize;
    let vk = match &opts.volume_key {
        Some(k) if k.len() != key_len => {
            return Err(Error::InvalidOption {
                option: "--volume-key-file",
                reason: "length differs from --key-size".into(),
            })
        }
        Some(k) => Zeroizing::new(k.to_vec()),
        None => Zeroizing::new(random(key_len)?),
    };
    // refuse unsupported ciphers before touching the device
    keyslot::make_cipher(cname, cmode, &vk, "--cipher")?;
    let hash = opts.hash.unwrap_or(HashAlg::Sha256);
    let luks1 = opts.luks_type == LuksType::Luks1;
    let mut pb = opts.pbkdf.clone();
    pb.hash = pb.hash.or(Some(hash));
    let kdf = pb.resolve(luks1, key_len)?;
    let digest_iter = if pb.force_iterations.is_some() {
        crate::kdf::MIN_PBKDF2_ITERATIONS
    } else {
        match crate::kdf::benchmark(crate::PbkdfType::Pbkdf2, hash, 125, key_len, 0, 0)? {
            Kdf::Pbkdf2 { iterations, .. } => iterations,
            Kdf::Argon2 { .. } => crate::kdf::MIN_PBKDF2_ITERATIONS,
        }
    };
    let uuid = new_uuid(&opts.uuid)?;
    let dev_size = device::size(file)?;
    let align = opts.align_payload_sectors.unwrap_or(2048) * 512;
    let slot = opts.key_slot.unwrap_or(0);
    if luks1 {
        if slot as usize >= luks1::NUM_SLOTS {
            return Err(Error::SlotOutOfRange { slot, max: 7 });
        }
        if opts.sector_size.is_some_and(|s| s != 512) {
            return Err(Error::InvalidOption {
                option: "--sector-size",
                reason: "LUKS1 uses 512-byte sectors".into(),
            });
        }
        if opts.label.is_some() || opts.subsystem.is_some() {
            return Err(Error::InvalidOption {
                option: "--label",
                reason: "LUKS1 has no label".into(),
            });
        }
        let area = luks1::aligned_area_sectors(key_len as u32);
        let base = luks1::KEYSLOT_ALIGN / 512;
        let ks_end = base + 8 * area;
        let payload = match opts.offset_sectors {
            Some(o) if o != 0 && o < ks_end => {
                return Err(Error::InvalidOption {
                    option: "--offset",
                    reason: format!("must be at least {ks_end}"),
                })
            }
            Some(o) => o,
            None => round_up(ks_end * 512, align) / 512,
        };
        let payload32 = u32::try_from(payload).map_err(|_| Error::InvalidOption {
            option: "--offset",
            reason: "too large for LUKS1".into(),
        })?;
        let needed = if payload == 0 {
            ks_end * 512
        } else {
            payload * 512
        };
        if dev_size < needed {
            return Err(Error::DeviceTooSmall {
                needed,
                have: dev_size,
            });
        }
        let Kdf::Pbkdf2 { iterations, .. } = kdf else {
            return Err(Error::InvalidOption {
                option: "--pbkdf",
                reason: "LUKS1 supports only pbkdf2".into(),
            });
        };
        let mk_salt: [u8; 32] = random(32)?
            .try_into()
            .map_err(|_| Error::Unsupported("salt".into()))?;
        let mut mk_digest = [0u8; 20];
        hash.pbkdf2(&vk, &mk_salt, digest_iter, &mut mk_digest);
        let keyslots = std::array::from_fn(|i| luks1::Keyslot {
            active: false,
            iterations: 0,
            salt: [0; 32],
            key_material_offset: (base + i as u64 * area) as u32,
            stripes: crate::af::STRIPES,
        });
        let mut h = luks1::Header {
            cipher_name: cname.to_string(),
            cipher_mode: cmode.to_string(),
            hash,
            payload_offset: payload32,
            key_bytes: key_len as u32,
            mk_digest,
            mk_digest_salt: mk_salt,
            mk_digest_iter: digest_iter,
            uuid: uuid.clone(),
            keyslots,
        };
        let salt: [u8; 32] = random(32)?
            .try_into()
            .map_err(|_| Error::Unsupported("salt".into()))?;
        let ks = &mut h.keyslots[slot as usize];
        ks.active = true;
        ks.iterations = iterations;
        ks.salt = salt;
        let p = SlotParams {
            offset: ks.key_material_offset as u64 * 512,
            key_len,
            stripes: ks.stripes,
            af_hash: hash,
            kdf,
            salt: &ks.salt,
            cipher: (cname, cmode),
            area_key_len: key_len,
            field: "keyslot",
        };
        let material = keyslot::seal(&p, &vk, passphrase)?;
        device::write_at(file, &[0u8; BIN_LEN], 0)?;
        device::sync(file)?;
        zero_range(file, 0, needed)?;
        device::write_at(file, &material, p.offset)?;
        device::sync(file)?;
        write_luks1(file, &h)?;
        return Ok(VolumeInfo {
            version: 1,
            uuid,
            keyslot: slot,
            data_offset: payload * 512,
            sector_size: 512,
            cipher: spec,
            key_size_bits: bits,
        });
    }
    // LUKS2
    if slot >= json::MAX_KEYSLOTS {
        return Err(Error::SlotOutOfRange {
            slot,
            max: json::MAX_KEYSLOTS - 1,
        });
    }
    let hdr_size = opts.luks2_metadata_size.unwrap_or(16 << 10);
    if !binary::allowed_size(hdr_size) {
        return Err(Error::InvalidOption {
            option: "--luks2-metadata-size",
            reason: format!("{hdr_size} is not allowed"),
        });
    }
    let default_ks = (16u64 << 20) - 2 * hdr_size;
    let keyslots_size = match (opts.luks2_keyslots_size, opts.offset_sectors) {
        (Some(k), _) => k,
        (None, Some(o)) if o != 0 => {
            (o * 512).saturating_sub(2 * hdr_size).min(default_ks) / 4096 * 4096
        }
        _ => default_ks,
    };
    if keyslots_size % 4096 != 0 {
        return Err(Error::InvalidOption {
            option: "--luks2-keyslots-size",
            reason: "must be a multiple of 4096".into(),
        });
    }
    let area_size = round_up((key_len * crate::af::STRIPES as usize) as u64, 4096);
    if area_size > keyslots_size {
        return Err(Error::InvalidOption {
            option: "--luks2-keyslots-size",
            reason: "too small for one keyslot".into(),
        });
    }
    let data_offset = match opts.offset_sectors {
        Some(o) => o * 512,
        None => round_up(2 * hdr_size + keyslots_size, align),
    };
    if data_offset != 0 && data_offset < 2 * hdr_size + keyslots_size {
        return Err(Error::InvalidOption {
            option: "--offset",
            reason: "inside the metadata".into(),
        });
    }
    let meta_end = 2 * hdr_size + keyslots_size;
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    let sector_size = match opts.sector_size {
        Some(s) => s,
        None if is_file
            && data_offset % 4096 == 0
            && dev_size.saturating_sub(data_offset) % 4096 == 0 =>
        {
            4096
        }
        None => 512,
    };
    if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Err(Error::InvalidOption {
            option: "--sector-size",
            reason: format!("{sector_size}"),
        });
    }
    if data_offset % sector_size as u64 != 0 {
        return Err(Error::InvalidOption {
            option: "--sector-size",
            reason: "data offset not aligned to it".into(),
        });
    }
    let needed = data_offset.max(meta_end);
    if dev_size < needed {
        return Err(Error::DeviceTooSmall {
            needed,
            have: dev_size,
        });
    }
    let label = opts.label.clone().unwrap_or_default();
    let subsystem = opts.subsystem.clone().unwrap_or_default();
    for (v, o) in [(&label, "--label"), (&subsystem, "--subsystem")] {
        if v.len() > 47 || v.contains('\0') {
            return Err(Error::InvalidOption {
                option: o,
                reason: "at most 47 bytes, no NUL".into(),
            });
        }
    }
    let mut md = Metadata::new(json::Config::new(hdr_size - BIN_LEN as u64, keyslots_size));
    md.segments.insert(
        0,
        Segment::new(data_offset, None, spec.clone(), sector_size),
    );
    let d_salt = random(32)?;
    let mut digest = vec![0u8; hash.output_len()];
    hash.pbkdf2(&vk, &d_salt, digest_iter, &mut digest);
    md.digests.insert(
        0,
        DigestEntry::new(vec![slot], vec![0], hash, digest_iter, d_salt, digest),
    );
    let ks = json::Keyslot::new(
        key_len as u32,
        hash,
        Area {
            offset: 2 * hdr_size,
            size: area_size,
            encryption: spec.clone(),
            key_size: key_len as u32,
        },
        kdf,
        random(32)?,
    );
    let p = slot_params_v2(&ks, "keyslot")?;
    let material = keyslot::seal(&p, &vk, passphrase)?;
    md.keyslots.insert(slot, ks.clone());
    let mut l2 = L2 {
        bin: BinHeader {
            hdr_size,
            seqid: 0,
            label,
            checksum_alg: "sha256".into(),
            salt: [0; 64],
            uuid: uuid.clone(),
            subsystem,
            hdr_offset: 0,
        },
        md,
        repair: None,
    };
    device::write_at(file, &[0u8; BIN_LEN], 0)?;
    device::sync(file)?;
    zero_range(file, 0, meta_end)?;
    device::write_at(file, &material, ks.area.offset)?;
    device::sync(file)?;
    write_luks2(file, &mut l2)?;
    Ok(VolumeInfo {
        version: 2,
        uuid,
        keyslot: slot,
        data_offset,
        sector_size,
        cipher: spec,
        key_size_bits: bits,
    })
}

fn slot_params_v2<'a>(k: &'a json::Keyslot, field: &'a str) -> Result<SlotParams<'a>> {
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
    })
}

fn slot_params_v1(h: &luks1::Header, i: usize) -> SlotParams<'_> {
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
    }
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

    /// The LUKS2 metadata (None for LUKS1).
    pub fn luks2_metadata(&self) -> Option<&Metadata> {
        match &self.hdr {
            Hdr::V1(_) => None,
            Hdr::V2(l) => Some(&l.md),
        }
    }

    /// The LUKS1 header (None for LUKS2).
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

    fn max_slot(&self) -> u32 {
        match self.hdr {
            Hdr::V1(_) => luks1::NUM_SLOTS as u32 - 1,
            Hdr::V2(_) => json::MAX_KEYSLOTS - 1,
        }
    }

    /// Checks a candidate volume key against the digest (for `slot`, or any digest of segment 0).
    fn verify_key(&self, key: &[u8], slot: Option<u32>) -> Result<bool> {
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
                    let applies = match slot {
                        Some(s) => d.keyslots.contains(&s),
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
            Hdr::V1(h) => {
                if !h.keyslots[slot as usize].active {
                    return Err(Error::SlotInactive(slot));
                }
                keyslot::open(&self.file, &slot_params_v1(h, slot as usize), passphrase)?
            }
            Hdr::V2(l) => {
                let k = l.md.keyslots.get(&slot).ok_or(Error::SlotInactive(slot))?;
                let field = format!("keyslots.{slot}");
                keyslot::open(&self.file, &slot_params_v2(k, &field)?, passphrase)?
            }
        };
        Ok(if self.verify_key(&cand, Some(slot))? {
            Some(VolumeKey(cand))
        } else {
            None
        })
    }

    /// Recovers the volume key with a passphrase, trying every active keyslot
    /// (LUKS2: high priority first, priority 0 skipped unless named) or only `slot`.
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
        for s in order {
            if let Some(k) = self.try_slot(s, passphrase)? {
                return Ok((s, k));
            }
        }
        Err(Error::NoMatchingKey)
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
                if l.md.segments.len() != 1 {
                    return Err(Error::Unsupported(format!(
                        "{} data segments (reencryption in progress?)",
                        l.md.segments.len()
                    )));
                }
                let s = &l.md.segments[&0];
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

    fn need_writable(&self) -> Result<LockGuard> {
        if !self.writable {
            return Err(Error::Io {
                context: "changing the header",
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "opened read-only",
                ),
            });
        }
        // callers re-read the header under the lock: another writer may have changed it
        lock(&self.file)
    }

    fn reload(&mut self) -> Result<()> {
        let hdr = read_header(&self.file)?;
        self.hdr = hdr;
        Ok(())
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

    /// Finds room for a keyslot area of `size` bytes in the LUKS2 keyslots area,
    /// ignoring the area of `except`.
    fn alloc_area(l: &L2, size: u64, except: Option<u32>) -> Result<u64> {
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
        let key_len = vk.as_bytes().len();
        match &mut self.hdr {
            Hdr::V1(h) => {
                let mut pb = opts.pbkdf.clone();
                pb.hash = Some(h.hash);
                let kdf = pb.resolve(true, key_len)?;
                let Kdf::Pbkdf2 { iterations, .. } = kdf else {
                    unreachable_kdf()?
                };
                let mut nh = h.clone();
                let s = &mut nh.keyslots[slot as usize];
                s.active = true;
                s.iterations = iterations;
                s.salt.copy_from_slice(&random(32)?);
                let p = slot_params_v1(&nh, slot as usize);
                let material = keyslot::seal(&p, vk.as_bytes(), passphrase)?;
                device::write_at(&self.file, &material, p.offset)?;
                device::sync(&self.file)?;
                write_luks1(&self.file, &nh)?;
                *h = nh;
                Ok(None)
            }
            Hdr::V2(l) => {
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
                let offset = match Self::alloc_area(l, size, None) {
                    Ok(o) => o,
                    // no room beside the old area: overwrite it in place (not crash safe)
                    Err(e) => match replacing {
                        Some(r) => Self::alloc_area(l, size, Some(r)).map_err(|_| e)?,
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
                device::write_at(&self.file, &material, offset)?;
                device::sync(&self.file)?;
                let mut nl = (**l).clone();
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
                write_luks2(&self.file, &mut nl)?;
                **l = nl;
                Ok(old_area.filter(|&(o, _)| o != offset))
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
                write_luks1(&self.file, &nh)?;
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
                write_luks2(&self.file, &mut nl)?;
                **l = nl;
                (k.area.offset, k.area.size)
            }
        };
        device::wipe(&self.file, off, len)
    }

    /// LUKS2 tokens by id.
    pub fn tokens(&self) -> Result<Vec<(u32, Value)>> {
        match &self.hdr {
            Hdr::V1(_) => Err(Error::Unsupported("tokens need LUKS2".into())),
            Hdr::V2(l) => Ok(l
                .md
                .tokens
                .iter()
                .map(|(i, t)| (*i, json_token(t)))
                .collect()),
        }
    }

    /// Adds a LUKS2 token (a JSON object with `type` and `keyslots`), at `id` or the first free id.
    pub fn add_token(&mut self, id: Option<u32>, token: &Value) -> Result<u32> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let Hdr::V2(l) = &mut self.hdr else {
            return Err(Error::Unsupported("tokens need LUKS2".into()));
        };
        let t = Token::parse(token, "token")?;
        let id = match id {
            Some(i) if i >= json::MAX_TOKENS => {
                return Err(Error::SlotOutOfRange {
                    slot: i,
                    max: json::MAX_TOKENS - 1,
                })
            }
            Some(i) if l.md.tokens.contains_key(&i) => return Err(Error::SlotActive(i)),
            Some(i) => i,
            None => (0..json::MAX_TOKENS)
                .find(|i| !l.md.tokens.contains_key(i))
                .ok_or(Error::NoFreeSlot)?,
        };
        let mut nl = (**l).clone();
        nl.md.tokens.insert(id, t);
        write_luks2(&self.file, &mut nl)?;
        **l = nl;
        Ok(id)
    }

    /// Removes LUKS2 token `id`.
    pub fn remove_token(&mut self, id: u32) -> Result<()> {
        let _guard = self.need_writable()?;
        self.reload()?;
        let Hdr::V2(l) = &mut self.hdr else {
            return Err(Error::Unsupported("tokens need LUKS2".into()));
        };
        let mut nl = (**l).clone();
        nl.md.tokens.remove(&id).ok_or(Error::SlotInactive(id))?;
        write_luks2(&self.file, &mut nl)?;
        **l = nl;
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

fn unreachable_kdf<T>() -> Result<T> {
    Err(Error::InvalidOption {
        option: "--pbkdf",
        reason: "LUKS1 supports only pbkdf2".into(),
    })
}

fn json_token(t: &Token) -> Value {
    let mut o = t.json.clone();
    o.insert("type".into(), t.token_type.clone().into());
    o.insert(
        "keyslots".into(),
        t.keyslots
            .iter()
            .map(|k| Value::from(k.to_string()))
            .collect(),
    );
    Value::Object(o)
}

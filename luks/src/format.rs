//! Formatting (`luksFormat`): the options and the volume key are checked and chosen once,
//! then the LUKS1 or LUKS2 layout is built (keyslot areas, digest, first keyslot),
//! the metadata region is zeroed and the keyslot material is written before the header.

use crate::device::{self, round_up};
use crate::error::{Error, Result};
use crate::hash::HashAlg;
use crate::kdf::Kdf;
use crate::keyslot::{self, SlotParams};
use crate::luks1;
use crate::luks2::binary::{self, BinHeader, BIN_LEN};
use crate::luks2::disk::{write_luks2, L2};
use crate::luks2::json::{self, Area, DigestEntry, Metadata, Segment};
use crate::luks2::keyslot::slot_params_v2;
use crate::options::{FormatOptions, LuksType};
use crate::random::{self, random};
use crate::volume::lock;
use std::fs::{File, OpenOptions};
use std::path::Path;
use zeroize::Zeroizing;

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
    PREPARE.with(|p| *p.borrow_mut() = None);
    format_checked(file, opts, passphrase)
}

/// A LUKS2 header as [`format_file`] would write it on `file`, nothing written: for
/// encryption in place, which writes it itself once the data has moved.
pub(crate) struct Prepared {
    pub(crate) l2: L2,
    pub(crate) material: Zeroizing<Vec<u8>>,
    pub(crate) material_offset: u64,
    pub(crate) key: crate::VolumeKey,
}

thread_local! {
    /// Set by [`prepare_luks2`] for the duration of one call on this thread:
    /// `format_luks2` then leaves its result here instead of writing anything.
    static PREPARE: std::cell::RefCell<Option<Option<Prepared>>> = const { std::cell::RefCell::new(None) };
}

/// The header [`format_file`] would write (LUKS2 only), without writing anything.
pub(crate) fn prepare_luks2(
    file: &File,
    opts: &FormatOptions,
    passphrase: &[u8],
) -> Result<Prepared> {
    if opts.luks_type != crate::LuksType::Luks2 {
        return Err(Error::Unsupported("encryption in place of LUKS1".into()));
    }
    PREPARE.with(|p| *p.borrow_mut() = Some(None));
    let r = format_checked(file, opts, passphrase);
    let got = PREPARE.with(|p| p.borrow_mut().take()).flatten();
    r?;
    got.ok_or_else(|| Error::Unsupported("no LUKS2 header prepared".into()))
}

fn format_checked(file: &File, opts: &FormatOptions, passphrase: &[u8]) -> Result<VolumeInfo> {
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
    let kdf = if luks1 {
        SlotKdf::Luks1 {
            iterations: pb.resolve_luks1(key_len)?,
        }
    } else {
        SlotKdf::Luks2(pb.resolve(false, key_len)?)
    };
    let digest_iter = if pb.force_iterations.is_some() {
        crate::kdf::MIN_PBKDF2_ITERATIONS
    } else {
        crate::kdf::benchmark_pbkdf2(hash, 125, key_len)
    };
    let uuid = new_uuid(&opts.uuid)?;
    let dev_size = device::size(file)?;
    let align = opts.align_payload_sectors.unwrap_or(2048) * 512;
    let slot = opts.key_slot.unwrap_or(0);
    let c = Common {
        file,
        opts,
        passphrase,
        spec,
        bits,
        key_len,
        vk,
        hash,
        digest_iter,
        uuid,
        dev_size,
        align,
        slot,
    };
    match kdf {
        SlotKdf::Luks1 { iterations } => format_luks1(c, iterations),
        SlotKdf::Luks2(kdf) => format_luks2(c, kdf),
    }
}

/// The KDF of the first keyslot, resolved for the version being formatted.
enum SlotKdf {
    /// LUKS1: PBKDF2 with the header's hash.
    Luks1 {
        iterations: u32,
    },
    Luks2(Kdf),
}

/// What both formats share: the checked options and the volume key.
struct Common<'a> {
    file: &'a File,
    opts: &'a FormatOptions,
    passphrase: &'a [u8],
    spec: String,
    bits: u32,
    key_len: usize,
    vk: Zeroizing<Vec<u8>>,
    hash: HashAlg,
    digest_iter: u32,
    uuid: String,
    dev_size: u64,
    align: u64,
    slot: u32,
}

/// The LUKS1 layout: eight keyslot areas after the 592-byte header, then the payload.
fn format_luks1(c: Common<'_>, iterations: u32) -> Result<VolumeInfo> {
    let Common {
        file,
        opts,
        passphrase,
        spec,
        bits,
        key_len,
        vk,
        hash,
        digest_iter,
        uuid,
        dev_size,
        align,
        slot,
    } = c;
    let (cname, cmode) = keyslot::split_spec(&spec)?;
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
    let kdf = Kdf::Pbkdf2 { hash, iterations };
    let mut mk_salt = [0u8; 32];
    random::fill(&mut mk_salt)?;
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
    let mut salt = [0u8; 32];
    random::fill(&mut salt)?;
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
        cipher_field: "cipher_name".into(),
    };
    let material = keyslot::seal(&p, &vk, passphrase)?;
    device::write_at(file, &[0u8; BIN_LEN], 0)?;
    device::sync(file)?;
    zero_range(file, 0, needed)?;
    device::write_at(file, &material, p.offset)?;
    device::sync(file)?;
    luks1::write_header(file, &h)?;
    Ok(VolumeInfo {
        version: 1,
        uuid,
        keyslot: slot,
        data_offset: payload * 512,
        sector_size: 512,
        cipher: spec,
        key_size_bits: bits,
    })
}

/// The LUKS2 layout: two header copies, the keyslots area, then the data segment.
fn format_luks2(c: Common<'_>, kdf: Kdf) -> Result<VolumeInfo> {
    let Common {
        file,
        opts,
        passphrase,
        spec,
        bits,
        key_len,
        vk,
        hash,
        digest_iter,
        uuid,
        dev_size,
        align,
        slot,
    } = c;
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
    let l2 = L2 {
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
    let info = VolumeInfo {
        version: 2,
        uuid,
        keyslot: slot,
        data_offset,
        sector_size,
        cipher: spec,
        key_size_bits: bits,
    };
    let prepare = PREPARE.with(|p| p.borrow().is_some());
    if prepare {
        let prepared = Prepared {
            l2,
            material,
            material_offset: ks.area.offset,
            key: crate::VolumeKey::new(vk.to_vec()),
        };
        PREPARE.with(|p| *p.borrow_mut() = Some(Some(prepared)));
        return Ok(info);
    }
    let mut l2 = l2;
    device::write_at(file, &[0u8; BIN_LEN], 0)?;
    device::sync(file)?;
    zero_range(file, 0, meta_end)?;
    device::write_at(file, &material, ks.area.offset)?;
    device::sync(file)?;
    write_luks2(file, &mut l2)?;
    Ok(info)
}

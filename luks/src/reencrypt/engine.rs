//! The reencryption run: initialization, the hotzone loop, crash recovery and the final
//! header. Every write to the device goes through [`Sink`] (ordered, synced where the
//! protocol needs it; a test hook stops a run at any write, or tears it).

use crate::device::{self, round_up};
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::header::Hdr;
use crate::keyslot;
use crate::luks2::disk::L2;
use crate::luks2::json::{self, Area, DigestEntry, Segment};
use crate::luks2::keyslot::{alloc_area, open_keyslot, slot_params_v2};
use crate::options::PbkdfOptions;
use crate::random::random;
use crate::reencrypt::hotzone::{checksums, Layout};
use crate::reencrypt::metadata::{
    self, segment_by_flag, Direction, Mode, ReencryptKeyslot, Resilience, BACKUP_FINAL,
    BACKUP_PREVIOUS, IN_REENCRYPTION, REQUIREMENT,
};
use crate::volume::{lock, Volume};
use crate::volume_key::VolumeKey;
use crate::SectorCipher;
use std::fs::File;
use std::path::Path;
use zeroize::Zeroizing;

/// Largest hotzone. A hotzone is streamed in [`CHUNK`]s (its checksums, at most
/// 8 MiB for 1 GiB of 4096-byte blocks, are the only other memory it takes).
const MAX_HOTZONE: u64 = 1 << 30;
/// Hotzone of resilience `none` unless given.
const DEFAULT_NONE_HOTZONE: u64 = 256 << 20;
/// Bytes read, rewritten and written at a time: bounds the memory of a run.
const CHUNK: u64 = 8 << 20;

/// A passphrase that opens a keyslot of the volume, and the passphrase of the keyslot
/// that replaces it for the new volume key (the same one when `None`).
#[derive(Clone, Copy)]
pub struct KeyChange<'a> {
    /// Opens a keyslot of the old volume key (or, when resuming, any keyslot).
    pub passphrase: &'a [u8],
    /// The passphrase of the new keyslot (default: `passphrase`).
    pub new_passphrase: Option<&'a [u8]>,
    /// Only this keyslot.
    pub slot: Option<u32>,
}

impl std::fmt::Debug for KeyChange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyChange {{ slot: {:?}, .. }}", self.slot)
    }
}

/// The resilience asked for a new reencryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResilienceKind {
    /// Checksums of the old hotzone blocks (cryptsetup's default).
    #[default]
    Checksum,
    /// A copy of the old hotzone in the keyslots area.
    Journal,
    /// Nothing: a crash inside a hotzone loses it.
    None,
}

/// Options of [`reencrypt`] (cryptsetup's names).
#[derive(Debug, Clone, Default)]
pub struct ReencryptOptions {
    /// `--decrypt`: decrypt to plaintext (a detached header only, as cryptsetup 2.6),
    /// instead of reencrypting under a new volume key.
    pub decrypt: bool,
    /// `--encrypt --reduce-device-size BYTES`: encrypt a plaintext device in place
    /// (see [`encrypt_in_place`]); `format` gives the new header's options.
    pub reduce_device_size: Option<u64>,
    /// `--resilience` (a new reencryption only).
    pub resilience: ResilienceKind,
    /// `--resilience-hash` (default sha256).
    pub hash: Option<HashAlg>,
    /// `--hotzone-size` in bytes (default: the most the resilience allows, capped at 32 MiB).
    pub hotzone_size: Option<u64>,
    /// `--cipher` of the new segment (default: the old one).
    pub cipher: Option<String>,
    /// `--key-size` of the new volume key in bytes (default: the old one's).
    pub key_size: Option<usize>,
    /// `--sector-size` of the new segment (default: the old one's).
    pub sector_size: Option<u32>,
    /// The new volume key (default: random). Never printed.
    pub volume_key: Option<VolumeKey>,
    /// PBKDF of the new keyslots.
    pub pbkdf: PbkdfOptions,
    /// `--init-only`: write the reencryption state, touch no data.
    pub init_only: bool,
    /// `--resume-only`: refuse a volume not in reencryption.
    pub resume_only: bool,
    /// Test hook: stop (as if interrupted) after this many hotzones.
    #[doc(hidden)]
    pub stop_after_hotzones: Option<u64>,
    /// Test hook: fail at this device write (counting from 0), writing only its first
    /// `torn` bytes, as a machine dying mid-run would.
    #[doc(hidden)]
    pub crash_at_write: Option<(u64, usize)>,
}

/// Where a run stands, given to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of data reencrypted.
    pub done: u64,
    /// Bytes of data in all.
    pub total: u64,
}

/// How [`reencrypt`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every sector is under the new key; the reencryption state is gone.
    Finished,
    /// The state was written (`init_only`).
    Initialized,
    /// Stopped by the callback or the hotzone limit; resumable.
    Stopped(Progress),
}

/// Every write of a run: counted, and stopped at `crash_at_write` (test hook).
pub(crate) struct Sink<'a> {
    /// The header (and keyslots area) device.
    pub(crate) file: &'a File,
    /// The data device (the same file unless the header is detached).
    pub(crate) data: &'a File,
    n: u64,
    crash: Option<(u64, usize)>,
}

impl Sink<'_> {
    pub(crate) fn write_to(&mut self, data: bool, buf: &[u8], offset: u64) -> Result<()> {
        let f = if data { self.data } else { self.file };
        if let Some((at, torn)) = self.crash {
            if self.n == at {
                device::write_at(f, &buf[..torn.min(buf.len())], offset)?;
                return Err(Error::Reencrypt(format!("simulated crash at write {at}")));
            }
        }
        self.n += 1;
        device::write_at(f, buf, offset)
    }

    /// A write to the header device.
    pub(crate) fn write(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.write_to(false, buf, offset)
    }

    pub(crate) fn sync(&self) -> Result<()> {
        device::sync(self.file)?;
        device::sync(self.data)
    }

    /// Writes both header copies (validated, next sequence id, fresh salts), each synced.
    pub(crate) fn header(&mut self, l2: &mut L2) -> Result<()> {
        crate::luks2::disk::write_luks2_with(l2, |bytes, offset| {
            self.write(bytes, offset)?;
            self.sync()
        })
    }
}

fn cipher_of(seg: &Segment, key: &[u8], field: &str) -> Result<SectorCipher> {
    let (c, m) = keyslot::split_spec(&seg.encryption)?;
    keyslot::make_cipher(c, m, key, field)
}

/// Opens keyslot `slot` with `pass` and returns its key if it matches digest `d`.
fn try_open(
    file: &File,
    l2: &L2,
    slot: u32,
    pass: &[u8],
    d: &DigestEntry,
) -> Result<Option<VolumeKey>> {
    let cand = match open_keyslot(file, l2, slot, pass) {
        Ok(k) => k,
        Err(e) if e.is_unsupported_keyslot() => return Ok(None),
        Err(e) => return Err(e),
    };
    crate::kdf::Kdf::pbkdf2_checked(d.hash, d.iterations as u64)?;
    let mut out = Zeroizing::new(vec![0u8; d.digest.len()]);
    d.hash.pbkdf2(&cand, &d.salt, d.iterations, &mut out);
    Ok(device::ct_eq(&out, &d.digest).then(|| VolumeKey(cand)))
}

/// Finds the key of digest `want` with any of the passphrases.
fn key_for_digest(
    file: &File,
    l2: &L2,
    want: u32,
    keys: &[KeyChange<'_>],
) -> Result<Option<VolumeKey>> {
    let d = &l2.md.digests[&want];
    for kc in keys {
        for pass in [Some(kc.passphrase), kc.new_passphrase]
            .into_iter()
            .flatten()
        {
            for &slot in &d.keyslots {
                if let Some(k) = try_open(file, l2, slot, pass, d)? {
                    return Ok(Some(k));
                }
            }
        }
    }
    Ok(None)
}

/// The largest free region of the keyslots area (cryptsetup's "max gap").
fn max_gap(l2: &L2) -> Result<(u64, u64)> {
    let start = 2 * l2.bin.hdr_size;
    let end = start + l2.md.config.keyslots_size;
    let mut used: Vec<(u64, u64)> = l2
        .md
        .keyslots
        .values()
        .map(|k| (k.area.offset, k.area.offset + k.area.size))
        .collect();
    used.sort();
    let (mut best, mut cur) = ((start, 0u64), start);
    for (a, b) in used.into_iter().chain([(end, end)]) {
        if a > cur && a - cur > best.1 {
            best = (cur, a - cur);
        }
        cur = cur.max(b);
    }
    if best.1 < 4096 {
        return Err(Error::NoSpace { needed: 4096 });
    }
    Ok(best)
}

fn first_free<T>(
    m: &std::collections::BTreeMap<u32, T>,
    also: Option<u32>,
    max: u32,
) -> Result<u32> {
    (0..max)
        .find(|i| !m.contains_key(i) && Some(*i) != also)
        .ok_or(Error::NoFreeSlot)
}

/// Writes the initial reencryption state (one header write) and returns the old key
/// and the new one (none when decrypting).
fn init(
    sink: &mut Sink<'_>,
    l2: &mut L2,
    keys: &[KeyChange<'_>],
    opts: &ReencryptOptions,
    detached: bool,
) -> Result<(VolumeKey, Option<VolumeKey>)> {
    let file = sink.file;
    let data: Vec<u32> = l2.md.segments.keys().copied().collect();
    if data != [0] {
        return Err(Error::Unsupported(format!("{} data segments", data.len())));
    }
    let old_seg = l2.md.segments[&0].clone();
    if old_seg.linear {
        return Err(Error::Unsupported(
            "the volume is not encrypted (linear segment)".into(),
        ));
    }
    if opts.decrypt && !detached {
        return Err(Error::InvalidOption {
            option: "--decrypt",
            reason: "decryption needs a detached header (--header), as cryptsetup 2.6".into(),
        });
    }
    let d_old = metadata::digest_of_segment(&l2.md, 0)
        .ok_or_else(|| Error::field("digests", Problem::Missing))?;
    if keys.is_empty() {
        return Err(Error::InvalidOption {
            option: "--key-file",
            reason: "a passphrase is needed".into(),
        });
    }
    // every passphrase must open a keyslot of the old key: those keyslots get twins
    let dig = l2.md.digests[&d_old].clone();
    let mut old_key: Option<VolumeKey> = None;
    let mut twins: Vec<(u32, &[u8])> = Vec::new();
    for kc in keys {
        let mut found = None;
        for &slot in &dig.keyslots {
            if kc.slot.is_some_and(|s| s != slot) {
                continue;
            }
            if let Some(k) = try_open(file, l2, slot, kc.passphrase, &dig)? {
                found = Some((slot, k));
                break;
            }
        }
        let (slot, k) = found.ok_or(Error::NoMatchingKey)?;
        old_key = Some(k);
        twins.push((slot, kc.new_passphrase.unwrap_or(kc.passphrase)));
    }
    let old_key = old_key.ok_or(Error::NoMatchingKey)?;
    let block = 4096u32.max(old_seg.sector_size);
    if opts.decrypt {
        let mut new_seg = Segment::new_linear(old_seg.offset, None);
        new_seg.iv_tweak = old_seg.iv_tweak;
        start(
            l2,
            opts,
            Mode::Decrypt,
            block,
            &old_seg,
            new_seg,
            d_old,
            None,
        )?;
        metadata::set_digest(
            &mut l2.md,
            Some(old_key.as_bytes()),
            None,
            dig.hash,
            dig.iterations,
        )?;
        sink.header(l2)?;
        return Ok((old_key, None));
    }
    let key_len = opts.key_size.unwrap_or(old_key.as_bytes().len());
    let new_key = match &opts.volume_key {
        Some(k) => k.clone(),
        None => VolumeKey::new(random(key_len)?),
    };
    if device::ct_eq(new_key.as_bytes(), old_key.as_bytes()) {
        return Err(Error::InvalidOption {
            option: "--volume-key-file",
            reason: "the new volume key is the old one".into(),
        });
    }
    let mut new_seg = Segment::new(
        old_seg.offset,
        None,
        opts.cipher
            .clone()
            .unwrap_or_else(|| old_seg.encryption.clone()),
        opts.sector_size.unwrap_or(old_seg.sector_size),
    );
    new_seg.iv_tweak = old_seg.iv_tweak;
    if !old_seg.offset.is_multiple_of(new_seg.sector_size as u64) {
        return Err(Error::InvalidOption {
            option: "--sector-size",
            reason: "the data offset is not aligned to it".into(),
        });
    }
    cipher_of(&new_seg, new_key.as_bytes(), "--cipher")?;
    // the new digest and keyslots (material written now, referenced by the header below)
    let salt = random(32)?;
    let mut dv = vec![0u8; dig.hash.output_len()];
    dig.hash
        .pbkdf2(new_key.as_bytes(), &salt, dig.iterations, &mut dv);
    let d_new = first_free(&l2.md.digests, None, u32::MAX)?;
    let mut new_slots = Vec::new();
    for (old_slot, pass) in twins {
        let slot = first_free(&l2.md.keyslots, None, json::MAX_KEYSLOTS)?;
        let old_ks = &l2.md.keyslots[&old_slot];
        let size = round_up((key_len * crate::af::STRIPES as usize) as u64, 4096);
        let offset = alloc_area(l2, size, None)?;
        let mut pb = opts.pbkdf.clone();
        pb.hash = pb.hash.or(Some(dig.hash));
        let kdf = pb.resolve(false, key_len)?;
        let ks = json::Keyslot::new(
            key_len as u32,
            old_ks.af_hash,
            Area {
                offset,
                size,
                encryption: old_ks.area.encryption.clone(),
                key_size: old_ks.area.key_size,
            },
            kdf,
            random(32)?,
        );
        let field = format!("keyslots.{slot}");
        let material = keyslot::seal(&slot_params_v2(&ks, &field)?, new_key.as_bytes(), pass)?;
        sink.write(&material, offset)?;
        l2.md.keyslots.insert(slot, ks);
        new_slots.push(slot);
    }
    sink.sync()?;
    l2.md.digests.insert(
        d_new,
        DigestEntry::new(new_slots, vec![], dig.hash, dig.iterations, salt, dv),
    );
    let block = block.max(new_seg.sector_size);
    start(
        l2,
        opts,
        Mode::Reencrypt,
        block,
        &old_seg,
        new_seg,
        d_old,
        Some(d_new),
    )?;
    metadata::set_digest(
        &mut l2.md,
        Some(old_key.as_bytes()),
        Some(new_key.as_bytes()),
        dig.hash,
        dig.iterations,
    )?;
    sink.header(l2)?;
    Ok((old_key, Some(new_key)))
}

/// The reencrypt keyslot over the largest free part of the keyslots area, the backup
/// segments and the requirement (in memory).
#[allow(clippy::too_many_arguments)]
fn start(
    l2: &mut L2,
    opts: &ReencryptOptions,
    mode: Mode,
    block: u32,
    old_seg: &Segment,
    new_seg: Segment,
    d_old: u32,
    d_new: Option<u32>,
) -> Result<()> {
    let rslot = first_free(&l2.md.keyslots, None, json::MAX_KEYSLOTS)?;
    let (aoff, asize) = max_gap(l2)?;
    let resilience = match opts.resilience {
        ResilienceKind::Checksum => Resilience::Checksum {
            hash: opts.hash.unwrap_or(HashAlg::Sha256),
            sector_size: block,
        },
        ResilienceKind::Journal => Resilience::Journal,
        ResilienceKind::None => Resilience::None,
    };
    l2.md.reencrypt = Some((
        rslot,
        ReencryptKeyslot::new(mode, Direction::Forward, resilience, aoff, asize),
    ));
    let layout = Layout {
        data_offset: old_seg.offset,
        device_size: 0,
        fixed: old_seg.size.is_some(),
        direction: Direction::Forward,
        old: old_seg.clone(),
        new: new_seg,
        d_old: Some(d_old),
        d_new,
    };
    layout.apply(&mut l2.md, vec![(old_seg.clone(), vec![d_old])]);
    l2.md.config.mandatory = vec![REQUIREMENT.into()];
    Ok(())
}

/// A loaded reencryption: its layout, ciphers (none for a plaintext side) and resilience.
struct Run {
    layout: Layout,
    rslot: u32,
    ks: ReencryptKeyslot,
    old_c: Option<SectorCipher>,
    new_c: Option<SectorCipher>,
    max_len: u64,
}

type Keys = (VolumeKey, Option<VolumeKey>);

/// What is done with each chunk of a hotzone: the chunk and its data offset.
type ChunkFn<'a> = dyn FnMut(&mut Sink<'_>, &mut [u8], u64) -> Result<()> + 'a;

fn load(
    file: &File,
    data: &File,
    l2: &L2,
    keys: &[KeyChange<'_>],
    known: Option<Keys>,
    opts: &ReencryptOptions,
) -> Result<Run> {
    let (rslot, ks) = l2.md.reencrypt.clone().ok_or(Error::NotInReencryption)?;
    if ks.mode == Mode::Encrypt {
        return Err(Error::Unsupported(
            "resuming an encryption in place (reencrypt --encrypt)".into(),
        ));
    }
    let bad = |w: &str| Error::ReencryptUnauthenticated(w.to_string());
    let (_, prev) = segment_by_flag(&l2.md, BACKUP_PREVIOUS)?
        .ok_or_else(|| bad("no backup-previous segment"))?;
    let (_, fin) =
        segment_by_flag(&l2.md, BACKUP_FINAL)?.ok_or_else(|| bad("no backup-final segment"))?;
    let (d_old, d_new) = metadata::backup_digests(&l2.md)?;
    let decrypt = ks.mode == Mode::Decrypt;
    let (d_old, d_new) = match (d_old, d_new) {
        (Some(a), Some(b)) if a != b && !decrypt => (a, Some(b)),
        (Some(a), None) if decrypt && fin.linear => (a, None),
        _ => return Err(bad("the backup segments are not bound to the volume keys")),
    };
    let (old_key, new_key) = match known {
        Some(k) => k,
        None => {
            let old = key_for_digest(file, l2, d_old, keys)?.ok_or(Error::NoMatchingKey)?;
            let new = match d_new {
                Some(d) => Some(key_for_digest(file, l2, d, keys)?.ok_or(Error::NoMatchingKey)?),
                None => None,
            };
            (old, new)
        }
    };
    // CVE-2021-4122: nothing is done with a state the keys do not authenticate
    metadata::verify_digest(
        &l2.md,
        Some(old_key.as_bytes()),
        new_key.as_ref().map(VolumeKey::as_bytes),
    )?;
    if segment_by_flag(&l2.md, metadata::BACKUP_MOVED)?.is_some() || prev.offset != fin.offset {
        return Err(Error::Unsupported("reencryption with a data shift".into()));
    }
    if prev.linear {
        return Err(bad("the old segment is not encrypted"));
    }
    let mut old = prev.clone();
    old.flags.clear();
    let mut new = fin.clone();
    new.flags.clear();
    let old_c = cipher_of(
        &old,
        old_key.as_bytes(),
        "segments.backup-previous.encryption",
    )?;
    let new_c = match &new_key {
        Some(k) => Some(cipher_of(
            &new,
            k.as_bytes(),
            "segments.backup-final.encryption",
        )?),
        None => None,
    };
    let align = old.sector_size.max(new.sector_size) as u64;
    let (device_size, fixed) = match prev.size {
        Some(n) => (n, true),
        None => {
            let sz = device::size(data)?;
            if sz <= prev.offset {
                return Err(Error::DeviceTooSmall {
                    needed: prev.offset + align,
                    have: sz,
                });
            }
            ((sz - prev.offset) / align * align, false)
        }
    };
    let max_len = match ks.resilience {
        Resilience::Checksum { hash, sector_size } => {
            if !(sector_size as u64).is_multiple_of(align) {
                return Err(Error::field(
                    format!("keyslots.{rslot}.area.sector_size"),
                    Problem::Misaligned { align },
                ));
            }
            ks.area_size / hash.output_len() as u64 * sector_size as u64
        }
        Resilience::Journal => ks.area_size,
        Resilience::None => opts.hotzone_size.unwrap_or(DEFAULT_NONE_HOTZONE),
        _ => return Err(Error::Unsupported("data shift resilience".into())),
    };
    let block = match ks.resilience {
        Resilience::Checksum { sector_size, .. } => sector_size as u64,
        _ => align.max(4096),
    };
    let mut max_len = max_len
        .min(MAX_HOTZONE)
        .min(opts.hotzone_size.unwrap_or(u64::MAX));
    max_len -= max_len % block;
    if max_len == 0 {
        return Err(Error::InvalidOption {
            option: "--hotzone-size",
            reason: format!("must be at least {block} bytes"),
        });
    }
    Ok(Run {
        layout: Layout {
            data_offset: prev.offset,
            device_size,
            fixed,
            direction: ks.direction,
            old,
            new,
            d_old: Some(d_old),
            d_new,
        },
        rslot,
        ks,
        old_c: Some(old_c),
        new_c,
        max_len,
    })
}

/// [`parallel`], for the other files of the module.
pub(crate) fn parallel_pub(
    buf: &mut [u8],
    unit: usize,
    f: &(dyn Fn(&mut [u8], u64) -> Result<()> + Sync),
) -> Result<()> {
    parallel(buf, unit, f)
}

/// Runs `f` over `buf` split in `unit`-aligned chunks on up to 8 threads; `f` gets the
/// chunk and its byte offset in `buf`.
fn parallel(
    buf: &mut [u8],
    unit: usize,
    f: &(dyn Fn(&mut [u8], u64) -> Result<()> + Sync),
) -> Result<()> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per = (buf.len() / unit).div_ceil(threads).max(1) * unit;
    std::thread::scope(|s| {
        let hs: Vec<_> = buf
            .chunks_mut(per)
            .enumerate()
            .map(|(i, c)| s.spawn(move || f(c, (i * per) as u64)))
            .collect();
        hs.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Reencrypt("worker panicked".into())))
        })
    })
}

impl Run {
    /// Decrypts `buf` (old ciphertext of data bytes `[off, off + len)`) with the old key
    /// and encrypts it with the new one (if any), in place.
    fn recrypt(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let (o, n) = (&self.layout.old, &self.layout.new);
        let unit = o.sector_size.max(n.sector_size) as usize;
        parallel(buf, unit, &|c, at| {
            let pos = off + at;
            if let Some(oc) = &self.old_c {
                oc.decrypt_sectors(
                    c,
                    o.sector_size as usize,
                    o.iv_tweak.wrapping_add(pos / 512),
                    true,
                )
                .map_err(|e| Error::Cipher(e.to_string()))?;
            }
            if let Some(nc) = &self.new_c {
                nc.encrypt_sectors(
                    c,
                    n.sector_size as usize,
                    n.iv_tweak.wrapping_add(pos / 512),
                    true,
                )
                .map_err(|e| Error::Cipher(e.to_string()))?;
            }
            Ok(())
        })
    }

    /// The header after the zone `[off, off + len)` is done: post segments, or the
    /// final state when it was the last.
    fn commit(&self, sink: &mut Sink<'_>, l2: &mut L2, off: u64, len: u64) -> Result<()> {
        let at = match self.layout.direction {
            Direction::Forward => off + len,
            Direction::Backward => off,
        };
        let done = match self.layout.direction {
            Direction::Forward => at >= self.layout.device_size,
            Direction::Backward => at == 0,
        };
        if done {
            return self.finish(sink, l2);
        }
        self.layout.apply(&mut l2.md, self.layout.post(at));
        sink.header(l2)
    }

    /// The final header: the new segment alone, the old keyslots, digest, backups,
    /// reencrypt keyslot and requirement gone; then the old keyslot areas are wiped.
    fn finish(&self, sink: &mut Sink<'_>, l2: &mut L2) -> Result<()> {
        let md = &mut l2.md;
        let d_old = self.layout.d_old.unwrap_or(u32::MAX);
        let old_slots = md
            .digests
            .get(&d_old)
            .map(|d| d.keyslots.clone())
            .unwrap_or_default();
        let mut wipe = Vec::new();
        for s in &old_slots {
            if let Some(k) = md.keyslots.remove(s) {
                wipe.push((k.area.offset, k.area.size));
            }
        }
        md.digests.remove(&d_old);
        md.digests.retain(|_, d| !d.keyslots.contains(&self.rslot));
        md.reencrypt = None;
        for t in md.tokens.values_mut() {
            t.keyslots.retain(|s| !old_slots.contains(s));
        }
        md.config.mandatory.clear();
        md.segments.clear();
        let mut s0 = self.layout.new.clone();
        s0.size = self.layout.fixed.then_some(self.layout.device_size);
        md.segments.insert(0, s0);
        for d in md.digests.values_mut() {
            d.segments.clear();
        }
        if let Some(d) = self.layout.d_new.and_then(|d| md.digests.get_mut(&d)) {
            d.segments = vec![0];
        }
        sink.header(l2)?;
        for (off, len) in wipe {
            device::wipe(sink.file, off, len)?;
        }
        if self.ks.resilience == Resilience::Journal {
            device::wipe(
                sink.file,
                self.ks.area_offset,
                self.ks.area_size.min(self.max_len),
            )?;
        }
        Ok(())
    }

    /// Calls `f(chunk, its data offset)` for the old bytes of `[off, off + len)`,
    /// [`CHUNK`] bytes at a time.
    fn each_chunk(
        &self,
        sink: &mut Sink<'_>,
        off: u64,
        len: u64,
        f: &mut ChunkFn<'_>,
    ) -> Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; CHUNK.min(len) as usize]);
        let mut pos = off;
        while pos < off + len {
            let n = CHUNK.min(off + len - pos) as usize;
            let b = &mut buf[..n];
            device::read_at(sink.data, b, self.layout.data_offset + pos)?;
            f(sink, b, pos)?;
            pos += n as u64;
        }
        Ok(())
    }

    /// The checksums of `data` (old ciphertext), hashed on all cores.
    fn sums(&self, hash: HashAlg, block: usize, data: &mut [u8]) -> Result<Vec<u8>> {
        let n = hash.output_len();
        let out = std::sync::Mutex::new(vec![0u8; data.len() / block * n]);
        parallel(data, block, &|c, at| {
            let s = checksums(hash, block, c);
            let i = at as usize / block * n;
            out.lock()
                .map_err(|_| Error::Reencrypt("checksum worker panicked".into()))?[i..i + s.len()]
                .copy_from_slice(&s);
            Ok(())
        })?;
        out.into_inner()
            .map_err(|_| Error::Reencrypt("checksum worker panicked".into()))
    }

    /// Rewrites `[off, off + len)` under the new key, chunk by chunk, then syncs. A
    /// helper thread flushes the written chunks meanwhile, so that the final sync
    /// does not wait for the whole hotzone to reach the disk.
    fn rewrite(&self, sink: &mut Sink<'_>, off: u64, len: u64) -> Result<()> {
        let base = self.layout.data_offset;
        let data = sink.data;
        std::thread::scope(|sc| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let flusher = sc.spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    let _ = data.sync_data();
                }
            });
            let r = self.each_chunk(sink, off, len, &mut |sink, b, pos| {
                self.recrypt(b, pos)?;
                sink.write_to(true, b, base + pos)?;
                let _ = tx.send(());
                Ok(())
            });
            drop(tx);
            let _ = flusher.join();
            r
        })?;
        sink.sync()
    }

    /// One hotzone `[off, off + len)`: protect (checksums of the old blocks, or the
    /// old bytes, in the area), commit the hot segments, rewrite, commit.
    fn step(&self, sink: &mut Sink<'_>, l2: &mut L2, off: u64, len: u64) -> Result<()> {
        let area = self.ks.area_offset;
        let protected = match self.ks.resilience {
            Resilience::Checksum { hash, sector_size } => {
                let mut all =
                    Vec::with_capacity((len / sector_size as u64) as usize * hash.output_len());
                self.each_chunk(sink, off, len, &mut |_, b, _| {
                    all.extend_from_slice(&self.sums(hash, sector_size as usize, b)?);
                    Ok(())
                })?;
                sink.write(&all, area)?;
                true
            }
            Resilience::Journal => {
                self.each_chunk(sink, off, len, &mut |sink, b, pos| {
                    sink.write(b, area + pos - off)
                })?;
                true
            }
            _ => false,
        };
        if protected {
            // resilience data synced, then the hot segments: the commit point
            sink.sync()?;
            self.layout.apply(&mut l2.md, self.layout.hot(off, len));
            sink.header(l2)?;
        }
        self.rewrite(sink, off, len)?;
        self.commit(sink, l2, off, len)
    }

    /// Recovers the hotzone of a run that died inside it, then commits it.
    fn recover(&self, sink: &mut Sink<'_>, l2: &mut L2, off: u64, len: u64) -> Result<()> {
        let base = self.layout.data_offset;
        let area = self.ks.area_offset;
        match self.ks.resilience {
            Resilience::Checksum { hash, sector_size } => {
                let block = sector_size as usize;
                let n = hash.output_len();
                let need = len / block as u64 * n as u64;
                if need > self.ks.area_size || !len.is_multiple_of(block as u64) {
                    return Err(Error::ReencryptUnauthenticated(
                        "the hotzone does not fit the checksum area".into(),
                    ));
                }
                let mut sums = vec![0u8; need as usize];
                device::read_at(sink.file, &mut sums, area)?;
                self.each_chunk(sink, off, len, &mut |sink, b, pos| {
                    let now = self.sums(hash, block, b)?;
                    let first = (pos - off) as usize / block * n;
                    let old = &sums[first..first + now.len()];
                    for (i, (a, o)) in now.chunks_exact(n).zip(old.chunks_exact(n)).enumerate() {
                        if a == o {
                            // still the old ciphertext: rewrite this block
                            let p = i * block;
                            let blk = &mut b[p..p + block];
                            self.recrypt(blk, pos + p as u64)?;
                            sink.write_to(true, blk, base + pos + p as u64)?;
                        }
                    }
                    Ok(())
                })?;
            }
            Resilience::Journal => {
                if len > self.ks.area_size {
                    return Err(Error::ReencryptUnauthenticated(
                        "the hotzone is larger than the journal".into(),
                    ));
                }
                let mut buf = Zeroizing::new(vec![0u8; CHUNK.min(len) as usize]);
                let mut pos = off;
                while pos < off + len {
                    let k = CHUNK.min(off + len - pos) as usize;
                    let b = &mut buf[..k];
                    device::read_at(sink.file, b, area + pos - off)?;
                    self.recrypt(b, pos)?;
                    sink.write_to(true, b, base + pos)?;
                    pos += k as u64;
                }
            }
            _ => {
                return Err(Error::Reencrypt(
                    "the run died inside a hotzone without resilience: it cannot be recovered"
                        .into(),
                ))
            }
        }
        sink.sync()?;
        self.commit(sink, l2, off, len)
    }
}

/// Where a run stands: the boundary between done and to-do data (forward: done below
/// it; backward: done above it), and the crashed hotzone `(offset, length)` if any.
fn position(l2: &L2, r: &Run) -> Result<(u64, Option<(u64, u64)>)> {
    let lay = &r.layout;
    let data: Vec<&Segment> = l2.md.segments.values().filter(|s| !s.is_backup()).collect();
    let off_of = |s: &Segment| s.offset.checked_sub(lay.data_offset);
    let bad = || {
        Error::ReencryptUnauthenticated("the data segments do not follow the reencryption".into())
    };
    let fwd = lay.direction == Direction::Forward;
    if let Some(h) = data.iter().find(|s| s.has_flag(IN_REENCRYPTION)) {
        let off = off_of(h).ok_or_else(bad)?;
        let len = h.size.ok_or_else(bad)?;
        if len == 0 || off.checked_add(len).is_none_or(|e| e > lay.device_size) {
            return Err(bad());
        }
        return Ok((if fwd { off } else { off + len }, Some((off, len))));
    }
    let (start, end) = if fwd {
        (0, lay.device_size)
    } else {
        (lay.device_size, 0)
    };
    match data.as_slice() {
        [only] => {
            // the new segment alone: a run that died before its final header
            let is_new = only.linear == lay.new.linear
                && only.encryption == lay.new.encryption
                && metadata::digest_of_segment(&l2.md, 0) == lay.d_new
                && (lay.d_new.is_some() || only.linear);
            Ok((if is_new { end } else { start }, None))
        }
        [first, _] => {
            let b = first.size.ok_or_else(bad)?;
            if b == 0 || b > lay.device_size {
                return Err(bad());
            }
            Ok((b, None))
        }
        _ => Err(bad()),
    }
}

/// Reencrypts the LUKS2 volume at `path` offline: a new volume key (and maybe
/// cipher), every keyslot that a passphrase of `keys` opens re-wrapped (the other old
/// keyslots are removed at the end, as cryptsetup does), or resumes a reencryption
/// that this crate or cryptsetup left (clean or crashed).
/// `progress` is called after every hotzone; returning `false` stops the run cleanly.
pub fn reencrypt(
    path: impl AsRef<Path>,
    keys: &[KeyChange<'_>],
    opts: &ReencryptOptions,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<Outcome> {
    run(path.as_ref(), None, keys, opts, progress)
}

/// [`reencrypt`] of a volume whose header is detached (`--header HEADER DEVICE`);
/// decryption (`opts.decrypt`) needs one, as in cryptsetup 2.6.
pub fn reencrypt_detached(
    header: impl AsRef<Path>,
    data: impl AsRef<Path>,
    keys: &[KeyChange<'_>],
    opts: &ReencryptOptions,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<Outcome> {
    run(header.as_ref(), Some(data.as_ref()), keys, opts, progress)
}

fn run(
    header: &Path,
    data: Option<&Path>,
    keys: &[KeyChange<'_>],
    opts: &ReencryptOptions,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<Outcome> {
    let vol = match data {
        Some(d) => Volume::open_detached(header, d)?,
        None => Volume::open(header)?,
    };
    if !vol.writable {
        return Err(Error::Io {
            context: "reencrypting",
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "opened read-only"),
        });
    }
    let _guard = lock(&vol.file)?;
    let hdr = crate::header::read_header(&vol.file)?;
    let Hdr::V2(l2) = hdr else {
        return Err(Error::Unsupported("reencryption of LUKS1".into()));
    };
    let mut l2 = *l2;
    let file = &vol.file;
    let data_file = vol.data_file.as_ref().unwrap_or(file);
    let mut sink = Sink {
        file,
        data: data_file,
        n: 0,
        crash: opts.crash_at_write,
    };
    if l2.repair.is_some() {
        sink.header(&mut l2)?;
    }
    let known = if l2.md.reencrypt.is_none() {
        if opts.resume_only {
            return Err(Error::NotInReencryption);
        }
        Some(init(&mut sink, &mut l2, keys, opts, data.is_some())?)
    } else {
        None
    };
    if opts.init_only {
        return Ok(Outcome::Initialized);
    }
    if l2
        .md
        .reencrypt
        .as_ref()
        .is_some_and(|(_, k)| k.mode == Mode::Encrypt)
    {
        let d_new = metadata::backup_digests(&l2.md)?
            .1
            .ok_or_else(|| Error::ReencryptUnauthenticated("no key for the new segment".into()))?;
        let key = key_for_digest(file, &l2, d_new, keys)?.ok_or(Error::NoMatchingKey)?;
        return super::shift::run(&mut sink, &mut l2, &key, opts.stop_after_hotzones, progress);
    }
    let run = load(file, data_file, &l2, keys, known, opts)?;
    let total = run.layout.device_size;
    let fwd = run.layout.direction == Direction::Forward;
    let done_at = |b: u64| if fwd { b } else { total - b };
    let (mut b, crashed) = position(&l2, &run)?;
    if let Some((off, len)) = crashed {
        run.recover(&mut sink, &mut l2, off, len)?;
        b = if fwd { off + len } else { off };
    }
    let mut steps = 0u64;
    while done_at(b) < total {
        if opts.stop_after_hotzones.is_some_and(|n| steps >= n) {
            return Ok(Outcome::Stopped(Progress {
                done: done_at(b),
                total,
            }));
        }
        let (off, len) = if fwd {
            (b, run.max_len.min(total - b))
        } else {
            let l = run.max_len.min(b);
            (b - l, l)
        };
        run.step(&mut sink, &mut l2, off, len)?;
        b = if fwd { off + len } else { off };
        steps += 1;
        let p = Progress {
            done: done_at(b),
            total,
        };
        if !progress(p) && p.done < total {
            return Ok(Outcome::Stopped(p));
        }
    }
    if l2.md.reencrypt.is_some() {
        // a run that died after its last hotzone but before the final header
        run.finish(&mut sink, &mut l2)?;
    }
    Ok(Outcome::Finished)
}

/// Encrypts the plaintext device at `path` in place (`cryptsetup reencrypt --encrypt
/// --reduce-device-size R`): a LUKS2 header formatted with `format` (the data offset
/// is `R / 2`; the last `R` bytes of the device are given up) and `passphrase` in
/// keyslot 0, then the data encrypted backward with a data shift. A device already
/// in such an encryption (by this crate or cryptsetup) is resumed instead.
pub fn encrypt_in_place(
    path: impl AsRef<Path>,
    passphrase: &[u8],
    format: &crate::FormatOptions,
    opts: &ReencryptOptions,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<Outcome> {
    let path = path.as_ref();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("opening the device"))?;
    let guard = lock(&file)?;
    match crate::header::read_header(&file) {
        Err(Error::BadMagic) => {}
        Ok(_) => {
            drop(guard);
            let keys = [KeyChange {
                passphrase,
                new_passphrase: None,
                slot: None,
            }];
            return run(
                path,
                None,
                &keys,
                &ReencryptOptions {
                    resume_only: true,
                    ..opts.clone()
                },
                progress,
            );
        }
        Err(e) => return Err(e),
    }
    if opts.resume_only {
        return Err(Error::NotInReencryption);
    }
    let reduce = opts.reduce_device_size.ok_or(Error::InvalidOption {
        option: "--reduce-device-size",
        reason: "needed to encrypt in place".into(),
    })?;
    let mut sink = Sink {
        file: &file,
        data: &file,
        n: 0,
        crash: opts.crash_at_write,
    };
    let (mut l2, key) = super::shift::init(&mut sink, &file, format, passphrase, reduce)?;
    if opts.init_only {
        return Ok(Outcome::Initialized);
    }
    super::shift::run(&mut sink, &mut l2, &key, opts.stop_after_hotzones, progress)
}

//! Encryption in place with a data shift (`cryptsetup reencrypt --encrypt
//! --reduce-device-size R`), as cryptsetup 2.6 lays it out: the header takes the
//! first `S = R / 2` bytes, the data (`D = device - R` bytes) ends up encrypted at
//! offset `S`. Its first `min(S, D)` bytes are first copied to `device - S` (the
//! `backup-moved-segment`), then hotzones of `S` bytes walk backward: each reads
//! plaintext at data position `p` (device `p`, or the moved copy for `p = 0`) and
//! writes it encrypted at device `S + p`, never over a source still needed
//! (resilience `datashift`: a crashed hotzone is redone from its source).

use crate::device;
use crate::error::{Error, Result};
use crate::format::prepare_luks2;
use crate::luks2::disk::L2;
use crate::luks2::json::Segment;
use crate::options::FormatOptions;
use crate::reencrypt::engine::{parallel_pub, Sink};
use crate::reencrypt::metadata::{
    self, segment_by_flag, Direction, Mode, ReencryptKeyslot, Resilience, BACKUP_FINAL,
    BACKUP_MOVED, BACKUP_PREVIOUS, IN_REENCRYPTION, REQUIREMENT,
};
use crate::volume_key::VolumeKey;
use crate::SectorCipher;
use std::fs::File;
use zeroize::Zeroizing;

const CHUNK: u64 = 8 << 20;

/// The fixed layout of an encryption in place.
pub(crate) struct Shift {
    /// Data shift = new data offset, bytes.
    s: u64,
    /// Data size, bytes.
    d: u64,
    /// Device offset of the moved copy of the first `min(S, D)` bytes.
    moved: u64,
    /// The new crypt segment (offset S, dynamic).
    new: Segment,
    d_new: u32,
    rslot: u32,
    cipher: Option<SectorCipher>,
}

fn linear(offset: u64, size: Option<u64>, flag: Option<&str>) -> Segment {
    let mut s = Segment::new_linear(offset, size);
    s.flags.extend(flag.map(str::to_string));
    s
}

impl Shift {
    fn crypt(&self, pos: u64, size: Option<u64>, hot: bool) -> Segment {
        let mut c = self.new.clone();
        c.flags.clear();
        c.offset = self.s + pos;
        c.size = size;
        c.iv_tweak = self.new.iv_tweak.wrapping_add(pos / 512);
        if hot {
            c.flags.push(IN_REENCRYPTION.into());
        }
        c
    }

    fn moved_seg(&self, flag: Option<&str>) -> Segment {
        linear(self.moved, Some(self.s.min(self.d)), flag)
    }

    /// Data segments while `[off, off + len)` is rewritten (`hot`), or once it is done.
    fn segments(&self, off: u64, len: u64, hot: bool) -> Vec<Segment> {
        let mut v = Vec::new();
        if off > 0 {
            v.push(self.moved_seg(None));
        }
        if off > self.s {
            v.push(linear(self.s, Some(off - self.s), None));
        }
        if hot {
            v.push(self.crypt(off, Some(len), true));
            if off + len < self.d {
                v.push(self.crypt(off + len, Some(self.d - off - len), false));
            }
        } else {
            v.push(self.crypt(off, (off > 0).then_some(self.d - off), false));
        }
        v
    }

    /// Replaces the segments (then backup-previous, backup-final, backup-moved-segment,
    /// as cryptsetup orders them after a step) and binds the crypt ones to the key.
    fn apply(&self, l2: &mut L2, data: Vec<Segment>) {
        let md = &mut l2.md;
        for d in md.digests.values_mut() {
            d.segments.clear();
        }
        md.segments.clear();
        let mut fin = self.new.clone();
        fin.flags = vec![BACKUP_FINAL.into()];
        let all = data.into_iter().chain([
            linear(0, Some(self.d), Some(BACKUP_PREVIOUS)),
            fin,
            self.moved_seg(Some(BACKUP_MOVED)),
        ]);
        for (i, s) in all.enumerate() {
            let i = i as u32;
            if !s.linear {
                if let Some(d) = md.digests.get_mut(&self.d_new) {
                    d.segments.push(i);
                }
            }
            md.segments.insert(i, s);
        }
    }

    /// The next hotzone as cryptsetup computes it, or the crashed one; None when done.
    fn next(&self, l2: &L2) -> Result<Option<(u64, u64, bool)>> {
        let bad = || {
            Error::ReencryptUnauthenticated("the data segments do not follow the encryption".into())
        };
        let data: Vec<&Segment> = l2.md.segments.values().filter(|s| !s.is_backup()).collect();
        if let Some(h) = data.iter().find(|s| s.has_flag(IN_REENCRYPTION)) {
            let off = h.offset.checked_sub(self.s).ok_or_else(bad)?;
            let len = h.size.ok_or_else(bad)?;
            if len == 0 || len > self.s || off.checked_add(len).is_none_or(|e| e > self.d) {
                return Err(bad());
            }
            return Ok(Some((off, len, true)));
        }
        let lin: u64 = data
            .iter()
            .filter(|s| s.linear)
            .map(|s| s.size.unwrap_or(0))
            .sum();
        if lin == 0 {
            return Ok(None);
        }
        if data.len() == 1 {
            return Ok(Some((0, self.s.min(self.d), false)));
        }
        let tmp = lin.checked_sub(self.s).ok_or_else(bad)?;
        if tmp == 0 {
            Ok(Some((0, self.s.min(self.d), false)))
        } else if tmp < self.s {
            Ok(Some((self.s, tmp, false)))
        } else {
            Ok(Some((tmp, self.s, false)))
        }
    }

    /// Encrypts `[off, off + len)` from its source to `S + off`, then syncs.
    fn rewrite(&self, sink: &mut Sink<'_>, off: u64, len: u64) -> Result<()> {
        let src = if off == 0 { self.moved } else { off };
        let ss = self.new.sector_size as usize;
        let mut buf = Zeroizing::new(vec![0u8; CHUNK.min(len) as usize]);
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done) as usize;
            let b = &mut buf[..n];
            device::read_at(sink.data, b, src + done)?;
            let pos = off + done;
            let cipher = self
                .cipher
                .as_ref()
                .ok_or_else(|| Error::Reencrypt("no cipher".into()))?;
            parallel_pub(b, ss, &|c, at| {
                cipher
                    .encrypt_sectors(
                        c,
                        ss,
                        self.new.iv_tweak.wrapping_add((pos + at) / 512),
                        true,
                    )
                    .map_err(|e| Error::Cipher(e.to_string()))
            })?;
            sink.write_to(true, b, self.s + pos)?;
            done += n as u64;
        }
        sink.sync()
    }

    /// The final header: the crypt segment alone, the state removed; then the moved
    /// plaintext copy is wiped.
    fn finish(&self, sink: &mut Sink<'_>, l2: &mut L2) -> Result<()> {
        let md = &mut l2.md;
        md.digests.retain(|_, d| !d.keyslots.contains(&self.rslot));
        md.reencrypt = None;
        md.config.mandatory.clear();
        md.segments.clear();
        md.segments.insert(0, self.crypt(0, None, false));
        for d in md.digests.values_mut() {
            d.segments.clear();
        }
        if let Some(d) = md.digests.get_mut(&self.d_new) {
            d.segments = vec![0];
        }
        sink.header(l2)?;
        device::wipe(sink.data, self.moved, self.s.min(self.d))
    }
}

/// Initializes an encryption in place of the plaintext `file`: moves the first
/// bytes, then writes the LUKS2 header with the reencryption state (one write).
pub(crate) fn init(
    sink: &mut Sink<'_>,
    file: &File,
    fo: &FormatOptions,
    passphrase: &[u8],
    reduce: u64,
) -> Result<(L2, VolumeKey)> {
    let dev = device::size(file)?;
    let ss = fo.sector_size.unwrap_or(512) as u64;
    let s = reduce / 2;
    if reduce == 0 || !reduce.is_multiple_of(2 * ss.max(4096)) || dev <= reduce {
        return Err(Error::InvalidOption {
            option: "--reduce-device-size",
            reason: format!(
                "must be a non-zero multiple of {} smaller than the device ({dev} bytes)",
                2 * ss.max(4096)
            ),
        });
    }
    let d = (dev - reduce) / ss * ss;
    let mut fo = fo.clone();
    fo.luks_type = crate::LuksType::Luks2;
    fo.offset_sectors = Some(s / 512);
    fo.sector_size = Some(ss as u32);
    fo.luks2_keyslots_size = Some((s - 2 * (16 << 10)) / 4096 * 4096);
    let p = prepare_luks2(file, &fo, passphrase)?;
    let mut l2 = p.l2;
    let d_new = metadata::digest_of_segment(&l2.md, 0).ok_or(Error::NotInReencryption)?;
    let new = l2.md.segments[&0].clone();
    let rslot = (0..32)
        .find(|i| !l2.md.keyslots.contains_key(i))
        .ok_or(Error::NoFreeSlot)?;
    let aoff = p.material_offset
        + l2.md
            .keyslots
            .values()
            .map(|k| k.area.size)
            .max()
            .unwrap_or(0);
    l2.md.reencrypt = Some((
        rslot,
        ReencryptKeyslot::new(
            Mode::Encrypt,
            Direction::Backward,
            Resilience::Datashift { shift: s },
            aoff,
            4096,
        ),
    ));
    let sh = Shift {
        s,
        d,
        moved: dev - s,
        new,
        d_new,
        rslot,
        cipher: None,
    };
    // segments as cryptsetup's init: the moved copy, the rest of the data (linear)
    let mut data = vec![sh.moved_seg(None)];
    if d > s {
        data.push(linear(s, Some(d - s), None));
    }
    sh.apply(&mut l2, data);
    l2.md.config.mandatory = vec![REQUIREMENT.into()];
    let dg = l2.md.digests[&d_new].clone();
    metadata::set_digest(
        &mut l2.md,
        None,
        Some(p.key.as_bytes()),
        dg.hash,
        dg.iterations,
    )?;
    // the data move (synced), then the keyslot material, then the one header write
    let m = s.min(d);
    let mut buf = Zeroizing::new(vec![0u8; CHUNK.min(m) as usize]);
    let mut done = 0;
    while done < m {
        let n = CHUNK.min(m - done) as usize;
        device::read_at(file, &mut buf[..n], done)?;
        sink.write_to(true, &buf[..n], dev - s + done)?;
        done += n as u64;
    }
    sink.sync()?;
    sink.write(&p.material, p.material_offset)?;
    sink.sync()?;
    sink.header(&mut l2)?;
    Ok((l2, p.key))
}

/// Loads an encryption in place (checked: its digest with the key), then runs it.
pub(crate) fn run(
    sink: &mut Sink<'_>,
    l2: &mut L2,
    key: &VolumeKey,
    stop_after: Option<u64>,
    progress: &mut dyn FnMut(crate::reencrypt::Progress) -> bool,
) -> Result<crate::reencrypt::Outcome> {
    use crate::reencrypt::{Outcome, Progress};
    let bad = |w: &str| Error::ReencryptUnauthenticated(w.to_string());
    metadata::verify_digest(&l2.md, None, Some(key.as_bytes()))?;
    let (rslot, ks) = l2.md.reencrypt.clone().ok_or(Error::NotInReencryption)?;
    let Resilience::Datashift { shift } = ks.resilience else {
        return Err(Error::Unsupported(format!(
            "encryption with resilience {}",
            ks.resilience.name()
        )));
    };
    if ks.direction != Direction::Backward {
        return Err(Error::Unsupported("encryption forward".into()));
    }
    let (_, prev) = segment_by_flag(&l2.md, BACKUP_PREVIOUS)?
        .ok_or_else(|| bad("no backup-previous segment"))?;
    let (_, fin) =
        segment_by_flag(&l2.md, BACKUP_FINAL)?.ok_or_else(|| bad("no backup-final segment"))?;
    let (_, mv) = segment_by_flag(&l2.md, BACKUP_MOVED)?.ok_or_else(|| bad("no moved segment"))?;
    let d_new = metadata::backup_digests(&l2.md)?
        .1
        .ok_or_else(|| bad("no key for the new segment"))?;
    let d = prev.size.ok_or_else(|| bad("the data size is not fixed"))?;
    if !prev.linear
        || fin.linear
        || fin.offset != shift
        || !mv.linear
        || mv.size != Some(shift.min(d))
    {
        return Err(bad("backup segments"));
    }
    let (c, m) = crate::keyslot::split_spec(&fin.encryption)?;
    let mut new = fin.clone();
    new.flags.clear();
    let sh = Shift {
        s: shift,
        d,
        moved: mv.offset,
        new,
        d_new,
        rslot,
        cipher: Some(crate::keyslot::make_cipher(
            c,
            m,
            key.as_bytes(),
            "segments.backup-final.encryption",
        )?),
    };
    let mut steps = 0u64;
    while let Some((off, len, crashed)) = sh.next(l2)? {
        if !crashed && stop_after.is_some_and(|n| steps >= n) {
            return Ok(Outcome::Stopped(Progress {
                done: d - off - len,
                total: d,
            }));
        }
        if !crashed {
            // datashift: the hot segments are the commit point; the source stays intact
            let segs = sh.segments(off, len, true);
            sh.apply(l2, segs);
            sink.header(l2)?;
        }
        sh.rewrite(sink, off, len)?;
        if off == 0 {
            sh.finish(sink, l2)?;
        } else {
            let segs = sh.segments(off, len, false);
            sh.apply(l2, segs);
            sink.header(l2)?;
        }
        steps += 1;
        let p = Progress {
            done: d - off,
            total: d,
        };
        if !progress(p) && off > 0 {
            return Ok(Outcome::Stopped(p));
        }
    }
    Ok(Outcome::Finished)
}

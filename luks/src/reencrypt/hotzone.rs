//! One reencryption step's segments (no data shift): the hot segments written before
//! the hotzone is rewritten, the post segments after it, and which digest (volume key)
//! each segment is bound to, walking forward (done part first) or backward (done part
//! last); the resilience data of a hotzone.

use crate::hash::HashAlg;
use crate::luks2::json::{Metadata, Segment};
use crate::reencrypt::metadata::{Direction, BACKUP_FINAL, BACKUP_PREVIOUS, IN_REENCRYPTION};

/// The fixed layout of a reencryption: the old and new segments (the backups), their
/// digests (none for a plaintext side), where the data starts and how long it is.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) data_offset: u64,
    pub(crate) device_size: u64,
    pub(crate) fixed: bool,
    pub(crate) direction: Direction,
    pub(crate) old: Segment,
    pub(crate) new: Segment,
    pub(crate) d_old: Option<u32>,
    pub(crate) d_new: Option<u32>,
}

/// A segment and the digests it is bound to.
pub(crate) type Bound = (Segment, Vec<u32>);

impl Layout {
    /// `[off, off + len)` of `from` (`len` None: to the end of the device).
    fn part(&self, from: &Segment, off: u64, len: Option<u64>) -> Segment {
        let mut s = from.clone();
        s.flags.clear();
        s.offset = self.data_offset + off;
        s.size = len;
        s.iv_tweak = from.iv_tweak.wrapping_add(off / 512);
        s
    }

    /// `[from, end)` of `seg`, fixed or dynamic as the device is.
    fn tail(&self, seg: &Segment, from: u64) -> Option<Segment> {
        (from < self.device_size).then(|| {
            let len = self.fixed.then_some(self.device_size - from);
            self.part(seg, from, len)
        })
    }

    fn digests(d: &[Option<u32>]) -> Vec<u32> {
        d.iter().flatten().copied().collect()
    }

    /// Segments while `[off, off + len)` is rewritten.
    pub(crate) fn hot(&self, off: u64, len: u64) -> Vec<Bound> {
        let (before, after, db, da) = match self.direction {
            Direction::Forward => (&self.new, &self.old, self.d_new, self.d_old),
            Direction::Backward => (&self.old, &self.new, self.d_old, self.d_new),
        };
        let mut v = Vec::new();
        if off > 0 {
            v.push((self.part(before, 0, Some(off)), Self::digests(&[db])));
        }
        let mut h = self.part(&self.new, off, Some(len));
        h.flags.push(IN_REENCRYPTION.into());
        v.push((h, Self::digests(&[self.d_new, self.d_old])));
        if let Some(o) = self.tail(after, off + len) {
            v.push((o, Self::digests(&[da])));
        }
        v
    }

    /// Segments once the data is done up to the boundary `at` (forward: `[0, at)` is
    /// new; backward: `[at, end)` is new), the run not finished.
    pub(crate) fn post(&self, at: u64) -> Vec<Bound> {
        let (before, after, db, da) = match self.direction {
            Direction::Forward => (&self.new, &self.old, self.d_new, self.d_old),
            Direction::Backward => (&self.old, &self.new, self.d_old, self.d_new),
        };
        let mut v = Vec::new();
        if at > 0 {
            v.push((self.part(before, 0, Some(at)), Self::digests(&[db])));
        }
        if let Some(o) = self.tail(after, at) {
            v.push((o, Self::digests(&[da])));
        }
        v
    }

    /// Replaces the segments of `md` by `data` then the two backups, and rebinds digests.
    pub(crate) fn apply(&self, md: &mut Metadata, data: Vec<Bound>) {
        for d in md.digests.values_mut() {
            d.segments.clear();
        }
        md.segments.clear();
        let mut prev = self.old.clone();
        prev.flags = vec![BACKUP_PREVIOUS.into()];
        let mut fin = self.new.clone();
        fin.flags = vec![BACKUP_FINAL.into()];
        let all = data.into_iter().chain([
            (prev, Self::digests(&[self.d_old])),
            (fin, Self::digests(&[self.d_new])),
        ]);
        for (i, (s, ds)) in all.enumerate() {
            let i = i as u32;
            // as cryptsetup: only crypt segments are bound to a key
            let ds = if s.linear { Vec::new() } else { ds };
            md.segments.insert(i, s);
            for d in ds {
                if let Some(e) = md.digests.get_mut(&d) {
                    if !e.segments.contains(&i) {
                        e.segments.push(i);
                    }
                }
            }
        }
    }
}

/// The checksums of each `block`-byte block of `data` (the old ciphertext of a hotzone).
pub(crate) fn checksums(hash: HashAlg, block: usize, data: &[u8]) -> Vec<u8> {
    let n = hash.output_len();
    let mut out = vec![0u8; data.len() / block * n];
    for (c, o) in data.chunks_exact(block).zip(out.chunks_exact_mut(n)) {
        hash.digest_parts(&[c], o);
    }
    out
}

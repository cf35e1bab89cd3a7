//! One reencryption step's segments (forward direction, no data shift): the hot
//! segments written before the hotzone is rewritten, the post segments after it, and
//! which digest (volume key) each segment is bound to; the resilience data of a hotzone.

use crate::hash::HashAlg;
use crate::luks2::json::{Metadata, Segment};
use crate::reencrypt::metadata::{BACKUP_FINAL, BACKUP_PREVIOUS, IN_REENCRYPTION};

/// The fixed layout of a reencryption: the old and new segments (the backups), their
/// digests, where the data starts and how long it is.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) data_offset: u64,
    pub(crate) device_size: u64,
    pub(crate) fixed: bool,
    pub(crate) old: Segment,
    pub(crate) new: Segment,
    pub(crate) d_old: u32,
    pub(crate) d_new: u32,
}

/// A segment and the digests it is bound to.
pub(crate) type Bound = (Segment, Vec<u32>);

impl Layout {
    fn part(from: &Segment, data_offset: u64, off: u64, len: Option<u64>) -> Segment {
        let mut s = from.clone();
        s.flags.clear();
        s.offset = data_offset + off;
        s.size = len;
        s.iv_tweak = from.iv_tweak.wrapping_add(off / 512);
        s
    }

    /// The part already reencrypted: `[0, len)` (`None`: the whole device, done).
    fn new_part(&self, len: Option<u64>) -> Segment {
        Self::part(&self.new, self.data_offset, 0, len)
    }

    /// The old part from `from` to the end.
    fn old_rest(&self, from: u64) -> Option<Segment> {
        (from < self.device_size).then(|| {
            let len = self.fixed.then_some(self.device_size - from);
            Self::part(&self.old, self.data_offset, from, len)
        })
    }

    /// Segments while `[off, off + len)` is rewritten.
    pub(crate) fn hot(&self, off: u64, len: u64) -> Vec<Bound> {
        let mut v = Vec::new();
        if off > 0 {
            v.push((self.new_part(Some(off)), vec![self.d_new]));
        }
        let mut h = Self::part(&self.new, self.data_offset, off, Some(len));
        h.flags.push(IN_REENCRYPTION.into());
        v.push((h, vec![self.d_new, self.d_old]));
        if let Some(o) = self.old_rest(off + len) {
            v.push((o, vec![self.d_old]));
        }
        v
    }

    /// Segments once `[0, end)` is reencrypted (`end` < device size).
    pub(crate) fn post(&self, end: u64) -> Vec<Bound> {
        let mut v = vec![(self.new_part(Some(end)), vec![self.d_new])];
        if let Some(o) = self.old_rest(end) {
            v.push((o, vec![self.d_old]));
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
        let all = data
            .into_iter()
            .chain([(prev, vec![self.d_old]), (fin, vec![self.d_new])]);
        for (i, (s, ds)) in all.enumerate() {
            let i = i as u32;
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

//! Validation of the LUKS2 metadata as a whole (cryptsetup's `luks2_json_metadata.c`):
//! the layout (JSON and keyslots area sizes, keyslot areas inside the keyslots area
//! without overlaps, segments after it, contiguous, dynamic last) and that every
//! reference (digests and tokens to keyslots and segments) resolves. Each object's own
//! fields are checked when it is parsed, in [`super::json`].

use crate::error::{Error, Problem, Result};
use crate::luks2::json::Metadata;

impl Metadata {
    /// Checks the layout: sizes, areas inside the keyslots area without
    /// overlaps, segments after it without overlaps, references resolvable.
    pub fn validate(&self, hdr_size: u64) -> Result<()> {
        let c = &self.config;
        if c.json_size != hdr_size - 4096 {
            return Err(Error::field(
                "config.json_size",
                Problem::Invalid(format!("{} but the header size is {hdr_size}", c.json_size)),
            ));
        }
        if !c.keyslots_size.is_multiple_of(4096) {
            return Err(Error::field(
                "config.keyslots_size",
                Problem::Misaligned { align: 4096 },
            ));
        }
        let ks_start = Self::keyslots_area_start(hdr_size);
        let ks_end = ks_start
            .checked_add(c.keyslots_size)
            .ok_or_else(|| Error::field("config.keyslots_size", Problem::Overflow))?;
        let mut areas: Vec<(u64, u64, u32)> = Vec::new();
        if let Some((i, r)) = &self.reencrypt {
            let f = format!("keyslots.{i}.area");
            let end = r
                .area_offset
                .checked_add(r.area_size)
                .ok_or_else(|| Error::field(format!("{f}.size"), Problem::Overflow))?;
            if r.area_offset % 512 != 0 || r.area_size % 512 != 0 {
                return Err(Error::field(f, Problem::Misaligned { align: 512 }));
            }
            if r.area_offset < ks_start || end > ks_end {
                return Err(Error::field(
                    format!("{f}.offset"),
                    Problem::OutsideOf("the keyslots area"),
                ));
            }
            if self.keyslots.contains_key(i) {
                return Err(Error::field(
                    format!("keyslots.{i}"),
                    Problem::Invalid("duplicate keyslot id".into()),
                ));
            }
            areas.push((r.area_offset, end, *i));
        }
        for (&i, k) in &self.keyslots {
            let f = format!("keyslots.{i}.area");
            let end = k
                .area
                .offset
                .checked_add(k.area.size)
                .ok_or_else(|| Error::field(format!("{f}.size"), Problem::Overflow))?;
            if k.area.offset % 512 != 0 {
                return Err(Error::field(
                    format!("{f}.offset"),
                    Problem::Misaligned { align: 512 },
                ));
            }
            if k.area.size % 512 != 0 {
                return Err(Error::field(
                    format!("{f}.size"),
                    Problem::Misaligned { align: 512 },
                ));
            }
            if k.area.offset < ks_start || end > ks_end {
                return Err(Error::field(
                    format!("{f}.offset"),
                    Problem::OutsideOf("the keyslots area"),
                ));
            }
            let need = (k.key_size as u64 * k.stripes as u64).div_ceil(512) * 512;
            if k.area.size < need {
                return Err(Error::field(
                    format!("{f}.size"),
                    Problem::Invalid(format!("{} bytes, AF material needs {need}", k.area.size)),
                ));
            }
            for &(a, b, j) in &areas {
                if k.area.offset < b && a < end {
                    return Err(Error::field(
                        format!("{f}.offset"),
                        Problem::Overlaps(format!("keyslot {j}")),
                    ));
                }
            }
            areas.push((k.area.offset, end, i));
        }
        // segments: ids 0..n; the data segments first, ordered, not overlapping, after
        // the keyslots area, dynamic last; then reencryption's backup segments (which
        // describe the old and new layouts, so overlap the data segments)
        let n = self.segments.values().filter(|s| !s.is_backup()).count();
        let mut prev_end: Option<u64> = None;
        for (pos, (&i, s)) in self.segments.iter().enumerate() {
            let f = format!("segments.{i}");
            if i as usize != pos {
                return Err(Error::field(
                    f,
                    Problem::Invalid("segment ids are not 0..n".into()),
                ));
            }
            if s.is_backup() != (pos >= n) {
                return Err(Error::field(
                    format!("{f}.flags"),
                    Problem::Invalid("backup segments must follow the data segments".into()),
                ));
            }
            if s.is_backup() {
                if self.reencrypt.is_none() {
                    return Err(Error::field(
                        format!("{f}.flags"),
                        Problem::Invalid("backup segment outside reencryption".into()),
                    ));
                }
                continue;
            }
            if s.has_flag(crate::reencrypt::metadata::IN_REENCRYPTION) && self.reencrypt.is_none() {
                return Err(Error::field(
                    format!("{f}.flags"),
                    Problem::Invalid("in-reencryption segment outside reencryption".into()),
                ));
            }
            // the data offset (segment 0; 0 = detached header) is after the keyslots
            // area; the following segments are contiguous to it (with a detached
            // header they may lie anywhere on the data device)
            if pos == 0 && s.offset != 0 && s.offset < ks_end {
                return Err(Error::field(
                    format!("{f}.offset"),
                    Problem::Overlaps("the keyslots area".into()),
                ));
            }
            // consecutive crypt segments are contiguous on the device; linear ones
            // (plaintext during an encryption or decryption, e.g. the moved copy of an
            // encryption in place) may lie elsewhere but overlap nothing
            if let Some(pe) = prev_end.filter(|_| !s.linear) {
                if s.offset < pe {
                    return Err(Error::field(
                        format!("{f}.offset"),
                        Problem::Overlaps(format!("segment {}", i - 1)),
                    ));
                }
                if s.offset > pe {
                    return Err(Error::field(
                        format!("{f}.offset"),
                        Problem::Invalid("gap after the previous segment".into()),
                    ));
                }
            }
            let end = s.size.map(|z| s.offset.saturating_add(z));
            for (j, o) in self.segments.iter().take(pos) {
                let oe = o.size.map(|z| o.offset.saturating_add(z));
                let apart = end.is_some_and(|e| e <= o.offset) || oe.is_some_and(|e| e <= s.offset);
                if !apart && (s.linear || o.linear) {
                    return Err(Error::field(
                        format!("{f}.offset"),
                        Problem::Overlaps(format!("segment {j}")),
                    ));
                }
            }
            match s.size {
                None if pos + 1 != n => {
                    return Err(Error::field(
                        format!("{f}.size"),
                        Problem::Invalid("dynamic segment is not the last".into()),
                    ))
                }
                None => {}
                Some(_) if s.linear => prev_end = None,
                Some(sz) => {
                    prev_end = Some(
                        s.offset
                            .checked_add(sz)
                            .ok_or_else(|| Error::field(format!("{f}.size"), Problem::Overflow))?,
                    )
                }
            }
        }
        if n == 0 && !self.segments.is_empty() {
            return Err(Error::field(
                "segments",
                Problem::Invalid("no data segment".into()),
            ));
        }
        let reenc_slot = self.reencrypt.as_ref().map(|(i, _)| *i);
        for (&i, d) in &self.digests {
            for k in &d.keyslots {
                if !self.keyslots.contains_key(k) && Some(*k) != reenc_slot {
                    return Err(Error::field(
                        format!("digests.{i}.keyslots"),
                        Problem::Dangling(format!("keyslot {k}")),
                    ));
                }
            }
            for s in &d.segments {
                if !self.segments.contains_key(s) {
                    return Err(Error::field(
                        format!("digests.{i}.segments"),
                        Problem::Dangling(format!("segment {s}")),
                    ));
                }
            }
        }
        for (&i, t) in &self.tokens {
            for k in &t.keyslots {
                if !self.keyslots.contains_key(k) {
                    return Err(Error::field(
                        format!("tokens.{i}.keyslots"),
                        Problem::Dangling(format!("keyslot {k}")),
                    ));
                }
            }
        }
        Ok(())
    }
}

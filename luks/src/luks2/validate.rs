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
        // segments: ids 0..n, ordered, not overlapping, after the keyslots area, dynamic last
        let n = self.segments.len();
        let mut prev_end: Option<u64> = None;
        for (pos, (&i, s)) in self.segments.iter().enumerate() {
            let f = format!("segments.{i}");
            if i as usize != pos {
                return Err(Error::field(
                    f,
                    Problem::Invalid("segment ids are not 0..n".into()),
                ));
            }
            if s.offset != 0 && s.offset < ks_end {
                return Err(Error::field(
                    format!("{f}.offset"),
                    Problem::Overlaps("the keyslots area".into()),
                ));
            }
            if let Some(pe) = prev_end {
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
            match s.size {
                None if pos + 1 != n => {
                    return Err(Error::field(
                        format!("{f}.size"),
                        Problem::Invalid("dynamic segment is not the last".into()),
                    ))
                }
                None => {}
                Some(sz) => {
                    prev_end = Some(
                        s.offset
                            .checked_add(sz)
                            .ok_or_else(|| Error::field(format!("{f}.size"), Problem::Overflow))?,
                    )
                }
            }
        }
        for (&i, d) in &self.digests {
            for k in &d.keyslots {
                if !self.keyslots.contains_key(k) {
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

//! The reencryption state in the LUKS2 metadata, as cryptsetup 2.6 writes it: the
//! `online-reencrypt-v2` requirement, the `reencrypt` keyslot (mode, direction, and the
//! hotzone resilience in its area), the backup segments, and the digest that
//! authenticates them with the volume keys (the CVE-2021-4122 fix: a state that the
//! keys do not authenticate is refused before any data is touched).

use crate::device;
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::luks2::json::{obj, parse_dec, DigestEntry, Metadata, Segment};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The mandatory requirement of a volume in reencryption (cryptsetup's version 2).
pub const REQUIREMENT: &str = "online-reencrypt-v2";
/// The version byte of the verification data (`'0' + 2`).
const VERSION: u8 = 2;

/// Segment flags of the reencryption protocol.
pub(crate) const BACKUP_PREVIOUS: &str = "backup-previous";
pub(crate) const BACKUP_FINAL: &str = "backup-final";
pub(crate) const BACKUP_MOVED: &str = "backup-moved-segment";
pub(crate) const IN_REENCRYPTION: &str = "in-reencryption";

/// What the reencryption does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// New volume key (and maybe cipher) for encrypted data.
    Reencrypt,
    /// Encrypt plaintext in place.
    Encrypt,
    /// Decrypt to plaintext.
    Decrypt,
}

impl Mode {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Reencrypt => "reencrypt",
            Mode::Encrypt => "encrypt",
            Mode::Decrypt => "decrypt",
        }
    }
}

/// Which end the hotzone walks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the start of the data.
    Forward,
    /// From the end of the data.
    Backward,
}

impl Direction {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// How a hotzone survives a crash (the reencrypt keyslot's area type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resilience {
    /// A hash of each old block of the hotzone in the area (`hash`, block `sector_size`).
    Checksum {
        /// Hash of the blocks.
        hash: HashAlg,
        /// Block size hashed, bytes.
        sector_size: u32,
    },
    /// The old hotzone bytes copied into the area.
    Journal,
    /// No protection: a crash inside a hotzone loses it.
    None,
    /// The data moves by `shift` bytes (encryption in place).
    Datashift {
        /// Shift, bytes.
        shift: u64,
    },
    /// Data shift with checksums for the moved segment.
    DatashiftChecksum {
        /// Hash of the blocks.
        hash: HashAlg,
        /// Block size hashed, bytes.
        sector_size: u32,
        /// Shift, bytes.
        shift: u64,
    },
    /// Data shift with a journal for the moved segment.
    DatashiftJournal {
        /// Shift, bytes.
        shift: u64,
    },
}

impl Resilience {
    /// The area type name.
    pub fn name(&self) -> &'static str {
        match self {
            Resilience::Checksum { .. } => "checksum",
            Resilience::Journal => "journal",
            Resilience::None => "none",
            Resilience::Datashift { .. } => "datashift",
            Resilience::DatashiftChecksum { .. } => "datashift-checksum",
            Resilience::DatashiftJournal { .. } => "datashift-journal",
        }
    }
}

/// The `reencrypt` keyslot: holds no key, only the protocol's parameters and the
/// hotzone protection area.
#[derive(Debug, Clone, PartialEq)]
pub struct ReencryptKeyslot {
    /// Mode.
    pub mode: Mode,
    /// Direction.
    pub direction: Direction,
    /// Resilience (area type and its parameters).
    pub resilience: Resilience,
    /// Area byte offset on the device.
    pub area_offset: u64,
    /// Area byte length.
    pub area_size: u64,
    raw: Map<String, Value>,
}

fn field_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    m.get(key)
        .ok_or_else(|| Error::field(format!("{path}.{key}"), Problem::Missing))?
        .as_str()
        .ok_or_else(|| Error::field(format!("{path}.{key}"), Problem::WrongType("string")))
}

fn field_u32(m: &Map<String, Value>, key: &str, path: &str) -> Result<u32> {
    let f = format!("{path}.{key}");
    let v = m
        .get(key)
        .ok_or_else(|| Error::field(&f, Problem::Missing))?;
    let n = v
        .as_u64()
        .ok_or_else(|| Error::field(&f, Problem::WrongType("integer")))?;
    u32::try_from(n).map_err(|_| Error::field(f, Problem::Overflow))
}

fn field_dec(m: &Map<String, Value>, key: &str, path: &str) -> Result<u64> {
    parse_dec(field_str(m, key, path)?, &format!("{path}.{key}"))
}

impl ReencryptKeyslot {
    /// Parses and checks a `type: reencrypt` keyslot (cryptsetup's rules: `key_size` 1,
    /// known mode, direction and area type, the area type's own fields).
    pub fn parse(v: &Value, path: &str) -> Result<ReencryptKeyslot> {
        let m = obj(v, path)?;
        let key_size = field_u32(m, "key_size", path)?;
        if key_size != 1 {
            return Err(Error::field(
                format!("{path}.key_size"),
                Problem::OutOfRange {
                    min: 1,
                    max: 1,
                    found: key_size as u64,
                },
            ));
        }
        let mode = match field_str(m, "mode", path)? {
            "reencrypt" => Mode::Reencrypt,
            "encrypt" => Mode::Encrypt,
            "decrypt" => Mode::Decrypt,
            o => {
                return Err(Error::field(
                    format!("{path}.mode"),
                    Problem::Unsupported(o.into()),
                ))
            }
        };
        let direction = match field_str(m, "direction", path)? {
            "forward" => Direction::Forward,
            "backward" => Direction::Backward,
            o => {
                return Err(Error::field(
                    format!("{path}.direction"),
                    Problem::Unsupported(o.into()),
                ))
            }
        };
        let ap = format!("{path}.area");
        let a = obj(
            m.get("area")
                .ok_or_else(|| Error::field(&ap, Problem::Missing))?,
            &ap,
        )?;
        let area_offset = field_dec(a, "offset", &ap)?;
        let area_size = field_dec(a, "size", &ap)?;
        let checksum = |a: &Map<String, Value>| -> Result<(HashAlg, u32)> {
            let hash = HashAlg::parse(field_str(a, "hash", &ap)?, &format!("{ap}.hash"))?;
            let ss = field_u32(a, "sector_size", &ap)?;
            if ss < 512 || !ss.is_power_of_two() {
                return Err(Error::field(
                    format!("{ap}.sector_size"),
                    Problem::Invalid(format!("{ss} is not a power of two of at least 512")),
                ));
            }
            Ok((hash, ss))
        };
        let shift = |a: &Map<String, Value>| -> Result<u64> {
            let s = field_dec(a, "shift_size", &ap)?;
            if s == 0 || s % 512 != 0 {
                return Err(Error::field(
                    format!("{ap}.shift_size"),
                    Problem::Misaligned { align: 512 },
                ));
            }
            Ok(s)
        };
        let resilience = match field_str(a, "type", &ap)? {
            "checksum" => {
                let (hash, sector_size) = checksum(a)?;
                Resilience::Checksum { hash, sector_size }
            }
            "journal" => Resilience::Journal,
            "none" => Resilience::None,
            "datashift" => Resilience::Datashift { shift: shift(a)? },
            "datashift-checksum" => {
                let (hash, sector_size) = checksum(a)?;
                Resilience::DatashiftChecksum {
                    hash,
                    sector_size,
                    shift: shift(a)?,
                }
            }
            "datashift-journal" => Resilience::DatashiftJournal { shift: shift(a)? },
            o => {
                return Err(Error::field(
                    format!("{ap}.type"),
                    Problem::Unsupported(o.into()),
                ))
            }
        };
        if let Some(p) = m.get("priority") {
            if p.as_u64().is_none_or(|p| p > 2) {
                return Err(Error::field(
                    format!("{path}.priority"),
                    Problem::Invalid("not 0, 1 or 2".into()),
                ));
            }
        }
        Ok(ReencryptKeyslot {
            mode,
            direction,
            resilience,
            area_offset,
            area_size,
            raw: m.clone(),
        })
    }

    /// A new reencrypt keyslot (priority 0, as cryptsetup writes it).
    pub fn new(
        mode: Mode,
        direction: Direction,
        resilience: Resilience,
        area_offset: u64,
        area_size: u64,
    ) -> ReencryptKeyslot {
        let mut raw = Map::new();
        raw.insert("priority".into(), 0.into());
        ReencryptKeyslot {
            mode,
            direction,
            resilience,
            area_offset,
            area_size,
            raw,
        }
    }

    /// The JSON object, unknown fields kept.
    pub fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        let mut a = m
            .get("area")
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for k in ["hash", "sector_size", "shift_size"] {
            a.remove(k);
        }
        a.insert("type".into(), self.resilience.name().into());
        a.insert("offset".into(), self.area_offset.to_string().into());
        a.insert("size".into(), self.area_size.to_string().into());
        match self.resilience {
            Resilience::Checksum { hash, sector_size } => {
                a.insert("hash".into(), hash.name().into());
                a.insert("sector_size".into(), sector_size.into());
            }
            Resilience::DatashiftChecksum {
                hash,
                sector_size,
                shift,
            } => {
                a.insert("hash".into(), hash.name().into());
                a.insert("sector_size".into(), sector_size.into());
                a.insert("shift_size".into(), shift.to_string().into());
            }
            Resilience::Datashift { shift } | Resilience::DatashiftJournal { shift } => {
                a.insert("shift_size".into(), shift.to_string().into());
            }
            Resilience::Journal | Resilience::None => {}
        }
        m.insert("area".into(), Value::Object(a));
        m.insert("type".into(), "reencrypt".into());
        m.insert("key_size".into(), 1.into());
        m.insert("mode".into(), self.mode.name().into());
        m.insert("direction".into(), self.direction.name().into());
        Value::Object(m)
    }

    /// cryptsetup's serialization of the keyslot for the verification data: strings as
    /// their bytes, 64-bit numbers big endian, `sector_size` 32-bit big endian.
    fn serialize(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.mode.name().as_bytes());
        out.extend_from_slice(self.direction.name().as_bytes());
        out.extend_from_slice(self.resilience.name().as_bytes());
        out.extend_from_slice(&self.area_offset.to_be_bytes());
        out.extend_from_slice(&self.area_size.to_be_bytes());
        match self.resilience {
            Resilience::Checksum { hash, sector_size } => {
                out.extend_from_slice(hash.name().as_bytes());
                out.extend_from_slice(&sector_size.to_be_bytes());
            }
            Resilience::DatashiftChecksum {
                hash,
                sector_size,
                shift,
            } => {
                out.extend_from_slice(hash.name().as_bytes());
                out.extend_from_slice(&sector_size.to_be_bytes());
                out.extend_from_slice(&shift.to_be_bytes());
            }
            Resilience::Datashift { shift } | Resilience::DatashiftJournal { shift } => {
                out.extend_from_slice(&shift.to_be_bytes());
            }
            Resilience::Journal | Resilience::None => {}
        }
    }
}

/// cryptsetup's serialization of a crypt or linear segment for the verification data.
fn serialize_segment(s: &Segment, out: &mut Vec<u8>) {
    if s.linear {
        out.extend_from_slice(b"linear");
        out.extend_from_slice(&s.offset.to_be_bytes());
        match s.size {
            None => out.extend_from_slice(b"dynamic"),
            Some(n) => out.extend_from_slice(&n.to_be_bytes()),
        }
        return;
    }
    out.extend_from_slice(b"crypt");
    out.extend_from_slice(&s.offset.to_be_bytes());
    match s.size {
        None => out.extend_from_slice(b"dynamic"),
        Some(n) => out.extend_from_slice(&n.to_be_bytes()),
    }
    out.extend_from_slice(&s.iv_tweak.to_be_bytes());
    out.extend_from_slice(s.encryption.as_bytes());
    out.extend_from_slice(&s.sector_size.to_be_bytes());
}

/// The segment carrying `flag` (id, segment); more than one is an error.
pub(crate) fn segment_by_flag<'a>(
    md: &'a Metadata,
    flag: &str,
) -> Result<Option<(u32, &'a Segment)>> {
    let mut found = md.segments.iter().filter(|(_, s)| s.has_flag(flag));
    let first = found.next().map(|(i, s)| (*i, s));
    if let Some((i, _)) = found.next() {
        return Err(Error::field(
            format!("segments.{i}.flags"),
            Problem::Invalid(format!("a second {flag} segment")),
        ));
    }
    Ok(first)
}

/// The digest id bound to segment `seg`.
pub(crate) fn digest_of_segment(md: &Metadata, seg: u32) -> Option<u32> {
    md.digests
        .iter()
        .find(|(_, d)| d.segments.contains(&seg))
        .map(|(i, _)| *i)
}

/// The old and new digest ids (of the `backup-previous` and `backup-final` segments).
pub(crate) fn backup_digests(md: &Metadata) -> Result<(Option<u32>, Option<u32>)> {
    let old = segment_by_flag(md, BACKUP_PREVIOUS)?.and_then(|(i, _)| digest_of_segment(md, i));
    let new = segment_by_flag(md, BACKUP_FINAL)?.and_then(|(i, _)| digest_of_segment(md, i));
    Ok((old, new))
}

/// The data the reencrypt digest is computed over: `'v'`, `'0' + version`, the old
/// volume key, the new one (when its digest differs), the reencrypt keyslot, then the
/// `backup-previous`, `backup-final` and (if any) `backup-moved-segment` segments.
pub(crate) fn verification_data(
    md: &Metadata,
    old_key: Option<&[u8]>,
    new_key: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |why: &str| Error::ReencryptUnauthenticated(why.to_string());
    let (_, ks) = md
        .reencrypt
        .as_ref()
        .ok_or_else(|| bad("no reencrypt keyslot"))?;
    let (d_old, d_new) = backup_digests(md)?;
    let mut out = Zeroizing::new(Vec::with_capacity(512));
    out.push(b'v');
    out.push(b'0' + VERSION);
    if d_old.is_some() {
        out.extend_from_slice(old_key.ok_or_else(|| bad("the old volume key is needed"))?);
    }
    if d_new.is_some() && d_new != d_old {
        out.extend_from_slice(new_key.ok_or_else(|| bad("the new volume key is needed"))?);
    }
    if out.len() == 2 {
        return Err(bad("no volume key digest for the backup segments"));
    }
    ks.serialize(&mut out);
    let prev =
        segment_by_flag(md, BACKUP_PREVIOUS)?.ok_or_else(|| bad("no backup-previous segment"))?;
    let fin = segment_by_flag(md, BACKUP_FINAL)?.ok_or_else(|| bad("no backup-final segment"))?;
    serialize_segment(prev.1, &mut out);
    serialize_segment(fin.1, &mut out);
    if let Some((_, m)) = segment_by_flag(md, BACKUP_MOVED)? {
        serialize_segment(m, &mut out);
    }
    Ok(out)
}

/// Checks the reencrypt digest with the volume keys: the state is refused unless a
/// digest bound to the reencrypt keyslot matches.
pub(crate) fn verify_digest(
    md: &Metadata,
    old_key: Option<&[u8]>,
    new_key: Option<&[u8]>,
) -> Result<()> {
    let (slot, _) = md.reencrypt.as_ref().ok_or(Error::NotInReencryption)?;
    let data = verification_data(md, old_key, new_key)?;
    let d = md
        .digests
        .values()
        .find(|d| d.keyslots.contains(slot))
        .ok_or_else(|| Error::ReencryptUnauthenticated("the reencrypt digest is missing".into()))?;
    crate::kdf::Kdf::pbkdf2_checked(d.hash, d.iterations as u64)?;
    let mut out = Zeroizing::new(vec![0u8; d.digest.len()]);
    d.hash.pbkdf2(&data, &d.salt, d.iterations, &mut out);
    if !device::ct_eq(&out, &d.digest) {
        return Err(Error::ReencryptUnauthenticated(
            "the reencrypt digest does not match the volume keys".into(),
        ));
    }
    Ok(())
}

/// Computes the reencrypt digest over the current state and binds it to the reencrypt
/// keyslot (replacing any previous one). `hash`/`iterations` as the volume digest's.
pub(crate) fn set_digest(
    md: &mut Metadata,
    old_key: Option<&[u8]>,
    new_key: Option<&[u8]>,
    hash: HashAlg,
    iterations: u32,
) -> Result<()> {
    let slot = md.reencrypt.as_ref().ok_or(Error::NotInReencryption)?.0;
    let data = verification_data(md, old_key, new_key)?;
    let salt = crate::random::random(32)?;
    let mut digest = vec![0u8; hash.output_len()];
    hash.pbkdf2(&data, &salt, iterations, &mut digest);
    md.digests.retain(|_, d| !d.keyslots.contains(&slot));
    let id = (0..).find(|i| !md.digests.contains_key(i)).unwrap_or(0);
    md.digests.insert(
        id,
        DigestEntry::new(vec![slot], vec![], hash, iterations, salt, digest),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The JSON of a volume just initialized for reencryption by cryptsetup 2.6
    /// (`reencrypt --init-only`), keyslot areas shortened.
    fn cryptsetup_state() -> Value {
        let ks = |off: &str| {
            json!({"type":"luks2","key_size":64,"af":{"type":"luks1","stripes":4000,"hash":"sha256"},
                "area":{"type":"raw","offset":off,"size":"258048","encryption":"aes-xts-plain64","key_size":64},
                "kdf":{"type":"pbkdf2","hash":"sha256","iterations":1000,"salt":"PIxX9MTHZIoBmp+KkKVQiRWJ70P+bdWyLv2Qm6myp5Y="}})
        };
        let seg = |flag: Option<&str>| {
            let mut s = json!({"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0",
                "encryption":"aes-xts-plain64","sector_size":4096});
            if let Some(f) = flag {
                s["flags"] = json!([f]);
            }
            s
        };
        let dg = |ks: &[&str], segs: &[&str]| {
            json!({"type":"pbkdf2","keyslots":ks,"segments":segs,"hash":"sha256","iterations":1000,
                "salt":"hdqVW4hWtBtJ/uQ9hZFWRAUWGTgt6shqObwOLz43Aq0=",
                "digest":"aiqYZWm4vd40e+FcSICSbQAYTWqu+OmpN8DnOuiHm2E="})
        };
        json!({
            "keyslots": {"0": ks("32768"), "2": ks("548864"),
                "3": {"area":{"offset":"806912","size":"15970304","type":"checksum","hash":"sha256","sector_size":4096},
                      "type":"reencrypt","key_size":1,"mode":"reencrypt","direction":"forward","priority":0}},
            "tokens": {},
            "segments": {"0": seg(None), "1": seg(Some(BACKUP_PREVIOUS)), "2": seg(Some(BACKUP_FINAL))},
            "digests": {"0": dg(&["0"], &["0", "1"]), "1": dg(&["2"], &["2"]), "2": dg(&["3"], &[])},
            "config": {"json_size":"12288","keyslots_size":"16744448","requirements":{"mandatory":[REQUIREMENT]}}
        })
    }

    fn parse(v: &Value) -> Result<Metadata> {
        let md = Metadata::from_value(v)?;
        md.validate(16384)?;
        Ok(md)
    }

    fn field_of(r: Result<Metadata>) -> String {
        match r {
            Err(Error::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn cryptsetups_state_parses_and_round_trips() {
        let v = cryptsetup_state();
        let md = parse(&v).unwrap();
        let (id, ks) = md.reencrypt.as_ref().unwrap();
        assert_eq!(*id, 3);
        assert_eq!(ks.mode, Mode::Reencrypt);
        assert_eq!(ks.direction, Direction::Forward);
        assert_eq!(
            ks.resilience,
            Resilience::Checksum {
                hash: HashAlg::Sha256,
                sector_size: 4096
            }
        );
        assert_eq!(md.keyslots.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(Metadata::from_value(&md.to_value()).unwrap(), md);
        assert_eq!(md.to_value()["keyslots"]["3"], v["keyslots"]["3"]);
        assert_eq!(md.to_value()["segments"], v["segments"]);
    }

    #[test]
    fn verification_data_is_laid_out_as_cryptsetups() {
        let md = parse(&cryptsetup_state()).unwrap();
        let old = [1u8; 64];
        let new = [2u8; 64];
        let d = verification_data(&md, Some(&old), Some(&new)).unwrap();
        let mut want = b"v2".to_vec();
        want.extend_from_slice(&old);
        want.extend_from_slice(&new);
        want.extend_from_slice(b"reencryptforwardchecksum");
        want.extend_from_slice(&806912u64.to_be_bytes());
        want.extend_from_slice(&15970304u64.to_be_bytes());
        want.extend_from_slice(b"sha256");
        want.extend_from_slice(&4096u32.to_be_bytes());
        for _ in 0..2 {
            want.extend_from_slice(b"crypt");
            want.extend_from_slice(&16777216u64.to_be_bytes());
            want.extend_from_slice(b"dynamic");
            want.extend_from_slice(&0u64.to_be_bytes());
            want.extend_from_slice(b"aes-xts-plain64");
            want.extend_from_slice(&4096u32.to_be_bytes());
        }
        assert_eq!(&d[..], &want[..]);
        // without the keys there is nothing to authenticate with
        assert!(matches!(
            verification_data(&md, None, Some(&new)),
            Err(Error::ReencryptUnauthenticated(_))
        ));
    }

    #[test]
    fn a_digest_set_here_verifies_and_any_change_breaks_it() {
        let mut md = parse(&cryptsetup_state()).unwrap();
        let (old, new) = ([1u8; 64], [2u8; 64]);
        set_digest(&mut md, Some(&old), Some(&new), HashAlg::Sha256, 1000).unwrap();
        verify_digest(&md, Some(&old), Some(&new)).unwrap();
        assert!(verify_digest(&md, Some(&new), Some(&old)).is_err());
        let mut forged = md.clone();
        forged.segments.get_mut(&2).unwrap().encryption = "aes-cbc-essiv:sha256".into();
        assert!(matches!(
            verify_digest(&forged, Some(&old), Some(&new)),
            Err(Error::ReencryptUnauthenticated(_))
        ));
        let mut forged = md.clone();
        forged.reencrypt.as_mut().unwrap().1.resilience = Resilience::None;
        assert!(verify_digest(&forged, Some(&old), Some(&new)).is_err());
        // the digest cryptsetup wrote is not for these keys
        let theirs = parse(&cryptsetup_state()).unwrap();
        assert!(verify_digest(&theirs, Some(&old), Some(&new)).is_err());
    }

    #[test]
    fn hostile_reencrypt_metadata_gets_typed_errors() {
        type Edit = fn(&mut Value);
        #[rustfmt::skip]
        let cases: Vec<(&str, Edit, &str)> = vec![
            ("key size", |v| v["keyslots"]["3"]["key_size"] = json!(2), "keyslots.3.key_size"),
            ("mode", |v| v["keyslots"]["3"]["mode"] = json!("rot13"), "keyslots.3.mode"),
            ("direction", |v| v["keyslots"]["3"]["direction"] = json!("sideways"), "keyslots.3.direction"),
            ("no mode", |v| { v["keyslots"]["3"].as_object_mut().unwrap().remove("mode"); }, "keyslots.3.mode"),
            ("area type", |v| v["keyslots"]["3"]["area"]["type"] = json!("raw"), "keyslots.3.area.type"),
            ("checksum block", |v| v["keyslots"]["3"]["area"]["sector_size"] = json!(1000), "keyslots.3.area.sector_size"),
            ("checksum hash", |v| v["keyslots"]["3"]["area"]["hash"] = json!("md5"), "keyslots.3.area.hash"),
            ("no hash", |v| { v["keyslots"]["3"]["area"].as_object_mut().unwrap().remove("hash"); }, "keyslots.3.area.hash"),
            ("shift", |v| v["keyslots"]["3"]["area"] = json!({"type":"datashift","offset":"806912","size":"4096","shift_size":"100"}), "keyslots.3.area.shift_size"),
            ("area outside", |v| v["keyslots"]["3"]["area"]["offset"] = json!("4096"), "keyslots.3.area.offset"),
            ("area overlaps", |v| v["keyslots"]["3"]["area"]["offset"] = json!("548864"), "keyslots.2.area.offset"),
            ("two reencrypt keyslots", |v| { let k = v["keyslots"]["3"].clone(); v["keyslots"]["4"] = k; }, "keyslots.4.type"),
            ("no requirement", |v| { v["config"].as_object_mut().unwrap().remove("requirements"); }, "keyslots.3"),
            ("backup first", |v| { let s = v["segments"]["0"].clone(); v["segments"]["0"] = v["segments"]["1"].clone(); v["segments"]["1"] = s; }, "segments.0.flags"),
            ("only backups", |v| { v["segments"]["0"]["flags"] = json!(["backup-moved-segment"]); }, "segments"),
            ("segment flags type", |v| v["segments"]["0"]["flags"] = json!("in-reencryption"), "segments.0.flags"),
            ("dangling digest", |v| v["digests"]["2"]["keyslots"] = json!(["9"]), "digests.2.keyslots"),
        ];
        for (name, f, field) in cases {
            let mut v = cryptsetup_state();
            f(&mut v);
            assert_eq!(field_of(parse(&v)), field, "{name}");
        }
        // flags of reencryption outside of one
        let mut v = cryptsetup_state();
        v["config"].as_object_mut().unwrap().remove("requirements");
        v["keyslots"].as_object_mut().unwrap().remove("3");
        v["digests"].as_object_mut().unwrap().remove("2");
        assert_eq!(field_of(parse(&v)), "segments.1.flags");
        v["segments"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k == "0");
        v["segments"]["0"]["flags"] = json!([IN_REENCRYPTION]);
        assert_eq!(field_of(parse(&v)), "segments.0.flags");
    }
}

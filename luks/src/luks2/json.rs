//! The LUKS2 JSON metadata: a typed, validated view that keeps every unknown
//! field (at every level) so a rewrite preserves what it does not understand.

pub use super::token::Token;
use crate::af::STRIPES;
use crate::error::{Error, Problem, Result};
use crate::hash::HashAlg;
use crate::kdf::{Argon2Variant, Kdf};
use crate::reencrypt::metadata::{ReencryptKeyslot, REQUIREMENT};
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest number of keyslots in LUKS2.
pub(crate) const MAX_KEYSLOTS: u32 = 32;
/// Largest number of tokens in LUKS2.
pub(crate) const MAX_TOKENS: u32 = 32;
/// Salt length of keyslots and digests.
pub(crate) const SALT_LEN: usize = 32;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A LUKS2 keyslot (`type: luks2`).
#[derive(Debug, Clone, PartialEq)]
pub struct Keyslot {
    /// Size of the key stored in the slot (the volume key), bytes.
    pub key_size: u32,
    /// AF stripes.
    pub stripes: u32,
    /// AF hash.
    pub af_hash: HashAlg,
    /// The area holding the encrypted AF material.
    pub area: Area,
    /// The KDF turning a passphrase into the area key.
    pub kdf: Kdf,
    /// KDF salt.
    pub salt: Vec<u8>,
    /// Priority (0 ignore, 1 normal, 2 high), if present.
    pub priority: Option<u64>,
    raw: Map<String, Value>,
}

/// A keyslot area (`type: raw`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// Byte offset on the device.
    pub offset: u64,
    /// Byte length.
    pub size: u64,
    /// Cipher spec, e.g. `aes-xts-plain64`.
    pub encryption: String,
    /// Area key size in bytes.
    pub key_size: u32,
}

/// A data segment (`type: crypt`).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Byte offset of the data.
    pub offset: u64,
    /// Byte size, `None` for `dynamic` (up to the end of the device).
    pub size: Option<u64>,
    /// Added to the IV (in 512-byte units).
    pub iv_tweak: u64,
    /// Cipher spec, e.g. `aes-xts-plain64`.
    pub encryption: String,
    /// Sector size in bytes (512..=4096, power of two).
    pub sector_size: u32,
    /// A `linear` segment: plaintext, no `encryption`, `sector_size` or `iv_tweak`.
    pub linear: bool,
    /// Segment flags (reencryption: `backup-previous`, `backup-final`,
    /// `backup-moved-segment`, `in-reencryption`).
    pub flags: Vec<String>,
    raw: Map<String, Value>,
}

/// A volume key digest (`type: pbkdf2`).
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEntry {
    /// Keyslots whose key this digest verifies.
    pub keyslots: Vec<u32>,
    /// Segments encrypted with that key.
    pub segments: Vec<u32>,
    /// PBKDF2 hash.
    pub hash: HashAlg,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// PBKDF2 salt.
    pub salt: Vec<u8>,
    /// The digest.
    pub digest: Vec<u8>,
    raw: Map<String, Value>,
}

/// The `config` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Size of the JSON area (`hdr_size - 4096`).
    pub json_size: u64,
    /// Size of the keyslots area following both metadata copies.
    pub keyslots_size: u64,
    /// Persistent flags (`allow-discards`, ...), kept as given.
    pub flags: Vec<String>,
    /// `requirements.mandatory`: empty, or `online-reencrypt-v2` while a reencryption is
    /// in progress (only [`crate::reencrypt`] acts on such a volume).
    pub mandatory: Vec<String>,
    raw: Map<String, Value>,
}

/// The whole LUKS2 JSON metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// Keyslots by id.
    pub keyslots: BTreeMap<u32, Keyslot>,
    /// Tokens by id.
    pub tokens: BTreeMap<u32, Token>,
    /// The reencrypt keyslot (id, keyslot), present exactly when the
    /// `online-reencrypt-v2` requirement is.
    pub reencrypt: Option<(u32, ReencryptKeyslot)>,
    /// Segments by id.
    pub segments: BTreeMap<u32, Segment>,
    /// Digests by id.
    pub digests: BTreeMap<u32, DigestEntry>,
    /// Config.
    pub config: Config,
    raw: Map<String, Value>,
}

// ---------- strict accessors ----------

pub(crate) fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::field(path, Problem::WrongType("object")))
}

fn get<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Value> {
    m.get(key)
        .ok_or_else(|| Error::field(format!("{path}.{key}"), Problem::Missing))
}

pub(super) fn get_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    get(m, key, path)?
        .as_str()
        .ok_or_else(|| Error::field(format!("{path}.{key}"), Problem::WrongType("string")))
}

/// Parses a decimal string as cryptsetup's `json_str_to_uint64` (digits only, no overflow).
pub(crate) fn parse_dec(s: &str, field: &str) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Error::field(field, Problem::NotDecimal));
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as u64))
            .ok_or_else(|| Error::field(field, Problem::Overflow))?;
    }
    Ok(v)
}

fn get_u64_str(m: &Map<String, Value>, key: &str, path: &str) -> Result<u64> {
    parse_dec(get_str(m, key, path)?, &format!("{path}.{key}"))
}

fn get_int(m: &Map<String, Value>, key: &str, path: &str) -> Result<u64> {
    let f = format!("{path}.{key}");
    let v = get(m, key, path)?;
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if n.is_i64() {
                Err(Error::field(f, Problem::Invalid("negative".into())))
            } else if n.is_f64() && n.as_f64().is_some_and(|x| x.fract() == 0.0) {
                Err(Error::field(f, Problem::Overflow))
            } else {
                Err(Error::field(f, Problem::WrongType("integer")))
            }
        }
        _ => Err(Error::field(f, Problem::WrongType("integer"))),
    }
}

fn get_u32(m: &Map<String, Value>, key: &str, path: &str) -> Result<u32> {
    let v = get_int(m, key, path)?;
    u32::try_from(v).map_err(|_| Error::field(format!("{path}.{key}"), Problem::Overflow))
}

fn get_b64(m: &Map<String, Value>, key: &str, path: &str) -> Result<Vec<u8>> {
    B64.decode(get_str(m, key, path)?).map_err(|_| {
        Error::field(
            format!("{path}.{key}"),
            Problem::Invalid("not base64".into()),
        )
    })
}

fn id(k: &str, path: &str, max: u32) -> Result<u32> {
    let f = format!("{path}.{k}");
    let v = parse_dec(k, &f)?;
    if v >= max as u64 || (k.len() > 1 && k.starts_with('0')) {
        return Err(Error::field(
            f,
            Problem::OutOfRange {
                min: 0,
                max: max as u64 - 1,
                found: v,
            },
        ));
    }
    Ok(v as u32)
}

pub(super) fn id_list(m: &Map<String, Value>, key: &str, path: &str, max: u32) -> Result<Vec<u32>> {
    let f = format!("{path}.{key}");
    let arr = get(m, key, path)?
        .as_array()
        .ok_or_else(|| Error::field(&f, Problem::WrongType("array")))?;
    arr.iter()
        .map(|v| {
            let s = v
                .as_str()
                .ok_or_else(|| Error::field(&f, Problem::WrongType("string")))?;
            id(s, &f, max)
        })
        .collect()
}

fn str_list(v: Option<&Value>, path: &str) -> Result<Vec<String>> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::field(path, Problem::WrongType("string")))
            })
            .collect(),
        Some(_) => Err(Error::field(path, Problem::WrongType("array"))),
    }
}

fn sub_obj(m: &Map<String, Value>, key: &str) -> Map<String, Value> {
    m.get(key)
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

// ---------- parsing ----------

impl Keyslot {
    fn parse(v: &Value, path: &str) -> Result<Keyslot> {
        let m = obj(v, path)?;
        let t = get_str(m, "type", path)?;
        if t != "luks2" {
            return Err(Error::field(
                format!("{path}.type"),
                Problem::Unsupported(t.into()),
            ));
        }
        let key_size = get_u32(m, "key_size", path)?;
        if !(1..=512).contains(&key_size) {
            return Err(Error::field(
                format!("{path}.key_size"),
                Problem::OutOfRange {
                    min: 1,
                    max: 512,
                    found: key_size as u64,
                },
            ));
        }
        let priority = match m.get("priority") {
            None => None,
            Some(_) => {
                let p = get_int(m, "priority", path)?;
                if p > 2 {
                    return Err(Error::field(
                        format!("{path}.priority"),
                        Problem::OutOfRange {
                            min: 0,
                            max: 2,
                            found: p,
                        },
                    ));
                }
                Some(p)
            }
        };
        let ap = format!("{path}.af");
        let af = obj(get(m, "af", path)?, &ap)?;
        let aft = get_str(af, "type", &ap)?;
        if aft != "luks1" {
            return Err(Error::field(
                format!("{ap}.type"),
                Problem::Unsupported(aft.into()),
            ));
        }
        let stripes = get_u32(af, "stripes", &ap)?;
        if stripes != STRIPES {
            return Err(Error::field(
                format!("{ap}.stripes"),
                Problem::OutOfRange {
                    min: STRIPES as u64,
                    max: STRIPES as u64,
                    found: stripes as u64,
                },
            ));
        }
        let af_hash = HashAlg::parse(get_str(af, "hash", &ap)?, &format!("{ap}.hash"))?;
        let rp = format!("{path}.area");
        let ar = obj(get(m, "area", path)?, &rp)?;
        let art = get_str(ar, "type", &rp)?;
        if art != "raw" {
            return Err(Error::field(
                format!("{rp}.type"),
                Problem::Unsupported(art.into()),
            ));
        }
        let area = Area {
            offset: get_u64_str(ar, "offset", &rp)?,
            size: get_u64_str(ar, "size", &rp)?,
            encryption: get_str(ar, "encryption", &rp)?.to_string(),
            key_size: get_u32(ar, "key_size", &rp)?,
        };
        if !(1..=512).contains(&area.key_size) {
            return Err(Error::field(
                format!("{rp}.key_size"),
                Problem::OutOfRange {
                    min: 1,
                    max: 512,
                    found: area.key_size as u64,
                },
            ));
        }
        let kp = format!("{path}.kdf");
        let k = obj(get(m, "kdf", path)?, &kp)?;
        let kt = get_str(k, "type", &kp)?;
        let kdf = match kt {
            "pbkdf2" => {
                let h = HashAlg::parse(get_str(k, "hash", &kp)?, &format!("{kp}.hash"))?;
                Kdf::pbkdf2_checked(h, get_int(k, "iterations", &kp)?)?
            }
            "argon2i" | "argon2id" => {
                let variant = if kt == "argon2i" {
                    Argon2Variant::Argon2i
                } else {
                    Argon2Variant::Argon2id
                };
                Kdf::argon2_checked(
                    variant,
                    get_int(k, "time", &kp)?,
                    get_int(k, "memory", &kp)?,
                    get_int(k, "cpus", &kp)?,
                )?
            }
            other => {
                return Err(Error::field(
                    format!("{kp}.type"),
                    Problem::Unsupported(other.into()),
                ))
            }
        };
        let salt = get_b64(k, "salt", &kp)?;
        if salt.len() != SALT_LEN {
            return Err(Error::field(
                format!("{kp}.salt"),
                Problem::Invalid(format!("{} bytes, expected {SALT_LEN}", salt.len())),
            ));
        }
        Ok(Keyslot {
            key_size,
            stripes,
            af_hash,
            area,
            kdf,
            salt,
            priority,
            raw: m.clone(),
        })
    }

    /// Builds a new keyslot (no unknown fields).
    pub fn new(key_size: u32, af_hash: HashAlg, area: Area, kdf: Kdf, salt: Vec<u8>) -> Keyslot {
        Keyslot {
            key_size,
            stripes: STRIPES,
            af_hash,
            area,
            kdf,
            salt,
            priority: None,
            raw: Map::new(),
        }
    }

    /// `new` with this keyslot's priority and unknown fields (a passphrase change keeps them).
    pub fn replaced_by(&self, new: Keyslot) -> Keyslot {
        Keyslot {
            priority: self.priority,
            raw: self.raw.clone(),
            ..new
        }
    }

    fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        m.insert("type".into(), "luks2".into());
        m.insert("key_size".into(), self.key_size.into());
        let mut af = sub_obj(&self.raw, "af");
        af.insert("type".into(), "luks1".into());
        af.insert("stripes".into(), self.stripes.into());
        af.insert("hash".into(), self.af_hash.name().into());
        m.insert("af".into(), Value::Object(af));
        let mut ar = sub_obj(&self.raw, "area");
        ar.insert("type".into(), "raw".into());
        ar.insert("offset".into(), self.area.offset.to_string().into());
        ar.insert("size".into(), self.area.size.to_string().into());
        ar.insert("encryption".into(), self.area.encryption.clone().into());
        ar.insert("key_size".into(), self.area.key_size.into());
        m.insert("area".into(), Value::Object(ar));
        let mut k = sub_obj(&self.raw, "kdf");
        for key in ["hash", "iterations", "time", "memory", "cpus"] {
            k.remove(key);
        }
        k.insert("type".into(), self.kdf.kind().name().into());
        match self.kdf {
            Kdf::Pbkdf2 { hash, iterations } => {
                k.insert("hash".into(), hash.name().into());
                k.insert("iterations".into(), iterations.into());
            }
            Kdf::Argon2 {
                time,
                memory_kib,
                parallel,
                ..
            } => {
                k.insert("time".into(), time.into());
                k.insert("memory".into(), memory_kib.into());
                k.insert("cpus".into(), parallel.into());
            }
        }
        k.insert("salt".into(), B64.encode(&self.salt).into());
        m.insert("kdf".into(), Value::Object(k));
        if let Some(p) = self.priority {
            m.insert("priority".into(), p.into());
        }
        Value::Object(m)
    }
}

impl Segment {
    fn parse(v: &Value, path: &str) -> Result<Segment> {
        let m = obj(v, path)?;
        let t = get_str(m, "type", path)?;
        if t == "linear" {
            return Self::parse_linear(m, path);
        }
        if t != "crypt" {
            return Err(Error::field(
                format!("{path}.type"),
                Problem::Unsupported(t.into()),
            ));
        }
        if m.contains_key("integrity") {
            return Err(Error::field(
                format!("{path}.integrity"),
                Problem::Unsupported("integrity".into()),
            ));
        }
        let sector_size = get_u32(m, "sector_size", path)?;
        if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(Error::field(
                format!("{path}.sector_size"),
                Problem::Unsupported(sector_size.to_string()),
            ));
        }
        let (offset, size) = Self::parse_extent(m, path, sector_size.into())?;
        let flags = str_list(m.get("flags"), &format!("{path}.flags"))?;
        Ok(Segment {
            offset,
            size,
            iv_tweak: get_u64_str(m, "iv_tweak", path)?,
            encryption: get_str(m, "encryption", path)?.to_string(),
            sector_size,
            linear: false,
            flags,
            raw: m.clone(),
        })
    }

    /// A segment's `offset` (512-byte aligned) and `size` (`None` for
    /// "dynamic", else a multiple of `size_align`).
    fn parse_extent(
        m: &Map<String, Value>,
        path: &str,
        size_align: u64,
    ) -> Result<(u64, Option<u64>)> {
        let offset = get_u64_str(m, "offset", path)?;
        if offset % 512 != 0 {
            return Err(Error::field(
                format!("{path}.offset"),
                Problem::Misaligned { align: 512 },
            ));
        }
        let size = match get_str(m, "size", path)? {
            "dynamic" => None,
            s => {
                let n = parse_dec(s, &format!("{path}.size"))?;
                if n % size_align != 0 {
                    return Err(Error::field(
                        format!("{path}.size"),
                        Problem::Misaligned { align: size_align },
                    ));
                }
                Some(n)
            }
        };
        Ok((offset, size))
    }

    /// A `linear` segment (plaintext: the end of a decryption, the start of an
    /// encryption): offset, size and flags only.
    fn parse_linear(m: &Map<String, Value>, path: &str) -> Result<Segment> {
        let (offset, size) = Self::parse_extent(m, path, 512)?;
        Ok(Segment {
            offset,
            size,
            iv_tweak: 0,
            encryption: String::new(),
            sector_size: 512,
            linear: true,
            flags: str_list(m.get("flags"), &format!("{path}.flags"))?,
            raw: m.clone(),
        })
    }

    /// A new `linear` (plaintext) segment.
    pub fn new_linear(offset: u64, size: Option<u64>) -> Segment {
        Segment {
            linear: true,
            ..Segment::new(offset, size, String::new(), 512)
        }
    }

    /// Builds a new crypt segment.
    pub fn new(offset: u64, size: Option<u64>, encryption: String, sector_size: u32) -> Segment {
        Segment {
            offset,
            size,
            iv_tweak: 0,
            encryption,
            sector_size,
            linear: false,
            flags: Vec::new(),
            raw: Map::new(),
        }
    }

    /// Whether the segment carries `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// A reencryption backup segment (`backup-*` flag): not part of the data mapping.
    pub fn is_backup(&self) -> bool {
        self.flags.iter().any(|f| f.starts_with("backup-"))
    }

    fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        m.insert(
            "type".into(),
            if self.linear { "linear" } else { "crypt" }.into(),
        );
        m.insert("offset".into(), self.offset.to_string().into());
        m.insert(
            "size".into(),
            self.size
                .map(|s| s.to_string())
                .unwrap_or_else(|| "dynamic".into())
                .into(),
        );
        if self.linear {
            for k in ["iv_tweak", "encryption", "sector_size"] {
                m.remove(k);
            }
        } else {
            m.insert("iv_tweak".into(), self.iv_tweak.to_string().into());
            m.insert("encryption".into(), self.encryption.clone().into());
            m.insert("sector_size".into(), self.sector_size.into());
        }
        if self.flags.is_empty() {
            m.remove("flags");
        } else {
            m.insert(
                "flags".into(),
                self.flags.iter().map(|f| Value::from(f.as_str())).collect(),
            );
        }
        Value::Object(m)
    }
}

impl DigestEntry {
    fn parse(v: &Value, path: &str) -> Result<DigestEntry> {
        let m = obj(v, path)?;
        let t = get_str(m, "type", path)?;
        if t != "pbkdf2" {
            return Err(Error::field(
                format!("{path}.type"),
                Problem::Unsupported(t.into()),
            ));
        }
        let hash = HashAlg::parse(get_str(m, "hash", path)?, &format!("{path}.hash"))?;
        let iterations = match Kdf::pbkdf2_checked(hash, get_int(m, "iterations", path)?)? {
            Kdf::Pbkdf2 { iterations, .. } => iterations,
            Kdf::Argon2 { .. } => 0,
        };
        let salt = get_b64(m, "salt", path)?;
        if salt.len() != SALT_LEN {
            return Err(Error::field(
                format!("{path}.salt"),
                Problem::Invalid(format!("{} bytes", salt.len())),
            ));
        }
        let digest = get_b64(m, "digest", path)?;
        if digest.len() != hash.output_len() {
            return Err(Error::field(
                format!("{path}.digest"),
                Problem::Invalid(format!("{} bytes for {hash}", digest.len())),
            ));
        }
        Ok(DigestEntry {
            keyslots: id_list(m, "keyslots", path, MAX_KEYSLOTS)?,
            segments: id_list(m, "segments", path, u32::MAX)?,
            hash,
            iterations,
            salt,
            digest,
            raw: m.clone(),
        })
    }

    /// Builds a new pbkdf2 digest.
    pub fn new(
        keyslots: Vec<u32>,
        segments: Vec<u32>,
        hash: HashAlg,
        iterations: u32,
        salt: Vec<u8>,
        digest: Vec<u8>,
    ) -> DigestEntry {
        DigestEntry {
            keyslots,
            segments,
            hash,
            iterations,
            salt,
            digest,
            raw: Map::new(),
        }
    }

    fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        m.insert("type".into(), "pbkdf2".into());
        m.insert(
            "keyslots".into(),
            self.keyslots
                .iter()
                .map(|k| Value::from(k.to_string()))
                .collect(),
        );
        m.insert(
            "segments".into(),
            self.segments
                .iter()
                .map(|k| Value::from(k.to_string()))
                .collect(),
        );
        m.insert("hash".into(), self.hash.name().into());
        m.insert("iterations".into(), self.iterations.into());
        m.insert("salt".into(), B64.encode(&self.salt).into());
        m.insert("digest".into(), B64.encode(&self.digest).into());
        Value::Object(m)
    }
}

impl Config {
    fn parse(v: &Value) -> Result<Config> {
        let path = "config";
        let m = obj(v, path)?;
        let flags = str_list(m.get("flags"), "config.flags")?;
        let mandatory = match m.get("requirements") {
            None => Vec::new(),
            Some(r) => {
                let r = obj(r, "config.requirements")?;
                str_list(r.get("mandatory"), "config.requirements.mandatory")?
            }
        };
        Ok(Config {
            json_size: get_u64_str(m, "json_size", path)?,
            keyslots_size: get_u64_str(m, "keyslots_size", path)?,
            flags,
            mandatory,
            raw: m.clone(),
        })
    }

    /// Builds a new config.
    pub fn new(json_size: u64, keyslots_size: u64) -> Config {
        Config {
            json_size,
            keyslots_size,
            flags: Vec::new(),
            mandatory: Vec::new(),
            raw: Map::new(),
        }
    }

    fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        m.insert("json_size".into(), self.json_size.to_string().into());
        m.insert(
            "keyslots_size".into(),
            self.keyslots_size.to_string().into(),
        );
        if !self.flags.is_empty() || m.contains_key("flags") {
            m.insert(
                "flags".into(),
                self.flags.iter().map(|f| Value::from(f.as_str())).collect(),
            );
        }
        let mut req = sub_obj(&self.raw, "requirements");
        if self.mandatory.is_empty() {
            if req.remove("mandatory").is_some() {
                if req.is_empty() {
                    m.remove("requirements");
                } else {
                    m.insert("requirements".into(), Value::Object(req));
                }
            }
        } else {
            req.insert(
                "mandatory".into(),
                self.mandatory
                    .iter()
                    .map(|f| Value::from(f.as_str()))
                    .collect(),
            );
            m.insert("requirements".into(), Value::Object(req));
        }
        Value::Object(m)
    }
}

/// Splits the JSON area: the text up to the first NUL, which must be
/// followed only by NULs, and must start with `{`.
pub fn json_text(area: &[u8]) -> Result<&[u8]> {
    let nul = area
        .iter()
        .position(|&c| c == 0)
        .ok_or(Error::JsonNotTerminated)?;
    if area[nul..].iter().any(|&c| c != 0) {
        return Err(Error::JsonTrailingData);
    }
    let text = &area[..nul];
    if text.first() != Some(&b'{') {
        return Err(Error::Json("does not start with '{'".into()));
    }
    Ok(text)
}

impl Metadata {
    /// Parses and validates the JSON area of a copy of size `hdr_size`.
    pub fn parse_area(area: &[u8], hdr_size: u64) -> Result<Metadata> {
        let text = json_text(area)?;
        let v: Value = serde_json::from_slice(text).map_err(|e| Error::Json(e.to_string()))?;
        let md = Metadata::from_value(&v)?;
        md.validate(hdr_size)?;
        Ok(md)
    }

    /// Builds the typed view of a JSON document (without the layout checks of [`Metadata::validate`]).
    pub fn from_value(v: &Value) -> Result<Metadata> {
        let root = obj(v, "(root)")?;
        // requirements first: never interpret what we do not understand
        let config = Config::parse(get(root, "config", "(root)")?)?;
        // the one requirement understood: reencryption in progress (its keyslot is read
        // below; acting on the volume is refused elsewhere unless resuming it)
        if let Some(r) = config.mandatory.iter().find(|r| r.as_str() != REQUIREMENT) {
            return Err(Error::UnknownRequirement(r.clone()));
        }
        let mut keyslots = BTreeMap::new();
        let mut reencrypt = None;
        for (k, v) in obj(get(root, "keyslots", "(root)")?, "keyslots")? {
            let i = id(k, "keyslots", MAX_KEYSLOTS)?;
            let path = format!("keyslots.{k}");
            let is_reencrypt = v
                .as_object()
                .and_then(|m| m.get("type"))
                .and_then(Value::as_str)
                == Some("reencrypt");
            if is_reencrypt {
                if reencrypt.is_some() {
                    return Err(Error::field(
                        format!("{path}.type"),
                        Problem::Invalid("a second reencrypt keyslot".into()),
                    ));
                }
                reencrypt = Some((i, ReencryptKeyslot::parse(v, &path)?));
            } else {
                keyslots.insert(i, Keyslot::parse(v, &path)?);
            }
        }
        match (&reencrypt, config.mandatory.is_empty()) {
            (Some((i, _)), true) => {
                return Err(Error::field(
                    format!("keyslots.{i}"),
                    Problem::Invalid(format!(
                        "reencrypt keyslot without the {REQUIREMENT} requirement"
                    )),
                ))
            }
            (None, false) => {
                return Err(Error::field(
                    "config.requirements.mandatory",
                    Problem::Invalid(format!("{REQUIREMENT} without a reencrypt keyslot")),
                ))
            }
            _ => {}
        }
        let mut tokens = BTreeMap::new();
        for (k, v) in obj(get(root, "tokens", "(root)")?, "tokens")? {
            let i = id(k, "tokens", MAX_TOKENS)?;
            tokens.insert(i, Token::parse(v, &format!("tokens.{k}"))?);
        }
        let mut segments = BTreeMap::new();
        for (k, v) in obj(get(root, "segments", "(root)")?, "segments")? {
            let i = id(k, "segments", u32::MAX)?;
            segments.insert(i, Segment::parse(v, &format!("segments.{k}"))?);
        }
        let mut digests = BTreeMap::new();
        for (k, v) in obj(get(root, "digests", "(root)")?, "digests")? {
            let i = id(k, "digests", u32::MAX)?;
            digests.insert(i, DigestEntry::parse(v, &format!("digests.{k}"))?);
        }
        Ok(Metadata {
            keyslots,
            reencrypt,
            tokens,
            segments,
            digests,
            config,
            raw: root.clone(),
        })
    }

    /// Builds new metadata from parts.
    pub fn new(config: Config) -> Metadata {
        Metadata {
            keyslots: BTreeMap::new(),
            reencrypt: None,
            tokens: BTreeMap::new(),
            segments: BTreeMap::new(),
            digests: BTreeMap::new(),
            config,
            raw: Map::new(),
        }
    }

    /// Start of the keyslots area (after both metadata copies).
    pub fn keyslots_area_start(hdr_size: u64) -> u64 {
        2 * hdr_size
    }

    /// The JSON document, with unknown fields kept.
    pub fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        let mut ks: Map<String, Value> = self
            .keyslots
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_value()))
            .collect();
        if let Some((i, r)) = &self.reencrypt {
            ks.insert(i.to_string(), r.to_value());
        }
        let tk: Map<String, Value> = self
            .tokens
            .iter()
            .map(|(k, t)| (k.to_string(), t.to_value()))
            .collect();
        let sg: Map<String, Value> = self
            .segments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_value()))
            .collect();
        let dg: Map<String, Value> = self
            .digests
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_value()))
            .collect();
        m.insert("keyslots".into(), Value::Object(ks));
        m.insert("tokens".into(), Value::Object(tk));
        m.insert("segments".into(), Value::Object(sg));
        m.insert("digests".into(), Value::Object(dg));
        m.insert("config".into(), self.config.to_value());
        Value::Object(m)
    }

    /// Serializes into a JSON area of `area_len` bytes (JSON then NULs).
    pub fn to_area(&self, area_len: u64) -> Result<Vec<u8>> {
        let text = serde_json::to_vec(&self.to_value()).map_err(|e| Error::Json(e.to_string()))?;
        if text.len() as u64 >= area_len {
            return Err(Error::JsonTooLarge {
                len: text.len(),
                area: area_len,
            });
        }
        let mut area = vec![0u8; area_len as usize];
        area[..text.len()].copy_from_slice(&text);
        Ok(area)
    }
}

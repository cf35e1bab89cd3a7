//! `luksDump`: a structured summary, a human text, and (LUKS2) the JSON.

use crate::header::Hdr;
use crate::kdf::Kdf;
use crate::volume::Volume;
use serde_json::Value;
use std::fmt::Write;

/// One keyslot in a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyslotDump {
    /// Keyslot number.
    pub id: u32,
    /// Key size in bits.
    pub key_size_bits: u32,
    /// KDF parameters.
    pub kdf: Kdf,
    /// Area offset in bytes.
    pub area_offset: u64,
    /// Area length in bytes.
    pub area_size: u64,
    /// Area cipher.
    pub area_cipher: String,
    /// LUKS2 priority.
    pub priority: Option<u64>,
}

/// The result of [`Volume::dump`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dump {
    /// 1 or 2.
    pub version: u8,
    /// UUID.
    pub uuid: String,
    /// Label (LUKS2).
    pub label: String,
    /// Subsystem (LUKS2).
    pub subsystem: String,
    /// Sequence id (LUKS2).
    pub seqid: u64,
    /// Metadata copy size (LUKS2).
    pub hdr_size: u64,
    /// Keyslots area size (LUKS2).
    pub keyslots_size: u64,
    /// Data cipher.
    pub cipher: String,
    /// Volume key size in bits.
    pub key_size_bits: u32,
    /// Data offset in bytes.
    pub data_offset: u64,
    /// Data size, `None` if dynamic.
    pub data_size: Option<u64>,
    /// Sector size.
    pub sector_size: u32,
    /// Hash of the digest (LUKS1 hash spec).
    pub hash: String,
    /// Active keyslots.
    pub keyslots: Vec<KeyslotDump>,
    /// Tokens (id, type, keyslots).
    pub tokens: Vec<(u32, String, Vec<u32>)>,
    /// Persistent flags (LUKS2).
    pub flags: Vec<String>,
    /// The LUKS2 JSON metadata.
    pub json: Option<Value>,
}

fn kdf_text(k: &Kdf, out: &mut String) {
    match k {
        Kdf::Pbkdf2 { hash, iterations } => {
            let _ = writeln!(
                out,
                "\tPBKDF:      pbkdf2\n\tHash:       {hash}\n\tIterations: {iterations}"
            );
        }
        Kdf::Argon2 {
            time,
            memory_kib,
            parallel,
            ..
        } => {
            let _ = writeln!(
                out,
                "\tPBKDF:      {}\n\tTime cost:  {time}\n\tMemory:     {memory_kib}\n\tThreads:    {parallel}",
                k.kind().name()
            );
        }
    }
}

impl Dump {
    /// A text close to `cryptsetup luksDump`.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "LUKS header information\nVersion:       \t{}",
            self.version
        );
        if self.version == 2 {
            let _ = writeln!(o, "Epoch:         \t{}", self.seqid);
            let _ = writeln!(o, "Metadata area: \t{} [bytes]", self.hdr_size);
            let _ = writeln!(o, "Keyslots area: \t{} [bytes]", self.keyslots_size);
        }
        let _ = writeln!(o, "UUID:          \t{}", self.uuid);
        if self.version == 2 {
            let label = if self.label.is_empty() {
                "(no label)"
            } else {
                &self.label
            };
            let sub = if self.subsystem.is_empty() {
                "(no subsystem)"
            } else {
                &self.subsystem
            };
            let _ = writeln!(o, "Label:         \t{label}\nSubsystem:     \t{sub}");
            let flags = if self.flags.is_empty() {
                "(no flags)".to_string()
            } else {
                self.flags.join(" ")
            };
            let _ = writeln!(o, "Flags:       \t{flags}");
        }
        let _ = writeln!(o, "\nData segments:\n  0: crypt");
        let _ = writeln!(o, "\toffset: {} [bytes]", self.data_offset);
        match self.data_size {
            Some(s) => {
                let _ = writeln!(o, "\tlength: {s} [bytes]");
            }
            None => {
                let _ = writeln!(o, "\tlength: (whole device)");
            }
        }
        let _ = writeln!(
            o,
            "\tcipher: {}\n\tsector: {} [bytes]",
            self.cipher, self.sector_size
        );
        let _ = writeln!(
            o,
            "\tkey:    {} bits\n\thash:   {}",
            self.key_size_bits, self.hash
        );
        let _ = writeln!(o, "\nKeyslots:");
        for k in &self.keyslots {
            let kind = if self.version == 2 {
                "luks2"
            } else {
                "ENABLED"
            };
            let _ = writeln!(
                o,
                "  {}: {kind}\n\tKey:        {} bits",
                k.id, k.key_size_bits
            );
            if let Some(p) = k.priority {
                let _ = writeln!(o, "\tPriority:   {p}");
            }
            let _ = writeln!(o, "\tCipher:     {}", k.area_cipher);
            kdf_text(&k.kdf, &mut o);
            let _ = writeln!(
                o,
                "\tArea offset:{} [bytes]\n\tArea length:{} [bytes]",
                k.area_offset, k.area_size
            );
        }
        if self.version == 2 {
            let _ = writeln!(o, "Tokens:");
        }
        for (id, t, ks) in &self.tokens {
            let ks: Vec<String> = ks.iter().map(u32::to_string).collect();
            let _ = writeln!(o, "  {id}: {t}\n\tKeyslot:    {}", ks.join(" "));
        }
        o
    }
}

impl Volume {
    /// `luksDump` (no secrets).
    pub fn dump(&self) -> Dump {
        match &self.hdr {
            Hdr::V1(h) => Dump {
                version: 1,
                uuid: h.uuid.clone(),
                label: String::new(),
                subsystem: String::new(),
                seqid: 0,
                hdr_size: crate::luks1::HEADER_LEN as u64,
                keyslots_size: 0,
                cipher: format!("{}-{}", h.cipher_name, h.cipher_mode),
                key_size_bits: h.key_bytes * 8,
                data_offset: h.payload_offset as u64 * 512,
                data_size: None,
                sector_size: 512,
                hash: h.hash.name().into(),
                keyslots: h
                    .keyslots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.active)
                    .map(|(i, s)| KeyslotDump {
                        id: i as u32,
                        key_size_bits: h.key_bytes * 8,
                        kdf: Kdf::Pbkdf2 {
                            hash: h.hash,
                            iterations: s.iterations,
                        },
                        area_offset: s.key_material_offset as u64 * 512,
                        area_size: crate::luks1::material_sectors(h.key_bytes, s.stripes) * 512,
                        area_cipher: format!("{}-{}", h.cipher_name, h.cipher_mode),
                        priority: None,
                    })
                    .collect(),
                tokens: Vec::new(),
                flags: Vec::new(),
                json: None,
            },
            Hdr::V2(l) => {
                let seg = l.md.segments.get(&0);
                Dump {
                    version: 2,
                    uuid: l.bin.uuid.clone(),
                    label: l.bin.label.clone(),
                    subsystem: l.bin.subsystem.clone(),
                    seqid: l.bin.seqid,
                    hdr_size: l.bin.hdr_size,
                    keyslots_size: l.md.config.keyslots_size,
                    cipher: seg.map(|s| s.encryption.clone()).unwrap_or_default(),
                    key_size_bits: l
                        .md
                        .keyslots
                        .values()
                        .next()
                        .map(|k| k.key_size * 8)
                        .unwrap_or(0),
                    data_offset: seg.map(|s| s.offset).unwrap_or(0),
                    data_size: seg.and_then(|s| s.size),
                    sector_size: seg.map(|s| s.sector_size).unwrap_or(512),
                    hash: l
                        .md
                        .digests
                        .values()
                        .next()
                        .map(|d| d.hash.name().to_string())
                        .unwrap_or_default(),
                    keyslots: l
                        .md
                        .keyslots
                        .iter()
                        .map(|(i, k)| KeyslotDump {
                            id: *i,
                            key_size_bits: k.key_size * 8,
                            kdf: k.kdf,
                            area_offset: k.area.offset,
                            area_size: k.area.size,
                            area_cipher: k.area.encryption.clone(),
                            priority: k.priority,
                        })
                        .collect(),
                    tokens: l
                        .md
                        .tokens
                        .iter()
                        .map(|(i, t)| (*i, t.token_type.clone(), t.keyslots.clone()))
                        .collect(),
                    flags: l.md.config.flags.clone(),
                    json: Some(l.md.to_value()),
                }
            }
        }
    }
}

//! The store's keys and sealing (format version 2): the header with the
//! key-check value, per-entry AES-256-GCM keys, associated data, and the
//! keyed index tags that let SQL filter by kind and name without storing
//! them in clear.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use keymgr_core::{Consumer, OffsetDateTime, Payload, SecretKind};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codec::{put_opt, put_short, put_str, Reader};
use crate::master::{Argon2Params, MasterKey};
use crate::v1::{self, DeriveError, Kdf, SALT_LEN};

/// The format version of the SQLite store.
pub(crate) const VERSION: u16 = 2;
/// Length of the header blob in the `meta` table.
pub(crate) const HEADER_LEN: usize = 2 + 1 + 12 + SALT_LEN + 32 + 32;
/// Length of an index tag (kind, name, consumer).
pub(crate) const TAG_LEN: usize = 16;
/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;

const INFO_CHECK: &[u8] = b"keymgr-mock/v2/check";
const INFO_ENTRY: &[u8] = b"keymgr-mock/v2/entry";
const INFO_INDEX: &[u8] = b"keymgr-mock/v2/index";
const AAD_SECRET: &[u8] = b"keymgr-mock/v2/secret";
const AAD_CONSUMER: &[u8] = b"keymgr-mock/v2/consumer";
const RECORD_VERSION: u8 = 2;

/// The header kept in the store's `meta` table: how the master key is
/// derived, the salt, the key-check value, and a SHA-256 of the rest (so
/// a damaged header is reported as damage, not as a wrong key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub kdf: Kdf,
    pub salt: [u8; SALT_LEN],
    pub kcv: [u8; 32],
}

/// Why a header blob was refused.
pub(crate) enum HeaderError {
    /// Another format version.
    Version(u16),
    /// Out-of-bounds Argon2 costs.
    Params(String),
    /// Damaged.
    Corrupt(&'static str),
}

impl Header {
    /// The blob stored in `meta`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&VERSION.to_le_bytes());
        let (kdf, params) = match self.kdf {
            Kdf::KeyFile => (1u8, [0u32; 3]),
            Kdf::Argon2id(p) => (2u8, [p.memory_kib, p.iterations, p.parallelism]),
        };
        h.push(kdf);
        for p in params {
            h.extend_from_slice(&p.to_le_bytes());
        }
        h.extend_from_slice(&self.salt);
        h.extend_from_slice(&self.kcv);
        let sum = Sha256::digest(&h);
        h.extend_from_slice(&sum);
        h
    }

    /// Parses and checks a header blob (no key needed).
    pub(crate) fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        let mut r = Reader::new(b);
        let short = HeaderError::Corrupt("short header");
        let version = r.u16().ok_or(HeaderError::Corrupt("short header"))?;
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        if b.len() != HEADER_LEN {
            return Err(HeaderError::Corrupt("header of the wrong length"));
        }
        if Sha256::digest(&b[..HEADER_LEN - 32]).as_slice() != &b[HEADER_LEN - 32..] {
            return Err(HeaderError::Corrupt(
                "the header checksum does not match (damaged header)",
            ));
        }
        let kdf = r.u8().ok_or(short)?;
        let p = [
            r.u32().ok_or(HeaderError::Corrupt("short header"))?,
            r.u32().ok_or(HeaderError::Corrupt("short header"))?,
            r.u32().ok_or(HeaderError::Corrupt("short header"))?,
        ];
        let salt = r.array().ok_or(HeaderError::Corrupt("short header"))?;
        let kcv = r.array().ok_or(HeaderError::Corrupt("short header"))?;
        let kdf = match kdf {
            1 if p == [0; 3] => Kdf::KeyFile,
            1 => return Err(HeaderError::Corrupt("key-file store with argon2 costs")),
            2 => {
                let params = Argon2Params {
                    memory_kib: p[0],
                    iterations: p[1],
                    parallelism: p[2],
                };
                params.validate().map_err(HeaderError::Params)?;
                Kdf::Argon2id(params)
            }
            _ => return Err(HeaderError::Corrupt("unknown key derivation")),
        };
        Ok(Header { kdf, salt, kcv })
    }
}

/// The keys of one store, derived from the master key and the store's salt.
pub(crate) struct Keys {
    salt: [u8; SALT_LEN],
    prk: Zeroizing<[u8; 32]>,
    index: Zeroizing<[u8; 32]>,
    /// The key-check value: `HKDF-Expand(prk, "keymgr-mock/v2/check")`.
    pub kcv: [u8; 32],
}

impl Keys {
    /// Derives the keys of a store with this kdf and salt (Argon2id runs
    /// here for a passphrase).
    pub(crate) fn derive(
        master: &MasterKey,
        kdf: Kdf,
        salt: [u8; SALT_LEN],
    ) -> Result<Keys, DeriveError> {
        let k1 = v1::Keys::derive(master, kdf, salt)?;
        Ok(Keys::from_prk(k1.prk(), salt))
    }

    /// The keys from an HKDF pseudo-random key (the same one the version-1
    /// file of this salt and master key had, so migration derives once).
    pub(crate) fn from_prk(prk: &[u8; 32], salt: [u8; SALT_LEN]) -> Keys {
        let hk = Hkdf::<Sha256>::from_prk(prk).expect("a 32-byte PRK is valid");
        let mut kcv = [0u8; 32];
        let mut index = Zeroizing::new([0u8; 32]);
        hk.expand(INFO_CHECK, &mut kcv)
            .and_then(|_| hk.expand(INFO_INDEX, index.as_mut()))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Keys {
            salt,
            prk: Zeroizing::new(*prk),
            index,
            kcv,
        }
    }

    /// Whether `kcv` (from a header) is this key's, in constant time.
    pub(crate) fn check(&self, kcv: &[u8; 32]) -> bool {
        self.kcv
            .iter()
            .zip(kcv.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// The AES-256-GCM cipher of secret `id`:
    /// `HKDF-Expand(prk, "keymgr-mock/v2/entry" || id)`.
    fn entry_cipher(&self, id: &str) -> Aes256Gcm {
        let hk = Hkdf::<Sha256>::from_prk(self.prk.as_ref()).expect("a 32-byte PRK is valid");
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[INFO_ENTRY, id.as_bytes()], key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Aes256Gcm::new_from_slice(key.as_ref()).expect("AES-256 takes a 32-byte key")
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.index.as_ref())
            .expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u32).to_le_bytes());
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        t
    }

    /// The index tag of a kind within a project.
    pub(crate) fn kind_tag(&self, project: &str, kind: SecretKind) -> [u8; TAG_LEN] {
        self.tag(&[b"kind", project.as_bytes(), kind.as_str().as_bytes()])
    }

    /// The index tag of a name within a project.
    pub(crate) fn name_tag(&self, project: &str, name: &str) -> [u8; TAG_LEN] {
        self.tag(&[b"name", project.as_bytes(), name.as_bytes()])
    }

    /// The index tag of a consumer of secret `id` (unique per secret).
    pub(crate) fn consumer_tag(&self, id: &str, c: &Consumer) -> [u8; TAG_LEN] {
        self.tag(&[
            b"consumer",
            id.as_bytes(),
            c.service.as_bytes(),
            c.resource_type.as_bytes(),
            c.resource_id.as_bytes(),
        ])
    }

    /// Seals `plaintext` for row `row` with a fresh random nonce.
    pub(crate) fn seal(
        &self,
        row: &RowAad<'_>,
        plaintext: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("random source: {e}"))?;
        let ct = self
            .entry_cipher(row.id())
            .encrypt(
                &nonce.into(),
                aes_gcm::aead::Payload {
                    msg: plaintext,
                    aad: &row.bytes(&self.salt),
                },
            )
            .map_err(|_| "entry too large to encrypt".to_string())?;
        Ok((nonce, ct))
    }

    /// Opens a row sealed by [`Keys::seal`]; `None` when it does not
    /// authenticate (damaged, altered, or moved to another row).
    pub(crate) fn open(
        &self,
        row: &RowAad<'_>,
        nonce: &[u8],
        ct: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.entry_cipher(row.id())
            .decrypt(
                &nonce.into(),
                aes_gcm::aead::Payload {
                    msg: ct,
                    aad: &row.bytes(&self.salt),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// What a row's ciphertext is bound to (its associated data): the store's
/// salt, the secret's id and project, and the row's clear columns.
pub(crate) enum RowAad<'a> {
    /// A row of `secrets`.
    Secret {
        /// The secret id (its text form).
        id: &'a str,
        /// The owning project.
        project: &'a str,
        /// Creation order.
        seq: i64,
        /// The clear expiration column.
        expires: Option<i64>,
        /// The kind tag.
        kind_tag: &'a [u8],
        /// The name tag.
        name_tag: Option<&'a [u8]>,
    },
    /// A row of `consumers`.
    Consumer {
        /// The secret id.
        id: &'a str,
        /// The owning project.
        project: &'a str,
        /// The consumer tag.
        tag: &'a [u8],
    },
}

impl RowAad<'_> {
    fn id(&self) -> &str {
        match self {
            RowAad::Secret { id, .. } | RowAad::Consumer { id, .. } => id,
        }
    }

    fn bytes(&self, salt: &[u8; SALT_LEN]) -> Vec<u8> {
        let mut a = Vec::with_capacity(160);
        match self {
            RowAad::Secret {
                id,
                project,
                seq,
                expires,
                kind_tag,
                name_tag,
            } => {
                a.extend_from_slice(AAD_SECRET);
                a.extend_from_slice(salt);
                put_short(&mut a, id.as_bytes());
                put_short(&mut a, project.as_bytes());
                a.extend_from_slice(&seq.to_le_bytes());
                put_opt(&mut a, *expires, |o, e| {
                    o.extend_from_slice(&e.to_le_bytes())
                });
                put_short(&mut a, kind_tag);
                put_opt(&mut a, *name_tag, put_short);
            }
            RowAad::Consumer { id, project, tag } => {
                a.extend_from_slice(AAD_CONSUMER);
                a.extend_from_slice(salt);
                put_short(&mut a, id.as_bytes());
                put_short(&mut a, project.as_bytes());
                put_short(&mut a, tag);
            }
        }
        a
    }
}

/// The sealed part of a secret: everything but id, project and consumers.
pub(crate) struct Entry {
    pub kind: SecretKind,
    pub created: Option<OffsetDateTime>,
    pub expiration: Option<OffsetDateTime>,
    pub name: Option<String>,
    pub algorithm: Option<String>,
    pub bit_length: Option<u32>,
    pub mode: Option<String>,
    pub payload: Payload,
}

fn kind_code(kind: SecretKind) -> u8 {
    SecretKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in SecretKind::ALL") as u8
}

impl Entry {
    /// The plaintext, in a buffer sized exactly (never reallocated, so no
    /// unzeroized copy is left behind).
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let opt_str = |s: &Option<String>| 1 + s.as_ref().map_or(0, |s| 4 + s.len());
        let size = 2
            + 2 * 17
            + opt_str(&self.name)
            + opt_str(&self.algorithm)
            + 5
            + opt_str(&self.mode)
            + 4
            + self.payload.len();
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        out.push(RECORD_VERSION);
        out.push(kind_code(self.kind));
        let time = |o: &mut Vec<u8>, t: OffsetDateTime| {
            o.extend_from_slice(&t.unix_timestamp_nanos().to_le_bytes())
        };
        put_opt(&mut out, self.created, time);
        put_opt(&mut out, self.expiration, time);
        put_opt(&mut out, self.name.as_deref(), put_str);
        put_opt(&mut out, self.algorithm.as_deref(), put_str);
        put_opt(&mut out, self.bit_length, |o, b| {
            o.extend_from_slice(&b.to_le_bytes())
        });
        put_opt(&mut out, self.mode.as_deref(), put_str);
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(self.payload.expose());
        debug_assert!(out.len() <= size);
        out
    }

    /// Parses a plaintext; `None` when malformed.
    pub(crate) fn decode(pt: &[u8]) -> Option<Entry> {
        let mut r = Reader::new(pt);
        if r.u8()? != RECORD_VERSION {
            return None;
        }
        let kind = *SecretKind::ALL.get(r.u8()? as usize)?;
        let time = |r: &mut Reader<'_>| OffsetDateTime::from_unix_timestamp_nanos(r.i128()?).ok();
        let created = r.opt(time)?;
        let expiration = r.opt(time)?;
        let name = r.opt(Reader::string)?;
        let algorithm = r.opt(Reader::string)?;
        let bit_length = r.opt(Reader::u32)?;
        let mode = r.opt(Reader::string)?;
        let payload = Payload::copy_from(r.bytes32()?);
        if r.remaining() != 0 {
            return None;
        }
        Some(Entry {
            kind,
            created,
            expiration,
            name,
            algorithm,
            bit_length,
            mode,
            payload,
        })
    }
}

/// The plaintext of a consumer row.
pub(crate) fn encode_consumer(c: &Consumer) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, &c.service);
    put_str(&mut out, &c.resource_type);
    put_str(&mut out, &c.resource_id);
    out
}

/// Parses a consumer plaintext; `None` when malformed.
pub(crate) fn decode_consumer(pt: &[u8]) -> Option<Consumer> {
    let mut r = Reader::new(pt);
    let c = Consumer {
        service: r.string()?,
        resource_type: r.string()?,
        resource_id: r.string()?,
    };
    (r.remaining() == 0).then_some(c)
}

/// A timestamp as the clear `expires` column: Unix nanoseconds, clamped
/// to the i64 range (years 1677..2262).
pub(crate) fn expires_column(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    n.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A fresh random salt.
pub(crate) fn new_salt() -> Result<[u8; SALT_LEN], String> {
    let mut b = [0u8; SALT_LEN];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    Ok(b)
}

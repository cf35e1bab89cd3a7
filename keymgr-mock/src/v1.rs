//! The version-1 sealed-file format (one file, `KMGRSEAL`), read only to
//! migrate it: parsing and authentication, no file system calls.
//!
//! ```text
//! header (132 bytes, integers little-endian)
//!   0  magic "KMGRSEAL"
//!   8  u16 format version (1)
//!  10  u8  kdf: 1 = key file, 2 = Argon2id passphrase
//!  11  u8  reserved (0)
//!  12  u32 argon2 memory KiB, u32 iterations, u32 parallelism (0 for a key file)
//!  24  16 bytes salt
//!  40  u64 generation, 48 u64 next creation sequence number
//!  56  u32 entry count, 60 u64 file length
//!  68  32 bytes key check value: HKDF-Expand(prk, "keymgr-mock/v1/check")
//! 100  32 bytes SHA-256 of bytes 0..100
//! entries: 16 bytes id, u16 project length, project, 12 bytes nonce,
//!   u32 ciphertext length, AES-256-GCM ciphertext
//! trailer: HMAC-SHA256(HKDF-Expand(prk, "keymgr-mock/v1/mac"), every byte before it)
//! ```

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use keymgr_core::{Consumer, OffsetDateTime, Payload, SecretId, SecretKind, SecretMetadata};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codec::Reader;
#[cfg(test)]
use crate::codec::{put_opt, put_str};
use crate::master::{Argon2Params, MasterKey, Source, MASTER_KEY_LEN};
use crate::store::{Record, Store};
use crate::SealedError;

/// The file's magic bytes.
pub(crate) const MAGIC: &[u8; 8] = b"KMGRSEAL";
/// The format version written and read.
pub(crate) const VERSION: u16 = 1;
/// Header length in bytes.
pub(crate) const HEADER_LEN: usize = 132;
/// Trailer (HMAC) length in bytes.
pub(crate) const TRAILER_LEN: usize = 32;
/// The largest file read: 256 MiB.
pub(crate) const MAX_FILE_LEN: u64 = 256 << 20;
/// Salt length.
pub(crate) const SALT_LEN: usize = 16;

const KDF_KEY_FILE: u8 = 1;
const KDF_ARGON2ID: u8 = 2;
const INFO_CHECK: &[u8] = b"keymgr-mock/v1/check";
const INFO_MAC: &[u8] = b"keymgr-mock/v1/mac";
const INFO_ENTRY: &[u8] = b"keymgr-mock/v1/entry";
const RECORD_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Offset of the header checksum.
const SUM_AT: usize = 100;

/// How a file's master key is derived, as recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kdf {
    KeyFile,
    Argon2id(Argon2Params),
}

/// The parsed header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub kdf: Kdf,
    pub salt: [u8; SALT_LEN],
    #[cfg_attr(not(test), allow(dead_code))]
    pub generation: u64,
    pub next_seq: u64,
    pub count: u32,
    pub kcv: [u8; 32],
}

/// Keys derived from the master key for one file (one salt and kdf).
pub(crate) struct Keys {
    kdf: Kdf,
    salt: [u8; SALT_LEN],
    prk: Zeroizing<[u8; 32]>,
    kcv: [u8; 32],
    mac: Zeroizing<[u8; 32]>,
}

impl Keys {
    /// Derives the keys of a file with this kdf and salt.
    pub(crate) fn derive(
        master: &MasterKey,
        kdf: Kdf,
        salt: [u8; SALT_LEN],
    ) -> Result<Keys, DeriveError> {
        let ikm: Zeroizing<[u8; MASTER_KEY_LEN]> = match (&master.source, kdf) {
            (Source::Key(k), Kdf::KeyFile) => Zeroizing::new(**k),
            (Source::Passphrase(p), Kdf::Argon2id(params)) => params
                .derive(p.as_bytes(), &salt)
                .map_err(DeriveError::Params)?,
            (Source::Key(_), Kdf::Argon2id(_)) => {
                return Err(DeriveError::Mismatch(
                    "the file is sealed with a passphrase, but a key file was given",
                ))
            }
            (Source::Passphrase(_), Kdf::KeyFile) => {
                return Err(DeriveError::Mismatch(
                    "the file is sealed with a key file, but a passphrase was given",
                ))
            }
        };
        let (mut prk_out, hk) = Hkdf::<Sha256>::extract(Some(&salt), ikm.as_ref());
        let mut prk = Zeroizing::new([0u8; 32]);
        prk.copy_from_slice(&prk_out);
        zeroize::Zeroize::zeroize(prk_out.as_mut_slice());
        let mut kcv = [0u8; 32];
        let mut mac = Zeroizing::new([0u8; 32]);
        hk.expand(INFO_CHECK, &mut kcv)
            .and_then(|_| hk.expand(INFO_MAC, mac.as_mut()))
            .map_err(|_| DeriveError::Params("HKDF output length".into()))?;
        Ok(Keys {
            kdf,
            salt,
            prk,
            kcv,
            mac,
        })
    }

    /// The HKDF pseudo-random key of this file (salt and master key).
    pub(crate) fn prk(&self) -> &[u8; 32] {
        &self.prk
    }

    /// Whether these keys belong to a file with this kdf and salt.
    pub(crate) fn matches(&self, kdf: Kdf, salt: &[u8; SALT_LEN]) -> bool {
        self.kdf == kdf && &self.salt == salt
    }

    fn entry_cipher(&self, id: &[u8; 16]) -> Aes256Gcm {
        let hk = Hkdf::<Sha256>::from_prk(self.prk.as_ref()).expect("a 32-byte PRK is valid");
        let mut info = Vec::with_capacity(INFO_ENTRY.len() + 16);
        info.extend_from_slice(INFO_ENTRY);
        info.extend_from_slice(id);
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(&info, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Aes256Gcm::new_from_slice(key.as_ref()).expect("AES-256 takes a 32-byte key")
    }

    fn hmac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.mac.as_ref())
            .expect("HMAC takes any key length")
    }
}

/// Why keys could not be derived.
pub(crate) enum DeriveError {
    /// The master key is of the other type (key file vs passphrase).
    Mismatch(&'static str),
    /// The Argon2 parameters were refused.
    Params(String),
}

fn entry_aad(salt: &[u8; SALT_LEN], id: &[u8; 16], project: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(INFO_ENTRY.len() + SALT_LEN + 18 + project.len());
    aad.extend_from_slice(INFO_ENTRY);
    aad.extend_from_slice(salt);
    aad.extend_from_slice(id);
    aad.extend_from_slice(&(project.len() as u16).to_le_bytes());
    aad.extend_from_slice(project);
    aad
}

#[cfg(test)]
fn kind_code(kind: SecretKind) -> u8 {
    SecretKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in SecretKind::ALL") as u8
}

/// The plaintext of an entry.
#[cfg(test)]
fn encode_record(r: &Record) -> Zeroizing<Vec<u8>> {
    let m = &r.meta;
    // Exact size, so the buffer never reallocates (which would leave an
    // unzeroized copy of the plaintext behind).
    let opt_str = |s: &Option<String>| 1 + s.as_ref().map_or(0, |s| 4 + s.len());
    let size = 1
        + 8
        + 1
        + (1 + m.created.map_or(0, |_| 16))
        + (1 + m.expiration.map_or(0, |_| 16))
        + opt_str(&m.name)
        + opt_str(&m.algorithm)
        + (1 + m.bit_length.map_or(0, |_| 4))
        + opt_str(&m.mode)
        + 4
        + m.consumers
            .iter()
            .map(|c| 12 + c.service.len() + c.resource_type.len() + c.resource_id.len())
            .sum::<usize>()
        + 4
        + r.payload.len();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.push(RECORD_VERSION);
    out.extend_from_slice(&r.seq.to_le_bytes());
    out.push(kind_code(m.kind));
    put_opt(&mut out, m.created, |o, t| {
        o.extend_from_slice(&t.unix_timestamp_nanos().to_le_bytes())
    });
    put_opt(&mut out, m.expiration, |o, t| {
        o.extend_from_slice(&t.unix_timestamp_nanos().to_le_bytes())
    });
    put_opt(&mut out, m.name.as_deref(), put_str);
    put_opt(&mut out, m.algorithm.as_deref(), put_str);
    put_opt(&mut out, m.bit_length, |o, b| {
        o.extend_from_slice(&b.to_le_bytes())
    });
    put_opt(&mut out, m.mode.as_deref(), put_str);
    out.extend_from_slice(&(m.consumers.len() as u32).to_le_bytes());
    for c in &m.consumers {
        put_str(&mut out, &c.service);
        put_str(&mut out, &c.resource_type);
        put_str(&mut out, &c.resource_id);
    }
    out.extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(r.payload.expose());
    debug_assert_eq!(out.len(), size, "record size computed exactly");
    out
}

fn decode_record(pt: &[u8], id: SecretId, project: String) -> Option<Record> {
    let mut r = Reader::new(pt);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let seq = r.u64()?;
    let kind = *SecretKind::ALL.get(r.u8()? as usize)?;
    let time = |r: &mut Reader<'_>| OffsetDateTime::from_unix_timestamp_nanos(r.i128()?).ok();
    let created = r.opt(time)?;
    let expiration = r.opt(time)?;
    let name = r.opt(Reader::string)?;
    let algorithm = r.opt(Reader::string)?;
    let bit_length = r.opt(Reader::u32)?;
    let mode = r.opt(Reader::string)?;
    let n = r.u32()? as usize;
    let mut consumers = Vec::new();
    for _ in 0..n {
        // Each consumer takes at least 12 bytes: a bogus count fails here
        // instead of looping or allocating.
        if r.remaining() < 12 {
            return None;
        }
        consumers.push(Consumer {
            service: r.string()?,
            resource_type: r.string()?,
            resource_id: r.string()?,
        });
    }
    let payload = Payload::copy_from(r.bytes32()?);
    if r.remaining() != 0 {
        return None;
    }
    Some(Record {
        project,
        seq,
        meta: SecretMetadata {
            id,
            kind,
            name,
            algorithm,
            bit_length,
            mode,
            created,
            expiration,
            consumers,
        },
        payload,
    })
}

#[cfg(test)]
fn random<const N: usize>() -> Result<[u8; N], SealedError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| SealedError::Random {
        reason: e.to_string(),
    })?;
    Ok(b)
}

/// The 16 bytes of a UUID-shaped id (the version-1 format stores ids so).
#[cfg(test)]
fn raw_id(id: &SecretId) -> [u8; 16] {
    id.to_uuid()
        .expect("the store's ids are UUIDs")
        .into_bytes()
}

/// The bytes of a version-1 file holding `store`, sealed with `keys`
/// (tests only: nothing writes this format any more).
#[cfg(test)]
pub(crate) fn encode(
    path: &Path,
    store: &Store,
    keys: &Keys,
    generation: u64,
) -> Result<Vec<u8>, SealedError> {
    let mut records: Vec<(&SecretId, &Record)> = store.records.iter().collect();
    records.sort_by_key(|(_, r)| r.seq);
    let mut out = vec![0u8; HEADER_LEN];
    for (id, r) in &records {
        let project = r.project.as_bytes();
        let Ok(plen) = u16::try_from(project.len()) else {
            return Err(SealedError::Corrupt {
                path: path.to_path_buf(),
                reason: "a project id is longer than 65535 bytes".into(),
            });
        };
        let nonce: [u8; NONCE_LEN] = random()?;
        let pt = encode_record(r);
        let raw = raw_id(id);
        let aad = entry_aad(&keys.salt, &raw, project);
        let ct = keys
            .entry_cipher(&raw)
            .encrypt(
                &nonce.into(),
                aes_gcm::aead::Payload {
                    msg: &pt,
                    aad: &aad,
                },
            )
            .map_err(|_| SealedError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("secret {id} is too large to encrypt"),
            })?;
        let Ok(ct_len) = u32::try_from(ct.len()) else {
            return Err(SealedError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("secret {id} is too large to store"),
            });
        };
        out.extend_from_slice(&raw);
        out.extend_from_slice(&plen.to_le_bytes());
        out.extend_from_slice(project);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct_len.to_le_bytes());
        out.extend_from_slice(&ct);
    }
    let file_len = (out.len() + TRAILER_LEN) as u64;
    let (kdf_id, params) = match keys.kdf {
        Kdf::KeyFile => (KDF_KEY_FILE, [0u32; 3]),
        Kdf::Argon2id(p) => (KDF_ARGON2ID, [p.memory_kib, p.iterations, p.parallelism]),
    };
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.push(kdf_id);
    h.push(0);
    for p in params {
        h.extend_from_slice(&p.to_le_bytes());
    }
    h.extend_from_slice(&keys.salt);
    h.extend_from_slice(&generation.to_le_bytes());
    h.extend_from_slice(&store.next_seq.to_le_bytes());
    h.extend_from_slice(&(records.len() as u32).to_le_bytes());
    h.extend_from_slice(&file_len.to_le_bytes());
    h.extend_from_slice(&keys.kcv);
    debug_assert_eq!(h.len(), SUM_AT);
    let sum = Sha256::digest(&h);
    h.extend_from_slice(&sum);
    debug_assert_eq!(h.len(), HEADER_LEN);
    out[..HEADER_LEN].copy_from_slice(&h);
    let mut mac = keys.hmac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    debug_assert_eq!(out.len() as u64, file_len);
    Ok(out)
}

/// Parses and checks the header (no key needed).
pub(crate) fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, SealedError> {
    let actual = bytes.len() as u64;
    let corrupt = |reason: &str| SealedError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            SealedError::Truncated {
                path: path.to_path_buf(),
                expected: None,
                actual,
            }
        } else {
            SealedError::NotASealedStore {
                path: path.to_path_buf(),
            }
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(SealedError::NotASealedStore {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(SealedError::Truncated {
            path: path.to_path_buf(),
            expected: None,
            actual,
        });
    }
    let mut r = Reader::new(&bytes[MAGIC.len()..HEADER_LEN]);
    let short = || corrupt("short header");
    let version = r.u16().ok_or_else(short)?;
    if version != VERSION {
        return Err(SealedError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    if Sha256::digest(&bytes[..SUM_AT]).as_slice() != &bytes[SUM_AT..HEADER_LEN] {
        return Err(corrupt(
            "the header checksum does not match (damaged header)",
        ));
    }
    let kdf_id = r.u8().ok_or_else(short)?;
    let reserved = r.u8().ok_or_else(short)?;
    let memory_kib = r.u32().ok_or_else(short)?;
    let iterations = r.u32().ok_or_else(short)?;
    let parallelism = r.u32().ok_or_else(short)?;
    let salt = r.array::<SALT_LEN>().ok_or_else(short)?;
    let generation = r.u64().ok_or_else(short)?;
    let next_seq = r.u64().ok_or_else(short)?;
    let count = r.u32().ok_or_else(short)?;
    let file_len = r.u64().ok_or_else(short)?;
    let kcv = r.array::<32>().ok_or_else(short)?;
    if reserved != 0 {
        return Err(corrupt("reserved header byte is not zero"));
    }
    if file_len > actual {
        return Err(SealedError::Truncated {
            path: path.to_path_buf(),
            expected: Some(file_len),
            actual,
        });
    }
    if file_len < actual {
        return Err(corrupt(&format!(
            "{} bytes after the end recorded in the header ({file_len})",
            actual - file_len
        )));
    }
    if file_len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(corrupt(
            "the recorded length is shorter than header and trailer",
        ));
    }
    let kdf = match kdf_id {
        KDF_KEY_FILE => {
            if [memory_kib, iterations, parallelism] != [0; 3] {
                return Err(corrupt("key-file store with non-zero argon2 parameters"));
            }
            Kdf::KeyFile
        }
        KDF_ARGON2ID => {
            let p = Argon2Params {
                memory_kib,
                iterations,
                parallelism,
            };
            p.validate().map_err(|reason| SealedError::KdfParams {
                path: path.to_path_buf(),
                reason,
            })?;
            Kdf::Argon2id(p)
        }
        other => return Err(corrupt(&format!("unknown key derivation {other}"))),
    };
    Ok(Header {
        kdf,
        salt,
        generation,
        next_seq,
        count,
        kcv,
    })
}

/// Parses, authenticates and decrypts a whole file. `keys` is a cache of
/// the derived keys: reused when the file's kdf and salt match, replaced
/// otherwise (so a passphrase is stretched once per file, not per read).
pub(crate) fn decode(
    path: &Path,
    bytes: &[u8],
    master: &MasterKey,
    keys: &mut Option<Keys>,
) -> Result<(Store, Header), SealedError> {
    let header = parse_header(path, bytes)?;
    let corrupt = |reason: String| SealedError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if !keys
        .as_ref()
        .is_some_and(|k| k.matches(header.kdf, &header.salt))
    {
        *keys = None;
        let derived = Keys::derive(master, header.kdf, header.salt).map_err(|e| match e {
            DeriveError::Mismatch(reason) => SealedError::WrongKey {
                path: path.to_path_buf(),
                reason: reason.into(),
            },
            DeriveError::Params(reason) => SealedError::KdfParams {
                path: path.to_path_buf(),
                reason,
            },
        })?;
        *keys = Some(derived);
    }
    let Some(k) = keys.as_ref() else {
        return Err(corrupt("no keys".into()));
    };
    let kcv_ok = k
        .kcv
        .iter()
        .zip(header.kcv.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    if !kcv_ok {
        return Err(SealedError::WrongKey {
            path: path.to_path_buf(),
            reason: if master.is_passphrase() {
                "the passphrase does not open this file".into()
            } else {
                "the key file does not open this file".into()
            },
        });
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let mut mac = k.hmac();
    mac.update(&bytes[..body_end]);
    mac.verify_slice(&bytes[body_end..]).map_err(|_| {
        corrupt("the file's authentication tag does not match (damaged or altered contents)".into())
    })?;

    let mut r = Reader::new(&bytes[HEADER_LEN..body_end]);
    let mut store = Store {
        records: Default::default(),
        next_seq: header.next_seq,
    };
    for i in 0..header.count {
        let bad = |what: &str| corrupt(format!("entry {i}: {what}"));
        let id_bytes = r.array::<16>().ok_or_else(|| bad("truncated id"))?;
        let id_text = uuid::Uuid::from_bytes(id_bytes).hyphenated().to_string();
        let id = SecretId::parse(&id_text).map_err(|_| bad("malformed id"))?;
        let plen = r.u16().ok_or_else(|| bad("truncated project length"))? as usize;
        let project = r.take(plen).ok_or_else(|| bad("truncated project"))?;
        let project_str = std::str::from_utf8(project)
            .map_err(|_| bad("project id is not UTF-8"))?
            .to_string();
        let nonce = r
            .array::<NONCE_LEN>()
            .ok_or_else(|| bad("truncated nonce"))?;
        let ct_len = r.u32().ok_or_else(|| bad("truncated length"))? as usize;
        let ct = r.take(ct_len).ok_or_else(|| bad("truncated ciphertext"))?;
        if ct.len() < TAG_LEN {
            return Err(bad("ciphertext shorter than its tag"));
        }
        let aad = entry_aad(&header.salt, &id_bytes, project);
        let pt = Zeroizing::new(
            k.entry_cipher(&id_bytes)
                .decrypt(&nonce.into(), aes_gcm::aead::Payload { msg: ct, aad: &aad })
                .map_err(|_| bad("decryption failed (damaged entry)"))?,
        );
        let key = SecretId::parse(&id_text).map_err(|_| bad("malformed id"))?;
        let record = decode_record(&pt, id, project_str).ok_or_else(|| bad("malformed record"))?;
        store.next_seq = store.next_seq.max(record.seq.saturating_add(1));
        if store.records.insert(key, record).is_some() {
            return Err(bad("duplicate secret id"));
        }
    }
    if r.remaining() != 0 {
        return Err(corrupt(format!(
            "{} unexpected bytes after the last entry",
            r.remaining()
        )));
    }
    Ok((store, header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::{Context, NewSecret};
    use proptest::prelude::*;

    fn sample() -> (Vec<u8>, MasterKey) {
        let master = MasterKey::from_bytes([9u8; 32]);
        let keys = Keys::derive(&master, Kdf::KeyFile, [3u8; SALT_LEN])
            .ok()
            .unwrap();
        let mut store = Store::default();
        let now = OffsetDateTime::now_utc();
        let a = Context::new("pa", "u");
        let id = store
            .store(
                &a,
                NewSecret::new(SecretKind::Symmetric, vec![1u8; 32]).named("n"),
                now,
            )
            .unwrap();
        store
            .add_consumer(&a, &id, &Consumer::new("cinder", "volume", "v1"), now)
            .unwrap();
        store
            .store(
                &Context::new("pb", "u"),
                NewSecret::new(SecretKind::Passphrase, b"pw".to_vec()),
                now,
            )
            .unwrap();
        (encode(Path::new("t"), &store, &keys, 7).unwrap(), master)
    }

    #[test]
    fn round_trip() {
        let (bytes, master) = sample();
        let mut keys = None;
        let (store, header) = decode(Path::new("t"), &bytes, &master, &mut keys).unwrap();
        assert_eq!(header.generation, 7);
        assert_eq!(store.records.len(), 2);
        assert!(store
            .records
            .values()
            .any(|r| r.payload.expose() == [1u8; 32]
                && r.meta.consumers.len() == 1
                && r.meta.name.as_deref() == Some("n")));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (bytes, master) = sample();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let mut keys = None;
            let e = decode(Path::new("t"), &b, &master, &mut keys)
                .err()
                .unwrap_or_else(|| panic!("flip at {i} accepted"));
            assert!(
                !matches!(e, SealedError::WrongKey { .. }),
                "flip at {i} reported as a wrong key: {e}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let master = MasterKey::from_bytes([9u8; 32]);
            let mut keys = None;
            prop_assert!(decode(Path::new("t"), &bytes, &master, &mut keys).is_err());
        }

        #[test]
        fn mutated_files_never_panic_and_are_refused(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let (mut bytes, master) = sample();
            let orig = bytes.clone();
            for (at, v) in edits {
                let i = at % bytes.len();
                bytes[i] = v;
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            let mut keys = None;
            let res = decode(Path::new("t"), &bytes, &master, &mut keys);
            if bytes != orig {
                prop_assert!(res.is_err());
            }
        }

        /// Damage that a checksum and MAC cannot catch (they are
        /// recomputed with the right key), so the entry parser itself sees
        /// bogus counts and lengths: refused, never a panic.
        #[test]
        fn authenticated_but_malformed_files_never_panic(
            count in any::<u32>(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            extra in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let (mut bytes, master) = sample();
            let orig = bytes.clone();
            let keys = Keys::derive(&master, Kdf::KeyFile, [3u8; SALT_LEN]).ok().unwrap();
            bytes.truncate(bytes.len() - TRAILER_LEN);
            let body = bytes.len() - HEADER_LEN;
            for (at, v) in edits {
                bytes[HEADER_LEN + at % body] = v;
            }
            bytes.extend_from_slice(&extra);
            bytes[56..60].copy_from_slice(&count.to_le_bytes());
            let file_len = (bytes.len() + TRAILER_LEN) as u64;
            bytes[60..68].copy_from_slice(&file_len.to_le_bytes());
            let sum = Sha256::digest(&bytes[..SUM_AT]);
            bytes[SUM_AT..HEADER_LEN].copy_from_slice(&sum);
            let mut mac = keys.hmac();
            mac.update(&bytes);
            bytes.extend_from_slice(&mac.finalize().into_bytes());
            let mut cache = None;
            let res = decode(Path::new("t"), &bytes, &master, &mut cache);
            if bytes != orig {
                prop_assert!(matches!(res, Err(SealedError::Corrupt { .. })), "{:?}", res.err());
            }
        }

        #[test]
        fn records_with_random_plaintext_never_panic(pt in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&pt, SecretId::new_random(), "p".into());
        }
    }
}

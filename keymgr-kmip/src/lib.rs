//! KMIP backend for keymgr: the OASIS Key Management Interoperability
//! Protocol that storage arrays, HSMs and enterprise key managers speak,
//! as TTLV over TLS with a client certificate.
//!
//! ```no_run
//! # async fn demo() -> keymgr_core::Result<()> {
//! use keymgr_core::{Context, KeyManager, KeySpec};
//! use keymgr_kmip::{KmipConfig, KmipKeyManager};
//!
//! let mut cfg = KmipConfig::new("kmip.example.com", "client.crt", "client.key", "ca.crt");
//! cfg.port = 5696;
//! let km = KmipKeyManager::new(cfg)?;
//! let id = km.create_key(&Context::new("p", "u"), &KeySpec::aes(256)).await?;
//! # let _ = id; Ok(())
//! # }
//! ```
//!
//! # Protocol
//!
//! KMIP 1.2 to 1.4 (the versions whose attributes are Attribute
//! Name/Index/Value structures in Template-Attributes). The version is
//! asked once with Discover Versions (the best the server offers of 1.4,
//! 1.3, 1.2) unless `kmip_version` pins one. KMIP 2.x is not spoken: a
//! server offering 2.0 and 1.x is used with 1.x (PyKMIP offers 2.0 to 1.0
//! and is used with 1.4). KMIP 2.0 replaced Template-Attribute with an
//! Attributes structure that has no Attribute Index, and PyKMIP refuses a
//! second value of a multi-valued attribute without one, so the three
//! Application Specific Information entries below could not be written
//! over 2.0 there; one layout for every version was kept. The TTLV codec is this crate's own (`ttlv`
//! module): every length checked, answers capped at 4 MiB, no panic on
//! any bytes (a fuzz target and property tests check it).
//!
//! | keymgr | KMIP |
//! |---|---|
//! | `create_key` | Create Symmetric Key (AES, 128/192/256/512 bits, usage Encrypt/Decrypt) |
//! | `store` symmetric | Register Symmetric Key (Raw) |
//! | `store` passphrase | Register Secret Data, type Password |
//! | `store` opaque | Register Opaque Object |
//! | `store` private / public | Register Private Key (PKCS#8) / Public Key (X.509 SubjectPublicKeyInfo), RSA or EC |
//! | `store` certificate | Register Certificate, type X.509 |
//! | `get` | Get Attributes and Get in one batched message (the key material is dropped unless the attributes name the caller's project) |
//! | `metadata`, `list_consumers` | Get Attributes |
//! | `list` | Locate (project, Object Type, Name; Maximum Items, Offset Items) + Get Attributes per id |
//! | `delete` | Get Attributes; Revoke (Cessation of Operation) if Active; Destroy |
//! | `add_consumer`, `remove_consumer` | Modify Attribute of the consumer entry |
//!
//! Ids are the server's Unique Identifiers exactly (PyKMIP's are `"1"`,
//! `"2"`, …); `parse_id` accepts any non-empty text.
//!
//! # Tenants and consumers: Application Specific Information
//!
//! KMIP custom attributes (`x-…`) would be the natural place for the
//! owning project and the consumers, but PyKMIP refuses every attribute
//! it does not know ("The x-keymgr-project attribute is unsupported"), and
//! it has no Add Attribute. keymgr therefore keeps them in the standard,
//! multi-valued *Application Specific Information* attribute, which
//! PyKMIP and other servers store, return and let Locate filter on:
//!
//! - `x-keymgr-project` → the owning project id. Every call first reads
//!   the attributes and answers `NotFound` unless the entry names the
//!   caller's project; Locate filters on it, so a listing only shows the
//!   project's objects. Objects without the entry (made by other clients)
//!   are invisible.
//! - `x-keymgr-consumers` → a JSON array of `[service, resource_type,
//!   resource_id]`, written at creation as `[]` and replaced with Modify
//!   Attribute (by index). An object made elsewhere without the entry gets
//!   one with Add Attribute, where the server has it.
//! - `x-keymgr-meta` → JSON of what KMIP has no attribute for: the kind,
//!   the caller's algorithm, bit length and mode, and an expiration.
//!
//! # Failures
//!
//! One deadline (`timeout`) covers each exchange: connect, TLS, request
//! and answer (`Timeout`). At most 16 connections are open at once, all
//! kept for reuse; more concurrent calls wait for one (within the deadline). Reads go over pooled connections and are sent
//! again once on a fresh one if the pooled connection was dead; writes
//! (Create, Register, Modify Attribute, Revoke, Destroy) use a fresh
//! connection and are never repeated: a lost answer is `Unavailable`
//! ("the server may have carried out the request"), never a duplicate.
//! A handshake the server ends with an alert about the client certificate
//! (unknown CA, wrong key usage, expired...) is `Unauthenticated`.
//! KMIP Result Reasons map to kinds as in the `errors` module (Item Not
//! Found `NotFound`, Permission Denied `Forbidden`, Invalid Field
//! `InvalidInput`, Illegal Operation `Conflict`, …).
//!
//! # Limits
//!
//! KMIP 1.x Modify Attribute has no compare-and-set: one client's
//! concurrent consumer updates of a secret wait for each other (an
//! in-process lock per secret), but two clients updating the same
//! secret's consumers at once can lose one update. On a KMIP 1.2 server,
//! which has no Offset Items, a page at offset N asks for N + limit ids
//! and drops the first N. Private and public keys must be RSA or EC on
//! P-256/384/521 (KMIP 1.x has no Ed25519). Bytes inside rustls's buffers
//! are not zeroized; this crate's own buffers are.

mod config;
mod errors;
mod keyinfo;
mod manager;
mod model;
mod transport;
mod ttlv;

/// The one door for fuzz targets and hostile-input tests: the TTLV codec.
/// Not a stable API.
#[doc(hidden)]
pub mod internal {
    pub use crate::ttlv::{
        decode, encode, frame_len, DecodeError, Item, Value, MAX_DEPTH, MAX_ITEMS, MAX_MESSAGE,
    };
}

pub use config::KmipConfig;
pub use manager::KmipKeyManager;

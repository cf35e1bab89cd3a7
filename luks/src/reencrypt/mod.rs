//! Offline LUKS2 reencryption with cryptsetup 2.6's on-disk protocol, so that either
//! tool resumes the other's interrupted run (`cryptsetup reencrypt
//! --force-offline-reencrypt`):
//!
//! * `metadata`: the `online-reencrypt-v2` requirement, the `reencrypt` keyslot, the
//!   backup segments and the digest that authenticates them with the volume keys;
//! * `hotzone`: the segments of one step (hot: the zone being rewritten flagged
//!   `in-reencryption`; post: after it) and the resilience data (checksums, journal);
//! * `engine`: initialization (new volume key, its keyslots and digest, backup
//!   segments, reencrypt keyslot, requirement: one header write), the hotzone loop,
//!   crash recovery, and the final header.
//!
//! Implemented: modes `reencrypt` and `decrypt` (detached header), resilience
//! `checksum`, `journal` and `none`; runs started here walk forward, runs left by
//! cryptsetup resume in either direction. Encryption in place (`--encrypt`, data
//! shift) is refused with [`crate::Error::Unsupported`] (not yet implemented).

mod engine;
mod hotzone;
pub(crate) mod metadata;

pub use engine::{
    reencrypt, reencrypt_detached, KeyChange, Outcome, Progress, ReencryptOptions, ResilienceKind,
};
pub use metadata::{Direction, Mode, ReencryptKeyslot, Resilience, REQUIREMENT};

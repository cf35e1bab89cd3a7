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
//! * `shift`: encryption in place (`--encrypt --reduce-device-size`): the moved
//!   first segment, backward hotzones with resilience `datashift`.
//!
//! Implemented: modes `reencrypt` and `decrypt` (detached header) with resilience
//! `checksum`, `journal` and `none` (runs started here walk forward; cryptsetup's
//! resume in either direction), and `encrypt` with a data shift (backward, as
//! cryptsetup). Not implemented: decryption with a data shift (`online-reencrypt-v3`),
//! encryption with a detached header or a `datashift-checksum`/`-journal` moved segment.

mod engine;
mod hotzone;
pub(crate) mod metadata;
mod shift;

pub use engine::{
    encrypt_in_place, reencrypt, reencrypt_detached, KeyChange, Outcome, Progress,
    ReencryptOptions, ResilienceKind,
};
pub use metadata::{Direction, Mode, ReencryptKeyslot, Resilience, REQUIREMENT};

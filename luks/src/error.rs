//! The crate's typed error.
//!
//! Every way a header can be wrong has its own variant or names the field it
//! found wrong (as a JSON-pointer-like path such as `keyslots.1.area.offset`
//! or a LUKS1 field name such as `payload_offset`). No variant ever carries
//! key material or passphrases.

use std::io;

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The field is required but absent.
    Missing,
    /// The field has the wrong JSON type (for example a number where a string is required).
    WrongType(&'static str),
    /// A number written as a string is not a plain decimal number.
    NotDecimal,
    /// A number does not fit (in `u64`, or in the range the format allows).
    Overflow,
    /// A value is outside the accepted range.
    OutOfRange {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// The value found.
        found: u64,
    },
    /// A value is not a multiple of the required alignment.
    Misaligned {
        /// Required alignment in bytes (or units of the field).
        align: u64,
    },
    /// The area overlaps another one (named).
    Overlaps(String),
    /// The area lies outside the region it must be in (named).
    OutsideOf(&'static str),
    /// A reference names something that does not exist.
    Dangling(String),
    /// The value is not supported by this implementation (the text says which value).
    Unsupported(String),
    /// The value is malformed (the text says how).
    Invalid(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing => write!(f, "missing"),
            Problem::WrongType(t) => write!(f, "wrong type (expected {t})"),
            Problem::NotDecimal => write!(f, "not a decimal number"),
            Problem::Overflow => write!(f, "number too large"),
            Problem::OutOfRange { min, max, found } => {
                write!(f, "{found} is outside {min}..={max}")
            }
            Problem::Misaligned { align } => write!(f, "not aligned to {align}"),
            Problem::Overlaps(o) => write!(f, "overlaps {o}"),
            Problem::OutsideOf(o) => write!(f, "lies outside {o}"),
            Problem::Dangling(o) => write!(f, "refers to missing {o}"),
            Problem::Unsupported(v) => write!(f, "unsupported value {v:?}"),
            Problem::Invalid(v) => write!(f, "invalid: {v}"),
        }
    }
}

/// Errors of the `luks` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the crate was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device does not start with a LUKS magic.
    #[error("not a LUKS device (bad magic)")]
    BadMagic,
    /// The header version is neither 1 nor 2.
    #[error("unsupported LUKS version {0}")]
    UnsupportedVersion(u16),
    /// The device is too small to hold what the header says.
    #[error("device too small: need {needed} bytes, have {have}")]
    DeviceTooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        have: u64,
    },
    /// A header field is invalid.
    #[error("invalid header field {field}: {problem}")]
    Field {
        /// Which field (LUKS1 name or LUKS2 JSON path).
        field: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A LUKS2 binary header copy has a bad checksum.
    #[error("LUKS2 header copy at offset {offset} has a bad checksum")]
    Checksum {
        /// Offset of the copy.
        offset: u64,
    },
    /// No valid LUKS2 header copy was found; the errors of both copies are given.
    #[error("no valid LUKS2 header: primary: {primary}; secondary: {secondary}")]
    NoValidHeader {
        /// Why the primary copy was rejected.
        primary: Box<Error>,
        /// Why the secondary copy was rejected.
        secondary: Box<Error>,
    },
    /// The JSON area is not valid JSON.
    #[error("LUKS2 JSON area is not valid JSON: {0}")]
    Json(String),
    /// The JSON area is not followed only by NUL bytes.
    #[error("LUKS2 JSON area has non-NUL bytes after the JSON text")]
    JsonTrailingData,
    /// The JSON area has no terminating NUL.
    #[error("LUKS2 JSON area is not NUL-terminated")]
    JsonNotTerminated,
    /// The serialized JSON does not fit the JSON area.
    #[error("LUKS2 JSON ({len} bytes) does not fit the {area}-byte JSON area")]
    JsonTooLarge {
        /// Serialized length.
        len: usize,
        /// Area size.
        area: u64,
    },
    /// `config.requirements.mandatory` names a requirement this crate does not implement.
    #[error("unsupported mandatory requirement {0:?}")]
    UnknownRequirement(String),
    /// A KDF parameter is above the limit checked before deriving.
    #[error("KDF parameter {field} = {value} exceeds the limit {max}")]
    KdfLimit {
        /// Which parameter.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// A KDF failed (bad parameters for the primitive).
    #[error("KDF error: {0}")]
    Kdf(String),
    /// No keyslot opened with the passphrase.
    #[error("no keyslot matches the passphrase")]
    NoMatchingKey,
    /// The given volume key does not match the header digest.
    #[error("the volume key does not match the header digest")]
    WrongVolumeKey,
    /// The keyslot number is outside the format's range.
    #[error("keyslot {slot} is out of range (max {max})")]
    SlotOutOfRange {
        /// Requested slot.
        slot: u32,
        /// Largest valid slot number.
        max: u32,
    },
    /// The keyslot is not active.
    #[error("keyslot {0} is not active")]
    SlotInactive(u32),
    /// The keyslot is already in use.
    #[error("keyslot {0} is already active")]
    SlotActive(u32),
    /// All keyslots are in use.
    #[error("no free keyslot")]
    NoFreeSlot,
    /// The keyslots area has no room for another keyslot.
    #[error("no room in the keyslots area for {needed} bytes")]
    NoSpace {
        /// Bytes needed.
        needed: u64,
    },
    /// A cipher error (the text of the cipher module's error).
    #[error("cipher error: {0}")]
    Cipher(String),
    /// Options given to format or another operation are invalid.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// Option name as cryptsetup spells it (e.g. `--key-size`).
        option: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An I/O request is outside the data segment.
    #[error("I/O range {offset}+{len} is outside the {size}-byte data segment")]
    OutOfBounds {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Segment size.
        size: u64,
    },
    /// The header backup file is not a valid backup.
    #[error("invalid header backup: {0}")]
    Backup(String),
    /// An external command (cryptsetup) failed.
    #[error("{command} failed with status {status}: {stderr}")]
    Command {
        /// The command name.
        command: String,
        /// Exit status text.
        status: String,
        /// Standard error (the tool never receives secrets on its command line).
        stderr: String,
    },
    /// Something this crate does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The volume is in LUKS2 reencryption (`online-reencrypt-v2`): only resuming it
    /// ([`crate::reencrypt`]) may change it, and its data cannot be read as one segment.
    #[error(
        "LUKS2 reencryption in progress: resume it (keymgr luks reencrypt --resume-only) first"
    )]
    ReencryptionInProgress,
    /// The volume is not in reencryption (`--resume-only` of a volume that is not).
    #[error("the volume is not in LUKS2 reencryption")]
    NotInReencryption,
    /// The reencryption state (reencrypt keyslot and backup segments) is not
    /// authenticated by its digest with the volume keys (CVE-2021-4122): refused.
    #[error("reencryption metadata is invalid or not authenticated: {0}")]
    ReencryptUnauthenticated(String),
    /// A reencryption step could not complete (the state on disk stays resumable).
    #[error("reencryption failed: {0}")]
    Reencrypt(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a [`Error::Field`].
    pub fn field(field: impl Into<String>, problem: Problem) -> Error {
        Error::Field {
            field: field.into(),
            problem,
        }
    }
    /// Builds an [`Error::Io`] from a context.
    pub fn io(context: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { context, source }
    }

    /// A keyslot this implementation cannot open (its cipher is not supported): the
    /// try-every-keyslot unlock skips it, as cryptsetup does.
    pub(crate) fn is_unsupported_keyslot(&self) -> bool {
        matches!(
            self,
            Error::Field {
                problem: Problem::Unsupported(_),
                ..
            }
        )
    }
}

//! Errors of the store file.

use std::path::PathBuf;

/// Why a sealed store could not be opened, read or written.
///
/// Whatever the error, the write that failed left nothing behind: the
/// store is as it was before the call. Converted into
/// [`keymgr_core::Error`] by the [`keymgr_core::KeyManager`] methods:
/// [`SealedError::WrongKey`] becomes `Unauthenticated`; I/O and database
/// errors and a store busy for longer than the timeout become
/// `Unavailable`; and everything else (corrupt, truncated, unsupported
/// files, bad key files or parameters) becomes `Config`, since only the
/// operator can fix it (restore the file, give the right key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedError {
    /// A file system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done, e.g. `read sealed store`.
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the sealed store's magic bytes.
    #[error("{} is not a keymgr store (neither a keymgr SQLite store nor a version-1 sealed file)", path.display())]
    NotASealedStore {
        /// The file.
        path: PathBuf,
    },
    /// The file is shorter than its header says.
    #[error("sealed store {} is truncated: {actual} bytes, expected {}", path.display(), expected.map_or_else(|| "more".to_string(), |e| e.to_string()))]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The length the header records, when the header was complete.
        expected: Option<u64>,
        /// The length found.
        actual: u64,
    },
    /// The file's structure or authentication is broken.
    #[error("sealed store {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is broken.
        reason: String,
    },
    /// The file is a sealed store of a version this code does not read.
    #[error("store {} has format version {version}; this build reads version {} (and migrates version 1)", path.display(), crate::crypto::VERSION)]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u16,
    },
    /// The key-derivation parameters in the header are out of bounds.
    #[error("sealed store {} asks for key derivation parameters out of bounds: {reason}", path.display())]
    KdfParams {
        /// The file.
        path: PathBuf,
        /// Which parameter, and its bounds.
        reason: String,
    },
    /// The master key (key file or passphrase) does not open this file.
    #[error("sealed store {}: wrong master key: {reason}", path.display())]
    WrongKey {
        /// The file.
        path: PathBuf,
        /// Why the key was refused.
        reason: String,
    },
    /// A key file is unusable.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A passphrase (or its parameters) is unusable.
    #[error("passphrase: {reason}")]
    Passphrase {
        /// What is wrong with it (never the passphrase itself).
        reason: String,
    },
    /// The file is larger than this backend reads.
    #[error("sealed store {} is {len} bytes, larger than the {} this backend reads", path.display(), crate::v1::MAX_FILE_LEN)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Other writers held the store for longer than the busy timeout.
    #[error("store {} is busy: another writer held it for more than {waited:?}", path.display())]
    Busy {
        /// The file.
        path: PathBuf,
        /// How long this call waited.
        waited: std::time::Duration,
    },
    /// SQLite failed (other than damage or a busy store).
    #[error("store {}: {action}: {reason}", path.display())]
    Database {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// SQLite's message.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {reason}")]
    Random {
        /// The error.
        reason: String,
    },
}

impl From<SealedError> for keymgr_core::Error {
    fn from(e: SealedError) -> Self {
        match &e {
            SealedError::WrongKey { path, .. } => keymgr_core::Error::Unauthenticated {
                what: format!("open sealed store {}", path.display()),
                reason: e.to_string(),
            },
            SealedError::Io { path, .. } => keymgr_core::Error::Unavailable {
                what: format!("sealed store {}", path.display()),
                reason: e.to_string(),
            },
            SealedError::Busy { path, .. } | SealedError::Database { path, .. } => {
                keymgr_core::Error::Unavailable {
                    what: format!("store {}", path.display()),
                    reason: e.to_string(),
                }
            }
            SealedError::Random { .. } => keymgr_core::Error::Unavailable {
                what: "sealed store".into(),
                reason: e.to_string(),
            },
            _ => keymgr_core::Error::config(format!("{e} (the file was left unchanged)")),
        }
    }
}

//! Exit codes as cryptsetup's, and the error kinds `--json` reports.
//!
//! | code | kind         | meaning                                   |
//! |------|--------------|-------------------------------------------|
//! | 1    | `usage`      | wrong parameters, or any other failure    |
//! | 2    | `permission` | no permission, or no key matches          |
//! | 3    | `memory`     | out of memory                             |
//! | 4    | `device`     | wrong device (missing, not a device)      |
//! | 5    | `busy`       | device busy                               |

use std::io::ErrorKind;

/// The exit-code table for `--help` and the README.
pub(super) const EXIT_CODES: &str =
    "Exit codes (as cryptsetup's): 0 success, 1 wrong parameters or other error, \
2 no permission or no key matches the passphrase, 3 out of memory, 4 wrong device \
(missing or not a device), 5 device busy.";

/// An error the command line reports with its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct CliError {
    /// The exit code.
    pub code: u8,
    /// The kind `--json` reports.
    pub kind: &'static str,
    /// The message (names the option or file as the user gave it).
    pub message: String,
}

impl CliError {
    /// Wrong parameters (exit 1).
    pub(super) fn usage(message: String) -> CliError {
        CliError {
            code: 1,
            kind: "usage",
            message,
        }
    }
    /// Wrong device (exit 4).
    pub(super) fn device(message: String) -> CliError {
        CliError {
            code: 4,
            kind: "device",
            message,
        }
    }
    /// An output that already exists (exit 1, as cryptsetup's for an
    /// existing header backup file).
    pub(super) fn exists(message: String) -> CliError {
        CliError {
            code: 1,
            kind: "exists",
            message,
        }
    }
    /// An I/O error on `what`, a file other than the device, named as the
    /// user gave it (a missing key file or input is wrong parameters, 1, as
    /// cryptsetup's; a missing device is 4, see [`CliError::device`]).
    pub(super) fn io(what: String, e: &std::io::Error) -> CliError {
        let (code, kind) = match e.kind() {
            ErrorKind::NotFound => (1, "not_found"),
            ErrorKind::AlreadyExists => (1, "exists"),
            _ => io_code(e),
        };
        CliError {
            code,
            kind,
            message: format!("{what}: {e}"),
        }
    }
}

fn io_code(e: &std::io::Error) -> (u8, &'static str) {
    match e.kind() {
        ErrorKind::PermissionDenied => (2, "permission"),
        ErrorKind::OutOfMemory => (3, "memory"),
        ErrorKind::NotFound => (4, "device"),
        ErrorKind::ResourceBusy | ErrorKind::AlreadyExists => (5, "busy"),
        _ if e.raw_os_error() == Some(16) => (5, "busy"),
        _ => (1, "io"),
    }
}

fn luks_code(e: &luks::Error) -> (u8, &'static str) {
    use luks::Error as E;
    match e {
        E::NoMatchingKey | E::WrongVolumeKey => (2, "permission"),
        E::Io { source, .. } => io_code(source),
        E::InvalidOption { .. }
        | E::SlotOutOfRange { .. }
        | E::SlotInactive(_)
        | E::SlotActive(_)
        | E::NoFreeSlot
        | E::NoSpace { .. }
        | E::OutOfBounds { .. } => (1, "usage"),
        E::DeviceTooSmall { .. } => (4, "device"),
        E::BadMagic
        | E::UnsupportedVersion(_)
        | E::Field { .. }
        | E::Checksum { .. }
        | E::NoValidHeader { .. }
        | E::Json(_)
        | E::JsonTrailingData
        | E::JsonNotTerminated
        | E::UnknownRequirement(_)
        | E::ReencryptUnauthenticated(_) => (1, "header"),
        E::NotInReencryption => (1, "usage"),
        E::ReencryptionInProgress => (5, "busy"),
        _ => (1, "error"),
    }
}

/// The exit code and kind of an error: the first typed cause found.
pub(super) fn classify(e: &anyhow::Error) -> (u8, &'static str) {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return (c.code, c.kind);
        }
        if let Some(l) = cause.downcast_ref::<luks::Error>() {
            return luks_code(l);
        }
        if let Some(k) = cause.downcast_ref::<keymgr::Error>() {
            return keymgr_code(k);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_code(io);
        }
    }
    (1, "error")
}

fn keymgr_code(e: &keymgr::Error) -> (u8, &'static str) {
    use keymgr::ErrorKind as K;
    match e.kind() {
        K::NotFound => (1, "not_found"),
        K::Forbidden | K::Unauthenticated => (2, "permission"),
        K::InvalidInput => (1, "usage"),
        K::Conflict => (1, "conflict"),
        K::Unavailable => (1, "unavailable"),
        K::Timeout => (1, "timeout"),
        K::Config => (1, "config"),
        _ => (1, "backend"),
    }
}

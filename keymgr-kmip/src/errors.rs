//! KMIP failure answers and transport failures as the shared error kinds.

use std::time::Duration;

use keymgr_core::Error;

use crate::model::reason;

/// A failed batch item (Result Reason, Result Message) as a shared error:
/// Item Not Found / Object Not Found / Object Destroyed `NotFound`;
/// Permission Denied / Not Authorised `Forbidden`; Authentication Not
/// Successful `Unauthenticated`; Invalid Field / Invalid Message / Missing
/// Data / Key Format Type Not Supported / Cryptographic Failure / Index
/// Out Of Bounds `InvalidInput`; Illegal Operation / Wrong Key Lifecycle
/// State / Object Already Exists `Conflict`; anything else `Backend` with
/// the reason number as status. The server's message is kept (it never
/// holds key material: KMIP servers describe the request, not its values).
pub(crate) fn failure(what: &str, reason: Option<u32>, message: &str) -> Error {
    let what = what.to_string();
    let message = if message.is_empty() {
        format!("KMIP result reason {}", reason.unwrap_or(0))
    } else {
        message.to_string()
    };
    match reason {
        Some(reason::ITEM_NOT_FOUND | reason::OBJECT_NOT_FOUND | reason::OBJECT_DESTROYED) => {
            Error::NotFound { what }
        }
        Some(reason::PERMISSION_DENIED | reason::NOT_AUTHORISED) => Error::Forbidden {
            what,
            reason: message,
        },
        Some(reason::AUTHENTICATION_NOT_SUCCESSFUL) => Error::Unauthenticated {
            what,
            reason: message,
        },
        Some(
            reason::INVALID_FIELD
            | reason::INVALID_MESSAGE
            | reason::MISSING_DATA
            | reason::KEY_FORMAT_TYPE_NOT_SUPPORTED
            | reason::CRYPTOGRAPHIC_FAILURE
            | reason::INDEX_OUT_OF_BOUNDS,
        ) => Error::InvalidInput {
            what,
            reason: message,
        },
        Some(
            reason::ILLEGAL_OPERATION
            | reason::WRONG_KEY_LIFECYCLE_STATE
            | reason::OBJECT_ALREADY_EXISTS,
        ) => Error::Conflict {
            what,
            reason: message,
        },
        Some(
            r @ (reason::OPERATION_NOT_SUPPORTED
            | reason::FEATURE_NOT_SUPPORTED
            | reason::RESPONSE_TOO_LARGE
            | reason::ATTRIBUTE_NOT_FOUND),
        ) => Error::Backend {
            what,
            status: r as u16,
            message,
        },
        r => Error::Backend {
            what,
            status: r.map_or(0, |r| r.min(u32::from(u16::MAX)) as u16),
            message,
        },
    }
}

/// A connection, TLS or framing failure: `Unavailable`.
pub(crate) fn unavailable(what: &str, reason: impl Into<String>) -> Error {
    Error::Unavailable {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// The exchange passed its deadline: `Timeout`.
pub(crate) fn timeout(what: &str, after: Duration) -> Error {
    Error::Timeout {
        what: what.to_string(),
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    #[test]
    fn each_reason_has_its_kind() {
        let k = |r: Option<u32>| failure("w", r, "m").kind();
        assert_eq!(k(Some(0x01)), ErrorKind::NotFound);
        assert_eq!(k(Some(0x37)), ErrorKind::NotFound);
        assert_eq!(k(Some(0x0C)), ErrorKind::Forbidden);
        assert_eq!(k(Some(0x03)), ErrorKind::Unauthenticated);
        assert_eq!(k(Some(0x07)), ErrorKind::InvalidInput);
        assert_eq!(k(Some(0x0B)), ErrorKind::Conflict);
        assert_eq!(k(Some(0x05)), ErrorKind::Backend);
        assert_eq!(k(Some(0x100)), ErrorKind::Backend);
        assert_eq!(k(None), ErrorKind::Backend);
        assert!(failure("get secret 1", Some(1), "")
            .to_string()
            .contains("get secret 1"));
    }
}

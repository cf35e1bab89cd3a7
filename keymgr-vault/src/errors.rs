//! Vault error answers as the shared error kinds: one function,
//! [`status_error`].

use keymgr_core::Error;

use crate::model::Answer;

/// A non-success answer as a shared error: 404 `NotFound`, 400
/// `InvalidInput` (KV v2's transient "upgrading" 400 `Unavailable`), 401
/// `Unauthenticated`, 403 `Forbidden` while the token is still accepted
/// (`token_valid`) and `Unauthenticated` when it is not, 412/429/5xx
/// `Unavailable`, anything else `Backend`.
pub(crate) fn status_error(ans: &Answer, what: &str, token_valid: bool) -> Error {
    let what = what.to_string();
    if ans.is_kv_upgrading() {
        return Error::Unavailable {
            what,
            reason: ans.errors(),
        };
    }
    match ans.status.as_u16() {
        404 => Error::NotFound { what },
        400 => Error::InvalidInput {
            what,
            reason: ans.errors(),
        },
        401 => Error::Unauthenticated {
            what,
            reason: ans.errors(),
        },
        403 if token_valid => Error::Forbidden {
            what,
            reason: ans.errors(),
        },
        403 => Error::Unauthenticated {
            what,
            reason: "the Vault token is invalid or expired".into(),
        },
        412 | 429 | 500..=599 => Error::Unavailable {
            what,
            reason: format!("status {}: {}", ans.status.as_u16(), ans.errors()),
        },
        s => Error::Backend {
            what,
            status: s,
            message: ans.errors(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;
    use reqwest::StatusCode;

    fn ans(status: u16, msg: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: serde_json::json!({ "errors": [msg] }),
            malformed: false,
        }
    }

    #[test]
    fn each_status_has_its_kind() {
        let kind = |s, valid| status_error(&ans(s, "m"), "w", valid).kind();
        assert_eq!(kind(404, true), ErrorKind::NotFound);
        assert_eq!(kind(400, true), ErrorKind::InvalidInput);
        assert_eq!(kind(401, true), ErrorKind::Unauthenticated);
        assert_eq!(kind(403, true), ErrorKind::Forbidden);
        assert_eq!(kind(403, false), ErrorKind::Unauthenticated);
        for s in [412, 429, 500, 503] {
            assert_eq!(kind(s, true), ErrorKind::Unavailable, "{s}");
        }
        assert_eq!(kind(418, true), ErrorKind::Backend);
        let up = ans(400, "upgrade from non-versioned to versioned data");
        assert_eq!(status_error(&up, "w", true).kind(), ErrorKind::Unavailable);
    }
}

//! Barbican and Keystone error answers as the shared error kinds: one
//! function, [`status_error`].

use keymgr_core::Error;

/// The message of an OpenStack error body: Barbican's
/// `{"code","title","description"}`, keystonemiddleware's and Keystone's
/// `{"error": {"code","title","message"}}`, or plain text.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let obj = v.get("error").unwrap_or(&v);
        for key in ["description", "message", "title"] {
            if let Some(s) = obj.get(key).and_then(|x| x.as_str()) {
                if !s.is_empty() {
                    return clean(s);
                }
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(no message)".to_string()
    } else {
        clean(text)
    }
}

fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    if s.chars().count() > 500 {
        out.push('…');
    }
    out
}

/// An error answer as a shared error, keeping the server's description.
pub(crate) fn status_error(what: &str, status: u16, body: &[u8]) -> Error {
    let message = error_message(body);
    let what = what.to_string();
    match status {
        400 | 406 | 411 | 413 | 415 | 422 => Error::InvalidInput {
            what,
            reason: message,
        },
        401 => Error::Unauthenticated {
            what,
            reason: message,
        },
        403 => Error::Forbidden {
            what,
            reason: message,
        },
        404 => Error::NotFound { what },
        409 => Error::Conflict {
            what,
            reason: message,
        },
        502..=504 => Error::Unavailable {
            what,
            reason: format!("status {status}: {message}"),
        },
        _ => Error::Backend {
            what,
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    #[test]
    fn error_bodies_keep_the_description() {
        let b = br#"{"code": 400, "title": "Bad Request", "description": "Provided object does not match schema 'Secret': payload is empty"}"#;
        let e = status_error("store secret", 400, b);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("payload is empty"), "{e}");
        let b = br#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;
        let e = status_error("get secret x", 401, b);
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.to_string().contains("requires authentication"));
        assert_eq!(status_error("x", 403, b"").kind(), ErrorKind::Forbidden);
        assert_eq!(status_error("x", 404, b"").kind(), ErrorKind::NotFound);
        assert_eq!(status_error("x", 409, b"").kind(), ErrorKind::Conflict);
        assert_eq!(status_error("x", 503, b"").kind(), ErrorKind::Unavailable);
        let e = status_error("x", 500, b"<html>\n\x00oops</html>");
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.is_retryable());
        assert!(!e.to_string().contains('\n'));
        let long = vec![b'a'; 5000];
        assert!(error_message(&long).chars().count() <= 501);
    }
}

//! Transport failures as the shared error kinds.

use std::time::Duration;

use keymgr_core::Error;

/// A transport failure as a shared error: a timeout as `Timeout` (after
/// `timeout`), the rest (refused, reset, TLS) as `Unavailable` with the
/// whole chain of causes.
pub fn transport_error(what: &str, e: &reqwest::Error, timeout: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            what: what.to_string(),
            after: timeout,
        };
    }
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        src = s.source();
    }
    Error::Unavailable {
        what: what.to_string(),
        reason,
    }
}

/// A short description of a transport failure, its kind first, without the
/// URL (which names the node, not a secret, but makes messages long).
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    format!("{kind} ({})", s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_with_its_cause() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let e = reqwest::get(&url).await.unwrap_err();
        let err = transport_error("get x", &e, Duration::from_secs(1));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let d = describe(&e);
        assert!(d.starts_with("connection failed"), "{d}");
        assert!(!d.contains(&url), "{d}");
    }
}

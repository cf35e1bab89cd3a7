//! Vault's wire types: what a request is (read or write), and an answer.

use reqwest::StatusCode;
use serde_json::Value;

/// Whether a request changes state (sent after the last write's index) or reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A read: sent with the last write's `X-Vault-Index`.
    Read,
    /// A write: sent with the last write's `X-Vault-Index` too (a
    /// standby checks check-and-set against its own copy), and its
    /// answer's `X-Vault-Index` is kept.
    Write,
}

/// An answer: status and JSON body (`Null` when empty or not JSON).
pub(crate) struct Answer {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// Parsed body (`Null` when empty or not JSON).
    pub(crate) body: Value,
    /// Whether a body was there but was not JSON (a broken answer: a
    /// proxy's error page, a truncated transfer).
    pub(crate) malformed: bool,
}

impl Answer {
    /// Whether this is KV v2's transient refusal while a mount is being
    /// upgraded from non-versioned data (right after it is mounted).
    pub(crate) fn is_kv_upgrading(&self) -> bool {
        self.status.as_u16() == 400
            && self
                .errors()
                .contains("upgrade from non-versioned to versioned data")
    }

    /// The `errors` array of a Vault error body, joined.
    pub(crate) fn errors(&self) -> String {
        match self.body.get("errors").and_then(Value::as_array) {
            Some(errs) if !errs.is_empty() => errs
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => self
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kv_upgrade_refusal_is_recognised() {
        let ans = |status: u16, msg: &str| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: serde_json::json!({ "errors": [msg] }),
            malformed: false,
        };
        let upgrading = "Waiting for the primary to upgrade from non-versioned to versioned data. \
                         This backend will be unavailable for a brief period";
        assert!(ans(400, upgrading).is_kv_upgrading());
        assert!(!ans(400, "check-and-set parameter did not match").is_kv_upgrading());
        assert!(!ans(500, upgrading).is_kv_upgrading());
        assert_eq!(
            ans(400, "a").errors(),
            "a",
            "the server's message is kept for InvalidInput"
        );
    }
}

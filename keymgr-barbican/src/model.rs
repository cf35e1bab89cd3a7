//! Barbican's JSON documents and their mapping to the shared types.

use std::collections::HashMap;

use keymgr_core::{Consumer, Error, OffsetDateTime, Result, SecretId, SecretKind, SecretMetadata};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::PrimitiveDateTime;

/// Parses Barbican's and Keystone's timestamps: RFC 3339, or the naive
/// ISO form Barbican stores (`2026-11-22T23:18:54.199132`, taken as UTC).
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let naive = format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(s, naive)
        .ok()
        .map(|t| t.assume_utc())
}

/// A timestamp as Barbican accepts it (RFC 3339, UTC).
pub(crate) fn format_time(t: OffsetDateTime) -> Result<String> {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| Error::invalid("expiration", e.to_string()))
}

/// A secret's metadata document.
#[derive(Debug, Deserialize)]
pub(crate) struct SecretJson {
    pub secret_ref: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub bit_length: Option<u32>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub expiration: Option<String>,
    #[serde(default)]
    pub content_types: Option<HashMap<String, String>>,
    #[serde(default)]
    pub consumers: Option<Vec<ConsumerJson>>,
}

/// A secret consumer.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsumerJson {
    pub service: String,
    pub resource_type: String,
    pub resource_id: String,
}

impl From<ConsumerJson> for Consumer {
    fn from(c: ConsumerJson) -> Self {
        Consumer::new(c.service, c.resource_type, c.resource_id)
    }
}

impl SecretJson {
    /// The shared metadata; `what` names the call in errors.
    pub(crate) fn into_metadata(self, what: &str) -> Result<SecretMetadata> {
        let id = SecretId::parse(&self.secret_ref).map_err(|e| Error::Backend {
            what: what.into(),
            status: 200,
            message: format!("bad secret_ref in the answer: {e}"),
        })?;
        let kind = kind_from_barbican(self.secret_type.as_deref()).map_err(|e| Error::Backend {
            what: what.into(),
            status: 200,
            message: e.to_string(),
        })?;
        Ok(SecretMetadata {
            id,
            kind,
            name: self.name.filter(|n| !n.is_empty()),
            algorithm: self.algorithm,
            bit_length: self.bit_length,
            mode: self.mode,
            created: self.created.as_deref().and_then(parse_time),
            expiration: self.expiration.as_deref().and_then(parse_time),
            consumers: self
                .consumers
                .unwrap_or_default()
                .into_iter()
                .map(Consumer::from)
                .collect(),
        })
    }

    /// The content type to ask the payload in.
    pub(crate) fn default_content_type(&self) -> Option<String> {
        self.content_types
            .as_ref()
            .and_then(|c| c.get("default").cloned())
    }
}

/// Barbican's `secret_type` names are the shared kind names; a secret
/// without one is `opaque` (Barbican's own default).
pub(crate) fn kind_from_barbican(t: Option<&str>) -> Result<SecretKind> {
    match t {
        None | Some("") => Ok(SecretKind::Opaque),
        Some(s) => s.parse(),
    }
}

/// A page of the secrets listing.
#[derive(Debug, Deserialize)]
pub(crate) struct SecretListJson {
    #[serde(default)]
    pub secrets: Vec<SecretJson>,
    #[serde(default)]
    pub total: Option<usize>,
    #[serde(default)]
    pub next: Option<String>,
}

/// A page of a secret's consumers.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsumerListJson {
    #[serde(default)]
    pub consumers: Vec<ConsumerJson>,
    #[serde(default)]
    pub next: Option<String>,
}

/// The `offset` query parameter of a `next` link.
pub(crate) fn offset_of(href: &str) -> Option<usize> {
    let url = url::Url::parse(href).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "offset")
        .and_then(|(_, v)| v.parse().ok())
}

/// An order's status document.
#[derive(Debug, Deserialize)]
pub(crate) struct OrderJson {
    pub status: String,
    #[serde(default)]
    pub secret_ref: Option<String>,
    #[serde(default)]
    pub error_status_code: Option<serde_json::Value>,
    #[serde(default)]
    pub error_reason: Option<String>,
}

/// A `{"secret_ref": ...}` or `{"order_ref": ...}` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct RefJson {
    #[serde(default)]
    pub secret_ref: Option<String>,
    #[serde(default)]
    pub order_ref: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barbican_and_keystone_times_parse() {
        let t = parse_time("2026-11-22T23:18:54.199132").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_389_534);
        assert_eq!(t.microsecond(), 199_132);
        assert_eq!(
            parse_time("2026-11-22T23:18:54").unwrap().unix_timestamp(),
            1_795_389_534
        );
        assert_eq!(
            parse_time("2026-11-22T23:18:54.000000Z")
                .unwrap()
                .unix_timestamp(),
            1_795_389_534
        );
        assert_eq!(
            parse_time("2026-11-23T00:18:54+01:00")
                .unwrap()
                .unix_timestamp(),
            1_795_389_534
        );
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("").is_none());
    }

    #[test]
    fn metadata_maps_kinds_and_consumers() {
        let j: SecretJson = serde_json::from_value(serde_json::json!({
            "secret_ref": "http://h:9311/v1/secrets/7668ed32-2724-4bae-b797-86aa3f929b3b",
            "name": "vol", "secret_type": "symmetric", "algorithm": "aes", "bit_length": 256,
            "mode": null, "created": "2026-11-22T23:18:54.199132", "expiration": null,
            "content_types": {"default": "application/octet-stream"},
            "consumers": [{"service": "cinder", "resource_type": "volume", "resource_id": "v1",
                           "created": "x", "updated": "y", "status": "ACTIVE"}],
        }))
        .unwrap();
        assert_eq!(
            j.default_content_type().as_deref(),
            Some("application/octet-stream")
        );
        let m = j.into_metadata("get").unwrap();
        assert_eq!(m.kind, SecretKind::Symmetric);
        assert_eq!(m.bit_length, Some(256));
        assert_eq!(m.consumers, vec![Consumer::new("cinder", "volume", "v1")]);
        for (t, k) in [
            ("passphrase", SecretKind::Passphrase),
            ("private", SecretKind::Private),
            ("public", SecretKind::Public),
            ("certificate", SecretKind::Certificate),
            ("opaque", SecretKind::Opaque),
        ] {
            assert_eq!(kind_from_barbican(Some(t)).unwrap(), k);
        }
        assert!(kind_from_barbican(Some("weird")).is_err());
        let bad: SecretJson =
            serde_json::from_value(serde_json::json!({"secret_ref": "http://h/v1/orders/x"}))
                .unwrap();
        assert_eq!(
            bad.into_metadata("get").unwrap_err().kind(),
            keymgr_core::ErrorKind::Backend
        );
    }

    #[test]
    fn next_links_give_offsets() {
        assert_eq!(
            offset_of("http://h:1/v1/secrets?limit=10&offset=20&name=x"),
            Some(20)
        );
        assert_eq!(offset_of("http://h:1/v1/secrets?limit=10"), None);
        assert_eq!(offset_of("not a url"), None);
    }
}

#[cfg(test)]
mod props {
    use super::*;

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,80}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_time(&s);
            let _ = offset_of(&s);
            let _ = kind_from_barbican(Some(&s));
            let _ = serde_json::from_slice::<SecretListJson>(&bytes);
            let _ = crate::errors::error_message(&bytes);
            let _ = crate::errors::status_error("x", 400, &bytes);
        }
    }
}

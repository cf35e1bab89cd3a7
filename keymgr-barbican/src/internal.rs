//! The one door for fuzzing and tests: the decoders of Barbican and
//! Keystone answers. Not a stable API.

use keymgr_core::{Consumer, Error, Result, SecretMetadata};

use crate::model::{offset_of, ConsumerListJson, SecretJson, SecretListJson};

/// What the client takes from one answer.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The secrets (one for `"secret"`, a page for `"secret-list"`).
    pub secrets: Vec<SecretMetadata>,
    /// The content type a secret's payload is asked in (`"secret"`).
    pub content_type: Option<String>,
    /// The offset of the next page, when the listing has one
    /// (`"secret-list"`, read from offset 0).
    pub next_offset: Option<usize>,
    /// The consumers (`"consumer-list"`).
    pub consumers: Vec<Consumer>,
}

/// Decodes an answer body the way the client does for `kind`
/// (`"secret"`, `"secret-list"`, `"consumer-list"`, or an error `status`),
/// returning what the client would use. Never panics.
pub fn decode_answer(kind: &str, status: u16, body: &[u8]) -> Result<Decoded> {
    let bad = |e: serde_json::Error| Error::Backend {
        what: "decode".into(),
        status,
        message: e.to_string(),
    };
    match kind {
        "secret" => {
            let s: SecretJson = serde_json::from_slice(body).map_err(bad)?;
            let content_type = s.default_content_type();
            Ok(Decoded {
                secrets: vec![s.into_metadata("decode")?],
                content_type,
                ..Decoded::default()
            })
        }
        "secret-list" => {
            let l: SecretListJson = serde_json::from_slice(body).map_err(bad)?;
            let got = l.secrets.len();
            let next_offset = l.next.as_deref().map(|n| offset_of(n).unwrap_or(got));
            let secrets = l
                .secrets
                .into_iter()
                .map(|s| s.into_metadata("decode"))
                .collect::<Result<_>>()?;
            Ok(Decoded {
                secrets,
                next_offset,
                ..Decoded::default()
            })
        }
        "consumer-list" => {
            let l: ConsumerListJson = serde_json::from_slice(body).map_err(bad)?;
            Ok(Decoded {
                consumers: l.consumers.into_iter().map(Consumer::from).collect(),
                ..Decoded::default()
            })
        }
        _ => Err(crate::errors::status_error("decode", status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymgr_core::ErrorKind;

    #[test]
    fn what_the_client_uses_is_returned_not_dropped() {
        let secret = br#"{"secret_ref": "http://b/v1/secrets/6f1f2c6e-35b1-4c77-9c2f-2a1d3f1b8e11",
            "secret_type": "symmetric", "content_types": {"default": "application/octet-stream"}}"#;
        let d = decode_answer("secret", 200, secret).unwrap();
        assert_eq!(d.secrets.len(), 1);
        assert_eq!(d.content_type.as_deref(), Some("application/octet-stream"));
        let list =
            br#"{"secrets": [], "total": 30, "next": "http://b/v1/secrets?limit=10&offset=20"}"#;
        assert_eq!(
            decode_answer("secret-list", 200, list).unwrap().next_offset,
            Some(20)
        );
        let consumers = br#"{"consumers": [{"service": "cinder", "resource_type": "volume", "resource_id": "v1"}], "total": 1}"#;
        let d = decode_answer("consumer-list", 200, consumers).unwrap();
        assert_eq!(d.consumers, [Consumer::new("cinder", "volume", "v1")]);
        let e = decode_answer("error", 404, b"").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

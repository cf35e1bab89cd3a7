//! The one door for fuzzing and tests: the decoders of Barbican and
//! Keystone answers. Not a stable API.

use keymgr_core::{Error, Result, SecretMetadata};

use crate::model::{ConsumerListJson, SecretJson, SecretListJson};

/// Decodes an answer body the way the client does for `kind`
/// (`"secret"`, `"secret-list"`, `"consumer-list"`, or an error `status`),
/// returning what the client would use. Never panics.
pub fn decode_answer(kind: &str, status: u16, body: &[u8]) -> Result<Vec<SecretMetadata>> {
    let bad = |e: serde_json::Error| Error::Backend {
        what: "decode".into(),
        status,
        message: e.to_string(),
    };
    match kind {
        "secret" => {
            let s: SecretJson = serde_json::from_slice(body).map_err(bad)?;
            let _ = s.default_content_type();
            Ok(vec![s.into_metadata("decode")?])
        }
        "secret-list" => {
            let l: SecretListJson = serde_json::from_slice(body).map_err(bad)?;
            if let Some(n) = &l.next {
                let _ = crate::model::offset_of(n);
            }
            l.secrets
                .into_iter()
                .map(|s| s.into_metadata("decode"))
                .collect()
        }
        "consumer-list" => {
            let l: ConsumerListJson = serde_json::from_slice(body).map_err(bad)?;
            let _ = l.consumers.len();
            Ok(Vec::new())
        }
        _ => Err(crate::errors::status_error("decode", status, body)),
    }
}

//! Secret identifiers and their parsing.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use uuid::Uuid;

use crate::Error;

/// The longest id accepted (KMIP servers' unique identifiers included).
const MAX_ID_LEN: usize = 255;
/// The longest input accepted by [`SecretId::parse`] (an href is longer than its id).
const MAX_INPUT_LEN: usize = 2048;

/// The identifier of a secret, in the form its backend and that backend's
/// other clients write it.
///
/// Each backend has its own id form, and a Python service next to a Rust one
/// must be able to use the id a keymgr caller prints, byte for byte:
///
/// | backend | form | example |
/// |---|---|---|
/// | Barbican, embedded store | hyphenated lower-case UUID | `1b4e28ba-2fa1-11d2-883f-0016d3cca427` |
/// | Vault / OpenBao | 32 lower-case hex digits (Castellan's `uuid4().hex`, the KV path) | `1b4e28ba2fa111d2883f0016d3cca427` |
/// | KMIP | the server's unique identifier, any text | `"1"`, `"42"` |
///
/// [`SecretId::parse`] checks only what every backend shares (not empty, no
/// white space or control character, at most 255 characters) and takes the
/// id out of a Barbican secret href. A backend checks the form it needs when
/// the id reaches it ([`crate::KeyManager::parse_id`] does it up front), and
/// accepts the other UUID form there: a Vault backend given a hyphenated UUID
/// uses its 32 hex digits, a Barbican backend given 32 hex digits uses the
/// hyphenated UUID. Ids returned by a backend are always in its own form.
///
/// Two ids are equal when their text is; `Display` and serde give the text.
///
/// ```
/// use keymgr_core::SecretId;
/// let a: SecretId = "1b4e28ba-2fa1-11d2-883f-0016d3cca427".parse().unwrap();
/// let b = SecretId::parse("http://127.0.0.1:9311/v1/secrets/1b4e28ba-2fa1-11d2-883f-0016d3cca427")
///     .unwrap();
/// assert_eq!(a, b);
/// // Vault's form of the same UUID:
/// assert_eq!(a.to_simple_uuid().unwrap().as_str(), "1b4e28ba2fa111d2883f0016d3cca427");
/// // A KMIP server's id:
/// assert_eq!(SecretId::parse("42").unwrap().as_str(), "42");
/// assert!(SecretId::parse("not an id").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId(Arc<str>);

impl SecretId {
    /// A new random (version 4) UUID, hyphenated.
    pub fn new_random() -> Self {
        SecretId::from_uuid(Uuid::new_v4())
    }

    /// The hyphenated lower-case form of a UUID.
    pub fn from_uuid(uuid: Uuid) -> Self {
        SecretId(uuid.hyphenated().to_string().into())
    }

    /// The id's text, as the backend writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UUID, when the id is one in the hyphenated (8-4-4-4-12) or the
    /// simple (32 hex digits) form, in any case.
    pub fn to_uuid(&self) -> Option<Uuid> {
        strict_uuid(&self.0)
    }

    /// The id as a hyphenated lower-case UUID (Barbican's form), from either
    /// UUID form; anything else is `InvalidInput`.
    pub fn to_hyphenated_uuid(&self) -> Result<SecretId, Error> {
        self.require_uuid("a UUID (8-4-4-4-12 hex digits, or 32 hex digits)")
            .map(SecretId::from_uuid)
    }

    /// The id as 32 lower-case hex digits (Castellan's Vault form), from
    /// either UUID form; anything else is `InvalidInput`.
    pub fn to_simple_uuid(&self) -> Result<SecretId, Error> {
        self.require_uuid("32 hex digits (a hyphenated UUID is also accepted)")
            .map(|u| SecretId(u.simple().to_string().into()))
    }

    fn require_uuid(&self, expected: &str) -> Result<Uuid, Error> {
        self.to_uuid().ok_or_else(|| {
            Error::invalid(
                format!("secret id {:?}", self.as_str()),
                format!("expected {expected}"),
            )
        })
    }

    /// Parses an id as every backend accepts it. See the type's documentation.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim();
        let bad = |reason: &str| Error::invalid(format!("secret id {input:?}"), reason);
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_INPUT_LEN {
            return Err(bad("longer than 2048 characters"));
        }
        if s.contains("://") {
            let url = url::Url::parse(s).map_err(|e| bad(&format!("not a valid URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("an href must be http or https"));
            }
            let segs: Vec<&str> = url
                .path_segments()
                .map(|p| p.filter(|x| !x.is_empty()).collect())
                .unwrap_or_default();
            return match segs.as_slice() {
                [.., "secrets", last] => strict_uuid(last)
                    .map(SecretId::from_uuid)
                    .ok_or_else(|| bad("the last path segment of a secret href must be a UUID")),
                _ => Err(bad("an href must end in /secrets/<uuid>")),
            };
        }
        if s.chars().count() > MAX_ID_LEN {
            return Err(bad("longer than 255 characters"));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(&format!(
                "contains {c:?}: an id has no white space or control characters"
            )));
        }
        Ok(SecretId(s.into()))
    }
}

/// Accepts exactly the hyphenated (8-4-4-4-12) or simple (32 hex) forms.
fn strict_uuid(s: &str) -> Option<Uuid> {
    let ok_shape = match s.len() {
        32 => s.bytes().all(|b| b.is_ascii_hexdigit()),
        36 => s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        _ => false,
    };
    if !ok_shape {
        return None;
    }
    Uuid::parse_str(s).ok()
}

impl FromStr for SecretId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        SecretId::parse(s)
    }
}

impl AsRef<str> for SecretId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretId({:?})", &*self.0)
    }
}

impl serde::Serialize for SecretId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_ids_with_invalid_input() {
        let long = "a".repeat(256);
        for bad in [
            "",
            "   ",
            "two words",
            "tab\there",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427\u{0}",
            "ctl\u{7f}",
            long.as_str(),
            "http://h/v1/orders/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "ftp://h/v1/secrets/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "http://h/v1/secrets/",
            "http://h/v1/secrets/1234",
            "http://[::1/v1/secrets/x",
        ] {
            let err = SecretId::parse(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("secret id"), "{err}");
        }
    }

    #[test]
    fn keeps_the_backends_text() {
        for id in [
            "1",
            "42",
            "1b4e28ba2fa111d2883f0016d3cca427",
            "1B4E28BA-2FA1-11D2-883F-0016D3CCA427",
            "ü-key",
        ] {
            assert_eq!(SecretId::parse(id).unwrap().as_str(), id);
            assert_eq!(SecretId::parse(&format!(" {id}\n")).unwrap().as_str(), id);
        }
    }

    #[test]
    fn uuid_forms_normalise_both_ways() {
        let hy = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let simple = "1b4e28ba2fa111d2883f0016d3cca427";
        for input in [hy, simple, &hy.to_uppercase(), &simple.to_uppercase()] {
            let id = SecretId::parse(input).unwrap();
            assert_eq!(id.to_hyphenated_uuid().unwrap().as_str(), hy);
            assert_eq!(id.to_simple_uuid().unwrap().as_str(), simple);
        }
        for not_uuid in [
            "1",
            "{1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
            "1b4e28ba2fa1-11d2-883f-0016d3cca427-",
            "zb4e28ba-2fa1-11d2-883f-0016d3cca427",
            "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        ] {
            let id = SecretId::parse(not_uuid).unwrap();
            let e = id.to_simple_uuid().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(not_uuid), "{e}");
            assert!(id.to_hyphenated_uuid().is_err());
        }
    }

    #[test]
    fn href_with_trailing_slash_and_query_parses() {
        let id = SecretId::parse(
            "https://kms.example:9311/key-manager/v1/secrets/1B4E28BA-2fa1-11d2-883f-0016d3cca427/?x=1",
        )
        .unwrap();
        assert_eq!(id.as_str(), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            if let Ok(id) = SecretId::parse(&s) {
                let _ = id.to_simple_uuid();
                let _ = id.to_hyphenated_uuid();
            }
        }

        #[test]
        fn both_forms_round_trip(bytes in proptest::array::uniform16(0u8..)) {
            let id = SecretId::from_uuid(Uuid::from_bytes(bytes));
            proptest::prop_assert_eq!(SecretId::parse(id.as_str()).unwrap(), id.clone());
            let simple = id.to_simple_uuid().unwrap();
            proptest::prop_assert_eq!(SecretId::parse(simple.as_str()).unwrap().to_hyphenated_uuid().unwrap(), id.clone());
            proptest::prop_assert_eq!(SecretId::parse(&simple.as_str().to_uppercase()).unwrap().to_hyphenated_uuid().unwrap(), id);
        }
    }
}

//! Secret identifiers and their parsing.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::Error;

/// The identifier of a secret: a UUID.
///
/// Parsed from a bare UUID (with or without dashes, any case) or from a
/// Barbican secret href (`https://host:9311/v1/secrets/<uuid>`). Displayed
/// hyphenated; [`SecretId::simple`] gives the dashless form Castellan's Vault
/// backend uses as a record name. Two ids are equal when their UUIDs are,
/// whatever form they were parsed from.
///
/// ```
/// use keymgr_core::SecretId;
/// let a: SecretId = "1b4e28ba-2fa1-11d2-883f-0016d3cca427".parse().unwrap();
/// let b: SecretId = "1B4E28BA2FA111D2883F0016D3CCA427".parse().unwrap();
/// let c: SecretId = "http://127.0.0.1:9311/v1/secrets/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
///     .parse()
///     .unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a, c);
/// assert!("not-an-id".parse::<SecretId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId(Uuid);

impl SecretId {
    /// A new random (version 4) id.
    pub fn new_random() -> Self {
        SecretId(Uuid::new_v4())
    }

    /// The id of a UUID.
    pub fn from_uuid(uuid: Uuid) -> Self {
        SecretId(uuid)
    }

    /// The UUID.
    pub fn uuid(&self) -> Uuid {
        self.0
    }

    /// The 32 lower-case hex digits without dashes.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }

    /// Parses a bare UUID or a secret href. See the type's documentation.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim();
        let bad = |reason: &str| Error::invalid(format!("secret id {input:?}"), reason);
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > 2048 {
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
                [.., "secrets", last] => parse_uuid(last)
                    .ok_or_else(|| bad("the last path segment of a secret href must be a UUID")),
                _ => Err(bad("an href must end in /secrets/<uuid>")),
            };
        }
        parse_uuid(s)
            .ok_or_else(|| bad("expected a UUID (32 hex digits, dashes optional) or a secret href"))
    }
}

/// Accepts exactly the hyphenated (8-4-4-4-12) or simple (32 hex) forms.
fn parse_uuid(s: &str) -> Option<SecretId> {
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
    Uuid::parse_str(s).ok().map(SecretId)
}

impl FromStr for SecretId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        SecretId::parse(s)
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretId({})", self.0.hyphenated())
    }
}

impl serde::Serialize for SecretId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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
        for bad in [
            "",
            "   ",
            "1234",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca42",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca4277",
            "1b4e28ba2fa1-11d2-883f-0016d3cca427-",
            "zb4e28ba-2fa1-11d2-883f-0016d3cca427",
            "{1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
            "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "http://h/v1/orders/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "ftp://h/v1/secrets/1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "http://h/v1/secrets/",
            "http://[::1/v1/secrets/x",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427\u{0}",
            "ü1b4e28ba2fa111d2883f0016d3cca42",
        ] {
            let err = SecretId::parse(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("secret id"), "{err}");
        }
    }

    #[test]
    fn href_with_trailing_slash_and_query_parses() {
        let id = SecretId::parse(
            "https://kms.example:9311/key-manager/v1/secrets/1b4e28ba-2fa1-11d2-883f-0016d3cca427/?x=1",
        )
        .unwrap();
        assert_eq!(id.simple(), "1b4e28ba2fa111d2883f0016d3cca427");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = SecretId::parse(&s);
        }

        #[test]
        fn both_forms_round_trip(bytes in proptest::array::uniform16(0u8..)) {
            let id = SecretId::from_uuid(Uuid::from_bytes(bytes));
            proptest::prop_assert_eq!(SecretId::parse(&id.to_string()).unwrap(), id);
            proptest::prop_assert_eq!(SecretId::parse(&id.simple()).unwrap(), id);
            proptest::prop_assert_eq!(SecretId::parse(&id.simple().to_uppercase()).unwrap(), id);
        }
    }
}

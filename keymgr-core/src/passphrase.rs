//! How a secret becomes a LUKS passphrase: os-brick's rule.
//!
//! os-brick's `get_passphrase_from_secret` uses a `passphrase` secret's
//! UTF-8 text as is, and every other kind as lower-case hex, two digits a
//! byte. Volumes formatted by old Nova and Cinder used a mangled hex that
//! dropped the leading zero of every byte below `0x10`; that form is kept
//! here only to open such volumes and re-key them ([`legacy_passphrase`]).

use std::fmt;

use zeroize::Zeroizing;

use crate::{Error, Payload, Result, SecretKind};

/// A LUKS passphrase derived from a secret; zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// The passphrase bytes, as given to cryptsetup's `--key-file`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Wraps bytes that are already a passphrase.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Passphrase(Zeroizing::new(bytes))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passphrase([REDACTED {} bytes])", self.0.len())
    }
}

/// The passphrase os-brick derives from a secret of `kind` with `payload`.
///
/// A `passphrase` that is not UTF-8 is `InvalidInput` (os-brick would fail
/// to decode it too).
pub fn passphrase_for(kind: SecretKind, payload: &Payload) -> Result<Passphrase> {
    let bytes = payload.expose();
    match kind {
        SecretKind::Passphrase => {
            if std::str::from_utf8(bytes).is_err() {
                return Err(Error::invalid(
                    "passphrase secret",
                    "a passphrase secret must be UTF-8 text",
                ));
            }
            Ok(Passphrase::from_bytes(bytes.to_vec()))
        }
        _ => {
            let mut out = Zeroizing::new(vec![0u8; bytes.len() * 2]);
            // hex::encode_to_slice writes lower case and cannot fail on this length.
            hex::encode_to_slice(bytes, &mut out)
                .map_err(|e| Error::invalid("key bytes", e.to_string()))?;
            Ok(Passphrase(out))
        }
    }
}

/// The legacy (mangled) passphrase of old Nova/Cinder volumes: each byte as
/// lower-case hex without its leading zero (`0x05` -> `5`, `0x00` -> `0`).
///
/// Use it only to open a volume that the correct passphrase does not open,
/// then add the correct passphrase and remove this one.
pub fn legacy_passphrase(payload: &Payload) -> Passphrase {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(Vec::with_capacity(payload.len() * 2));
    for &b in payload.expose() {
        if b >= 0x10 {
            out.push(DIGITS[(b >> 4) as usize]);
        }
        out.push(DIGITS[(b & 0x0f) as usize]);
    }
    Passphrase(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_rule_matches_os_brick_examples() {
        let key = Payload::from(vec![0x00, 0x01, 0x0f, 0x10, 0xab, 0xff]);
        assert_eq!(
            passphrase_for(SecretKind::Symmetric, &key)
                .unwrap()
                .as_bytes(),
            b"00010f10abff"
        );
        assert_eq!(legacy_passphrase(&key).as_bytes(), b"01f10abff");
    }

    #[test]
    fn passphrase_kind_is_used_as_is_and_must_be_utf8() {
        let p = Payload::from("pä ss\n".as_bytes().to_vec());
        assert_eq!(
            passphrase_for(SecretKind::Passphrase, &p)
                .unwrap()
                .as_bytes(),
            "pä ss\n".as_bytes()
        );
        let bad = Payload::from(vec![0xff, 0xfe]);
        assert_eq!(
            passphrase_for(SecretKind::Passphrase, &bad)
                .unwrap_err()
                .kind(),
            crate::ErrorKind::InvalidInput
        );
    }

    proptest! {
        #[test]
        fn non_passphrase_kinds_are_two_lower_hex_digits_a_byte(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
            kind in proptest::sample::select(vec![
                SecretKind::Symmetric, SecretKind::Opaque, SecretKind::Private,
                SecretKind::Public, SecretKind::Certificate,
            ]),
        ) {
            let p = passphrase_for(kind, &Payload::from(bytes.clone())).unwrap();
            prop_assert_eq!(p.as_bytes().len(), bytes.len() * 2);
            for (i, b) in bytes.iter().enumerate() {
                let raw: &[u8] = p.as_bytes();
                let pair = std::str::from_utf8(&raw[2 * i..2 * i + 2]).unwrap();
                prop_assert_eq!(u8::from_str_radix(pair, 16).unwrap(), *b);
                prop_assert!(pair.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            }
        }

        #[test]
        fn legacy_equals_hex_with_leading_zero_of_each_byte_dropped(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let expected: String = bytes.iter().map(|b| format!("{b:x}")).collect();
            let legacy = legacy_passphrase(&Payload::from(bytes.clone()));
            prop_assert_eq!(legacy.as_bytes(), expected.as_bytes());
            let correct = passphrase_for(SecretKind::Symmetric, &Payload::from(bytes.clone())).unwrap();
            // They agree exactly when no byte is below 0x10.
            prop_assert_eq!(
                correct.as_bytes() == expected.as_bytes(),
                bytes.iter().all(|b| *b >= 0x10)
            );
        }

        #[test]
        fn passphrase_kind_round_trips_any_text(s in "\\PC{0,64}") {
            let p = passphrase_for(SecretKind::Passphrase, &Payload::from(s.clone().into_bytes())).unwrap();
            prop_assert_eq!(p.as_bytes(), s.as_bytes());
        }
    }
}

//! The encodings of asymmetric keys and certificates, as Castellan has them.
//!
//! Castellan's `PrivateKey`, `PublicKey` and `X509` objects hold DER:
//! PKCS#8 `PrivateKeyInfo`, `SubjectPublicKeyInfo` and an X.509 certificate.
//! Its Barbican backend converts them to PEM on store (Barbican's own format
//! for these kinds) and back to DER on get; its Vault backend keeps the DER.
//! keymgr does the same, so that a Python service and a Rust one see the same
//! bytes for the same secret:
//!
//! - [`normalize_der`] is what every backend applies on store, and the
//!   Barbican backend on get: DER or PEM in, the DER Castellan would hand its
//!   callers out. An RSA key in PKCS#1 or an EC key in SEC1 becomes PKCS#8 or
//!   `SubjectPublicKeyInfo`, as Castellan's re-serialisation does.
//! - [`to_pem`] is the PEM Castellan writes into Barbican.
//!
//! Other kinds pass through unchanged. Anything that is neither DER nor PEM
//! of the kind's structure is `InvalidInput` naming the kind.
//!
//! ```
//! use keymgr_core::{encoding, SecretKind, Payload};
//! // Opaque bytes are not touched.
//! let p = Payload::from(b"anything".to_vec());
//! assert_eq!(encoding::normalize_der(SecretKind::Opaque, &p).unwrap().expose(), b"anything");
//! // A certificate must be one.
//! assert!(encoding::normalize_der(SecretKind::Certificate, &p).is_err());
//! ```

use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode};
use zeroize::Zeroizing;

use crate::{Error, Payload, Result, SecretKind};

/// The PEM label Castellan writes for `kind`, or `None` for kinds stored as
/// they are.
pub fn pem_label(kind: SecretKind) -> Option<&'static str> {
    match kind {
        SecretKind::Private => Some("PRIVATE KEY"),
        SecretKind::Public => Some("PUBLIC KEY"),
        SecretKind::Certificate => Some("CERTIFICATE"),
        _ => None,
    }
}

/// The DER Castellan's objects hold, from DER or PEM of `kind` (see the
/// module documentation). Kinds without a structure are returned unchanged.
pub fn normalize_der(kind: SecretKind, payload: &Payload) -> Result<Payload> {
    if pem_label(kind).is_none() {
        return Ok(payload.clone());
    }
    let bad = |reason: String| Error::invalid(format!("{kind} payload"), reason);
    let bytes = payload.expose();
    let der: Zeroizing<Vec<u8>>;
    let (label, input): (Option<String>, &[u8]) = if looks_like_pem(bytes) {
        let text = trim_ascii(bytes);
        let (label, body) =
            der::pem::decode_vec(text).map_err(|e| bad(format!("not valid PEM: {e}")))?;
        der = Zeroizing::new(body);
        (Some(label.to_string()), der.as_slice())
    } else {
        (None, bytes)
    };
    let out = match kind {
        SecretKind::Certificate => certificate(label.as_deref(), input),
        SecretKind::Public => public_key(label.as_deref(), input),
        SecretKind::Private => private_key(label.as_deref(), input),
        _ => unreachable_kind(kind),
    };
    out.map(Payload::from).map_err(bad)
}

/// The PEM of a DER payload of `kind` as Castellan writes it into Barbican
/// (64-character lines, `\n` line ends, a final newline). Kinds without a
/// structure are returned unchanged.
pub fn to_pem(kind: SecretKind, der: &Payload) -> Result<Payload> {
    let Some(label) = pem_label(kind) else {
        return Ok(der.clone());
    };
    let pem =
        der::pem::encode_string(label, der::pem::LineEnding::LF, der.expose()).map_err(|e| {
            Error::invalid(
                format!("{kind} payload"),
                format!("cannot be PEM-encoded: {e}"),
            )
        })?;
    Ok(Payload::from(Zeroizing::new(pem.into_bytes())))
}

fn unreachable_kind(kind: SecretKind) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    Err(format!("{kind} has no DER structure"))
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    trim_ascii(bytes).starts_with(b"-----BEGIN ")
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn wrong_label(label: &str, expected: &str) -> String {
    format!("PEM label {label:?}: expected {expected}")
}

fn certificate(label: Option<&str>, der: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    if let Some(l) = label.filter(|l| *l != "CERTIFICATE") {
        return Err(wrong_label(l, "\"CERTIFICATE\""));
    }
    x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("neither an X.509 certificate in DER nor PEM: {e}"))?;
    Ok(Zeroizing::new(der.to_vec()))
}

fn public_key(label: Option<&str>, der: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    let spki = |der: &[u8]| {
        spki::SubjectPublicKeyInfoRef::from_der(der).map(|_| Zeroizing::new(der.to_vec()))
    };
    let pkcs1 = |der: &[u8]| -> der::Result<Zeroizing<Vec<u8>>> {
        pkcs1::RsaPublicKey::from_der(der)?;
        let info = spki::SubjectPublicKeyInfoRef {
            algorithm: rsa_algorithm(),
            subject_public_key: BitStringRef::from_bytes(der)?,
        };
        info.to_der().map(Zeroizing::new)
    };
    match label {
        Some("PUBLIC KEY") => spki(der).map_err(|e| format!("not a SubjectPublicKeyInfo: {e}")),
        Some("RSA PUBLIC KEY") => {
            pkcs1(der).map_err(|e| format!("not a PKCS#1 RSA public key: {e}"))
        }
        Some(l) => Err(wrong_label(l, "\"PUBLIC KEY\" or \"RSA PUBLIC KEY\"")),
        None => spki(der).or_else(|_| pkcs1(der)).map_err(|e| {
            format!(
                "neither a SubjectPublicKeyInfo nor a PKCS#1 RSA public key in DER, nor PEM: {e}"
            )
        }),
    }
}

fn private_key(label: Option<&str>, der: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    let pkcs8 =
        |der: &[u8]| pkcs8::PrivateKeyInfo::from_der(der).map(|_| Zeroizing::new(der.to_vec()));
    let pkcs1 = |der: &[u8]| -> der::Result<Zeroizing<Vec<u8>>> {
        pkcs1::RsaPrivateKey::from_der(der)?;
        pkcs8::PrivateKeyInfo::new(rsa_algorithm(), der)
            .to_der()
            .map(Zeroizing::new)
    };
    let sec1 = |der: &[u8]| -> der::Result<Zeroizing<Vec<u8>>> {
        let key = sec1::EcPrivateKey::from_der(der)?;
        let Some(sec1::EcParameters::NamedCurve(curve)) = key.parameters else {
            return Err(der::Tag::ObjectIdentifier.value_error());
        };
        // Inside PKCS#8 the curve is named by the algorithm, and OpenSSL
        // (hence Castellan) leaves it out of the inner key.
        let inner = Zeroizing::new(
            sec1::EcPrivateKey {
                private_key: key.private_key,
                parameters: None,
                public_key: key.public_key,
            }
            .to_der()?,
        );
        let algorithm = spki::AlgorithmIdentifierRef {
            oid: sec1::ALGORITHM_OID,
            parameters: Some(AnyRef::from(&curve)),
        };
        pkcs8::PrivateKeyInfo::new(algorithm, &inner)
            .to_der()
            .map(Zeroizing::new)
    };
    match label {
        Some("PRIVATE KEY") => pkcs8(der).map_err(|e| format!("not a PKCS#8 private key: {e}")),
        Some("RSA PRIVATE KEY") => {
            pkcs1(der).map_err(|e| format!("not a PKCS#1 RSA private key: {e}"))
        }
        Some("EC PRIVATE KEY") => {
            sec1(der).map_err(|e| format!("not a SEC1 EC private key with a named curve: {e}"))
        }
        Some("ENCRYPTED PRIVATE KEY") => {
            Err("an encrypted private key: store it decrypted, as Castellan does".into())
        }
        Some(l) => Err(wrong_label(
            l,
            "\"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\"",
        )),
        None => pkcs8(der)
            .or_else(|_| pkcs1(der))
            .or_else(|_| sec1(der))
            .map_err(|_| {
                "neither a PKCS#8, PKCS#1 RSA or SEC1 EC private key in DER, nor PEM".to_string()
            }),
    }
}

/// `rsaEncryption` with NULL parameters, as OpenSSL writes it.
fn rsa_algorithm() -> spki::AlgorithmIdentifierRef<'static> {
    spki::AlgorithmIdentifierRef {
        oid: pkcs1::ALGORITHM_OID,
        parameters: Some(AnyRef::NULL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_without_structure_pass_through() {
        for kind in [
            SecretKind::Symmetric,
            SecretKind::Passphrase,
            SecretKind::Opaque,
        ] {
            let p = Payload::from(b"-----BEGIN CERTIFICATE-----\nxx".to_vec());
            assert_eq!(normalize_der(kind, &p).unwrap().expose(), p.expose());
            assert_eq!(to_pem(kind, &p).unwrap().expose(), p.expose());
        }
    }

    #[test]
    fn garbage_is_invalid_input_naming_the_kind() {
        for kind in [
            SecretKind::Private,
            SecretKind::Public,
            SecretKind::Certificate,
        ] {
            for bad in [
                &b"\x30\x03\x02\x01"[..],
                b"hello",
                b"-----BEGIN X-----\nAAAA\n-----END X-----\n",
                b"\x00",
            ] {
                let e = normalize_der(kind, &Payload::from(bad.to_vec())).unwrap_err();
                assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
                assert!(e.to_string().contains(&format!("{kind} payload")), "{e}");
            }
        }
    }

    fn vec(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn norm(kind: SecretKind, bytes: &[u8]) -> Vec<u8> {
        normalize_der(kind, &Payload::from(bytes.to_vec()))
            .unwrap_or_else(|e| panic!("{kind}: {e}"))
            .expose()
            .to_vec()
    }

    #[test]
    fn der_is_kept_and_pem_becomes_the_same_der() {
        for (kind, file) in [
            (SecretKind::Private, "rsa1024.pkcs8.der"),
            (SecretKind::Private, "p256.pkcs8.der"),
            (SecretKind::Public, "rsa1024.spki.der"),
            (SecretKind::Public, "p256.spki.der"),
            (SecretKind::Certificate, "p256.cert.der"),
        ] {
            let der = vec(file);
            assert_eq!(norm(kind, &der), der, "{file}");
            let pem = to_pem(kind, &Payload::from(der.clone())).unwrap();
            let text = std::str::from_utf8(pem.expose()).unwrap();
            let label = pem_label(kind).unwrap();
            assert!(
                text.starts_with(&format!("-----BEGIN {label}-----\n")),
                "{text}"
            );
            assert!(
                text.ends_with(&format!("-----END {label}-----\n")),
                "{text}"
            );
            assert!(text.lines().all(|l| l.len() <= 64), "{text}");
            assert_eq!(norm(kind, pem.expose()), der, "{file} through PEM");
            // Leading and trailing white space around PEM is tolerated.
            let padded = format!("\n  {text}\n\n");
            assert_eq!(norm(kind, padded.as_bytes()), der);
        }
    }

    #[test]
    fn pkcs1_and_sec1_become_what_cryptography_writes() {
        // The expected DER is what Python's `cryptography` (Castellan's
        // library) gives for the same keys in PKCS#8 / SubjectPublicKeyInfo.
        assert_eq!(
            norm(SecretKind::Private, &vec("rsa1024.pkcs1.pem")),
            vec("rsa1024.pkcs8.der")
        );
        assert_eq!(
            norm(SecretKind::Public, &vec("rsa1024.pkcs1pub.pem")),
            vec("rsa1024.spki.der")
        );
        assert_eq!(
            norm(SecretKind::Private, &vec("p256.sec1.pem")),
            vec("p256.pkcs8.der")
        );
        // PKCS#1 as DER too.
        let (_, pkcs1) = der::pem::decode_vec(&vec("rsa1024.pkcs1.pem")).unwrap();
        assert_eq!(norm(SecretKind::Private, &pkcs1), vec("rsa1024.pkcs8.der"));
    }

    #[test]
    fn a_pem_of_another_kind_is_refused() {
        let cert = to_pem(
            SecretKind::Certificate,
            &Payload::from(vec("p256.cert.der")),
        )
        .unwrap();
        for kind in [SecretKind::Private, SecretKind::Public] {
            let e = normalize_der(kind, &cert).unwrap_err();
            assert!(e.to_string().contains("CERTIFICATE"), "{e}");
        }
        let key = Payload::from(vec("p256.pkcs8.der"));
        assert!(normalize_der(SecretKind::Certificate, &key).is_err());
        assert!(normalize_der(SecretKind::Public, &key).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), pem in proptest::bool::ANY) {
            let input = if pem {
                let mut v = b"-----BEGIN PRIVATE KEY-----\n".to_vec();
                v.extend_from_slice(&bytes);
                v
            } else { bytes };
            for kind in [SecretKind::Private, SecretKind::Public, SecretKind::Certificate] {
                let _ = normalize_der(kind, &Payload::from(input.clone()));
            }
        }
    }
}

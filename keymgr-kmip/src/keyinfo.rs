//! The KMIP Cryptographic Algorithm and Length of an asymmetric key, read
//! from its DER (PKCS#8 private key or SubjectPublicKeyInfo): KMIP's
//! Register of a Private Key or Public Key carries both in the Key Block.

use der::asn1::ObjectIdentifier as Oid;
use der::Decode;
use keymgr_core::{Error, Result, SecretKind};

use crate::model::alg;

const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
const P521: Oid = Oid::new_unwrap("1.3.132.0.35");

fn bits(unsigned_be: &[u8]) -> i32 {
    let trimmed: Vec<u8> = unsigned_be
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    match trimmed.first() {
        Some(b) => ((trimmed.len() - 1) * 8) as i32 + (8 - b.leading_zeros() as i32),
        None => 0,
    }
}

fn curve_bits(params: Option<der::asn1::AnyRef<'_>>, kind: SecretKind) -> Result<i32> {
    let curve = params
        .and_then(|p| p.decode_as::<Oid>().ok())
        .ok_or_else(|| Error::invalid(format!("{kind} key"), "EC key without a named curve"))?;
    match curve {
        c if c == P256 => Ok(256),
        c if c == P384 => Ok(384),
        c if c == P521 => Ok(521),
        c => Err(Error::invalid(
            format!("{kind} key"),
            format!("EC curve {c} has no KMIP length here (P-256, P-384, P-521)"),
        )),
    }
}

/// (Cryptographic Algorithm, Cryptographic Length) of a PKCS#8 private key
/// or a SubjectPublicKeyInfo public key (RSA or EC on P-256/384/521).
pub(crate) fn algorithm_and_length(kind: SecretKind, der: &[u8]) -> Result<(u32, i32)> {
    let bad = |e: String| Error::invalid(format!("{kind} key"), e);
    match kind {
        SecretKind::Private => {
            let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| bad(e.to_string()))?;
            match info.algorithm.oid {
                o if o == RSA => {
                    let k = pkcs1::RsaPrivateKey::from_der(info.private_key)
                        .map_err(|e| bad(e.to_string()))?;
                    Ok((alg::RSA, bits(k.modulus.as_bytes())))
                }
                o if o == EC_PUBLIC_KEY => {
                    Ok((alg::EC, curve_bits(info.algorithm.parameters, kind)?))
                }
                o => Err(bad(format!(
                    "key algorithm {o} has no KMIP mapping here (RSA, EC)"
                ))),
            }
        }
        SecretKind::Public => {
            let info =
                spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(e.to_string()))?;
            match info.algorithm.oid {
                o if o == RSA => {
                    let raw = info
                        .subject_public_key
                        .as_bytes()
                        .ok_or_else(|| bad("public key bits are not whole bytes".into()))?;
                    let k = pkcs1::RsaPublicKey::from_der(raw).map_err(|e| bad(e.to_string()))?;
                    Ok((alg::RSA, bits(k.modulus.as_bytes())))
                }
                o if o == EC_PUBLIC_KEY => {
                    Ok((alg::EC, curve_bits(info.algorithm.parameters, kind)?))
                }
                o => Err(bad(format!(
                    "key algorithm {o} has no KMIP mapping here (RSA, EC)"
                ))),
            }
        }
        _ => Err(bad("not an asymmetric key".into())),
    }
}

/// keymgr's lowercase name of a KMIP Cryptographic Algorithm.
pub(crate) fn algorithm_name(a: u32) -> Option<&'static str> {
    Some(match a {
        0x01 => "des",
        0x02 => "3des",
        alg::AES => "aes",
        alg::RSA => "rsa",
        alg::DSA => "dsa",
        alg::ECDSA => "ecdsa",
        alg::EC => "ec",
        _ => return None,
    })
}

/// The KMIP Cryptographic Algorithm of a symmetric key algorithm name.
pub(crate) fn symmetric_algorithm(name: &str) -> Option<u32> {
    match name.to_ascii_lowercase().as_str() {
        "aes" => Some(alg::AES),
        "des" => Some(0x01),
        "3des" | "tripledes" | "des3" => Some(0x02),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_vectors_map() {
        let p = include_bytes!("../../keymgr-core/testdata/rsa1024.pkcs8.der");
        assert_eq!(
            algorithm_and_length(SecretKind::Private, p).unwrap(),
            (alg::RSA, 1024)
        );
        let p = include_bytes!("../../keymgr-core/testdata/p256.pkcs8.der");
        assert_eq!(
            algorithm_and_length(SecretKind::Private, p).unwrap(),
            (alg::EC, 256)
        );
        let p = include_bytes!("../../keymgr-core/testdata/rsa1024.spki.der");
        assert_eq!(
            algorithm_and_length(SecretKind::Public, p).unwrap(),
            (alg::RSA, 1024)
        );
        let p = include_bytes!("../../keymgr-core/testdata/p256.spki.der");
        assert_eq!(
            algorithm_and_length(SecretKind::Public, p).unwrap(),
            (alg::EC, 256)
        );
        assert!(algorithm_and_length(SecretKind::Public, b"junk").is_err());
    }
}

//! The kinds of secret a key manager holds.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The kind of a secret: Barbican's and Castellan's set.
///
/// The kind travels with the secret and decides how it becomes a LUKS
/// passphrase (see [`crate::passphrase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    /// A symmetric key (Castellan `SymmetricKey`).
    Symmetric,
    /// A passphrase: text used as is.
    Passphrase,
    /// Opaque bytes.
    Opaque,
    /// A private key.
    Private,
    /// A public key.
    Public,
    /// An X.509 certificate.
    Certificate,
}

impl SecretKind {
    /// Every kind, in a fixed order.
    pub const ALL: [SecretKind; 6] = [
        SecretKind::Symmetric,
        SecretKind::Passphrase,
        SecretKind::Opaque,
        SecretKind::Private,
        SecretKind::Public,
        SecretKind::Certificate,
    ];

    /// The name Barbican and Castellan use (`symmetric`, `passphrase`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Symmetric => "symmetric",
            SecretKind::Passphrase => "passphrase",
            SecretKind::Opaque => "opaque",
            SecretKind::Private => "private",
            SecretKind::Public => "public",
            SecretKind::Certificate => "certificate",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretKind {
    type Err = Error;

    /// Parses the Barbican names, case-insensitively; `passphrase`'s
    /// Castellan class name `passphrase` and the key names `symmetric_key`,
    /// `private_key`, `public_key` are accepted too.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "symmetric" | "symmetric_key" | "symmetrickey" => Ok(SecretKind::Symmetric),
            "passphrase" => Ok(SecretKind::Passphrase),
            "opaque" | "opaque_data" | "opaquedata" => Ok(SecretKind::Opaque),
            "private" | "private_key" | "privatekey" => Ok(SecretKind::Private),
            "public" | "public_key" | "publickey" => Ok(SecretKind::Public),
            "certificate" | "x509" | "x_509" => Ok(SecretKind::Certificate),
            _ => Err(Error::invalid(
                format!("secret kind {s:?}"),
                "expected one of symmetric, passphrase, opaque, private, public, certificate",
            )),
        }
    }
}

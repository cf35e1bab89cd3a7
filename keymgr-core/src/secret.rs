//! Secrets, their metadata and their consumers.

use std::fmt;

use crate::{OffsetDateTime, Payload, SecretId, SecretKind};

/// A service resource that uses a secret (Barbican's "secret consumer").
///
/// While a secret has consumers, deleting it without `force` is a
/// [`crate::Error::Conflict`].
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Consumer {
    /// The consuming service, e.g. `cinder`, `manila`, `glance`.
    pub service: String,
    /// The resource type, e.g. `volume`, `share`, `image`.
    pub resource_type: String,
    /// The resource id.
    pub resource_id: String,
}

impl Consumer {
    /// A consumer from its three parts.
    pub fn new(
        service: impl Into<String>,
        resource_type: impl Into<String>,
        resource_id: impl Into<String>,
    ) -> Self {
        Consumer {
            service: service.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
        }
    }
}

/// Everything known about a secret except its payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretMetadata {
    /// The id.
    pub id: SecretId,
    /// The kind.
    pub kind: SecretKind,
    /// Optional name.
    pub name: Option<String>,
    /// Algorithm, e.g. `aes`.
    pub algorithm: Option<String>,
    /// Length in bits, e.g. 256.
    pub bit_length: Option<u32>,
    /// Mode, e.g. `xts` or `cbc`.
    pub mode: Option<String>,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expiration: Option<OffsetDateTime>,
    /// The resources that use it.
    pub consumers: Vec<Consumer>,
}

/// A secret to store: the caller's own key material and its description.
///
/// ```
/// use keymgr_core::{NewSecret, SecretKind};
/// let s = NewSecret::new(SecretKind::Symmetric, vec![7u8; 32]).named("vol-1");
/// assert_eq!(s.bit_length, Some(256));
/// assert!(!format!("{s:?}").contains("7, 7"));
/// ```
#[derive(Clone)]
pub struct NewSecret {
    /// The kind.
    pub kind: SecretKind,
    /// The bytes.
    pub payload: Payload,
    /// Optional name.
    pub name: Option<String>,
    /// Algorithm, e.g. `aes`.
    pub algorithm: Option<String>,
    /// Length in bits.
    pub bit_length: Option<u32>,
    /// Mode.
    pub mode: Option<String>,
    /// Expiration.
    pub expiration: Option<OffsetDateTime>,
}

impl NewSecret {
    /// A secret of `kind` holding `payload`. For symmetric keys the
    /// algorithm defaults to `aes` and the bit length to the payload's.
    pub fn new(kind: SecretKind, payload: impl Into<Payload>) -> Self {
        let payload = payload.into();
        let (algorithm, bit_length) = match kind {
            SecretKind::Symmetric => (Some("aes".to_string()), Some(payload.len() as u32 * 8)),
            _ => (None, None),
        };
        NewSecret {
            kind,
            payload,
            name: None,
            algorithm,
            bit_length,
            mode: None,
            expiration: None,
        }
    }

    /// The same secret with a name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks what every backend must refuse: an empty payload, a
    /// passphrase that is not UTF-8, a past expiration.
    pub fn validate(&self) -> crate::Result<()> {
        if self.payload.is_empty() {
            return Err(crate::Error::invalid(
                "secret payload",
                "the payload is empty",
            ));
        }
        if self.kind == SecretKind::Passphrase
            && std::str::from_utf8(self.payload.expose()).is_err()
        {
            return Err(crate::Error::invalid(
                "passphrase payload",
                "a passphrase must be UTF-8 text",
            ));
        }
        if let Some(exp) = self.expiration {
            if exp <= OffsetDateTime::now_utc() {
                return Err(crate::Error::invalid(
                    "secret expiration",
                    "the expiration is in the past",
                ));
            }
        }
        Ok(())
    }

    /// [`NewSecret::validate`]s the secret and puts a private key, public
    /// key or certificate into the DER form Castellan's objects hold (PEM,
    /// PKCS#1 and SEC1 are converted; see [`crate::encoding`]). Every
    /// backend stores what this returns.
    pub fn into_normalized(mut self) -> crate::Result<Self> {
        self.validate()?;
        self.payload = crate::encoding::normalize_der(self.kind, &self.payload)?;
        Ok(self)
    }

    /// A copy of a fetched secret for storing again (used by clone):
    /// same kind, payload, name, algorithm, bit length and mode.
    pub fn from_secret(secret: &Secret) -> Self {
        NewSecret {
            kind: secret.metadata.kind,
            payload: secret.payload.clone(),
            name: secret.metadata.name.clone(),
            algorithm: secret.metadata.algorithm.clone(),
            bit_length: secret.metadata.bit_length,
            mode: secret.metadata.mode.clone(),
            expiration: None,
        }
    }
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSecret")
            .field("kind", &self.kind)
            .field("payload", &self.payload)
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("bit_length", &self.bit_length)
            .field("mode", &self.mode)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// A fetched secret: metadata and payload.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The metadata.
    pub metadata: SecretMetadata,
    /// The bytes (redacted in `Debug`).
    pub payload: Payload,
}

impl Secret {
    /// The id.
    pub fn id(&self) -> &SecretId {
        &self.metadata.id
    }

    /// The kind.
    pub fn kind(&self) -> SecretKind {
        self.metadata.kind
    }
}

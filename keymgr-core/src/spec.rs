//! What to generate when a backend creates a key.

use crate::{Error, OffsetDateTime, Result};

/// The request of [`crate::KeyManager::create_key`]: a symmetric key.
///
/// Only algorithm `aes` with 128, 192, 256 or 512 bits is accepted
/// (512 bits is the two 256-bit halves of AES-256-XTS).
///
/// ```
/// use keymgr_core::KeySpec;
/// assert!(KeySpec::aes(256).validate().is_ok());
/// assert!(KeySpec::aes(100).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// Algorithm name; only `aes` (any case) is accepted.
    pub algorithm: String,
    /// Key length in bits.
    pub bit_length: u32,
    /// Optional mode label stored with the key (e.g. `xts`, `cbc`).
    pub mode: Option<String>,
    /// Optional name.
    pub name: Option<String>,
    /// Optional expiration.
    pub expiration: Option<OffsetDateTime>,
}

impl KeySpec {
    /// An AES key of `bit_length` bits, no name, no mode.
    pub fn aes(bit_length: u32) -> Self {
        KeySpec {
            algorithm: "aes".into(),
            bit_length,
            mode: None,
            name: None,
            expiration: None,
        }
    }

    /// The same spec with a name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same spec with a mode label.
    pub fn with_mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }

    /// Checks the algorithm and length, returning `InvalidInput` naming the
    /// field that is wrong.
    pub fn validate(&self) -> Result<()> {
        if !self.algorithm.eq_ignore_ascii_case("aes") {
            return Err(Error::invalid(
                format!("key algorithm {:?}", self.algorithm),
                "only \"aes\" keys can be generated",
            ));
        }
        if !matches!(self.bit_length, 128 | 192 | 256 | 512) {
            return Err(Error::invalid(
                format!("key bit length {}", self.bit_length),
                "AES keys are 128, 192, 256 or 512 (XTS) bits",
            ));
        }
        if let Some(exp) = self.expiration {
            if exp <= OffsetDateTime::now_utc() {
                return Err(Error::invalid(
                    "key expiration",
                    "the expiration is in the past",
                ));
            }
        }
        Ok(())
    }

    /// Key length in bytes.
    pub fn byte_len(&self) -> usize {
        self.bit_length as usize / 8
    }
}

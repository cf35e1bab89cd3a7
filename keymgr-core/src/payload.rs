//! Secret payload bytes, kept in a zeroizing box.

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice};

/// The bytes of a secret.
///
/// Held in a [`secrecy::SecretSlice`], zeroized when dropped, and never
/// shown by `Debug` (which prints only the length). Read the bytes with
/// [`Payload::expose`], and only where they are needed.
///
/// ```
/// use keymgr_core::Payload;
/// let p = Payload::from(vec![1, 2, 3]);
/// assert_eq!(p.expose(), &[1, 2, 3]);
/// assert_eq!(format!("{p:?}"), "Payload([REDACTED 3 bytes])");
/// ```
pub struct Payload(SecretSlice<u8>);

impl Payload {
    /// Copies `bytes` into a new payload.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Payload(SecretSlice::from(bytes.to_vec()))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl From<Vec<u8>> for Payload {
    /// Takes the vector without copying; it is zeroized with the payload.
    fn from(v: Vec<u8>) -> Self {
        Payload(SecretSlice::from(v))
    }
}

impl From<zeroize::Zeroizing<Vec<u8>>> for Payload {
    fn from(mut v: zeroize::Zeroizing<Vec<u8>>) -> Self {
        Payload(SecretSlice::from(std::mem::take(&mut *v)))
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Payload::copy_from(self.expose())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload([REDACTED {} bytes])", self.len())
    }
}

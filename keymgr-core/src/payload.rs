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

/// The bytes of `v` in an exact-size box, leaving no copy behind.
///
/// `Vec::into_boxed_slice` shrinks a vector with spare capacity (as
/// `read_to_end`, base64 decoding or JSON parsing leave them) by
/// reallocating, which may free the old block with the bytes still in it.
/// Such a vector is copied instead, and wiped.
fn exact_box(mut v: Vec<u8>) -> Box<[u8]> {
    if v.len() == v.capacity() {
        return v.into_boxed_slice();
    }
    let exact = Box::<[u8]>::from(v.as_slice());
    zeroize::Zeroize::zeroize(&mut v);
    exact
}

impl From<Vec<u8>> for Payload {
    /// Takes the vector, without copying when it has no spare capacity
    /// (otherwise its bytes are copied into an exact-size buffer and the
    /// vector is wiped); it is zeroized with the payload.
    fn from(v: Vec<u8>) -> Self {
        Payload(SecretSlice::from(exact_box(v)))
    }
}

impl From<zeroize::Zeroizing<Vec<u8>>> for Payload {
    fn from(mut v: zeroize::Zeroizing<Vec<u8>>) -> Self {
        Payload(SecretSlice::from(exact_box(std::mem::take(&mut *v))))
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

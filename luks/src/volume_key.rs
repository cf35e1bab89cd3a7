//! The volume key: the key of the data segment, recovered from a keyslot or given by
//! the user. Zeroized on drop, never printed.

use zeroize::Zeroizing;

/// A volume key (the key of the data segment). Zeroized on drop, never printed.
#[derive(Clone)]
pub struct VolumeKey(pub(crate) Zeroizing<Vec<u8>>);

impl VolumeKey {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> VolumeKey {
        VolumeKey(Zeroizing::new(bytes))
    }
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VolumeKey(<{} bytes redacted>)", self.0.len())
    }
}

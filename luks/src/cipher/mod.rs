//! Sector ciphers: the encryption of LUKS data segments and keyslot areas.
//!
//! CONTRACT (fixed by the lead; the implementation is owned by the cipher work):
//!
//! ```ignore
//! pub struct SectorCipher { .. }            // Send + Sync, key zeroized on drop, Debug hides key
//! impl SectorCipher {
//!     /// `cipher` and `mode` as LUKS names them: ("aes", "xts-plain64"), ("aes", "cbc-essiv:sha256"),
//!     /// ("aes", "xts-plain"), ("aes", "cbc-plain64") ...; `key` is the whole volume/keyslot key
//!     /// (for XTS both halves: 32 or 64 bytes).
//!     pub fn new(cipher: &str, mode: &str, key: &[u8]) -> Result<SectorCipher, CipherError>;
//!     /// Encrypt whole sectors in place. `buf.len()` must be a multiple of `sector_size`
//!     /// (512..=4096, power of two). Sector i of `buf` uses IV number
//!     /// `first_iv + i * (sector_size / 512)` when `iv_in_512_units`, else `first_iv + i`.
//!     pub fn encrypt_sectors(&self, buf: &mut [u8], sector_size: usize, first_iv: u64, iv_in_512_units: bool) -> Result<(), CipherError>;
//!     pub fn decrypt_sectors(&self, buf: &mut [u8], sector_size: usize, first_iv: u64, iv_in_512_units: bool) -> Result<(), CipherError>;
//!     pub fn key_len(&self) -> usize;
//! }
//! #[derive(Debug, thiserror::Error)] pub enum CipherError { Unsupported{..}, KeySize{..}, Length{..} }
//! ```

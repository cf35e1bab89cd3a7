//! Random bytes from the operating system (volume keys, salts, wipe patterns).

use crate::error::{Error, Result};

/// `len` random bytes.
pub(crate) fn random(len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).map_err(|e| Error::Unsupported(format!("RNG: {e}")))?;
    Ok(v)
}

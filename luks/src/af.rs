//! Anti-forensic information splitter (AF split/merge) as LUKS defines it.
//!
//! A key of `n` bytes is expanded into `stripes * n` bytes: `stripes - 1`
//! random blocks and a last block equal to the key XOR the hash-diffused
//! XOR-chain of the random blocks. Diffusion hashes the block in
//! hash-sized pieces, each prefixed with its big-endian 32-bit index,
//! exactly as cryptsetup's `AF_split`/`AF_merge` do.

use crate::error::{Error, Result};
use crate::hash::HashAlg;
use zeroize::Zeroizing;

/// The number of stripes LUKS uses (the only value cryptsetup accepts).
pub(crate) const STRIPES: u32 = 4000;

fn diffuse(block: &mut [u8], hash: HashAlg) {
    let ds = hash.output_len();
    let mut out = Zeroizing::new([0u8; 64]);
    for (i, chunk) in block.chunks_mut(ds).enumerate() {
        let idx = (i as u32).to_be_bytes();
        hash.digest_parts(&[&idx, chunk], &mut out[..ds]);
        let n = chunk.len();
        chunk.copy_from_slice(&out[..n]);
    }
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// Size in bytes of the split material for a key of `key_len` bytes.
pub(crate) fn split_len(key_len: usize, stripes: u32) -> Option<usize> {
    key_len.checked_mul(stripes as usize)
}

/// Splits `key` into `stripes` blocks (random filler from the OS RNG).
pub(crate) fn split(key: &[u8], stripes: u32, hash: HashAlg) -> Result<Zeroizing<Vec<u8>>> {
    let n = key.len();
    let total = split_len(n, stripes).ok_or_else(|| Error::Unsupported("AF size".into()))?;
    if stripes == 0 || n == 0 {
        return Err(Error::Unsupported("AF split of an empty key".into()));
    }
    let mut out = Zeroizing::new(vec![0u8; total]);
    let last = (stripes as usize - 1) * n;
    crate::random::fill(&mut out[..last])?;
    let mut acc = Zeroizing::new(vec![0u8; n]);
    for block in out[..last].chunks(n) {
        xor_into(&mut acc, block);
        diffuse(&mut acc, hash);
    }
    xor_into(&mut acc, key);
    out[last..].copy_from_slice(&acc);
    Ok(out)
}

/// Merges split material back into a key of `key_len` bytes.
pub(crate) fn merge(
    material: &[u8],
    key_len: usize,
    stripes: u32,
    hash: HashAlg,
) -> Result<Zeroizing<Vec<u8>>> {
    let total = split_len(key_len, stripes).ok_or_else(|| Error::Unsupported("AF size".into()))?;
    if stripes == 0 || key_len == 0 || material.len() < total {
        return Err(Error::Unsupported("AF material too short".into()));
    }
    let last = (stripes as usize - 1) * key_len;
    let mut acc = Zeroizing::new(vec![0u8; key_len]);
    for block in material[..last].chunks(key_len) {
        xor_into(&mut acc, block);
        diffuse(&mut acc, hash);
    }
    xor_into(&mut acc, &material[last..total]);
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn split_merge_round_trip(key in proptest::collection::vec(any::<u8>(), 1..=64),
                                  stripes in 1u32..50,
                                  h in 0usize..3) {
            let hash = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512][h];
            let m = split(&key, stripes, hash).unwrap();
            prop_assert_eq!(m.len(), key.len() * stripes as usize);
            let back = merge(&m, key.len(), stripes, hash).unwrap();
            prop_assert_eq!(&back[..], &key[..]);
            if stripes > 1 && key.len() >= 16 {
                // Flipping a bit in the first stripe changes the result. Only
                // asserted for keys of 16+ bytes: diffusion truncates a hash to
                // the key length, so a 1-byte key collides with odds 1/256.
                let mut m2 = m.clone();
                m2[0] ^= 1;
                let bad = merge(&m2, key.len(), stripes, hash).unwrap();
                prop_assert_ne!(&bad[..], &key[..]);
            }
        }
    }

    #[test]
    fn full_stripes_round_trip() {
        let key = [7u8; 64];
        let m = split(&key, STRIPES, HashAlg::Sha256).unwrap();
        assert_eq!(
            &merge(&m, 64, STRIPES, HashAlg::Sha256).unwrap()[..],
            &key[..]
        );
    }

    #[test]
    fn diffuse_known_answer() {
        // one-stripe split is the identity; two stripes: last = key ^ H(be32(0)||r) piecewise
        let key = [0u8; 20];
        let m = split(&key, 2, HashAlg::Sha1).unwrap();
        let mut expect = [0u8; 20];
        HashAlg::Sha1.digest_parts(&[&[0, 0, 0, 0], &m[..20]], &mut expect);
        assert_eq!(&m[20..], &expect[..]);
    }
}

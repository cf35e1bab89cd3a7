//! AES-CBC sector encryption with `plain`, `plain64`, `plain64be` and
//! `essiv:sha256` IVs (pure Rust).
//!
//! Encryption is sequential inside a sector (CBC), so one backend call runs
//! the whole buffer block by block without re-entering the dispatcher;
//! decryption is parallel: all blocks of a sector go through the multi-block
//! API, then each is XORed with the previous ciphertext block.

use super::IvSeq;
use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt,
    BlockSizeUser, InvalidLength, KeyInit,
};
use aes::Aes256;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

type B16 = Array<u8, U16>;

/// Lanes of CBC encryption times the sector size (see `EncJob::call`).
const LANES_BYTES: usize = 64 * 1024;

/// Sectors whose IVs are computed in one batch.
const IV_BATCH: usize = 256;

pub(crate) struct Cbc<C> {
    c: C,
    /// ESSIV: AES-256 keyed with SHA-256 of the volume key. Boxed so that a
    /// `Cbc` without ESSIV has no unused space: an inline `None` would leave
    /// a 480-byte hole that a move into the heap fills with stale stack bytes
    /// (key material among them) which no `Drop` wipes
    /// (tests/tests/hygiene_zeroize.rs found it).
    essiv: Option<Box<Aes256>>,
}

struct EncJob<'a> {
    buf: &'a mut [u8],
    sector_size: usize,
    ivs: &'a [B16],
}

impl BlockSizeUser for EncJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for EncJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        // CBC is sequential inside a sector, but sectors are independent:
        // encrypt block j of up to `lanes` sectors at once through the
        // backend's parallel path (lanes beyond the last sector are padding).
        let ss = self.sector_size;
        // Sectors are `ss` bytes apart, so block j of every lane maps to the
        // same cache set: with large sectors, fewer lanes avoid L1 thrashing.
        let lanes = B::ParBlocksSize::USIZE.min(LANES_BYTES / ss).max(1);
        let bps = ss / 16;
        let mut prev: Array<B16, B::ParBlocksSize> = Array::default();
        for (group, ivs) in self.buf.chunks_mut(lanes * ss).zip(self.ivs.chunks(lanes)) {
            let n = group.len() / ss;
            if n < 2 {
                for (sector, iv) in group.chunks_exact_mut(ss).zip(ivs) {
                    let (blocks, _) = B16::slice_as_chunks_mut(sector);
                    let mut p = u128::from_le_bytes(iv.0);
                    for b in blocks {
                        b.0 = (u128::from_le_bytes(b.0) ^ p).to_le_bytes();
                        backend.encrypt_block_inplace(b);
                        p = u128::from_le_bytes(b.0);
                    }
                }
                continue;
            }
            for (l, iv) in ivs.iter().enumerate().take(n) {
                prev[l] = *iv;
            }
            for j in 0..bps {
                for l in 0..n {
                    let at = l * ss + j * 16;
                    let x = u128::from_le_bytes(group[at..at + 16].try_into().unwrap_or_default());
                    prev[l].0 = (x ^ u128::from_le_bytes(prev[l].0)).to_le_bytes();
                }
                backend.encrypt_par_blocks_inplace(&mut prev);
                for l in 0..n {
                    let at = l * ss + j * 16;
                    group[at..at + 16].copy_from_slice(&prev[l].0);
                }
            }
        }
        for p in prev.iter_mut() {
            p.0.zeroize();
        }
    }
}

impl<C> Cbc<C>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit + BlockSizeUser<BlockSize = U16>,
{
    /// `c` is the expanded data key; `key` the raw key (hashed for ESSIV).
    pub(crate) fn new(c: C, key: &[u8], essiv: bool) -> Result<Self, InvalidLength> {
        let essiv = if essiv {
            let mut salt = Sha256::digest(key);
            let e = Aes256::new_from_slice(&salt);
            salt.as_mut_slice().zeroize();
            Some(Box::new(e?))
        } else {
            None
        };
        Ok(Cbc { c, essiv })
    }

    pub(crate) fn process(&self, buf: &mut [u8], sector_size: usize, ivs: &IvSeq, encrypt: bool) {
        if !sector_size.is_multiple_of(16) || sector_size == 0 || sector_size > 4096 {
            return;
        }
        let mut iv = [B16::default(); IV_BATCH];
        let mut first = 0usize;
        for chunk in buf.chunks_mut(IV_BATCH * sector_size) {
            let n = chunk.len() / sector_size;
            for (i, v) in iv[..n].iter_mut().enumerate() {
                *v = B16::from(ivs.iv(first + i));
            }
            if let Some(e) = &self.essiv {
                e.encrypt_blocks(&mut iv[..n]);
            }
            if encrypt {
                self.c.encrypt_with_backend(EncJob {
                    buf: chunk,
                    sector_size,
                    ivs: &iv[..n],
                });
            } else {
                let mut prev = [0u128; 256];
                for (sector, v) in chunk.chunks_exact_mut(sector_size).zip(&iv[..n]) {
                    let (blocks, _) = B16::slice_as_chunks_mut(sector);
                    prev[0] = u128::from_le_bytes(v.0);
                    for j in 1..blocks.len() {
                        prev[j] = u128::from_le_bytes(blocks[j - 1].0);
                    }
                    self.c.decrypt_blocks(blocks);
                    for (b, p) in blocks.iter_mut().zip(&prev) {
                        b.0 = (u128::from_le_bytes(b.0) ^ p).to_le_bytes();
                    }
                }
            }
            first += n;
        }
        for v in iv.iter_mut() {
            v.0.zeroize();
        }
    }
}

//! Pure-Rust XTS (IEEE 1619) over the `aes` crate, whole sectors at a time.
//!
//! Per call: the initial tweaks `T0 = AES(k2, IV)` of up to [`TWEAK_BATCH`]
//! sectors are computed with one multi-block call; then one backend call of
//! the data key processes all those sectors. Inside it, blocks are handled in
//! groups of up to 256 (4 KiB, L1-resident): the tweaks of the group are
//! computed on `u128` (eight independent chains of multiplication by x^8, so
//! they do not serialize on one dependency chain), XORed in, the group goes
//! through the backend's parallel-block function (VAES-512: 64 blocks per
//! call), and the tweaks are XORed again. Everything inside the backend call
//! is inlined into the backend's `#[target_feature]` function, so the XORs are
//! vectorized with the same instruction set as the AES rounds.

use super::IvSeq;
use aes::cipher::array::{Array, ArraySize};
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InvalidLength, KeyInit,
};

type B16 = Array<u8, U16>;

/// Sectors whose initial tweaks are computed in one batch.
const TWEAK_BATCH: usize = 256;
/// Blocks per group (4 KiB).
const GROUP_BLOCKS: usize = 256;

/// Multiplies a tweak by x (alpha) in GF(2^128), little-endian convention of IEEE 1619.
#[inline(always)]
pub(crate) fn mul_x(t: u128) -> u128 {
    let carry = ((t as i128) >> 127) as u128 & 0x87;
    (t << 1) ^ carry
}

/// Writes the tweaks `t0 * x^j` of the blocks of one sector into `tw` and
/// XORs them into `data` (both the sector's length, a multiple of 16).
///
/// Eight consecutive tweaks are kept as separate 64-bit halves (`lo`, `hi`),
/// and the next eight are each the one eight blocks back times x^8: eight
/// independent lanes of shifts and XORs, which the compiler turns into
/// vector instructions, instead of one long carry chain.
#[inline(always)]
fn tweak_xor_in(data: &mut [u8], tw: &mut [u8], t0: u128) {
    let mut lo = [0u64; 8];
    let mut hi = [0u64; 8];
    let mut t = t0;
    for k in 0..8 {
        lo[k] = t as u64;
        hi[k] = (t >> 64) as u64;
        t = mul_x(t);
    }
    let mut dc = data.chunks_exact_mut(128);
    let mut wc = tw.chunks_exact_mut(128);
    for (d, w) in (&mut dc).zip(&mut wc) {
        for k in 0..8 {
            // XOR from registers, not by reloading `w` (a wide load of bytes
            // just stored in pieces stalls on store forwarding).
            w[16 * k..16 * k + 8].copy_from_slice(&lo[k].to_le_bytes());
            w[16 * k + 8..16 * k + 16].copy_from_slice(&hi[k].to_le_bytes());
            let a =
                u64::from_le_bytes(d[16 * k..16 * k + 8].try_into().unwrap_or_default()) ^ lo[k];
            let b = u64::from_le_bytes(d[16 * k + 8..16 * k + 16].try_into().unwrap_or_default())
                ^ hi[k];
            d[16 * k..16 * k + 8].copy_from_slice(&a.to_le_bytes());
            d[16 * k + 8..16 * k + 16].copy_from_slice(&b.to_le_bytes());
        }
        for k in 0..8 {
            // Multiply lane k by x^8: shift left 8 bits, reduce the 8 bits
            // shifted out with x^128 = x^7 + x^2 + x + 1.
            let c = hi[k] >> 56;
            hi[k] = (hi[k] << 8) | (lo[k] >> 56);
            lo[k] = (lo[k] << 8) ^ c ^ (c << 1) ^ (c << 2) ^ (c << 7);
        }
    }
    // Sectors shorter than 8 blocks or not a multiple of 8 blocks (only the
    // 32-byte IEEE data units in tests).
    let (d, w) = (dc.into_remainder(), wc.into_remainder());
    for (k, (db, wb)) in d
        .chunks_exact_mut(16)
        .zip(w.chunks_exact_mut(16))
        .enumerate()
        .take(8)
    {
        wb[..8].copy_from_slice(&lo[k].to_le_bytes());
        wb[8..].copy_from_slice(&hi[k].to_le_bytes());
        for (x, y) in db.iter_mut().zip(wb.iter()) {
            *x ^= *y;
        }
    }
}

/// One backend call's worth of work: whole sectors and their initial tweaks.
struct Job<'a> {
    buf: &'a mut [u8],
    sector_size: usize,
    t0: &'a [B16],
}

#[inline(always)]
fn run_job<P: ArraySize>(job: Job<'_>, mut par: impl FnMut(&mut Array<B16, P>)) {
    let bps = job.sector_size / 16;
    if bps == 0 {
        return;
    }
    let ss = job.sector_size;
    let sectors_per_group = (GROUP_BLOCKS / bps).max(1);
    let mut tw = [0u8; GROUP_BLOCKS * 16];
    let (blocks, _) = B16::slice_as_chunks_mut(job.buf);
    for (g, group) in blocks.chunks_mut(sectors_per_group * bps).enumerate() {
        let bytes = group.len() * 16;
        let flat = B16::slice_as_flattened_mut(group);
        for (s, (d, w)) in flat
            .chunks_mut(ss)
            .zip(tw[..bytes].chunks_mut(ss))
            .enumerate()
        {
            let t0 = job
                .t0
                .get(g * sectors_per_group + s)
                .map_or(0, |b| u128::from_le_bytes(b.0));
            tweak_xor_in(d, w, t0);
        }
        let (pars, tail) = Array::<B16, P>::slice_as_chunks_mut(group);
        for p in pars {
            par(p);
        }
        if !tail.is_empty() {
            // Pad the tail to a full parallel batch: one wide call is cheaper
            // than one-block-at-a-time rounds.
            let mut tmp: Array<B16, P> = Array::default();
            tmp[..tail.len()].copy_from_slice(tail);
            par(&mut tmp);
            let n = tail.len();
            tail.copy_from_slice(&tmp[..n]);
        }
        let flat = B16::slice_as_flattened_mut(group);
        for (x, y) in flat.iter_mut().zip(&tw[..bytes]) {
            *x ^= *y;
        }
    }
    zeroize::Zeroize::zeroize(&mut tw[..]);
}

struct EncJob<'a>(Job<'a>);

impl BlockSizeUser for EncJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for EncJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        run_job::<B::ParBlocksSize>(self.0, |p| backend.encrypt_par_blocks_inplace(p));
    }
}

struct DecJob<'a>(Job<'a>);

impl BlockSizeUser for DecJob<'_> {
    type BlockSize = U16;
}

impl BlockCipherDecClosure for DecJob<'_> {
    #[inline(always)]
    fn call<B: BlockCipherDecBackend<BlockSize = U16>>(self, backend: &B) {
        run_job::<B::ParBlocksSize>(self.0, |p| backend.decrypt_par_blocks_inplace(p));
    }
}

/// XTS with data key `k1` and tweak key `k2` (AES-128, -192 or -256).
pub(crate) struct Xts<C> {
    k1: C,
    k2: C,
}

impl<C> Xts<C>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit + BlockSizeUser<BlockSize = U16>,
{
    /// Expands both keys. Fails only when a half has the wrong length.
    pub(crate) fn new(k1: &[u8], k2: &[u8]) -> Result<Self, InvalidLength> {
        Ok(Xts {
            k1: C::new_from_slice(k1)?,
            k2: C::new_from_slice(k2)?,
        })
    }

    /// Encrypts or decrypts whole sectors of `sector_size` bytes (a multiple
    /// of 16, at most 4096; checked by the caller). The data-unit size of
    /// the IEEE vectors (32 bytes) works too.
    pub(crate) fn process(&self, buf: &mut [u8], sector_size: usize, ivs: &IvSeq, encrypt: bool) {
        if !sector_size.is_multiple_of(16) || sector_size == 0 || sector_size > GROUP_BLOCKS * 16 {
            return;
        }
        let mut t0 = [B16::default(); TWEAK_BATCH];
        let mut first_sector = 0usize;
        for chunk in buf.chunks_mut(TWEAK_BATCH * sector_size) {
            let n = chunk.len() / sector_size;
            for (i, t) in t0[..n].iter_mut().enumerate() {
                *t = B16::from(ivs.iv(first_sector + i));
            }
            self.k2.encrypt_blocks(&mut t0[..n]);
            let job = Job {
                buf: chunk,
                sector_size,
                t0: &t0[..n],
            };
            if encrypt {
                self.k1.encrypt_with_backend(EncJob(job));
            } else {
                self.k1.decrypt_with_backend(DecJob(job));
            }
            first_sector += n;
        }
        // Tweaks are key-dependent: do not leave them on the stack.
        for t in t0.iter_mut() {
            zeroize::Zeroize::zeroize(&mut t.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::IvGen;

    /// Textbook XTS, one block at a time, for cross-checking the batched code.
    fn reference(key: &[u8], unit: u64, data: &mut [u8], encrypt: bool) {
        use aes::Aes128;
        let (k1, k2) = key.split_at(16);
        let c1 = Aes128::new_from_slice(k1).unwrap();
        let c2 = Aes128::new_from_slice(k2).unwrap();
        let mut t = B16::from(IvGen::Plain64.iv(unit));
        c2.encrypt_block(&mut t);
        let mut t = u128::from_le_bytes(t.0);
        for b in data.chunks_mut(16) {
            let mut blk = B16::from((u128::from_le_bytes(b.try_into().unwrap()) ^ t).to_le_bytes());
            if encrypt {
                c1.encrypt_block(&mut blk);
            } else {
                c1.decrypt_block(&mut blk);
            }
            b.copy_from_slice(&(u128::from_le_bytes(blk.0) ^ t).to_le_bytes());
            t = mul_x(t);
        }
    }

    /// IEEE 1619 vectors 1-3 have 32-byte data units, below the sector sizes
    /// `SectorCipher` accepts: checked here on the engine directly.
    #[test]
    fn ieee1619_short_data_units() {
        let text = include_str!("../../tests/data/xts_vectors.txt");
        let mut seen = 0;
        for para in text.split("\n\n") {
            let field = |k: &str| {
                para.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(" = ")))
                    .map(str::to_string)
            };
            let (Some(key), Some(unit), Some(pt), Some(ct)) =
                (field("key"), field("unit"), field("pt"), field("ct"))
            else {
                continue;
            };
            let (key, pt, ct) = (
                hex::decode(key).unwrap(),
                hex::decode(pt).unwrap(),
                hex::decode(ct).unwrap(),
            );
            if pt.len() != 32 || key.len() != 32 {
                continue;
            }
            let x = Xts::<aes::Aes128>::new(&key[..16], &key[16..]).unwrap();
            let ivs = IvSeq {
                gen: IvGen::Plain64,
                first: unit.parse().unwrap(),
                step: 1,
            };
            let mut buf = pt.clone();
            x.process(&mut buf, 32, &ivs, true);
            assert_eq!(buf, ct);
            x.process(&mut buf, 32, &ivs, false);
            assert_eq!(buf, pt);
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn lane_tweaks_equal_sequential_mul_x() {
        let mut t0: u128 = 0xdead_beef_0123_4567_89ab_cdef_f00d_cafe;
        for len in [32usize, 48, 128, 512, 4096] {
            for _ in 0..20 {
                let mut data = vec![0u8; len];
                let mut tw = vec![0u8; len];
                tweak_xor_in(&mut data, &mut tw, t0);
                assert_eq!(data, tw);
                let mut t = t0;
                for b in data.chunks(16) {
                    assert_eq!(u128::from_le_bytes(b.try_into().unwrap()), t, "len {len}");
                    t = mul_x(t);
                }
                t0 = t0.rotate_left(13) ^ 0x9e37_79b9_7f4a_7c15_8000_0000_0000_0000;
            }
        }
    }

    #[test]
    fn batched_matches_reference() {
        let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let x = Xts::<aes::Aes128>::new(&key[..16], &key[16..]).unwrap();
        for &ss in &[32usize, 512, 4096] {
            let mut data: Vec<u8> = (0..ss * 5).map(|i| (i * 7 + 3) as u8).collect();
            let orig = data.clone();
            let ivs = IvSeq {
                gen: IvGen::Plain64,
                first: 77,
                step: 1,
            };
            x.process(&mut data, ss, &ivs, true);
            let mut want = orig.clone();
            for (i, s) in want.chunks_mut(ss).enumerate() {
                reference(&key, 77 + i as u64, s, true);
            }
            assert_eq!(data, want, "sector size {ss}");
            x.process(&mut data, ss, &ivs, false);
            assert_eq!(data, orig);
        }
    }
}

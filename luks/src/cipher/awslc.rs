//! AES-256-XTS through AWS-LC's `EVP_aes_256_xts` (feature `aws-lc`).
//!
//! This is the only module of the crate with `unsafe` code: thin calls into
//! the C library through `aws-lc-sys`. Every `unsafe` block states why it is
//! sound. The safe surface is [`AwsLcXts`].
//!
//! Design:
//! * One `EVP_CIPHER_CTX` per direction per concurrently running thread,
//!   kept in a small pool owned by the cipher and reused: the key schedule is
//!   expanded once per context, and per sector only the tweak is reset
//!   (`EVP_{En,De}cryptInit_ex` with only an IV, which keeps the key).
//! * A thread picks a pool slot from a per-thread hint, so in the steady state
//!   each thread keeps hitting the same slot (an uncontended `try_lock`).
//!   When every slot is busy a temporary context is used.
//! * Contexts are freed with `EVP_CIPHER_CTX_free`, which cleanses the key
//!   schedules (AWS-LC's `OPENSSL_free` zeroes memory before freeing); the raw
//!   key kept for lazily creating contexts is zeroized on drop. No key
//!   schedule outlives the cipher (no thread-local caches).
#![allow(unsafe_code)]

use super::{CipherError, IvSeq};
use aws_lc_sys as sys;
use std::os::raw::c_int;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use zeroize::Zeroizing;

/// Owned `EVP_CIPHER_CTX` initialised for AES-256-XTS with the key, in one direction.
struct Ctx {
    ptr: NonNull<sys::EVP_CIPHER_CTX>,
}

// SAFETY: an EVP_CIPHER_CTX has no thread affinity; it only must not be used
// from two threads at once, which `&mut self` methods and the pool's `Mutex`
// guarantee (a `Ctx` is never shared, only moved).
unsafe impl Send for Ctx {}

impl Ctx {
    /// Creates a context and sets the 64-byte key for `encrypt` or decrypt.
    fn new(key: &[u8; 64], encrypt: bool) -> Option<Ctx> {
        // SAFETY: EVP_CIPHER_CTX_new has no preconditions; it returns either
        // NULL (allocation failure, handled) or an initialised context we own.
        let raw = unsafe { sys::EVP_CIPHER_CTX_new() };
        let ptr = NonNull::new(raw)?;
        let ctx = Ctx { ptr };
        // SAFETY: `ctx.ptr` is a valid context we own; EVP_aes_256_xts returns
        // a static cipher table; `key` points to 64 readable bytes, which is
        // the key length of AES-256-XTS, and is only read during the call;
        // a NULL IV and NULL engine are allowed. AWS-LC copies what it needs
        // (expanded key schedules) into the context.
        let ok = unsafe {
            let cipher = sys::EVP_aes_256_xts();
            if encrypt {
                sys::EVP_EncryptInit_ex(
                    ctx.ptr.as_ptr(),
                    cipher,
                    ptr::null_mut(),
                    key.as_ptr(),
                    ptr::null(),
                )
            } else {
                sys::EVP_DecryptInit_ex(
                    ctx.ptr.as_ptr(),
                    cipher,
                    ptr::null_mut(),
                    key.as_ptr(),
                    ptr::null(),
                )
            }
        };
        if ok != 1 {
            clear_errors();
            return None; // `ctx` is freed by Drop
        }
        Some(ctx)
    }

    /// Processes one data unit (sector) in place with the given tweak IV.
    #[inline]
    fn unit(&mut self, data: &mut [u8], iv: &[u8; 16], encrypt: bool) -> Result<(), CipherError> {
        let len = c_int::try_from(data.len())
            .map_err(|_| CipherError::Library("EVP_CipherUpdate length"))?;
        let mut out_len: c_int = 0;
        // SAFETY: the context is valid, owned, not shared (we hold `&mut self`)
        // and was initialised with the key for this direction. The Init call
        // passes NULL cipher/engine/key, which keeps cipher and key schedule
        // and only copies the 16 bytes at `iv` (valid for reads). The Update
        // call reads and writes `len` bytes at `data`, which is valid for
        // both; AWS-LC's XTS supports in-place operation (in == out), and
        // `out_len` points to a live c_int. Sectors are 16..=4096 bytes, within
        // XTS' data-unit limits (>= 16 bytes, <= 2^20 blocks).
        let ok = unsafe {
            let ctx = self.ptr.as_ptr();
            let p = data.as_mut_ptr();
            if encrypt {
                sys::EVP_EncryptInit_ex(ctx, ptr::null(), ptr::null_mut(), ptr::null(), iv.as_ptr())
                    == 1
                    && sys::EVP_EncryptUpdate(ctx, p, &mut out_len, p, len) == 1
            } else {
                sys::EVP_DecryptInit_ex(ctx, ptr::null(), ptr::null_mut(), ptr::null(), iv.as_ptr())
                    == 1
                    && sys::EVP_DecryptUpdate(ctx, p, &mut out_len, p, len) == 1
            }
        };
        if !ok || out_len != len {
            clear_errors();
            return Err(CipherError::Library(if encrypt {
                "EVP_EncryptUpdate"
            } else {
                "EVP_DecryptUpdate"
            }));
        }
        Ok(())
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from EVP_CIPHER_CTX_new, is owned by this value
        // and freed exactly once here; AWS-LC cleanses the cipher data (key
        // schedules) before freeing it.
        unsafe { sys::EVP_CIPHER_CTX_free(self.ptr.as_ptr()) }
    }
}

fn clear_errors() {
    // SAFETY: ERR_clear_error only clears this thread's AWS-LC error queue.
    unsafe { sys::ERR_clear_error() }
}

#[derive(Default)]
struct Slot {
    enc: Option<Ctx>,
    dec: Option<Ctx>,
}

static NEXT_HINT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static HINT: usize = NEXT_HINT.fetch_add(1, Ordering::Relaxed);
}

/// AES-256-XTS with a 64-byte key whose halves differ.
pub(crate) struct AwsLcXts {
    key: Zeroizing<[u8; 64]>,
    slots: Box<[Mutex<Slot>]>,
}

impl AwsLcXts {
    /// `None` when AWS-LC cannot take this key (not 64 bytes, equal halves)
    /// or refuses to initialise; the caller then falls back to pure Rust.
    pub(crate) fn new(key: &[u8]) -> Option<AwsLcXts> {
        let mut k = Zeroizing::new([0u8; 64]);
        if key.len() != 64 || key[..32] == key[32..] {
            return None;
        }
        k.copy_from_slice(key);
        let n = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(2, 64)
            * 2;
        let slots: Box<[Mutex<Slot>]> = (0..n).map(|_| Mutex::new(Slot::default())).collect();
        // Fail early (and let the caller fall back) if AWS-LC refuses the key.
        let first = Slot {
            enc: Some(Ctx::new(&k, true)?),
            dec: None,
        };
        if let Ok(mut s) = slots[0].lock() {
            *s = first;
        }
        Some(AwsLcXts { key: k, slots })
    }

    pub(crate) fn process(
        &self,
        buf: &mut [u8],
        sector_size: usize,
        ivs: &IvSeq,
        encrypt: bool,
    ) -> Result<(), CipherError> {
        let n = self.slots.len();
        let hint = HINT.with(|h| *h);
        for i in 0..n {
            let mut guard = match self.slots[(hint + i) % n].try_lock() {
                Ok(g) => g,
                // A panic while holding the lock cannot leave a context
                // half-used in a way that matters: the tweak is reset before
                // every sector.
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            let slot = if encrypt {
                &mut guard.enc
            } else {
                &mut guard.dec
            };
            if slot.is_none() {
                *slot = Some(
                    Ctx::new(&self.key, encrypt)
                        .ok_or(CipherError::Library("EVP_CipherInit_ex"))?,
                );
            }
            let Some(ctx) = slot.as_mut() else { continue };
            let r = run(ctx, buf, sector_size, ivs, encrypt);
            if r.is_err() {
                *slot = None; // never reuse a context after a failure
            }
            return r;
        }
        let mut ctx =
            Ctx::new(&self.key, encrypt).ok_or(CipherError::Library("EVP_CipherInit_ex"))?;
        run(&mut ctx, buf, sector_size, ivs, encrypt)
    }
}

fn run(
    ctx: &mut Ctx,
    buf: &mut [u8],
    sector_size: usize,
    ivs: &IvSeq,
    encrypt: bool,
) -> Result<(), CipherError> {
    for (i, sector) in buf.chunks_exact_mut(sector_size).enumerate() {
        ctx.unit(sector, &ivs.iv(i), encrypt)?;
    }
    Ok(())
}

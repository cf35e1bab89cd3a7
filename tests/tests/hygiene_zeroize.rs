//! Key buffers are zeroized when they are dropped.
//!
//! This test binary installs a global allocator (module [`detector`]) that,
//! while a scenario runs, looks into every heap block being freed, and into
//! the old block of every reallocation, for the secrets the test registered:
//! raw key bytes and the forms a type derives from them (os-brick hex, legacy
//! hex, base64), and intermediate keys (a LUKS keyslot's area key, the last
//! Argon2 memory block, from which the derived key is one hash away). A freed
//! block that still holds a secret is a copy nobody zeroized: the next owner
//! of that memory, a core dump or a swapped-out page can read it. Any 16-byte
//! piece of a registered secret counts, so partial copies (one half of an XTS
//! key, the first AES round keys of a schedule) are found too.
//!
//! While a scenario runs the allocator never grows or shrinks a block in
//! place: every reallocation moves, and the old block is scanned. The system
//! allocator may or may not move a given block, and the Rust allocator API
//! allows it to; the test reports the copy either way, instead of depending
//! on where the heap happened to have room.
//!
//! `detector_*` tests are the controls: a plain `Vec<u8>` holding a secret is
//! found when dropped, and so is the block a growing vector leaves behind,
//! while a `Zeroizing` vector is not, so every other test here could fail.
//!
//! What this cannot see, by construction: copies on the stack or in
//! registers (for instance PBKDF2's HMAC states, AES-GCM and HKDF key arrays,
//! which are stack values), memory allocated outside Rust's global allocator
//! (AWS-LC's own `OPENSSL_malloc` for its XTS contexts: AWS-LC cleanses them
//! in `EVP_CIPHER_CTX_free`), the kernel's page cache of the files written,
//! and blocks still allocated when a scenario ends (each scenario drops
//! everything it created before it ends).

#![allow(unsafe_code)]

use std::sync::{Mutex, MutexGuard};

use base64::Engine as _;
use keymgr::passphrase::{legacy_passphrase, passphrase_for, Passphrase};
use keymgr::{
    Context, KeyManager, NewSecret, Payload, Secret, SecretId, SecretKind, SecretMetadata,
};
use keymgr_mock::{Argon2Params, MasterKey, MockKeyManager};
use luks::{Backend, SectorCipher};
use luks::{FormatOptions, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType, Unlock, Volume};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

pub mod detector {
    //! The test-only allocator: [`System`] with a look into every block freed.
    //!
    //! This module is, besides `luks`' AWS-LC FFI module (`luks` `cipher/awslc.rs`),
    //! the one place in the workspace where `unsafe` code is allowed. A
    //! `GlobalAlloc` cannot be written without it (its methods are `unsafe fn`s
    //! over raw pointers), and no safe code can read a block at the moment it is
    //! freed, which is the only moment that proves it was (or was not) wiped.
    //! It is compiled into this one test binary and into nothing else.
    //!
    //! The scan runs inside `dealloc`, so it allocates nothing, takes no lock
    //! and cannot panic: the patterns live in static atomics (up to [`SLOTS`]
    //! patterns of up to [`MAX_LEN`] bytes), the hits are atomic counters.
    //! Every block is handed out zero-filled, so every byte the scan reads was
    //! initialised; it reads them with volatile loads.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

    /// How many patterns can be registered at once.
    pub const SLOTS: usize = 8;
    /// Longest pattern, in bytes.
    pub const MAX_LEN: usize = 128;
    /// Shortest pattern, in bytes.
    pub const MIN_LEN: usize = 8;
    /// A freed block holding any `PIECE`-byte piece of a pattern is a hit.
    const PIECE: usize = 16;

    static ARMED: AtomicBool = AtomicBool::new(false);
    static PATTERNS: [[AtomicU8; MAX_LEN]; SLOTS] =
        [const { [const { AtomicU8::new(0) }; MAX_LEN] }; SLOTS];
    static LENS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static HITS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static HIT_SIZE: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static HIT_AT: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static SCANNED: AtomicUsize = AtomicUsize::new(0);
    /// Bit `b0 | b1 << 8` is set when a piece of a pattern starts with `b0, b1`
    /// (a prefilter, so that a large block is scanned in one cheap pass).
    static FIRST_PAIRS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

    /// The `k`-th piece (start, length) of a pattern of `n` bytes: 16-byte
    /// pieces at 0, 16, 32 ... and the last 16 bytes; a shorter pattern is
    /// one piece.
    fn piece(n: usize, k: usize) -> Option<(usize, usize)> {
        if n == 0 {
            return None;
        }
        if n <= PIECE {
            return (k == 0).then_some((0, n));
        }
        let full = n / PIECE;
        if k < full {
            Some((k * PIECE, PIECE))
        } else if k == full && !n.is_multiple_of(PIECE) {
            Some((n - PIECE, PIECE))
        } else {
            None
        }
    }

    /// Registers `bytes` in `slot` (only while disarmed).
    pub fn set(slot: usize, bytes: &[u8]) {
        assert!(
            !ARMED.load(Ordering::SeqCst),
            "register patterns before arming"
        );
        assert!(slot < SLOTS, "at most {SLOTS} patterns");
        assert!(
            (MIN_LEN..=MAX_LEN).contains(&bytes.len()),
            "a pattern has {MIN_LEN}..={MAX_LEN} bytes"
        );
        for (cell, b) in PATTERNS[slot].iter().zip(bytes) {
            cell.store(*b, Ordering::Relaxed);
        }
        LENS[slot].store(bytes.len(), Ordering::SeqCst);
    }

    /// Disarms, forgets (zeroes) every pattern and every count.
    pub fn clear() {
        ARMED.store(false, Ordering::SeqCst);
        for s in 0..SLOTS {
            LENS[s].store(0, Ordering::SeqCst);
            for cell in &PATTERNS[s] {
                cell.store(0, Ordering::Relaxed);
            }
            HITS[s].store(0, Ordering::SeqCst);
            HIT_SIZE[s].store(0, Ordering::SeqCst);
        }
        for w in &FIRST_PAIRS {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Resets the counts and starts scanning freed blocks.
    pub fn arm() {
        for w in &FIRST_PAIRS {
            w.store(0, Ordering::Relaxed);
        }
        for s in 0..SLOTS {
            HITS[s].store(0, Ordering::SeqCst);
            HIT_SIZE[s].store(0, Ordering::SeqCst);
            HIT_AT[s].store(0, Ordering::SeqCst);
            let n = LENS[s].load(Ordering::SeqCst);
            let mut k = 0;
            while let Some((start, _)) = piece(n, k) {
                let pair = PATTERNS[s][start].load(Ordering::Relaxed) as usize
                    | (PATTERNS[s][start + 1].load(Ordering::Relaxed) as usize) << 8;
                FIRST_PAIRS[pair >> 6].fetch_or(1 << (pair & 63), Ordering::Relaxed);
                k += 1;
            }
        }
        SCANNED.store(0, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
    }

    /// Stops scanning (the counts stay until the next [`arm`] or [`clear`]).
    pub fn disarm() {
        ARMED.store(false, Ordering::SeqCst);
    }

    /// Freed blocks that held a piece of pattern `slot`; the size of the
    /// last one and the offset of the piece in it.
    pub fn hits(slot: usize) -> (usize, usize, usize) {
        (
            HITS[slot].load(Ordering::SeqCst),
            HIT_SIZE[slot].load(Ordering::SeqCst),
            HIT_AT[slot].load(Ordering::SeqCst),
        )
    }

    /// Blocks scanned since the last [`arm`].
    pub fn scanned() -> usize {
        SCANNED.load(Ordering::SeqCst)
    }

    /// Counts the patterns that have a piece in the `size` bytes at `p`.
    ///
    /// # Safety
    ///
    /// `p` must point to `size` readable bytes, initialised (every block of
    /// this allocator is handed out zero-filled).
    unsafe fn scan(p: *const u8, size: usize) {
        SCANNED.fetch_add(1, Ordering::Relaxed);
        let byte = |i: usize| {
            // SAFETY: every caller passes `i < size`, and the caller of `scan`
            // guarantees `size` readable, initialised bytes at `p`.
            unsafe { std::ptr::read_volatile(p.add(i)) }
        };
        let mut found = 0u32;
        let mut at = [0usize; SLOTS];
        for i in 0..size.saturating_sub(1) {
            let pair = byte(i) as usize | (byte(i + 1) as usize) << 8;
            if FIRST_PAIRS[pair >> 6].load(Ordering::Relaxed) & (1 << (pair & 63)) == 0 {
                continue;
            }
            for s in 0..SLOTS {
                if found & (1 << s) != 0 {
                    continue;
                }
                let n = LENS[s].load(Ordering::Relaxed);
                let mut k = 0;
                while let Some((start, len)) = piece(n, k) {
                    if i + len <= size
                        && (0..len)
                            .all(|j| byte(i + j) == PATTERNS[s][start + j].load(Ordering::Relaxed))
                    {
                        found |= 1 << s;
                        at[s] = i;
                        break;
                    }
                    k += 1;
                }
            }
        }
        for s in 0..SLOTS {
            if found & (1 << s) != 0 {
                HITS[s].fetch_add(1, Ordering::SeqCst);
                HIT_SIZE[s].store(size, Ordering::SeqCst);
                HIT_AT[s].store(at[s], Ordering::SeqCst);
            }
        }
    }

    /// The allocator: [`System`], zero-filled blocks, scans on free, moving reallocation.
    pub struct Detector;

    // SAFETY: every block comes from `System` with the caller's layout and goes
    // back to `System` with the same layout; `realloc` keeps `GlobalAlloc`'s
    // contract (contents up to the smaller size preserved, the old block left
    // untouched when the new one cannot be allocated).
    unsafe impl GlobalAlloc for Detector {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's layout, which `GlobalAlloc::alloc`
            // requires to be of non-zero size.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if ARMED.load(Ordering::Acquire) {
                // SAFETY: the caller guarantees `ptr` is a live block of this
                // allocator with `layout`: `layout.size()` bytes, readable, and
                // initialised (zero-filled when handed out). It is only read,
                // before it is freed.
                unsafe { scan(ptr, layout.size()) }
            }
            // SAFETY: the block and layout the caller got from `alloc` (caller's contract).
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller guarantees `new_size > 0` and that it does not
            // overflow `isize` when rounded up to `layout.align()`, which makes
            // this a valid layout.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // Always move (see the file's documentation): allocate, copy, free the old block.
            // SAFETY: a valid layout of non-zero size.
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: `ptr` is live with `layout.size()` bytes, `new` is a
                // distinct live block of `new_size` bytes; the old block is freed
                // once, with its own layout, after the copy.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            new
        }
    }

    #[global_allocator]
    static GLOBAL: Detector = Detector;
}

/// One test at a time: the patterns and counts are global.
static SERIAL: Mutex<()> = Mutex::new(());

/// A test's registered patterns; dropping it forgets them.
struct Session {
    names: Vec<&'static str>,
    _serial: MutexGuard<'static, ()>,
}

/// Disarms when a scenario ends, also by a panic.
struct Armed;

impl Drop for Armed {
    fn drop(&mut self) {
        detector::disarm();
    }
}

impl Session {
    fn new() -> Session {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        detector::clear();
        Session {
            names: Vec::with_capacity(detector::SLOTS),
            _serial: guard,
        }
    }

    /// Registers a pattern under `name` (at most 8 per session).
    fn register(&mut self, name: &'static str, bytes: &[u8]) {
        detector::set(self.names.len(), bytes);
        self.names.push(name);
    }

    /// Runs `scenario` with the detector armed. It must drop everything it creates.
    fn run(&self, scenario: impl FnOnce()) {
        detector::arm();
        let armed = Armed;
        scenario();
        drop(armed);
        assert!(
            detector::scanned() > 0,
            "the scenario freed nothing: the detector saw no block"
        );
    }

    /// Hits of the pattern registered as `name`.
    fn hits(&self, name: &str) -> usize {
        let slot = self.names.iter().position(|n| *n == name).expect("name");
        detector::hits(slot).0
    }

    /// Fails, naming the patterns found in freed blocks, unless there is none.
    fn assert_clean(&self, scenario: &str) {
        let found: Vec<String> = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(slot, name)| {
                let (n, size, at) = detector::hits(slot);
                (n > 0).then(|| {
                    format!("{name}: {n} freed block(s), the last of {size} bytes (at offset {at})")
                })
            })
            .collect();
        assert!(
            found.is_empty(),
            "{scenario}: secrets left in freed heap blocks (not zeroized): {}",
            found.join("; ")
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        detector::clear();
    }
}

/// `N` random bytes (a distinctive pattern per test), on the stack, wiped on drop.
fn random<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut b[..]).expect("OS random source");
    b
}

/// `N` random letters and digits (a passphrase pattern that is UTF-8).
fn random_text<const N: usize>() -> Zeroizing<[u8; N]> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut b = random::<N>();
    for c in b.iter_mut() {
        *c = ALPHABET[*c as usize % ALPHABET.len()];
    }
    b
}

/// Lower-case hex of `bytes` into a stack buffer of `N` (= 2 × len) bytes.
fn hex_of<const N: usize>(bytes: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    hex::encode_to_slice(bytes, &mut out[..]).expect("N is twice the length");
    out
}

/// Standard base64 of `bytes` into a stack buffer; returns it and the length used.
fn base64_of(bytes: &[u8]) -> (Zeroizing<[u8; 128]>, usize) {
    let mut out = Zeroizing::new([0u8; 128]);
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[..])
        .expect("fits 128 bytes");
    (out, n)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// A vector holding a copy of `bytes` with room for `spare` more, as
/// `read_to_end`, a base64 decoder or a JSON parser leave them.
fn vec_with_spare(bytes: &[u8], spare: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + spare);
    v.extend_from_slice(bytes);
    v
}

// ---------------------------------------------------------------- controls

#[test]
fn detector_finds_a_plain_vec_and_the_block_a_growing_vec_leaves() {
    let mut s = Session::new();
    let plain = random::<32>();
    let grown = random::<32>();
    let half = random::<40>();
    s.register("plain", &plain[..]);
    s.register("grown", &grown[..]);
    s.register("half", &half[..]);
    s.run(|| {
        // A plain vector is freed with the bytes in it.
        drop(std::hint::black_box(plain.to_vec()));
        // A zeroizing vector that grows: the new block is wiped on drop, the
        // old one was freed by the reallocation with the bytes in it.
        let mut v = Zeroizing::new(Vec::with_capacity(grown.len()));
        v.extend_from_slice(&grown[..]);
        v.push(0);
        drop(std::hint::black_box(v));
        // Part of a secret (its last 20 bytes) is found too.
        drop(std::hint::black_box(half[20..].to_vec()));
    });
    assert_eq!(s.hits("plain"), 1, "the plain Vec's block was not seen");
    assert_eq!(s.hits("grown"), 1, "the block left by growing was not seen");
    assert_eq!(s.hits("half"), 1, "a 20-byte piece was not seen");
}

#[test]
fn detector_does_not_count_zeroized_buffers() {
    let mut s = Session::new();
    let key = random::<64>();
    s.register("key", &key[..]);
    s.run(|| {
        let v = Zeroizing::new(std::hint::black_box(key.to_vec()));
        assert_eq!(&v[..], &key[..]);
        drop(v);
        let mut w = std::hint::black_box(vec_with_spare(&key[..], 100));
        w.zeroize();
        drop(w);
    });
    s.assert_clean("zeroized buffers");
    assert!(detector::scanned() >= 2);
}

// ---------------------------------------------------------------- keymgr-core

#[test]
fn payload_new_secret_and_secret_are_zeroized() {
    let mut s = Session::new();
    let key = random::<32>();
    s.register("payload bytes", &key[..]);
    s.run(|| {
        let a = Payload::from(key.to_vec());
        let b = Payload::copy_from(&key[..]);
        let c = a.clone();
        assert!(a.expose() == &key[..] && b.expose() == c.expose());
        drop((a, b, c));
        let ns = NewSecret::new(SecretKind::Symmetric, key.to_vec()).named("zeroize-ns");
        ns.validate().unwrap();
        let ns2 = ns.clone();
        let secret = Secret {
            metadata: SecretMetadata {
                id: SecretId::new_random(),
                kind: SecretKind::Symmetric,
                name: ns2.name.clone(),
                algorithm: ns2.algorithm.clone(),
                bit_length: ns2.bit_length,
                mode: None,
                created: None,
                expiration: None,
                consumers: Vec::new(),
            },
            payload: ns2.payload.clone(),
        };
        let again = NewSecret::from_secret(&secret);
        let copy = secret.clone();
        drop((ns, ns2, secret, again, copy));
    });
    s.assert_clean("Payload / NewSecret / Secret");
}

#[test]
fn payload_from_a_vec_with_spare_capacity_leaves_no_copy() {
    // A vector with room to spare is what read_to_end, base64 decoding and
    // JSON parsing hand over. Payload keeps an exact-size box: the shrink
    // must not free the old block with the key in it.
    let mut s = Session::new();
    let key = random::<32>();
    let key2 = random::<48>();
    s.register("payload from Vec", &key[..]);
    s.register("payload from Zeroizing<Vec>", &key2[..]);
    s.run(|| {
        let p = Payload::from(vec_with_spare(&key[..], 31));
        assert_eq!(p.expose(), &key[..]);
        drop(p);
        let ns = NewSecret::new(SecretKind::Opaque, vec_with_spare(&key[..], 7));
        drop(ns);
        let p = Payload::from(Zeroizing::new(vec_with_spare(&key2[..], 80)));
        assert_eq!(p.expose(), &key2[..]);
        drop(p);
    });
    s.assert_clean("Payload::from(Vec with spare capacity)");
}

#[test]
fn os_brick_and_legacy_passphrases_are_zeroized() {
    let mut s = Session::new();
    let key = random::<32>();
    let hex = hex_of::<64>(&key[..]);
    // The legacy form: each byte's hex without its leading zero.
    let mut legacy = Zeroizing::new([0u8; 64]);
    let legacy_len = legacy_form(&key[..], &mut legacy[..]);
    let text = random_text::<40>();
    s.register("key bytes", &key[..]);
    s.register("os-brick hex passphrase", &hex[..]);
    s.register("legacy hex passphrase", &legacy[..legacy_len]);
    s.register("passphrase secret text", &text[..]);
    s.run(|| {
        let payload = Payload::copy_from(&key[..]);
        for kind in [
            SecretKind::Symmetric,
            SecretKind::Opaque,
            SecretKind::Private,
        ] {
            let p = passphrase_for(kind, &payload).unwrap();
            assert_eq!(p.as_bytes(), &hex[..]);
            let q = p.clone();
            drop((p, q));
        }
        let l = legacy_passphrase(&payload);
        assert_eq!(l.as_bytes(), &legacy[..legacy_len]);
        drop(l);
        let t = Payload::from(text.to_vec());
        let p = passphrase_for(SecretKind::Passphrase, &t).unwrap();
        assert_eq!(p.as_bytes(), &text[..]);
        drop((p, t));
        drop(Passphrase::from_bytes(text.to_vec()));
        drop(payload);
    });
    s.assert_clean("passphrase_for / legacy_passphrase");
}

/// Writes the legacy (mangled) hex of `key` into `out`; returns its length.
fn legacy_form(key: &[u8], out: &mut [u8]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    for &b in key {
        if b >= 0x10 {
            out[n] = DIGITS[(b >> 4) as usize];
            n += 1;
        }
        out[n] = DIGITS[(b & 0x0f) as usize];
        n += 1;
    }
    n
}

// ---------------------------------------------------------------- keymgr-mock

#[test]
fn mock_memory_store_and_get_are_zeroized() {
    let mut s = Session::new();
    let key = random::<32>();
    s.register("stored payload", &key[..]);
    let rt = runtime();
    s.run(|| {
        rt.block_on(async {
            let km = MockKeyManager::new();
            let ctx = Context::new("zeroize", "tester");
            let id = km
                .store(&ctx, NewSecret::new(SecretKind::Symmetric, key.to_vec()))
                .await
                .unwrap();
            let got = km.get(&ctx, &id).await.unwrap();
            assert_eq!(got.payload.expose(), &key[..]);
            drop(got);
            let copy = km.clone_secret(&ctx, &id).await.unwrap();
            drop(km.get(&ctx, &copy).await.unwrap());
            km.delete(&ctx, &id, false).await.unwrap();
            drop(km);
        })
    });
    s.assert_clean("MockKeyManager in memory");
}

#[test]
fn mock_sealed_store_round_trip_is_zeroized() {
    let mut s = Session::new();
    let master = random::<32>();
    let key = random::<32>();
    let hex = hex_of::<64>(&key[..]);
    let (b64, b64_len) = base64_of(&key[..]);
    s.register("master key", &master[..]);
    s.register("stored payload", &key[..]);
    // The sealed format is binary (each entry's plaintext holds the raw
    // bytes); text forms are registered to show none is made on the way.
    s.register("payload hex", &hex[..]);
    s.register("payload base64", &b64[..b64_len]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.sealed");
    let key_file = dir.path().join("master.key");
    let rt = runtime();
    s.run(|| {
        rt.block_on(async {
            let ctx = Context::new("zeroize", "tester");
            MasterKey::from_bytes(*master)
                .write_new_key_file(&key_file)
                .unwrap();
            let km = MockKeyManager::open_sealed(&store, MasterKey::from_bytes(*master)).unwrap();
            let id = km
                .store(
                    &ctx,
                    NewSecret::new(SecretKind::Symmetric, key.to_vec()).named("zeroize"),
                )
                .await
                .unwrap();
            drop(km);
            // Reopen with the key read back from its file; the store is read and decrypted.
            let mk = MasterKey::load_key_file(&key_file).unwrap();
            let km = MockKeyManager::open_sealed(&store, mk).unwrap();
            let got = km.get(&ctx, &id).await.unwrap();
            assert_eq!(got.payload.expose(), &key[..]);
            drop(got);
            // A write re-encodes every entry.
            let other = km
                .store(&ctx, NewSecret::new(SecretKind::Opaque, b"x".repeat(16)))
                .await
                .unwrap();
            km.delete(&ctx, &other, false).await.unwrap();
            drop(km);
        })
    });
    s.assert_clean("MockKeyManager sealed file (key file)");
}

/// The last memory block of Argon2id lane 0 after the final pass, which
/// Argon2 hashes into its output: whoever reads it has the derived key.
/// Computed here with the same inputs as the library will use.
fn argon2id_last_block(
    pass: &[u8],
    salt: &[u8],
    memory_kib: u32,
    time: u32,
    out_len: usize,
) -> Zeroizing<[u8; 128]> {
    let params = argon2::Params::new(memory_kib, time, 1, Some(out_len)).unwrap();
    let blocks_len = params.block_count();
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut blocks = vec![argon2::Block::new(); blocks_len];
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    a2.hash_password_into_with_memory(pass, salt, &mut out[..], &mut blocks[..])
        .unwrap();
    let mut bytes = Zeroizing::new([0u8; 128]);
    for (chunk, word) in bytes.chunks_mut(8).zip(blocks[blocks_len - 1].as_ref()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    for b in blocks.iter_mut() {
        b.as_mut().zeroize();
    }
    bytes
}

#[test]
fn mock_sealed_store_with_passphrase_wipes_argon2_memory() {
    let pass = random_text::<32>();
    let key = random::<32>();
    let params = Argon2Params {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let master = || {
        MasterKey::from_passphrase(String::from_utf8(pass.to_vec()).unwrap())
            .unwrap()
            .with_argon2_params(params)
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.sealed");
    let rt = runtime();
    let ctx = Context::new("zeroize", "tester");
    let id = {
        let mut s = Session::new();
        s.register("master passphrase", &pass[..]);
        s.register("stored payload", &key[..]);
        let mut id = None;
        s.run(|| {
            let km = MockKeyManager::open_sealed(&store, master()).unwrap();
            let new = NewSecret::new(SecretKind::Symmetric, key.to_vec());
            id = Some(rt.block_on(km.store(&ctx, new)).unwrap());
            drop(km);
        });
        s.assert_clean("sealed store created with a passphrase");
        id.unwrap()
    };
    // The salt is bytes 15..31 of the store's `meta` header (see keymgr_mock's "File format").
    let header: Vec<u8> = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("SELECT v FROM meta WHERE k = 'header'", [], |r| r.get(0))
        .unwrap();
    let salt = &header[15..31];
    let last = argon2id_last_block(&pass[..], salt, params.memory_kib, params.iterations, 32);
    let mut s = Session::new();
    s.register("master passphrase", &pass[..]);
    s.register("stored payload", &key[..]);
    s.register("argon2 final memory block", &last[..]);
    s.run(|| {
        let km = MockKeyManager::open_sealed(&store, master()).unwrap();
        let got = rt.block_on(km.get(&ctx, &id)).unwrap();
        assert_eq!(got.payload.expose(), &key[..]);
        drop((got, km));
    });
    s.assert_clean("sealed store opened with a passphrase");
}

// ---------------------------------------------------------------- luks

/// A 4 MiB file in a new temporary directory.
fn volume_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vol.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    (dir, path)
}

fn format_options(luks_type: LuksType, kdf: PbkdfType, vk: &[u8]) -> FormatOptions {
    FormatOptions {
        luks_type,
        pbkdf: PbkdfOptions::fast_for_tests(kdf),
        luks2_keyslots_size: Some(1 << 20),
        align_payload_sectors: Some(8),
        volume_key: Some(Zeroizing::new(vk.to_vec())),
        ..FormatOptions::default()
    }
}

fn fast_slot() -> KeyslotOptions {
    KeyslotOptions {
        key_slot: None,
        pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
    }
}

/// Writes and reads back a sector through the unlocked volume, checks its key.
fn use_volume(vol: &luks::UnlockedVolume, vk: &[u8]) {
    assert_eq!(vol.volume_key().as_bytes(), vk);
    let data = [0x5au8; 4096];
    vol.write_at(&data, 0).unwrap();
    let mut back = [0u8; 4096];
    vol.read_at(&mut back, 0).unwrap();
    assert_eq!(back, data);
}

#[test]
fn luks2_format_unlock_and_keyslot_changes_are_zeroized() {
    let vk = random::<64>();
    let pass = random_text::<24>();
    let pass2 = random_text::<24>();
    let pass3 = random_text::<24>();
    let (_dir, path) = volume_file();
    {
        let mut s = Session::new();
        s.register("volume key", &vk[..]);
        s.register("passphrase", &pass[..]);
        s.run(|| {
            let opts = format_options(LuksType::Luks2, PbkdfType::Pbkdf2, &vk[..]);
            luks::format(&path, &opts, &pass[..]).unwrap();
            drop(opts);
            let vol = Volume::open(&path)
                .unwrap()
                .unlock(&pass[..], None)
                .unwrap();
            use_volume(&vol, &vk[..]);
            drop(vol);
        });
        s.assert_clean("LUKS2 format + unlock");
    }
    // Keyslot 0's area key (PBKDF2 of the passphrase), computed here as the
    // library does: it must not be left behind either.
    let area_key = {
        let vol = Volume::open(&path).unwrap();
        let ks = &vol.luks2_metadata().unwrap().keyslots[&0];
        ks.kdf
            .derive(&pass[..], &ks.salt, ks.area.key_size as usize)
            .unwrap()
    };
    let mut s = Session::new();
    s.register("volume key", &vk[..]);
    s.register("passphrase", &pass[..]);
    s.register("added passphrase", &pass2[..]);
    s.register("changed passphrase", &pass3[..]);
    s.register("keyslot 0 area key", &area_key[..]);
    s.run(|| {
        let mut vol = Volume::open(&path).unwrap();
        let (slot, key) = vol.recover_volume_key(&pass[..], None).unwrap();
        assert_eq!((slot, key.as_bytes()), (0, &vk[..]));
        drop(key);
        let added = vol
            .add_key(
                Unlock::Passphrase {
                    passphrase: &pass[..],
                    slot: Some(0),
                },
                &pass2[..],
                &fast_slot(),
            )
            .unwrap();
        let changed = vol
            .change_key(&pass2[..], &pass3[..], Some(added), &fast_slot())
            .unwrap();
        assert_eq!(vol.test_passphrase(&pass3[..], None).unwrap(), changed);
        assert!(vol.test_passphrase(&pass2[..], None).is_err());
        vol.add_key(Unlock::VolumeKey(&vk[..]), &pass2[..], &fast_slot())
            .unwrap();
        vol.remove_key(&pass2[..]).unwrap();
        assert_eq!(vol.remove_key(&pass3[..]).unwrap(), changed);
        let unlocked = vol.unlock_with_volume_key(&vk[..]).unwrap();
        use_volume(&unlocked, &vk[..]);
        drop(unlocked);
        let unlocked = vol.unlock(&pass[..], Some(0)).unwrap();
        use_volume(&unlocked, &vk[..]);
        drop((unlocked, vol));
    });
    s.assert_clean("LUKS2 keyslot operations");
}

#[test]
fn luks2_argon2_keyslot_unlock_wipes_argon2_memory() {
    let vk = random::<64>();
    let pass = random_text::<24>();
    let (_dir, path) = volume_file();
    {
        let mut s = Session::new();
        s.register("volume key", &vk[..]);
        s.register("passphrase", &pass[..]);
        s.run(|| {
            let opts = format_options(LuksType::Luks2, PbkdfType::Argon2id, &vk[..]);
            luks::format(&path, &opts, &pass[..]).unwrap();
        });
        // Format's own Argon2 run used a salt not known before; it is
        // checked through the unlock below (same code path).
        s.assert_clean("LUKS2 argon2id format");
    }
    let (last, area_key) = {
        let vol = Volume::open(&path).unwrap();
        let ks = &vol.luks2_metadata().unwrap().keyslots[&0];
        let luks::Kdf::Argon2 {
            time,
            memory_kib,
            parallel,
            ..
        } = ks.kdf
        else {
            panic!("format made a {:?} keyslot, not argon2id", ks.kdf)
        };
        assert_eq!(parallel, 1, "fast_for_tests uses one lane");
        let len = ks.area.key_size as usize;
        (
            argon2id_last_block(&pass[..], &ks.salt, memory_kib, time, len),
            ks.kdf.derive(&pass[..], &ks.salt, len).unwrap(),
        )
    };
    let mut s = Session::new();
    s.register("volume key", &vk[..]);
    s.register("passphrase", &pass[..]);
    s.register("keyslot 0 area key", &area_key[..]);
    s.register("argon2 final memory block", &last[..]);
    s.run(|| {
        let vol = Volume::open(&path)
            .unwrap()
            .unlock(&pass[..], None)
            .unwrap();
        use_volume(&vol, &vk[..]);
        drop(vol);
    });
    s.assert_clean("LUKS2 argon2id unlock");
}

#[test]
fn luks1_format_unlock_and_change_are_zeroized() {
    let vk = random::<32>();
    let pass = random_text::<24>();
    let pass2 = random_text::<24>();
    let (_dir, path) = volume_file();
    let mut s = Session::new();
    s.register("volume key", &vk[..]);
    s.register("passphrase", &pass[..]);
    s.register("new passphrase", &pass2[..]);
    s.run(|| {
        let mut opts = format_options(LuksType::Luks1, PbkdfType::Pbkdf2, &vk[..]);
        opts.cipher = Some("aes-cbc-essiv:sha256".into());
        luks::format(&path, &opts, &pass[..]).unwrap();
        drop(opts);
        let mut vol = Volume::open(&path).unwrap();
        vol.change_key(&pass[..], &pass2[..], None, &fast_slot())
            .unwrap();
        let unlocked = vol.unlock(&pass2[..], None).unwrap();
        use_volume(&unlocked, &vk[..]);
        drop((unlocked, vol));
    });
    s.assert_clean("LUKS1 aes-cbc-essiv format, change key, unlock");
}

/// `read_at`'s working buffer holds decrypted sectors: it is wiped when a later read
/// fails too (here the device shrank after unlocking, so the second 1 MiB chunk of a
/// 2 MiB read fails after the first was decrypted).
#[test]
fn luks_read_at_wipes_its_working_buffer_on_an_error() {
    let vk = random::<64>();
    let pass = random_text::<24>();
    let plaintext = random::<64>();
    let (_dir, path) = volume_file();
    let opts = format_options(LuksType::Luks2, PbkdfType::Pbkdf2, &vk[..]);
    luks::format(&path, &opts, &pass[..]).unwrap();
    let vol = Volume::open(&path)
        .unwrap()
        .unlock(&pass[..], None)
        .unwrap();
    // in the middle of the first chunk: the failing read of the second chunk, into the
    // same buffer, does not overwrite it
    vol.write_at(&plaintext[..], 512 << 10).unwrap();
    vol.sync().unwrap();
    let data_offset = vol.layout().offset;
    assert!(vol.layout().size >= 2 << 20, "{:?}", vol.layout());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(data_offset + (1 << 20))
        .unwrap();
    let mut s = Session::new();
    s.register("plaintext", &plaintext[..]);
    s.run(|| {
        let mut buf = Zeroizing::new(vec![0u8; 2 << 20]);
        let e = vol.read_at(&mut buf, 0).unwrap_err();
        assert!(matches!(e, luks::Error::DeviceTooSmall { .. }), "{e:?}");
        drop(buf);
    });
    s.assert_clean("read_at failing after a decrypted chunk");
    drop(vol);
}

#[test]
fn sector_ciphers_of_every_backend_are_zeroized() {
    let xts = random::<64>();
    let cbc = random::<32>();
    // ESSIV encrypts the IV with SHA-256 of the key: that key too.
    let mut essiv = Zeroizing::new([0u8; 32]);
    essiv.copy_from_slice(&Sha256::digest(&cbc[..]));
    let mut s = Session::new();
    s.register("xts key", &xts[..]);
    s.register("cbc key", &cbc[..]);
    s.register("essiv key", &essiv[..]);
    s.run(|| {
        let mut buf = vec![0x33u8; 8192];
        for backend in Backend::available() {
            let c = SectorCipher::with_backend("aes", "xts-plain64", &xts[..], *backend).unwrap();
            c.encrypt_sectors(&mut buf, 4096, 0, true).unwrap();
            c.decrypt_sectors(&mut buf, 4096, 0, true).unwrap();
            drop(c);
        }
        // CBC without ESSIV: see `cbc_without_essiv_leaves_stale_key_bytes_in_its_box`.
        for (mode, key) in [
            ("xts-plain", &xts[..32]),
            ("xts-plain64be", &xts[..48]),
            ("cbc-essiv:sha256", &cbc[..]),
        ] {
            let c = SectorCipher::new("aes", mode, key).unwrap();
            c.encrypt_sectors(&mut buf, 512, 7, true).unwrap();
            c.decrypt_sectors(&mut buf, 512, 7, true).unwrap();
            drop(c);
        }
        assert!(buf.iter().all(|b| *b == 0x33));
        drop(buf);
    });
    s.assert_clean("SectorCipher (AWS-LC and RustCrypto XTS, CBC-ESSIV)");
}

/// Regression test for a leak this file found: `luks`' `cipher/cbc.rs` `Cbc` was
/// `{ c: Aes*, essiv: Option<Aes256> }`, boxed in the cipher. Without ESSIV
/// the `None` left 480 bytes of the box that no `Drop` wiped, and moving the
/// struct into the box copied whatever the stack held there: with a 24-byte
/// key (`aes-cbc-plain`), key bytes left on the stack by the key expansion
/// (found at offset 400 of the 912-byte box). Fixed by boxing the ESSIV
/// cipher (`Option<Box<Aes256>>`), so no hole is left.
#[test]
fn cbc_without_essiv_leaves_no_key_bytes_in_its_box() {
    let key = random::<32>();
    let mut s = Session::new();
    s.register("cbc key", &key[..]);
    s.run(|| {
        let mut buf = vec![0x33u8; 4096];
        for (mode, n) in [
            ("cbc-plain64", 16),
            ("cbc-plain", 24),
            ("cbc-plain64be", 32),
        ] {
            let c = SectorCipher::new("aes", mode, &key[..n]).unwrap();
            c.encrypt_sectors(&mut buf, 512, 7, true).unwrap();
            drop(c);
        }
        drop(buf);
    });
    s.assert_clean("SectorCipher CBC without ESSIV");
}

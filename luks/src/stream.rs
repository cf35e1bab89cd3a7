//! Bulk streaming between a plaintext `Read`/`Write` and the encrypted sectors
//! of a device, with bounded memory and all cores.
//!
//! Independent of the header format: a [`Region`] says where the encrypted
//! sectors are and how their IVs are numbered, a [`SectorCipher`] does the
//! crypto. For a LUKS volume take the values from its data layout
//! (`data_offset` = segment offset, `iv_tweak`, sector size, and
//! `iv_in_512_units = true`).
//!
//! # How it runs
//!
//! * A fixed pool of buffers of [`StreamOptions::batch`] bytes (1 MiB by
//!   default, whole sectors), `2 × threads + 2` of them: peak memory is
//!   about `(2 × threads + 2)` MiB whatever the volume size (18 MiB with 8
//!   threads; the thread count is capped at 8).
//! * [`decrypt_to_writer`]: worker threads (scoped) each take a free buffer,
//!   claim the next batch, read it with a positional read, decrypt it, and
//!   hand it to the calling thread, which writes batches to `out` in order
//!   and recycles the buffers. Reading, decrypting and writing overlap.
//! * [`encrypt_from_reader`]: the calling thread fills buffers from `input`
//!   (it is the only one touching the reader); workers encrypt and write
//!   them with positional writes, in any order, and recycle the buffers.
//! * Regions need not be sector aligned: partial sectors at either end are
//!   read, decrypted and merged (read-modify-write) before encryption.
//! * Transfers of at most one batch run on the calling thread alone.
//!
//! Buffers are zeroized when the transfer ends (they held plaintext).

use crate::cipher::SectorCipher;
use crate::device;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Default batch size: 1 MiB.
pub(crate) const DEFAULT_BATCH: usize = 1 << 20;
/// Most worker threads used.
pub(crate) const MAX_THREADS: usize = 8;

/// Where the encrypted bytes of a transfer are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Byte offset on the device of sector 0 of the encrypted area (the LUKS data segment).
    pub data_offset: u64,
    /// Byte offset of the transfer inside the encrypted area (any alignment).
    pub offset: u64,
    /// Bytes to transfer. For [`encrypt_from_reader`], the most that may be
    /// written (input beyond it is an error).
    pub len: u64,
    /// Sector size: 512..=4096, a power of two.
    pub sector_size: usize,
    /// Whether IVs count 512-byte units (LUKS: yes, also with 4096-byte sectors).
    pub iv_in_512_units: bool,
    /// IV of sector 0 of the encrypted area (LUKS2 `iv_tweak`; 0 for LUKS1).
    pub iv_tweak: u64,
}

impl Region {
    /// IV number of sector `s` of the encrypted area.
    pub fn iv_of_sector(&self, s: u64) -> u64 {
        let step = if self.iv_in_512_units {
            (self.sector_size / 512) as u64
        } else {
            1
        };
        self.iv_tweak.wrapping_add(s.wrapping_mul(step))
    }

    fn check(&self) -> Result<()> {
        if !(512..=4096).contains(&self.sector_size) || !self.sector_size.is_power_of_two() {
            return Err(Error::InvalidOption {
                option: "--sector-size",
                reason: format!("{} is not a power of two in 512..=4096", self.sector_size),
            });
        }
        let ss = self.sector_size as u64;
        let end = self
            .offset
            .checked_add(self.len)
            .and_then(|e| e.checked_next_multiple_of(ss));
        let dev_end = end.and_then(|e| e.checked_add(self.data_offset));
        if dev_end.is_none() {
            return Err(Error::OutOfBounds {
                offset: self.offset,
                len: self.len,
                size: u64::MAX,
            });
        }
        Ok(())
    }
}

/// Tuning of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Worker threads; 0 = one per available core. Capped at 8 (`MAX_THREADS`).
    pub threads: usize,
    /// Bytes per batch; rounded down to whole sectors (at least one sector).
    pub batch: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            threads: 0,
            batch: DEFAULT_BATCH,
        }
    }
}

impl StreamOptions {
    fn threads(&self) -> usize {
        let n = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        n.clamp(1, MAX_THREADS)
    }

    fn batch(&self, ss: usize) -> usize {
        (self.batch.clamp(ss, 64 << 20) / ss) * ss
    }
}

/// A batch: which bytes of the transfer it carries.
struct Batch {
    seq: u64,
    buf: Zeroizing<Vec<u8>>,
    /// First sector (of the encrypted area) in `buf`.
    sector: u64,
    /// Bytes of whole sectors in `buf` to process.
    len: usize,
}

/// Decrypts `region` of the device and writes the plaintext to `out`, in
/// order. `progress` is called on the calling thread with the number of
/// plaintext bytes written so far. Returns the bytes written (`region.len`).
pub fn decrypt_to_writer(
    device: &File,
    region: &Region,
    cipher: &SectorCipher,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    decrypt_to_writer_with(
        device,
        region,
        cipher,
        out,
        progress,
        &StreamOptions::default(),
    )
}

/// [`decrypt_to_writer`] with explicit [`StreamOptions`].
pub fn decrypt_to_writer_with(
    device: &File,
    region: &Region,
    cipher: &SectorCipher,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
    opts: &StreamOptions,
) -> Result<u64> {
    region.check()?;
    if region.len == 0 {
        return Ok(0);
    }
    let ss = region.sector_size;
    let ss64 = ss as u64;
    let batch = opts.batch(ss);
    let first_sector = region.offset / ss64;
    let end_sector = (region.offset + region.len).div_ceil(ss64);
    let batches = (end_sector - first_sector).div_ceil((batch / ss) as u64);
    // Plaintext bytes of the sectors to skip at the head and to drop at the tail.
    let head = (region.offset % ss64) as usize;
    let total = region.len;

    let read_batch = |b: &mut Batch| -> Result<()> {
        let pos = region.data_offset + b.sector * ss64;
        device::read_at(device, &mut b.buf[..b.len], pos)?;
        cipher
            .decrypt_sectors(
                &mut b.buf[..b.len],
                ss,
                region.iv_of_sector(b.sector),
                region.iv_in_512_units,
            )
            .map_err(|e| Error::Cipher(e.to_string()))
    };
    let batch_of = |seq: u64, buf: Zeroizing<Vec<u8>>| -> Batch {
        let sector = first_sector + seq * (batch / ss) as u64;
        let n = (end_sector - sector).min((batch / ss) as u64) as usize;
        Batch {
            seq,
            buf,
            sector,
            len: n * ss,
        }
    };
    // Writes the useful part of a decrypted batch; returns bytes written.
    let mut written = 0u64;
    let mut emit = |b: &Batch, out: &mut dyn Write| -> Result<()> {
        let start = if b.seq == 0 { head } else { 0 };
        let want = (total - written).min((b.len - start) as u64) as usize;
        out.write_all(&b.buf[start..start + want])
            .map_err(Error::io("writing the output"))?;
        written += want as u64;
        progress(written);
        Ok(())
    };

    let threads = opts.threads();
    if batches <= 1 || threads == 1 {
        let mut buf = Zeroizing::new(vec![0u8; batch]);
        for seq in 0..batches {
            let mut b = batch_of(seq, std::mem::take(&mut buf));
            read_batch(&mut b)?;
            emit(&b, out)?;
            buf = b.buf;
        }
        out.flush().map_err(Error::io("flushing the output"))?;
        return Ok(written);
    }

    let nbufs = 2 * threads + 2;
    let (free_tx, free_rx) = sync_channel::<Zeroizing<Vec<u8>>>(nbufs);
    for _ in 0..nbufs {
        let _ = free_tx.send(Zeroizing::new(vec![0u8; batch]));
    }
    let free_rx = Mutex::new(free_rx);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) = sync_channel::<Result<Batch>>(nbufs);

    let result = std::thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (free_rx, next, stop) = (&free_rx, &next, &stop);
            let (read_batch, batch_of) = (&read_batch, &batch_of);
            s.spawn(move || loop {
                // Take a buffer before claiming a batch number, so a claimed
                // batch always completes (the writer may hold every other buffer).
                let buf = {
                    let Ok(rx) = free_rx.lock() else { return };
                    match rx.recv() {
                        Ok(b) => b,
                        Err(_) => return,
                    }
                };
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= batches {
                    return;
                }
                let mut b = batch_of(seq, buf);
                let r = read_batch(&mut b).map(|()| b);
                if done_tx.send(r).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut pending: BTreeMap<u64, Batch> = BTreeMap::new();
        let mut want = 0u64;
        let r = (|| -> Result<()> {
            while want < batches {
                let b = match done_rx.recv() {
                    Ok(r) => r?,
                    Err(_) => return Err(Error::Unsupported("stream worker stopped".into())),
                };
                pending.insert(b.seq, b);
                while let Some(b) = pending.remove(&want) {
                    emit(&b, out)?;
                    want += 1;
                    let _ = free_tx.send(b.buf);
                }
            }
            Ok(())
        })();
        // Stop the workers whatever happened: no new batches, and wake those
        // waiting for a buffer.
        stop.store(true, Ordering::Relaxed);
        next.store(batches, Ordering::Relaxed);
        drop(pending);
        drop(free_tx);
        drop(done_rx);
        r
    });
    result?;
    out.flush().map_err(Error::io("flushing the output"))?;
    Ok(written)
}

/// Encrypts the bytes of `input` (until end of input) into `region` of the
/// device. At most `region.len` bytes are accepted: more input is an
/// [`Error::OutOfBounds`] (the first `region.len` bytes are written). Partial
/// sectors at the ends are merged with the existing plaintext. `progress` is
/// called on the calling thread with the bytes encrypted and written so far.
/// Returns the bytes taken from `input`. The device is not synced.
pub fn encrypt_from_reader(
    device: &File,
    region: &Region,
    cipher: &SectorCipher,
    input: &mut dyn Read,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    encrypt_from_reader_with(
        device,
        region,
        cipher,
        input,
        progress,
        &StreamOptions::default(),
    )
}

/// Reads until `buf` is full or end of input; returns the bytes read.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the input")(e)),
        }
    }
    Ok(n)
}

/// [`encrypt_from_reader`] with explicit [`StreamOptions`].
pub fn encrypt_from_reader_with(
    device: &File,
    region: &Region,
    cipher: &SectorCipher,
    input: &mut dyn Read,
    progress: &dyn Fn(u64),
    opts: &StreamOptions,
) -> Result<u64> {
    region.check()?;
    let ss = region.sector_size;
    let ss64 = ss as u64;
    let batch = opts.batch(ss);
    let spb = (batch / ss) as u64;
    let head = (region.offset % ss64) as usize;
    let first_sector = region.offset / ss64;

    // Reads and decrypts the existing sector `s` into `dst` (one sector).
    let existing = |s: u64, dst: &mut [u8]| -> Result<()> {
        device::read_at(device, dst, region.data_offset + s * ss64)?;
        cipher
            .decrypt_sectors(dst, ss, region.iv_of_sector(s), region.iv_in_512_units)
            .map_err(|e| Error::Cipher(e.to_string()))
    };
    let write_batch = |b: &mut Batch| -> Result<()> {
        cipher
            .encrypt_sectors(
                &mut b.buf[..b.len],
                ss,
                region.iv_of_sector(b.sector),
                region.iv_in_512_units,
            )
            .map_err(|e| Error::Cipher(e.to_string()))?;
        device::write_at(
            device,
            &b.buf[..b.len],
            region.data_offset + b.sector * ss64,
        )
    };

    let threads = opts.threads();
    let nbufs = if threads == 1 { 1 } else { 2 * threads + 2 };
    let (free_tx, free_rx) = sync_channel::<Zeroizing<Vec<u8>>>(nbufs);
    for _ in 0..nbufs {
        let _ = free_tx.send(Zeroizing::new(vec![0u8; batch]));
    }
    let done = AtomicU64::new(0);
    let (work_tx, work_rx) = sync_channel::<Batch>(nbufs);
    let work_rx = Mutex::new(work_rx);
    let failed: Mutex<Option<Error>> = Mutex::new(None);

    // The producer: fills batches from the input, merging partial sectors.
    // `submit` runs a batch (inline or through the workers).
    let mut taken = 0u64;
    let mut produce = |submit: &mut dyn FnMut(Batch) -> Result<()>,
                       free: &Receiver<Zeroizing<Vec<u8>>>|
     -> Result<()> {
        let mut seq = 0u64;
        let mut sector = first_sector;
        loop {
            let mut buf = free
                .recv()
                .map_err(|_| Error::Unsupported("stream worker stopped".into()))?;
            progress(done.load(Ordering::Relaxed));
            let start = if seq == 0 { head } else { 0 };
            if start > 0 {
                existing(sector, &mut buf[..ss])?;
            }
            let room = (region.len - taken).min((batch - start) as u64) as usize;
            let n = fill(input, &mut buf[start..start + room])?;
            taken += n as u64;
            let mut used = start + n;
            let at_end = n < room || taken == region.len;
            if used % ss != 0 {
                // Partial last sector: merge with what is on the device.
                let s = sector + (used / ss) as u64;
                let base = used / ss * ss;
                let mut old = Zeroizing::new(vec![0u8; ss]);
                existing(s, &mut old)?;
                buf[used..base + ss].copy_from_slice(&old[used - base..]);
                used = base + ss;
            }
            if n > 0 {
                let len = used;
                submit(Batch {
                    seq,
                    buf,
                    sector,
                    len,
                })?;
            }
            if at_end {
                if taken == region.len {
                    // Anything more in the input does not fit.
                    let mut probe = [0u8; 1];
                    if fill(input, &mut probe)? > 0 {
                        return Err(Error::OutOfBounds {
                            offset: region.offset,
                            len: region.len + 1,
                            size: region.len,
                        });
                    }
                }
                return Ok(());
            }
            seq += 1;
            sector += spb;
        }
    };

    if threads == 1 {
        let recycle = free_tx.clone();
        let mut inline = |mut b: Batch| -> Result<()> {
            write_batch(&mut b)?;
            done.fetch_add(b.len as u64, Ordering::Relaxed);
            let _ = recycle.send(b.buf);
            Ok(())
        };
        produce(&mut inline, &free_rx)?;
    } else {
        let r = std::thread::scope(|s| -> Result<()> {
            for _ in 0..threads {
                let (work_rx, free_tx, failed, done) = (&work_rx, free_tx.clone(), &failed, &done);
                let write_batch = &write_batch;
                s.spawn(move || loop {
                    let mut b = {
                        let Ok(rx) = work_rx.lock() else { return };
                        match rx.recv() {
                            Ok(b) => b,
                            Err(_) => return,
                        }
                    };
                    if let Err(e) = write_batch(&mut b) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return; // dropping the buffer starves the producer, which then stops
                    }
                    done.fetch_add(b.len as u64, Ordering::Relaxed);
                    if free_tx.send(b.buf).is_err() {
                        return;
                    }
                });
            }
            drop(free_tx);
            let mut submit = |b: Batch| -> Result<()> {
                if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
                    return Err(e);
                }
                work_tx
                    .send(b)
                    .map_err(|_| Error::Unsupported("stream worker stopped".into()))
            };
            let r = produce(&mut submit, &free_rx);
            drop(work_tx);
            r
        });
        // A worker's own error explains a producer's "stopped" error.
        if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        r?;
    }
    progress(taken);
    Ok(taken)
}

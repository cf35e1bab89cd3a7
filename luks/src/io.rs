//! Userspace encrypted I/O over an unlocked volume: positional reads and
//! writes of the plaintext (read-modify-write of whole sectors for unaligned
//! requests), and a `Read + Write + Seek` adapter. Memory use is bounded by
//! [`CHUNK`] whatever the request size.

use crate::cipher::SectorCipher;
use crate::device;
use crate::error::{Error, Result};
use crate::volume_key::VolumeKey;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use zeroize::Zeroizing;

/// Largest buffer used by one step of a read or write.
pub(crate) const CHUNK: usize = 1 << 20;

/// Where the data segment lies and how it is encrypted: what a streaming engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLayout {
    /// Byte offset of the data segment on the device.
    pub offset: u64,
    /// Usable size in bytes (for a dynamic segment: the device size at unlock time,
    /// rounded down to whole sectors).
    pub size: u64,
    /// Whether the size follows the device (`dynamic`).
    pub dynamic: bool,
    /// Sector size in bytes.
    pub sector_size: u32,
    /// Added to the IV, in 512-byte units.
    pub iv_tweak: u64,
    /// Cipher spec, e.g. `aes-xts-plain64`.
    pub cipher: String,
}

impl DataLayout {
    /// The IV of the sector starting at byte `pos` of the segment: `iv_tweak` plus `pos`
    /// in 512-byte units, as LUKS counts IVs whatever the sector size.
    pub fn iv_for(&self, pos: u64) -> u64 {
        self.iv_tweak.wrapping_add(pos / 512)
    }
}

/// An unlocked volume: plaintext access to the data segment.
pub struct UnlockedVolume {
    file: File,
    layout: DataLayout,
    cipher: SectorCipher,
    writable: bool,
    key: VolumeKey,
}

impl std::fmt::Debug for UnlockedVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockedVolume")
            .field("layout", &self.layout)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl UnlockedVolume {
    pub(crate) fn new(
        file: File,
        layout: DataLayout,
        cipher: SectorCipher,
        writable: bool,
        key: VolumeKey,
    ) -> UnlockedVolume {
        UnlockedVolume {
            file,
            layout,
            cipher,
            writable,
            key,
        }
    }

    /// The data layout.
    pub fn layout(&self) -> &DataLayout {
        &self.layout
    }

    /// Plaintext size in bytes.
    pub fn size(&self) -> u64 {
        self.layout.size
    }

    /// The sector cipher of the data segment (for a streaming engine).
    pub fn sector_cipher(&self) -> &SectorCipher {
        &self.cipher
    }

    /// The underlying device handle.
    pub fn device(&self) -> &File {
        &self.file
    }

    /// The volume key (for handing to dm-crypt or for a header re-creation).
    pub fn volume_key(&self) -> &VolumeKey {
        &self.key
    }

    fn check(&self, offset: u64, len: usize) -> Result<()> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > self.layout.size) {
            return Err(Error::OutOfBounds {
                offset,
                len: len as u64,
                size: self.layout.size,
            });
        }
        Ok(())
    }

    fn ss(&self) -> u64 {
        self.layout.sector_size as u64
    }

    /// Reads and decrypts whole sectors at segment byte `pos` (sector aligned) into `buf`.
    fn read_sectors(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        device::read_at(&self.file, buf, self.layout.offset + pos)?;
        self.cipher
            .decrypt_sectors(
                buf,
                self.layout.sector_size as usize,
                self.layout.iv_for(pos),
                true,
            )
            .map_err(|e| Error::Cipher(e.to_string()))
    }

    /// Encrypts whole sectors in `buf` (clobbering it) and writes them at segment byte `pos`.
    fn write_sectors(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.cipher
            .encrypt_sectors(
                buf,
                self.layout.sector_size as usize,
                self.layout.iv_for(pos),
                true,
            )
            .map_err(|e| Error::Cipher(e.to_string()))?;
        device::write_at(&self.file, buf, self.layout.offset + pos)
    }

    /// Reads plaintext at `offset` of the data segment into `buf` (any alignment).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.check(offset, buf.len())?;
        let ss = self.ss();
        // decrypted sectors pass through it: wiped when dropped, also on an error
        let mut work = Zeroizing::new(vec![
            0u8;
            CHUNK.min(round_up_usize(
                buf.len() + 2 * ss as usize,
                ss as usize
            ))
        ]);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let start = pos / ss * ss;
            let skip = (pos - start) as usize;
            let want = buf.len() - done;
            let span = round_up_usize(skip + want, ss as usize).min(work.len());
            let chunk = &mut work[..span];
            self.read_sectors(chunk, start)?;
            let n = (span - skip).min(want);
            buf[done..done + n].copy_from_slice(&chunk[skip..skip + n]);
            done += n;
        }
        Ok(())
    }

    /// Writes plaintext `buf` at `offset` of the data segment (any alignment:
    /// partial sectors are read, patched and rewritten).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(Error::Io {
                context: "writing the data segment",
                source: io::Error::new(io::ErrorKind::PermissionDenied, "opened read-only"),
            });
        }
        self.check(offset, buf.len())?;
        let ss = self.ss();
        // decrypted sectors pass through it: wiped when dropped, also on an error
        let mut work = Zeroizing::new(vec![
            0u8;
            CHUNK.min(round_up_usize(
                buf.len() + 2 * ss as usize,
                ss as usize
            ))
        ]);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let start = pos / ss * ss;
            let skip = (pos - start) as usize;
            let want = buf.len() - done;
            let span = round_up_usize(skip + want, ss as usize).min(work.len());
            let n = (span - skip).min(want);
            let chunk = &mut work[..span];
            // partial first or last sector: read-modify-write
            if skip != 0 {
                self.read_sectors(&mut chunk[..ss as usize], start)?;
            }
            if !(skip + n).is_multiple_of(ss as usize) {
                let last = (skip + n) / ss as usize * ss as usize;
                if last >= ss as usize || skip == 0 {
                    self.read_sectors(&mut chunk[last..last + ss as usize], start + last as u64)?;
                }
            }
            chunk[skip..skip + n].copy_from_slice(&buf[done..done + n]);
            let used = round_up_usize(skip + n, ss as usize);
            self.write_sectors(&mut chunk[..used], start)?;
            done += n;
        }
        Ok(())
    }

    /// Flushes written data to stable storage.
    pub fn sync(&self) -> Result<()> {
        device::sync(&self.file)
    }

    /// A `Read + Write + Seek` view starting at position 0.
    ///
    /// ```no_run
    /// use std::io::{Read, Seek, SeekFrom, Write};
    /// let vol = luks::Volume::open("disk.img")?.unlock(b"passphrase", None)?;
    /// let mut s = vol.stream();
    /// s.seek(SeekFrom::Start(1000))?;
    /// s.write_all(b"spans a sector boundary if it must")?;
    /// s.seek(SeekFrom::Start(1000))?;
    /// let mut back = [0u8; 5];
    /// s.read_exact(&mut back)?;
    /// assert_eq!(&back, b"spans");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&self) -> VolumeStream<'_> {
        VolumeStream { vol: self, pos: 0 }
    }
}

fn round_up_usize(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

/// A cursor over the plaintext of an [`UnlockedVolume`] (`Read + Write + Seek`).
/// Reads stop at the end of the segment; writes past it fail.
#[derive(Debug)]
pub struct VolumeStream<'a> {
    vol: &'a UnlockedVolume,
    pos: u64,
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io { source, .. } => source,
        Error::OutOfBounds { .. } => io::Error::new(io::ErrorKind::WriteZero, e.to_string()),
        other => io::Error::other(other.to_string()),
    }
}

impl Read for VolumeStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.vol.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left).min(CHUNK as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.vol.read_at(&mut buf[..n], self.pos).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for VolumeStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.vol.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left).min(CHUNK as u64) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "end of the data segment",
            ));
        }
        self.vol.write_at(&buf[..n], self.pos).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.vol.sync().map_err(to_io)
    }
}

impl Seek for VolumeStream<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.vol.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start",
            )),
        }
    }
}

/// Bulk transfers through the parallel streaming engine ([`crate::decrypt_to_writer`]):
/// what `keymgr luks read` / `keymgr luks write` use.
impl UnlockedVolume {
    /// The streaming-engine region for `len` bytes at `offset` of the data segment
    /// (bounds checked).
    pub fn region(&self, offset: u64, len: u64) -> Result<crate::stream::Region> {
        if offset.checked_add(len).is_none_or(|e| e > self.layout.size) {
            return Err(Error::OutOfBounds {
                offset,
                len,
                size: self.layout.size,
            });
        }
        Ok(crate::stream::Region {
            data_offset: self.layout.offset,
            offset,
            len,
            sector_size: self.layout.sector_size as usize,
            iv_in_512_units: true,
            iv_tweak: self.layout.iv_tweak,
        })
    }

    /// Decrypts `len` bytes (default: to the end of the segment) from `offset`
    /// into `out`, in order, on all cores with bounded memory. `progress` gets the
    /// bytes written so far. Returns the bytes written.
    pub fn export_to(
        &self,
        out: &mut dyn Write,
        offset: u64,
        len: Option<u64>,
        progress: &dyn Fn(u64),
    ) -> Result<u64> {
        let len = len.unwrap_or_else(|| self.layout.size.saturating_sub(offset));
        let region = self.region(offset, len)?;
        crate::stream::decrypt_to_writer(&self.file, &region, &self.cipher, out, progress)
    }

    /// Encrypts everything `input` yields into the segment from `offset` (partial
    /// sectors at the ends are merged), then syncs. Input longer than the rest of
    /// the segment is an [`Error::OutOfBounds`]. Returns the bytes taken.
    pub fn import_from(
        &self,
        input: &mut dyn Read,
        offset: u64,
        progress: &dyn Fn(u64),
    ) -> Result<u64> {
        if !self.writable {
            return Err(Error::Io {
                context: "writing the data segment",
                source: io::Error::new(io::ErrorKind::PermissionDenied, "opened read-only"),
            });
        }
        let len = self
            .layout
            .size
            .checked_sub(offset)
            .ok_or(Error::OutOfBounds {
                offset,
                len: 0,
                size: self.layout.size,
            })?;
        let region = self.region(offset, len)?;
        let n =
            crate::stream::encrypt_from_reader(&self.file, &region, &self.cipher, input, progress)?;
        self.sync()?;
        Ok(n)
    }
}

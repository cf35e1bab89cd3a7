//! Positional I/O helpers over files and block devices.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// Size of a file or block device in bytes (block devices report 0 in metadata).
pub(crate) fn size(file: &File) -> Result<u64> {
    let meta = file
        .metadata()
        .map_err(Error::io("reading device metadata"))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    f.seek(SeekFrom::End(0))
        .map_err(Error::io("finding the device size"))
}

/// Reads exactly `buf.len()` bytes at `offset`; a short device is an error.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::DeviceTooSmall {
                needed: offset.saturating_add(buf.len() as u64),
                have: size(file).unwrap_or(0),
            }
        } else {
            Error::Io {
                context: "reading the device",
                source: e,
            }
        }
    })
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> Result<()> {
    file.write_all_at(buf, offset)
        .map_err(Error::io("writing the device"))
}

/// Flushes data to stable storage.
pub(crate) fn sync(file: &File) -> Result<()> {
    file.sync_data().map_err(Error::io("syncing the device"))
}

/// Overwrites `len` bytes at `offset` with random bytes then zeros, and syncs
/// (how removed keyslot material is destroyed).
pub fn wipe(file: &File, offset: u64, len: u64) -> Result<()> {
    let chunk = 64 * 1024u64;
    let mut buf = vec![0u8; chunk.min(len) as usize];
    for pass in 0..2 {
        let mut done = 0u64;
        while done < len {
            let n = chunk.min(len - done) as usize;
            if pass == 0 {
                crate::random::fill(&mut buf[..n])?;
            } else {
                buf[..n].fill(0);
            }
            write_at(file, &buf[..n], offset + done)?;
            done += n as u64;
        }
        sync(file)?;
    }
    Ok(())
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `v` rounded up to a multiple of `a` (`a` = 0 leaves it unchanged).
pub(crate) fn round_up(v: u64, a: u64) -> u64 {
    if a == 0 {
        v
    } else {
        v.div_ceil(a) * a
    }
}

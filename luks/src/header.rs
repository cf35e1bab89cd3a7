//! Reading a header: tells LUKS1 from LUKS2 by the magic and version, then reads it
//! (LUKS2: both copies, see [`crate::luks2::disk`]).

use crate::device;
use crate::error::{Error, Result};
use crate::luks1;
use crate::luks2::binary::BIN_LEN;
use crate::luks2::disk::{read_luks2, L2};
use std::fs::File;

/// A header of either version, as read and validated.
// one per open volume: the size difference does not matter
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Hdr {
    V1(luks1::Header),
    V2(Box<L2>),
}

/// Reads and validates the header at the start of `file` (LUKS1 or LUKS2).
pub(crate) fn read_header(file: &File) -> Result<Hdr> {
    let dev_size = device::size(file)?;
    let mut first = [0u8; BIN_LEN];
    let n = dev_size.min(BIN_LEN as u64) as usize;
    device::read_at(file, &mut first[..n], 0)?;
    if n >= 8 && first[..6] == luks1::MAGIC && u16::from_be_bytes([first[6], first[7]]) == 1 {
        return Ok(Hdr::V1(luks1::Header::parse(&first[..n])?));
    }
    if n >= 8 && first[..6] == luks1::MAGIC && u16::from_be_bytes([first[6], first[7]]) != 2 {
        return Err(Error::UnsupportedVersion(u16::from_be_bytes([
            first[6], first[7],
        ])));
    }
    Ok(Hdr::V2(Box::new(read_luks2(file, dev_size)?)))
}

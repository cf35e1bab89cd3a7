//! LUKS2's two header copies on disk: reading both (sequence ids, checksums, which copy
//! wins and whether the other needs repair) and writing both.

use crate::device;
use crate::error::{Error, Problem, Result};
use crate::luks2::binary::{self, BinHeader, BIN_LEN, HDR_SIZES};
use crate::luks2::json::Metadata;
use crate::random::random;
use std::fs::File;

/// A LUKS2 header in memory: the binary header of the copy in use and the metadata.
#[derive(Debug, Clone)]
pub(crate) struct L2 {
    pub(crate) bin: BinHeader,
    pub(crate) md: Metadata,
    /// Why the copies need rewriting (one damaged or stale), if they do.
    pub(crate) repair: Option<String>,
}

/// Reads one LUKS2 copy at `offset` (0 = primary).
fn read_l2_copy(file: &File, offset: u64, dev_size: u64) -> Result<(BinHeader, Metadata)> {
    if offset + BIN_LEN as u64 > dev_size {
        return Err(Error::DeviceTooSmall {
            needed: offset + BIN_LEN as u64,
            have: dev_size,
        });
    }
    let mut b = vec![0u8; BIN_LEN];
    device::read_at(file, &mut b, offset)?;
    let bin = BinHeader::parse(&b, offset)?;
    if offset != 0 && bin.hdr_size != offset {
        return Err(Error::field(
            "hdr_size",
            Problem::Invalid("secondary copy size differs from its offset".into()),
        ));
    }
    if offset + bin.hdr_size > dev_size {
        return Err(Error::DeviceTooSmall {
            needed: offset + bin.hdr_size,
            have: dev_size,
        });
    }
    // hdr_size is one of the allowed sizes (<= 4 MiB): a bounded allocation.
    let mut copy = vec![0u8; bin.hdr_size as usize];
    device::read_at(file, &mut copy, offset)?;
    binary::verify_checksum(&copy, offset)?;
    let md = Metadata::parse_area(&copy[BIN_LEN..], bin.hdr_size)?;
    Ok((bin, md))
}

/// Reads both copies: the valid one with the higher sequence id wins, and a damaged or
/// stale other copy is noted for repair.
pub(crate) fn read_luks2(file: &File, dev_size: u64) -> Result<L2> {
    let primary = read_l2_copy(file, 0, dev_size);
    let mut secondary = Err(Error::BadMagic);
    let candidates: Vec<u64> = match &primary {
        Ok((b, _)) => vec![b.hdr_size],
        Err(_) => HDR_SIZES.to_vec(),
    };
    let single = candidates.len() == 1;
    for off in candidates {
        let r = read_l2_copy(file, off, dev_size);
        let bad_magic = matches!(r, Err(Error::BadMagic) | Err(Error::DeviceTooSmall { .. }));
        if !bad_magic || single {
            secondary = r;
            break;
        }
    }
    match (primary, secondary) {
        (Ok((pb, pm)), Ok((sb, sm))) => {
            if sb.seqid > pb.seqid {
                Ok(L2 {
                    bin: sb,
                    md: sm,
                    repair: Some("primary copy is older than the secondary".into()),
                })
            } else {
                let repair = (sb.seqid != pb.seqid || sm != pm)
                    .then(|| "secondary copy differs".to_string());
                Ok(L2 {
                    bin: pb,
                    md: pm,
                    repair,
                })
            }
        }
        (Ok((pb, pm)), Err(e)) => Ok(L2 {
            bin: pb,
            md: pm,
            repair: Some(format!("secondary copy damaged: {e}")),
        }),
        (Err(e), Ok((sb, sm))) => Ok(L2 {
            bin: sb,
            md: sm,
            repair: Some(format!("primary copy damaged: {e}")),
        }),
        (Err(p), Err(s)) => {
            if matches!(p, Error::BadMagic) && matches!(s, Error::BadMagic) {
                Err(Error::BadMagic)
            } else {
                Err(Error::NoValidHeader {
                    primary: Box::new(p),
                    secondary: Box::new(s),
                })
            }
        }
    }
}

/// Writes both copies (validated, new sequence id, fresh salts), each synced.
pub(crate) fn write_luks2(file: &File, l2: &mut L2) -> Result<()> {
    write_luks2_with(l2, |bytes, offset| {
        device::write_at(file, bytes, offset)?;
        device::sync(file)
    })
}

/// [`write_luks2`] through `put(bytes, offset)`, which writes one copy and
/// syncs it (the reencryption engine's writer records its writes for the
/// crash tests).
pub(crate) fn write_luks2_with(
    l2: &mut L2,
    mut put: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    l2.md.validate(l2.bin.hdr_size)?;
    let area = l2.md.to_area(l2.bin.hdr_size - BIN_LEN as u64)?;
    l2.bin.seqid = l2
        .bin
        .seqid
        .checked_add(1)
        .ok_or_else(|| Error::field("seqid", Problem::Overflow))?;
    for offset in [0, l2.bin.hdr_size] {
        let mut b = l2.bin.clone();
        b.hdr_offset = offset;
        b.salt.copy_from_slice(&random(64)?);
        let bytes = b.serialize(&area)?;
        put(&bytes, offset)?;
    }
    l2.bin.hdr_offset = 0;
    l2.repair = None;
    Ok(())
}

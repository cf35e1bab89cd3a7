//! `luksHeaderBackup` / `luksHeaderRestore`: the whole metadata region
//! (headers and keyslot areas) copied to or from a file.

use crate::device;
use crate::error::{Error, Result};
use crate::header::{read_header, Hdr};
use crate::volume::Volume;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

impl Volume {
    /// Writes the metadata region to a new file `dest` (mode 0600; refuses to overwrite).
    pub fn backup_header(&self, dest: impl AsRef<Path>) -> Result<()> {
        let len = self.metadata_len();
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest.as_ref())
            .map_err(Error::io("creating the backup file"))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(buf.len() as u64) as usize;
            device::read_at(self.file(), &mut buf[..n], off)?;
            out.write_all(&buf[..n])
                .map_err(Error::io("writing the backup file"))?;
            off += n as u64;
        }
        out.sync_all().map_err(Error::io("syncing the backup file"))
    }

    /// Restores a header backup onto the device at `path`. The backup is fully
    /// validated first; if the device already holds a LUKS header, the data offset
    /// and version must match. Keyslot areas are written first, then the header
    /// (LUKS2: primary then secondary copy), each step synced.
    pub fn restore_header(path: impl AsRef<Path>, backup: impl AsRef<Path>) -> Result<Volume> {
        let bfile = File::open(backup.as_ref()).map_err(Error::io("opening the backup file"))?;
        let bhdr = read_header(&bfile).map_err(|e| Error::Backup(e.to_string()))?;
        let bvol = Volume {
            file: bfile,
            path: backup.as_ref().to_path_buf(),
            hdr: bhdr,
            writable: false,
            data_file: None,
        };
        if bvol.needs_repair().is_some() {
            return Err(Error::Backup("the backup's header copies differ".into()));
        }
        let len = bvol.metadata_len();
        let blen = device::size(bvol.file())?;
        if blen < len {
            return Err(Error::Backup(format!(
                "backup holds {blen} bytes, the header needs {len}"
            )));
        }
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.as_ref())
            .map_err(Error::io("opening the device"))?;
        let lock = crate::volume::lock(&dev)?;
        if let Ok(cur) = read_header(&dev) {
            let cur = Volume {
                file: dev.try_clone().map_err(Error::io("duplicating"))?,
                path: path.as_ref().to_path_buf(),
                hdr: cur,
                writable: true,
                data_file: None,
            };
            let (a, b) = (cur.dump(), bvol.dump());
            if a.version != b.version || a.data_offset != b.data_offset {
                return Err(Error::Backup(
                    "the device holds a LUKS header with another version or data offset".into(),
                ));
            }
        }
        let dsize = device::size(&dev)?;
        if dsize < len {
            return Err(Error::DeviceTooSmall {
                needed: len,
                have: dsize,
            });
        }
        let header_len = match &bvol.hdr {
            Hdr::V1(_) => 4096u64,
            Hdr::V2(l) => 2 * l.bin.hdr_size,
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut copy = |from: u64, to: u64| -> Result<()> {
            let mut off = from;
            while off < to {
                let n = (to - off).min(buf.len() as u64) as usize;
                device::read_at(bvol.file(), &mut buf[..n], off)?;
                device::write_at(&dev, &buf[..n], off)?;
                off += n as u64;
            }
            device::sync(&dev)
        };
        copy(header_len.min(len), len)?;
        match &bvol.hdr {
            Hdr::V1(_) => copy(0, header_len.min(len))?,
            Hdr::V2(l) => {
                copy(0, l.bin.hdr_size)?;
                copy(l.bin.hdr_size, 2 * l.bin.hdr_size)?;
            }
        }
        drop(lock);
        drop(dev);
        Volume::open(path)
    }
}

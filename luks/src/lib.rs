//! LUKS1 and LUKS2 volumes: on-disk formats, keyslots and userspace encrypted I/O,
//! interoperable with cryptsetup 2.6+ and qemu's LUKS driver.
//!
//! * [`format()`] creates a volume ([`FormatOptions`] has one field per `cryptsetup luksFormat` option).
//! * [`Volume::open`] reads and validates a header (both LUKS2 copies, strict checks, typed
//!   [`Error`] naming the field); then [`Volume::unlock`] / [`Volume::unlock_with_volume_key`]
//!   give an [`UnlockedVolume`] with `read_at` / `write_at` and a `Read + Write + Seek` stream.
//! * Keyslots: [`Volume::add_key`], [`Volume::change_key`], [`Volume::remove_key`],
//!   [`Volume::kill_slot`], [`Volume::test_passphrase`]; tokens, dump, header backup/restore.
//! * Feature `kernel`: dm-crypt activation through the `cryptsetup` binary (module `kernel`).
//!
//! ```no_run
//! use luks::{format, FormatOptions, KeyslotOptions, Unlock, Volume};
//! format("disk.img", &FormatOptions::default(), b"first")?;
//! let mut vol = Volume::open("disk.img")?;
//! let slot = vol.add_key(Unlock::Passphrase { passphrase: b"first", slot: None }, b"second", &KeyslotOptions::default())?;
//! let data = vol.unlock(b"second", Some(slot))?;
//! let mut buf = [0u8; 4];
//! data.read_at(&mut buf, 1000)?;
//! # Ok::<(), luks::Error>(())
//! ```
//!
//! # Where things are
//!
//! One concept per file, named as cryptsetup names it (`lib/luks1/`, `lib/luks2/`):
//!
//! | File | Holds |
//! |------|-------|
//! | `volume.rs` | [`Volume`]: opening, accessors, unlocking (every keyslot in priority order, digest check) |
//! | `keyslot_ops.rs` | `add_key`, `change_key`, `remove_key`, `kill_slot` ([`Unlock`]) |
//! | `format.rs` | `luksFormat`: shared checks, then the LUKS1 or the LUKS2 layout |
//! | `backup.rs`, `dump.rs` | `luksHeaderBackup` / `luksHeaderRestore`, `luksDump` |
//! | `volume_key.rs` | [`VolumeKey`] (zeroized, never printed) |
//! | `io.rs`, `stream.rs` | [`UnlockedVolume`] (`read_at` / `write_at` / stream), bulk parallel streaming |
//! | `reencrypt/` | offline LUKS2 reencryption (cryptsetup's protocol): `metadata.rs`, `hotzone.rs`, `engine.rs` |
//! | `kernel.rs` | dm-crypt activation through `cryptsetup` (feature `kernel`) |
//! | `header.rs` | reading a header: LUKS1 or LUKS2 |
//! | `luks1.rs` | the LUKS1 header; its keyslots: parameters, opening, writing |
//! | `luks2/binary.rs`, `luks2/json.rs`, `luks2/validate.rs` | the LUKS2 binary header; the JSON metadata; its validation as a whole |
//! | `luks2/disk.rs` | the two LUKS2 header copies: read, choose, repair, write |
//! | `luks2/keyslot.rs` | LUKS2 keyslots: parameters, area allocation, opening, writing |
//! | `luks2/token.rs` | LUKS2 tokens |
//! | `keyslot.rs`, `af.rs`, `kdf.rs`, `hash.rs` | keyslot material (KDF, AF split, area encryption), shared by both versions |
//! | `cipher/` | sector ciphers (XTS, CBC; AWS-LC or pure Rust) |
//! | `device.rs`, `random.rs` | positional device I/O and wiping; OS randomness |
//! | `error.rs`, `options.rs`, `provider.rs` | [`Error`]; [`FormatOptions`] / [`KeyslotOptions`]; Cinder providers |

mod af;
mod backup;
mod cipher;
mod device;
mod dump;
mod error;
mod format;
mod hash;
mod header;
mod io;
mod kdf;
#[cfg(feature = "kernel")]
pub mod kernel;
mod keyslot;
mod keyslot_ops;
mod luks1;
mod luks2;
mod options;
mod provider;
mod random;
pub mod reencrypt;
mod stream;
mod volume;
mod volume_key;

// The public API, chosen: volumes and their operations,
pub use format::{format, format_file, VolumeInfo};
pub use keyslot_ops::Unlock;
pub use volume::Volume;
pub use volume_key::VolumeKey;
// their options,
pub use hash::HashAlg;
pub use kdf::{benchmark as benchmark_kdf, Argon2Variant, Kdf, PbkdfType};
pub use options::{FormatOptions, KeyslotOptions, LuksType, PbkdfOptions};
pub use provider::Provider;
// encrypted I/O once unlocked (random access, streams, bulk parallel streaming),
pub use io::{DataLayout, UnlockedVolume, VolumeStream};
pub use stream::{
    decrypt_to_writer, decrypt_to_writer_with, encrypt_from_reader, encrypt_from_reader_with,
    Region, StreamOptions,
};
// the sector ciphers underneath (for benchmarks and cross-checks),
pub use cipher::{Backend, CipherError, SectorCipher};
// luksDump and header maintenance,
pub use device::wipe;
pub use dump::{Dump, KeyslotDump};
// and errors.
pub use error::{Error, Problem, Result};

/// The header parsers and writers, for the fuzz targets and the hostile-header tests
/// only: not a stable API.
#[doc(hidden)]
pub mod internal {
    pub use crate::luks1::{Header as Luks1Header, Keyslot as Luks1Keyslot, HEADER_LEN};
    pub use crate::luks2::binary::{verify_checksum, BinHeader, BIN_LEN, HDR_SIZES};
    pub use crate::luks2::json::{
        json_text, Area, Config, DigestEntry, Keyslot as Luks2Keyslot, Metadata, Segment, Token,
    };
}

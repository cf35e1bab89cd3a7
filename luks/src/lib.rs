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

pub mod af;
pub mod backup;
pub mod cipher;
pub mod device;
pub mod dump;
pub mod error;
pub mod hash;
pub mod io;
pub mod kdf;
#[cfg(feature = "kernel")]
pub mod kernel;
pub mod keyslot;
pub mod luks1;
pub mod luks2;
pub mod options;
pub mod provider;
pub mod stream;
pub mod volume;

pub use dump::{Dump, KeyslotDump};
pub use error::{Error, Problem, Result};
pub use hash::HashAlg;
pub use io::{DataLayout, UnlockedVolume, VolumeStream};
pub use kdf::{Argon2Variant, Kdf, PbkdfType};
pub use options::{FormatOptions, KeyslotOptions, LuksType, PbkdfOptions};
pub use provider::Provider;
pub use volume::{format, format_file, Unlock, Volume, VolumeInfo, VolumeKey};

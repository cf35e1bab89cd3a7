//! The master key of a sealed store: 32 bytes from a key file, or a
//! passphrase stretched with Argon2id.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::SealedError;

/// Length of a master key (and of a key file), in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Argon2id costs for deriving a master key from a passphrase.
///
/// A new sealed file records the costs it was created with in its header;
/// opening a file uses the header's costs (checked against
/// [`Argon2Params::validate`] before any work), not the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// The costs of new passphrase-sealed files: 64 MiB, 3 passes, 1 lane
    /// (RFC 9106's second recommendation, single-lane).
    pub const DEFAULT: Argon2Params = Argon2Params {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    /// Most memory a file may ask for: 1 GiB.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// Most passes a file may ask for.
    pub const MAX_ITERATIONS: u32 = 32;
    /// Most lanes a file may ask for.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the bounds: 1..=16 lanes, 1..=32 passes, and from 8 KiB per
    /// lane up to 1 GiB of memory. Returns what is out of bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MAX_PARALLELISM).contains(&self.parallelism) {
            return Err(format!(
                "argon2 parallelism {} is outside 1..={}",
                self.parallelism,
                Self::MAX_PARALLELISM
            ));
        }
        if !(1..=Self::MAX_ITERATIONS).contains(&self.iterations) {
            return Err(format!(
                "argon2 iterations {} is outside 1..={}",
                self.iterations,
                Self::MAX_ITERATIONS
            ));
        }
        let min_mem = 8 * self.parallelism;
        if !(min_mem..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(format!(
                "argon2 memory {} KiB is outside {min_mem}..={} KiB",
                self.memory_kib,
                Self::MAX_MEMORY_KIB
            ));
        }
        Ok(())
    }

    /// Derives 32 bytes from `passphrase` and `salt` with Argon2id (v1.3).
    pub(crate) fn derive(
        &self,
        passphrase: &[u8],
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, String> {
        self.validate()?;
        let params = argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(MASTER_KEY_LEN),
        )
        .map_err(|e| format!("argon2 parameters refused: {e}"))?;
        // Our own working memory, wiped when dropped: `hash_password_into`
        // frees its memory unwiped, and the last block is one hash away from
        // the derived key (found by tests/tests/hygiene_zeroize.rs).
        let mut memory = Zeroizing::new(Vec::new());
        memory
            .try_reserve_exact(params.block_count())
            .map_err(|_| "cannot allocate the argon2 memory".to_string())?;
        memory.resize(params.block_count(), argon2::Block::new());
        let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        a2.hash_password_into_with_memory(passphrase, salt, out.as_mut(), &mut memory[..])
            .map_err(|e| format!("argon2 derivation failed: {e}"))?;
        Ok(out)
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

pub(crate) enum Source {
    Key(Zeroizing<[u8; MASTER_KEY_LEN]>),
    Passphrase(Zeroizing<String>),
}

/// What unlocks a sealed store: 32 key bytes, or a passphrase.
///
/// Zeroized on drop; `Debug` shows only which of the two it is.
///
/// ```
/// use keymgr_mock::MasterKey;
/// let k = MasterKey::from_bytes([7u8; 32]);
/// assert_eq!(format!("{k:?}"), "MasterKey(key, [REDACTED])");
/// ```
pub struct MasterKey {
    pub(crate) source: Source,
    /// The Argon2id costs a *new* passphrase-sealed file is created with.
    pub(crate) new_file_params: Argon2Params,
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        MasterKey {
            source: Source::Key(Zeroizing::new(bytes)),
            new_file_params: Argon2Params::DEFAULT,
        }
    }

    /// 32 fresh bytes from the operating system's random source.
    pub fn generate() -> Result<Self, SealedError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        getrandom::fill(key.as_mut()).map_err(|e| SealedError::Random {
            reason: e.to_string(),
        })?;
        Ok(MasterKey {
            source: Source::Key(key),
            new_file_params: Argon2Params::DEFAULT,
        })
    }

    /// A passphrase, stretched with Argon2id and the file's salt. New
    /// files use [`Argon2Params::DEFAULT`] unless
    /// [`MasterKey::with_argon2_params`] says otherwise.
    pub fn from_passphrase(passphrase: impl Into<String>) -> Result<Self, SealedError> {
        let p = Zeroizing::new(passphrase.into());
        if p.is_empty() {
            return Err(SealedError::Passphrase {
                reason: "the passphrase is empty".into(),
            });
        }
        Ok(MasterKey {
            source: Source::Passphrase(p),
            new_file_params: Argon2Params::DEFAULT,
        })
    }

    /// The same key, creating new passphrase-sealed files with `params`
    /// (no effect on key-file keys or on existing files).
    pub fn with_argon2_params(mut self, params: Argon2Params) -> Result<Self, SealedError> {
        params
            .validate()
            .map_err(|reason| SealedError::Passphrase { reason })?;
        self.new_file_params = params;
        Ok(self)
    }

    /// Whether this is a passphrase (rather than key bytes).
    pub fn is_passphrase(&self) -> bool {
        matches!(self.source, Source::Passphrase(_))
    }

    /// Reads a key file: exactly 32 bytes. A file readable by group or
    /// others is used, with a warning.
    pub fn load_key_file(path: impl AsRef<Path>) -> Result<Self, SealedError> {
        let path = path.as_ref();
        let io = |action: &'static str| {
            move |source| SealedError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let mut f = std::fs::File::open(path).map_err(io("open key file"))?;
        let meta = f.metadata().map_err(io("stat key file"))?;
        if !meta.is_file() {
            return Err(SealedError::KeyFile {
                path: path.to_path_buf(),
                reason: "not a regular file".into(),
            });
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "key file is readable by group or others; it should be mode 0600"
            );
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(MASTER_KEY_LEN + 1));
        std::io::Read::by_ref(&mut f)
            .take(MASTER_KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(io("read key file"))?;
        if buf.len() != MASTER_KEY_LEN {
            return Err(SealedError::KeyFile {
                path: path.to_path_buf(),
                reason: if buf.len() > MASTER_KEY_LEN {
                    format!("longer than {MASTER_KEY_LEN} bytes; a key file holds exactly {MASTER_KEY_LEN} random bytes")
                } else {
                    format!(
                        "{} bytes; a key file holds exactly {MASTER_KEY_LEN} random bytes",
                        buf.len()
                    )
                },
            });
        }
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        key.copy_from_slice(&buf);
        Ok(MasterKey {
            source: Source::Key(key),
            new_file_params: Argon2Params::DEFAULT,
        })
    }

    /// Reads the key file, or when there is none creates it with 32 random
    /// bytes and mode 0600. Creation is atomic and never replaces a file:
    /// if another process creates it first, its key is read.
    pub fn load_or_create_key_file(path: impl AsRef<Path>) -> Result<Self, SealedError> {
        let path = path.as_ref();
        match std::fs::symlink_metadata(path) {
            Ok(_) => return Self::load_key_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SealedError::Io {
                    path: path.to_path_buf(),
                    action: "stat key file",
                    source,
                })
            }
        }
        let key = Self::generate()?;
        match key.write_new_key_file(path) {
            Ok(()) => Ok(key),
            Err(SealedError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Self::load_key_file(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the key bytes to a new file at `path` (mode 0600, fsynced),
    /// never replacing an existing file (`AlreadyExists`). Fails for a
    /// passphrase.
    pub fn write_new_key_file(&self, path: impl AsRef<Path>) -> Result<(), SealedError> {
        let path = path.as_ref();
        let Source::Key(key) = &self.source else {
            return Err(SealedError::KeyFile {
                path: path.to_path_buf(),
                reason: "a passphrase is not written to a key file".into(),
            });
        };
        let dir = crate::file::parent_dir(path);
        crate::file::create_private_dir(&dir)?;
        let io = |action: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| SealedError::Io {
                path: p,
                action,
                source,
            }
        };
        // Write a temporary file fully, then link it into place: the key
        // file appears complete or not at all, and an existing one is
        // never replaced (link fails with AlreadyExists).
        let tmp = crate::file::temp_path(path);
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("create temporary key file", &tmp))?;
            f.write_all(key.as_ref())
                .map_err(io("write temporary key file", &tmp))?;
            f.sync_all().map_err(io("sync temporary key file", &tmp))?;
            std::fs::hard_link(&tmp, path).map_err(io("create key file", path))?;
            crate::file::sync_dir(&dir)
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Key(_) => f.write_str("MasterKey(key, [REDACTED])"),
            Source::Passphrase(_) => f.write_str("MasterKey(passphrase, [REDACTED])"),
        }
    }
}

//! The sealed file on disk: locking, change detection, atomic replacement.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::master::MasterKey;
use crate::sealed::{self, Kdf, Keys};
use crate::store::Store;
use crate::SealedError;

/// What identifies one version of the file: writes replace the file by
/// rename, so any write changes the inode, and the times and length too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(m: &std::fs::Metadata) -> Self {
        Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and missing parents with mode 0700 (existing ones are left as they are).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), SealedError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SealedError::Io {
            path: dir.to_path_buf(),
            action: "create directory",
            source,
        })
}

/// A temporary file name beside `path`, unique to this process and call.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let rand = uuid::Uuid::new_v4().simple().to_string();
    parent_dir(path).join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        &rand[..12]
    ))
}

/// Removes temporary files of `path` left by writers that died between
/// creating and renaming them. Only called with the exclusive lock held:
/// every live writer holds it while its temporary file exists, so what is
/// found here belongs to nobody.
fn remove_stale_temp_files(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(file = %e.path().display(), "removing a stale temporary file");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// fsyncs a directory, so a rename or link in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SealedError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SealedError::Io {
            path: dir.to_path_buf(),
            action: "sync directory",
            source,
        })
}

/// Holds the exclusive lock on the sidecar lock file until dropped.
pub(crate) struct LockGuard(Arc<File>);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// An open sealed store file.
pub(crate) struct SealedFile {
    path: PathBuf,
    lock_path: PathBuf,
    lock: Arc<File>,
    master: MasterKey,
    keys: Option<Keys>,
    /// The version of the file the in-memory store reflects; `None` forces a re-read.
    seen: Option<Fingerprint>,
    generation: u64,
}

impl SealedFile {
    /// Opens (or creates, empty) the sealed store at `path`; returns it with its contents.
    pub fn open(path: &Path, master: MasterKey) -> Result<(SealedFile, Store), SealedError> {
        let dir = parent_dir(path);
        create_private_dir(&dir)?;
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock_path = PathBuf::from(lock_name);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| SealedError::Io {
                path: lock_path.clone(),
                action: "open lock file",
                source,
            })?;
        let mut file = SealedFile {
            path: path.to_path_buf(),
            lock_path,
            lock: Arc::new(lock),
            master,
            keys: None,
            seen: None,
            generation: 0,
        };
        let mut store = Store::default();
        {
            let _guard = file.lock_exclusive()?;
            remove_stale_temp_files(path);
            match std::fs::symlink_metadata(path) {
                Ok(_) => file.refresh(&mut store)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let salt = sealed::new_salt()?;
                    let kdf = if file.master.is_passphrase() {
                        Kdf::Argon2id(file.master.new_file_params)
                    } else {
                        Kdf::KeyFile
                    };
                    let keys = Keys::derive(&file.master, kdf, salt).map_err(|e| match e {
                        sealed::DeriveError::Mismatch(r) => SealedError::WrongKey {
                            path: path.to_path_buf(),
                            reason: r.into(),
                        },
                        sealed::DeriveError::Params(reason) => SealedError::Passphrase { reason },
                    })?;
                    file.keys = Some(keys);
                    file.commit(&store)?;
                }
                Err(source) => {
                    return Err(SealedError::Io {
                        path: path.to_path_buf(),
                        action: "stat sealed store",
                        source,
                    })
                }
            }
        }
        Ok((file, store))
    }

    /// Takes the exclusive lock on `<path>.lock`, waiting for other
    /// processes (and other managers in this process) to release it.
    pub fn lock_exclusive(&self) -> Result<LockGuard, SealedError> {
        self.lock.lock().map_err(|source| SealedError::Io {
            path: self.lock_path.clone(),
            action: "lock",
            source,
        })?;
        Ok(LockGuard(Arc::clone(&self.lock)))
    }

    /// Forgets which version of the file the store reflects, so the next
    /// refresh reads it again (after a failed write).
    pub fn invalidate(&mut self) {
        self.seen = None;
    }

    /// Re-reads the file into `store` if it changed since it was last read
    /// or written. On error `store` is unchanged.
    pub fn refresh(&mut self, store: &mut Store) -> Result<(), SealedError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SealedError::Io {
                path,
                action,
                source,
            }
        };
        let mut f = File::open(&self.path).map_err(io("open sealed store", &self.path))?;
        let meta = f.metadata().map_err(io("stat sealed store", &self.path))?;
        let fp = Fingerprint::of(&meta);
        if self.seen == Some(fp) {
            return Ok(());
        }
        if !meta.is_file() {
            return Err(SealedError::Corrupt {
                path: self.path.clone(),
                reason: "not a regular file".into(),
            });
        }
        if meta.len() > sealed::MAX_FILE_LEN {
            return Err(SealedError::TooLarge {
                path: self.path.clone(),
                len: meta.len(),
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::io::Read::by_ref(&mut f)
            .take(sealed::MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io("read sealed store", &self.path))?;
        if bytes.len() as u64 > sealed::MAX_FILE_LEN {
            return Err(SealedError::TooLarge {
                path: self.path.clone(),
                len: bytes.len() as u64,
            });
        }
        let (new_store, header) = sealed::decode(&self.path, &bytes, &self.master, &mut self.keys)?;
        *store = new_store;
        self.generation = header.generation;
        self.seen = Some(fp);
        tracing::debug!(path = %self.path.display(), generation = header.generation, secrets = store.records.len(), "read sealed store");
        Ok(())
    }

    /// Writes `store` atomically: a 0600 temporary file in the same
    /// directory, fsync, rename over the store, fsync the directory. Call
    /// with the lock held, after [`SealedFile::refresh`].
    pub fn commit(&mut self, store: &Store) -> Result<(), SealedError> {
        let Some(keys) = self.keys.as_ref() else {
            return Err(SealedError::Corrupt {
                path: self.path.clone(),
                reason: "no keys derived before writing".into(),
            });
        };
        let generation = self.generation.wrapping_add(1);
        let bytes = sealed::encode(&self.path, store, keys, generation)?;
        let tmp = temp_path(&self.path);
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SealedError::Io {
                path,
                action,
                source,
            }
        };
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("create temporary file", &tmp))?;
            f.write_all(&bytes)
                .map_err(io("write temporary file", &tmp))?;
            f.sync_all().map_err(io("sync temporary file", &tmp))?;
            drop(f);
            std::fs::rename(&tmp, &self.path).map_err(io("replace sealed store", &self.path))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            self.seen = None;
            return Err(e);
        }
        self.generation = generation;
        // The rename is done; from here the new file is the store even if
        // the directory sync fails (reported, and the next read re-reads).
        let synced = sync_dir(&parent_dir(&self.path));
        self.seen = match std::fs::metadata(&self.path) {
            Ok(m) if synced.is_ok() => Some(Fingerprint::of(&m)),
            _ => None,
        };
        synced
    }
}

//! File system helpers: private directories, temporary names, directory
//! fsync, and the version-1 store's lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::SealedError;

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

/// Removes a SQLite file and its `-wal`, `-shm` and `-journal` companions
/// (a temporary store that was not published).
pub(crate) fn remove_db_files(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Holds the exclusive lock on a version-1 store's `<path>.lock` (the lock
/// version-1 writers took) until dropped.
pub(crate) struct V1Lock(File);

impl V1Lock {
    /// Takes the lock, waiting for a version-1 writer to finish.
    pub(crate) fn take(path: &Path) -> Result<V1Lock, SealedError> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        let f = OpenOptions::new()
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
        f.lock().map_err(|source| SealedError::Io {
            path: lock_path,
            action: "lock",
            source,
        })?;
        Ok(V1Lock(f))
    }
}

impl Drop for V1Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

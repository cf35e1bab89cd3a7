//! Migration of a version-1 sealed file to the SQLite store.
//!
//! Under the version-1 lock (`<path>.lock`), the whole old file is read and
//! authenticated; anything it cannot fully read is refused and the file is
//! left untouched. Every secret and consumer is then written into a new
//! SQLite file beside it (a temporary name) in one transaction; the old
//! file is kept as `<path>.v1.bak` (a hard link, mode 0600) and the new
//! file is renamed over `path`. A crash at any point leaves either the old
//! file at `path` (the migration runs again at the next open) or the new
//! one.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keymgr_core::OffsetDateTime;
use rusqlite::TransactionBehavior;

use crate::crypto::{Entry, Header, Keys};
use crate::db::{self, Ops, DEFAULT_BUSY_TIMEOUT};
use crate::file::{parent_dir, remove_db_files, sync_dir, temp_path, V1Lock};
use crate::master::MasterKey;
use crate::v1;
use crate::SealedError;

/// Where the old file is kept after migration: `<path>.v1.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".v1.bak");
    PathBuf::from(s)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, SealedError> {
    let io = |action: &'static str| {
        move |source| SealedError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let f = std::fs::File::open(path).map_err(io("open sealed store"))?;
    let mut bytes = Vec::new();
    f.take(v1::MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read sealed store"))?;
    if bytes.len() as u64 > v1::MAX_FILE_LEN {
        return Err(SealedError::TooLarge {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Migrates the version-1 file at `path` (see the module documentation).
/// Returns without doing anything when `path` is no longer a version-1
/// file (another process migrated it first).
pub(crate) fn migrate(path: &Path, master: &MasterKey) -> Result<(), SealedError> {
    let _lock = V1Lock::take(path)?;
    let bytes = match read_limited(path) {
        Ok(b) => b,
        Err(SealedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    if !bytes.starts_with(v1::MAGIC) {
        return Ok(());
    }
    let mut cache = None;
    let (store, header) = v1::decode(path, &bytes, master, &mut cache)?;
    let Some(k1) = cache else {
        return Err(SealedError::Corrupt {
            path: path.to_path_buf(),
            reason: "no keys derived".into(),
        });
    };
    let keys = Keys::from_prk(k1.prk(), header.salt);
    let h2 = Header {
        kdf: header.kdf,
        salt: header.salt,
        kcv: keys.kcv,
    };
    let mut records: Vec<crate::store::Record> = store.records.into_values().collect();
    records.sort_by_key(|r| r.seq);
    let count = records.len();
    let next_seq = records
        .iter()
        .map(|r| r.seq.saturating_add(1))
        .max()
        .unwrap_or(0)
        .max(header.next_seq);
    let next_seq = i64::try_from(next_seq).map_err(|_| SealedError::Corrupt {
        path: path.to_path_buf(),
        reason: "sequence number out of range".into(),
    })?;

    let tmp = temp_path(path);
    let written = (|| -> Result<(), SealedError> {
        let mut conn = db::create_file(&tmp)?;
        db::init_schema(&mut conn, &tmp, &h2, next_seq)?;
        let b = DEFAULT_BUSY_TIMEOUT;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db::sql_err(&tmp, "begin migration", b))?;
        {
            let ops = Ops::new(&tx, &keys, &tmp, b, OffsetDateTime::now_utc());
            for r in records {
                let seq = i64::try_from(r.seq).map_err(|_| SealedError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "sequence number out of range".into(),
                })?;
                let id = r.meta.id.to_string();
                let m = r.meta;
                let entry = Entry {
                    kind: m.kind,
                    created: m.created,
                    expiration: m.expiration,
                    name: m.name,
                    algorithm: m.algorithm,
                    bit_length: m.bit_length,
                    mode: m.mode,
                    payload: r.payload,
                };
                let to_err = |e: keymgr_core::Error| SealedError::Database {
                    path: tmp.clone(),
                    action: "migrate",
                    reason: e.to_string(),
                };
                ops.insert(&id, &r.project, seq, &entry).map_err(to_err)?;
                for c in &m.consumers {
                    ops.insert_consumer(seq, &id, &r.project, c)
                        .map_err(to_err)?;
                }
            }
        }
        tx.commit()
            .map_err(db::sql_err(&tmp, "commit migration", b))?;
        conn.close()
            .map_err(|(_, e)| db::sql_err(&tmp, "close migrated store", b)(e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|source| SealedError::Io {
                path: tmp.clone(),
                action: "sync migrated store",
                source,
            })
    })();
    if let Err(e) = written {
        remove_db_files(&tmp);
        return Err(e);
    }

    let bak = backup_path(path);
    let kept = match std::fs::hard_link(path, &bak) {
        Ok(()) => Ok(()),
        // Left by a migration that died before its rename: the same bytes.
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && std::fs::read(&bak).is_ok_and(|b| b == bytes) =>
        {
            Ok(())
        }
        Err(source) => Err(SealedError::Io {
            path: bak.clone(),
            action: "keep the version-1 store as backup (move an older backup away)",
            source,
        }),
    }
    .and_then(|()| {
        std::fs::set_permissions(&bak, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
            SealedError::Io {
                path: bak.clone(),
                action: "set backup mode",
                source,
            }
        })
    })
    .and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| SealedError::Io {
            path: path.to_path_buf(),
            action: "replace the version-1 store",
            source,
        })
    });
    if let Err(e) = kept {
        remove_db_files(&tmp);
        return Err(e);
    }
    sync_dir(&parent_dir(path))?;
    tracing::info!(path = %path.display(), backup = %bak.display(), secrets = count, "migrated a version-1 sealed store to SQLite");
    Ok(())
}

//! The store on SQLite (format version 2): schema, opening, and every
//! operation as one SQLite transaction.
//!
//! The schema (see the crate documentation for what each column reveals):
//!
//! ```sql
//! meta(k TEXT PRIMARY KEY, v BLOB)        -- 'header': kdf, salt, key-check value, checksum
//! counters(name TEXT PRIMARY KEY, next INTEGER)  -- 'seq': the next creation number
//! secrets(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, project TEXT, kind_tag BLOB,
//!         name_tag BLOB, expires INTEGER, nonce BLOB, sealed BLOB)
//!   indexes: (project, seq), (project, kind_tag, seq), (project, name_tag, seq), (expires)
//! consumers(n INTEGER PRIMARY KEY, secret_seq INTEGER, tag BLOB, nonce BLOB, sealed BLOB,
//!           UNIQUE(secret_seq, tag))
//! ```

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use keymgr_core::{
    Consumer, Context, Error, ListQuery, NewSecret, OffsetDateTime, Page, Result, Secret, SecretId,
    SecretMetadata,
};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::crypto::{self, Entry, Header, HeaderError, Keys, RowAad};
use crate::master::MasterKey;
use crate::store::{check_consumer, project_of, validate_new, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::v1::{DeriveError, Kdf};
use crate::SealedError;

/// SQLite's `application_id` of a keymgr store ("KMG2").
pub(crate) const APPLICATION_ID: u32 = 0x4b4d_4732;
/// How long a call waits for another writer before reporting the store busy.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const SCHEMA: &str = "
CREATE TABLE meta (k TEXT PRIMARY KEY NOT NULL, v BLOB NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, next INTEGER NOT NULL);
CREATE TABLE secrets (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL,
    kind_tag BLOB NOT NULL,
    name_tag BLOB,
    expires INTEGER,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL
);
CREATE INDEX secrets_project ON secrets(project, seq);
CREATE INDEX secrets_kind ON secrets(project, kind_tag, seq);
CREATE INDEX secrets_name ON secrets(project, name_tag, seq) WHERE name_tag IS NOT NULL;
CREATE INDEX secrets_expires ON secrets(expires) WHERE expires IS NOT NULL;
CREATE TABLE consumers (
    n INTEGER PRIMARY KEY,
    secret_seq INTEGER NOT NULL,
    tag BLOB NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    UNIQUE (secret_seq, tag)
);
";

/// What is at a store path.
enum Found {
    Missing,
    Version1,
    Sqlite,
}

/// An open store.
pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
    keys: Keys,
    /// (device, inode) of the file opened, to notice it being removed or replaced.
    ident: (u64, u64),
    busy: Duration,
}

/// Maps a SQLite error to the store's typed error.
pub(crate) fn sql_err<'p>(
    path: &'p Path,
    action: &'static str,
    busy: Duration,
) -> impl Fn(rusqlite::Error) -> SealedError + 'p {
    move |e| {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => SealedError::Busy {
                path: path.to_path_buf(),
                waited: busy,
            },
            Some(C::DatabaseCorrupt | C::NotADatabase) => SealedError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("{action}: {e}"),
            },
            _ => SealedError::Database {
                path: path.to_path_buf(),
                action,
                reason: e.to_string(),
            },
        }
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> SealedError {
    SealedError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the start of the file at `path` and says what it is, checking a
/// SQLite file's header without SQLite (so nothing is written to a file
/// that is not ours or is truncated).
fn classify(path: &Path) -> std::result::Result<Found, SealedError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(source) => {
            return Err(SealedError::Io {
                path: path.to_path_buf(),
                action: "stat store",
                source,
            })
        }
    };
    if !meta.is_file() {
        return Err(corrupt(path, "not a regular file"));
    }
    let mut head = [0u8; 100];
    let n = {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|source| SealedError::Io {
            path: path.to_path_buf(),
            action: "open store",
            source,
        })?;
        let mut buf = Vec::with_capacity(100);
        f.take(100)
            .read_to_end(&mut buf)
            .map_err(|source| SealedError::Io {
                path: path.to_path_buf(),
                action: "read store",
                source,
            })?;
        head[..buf.len()].copy_from_slice(&buf);
        buf.len()
    };
    let head = &head[..n];
    let actual = meta.len();
    if head.starts_with(crate::v1::MAGIC) {
        return Ok(Found::Version1);
    }
    if n < 100 {
        return Err(
            if !head.is_empty()
                && (SQLITE_MAGIC.starts_with(head)
                    || head.starts_with(SQLITE_MAGIC)
                    || crate::v1::MAGIC.starts_with(head))
            {
                SealedError::Truncated {
                    path: path.to_path_buf(),
                    expected: None,
                    actual,
                }
            } else {
                SealedError::NotASealedStore {
                    path: path.to_path_buf(),
                }
            },
        );
    }
    if !head.starts_with(SQLITE_MAGIC) {
        return Err(SealedError::NotASealedStore {
            path: path.to_path_buf(),
        });
    }
    let be32 = |at: usize| u32::from_be_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    if be32(68) != APPLICATION_ID {
        return Err(SealedError::NotASealedStore {
            path: path.to_path_buf(),
        });
    }
    if head[18] != 2 || head[19] != 2 {
        return Err(corrupt(path, "the database is not in WAL mode"));
    }
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536u64,
        p if p >= 512 && p.is_power_of_two() => u64::from(p),
        _ => return Err(corrupt(path, "invalid page size in the database header")),
    };
    let pages = u64::from(be32(28));
    let size_valid = be32(24) == be32(92) && pages > 0;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    if size_valid && wal_empty && actual < pages * page_size {
        return Err(SealedError::Truncated {
            path: path.to_path_buf(),
            expected: Some(pages * page_size),
            actual,
        });
    }
    Ok(Found::Sqlite)
}

fn derive(
    path: &Path,
    master: &MasterKey,
    kdf: Kdf,
    salt: [u8; crate::v1::SALT_LEN],
) -> std::result::Result<Keys, SealedError> {
    Keys::derive(master, kdf, salt).map_err(|e| match e {
        DeriveError::Mismatch(reason) => SealedError::WrongKey {
            path: path.to_path_buf(),
            reason: reason.into(),
        },
        DeriveError::Params(reason) => SealedError::KdfParams {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// Creates an empty store's schema and header in `conn` (a new file).
pub(crate) fn init_schema(
    conn: &mut Connection,
    path: &Path,
    header: &Header,
    next_seq: i64,
) -> std::result::Result<(), SealedError> {
    let b = DEFAULT_BUSY_TIMEOUT;
    conn.pragma_update(None, "application_id", APPLICATION_ID as i32)
        .map_err(sql_err(path, "set application id", b))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql_err(path, "set WAL mode", b))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(corrupt(path, format!("journal mode {mode}, not WAL")));
    }
    let tx = conn.transaction().map_err(sql_err(path, "begin", b))?;
    tx.execute_batch(SCHEMA)
        .map_err(sql_err(path, "create schema", b))?;
    tx.execute(
        "INSERT INTO meta (k, v) VALUES ('header', ?1)",
        [header.encode()],
    )
    .map_err(sql_err(path, "write header", b))?;
    tx.execute(
        "INSERT INTO counters (name, next) VALUES ('seq', ?1)",
        [next_seq],
    )
    .map_err(sql_err(path, "write counter", b))?;
    tx.commit().map_err(sql_err(path, "commit", b))
}

/// Creates a new 0600 file at `tmp` and opens it with SQLite.
pub(crate) fn create_file(tmp: &Path) -> std::result::Result<Connection, SealedError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|source| SealedError::Io {
            path: tmp.to_path_buf(),
            action: "create store",
            source,
        })?;
    let conn = Connection::open_with_flags(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err(tmp, "open new store", DEFAULT_BUSY_TIMEOUT))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_err(tmp, "set synchronous", DEFAULT_BUSY_TIMEOUT))?;
    Ok(conn)
}

/// Closes `conn` (checkpointing and removing its WAL), fsyncs `tmp` and
/// links it at `path` unless a file is there already (then `false`).
pub(crate) fn publish(
    conn: Connection,
    tmp: &Path,
    path: &Path,
) -> std::result::Result<bool, SealedError> {
    conn.close()
        .map_err(|(_, e)| sql_err(tmp, "close new store", DEFAULT_BUSY_TIMEOUT)(e))?;
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| SealedError::Io {
            path: p,
            action,
            source,
        }
    };
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("sync new store", tmp))?;
    let linked = match std::fs::hard_link(tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(source) => {
            let _ = std::fs::remove_file(tmp);
            return Err(SealedError::Io {
                path: path.to_path_buf(),
                action: "create store",
                source,
            });
        }
    };
    let _ = std::fs::remove_file(tmp);
    crate::file::sync_dir(&crate::file::parent_dir(path))?;
    Ok(linked)
}

fn create_new(path: &Path, master: &MasterKey) -> std::result::Result<(), SealedError> {
    let salt = crypto::new_salt().map_err(|reason| SealedError::Random { reason })?;
    let kdf = if master.is_passphrase() {
        Kdf::Argon2id(master.new_file_params)
    } else {
        Kdf::KeyFile
    };
    let keys = Keys::derive(master, kdf, salt).map_err(|e| match e {
        DeriveError::Mismatch(r) => SealedError::WrongKey {
            path: path.to_path_buf(),
            reason: r.into(),
        },
        DeriveError::Params(reason) => SealedError::Passphrase { reason },
    })?;
    let header = Header {
        kdf,
        salt,
        kcv: keys.kcv,
    };
    let tmp = crate::file::temp_path(path);
    let made = (|| {
        let mut conn = create_file(&tmp)?;
        init_schema(&mut conn, &tmp, &header, 0)?;
        publish(conn, &tmp, path)
    })();
    if made.is_err() {
        crate::file::remove_db_files(&tmp);
    }
    made.map(|_| ())
}

impl Db {
    /// Opens the store at `path`: creates it when missing, migrates a
    /// version-1 sealed file, checks the key before anything is written.
    pub(crate) fn open(path: &Path, master: MasterKey) -> std::result::Result<Db, SealedError> {
        crate::file::create_private_dir(&crate::file::parent_dir(path))?;
        for _ in 0..4 {
            match classify(path)? {
                Found::Missing => create_new(path, &master)?,
                Found::Version1 => crate::migrate::migrate(path, &master)?,
                Found::Sqlite => return Db::open_existing(path, master),
            }
        }
        Err(SealedError::Database {
            path: path.to_path_buf(),
            action: "open store",
            reason: "the file kept changing while it was opened".into(),
        })
    }

    fn open_existing(path: &Path, master: MasterKey) -> std::result::Result<Db, SealedError> {
        let busy = DEFAULT_BUSY_TIMEOUT;
        let ident = std::fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|source| SealedError::Io {
                path: path.to_path_buf(),
                action: "stat store",
                source,
            })?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(path, "open store", busy))?;
        conn.busy_timeout(busy)
            .map_err(sql_err(path, "set busy timeout", busy))?;
        for (k, v) in [("synchronous", "FULL"), ("secure_delete", "ON")] {
            conn.pragma_update(None, k, v)
                .map_err(sql_err(path, "set pragma", busy))?;
        }
        let blob: Option<Vec<u8>> = match conn
            .query_row("SELECT v FROM meta WHERE k = 'header'", [], |r| r.get(0))
            .optional()
        {
            Ok(b) => b,
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => {
                return Err(SealedError::NotASealedStore {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(sql_err(path, "read header", busy)(e)),
        };
        let blob = blob.ok_or_else(|| corrupt(path, "no header row"))?;
        let header = Header::decode(&blob).map_err(|e| match e {
            HeaderError::Version(version) => SealedError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
            },
            HeaderError::Params(reason) => SealedError::KdfParams {
                path: path.to_path_buf(),
                reason,
            },
            HeaderError::Corrupt(r) => corrupt(path, r),
        })?;
        let keys = derive(path, &master, header.kdf, header.salt)?;
        if !keys.check(&header.kcv) {
            return Err(SealedError::WrongKey {
                path: path.to_path_buf(),
                reason: if master.is_passphrase() {
                    "the passphrase does not open this store".into()
                } else {
                    "the key file does not open this store".into()
                },
            });
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
            keys,
            ident,
            busy,
        })
    }

    /// Sets how long a call waits for other writers before failing with
    /// [`SealedError::Busy`].
    pub(crate) fn set_busy_timeout(&mut self, d: Duration) -> std::result::Result<(), SealedError> {
        self.busy = d;
        self.conn
            .busy_timeout(d)
            .map_err(sql_err(&self.path, "set busy timeout", d))
    }

    /// `Unavailable` when the file was removed or replaced under us (a
    /// new empty store must not silently take its place).
    fn check_file(&self) -> Result<()> {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.ident => Ok(()),
            _ => Err(Error::Unavailable {
                what: format!("store {}", self.path.display()),
                reason: "the store file was removed or replaced while open; reopen it".into(),
            }),
        }
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    pub(crate) fn read<T>(&mut self, f: impl FnOnce(&Ops<'_>) -> Result<T>) -> Result<T> {
        self.transact(TransactionBehavior::Deferred, ("begin read", "end read"), f)
    }

    /// Runs `f` in a write transaction (taken at once, so it never has to
    /// upgrade a read lock), after dropping expired secrets; commits only
    /// when `f` succeeds.
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&Ops<'_>) -> Result<T>) -> Result<T> {
        self.transact(
            TransactionBehavior::Immediate,
            ("begin write", "commit"),
            |ops| {
                ops.purge_expired()?;
                f(ops)
            },
        )
    }

    /// Runs `f` in one transaction of `behavior` (errors name the `begin`
    /// and `end` actions); commits only when `f` succeeds.
    fn transact<T>(
        &mut self,
        behavior: TransactionBehavior,
        (begin, end): (&'static str, &'static str),
        f: impl FnOnce(&Ops<'_>) -> Result<T>,
    ) -> Result<T> {
        self.check_file()?;
        let Db {
            conn,
            path,
            keys,
            busy,
            ..
        } = self;
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(sql_err(path, begin, *busy))?;
        let ops = Ops {
            tx: &tx,
            keys,
            path,
            busy: *busy,
            now: OffsetDateTime::now_utc(),
        };
        let out = f(&ops)?;
        tx.commit().map_err(sql_err(path, end, *busy))?;
        Ok(out)
    }
}

/// The operations, inside one transaction.
pub(crate) struct Ops<'a> {
    tx: &'a Transaction<'a>,
    keys: &'a Keys,
    path: &'a Path,
    busy: Duration,
    now: OffsetDateTime,
}

/// A row of `secrets`, located and decrypted.
struct Row {
    seq: i64,
    id: String,
    project: String,
    entry: Entry,
}

impl<'a> Ops<'a> {
    /// The operations inside `tx`, at time `now`.
    pub(crate) fn new(
        tx: &'a Transaction<'a>,
        keys: &'a Keys,
        path: &'a Path,
        busy: Duration,
        now: OffsetDateTime,
    ) -> Self {
        Ops {
            tx,
            keys,
            path,
            busy,
            now,
        }
    }

    fn e(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        let f = sql_err(self.path, action, self.busy);
        move |e| f(e).into()
    }

    fn corrupt(&self, reason: String) -> Error {
        corrupt(self.path, reason).into()
    }

    fn purge_expired(&self) -> Result<()> {
        let now = crypto::expires_column(self.now);
        self.tx
            .execute(
                "DELETE FROM consumers WHERE secret_seq IN
                   (SELECT seq FROM secrets WHERE expires IS NOT NULL AND expires <= ?1)",
                [now],
            )
            .map_err(self.e("drop expired consumers"))?;
        self.tx
            .execute(
                "DELETE FROM secrets WHERE expires IS NOT NULL AND expires <= ?1",
                [now],
            )
            .map_err(self.e("drop expired secrets"))?;
        Ok(())
    }

    /// Decrypts one `secrets` row given its columns.
    #[allow(clippy::too_many_arguments)]
    fn open_row(
        &self,
        seq: i64,
        id: String,
        project: String,
        kind_tag: Vec<u8>,
        name_tag: Option<Vec<u8>>,
        expires: Option<i64>,
        nonce: Vec<u8>,
        sealed: Vec<u8>,
    ) -> Result<Row> {
        let aad = RowAad::Secret {
            id: &id,
            project: &project,
            seq,
            expires,
            kind_tag: &kind_tag,
            name_tag: name_tag.as_deref(),
        };
        let pt = self.keys.open(&aad, &nonce, &sealed).ok_or_else(|| {
            self.corrupt(format!(
                "secret {id}: the row does not authenticate (damaged, altered or moved)"
            ))
        })?;
        let entry = Entry::decode(&pt)
            .ok_or_else(|| self.corrupt(format!("secret {id}: malformed entry")))?;
        Ok(Row {
            seq,
            id,
            project,
            entry,
        })
    }

    /// The caller's live secret `id`, or `NotFound` naming `op`.
    fn visible(&self, ctx: &Context, id: &SecretId, op: &str) -> Result<Row> {
        let project = project_of(ctx)?;
        let idt = id.to_string();
        let not_found = || Error::not_found(format!("{op} secret {id}"));
        let row = self
            .tx
            .prepare_cached(
                "SELECT seq, kind_tag, name_tag, expires, nonce, sealed FROM secrets
                 WHERE id = ?1 AND project = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![idt, project], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .optional()
            })
            .map_err(self.e("read secret"))?
            .ok_or_else(not_found)?;
        if row.3.is_some_and(|e| e <= crypto::expires_column(self.now)) {
            return Err(not_found());
        }
        let row = self.open_row(
            row.0,
            idt,
            project.to_string(),
            row.1,
            row.2,
            row.3,
            row.4,
            row.5,
        )?;
        if row.entry.expiration.is_some_and(|e| e <= self.now) {
            return Err(not_found());
        }
        Ok(row)
    }

    fn consumers(&self, row: &Row) -> Result<Vec<Consumer>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT tag, nonce, sealed FROM consumers WHERE secret_seq = ?1 ORDER BY n",
            )
            .map_err(self.e("read consumers"))?;
        let rows = st
            .query_map([row.seq], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(self.e("read consumers"))?;
        let mut out = Vec::new();
        for r in rows {
            let (tag, nonce, sealed) = r.map_err(self.e("read consumers"))?;
            let aad = RowAad::Consumer {
                id: &row.id,
                project: &row.project,
                tag: &tag,
            };
            let pt = self.keys.open(&aad, &nonce, &sealed).ok_or_else(|| {
                self.corrupt(format!(
                    "a consumer of secret {}: the row does not authenticate",
                    row.id
                ))
            })?;
            out.push(crypto::decode_consumer(&pt).ok_or_else(|| {
                self.corrupt(format!("a consumer of secret {}: malformed", row.id))
            })?);
        }
        Ok(out)
    }

    fn metadata_of(&self, row: &Row) -> Result<SecretMetadata> {
        let e = &row.entry;
        Ok(SecretMetadata {
            id: SecretId::parse(&row.id)
                .map_err(|_| self.corrupt(format!("malformed id {:?}", row.id)))?,
            kind: e.kind,
            name: e.name.clone(),
            algorithm: e.algorithm.clone(),
            bit_length: e.bit_length,
            mode: e.mode.clone(),
            created: e.created,
            expiration: e.expiration,
            consumers: self.consumers(row)?,
        })
    }

    fn next_seq(&self) -> Result<i64> {
        self.tx
            .query_row(
                "UPDATE counters SET next = next + 1 WHERE name = 'seq' RETURNING next - 1",
                [],
                |r| r.get(0),
            )
            .map_err(self.e("take a sequence number"))
    }

    /// Inserts an entry for `project` with a given id text and sequence number.
    pub(crate) fn insert(&self, id: &str, project: &str, seq: i64, entry: &Entry) -> Result<()> {
        let kind_tag = self.keys.kind_tag(project, entry.kind);
        let name_tag = entry
            .name
            .as_deref()
            .map(|n| self.keys.name_tag(project, n));
        let expires = entry.expiration.map(crypto::expires_column);
        let aad = RowAad::Secret {
            id,
            project,
            seq,
            expires,
            kind_tag: &kind_tag,
            name_tag: name_tag.as_ref().map(|t| &t[..]),
        };
        let (nonce, sealed) =
            self.keys
                .seal(&aad, &entry.encode())
                .map_err(|reason| Error::Unavailable {
                    what: "seal secret".into(),
                    reason,
                })?;
        self.tx
            .prepare_cached(
                "INSERT INTO secrets (seq, id, project, kind_tag, name_tag, expires, nonce, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    seq,
                    id,
                    project,
                    &kind_tag[..],
                    name_tag.as_ref().map(|t| &t[..]),
                    expires,
                    &nonce[..],
                    sealed
                ])
            })
            .map_err(self.e("insert secret"))?;
        Ok(())
    }

    /// Inserts a consumer row (ignored when already there); whether it was added.
    pub(crate) fn insert_consumer(
        &self,
        seq: i64,
        id: &str,
        project: &str,
        c: &Consumer,
    ) -> Result<bool> {
        let tag = self.keys.consumer_tag(id, c);
        let aad = RowAad::Consumer {
            id,
            project,
            tag: &tag,
        };
        let (nonce, sealed) =
            self.keys
                .seal(&aad, &crypto::encode_consumer(c))
                .map_err(|reason| Error::Unavailable {
                    what: "seal consumer".into(),
                    reason,
                })?;
        let n = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO consumers (secret_seq, tag, nonce, sealed) VALUES (?1, ?2, ?3, ?4)",
                params![seq, &tag[..], &nonce[..], sealed],
            )
            .map_err(self.e("insert consumer"))?;
        Ok(n == 1)
    }

    /// Stores a validated secret; its new id.
    pub(crate) fn store(&self, ctx: &Context, secret: NewSecret) -> Result<SecretId> {
        let project = validate_new(ctx, &secret)?;
        let id = SecretId::new_random();
        let NewSecret {
            kind,
            payload,
            name,
            algorithm,
            bit_length,
            mode,
            expiration,
        } = secret;
        let entry = Entry {
            kind,
            created: Some(self.now),
            expiration,
            name,
            algorithm,
            bit_length,
            mode,
            payload,
        };
        let seq = self.next_seq()?;
        self.insert(id.as_str(), &project, seq, &entry)?;
        Ok(id)
    }

    /// The secret with its payload.
    pub(crate) fn get(&self, ctx: &Context, id: &SecretId) -> Result<Secret> {
        let row = self.visible(ctx, id, "get")?;
        let metadata = self.metadata_of(&row)?;
        Ok(Secret {
            metadata,
            payload: row.entry.payload,
        })
    }

    /// The secret's metadata.
    pub(crate) fn metadata(&self, ctx: &Context, id: &SecretId) -> Result<SecretMetadata> {
        let row = self.visible(ctx, id, "metadata of")?;
        self.metadata_of(&row)
    }

    /// One page, in creation order, filtered and counted in SQL.
    pub(crate) fn list(&self, ctx: &Context, q: &ListQuery) -> Result<Page> {
        let project = project_of(ctx)?;
        let limit = q.limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let kind_tag = q.kind.map(|k| self.keys.kind_tag(project, k).to_vec());
        let name_tag = q
            .name
            .as_deref()
            .map(|n| self.keys.name_tag(project, n).to_vec());
        let mut filter = String::from("project = ?1 AND (expires IS NULL OR expires > ?2)");
        if kind_tag.is_some() {
            filter.push_str(" AND kind_tag = ?3");
        } else {
            filter.push_str(" AND ?3 IS NULL");
        }
        if name_tag.is_some() {
            filter.push_str(" AND name_tag = ?4");
        } else {
            filter.push_str(" AND ?4 IS NULL");
        }
        let now = crypto::expires_column(self.now);
        let total: i64 = self
            .tx
            .prepare_cached(&format!("SELECT COUNT(*) FROM secrets WHERE {filter}"))
            .and_then(|mut st| {
                st.query_row(params![project, now, kind_tag, name_tag], |r| r.get(0))
            })
            .map_err(self.e("count secrets"))?;
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        let mut st = self
            .tx
            .prepare_cached(&format!(
                "SELECT seq, id, kind_tag, name_tag, expires, nonce, sealed FROM secrets
                 WHERE {filter} ORDER BY seq LIMIT ?5 OFFSET ?6"
            ))
            .map_err(self.e("list secrets"))?;
        let rows = st
            .query_map(
                params![project, now, kind_tag, name_tag, limit as i64, offset],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .map_err(self.e("list secrets"))?;
        let mut secrets = Vec::new();
        for r in rows {
            let (seq, id, kt, nt, exp, nonce, sealed) = r.map_err(self.e("list secrets"))?;
            let row = self.open_row(seq, id, project.to_string(), kt, nt, exp, nonce, sealed)?;
            let meta = self.metadata_of(&row)?;
            if !q.matches(&meta) {
                return Err(self.corrupt(format!(
                    "secret {}: its index tags do not match its contents",
                    row.id
                )));
            }
            secrets.push(meta);
        }
        let total = usize::try_from(total).unwrap_or(0);
        let end = q.offset.saturating_add(secrets.len());
        Ok(Page {
            next_offset: (end < total).then_some(end),
            total: Some(total),
            secrets,
        })
    }

    /// Deletes the secret; with consumers, only when `force`.
    pub(crate) fn delete(&self, ctx: &Context, id: &SecretId, force: bool) -> Result<()> {
        let row = self.visible(ctx, id, "delete")?;
        let n: i64 = self
            .tx
            .query_row(
                "SELECT COUNT(*) FROM consumers WHERE secret_seq = ?1",
                [row.seq],
                |r| r.get(0),
            )
            .map_err(self.e("count consumers"))?;
        if !force && n > 0 {
            return Err(Error::conflict(
                format!("delete secret {id}"),
                format!("it has {n} consumer(s); remove them or delete with force"),
            ));
        }
        self.tx
            .execute("DELETE FROM consumers WHERE secret_seq = ?1", [row.seq])
            .map_err(self.e("delete consumers"))?;
        self.tx
            .execute("DELETE FROM secrets WHERE seq = ?1", [row.seq])
            .map_err(self.e("delete secret"))?;
        Ok(())
    }

    /// Stores a copy (same kind, payload, name, algorithm, bit length,
    /// mode; no consumers, no expiration).
    pub(crate) fn clone_secret(&self, ctx: &Context, id: &SecretId) -> Result<SecretId> {
        let row = self.visible(ctx, id, "clone")?;
        let e = row.entry;
        let copy = NewSecret {
            kind: e.kind,
            payload: e.payload,
            name: e.name,
            algorithm: e.algorithm,
            bit_length: e.bit_length,
            mode: e.mode,
            expiration: None,
        };
        self.store(ctx, copy)
    }

    /// Registers a consumer; adding one already registered changes nothing.
    pub(crate) fn add_consumer(&self, ctx: &Context, id: &SecretId, c: &Consumer) -> Result<()> {
        let row = self.visible(ctx, id, "add consumer to")?;
        check_consumer(c)?;
        self.insert_consumer(row.seq, &row.id, &row.project, c)?;
        Ok(())
    }

    /// Removes a registered consumer; `NotFound` when it is not registered.
    pub(crate) fn remove_consumer(&self, ctx: &Context, id: &SecretId, c: &Consumer) -> Result<()> {
        let row = self.visible(ctx, id, "remove consumer from")?;
        let tag = self.keys.consumer_tag(&row.id, c);
        let n = self
            .tx
            .execute(
                "DELETE FROM consumers WHERE secret_seq = ?1 AND tag = ?2",
                params![row.seq, &tag[..]],
            )
            .map_err(self.e("delete consumer"))?;
        if n == 0 {
            return Err(Error::not_found(format!(
                "remove consumer {}/{}/{} from secret {id}",
                c.service, c.resource_type, c.resource_id
            )));
        }
        Ok(())
    }

    /// The consumers, in the order they were added.
    pub(crate) fn list_consumers(&self, ctx: &Context, id: &SecretId) -> Result<Vec<Consumer>> {
        let row = self.visible(ctx, id, "list consumers of")?;
        self.consumers(&row)
    }

    /// Every row decrypted: `Ok(count)` when the whole store authenticates
    /// and SQLite's integrity check passes.
    pub(crate) fn verify(&self) -> Result<usize> {
        let ok: String = self
            .tx
            .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
            .map_err(self.e("integrity check"))?;
        if ok != "ok" {
            return Err(self.corrupt(format!("integrity check: {ok}")));
        }
        let mut st = self
            .tx
            .prepare("SELECT seq, id, project, kind_tag, name_tag, expires, nonce, sealed FROM secrets ORDER BY seq")
            .map_err(self.e("verify"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .map_err(self.e("verify"))?;
        let mut n = 0;
        for r in rows {
            let (seq, id, project, kt, nt, exp, nonce, sealed) = r.map_err(self.e("verify"))?;
            let row = self.open_row(seq, id, project, kt, nt, exp, nonce, sealed)?;
            self.consumers(&row)?;
            n += 1;
        }
        let orphans: i64 = self
            .tx
            .query_row(
                "SELECT COUNT(*) FROM consumers WHERE secret_seq NOT IN (SELECT seq FROM secrets)",
                [],
                |r| r.get(0),
            )
            .map_err(self.e("verify"))?;
        if orphans > 0 {
            return Err(self.corrupt(format!("{orphans} consumer rows belong to no secret")));
        }
        Ok(n)
    }
}

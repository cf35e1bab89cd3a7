//! The services' state: one SQLite file, one table of typed JSON records
//! (volume types, volumes, snapshots, share types, shares, share servers,
//! quotas, instances, images), each keyed by (kind, id) with its project.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{de::DeserializeOwned, Serialize};

use crate::{Result, ServiceError};

/// The state database.
#[derive(Debug)]
pub struct State {
    conn: Mutex<Connection>,
}

impl State {
    /// Opens (creating) `dir/state.db`.
    pub fn open(dir: &Path) -> Result<State> {
        let conn = Connection::open(dir.join("state.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS objects (
                kind TEXT NOT NULL, id TEXT NOT NULL, project TEXT NOT NULL,
                data TEXT NOT NULL, PRIMARY KEY (kind, id));",
        )?;
        Ok(State {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces a record.
    pub fn put<T: Serialize>(&self, kind: &str, id: &str, project: &str, value: &T) -> Result<()> {
        let data = serde_json::to_string(value)
            .map_err(|e| ServiceError::BadRequest(format!("serializing {kind} {id}: {e}")))?;
        self.lock().execute(
            "INSERT OR REPLACE INTO objects (kind, id, project, data) VALUES (?1, ?2, ?3, ?4)",
            params![kind, id, project, data],
        )?;
        Ok(())
    }

    /// A record, if present.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>> {
        let data: Option<String> = self
            .lock()
            .query_row(
                "SELECT data FROM objects WHERE kind = ?1 AND id = ?2",
                params![kind, id],
                |r| r.get(0),
            )
            .optional()?;
        data.map(|d| decode(kind, id, &d)).transpose()
    }

    /// A record, or `NotFound` naming it.
    pub fn need<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<T> {
        self.get(kind, id)?
            .ok_or_else(|| ServiceError::NotFound(format!("{kind} {id}")))
    }

    /// Every record of `kind` (of `project` when given), oldest first.
    pub fn list<T: DeserializeOwned>(&self, kind: &str, project: Option<&str>) -> Result<Vec<T>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, data FROM objects WHERE kind = ?1 AND (?2 IS NULL OR project = ?2) ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![kind, project], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, data) = row?;
            out.push(decode(kind, &id, &data)?);
        }
        Ok(out)
    }

    /// Deletes a record; true when it existed.
    pub fn delete(&self, kind: &str, id: &str) -> Result<bool> {
        Ok(self.lock().execute(
            "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )? > 0)
    }
}

fn decode<T: DeserializeOwned>(kind: &str, id: &str, data: &str) -> Result<T> {
    serde_json::from_str(data)
        .map_err(|e| ServiceError::BadRequest(format!("corrupt {kind} record {id}: {e}")))
}

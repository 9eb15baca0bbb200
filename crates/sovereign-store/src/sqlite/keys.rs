//! API keys: each key's id, name, role, the hash of its secret (never the secret), its times.
//! Beside them, the access room's small state (the session signing key, the tier gates) and
//! the sign-on sessions ended before their time (logged out).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sovereign_core::access::{ApiKey, Role};

use super::from_micros;
use crate::StoreError;

/// Version 7 of the schema. A name is unique among the keys not revoked.
pub(crate) const MIGRATION: &str = "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        last_used_at INTEGER
    );
    CREATE UNIQUE INDEX api_keys_live_name ON api_keys(name) WHERE revoked_at IS NULL;";

/// Version 8: access state by name, and ended sessions (kept until they would have expired).
pub(crate) const MIGRATION_STATE: &str = "CREATE TABLE access_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE ended_sessions (
        id TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );";

pub(crate) enum KeyOp {
    PutState { name: String, value: String },
    EndSession { id: String, expires_at: i64 },
    Insert(ApiKey),
    Revoke { name: String, at: DateTime<Utc> },
    Touch { id: String, at: DateTime<Utc> },
}

pub(crate) fn apply(c: &Connection, op: &KeyOp) -> Result<u64, StoreError> {
    match op {
        KeyOp::Insert(k) => {
            let live = c
                .prepare_cached("SELECT 1 FROM api_keys WHERE name = ?1 AND revoked_at IS NULL")?
                .query_row(params![k.name], |_| Ok(()))
                .optional()?
                .is_some();
            if live {
                return Err(StoreError::Conflict(format!("key {:?}", k.name)));
            }
            c.prepare_cached(
                "INSERT INTO api_keys (id, name, role, hash, created_at, expires_at, revoked_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL)",
            )?
            .execute(params![
                k.id,
                k.name,
                k.role.as_str(),
                k.hash,
                k.created_at.timestamp_micros(),
                k.expires_at.map(|t| t.timestamp_micros()),
            ])?;
            Ok(1)
        }
        KeyOp::Revoke { name, at } => {
            let n = c
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
                )?
                .execute(params![at.timestamp_micros(), name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("key {name:?}")));
            }
            Ok(1)
        }
        KeyOp::PutState { name, value } => Ok(c
            .prepare_cached(
                "INSERT INTO access_state (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, value])? as u64),
        KeyOp::EndSession { id, expires_at } => {
            Ok(c.prepare_cached(
                "INSERT OR IGNORE INTO ended_sessions (id, expires_at) VALUES (?1, ?2)",
            )?
            .execute(params![id, expires_at])? as u64)
        }
        KeyOp::Touch { id, at } => Ok(c
            .prepare_cached("UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2")?
            .execute(params![at.timestamp_micros(), id])?
            as u64),
    }
}

/// Every key, revoked ones too, oldest first.
pub(crate) fn list(c: &Connection) -> Result<Vec<ApiKey>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, name, role, hash, created_at, expires_at, revoked_at, last_used_at \
         FROM api_keys ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
            r.get::<_, Option<i64>>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, role, hash, created, expires, revoked, used) = row?;
        let role = Role::parse(&role)
            .map_err(|e| StoreError::Corrupt(format!("key {id:?} column role: {}", e.message)))?;
        out.push(ApiKey {
            id,
            name,
            role,
            hash,
            created_at: from_micros(created),
            expires_at: expires.map(from_micros),
            revoked_at: revoked.map(from_micros),
            last_used_at: used.map(from_micros),
        });
    }
    Ok(out)
}

/// One value of the access state.
pub(crate) fn state(c: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.prepare_cached("SELECT value FROM access_state WHERE name = ?1")?
            .query_row(params![name], |r| r.get::<_, String>(0))
            .optional()?,
    )
}

/// The ended sessions that would still be valid at `now` (unix seconds).
pub(crate) fn ended_sessions(c: &Connection, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT id, expires_at FROM ended_sessions WHERE expires_at > ?1")?;
    let rows = stmt.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

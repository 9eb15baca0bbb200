//! The notifier's outbox: alerts, their per-channel deliveries, and the notifier's small state
//! (digest progress, disabled channels).

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use sovereign_core::notify::{Alert, Priority};

use super::{corrupt, from_micros, Sqlite, WriteOp};
use crate::records::{AlertQuery, AlertRecord, DeliveryRecord, DeliveryStatus};
use crate::StoreError;

pub(super) const MIGRATION: &str = "CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        priority TEXT NOT NULL,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        message TEXT NOT NULL,
        context TEXT NOT NULL,
        dedup_key TEXT,
        digest INTEGER NOT NULL
    );
    CREATE INDEX alerts_by_time ON alerts (at);
    CREATE TABLE deliveries (
        alert_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        channel TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (alert_id, channel)
    );
    CREATE INDEX deliveries_pending ON deliveries (alert_id) WHERE status = 'pending';
    CREATE TABLE notify_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );";

/// Writes of the outbox, applied by the writer thread.
pub(crate) enum AlertOp {
    Insert {
        record: AlertRecord,
        /// `notify_state` keys set (`Some`) or cleared (`None`) in the same transaction.
        state: Vec<(String, Option<String>)>,
    },
    Delivery {
        alert_id: u64,
        delivery: DeliveryRecord,
    },
    State(Vec<(String, Option<String>)>),
}

pub(super) fn apply(c: &Connection, op: &AlertOp) -> Result<u64, StoreError> {
    match op {
        AlertOp::Insert { record, state } => {
            let a = &record.alert;
            c.prepare_cached(
                "INSERT INTO alerts (id, at, priority, source, title, message, context, dedup_key, digest) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                record.id as i64,
                record.at.timestamp_micros(),
                a.priority.as_str(),
                a.source,
                a.title,
                a.message,
                a.context.to_string(),
                a.dedup_key,
                record.digest,
            ])?;
            let mut stmt = c.prepare_cached(
                "INSERT INTO deliveries (alert_id, position, channel, status, attempts, last_error, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (i, d) in record.deliveries.iter().enumerate() {
                stmt.execute(params![
                    record.id as i64,
                    i as i64,
                    d.channel,
                    d.status.as_str(),
                    d.attempts,
                    d.last_error,
                    d.updated_at.timestamp_micros(),
                ])?;
            }
            set_state(c, state)?;
            Ok(record.id)
        }
        AlertOp::Delivery { alert_id, delivery } => {
            let n = c
                .prepare_cached(
                    "UPDATE deliveries SET status = ?3, attempts = ?4, last_error = ?5, updated_at = ?6 \
                     WHERE alert_id = ?1 AND channel = ?2",
                )?
                .execute(params![
                    *alert_id as i64,
                    delivery.channel,
                    delivery.status.as_str(),
                    delivery.attempts,
                    delivery.last_error,
                    delivery.updated_at.timestamp_micros(),
                ])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "delivery of alert {alert_id} on {:?}",
                    delivery.channel
                )));
            }
            Ok(1)
        }
        AlertOp::State(state) => set_state(c, state),
    }
}

/// Delete alerts accepted before `before` (micros) that have nothing pending, with their
/// deliveries. The newest alert always stays, so ids never start over.
pub(super) fn prune(c: &Connection, before: i64) -> Result<u64, StoreError> {
    const DONE: &str = "at < ?1 AND id < (SELECT max(id) FROM alerts) \
         AND id NOT IN (SELECT alert_id FROM deliveries WHERE status = 'pending')";
    c.execute(
        &format!("DELETE FROM deliveries WHERE alert_id IN (SELECT id FROM alerts WHERE {DONE})"),
        params![before],
    )?;
    Ok(c.execute(&format!("DELETE FROM alerts WHERE {DONE}"), params![before])? as u64)
}

fn set_state(c: &Connection, state: &[(String, Option<String>)]) -> Result<u64, StoreError> {
    for (k, v) in state {
        match v {
            Some(v) => c
                .prepare_cached("REPLACE INTO notify_state (key, value) VALUES (?1, ?2)")?
                .execute(params![k, v])?,
            None => c
                .prepare_cached("DELETE FROM notify_state WHERE key = ?1")?
                .execute(params![k])?,
        };
    }
    Ok(state.len() as u64)
}

fn select(c: &Connection, which: AlertQuery, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
    const COLS: &str =
        "SELECT id, at, priority, source, title, message, context, dedup_key, digest FROM alerts";
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (sql, arg): (String, i64) = match which {
        AlertQuery::After(id) => (
            format!("{COLS} WHERE id > ?1 ORDER BY id LIMIT ?2"),
            id as i64,
        ),
        AlertQuery::Latest => (format!("{COLS} WHERE ?1 = ?1 ORDER BY id DESC LIMIT ?2"), 0),
        AlertQuery::Pending => (
            format!(
                "{COLS} WHERE id IN (SELECT alert_id FROM deliveries WHERE status = 'pending' \
                 AND alert_id > ?1) ORDER BY id LIMIT ?2"
            ),
            0,
        ),
        AlertQuery::DigestAfter(id) => (
            format!("{COLS} WHERE digest = 1 AND id > ?1 ORDER BY id LIMIT ?2"),
            id as i64,
        ),
        AlertQuery::Since(t) => (
            format!("{COLS} WHERE at >= ?1 ORDER BY id LIMIT ?2"),
            t.timestamp_micros(),
        ),
    };
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![arg, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, bool>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, at, priority, source, title, message, context, dedup_key, digest) = row?;
        let key = format!("alert {id}");
        out.push(AlertRecord {
            id: id as u64,
            at: from_micros(at),
            alert: Alert {
                priority: Priority::parse(&priority).map_err(|e| corrupt(&key, "priority", e))?,
                source,
                title,
                message,
                context: serde_json::from_str(&context).map_err(|e| corrupt(&key, "context", e))?,
                dedup_key,
            },
            digest,
            deliveries: deliveries(c, id)?,
        });
    }
    Ok(out)
}

fn deliveries(c: &Connection, alert_id: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT channel, status, attempts, last_error, updated_at FROM deliveries \
         WHERE alert_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map(params![alert_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (channel, status, attempts, last_error, updated_at) = row?;
        out.push(DeliveryRecord {
            status: DeliveryStatus::parse(&status).ok_or_else(|| {
                corrupt(&format!("delivery {alert_id}/{channel}"), "status", &status)
            })?,
            channel,
            attempts,
            last_error,
            updated_at: from_micros(updated_at),
        });
    }
    Ok(out)
}

impl Sqlite {
    /// Queue an outbox write now; the future resolves once it is durable.
    pub(crate) fn write_alert(
        &self,
        op: AlertOp,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        self.queue_write(WriteOp::Alert(op))
    }

    pub(crate) async fn select_alerts(
        &self,
        which: AlertQuery,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.read(move |c| select(c, which, limit)).await
    }

    pub(crate) async fn notify_state(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT key, value FROM notify_state")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
        })
        .await
    }

    pub(crate) async fn max_alert_id(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let id: Option<i64> = c
                .query_row("SELECT max(id) FROM alerts", [], |r| r.get(0))
                .optional()?
                .flatten();
            Ok(id.unwrap_or(0) as u64)
        })
        .await
    }
}

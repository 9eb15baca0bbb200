//! The SQLite backend: one writer thread doing group commit, a small pool of reader connections.
//!
//! The writer owns its connection and a queue. It blocks for the first queued write, drains up
//! to `max_batch` more without waiting, runs them in one `BEGIN IMMEDIATE` transaction (each in
//! its own savepoint so one failure does not spoil the others), commits with `synchronous=FULL`
//! (one fsync of the WAL for the whole batch), and only then answers every caller. Readers run
//! on the blocking pool with their own connections and never block the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use sovereign_core::access::ApiKey;
use sovereign_core::audit::{journal_digest, AuditRecord, Digest};
use sovereign_core::schedule::ScheduleSpec;
use sovereign_core::task::{PolicySpec, RunResult, RunStatus, TaskId, TaskSpec, Trigger};
use tokio::sync::oneshot;

mod alerts;
mod deploys;
mod keys;
pub(crate) use alerts::AlertOp;

use crate::records::{
    JournalEntry, ResultFilter, StoreStats, TaskRow, WebhookRecord, WebhookStatus,
};
use crate::{Progress, SqliteOptions, StoreError};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: tasks, results, webhooks
    "CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        handler TEXT NOT NULL,
        payload TEXT NOT NULL,
        schedule TEXT,
        enabled INTEGER NOT NULL,
        policy TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        schedule_cursor INTEGER
    );
    CREATE TABLE results (
        result_id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT NOT NULL,
        error TEXT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        scheduled_for INTEGER,
        webhook_id TEXT
    );
    CREATE INDEX results_by_time ON results (started_at);
    CREATE INDEX results_by_task ON results (task_id, started_at);
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        event TEXT,
        delivery_id TEXT,
        received_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        body TEXT NOT NULL,
        tasks TEXT NOT NULL
    );
    CREATE INDEX webhooks_by_time ON webhooks (received_at);",
    // 2: the trading journal (append-only events, replayed at start)
    "CREATE TABLE journal (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL
    );",
    // 3: the audit trail (hash-chained; see sovereign_core::audit)
    "CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
    // 4: the notifier's outbox
    alerts::MIGRATION,
    // 5: Truth versions as loaded
    "CREATE TABLE truth (
        version TEXT PRIMARY KEY,
        at INTEGER NOT NULL,
        document TEXT NOT NULL
    );",
    // 6: the journal is hash-chained like the audit trail: each row keeps its hash (32 bytes;
    // its link is the previous row's). Rows from before are chained at open (`chain_journal`).
    "ALTER TABLE journal ADD COLUMN hash BLOB;",
    // 7: API keys (hashes of their secrets only)
    keys::MIGRATION,
    // 8: access state, ended sessions
    keys::MIGRATION_STATE,
    // 9: deploy runs and their events
    deploys::MIGRATION,
];

enum WriteOp {
    InsertTask(TaskRow),
    UpdateTask(TaskRow),
    UpsertTask(TaskRow),
    DeleteTask(String),
    InsertResult(RunResult),
    InsertWebhook(WebhookRecord),
    Prune {
        older_than: Option<DateTime<Utc>>,
        keep: Option<usize>,
    },
    AppendJournal(Vec<JournalEntry>),
    /// Pin the journal's head into the audit trail (nothing when it has not moved).
    CheckpointJournal {
        at: DateTime<Utc>,
    },
    AppendAudit {
        at: DateTime<Utc>,
        actor: String,
        kind: String,
        payload: Value,
    },
    Alert(AlertOp),
    Key(keys::KeyOp),
    Deploy(deploys::DeployOp),
    Truth {
        version: String,
        at: DateTime<Utc>,
        document: Value,
    },
    Ping,
}

// `Close` is sent once per process; boxing every write would add an allocation to the hot path.
#[allow(clippy::large_enum_variant)]
enum Job {
    Write(WriteOp, oneshot::Sender<Result<u64, StoreError>>),
    Close(oneshot::Sender<()>),
}

pub(crate) struct Sqlite {
    path: PathBuf,
    queue: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    commits: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    /// Writes queued so far; `writes` counts those the writer has finished (durable or failed).
    queued: AtomicU64,
    /// Told on the writer's thread after each commit.
    listeners: Listeners,
    /// Dropping this stops the checkpointer thread.
    _checkpointer: mpsc::Sender<()>,
    /// Set for good when a commit or a journal append fails.
    poisoned: Arc<AtomicBool>,
    /// The data dir's lock, released once the writer has closed (or when the store is dropped).
    lock: Mutex<Option<crate::lock::DirLock>>,
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    if read_only {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(conn)
}

/// Copy the WAL back into the database from a connection of its own, once a second, in PASSIVE
/// mode: it never blocks the writer, so a checkpoint is not a pause in order acknowledgements.
/// (The writer's own automatic checkpoints are off; it truncates the WAL when it closes.)
fn spawn_checkpointer(path: &Path) -> Result<mpsc::Sender<()>, StoreError> {
    let conn = open_connection(path, false)?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(std::time::Duration::from_secs(1))
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start checkpoint thread: {e}")))?;
    Ok(stop)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {applied} is newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl Sqlite {
    pub(crate) fn open(
        path: &Path,
        options: SqliteOptions,
        lock: crate::lock::DirLock,
    ) -> Result<Sqlite, StoreError> {
        let mut conn = open_connection(path, false)?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let readers = (0..options.readers.max(1))
            .map(|_| open_connection(path, true))
            .collect::<Result<Vec<_>, _>>()?;
        let (queue, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let poisoned = Arc::new(AtomicBool::new(false));
        let listeners = Listeners::default();
        let heads = Heads {
            audit: load_audit_head(&conn)?,
            journal: chain_journal(&conn)?,
            checkpointed: None,
        };
        let writer = Writer {
            heads,
            conn,
            rx,
            poisoned: poisoned.clone(),
            max_batch: options.max_batch.max(1),
            commits: commits.clone(),
            writes: writes.clone(),
            listeners: listeners.clone(),
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Database(format!("cannot start writer thread: {e}")))?;
        let checkpointer = spawn_checkpointer(path)?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            queue,
            readers: Arc::new(Mutex::new(readers)),
            commits,
            writes,
            queued: AtomicU64::new(0),
            listeners,
            _checkpointer: checkpointer,
            poisoned,
            lock: Mutex::new(Some(lock)),
        })
    }

    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn caught_up(&self) -> bool {
        self.writes.load(Ordering::Acquire) >= self.queued.load(Ordering::Acquire)
    }

    /// How many writes have been queued so far: a write queued before this call is finished
    /// once [`Sqlite::progress`] counts that many.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    pub(crate) fn progress(&self) -> Progress {
        progress(&self.writes, &self.poisoned)
    }

    pub(crate) fn on_finished(&self, listener: impl Fn(Progress) + Send + Sync + 'static) {
        self.listeners
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(listener));
    }

    fn enqueue(&self, op: WriteOp, reply: oneshot::Sender<Result<u64, StoreError>>) -> bool {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let sent = self.queue.send(Job::Write(op, reply)).is_ok();
        if !sent {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }

    pub(crate) fn location(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn write(&self, op: WriteOp) -> Result<u64, StoreError> {
        self.queue_write(op).await
    }

    /// Queue `op` now (in order with every other write); the future resolves once it is durable.
    fn queue_write(
        &self,
        op: WriteOp,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.enqueue(op, tx);
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&path, true)?,
            };
            let out = f(&conn);
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Database(format!("reader failed: {e}")))?
    }

    pub(crate) async fn insert_task(&self, row: TaskRow) -> Result<(), StoreError> {
        self.write(WriteOp::InsertTask(row)).await.map(|_| ())
    }

    pub(crate) async fn update_task(&self, row: TaskRow) -> Result<(), StoreError> {
        self.write(WriteOp::UpdateTask(row)).await.map(|_| ())
    }

    pub(crate) async fn upsert_task(&self, row: TaskRow) -> Result<(), StoreError> {
        self.write(WriteOp::UpsertTask(row)).await.map(|_| ())
    }

    pub(crate) async fn delete_task(&self, task_id: &str) -> Result<(), StoreError> {
        self.write(WriteOp::DeleteTask(task_id.to_string()))
            .await
            .map(|_| ())
    }

    pub(crate) async fn insert_result(&self, result: RunResult) -> Result<(), StoreError> {
        self.write(WriteOp::InsertResult(result)).await.map(|_| ())
    }

    pub(crate) async fn insert_webhook(&self, record: WebhookRecord) -> Result<(), StoreError> {
        self.write(WriteOp::InsertWebhook(record)).await.map(|_| ())
    }

    pub(crate) async fn prune_results(
        &self,
        older_than: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<u64, StoreError> {
        self.write(WriteOp::Prune { older_than, keep }).await
    }

    /// Queue journal entries now; the returned future resolves once they are durable.
    pub(crate) fn append_journal(
        &self,
        entries: Vec<JournalEntry>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let write = self.queue_write(WriteOp::AppendJournal(entries));
        async move { write.await.map(|_| ()) }
    }

    /// Queue a no-op write now; resolves once every write queued before it is durable.
    pub(crate) fn barrier(
        &self,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let write = self.queue_write(WriteOp::Ping);
        async move { write.await.map(|_| ()) }
    }

    /// Queue an audit record now; resolves to its sequence number once durable.
    pub(crate) fn append_audit(
        &self,
        at: DateTime<Utc>,
        actor: String,
        kind: String,
        payload: Value,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        self.queue_write(WriteOp::AppendAudit {
            at,
            actor,
            kind,
            payload,
        })
    }

    pub(crate) async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        self.write(WriteOp::Key(keys::KeyOp::Insert(key)))
            .await
            .map(|_| ())
    }

    pub(crate) async fn revoke_key(
        &self,
        name: String,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Key(keys::KeyOp::Revoke { name, at }))
            .await
            .map(|_| ())
    }

    /// Queue a key's last use (not awaited).
    pub(crate) fn touch_key(&self, id: String, at: DateTime<Utc>) {
        drop(self.queue_write(WriteOp::Key(keys::KeyOp::Touch { id, at })));
    }

    pub(crate) async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(keys::list).await
    }

    pub(crate) async fn put_access_state(
        &self,
        name: String,
        value: String,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Key(keys::KeyOp::PutState { name, value }))
            .await
            .map(|_| ())
    }

    pub(crate) async fn access_state(&self, name: String) -> Result<Option<String>, StoreError> {
        self.read(move |c| keys::state(c, &name)).await
    }

    pub(crate) async fn end_session(&self, id: String, expires_at: i64) -> Result<(), StoreError> {
        self.write(WriteOp::Key(keys::KeyOp::EndSession { id, expires_at }))
            .await
            .map(|_| ())
    }

    pub(crate) async fn ended_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(move |c| keys::ended_sessions(c, now)).await
    }

    pub(crate) async fn put_truth(
        &self,
        version: String,
        at: DateTime<Utc>,
        document: Value,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Truth {
            version,
            at,
            document,
        })
        .await
        .map(|_| ())
    }

    pub(crate) async fn latest_truth(
        &self,
    ) -> Result<Option<(String, DateTime<Utc>, Value)>, StoreError> {
        self.read(|c| {
            let row = c
                .query_row(
                    "SELECT version, at, document FROM truth ORDER BY at DESC LIMIT 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(v, at, doc)| {
                let doc = serde_json::from_str(&doc).map_err(|e| corrupt(&v, "document", e))?;
                Ok((v, from_micros(at), doc))
            })
            .transpose()
        })
        .await
    }

    pub(crate) async fn list_audit(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, actor, kind, payload, prev, hash FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_seq as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, actor, kind, payload, prev, hash) = row?;
                out.push(AuditRecord {
                    seq: seq as u64,
                    at: from_micros(at),
                    actor,
                    kind,
                    payload: serde_json::from_str(&payload).map_err(|e| corrupt(&seq.to_string(), "payload", e))?,
                    prev,
                    hash,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Journal rows as chained, for verification.
    pub(crate) async fn read_journal_links(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<sovereign_core::audit::JournalLink>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, kind, payload, hash FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            // Each row links to the hash of the row before it (the one at `after_seq` first).
            let mut prev = if after_seq == 0 {
                sovereign_core::audit::GENESIS.to_string()
            } else {
                c.query_row(
                    "SELECT hash FROM journal WHERE seq = ?1",
                    params![after_seq as i64],
                    |r| r.get::<_, Option<Vec<u8>>>(0),
                )
                .optional()?
                .flatten()
                .map(hex::encode)
                .unwrap_or_default()
            };
            let rows = stmt.query_map(params![after_seq as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at_micros, kind, payload, hash) = row?;
                let hash = hash.map(hex::encode).unwrap_or_default();
                out.push(sovereign_core::audit::JournalLink {
                    seq,
                    at_micros,
                    kind,
                    payload,
                    prev: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Queue a checkpoint of the journal's head into the audit trail (behind every write
    /// queued before it).
    pub(crate) fn checkpoint_journal(&self, at: DateTime<Utc>) {
        drop(self.queue_write(WriteOp::CheckpointJournal { at }));
    }

    pub(crate) async fn read_journal(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, kind, payload FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
                Ok(JournalEntry {
                    seq: r.get(0)?,
                    at: from_micros(r.get(1)?),
                    kind: r.get(2)?,
                    payload: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await?;
        self.write(WriteOp::Ping).await.map(|_| ())
    }

    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Job::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        // Nothing writes any more: another engine may have the data dir.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    pub(crate) async fn list_tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, handler, payload, schedule, enabled, policy, created_at, \
                 updated_at, schedule_cursor FROM tasks ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    id,
                    name,
                    handler,
                    payload,
                    schedule,
                    enabled,
                    policy,
                    created,
                    updated,
                    cursor,
                ) = row?;
                let schedule = match schedule {
                    Some(s) => Some(
                        serde_json::from_str::<ScheduleSpec>(&s)
                            .map_err(|e| corrupt(&id, "schedule", e))?,
                    ),
                    None => None,
                };
                out.push(TaskRow {
                    spec: TaskSpec {
                        payload: serde_json::from_str(&payload)
                            .map_err(|e| corrupt(&id, "payload", e))?,
                        policy: policy_from_json(&policy).map_err(|e| corrupt(&id, "policy", e))?,
                        task_id: id,
                        name,
                        handler,
                        schedule,
                        enabled,
                    },
                    created_at: from_micros(created),
                    updated_at: from_micros(updated),
                    schedule_cursor: cursor.map(from_micros),
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn latest_results(&self) -> Result<Vec<RunResult>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RESULT_COLUMNS}, max(started_at) FROM results GROUP BY task_id"
            ))?;
            let rows = stmt.query_map([], result_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(result_of))
                .collect()
        })
        .await
    }

    pub(crate) async fn list_results(
        &self,
        filter: ResultFilter,
    ) -> Result<Vec<RunResult>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RESULT_COLUMNS} FROM results \
                 WHERE (?1 IS NULL OR task_id = ?1) AND (?2 IS NULL OR started_at >= ?2) \
                 ORDER BY started_at DESC, rowid DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.task_id,
                    filter.since.map(|t| t.timestamp_micros()),
                    filter.limit as i64
                ],
                result_row,
            )?;
            rows.map(|r| r.map_err(StoreError::from).and_then(result_of))
                .collect()
        })
        .await
    }

    pub(crate) async fn recent_deliveries(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, String, DateTime<Utc>)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT source, delivery_id, received_at FROM webhooks \
                 WHERE received_at >= ?1 AND delivery_id IS NOT NULL AND status = 'accepted' \
                 ORDER BY received_at",
            )?;
            let rows = stmt.query_map(params![since.timestamp_micros()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    from_micros(r.get::<_, i64>(2)?),
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(crate) async fn list_webhooks(
        &self,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, source, event, delivery_id, received_at, status, reason, body, tasks \
                 FROM webhooks ORDER BY received_at DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, source, event, delivery_id, received, status, reason, body, tasks) = row?;
                out.push(WebhookRecord {
                    status: WebhookStatus::parse(&status)
                        .ok_or_else(|| corrupt(&id, "status", &status))?,
                    body: serde_json::from_str(&body).map_err(|e| corrupt(&id, "body", e))?,
                    tasks: serde_json::from_str(&tasks).map_err(|e| corrupt(&id, "tasks", e))?,
                    received_at: from_micros(received),
                    id,
                    source,
                    event,
                    delivery_id,
                    reason,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn stats(&self) -> Result<StoreStats, StoreError> {
        let commits = self.commits.load(Ordering::Relaxed);
        let writes = self.writes.load(Ordering::Relaxed);
        self.read(move |c| {
            let count = |table: &str| -> Result<u64, StoreError> {
                let n: i64 =
                    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            };
            Ok(StoreStats {
                tasks: count("tasks")?,
                results: count("results")?,
                webhooks: count("webhooks")?,
                commits,
                writes,
            })
        })
        .await
    }
}

struct Writer {
    conn: Connection,
    /// The chains' heads, so each append links to them.
    heads: Heads,
    poisoned: Arc<AtomicBool>,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    commits: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    listeners: Listeners,
}

fn progress(writes: &AtomicU64, poisoned: &AtomicBool) -> Progress {
    Progress {
        finished: writes.load(Ordering::Acquire),
        poisoned: poisoned.load(Ordering::Acquire),
    }
}

/// One told, on the writer's thread, how far it has got after each commit.
type Listener = Box<dyn Fn(Progress) + Send + Sync>;

#[derive(Clone, Default)]
struct Listeners(Arc<Mutex<Vec<Listener>>>);

type Reply = oneshot::Sender<Result<u64, StoreError>>;

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<(WriteOp, Reply)> = Vec::with_capacity(self.max_batch);
        loop {
            let mut close = None;
            match self.rx.recv() {
                Ok(Job::Write(op, reply)) => batch.push((op, reply)),
                Ok(Job::Close(done)) => close = Some(done),
                Err(_) => return,
            }
            while close.is_none() && batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(Job::Write(op, reply)) => batch.push((op, reply)),
                    Ok(Job::Close(done)) => close = Some(done),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
                // After the writes' own callers are answered: a listener never delays an ack.
                let progress = progress(&self.writes, &self.poisoned);
                for listener in self
                    .listeners
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                {
                    listener(progress);
                }
            }
            if let Some(done) = close {
                // Fold the WAL back so the database file is complete on its own.
                let _ = self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                let _ = done.send(());
                return;
            }
        }
    }

    /// `n` more writes are finished.
    fn finish(&self, n: u64) {
        self.writes.fetch_add(n, Ordering::Release);
    }

    fn commit(&mut self, batch: &mut Vec<(WriteOp, Reply)>) {
        let n = batch.len() as u64;
        if batch.iter().all(|(op, _)| matches!(op, WriteOp::Ping)) {
            // Barriers alone: what came before them is committed already.
            self.finish(n);
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Ok(0));
            }
            return;
        }
        let outcome = (|| -> Result<Vec<Result<u64, StoreError>>, StoreError> {
            let mut tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut results = Vec::with_capacity(batch.len());
            for (op, _) in batch.iter() {
                if matches!(op, WriteOp::Ping) {
                    results.push(Ok(0));
                    continue;
                }
                let mut sp = tx.savepoint()?;
                let r = apply(&sp, op, &mut self.heads);
                if r.is_err() && matches!(op, WriteOp::AppendJournal(_)) {
                    self.poisoned.store(true, Ordering::Release);
                }
                if r.is_ok() {
                    sp.commit()?;
                } else {
                    sp.rollback()?;
                }
                results.push(r);
            }
            tx.commit()?;
            Ok(results)
        })();
        match outcome {
            Ok(results) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.finish(n);
                for ((_, reply), r) in batch.drain(..).zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::Release);
                // The chain heads may have moved past what was committed: read them back.
                self.heads.audit = load_audit_head(&self.conn).unwrap_or(None);
                self.heads.journal = load_journal_head(&self.conn).unwrap_or(None);
                self.finish(n);
                tracing::error!(error = %e, writes = n, "store commit failed");
                let msg = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::Database(msg.clone())));
                }
            }
        }
    }
}

/// Where the writer's hash chains end.
struct Heads {
    /// The audit trail's last record (seq, hash).
    audit: Option<(u64, String)>,
    /// The journal's last row (seq, hash).
    journal: Option<(u64, Digest)>,
    /// The journal row last pinned into the audit trail by this writer.
    checkpointed: Option<u64>,
}

fn load_journal_head(c: &Connection) -> Result<Option<(u64, Digest)>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = c
        .query_row(
            "SELECT seq, hash FROM journal WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(seq, h)| Some((seq as u64, Digest::try_from(h.as_slice()).ok()?))))
}

/// Chain the journal rows written before the journal was chained (once, at open), and return
/// the head.
fn chain_journal(c: &Connection) -> Result<Option<(u64, Digest)>, StoreError> {
    let mut head = load_journal_head(c)?;
    let unchained: Vec<(i64, i64, String, String)> = {
        let mut stmt = c.prepare(
            "SELECT seq, at, kind, payload FROM journal WHERE hash IS NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if unchained.is_empty() {
        return Ok(head);
    }
    let tx = c.unchecked_transaction()?;
    for (seq, at, kind, payload) in unchained {
        let prev = head.map_or([0; 32], |h| h.1);
        let hash = journal_digest(seq as u64, at, &kind, &payload, &prev);
        tx.execute(
            "UPDATE journal SET hash = ?1 WHERE seq = ?2",
            params![&hash[..], seq],
        )?;
        head = Some((seq as u64, hash));
    }
    tx.commit()?;
    Ok(head)
}

fn load_audit_head(c: &Connection) -> Result<Option<(u64, String)>, StoreError> {
    Ok(c.query_row(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
    )
    .optional()?)
}

fn apply(c: &Connection, op: &WriteOp, heads: &mut Heads) -> Result<u64, StoreError> {
    match op {
        WriteOp::InsertTask(row) => {
            let exists = c
                .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
                .query_row(params![row.spec.task_id], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::Conflict(format!("task {:?}", row.spec.task_id)));
            }
            write_task(c, row, "INSERT")
        }
        WriteOp::UpdateTask(row) => {
            let n = c
                .prepare_cached("SELECT count(*) FROM tasks WHERE id = ?1")?
                .query_row(params![row.spec.task_id], |r| r.get::<_, i64>(0))?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("task {:?}", row.spec.task_id)));
            }
            update_task(c, row)
        }
        WriteOp::UpsertTask(row) => write_task(c, row, "REPLACE"),
        WriteOp::DeleteTask(id) => {
            let n = c
                .prepare_cached("DELETE FROM tasks WHERE id = ?1")?
                .execute(params![id])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("task {id:?}")));
            }
            Ok(n as u64)
        }
        WriteOp::InsertResult(r) => {
            c.prepare_cached(
                "INSERT INTO results (result_id, task_id, trigger, status, output, error, \
                 started_at, finished_at, attempt, scheduled_for, webhook_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                r.result_id,
                r.task_id.as_str(),
                r.trigger.as_str(),
                r.status.as_str(),
                r.output.to_string(),
                r.error,
                r.started_at.timestamp_micros(),
                r.finished_at.timestamp_micros(),
                r.attempt as i64,
                r.scheduled_for.map(|t| t.timestamp_micros()),
                r.webhook_id,
            ])?;
            if let (Trigger::Schedule, Some(at)) = (r.trigger, r.scheduled_for) {
                c.prepare_cached(
                    "UPDATE tasks SET schedule_cursor = max(coalesce(schedule_cursor, ?2), ?2) \
                     WHERE id = ?1",
                )?
                .execute(params![r.task_id.as_str(), at.timestamp_micros()])?;
            }
            Ok(1)
        }
        WriteOp::InsertWebhook(w) => {
            c.prepare_cached(
                "INSERT INTO webhooks (id, source, event, delivery_id, received_at, status, \
                 reason, body, tasks) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                w.id,
                w.source,
                w.event,
                w.delivery_id,
                w.received_at.timestamp_micros(),
                w.status.as_str(),
                w.reason,
                w.body.to_string(),
                Value::from(w.tasks.clone()).to_string(),
            ])?;
            Ok(1)
        }
        WriteOp::Prune { older_than, keep } => {
            let mut n = 0u64;
            if let Some(t) = older_than {
                let micros = t.timestamp_micros();
                n +=
                    c.execute("DELETE FROM results WHERE started_at < ?1", params![micros])? as u64;
                c.execute(
                    "DELETE FROM webhooks WHERE received_at < ?1",
                    params![micros],
                )?;
                alerts::prune(c, micros)?;
            }
            if let Some(keep) = keep {
                let cutoff: Option<i64> = c
                    .query_row(
                        "SELECT started_at FROM results ORDER BY started_at DESC LIMIT 1 OFFSET ?1",
                        params![*keep as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(cutoff) = cutoff {
                    n += c.execute(
                        "DELETE FROM results WHERE started_at <= ?1",
                        params![cutoff],
                    )? as u64;
                }
            }
            Ok(n)
        }
        WriteOp::AppendJournal(entries) => {
            let mut stmt = c.prepare_cached(
                "INSERT INTO journal (seq, at, kind, payload, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            // The head moves only once every row is in (a failed write rolls back whole).
            let mut head = heads.journal;
            for e in entries {
                let (seq, prev) = match &head {
                    Some((seq, hash)) => (*seq + 1, *hash),
                    None => (1, [0; 32]),
                };
                let at = e.at.timestamp_micros();
                let hash = journal_digest(seq, at, &e.kind, &e.payload, &prev);
                stmt.execute(params![seq as i64, at, e.kind, e.payload, &hash[..]])?;
                head = Some((seq, hash));
            }
            heads.journal = head;
            Ok(entries.len() as u64)
        }
        WriteOp::CheckpointJournal { at } => {
            let Some((seq, hash)) = heads.journal else {
                return Ok(0);
            };
            if heads.checkpointed == Some(seq) {
                return Ok(0);
            }
            let payload =
                serde_json::json!({"journal_seq": seq, "journal_hash": hex::encode(hash)});
            let audit_seq = apply(
                c,
                &WriteOp::AppendAudit {
                    at: *at,
                    actor: "engine".into(),
                    kind: sovereign_core::audit::JOURNAL_CHECKPOINT.into(),
                    payload,
                },
                heads,
            )?;
            heads.checkpointed = Some(seq);
            Ok(audit_seq)
        }
        WriteOp::AppendAudit {
            at,
            actor,
            kind,
            payload,
        } => {
            let (seq, prev) = match &heads.audit {
                Some((seq, hash)) => (*seq + 1, hash.clone()),
                None => (1, sovereign_core::audit::GENESIS.to_string()),
            };
            let hash = sovereign_core::audit::hash_of(&sovereign_core::audit::canonical(
                seq, *at, actor, kind, payload, &prev,
            ));
            c.prepare_cached(
                "INSERT INTO audit (seq, at, actor, kind, payload, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![seq as i64, at.timestamp_micros(), actor, kind, payload.to_string(), prev, hash])?;
            heads.audit = Some((seq, hash));
            Ok(seq)
        }
        WriteOp::Alert(op) => alerts::apply(c, op),
        WriteOp::Key(op) => keys::apply(c, op),
        WriteOp::Deploy(op) => deploys::apply(c, op),
        WriteOp::Truth {
            version,
            at,
            document,
        } => {
            // A version seen before keeps its first load time; `at` of the newest row says
            // which version is in force.
            c.prepare_cached("DELETE FROM truth WHERE version = ?1")?
                .execute(params![version])?;
            c.prepare_cached("INSERT INTO truth (version, at, document) VALUES (?1, ?2, ?3)")?
                .execute(params![
                    version,
                    at.timestamp_micros(),
                    document.to_string()
                ])?;
            Ok(1)
        }
        WriteOp::Ping => Ok(0),
    }
}

fn write_task(c: &Connection, row: &TaskRow, verb: &str) -> Result<u64, StoreError> {
    let schedule = match &row.spec.schedule {
        Some(s) => Some(serde_json::to_string(s).map_err(|e| StoreError::Database(e.to_string()))?),
        None => None,
    };
    let sql = format!(
        "{verb} INTO tasks (id, name, handler, payload, schedule, enabled, policy, created_at, \
         updated_at, schedule_cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    );
    c.prepare_cached(&sql)?.execute(params![
        row.spec.task_id,
        row.spec.name,
        row.spec.handler,
        row.spec.payload.to_string(),
        schedule,
        row.spec.enabled,
        policy_to_json(&row.spec.policy).to_string(),
        row.created_at.timestamp_micros(),
        row.updated_at.timestamp_micros(),
        row.schedule_cursor.map(|t| t.timestamp_micros()),
    ])?;
    Ok(1)
}

/// Replace a task's definition, keeping its schedule cursor.
fn update_task(c: &Connection, row: &TaskRow) -> Result<u64, StoreError> {
    let schedule = match &row.spec.schedule {
        Some(s) => Some(serde_json::to_string(s).map_err(|e| StoreError::Database(e.to_string()))?),
        None => None,
    };
    c.prepare_cached(
        "UPDATE tasks SET name = ?2, handler = ?3, payload = ?4, schedule = ?5, enabled = ?6, \
         policy = ?7, updated_at = ?8 WHERE id = ?1",
    )?
    .execute(params![
        row.spec.task_id,
        row.spec.name,
        row.spec.handler,
        row.spec.payload.to_string(),
        schedule,
        row.spec.enabled,
        policy_to_json(&row.spec.policy).to_string(),
        row.updated_at.timestamp_micros(),
    ])?;
    Ok(1)
}

fn policy_to_json(p: &PolicySpec) -> Value {
    serde_json::json!({
        "timeout": p.timeout,
        "retries": p.retries,
        "retry_backoff": p.retry_backoff,
        "overlap": p.overlap,
        "missed": p.missed,
    })
}

fn policy_from_json(text: &str) -> Result<PolicySpec, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(PolicySpec {
        timeout: s("timeout"),
        retries: v
            .get("retries")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        retry_backoff: s("retry_backoff"),
        overlap: s("overlap"),
        missed: s("missed"),
    })
}

const RESULT_COLUMNS: &str = "result_id, task_id, trigger, status, output, error, started_at, \
     finished_at, attempt, scheduled_for, webhook_id";

type ResultColumns = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

fn result_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResultColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn result_of(cols: ResultColumns) -> Result<RunResult, StoreError> {
    let (id, task, trigger, status, output, error, started, finished, attempt, sched, wh) = cols;
    Ok(RunResult {
        task_id: TaskId::parse(&task).map_err(|e| corrupt(&id, "task_id", e))?,
        trigger: Trigger::parse(&trigger).ok_or_else(|| corrupt(&id, "trigger", &trigger))?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt(&id, "status", &status))?,
        output: serde_json::from_str(&output).map_err(|e| corrupt(&id, "output", e))?,
        error,
        started_at: from_micros(started),
        finished_at: from_micros(finished),
        attempt: u32::try_from(attempt).unwrap_or(0),
        scheduled_for: sched.map(from_micros),
        webhook_id: wh,
        result_id: id,
    })
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn corrupt(id: &str, column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("row {id:?} column {column}: {e}"))
}

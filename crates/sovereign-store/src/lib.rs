//! Sovereign's store: everything that must survive a restart.
//!
//! Callers see one type, [`Store`], with async methods over domain records. Behind it sits a
//! backend; today SQLite in WAL mode inside the data dir. A PostgreSQL backend becomes another
//! variant of [`Backend`] with the same methods; no caller changes.
//!
//! # Layout
//! - [`records`]: the rows the store keeps (tasks, results, webhooks, alerts, deploy runs and
//!   their events) as plain Rust values.
//! - `sqlite`: the SQLite backend: migrations, the single group-commit writer thread, readers.
//!
//! # Invariants
//! - Exactly one writer. Writes queue to it; it commits many at once (one fsync) and answers
//!   each caller only after the commit that holds its write is durable.
//! - A failed write leaves nothing behind (each write runs in its own savepoint).
//! - Readers use their own connections and never block the writer (WAL).

mod lock;
pub mod records;
mod sqlite;

use std::path::Path;

pub use records::{
    AlertQuery, AlertRecord, DeliveryRecord, DeliveryStatus, DeployEvent, DeployRun, JournalEntry,
    ResultFilter, StoreStats, TaskRow, WebhookRecord, WebhookStatus,
};
use sovereign_core::task::RunResult;

/// Everything that can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("store is closed")]
    Closed,
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Another process holds the data dir's lock.
    #[error("{0}")]
    Locked(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// Tunables of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most writes folded into one transaction.
    pub max_batch: usize,
    /// Reader connections kept open.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 2048,
            readers: 4,
        }
    }
}

/// Create `path` (if missing) readable and writable by its owner only; SQLite gives its WAL and
/// shared-memory files the database file's permissions.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", path.display())))
}

/// How far the store's writer has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Writes finished so far, in the order they were queued: committed, or failed.
    pub finished: u64,
    /// Whether a commit or a journal append has failed (see [`Store::poisoned`]).
    pub poisoned: bool,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
}

/// The handle every part of the engine uses. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: std::sync::Arc<Backend>,
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match &*$self.backend {
            Backend::Sqlite($b) => $e,
        }
    };
}

impl Store {
    /// Lock `dir` for this process (creating it if needed), open (creating if needed)
    /// `sovereign.db` in it and bring its schema up to date. `Locked` when another process
    /// has the data dir open.
    pub fn open_sqlite(dir: &Path, options: SqliteOptions) -> Result<Store, StoreError> {
        if !dir.exists() {
            // Task payloads and channel URLs live here: only the owner may enter.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|e| {
                StoreError::Database(format!("cannot create data dir {}: {e}", dir.display()))
            })?;
        }
        let lock = lock::DirLock::acquire(dir)?;
        let db = dir.join("sovereign.db");
        owner_only(&db)?;
        let backend = sqlite::Sqlite::open(&db, options, lock)?;
        Ok(Store {
            backend: std::sync::Arc::new(Backend::Sqlite(backend)),
        })
    }

    /// Add an API key (its hash only). `Conflict` when a key not revoked has the name.
    pub async fn insert_key(&self, key: sovereign_core::access::ApiKey) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_key(key).await)
    }

    /// Revoke the live key of this name. `NotFound` when there is none.
    pub async fn revoke_key(
        &self,
        name: String,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.revoke_key(name, at).await)
    }

    /// Record a key's last use (queued, not awaited).
    pub fn touch_key(&self, id: String, at: chrono::DateTime<chrono::Utc>) {
        dispatch!(self, b => b.touch_key(id, at))
    }

    /// Every key (revoked ones too), oldest first.
    pub async fn list_keys(&self) -> Result<Vec<sovereign_core::access::ApiKey>, StoreError> {
        dispatch!(self, b => b.list_keys().await)
    }

    /// Store one value of the access room's state (`session_key`, `tier_gates`).
    pub async fn put_access_state(&self, name: String, value: String) -> Result<(), StoreError> {
        dispatch!(self, b => b.put_access_state(name, value).await)
    }

    /// One value of the access room's state.
    pub async fn access_state(&self, name: String) -> Result<Option<String>, StoreError> {
        dispatch!(self, b => b.access_state(name).await)
    }

    /// Record a sign-on session ended before `expires_at` (unix seconds).
    pub async fn end_session(&self, id: String, expires_at: i64) -> Result<(), StoreError> {
        dispatch!(self, b => b.end_session(id, expires_at).await)
    }

    /// The ended sessions that would still be valid at `now` (unix seconds): (id, expires_at).
    pub async fn ended_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self, b => b.ended_sessions(now).await)
    }

    /// A description of where the data lives, for banners and `/status`.
    pub fn location(&self) -> String {
        dispatch!(self, b => b.location())
    }

    pub async fn insert_task(&self, row: TaskRow) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_task(row).await)
    }

    /// Replace an existing task. `NotFound` if it does not exist.
    pub async fn update_task(&self, row: TaskRow) -> Result<(), StoreError> {
        dispatch!(self, b => b.update_task(row).await)
    }

    /// Insert or replace (config-declared tasks at start-up).
    pub async fn upsert_task(&self, row: TaskRow) -> Result<(), StoreError> {
        dispatch!(self, b => b.upsert_task(row).await)
    }

    pub async fn delete_task(&self, task_id: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.delete_task(task_id).await)
    }

    pub async fn list_tasks(&self) -> Result<Vec<TaskRow>, StoreError> {
        dispatch!(self, b => b.list_tasks().await)
    }

    /// Store one run result; for scheduled runs also advance the task's schedule cursor in the
    /// same transaction, so a restart knows which fire was the last one handled.
    pub async fn insert_result(&self, result: RunResult) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_result(result).await)
    }

    /// The newest result of every task that has one.
    pub async fn latest_results(&self) -> Result<Vec<RunResult>, StoreError> {
        dispatch!(self, b => b.latest_results().await)
    }

    pub async fn list_results(&self, filter: ResultFilter) -> Result<Vec<RunResult>, StoreError> {
        dispatch!(self, b => b.list_results(filter).await)
    }

    /// Record a webhook call (accepted, duplicate or rejected). Durable when this returns.
    pub async fn insert_webhook(&self, record: WebhookRecord) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_webhook(record).await)
    }

    /// Accepted deliveries with an id since `since`, oldest first: rebuilds the dedup window.
    pub async fn recent_deliveries(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, String, chrono::DateTime<chrono::Utc>)>, StoreError> {
        dispatch!(self, b => b.recent_deliveries(since).await)
    }

    pub async fn list_webhooks(&self, limit: usize) -> Result<Vec<WebhookRecord>, StoreError> {
        dispatch!(self, b => b.list_webhooks(limit).await)
    }

    /// Delete results older than `older_than` and beyond the newest `keep`; returns how many.
    pub async fn prune_results(
        &self,
        older_than: Option<chrono::DateTime<chrono::Utc>>,
        keep: Option<usize>,
    ) -> Result<u64, StoreError> {
        dispatch!(self, b => b.prune_results(older_than, keep).await)
    }

    /// Queue journal entries at once (in order with every other write) and return a future that
    /// resolves when they are durable. Callers may go on before awaiting it: the journal keeps
    /// the order in which entries were queued.
    pub fn append_journal(
        &self,
        entries: Vec<JournalEntry>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        dispatch!(self, b => b.append_journal(entries))
    }

    /// Queue a no-op write at once; the future resolves when every write queued before it is
    /// durable (answer a reader only with state the disk already holds).
    pub fn barrier(
        &self,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        dispatch!(self, b => b.barrier())
    }

    /// How many writes have been queued so far: every write queued before this call is
    /// finished once [`Progress::finished`] reaches the answer.
    pub fn queued(&self) -> u64 {
        dispatch!(self, b => b.queued())
    }

    /// How far the writer has got.
    pub fn progress(&self) -> Progress {
        dispatch!(self, b => b.progress())
    }

    /// Call `listener` with the writer's progress after each commit, on the writer's thread,
    /// once the commit's own writers are answered: a way to act on durability that costs no
    /// write and wakes no task. It must be quick and must not wait on the store.
    pub fn on_finished(&self, listener: impl Fn(Progress) + Send + Sync + 'static) {
        dispatch!(self, b => b.on_finished(listener))
    }

    /// Whether a commit or a journal append has failed since start. Once set, what is in memory
    /// may be ahead of the disk; the trading core stops rather than build on it.
    pub fn poisoned(&self) -> bool {
        dispatch!(self, b => b.poisoned())
    }

    /// Whether every write queued so far has been finished by the writer (nothing in flight).
    pub fn caught_up(&self) -> bool {
        dispatch!(self, b => b.caught_up())
    }

    /// Queue an audit record at once (chained to the last one by the writer); the future resolves
    /// to its sequence number once it is durable.
    pub fn append_audit(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        actor: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        let (actor, kind) = (actor.into(), kind.into());
        dispatch!(self, b => b.append_audit(at, actor, kind, payload))
    }

    /// Audit records with `seq > after_seq`, in order, at most `limit`.
    pub async fn list_audit(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<sovereign_core::audit::AuditRecord>, StoreError> {
        dispatch!(self, b => b.list_audit(after_seq, limit).await)
    }

    /// Journal rows with `seq > after_seq` as hash-chained (`sovereign_core::audit::Link`),
    /// oldest first, at most `limit`.
    pub async fn read_journal_links(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<sovereign_core::audit::JournalLink>, StoreError> {
        dispatch!(self, b => b.read_journal_links(after_seq, limit).await)
    }

    /// Pin the journal's head into the audit trail (a `trading.journal_checkpoint` record),
    /// behind every write queued so far; nothing when the head has not moved since the last
    /// checkpoint. Not awaited.
    pub fn checkpoint_journal(&self, at: chrono::DateTime<chrono::Utc>) {
        dispatch!(self, b => b.checkpoint_journal(at))
    }

    /// Journal entries with `seq > after_seq`, oldest first, at most `limit`.
    pub async fn read_journal(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        dispatch!(self, b => b.read_journal(after_seq, limit).await)
    }

    /// Queue an accepted alert with its pending deliveries, and set or clear notifier state keys
    /// in the same transaction; the future resolves to the alert's id once it is durable.
    pub fn insert_alert(
        &self,
        record: AlertRecord,
        state: Vec<(String, Option<String>)>,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        dispatch!(self, b => b.write_alert(sqlite::AlertOp::Insert { record, state }))
    }

    /// Queue the new state of one delivery; resolves once durable.
    pub fn update_delivery(
        &self,
        alert_id: u64,
        delivery: DeliveryRecord,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        dispatch!(self, b => b.write_alert(sqlite::AlertOp::Delivery { alert_id, delivery }))
    }

    /// Set (`Some`) or clear (`None`) notifier state keys; resolves once durable.
    pub fn set_notify_state(
        &self,
        state: Vec<(String, Option<String>)>,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'static {
        dispatch!(self, b => b.write_alert(sqlite::AlertOp::State(state)))
    }

    /// Alerts with their deliveries, as `which` says, at most `limit`.
    pub async fn alerts(
        &self,
        which: AlertQuery,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        dispatch!(self, b => b.select_alerts(which, limit).await)
    }

    /// The notifier's state keys.
    pub async fn notify_state(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        dispatch!(self, b => b.notify_state().await)
    }

    /// The highest alert id stored (0 when none).
    pub async fn max_alert_id(&self) -> Result<u64, StoreError> {
        dispatch!(self, b => b.max_alert_id().await)
    }

    /// Record the Truth version now in force (durable when this returns).
    pub async fn put_truth(
        &self,
        version: String,
        at: chrono::DateTime<chrono::Utc>,
        document: serde_json::Value,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.put_truth(version, at, document).await)
    }

    /// The Truth version last put in force: version, when, document.
    pub async fn latest_truth(
        &self,
    ) -> Result<Option<(String, chrono::DateTime<chrono::Utc>, serde_json::Value)>, StoreError>
    {
        dispatch!(self, b => b.latest_truth().await)
    }

    /// Counts and writer figures for `/status`.
    /// Record a new deploy run; its id.
    pub async fn insert_deploy_run(&self, run: DeployRun) -> Result<u64, StoreError> {
        dispatch!(self, b => b.insert_deploy_run(run).await)
    }

    /// Queue a deploy run's event at once (in order with every other write); the future
    /// resolves when it is durable.
    pub fn append_deploy_event(
        &self,
        event: DeployEvent,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        dispatch!(self, b => b.append_deploy_event(event))
    }

    /// The newest `limit` deploy runs (of `plan`, or of every plan), newest first.
    pub async fn deploy_runs(
        &self,
        plan: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeployRun>, StoreError> {
        dispatch!(self, b => b.deploy_runs(plan, limit).await)
    }

    /// One deploy run, if there is one with that id.
    pub async fn deploy_run(&self, id: u64) -> Result<Option<DeployRun>, StoreError> {
        dispatch!(self, b => b.deploy_run(id).await)
    }

    /// Deploy runs that have not ended (an engine stopped during them), oldest first.
    pub async fn unfinished_deploy_runs(&self) -> Result<Vec<DeployRun>, StoreError> {
        dispatch!(self, b => b.unfinished_deploy_runs().await)
    }

    /// A deploy run's events, in order.
    pub async fn deploy_events(&self, run_id: u64) -> Result<Vec<DeployEvent>, StoreError> {
        dispatch!(self, b => b.deploy_events(run_id).await)
    }

    /// The newest `limit` deploy events of `kind` across runs, newest first.
    pub async fn deploy_events_of_kind(
        &self,
        kind: String,
        limit: usize,
    ) -> Result<Vec<DeployEvent>, StoreError> {
        dispatch!(self, b => b.deploy_events_of_kind(kind, limit).await)
    }

    /// The version each target of `plan` runs, as its deploys and rollbacks left it.
    pub async fn deploy_targets(
        &self,
        plan: String,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        dispatch!(self, b => b.deploy_targets(plan).await)
    }

    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        dispatch!(self, b => b.stats().await)
    }

    /// Round-trip to the database through both a reader and the writer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, b => b.ping().await)
    }

    /// Finish queued writes and stop the writer. Later writes fail with `Closed`.
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }
}

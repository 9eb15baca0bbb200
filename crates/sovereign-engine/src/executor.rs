//! The executor: the task registry, task CRUD, and the run loop.
//!
//! A run goes: overlap check → attempt (handler under timeout, cancellable at shutdown) → store
//! the attempt's result → retry with backoff while attempts remain. Every attempt is a stored
//! result. The registry is a small map behind a mutex held only for lookups and bookkeeping,
//! never across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::task::{Overlap, RunResult, RunStatus, Task, TaskId, TaskSpec, Trigger};
use sovereign_core::webhook::DedupWindow;
use sovereign_store::{ResultFilter, Store, StoreError, StoreStats, TaskRow};
use tokio::sync::{watch, Notify};

use crate::config::Settings;
use crate::handlers;
use crate::notifier::Notifier;
use crate::scheduler::{Fire, Scheduler};
use crate::signals::SignalDedup;
use crate::supervisor::Supervisor;
use crate::trading::{Trading, TradingError};
use crate::truth::TruthSource;

/// Every way an engine operation can fail, each with a fixed meaning for the API.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{what} not found")]
    NotFound { what: String, field: &'static str },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("task {0} is disabled")]
    Disabled(String),
    #[error("webhook from {source_name:?} refused: {reason}")]
    Unauthorized {
        source_name: String,
        code: &'static str,
        reason: String,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("store: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Trading(TradingError),
}

impl From<TradingError> for EngineError {
    fn from(e: TradingError) -> Self {
        EngineError::Trading(e)
    }
}

impl From<Invalid> for EngineError {
    fn from(e: Invalid) -> Self {
        EngineError::Invalid(e)
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => EngineError::Conflict(what),
            StoreError::NotFound(what) => EngineError::NotFound {
                what,
                field: "task_id",
            },
            StoreError::Closed => EngineError::ShuttingDown,
            other => EngineError::Store(other),
        }
    }
}

fn task_not_found(id: &str) -> EngineError {
    EngineError::NotFound {
        what: format!("task {id:?}"),
        field: "task_id",
    }
}

/// The last run of a task, as `/tasks` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub result_id: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl From<&RunResult> for LastRun {
    fn from(r: &RunResult) -> Self {
        LastRun {
            result_id: r.result_id.clone(),
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// A task with its live state.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub task: Arc<Task>,
    pub running: bool,
    pub last_run: Option<LastRun>,
    pub next_run: Option<DateTime<Utc>>,
}

struct Slot {
    task: Arc<Task>,
    running: u32,
    last_run: Option<LastRun>,
    /// Runs that failed in a row (the alert rule's count).
    failures: u32,
}

/// What started a run and with what data.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub trigger: Trigger,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub webhook_id: Option<String>,
    /// The trigger's data (webhook `data`), available to templates as `trigger.data`.
    pub data: Value,
}

impl RunContext {
    pub fn manual() -> RunContext {
        RunContext {
            trigger: Trigger::Manual,
            scheduled_for: None,
            webhook_id: None,
            data: Value::Null,
        }
    }
}

/// Counts for `/status`.
#[derive(Debug, Clone)]
pub struct Status {
    pub started_at: DateTime<Utc>,
    pub uptime: Duration,
    pub tasks: usize,
    pub enabled: usize,
    pub scheduled: usize,
    pub running: usize,
    pub scheduler_running: bool,
    pub fired: u64,
    pub next_fire: Option<DateTime<Utc>>,
    pub store: StoreStats,
    pub store_location: String,
}

/// Shutdown plumbing: stop accepting, count in-flight runs, cancel the stragglers.
struct Lifecycle {
    accepting: AtomicBool,
    inflight: AtomicUsize,
    idle: Notify,
    cancel: watch::Sender<bool>,
}

struct InflightGuard<'a>(&'a Lifecycle);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The engine. Shared as `Arc<Engine>` by the HTTP layer and the background tasks.
pub struct Engine {
    pub(crate) settings: Settings,
    pub(crate) store: Store,
    registry: Mutex<BTreeMap<TaskId, Slot>>,
    scheduler: Scheduler,
    pub(crate) http: reqwest::Client,
    pub(crate) dedup: Mutex<DedupWindow>,
    started_at: DateTime<Utc>,
    started: Instant,
    lifecycle: Lifecycle,
    trading: Trading,
    notifier: Notifier,
    supervisor: Supervisor,
    truth: TruthSource,
    pub(crate) signal_dedup: SignalDedup,
}

impl Engine {
    /// Load tasks from the store, apply the config's tasks, start the scheduler and the pruner.
    pub async fn start(settings: Settings, store: Store) -> Result<Arc<Engine>, EngineError> {
        let rows = store.list_tasks().await?;
        let latest = store.latest_results().await?;
        let since =
            Utc::now() - chrono::Duration::from_std(settings.dedup_window).unwrap_or_default();
        let deliveries = store.recent_deliveries(since).await?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("sovereign/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Store(StoreError::Database(format!("http client: {e}"))))?;
        let notifier = Notifier::start(
            settings.notify.clone(),
            store.clone(),
            http.clone(),
            &settings.data_dir,
        )
        .await?;

        let truth = TruthSource::start(
            settings.truth_dir.clone(),
            settings.truth_interval,
            store.clone(),
        )
        .await;
        let env_source = truth.clone();
        let supervisor = Supervisor::start(
            settings.supervisor.clone(),
            crate::supervisor::Context {
                store: store.clone(),
                notifier: notifier.clone(),
                http: http.clone(),
                data_dir: settings.data_dir.clone(),
                engine_url: settings.url.clone(),
                truth_env: Arc::new(move |component: &str| env_source.env(component)),
            },
        );
        // Services whose component changed restart (when their policy says so).
        let mut changes = truth.subscribe();
        let restarter = supervisor.clone();
        tokio::spawn(async move {
            while let Ok(change) = changes.recv().await {
                restarter.truth_changed(change.diff.affected(&change.truth.components));
            }
        });
        let (trading, replayed) =
            Trading::start(settings.trading.clone(), store.clone(), notifier.clone())
                .await
                .map_err(|e| {
                    EngineError::Store(StoreError::Corrupt(format!("trading journal: {e}")))
                })?;
        if replayed > 0 {
            tracing::info!(events = replayed, "trading state rebuilt from the journal");
        }
        if settings.synthetic_feed {
            tokio::spawn(crate::feed::run(
                trading.clone(),
                settings.trading.instruments.clone(),
                settings.feed_interval,
                Utc::now().timestamp_micros() as u64,
            ));
        }
        let engine = Arc::new_cyclic(|weak: &std::sync::Weak<Engine>| {
            let weak = weak.clone();
            let scheduler = Scheduler::spawn(move |fire: Fire| {
                if let Some(engine) = weak.upgrade() {
                    engine.spawn_scheduled(fire);
                }
            });
            let mut dedup = DedupWindow::new(settings.dedup_window);
            for (source, id, at) in &deliveries {
                dedup.admit(source, id, *at);
            }
            Engine {
                store: store.clone(),
                registry: Mutex::new(BTreeMap::new()),
                scheduler,
                http,
                dedup: Mutex::new(dedup),
                started_at: Utc::now(),
                started: Instant::now(),
                lifecycle: Lifecycle {
                    accepting: AtomicBool::new(true),
                    inflight: AtomicUsize::new(0),
                    idle: Notify::new(),
                    cancel: watch::channel(false).0,
                },
                signal_dedup: SignalDedup::new(settings.signals.iter()),
                settings,
                trading,
                notifier,
                supervisor,
                truth,
            }
        });

        let now = Utc::now();
        let mut cursors = BTreeMap::new();
        for row in rows {
            let id = row.spec.task_id.clone();
            match Task::validate(
                row.spec,
                &engine.settings.calendars,
                &engine.settings.handler_rules,
                row.created_at,
                row.updated_at,
            ) {
                Ok(task) => {
                    cursors.insert(task.id.clone(), row.schedule_cursor);
                    engine.registry().insert(
                        task.id.clone(),
                        Slot {
                            task: Arc::new(task),
                            running: 0,
                            last_run: None,
                            failures: 0,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "stored task no longer valid under this config; not loaded")
                }
            }
        }
        for spec in engine.settings.tasks.clone() {
            let id = spec.task_id.clone();
            let existing = TaskId::parse(&id)
                .ok()
                .and_then(|tid| engine.registry().get(&tid).map(|s| s.task.created_at));
            let task = Task::validate(
                spec,
                &engine.settings.calendars,
                &engine.settings.handler_rules,
                existing.unwrap_or(now),
                now,
            )
            .map_err(|e| e.within(&format!("tasks.{id}")))?;
            let cursor = cursors.get(&task.id).copied().flatten();
            engine.store.upsert_task(row_of(&task, cursor)).await?;
            cursors.insert(task.id.clone(), cursor);
            let mut reg = engine.registry();
            let last_run = reg.remove(&task.id).and_then(|s| s.last_run);
            reg.insert(
                task.id.clone(),
                Slot {
                    task: Arc::new(task),
                    running: 0,
                    last_run,
                    failures: 0,
                },
            );
        }
        {
            let mut reg = engine.registry();
            for r in &latest {
                if let Some(slot) = reg.get_mut(&r.task_id) {
                    slot.last_run = Some(LastRun::from(r));
                }
            }
            for (id, slot) in reg.iter() {
                engine.scheduler.upsert(
                    slot.task.clone(),
                    cursors.get(id).copied().flatten(),
                    true,
                );
            }
        }
        tokio::spawn(prune_loop(Arc::downgrade(&engine)));
        let config = engine
            .settings
            .source
            .as_ref()
            .map(|(path, sha256)| json!({"path": path, "sha256": sha256}));
        engine.audit("engine", "engine.started", json!({"version": env!("CARGO_PKG_VERSION"), "config": config, "tasks": engine.registry().len(), "trading_events_replayed": replayed}));
        Ok(engine)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Put an action on the audit trail. Queued at once behind the action's own writes (so it
    /// commits with or right after them); not awaited.
    pub fn audit(&self, actor: &str, kind: &str, payload: Value) {
        audit(&self.store, actor, kind, payload);
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    pub fn truth(&self) -> &TruthSource {
        &self.truth
    }

    pub fn trading(&self) -> &Trading {
        &self.trading
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<TaskId, Slot>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single insert/remove), so a poisoned lock is safe to keep using.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// All tasks, ordered by id, with last and next run.
    pub async fn tasks(&self) -> Vec<TaskView> {
        let snapshot = self.scheduler.snapshot().await;
        self.registry()
            .values()
            .map(|slot| TaskView {
                task: slot.task.clone(),
                running: slot.running > 0,
                last_run: slot.last_run.clone(),
                next_run: snapshot.next.get(&slot.task.id).copied(),
            })
            .collect()
    }

    pub async fn task(&self, id: &str) -> Result<TaskView, EngineError> {
        let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
        let next = self.scheduler.snapshot().await.next.get(&tid).copied();
        let reg = self.registry();
        let slot = reg.get(&tid).ok_or_else(|| task_not_found(id))?;
        Ok(TaskView {
            task: slot.task.clone(),
            running: slot.running > 0,
            last_run: slot.last_run.clone(),
            next_run: next,
        })
    }

    fn validate(&self, spec: TaskSpec, created_at: DateTime<Utc>) -> Result<Task, Invalid> {
        Task::validate(
            spec,
            &self.settings.calendars,
            &self.settings.handler_rules,
            created_at,
            Utc::now(),
        )
    }

    /// Create a task. 409 if the id exists; nothing is stored unless it is valid.
    pub async fn register(&self, spec: TaskSpec) -> Result<TaskView, EngineError> {
        self.ensure_accepting()?;
        let task = Arc::new(self.validate(spec, Utc::now())?);
        if self.registry().contains_key(&task.id) {
            return Err(EngineError::Conflict(format!(
                "task {:?}",
                task.id.as_str()
            )));
        }
        self.store.insert_task(row_of(&task, None)).await?;
        self.install(task.clone(), None);
        self.audit("api", "task.registered", json!({"task_id": task.id.as_str(), "handler": task.handler.as_str(), "enabled": task.enabled}));
        self.task(task.id.as_str()).await
    }

    /// Replace a task's definition (keeps its creation time and run history).
    pub async fn update(&self, id: &str, spec: TaskSpec) -> Result<TaskView, EngineError> {
        self.ensure_accepting()?;
        let created_at = {
            let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
            let reg = self.registry();
            reg.get(&tid)
                .ok_or_else(|| task_not_found(id))?
                .task
                .created_at
        };
        if spec.task_id != id {
            return Err(Invalid::new(
                "task_id_mismatch",
                "task_id",
                format!(
                    "body task_id {:?} differs from the URL's {id:?}",
                    spec.task_id
                ),
            )
            .into());
        }
        let task = Arc::new(self.validate(spec, created_at)?);
        self.store.update_task(row_of(&task, None)).await?;
        self.install(task.clone(), None);
        self.audit(
            "api",
            "task.updated",
            json!({"task_id": id, "handler": task.handler.as_str(), "enabled": task.enabled}),
        );
        self.task(id).await
    }

    /// Enable or disable a task.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<TaskView, EngineError> {
        let mut spec = self.task(id).await?.task.spec();
        spec.enabled = enabled;
        self.update(id, spec).await
    }

    pub async fn delete(&self, id: &str) -> Result<(), EngineError> {
        self.ensure_accepting()?;
        let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
        if !self.registry().contains_key(&tid) {
            return Err(task_not_found(id));
        }
        self.store.delete_task(id).await?;
        self.registry().remove(&tid);
        self.scheduler.remove(tid);
        self.audit("api", "task.deleted", json!({ "task_id": id }));
        Ok(())
    }

    fn install(&self, task: Arc<Task>, cursor: Option<DateTime<Utc>>) {
        {
            let mut reg = self.registry();
            let (running, last_run) = reg
                .remove(&task.id)
                .map(|s| (s.running, s.last_run))
                .unwrap_or((0, None));
            reg.insert(
                task.id.clone(),
                Slot {
                    task: task.clone(),
                    running,
                    last_run,
                    failures: 0,
                },
            );
        }
        self.scheduler.upsert(task, cursor, false);
    }

    fn ensure_accepting(&self) -> Result<(), EngineError> {
        if self.lifecycle.accepting.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(EngineError::ShuttingDown)
        }
    }

    /// Whether a task exists and is enabled (webhook routing).
    pub(crate) fn runnable(&self, id: &str) -> Option<Arc<Task>> {
        let tid = TaskId::parse(id).ok()?;
        self.registry()
            .get(&tid)
            .filter(|s| s.task.enabled)
            .map(|s| s.task.clone())
    }

    /// Run a task now and return its final stored result.
    pub async fn execute(&self, id: &str, ctx: RunContext) -> Result<RunResult, EngineError> {
        let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
        let task = self
            .registry()
            .get(&tid)
            .map(|s| s.task.clone())
            .ok_or_else(|| task_not_found(id))?;
        if !task.enabled && ctx.trigger != Trigger::Manual {
            return Err(EngineError::Disabled(id.to_string()));
        }
        self.run(task, ctx).await
    }

    /// Start a run in the background (scheduler and webhooks).
    pub(crate) fn spawn_run(self: &Arc<Self>, task: Arc<Task>, ctx: RunContext) {
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.run(task.clone(), ctx).await {
                tracing::warn!(task = %task.id, error = %e, "run not recorded");
            }
        });
    }

    fn spawn_scheduled(self: &Arc<Self>, fire: Fire) {
        let task = self.registry().get(&fire.task_id).map(|s| s.task.clone());
        if let Some(task) = task {
            self.spawn_run(
                task,
                RunContext {
                    trigger: Trigger::Schedule,
                    scheduled_for: Some(fire.scheduled_for),
                    webhook_id: None,
                    data: Value::Null,
                },
            );
        }
    }

    async fn run(&self, task: Arc<Task>, ctx: RunContext) -> Result<RunResult, EngineError> {
        self.ensure_accepting()?;
        self.lifecycle.inflight.fetch_add(1, Ordering::AcqRel);
        let _guard = InflightGuard(&self.lifecycle);

        let admitted = {
            let mut reg = self.registry();
            match reg.get_mut(&task.id) {
                None => return Err(task_not_found(task.id.as_str())),
                Some(slot) if slot.running > 0 && task.policy.overlap == Overlap::Skip => false,
                Some(slot) => {
                    slot.running += 1;
                    true
                }
            }
        };
        if !admitted {
            let now = Utc::now();
            let result = self.result(
                &task,
                &ctx,
                1,
                now,
                RunStatus::Skipped,
                json!({"reason": "previous run still in progress"}),
                Some("skipped: previous run still in progress".into()),
            );
            return self.record(result).await;
        }

        let outcome = self.attempts(&task, &ctx).await;
        let failures = {
            let mut reg = self.registry();
            reg.get_mut(&task.id).map(|slot| {
                slot.running = slot.running.saturating_sub(1);
                match outcome.as_ref().map(|r| r.status) {
                    Ok(RunStatus::Success) => slot.failures = 0,
                    Ok(RunStatus::Skipped) => {}
                    _ => slot.failures += 1,
                }
                slot.failures
            })
        };
        let threshold = self.notifier.task_failures();
        if let (Some(n), Ok(last)) = (failures, &outcome) {
            if threshold > 0 && n > 0 && n % threshold == 0 {
                self.alert_task_failures(&task, n, last).await;
            }
        }
        outcome
    }

    /// The alert rule "a task failed N runs in a row" → P1 (once per dedup window per task).
    async fn alert_task_failures(&self, task: &Task, n: u32, last: &RunResult) {
        let alert = sovereign_core::notify::Alert {
            priority: sovereign_core::notify::Priority::P1,
            source: "tasks".into(),
            title: sovereign_core::notify::truncate_chars(
                &format!("task {} failed {n} runs in a row", task.id),
                sovereign_core::notify::MAX_TITLE,
            ),
            message: last.error.clone().unwrap_or_default(),
            context: json!({"task_id": task.id.as_str(), "failures": n, "result_id": last.result_id}),
            dedup_key: Some(format!("task-failed:{}", task.id)),
        };
        if let Err(e) = self.notifier.raise(alert, "engine").await {
            tracing::error!(task = %task.id, error = %e, "task-failure alert not raised");
        }
    }

    async fn attempts(&self, task: &Arc<Task>, ctx: &RunContext) -> Result<RunResult, EngineError> {
        let template_ctx = json!({
            "task_id": task.id.as_str(),
            "name": task.name,
            "payload": task.payload,
            "trigger": {
                "kind": ctx.trigger.as_str(),
                "data": ctx.data,
                "webhook_id": ctx.webhook_id,
                "scheduled_for": ctx.scheduled_for.map(|t| t.to_rfc3339()),
            },
        });
        let max_attempts = task.policy.retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            let started_at = Utc::now();
            let mut cancel = self.lifecycle.cancel.subscribe();
            let outcome = tokio::select! {
                r = tokio::time::timeout(task.policy.timeout, handlers::run(self, task, &template_ctx)) => match r {
                    Ok(Ok(output)) => (RunStatus::Success, output, None),
                    Ok(Err(f)) => (RunStatus::Error, f.output, Some(f.message)),
                    Err(_) => (RunStatus::Timeout, Value::Null,
                        Some(format!("timed out after {}", humanize(task.policy.timeout)))),
                },
                _ = cancel.wait_for(|c| *c) => (RunStatus::Error, Value::Null,
                    Some("canceled: the engine shut down before the run finished".into())),
            };
            let (status, output, error) = outcome;
            let result = self.result(task, ctx, attempt, started_at, status, output, error);
            let stored = self.record(result).await?;
            let canceled = *self.lifecycle.cancel.borrow();
            if status == RunStatus::Success || attempt >= max_attempts || canceled {
                return Ok(stored);
            }
            let delay = task.policy.backoff.delay(attempt);
            tracing::info!(task = %task.id, attempt, ?delay, "attempt failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.wait_for(|c| *c) => return Ok(stored),
            }
            attempt += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn result(
        &self,
        task: &Task,
        ctx: &RunContext,
        attempt: u32,
        started_at: DateTime<Utc>,
        status: RunStatus,
        output: Value,
        error: Option<String>,
    ) -> RunResult {
        RunResult {
            result_id: uuid::Uuid::now_v7().to_string(),
            task_id: task.id.clone(),
            trigger: ctx.trigger,
            status,
            output,
            error,
            started_at,
            finished_at: Utc::now(),
            attempt,
            scheduled_for: ctx.scheduled_for,
            webhook_id: ctx.webhook_id.clone(),
        }
    }

    async fn record(&self, result: RunResult) -> Result<RunResult, EngineError> {
        self.store.insert_result(result.clone()).await?;
        if let Some(slot) = self.registry().get_mut(&result.task_id) {
            slot.last_run = Some(LastRun::from(&result));
        }
        match result.status {
            RunStatus::Success => tracing::debug!(task = %result.task_id, "run succeeded"),
            status => {
                tracing::info!(task = %result.task_id, status = status.as_str(), error = ?result.error, "run did not succeed")
            }
        }
        Ok(result)
    }

    pub async fn results(&self, filter: ResultFilter) -> Result<Vec<RunResult>, EngineError> {
        Ok(self.store.list_results(filter).await?)
    }

    /// Store and engine health: `Err` carries the reason the engine is unhealthy.
    pub async fn health(&self) -> Result<(), String> {
        if !self.lifecycle.accepting.load(Ordering::Acquire) {
            return Err("shutting down".into());
        }
        self.store
            .ping()
            .await
            .map_err(|e| format!("store unusable: {e}"))
    }

    pub async fn status(&self) -> Result<Status, EngineError> {
        let snapshot = self.scheduler.snapshot().await;
        let store = self.store.stats().await?;
        let reg = self.registry();
        Ok(Status {
            started_at: self.started_at,
            uptime: self.started.elapsed(),
            tasks: reg.len(),
            enabled: reg.values().filter(|s| s.task.enabled).count(),
            scheduled: snapshot.next.len(),
            running: reg.values().map(|s| s.running as usize).sum(),
            scheduler_running: snapshot.running,
            fired: snapshot.fired,
            next_fire: snapshot.next.values().min().copied(),
            store,
            store_location: self.store.location(),
        })
    }

    /// Stop: no new runs, let in-flight runs finish within `grace`, cancel the rest (recording
    /// them as canceled), then flush and close the store.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self
            .store
            .append_audit(Utc::now(), "engine", "engine.stopping", json!({}))
            .await;
        self.lifecycle.accepting.store(false, Ordering::Release);
        self.scheduler.stop().await;
        let waited = tokio::time::timeout(grace, self.wait_idle()).await;
        if waited.is_err() {
            let n = self.lifecycle.inflight.load(Ordering::Acquire);
            tracing::warn!(runs = n, "grace period over; canceling in-flight runs");
            let _ = self.lifecycle.cancel.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wait_idle()).await;
        }
        // Services stop dependents first, each within its stop timeout.
        self.supervisor.shutdown().await;
        // Alerts still pending stay in the outbox for the next start.
        self.notifier.stop();
        self.store.close().await;
    }

    async fn wait_idle(&self) {
        loop {
            let idle = self.lifecycle.idle.notified();
            if self.lifecycle.inflight.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Put an action on the audit trail: queued at once behind the writes already queued, not
/// awaited (a failure is logged).
pub(crate) fn audit(store: &Store, actor: &str, kind: &str, payload: Value) {
    let pending = store.append_audit(Utc::now(), actor, kind, payload);
    tokio::spawn(async move {
        if let Err(e) = pending.await {
            tracing::error!(error = %e, "audit record not written");
        }
    });
}

pub(crate) fn row_of(task: &Task, cursor: Option<DateTime<Utc>>) -> TaskRow {
    TaskRow {
        spec: task.spec(),
        created_at: task.created_at,
        updated_at: task.updated_at,
        schedule_cursor: cursor,
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Periodically delete results beyond the configured age and count.
async fn prune_loop(engine: std::sync::Weak<Engine>) {
    let interval = match engine.upgrade() {
        Some(e) => e.settings.prune_interval,
        None => return,
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if !engine.lifecycle.accepting.load(Ordering::Acquire) {
            return;
        }
        let older_than = engine
            .settings
            .results_max_age
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() - d);
        match engine
            .store
            .prune_results(older_than, engine.settings.results_max_count)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned old results"),
            Err(e) => tracing::warn!(error = %e, "pruning results failed"),
        }
    }
}

/// For tests and benches: a filter with the API's defaults.
pub fn default_filter() -> ResultFilter {
    ResultFilter {
        task_id: None,
        since: None,
        limit: 100,
    }
}

//! The executor: the task registry, task CRUD, and the run loop.
//!
//! A run goes: overlap check → attempt (the task's prepared handler action under its timeout,
//! cancellable at shutdown) → store the attempt's result → retry with backoff while attempts
//! remain. Every attempt is a stored result. The registry is a small map behind a mutex held
//! only for lookups and bookkeeping, never across an `.await`. The scheduler (`scheduler`) is
//! an actor of its own that hands due fires back here.
//!
//! The only way in is the [`Executor`] handle; it knows the handlers through their context of
//! handles, never the engine root.

mod scheduler;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::notify::{truncate_chars, Alert, Priority, MAX_TITLE};
use sovereign_core::task::{Overlap, RunResult, RunStatus, Task, TaskId, TaskSpec, Trigger};
use sovereign_store::{ResultFilter, Store, StoreError, StoreStats, TaskRow};
use tokio::sync::{broadcast, watch, Notify};

use crate::audit::Audit;
use crate::handlers::{self, Action};
use crate::notify::Notifier;
use crate::support::{lock, Tasks};
use scheduler::{Fire, Scheduler};
use settings::ExecutorSettings;

/// Every way an executor operation can fail, each with a fixed meaning for the API.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{0}")]
    Invalid(Invalid),
    #[error("task {0:?} not found")]
    UnknownTask(String),
    #[error("task {0:?} already exists")]
    Exists(String),
    #[error("task {0} is disabled")]
    Disabled(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<Invalid> for ExecutorError {
    fn from(e: Invalid) -> Self {
        ExecutorError::Invalid(e)
    }
}

impl From<StoreError> for ExecutorError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => ExecutorError::ShuttingDown,
            other => ExecutorError::Store(other),
        }
    }
}

/// A store error on task `id`'s row: the store's conflict and not-found (a race with another
/// request) mean what they say for that task.
fn task_row(id: &str) -> impl Fn(StoreError) -> ExecutorError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => ExecutorError::Exists(id.to_string()),
        StoreError::NotFound(_) => task_not_found(id),
        other => other.into(),
    }
}

fn task_not_found(id: &str) -> ExecutorError {
    ExecutorError::UnknownTask(id.to_string())
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

/// A validated task with its handler payload parsed once, at registration.
#[derive(Clone)]
pub struct Prepared {
    pub task: Arc<Task>,
    action: Arc<Action>,
}

struct Slot {
    task: Prepared,
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

/// The executor handle. Cheap to clone.
#[derive(Clone)]
pub struct Executor(Arc<Inner>);

/// What every clone of the handle shares.
pub struct Inner {
    settings: ExecutorSettings,
    store: Store,
    audit: Audit,
    notifier: Notifier,
    handlers: handlers::Context,
    tasks: Tasks,
    registry: Mutex<BTreeMap<TaskId, Slot>>,
    scheduler: Scheduler,
    started_at: DateTime<Utc>,
    started: Instant,
    lifecycle: Lifecycle,
    /// Each result once it is stored, for `/sse/results`.
    results: broadcast::Sender<RunResult>,
}

impl std::ops::Deref for Executor {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Executor {
    /// Load the stored tasks, create or replace the config's, and start the scheduler and the
    /// results pruner. A config task that does not validate stops the start.
    pub async fn start(
        settings: ExecutorSettings,
        store: Store,
        audit: Audit,
        notifier: Notifier,
        handlers: handlers::Context,
        tasks: Tasks,
    ) -> Result<Executor, ExecutorError> {
        let rows = store.list_tasks().await?;
        let latest = store.latest_results().await?;
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let scheduler = Scheduler::spawn(&tasks, move |fire: Fire| {
                if let Some(inner) = weak.upgrade() {
                    Executor(inner).spawn_scheduled(fire);
                }
            });
            Inner {
                settings,
                store,
                audit,
                notifier,
                handlers,
                tasks,
                registry: Mutex::new(BTreeMap::new()),
                scheduler,
                started_at: Utc::now(),
                started: Instant::now(),
                lifecycle: Lifecycle {
                    accepting: AtomicBool::new(true),
                    inflight: AtomicUsize::new(0),
                    idle: Notify::new(),
                    cancel: watch::channel(false).0,
                },
                results: broadcast::channel(256).0,
            }
        });
        let executor = Executor(inner);

        let now = Utc::now();
        let mut cursors = BTreeMap::new();
        for row in rows {
            let id = row.spec.task_id.clone();
            match executor.validate(row.spec, row.created_at, row.updated_at) {
                Ok(task) => {
                    cursors.insert(task.task.id.clone(), row.schedule_cursor);
                    executor
                        .registry()
                        .insert(task.task.id.clone(), Slot::new(task));
                }
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "stored task no longer valid under this config; not loaded")
                }
            }
        }
        for spec in executor.settings.tasks.clone() {
            let id = spec.task_id.clone();
            let existing = TaskId::parse(&id).ok().and_then(|tid| {
                executor
                    .registry()
                    .get(&tid)
                    .map(|s| s.task.task.created_at)
            });
            let task = executor
                .validate(spec, existing.unwrap_or(now), now)
                .map_err(|e| e.within(&format!("tasks.{id}")))?;
            let cursor = cursors.get(&task.task.id).copied().flatten();
            executor
                .store
                .upsert_task(row_of(&task.task, cursor))
                .await?;
            cursors.insert(task.task.id.clone(), cursor);
            let mut reg = executor.registry();
            let last_run = reg.remove(&task.task.id).and_then(|s| s.last_run);
            let mut slot = Slot::new(task);
            slot.last_run = last_run;
            reg.insert(slot.task.task.id.clone(), slot);
        }
        {
            let mut reg = executor.registry();
            for r in &latest {
                if let Some(slot) = reg.get_mut(&r.task_id) {
                    slot.last_run = Some(LastRun::from(r));
                }
            }
            for (id, slot) in reg.iter() {
                executor.scheduler.upsert(
                    slot.task.task.clone(),
                    cursors.get(id).copied().flatten(),
                    true,
                );
            }
        }
        executor.tasks.spawn(prune_loop(executor.clone()));
        Ok(executor)
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<TaskId, Slot>> {
        lock(&self.registry)
    }

    /// How many tasks are registered.
    pub fn count(&self) -> usize {
        self.registry().len()
    }

    /// All tasks, ordered by id, with last and next run.
    pub async fn tasks(&self) -> Vec<TaskView> {
        let snapshot = self.scheduler.snapshot().await;
        self.registry()
            .values()
            .map(|slot| slot.view(snapshot.next.get(&slot.task.task.id).copied()))
            .collect()
    }

    pub async fn task(&self, id: &str) -> Result<TaskView, ExecutorError> {
        let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
        let next = self.scheduler.snapshot().await.next.get(&tid).copied();
        let reg = self.registry();
        let slot = reg.get(&tid).ok_or_else(|| task_not_found(id))?;
        Ok(slot.view(next))
    }

    fn validate(
        &self,
        spec: TaskSpec,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<Prepared, Invalid> {
        let task = Task::validate(
            spec,
            &self.settings.calendars,
            self.handlers.rules(),
            created_at,
            updated_at,
        )?;
        let action = handlers::prepare(&self.handlers, &task)?;
        Ok(Prepared {
            task: Arc::new(task),
            action: Arc::new(action),
        })
    }

    /// Create a task. 409 if the id exists; nothing is stored unless it is valid.
    pub async fn register(&self, spec: TaskSpec) -> Result<TaskView, ExecutorError> {
        self.ensure_accepting()?;
        let now = Utc::now();
        let prepared = self.validate(spec, now, now)?;
        let task = prepared.task.clone();
        // A schedule that can never fire from now on (an `at` in the past) is refused.
        if let Some(s) = &task.schedule {
            s.check_fires(now, now).map_err(|e| e.within("schedule"))?;
        }
        if self.registry().contains_key(&task.id) {
            return Err(ExecutorError::Exists(task.id.to_string()));
        }
        self.store
            .insert_task(row_of(&task, None))
            .await
            .map_err(task_row(task.id.as_str()))?;
        self.install(prepared, None);
        self.audit.record(
            "api",
            "task.registered",
            json!({"task_id": task.id.as_str(), "handler": task.handler.as_str(), "enabled": task.enabled}),
        );
        self.task(task.id.as_str()).await
    }

    /// Replace a task's definition (keeps its creation time and run history).
    pub async fn update(&self, id: &str, spec: TaskSpec) -> Result<TaskView, ExecutorError> {
        self.ensure_accepting()?;
        let (created_at, old_schedule) = {
            let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
            let reg = self.registry();
            let task = &reg.get(&tid).ok_or_else(|| task_not_found(id))?.task.task;
            (
                task.created_at,
                task.schedule.as_ref().map(|s| s.spec().clone()),
            )
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
        let now = Utc::now();
        let prepared = self.validate(spec, created_at, now)?;
        let task = prepared.task.clone();
        // A changed schedule must fire again (enabling a one-shot that already fired is fine).
        if let Some(s) = task
            .schedule
            .as_ref()
            .filter(|s| Some(s.spec()) != old_schedule.as_ref())
        {
            s.check_fires(now, created_at)
                .map_err(|e| e.within("schedule"))?;
        }
        self.store
            .update_task(row_of(&task, None))
            .await
            .map_err(task_row(id))?;
        self.install(prepared, None);
        self.audit.record(
            "api",
            "task.updated",
            json!({"task_id": id, "handler": task.handler.as_str(), "enabled": task.enabled}),
        );
        self.task(id).await
    }

    /// Enable or disable a task.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<TaskView, ExecutorError> {
        let mut spec = self.task(id).await?.task.spec();
        spec.enabled = enabled;
        self.update(id, spec).await
    }

    pub async fn delete(&self, id: &str) -> Result<(), ExecutorError> {
        self.ensure_accepting()?;
        let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
        if !self.registry().contains_key(&tid) {
            return Err(task_not_found(id));
        }
        self.store.delete_task(id).await.map_err(task_row(id))?;
        self.registry().remove(&tid);
        self.scheduler.remove(tid);
        self.audit
            .record("api", "task.deleted", json!({ "task_id": id }));
        Ok(())
    }

    fn install(&self, prepared: Prepared, cursor: Option<DateTime<Utc>>) {
        let task = prepared.task.clone();
        {
            let mut reg = self.registry();
            let mut slot = Slot::new(prepared);
            if let Some(old) = reg.remove(&task.id) {
                slot.running = old.running;
                slot.last_run = old.last_run;
            }
            reg.insert(task.id.clone(), slot);
        }
        self.scheduler.upsert(task, cursor, false);
    }

    fn ensure_accepting(&self) -> Result<(), ExecutorError> {
        if self.lifecycle.accepting.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ExecutorError::ShuttingDown)
        }
    }

    /// The task, if it exists and is enabled (webhook routing).
    pub fn runnable(&self, id: &str) -> Option<Prepared> {
        let tid = TaskId::parse(id).ok()?;
        self.registry()
            .get(&tid)
            .filter(|s| s.task.task.enabled)
            .map(|s| s.task.clone())
    }

    /// Run a task now and return its final stored result.
    pub async fn execute(&self, id: &str, ctx: RunContext) -> Result<RunResult, ExecutorError> {
        let tid = TaskId::parse(id).map_err(|_| task_not_found(id))?;
        let task = self
            .registry()
            .get(&tid)
            .map(|s| s.task.clone())
            .ok_or_else(|| task_not_found(id))?;
        if !task.task.enabled && ctx.trigger != Trigger::Manual {
            return Err(ExecutorError::Disabled(id.to_string()));
        }
        self.run(task, ctx).await
    }

    /// Start a run in the background (scheduler and webhooks).
    pub fn spawn_run(&self, task: Prepared, ctx: RunContext) {
        let executor = self.clone();
        self.tasks.spawn(async move {
            let id = task.task.id.clone();
            if let Err(e) = executor.run(task, ctx).await {
                tracing::warn!(task = %id, error = %e, "run not recorded");
            }
        });
    }

    fn spawn_scheduled(&self, fire: Fire) {
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

    async fn run(&self, prepared: Prepared, ctx: RunContext) -> Result<RunResult, ExecutorError> {
        self.ensure_accepting()?;
        self.lifecycle.inflight.fetch_add(1, Ordering::AcqRel);
        let _guard = InflightGuard(&self.lifecycle);
        let task = prepared.task.clone();

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

        let outcome = self.attempts(&prepared, &ctx).await;
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
        let alert = Alert {
            priority: Priority::P1,
            source: "tasks".into(),
            title: truncate_chars(
                &format!("task {} failed {n} runs in a row", task.id),
                MAX_TITLE,
            ),
            message: last.error.clone().unwrap_or_default(),
            context: json!({"task_id": task.id.as_str(), "failures": n, "result_id": last.result_id}),
            dedup_key: Some(format!("task-failed:{}", task.id)),
        };
        if let Err(e) = self.notifier.raise(alert, "engine").await {
            tracing::error!(task = %task.id, error = %e, "task-failure alert not raised");
        }
    }

    async fn attempts(
        &self,
        prepared: &Prepared,
        ctx: &RunContext,
    ) -> Result<RunResult, ExecutorError> {
        let task = &prepared.task;
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
            let handler = handlers::run(&self.handlers, &prepared.action, task, &template_ctx);
            let outcome = tokio::select! {
                r = tokio::time::timeout(task.policy.timeout, handler) => match r {
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

    async fn record(&self, result: RunResult) -> Result<RunResult, ExecutorError> {
        self.store.insert_result(result.clone()).await?;
        if let Some(slot) = self.registry().get_mut(&result.task_id) {
            slot.last_run = Some(LastRun::from(&result));
        }
        if self.results.receiver_count() > 0 {
            let _ = self.results.send(result.clone());
        }
        match result.status {
            RunStatus::Success => tracing::debug!(task = %result.task_id, "run succeeded"),
            status => {
                tracing::info!(task = %result.task_id, status = status.as_str(), error = ?result.error, "run did not succeed")
            }
        }
        Ok(result)
    }

    /// Every run's result from now on, once it is stored.
    pub fn subscribe_results(&self) -> broadcast::Receiver<RunResult> {
        self.results.subscribe()
    }

    pub async fn results(&self, filter: ResultFilter) -> Result<Vec<RunResult>, ExecutorError> {
        Ok(self.store.list_results(filter).await?)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
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

    pub async fn status(&self) -> Result<Status, ExecutorError> {
        let snapshot = self.scheduler.snapshot().await;
        let store = self.store.stats().await?;
        let reg = self.registry();
        Ok(Status {
            started_at: self.started_at,
            uptime: self.started.elapsed(),
            tasks: reg.len(),
            enabled: reg.values().filter(|s| s.task.task.enabled).count(),
            scheduled: snapshot.next.len(),
            running: reg.values().map(|s| s.running as usize).sum(),
            scheduler_running: snapshot.running,
            fired: snapshot.fired,
            next_fire: snapshot.next.values().min().copied(),
            store,
            store_location: self.store.location(),
        })
    }

    /// Stop: no new runs, stop the scheduler and the pruner, let in-flight runs finish within
    /// `grace`, then cancel the rest (each recorded as canceled).
    pub async fn shutdown(&self, grace: Duration) {
        self.lifecycle.accepting.store(false, Ordering::Release);
        self.scheduler.stop().await;
        self.tasks.stop();
        let waited = tokio::time::timeout(grace, self.wait_idle()).await;
        if waited.is_err() {
            let n = self.lifecycle.inflight.load(Ordering::Acquire);
            tracing::warn!(runs = n, "grace period over; canceling in-flight runs");
            let _ = self.lifecycle.cancel.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wait_idle()).await;
        }
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

impl Slot {
    fn new(task: Prepared) -> Slot {
        Slot {
            task,
            running: 0,
            last_run: None,
            failures: 0,
        }
    }

    fn view(&self, next_run: Option<DateTime<Utc>>) -> TaskView {
        TaskView {
            task: self.task.task.clone(),
            running: self.running > 0,
            last_run: self.last_run.clone(),
            next_run,
        }
    }
}

fn row_of(task: &Task, cursor: Option<DateTime<Utc>>) -> TaskRow {
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

/// Periodically delete results beyond the configured age and count, until told to stop.
async fn prune_loop(executor: Executor) {
    let mut tick = tokio::time::interval(executor.settings.prune_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = executor.tasks.stopped() => return,
        }
        let older_than = executor
            .settings
            .results_max_age
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() - d);
        match executor
            .store
            .prune_results(older_than, executor.settings.results_max_count)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned old results"),
            Err(e) => tracing::warn!(error = %e, "pruning results failed"),
        }
    }
}

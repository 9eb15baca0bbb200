//! JSON wire types shared by several modules (tasks and results, webhooks, health, status); each
//! capability module keeps its own beside its handlers. Conversions from engine
//! values live here too, so handlers stay one line of glue each.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sovereign_core::schedule::ScheduleSpec;
use sovereign_core::task::{Missed, Overlap, PolicySpec, RunResult, TaskSpec};
use sovereign_engine::executor::TaskView;
use utoipa::{IntoParams, ToSchema};

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A task as registered (`POST /register`, `PUT /api/tasks/{id}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIn {
    /// 1-128 characters of letters, digits, `_ - . :`.
    pub task_id: String,
    pub name: String,
    /// `log_signal`, `http_request` or `command`.
    pub handler: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `{"cron","tz","calendar"}`, `{"every"}` or `{"at"}`.
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<ScheduleSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Per-run timeout, e.g. `"30s"` (default 30s).
    pub timeout: Option<String>,
    /// Extra attempts after a failure (default 0).
    pub retries: Option<u32>,
    /// First retry delay, doubling up to 60s (default `"1s"`).
    pub retry_backoff: Option<String>,
    /// `skip` (default) or `allow`.
    pub overlap: Option<String>,
    /// Missed runs after downtime: `run_once` (default) or `skip`.
    pub missed: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

impl From<TaskIn> for TaskSpec {
    fn from(t: TaskIn) -> TaskSpec {
        TaskSpec {
            task_id: t.task_id,
            name: t.name,
            handler: t.handler,
            payload: t.payload,
            schedule: t.schedule,
            enabled: t.enabled,
            policy: PolicySpec {
                timeout: t.timeout,
                retries: t.retries,
                retry_backoff: t.retry_backoff,
                overlap: t.overlap,
                missed: t.missed,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LastRunOut {
    pub result_id: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
}

/// A task with its last and next run. Secret-looking payload fields are masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskOut {
    pub task_id: String,
    pub name: String,
    pub handler: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<ScheduleSpec>,
    pub enabled: bool,
    pub timeout_ms: u64,
    pub retries: u32,
    pub overlap: String,
    pub missed: String,
    pub running: bool,
    pub last_run: Option<LastRunOut>,
    pub next_run: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TaskView> for TaskOut {
    fn from(v: TaskView) -> TaskOut {
        let t = &v.task;
        TaskOut {
            task_id: t.id.to_string(),
            name: t.name.clone(),
            handler: t.handler.as_str().to_string(),
            payload: sovereign_core::redact::redact(&t.payload),
            schedule: t.schedule.as_ref().map(|s| s.spec().clone()),
            enabled: t.enabled,
            timeout_ms: u64::try_from(t.policy.timeout.as_millis()).unwrap_or(u64::MAX),
            retries: t.policy.retries,
            overlap: match t.policy.overlap {
                Overlap::Skip => "skip",
                Overlap::Allow => "allow",
            }
            .into(),
            missed: match t.policy.missed {
                Missed::RunOnce => "run_once",
                Missed::Skip => "skip",
            }
            .into(),
            running: v.running,
            last_run: v.last_run.map(|l| LastRunOut {
                result_id: l.result_id,
                status: l.status.as_str().into(),
                started_at: ts(l.started_at),
                finished_at: ts(l.finished_at),
            }),
            next_run: v.next_run.map(ts),
            created_at: ts(t.created_at),
            updated_at: ts(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskOut>,
    pub count: usize,
}

/// One run of a task.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultOut {
    pub result_id: String,
    pub task_id: String,
    /// `manual`, `schedule` or `webhook`.
    pub trigger: String,
    /// `success`, `error`, `timeout` or `skipped`.
    pub status: String,
    #[schema(value_type = Object)]
    pub output: Value,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub attempt: u32,
    pub scheduled_for: Option<String>,
    pub webhook_id: Option<String>,
}

impl From<RunResult> for ResultOut {
    fn from(r: RunResult) -> ResultOut {
        ResultOut {
            duration_ms: r.duration_ms(),
            result_id: r.result_id,
            task_id: r.task_id.to_string(),
            trigger: r.trigger.as_str().into(),
            status: r.status.as_str().into(),
            output: sovereign_core::redact::redact(&r.output),
            error: r.error,
            started_at: ts(r.started_at),
            finished_at: ts(r.finished_at),
            attempt: r.attempt,
            scheduled_for: r.scheduled_for.map(ts),
            webhook_id: r.webhook_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultList {
    pub results: Vec<ResultOut>,
    pub count: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    pub task_id: Option<String>,
    /// RFC 3339; only results started at or after it.
    pub since: Option<String>,
    /// Default 100, at most 10000.
    pub limit: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteIn {
    pub task_id: String,
    /// Made available to templates as `trigger.data`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Value,
}

/// `POST /webhook` body. With `/webhook/{source}`, `source` may be omitted and a body without
/// `data` is taken as the data itself.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookIn {
    pub source: Option<String>,
    pub event: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Delivery id for dedup.
    pub id: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub status: String,
    pub webhook_id: String,
    pub duplicate: bool,
    pub tasks: Vec<String>,
    pub skipped: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub timestamp: String,
    pub phase: String,
    pub sovereignty: String,
    pub version: String,
    pub uptime_s: u64,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerOut {
    pub running: bool,
    pub scheduled_tasks: usize,
    pub fired: u64,
    pub next_fire: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCounts {
    pub total: usize,
    pub enabled: usize,
    pub running: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreOut {
    pub location: String,
    pub results: u64,
    pub webhooks: u64,
    /// Transactions committed since start; `writes / commits` is the group-commit factor.
    pub commits: u64,
    pub writes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOut {
    pub sovereignty_level: String,
    pub version: String,
    pub started_at: String,
    pub uptime_s: u64,
    pub scheduler: SchedulerOut,
    pub tasks: TaskCounts,
    pub store: StoreOut,
    pub feed: FeedOut,
}

/// Where prices come from.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedOut {
    /// Whether the synthetic random-walk feed runs (`[trading] synthetic_feed`).
    pub synthetic: bool,
    /// Symbols an external price (pushed, replayed) has reached: the synthetic feed no longer
    /// moves them.
    pub external_symbols: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookRecordOut {
    pub webhook_id: String,
    pub source: String,
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub received_at: String,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    pub reason: Option<String>,
    pub tasks: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookRecordOut>,
    pub count: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    pub limit: Option<String>,
}

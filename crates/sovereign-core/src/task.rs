//! Tasks: ids, handler kinds, run policies, and the validated `Task` the engine schedules and runs.
//!
//! Validation happens here, once, before anything is stored: a `Task` value is always
//! well-formed (valid id, known handler, handler payload of the right shape, compiled schedule).
//! Nothing here runs a handler; the engine does.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::calendar::Calendars;
use crate::egress::Egress;
use crate::error::Invalid;
use crate::notify::AlertSpec;
use crate::retry::Backoff;
use crate::schedule::{parse_duration, Schedule, ScheduleSpec};
use crate::template::is_template;
use crate::trading::fixed::{Fixed, Qty};
use crate::trading::instrument::{Instruments, Symbol};
use crate::trading::order::{NewOrder, OrderSpec};
use crate::trading::signal::Target;

/// A task id: 1–128 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

impl TaskId {
    pub fn parse(text: &str) -> Result<TaskId, Invalid> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
        if text.is_empty() || text.len() > 128 || !text.chars().all(ok_char) {
            return Err(Invalid::new(
                "invalid_task_id",
                "task_id",
                format!("task id {text:?} must be 1-128 characters of letters, digits, '_', '-', '.', ':'"),
            ));
        }
        Ok(TaskId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The built-in handlers available in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    LogSignal,
    HttpRequest,
    Command,
    PlaceOrder,
    Rebalance,
    Notify,
    Flatten,
    CancelAll,
    Hardstop,
}

impl HandlerKind {
    pub const ALL: [HandlerKind; 9] = [
        HandlerKind::LogSignal,
        HandlerKind::HttpRequest,
        HandlerKind::Command,
        HandlerKind::PlaceOrder,
        HandlerKind::Rebalance,
        HandlerKind::Notify,
        HandlerKind::Flatten,
        HandlerKind::CancelAll,
        HandlerKind::Hardstop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::LogSignal => "log_signal",
            HandlerKind::HttpRequest => "http_request",
            HandlerKind::Command => "command",
            HandlerKind::PlaceOrder => "place_order",
            HandlerKind::Rebalance => "rebalance",
            HandlerKind::Notify => "notify",
            HandlerKind::Flatten => "flatten",
            HandlerKind::CancelAll => "cancel_all",
            HandlerKind::Hardstop => "hardstop",
        }
    }

    pub fn parse(text: &str) -> Result<HandlerKind, Invalid> {
        if let Some(kind) = HandlerKind::ALL.into_iter().find(|k| k.as_str() == text) {
            return Ok(kind);
        }
        let known: Vec<&str> = HandlerKind::ALL.iter().map(|k| k.as_str()).collect();
        let planned = ["ai_signal"];
        let message = if planned.contains(&text) {
            format!(
                "handler {text:?} is not available in this build yet; known handlers: {}",
                known.join(", ")
            )
        } else {
            format!(
                "unknown handler {text:?}; known handlers: {}",
                known.join(", ")
            )
        };
        Err(Invalid::new("unknown_handler", "handler", message))
    }
}

/// Whether a run may start while the previous run of the same task is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// A trigger that arrives while the task runs is recorded as a `skipped` result.
    Skip,
    /// Runs may overlap.
    Allow,
}

/// What to do at start-up about scheduled runs missed while the engine was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Run once now (however many were missed), then follow the schedule.
    RunOnce,
    /// Forget them; follow the schedule from now.
    Skip,
}

/// What a scheduler does with a task when it (re)starts: at most one catch-up fire for runs
/// missed while the engine was down, then the next regular fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePlan {
    /// The first missed fire, to run now (only under [`Missed::RunOnce`]).
    pub catch_up: Option<DateTime<Utc>>,
    /// The next fire strictly after `now`.
    pub next: Option<DateTime<Utc>>,
}

/// Plan a task's schedule at start-up. `cursor` is the scheduled instant of the last fire that was
/// handled (none: never fired, so count from `anchor`, the task's creation).
pub fn resume_plan(
    schedule: &Schedule,
    missed: Missed,
    cursor: Option<DateTime<Utc>>,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ResumePlan {
    let first_unhandled = schedule.next_after(cursor.unwrap_or(anchor), anchor);
    let catch_up = match missed {
        Missed::RunOnce => first_unhandled.filter(|due| *due <= now),
        Missed::Skip => None,
    };
    ResumePlan {
        catch_up,
        next: schedule.next_after(now, anchor),
    }
}

/// Per-task run policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPolicy {
    pub timeout: Duration,
    /// Extra attempts after a failed one (0 = run once).
    pub retries: u32,
    pub backoff: Backoff,
    pub overlap: Overlap,
    pub missed: Missed,
}

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy {
            timeout: Duration::from_secs(30),
            retries: 0,
            backoff: Backoff::default(),
            overlap: Overlap::Skip,
            missed: Missed::RunOnce,
        }
    }
}

/// Run-policy fields as a user writes them; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub retry_backoff: Option<String>,
    pub overlap: Option<String>,
    pub missed: Option<String>,
}

impl PolicySpec {
    pub fn compile(&self) -> Result<RunPolicy, Invalid> {
        let mut policy = RunPolicy::default();
        if let Some(t) = &self.timeout {
            policy.timeout = positive_duration("timeout", t)?;
        }
        if let Some(r) = self.retries {
            if r > 100 {
                return Err(Invalid::new(
                    "invalid_retries",
                    "retries",
                    "retries must be between 0 and 100",
                ));
            }
            policy.retries = r;
        }
        if let Some(b) = &self.retry_backoff {
            policy.backoff.initial = parse_duration("retry_backoff", b)?;
            policy.backoff.max = policy.backoff.max.max(policy.backoff.initial);
        }
        if let Some(o) = &self.overlap {
            policy.overlap = match o.as_str() {
                "skip" => Overlap::Skip,
                "allow" => Overlap::Allow,
                _ => {
                    return Err(Invalid::new(
                        "invalid_overlap",
                        "overlap",
                        format!("overlap must be \"skip\" or \"allow\", not {o:?}"),
                    ))
                }
            };
        }
        if let Some(m) = &self.missed {
            policy.missed = match m.as_str() {
                "run_once" => Missed::RunOnce,
                "skip" => Missed::Skip,
                _ => {
                    return Err(Invalid::new(
                        "invalid_missed",
                        "missed",
                        format!("missed must be \"run_once\" or \"skip\", not {m:?}"),
                    ))
                }
            };
        }
        Ok(policy)
    }
}

/// A timeout: a duration as [`parse_duration`] takes it (at most 100 years), above zero — a zero
/// timeout would fail every run before it starts.
fn positive_duration(field: &str, text: &str) -> Result<Duration, Invalid> {
    let d = parse_duration(field, text)?;
    if d.is_zero() {
        return Err(Invalid::new(
            "invalid_duration",
            field,
            format!("`{text}` is zero; a timeout must be at least 1ms"),
        ));
    }
    Ok(d)
}

/// Everything a caller supplies to create or replace a task, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub task_id: String,
    pub name: String,
    pub handler: String,
    pub payload: Value,
    pub schedule: Option<ScheduleSpec>,
    pub enabled: bool,
    pub policy: PolicySpec,
}

/// What the engine's configuration allows handlers to do; consulted at validation time.
#[derive(Debug, Clone, Default)]
pub struct HandlerRules {
    /// Programs the `command` handler may run (exact argv[0] as written). Empty: `command` is off.
    pub command_allow: Vec<String>,
    /// What `place_order` and `rebalance` may trade.
    pub instruments: Instruments,
    /// Where `http_request` may send (a URL without a template is checked at registration).
    pub egress: Egress,
}

impl HandlerRules {
    pub fn check_command(&self, program: &str) -> Result<(), Invalid> {
        if self.command_allow.is_empty() {
            return Err(Invalid::new(
                "command_not_allowed",
                "payload.argv",
                "the command handler is off: list programs under [handlers.command] allow in the config",
            ));
        }
        if !self.command_allow.iter().any(|p| p == program) {
            return Err(Invalid::new(
                "command_not_allowed",
                "payload.argv",
                format!("program {program:?} is not in [handlers.command] allow"),
            ));
        }
        Ok(())
    }
}

/// A validated task. Construct with [`Task::validate`].
#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub name: String,
    pub handler: HandlerKind,
    pub payload: Value,
    pub schedule: Option<Schedule>,
    pub enabled: bool,
    pub policy: RunPolicy,
    pub policy_spec: PolicySpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// Validate a spec into a task. `created_at` is kept on update so interval anchors stay put.
    pub fn validate(
        spec: TaskSpec,
        calendars: &Calendars,
        rules: &HandlerRules,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Task, Invalid> {
        let id = TaskId::parse(&spec.task_id)?;
        let name = spec.name.trim().to_string();
        if name.is_empty() || name.len() > 256 {
            return Err(Invalid::new(
                "invalid_name",
                "name",
                "name must be 1-256 characters",
            ));
        }
        let handler = HandlerKind::parse(&spec.handler)?;
        check_payload(handler, &spec.payload, rules)?;
        let schedule = match &spec.schedule {
            Some(s) => Some(Schedule::parse(s, calendars).map_err(|e| e.within("schedule"))?),
            None => None,
        };
        let policy = spec.policy.compile()?;
        Ok(Task {
            id,
            name,
            handler,
            payload: spec.payload,
            schedule,
            enabled: spec.enabled,
            policy,
            policy_spec: spec.policy,
            created_at,
            updated_at: now,
        })
    }

    /// The spec this task was built from (for storage and for echoing back).
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            task_id: self.id.to_string(),
            name: self.name.clone(),
            handler: self.handler.as_str().to_string(),
            payload: self.payload.clone(),
            schedule: self.schedule.as_ref().map(|s| s.spec().clone()),
            enabled: self.enabled,
            policy: self.policy_spec.clone(),
        }
    }
}

/// Check that a handler's payload has the shape the handler needs.
fn check_payload(
    handler: HandlerKind,
    payload: &Value,
    rules: &HandlerRules,
) -> Result<(), Invalid> {
    match handler {
        HandlerKind::LogSignal => Ok(()),
        HandlerKind::HttpRequest => {
            let spec = HttpRequestSpec::from_payload(payload)?;
            if is_template(&spec.url) {
                // Checked when rendered, at each run.
                return Ok(());
            }
            rules.egress.check_text(&spec.url)
        }
        HandlerKind::Command => {
            let spec = CommandSpec::from_payload(payload)?;
            rules.check_command(&spec.argv[0])
        }
        HandlerKind::PlaceOrder => {
            let spec = order_spec_from_payload(payload)?;
            if spec.fields().iter().any(|f| f.is_some_and(is_template)) {
                // Rendered and validated at each run.
                return Ok(());
            }
            NewOrder::validate(&spec, &rules.instruments)
                .map(|_| ())
                .map_err(|e| e.within("payload"))
        }
        HandlerKind::Rebalance => {
            RebalanceSpec::from_payload(payload, &rules.instruments).map(|_| ())
        }
        HandlerKind::Flatten | HandlerKind::CancelAll | HandlerKind::Hardstop => {
            KillSwitchSpec::from_payload(handler, payload).map(|_| ())
        }
        HandlerKind::Notify => alert_spec_from_payload(payload, "task")
            .and_then(AlertSpec::validate)
            .map(|_| ())
            .map_err(|e| e.within("payload")),
    }
}

/// The payload of the kill-switch handlers (`flatten`, `cancel_all`, `hardstop`):
/// `{"account"?: "paper" | "all", "reason"?: "…"}`. Without an account (or with `all`) they
/// act on every account; `hardstop` needs a reason (it goes on the audit trail). Both fields
/// may hold `{{…}}` templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillSwitchSpec {
    pub account: Option<String>,
    pub reason: Option<String>,
}

impl KillSwitchSpec {
    pub fn from_payload(handler: HandlerKind, payload: &Value) -> Result<KillSwitchSpec, Invalid> {
        let empty = serde_json::Map::new();
        let obj = match payload {
            Value::Null => &empty,
            Value::Object(o) => o,
            _ => {
                return Err(Invalid::new(
                    "invalid_payload",
                    "payload",
                    format!(
                        "{} takes an object: {{\"account\"?, \"reason\"?}}",
                        handler.as_str()
                    ),
                ))
            }
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["account", "reason"].contains(&k.as_str()))
        {
            return Err(Invalid::new(
                "unknown_field",
                format!("payload.{k}"),
                format!("{} takes account and reason, not {k:?}", handler.as_str()),
            ));
        }
        let text = |k: &str| -> Result<Option<String>, Invalid> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(Invalid::new(
                    "invalid_payload",
                    format!("payload.{k}"),
                    format!("{k} must be a non-empty string"),
                )),
            }
        };
        let spec = KillSwitchSpec {
            account: text("account")?,
            reason: text("reason")?,
        };
        if handler == HandlerKind::Hardstop && spec.reason.is_none() {
            return Err(Invalid::new(
                "missing_reason",
                "payload.reason",
                "hardstop needs a reason; it is recorded in the audit trail",
            ));
        }
        Ok(spec)
    }
}

/// The `notify` handler's payload: an alert as `POST /api/alerts` takes it, whose `source`
/// defaults to `default_source`. Text fields may hold `{{path}}` templates, rendered at run time.
pub fn alert_spec_from_payload(
    payload: &Value,
    default_source: &str,
) -> Result<AlertSpec, Invalid> {
    let mut obj = payload.as_object().cloned().ok_or_else(|| {
        Invalid::new(
            "invalid_payload",
            "payload",
            "notify needs an alert object with at least a title",
        )
    })?;
    if obj.get("source").is_none_or(Value::is_null) {
        obj.insert("source".into(), Value::String(default_source.to_string()));
    }
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| Invalid::new("invalid_payload", "payload", format!("not an alert: {e}")))
}

/// The `place_order` handler's payload: an order as `POST /api/orders` takes it. Decimal fields
/// may be JSON strings or numbers; `client_order_id` may hold `{{path}}` templates (rendered at
/// run time, e.g. `"rebal-{{trigger.scheduled_for}}"`, so a retried run is not traded twice).
pub fn order_spec_from_payload(payload: &Value) -> Result<OrderSpec, Invalid> {
    let obj = payload.as_object().ok_or_else(|| {
        Invalid::new(
            "invalid_payload",
            "payload",
            "place_order needs an order object",
        )
    })?;
    let text = |k: &str, required: bool| -> Result<Option<String>, Invalid> {
        match obj.get(k) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(Invalid::new(
                "invalid_payload",
                format!("payload.{k}"),
                format!("place_order needs {k}"),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(Invalid::new(
                "invalid_payload",
                format!("payload.{k}"),
                format!("{k} must be a string or number"),
            )),
        }
    };
    Ok(OrderSpec {
        account: text("account", false)?,
        symbol: text("symbol", true)?.unwrap_or_default(),
        side: text("side", true)?.unwrap_or_default(),
        qty: text("qty", true)?.unwrap_or_default(),
        order_type: text("type", false)?,
        limit_price: text("limit_price", false)?,
        stop_price: text("stop_price", false)?,
        tif: text("tif", false)?,
        client_order_id: text("client_order_id", false)?,
    })
}

/// The `rebalance` handler's payload:
/// `{"account"?: "paper", "targets": {"SPY": {"weight": "0.6"}, "ES": {"qty": "-1"}}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceSpec {
    pub account: String,
    pub targets: Vec<(Symbol, Target)>,
}

impl RebalanceSpec {
    pub fn from_payload(
        payload: &Value,
        instruments: &Instruments,
    ) -> Result<RebalanceSpec, Invalid> {
        let bad = |f: String, m: &str| Invalid::new("invalid_payload", f, m.to_string());
        let obj = payload
            .as_object()
            .ok_or_else(|| bad("payload".into(), "rebalance needs an object with targets"))?;
        let account = match obj.get("account") {
            None | Some(Value::Null) => "paper".to_string(),
            Some(Value::String(a)) => a.clone(),
            Some(_) => return Err(bad("payload.account".into(), "account must be a string")),
        };
        let targets = obj
            .get("targets")
            .and_then(Value::as_object)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                bad(
                    "payload.targets".into(),
                    "targets must be a non-empty object of symbol → {qty|weight}",
                )
            })?;
        let mut out = Vec::new();
        for (sym, t) in targets {
            let field = format!("payload.targets.{sym}");
            let instrument = instruments
                .find(sym)
                .map_err(|e| Invalid::new(e.code, field.clone(), e.message))?;
            let num = |k: &str| -> Option<Result<Fixed, Invalid>> {
                t.get(k).map(|v| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => String::new(),
                    };
                    Fixed::parse(&text).map_err(|e| {
                        Invalid::new("invalid_number", format!("{field}.{k}"), e.to_string())
                    })
                })
            };
            let target = match (num("qty"), num("weight")) {
                (Some(q), None) => {
                    let q = Qty(q?);
                    if !q.0.is_multiple_of(instrument.qty_step.0) {
                        return Err(Invalid::new(
                            "qty_off_step",
                            format!("{field}.qty"),
                            format!("{q} is not a multiple of {}", instrument.qty_step),
                        ));
                    }
                    Target::Qty(q)
                }
                (None, Some(w)) => {
                    let w = w?;
                    if w.is_negative() || w > Fixed::ONE {
                        return Err(Invalid::new(
                            "invalid_weight",
                            format!("{field}.weight"),
                            "weight must be between 0 and 1",
                        ));
                    }
                    Target::Weight(w)
                }
                _ => return Err(bad(field, "give exactly one of qty or weight")),
            };
            out.push((instrument.symbol.clone(), target));
        }
        Ok(RebalanceSpec {
            account,
            targets: out,
        })
    }
}

/// The `http_request` handler's payload: `{"url", "method"?, "headers"?, "body"?, "timeout"?}`.
/// `url`, header values and `body` may hold `{{path}}` templates (see [`crate::template`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequestSpec {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub timeout: Option<Duration>,
}

impl HttpRequestSpec {
    pub fn from_payload(payload: &Value) -> Result<HttpRequestSpec, Invalid> {
        let obj = payload.as_object().ok_or_else(|| {
            Invalid::new(
                "invalid_payload",
                "payload",
                "http_request needs an object payload with a url",
            )
        })?;
        let url = obj.get("url").and_then(Value::as_str).ok_or_else(|| {
            Invalid::new(
                "invalid_payload",
                "payload.url",
                "http_request needs a string url",
            )
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Invalid::new(
                "invalid_payload",
                "payload.url",
                "url must start with http:// or https://",
            ));
        }
        let method = match obj.get("method") {
            None => "GET".to_string(),
            Some(Value::String(m)) => {
                let m = m.to_ascii_uppercase();
                const METHODS: [&str; 7] =
                    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
                if !METHODS.contains(&m.as_str()) {
                    return Err(Invalid::new(
                        "invalid_payload",
                        "payload.method",
                        format!("method must be one of {}", METHODS.join(", ")),
                    ));
                }
                m
            }
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_payload",
                    "payload.method",
                    "method must be a string",
                ))
            }
        };
        let headers = match obj.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Invalid::new(
                        "invalid_payload",
                        format!("payload.headers.{k}"),
                        "header values must be strings",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_payload",
                    "payload.headers",
                    "headers must be an object",
                ))
            }
        };
        let timeout = match obj.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(positive_duration("payload.timeout", t)?),
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_payload",
                    "payload.timeout",
                    "timeout must be a duration string such as \"10s\"",
                ))
            }
        };
        Ok(HttpRequestSpec {
            url: url.to_string(),
            method,
            headers,
            body: obj.get("body").cloned().filter(|b| !b.is_null()),
            timeout,
        })
    }
}

/// The `command` handler's payload: `{"argv": ["prog", "arg"...], "env"?: {...}, "cwd"?}`.
/// No shell is involved; arguments may hold `{{path}}` templates.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

impl CommandSpec {
    pub fn from_payload(payload: &Value) -> Result<CommandSpec, Invalid> {
        let bad = |field: &str, msg: &str| {
            Invalid::new("invalid_payload", field.to_string(), msg.to_string())
        };
        let obj = payload
            .as_object()
            .ok_or_else(|| bad("payload", "command needs an object payload with argv"))?;
        let argv: Vec<String> = obj
            .get("argv")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("payload.argv", "argv must be a non-empty array of strings"))?
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("payload.argv", "argv must be a non-empty array of strings"))?;
        if argv.is_empty() || argv[0].is_empty() {
            return Err(bad(
                "payload.argv",
                "argv must be a non-empty array of strings",
            ));
        }
        let env = match obj.get("env") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("payload.env", "env values must be strings"))?,
            Some(_) => return Err(bad("payload.env", "env must be an object of strings")),
        };
        let cwd = match obj.get("cwd") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("payload.cwd", "cwd must be a string")),
        };
        Ok(CommandSpec { argv, env, cwd })
    }
}

/// What caused a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Manual,
    Schedule,
    Webhook,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Trigger> {
        [Trigger::Manual, Trigger::Schedule, Trigger::Webhook]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Success,
    Error,
    Timeout,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [
            RunStatus::Success,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::Skipped,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// One stored run of a task (one attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub result_id: String,
    pub task_id: TaskId,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub output: Value,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub attempt: u32,
    /// For scheduled runs: the instant the schedule said it was due.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// For webhook-triggered runs: the webhook that started it.
    pub webhook_id: Option<String>,
}

impl RunResult {
    pub fn duration_ms(&self) -> i64 {
        (self.finished_at - self.started_at)
            .num_milliseconds()
            .max(0)
    }
}

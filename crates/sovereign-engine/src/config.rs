//! The configuration file (TOML) and its validation into typed [`Settings`].
//!
//! Parsing is strict (unknown keys are errors, with line and column) and validation collects
//! every problem at once, so a person fixes the file in one pass. Nothing starts until the whole
//! file is valid. With no file, [`Settings::default`] is a working engine on 127.0.0.1:8080.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{NaiveDate, Weekday};
use serde::Deserialize;
use serde_json::Value;
use sovereign_core::calendar::{Calendar, Calendars};
use sovereign_core::error::Invalid;
use sovereign_core::schedule::{parse_duration, ScheduleSpec};
use sovereign_core::task::{HandlerRules, PolicySpec, Task, TaskSpec};
use sovereign_core::webhook::{Route, SourceAuth};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub results: ResultsFile,
    #[serde(default)]
    pub handlers: HandlersFile,
    #[serde(default)]
    pub calendars: BTreeMap<String, CalendarFile>,
    #[serde(default)]
    pub webhooks: WebhooksFile,
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsFile {
    pub max_age: Option<String>,
    pub max_count: Option<usize>,
    pub prune_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlersFile {
    #[serde(default)]
    pub command: CommandFile,
    #[serde(default)]
    pub http_request: HttpRequestFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestFile {
    pub max_response_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    pub extends: Option<String>,
    pub weekdays: Option<Vec<String>>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    pub dedup_window: Option<String>,
    pub max_body_bytes: Option<usize>,
    /// Refuse calls from sources not listed under `[webhooks.sources]`.
    pub require_known_source: Option<bool>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Shared secret expected in `secret_header` (default `X-Webhook-Secret`).
    pub secret: Option<String>,
    pub secret_header: Option<String>,
    /// Token expected in the URL: `POST /webhook/{source}/{token}`.
    pub token: Option<String>,
    /// HMAC-SHA256 key; the hex signature is expected in `hmac_header` (default `X-Signature-256`).
    pub hmac_secret: Option<String>,
    pub hmac_header: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub source: String,
    pub event: Option<String>,
    pub tasks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: String,
    pub handler: String,
    #[serde(default = "empty_object")]
    pub payload: Value,
    pub schedule: Option<ScheduleSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(flatten)]
    pub policy: PolicySpec,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

/// Validated settings the engine runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub port: u16,
    pub max_body_bytes: usize,
    /// Body limit of the webhook routes (senders post small alerts; refuse floods early).
    pub webhook_max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub results_max_age: Option<Duration>,
    pub results_max_count: Option<usize>,
    pub prune_interval: Duration,
    pub handler_rules: HandlerRules,
    pub http_max_response_bytes: usize,
    pub calendars: Calendars,
    pub dedup_window: Duration,
    /// Refuse webhooks from sources not listed under `[webhooks.sources]`. Unset: refuse them
    /// when the server listens beyond loopback (see [`Settings::requires_known_source`]).
    pub require_known_source: Option<bool>,
    pub sources: BTreeMap<String, SourceAuth>,
    pub routes: Vec<Route>,
    /// Tasks declared in the file: created or replaced at start-up.
    pub tasks: Vec<TaskSpec>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 1024 * 1024,
            webhook_max_body_bytes: 256 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            results_max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            results_max_count: Some(100_000),
            prune_interval: Duration::from_secs(600),
            handler_rules: HandlerRules::default(),
            http_max_response_bytes: 64 * 1024,
            calendars: Calendars::with_builtins(),
            dedup_window: Duration::from_secs(600),
            require_known_source: None,
            sources: BTreeMap::new(),
            routes: Vec::new(),
            tasks: Vec::new(),
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Settings {
    /// Whether webhooks from unlisted sources are refused: as configured, else whenever the
    /// server is reachable beyond loopback (safe by default).
    pub fn requires_known_source(&self) -> bool {
        self.require_known_source.unwrap_or_else(|| {
            !self
                .bind
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        })
    }

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{}: cannot read: {e}", path.display())],
        })?;
        Settings::parse(&text, &path.display().to_string())
    }

    /// Parse and validate config text; `origin` names the file in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Settings, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![format!("{origin}: {}", one_line(&e.to_string()))],
        })?;
        Settings::from_file(file).map_err(|problems| ConfigError {
            problems: problems
                .into_iter()
                .map(|p| format!("{origin}: {p}"))
                .collect(),
        })
    }

    fn from_file(file: ConfigFile) -> Result<Settings, Vec<String>> {
        let mut s = Settings::default();
        let mut problems: Vec<String> = Vec::new();
        let mut note = |r: Result<(), Invalid>| {
            if let Err(e) = r {
                problems.push(e.to_string());
            }
        };

        if let Some(bind) = file.server.bind {
            note(bind.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| {
                Invalid::new(
                    "invalid_bind",
                    "server.bind",
                    format!("{bind:?} is not an IP address"),
                )
            }));
            s.bind = bind;
        }
        if let Some(port) = file.server.port {
            s.port = port;
        }
        if let Some(n) = file.server.max_body_bytes {
            s.max_body_bytes = n;
        }
        if let Some(t) = &file.server.shutdown_timeout {
            note(parse_duration("server.shutdown_timeout", t).map(|d| s.shutdown_timeout = d));
        }
        if let Some(t) = &file.results.max_age {
            note(parse_duration("results.max_age", t).map(|d| s.results_max_age = Some(d)));
        }
        if let Some(n) = file.results.max_count {
            s.results_max_count = Some(n);
        }
        if let Some(t) = &file.results.prune_interval {
            note(parse_duration("results.prune_interval", t).map(|d| s.prune_interval = d));
        }
        s.handler_rules.command_allow = file.handlers.command.allow;
        if let Some(n) = file.handlers.http_request.max_response_bytes {
            s.http_max_response_bytes = n;
        }

        for (name, cal) in file.calendars {
            note(calendar(&name, cal, &s.calendars).map(|c| s.calendars.insert(c)));
        }

        if let Some(t) = &file.webhooks.dedup_window {
            note(parse_duration("webhooks.dedup_window", t).map(|d| s.dedup_window = d));
        }
        if let Some(n) = file.webhooks.max_body_bytes {
            s.webhook_max_body_bytes = n;
        }
        s.require_known_source = file.webhooks.require_known_source;
        for (name, src) in file.webhooks.sources {
            note(source_auth(&name, src).map(|a| {
                s.sources.insert(name.clone(), a);
            }));
        }
        for (i, r) in file.webhooks.routes.into_iter().enumerate() {
            if r.tasks.is_empty() {
                note(Err(Invalid::new(
                    "invalid_route",
                    format!("webhooks.routes[{i}].tasks"),
                    "a route needs at least one task",
                )));
            }
            s.routes.push(Route {
                source: r.source,
                event: r.event,
                tasks: r.tasks,
            });
        }
        for (id, t) in file.tasks {
            let spec = TaskSpec {
                task_id: id.clone(),
                name: t.name,
                handler: t.handler,
                payload: t.payload,
                schedule: t.schedule,
                enabled: t.enabled,
                policy: t.policy,
            };
            // Validate now, so `sovereign check` and start-up agree; the time is irrelevant here.
            let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            note(
                Task::validate(spec.clone(), &s.calendars, &s.handler_rules, epoch, epoch)
                    .map(|_| ())
                    .map_err(|e| e.within(&format!("tasks.{id}"))),
            );
            s.tasks.push(spec);
        }
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(problems)
        }
    }
}

fn calendar(name: &str, file: CalendarFile, known: &Calendars) -> Result<Calendar, Invalid> {
    let field = |f: &str| format!("calendars.{name}.{f}");
    let base = match &file.extends {
        Some(b) => Some(known.get(b).cloned().ok_or_else(|| {
            Invalid::new(
                "unknown_calendar",
                field("extends"),
                format!(
                    "unknown calendar {b:?}; known: {}",
                    known.names().join(", ")
                ),
            )
        })?),
        None => None,
    };
    let mut holidays = Vec::new();
    for h in &file.holidays {
        holidays.push(NaiveDate::parse_from_str(h, "%Y-%m-%d").map_err(|_| {
            Invalid::new(
                "invalid_date",
                field("holidays"),
                format!("{h:?} is not a YYYY-MM-DD date"),
            )
        })?);
    }
    let weekdays: Option<Vec<Weekday>> = match &file.weekdays {
        Some(days) => Some(
            days.iter()
                .map(|d| {
                    d.parse::<Weekday>().map_err(|_| {
                        Invalid::new(
                            "invalid_weekday",
                            field("weekdays"),
                            format!("{d:?} is not a weekday"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    Ok(match (base, weekdays) {
        (Some(base), None) => {
            let renamed = Calendar::new(name, &base.weekdays(), base.holidays());
            renamed.with_extra_holidays(holidays)
        }
        (Some(base), Some(days)) => {
            Calendar::new(name, &days, base.holidays()).with_extra_holidays(holidays)
        }
        (None, days) => {
            let days = days.unwrap_or_else(|| {
                vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ]
            });
            Calendar::new(name, &days, holidays)
        }
    })
}

fn source_auth(name: &str, f: SourceFile) -> Result<SourceAuth, Invalid> {
    let modes = [
        f.secret.is_some(),
        f.token.is_some(),
        f.hmac_secret.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if modes > 1 {
        return Err(Invalid::new(
            "invalid_source",
            format!("webhooks.sources.{name}"),
            "choose one of secret, token, hmac_secret",
        ));
    }
    let empty = |s: &String| s.is_empty();
    if f.secret.as_ref().is_some_and(empty)
        || f.token.as_ref().is_some_and(empty)
        || f.hmac_secret.as_ref().is_some_and(empty)
    {
        return Err(Invalid::new(
            "invalid_source",
            format!("webhooks.sources.{name}"),
            "a credential must not be empty",
        ));
    }
    Ok(if let Some(secret) = f.secret {
        SourceAuth::Header {
            header: f.secret_header.unwrap_or_else(|| "X-Webhook-Secret".into()),
            secret,
        }
    } else if let Some(token) = f.token {
        SourceAuth::UrlToken { token }
    } else if let Some(secret) = f.hmac_secret {
        SourceAuth::Hmac {
            header: f.hmac_header.unwrap_or_else(|| "X-Signature-256".into()),
            secret,
        }
    } else {
        SourceAuth::None
    })
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "|")
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let s = Settings::parse("", "t.toml").unwrap();
        assert_eq!(s.bind, "127.0.0.1");
        assert_eq!(s.port, 8080);
        assert!(s.handler_rules.command_allow.is_empty());
    }

    #[test]
    fn unknown_key_names_line() {
        let e = Settings::parse("[server]\nbnd = \"x\"\n", "t.toml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.toml") && msg.contains("bnd") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn all_problems_reported_at_once() {
        let text = "[server]\nbind = \"nope\"\nshutdown_timeout = \"soon\"\n[calendars.x]\nextends = \"mars\"\n";
        let e = Settings::parse(text, "t.toml").unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
    }

    #[test]
    fn sources_and_tasks() {
        let text = r#"
[webhooks.sources.tv]
token = "abc"
[webhooks.sources.gh]
hmac_secret = "k"
[[webhooks.routes]]
source = "tv"
tasks = ["t1"]
[tasks.t1]
name = "T1"
handler = "log_signal"
schedule = { every = "15m" }
retries = 2
"#;
        let s = Settings::parse(text, "t.toml").unwrap();
        assert_eq!(s.sources.len(), 2);
        assert!(matches!(s.sources["tv"], SourceAuth::UrlToken { .. }));
        assert_eq!(s.tasks[0].policy.retries, Some(2));
        assert_eq!(s.routes[0].tasks, vec!["t1"]);
    }
}

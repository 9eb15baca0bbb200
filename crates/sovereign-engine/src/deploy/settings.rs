//! `[deploy.plans.NAME]`: the files as written, and their validation into [`DeploySettings`]
//! (every problem reported with its field path; templates parsed, so a placeholder nobody knows
//! stops the start, not a deploy).
//!
//! ```toml
//! [deploy.plans.regions]
//! version = { git = "../app", ref = "main" }     # or give --version on each run
//! window = { calendar = "us_equities", when_open = "refuse" }
//! hook = { secret = "…", branch = "main" }       # POST /api/v1/deploy/hooks/regions
//!
//! [[deploy.plans.regions.stages]]
//! name = "canary"
//! health_timeout = "300s"
//! [[deploy.plans.regions.stages.targets]]
//! name = "lhr"
//! deploy = ["./deploy.sh", "{target}", "{version}"]
//! rollback = ["./deploy.sh", "{target}", "{previous}"]
//! [[deploy.plans.regions.stages.targets.checks]]
//! kind = "http"
//! url = "http://lhr.internal/version"
//! field = "version"
//! pass = "== {version}"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sovereign_core::calendar::Calendars;
use sovereign_core::deploy::analysis::{Condition, Rules, Severity};
use sovereign_core::deploy::plan::{argv, Template};
use sovereign_core::deploy::window::{builtin_hours, parse_hours, Session};
use sovereign_core::error::Invalid;
use sovereign_core::schedule::parse_duration;

/// `[deploy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployFile {
    #[serde(default)]
    pub plans: BTreeMap<String, PlanFile>,
}

/// `[deploy.plans.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub version: Option<VersionFile>,
    pub window: Option<WindowFile>,
    pub hook: Option<HookFile>,
    /// How long a deploy or rollback command may run (default 10m); a target may say otherwise.
    pub command_timeout: Option<String>,
    #[serde(default)]
    pub stages: Vec<StageFile>,
}

/// Where versions come from: a git repository, `ref` resolved to its commit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionFile {
    pub git: String,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

/// Not while an exchange's session is open.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowFile {
    pub calendar: String,
    /// `"09:30-16:00"` (exchange time); built-in calendars have their own.
    pub session: Option<String>,
    pub tz: Option<String>,
    /// `refuse` (default) or `wait` (the run starts when the session closes).
    pub when_open: Option<String>,
}

/// A git host's push webhook.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookFile {
    pub secret: String,
    /// Pushes to this branch deploy (default `main`).
    pub branch: Option<String>,
}

/// Never the secret.
impl std::fmt::Debug for HookFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookFile")
            .field("secret", &"[redacted]")
            .field("branch", &self.branch)
            .finish()
    }
}

/// `[[deploy.plans.NAME.stages]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub name: String,
    #[serde(default)]
    pub critical: bool,
    /// Commands at once (default: every target of the stage).
    pub parallelism: Option<usize>,
    /// How long its gate may take to pass (default 300s).
    pub health_timeout: Option<String>,
    #[serde(default)]
    pub checks: Vec<CheckFile>,
    #[serde(default)]
    pub targets: Vec<TargetFile>,
}

/// `[[deploy.plans.NAME.stages.targets]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub name: String,
    pub deploy: Vec<String>,
    pub rollback: Vec<String>,
    /// A service of this engine: after its command, it is restarted and gated on its health.
    pub service: Option<String>,
    pub cwd: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub checks: Vec<CheckFile>,
}

/// A check of a gate. Which keys apply depends on `kind`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    pub name: Option<String>,
    /// `http`, `tcp`, `command`, `dns`, `metric` or `service_health`.
    pub kind: String,
    pub severity: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub count: Option<u32>,
    pub failure_limit: Option<u32>,
    pub consecutive_failures: Option<u32>,
    pub consecutive_error_limit: Option<u32>,
    pub inconclusive_limit: Option<u32>,
    pub url: Option<String>,
    pub status: Option<u16>,
    pub field: Option<String>,
    pub pass: Option<String>,
    pub fail: Option<String>,
    pub address: Option<String>,
    pub command: Option<Vec<String>>,
    pub host: Option<String>,
    pub service: Option<String>,
}

/// Every plan, by name.
#[derive(Debug, Clone, Default)]
pub struct DeploySettings {
    pub plans: BTreeMap<String, std::sync::Arc<Plan>>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub git: Option<GitSource>,
    pub window: Option<Window>,
    pub hook: Option<Hook>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub struct GitSource {
    /// The repository (relative paths resolve against the config file's folder).
    pub repo: PathBuf,
    /// Deployed when a run names no version.
    pub reference: String,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub session: Session,
    /// Wait for the close instead of refusing.
    pub wait: bool,
}

#[derive(Clone)]
pub struct Hook {
    pub secret: String,
    pub branch: String,
}

/// Never the secret.
impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("secret", &"[redacted]")
            .field("branch", &self.branch)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub critical: bool,
    pub parallelism: usize,
    pub health_timeout: Duration,
    pub checks: Vec<Check>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub deploy: Vec<Template>,
    pub rollback: Vec<Template>,
    pub service: Option<String>,
    /// Where its commands run (relative programs too): the config file's folder by default.
    pub cwd: PathBuf,
    pub timeout: Duration,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub probe: Probe,
    pub rules: Rules,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What a check measures.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A status (default any 2xx), and optionally a JSON field judged by `pass` and `fail`.
    Http {
        url: Template,
        status: Option<u16>,
        field: Option<String>,
        pass: Option<Template>,
        fail: Option<Template>,
    },
    /// A connection opens.
    Tcp { address: Template },
    /// Exit status 0 (run in the config file's folder).
    Command { argv: Vec<Template>, cwd: PathBuf },
    /// The name resolves.
    Dns { host: Template },
    /// A JSON value from a URL, judged by `pass` (and `fail`); the URL not answering is an
    /// error (could not measure), not a failure.
    Metric {
        url: Template,
        field: String,
        pass: Template,
        fail: Option<Template>,
    },
    /// A service of this engine is healthy (or running, without a check of its own).
    ServiceHealth { service: String },
}

impl Probe {
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Http { .. } => "http",
            Probe::Tcp { .. } => "tcp",
            Probe::Command { .. } => "command",
            Probe::Dns { .. } => "dns",
            Probe::Metric { .. } => "metric",
            Probe::ServiceHealth { .. } => "service_health",
        }
    }
}

/// A service target's own gate: P0 on its health, every 500 ms, for 5 minutes of errors.
fn service_check(service: &str) -> Check {
    Check {
        name: format!("{service} healthy"),
        probe: Probe::ServiceHealth {
            service: service.to_string(),
        },
        rules: Rules {
            consecutive_error_limit: 600,
            ..Rules::of(Severity::P0)
        },
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
    }
}

/// Validate `[deploy]`. Relative paths (a repository, a command's folder) resolve against
/// `base`; window calendars come from `calendars`; `services` are the engine's service names.
pub fn settings(
    file: DeployFile,
    base: &std::path::Path,
    calendars: &Calendars,
    services: &BTreeSet<String>,
) -> Result<DeploySettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let mut plans = BTreeMap::new();
    for (name, p) in file.plans {
        let field = format!("deploy.plans.{name}");
        match plan(&name, p, base, calendars, services) {
            Ok(plan) => {
                plans.insert(name, std::sync::Arc::new(plan));
            }
            Err(errs) => problems.extend(errs.into_iter().map(|e| e.within(&field))),
        }
    }
    if problems.is_empty() {
        Ok(DeploySettings { plans })
    } else {
        Err(problems)
    }
}

fn duration(
    field: &str,
    text: Option<&str>,
    default: Duration,
    problems: &mut Vec<Invalid>,
) -> Duration {
    match text.map(|t| parse_duration(field, t)) {
        None => default,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            problems.push(Invalid::new(
                "invalid_duration",
                field,
                format!("{field} must be more than 0"),
            ));
            default
        }
        Some(Err(e)) => {
            problems.push(e);
            default
        }
    }
}

fn plan(
    name: &str,
    p: PlanFile,
    base: &std::path::Path,
    calendars: &Calendars,
    services: &BTreeSet<String>,
) -> Result<Plan, Vec<Invalid>> {
    let mut problems = Vec::new();
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || name.is_empty()
    {
        problems.push(Invalid::new(
            "invalid_name",
            "",
            format!("plan name {name:?} may only hold letters, digits, - and _"),
        ));
    }
    let command_timeout = duration(
        "command_timeout",
        p.command_timeout.as_deref(),
        Duration::from_secs(600),
        &mut problems,
    );
    let git = p.version.map(|v| GitSource {
        repo: base.join(&v.git),
        reference: v.reference.unwrap_or_else(|| "HEAD".into()),
    });
    let window = p.window.and_then(|w| match window(w, calendars) {
        Ok(w) => Some(w),
        Err(e) => {
            problems.push(e.within("window"));
            None
        }
    });
    let hook = p.hook.and_then(|h| {
        if h.secret.len() < 16 {
            problems.push(Invalid::new(
                "weak_secret",
                "hook.secret",
                "a push webhook's secret must be at least 16 characters",
            ));
            return None;
        }
        Some(Hook {
            secret: h.secret,
            branch: h.branch.unwrap_or_else(|| "main".into()),
        })
    });
    if p.stages.is_empty() {
        problems.push(Invalid::new(
            "no_stages",
            "stages",
            "a plan needs at least one stage",
        ));
    }
    let mut stage_names = BTreeSet::new();
    let mut target_names = BTreeSet::new();
    let mut stages = Vec::new();
    for (i, s) in p.stages.into_iter().enumerate() {
        let field = format!("stages[{i}]");
        if !stage_names.insert(s.name.clone()) {
            problems.push(Invalid::new(
                "duplicate_stage",
                format!("{field}.name"),
                format!("two stages are named {:?}", s.name),
            ));
        }
        if s.targets.is_empty() {
            problems.push(Invalid::new(
                "no_targets",
                format!("{field}.targets"),
                format!("stage {:?} has no targets", s.name),
            ));
        }
        if s.parallelism == Some(0) {
            problems.push(Invalid::new(
                "invalid_count",
                format!("{field}.parallelism"),
                "parallelism must be at least 1",
            ));
        }
        let health_timeout = duration(
            &format!("{field}.health_timeout"),
            s.health_timeout.as_deref(),
            Duration::from_secs(300),
            &mut problems,
        );
        let stage_checks = checks(&field, s.checks, false, base, services, &mut problems);
        let mut targets = Vec::new();
        for (j, t) in s.targets.into_iter().enumerate() {
            let tfield = format!("{field}.targets[{j}]");
            if !target_names.insert(t.name.clone()) {
                problems.push(Invalid::new(
                    "duplicate_target",
                    format!("{tfield}.name"),
                    format!("two targets are named {:?}", t.name),
                ));
            }
            let mut collect = |r: Result<Vec<Template>, Invalid>| {
                r.unwrap_or_else(|e| {
                    problems.push(e);
                    Vec::new()
                })
            };
            let deploy = collect(argv(&format!("{tfield}.deploy"), &t.deploy));
            let rollback = collect(argv(&format!("{tfield}.rollback"), &t.rollback));
            if let Some(svc) = &t.service {
                if !services.contains(svc) {
                    problems.push(Invalid::new(
                        "unknown_service",
                        format!("{tfield}.service"),
                        format!("no service is named {svc:?}"),
                    ));
                }
            }
            let timeout = duration(
                &format!("{tfield}.timeout"),
                t.timeout.as_deref(),
                command_timeout,
                &mut problems,
            );
            let mut target_checks = checks(&tfield, t.checks, true, base, services, &mut problems);
            if let Some(svc) = &t.service {
                target_checks.push(service_check(svc));
            }
            targets.push(Target {
                name: t.name,
                deploy,
                rollback,
                service: t.service,
                cwd: base.join(t.cwd.unwrap_or_default()),
                timeout,
                checks: target_checks,
            });
        }
        let parallelism = s.parallelism.unwrap_or(targets.len()).max(1);
        stages.push(Stage {
            name: s.name,
            critical: s.critical,
            parallelism,
            health_timeout,
            checks: stage_checks,
            targets,
        });
    }
    if problems.is_empty() {
        Ok(Plan {
            name: name.to_string(),
            git,
            window,
            hook,
            stages,
        })
    } else {
        Err(problems)
    }
}

fn window(w: WindowFile, calendars: &Calendars) -> Result<Window, Invalid> {
    let calendar = calendars.get(&w.calendar).cloned().ok_or_else(|| {
        Invalid::new(
            "unknown_calendar",
            "calendar",
            format!(
                "no calendar is named {:?} (known: {})",
                w.calendar,
                calendars.names().join(", ")
            ),
        )
    })?;
    let builtin = builtin_hours(&w.calendar);
    let tz = match (&w.tz, builtin) {
        (Some(tz), _) => tz
            .parse()
            .map_err(|_| Invalid::new("invalid_tz", "tz", format!("{tz:?} is not a time zone")))?,
        (None, Some((tz, ..))) => tz,
        (None, None) => {
            return Err(Invalid::new(
                "missing_field",
                "tz",
                format!(
                    "calendar {:?} has no built-in hours: give session and tz",
                    w.calendar
                ),
            ))
        }
    };
    let (open, close) = match (&w.session, builtin) {
        (Some(s), _) => parse_hours("session", s)?,
        (None, Some((_, open, close))) => (open, close),
        (None, None) => {
            return Err(Invalid::new(
                "missing_field",
                "session",
                format!(
                    "calendar {:?} has no built-in hours: give session and tz",
                    w.calendar
                ),
            ))
        }
    };
    let wait = match w.when_open.as_deref() {
        None | Some("refuse") => false,
        Some("wait") => true,
        Some(other) => {
            return Err(Invalid::new(
                "invalid_when_open",
                "when_open",
                format!("when_open {other:?} must be \"refuse\" or \"wait\""),
            ))
        }
    };
    Ok(Window {
        session: Session {
            calendar,
            tz,
            open,
            close,
        },
        wait,
    })
}

fn checks(
    field: &str,
    files: Vec<CheckFile>,
    of_target: bool,
    base: &std::path::Path,
    services: &BTreeSet<String>,
    problems: &mut Vec<Invalid>,
) -> Vec<Check> {
    let mut out = Vec::new();
    for (i, c) in files.into_iter().enumerate() {
        match check(c, of_target, base, services) {
            Ok(c) => out.push(c),
            Err(errs) => problems.extend(
                errs.into_iter()
                    .map(|e| e.within(&format!("{field}.checks[{i}]"))),
            ),
        }
    }
    out
}

fn check(
    c: CheckFile,
    of_target: bool,
    base: &std::path::Path,
    services: &BTreeSet<String>,
) -> Result<Check, Vec<Invalid>> {
    let mut problems = Vec::new();
    let severity = match c
        .severity
        .as_deref()
        .map(|s| Severity::parse("severity", s))
    {
        None => Severity::P0,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            problems.push(e);
            Severity::P0
        }
    };
    let defaults = Rules::of(severity);
    let rules = Rules {
        severity,
        count: c.count.unwrap_or(defaults.count).max(1),
        failure_limit: c.failure_limit,
        consecutive_failures: c
            .consecutive_failures
            .unwrap_or(defaults.consecutive_failures)
            .max(1),
        consecutive_error_limit: c
            .consecutive_error_limit
            .unwrap_or(defaults.consecutive_error_limit),
        inconclusive_limit: c.inconclusive_limit.unwrap_or(defaults.inconclusive_limit),
    };
    let interval = duration(
        "interval",
        c.interval.as_deref(),
        Duration::from_secs(5),
        &mut problems,
    );
    let timeout = duration(
        "timeout",
        c.timeout.as_deref(),
        Duration::from_secs(5),
        &mut problems,
    );
    // A stage's own checks have no target to name.
    let template = |f: &str, text: &str, problems: &mut Vec<Invalid>| -> Option<Template> {
        match Template::parse(f, text) {
            Ok(t) if !of_target && t.uses("target") => {
                problems.push(Invalid::new(
                    "unknown_placeholder",
                    f,
                    "a stage's check has no {target}: put the check on the target",
                ));
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    };
    let condition = |f: &str, text: &Option<String>, problems: &mut Vec<Invalid>| {
        let text = text.as_deref()?;
        let t = template(f, text, problems)?;
        // Checked with a stand-in version: the shape must hold whatever the version is.
        let sample = t
            .render(&sovereign_core::deploy::plan::Vars {
                version: "v1",
                previous: Some("v0"),
                target: "t",
                stage: "s",
            })
            .unwrap_or_default();
        match Condition::parse(f, &sample) {
            Ok(_) => Some(t),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    };
    let needed = |name: &str, v: &Option<String>, problems: &mut Vec<Invalid>| -> Option<String> {
        if v.is_none() {
            problems.push(Invalid::new(
                "missing_field",
                name,
                format!("a {} check needs {name}", c.kind),
            ));
        }
        v.clone()
    };
    // Keys that belong to other kinds are mistakes, not ignored.
    let allowed: &[&str] = match c.kind.as_str() {
        "http" => &["url", "status", "field", "pass", "fail"],
        "metric" => &["url", "field", "pass", "fail"],
        "tcp" => &["address"],
        "command" => &["command"],
        "dns" => &["host"],
        "service_health" => &["service"],
        _ => &[],
    };
    let given = [
        ("url", c.url.is_some()),
        ("status", c.status.is_some()),
        ("field", c.field.is_some()),
        ("pass", c.pass.is_some()),
        ("fail", c.fail.is_some()),
        ("address", c.address.is_some()),
        ("command", c.command.is_some()),
        ("host", c.host.is_some()),
        ("service", c.service.is_some()),
    ];
    for (key, set) in given {
        if set && !allowed.contains(&key) && !allowed.is_empty() {
            problems.push(Invalid::new(
                "unknown_field",
                key,
                format!("{key} does not belong to a {} check", c.kind),
            ));
        }
    }
    let probe = match c.kind.as_str() {
        "http" => {
            let url = needed("url", &c.url, &mut problems)
                .and_then(|u| template("url", &u, &mut problems));
            let pass = condition("pass", &c.pass, &mut problems);
            let fail = condition("fail", &c.fail, &mut problems);
            if c.field.is_some() != pass.is_some() && problems.is_empty() {
                problems.push(Invalid::new(
                    "missing_field",
                    if c.field.is_some() { "pass" } else { "field" },
                    "an http check judges a field with field and pass together",
                ));
            }
            url.map(|url| Probe::Http {
                url,
                status: c.status,
                field: c.field.clone(),
                pass,
                fail,
            })
        }
        "metric" => {
            let url = needed("url", &c.url, &mut problems)
                .and_then(|u| template("url", &u, &mut problems));
            let field = needed("field", &c.field, &mut problems);
            let pass = needed("pass", &c.pass, &mut problems).and(condition(
                "pass",
                &c.pass,
                &mut problems,
            ));
            let fail = condition("fail", &c.fail, &mut problems);
            match (url, field, pass) {
                (Some(url), Some(field), Some(pass)) => Some(Probe::Metric {
                    url,
                    field,
                    pass,
                    fail,
                }),
                _ => None,
            }
        }
        "tcp" => needed("address", &c.address, &mut problems)
            .and_then(|a| template("address", &a, &mut problems))
            .map(|address| Probe::Tcp { address }),
        "dns" => needed("host", &c.host, &mut problems)
            .and_then(|h| template("host", &h, &mut problems))
            .map(|host| Probe::Dns { host }),
        "command" => match c.command.as_deref().map(|a| argv("command", a)) {
            None => {
                problems.push(Invalid::new(
                    "missing_field",
                    "command",
                    "a command check needs command",
                ));
                None
            }
            Some(Err(e)) => {
                problems.push(e);
                None
            }
            Some(Ok(argv)) => Some(Probe::Command {
                argv,
                cwd: base.to_path_buf(),
            }),
        },
        "service_health" => match needed("service", &c.service, &mut problems) {
            Some(s) if !services.contains(&s) => {
                problems.push(Invalid::new(
                    "unknown_service",
                    "service",
                    format!("no service is named {s:?}"),
                ));
                None
            }
            s => s.map(|service| Probe::ServiceHealth { service }),
        },
        other => {
            problems.push(Invalid::new(
                "invalid_check_kind",
                "kind",
                format!(
                    "check kind {other:?} must be http, tcp, command, dns, metric or service_health"
                ),
            ));
            None
        }
    };
    match probe {
        Some(probe) if problems.is_empty() => Ok(Check {
            name: c.name.unwrap_or_else(|| probe.kind().to_string()),
            probe,
            rules,
            interval,
            timeout,
        }),
        _ => Err(problems),
    }
}

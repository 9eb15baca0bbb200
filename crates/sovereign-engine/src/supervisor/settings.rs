//! `[services.NAME]` and `[supervisor]`: the files as written, and their validation into
//! [`SupervisorSettings`] (every problem reported, the start order computed, cycles named).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sovereign_core::error::Invalid;
use sovereign_core::retry::Backoff;
use sovereign_core::schedule::parse_duration;
use sovereign_core::supervise::{start_order, Condition, CrashLoop, Policy, Restart};

/// `[supervisor]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorFile {
    /// Run on a service's alive → dead transition (argv; no shell).
    pub healer: Option<Vec<String>>,
    /// Per-service quiet time between two healer runs (default 10m).
    pub healer_cooldown: Option<String>,
    /// Log lines handed to the healer (default 100).
    pub healer_log_lines: Option<usize>,
    /// Where service logs are written (default `logs` in the data dir).
    pub log_dir: Option<String>,
}

/// `[services.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// argv as a list; a string only with `shell = true`.
    pub command: toml::Value,
    #[serde(default)]
    pub shell: bool,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Truth component whose `env` is injected.
    pub truth: Option<String>,
    /// `{ other = "started" | "healthy" | "completed" }`, or a list of names (started).
    pub depends_on: Option<toml::Value>,
    pub health: Option<HealthFile>,
    pub restart: Option<String>,
    pub backoff: Option<BackoffFile>,
    pub crash_loop: Option<CrashLoopFile>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<String>,
    pub autostart: Option<bool>,
    pub log: Option<LogFile>,
    /// Restart when its Truth component changes (default true).
    pub restart_on_truth_change: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    /// `http`, `tcp`, `command`, `heartbeat` or `redis_key`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    pub status: Option<u16>,
    pub addr: Option<String>,
    pub command: Option<Vec<String>>,
    pub key: Option<String>,
    pub ttl: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub failure_threshold: Option<u32>,
    pub initial_delay: Option<String>,
    /// `report` (default: alert and healer only) or `restart` (also restart it, counted like a
    /// crash).
    pub on_unhealthy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffFile {
    pub initial: Option<String>,
    pub max: Option<String>,
    pub multiplier: Option<u32>,
    pub reset_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopFile {
    pub restarts: Option<u32>,
    pub window: Option<String>,
    /// `"never"` or a duration (default 5m).
    pub cooldown: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub max_bytes: Option<u64>,
    pub keep: Option<usize>,
}

/// How a service's health is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// GET the URL; healthy on `status` (any 2xx when unset).
    Http { url: String, status: Option<u16> },
    /// A TCP connection is accepted.
    Tcp { addr: String },
    /// The program exits 0 (run in the service's directory).
    Command { argv: Vec<String>, cwd: PathBuf },
    /// A beat on `POST /api/heartbeats/NAME` within `ttl`.
    Heartbeat { ttl: Duration },
    /// The Redis key exists (and, when it holds a Unix time, is no older than `ttl`).
    RedisKey {
        addr: String,
        password: Option<String>,
        db: u32,
        key: String,
        ttl: Duration,
    },
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http { .. } => "http",
            Check::Tcp { .. } => "tcp",
            Check::Command { .. } => "command",
            Check::Heartbeat { .. } => "heartbeat",
            Check::RedisKey { .. } => "redis_key",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub initial_delay: Duration,
}

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub name: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub truth: Option<String>,
    pub depends_on: Vec<(String, Condition)>,
    pub health: Option<HealthSettings>,
    pub policy: Policy,
    pub stop_signal: String,
    pub autostart: bool,
    pub log_max_bytes: u64,
    pub log_keep: usize,
    pub restart_on_truth_change: bool,
    /// Why its program cannot be found now (it fails with this reason when started; `sovereign
    /// check` reports it).
    pub missing_program: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Healer {
    pub argv: Vec<String>,
    /// It runs here: the config file's directory.
    pub cwd: PathBuf,
    pub cooldown: Duration,
    pub log_lines: usize,
}

#[derive(Debug, Clone, Default)]
pub struct SupervisorSettings {
    /// In start order (level by level, names sorted within a level).
    pub services: Vec<ServiceSettings>,
    pub levels: Vec<Vec<String>>,
    pub healer: Option<Healer>,
    /// Relative to the data dir unless absolute.
    pub log_dir: PathBuf,
}

const SIGNALS: [&str; 8] = [
    "TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", "WINCH",
];

/// Validate the services and the supervisor section; relative `cwd`s resolve against `base`
/// (the config file's directory).
pub fn settings(
    file: SupervisorFile,
    services: BTreeMap<String, ServiceFile>,
    base: &Path,
) -> Result<SupervisorSettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let mut out = SupervisorSettings {
        log_dir: PathBuf::from(file.log_dir.unwrap_or_else(|| "logs".into())),
        ..SupervisorSettings::default()
    };
    if let Some(argv) = file.healer {
        let cooldown = match file.healer_cooldown.as_deref() {
            Some(t) => parse_duration("supervisor.healer_cooldown", t).unwrap_or_else(|e| {
                problems.push(e);
                Duration::ZERO
            }),
            None => Duration::from_secs(600),
        };
        if argv.is_empty() || argv[0].trim().is_empty() {
            problems.push(Invalid::new(
                "invalid_command",
                "supervisor.healer",
                "healer needs a program",
            ));
        } else if let Err(e) = find_program(&argv[0], base) {
            problems.push(Invalid::new("program_not_found", "supervisor.healer", e));
        }
        out.healer = Some(Healer {
            argv,
            cwd: base.to_path_buf(),
            cooldown,
            log_lines: file.healer_log_lines.unwrap_or(100),
        });
    }
    let mut by_name = BTreeMap::new();
    for (name, f) in services {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            problems.push(Invalid::new(
                "invalid_service_name",
                format!("services.{name}"),
                "a service name is 1-64 letters, digits, '-', '_' or '.'",
            ));
            continue;
        }
        match service(&name, f, base) {
            Ok(s) => {
                by_name.insert(name, s);
            }
            Err(errs) => problems.extend(
                errs.into_iter()
                    .map(|e| e.within(&format!("services.{name}"))),
            ),
        }
    }
    let graph: BTreeMap<String, Vec<String>> = by_name
        .iter()
        .map(|(n, s): (&String, &ServiceSettings)| {
            (
                n.clone(),
                s.depends_on.iter().map(|(d, _)| d.clone()).collect(),
            )
        })
        .collect();
    match start_order(&graph) {
        Ok(levels) => {
            for level in &levels {
                for n in level {
                    if let Some(s) = by_name.remove(n) {
                        out.services.push(s);
                    }
                }
            }
            out.levels = levels;
        }
        Err(e) => problems.push(e),
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Where `program` is: a path (relative to `base`) or a name on `PATH`.
pub fn find_program(program: &str, base: &Path) -> Result<PathBuf, String> {
    let is_exec = |p: &Path| {
        p.metadata().is_ok_and(|m| {
            // Windows has no execute bit: a file is a program there.
            #[cfg(unix)]
            let runnable = std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0;
            #[cfg(not(unix))]
            let runnable = true;
            m.is_file() && runnable
        })
    };
    if program.contains('/') {
        let p = base.join(program);
        return if is_exec(&p) {
            Ok(p)
        } else {
            Err(format!("program not found or not executable: {program}"))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| is_exec(p))
        .ok_or_else(|| format!("program not found on PATH: {program}"))
}

fn duration(
    field: &str,
    v: Option<&str>,
    default: Duration,
    problems: &mut Vec<Invalid>,
) -> Duration {
    match v {
        Some(t) => parse_duration(field, t).unwrap_or_else(|e| {
            problems.push(e);
            default
        }),
        None => default,
    }
}

fn service(name: &str, f: ServiceFile, base: &Path) -> Result<ServiceSettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let argv: Vec<String> = match (&f.command, f.shell) {
        (toml::Value::String(s), true) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        (toml::Value::Array(items), _) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        (toml::Value::String(_), false) => {
            problems.push(Invalid::new(
                "invalid_command",
                "command",
                "command must be a list of arguments (a string is run by a shell only with shell = true)",
            ));
            Vec::new()
        }
        _ => Vec::new(),
    };
    if (argv.is_empty() || argv[0].trim().is_empty()) && problems.is_empty() {
        problems.push(Invalid::new(
            "invalid_command",
            "command",
            "command must be a non-empty list of strings",
        ));
    }
    let cwd = match &f.cwd {
        Some(c) => base.join(c),
        None => base.to_path_buf(),
    };
    if !cwd.is_dir() {
        problems.push(Invalid::new(
            "invalid_cwd",
            "cwd",
            format!("{} is not a directory", cwd.display()),
        ));
    }
    let depends_on = match &f.depends_on {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(|s| (s.to_string(), Condition::Started)))
            .collect(),
        Some(toml::Value::Table(t)) => t
            .iter()
            .filter_map(|(k, v)| {
                let cond = v.as_str().map(Condition::parse).unwrap_or_else(|| {
                    Err(Invalid::new(
                        "invalid_condition",
                        "depends_on",
                        "a condition is a string",
                    ))
                });
                match cond {
                    Ok(c) => Some((k.clone(), c)),
                    Err(e) => {
                        problems.push(e.within(k).within("depends_on"));
                        None
                    }
                }
            })
            .collect(),
        Some(_) => {
            problems.push(Invalid::new(
                "invalid_depends_on",
                "depends_on",
                "depends_on is a list of names or a table of name = condition",
            ));
            Vec::new()
        }
    };
    let mut policy = Policy::default();
    if let Some(r) = &f.restart {
        match Restart::parse(r) {
            Ok(r) => policy.restart = r,
            Err(e) => problems.push(e),
        }
    }
    if let Some(b) = &f.backoff {
        policy.backoff = Backoff {
            initial: duration(
                "backoff.initial",
                b.initial.as_deref(),
                policy.backoff.initial,
                &mut problems,
            ),
            max: duration(
                "backoff.max",
                b.max.as_deref(),
                policy.backoff.max,
                &mut problems,
            ),
            multiplier: b.multiplier.unwrap_or(policy.backoff.multiplier),
        };
        policy.reset_after = duration(
            "backoff.reset_after",
            b.reset_after.as_deref(),
            policy.reset_after,
            &mut problems,
        );
    }
    if let Some(c) = &f.crash_loop {
        policy.crash_loop = CrashLoop {
            max_restarts: c.restarts.unwrap_or(policy.crash_loop.max_restarts),
            window: duration(
                "crash_loop.window",
                c.window.as_deref(),
                policy.crash_loop.window,
                &mut problems,
            ),
            cooldown: match c.cooldown.as_deref() {
                Some("never") => None,
                Some(t) => Some(duration(
                    "crash_loop.cooldown",
                    Some(t),
                    Duration::from_secs(300),
                    &mut problems,
                )),
                None => policy.crash_loop.cooldown,
            },
        };
    }
    policy.stop_timeout = duration(
        "stop_timeout",
        f.stop_timeout.as_deref(),
        policy.stop_timeout,
        &mut problems,
    );
    let stop_signal = f
        .stop_signal
        .as_deref()
        .map(|s| s.trim().trim_start_matches("SIG").to_ascii_uppercase())
        .unwrap_or_else(|| "TERM".into());
    if !SIGNALS.contains(&stop_signal.as_str()) {
        problems.push(Invalid::new(
            "invalid_signal",
            "stop_signal",
            format!("stop_signal must be one of {}", SIGNALS.join(", ")),
        ));
    }
    let health = match f.health {
        None => None,
        Some(h) => match health(h) {
            Ok((mut h, threshold, restart_unhealthy)) => {
                policy.restart_unhealthy = restart_unhealthy;
                if let Check::Command { cwd: dir, .. } = &mut h.check {
                    dir.clone_from(&cwd);
                }
                policy.has_health = true;
                policy.failure_threshold = threshold;
                Some(h)
            }
            Err(e) => {
                problems.push(e.within("health"));
                None
            }
        },
    };
    let log = f.log.unwrap_or_default();
    if problems.is_empty() {
        let missing_program = find_program(&argv[0], &cwd).err();
        Ok(ServiceSettings {
            name: name.to_string(),
            argv,
            cwd,
            env: f.env,
            truth: f.truth,
            depends_on,
            health,
            policy,
            stop_signal,
            autostart: f.autostart.unwrap_or(true),
            log_max_bytes: log.max_bytes.unwrap_or(10 * 1024 * 1024).max(1024),
            log_keep: log.keep.unwrap_or(5),
            restart_on_truth_change: f.restart_on_truth_change.unwrap_or(true),
            missing_program,
        })
    } else {
        Err(problems)
    }
}

/// A validated health section: the check, its failure threshold, whether unhealthy restarts.
type HealthPolicy = (HealthSettings, u32, bool);

fn health(h: HealthFile) -> Result<HealthPolicy, Invalid> {
    let restart = match h.on_unhealthy.as_deref().map(str::trim) {
        None | Some("report") => false,
        Some("restart") => true,
        Some(other) => {
            return Err(Invalid::new(
                "invalid_on_unhealthy",
                "on_unhealthy",
                format!("on_unhealthy {other:?} must be report or restart"),
            ))
        }
    };
    let need = |field: &str, v: Option<String>| {
        v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            Invalid::new(
                "missing_field",
                field,
                format!("a {} check needs {field}", h.kind),
            )
        })
    };
    let ttl = |v: Option<&str>| -> Result<Duration, Invalid> {
        parse_duration("ttl", v.unwrap_or("30s"))
    };
    let check = match h.kind.as_str() {
        "http" => {
            let url = need("url", h.url.clone())?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Invalid::new(
                    "invalid_url",
                    "url",
                    "url must be http:// or https://",
                ));
            }
            Check::Http {
                url,
                status: h.status,
            }
        }
        "tcp" => Check::Tcp {
            addr: need("addr", h.addr.clone())?,
        },
        "command" => {
            let argv = h.command.clone().unwrap_or_default();
            if argv.is_empty() {
                return Err(Invalid::new(
                    "missing_field",
                    "command",
                    "a command check needs command = [argv]",
                ));
            }
            Check::Command {
                argv,
                cwd: PathBuf::new(),
            }
        }
        "heartbeat" => Check::Heartbeat {
            ttl: ttl(h.ttl.as_deref())?,
        },
        "redis_key" => {
            let url = need("url", h.url.clone())?;
            let (addr, password, db) = parse_redis_url(&url)?;
            Check::RedisKey {
                addr,
                password,
                db,
                key: need("key", h.key.clone())?,
                ttl: ttl(h.ttl.as_deref())?,
            }
        }
        other => {
            return Err(Invalid::new(
                "invalid_health_type",
                "type",
                format!("health type {other:?} must be http, tcp, command, heartbeat or redis_key"),
            ))
        }
    };
    let d = |field: &str, v: &Option<String>, default: Duration| match v {
        Some(t) => parse_duration(field, t),
        None => Ok(default),
    };
    let interval = match &check {
        // A heartbeat is judged as often as it can go stale.
        Check::Heartbeat { ttl } => d(
            "interval",
            &h.interval,
            (*ttl / 2).max(Duration::from_millis(100)),
        )?,
        _ => d("interval", &h.interval, Duration::from_secs(5))?,
    };
    Ok((
        HealthSettings {
            check,
            interval: interval.max(Duration::from_millis(50)),
            timeout: d("timeout", &h.timeout, Duration::from_secs(2))?,
            initial_delay: d("initial_delay", &h.initial_delay, Duration::ZERO)?,
        },
        h.failure_threshold
            .unwrap_or(if h.kind == "heartbeat" { 1 } else { 3 })
            .max(1),
        restart,
    ))
}

/// `redis://[:password@]host[:port][/db]` → (host:port, password, db).
fn parse_redis_url(url: &str) -> Result<(String, Option<String>, u32), Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_url",
            "url",
            "url must be redis://[:password@]host[:port][/db]",
        )
    };
    let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (hostport, db) = match hostpart.split_once('/') {
        Some((h, d)) if !d.is_empty() => (h, d.parse::<u32>().map_err(|_| bad())?),
        Some((h, _)) => (h, 0),
        None => (hostpart, 0),
    };
    if hostport.is_empty() {
        return Err(bad());
    }
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    let password = auth.map(|a| a.rsplit_once(':').map_or(a, |(_, p)| p).to_string());
    Ok((addr, password.filter(|p| !p.is_empty()), db))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redis_urls() {
        assert_eq!(
            parse_redis_url("redis://127.0.0.1").unwrap(),
            ("127.0.0.1:6379".into(), None, 0)
        );
        assert_eq!(
            parse_redis_url("redis://:pw@h:7000/2").unwrap(),
            ("h:7000".into(), Some("pw".into()), 2)
        );
        assert!(parse_redis_url("http://x").is_err());
        assert!(parse_redis_url("redis:///1").is_err());
    }
}

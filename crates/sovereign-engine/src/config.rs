//! The configuration file (TOML): the sections of every capability composed into one
//! [`ConfigFile`], validated into one [`Settings`].
//!
//! Each capability owns its section's file types, typed settings and validation (its
//! `settings.rs`); this file only composes them, in dependency order (trading before signals
//! and the handler rules, the handler rules before the tasks), and only the engine root
//! imports it. Parsing is strict (unknown keys are errors, with line and column) and
//! validation collects every problem of every section at once, each named with the line of its
//! key, so a person fixes the file in one pass. Nothing starts until the whole file is valid.
//! With no file, [`Settings::default`] is a working engine on 127.0.0.1:8080.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sovereign_core::error::Invalid;
use sovereign_core::schedule::parse_duration;
use sovereign_core::task::HandlerRules;

use crate::executor::settings::{
    self as executor, CalendarFile, ExecutorSettings, ResultsFile, TaskFile,
};
use crate::handlers::settings::{self as handlers, HandlerSettings, HandlersFile};
use crate::notify::settings::{self as notify, NotifyFile, NotifySettings};
use crate::supervisor::settings::{
    self as supervisor, ServiceFile, SupervisorFile, SupervisorSettings,
};
use crate::trading::settings::{
    self as trading, SignalFile, StrategySettings, TradingFile, TradingSettings,
};
use crate::truth::settings::{self as truth, TruthSection, TruthSettings};
use crate::webhooks::settings::{self as webhooks, WebhookSettings, WebhooksFile};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub access: crate::access::settings::AccessFile,
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
    #[serde(default)]
    pub trading: TradingFile,
    #[serde(default)]
    pub signals: BTreeMap<String, SignalFile>,
    #[serde(default)]
    pub notify: NotifyFile,
    #[serde(default)]
    pub supervisor: SupervisorFile,
    #[serde(default)]
    pub truth: TruthSection,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceFile>,
    #[serde(default)]
    pub deploy: crate::deploy::settings::DeployFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_timeout: Option<String>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub tls: Option<TlsFile>,
    pub plain: Option<PlainFile>,
}

/// `[server.tls]`: serve HTTPS with this certificate (PEM, the chain) and key (PEM).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[server.plain]`: a second, plain-HTTP listener for the webhook and signal routes only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainFile {
    pub port: u16,
    pub bind: Option<String>,
}

/// The certificate and key files TLS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The plain listener beside a TLS one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainSettings {
    pub bind: String,
    pub port: u16,
}

/// `[server]`: where the engine listens and how it stops.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: String,
    pub port: u16,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    /// A request's head must arrive within this of the connection being ready for it (also
    /// the idle keep-alive timeout, and the TLS handshake's).
    pub header_timeout: Duration,
    /// A request's body must arrive within this.
    pub body_timeout: Duration,
    /// Connections served at once (more wait in the backlog).
    pub max_connections: usize,
    pub tls: Option<TlsSettings>,
    pub plain: Option<PlainSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            tls: None,
            plain: None,
        }
    }
}

impl ServerSettings {
    /// Whether the engine listens on loopback only (the plain listener too).
    pub fn is_loopback(&self) -> bool {
        let loopback = |bind: &str| {
            bind.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        };
        loopback(&self.bind) && self.plain.as_ref().is_none_or(|p| loopback(&p.bind))
    }
}

/// Validated settings the engine runs on: one part per capability.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub server: ServerSettings,
    pub access: crate::access::AccessSettings,
    pub executor: ExecutorSettings,
    pub handlers: HandlerSettings,
    pub webhooks: WebhookSettings,
    pub trading: TradingSettings,
    pub signals: BTreeMap<String, StrategySettings>,
    pub notify: NotifySettings,
    /// The services to run, in start order.
    pub supervisor: SupervisorSettings,
    pub truth: TruthSettings,
    pub deploy: crate::deploy::settings::DeploySettings,
    /// The data dir (`--data-dir`); relative paths in the config resolve inside it.
    pub data_dir: PathBuf,
    /// The engine's own base URL once it listens (given to services as `SOVEREIGN_URL`).
    pub url: String,
    /// The config file and the SHA-256 of its text (on the audit trail at every start, so a
    /// changed config is visible there); `None` when running on the defaults.
    pub source: Option<(String, String)>,
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Settings {
    /// Where the engine listens: the main listener, then the plain one (so `http_request` is
    /// kept off the engine's own API). The main port is the one in `url` once the engine
    /// listens (`--port 0` picks it), else the configured one; a port of 0 is not known yet.
    pub fn listeners(&self) -> Vec<std::net::SocketAddr> {
        let at = |bind: &str, port: u16| {
            bind.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| std::net::SocketAddr::new(ip, port))
        };
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .unwrap_or(self.server.port);
        let mut own: Vec<std::net::SocketAddr> = at(&self.server.bind, port).into_iter().collect();
        if let Some(plain) = &self.server.plain {
            own.extend(at(&plain.bind, plain.port));
        }
        own
    }

    /// Whether webhooks from unlisted sources are refused: as configured, else whenever the
    /// server is reachable beyond loopback or keys are required (safe by default: in `keys`
    /// mode a webhook is authorised by its source's credential, never by nothing).
    pub fn requires_known_source(&self) -> bool {
        self.webhooks.require_known_source.unwrap_or_else(|| {
            let loopback = self.server.is_loopback();
            !loopback || self.access.mode_for(loopback) == crate::access::Mode::Keys
        })
    }

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{}: cannot read: {e}", path.display())],
        })?;
        let origin = path.display().to_string();
        let mut settings = Settings::parse(&text, &origin)?;
        settings.source = Some((origin, sovereign_core::audit::hash_of(&text)));
        Ok(settings)
    }

    /// Parse and validate config text; `origin` names the file in messages. Every problem is
    /// reported in one run: each unknown key or value of the wrong type (the line is set aside
    /// and the file read again), then every value that is out of range.
    pub fn parse(text: &str, origin: &str) -> Result<Settings, ConfigError> {
        let mut problems: Vec<String> = Vec::new();
        let mut working = text.to_string();
        let file = loop {
            match toml::from_str::<ConfigFile>(&working) {
                Ok(f) => break Some(f),
                Err(e) => {
                    let message = one_line(&e.to_string());
                    problems.push(format!("{origin}: {message}"));
                    // A syntax error leaves nothing reliable to read further.
                    let shape = [
                        "unknown field",
                        "invalid type",
                        "invalid value",
                        "missing field",
                    ];
                    let go_on = shape.iter().any(|s| message.contains(s)) && problems.len() < 50;
                    match e.span() {
                        Some(span) if go_on && set_aside(&mut working, span.start) => {}
                        _ => break None,
                    }
                }
            }
        };
        let base = Path::new(origin)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
        if let Some(file) = file {
            match Settings::from_file(file, &base) {
                Ok(settings) if problems.is_empty() => return Ok(settings),
                Ok(_) => {}
                Err(found) => problems.extend(found.into_iter().map(|p| {
                    match p.field.as_deref().and_then(|f| line_of(text, f)) {
                        Some(line) => format!("{origin}:{line}: {p}"),
                        None => format!("{origin}: {p}"),
                    }
                })),
            }
        }
        Err(ConfigError { problems })
    }

    /// Problems that do not stop the engine but that `sovereign check` reports: programs of
    /// services that cannot be found now (those services fail with the reason when started).
    pub fn warnings(&self) -> Vec<String> {
        self.supervisor
            .services
            .iter()
            .filter_map(|s| {
                s.missing_program
                    .as_ref()
                    .map(|m| format!("services.{}.command: {m}", s.name))
            })
            .collect()
    }

    fn from_file(file: ConfigFile, base: &Path) -> Result<Settings, Vec<Invalid>> {
        let mut s = Settings::default();
        let mut problems: Vec<Invalid> = Vec::new();
        let mut section = |r: Result<(), Vec<Invalid>>| {
            if let Err(errs) = r {
                problems.extend(errs);
            }
        };
        section(server(file.server, base).map(|v| s.server = v));
        section(crate::access::settings::settings(file.access).map(|v| s.access = v));
        let (mut trading, trading_problems) = trading::settings(file.trading);
        // A gateway's folder, like every path in the file, is relative to the file.
        for g in &mut trading.gateways {
            if let trading::VenueSettings::NinjaTrader(nt) = &mut g.venue {
                nt.dir = base.join(&nt.dir);
            }
        }
        s.trading = trading;
        section(if trading_problems.is_empty() {
            Ok(())
        } else {
            Err(trading_problems)
        });
        section(trading::strategies(file.signals, &s.trading).map(|v| s.signals = v));
        section(handlers::settings(file.handlers).map(|v| s.handlers = v));
        let rules = HandlerRules {
            command_allow: s.handlers.command_allow.clone(),
            instruments: s.trading.instruments.clone(),
            egress: s.handlers.egress(s.listeners()),
        };
        section(
            executor::settings(file.results, file.calendars, file.tasks, &rules)
                .map(|v| s.executor = v),
        );
        section(webhooks::settings(file.webhooks).map(|v| s.webhooks = v));
        section(truth::settings(file.truth, base).map(|v| s.truth = v));
        section(
            supervisor::settings(file.supervisor, file.services, base).map(|v| s.supervisor = v),
        );
        section(notify::settings(file.notify).map(|v| s.notify = v));
        let services = s
            .supervisor
            .services
            .iter()
            .map(|svc| svc.name.clone())
            .collect();
        section(
            crate::deploy::settings::settings(file.deploy, base, &s.executor.calendars, &services)
                .map(|v| s.deploy = v),
        );
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(problems)
        }
    }
}

fn server(file: ServerFile, base: &Path) -> Result<ServerSettings, Vec<Invalid>> {
    let mut s = ServerSettings::default();
    let mut problems = Vec::new();
    let check_bind = |bind: &str, field: &str, problems: &mut Vec<Invalid>| {
        if bind.parse::<std::net::IpAddr>().is_err() {
            problems.push(Invalid::new(
                "invalid_bind",
                field,
                format!("{bind:?} is not an IP address"),
            ));
        }
    };
    if let Some(bind) = file.bind {
        check_bind(&bind, "server.bind", &mut problems);
        s.bind = bind;
    }
    for (field, value, slot) in [
        (
            "server.header_timeout",
            &file.header_timeout,
            &mut s.header_timeout,
        ),
        (
            "server.body_timeout",
            &file.body_timeout,
            &mut s.body_timeout,
        ),
    ] {
        if let Some(t) = value {
            match parse_duration(field, t) {
                Ok(d) if d.is_zero() => problems.push(Invalid::new(
                    "invalid_duration",
                    field,
                    format!("{field} must be more than 0"),
                )),
                Ok(d) => *slot = d,
                Err(e) => problems.push(e),
            }
        }
    }
    match file.max_connections {
        Some(0) => problems.push(Invalid::new(
            "invalid_count",
            "server.max_connections",
            "server.max_connections must be at least 1",
        )),
        Some(n) => s.max_connections = n,
        None => {}
    }
    if let Some(tls) = file.tls {
        let (cert, key) = (base.join(&tls.cert), base.join(&tls.key));
        for (field, path) in [("server.tls.cert", &cert), ("server.tls.key", &key)] {
            if let Err(e) = std::fs::metadata(path) {
                problems.push(Invalid::new(
                    "unreadable_file",
                    field,
                    format!("{}: {e}", path.display()),
                ));
            }
        }
        s.tls = Some(TlsSettings { cert, key });
    }
    if let Some(plain) = file.plain {
        let bind = plain.bind.unwrap_or_else(|| s.bind.clone());
        check_bind(&bind, "server.plain.bind", &mut problems);
        if s.tls.is_none() {
            problems.push(Invalid::new(
                "plain_without_tls",
                "server.plain",
                "server.plain is a second listener beside TLS: set [server.tls] too \
                 (without TLS the main listener is plain already)",
            ));
        }
        s.plain = Some(PlainSettings {
            bind,
            port: plain.port,
        });
    }
    if let Some(port) = file.port {
        s.port = port;
    }
    if let Some(n) = file.max_body_bytes {
        s.max_body_bytes = n;
    }
    if let Some(t) = &file.shutdown_timeout {
        match parse_duration("server.shutdown_timeout", t) {
            Ok(d) => s.shutdown_timeout = d,
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

/// The line of `text` where the key at `field` (`a.b[2].c`) is written, or of the nearest
/// enclosing key that is (a missing key is reported at its table).
fn line_of(text: &str, field: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable = doc.get_ref();
    let mut value: Option<&DeValue> = None;
    let mut at: Option<usize> = None;
    for segment in field.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        if let Some(DeValue::Table(t)) = value {
            table = t;
        } else if value.is_some() {
            break;
        }
        let Some((key, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        at = Some(key.span().start);
        value = Some(v.get_ref());
        if let (Some(i), DeValue::Array(items)) = (index, v.get_ref()) {
            match items.get(i) {
                Some(item) => {
                    at = Some(item.span().start);
                    value = Some(item.get_ref());
                }
                None => break,
            }
        }
    }
    at.and_then(|offset| text.get(..offset))
        .map(|before| before.matches('\n').count() + 1)
}

/// Blank the line holding byte `offset` (a table header: the whole table), keeping line
/// numbers; false when nothing changed.
fn set_aside(text: &mut String, offset: usize) -> bool {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line_end = |from: usize, t: &str| t[from..].find('\n').map_or(t.len(), |i| from + i);
    let mut end = line_end(start, text);
    if text[start..end].trim_start().starts_with('[') {
        // The table and its keys, up to the next header.
        while end < text.len() {
            let next = end + 1;
            let next_end = line_end(next, text);
            if text[next..next_end].trim_start().starts_with('[') {
                break;
            }
            end = next_end;
        }
    }
    let blanked: String = text[start..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    if blanked == text[start..end] {
        return false;
    }
    text.replace_range(start..end, &blanked);
    true
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
        assert_eq!(s.server.bind, "127.0.0.1");
        assert_eq!(s.server.port, 8080);
        assert!(s.handlers.command_allow.is_empty());
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
    fn every_problem_is_reported_in_one_run() {
        let text = "[server]\nbnd = \"x\"\nport = \"eighty\"\n[trading.accounts.paper]\nmax_order_qty = \"-5\"\nmax_open_orders = 0\n[bogus]\nx = 1\n";
        let e = Settings::parse(text, "t.toml").unwrap_err();
        let all = e.problems.join("\n");
        for needle in [
            "bnd",
            "line 2",
            "eighty",
            "line 3",
            "bogus",
            "t.toml:5: trading.accounts.paper.max_order_qty: max_order_qty must be greater than 0",
            "t.toml:6: trading.accounts.paper.max_open_orders: max_open_orders must be at least 1",
        ] {
            assert!(all.contains(needle), "{needle:?} in {all}");
        }
    }

    #[test]
    fn problems_name_the_line_of_their_key() {
        let text = "[server]\nport = 8080\n\n[webhooks]\ndedup_window = \"soon\"\n\n[[webhooks.routes]]\nsource = \"a\"\ntasks = [\"x\"]\n\n[[webhooks.routes]]\nsource = \"b\"\ntasks = []\n";
        let e = Settings::parse(text, "t.toml").unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.starts_with("t.toml:5: webhooks.dedup_window:")),
            "{e}"
        );
        assert!(
            e.problems
                .iter()
                .any(|p| p.starts_with("t.toml:13: webhooks.routes[1].tasks:")),
            "{e}"
        );
        assert_eq!(line_of(text, "webhooks.routes[1].missing"), Some(11));
        assert_eq!(line_of(text, "nowhere.at.all"), None);
    }

    #[test]
    fn all_problems_reported_at_once() {
        let text = "[server]\nbind = \"nope\"\nshutdown_timeout = \"soon\"\n[calendars.x]\nextends = \"mars\"\n";
        let e = Settings::parse(text, "t.toml").unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
    }

    #[test]
    fn trading_and_signal_problems_are_all_reported() {
        // Two bad instruments, three bad limits on one account, and a strategy wrong in three
        // ways: every one is reported, each at the line of its key; a strategy on the account
        // with bad limits is not reported as naming an unknown account.
        let text = r#"
[trading]
feed_interval = "often"
[trading.instruments.XA]
tick_size = "0"
[trading.instruments.XB]
tick_size = "x"
[trading.accounts.main]
starting_cash = "lots"
max_position = "-"
rate_window = "soon"
max_order_rate = 5
[signals.s]
secret = "short"
account = "nope"
qty = "two"
[signals.t]
secret = "long enough"
account = "main"
"#;
        let e = Settings::parse(text, "t.toml").unwrap_err();
        let fields = [
            "trading.feed_interval",
            "trading.instruments.XA",
            "trading.instruments.XB.tick_size",
            "trading.accounts.main.starting_cash",
            "trading.accounts.main.max_position",
            "trading.accounts.main.rate_window",
            "signals.s.secret",
            "signals.s.account",
            "signals.s.qty",
        ];
        for f in fields {
            assert!(
                e.problems.iter().any(|p| p.contains(&format!(": {f}:"))),
                "{f} missing from:\n{e}"
            );
        }
        assert_eq!(e.problems.len(), fields.len(), "{e}");
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
        assert_eq!(s.webhooks.sources.len(), 2);
        assert!(matches!(
            s.webhooks.sources["tv"],
            sovereign_core::webhook::SourceAuth::UrlToken { .. }
        ));
        assert_eq!(s.executor.tasks[0].policy.retries, Some(2));
        assert_eq!(s.webhooks.routes[0].tasks, vec!["t1"]);
    }
}

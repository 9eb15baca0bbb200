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
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{AssetClass, Instrument, Instruments, Symbol};
use sovereign_core::trading::matching::PaperConfig;
use sovereign_core::trading::oms::AccountConfig;
use sovereign_core::trading::order::Tif;
use sovereign_core::trading::risk::{RiskLimits, TradingHours};
use sovereign_core::trading::signal::StrategyRule;
use sovereign_core::webhook::{Route, SourceAuth};

use crate::notifier::NotifySettings;
use crate::supervisor::settings::{ServiceFile, SupervisorFile, SupervisorSettings};
use crate::trading::TradingSettings;

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
    #[serde(default)]
    pub trading: TradingFile,
    #[serde(default)]
    pub signals: BTreeMap<String, SignalFile>,
    #[serde(default)]
    pub notify: NotifyFile,
    #[serde(default)]
    pub supervisor: SupervisorFile,
    #[serde(default)]
    pub truth: TruthFileSection,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceFile>,
}

/// `[truth]`: where the Truth files are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthFileSection {
    /// Directory with `node.json` and `components/` (relative to the config file; default
    /// `truth` there, when it has a `node.json`).
    pub dir: Option<String>,
    /// How often the files are checked for changes (default 1s).
    pub watch_interval: Option<String>,
}

/// `[notify]`: alert channels, routing, the digest, and the engine's alert rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    pub dedup_window: Option<String>,
    /// Attempts per alert and channel before it is given up as dead.
    pub max_attempts: Option<u32>,
    /// Raise a P1 alert when a task's runs fail this many times in a row (0: never).
    pub task_failures: Option<u32>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelFile>,
    #[serde(default)]
    pub routes: Vec<AlertRouteFile>,
    #[serde(default)]
    pub digest: DigestFile,
}

/// `[notify.channels.NAME]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelFile {
    pub kind: String,
    /// slack, discord, webhook: where to POST (a secret: never shown).
    pub url: Option<String>,
    /// webhook: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// file: the JSONL file (relative paths are inside the data dir).
    pub path: Option<String>,
    /// email: `host`, `port` (default 587 for starttls, 465 for tls, 25 for none).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// email: `starttls` (default), `tls` or `none`.
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// email: read the password from this environment variable instead.
    pub password_env: Option<String>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// Per-attempt timeout (default 10s).
    pub timeout: Option<String>,
    /// Rate limit: at most `burst` messages at once, then one per `rate_per`.
    pub rate_per: Option<String>,
    pub rate_burst: Option<u32>,
}

impl std::fmt::Debug for ChannelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelFile")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// `[[notify.routes]]`: alerts of these priorities from these sources go to these channels.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRouteFile {
    #[serde(default)]
    pub priorities: Vec<String>,
    pub sources: Option<Vec<String>>,
    pub channels: Vec<String>,
}

/// `[notify.digest]`: when the daily digest of P3 alerts goes out, and where.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestFile {
    /// Local time of day, `HH:MM` (default 18:00).
    pub at: Option<String>,
    /// IANA zone (default UTC).
    pub tz: Option<String>,
    /// Default: the e-mail channels, else the file channels.
    pub channels: Option<Vec<String>>,
}

/// `[signals.NAME]`: how alerts posted to `/api/signals/NAME` become orders.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalFile {
    /// Must equal the alert body's `secret` (TradingView cannot set headers).
    pub secret: String,
    pub account: Option<String>,
    /// Ticker → symbol, e.g. `"ES1!" = "ES"`.
    #[serde(default)]
    pub symbols: BTreeMap<String, String>,
    /// A fixed quantity per alert ("2"), or "signal" to use the alert's contracts/qty (default).
    pub qty: Option<String>,
    /// An opposite alert closes and reverses the position (default true).
    pub reverse: Option<bool>,
    /// Use the alert's price as a limit (default false: market orders).
    pub use_signal_price: Option<bool>,
    pub tif: Option<String>,
    pub dedup_window: Option<String>,
}

/// A configured strategy.
#[derive(Clone)]
pub struct StrategySettings {
    pub rule: StrategyRule,
    pub secret: String,
    pub dedup_window: Duration,
}

impl std::fmt::Debug for StrategySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrategySettings")
            .field("rule", &self.rule)
            .field("secret", &"<redacted>")
            .field("dedup_window", &self.dedup_window)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingFile {
    /// Random-walk prices on every instrument (default on).
    pub synthetic_feed: Option<bool>,
    pub feed_interval: Option<String>,
    /// Market orders without a bid/ask fill this many ticks worse than last.
    pub slippage_ticks: Option<u32>,
    /// Commission per contract/share/coin, e.g. "2.25".
    pub commission_per_unit: Option<String>,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountFile>,
    #[serde(default)]
    pub instruments: BTreeMap<String, InstrumentFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFile {
    pub starting_cash: Option<String>,
    pub max_order_qty: Option<String>,
    pub max_order_notional: Option<String>,
    pub max_position: Option<String>,
    pub max_gross_exposure: Option<String>,
    pub max_open_orders: Option<u32>,
    pub max_order_rate: Option<u32>,
    pub rate_window: Option<String>,
    pub price_band_pct: Option<String>,
    pub allowed_symbols: Option<Vec<String>>,
    pub trading_hours: Option<HoursFile>,
    pub daily_loss_limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursFile {
    pub tz: String,
    pub start: String,
    pub end: String,
    pub weekdays: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentFile {
    pub class: Option<String>,
    pub tick_size: String,
    pub multiplier: Option<String>,
    pub qty_step: Option<String>,
    pub currency: Option<String>,
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
    pub trading: TradingSettings,
    pub synthetic_feed: bool,
    pub feed_interval: Duration,
    pub signals: BTreeMap<String, StrategySettings>,
    pub notify: NotifySettings,
    /// The data dir (`--data-dir`); relative paths in the config resolve inside it.
    pub data_dir: std::path::PathBuf,
    /// The services to run, in start order.
    pub supervisor: SupervisorSettings,
    /// The Truth directory, if any, and how often it is checked for changes.
    pub truth_dir: Option<std::path::PathBuf>,
    pub truth_interval: Duration,
    /// The engine's own base URL once it listens (given to services as `SOVEREIGN_URL`).
    pub url: String,
    /// The config file and the SHA-256 of its text (on the audit trail at every start, so a
    /// changed config is visible there); `None` when running on the defaults.
    pub source: Option<(String, String)>,
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
            handler_rules: HandlerRules {
                command_allow: Vec::new(),
                instruments: Instruments::builtin(),
            },
            http_max_response_bytes: 64 * 1024,
            calendars: Calendars::with_builtins(),
            dedup_window: Duration::from_secs(600),
            require_known_source: None,
            sources: BTreeMap::new(),
            routes: Vec::new(),
            tasks: Vec::new(),
            trading: TradingSettings {
                instruments: Instruments::builtin(),
                paper: PaperConfig {
                    slippage_ticks: 1,
                    commission_per_unit: Money::ZERO,
                },
                accounts: vec![default_account("paper")],
            },
            synthetic_feed: true,
            feed_interval: Duration::from_millis(500),
            signals: BTreeMap::new(),
            notify: NotifySettings::default(),
            data_dir: std::path::PathBuf::from("."),
            source: None,
            supervisor: SupervisorSettings::default(),
            url: String::new(),
            truth_dir: None,
            truth_interval: Duration::from_secs(1),
        }
    }
}

/// The paper account every engine has unless the config defines its accounts: 100,000 USD with
/// fat-finger limits on (order size, open orders, ±10% price band).
pub fn default_account(name: &str) -> AccountConfig {
    AccountConfig {
        name: name.to_string(),
        starting_cash: Money(Fixed::from_int(100_000).unwrap_or(Fixed::ZERO)),
        limits: RiskLimits {
            max_order_qty: Fixed::from_int(1_000).map(Qty),
            max_open_orders: Some(10_000),
            price_band_pct: Fixed::from_int(10),
            ..RiskLimits::default()
        },
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
        let origin = path.display().to_string();
        let mut settings = Settings::parse(&text, &origin)?;
        settings.source = Some((origin, sovereign_core::audit::hash_of(&text)));
        Ok(settings)
    }

    /// Parse and validate config text; `origin` names the file in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Settings, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![format!("{origin}: {}", one_line(&e.to_string()))],
        })?;
        let base = Path::new(origin)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
        Settings::from_file(file, &base).map_err(|problems| ConfigError {
            problems: problems
                .into_iter()
                .map(
                    |p| match p.field.as_deref().and_then(|f| line_of(text, f)) {
                        Some(line) => format!("{origin}:{line}: {p}"),
                        None => format!("{origin}: {p}"),
                    },
                )
                .collect(),
        })
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
        let mut note = |r: Result<(), Invalid>| {
            if let Err(e) = r {
                problems.push(e);
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
        note(trading(file.trading, &mut s));
        s.handler_rules.instruments = s.trading.instruments.clone();
        for (name, f) in file.signals {
            note(strategy(&name, f, &s).map(|st| {
                s.signals.insert(name.clone(), st);
            }));
        }
        s.truth_dir = match &file.truth.dir {
            Some(d) => Some(base.join(d)),
            None => Some(base.join("truth")).filter(|d| d.join("node.json").is_file()),
        };
        if let Some(t) = &file.truth.watch_interval {
            note(parse_duration("truth.watch_interval", t).map(|d| s.truth_interval = d));
        }
        match crate::supervisor::settings::settings(file.supervisor, file.services, base) {
            Ok(sup) => s.supervisor = sup,
            Err(errs) => errs.into_iter().for_each(|e| note(Err(e))),
        }
        match crate::notifier::settings(file.notify) {
            Ok(n) => s.notify = n,
            Err(errs) => errs.into_iter().for_each(|e| note(Err(e))),
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

fn strategy(name: &str, f: SignalFile, s: &Settings) -> Result<StrategySettings, Invalid> {
    let field = |k: &str| format!("signals.{name}.{k}");
    if f.secret.len() < 8 {
        return Err(Invalid::new(
            "weak_secret",
            field("secret"),
            "the secret must be at least 8 characters",
        ));
    }
    let account = f.account.unwrap_or_else(|| "paper".into());
    if !s.trading.accounts.iter().any(|a| a.name == account) {
        return Err(Invalid::new(
            "unknown_account",
            field("account"),
            format!("no trading account {account:?}"),
        ));
    }
    let symbols = f
        .symbols
        .iter()
        .map(|(ticker, sym)| {
            s.trading
                .instruments
                .find(sym)
                .map(|i| (ticker.clone(), i.symbol.clone()))
                .map_err(|e| Invalid::new(e.code, field(&format!("symbols.{ticker}")), e.message))
        })
        .collect::<Result<_, _>>()?;
    let fixed_qty = match f.qty.as_deref() {
        None | Some("signal") => None,
        Some(q) => Some(Qty(fixed_field(&field("qty"), q)?)),
    };
    let tif = match f.tif.as_deref() {
        Some(t) => Tif::parse(t).map_err(|e| e.within(&format!("signals.{name}")))?,
        None => Tif::Day,
    };
    let dedup_window = match &f.dedup_window {
        Some(w) => parse_duration(&field("dedup_window"), w)?,
        None => Duration::from_secs(600),
    };
    Ok(StrategySettings {
        rule: StrategyRule {
            name: name.to_string(),
            account,
            symbols,
            fixed_qty,
            reverse: f.reverse.unwrap_or(true),
            use_signal_price: f.use_signal_price.unwrap_or(false),
            tif,
        },
        secret: f.secret,
        dedup_window,
    })
}

fn fixed_field(field: &str, text: &str) -> Result<Fixed, Invalid> {
    Fixed::parse(text).map_err(|e| Invalid::new("invalid_number", field, e.to_string()))
}

fn trading(file: TradingFile, s: &mut Settings) -> Result<(), Invalid> {
    if let Some(on) = file.synthetic_feed {
        s.synthetic_feed = on;
    }
    if let Some(t) = &file.feed_interval {
        s.feed_interval = parse_duration("trading.feed_interval", t)?;
    }
    if let Some(n) = file.slippage_ticks {
        s.trading.paper.slippage_ticks = n;
    }
    if let Some(c) = &file.commission_per_unit {
        s.trading.paper.commission_per_unit = Money(fixed_field("trading.commission_per_unit", c)?);
    }
    for (name, i) in file.instruments {
        let field = |f: &str| format!("trading.instruments.{name}.{f}");
        let symbol = Symbol::parse(&name).map_err(|e| e.within("trading.instruments"))?;
        let class = match i.class.as_deref().unwrap_or("future") {
            "future" => AssetClass::Future,
            "equity" => AssetClass::Equity,
            "crypto" => AssetClass::Crypto,
            other => {
                return Err(Invalid::new(
                    "invalid_class",
                    field("class"),
                    format!("class must be future, equity or crypto, not {other:?}"),
                ))
            }
        };
        let tick = fixed_field(&field("tick_size"), &i.tick_size)?;
        let multiplier = fixed_field(&field("multiplier"), i.multiplier.as_deref().unwrap_or("1"))?;
        let step = fixed_field(&field("qty_step"), i.qty_step.as_deref().unwrap_or("1"))?;
        if !tick.is_positive() || !multiplier.is_positive() || !step.is_positive() {
            return Err(Invalid::new(
                "invalid_instrument",
                format!("trading.instruments.{name}"),
                "tick_size, multiplier and qty_step must be greater than 0",
            ));
        }
        s.trading.instruments.insert(Instrument {
            symbol,
            class,
            tick_size: Price(tick),
            multiplier,
            currency: i.currency.unwrap_or_else(|| "USD".into()),
            qty_step: Qty(step),
        });
    }
    if !file.accounts.is_empty() {
        s.trading.accounts.clear();
    }
    for (name, a) in file.accounts {
        let field = |f: &str| format!("trading.accounts.{name}.{f}");
        let money = |f: &str, v: &Option<String>| -> Result<Option<Money>, Invalid> {
            v.as_deref()
                .map(|t| fixed_field(&field(f), t).map(Money))
                .transpose()
        };
        let qty = |f: &str, v: &Option<String>| -> Result<Option<Qty>, Invalid> {
            v.as_deref()
                .map(|t| fixed_field(&field(f), t).map(Qty))
                .transpose()
        };
        let mut account = default_account(&name);
        if let Some(c) = money("starting_cash", &a.starting_cash)? {
            account.starting_cash = c;
        }
        let l = &mut account.limits;
        if let Some(q) = qty("max_order_qty", &a.max_order_qty)? {
            l.max_order_qty = Some(q);
        }
        l.max_order_notional = money("max_order_notional", &a.max_order_notional)?;
        l.max_position = qty("max_position", &a.max_position)?;
        l.max_gross_exposure = money("max_gross_exposure", &a.max_gross_exposure)?;
        if let Some(n) = a.max_open_orders {
            l.max_open_orders = Some(n);
        }
        if let Some(n) = a.max_order_rate {
            let window = match &a.rate_window {
                Some(w) => parse_duration(&field("rate_window"), w)?,
                None => Duration::from_secs(1),
            };
            l.max_orders_per_window = Some((n, window));
        }
        if let Some(p) = &a.price_band_pct {
            l.price_band_pct = Some(fixed_field(&field("price_band_pct"), p)?);
        }
        if let Some(symbols) = &a.allowed_symbols {
            l.allowed_symbols = Some(
                symbols
                    .iter()
                    .map(|t| {
                        s.trading
                            .instruments
                            .find(t)
                            .map(|i| i.symbol.clone())
                            .map_err(|e| e.within(&field("allowed_symbols")))
                    })
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(h) = &a.trading_hours {
            let days: Vec<Weekday> = match &h.weekdays {
                Some(d) => d
                    .iter()
                    .map(|x| {
                        x.parse::<Weekday>().map_err(|_| {
                            Invalid::new(
                                "invalid_weekday",
                                field("trading_hours.weekdays"),
                                format!("{x:?} is not a weekday"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                None => vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
            };
            l.trading_hours = Some(
                TradingHours::parse(&h.tz, &h.start, &h.end, &days)
                    .map_err(|e| e.within(&format!("trading.accounts.{name}")))?,
            );
        }
        l.daily_loss_limit = money("daily_loss_limit", &a.daily_loss_limit)?;
        s.trading.accounts.push(account);
    }
    Ok(())
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

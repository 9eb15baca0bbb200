//! The notifier: alerts go into a durable outbox and out to their channels, in order, each
//! delivered once per channel.
//!
//! `raise` checks dedup, routes the alert (pure, `sovereign_core::notify`), gives it the next id
//! and queues the outbox row, all under one short lock, so the store holds alerts in id order.
//! Each channel has one worker that takes its jobs in that order and waits until a job's row is
//! durable before it sends. A worker finishes one alert (delivered, dropped, dead or skipped)
//! before it starts the next, so a channel that is down holds its queue rather than reorder
//! it. Every delivery's state is in the store; at start the workers pick up what is pending.
//!
//! Exactly once per channel: a delivery is marked delivered as soon as the channel took it.
//! A crash between the channel's answer and that mark would send it again after the restart;
//! every HTTP delivery carries `Idempotency-Key: sovereign-alert-ID` (and webhook bodies the
//! `id`) so a receiver can drop that copy, and the file channel checks its own last line.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::notify::{
    self, Alert, AlertDedup, Channel, ChannelKind, Outcome, Priority, RateLimit, RetryDecision,
    RetryPolicy, Route, Routing,
};
use sovereign_core::schedule::parse_duration;
use sovereign_store::{AlertQuery, AlertRecord, DeliveryRecord, DeliveryStatus, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::config::{ChannelFile, NotifyFile};
use crate::handlers::error_chain;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// The validated `[notify]` section.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub channels: Vec<ChannelSettings>,
    pub routes: Vec<Route>,
    pub dedup_window: Duration,
    pub retry: RetryPolicy,
    pub digest: DigestSettings,
    /// Raise a P1 alert when a task fails this many runs in a row (0: never).
    pub task_failures: u32,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            channels: Vec::new(),
            routes: Vec::new(),
            dedup_window: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            digest: DigestSettings {
                at: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
                tz: chrono_tz::UTC,
                channels: Vec::new(),
            },
            task_failures: 3,
        }
    }
}

/// When the daily digest goes out and where.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    pub at: NaiveTime,
    pub tz: chrono_tz::Tz,
    pub channels: Vec<String>,
}

/// One configured channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub name: String,
    pub kind: ChannelKind,
    pub target: Target,
    pub timeout: Duration,
    pub rate: Option<RateLimit>,
}

/// Where a channel delivers. `Debug` and [`Target::describe`] never show a secret.
#[derive(Clone)]
pub enum Target {
    Http {
        url: reqwest::Url,
        headers: Vec<(String, String)>,
    },
    Email(EmailTarget),
    File {
        path: PathBuf,
    },
}

#[derive(Clone)]
pub struct EmailTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    None,
}

impl Target {
    /// What the API shows: the host of a webhook (its path holds the token), the SMTP server, the
    /// file path.
    pub fn describe(&self) -> String {
        match self {
            Target::Http { url, .. } => format!(
                "{}://{}{}/…",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Target::Email(e) => format!("smtp://{}:{}", e.host, e.port),
            Target::File { path } => path.display().to_string(),
        }
    }

    /// A hash of where it delivers: a disabled channel comes back once its target changes.
    fn fingerprint(&self) -> String {
        let identity = match self {
            Target::Http { url, .. } => url.to_string(),
            Target::Email(e) => format!("{}:{}", e.host, e.port),
            Target::File { path } => path.display().to_string(),
        };
        sovereign_core::audit::hash_of(&identity)
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Validate `[notify]`; every problem is reported.
pub(crate) fn settings(file: NotifyFile) -> Result<NotifySettings, Vec<Invalid>> {
    let mut s = NotifySettings::default();
    let mut problems = Vec::new();
    if let Some(t) = &file.dedup_window {
        match parse_duration("notify.dedup_window", t) {
            Ok(d) => s.dedup_window = d,
            Err(e) => problems.push(e),
        }
    }
    if let Some(n) = file.max_attempts {
        if n == 0 {
            problems.push(Invalid::new(
                "invalid_max_attempts",
                "notify.max_attempts",
                "max_attempts must be at least 1",
            ));
        }
        s.retry.max_attempts = n.max(1);
    }
    if let Some(n) = file.task_failures {
        s.task_failures = n;
    }
    for (name, c) in file.channels {
        match channel(&name, c) {
            Ok(c) => s.channels.push(c),
            Err(e) => problems.push(e.within(&format!("notify.channels.{name}"))),
        }
    }
    for (i, r) in file.routes.into_iter().enumerate() {
        let mut priorities = Vec::new();
        for (j, p) in r.priorities.iter().enumerate() {
            match Priority::parse(p) {
                Ok(p) => priorities.push(p),
                Err(e) => problems.push(e.within(&format!("notify.routes[{i}].priorities[{j}]"))),
            }
        }
        s.routes.push(Route {
            priorities,
            sources: r.sources,
            channels: r.channels,
        });
    }
    let core = core_channels(&s.channels);
    if let Err(e) = notify::validate_routes(&core, &s.routes) {
        problems.push(e.within("notify"));
    }
    if let Some(at) = &file.digest.at {
        let t = at.trim();
        match NaiveTime::parse_from_str(t, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        {
            Ok(t) => s.digest.at = t,
            Err(_) => problems.push(Invalid::new(
                "invalid_digest_time",
                "notify.digest.at",
                format!("{at:?} is not a time of day HH:MM (or HH:MM:SS)"),
            )),
        }
    }
    if let Some(tz) = &file.digest.tz {
        match tz.trim().parse::<chrono_tz::Tz>() {
            Ok(z) => s.digest.tz = z,
            Err(_) => problems.push(Invalid::new(
                "invalid_tz",
                "notify.digest.tz",
                format!("{tz:?} is not an IANA time zone"),
            )),
        }
    }
    s.digest.channels = match file.digest.channels {
        Some(names) => {
            for (j, n) in names.iter().enumerate() {
                if !s.channels.iter().any(|c| c.name == *n) {
                    problems.push(Invalid::new(
                        "unknown_channel",
                        format!("notify.digest.channels[{j}]"),
                        format!("no channel named {n:?}"),
                    ));
                }
            }
            names
        }
        None => {
            let of = |k: ChannelKind| -> Vec<String> {
                s.channels
                    .iter()
                    .filter(|c| c.kind == k)
                    .map(|c| c.name.clone())
                    .collect()
            };
            let email = of(ChannelKind::Email);
            if email.is_empty() {
                of(ChannelKind::File)
            } else {
                email
            }
        }
    };
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

fn channel(name: &str, f: ChannelFile) -> Result<ChannelSettings, Invalid> {
    let kind = ChannelKind::parse(&f.kind)?;
    let unused = |field: &str, set: bool| -> Result<(), Invalid> {
        if set {
            return Err(Invalid::new(
                "unused_field",
                field,
                format!("{field} is not used by a {} channel", kind.as_str()),
            ));
        }
        Ok(())
    };
    let is_http = matches!(
        kind,
        ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Webhook
    );
    unused("url", !is_http && f.url.is_some())?;
    unused(
        "headers",
        kind != ChannelKind::Webhook && !f.headers.is_empty(),
    )?;
    unused("path", kind != ChannelKind::File && f.path.is_some())?;
    if kind != ChannelKind::Email {
        for (field, set) in [
            ("host", f.host.is_some()),
            ("port", f.port.is_some()),
            ("tls", f.tls.is_some()),
            ("username", f.username.is_some()),
            ("password", f.password.is_some()),
            ("password_env", f.password_env.is_some()),
            ("from", f.from.is_some()),
            ("to", !f.to.is_empty()),
        ] {
            unused(field, set)?;
        }
    }
    let required = |field: &str, v: Option<String>| {
        v.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Invalid::new(
                "missing_field",
                field,
                format!("a {} channel needs {field}", kind.as_str()),
            )
        })
    };
    let target = match kind {
        ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Webhook => {
            let text = required("url", f.url)?;
            let url = reqwest::Url::parse(text.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    Invalid::new(
                        "invalid_channel_url",
                        "url",
                        "url must be an http:// or https:// URL",
                    )
                })?;
            Target::Http {
                url,
                headers: f.headers.into_iter().collect(),
            }
        }
        ChannelKind::File => Target::File {
            path: PathBuf::from(required("path", f.path)?),
        },
        ChannelKind::Email => {
            let tls = match f.tls.as_deref().map(str::trim) {
                None | Some("starttls") => SmtpTls::StartTls,
                Some("tls") => SmtpTls::Tls,
                Some("none") => SmtpTls::None,
                Some(other) => {
                    return Err(Invalid::new(
                        "invalid_tls",
                        "tls",
                        format!("tls {other:?} must be starttls, tls or none"),
                    ))
                }
            };
            let mailbox = |field: String, text: &str| {
                text.trim()
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| {
                        Invalid::new(
                            "invalid_address",
                            field,
                            format!("{text:?} is not an e-mail address: {e}"),
                        )
                    })
            };
            let from = mailbox("from".into(), &required("from", f.from)?)?;
            if f.to.is_empty() {
                return Err(Invalid::new(
                    "missing_field",
                    "to",
                    "an email channel needs at least one recipient in to",
                ));
            }
            let to =
                f.to.iter()
                    .enumerate()
                    .map(|(i, t)| mailbox(format!("to[{i}]"), t))
                    .collect::<Result<Vec<_>, _>>()?;
            let password = match (f.password, f.password_env) {
                (Some(_), Some(_)) => {
                    return Err(Invalid::new(
                        "invalid_password",
                        "password_env",
                        "give password or password_env, not both",
                    ))
                }
                (Some(p), None) => Some(p),
                (None, Some(var)) => Some(std::env::var(&var).map_err(|_| {
                    Invalid::new(
                        "missing_env",
                        "password_env",
                        format!("environment variable {var:?} is not set"),
                    )
                })?),
                (None, None) => None,
            };
            let credentials = match (f.username, password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    return Err(Invalid::new(
                        "invalid_credentials",
                        "username",
                        "username and password go together",
                    ))
                }
            };
            let port = f.port.unwrap_or(match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            });
            Target::Email(EmailTarget {
                host: required("host", f.host)?.trim().to_string(),
                port,
                tls,
                credentials,
                from,
                to,
            })
        }
    };
    let timeout = match &f.timeout {
        Some(t) => parse_duration("timeout", t)?,
        None => Duration::from_secs(10),
    };
    let rate = match (&f.rate_per, f.rate_burst) {
        (None, None) => RateLimit::default_for(kind),
        (per, burst) => {
            let per = match per {
                Some(t) => parse_duration("rate_per", t)?,
                None => Duration::from_secs(1),
            };
            Some(RateLimit::new(per, burst.unwrap_or(1)))
        }
    };
    Ok(ChannelSettings {
        name: name.to_string(),
        kind,
        target,
        timeout,
        rate,
    })
}

fn core_channels(channels: &[ChannelSettings]) -> Vec<Channel> {
    channels
        .iter()
        .map(|c| Channel {
            name: c.name.clone(),
            kind: c.kind,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The notifier
// ---------------------------------------------------------------------------------------------

/// What became of a raised alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// In the outbox (durable), going to `channels` and, when `digest`, the daily digest.
    Accepted {
        id: u64,
        channels: Vec<String>,
        digest: bool,
    },
    /// The same alert went out less than the dedup window ago.
    Duplicate,
}

/// A channel as the API shows it.
#[derive(Debug, Clone)]
pub struct ChannelView {
    pub name: String,
    pub kind: ChannelKind,
    pub target: String,
    pub state: ChannelState,
}

/// Live figures of one channel since start (its outbox rows hold the history).
#[derive(Debug, Clone, Default)]
pub struct ChannelState {
    /// Why the channel is disabled (its webhook is gone), if it is.
    pub disabled: Option<String>,
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// The outcome of one test message on one channel.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub channel: String,
    pub ok: bool,
    pub detail: String,
}

/// The notifier handle. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: NotifySettings,
    routing: Vec<Channel>,
    store: Store,
    http: reqwest::Client,
    workers: Vec<Worker>,
    accept: Mutex<Accept>,
    stop: watch::Sender<bool>,
}

struct Worker {
    queue: mpsc::UnboundedSender<Job>,
    state: Mutex<ChannelState>,
}

struct Accept {
    last_id: u64,
    dedup: AlertDedup,
}

/// One alert to deliver on one channel.
struct Job {
    id: u64,
    at: DateTime<Utc>,
    alert: Arc<Alert>,
    /// Attempts already made (before a restart).
    attempts: u32,
    /// Resolves to whether the outbox row is durable; `None`: it already is.
    durable: Option<watch::Receiver<Option<bool>>>,
}

fn disabled_key(channel: &str) -> String {
    format!("channel.{channel}.disabled")
}

const DIGEST_DATE: &str = "digest.last_date";
const DIGEST_ID: &str = "digest.last_id";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few field updates; a panic cannot leave them half-done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Notifier {
    /// Load the outbox, start one worker per channel (resuming pending deliveries in order) and
    /// the digest timer. Relative file paths resolve inside `data_dir`.
    pub async fn start(
        mut settings: NotifySettings,
        store: Store,
        http: reqwest::Client,
        data_dir: &Path,
    ) -> Result<Notifier, StoreError> {
        for c in &mut settings.channels {
            if let Target::File { path } = &mut c.target {
                if path.is_relative() {
                    *path = data_dir.join(&*path);
                }
            }
        }
        let now = Utc::now();
        let state = store.notify_state().await?;
        let last_id = store.max_alert_id().await?;
        let since = now - chrono::Duration::from_std(settings.dedup_window).unwrap_or_default();
        let mut dedup = AlertDedup::new(settings.dedup_window);
        for r in store.alerts(AlertQuery::Since(since), usize::MAX).await? {
            dedup.admit(&r.alert, r.at);
        }
        let pending = store.alerts(AlertQuery::Pending, usize::MAX).await?;

        let mut receivers = Vec::new();
        let mut workers = Vec::new();
        for c in &settings.channels {
            let (tx, rx) = mpsc::unbounded_channel();
            receivers.push(rx);
            let disabled = state
                .get(&disabled_key(&c.name))
                .and_then(|v| serde_json::from_str::<Value>(v).ok())
                .filter(|v| v["target"] == c.target.fingerprint().as_str())
                .map(|v| v["reason"].as_str().unwrap_or("disabled").to_string());
            workers.push(Worker {
                queue: tx,
                state: Mutex::new(ChannelState {
                    disabled,
                    ..ChannelState::default()
                }),
            });
        }
        let inner = Arc::new(Inner {
            routing: core_channels(&settings.channels),
            settings,
            store,
            http,
            workers,
            accept: Mutex::new(Accept { last_id, dedup }),
            stop: watch::channel(false).0,
        });

        let mut orphans = Vec::new();
        for r in pending {
            let alert = Arc::new(r.alert);
            for d in r
                .deliveries
                .into_iter()
                .filter(|d| d.status == DeliveryStatus::Pending)
            {
                match inner.channel_index(&d.channel) {
                    Some(i) => inner.push(
                        i,
                        Job {
                            id: r.id,
                            at: r.at,
                            alert: alert.clone(),
                            attempts: d.attempts,
                            durable: None,
                        },
                    ),
                    None => orphans.push((r.id, d)),
                }
            }
        }
        for (id, d) in orphans {
            inner
                .store
                .update_delivery(
                    id,
                    DeliveryRecord {
                        status: DeliveryStatus::Skipped,
                        last_error: Some("the channel is no longer configured".into()),
                        updated_at: now,
                        ..d
                    },
                )
                .await?;
        }
        for (i, rx) in receivers.into_iter().enumerate() {
            tokio::spawn(work(inner.clone(), i, rx));
        }
        if !inner.settings.digest.channels.is_empty() {
            let last_date = state
                .get(DIGEST_DATE)
                .and_then(|d| d.parse::<chrono::NaiveDate>().ok());
            let last_id = state
                .get(DIGEST_ID)
                .and_then(|d| d.parse::<u64>().ok())
                .unwrap_or(0);
            tokio::spawn(digest_loop(inner.clone(), last_date, last_id));
        }
        Ok(Notifier { inner })
    }

    /// Accept `alert` into the outbox (durable when this returns) unless it is a duplicate.
    /// `actor` is who raised it, for the audit trail.
    pub async fn raise(&self, alert: Alert, actor: &str) -> Result<Raised, StoreError> {
        let routing = notify::route(&self.inner.settings.routes, &self.inner.routing, &alert);
        self.inner
            .accept(alert, routing, true, Vec::new(), actor)
            .await
    }

    /// Send one test message (P2, source `notify-test`) on `channel`, or on every channel, now,
    /// once, outside the outbox; report what each channel answered.
    pub async fn test(&self, channel: Option<&str>) -> Result<Vec<TestResult>, Invalid> {
        let chosen: Vec<usize> = match channel {
            Some(name) => vec![self.inner.channel_index(name).ok_or_else(|| {
                Invalid::new(
                    "unknown_channel",
                    "channel",
                    format!("no channel named {name:?}"),
                )
            })?],
            None => (0..self.inner.settings.channels.len()).collect(),
        };
        let alert = Alert {
            priority: Priority::P2,
            source: "notify-test".into(),
            title: "Sovereign test alert".into(),
            message: "If you can read this, this channel works.".into(),
            context: json!({"host": hostname()}),
            dedup_key: None,
        };
        let job = Job {
            id: 0,
            at: Utc::now(),
            alert: Arc::new(alert),
            attempts: 0,
            durable: None,
        };
        let mut out = Vec::new();
        for i in chosen {
            let ch = &self.inner.settings.channels[i];
            let (outcome, detail) = self.inner.send(ch, &job).await;
            let ok = matches!(
                self.inner
                    .settings
                    .retry
                    .after_failure(1, &outcome, Utc::now()),
                RetryDecision::Delivered
            );
            out.push(TestResult {
                channel: ch.name.clone(),
                ok,
                detail,
            });
        }
        Ok(out)
    }

    /// Outbox entries: after `since` (oldest first), or the newest `limit` (newest first).
    pub async fn alerts(
        &self,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let which = since.map_or(AlertQuery::Latest, AlertQuery::After);
        self.inner.store.alerts(which, limit).await
    }

    pub fn channels(&self) -> Vec<ChannelView> {
        self.inner
            .settings
            .channels
            .iter()
            .zip(&self.inner.workers)
            .map(|(c, w)| ChannelView {
                name: c.name.clone(),
                kind: c.kind,
                target: c.target.describe(),
                state: lock(&w.state).clone(),
            })
            .collect()
    }

    /// Re-enable a channel disabled after its webhook was gone. `None`: no such channel.
    pub async fn enable(&self, name: &str, actor: &str) -> Result<Option<()>, StoreError> {
        let Some(i) = self.inner.channel_index(name) else {
            return Ok(None);
        };
        self.inner
            .store
            .set_notify_state(vec![(disabled_key(name), None)])
            .await?;
        lock(&self.inner.workers[i].state).disabled = None;
        self.inner
            .audit(actor, "notify.channel_enabled", json!({"channel": name}));
        Ok(Some(()))
    }

    /// The task-failure threshold of the alert rules (0: off).
    pub fn task_failures(&self) -> u32 {
        self.inner.settings.task_failures
    }

    /// Stop the workers; what is pending stays in the outbox for the next start.
    pub fn stop(&self) {
        let _ = self.inner.stop.send(true);
    }
}

impl Inner {
    fn channel_index(&self, name: &str) -> Option<usize> {
        self.settings.channels.iter().position(|c| c.name == name)
    }

    fn push(&self, i: usize, job: Job) {
        let w = &self.workers[i];
        lock(&w.state).pending += 1;
        // The worker only ends at shutdown; a job queued then stays pending in the outbox.
        let _ = w.queue.send(job);
    }

    fn audit(&self, actor: &str, kind: &str, payload: Value) {
        crate::executor::audit(&self.store, actor, kind, payload);
    }

    async fn accept(
        &self,
        alert: Alert,
        routing: Routing,
        dedup: bool,
        state: Vec<(String, Option<String>)>,
        actor: &str,
    ) -> Result<Raised, StoreError> {
        let now = Utc::now();
        let alert = Arc::new(alert);
        let (id, write, durable) = {
            let mut acc = lock(&self.accept);
            if dedup && !acc.dedup.admit(&alert, now) {
                return Ok(Raised::Duplicate);
            }
            acc.last_id += 1;
            let id = acc.last_id;
            let record = AlertRecord {
                id,
                at: now,
                alert: (*alert).clone(),
                digest: routing.digest,
                deliveries: routing
                    .channels
                    .iter()
                    .map(|c| DeliveryRecord {
                        channel: c.clone(),
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        last_error: None,
                        updated_at: now,
                    })
                    .collect(),
            };
            // Queued under the lock: the store receives alerts in id order, and so does every
            // channel's queue.
            let write = self.store.insert_alert(record, state);
            let (durable, rx) = watch::channel(None);
            for name in &routing.channels {
                if let Some(i) = self.channel_index(name) {
                    self.push(
                        i,
                        Job {
                            id,
                            at: now,
                            alert: alert.clone(),
                            attempts: 0,
                            durable: Some(rx.clone()),
                        },
                    );
                }
            }
            (id, write, durable)
        };
        // Await durability in a task of its own: a caller that goes away must not leave the
        // workers waiting.
        let stored = tokio::spawn(async move {
            let r = write.await;
            let _ = durable.send(Some(r.is_ok()));
            r
        })
        .await
        .map_err(|e| StoreError::Database(format!("outbox write failed: {e}")))?;
        if let Err(e) = stored {
            if dedup {
                lock(&self.accept).dedup.forget(&alert);
            }
            return Err(e);
        }
        self.audit(
            actor,
            "alert.raised",
            json!({
                "alert_id": id, "priority": alert.priority.as_str(), "source": alert.source,
                "title": alert.title, "channels": routing.channels, "digest": routing.digest,
            }),
        );
        Ok(Raised::Accepted {
            id,
            channels: routing.channels,
            digest: routing.digest,
        })
    }

    /// One attempt on one channel: what came back, and a line saying so (no secrets).
    async fn send(&self, ch: &ChannelSettings, job: &Job) -> (Outcome, String) {
        match &ch.target {
            Target::Http { url, headers } => self.send_http(ch, url, headers, job).await,
            Target::Email(e) => send_email(e, ch.timeout, &job.alert).await,
            Target::File { path } => {
                let line = notify::file_line(job.id, &job.alert, job.at);
                let path = path.clone();
                let written = tokio::task::spawn_blocking(move || append_line(&path, &line))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                match written {
                    Ok(()) => (Outcome::Accepted, "written".into()),
                    Err(e) => (Outcome::Network, format!("cannot write the file: {e}")),
                }
            }
        }
    }

    async fn send_http(
        &self,
        ch: &ChannelSettings,
        url: &reqwest::Url,
        headers: &[(String, String)],
        job: &Job,
    ) -> (Outcome, String) {
        let body = match ch.kind {
            ChannelKind::Slack => notify::slack_payload(&job.alert),
            ChannelKind::Discord => notify::discord_payload(&job.alert),
            _ => notify::webhook_payload(job.id, &job.alert, job.at),
        };
        let mut req = self
            .http
            .post(url.clone())
            .timeout(ch.timeout)
            .header("Idempotency-Key", format!("sovereign-alert-{}", job.id))
            .json(&body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send().await {
            Err(e) => (Outcome::Network, error_chain(&e.without_url())),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let header = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = if status == 429 {
                    resp.text().await.ok()
                } else {
                    None
                };
                let retry_after =
                    notify::retry_hint(header.as_deref(), body.as_deref(), Utc::now());
                (
                    Outcome::Http {
                        status,
                        retry_after,
                    },
                    format!("HTTP {status}"),
                )
            }
        }
    }

    async fn raise_internal(&self, alert: Alert) {
        let routing = notify::route(&self.settings.routes, &self.routing, &alert);
        if let Err(e) = self
            .accept(alert, routing, true, Vec::new(), "engine")
            .await
        {
            tracing::error!(error = %e, "alert not accepted");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Append one line and make it durable.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    f.write_all(&bytes)?;
    f.sync_data()
}

/// The id of the last alert line in a file channel's file (0: none), so a line written just
/// before a crash is not written again.
fn last_file_id(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut tail = String::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_string(&mut tail).is_err() {
        return 0;
    }
    tail.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_u64())
        .unwrap_or(0)
}

async fn send_email(e: &EmailTarget, timeout: Duration, alert: &Alert) -> (Outcome, String) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let (subject, body) = notify::email_subject_body(alert);
    let mut message = lettre::Message::builder()
        .from(e.from.clone())
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &e.to {
        message = message.to(to.clone());
    }
    let message = match message.body(body) {
        Ok(m) => m,
        Err(err) => return (Outcome::Refused, format!("cannot build the message: {err}")),
    };
    let builder = match e.tls {
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &e.host,
        )),
    };
    let mut builder = match builder {
        Ok(b) => b.port(e.port).timeout(Some(timeout)),
        Err(err) => {
            return (
                Outcome::Refused,
                format!("SMTP setup: {}", error_chain(&err)),
            )
        }
    };
    if let Some((user, pass)) = &e.credentials {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            pass.clone(),
        ));
    }
    match builder.build().send(message).await {
        Ok(resp) => (Outcome::Accepted, format!("SMTP {}", resp.code())),
        Err(err) => {
            let outcome = if err.is_permanent() {
                Outcome::Refused
            } else {
                Outcome::Network
            };
            (
                outcome,
                format!("SMTP {}:{}: {}", e.host, e.port, error_chain(&err)),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

/// Deliver channel `i`'s jobs, one at a time, in order, until the engine stops.
async fn work(inner: Arc<Inner>, i: usize, mut queue: mpsc::UnboundedReceiver<Job>) {
    let ch = &inner.settings.channels[i];
    let mut rate = ch.rate.clone();
    let mut stop = inner.stop.subscribe();
    let mut written_upto = match &ch.target {
        Target::File { path } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || last_file_id(&path))
                .await
                .unwrap_or(0)
        }
        _ => 0,
    };
    loop {
        let job = tokio::select! {
            j = queue.recv() => match j { Some(j) => j, None => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Some(mut durable) = job.durable.clone() {
            match durable.wait_for(Option::is_some).await.map(|v| *v) {
                Ok(Some(true)) => {}
                _ => {
                    lock(&inner.workers[i].state).pending -= 1;
                    continue;
                }
            }
        }
        if job.id <= written_upto {
            // The line is in the file already (written just before a restart).
            finish(
                &inner,
                i,
                &job,
                DeliveryStatus::Delivered,
                job.attempts,
                None,
            )
            .await;
            continue;
        }
        let done = deliver(&inner, i, &mut rate, &job, &mut stop).await;
        if done && matches!(ch.target, Target::File { .. }) {
            written_upto = job.id;
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Attempt `job` until it is delivered or given up. Returns whether it was delivered; returns
/// early (leaving it pending) when the engine stops.
async fn deliver(
    inner: &Inner,
    i: usize,
    rate: &mut Option<RateLimit>,
    job: &Job,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let ch = &inner.settings.channels[i];
    let mut attempts = job.attempts;
    loop {
        let disabled = lock(&inner.workers[i].state).disabled.clone();
        if let Some(reason) = disabled {
            let why = format!("channel disabled: {reason}");
            finish(inner, i, job, DeliveryStatus::Skipped, attempts, Some(why)).await;
            return false;
        }
        if let Some(r) = rate.as_mut() {
            while let Err(wait) = r.admit(Utc::now()) {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return false,
                }
            }
        }
        attempts += 1;
        let (outcome, detail) = tokio::select! {
            r = inner.send(ch, job) => r,
            _ = stop.wait_for(|s| *s) => return false,
        };
        let decision = inner
            .settings
            .retry
            .after_failure(attempts, &outcome, Utc::now());
        match decision {
            RetryDecision::Delivered => {
                finish(inner, i, job, DeliveryStatus::Delivered, attempts, None).await;
                return true;
            }
            RetryDecision::Retry {
                after,
                at,
                rate_limited,
            } => {
                tracing::info!(channel = %ch.name, alert = job.id, attempts, %detail, ?after, "alert delivery failed; retrying");
                lock(&inner.workers[i].state).last_error = Some(detail.clone());
                let pending = DeliveryRecord {
                    channel: ch.name.clone(),
                    status: DeliveryStatus::Pending,
                    attempts,
                    last_error: Some(detail),
                    updated_at: Utc::now(),
                };
                if let Err(e) = inner.store.update_delivery(job.id, pending).await {
                    tracing::error!(error = %e, "delivery state not stored");
                    return false;
                }
                if rate_limited {
                    if let Some(r) = rate.as_mut() {
                        r.hold_until(at);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = stop.wait_for(|s| *s) => return false,
                }
            }
            RetryDecision::Disable { reason } => {
                disable(inner, i, &reason).await;
                let why = format!("{reason}; channel disabled");
                finish(inner, i, job, DeliveryStatus::Skipped, attempts, Some(why)).await;
                return false;
            }
            RetryDecision::Drop { reason } => {
                let why = format!("{reason}: {detail}");
                finish(inner, i, job, DeliveryStatus::Dropped, attempts, Some(why)).await;
                return false;
            }
            RetryDecision::Dead { attempts, reason } => {
                let why = format!("gave up after {attempts} attempts: {reason}: {detail}");
                finish(inner, i, job, DeliveryStatus::Dead, attempts, Some(why)).await;
                return false;
            }
        }
    }
}

/// Record a job's final state on its channel.
async fn finish(
    inner: &Inner,
    i: usize,
    job: &Job,
    status: DeliveryStatus,
    attempts: u32,
    error: Option<String>,
) {
    let ch = &inner.settings.channels[i];
    let now = Utc::now();
    {
        let mut st = lock(&inner.workers[i].state);
        st.pending = st.pending.saturating_sub(1);
        match status {
            DeliveryStatus::Delivered => {
                st.delivered += 1;
                st.last_delivered_at = Some(now);
            }
            _ => {
                st.failed += 1;
                st.last_error = error.clone();
            }
        }
    }
    if let Some(e) = &error {
        tracing::warn!(channel = %ch.name, alert = job.id, status = status.as_str(), error = %e, "alert not delivered");
    }
    let record = DeliveryRecord {
        channel: ch.name.clone(),
        status,
        attempts,
        last_error: error,
        updated_at: now,
    };
    if let Err(e) = inner.store.update_delivery(job.id, record).await {
        tracing::error!(error = %e, "delivery state not stored");
    }
}

/// The channel's endpoint is gone: stop using it (also after a restart, until its target
/// changes or an operator enables it), and say so on the other channels and the audit trail.
async fn disable(inner: &Inner, i: usize, reason: &str) {
    let ch = &inner.settings.channels[i];
    lock(&inner.workers[i].state).disabled = Some(reason.to_string());
    let value = json!({"reason": reason, "target": ch.target.fingerprint()}).to_string();
    if let Err(e) = inner
        .store
        .set_notify_state(vec![(disabled_key(&ch.name), Some(value))])
        .await
    {
        tracing::error!(error = %e, "disabled channel not stored");
    }
    inner.audit(
        "engine",
        "notify.channel_disabled",
        json!({"channel": ch.name, "reason": reason}),
    );
    inner
        .raise_internal(Alert {
            priority: Priority::P1,
            source: "notifier".into(),
            title: format!("alert channel {} disabled", ch.name),
            message: format!(
                "{reason}. Alerts for this channel are skipped until its target changes or it is enabled again (POST /api/alerts/channels/{}/enable).",
                ch.name
            ),
            context: json!({"channel": ch.name, "kind": ch.kind.as_str()}),
            dedup_key: Some(format!("channel-disabled:{}", ch.name)),
        })
        .await;
}

// ---------------------------------------------------------------------------------------------
// The daily digest
// ---------------------------------------------------------------------------------------------

/// Once a day at the configured local time, send the digest of P3 alerts since the last one to
/// the digest channels, through the outbox (so it survives outages and restarts too).
async fn digest_loop(
    inner: Arc<Inner>,
    mut last_date: Option<chrono::NaiveDate>,
    mut last_id: u64,
) {
    let mut stop = inner.stop.subscribe();
    let d = inner.settings.digest.clone();
    loop {
        let now = Utc::now();
        if let Some(date) = notify::digest_due(now, d.at, d.tz, last_date) {
            match send_digest(&inner, date, last_id).await {
                Ok(id) => {
                    last_date = Some(date);
                    last_id = id;
                }
                Err(e) => tracing::error!(error = %e, "daily digest not queued"),
            }
        }
        let wait = until_next_digest(Utc::now(), d.at, d.tz);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How long to sleep before looking again: until the next local `at`, at most a minute (so a
/// clock or zone change is noticed), at least 50 ms.
fn until_next_digest(now: DateTime<Utc>, at: NaiveTime, tz: chrono_tz::Tz) -> Duration {
    use chrono::TimeZone;
    let local = now.with_timezone(&tz);
    let mut date = local.date_naive();
    if local.time() >= at {
        date = date.succ_opt().unwrap_or(date);
    }
    let next = tz
        .from_local_datetime(&date.and_time(at))
        .earliest()
        .map(|t| t.with_timezone(&Utc));
    next.and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(60))
        .clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// Queue the digest for `date` with the digest alerts after `after_id`; record the progress in
/// the same write. Returns the last alert id it covers.
async fn send_digest(
    inner: &Inner,
    date: chrono::NaiveDate,
    after_id: u64,
) -> Result<u64, StoreError> {
    let records = inner
        .store
        .alerts(AlertQuery::DigestAfter(after_id), usize::MAX)
        .await?;
    let last = records.last().map_or(after_id, |r| r.id);
    let state = vec![
        (DIGEST_DATE.to_string(), Some(date.to_string())),
        (DIGEST_ID.to_string(), Some(last.to_string())),
    ];
    if records.is_empty() {
        inner.store.set_notify_state(state).await?;
        return Ok(last);
    }
    let items: Vec<(DateTime<Utc>, Alert)> = records.into_iter().map(|r| (r.at, r.alert)).collect();
    let (subject, body) = notify::digest_text(date, &items);
    let alert = Alert {
        priority: Priority::P3,
        source: "digest".into(),
        title: subject,
        message: body,
        context: json!({"date": date.to_string(), "alerts": items.len()}),
        dedup_key: Some(format!("digest:{date}")),
    };
    let routing = Routing {
        channels: inner.settings.digest.channels.clone(),
        digest: false,
    };
    inner
        .accept(alert, routing, false, state, "engine")
        .await
        .map(|_| last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_digest_wait_is_bounded() {
        let at = NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN);
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        assert_eq!(
            until_next_digest(t("2026-06-01T17:59:59.5Z"), at, chrono_tz::UTC),
            Duration::from_millis(500)
        );
        assert_eq!(
            until_next_digest(t("2026-06-01T12:00:00Z"), at, chrono_tz::UTC),
            Duration::from_secs(60)
        );
        assert_eq!(
            until_next_digest(t("2026-06-01T18:00:00Z"), at, chrono_tz::UTC),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn channel_settings_are_checked() {
        let file = |kind: &str| ChannelFile {
            kind: kind.into(),
            ..ChannelFile::default()
        };
        let err = |f: ChannelFile| channel("c", f).err().map(|e| (e.code, e.field));
        let some = |code: &'static str, field: &str| Some((code, Some(field.to_string())));
        assert_eq!(err(file("pager")), some("invalid_channel_kind", "kind"));
        assert_eq!(err(file("slack")), some("missing_field", "url"));
        for bad in [
            "ftp://x/y",
            "hooks.slack.com/x",
            "http://",
            "file:///etc/passwd",
        ] {
            let f = ChannelFile {
                url: Some(bad.into()),
                ..file("webhook")
            };
            assert_eq!(err(f), some("invalid_channel_url", "url"), "{bad}");
        }
        let f = ChannelFile {
            url: Some("http://127.0.0.1:9/x".into()),
            ..file("file")
        };
        assert_eq!(err(f), some("unused_field", "url"));
        assert_eq!(err(file("email")), some("missing_field", "from"));
        let mail = |to: Vec<&str>| ChannelFile {
            host: Some("127.0.0.1".into()),
            from: Some("ops@example.com".into()),
            to: to.into_iter().map(String::from).collect(),
            ..file("email")
        };
        assert_eq!(err(mail(vec![])), some("missing_field", "to"));
        assert_eq!(
            err(mail(vec!["not an address"])),
            some("invalid_address", "to[0]")
        );
        let ok = channel("c", mail(vec!["a@example.com"]));
        assert!(matches!(ok.map(|c| c.target), Ok(Target::Email(e)) if e.port == 587));
        let secret = ChannelFile {
            url: Some("https://hooks.slack.com/services/T0/B0/SECRET".into()),
            ..file("slack")
        };
        let c = channel("c", secret).map(|c| format!("{:?} {}", c, c.target.describe()));
        assert!(matches!(&c, Ok(t) if !t.contains("SECRET")), "{c:?}");
    }
}

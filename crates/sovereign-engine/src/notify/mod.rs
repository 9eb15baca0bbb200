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

//!
//! Files: `settings` (the `[notify]` section), `worker` (one per channel), one file per sender
//! kind (`http`, `email`, `file`), and `digest` (the daily P3 digest).

mod digest;
mod email;
mod file;
mod http;
pub mod settings;
mod worker;

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::notify::{
    self, Alert, AlertDedup, Channel, ChannelKind, Outcome, Priority, RetryDecision, Routing,
};
use sovereign_store::{AlertQuery, AlertRecord, DeliveryRecord, DeliveryStatus, Store, StoreError};
use tokio::sync::{broadcast, mpsc, watch};

use crate::audit::Audit;
use crate::support::{lock, Tasks};
use settings::{core_channels, ChannelSettings, NotifySettings, Target};

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

/// A change to the outbox, for `/sse/alerts`: an alert accepted (durable), or one delivery's
/// new state (stored).
#[derive(Debug, Clone)]
pub enum AlertChange {
    Accepted(Arc<AlertRecord>),
    Delivery { id: u64, delivery: DeliveryRecord },
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
    audit: Audit,
    tasks: Tasks,
    http: reqwest::Client,
    workers: Vec<Worker>,
    accept: Mutex<Accept>,
    changes: broadcast::Sender<AlertChange>,
}

pub(super) struct Worker {
    queue: mpsc::UnboundedSender<Job>,
    state: Mutex<ChannelState>,
}

struct Accept {
    last_id: u64,
    dedup: AlertDedup,
}

/// One alert to deliver on one channel.
pub(super) struct Job {
    id: u64,
    at: DateTime<Utc>,
    alert: Arc<Alert>,
    /// Attempts already made (before a restart).
    attempts: u32,
    /// Resolves to whether the outbox row is durable; `None`: it already is.
    durable: Option<watch::Receiver<Option<bool>>>,
}

pub(super) fn disabled_key(channel: &str) -> String {
    format!("channel.{channel}.disabled")
}

pub(super) const DIGEST_DATE: &str = "digest.last_date";
pub(super) const DIGEST_ID: &str = "digest.last_id";

impl Notifier {
    /// Load the outbox, start one worker per channel (resuming pending deliveries in order) and
    /// the digest timer. Relative file paths resolve inside `data_dir`.
    pub async fn start(
        mut settings: NotifySettings,
        store: Store,
        audit: Audit,
        http: reqwest::Client,
        data_dir: &Path,
        tasks: Tasks,
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
            audit,
            tasks,
            http,
            workers,
            accept: Mutex::new(Accept { last_id, dedup }),
            changes: broadcast::channel(256).0,
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
                .store_delivery(
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
            inner.tasks.spawn(worker::work(inner.clone(), i, rx));
        }
        if !inner.settings.digest.channels.is_empty() {
            let last_date = state
                .get(DIGEST_DATE)
                .and_then(|d| d.parse::<chrono::NaiveDate>().ok());
            let last_id = state
                .get(DIGEST_ID)
                .and_then(|d| d.parse::<u64>().ok())
                .unwrap_or(0);
            inner
                .tasks
                .spawn(digest::digest_loop(inner.clone(), last_date, last_id));
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
                    .after_failure(1, &outcome, job.at, Utc::now()),
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
            .audit
            .record(actor, "notify.channel_enabled", json!({"channel": name}));
        Ok(Some(()))
    }

    /// Every change to the outbox from now on: alerts once durable, deliveries once stored.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertChange> {
        self.inner.changes.subscribe()
    }

    /// The task-failure threshold of the alert rules (0: off).
    pub fn task_failures(&self) -> u32 {
        self.inner.settings.task_failures
    }

    /// Raise an engine rule's alert without waiting for it (a failure is logged).
    pub fn raise_in_background(&self, alert: Alert, actor: &str) {
        let notifier = self.clone();
        let actor = actor.to_string();
        self.inner.tasks.spawn(async move {
            if let Err(e) = notifier.raise(alert, &actor).await {
                tracing::error!(error = %e, "alert not raised");
            }
        });
    }

    /// Stop the workers and the digest; what is pending stays in the outbox for the next start.
    pub fn stop(&self) {
        self.inner.tasks.stop();
    }
}

impl Inner {
    fn channel_index(&self, name: &str) -> Option<usize> {
        self.settings.channels.iter().position(|c| c.name == name)
    }

    /// Store a delivery's new state, then tell the subscribers.
    pub(super) async fn store_delivery(
        &self,
        id: u64,
        delivery: DeliveryRecord,
    ) -> Result<(), StoreError> {
        let told = (self.changes.receiver_count() > 0).then(|| delivery.clone());
        self.store.update_delivery(id, delivery).await?;
        if let Some(delivery) = told {
            let _ = self.changes.send(AlertChange::Delivery { id, delivery });
        }
        Ok(())
    }

    fn push(&self, i: usize, job: Job) {
        let w = &self.workers[i];
        lock(&w.state).pending += 1;
        // The worker only ends at shutdown; a job queued then stays pending in the outbox.
        let _ = w.queue.send(job);
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
        let (id, write, durable, told) = {
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
            let told = (self.changes.receiver_count() > 0).then(|| Arc::new(record.clone()));
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
            (id, write, durable, told)
        };
        // Await durability in a task of its own: a caller that goes away must not leave the
        // workers waiting.
        let changes = self.changes.clone();
        let stored = self
            .tasks
            .spawn(async move {
                let r = write.await;
                if let (Ok(_), Some(record)) = (&r, told) {
                    // Told before the workers may send it, so its deliveries come after it.
                    let _ = changes.send(AlertChange::Accepted(record));
                }
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
        self.audit.record(
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
            Target::Http { url, headers } => http::send(&self.http, ch, url, headers, job).await,
            Target::Email(e) => email::send(e, ch.timeout, &job.alert).await,
            Target::File { path } => {
                let line = notify::file_line(job.id, &job.alert, job.at);
                let path = path.clone();
                let written = tokio::task::spawn_blocking(move || file::append_line(&path, &line))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                match written {
                    Ok(()) => (Outcome::Accepted, "written".into()),
                    Err(e) => (Outcome::Network, format!("cannot write the file: {e}")),
                }
            }
        }
    }

    /// Raise an engine alert on every channel but channel `i` (the one it is about): those its
    /// routing picks, or, when that is only channel `i`, every other channel.
    async fn raise_elsewhere(&self, i: usize, alert: Alert) {
        let this = &self.settings.channels[i].name;
        let mut routing = notify::route(&self.settings.routes, &self.routing, &alert);
        routing.channels.retain(|c| c != this);
        if routing.channels.is_empty() {
            routing.channels = self
                .settings
                .channels
                .iter()
                .map(|c| c.name.clone())
                .filter(|c| c != this)
                .collect();
        }
        if routing.channels.is_empty() && !routing.digest {
            tracing::error!(channel = %this, title = %alert.title, "no other channel to report on");
            return;
        }
        if let Err(e) = self
            .accept(alert, routing, true, Vec::new(), "engine")
            .await
        {
            tracing::error!(error = %e, "alert not accepted");
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

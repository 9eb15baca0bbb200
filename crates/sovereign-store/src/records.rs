//! Plain records the store keeps, independent of any backend or wire format.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sovereign_core::task::TaskSpec;

/// A task as stored: the user's spec plus bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub spec: TaskSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The scheduled instant of the last schedule fire handled (run or deliberately skipped).
    pub schedule_cursor: Option<DateTime<Utc>>,
}

/// Filters for listing results; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultFilter {
    pub task_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// What became of a webhook call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookStatus {
    Accepted,
    Duplicate,
    Rejected,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Accepted => "accepted",
            WebhookStatus::Duplicate => "duplicate",
            WebhookStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookStatus> {
        [
            WebhookStatus::Accepted,
            WebhookStatus::Duplicate,
            WebhookStatus::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One webhook call as received.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: String,
    pub source: String,
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub status: WebhookStatus,
    /// Why it was rejected (never the credential itself).
    pub reason: Option<String>,
    /// The parsed body (`Value::Null` when it was rejected before parsing).
    pub body: Value,
    pub tasks: Vec<String>,
}

/// Counts and group-commit figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub tasks: u64,
    pub results: u64,
    pub webhooks: u64,
    /// Transactions committed by the writer since start.
    pub commits: u64,
    /// Writes carried by those commits.
    pub writes: u64,
}

/// One journal record: an event of the trading core, encoded by its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Assigned by the store on append (ignored when appending).
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// Event kind, e.g. `order_created`.
    pub kind: String,
    /// The event's JSON.
    pub payload: String,
}

/// Where one alert stands on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; the channel's worker will (re)try it, also after a restart.
    Pending,
    Delivered,
    /// The channel refused it for good (a 4xx, an SMTP 5xx).
    Dropped,
    /// Transient failures until the attempts ran out.
    Dead,
    /// Not attempted: the channel was disabled (its webhook is gone).
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dropped => "dropped",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "dropped" => DeliveryStatus::Dropped,
            "dead" => DeliveryStatus::Dead,
            "skipped" => DeliveryStatus::Skipped,
            _ => return None,
        })
    }
}

/// One alert's delivery on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub channel: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Why the last attempt failed (never a credential or a URL).
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// An accepted alert in the outbox, with its deliveries in routing order.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Acceptance order; deliveries on each channel follow it.
    pub id: u64,
    pub at: DateTime<Utc>,
    pub alert: sovereign_core::notify::Alert,
    /// Whether it joins the daily digest.
    pub digest: bool,
    pub deliveries: Vec<DeliveryRecord>,
}

/// Which alerts a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertQuery {
    /// `id > after`, oldest first.
    After(u64),
    /// The newest `limit`, newest first.
    Latest,
    /// With a pending delivery, oldest first.
    Pending,
    /// Joined the digest and `id > after`, oldest first.
    DigestAfter(u64),
    /// Accepted at or after this time, oldest first.
    Since(DateTime<Utc>),
}

/// One run of a deploy plan as it was asked for; never changed (its events say what became of
/// it).
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRun {
    /// Given by the store (0 until then).
    pub id: u64,
    pub plan: String,
    /// `deploy`, or `rollback` (`rollback --to`).
    pub kind: String,
    pub version: String,
    /// `cli`, `api`, `hook`, `window`.
    pub trigger: String,
    pub actor: String,
    /// The version each target ran when the run was made (`{previous}`).
    pub previous: std::collections::BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// One event of a deploy run, in order (`seq` from 1). `kind` is `input` (fed to the run's
/// state machine; replayed after a restart), `phase`, `command`, `measurement`, `target` (a
/// target now runs `version`), `alert` or `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployEvent {
    pub run_id: u64,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub body: serde_json::Value,
}

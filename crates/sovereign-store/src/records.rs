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

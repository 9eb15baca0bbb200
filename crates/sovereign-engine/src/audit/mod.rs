//! The audit trail as a capability: record an action (queued behind the writes already queued,
//! not awaited), read records back, and verify the stored chain (`sovereign_core::audit`).
//!
//! Every capability that records actions holds an [`Audit`] handle; the store chains the
//! records (it keeps the head), so concurrent appends still form one chain.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sovereign_core::audit::{AuditRecord, Head, Tamper};
use sovereign_store::{Store, StoreError};

use crate::support::Tasks;

/// The audit handle. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    tasks: Tasks,
}

impl Audit {
    pub fn new(store: Store, tasks: Tasks) -> Audit {
        Audit { store, tasks }
    }

    /// Put an action on the trail: queued now (so it commits with or right after the action's
    /// own writes), not awaited; a failure is logged.
    pub fn record(&self, actor: &str, kind: &str, payload: Value) {
        self.record_at(Utc::now(), actor, kind, payload);
    }

    /// [`Audit::record`] with the time the action happened.
    pub fn record_at(&self, at: DateTime<Utc>, actor: &str, kind: &str, payload: Value) {
        let pending = self.store.append_audit(at, actor, kind, payload);
        self.tasks.spawn(async move {
            if let Err(e) = pending.await {
                tracing::error!(error = %e, "audit record not written");
            }
        });
    }

    /// Put an action on the trail and wait until it is durable.
    pub async fn record_durably(
        &self,
        actor: &str,
        kind: &str,
        payload: Value,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(Utc::now(), actor, kind, payload)
            .await
            .map(|_| ())
    }

    /// Records with a sequence number above `since`, oldest first, at most `limit`.
    pub async fn list(&self, since: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.list_audit(since, limit).await
    }

    /// Read the whole stored trail and verify its chain: the head, or where it was tampered
    /// with (and how many records were read).
    pub async fn verify(&self) -> Result<Result<Head, (Tamper, usize)>, StoreError> {
        let mut all: Vec<AuditRecord> = Vec::new();
        loop {
            let after = all.last().map_or(0, |r| r.seq);
            let page = self.store.list_audit(after, 10_000).await?;
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        Ok(sovereign_core::audit::verify(&all, None, None).map_err(|t| (t, all.len())))
    }
}

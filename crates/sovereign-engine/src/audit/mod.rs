//! The audit trail as a capability: record an action (queued behind the writes already queued,
//! not awaited), read records back, and verify the stored chain (`sovereign_core::audit`).
//!
//! Every capability that records actions holds an [`Audit`] handle; the store chains the
//! records (it keeps the head), so concurrent appends still form one chain. The trading
//! journal is a hash chain of its own; checkpoints of its head on the trail
//! (`trading.journal_checkpoint`) tie the two, and `verify` checks all three.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sovereign_core::audit::{self, AuditRecord, Head, JournalLink, Tamper};
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

    /// Pin the trading journal's head into the trail (queued behind everything before it;
    /// nothing when the journal has not moved since the last checkpoint).
    pub fn checkpoint_journal(&self) {
        self.store.checkpoint_journal(Utc::now());
    }

    /// Read the whole stored trail and the whole trading journal and verify both chains, and
    /// the journal against the trail's checkpoints of it (so an anchor of the trail proves the
    /// trading history too).
    pub async fn verify(&self) -> Result<Verdict, StoreError> {
        let mut all: Vec<AuditRecord> = Vec::new();
        loop {
            let after = all.last().map_or(0, |r| r.seq);
            let page = self.store.list_audit(after, 10_000).await?;
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        let mut journal: Vec<JournalLink> = Vec::new();
        loop {
            let after = journal.last().map_or(0, |r| r.seq);
            let page = self.store.read_journal_links(after, 10_000).await?;
            if page.is_empty() {
                break;
            }
            journal.extend(page);
        }
        let audit = audit::verify(&all, None, None).map_err(|t| (t, all.len()));
        let journal_verdict = audit::verify(&journal, None, None)
            .and_then(|head| audit::check_checkpoints(&journal, &all).map(|()| head))
            .map_err(|t| (t, journal.len()));
        Ok(Verdict {
            audit,
            journal: journal_verdict,
        })
    }
}

/// The verdict on both chains: each its head, or the first problem (and how many records
/// were read).
#[derive(Debug, Clone)]
pub struct Verdict {
    pub audit: Result<Head, (Tamper, usize)>,
    pub journal: Result<Head, (Tamper, usize)>,
}

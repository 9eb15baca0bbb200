//! Webhook intake: authenticate, dedup, route, record durably, then start the routed runs.
//!
//! The answer (202) goes out as soon as the call's record is durable; the runs it starts go on
//! in the background (through the executor's handle). A source with an `allow_from` list is
//! refused from any other address before its credential is looked at. A refused address or
//! credential is recorded too (status `rejected`, the reason, never the credential), and so is
//! a duplicate delivery (status `duplicate`, nothing run).

pub mod settings;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::Value;
use sovereign_core::task::Trigger;
use sovereign_core::webhook::{self, DedupWindow, Presented, SourceAuth};
use sovereign_store::{Store, StoreError, WebhookRecord, WebhookStatus};

use crate::audit::Audit;
use crate::executor::{Executor, RunContext};
use crate::support::{lock, once};
use settings::WebhookSettings;

/// Every way webhook intake can fail.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook from {source_name:?} refused: {reason}")]
    Unauthorized {
        source_name: String,
        code: &'static str,
        reason: String,
    },
    /// The source has an `allow_from` list and the caller's address is not on it (code
    /// `address_not_allowed`, a 403).
    #[error("webhook from {source_name:?} refused: {reason}")]
    AddressNotAllowed {
        source_name: String,
        address: IpAddr,
        reason: String,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => WebhookError::ShuttingDown,
            other => WebhookError::Store(other),
        }
    }
}

/// A parsed webhook call.
#[derive(Clone)]
pub struct WebhookCall<'a> {
    /// From the URL (`/webhook/{source}`) or the body's `source`.
    pub source: String,
    pub event: Option<String>,
    pub data: Value,
    /// Delivery id for dedup: body `id`, `Idempotency-Key` header, or `data.id`.
    pub delivery_id: Option<String>,
    pub url_token: Option<&'a str>,
    pub header: &'a (dyn Fn(&str) -> Option<&'a str> + Sync),
    pub raw_body: &'a [u8],
    pub body: Value,
}

/// What the sender is told.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReceipt {
    pub webhook_id: String,
    pub duplicate: bool,
    /// Tasks started by this call.
    pub tasks: Vec<String>,
    /// Routed task ids that do not exist or are disabled (not run).
    pub skipped: Vec<String>,
}

/// The intake handle. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

struct Inner {
    settings: WebhookSettings,
    /// Whether calls from unlisted sources are refused (decided by the root from the bind).
    require_known_source: bool,
    store: Store,
    audit: Audit,
    executor: Executor,
    dedup: Mutex<DedupWindow>,
}

impl Webhooks {
    /// Start intake; the dedup window is refilled from the deliveries recorded within it.
    pub async fn start(
        settings: WebhookSettings,
        require_known_source: bool,
        store: Store,
        audit: Audit,
        executor: Executor,
    ) -> Result<Webhooks, StoreError> {
        let since =
            Utc::now() - chrono::Duration::from_std(settings.dedup_window).unwrap_or_default();
        let mut dedup = DedupWindow::new(settings.dedup_window);
        for (source, id, at) in &store.recent_deliveries(since).await? {
            dedup.admit(source, id, *at);
        }
        Ok(Webhooks(Arc::new(Inner {
            settings,
            require_known_source,
            store,
            audit,
            executor,
            dedup: Mutex::new(dedup),
        })))
    }

    /// The largest body a webhook route accepts.
    pub fn max_body_bytes(&self) -> usize {
        self.0.settings.max_body_bytes
    }

    /// The newest recorded calls, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<WebhookRecord>, WebhookError> {
        Ok(self.0.store.list_webhooks(limit).await?)
    }

    /// Take one call. `from` is the caller's address (`None`: an in-process caller, which no
    /// `allow_from` list refuses); a source's address list is checked before its credential.
    pub async fn receive(
        &self,
        call: WebhookCall<'_>,
        from: Option<IpAddr>,
    ) -> Result<WebhookReceipt, WebhookError> {
        let this = &self.0;
        let webhook_id = uuid::Uuid::now_v7().to_string();
        let received_at = Utc::now();
        let record = |status, reason: Option<String>, tasks: Vec<String>| WebhookRecord {
            id: webhook_id.clone(),
            source: call.source.clone(),
            event: call.event.clone(),
            delivery_id: call.delivery_id.clone(),
            received_at,
            status,
            reason,
            body: call.body.clone(),
            tasks,
        };

        let auth = match this.settings.sources.get(&call.source) {
            Some(a) => Some(a),
            None if this.require_known_source => None,
            None => Some(&SourceAuth::None),
        };
        // The address first: a caller outside the list learns nothing about the credential.
        let outsider = from.filter(|ip| {
            this.settings
                .allow_from
                .get(&call.source)
                .is_some_and(|list| !list.is_empty() && !list.contains(*ip))
        });
        let verdict = match (outsider, auth) {
            (Some(ip), _) => Err((
                "address_not_allowed",
                format!(
                    "address {ip} is not in the allow_from list of source {:?}",
                    call.source
                ),
            )),
            (None, None) => Err((
                "unknown_source",
                format!("source {:?} is not configured", call.source),
            )),
            (None, Some(auth)) => webhook::verify(
                auth,
                Presented {
                    header: call.header,
                    url_token: call.url_token,
                    body: call.raw_body,
                },
            )
            .map_err(|f| (f.code(), f.to_string())),
        };
        if let Err((code, reason)) = verdict {
            tracing::warn!(source = %call.source, reason = %reason, "webhook refused");
            this.audit.record(
                "webhook",
                "webhook.rejected",
                serde_json::json!({"source": call.source, "webhook_id": webhook_id,
                                   "reason": reason, "address": from.map(|ip| ip.to_string())}),
            );
            this.store
                .insert_webhook(record(
                    WebhookStatus::Rejected,
                    Some(reason.clone()),
                    vec![],
                ))
                .await?;
            return Err(match outsider {
                Some(address) => WebhookError::AddressNotAllowed {
                    source_name: call.source.clone(),
                    address,
                    reason,
                },
                None => WebhookError::Unauthorized {
                    source_name: call.source.clone(),
                    code,
                    reason,
                },
            });
        }

        // Route and record; the delivery id is remembered only once the record is durable.
        let accept = async {
            let routed = webhook::route(
                &this.settings.routes,
                &call.source,
                call.event.as_deref(),
                &call.data,
            );
            let (mut run, mut skipped) = (Vec::new(), Vec::new());
            for id in routed {
                match this.executor.runnable(&id) {
                    Some(task) => run.push(task),
                    None => skipped.push(id),
                }
            }
            let started: Vec<String> = run.iter().map(|t| t.task.id.to_string()).collect();
            // A route (or `data.trigger`) that names no runnable task is recorded with why.
            let reason = (!skipped.is_empty()).then(|| {
                let names: Vec<String> = skipped.iter().map(|t| format!("{t:?}")).collect();
                format!("not run: {} (no such task, or disabled)", names.join(", "))
            });
            this.store
                .insert_webhook(record(WebhookStatus::Accepted, reason, started.clone()))
                .await
                .map(|_| (run, started, skipped))
        };
        let accepted = match &call.delivery_id {
            Some(id) => {
                once(
                    || lock(&this.dedup).admit(&call.source, id, received_at),
                    || lock(&this.dedup).forget(&call.source, id),
                    accept,
                )
                .await
            }
            None => Some(accept.await),
        };
        let Some(accepted) = accepted else {
            this.store
                .insert_webhook(record(WebhookStatus::Duplicate, None, vec![]))
                .await?;
            return Ok(WebhookReceipt {
                webhook_id,
                duplicate: true,
                tasks: vec![],
                skipped: vec![],
            });
        };
        let (run, started, skipped) = accepted?;
        for task in run {
            this.executor.spawn_run(
                task,
                RunContext {
                    trigger: Trigger::Webhook,
                    scheduled_for: None,
                    webhook_id: Some(webhook_id.clone()),
                    data: call.data.clone(),
                },
            );
        }
        Ok(WebhookReceipt {
            webhook_id,
            duplicate: false,
            tasks: started,
            skipped,
        })
    }
}

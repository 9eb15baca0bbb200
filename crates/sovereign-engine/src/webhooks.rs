//! Webhook intake: authenticate, dedup, route, record durably, then start the routed runs.
//!
//! The answer (202) goes out as soon as the call's record is durable; the runs it starts go on
//! in the background. A refused credential is recorded too (status `rejected`, the reason, never
//! the credential), and so is a duplicate delivery (status `duplicate`, nothing run).

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use sovereign_core::task::Trigger;
use sovereign_core::webhook::{self, Presented, SourceAuth};
use sovereign_store::{WebhookRecord, WebhookStatus};

use crate::executor::{Engine, EngineError, RunContext};

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

impl Engine {
    pub async fn webhook(
        self: &Arc<Self>,
        call: WebhookCall<'_>,
    ) -> Result<WebhookReceipt, EngineError> {
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

        let auth = match self.settings.sources.get(&call.source) {
            Some(a) => Some(a),
            None if self.settings.requires_known_source() => None,
            None => Some(&SourceAuth::None),
        };
        let verdict = match auth {
            None => Err((
                "unknown_source",
                format!("source {:?} is not configured", call.source),
            )),
            Some(auth) => webhook::verify(
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
            self.audit("webhook", "webhook.rejected", serde_json::json!({"source": call.source, "webhook_id": webhook_id, "reason": reason}));
            self.store
                .insert_webhook(record(
                    WebhookStatus::Rejected,
                    Some(reason.clone()),
                    vec![],
                ))
                .await?;
            return Err(EngineError::Unauthorized {
                source_name: call.source.clone(),
                code,
                reason,
            });
        }

        if let Some(id) = &call.delivery_id {
            let fresh = self.dedup.lock().unwrap_or_else(|p| p.into_inner()).admit(
                &call.source,
                id,
                received_at,
            );
            if !fresh {
                self.store
                    .insert_webhook(record(WebhookStatus::Duplicate, None, vec![]))
                    .await?;
                return Ok(WebhookReceipt {
                    webhook_id,
                    duplicate: true,
                    tasks: vec![],
                    skipped: vec![],
                });
            }
        }

        let routed = webhook::route(
            &self.settings.routes,
            &call.source,
            call.event.as_deref(),
            &call.data,
        );
        let (mut run, mut skipped) = (Vec::new(), Vec::new());
        for id in routed {
            match self.runnable(&id) {
                Some(task) => run.push(task),
                None => skipped.push(id),
            }
        }
        let started: Vec<String> = run.iter().map(|t| t.id.to_string()).collect();
        let stored = self
            .store
            .insert_webhook(record(WebhookStatus::Accepted, None, started.clone()))
            .await;
        if let Err(e) = stored {
            if let Some(id) = &call.delivery_id {
                // Not recorded, so a redelivery must not be taken for a duplicate.
                self.dedup
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forget(&call.source, id);
            }
            return Err(e.into());
        }
        for task in run {
            self.spawn_run(
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

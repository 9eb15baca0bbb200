//! The channel workers: one per channel, taking its jobs in id order, waiting until a job's
//! outbox row is durable, then attempting it (rate limit first, then the core's retry policy)
//! until it is delivered, dropped, dead or skipped — one alert at a time.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use sovereign_core::notify::{Alert, Priority, RateLimit, RetryDecision};
use sovereign_store::{DeliveryRecord, DeliveryStatus};
use tokio::sync::mpsc;

use super::settings::Target;
use super::{disabled_key, file, Inner, Job};
use crate::support::lock;

/// Deliver channel `i`'s jobs, one at a time, in order, until the engine stops.
pub(super) async fn work(inner: Arc<Inner>, i: usize, mut queue: mpsc::UnboundedReceiver<Job>) {
    let ch = &inner.settings.channels[i];
    let mut rate = ch.rate.clone();
    let mut written_upto = match &ch.target {
        Target::File { path } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || file::last_file_id(&path))
                .await
                .unwrap_or(0)
        }
        _ => 0,
    };
    loop {
        let job = tokio::select! {
            j = queue.recv() => match j { Some(j) => j, None => return },
            _ = inner.tasks.stopped() => return,
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
        let done = deliver(&inner, i, &mut rate, &job).await;
        if done && matches!(ch.target, Target::File { .. }) {
            written_upto = job.id;
        }
        if inner.tasks.is_stopping() {
            return;
        }
    }
}

/// Attempt `job` until it is delivered or given up. Returns whether it was delivered; returns
/// early (leaving it pending) when the engine stops.
async fn deliver(inner: &Inner, i: usize, rate: &mut Option<RateLimit>, job: &Job) -> bool {
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
                    _ = inner.tasks.stopped() => return false,
                }
            }
        }
        attempts += 1;
        let (outcome, detail) = tokio::select! {
            r = inner.send(ch, job) => r,
            _ = inner.tasks.stopped() => return false,
        };
        let decision = inner
            .settings
            .retry
            .after_failure(attempts, &outcome, job.at, Utc::now());
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
                if let Err(e) = inner.store_delivery(job.id, pending).await {
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
                    _ = inner.tasks.stopped() => return false,
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
                let age = (Utc::now() - job.at).num_minutes();
                let why =
                    format!("gave up after {attempts} attempts over {age} min: {reason}: {detail}");
                finish(
                    inner,
                    i,
                    job,
                    DeliveryStatus::Dead,
                    attempts,
                    Some(why.clone()),
                )
                .await;
                // Say so where it can still be heard: a P1 on every other channel.
                inner
                    .raise_elsewhere(
                        i,
                        Alert {
                            priority: Priority::P1,
                            source: "notifier".into(),
                            title: format!("alert {} never reached {}", job.id, ch.name),
                            message: format!("{}: {why}", job.alert.title),
                            context: json!({"channel": ch.name, "alert_id": job.id}),
                            dedup_key: Some(format!("alert-dead:{}", ch.name)),
                        },
                    )
                    .await;
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
    if let Err(e) = inner.store_delivery(job.id, record).await {
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
    inner.audit.record(
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

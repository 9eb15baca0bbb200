//! The HTTP channels (Slack, Discord, a generic webhook): one POST per alert with its
//! `Idempotency-Key`, the payload in the service's own shape and limits; a 429's hint
//! (`Retry-After`, Discord's `retry_after`) is handed to the retry policy.

use chrono::Utc;
use sovereign_core::notify::{self, ChannelKind, Outcome};

use super::settings::ChannelSettings;
use super::Job;
use crate::support::error_chain;

/// One attempt: POST the alert to `url`.
pub(super) async fn send(
    client: &reqwest::Client,
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
    let mut req = client
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
            let retry_after = notify::retry_hint(header.as_deref(), body.as_deref(), Utc::now());
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

//! The daily digest: once a day at the configured local time, the P3 alerts since the last
//! digest go to the digest channels as one message, through the outbox (so it survives outages
//! and restarts), its progress recorded in the same write.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::json;
use sovereign_core::notify::{self, Alert, Priority, Routing};
use sovereign_store::{AlertQuery, StoreError};

use super::{Inner, DIGEST_DATE, DIGEST_ID};

/// Once a day at the configured local time, send the digest of P3 alerts since the last one to
/// the digest channels, through the outbox (so it survives outages and restarts too).
pub(super) async fn digest_loop(
    inner: Arc<Inner>,
    mut last_date: Option<chrono::NaiveDate>,
    mut last_id: u64,
) {
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
            _ = inner.tasks.stopped() => return,
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
}

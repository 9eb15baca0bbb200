//! The store against a real SQLite file: group commit, isolation of failed writes, reopen,
//! pruning, the schedule cursor, the journal, the audit chain and the alert outbox.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sovereign_core::schedule::ScheduleSpec;
use sovereign_core::task::{PolicySpec, RunResult, RunStatus, TaskId, TaskSpec, Trigger};
use sovereign_store::{
    ResultFilter, SqliteOptions, Store, StoreError, TaskRow, WebhookRecord, WebhookStatus,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("sovereign-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 14, 30, 0).unwrap()
}

fn task(id: &str) -> TaskRow {
    TaskRow {
        spec: TaskSpec {
            task_id: id.into(),
            name: format!("Task {id}"),
            handler: "log_signal".into(),
            payload: json!({"symbol": "ES"}),
            schedule: Some(ScheduleSpec {
                every: Some("15m".into()),
                ..Default::default()
            }),
            enabled: true,
            policy: PolicySpec {
                retries: Some(2),
                timeout: Some("5s".into()),
                ..Default::default()
            },
        },
        created_at: t0(),
        updated_at: t0(),
        schedule_cursor: None,
    }
}

fn result(task: &str, n: i64, trigger: Trigger) -> RunResult {
    let at = t0() + Duration::seconds(n);
    RunResult {
        result_id: format!("{task}-{n}"),
        task_id: TaskId::parse(task).unwrap(),
        trigger,
        status: RunStatus::Success,
        output: json!({"n": n}),
        error: None,
        started_at: at,
        finished_at: at + Duration::milliseconds(3),
        attempt: 1,
        scheduled_for: (trigger == Trigger::Schedule).then_some(at),
        webhook_id: None,
    }
}

fn open(dir: &TempDir) -> Store {
    Store::open_sqlite(&dir.0, SqliteOptions::default()).unwrap()
}

#[tokio::test]
async fn tasks_round_trip_and_survive_reopen() {
    let dir = TempDir::new("reopen");
    let store = open(&dir);
    store.insert_task(task("a")).await.unwrap();
    store.insert_task(task("b")).await.unwrap();
    store.delete_task("b").await.unwrap();
    store.close().await;

    let store = open(&dir);
    let tasks = store.list_tasks().await.unwrap();
    assert_eq!(tasks, vec![task("a")]);
    store.close().await;
}

#[tokio::test]
async fn conflicts_and_missing_rows_are_typed_errors() {
    let dir = TempDir::new("errors");
    let store = open(&dir);
    store.insert_task(task("a")).await.unwrap();
    assert!(matches!(
        store.insert_task(task("a")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.update_task(task("zz")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_task("zz").await,
        Err(StoreError::NotFound(_))
    ));
    store.close().await;
    assert!(matches!(
        store.insert_task(task("c")).await,
        Err(StoreError::Closed)
    ));
}

#[tokio::test]
async fn one_failed_write_in_a_batch_spoils_nothing_else() {
    let dir = TempDir::new("batch");
    let store = open(&dir);
    store.insert_task(task("dup")).await.unwrap();
    // Many concurrent writes land in the same commit; the duplicate fails alone.
    let mut handles = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            if i == 100 {
                store.insert_task(task("dup")).await.map(|_| ())
            } else {
                store.insert_result(result("dup", i, Trigger::Manual)).await
            }
        }));
    }
    let mut failures = 0;
    for h in handles {
        if h.await.unwrap().is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 1);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.tasks, stats.results), (1, 199));
    assert!(
        stats.commits < stats.writes,
        "writes were grouped: {stats:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn results_filter_newest_first_and_cursor_advances() {
    let dir = TempDir::new("results");
    let store = open(&dir);
    store.insert_task(task("a")).await.unwrap();
    for n in 0..5 {
        store
            .insert_result(result("a", n, Trigger::Schedule))
            .await
            .unwrap();
        store
            .insert_result(result("other", n, Trigger::Manual))
            .await
            .unwrap();
    }
    let filter = |task: Option<&str>, since: Option<i64>, limit| ResultFilter {
        task_id: task.map(str::to_string),
        since: since.map(|s| t0() + Duration::seconds(s)),
        limit,
    };
    let ids = |rs: Vec<RunResult>| rs.into_iter().map(|r| r.result_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .list_results(filter(Some("a"), None, 3))
            .await
            .unwrap()),
        ["a-4", "a-3", "a-2"]
    );
    assert_eq!(
        ids(store
            .list_results(filter(Some("a"), Some(3), 10))
            .await
            .unwrap()),
        ["a-4", "a-3"]
    );
    assert_eq!(
        store
            .list_results(filter(None, None, 100))
            .await
            .unwrap()
            .len(),
        10
    );
    let full = store
        .list_results(filter(Some("a"), None, 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        full,
        result("a", 4, Trigger::Schedule),
        "every field round-trips"
    );

    let latest = store.latest_results().await.unwrap();
    let mut latest_ids = ids(latest);
    latest_ids.sort();
    assert_eq!(latest_ids, ["a-4", "other-4"]);

    let cursor = store.list_tasks().await.unwrap()[0].schedule_cursor;
    assert_eq!(cursor, Some(t0() + Duration::seconds(4)));
    // An update keeps the cursor.
    let mut changed = task("a");
    changed.spec.name = "renamed".into();
    store.update_task(changed).await.unwrap();
    let row = store.list_tasks().await.unwrap().remove(0);
    assert_eq!(
        (row.spec.name.as_str(), row.schedule_cursor),
        ("renamed", cursor)
    );
    store.close().await;
}

#[tokio::test]
async fn prune_by_age_and_count() {
    let dir = TempDir::new("prune");
    let store = open(&dir);
    for n in 0..10 {
        store
            .insert_result(result("a", n, Trigger::Manual))
            .await
            .unwrap();
    }
    let deleted = store
        .prune_results(Some(t0() + Duration::seconds(3)), None)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    let deleted = store.prune_results(None, Some(4)).await.unwrap();
    assert_eq!(deleted, 3);
    let left: Vec<String> = store
        .list_results(ResultFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.result_id)
        .collect();
    assert_eq!(left, ["a-9", "a-8", "a-7", "a-6"]);
    store.close().await;
}

#[tokio::test]
async fn webhooks_and_recent_deliveries() {
    let dir = TempDir::new("webhooks");
    let store = open(&dir);
    let record = |id: &str, delivery: Option<&str>, status, secs| WebhookRecord {
        id: id.into(),
        source: "tv".into(),
        event: Some("alert".into()),
        delivery_id: delivery.map(str::to_string),
        received_at: t0() + Duration::seconds(secs),
        status,
        reason: None,
        body: json!({"data": {"x": 1}}),
        tasks: vec!["t".into()],
    };
    store
        .insert_webhook(record("w1", Some("d1"), WebhookStatus::Accepted, 0))
        .await
        .unwrap();
    store
        .insert_webhook(record("w2", Some("d1"), WebhookStatus::Duplicate, 1))
        .await
        .unwrap();
    store
        .insert_webhook(record("w3", None, WebhookStatus::Rejected, 2))
        .await
        .unwrap();
    store
        .insert_webhook(record("w4", Some("d2"), WebhookStatus::Accepted, 3))
        .await
        .unwrap();
    let recent = store
        .recent_deliveries(t0() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        recent,
        vec![(
            "tv".to_string(),
            "d2".to_string(),
            t0() + Duration::seconds(3)
        )]
    );
    let listed = store.list_webhooks(2).await.unwrap();
    assert_eq!(
        listed.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["w4", "w3"]
    );
    assert_eq!(listed[1], record("w3", None, WebhookStatus::Rejected, 2));
    store.close().await;
}

#[tokio::test]
async fn progress_past_a_ticket_means_every_write_queued_before_it_is_readable() {
    use sovereign_store::{JournalEntry, Progress};
    let dir = TempDir::new("finished");
    let store = open(&dir);
    // Told on the writer's thread after each commit.
    let (told, mut progress) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    store.on_finished(move |p| {
        let _ = told.send(p);
    });
    let entry = |n: usize| JournalEntry {
        seq: 0,
        at: t0(),
        kind: "order_created".into(),
        payload: format!("{{\"n\":{n}}}"),
    };
    let mut last = 0;
    for round in 0..20 {
        // Writes queued from several tasks at once, then a ticket taken after ours.
        let others: Vec<_> = (0..5)
            .map(|i| store.append_audit(t0(), "t", "x", serde_json::json!({"i": i})))
            .collect();
        let ours = store.append_journal(vec![entry(round)]);
        let ticket = store.queued();
        while last < ticket {
            let p = progress.recv().await.expect("told after each commit");
            assert!(
                p.finished >= last,
                "progress only grows: {p:?} after {last}"
            );
            assert!(!p.poisoned);
            last = p.finished;
        }
        assert!(store.progress().finished >= ticket);
        // Without awaiting the write itself, it is there.
        let rows = store.read_journal(0, 1000).await.unwrap();
        assert_eq!(rows.len(), round + 1, "round {round}");
        assert_eq!(rows[round].payload, format!("{{\"n\":{round}}}"));
        ours.await.unwrap();
        for o in others {
            o.await.unwrap();
        }
    }
    assert!(!store.poisoned());
    store.close().await;
}

#[tokio::test]
async fn journal_keeps_queue_order_and_survives_reopen() {
    use sovereign_store::JournalEntry;
    let dir = TempDir::new("journal");
    let store = open(&dir);
    let entry = |n: usize| JournalEntry {
        seq: 0,
        at: t0() + Duration::seconds(n as i64),
        kind: "order_created".into(),
        payload: format!("{{\"n\":{n}}}"),
    };
    // Queue many appends before awaiting any: the journal must keep the queueing order.
    let pending: Vec<_> = (0..300)
        .map(|n| store.append_journal(vec![entry(n)]))
        .collect();
    for p in pending {
        p.await.unwrap();
    }
    store
        .append_journal(vec![entry(300), entry(301)])
        .await
        .unwrap();
    store.close().await;

    let store = open(&dir);
    let first = store.read_journal(0, 250).await.unwrap();
    let rest = store
        .read_journal(first.last().unwrap().seq, 1000)
        .await
        .unwrap();
    let payloads: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|e| e.payload.clone())
        .collect();
    let expected: Vec<String> = (0..302).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(payloads, expected);
    assert!(first.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(first[5].at, t0() + Duration::seconds(5));
    // The rows form one hash chain, across pages of the reader.
    let links = store.read_journal_links(0, 100).await.unwrap();
    let more = store.read_journal_links(100, 1000).await.unwrap();
    let all: Vec<_> = links.into_iter().chain(more).collect();
    let head = sovereign_core::audit::verify(&all, None, None).unwrap();
    assert_eq!(head.seq, 302);
    store.close().await;

    // Rows written before the journal was chained (no hash) are chained when the store opens,
    // to the same chain.
    let db = dir.0.join("sovereign.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE journal SET hash = NULL", []).unwrap();
    drop(conn);
    let store = open(&dir);
    let again = store.read_journal_links(0, 1000).await.unwrap();
    assert_eq!(
        sovereign_core::audit::verify(&again, None, None).unwrap(),
        head
    );
    store.close().await;
}

#[tokio::test]
async fn audit_appends_form_one_verifiable_chain_across_reopen() {
    use sovereign_core::audit::verify;
    let dir = TempDir::new("audit");
    let store = open(&dir);
    // Queued concurrently from many tasks: the writer still chains them one after another.
    let pending: Vec<_> = (0..200)
        .map(|n| store.append_audit(t0(), "engine", "test.event", json!({ "n": n })))
        .collect();
    let mut seqs = Vec::new();
    for p in pending {
        seqs.push(p.await.unwrap());
    }
    assert_eq!(
        seqs,
        (1..=200).collect::<Vec<u64>>(),
        "numbered in queue order"
    );
    store.close().await;

    let store = open(&dir);
    store
        .append_audit(t0(), "operator", "after.reopen", json!({}))
        .await
        .unwrap();
    let records = store.list_audit(0, 1000).await.unwrap();
    assert_eq!(records.len(), 201);
    let head = verify(&records, None, None).unwrap();
    assert_eq!(head.seq, 201);
    assert_eq!(records[200].actor, "operator");
    // A tail verifies from the record before it.
    let tail = store.list_audit(150, 1000).await.unwrap();
    assert!(verify(&tail, Some((150, &records[149].hash)), None).is_ok());
    store.close().await;
}

fn alert_record(id: u64, channels: &[&str], digest: bool) -> sovereign_store::AlertRecord {
    use sovereign_store::{DeliveryRecord, DeliveryStatus};
    sovereign_store::AlertRecord {
        id,
        at: t0() + Duration::seconds(id as i64),
        alert: sovereign_core::notify::Alert {
            priority: sovereign_core::notify::Priority::P1,
            source: "risk".into(),
            title: format!("alert {id}"),
            message: "line one\nline two".into(),
            context: json!({"account": "paper", "n": id}),
            dedup_key: id.is_multiple_of(2).then(|| format!("k{id}")),
        },
        digest,
        deliveries: channels
            .iter()
            .map(|c| DeliveryRecord {
                channel: c.to_string(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
                updated_at: t0(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn the_alert_outbox_keeps_deliveries_and_state_across_reopen() {
    use sovereign_store::{AlertQuery, DeliveryRecord, DeliveryStatus};
    let dir = TempDir::new("outbox");
    let store = open(&dir);
    let state = |k: &str, v: Option<&str>| vec![(k.to_string(), v.map(String::from))];
    store
        .insert_alert(alert_record(1, &["slack", "file"], false), vec![])
        .await
        .unwrap();
    store
        .insert_alert(
            alert_record(2, &["file"], true),
            state("digest.last_id", Some("2")),
        )
        .await
        .unwrap();
    store
        .insert_alert(alert_record(3, &[], true), vec![])
        .await
        .unwrap();
    // The same id twice is refused and leaves the state untouched.
    assert!(store
        .insert_alert(
            alert_record(3, &["file"], false),
            state("digest.last_id", Some("9"))
        )
        .await
        .is_err());
    let delivered = DeliveryRecord {
        channel: "file".into(),
        status: DeliveryStatus::Delivered,
        attempts: 1,
        last_error: None,
        updated_at: t0(),
    };
    store.update_delivery(1, delivered.clone()).await.unwrap();
    let retrying = DeliveryRecord {
        channel: "slack".into(),
        status: DeliveryStatus::Pending,
        attempts: 3,
        last_error: Some("HTTP 503".into()),
        ..delivered.clone()
    };
    store.update_delivery(1, retrying.clone()).await.unwrap();
    assert!(matches!(
        store.update_delivery(9, delivered.clone()).await,
        Err(StoreError::NotFound(_))
    ));
    store.close().await;

    let store = open(&dir);
    assert_eq!(store.max_alert_id().await.unwrap(), 3);
    let pending = store.alerts(AlertQuery::Pending, 100).await.unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(pending[0], {
        let mut r = alert_record(1, &["slack", "file"], false);
        r.deliveries = vec![retrying, delivered];
        r
    });
    let latest = store.alerts(AlertQuery::Latest, 2).await.unwrap();
    assert_eq!(latest.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2]);
    let after = store.alerts(AlertQuery::After(1), 100).await.unwrap();
    assert_eq!(after.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2, 3]);
    let digest = store.alerts(AlertQuery::DigestAfter(2), 100).await.unwrap();
    assert_eq!(digest.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3]);
    let since = store
        .alerts(AlertQuery::Since(t0() + Duration::seconds(2)), 100)
        .await
        .unwrap();
    assert_eq!(since.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2, 3]);
    let kept = store.notify_state().await.unwrap();
    assert_eq!(kept.get("digest.last_id").map(String::as_str), Some("2"));
    store
        .set_notify_state(state("digest.last_id", None))
        .await
        .unwrap();
    assert!(store.notify_state().await.unwrap().is_empty());

    // Pruning by age keeps what is pending and the newest alert (ids never start over).
    store
        .prune_results(Some(t0() + Duration::days(1)), None)
        .await
        .unwrap();
    let left = store.alerts(AlertQuery::After(0), 100).await.unwrap();
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    let done = |channel: &str| DeliveryRecord {
        channel: channel.into(),
        status: DeliveryStatus::Delivered,
        attempts: 1,
        last_error: None,
        updated_at: t0(),
    };
    store.update_delivery(1, done("slack")).await.unwrap();
    store.update_delivery(2, done("file")).await.unwrap();
    store
        .prune_results(Some(t0() + Duration::days(1)), None)
        .await
        .unwrap();
    let left = store.alerts(AlertQuery::After(0), 100).await.unwrap();
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3]);
    assert_eq!(store.max_alert_id().await.unwrap(), 3);
    store.close().await;
}

#[tokio::test]
async fn api_keys_keep_only_hashes_and_names_are_unique_among_live_keys() {
    use sovereign_core::access::{ApiKey, KeyText, Role};
    let dir = TempDir::new("keys");
    let store = open(&dir);
    let text = KeyText::from_bytes(&[1; 6], &[2; 20]);
    let key = |id: &str, k: &KeyText| ApiKey {
        id: id.into(),
        name: "desk".into(),
        role: Role::Trader,
        hash: k.hash(),
        created_at: t0(),
        expires_at: Some(t0() + Duration::days(90)),
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_key(key(&text.id, &text)).await.unwrap();
    let other = KeyText::from_bytes(&[3; 6], &[4; 20]);
    assert!(matches!(
        store.insert_key(key(&other.id, &other)).await,
        Err(StoreError::Conflict(_))
    ));
    store.touch_key(text.id.clone(), t0() + Duration::seconds(5));
    store
        .revoke_key("desk".into(), t0() + Duration::seconds(9))
        .await
        .unwrap();
    assert!(matches!(
        store.revoke_key("desk".into(), t0()).await,
        Err(StoreError::NotFound(_))
    ));
    // Revoked, the name is free again.
    store.insert_key(key(&other.id, &other)).await.unwrap();
    store.close().await;
    let store = open(&dir);
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].last_used_at, Some(t0() + Duration::seconds(5)));
    assert_eq!(keys[0].revoked_at, Some(t0() + Duration::seconds(9)));
    assert_eq!(keys[1].revoked_at, None);
    // The secret itself is nowhere in the database file.
    let bytes = std::fs::read(dir.0.join("sovereign.db")).unwrap();
    let secret = text.reveal();
    let secret = secret.rsplit('_').next().unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    store.close().await;
}

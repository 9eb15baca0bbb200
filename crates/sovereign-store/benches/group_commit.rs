//! Durable write throughput through the group-commit writer: N concurrent writers each storing
//! run results, every one acknowledged only after its commit is on disk.
//!
//! Run: `cargo bench -p sovereign-store --bench group_commit`

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use sovereign_core::task::{RunResult, RunStatus, TaskId, Trigger};
use sovereign_store::{SqliteOptions, Store};

fn result(i: u64) -> RunResult {
    let now = Utc::now();
    RunResult {
        result_id: format!("r-{i}-{}", now.timestamp_nanos_opt().unwrap_or_default()),
        task_id: TaskId::parse("bench").unwrap(),
        trigger: Trigger::Webhook,
        status: RunStatus::Success,
        output: json!({"logged": true, "signal": {"symbol": "ES", "action": "BUY"}}),
        error: None,
        started_at: now,
        finished_at: now,
        attempt: 1,
        scheduled_for: None,
        webhook_id: None,
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sovereign-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async { Store::open_sqlite(&dir, SqliteOptions::default()).unwrap() });
    let mut group = c.benchmark_group("group_commit");
    group.measurement_time(Duration::from_secs(5));
    for writers in [1u64, 64, 512] {
        group.throughput(Throughput::Elements(writers * 20));
        group.bench_function(format!("durable_results_{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let store = store.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut handles = Vec::new();
                        for w in 0..writers {
                            let store = store.clone();
                            handles.push(tokio::spawn(async move {
                                for i in 0..20 {
                                    store.insert_result(result(w * 1000 + i)).await.unwrap();
                                }
                            }));
                        }
                        for h in handles {
                            h.await.unwrap();
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.throughput(Throughput::Elements(512 * 20));
    group.bench_function("audit_append_512_writers", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut handles = Vec::new();
                    for w in 0..512u64 {
                        let store = store.clone();
                        handles.push(tokio::spawn(async move {
                            for i in 0..20u64 {
                                store
                                    .append_audit(
                                        Utc::now(),
                                        "api",
                                        "task.registered",
                                        json!({"task_id": w * 1000 + i}),
                                    )
                                    .await
                                    .unwrap();
                            }
                        }));
                    }
                    for h in handles {
                        h.await.unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(store.close());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);

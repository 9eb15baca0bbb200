//! Audit chain verification speed: records checked per second (hash + links + order).
//! Run: `cargo bench -p sovereign-core --bench audit`

#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use sovereign_core::audit::{verify, AuditRecord};

fn bench(c: &mut Criterion) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let n = 100_000u64;
    let mut chain: Vec<AuditRecord> = Vec::with_capacity(n as usize);
    for i in 0..n {
        let r = AuditRecord::next(
            chain.last(),
            t0 + Duration::milliseconds(i as i64),
            "api",
            "task.registered",
            json!({"task_id": format!("task-{i}"), "handler": "log_signal", "enabled": true}),
        );
        chain.push(r);
    }
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.bench_function("verify_100k", |b| {
        b.iter(|| verify(&chain, None, None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The cost access control adds to a request, in-process: checking a presented API key (parse,
//! look up, SHA-256 of the secret, constant-time compare, first-use bookkeeping), finding what
//! a route needs in the permission table, and spending a rate-limit token.
//!
//! `cargo bench -p sovereign-http --bench access`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use axum::http::Method;
use criterion::{criterion_group, criterion_main, Criterion};
use sovereign_core::access::{Group, Role};
use sovereign_engine::access::settings::{AccessSettings, Mode};
use sovereign_engine::access::Access;
use sovereign_engine::audit::Audit;
use sovereign_engine::support::Tasks;
use sovereign_http::permissions::need;
use sovereign_store::{SqliteOptions, Store};

fn access(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let _inside = runtime.enter();
    let dir = std::env::temp_dir().join(format!("sovereign-bench-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_sqlite(&dir, SqliteOptions::default()).expect("a store");
    let tasks = Tasks::new();
    let audit = Audit::new(store.clone(), tasks.clone());
    let settings = AccessSettings {
        mode: Some(Mode::Keys),
        ..AccessSettings::default()
    };
    let access = runtime
        .block_on(Access::start(settings, true, store, audit, tasks))
        .expect("the access room");
    let (_, key) = runtime
        .block_on(access.create("bench", Role::Trader, None, "bench"))
        .expect("a key");
    let from = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    access.authenticate(&key, from).expect("the key is good");

    let mut group = c.benchmark_group("access");
    group.bench_function("authenticate a key", |b| {
        b.iter(|| access.authenticate(black_box(&key), from))
    });
    group.bench_function("permission lookup (last route of the table)", |b| {
        b.iter(|| need(&Method::POST, black_box("/api/tier-gates")))
    });
    group.bench_function("rate-limit token, per address", |b| {
        b.iter(|| access.admit(Group::Trade, black_box(from)))
    });
    group.bench_function("all three (a request in keys mode)", |b| {
        b.iter(|| {
            let n = need(&Method::POST, black_box("/api/orders"));
            let _ = access.admit(Group::Trade, from);
            (n, access.authenticate(black_box(&key), from).is_ok())
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, access);
criterion_main!(benches);

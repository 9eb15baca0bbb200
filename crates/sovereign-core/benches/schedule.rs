//! Cost of the scheduler's pure decisions: next-fire computation per schedule kind, and the
//! webhook credential check. Run: `cargo bench -p sovereign-core --bench schedule`

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use sovereign_core::calendar::Calendars;
use sovereign_core::schedule::{Schedule, ScheduleSpec};
use sovereign_core::webhook::{sign_hmac, verify, Presented, SourceAuth};

fn bench(c: &mut Criterion) {
    let cals = Calendars::with_builtins();
    let after = Utc.with_ymd_and_hms(2026, 3, 6, 15, 0, 0).unwrap(); // Friday before the DST change
    let anchor = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let cases = [
        (
            "every_1s",
            ScheduleSpec {
                every: Some("1s".into()),
                ..Default::default()
            },
        ),
        (
            "cron_every_second_utc",
            ScheduleSpec {
                cron: Some("* * * * * *".into()),
                ..Default::default()
            },
        ),
        (
            "cron_0925_new_york_us_equities",
            ScheduleSpec {
                cron: Some("0 25 9 * * MON-FRI".into()),
                tz: Some("America/New_York".into()),
                calendar: Some("us_equities".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, spec) in cases {
        let schedule = Schedule::parse(&spec, &cals).unwrap();
        c.bench_function(&format!("next_after/{name}"), |b| {
            b.iter(|| schedule.next_after(std::hint::black_box(after), anchor))
        });
    }
    let auth = SourceAuth::Hmac {
        header: "X-Signature-256".into(),
        secret: "k".repeat(32),
    };
    let body =
        br#"{"source":"tv","event":"alert","data":{"ticker":"ES1!","action":"buy","contracts":1}}"#;
    let sig = sign_hmac(&"k".repeat(32), body);
    let lookup = |_: &str| Some(sig.as_str());
    c.bench_function("webhook/verify_hmac", |b| {
        b.iter(|| {
            verify(
                &auth,
                Presented {
                    header: &lookup,
                    url_token: None,
                    body: std::hint::black_box(body),
                },
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

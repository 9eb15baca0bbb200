//! Cost of the pre-trade risk check with every rule on: the passing path (budget: P50 ≤ 250 ns,
//! P99 ≤ 1 µs per call) and a denial by the last rule (which also builds the message).
//!
//! Criterion reports means and medians, so after the criterion groups a plain loop times
//! 1,000,000 calls in batches of 64 (one `Instant` pair per batch, divided by 64) and prints the
//! p50/p99 of those per-call times. Under `cargo test --benches` (no `--bench` argument) the loop
//! runs only a few thousand calls.
//!
//! Run: `cargo bench -p sovereign-core --bench risk`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc, Weekday};
use criterion::{criterion_group, Criterion};
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{Instrument, Instruments, Symbol};
use sovereign_core::trading::order::{NewOrder, OrderType, Side, Tif};
use sovereign_core::trading::risk::{check, RiskContext, RiskLimits, TradingHours, TradingState};

/// Everything one `check` call needs, with every rule on and passing.
struct Fixture {
    instrument: Instrument,
    order: NewOrder,
    limits: RiskLimits,
    now: DateTime<Utc>,
    recent: Vec<DateTime<Utc>>,
}

impl Fixture {
    fn new() -> Fixture {
        let instrument = Instruments::builtin().find("ES").unwrap().clone();
        let sym = |s: &str| Symbol::parse(s).unwrap();
        // Wednesday 09:00 CST, inside CME hours.
        let now = Utc.with_ymd_and_hms(2026, 3, 4, 15, 0, 0).unwrap();
        let weekdays = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ];
        let limits = RiskLimits {
            max_order_qty: Some(Qty::parse("10").unwrap()),
            max_order_notional: Some(Money::parse("1000000").unwrap()),
            max_position: Some(Qty::parse("10").unwrap()),
            max_gross_exposure: Some(Money::parse("5000000").unwrap()),
            max_open_orders: Some(50),
            max_orders_per_window: Some((50, Duration::from_secs(60))),
            price_band_pct: Some(Fixed::parse("5").unwrap()),
            // The order's symbol last, so the allow-list is scanned in full.
            allowed_symbols: Some(
                ["NQ", "MNQ", "MES", "CL", "GC", "ES"]
                    .iter()
                    .map(|s| sym(s))
                    .collect(),
            ),
            trading_hours: Some(
                TradingHours::parse("America/Chicago", "17:00", "16:00", &weekdays).unwrap(),
            ),
            daily_loss_limit: Some(Money::parse("5000").unwrap()),
        };
        let order = NewOrder {
            account: "paper".into(),
            symbol: sym("ES"),
            side: Side::Buy,
            qty: Qty::parse("2").unwrap(),
            order_type: OrderType::Limit,
            limit_price: Some(Price::parse("5000").unwrap()),
            stop_price: None,
            tif: Tif::Day,
            client_order_id: None,
        };
        // 40 orders over the last 80 s: 30 inside the 60 s window.
        let recent = (0..40)
            .rev()
            .map(|i| now - TimeDelta::seconds(2 * i + 1))
            .collect();
        Fixture {
            instrument,
            order,
            limits,
            now,
            recent,
        }
    }

    fn ctx(&self, day_pnl: Money) -> RiskContext<'_> {
        RiskContext {
            now: self.now,
            state: TradingState::Active,
            instrument: &self.instrument,
            last_price: Some(Price::parse("5000.25").unwrap()),
            position: Qty::parse("3").unwrap(),
            open_buy_qty: Qty::parse("1").unwrap(),
            open_sell_qty: Qty::parse("2").unwrap(),
            gross_exposure: Money::parse("1500000").unwrap(),
            open_orders: 7,
            recent_order_times: &self.recent,
            day_pnl,
        }
    }
}

fn passing_pnl() -> Money {
    Money::parse("-1200").unwrap()
}

fn breached_pnl() -> Money {
    Money::parse("-5000").unwrap()
}

fn bench(c: &mut Criterion) {
    let f = Fixture::new();
    let pass = f.ctx(passing_pnl());
    let deny = f.ctx(breached_pnl());
    assert!(check(&f.order, &f.limits, &pass).is_ok());
    assert_eq!(
        check(&f.order, &f.limits, &deny).unwrap_err().code.code(),
        "daily_loss_limit"
    );
    c.bench_function("risk/check_all_rules_pass", |b| {
        b.iter(|| check(black_box(&f.order), black_box(&f.limits), black_box(&pass)))
    });
    c.bench_function("risk/check_denied_last_rule", |b| {
        b.iter(|| check(black_box(&f.order), black_box(&f.limits), black_box(&deny)))
    });
}

/// Per-call latency percentiles from batches of 64 calls; returns (p50, p99, max) in picoseconds.
fn batch_percentiles(calls: usize, mut one: impl FnMut()) -> (u128, u128, u128) {
    const BATCH: usize = 64;
    let batches = calls / BATCH;
    // Warm caches and branch predictors first.
    for _ in 0..(batches / 10).max(10) * BATCH {
        one();
    }
    let mut per_call_ps: Vec<u128> = Vec::with_capacity(batches);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..BATCH {
            one();
        }
        per_call_ps.push(start.elapsed().as_nanos() * 1000 / BATCH as u128);
    }
    per_call_ps.sort_unstable();
    let at = |q: usize| per_call_ps[(per_call_ps.len() * q / 100).min(per_call_ps.len() - 1)];
    (at(50), at(99), per_call_ps[per_call_ps.len() - 1])
}

fn ns(ps: u128) -> String {
    format!("{}.{:01} ns", ps / 1000, (ps % 1000) / 100)
}

/// The passing path's budget, in picoseconds.
const P50_BUDGET_PS: u128 = 250_000;
const P99_BUDGET_PS: u128 = 1_000_000;

fn latency_percentiles() {
    let full = std::env::args().any(|a| a == "--bench");
    let calls = if full { 1_000_000 } else { 64 * 50 };
    let f = Fixture::new();
    let pass = f.ctx(passing_pnl());
    let deny = f.ctx(breached_pnl());
    // (name, context, whether the latency budget applies)
    let cases = [
        ("risk/check_all_rules_pass", &pass, true),
        ("risk/check_denied_last_rule", &deny, false),
    ];
    for (name, ctx, budgeted) in cases {
        let (p50, p99, max) = batch_percentiles(calls, || {
            let _ = black_box(check(
                black_box(&f.order),
                black_box(&f.limits),
                black_box(ctx),
            ));
        });
        let verdict = match (budgeted, full) {
            (false, _) => "",
            (true, false) => " (test mode, not held to the budget)",
            (true, true) if p50 <= P50_BUDGET_PS && p99 <= P99_BUDGET_PS => {
                " (within budget: p50 ≤ 250 ns, p99 ≤ 1 µs)"
            }
            (true, true) => " (OVER budget: p50 ≤ 250 ns, p99 ≤ 1 µs)",
        };
        println!(
            "{name}: {calls} calls in batches of 64: p50 {}, p99 {}, max {} per call{verdict}",
            ns(p50),
            ns(p99),
            ns(max),
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    latency_percentiles();
    Criterion::default().configure_from_args().final_summary();
}

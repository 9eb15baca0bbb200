//! The OMS core in-process: submit → pre-trade risk → paper match → position update, no I/O.
//! Market orders alternate buy/sell on ES with every risk rule but the order-rate window on.
//! Run: `cargo bench -p sovereign-core --bench oms`

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{Instruments, Symbol};
use sovereign_core::trading::matching::{PaperConfig, Quote};
use sovereign_core::trading::oms::{AccountConfig, Oms, PriceSource};
use sovereign_core::trading::order::{NewOrder, OrderType, Side, Tif};
use sovereign_core::trading::risk::{RiskLimits, TradingHours};

const BATCH: u64 = 10_000;

fn oms() -> Oms {
    let f = |s: &str| Fixed::parse(s).unwrap();
    let limits = RiskLimits {
        max_order_qty: Some(Qty(f("100"))),
        max_order_notional: Some(Money(f("10000000"))),
        max_position: Some(Qty(f("50"))),
        max_gross_exposure: Some(Money(f("100000000"))),
        max_open_orders: Some(1000),
        max_orders_per_window: None,
        price_band_pct: Some(f("5")),
        allowed_symbols: Some(vec![
            Symbol::parse("ES").unwrap(),
            Symbol::parse("NQ").unwrap(),
        ]),
        trading_hours: Some(
            TradingHours::parse(
                "UTC",
                "00:00",
                "00:00",
                &[
                    chrono::Weekday::Mon,
                    chrono::Weekday::Tue,
                    chrono::Weekday::Wed,
                    chrono::Weekday::Thu,
                    chrono::Weekday::Fri,
                ],
            )
            .unwrap(),
        ),
        daily_loss_limit: Some(Money(f("1000000"))),
    };
    let mut oms = Oms::new(
        Instruments::builtin(),
        PaperConfig {
            slippage_ticks: 1,
            commission_per_unit: Money(f("1.25")),
        },
        &[AccountConfig {
            name: "paper".into(),
            starting_cash: Money(f("100000")),
            limits,
        }],
    );
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap();
    let quote = Quote {
        last: Some(Price(f("5000"))),
        bid: Some(Price(f("4999.75"))),
        ask: Some(Price(f("5000.25"))),
    };
    oms.on_quote(
        &Symbol::parse("ES").unwrap(),
        quote,
        PriceSource::External,
        now,
        &mut Vec::new(),
    );
    oms
}

fn bench(c: &mut Criterion) {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap();
    let order = |side| NewOrder {
        account: "paper".into(),
        symbol: Symbol::parse("ES").unwrap(),
        side,
        qty: Qty(Fixed::ONE),
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: Tif::Day,
        client_order_id: None,
    };
    let (buy, sell) = (order(Side::Buy), order(Side::Sell));
    let mut group = c.benchmark_group("oms");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("submit_risk_match_position_10k", |b| {
        b.iter_batched(
            oms,
            |mut oms| {
                let mut events = Vec::with_capacity(8);
                for i in 0..BATCH {
                    events.clear();
                    let o = if i % 2 == 0 {
                        buy.clone()
                    } else {
                        sell.clone()
                    };
                    let done = oms.submit(o, now, &mut events).unwrap();
                    debug_assert!(done.denial.is_none());
                }
                oms
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The OMS core: replaying its events rebuilds exactly the same state (recovery), and day orders
//! expire at their session's close.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{Instruments, Symbol};
use sovereign_core::trading::matching::{PaperConfig, Quote};
use sovereign_core::trading::oms::{session_close_after, AccountConfig, Event, Oms, PriceSource};
use sovereign_core::trading::order::{NewOrder, OrderStatus, OrderType, Side, Tif};
use sovereign_core::trading::risk::{
    reduces_only, RiskLimits, StateCommand, TradingHours, TradingState,
};

fn f(s: &str) -> Fixed {
    Fixed::parse(s).unwrap()
}

fn oms(limits: RiskLimits) -> Oms {
    Oms::new(
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
    )
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap()
}

#[derive(Debug, Clone)]
enum Cmd {
    Quote(i64),
    Market(bool, i64),
    Limit(bool, i64, i64),
    Cancel(usize),
    Modify(usize, i64),
    Flatten,
    Halt,
    Reduce,
    Resume,
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        (-20i64..20).prop_map(Cmd::Quote),
        (any::<bool>(), 1i64..4).prop_map(|(b, q)| Cmd::Market(b, q)),
        (any::<bool>(), 1i64..4, -8i64..8).prop_map(|(b, q, o)| Cmd::Limit(b, q, o)),
        (0usize..20).prop_map(Cmd::Cancel),
        (0usize..20, 1i64..5).prop_map(|(i, q)| Cmd::Modify(i, q)),
        Just(Cmd::Flatten),
        Just(Cmd::Halt),
        Just(Cmd::Reduce),
        Just(Cmd::Resume),
    ]
}

/// Everything a person can see of the OMS.
fn view(o: &Oms, now: DateTime<Utc>) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        o.orders(&Default::default(), usize::MAX),
        o.positions(None),
        o.accounts(now),
        o.fills(None, usize::MAX)
    )
}

proptest! {
    #[test]
    fn replaying_the_events_rebuilds_the_same_state(cmds in proptest::collection::vec(cmd(), 1..60)) {
        let limits = RiskLimits {
            max_order_qty: Some(Qty(f("3"))),
            max_position: Some(Qty(f("6"))),
            daily_loss_limit: Some(Money(f("2000"))),
            ..RiskLimits::default()
        };
        let mut live = oms(limits.clone());
        let es = Symbol::parse("ES").unwrap();
        let mut journal: Vec<Event> = Vec::new();
        let mut mid = 20_000i64; // in ticks of 0.25
        let mut now = t0();
        for c in cmds {
            now += Duration::seconds(1);
            let mut out = Vec::new();
            let px = |ticks: i64| Price(Fixed::from_raw(ticks * 25_000_000));
            let order = |side: bool, qty: i64, kind: OrderType, limit: Option<Price>| NewOrder {
                account: "paper".into(),
                symbol: es.clone(),
                side: if side { Side::Buy } else { Side::Sell },
                qty: Qty(Fixed::from_int(qty).unwrap()),
                order_type: kind,
                limit_price: limit,
                stop_price: None,
                tif: Tif::Gtc,
                client_order_id: None,
            };
            match c {
                Cmd::Quote(d) => {
                    mid += d;
                    live.on_quote(&es, Quote { last: Some(px(mid)), bid: Some(px(mid - 1)), ask: Some(px(mid + 1)) }, PriceSource::Synthetic, now, &mut out);
                }
                Cmd::Market(b, q) => { let _ = live.submit(order(b, q, OrderType::Market, None), now, &mut out); }
                Cmd::Limit(b, q, off) => { let _ = live.submit(order(b, q, OrderType::Limit, Some(px(mid + off))), now, &mut out); }
                Cmd::Cancel(i) => { let _ = live.cancel(i as u64 + 1, "test", now, &mut out); }
                Cmd::Modify(i, q) => { let _ = live.modify(i as u64 + 1, Some(Qty(Fixed::from_int(q).unwrap())), None, None, now, &mut out); }
                Cmd::Flatten => { let _ = live.flatten(None, now, &mut out); }
                Cmd::Reduce => { let _ = live.set_state(Some("paper"), &StateCommand::Reduce { reason: "t".into() }, now, &mut out); }
                Cmd::Halt => { let _ = live.set_state(Some("paper"), &StateCommand::Hardstop { reason: "t".into() }, now, &mut out); }
                Cmd::Resume => { let _ = live.set_state(Some("paper"), &StateCommand::Resume { reason: "t".into() }, now, &mut out); }
            }
            journal.extend(out);
            // The kill switch leaves nothing working that its state forbids.
            let state = live.accounts(now)[0].state;
            let position = live.position_qty("paper", &es);
            for o in live.working_orders() {
                let mut rest = o.request.clone();
                rest.qty = o.leaves_qty();
                prop_assert!(state != TradingState::Halted, "order {} works on a halted account", o.id);
                prop_assert!(
                    state != TradingState::Reducing || reduces_only(&rest, position),
                    "order {} would increase the {} position of a reducing account", o.id, position
                );
            }
        }
        let mut rebuilt = oms(limits);
        for e in &journal {
            rebuilt.apply(e);
        }
        // Quotes that led to no fill are not journaled; compare with the live last price applied.
        let last = live.quote(&es).unwrap_or_default();
        rebuilt.on_quote(&es, last, PriceSource::Synthetic, now, &mut Vec::new());
        let mut live_again = live;
        live_again.on_quote(&es, last, PriceSource::Synthetic, now, &mut Vec::new());
        prop_assert_eq!(view(&live_again, now), view(&rebuilt, now));
    }
}

#[test]
fn day_orders_expire_at_their_session_close() {
    let ct = TradingHours::parse(
        "America/Chicago",
        "17:00",
        "16:00",
        &[
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
        ],
    )
    .unwrap();
    let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 24, h, m, 0).unwrap();
    // (created, hours, expected close)
    let cases = [
        (
            at(15, 0),
            None,
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap(),
        ),
        // 09:00 CST → closes 16:00 CST = 22:00Z the same day.
        (at(15, 0), Some(&ct), at(22, 0)),
        // 16:30 CST (after the close) → the next day's 16:00 CST.
        (
            at(22, 30),
            Some(&ct),
            Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap(),
        ),
    ];
    for (created, hours, close) in cases {
        assert_eq!(session_close_after(created, hours), close, "{created}");
    }

    let mut o = oms(RiskLimits::default());
    let es = Symbol::parse("ES").unwrap();
    let mut out = Vec::new();
    o.on_quote(
        &es,
        Quote {
            last: Some(Price(f("5000"))),
            bid: Some(Price(f("4999.75"))),
            ask: Some(Price(f("5000.25"))),
        },
        PriceSource::External,
        t0(),
        &mut out,
    );
    let resting = |tif| NewOrder {
        account: "paper".into(),
        symbol: es.clone(),
        side: Side::Buy,
        qty: Qty(f("1")),
        order_type: OrderType::Limit,
        limit_price: Some(Price(f("4990"))),
        stop_price: None,
        tif,
        client_order_id: None,
    };
    let day = o
        .submit(resting(Tif::Day), t0(), &mut out)
        .unwrap()
        .order
        .id;
    let gtc = o
        .submit(resting(Tif::Gtc), t0(), &mut out)
        .unwrap()
        .order
        .id;
    o.expire_day_orders(
        Utc.with_ymd_and_hms(2026, 11, 24, 23, 59, 59).unwrap(),
        &mut out,
    );
    assert_eq!(
        o.order(day).unwrap().status,
        OrderStatus::Accepted,
        "not yet midnight UTC"
    );
    o.expire_day_orders(
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap(),
        &mut out,
    );
    assert_eq!(o.order(day).unwrap().status, OrderStatus::Expired);
    assert_eq!(
        o.order(gtc).unwrap().status,
        OrderStatus::Accepted,
        "gtc stays"
    );
}

#[test]
fn an_external_price_takes_a_symbol_from_the_synthetic_feed_for_good() {
    let mut o = oms(RiskLimits::default());
    let es = Symbol::parse("ES").unwrap();
    let q = |p: &str| Quote {
        last: Some(Price(f(p))),
        bid: None,
        ask: None,
    };
    let now = t0();
    let mut journal = Vec::new();
    assert!(o.on_quote(&es, q("5000"), PriceSource::Synthetic, now, &mut journal));
    assert!(
        journal.is_empty(),
        "a synthetic price alone is not journaled"
    );
    assert!(o.on_quote(&es, q("4000"), PriceSource::External, now, &mut journal));
    assert_eq!(
        journal.len(),
        1,
        "the first external price is journaled: {journal:?}"
    );
    assert!(!o.on_quote(&es, q("5001"), PriceSource::Synthetic, now, &mut journal));
    assert_eq!(o.quote(&es).unwrap().last, Some(Price(f("4000"))));
    // A restart (replay) keeps the symbol external and its price.
    let mut rebuilt = oms(RiskLimits::default());
    for e in &journal {
        rebuilt.apply(e);
    }
    assert!(rebuilt.is_external(&es));
    assert!(!rebuilt.on_quote(&es, q("5001"), PriceSource::Synthetic, now, &mut Vec::new()));
    assert_eq!(rebuilt.quote(&es).unwrap().last, Some(Price(f("4000"))));
    // mark_prices journals only what moved since the last mark.
    let mut out = Vec::new();
    o.mark_prices(now, &mut out);
    assert!(out.is_empty(), "{out:?}");
    o.on_quote(&es, q("4001"), PriceSource::External, now, &mut Vec::new());
    o.mark_prices(now, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
}

//! The paper broker's decisions as a table: an order written as one line (`buy 2 limit=5000
//! ioc`), a quote (`last=5000 bid=4999.75 ask=5000.25`) and the expected decision rendered as
//! text (`trigger + fill 2 @ 5000.25 fee 2.5 + cancel ioc_unfilled`, or `wait`). Then properties
//! over random orders and quotes: IOC/FOK never rest, fills are never worse than the limit, and a
//! fill is always the whole leaves quantity with the exact commission.
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{Instrument, Instruments, Symbol};
use sovereign_core::trading::matching::{decide, CancelReason, Decision, PaperConfig, Quote};
use sovereign_core::trading::order::{NewOrder, Order, OrderStatus, OrderType, Side, Tif};

fn es() -> Instrument {
    Instruments::builtin()
        .get(&Symbol::parse("ES").unwrap())
        .unwrap()
        .clone()
}

fn config() -> PaperConfig {
    PaperConfig {
        slippage_ticks: 2,
        commission_per_unit: Money::parse("1.25").unwrap(),
    }
}

/// `<side> <qty> [market|limit=P|stop=P|stop=P limit=P] [day|gtc|ioc|fok] [triggered]
/// [filled=N] [status=filled|canceled|accepted|submitted|partially_filled]`.
/// Defaults: market, day, accepted.
fn order(text: &str) -> Order {
    let mut words = text.split_whitespace();
    let side = Side::parse(words.next().unwrap()).unwrap();
    let qty = Qty::parse(words.next().unwrap()).unwrap();
    let (mut limit, mut stop, mut tif) = (None, None, Tif::Day);
    let (mut triggered, mut filled, mut status) = (false, Qty::ZERO, OrderStatus::Accepted);
    for w in words {
        match w.split_once('=') {
            Some(("limit", p)) => limit = Some(Price::parse(p).unwrap()),
            Some(("stop", p)) => stop = Some(Price::parse(p).unwrap()),
            Some(("filled", q)) => filled = Qty::parse(q).unwrap(),
            Some(("status", s)) => status = OrderStatus::parse(s).unwrap(),
            None if w == "market" => {}
            None if w == "triggered" => triggered = true,
            None => tif = Tif::parse(w).unwrap(),
            Some(_) => panic!("unknown word {w:?}"),
        }
    }
    let order_type = match (limit, stop) {
        (None, None) => OrderType::Market,
        (Some(_), None) => OrderType::Limit,
        (None, Some(_)) => OrderType::Stop,
        (Some(_), Some(_)) => OrderType::StopLimit,
    };
    let request = NewOrder {
        account: "paper".into(),
        symbol: Symbol::parse("ES").unwrap(),
        side,
        qty,
        order_type,
        limit_price: limit,
        stop_price: stop,
        tif,
        client_order_id: None,
    };
    let mut o = Order::new(
        7,
        request,
        Utc.with_ymd_and_hms(2026, 1, 5, 15, 0, 0).unwrap(),
    );
    o.status = status;
    o.triggered = triggered;
    o.filled_qty = filled;
    o
}

/// `last=P bid=P ask=P` in any order, any subset; `-` for no data at all.
fn quote(text: &str) -> Quote {
    let mut q = Quote::default();
    for w in text.split_whitespace().filter(|w| *w != "-") {
        let (k, v) = w.split_once('=').unwrap();
        let p = Some(Price::parse(v).unwrap());
        match k {
            "last" => q.last = p,
            "bid" => q.bid = p,
            "ask" => q.ask = p,
            _ => panic!("unknown quote field {k:?}"),
        }
    }
    q
}

fn render(d: &Decision) -> String {
    let mut parts = Vec::new();
    if d.trigger {
        parts.push("trigger".to_string());
    }
    if let Some(f) = d.fill {
        parts.push(format!("fill {} @ {} fee {}", f.qty, f.price, f.commission));
    }
    if let Some(c) = d.cancel {
        parts.push(format!("cancel {}", c.as_str()));
    }
    if parts.is_empty() {
        "wait".into()
    } else {
        parts.join(" + ")
    }
}

const FULL: &str = "last=5000 bid=4999.75 ask=5000.25";

#[rustfmt::skip]
const CASES: &[(&str, &str, &str, &str)] = &[
    // (what, order, quote, expected)
    // Market orders.
    ("market buy fills at the ask", "buy 2", FULL, "fill 2 @ 5000.25 fee 2.5"),
    ("market sell fills at the bid", "sell 2", FULL, "fill 2 @ 4999.75 fee 2.5"),
    ("market buy from last slips up 2 ticks", "buy 2", "last=5000", "fill 2 @ 5000.5 fee 2.5"),
    ("market sell from last slips down 2 ticks", "sell 2", "last=5000", "fill 2 @ 4999.5 fee 2.5"),
    ("market buy ignores the bid side", "buy 1", "last=5000 bid=4999.75", "fill 1 @ 5000.5 fee 1.25"),
    ("market sell ignores the ask side", "sell 1", "last=5000 ask=5000.25", "fill 1 @ 4999.5 fee 1.25"),
    ("slipped sell never goes below one tick", "sell 1", "last=0.5", "fill 1 @ 0.25 fee 1.25"),
    ("market day without data waits", "buy 2", "-", "wait"),
    ("market gtc with only the other side waits", "buy 2 gtc", "bid=4999.75", "wait"),
    ("market ioc without data cancels", "buy 2 ioc", "-", "cancel no_market_data"),
    ("market fok without data cancels", "sell 2 fok", "-", "cancel no_market_data"),
    ("market ioc with only the other side cancels", "buy 2 ioc", "bid=4999.75", "cancel no_market_data"),
    ("market ioc fills in full", "buy 2 ioc", FULL, "fill 2 @ 5000.25 fee 2.5"),
    ("market fok fills in full", "sell 3 fok", FULL, "fill 3 @ 4999.75 fee 3.75"),
    // Limit orders against the touch.
    ("buy limit below the ask waits", "buy 2 limit=5000", FULL, "wait"),
    ("buy limit at the ask fills", "buy 2 limit=5000.25", FULL, "fill 2 @ 5000.25 fee 2.5"),
    ("buy limit through the ask fills at the ask", "buy 2 limit=5001", FULL, "fill 2 @ 5000.25 fee 2.5"),
    ("sell limit above the bid waits", "sell 2 limit=5000", FULL, "wait"),
    ("sell limit at the bid fills", "sell 2 limit=4999.75", FULL, "fill 2 @ 4999.75 fee 2.5"),
    ("sell limit through the bid fills at the bid", "sell 2 limit=4999", FULL, "fill 2 @ 4999.75 fee 2.5"),
    ("a touch that does not cross wins over last", "buy 1 limit=5000 gtc", "last=4999 ask=5000.25", "wait"),
    // Limit orders against last only.
    ("buy limit with last below fills at last", "buy 1 limit=5000", "last=4999.75", "fill 1 @ 4999.75 fee 1.25"),
    ("buy limit with last at the limit fills", "buy 1 limit=5000", "last=5000", "fill 1 @ 5000 fee 1.25"),
    ("buy limit with last above waits", "buy 1 limit=5000", "last=5000.25", "wait"),
    ("sell limit with last above fills at last", "sell 1 limit=5000", "last=5000.5", "fill 1 @ 5000.5 fee 1.25"),
    ("sell limit with last below waits", "sell 1 limit=5000 gtc", "last=4999.75", "wait"),
    // Limit time in force.
    ("ioc limit not marketable cancels", "buy 2 limit=5000 ioc", FULL, "cancel ioc_unfilled"),
    ("ioc limit marketable fills all", "buy 2 limit=5000.25 ioc", FULL, "fill 2 @ 5000.25 fee 2.5"),
    ("fok limit not marketable cancels", "sell 2 limit=5000 fok", FULL, "cancel fok_unfillable"),
    ("fok limit marketable fills all", "sell 2 limit=4999.75 fok", FULL, "fill 2 @ 4999.75 fee 2.5"),
    ("ioc limit without data cancels", "buy 2 limit=5000 ioc", "-", "cancel no_market_data"),
    ("day limit without data waits", "buy 2 limit=5000", "-", "wait"),
    // Stops.
    ("buy stop below the stop waits", "buy 1 stop=5001", FULL, "wait"),
    ("buy stop triggers on last and fills at the ask", "buy 1 stop=5001", "last=5001 bid=5000.75 ask=5001.25", "trigger + fill 1 @ 5001.25 fee 1.25"),
    ("buy stop triggers on the ask alone", "buy 1 stop=5001", "last=5000.75 bid=5000.75 ask=5001", "trigger + fill 1 @ 5001 fee 1.25"),
    ("buy stop does not trigger on the bid", "buy 1 stop=5001", "last=5000 bid=5001", "wait"),
    ("sell stop triggers on the bid", "sell 1 stop=4999", "last=4999.25 bid=4999 ask=4999.25", "trigger + fill 1 @ 4999 fee 1.25"),
    ("sell stop on last only slips", "sell 2 stop=4999", "last=4998.75", "trigger + fill 2 @ 4998.25 fee 2.5"),
    ("sell stop above the market waits", "sell 1 stop=4999 gtc", FULL, "wait"),
    ("triggered stop fills as market without re-triggering", "buy 1 stop=5001 triggered", FULL, "fill 1 @ 5000.25 fee 1.25"),
    ("stop without data waits", "buy 1 stop=5001", "-", "wait"),
    ("ioc stop not triggered cancels", "buy 1 stop=5001 ioc", FULL, "cancel ioc_unfilled"),
    ("fok stop without data cancels", "buy 1 stop=5001 fok", "-", "cancel no_market_data"),
    // Stop-limits.
    ("stop-limit triggers without fill when the ask gaps past the limit", "buy 1 stop=5001 limit=5001.25", "last=5001 ask=5001.5", "trigger"),
    ("stop-limit triggers and fills inside the limit", "buy 1 stop=5001 limit=5001.5", "last=5001 ask=5001.25", "trigger + fill 1 @ 5001.25 fee 1.25"),
    ("sell stop-limit triggers and fills at the bid", "sell 1 stop=4999 limit=4998.5", "last=4999 bid=4998.75", "trigger + fill 1 @ 4998.75 fee 1.25"),
    ("triggered stop-limit not marketable waits", "buy 1 stop=5001 limit=5001.25 triggered", "last=5001 ask=5001.5", "wait"),
    ("triggered stop-limit marketable fills", "buy 1 stop=5001 limit=5001.25 triggered", "last=5000 ask=5000.25", "fill 1 @ 5000.25 fee 1.25"),
    ("ioc stop-limit triggers then cancels", "buy 1 stop=5001 limit=5001.25 ioc", "last=5001 ask=5001.5", "trigger + cancel ioc_unfilled"),
    ("fok stop-limit triggers then cancels", "buy 1 stop=5001 limit=5001.25 fok", "last=5001 ask=5001.5", "trigger + cancel fok_unfillable"),
    // Quantity, commission and status.
    ("partially filled fills the leaves quantity", "buy 3 filled=1 status=partially_filled", FULL, "fill 2 @ 5000.25 fee 2.5"),
    ("commission scales with quantity", "sell 10", FULL, "fill 10 @ 4999.75 fee 12.5"),
    ("submitted orders are decided too", "buy 1 status=submitted", FULL, "fill 1 @ 5000.25 fee 1.25"),
    ("filled orders get nothing", "buy 1 filled=1 status=filled", FULL, "wait"),
    ("canceled orders get nothing", "buy 1 ioc status=canceled", "-", "wait"),
    ("nothing left to fill gets nothing", "buy 2 filled=2 status=partially_filled", FULL, "wait"),
];

#[test]
fn decision_table() {
    let (es, config) = (es(), config());
    let mut failures = Vec::new();
    for (what, o, q, expected) in CASES {
        let got = render(&decide(&order(o), &es, &quote(q), &config));
        if got != *expected {
            failures.push(format!(
                "{what}\n  order: {o}\n  quote: {q}\n  want:  {expected}\n  got:   {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn commission_is_exact_for_fractional_quantities() {
    let btc = Instruments::builtin()
        .get(&Symbol::parse("BTC-USD").unwrap())
        .unwrap()
        .clone();
    let config = PaperConfig {
        slippage_ticks: 0,
        commission_per_unit: Money::parse("0.1").unwrap(),
    };
    let o = order("buy 0.00123");
    let d = decide(&o, &btc, &quote("last=65000.01"), &config);
    let fill = d.fill.unwrap();
    assert_eq!(fill.price, Price::parse("65000.01").unwrap());
    assert_eq!(fill.commission, Money::parse("0.000123").unwrap());
}

#[test]
fn zero_slippage_fills_at_last() {
    let config = PaperConfig::default();
    let d = decide(&order("buy 1"), &es(), &quote("last=5000"), &config);
    assert_eq!(render(&d), "fill 1 @ 5000 fee 0");
}

#[test]
fn cancel_reason_codes() {
    let codes = [
        CancelReason::IocUnfilled,
        CancelReason::FokUnfillable,
        CancelReason::NoMarketData,
    ]
    .map(CancelReason::as_str);
    assert_eq!(codes, ["ioc_unfilled", "fok_unfillable", "no_market_data"]);
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn price_strategy() -> impl Strategy<Value = Option<Price>> {
    // ES ticks around 5000: 4990.00 ..= 5010.00.
    proptest::option::weighted(0.8, 19_960u32..=20_040).prop_map(|t| {
        t.map(|t| {
            Price(
                Fixed::from_int(i64::from(t))
                    .unwrap()
                    .checked_mul(Fixed::parse("0.25").unwrap())
                    .unwrap(),
            )
        })
    })
}

fn order_strategy() -> impl Strategy<Value = Order> {
    (
        any::<bool>(),
        1i64..=10,
        0usize..4,
        0usize..4,
        price_strategy(),
        price_strategy(),
        any::<bool>(),
        0i64..10,
    )
        .prop_map(|(buy, qty, ty, tif, limit, stop, triggered, filled)| {
            let side = if buy { "buy" } else { "sell" };
            let filled = filled % qty;
            let mut text = format!("{side} {qty} filled={filled}");
            let p = |p: Option<Price>| p.unwrap_or(Price::parse("5000").unwrap());
            match ty {
                0 => {}
                1 => text.push_str(&format!(" limit={}", p(limit))),
                2 => text.push_str(&format!(" stop={}", p(stop))),
                _ => text.push_str(&format!(" stop={} limit={}", p(stop), p(limit))),
            }
            text.push_str([" day", " gtc", " ioc", " fok"][tif]);
            if triggered {
                text.push_str(" triggered");
            }
            if filled > 0 {
                text.push_str(" status=partially_filled");
            }
            order(&text)
        })
}

fn quote_strategy() -> impl Strategy<Value = Quote> {
    (price_strategy(), price_strategy(), price_strategy()).prop_map(|(last, bid, ask)| Quote {
        last,
        bid,
        ask,
    })
}

proptest! {
    #[test]
    fn decisions_keep_their_promises(o in order_strategy(), q in quote_strategy()) {
        let config = config();
        let d = decide(&o, &es(), &q, &config);
        let req = &o.request;
        let immediate = matches!(req.tif, Tif::Ioc | Tif::Fok);

        // IOC/FOK never rest; day/GTC are never canceled by the broker.
        if immediate {
            prop_assert!(d.fill.is_some() != d.cancel.is_some(), "{d:?}");
        } else {
            prop_assert!(d.cancel.is_none(), "{d:?}");
        }
        // Only untriggered stops trigger.
        if d.trigger {
            prop_assert!(req.order_type.needs_stop() && !o.triggered);
        }
        if let Some(f) = d.fill {
            // Unlimited paper liquidity: the whole leaves quantity, exact commission.
            prop_assert_eq!(f.qty, o.leaves_qty());
            prop_assert_eq!(f.commission.0, config.commission_per_unit.0.checked_mul(f.qty.0).unwrap());
            // Never worse than the limit.
            if let (true, Some(limit)) = (req.order_type.needs_limit(), req.limit_price) {
                match req.side {
                    Side::Buy => prop_assert!(f.price <= limit),
                    Side::Sell => prop_assert!(f.price >= limit),
                }
            }
            // A stop only fills once triggered (before or by this decision).
            if req.order_type.needs_stop() {
                prop_assert!(o.triggered || d.trigger);
            }
            // With a touch on the order's side, fills happen at it or better.
            if let Some(touch) = q.touch(req.side) {
                match req.side {
                    Side::Buy => prop_assert!(f.price <= touch),
                    Side::Sell => prop_assert!(f.price >= touch),
                }
            }
        }
    }

    #[test]
    fn market_orders_with_a_touch_always_fill_there(o in order_strategy(), q in quote_strategy()) {
        prop_assume!(o.request.order_type == OrderType::Market);
        let d = decide(&o, &es(), &q, &config());
        match q.touch(o.request.side) {
            Some(touch) => prop_assert_eq!(d.fill.map(|f| f.price), Some(touch)),
            None if q.last.is_some() => prop_assert!(d.fill.is_some()),
            None => prop_assert!(d.fill.is_none()),
        }
    }
}

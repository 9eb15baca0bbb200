//! Pre-trade risk through the public API: one passing base case with every rule on and one case
//! per rule that flips a single input (the table), trading-hours windows across midnight and DST,
//! the trading-state table in full, and properties: `check` never panics, a denial's rule really
//! is violated (checked by oracles written separately from the implementation), and with every
//! limit off an active account always passes.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc, Weekday};
use proptest::prelude::*;
use sovereign_core::error::Invalid;
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{Instrument, Instruments, Symbol};
use sovereign_core::trading::order::{NewOrder, OrderType, Side, Tif};
use sovereign_core::trading::risk::{
    apply_state, check, reduces_only, RiskCode, RiskContext, RiskLimits, StateChange, StateCommand,
    TradingHours, TradingState,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
        .with_timezone(&Utc)
}

fn p(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn q(s: &str) -> Qty {
    Qty::parse(s).unwrap()
}

fn m(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

/// ES: tick 0.25, multiplier 50.
fn es() -> &'static Instrument {
    static ES: OnceLock<Instrument> = OnceLock::new();
    ES.get_or_init(|| Instruments::builtin().find("ES").unwrap().clone())
}

const MON_FRI: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

/// CME Globex equity futures: Sunday 17:00 to Friday 16:00 Chicago time, daily break 16:00–17:00.
fn cme_hours() -> TradingHours {
    TradingHours::parse("America/Chicago", "17:00", "16:00", &MON_FRI).unwrap()
}

fn order(side: Side, qty: &str, order_type: OrderType, limit: Option<&str>) -> NewOrder {
    NewOrder {
        account: "paper".into(),
        symbol: sym("ES"),
        side,
        qty: q(qty),
        order_type,
        limit_price: limit.map(p),
        stop_price: None,
        tif: Tif::Day,
        client_order_id: None,
    }
}

/// Everything `check` sees, owned, so a case can flip one field.
#[derive(Debug, Clone)]
struct World {
    order: NewOrder,
    limits: RiskLimits,
    now: DateTime<Utc>,
    state: TradingState,
    last_price: Option<Price>,
    position: Qty,
    open_buy_qty: Qty,
    open_sell_qty: Qty,
    gross_exposure: Money,
    open_orders: u32,
    recent: Vec<DateTime<Utc>>,
    day_pnl: Money,
}

/// Wednesday 2026-03-04 09:00 CST.
const NOW: &str = "2026-03-04T15:00:00Z";

impl World {
    /// Every rule on and passing: long 3 ES with 1 working buy, buying 2 more at a 5000 limit.
    fn base() -> World {
        let now = utc(NOW);
        World {
            order: order(Side::Buy, "2", OrderType::Limit, Some("5000")),
            limits: RiskLimits {
                max_order_qty: Some(q("10")),
                max_order_notional: Some(m("1000000")), // this order: 2 × 5000 × 50 = 500 000
                max_position: Some(q("10")),            // worst case: 3 + 1 + 2 = 6
                max_gross_exposure: Some(m("1500000")), // 750 000 now + 500 000
                max_open_orders: Some(20),
                max_orders_per_window: Some((5, Duration::from_secs(60))),
                price_band_pct: Some(Fixed::parse("5").unwrap()), // 4750 ..= 5250
                allowed_symbols: Some(vec![sym("NQ"), sym("ES")]),
                trading_hours: Some(cme_hours()),
                daily_loss_limit: Some(m("5000")),
            },
            now,
            state: TradingState::Active,
            last_price: Some(p("5000")),
            position: q("3"),
            open_buy_qty: q("1"),
            open_sell_qty: Qty::ZERO,
            gross_exposure: m("750000"),
            open_orders: 2,
            // One outside the 60 s window, three inside it.
            recent: [120, 45, 30, 10]
                .iter()
                .map(|s| now - TimeDelta::seconds(*s))
                .collect(),
            day_pnl: m("-1000"),
        }
    }

    fn check(&self) -> Result<(), RiskCode> {
        let ctx = RiskContext {
            now: self.now,
            state: self.state,
            instrument: es(),
            last_price: self.last_price,
            position: self.position,
            open_buy_qty: self.open_buy_qty,
            open_sell_qty: self.open_sell_qty,
            gross_exposure: self.gross_exposure,
            open_orders: self.open_orders,
            recent_order_times: &self.recent,
            day_pnl: self.day_pnl,
        };
        check(&self.order, &self.limits, &ctx).map_err(|d| {
            assert!(!d.message.is_empty(), "{:?} has no message", d.code);
            d.code
        })
    }
}

fn ago(w: &World, secs: i64) -> DateTime<Utc> {
    w.now - TimeDelta::seconds(secs)
}

// ---------------------------------------------------------------------------------------------
// The rule table

type Edit = fn(&mut World);

#[test]
fn base_case_passes_with_every_rule_on() {
    let w = World::base();
    assert!(w.limits.max_order_qty.is_some() && w.limits.daily_loss_limit.is_some());
    assert_eq!(w.check(), Ok(()));
}

#[test]
fn one_flip_per_rule() {
    use RiskCode as R;
    let cases: &[(&str, Edit, Option<RiskCode>)] = &[
        // State.
        (
            "halted",
            |w| w.state = TradingState::Halted,
            Some(R::TradingHalted),
        ),
        (
            "halted denies a reducing sell too",
            |w| {
                w.state = TradingState::Halted;
                w.order.side = Side::Sell;
            },
            Some(R::TradingHalted),
        ),
        (
            "reducing denies a buy that grows a long",
            |w| w.state = TradingState::Reducing,
            Some(R::ReducingOnly),
        ),
        (
            "reducing allows a sell that shrinks a long",
            |w| {
                w.state = TradingState::Reducing;
                w.order.side = Side::Sell;
            },
            None,
        ),
        (
            "reducing allows a sell down to flat",
            |w| {
                w.state = TradingState::Reducing;
                w.order.side = Side::Sell;
                w.order.qty = q("3");
            },
            None,
        ),
        (
            "reducing denies a sell through flat",
            |w| {
                w.state = TradingState::Reducing;
                w.order.side = Side::Sell;
                w.order.qty = q("4");
            },
            Some(R::ReducingOnly),
        ),
        (
            "reducing counts working sells first",
            |w| {
                w.state = TradingState::Reducing;
                w.order.side = Side::Sell;
                w.open_sell_qty = q("2"); // 3 − 2 = 1 left to reduce; this order sells 2
            },
            Some(R::ReducingOnly),
        ),
        (
            "reducing denies anything when flat",
            |w| {
                w.state = TradingState::Reducing;
                w.order.side = Side::Sell;
                w.position = Qty::ZERO;
                w.open_buy_qty = Qty::ZERO;
                w.gross_exposure = Money::ZERO;
            },
            Some(R::ReducingOnly),
        ),
        // Symbols.
        (
            "symbol not allowed",
            |w| w.limits.allowed_symbols = Some(vec![sym("NQ"), sym("MES")]),
            Some(R::SymbolNotAllowed),
        ),
        (
            "empty allow-list",
            |w| w.limits.allowed_symbols = Some(vec![]),
            Some(R::SymbolNotAllowed),
        ),
        // Trading hours (details in their own table).
        (
            "CME daily break 16:30 CST",
            |w| w.now = utc("2026-03-04T22:30:00Z"),
            Some(R::OutsideTradingHours),
        ),
        (
            "Saturday",
            |w| w.now = utc("2026-03-07T15:00:00Z"),
            Some(R::OutsideTradingHours),
        ),
        // Order quantity.
        (
            "qty at the limit",
            |w| w.limits.max_order_qty = Some(q("2")),
            None,
        ),
        (
            "qty over the limit",
            |w| w.limits.max_order_qty = Some(q("1")),
            Some(R::MaxOrderQty),
        ),
        // Price band: 5% of 5000 = 250.
        (
            "limit at +5%",
            |w| w.order.limit_price = Some(p("5250")),
            None,
        ),
        (
            "limit at -5%",
            |w| w.order.limit_price = Some(p("4750")),
            None,
        ),
        (
            "limit one tick over +5%",
            |w| w.order.limit_price = Some(p("5250.25")),
            Some(R::PriceBand),
        ),
        (
            "limit one tick under -5%",
            |w| w.order.limit_price = Some(p("4749.75")),
            Some(R::PriceBand),
        ),
        (
            "stop outside the band",
            |w| {
                w.order.order_type = OrderType::Stop;
                w.order.limit_price = None;
                w.order.stop_price = Some(p("5300"));
            },
            Some(R::PriceBand),
        ),
        (
            "stop-limit: stop inside, limit outside",
            |w| {
                w.order.order_type = OrderType::StopLimit;
                w.order.stop_price = Some(p("5100"));
                w.order.limit_price = Some(p("5260"));
            },
            Some(R::PriceBand),
        ),
        (
            "stop-limit inside the band",
            |w| {
                w.order.order_type = OrderType::StopLimit;
                w.order.stop_price = Some(p("5100"));
                w.order.limit_price = Some(p("5110"));
            },
            None,
        ),
        // No market price.
        (
            "market order with a last price",
            |w| {
                w.order.order_type = OrderType::Market;
                w.order.limit_price = None;
            },
            None,
        ),
        (
            "market order without a last price",
            |w| {
                w.order.order_type = OrderType::Market;
                w.order.limit_price = None;
                w.last_price = None;
            },
            Some(R::NoMarketPrice),
        ),
        (
            "limit order without a last price (band on)",
            |w| w.last_price = None,
            Some(R::NoMarketPrice),
        ),
        (
            "limit order without a last price, band off: valued at its limit",
            |w| {
                w.last_price = None;
                w.limits.price_band_pct = None;
            },
            None,
        ),
        (
            "market order without a last price, no notional rule",
            |w| {
                w.order.order_type = OrderType::Market;
                w.order.limit_price = None;
                w.last_price = None;
                w.limits.price_band_pct = None;
                w.limits.max_order_notional = None;
                w.limits.max_gross_exposure = None;
            },
            None,
        ),
        // Order notional: 2 × 5000 × 50 = 500 000.
        (
            "notional exactly at the limit",
            |w| w.limits.max_order_notional = Some(m("500000")),
            None,
        ),
        (
            "notional over the limit",
            |w| w.limits.max_order_notional = Some(m("499999.99")),
            Some(R::MaxOrderNotional),
        ),
        (
            "market order valued at the last price",
            |w| {
                w.order.order_type = OrderType::Market;
                w.order.limit_price = None;
                w.last_price = Some(p("5250"));
                w.limits.max_order_notional = Some(m("520000")); // 525 000 at last
            },
            Some(R::MaxOrderNotional),
        ),
        // Open orders.
        ("19 working, limit 20", |w| w.open_orders = 19, None),
        (
            "20 working, limit 20",
            |w| w.open_orders = 20,
            Some(R::MaxOpenOrders),
        ),
        // Order rate: 5 per 60 s.
        (
            "4 in the window and 1 older",
            |w| w.recent = vec![ago(w, 61), ago(w, 50), ago(w, 40), ago(w, 30), ago(w, 1)],
            None,
        ),
        (
            "exactly 5 in the window",
            |w| w.recent = vec![ago(w, 59), ago(w, 50), ago(w, 40), ago(w, 30), ago(w, 0)],
            Some(R::MaxOrderRate),
        ),
        (
            "one exactly a window old has left it",
            |w| w.recent = vec![ago(w, 60), ago(w, 50), ago(w, 40), ago(w, 30), ago(w, 1)],
            None,
        ),
        (
            "many older ones are ignored",
            |w| {
                let now = w.now;
                w.recent = (0..100)
                    .map(|i| now - TimeDelta::seconds(1000 - i))
                    .chain([now - TimeDelta::seconds(5)])
                    .collect();
            },
            None,
        ),
        // Position, worst case: 3 + 2 + working buys.
        (
            "worst case exactly at the limit",
            |w| w.open_buy_qty = q("5"),
            None,
        ),
        (
            "working buys push the worst case over",
            |w| w.open_buy_qty = q("6"),
            Some(R::MaxPosition),
        ),
        (
            "working sells do not count for a buy",
            |w| w.open_sell_qty = q("50"),
            None,
        ),
        (
            "a sell counts working sells",
            |w| {
                w.order.side = Side::Sell;
                w.position = q("-3");
                w.open_sell_qty = q("6"); // −3 − 6 − 2 = −11
            },
            Some(R::MaxPosition),
        ),
        (
            "a sell that flips a long past the limit",
            |w| {
                w.order.side = Side::Sell;
                w.order.qty = q("10");
                w.position = q("-1");
                w.limits.max_order_notional = None;
                w.limits.max_gross_exposure = None;
            },
            Some(R::MaxPosition),
        ),
        (
            "an account over a lowered limit may still reduce",
            |w| {
                w.order.side = Side::Sell;
                w.position = q("12");
            },
            None,
        ),
        // Gross exposure: 750 000 + 2 × 5000 × 50.
        (
            "gross exposure exactly at the limit",
            |w| w.gross_exposure = m("1000000"),
            None,
        ),
        (
            "gross exposure over the limit",
            |w| w.gross_exposure = m("1000000.01"),
            Some(R::MaxGrossExposure),
        ),
        (
            "a reducing order passes over the gross limit",
            |w| {
                w.order.side = Side::Sell;
                w.gross_exposure = m("2000000");
            },
            None,
        ),
        (
            "a flip counts only the growth",
            |w| {
                w.order.side = Side::Sell;
                w.order.qty = q("4"); // 3 → −1: |−1| < |3|, no growth
                w.gross_exposure = m("1499999");
            },
            None,
        ),
        // Daily loss: limit 5000.
        (
            "day P&L just above -limit",
            |w| w.day_pnl = m("-4999.99"),
            None,
        ),
        (
            "day P&L at -limit",
            |w| w.day_pnl = m("-5000"),
            Some(R::DailyLossLimit),
        ),
        (
            "a negative limit means the same",
            |w| {
                w.limits.daily_loss_limit = Some(m("-5000"));
                w.day_pnl = m("-5000.01");
            },
            Some(R::DailyLossLimit),
        ),
    ];
    for (name, edit, want) in cases {
        let mut w = World::base();
        edit(&mut w);
        let got = w.check().err();
        assert_eq!(got, *want, "{name}");
    }
}

#[test]
fn first_failing_rule_wins() {
    use RiskCode as R;
    // Break every rule at once, then repair them from the front: each repair exposes the next code.
    let mut w = World::base();
    w.state = TradingState::Halted;
    w.limits.allowed_symbols = Some(vec![sym("NQ")]);
    w.now = utc("2026-03-07T15:00:00Z");
    w.order.qty = q("11");
    w.order.limit_price = Some(p("6000"));
    w.limits.max_order_notional = Some(m("1"));
    w.open_orders = 99;
    w.recent = vec![w.now; 9];
    w.open_buy_qty = q("100");
    w.gross_exposure = m("99000000");
    w.day_pnl = m("-99999");
    let repairs: [(Edit, RiskCode); 11] = [
        (|w| w.state = TradingState::Active, R::TradingHalted),
        (|w| w.limits.allowed_symbols = None, R::SymbolNotAllowed),
        (|w| w.now = utc(NOW), R::OutsideTradingHours),
        (|w| w.order.qty = q("2"), R::MaxOrderQty),
        (|w| w.order.limit_price = Some(p("5000")), R::PriceBand),
        (|w| w.limits.max_order_notional = None, R::MaxOrderNotional),
        (|w| w.open_orders = 0, R::MaxOpenOrders),
        (|w| w.recent.clear(), R::MaxOrderRate),
        (|w| w.open_buy_qty = Qty::ZERO, R::MaxPosition),
        (|w| w.gross_exposure = Money::ZERO, R::MaxGrossExposure),
        (|w| w.day_pnl = Money::ZERO, R::DailyLossLimit),
    ];
    for (repair, code) in repairs {
        assert_eq!(w.check(), Err(code));
        repair(&mut w);
    }
    assert_eq!(w.check(), Ok(()));
}

#[test]
fn denials_say_what_and_why() {
    let mut w = World::base();
    w.order.qty = q("11");
    let ctx_check = |w: &World| {
        let ctx = RiskContext {
            now: w.now,
            state: w.state,
            instrument: es(),
            last_price: w.last_price,
            position: w.position,
            open_buy_qty: w.open_buy_qty,
            open_sell_qty: w.open_sell_qty,
            gross_exposure: w.gross_exposure,
            open_orders: w.open_orders,
            recent_order_times: &w.recent,
            day_pnl: w.day_pnl,
        };
        check(&w.order, &w.limits, &ctx).unwrap_err()
    };
    let d = ctx_check(&w);
    assert_eq!(
        d.message, "order quantity 11 exceeds the limit of 10",
        "{d}"
    );
    assert_eq!(
        d.to_string(),
        "max_order_qty: order quantity 11 exceeds the limit of 10"
    );
    let mut w = World::base();
    w.recent = vec![w.now; 7];
    let d = ctx_check(&w);
    assert_eq!(d.message, "7 orders in the last 1m; the limit is 5");
    let mut w = World::base();
    w.open_buy_qty = q("6");
    let d = ctx_check(&w);
    assert_eq!(
        d.message,
        "position could reach 11 (now 3, 6 working on the same side, this order buy 2); the \
         limit is 10"
    );
}

#[test]
fn reduces_only_table() {
    let cases = [
        (Side::Sell, "2", "3", true),
        (Side::Sell, "3", "3", true),
        (Side::Sell, "4", "3", false),
        (Side::Buy, "1", "3", false),
        (Side::Buy, "2", "-3", true),
        (Side::Buy, "3", "-3", true),
        (Side::Buy, "3.5", "-3", false),
        (Side::Sell, "1", "-3", false),
        (Side::Buy, "1", "0", false),
        (Side::Sell, "1", "0", false),
    ];
    for (side, qty, position, want) in cases {
        let o = order(side, qty, OrderType::Market, None);
        assert_eq!(
            reduces_only(&o, q(position)),
            want,
            "{side:?} {qty} at {position}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Trading hours

#[test]
fn cme_overnight_window() {
    let cme = cme_hours();
    // 2026: US DST starts Sunday March 8 (CST = UTC−6 before, CDT = UTC−5 after).
    let cases = [
        ("2026-03-04T15:00:00Z", true, "Wed 09:00 CST"),
        ("2026-03-04T21:59:59Z", true, "Wed 15:59:59 CST"),
        (
            "2026-03-04T22:00:00Z",
            false,
            "Wed 16:00 CST: the break starts (end is exclusive)",
        ),
        ("2026-03-04T22:59:59Z", false, "Wed 16:59:59 CST"),
        (
            "2026-03-04T23:00:00Z",
            true,
            "Wed 17:00 CST: Thursday's session opens",
        ),
        ("2026-03-05T05:00:00Z", true, "Wed 23:00 CST"),
        ("2026-03-05T06:00:00Z", true, "Thu 00:00 CST"),
        ("2026-03-06T21:59:00Z", true, "Fri 15:59 CST"),
        ("2026-03-06T22:30:00Z", false, "Fri 16:30 CST"),
        (
            "2026-03-06T23:30:00Z",
            false,
            "Fri 17:30 CST belongs to Saturday",
        ),
        ("2026-03-07T15:00:00Z", false, "Sat 09:00 CST"),
        ("2026-03-08T15:00:00Z", false, "Sun 10:00 CDT"),
        ("2026-03-08T21:59:00Z", false, "Sun 16:59 CDT"),
        (
            "2026-03-08T22:00:00Z",
            true,
            "Sun 17:00 CDT: Monday's session opens",
        ),
        ("2026-03-09T20:59:00Z", true, "Mon 15:59 CDT"),
        ("2026-03-09T21:30:00Z", false, "Mon 16:30 CDT"),
    ];
    for (at, want, what) in cases {
        assert_eq!(cme.contains(utc(at)), want, "{what} ({at})");
    }
}

#[test]
fn day_window_and_whole_day() {
    let nyse = TradingHours::parse("America/New_York", "09:30", "16:00", &MON_FRI).unwrap();
    let cases = [
        ("2026-03-04T14:29:59Z", false, "Wed 09:29:59 EST"),
        ("2026-03-04T14:30:00Z", true, "Wed 09:30 EST"),
        ("2026-03-04T20:59:59Z", true, "Wed 15:59:59 EST"),
        ("2026-03-04T21:00:00Z", false, "Wed 16:00 EST"),
        ("2026-03-09T13:30:00Z", true, "Mon 09:30 EDT"),
        ("2026-03-07T15:00:00Z", false, "Sat 10:00 EST"),
    ];
    for (at, want, what) in cases {
        assert_eq!(nyse.contains(utc(at)), want, "{what} ({at})");
    }
    let weekends =
        TradingHours::parse("UTC", "00:00", "00:00", &[Weekday::Sat, Weekday::Sun]).unwrap();
    assert!(weekends.contains(utc("2026-03-07T00:00:00Z")));
    assert!(weekends.contains(utc("2026-03-08T23:59:59Z")));
    assert!(!weekends.contains(utc("2026-03-09T00:00:00Z")));
    assert!(!weekends.contains(utc("2026-03-06T23:59:59Z")));
}

/// (tz, start, end, weekdays, expected code, expected field)
type HoursCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [Weekday],
    &'static str,
    &'static str,
);

#[test]
fn trading_hours_parse_errors() {
    let cases: [HoursCase; 6] = [
        (
            "Mars/Olympus",
            "09:30",
            "16:00",
            &MON_FRI,
            "invalid_time_zone",
            "trading_hours.tz",
        ),
        (
            "UTC",
            "25:00",
            "16:00",
            &MON_FRI,
            "invalid_time",
            "trading_hours.start",
        ),
        (
            "UTC",
            "9.30",
            "16:00",
            &MON_FRI,
            "invalid_time",
            "trading_hours.start",
        ),
        (
            "UTC",
            "09:30",
            "16:60",
            &MON_FRI,
            "invalid_time",
            "trading_hours.end",
        ),
        (
            "UTC",
            "09:30",
            "",
            &MON_FRI,
            "invalid_time",
            "trading_hours.end",
        ),
        (
            "UTC",
            "09:30",
            "16:00",
            &[],
            "invalid_weekdays",
            "trading_hours.weekdays",
        ),
    ];
    for (tz, start, end, days, code, field) in cases {
        let e: Invalid = TradingHours::parse(tz, start, end, days).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (code, Some(field)),
            "{tz} {start} {end}"
        );
    }
    let h =
        TradingHours::parse(" America/Chicago ", "08:30:15", " 15:15 ", &[Weekday::Sun]).unwrap();
    assert_eq!(h.tz, chrono_tz::America::Chicago);
    assert_eq!(h.start, chrono::NaiveTime::from_hms_opt(8, 30, 15).unwrap());
    assert_eq!(h.end, chrono::NaiveTime::from_hms_opt(15, 15, 0).unwrap());
    assert_eq!(h.weekdays, [false, false, false, false, false, false, true]);
}

// ---------------------------------------------------------------------------------------------
// Names

#[test]
fn codes_and_states_round_trip() {
    let codes: Vec<&str> = RiskCode::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(
        codes,
        [
            "max_order_qty",
            "max_order_notional",
            "max_position",
            "max_gross_exposure",
            "max_open_orders",
            "max_order_rate",
            "price_band",
            "symbol_not_allowed",
            "outside_trading_hours",
            "daily_loss_limit",
            "trading_halted",
            "reducing_only",
            "no_market_price",
            "venue_disconnected",
        ]
    );
    for c in RiskCode::ALL {
        assert_eq!(RiskCode::parse(c.code()), Some(c));
        assert_eq!(c.to_string(), c.code());
    }
    assert_eq!(RiskCode::parse("MAX_ORDER_QTY"), None);
    assert_eq!(RiskCode::parse(""), None);
    let states: Vec<&str> = TradingState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(states, ["active", "reducing", "halted"]);
    for s in TradingState::ALL {
        assert_eq!(TradingState::parse(s.as_str()), Some(s));
    }
    assert_eq!(TradingState::parse("paused"), None);
}

// ---------------------------------------------------------------------------------------------
// Trading state

#[test]
fn apply_state_table_in_full() {
    use TradingState::{Active, Halted, Reducing};
    let hard = |r: &str| StateCommand::Hardstop { reason: r.into() };
    let reduce = |r: &str| StateCommand::Reduce { reason: r.into() };
    let resume = |r: &str| StateCommand::Resume { reason: r.into() };
    let loss = StateCommand::LossBreached {
        day_pnl: m("-5000.5"),
    };
    let loss_reason = "daily loss limit reached: today's P&L is -5000.5";
    // Every state × every command with a reason: the change to record, or none.
    enum Want {
        To(TradingState, &'static str),
        Same,
    }
    let cases: Vec<(TradingState, StateCommand, Want)> = vec![
        (Active, hard("fat finger"), Want::To(Halted, "fat finger")),
        (Reducing, hard("fat finger"), Want::To(Halted, "fat finger")),
        (Halted, hard("fat finger"), Want::Same),
        (
            Active,
            reduce(" roll week "),
            Want::To(Reducing, "roll week"),
        ),
        (Reducing, reduce("roll week"), Want::Same),
        (
            Halted,
            reduce("let them flatten"),
            Want::To(Reducing, "let them flatten"),
        ),
        (Active, resume("ok"), Want::Same),
        (Reducing, resume("ok"), Want::To(Active, "ok")),
        (Halted, resume("reviewed"), Want::To(Active, "reviewed")),
        (Active, loss.clone(), Want::To(Halted, loss_reason)),
        (Reducing, loss.clone(), Want::To(Halted, loss_reason)),
        (Halted, loss.clone(), Want::Same),
    ];
    for (from, cmd, want) in &cases {
        let got = apply_state(*from, cmd);
        match want {
            Want::To(to, reason) => assert_eq!(
                got,
                Ok(Some(StateChange {
                    from: *from,
                    to: *to,
                    reason: (*reason).into()
                })),
                "{from} + {cmd:?}"
            ),
            Want::Same => assert_eq!(got, Ok(None), "{from} + {cmd:?}"),
        }
    }
    // Every state × every operator command with an empty or blank reason.
    for from in TradingState::ALL {
        for cmd in [hard(""), reduce("  "), resume(""), resume("\t\n")] {
            let e = apply_state(from, &cmd).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                ("missing_reason", Some("reason"))
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

fn arb_order() -> impl Strategy<Value = NewOrder> {
    let price = (16_000i64..24_000).prop_map(|ticks| Price::from_raw(ticks * 25_000_000)); // 4000..6000 on 0.25
    (
        prop_oneof![Just(Side::Buy), Just(Side::Sell)],
        1i64..=40,
        0usize..4,
        price.clone(),
        price,
    )
        .prop_map(|(side, qty, kind, a, b)| {
            let order_type = [
                OrderType::Market,
                OrderType::Limit,
                OrderType::Stop,
                OrderType::StopLimit,
            ][kind];
            NewOrder {
                account: "paper".into(),
                symbol: sym("ES"),
                side,
                qty: Qty::from_int(qty).unwrap(),
                order_type,
                limit_price: order_type.needs_limit().then_some(a),
                stop_price: order_type.needs_stop().then_some(b),
                tif: Tif::Day,
                client_order_id: None,
            }
        })
}

fn arb_limits() -> impl Strategy<Value = RiskLimits> {
    (
        (
            proptest::option::of((1i64..40).prop_map(|n| Qty::from_int(n).unwrap())),
            proptest::option::of((0i64..20_000_000).prop_map(|n| Money::from_int(n).unwrap())),
            proptest::option::of((0i64..60).prop_map(|n| Qty::from_int(n).unwrap())),
            proptest::option::of((0i64..40_000_000).prop_map(|n| Money::from_int(n).unwrap())),
            proptest::option::of(0u32..30),
        ),
        (
            proptest::option::of(
                (0u32..10, 1u64..120).prop_map(|(n, s)| (n, Duration::from_secs(s))),
            ),
            proptest::option::of(
                (0i64..=80).prop_map(|quarters| Fixed::from_raw(quarters * 25_000_000)),
            ),
            proptest::option::of(prop_oneof![
                Just(vec![sym("ES")]),
                Just(vec![sym("NQ")]),
                Just(vec![])
            ]),
            proptest::option::of(Just(cme_hours())),
            proptest::option::of((-100i64..100_000).prop_map(|n| Money::from_int(n).unwrap())),
        ),
    )
        .prop_map(
            |(
                (
                    max_order_qty,
                    max_order_notional,
                    max_position,
                    max_gross_exposure,
                    max_open_orders,
                ),
                (
                    max_orders_per_window,
                    price_band_pct,
                    allowed_symbols,
                    trading_hours,
                    daily_loss_limit,
                ),
            )| RiskLimits {
                max_order_qty,
                max_order_notional,
                max_position,
                max_gross_exposure,
                max_open_orders,
                max_orders_per_window,
                price_band_pct,
                allowed_symbols,
                trading_hours,
                daily_loss_limit,
            },
        )
}

/// A world with a random order, limits and context; the order is always for ES.
fn arb_world() -> impl Strategy<Value = World> {
    let base = utc("2026-03-02T00:00:00Z");
    (
        arb_order(),
        arb_limits(),
        (
            0i64..14 * 86_400,
            prop_oneof![
                3 => Just(TradingState::Active),
                1 => Just(TradingState::Reducing),
                1 => Just(TradingState::Halted)
            ],
            proptest::option::of((18_000i64..22_000).prop_map(|t| Price::from_raw(t * 25_000_000))),
            -40i64..40,
            0i64..20,
            0i64..20,
        ),
        (
            0i64..30_000_000,
            0u32..30,
            proptest::collection::vec(0i64..200, 0..15),
            -200_000i64..200_000,
        ),
    )
        .prop_map(
            move |(order, limits, (at, state, last, pos, ob, os), (gross, open, mut ages, pnl))| {
                let now = base + TimeDelta::seconds(at);
                ages.sort_unstable_by(|a, b| b.cmp(a)); // oldest first
                World {
                    order,
                    limits,
                    now,
                    state,
                    last_price: last,
                    position: Qty::from_int(pos).unwrap(),
                    open_buy_qty: Qty::from_int(ob).unwrap(),
                    open_sell_qty: Qty::from_int(os).unwrap(),
                    gross_exposure: Money::from_int(gross).unwrap(),
                    open_orders: open,
                    recent: ages.iter().map(|a| now - TimeDelta::seconds(*a)).collect(),
                    day_pnl: Money::from_int(pnl).unwrap(),
                }
            },
        )
}

/// Whole units of a Qty (the generators only make integers).
fn units(qty: Qty) -> i128 {
    qty.0.raw() as i128 / 100_000_000
}

/// Oracle for the band: a price is inside when `last × (1 − pct/100) ≤ price ≤ last × (1 +
/// pct/100)`, all scaled to integers of 10⁻¹⁰.
fn in_band(price: Price, last: Price, pct: Fixed) -> bool {
    let (price, last, pct) = (
        price.0.raw() as i128,
        last.0.raw() as i128,
        pct.raw() as i128,
    );
    let lo = last * (100 * 100_000_000 - pct);
    let hi = last * (100 * 100_000_000 + pct);
    let scaled = price * 100 * 100_000_000;
    lo <= scaled && scaled <= hi
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_denial_names_a_rule_that_is_really_violated(w in arb_world()) {
        let got = w.check();
        let l = &w.limits;
        let signed = match w.order.side { Side::Buy => units(w.order.qty), Side::Sell => -units(w.order.qty) };
        match got {
            Err(RiskCode::TradingHalted) => prop_assert_eq!(w.state, TradingState::Halted),
            Err(RiskCode::MaxOrderQty) => prop_assert!(w.order.qty > l.max_order_qty.unwrap()),
            Err(RiskCode::MaxOpenOrders) => prop_assert!(w.open_orders >= l.max_open_orders.unwrap()),
            Err(RiskCode::MaxOrderRate) => {
                let (n, window) = l.max_orders_per_window.unwrap();
                let cutoff = w.now - TimeDelta::from_std(window).unwrap();
                let inside = w.recent.iter().filter(|t| **t > cutoff).count();
                prop_assert!(inside >= n as usize, "{} inside, limit {}", inside, n);
            }
            Err(RiskCode::PriceBand) => {
                let (last, pct) = (w.last_price.unwrap(), l.price_band_pct.unwrap());
                let outside = [w.order.limit_price, w.order.stop_price]
                    .into_iter()
                    .flatten()
                    .any(|price| !in_band(price, last, pct));
                prop_assert!(outside);
            }
            Err(RiskCode::MaxPosition) => {
                let working = match w.order.side { Side::Buy => units(w.open_buy_qty), Side::Sell => -units(w.open_sell_qty) };
                let worst = (units(w.position) + signed + working).abs();
                prop_assert!(worst > units(l.max_position.unwrap()));
                prop_assert!(worst > units(w.position).abs());
            }
            Err(RiskCode::DailyLossLimit) => {
                prop_assert!(w.day_pnl.0.raw() <= -l.daily_loss_limit.unwrap().0.raw().abs());
            }
            Err(RiskCode::ReducingOnly) => prop_assert_eq!(w.state, TradingState::Reducing),
            _ => {}
        }
        // And the converse for the simple rules: a pass means none of them is violated.
        if got.is_ok() {
            prop_assert_ne!(w.state, TradingState::Halted);
            if let Some(max) = l.max_order_qty { prop_assert!(w.order.qty <= max); }
            if let Some(max) = l.max_open_orders { prop_assert!(w.open_orders < max); }
            if let Some(limit) = l.daily_loss_limit { prop_assert!(w.day_pnl > Money::ZERO.saturating_sub(limit.abs())); }
            if let Some(pct) = l.price_band_pct {
                let last = w.last_price;
                for price in [w.order.limit_price, w.order.stop_price].into_iter().flatten() {
                    prop_assert!(last.is_some_and(|last| in_band(price, last, pct)));
                }
            }
            if w.state == TradingState::Reducing {
                prop_assert!(reduces_only(&w.order, w.position));
            }
        }
    }

    #[test]
    fn with_every_limit_off_an_active_account_passes(mut w in arb_world()) {
        w.limits = RiskLimits::default();
        w.state = TradingState::Active;
        prop_assert_eq!(w.check(), Ok(()));
        w.limits.allowed_symbols = Some(vec![sym("NQ"), sym("ES")]);
        prop_assert_eq!(w.check(), Ok(()));
    }

    #[test]
    fn check_never_panics_on_extreme_numbers(
        raw in proptest::collection::vec(any::<i64>(), 8),
        secs in any::<u64>(),
        n in any::<u32>(),
        open in any::<u32>(),
        state in 0usize..3,
    ) {
        let mut w = World::base();
        w.state = TradingState::ALL[state];
        w.order.qty = Qty::from_raw(raw[0].saturating_abs().max(1));
        w.order.limit_price = Some(Price::from_raw(raw[1]));
        w.last_price = Some(Price::from_raw(raw[2]));
        w.position = Qty::from_raw(raw[3]);
        w.open_buy_qty = Qty::from_raw(raw[4]);
        w.gross_exposure = Money::from_raw(raw[5]);
        w.day_pnl = Money::from_raw(raw[6]);
        w.limits.price_band_pct = Some(Fixed::from_raw(raw[7]));
        w.limits.max_orders_per_window = Some((n % 8, Duration::from_secs(secs)));
        w.limits.max_order_qty = None;
        w.open_orders = open;
        let _ = w.check();
        w.order.side = Side::Sell;
        w.open_sell_qty = Qty::from_raw(raw[4]);
        let _ = w.check();
    }
}

/// The generators above reach every rule the properties check, and the passing path, so the
/// properties cannot pass vacuously.
#[test]
fn generated_worlds_reach_every_checked_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_world();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..2000 {
        let w = strategy.new_tree(&mut runner).unwrap().current();
        *seen.entry(w.check().err()).or_insert(0u32) += 1;
    }
    for code in [
        None,
        Some(RiskCode::TradingHalted),
        Some(RiskCode::ReducingOnly),
        Some(RiskCode::MaxOrderQty),
        Some(RiskCode::PriceBand),
        Some(RiskCode::MaxOpenOrders),
        Some(RiskCode::MaxOrderRate),
        Some(RiskCode::MaxPosition),
        Some(RiskCode::DailyLossLimit),
    ] {
        assert!(
            seen.get(&code).copied().unwrap_or(0) >= 5,
            "{code:?}: {seen:?}"
        );
    }
}

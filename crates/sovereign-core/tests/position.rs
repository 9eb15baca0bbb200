//! Positions and P&L: fill sequences as a table with exact expected quantity, average price and
//! realized P&L; accounts; overflow; and properties against a reference that shares no code with
//! the implementation's bookkeeping — the cash-flow identity
//! `Σ realized + unrealized(last) = Σ sell notional − Σ buy notional + qty × last × multiplier`,
//! which holds exactly because positions keep an exact cost basis (see `position.rs`).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sovereign_core::trading::fixed::{notional, Fixed, Money, Price, Qty};
use sovereign_core::trading::order::Side;
use sovereign_core::trading::position::{Account, Fill, Overflow, Position};

fn f(s: &str) -> Fixed {
    Fixed::parse(s).unwrap()
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

/// `buy 10 @ 100, sell 4 @ 105` (commission zero).
fn fills(text: &str) -> Vec<Fill> {
    text.split(',')
        .map(|part| {
            let w: Vec<&str> = part.split_whitespace().collect();
            assert_eq!(w.len(), 4, "{part:?}");
            Fill {
                side: Side::parse(w[0]).unwrap(),
                qty: q(w[1]),
                price: p(w[3]),
                commission: Money::ZERO,
            }
        })
        .collect()
}

/// Expected (qty, avg_price, realized total, realized by the last fill).
type Expect = (&'static str, &'static str, &'static str, &'static str);

#[rustfmt::skip]
const CASES: &[(&str, &str, &str, Expect)] = &[
    // (what, multiplier, fills, (qty, avg_price, realized total, realized by the last fill))
    ("open long", "1", "buy 10 @ 100", ("10", "100", "0", "0")),
    ("add re-averages", "1", "buy 10 @ 100, buy 5 @ 103", ("15", "101", "0", "0")),
    ("partial close with profit", "1", "buy 10 @ 100, sell 4 @ 105", ("6", "100", "20", "20")),
    ("close flat at a loss", "1", "buy 10 @ 100, sell 10 @ 98", ("0", "0", "-20", "-20")),
    ("flip long to short in one fill", "1", "buy 10 @ 100, sell 15 @ 110", ("-5", "110", "100", "100")),
    ("flip short to long in one fill", "1", "sell 4 @ 20, buy 6 @ 18", ("2", "18", "8", "8")),
    ("open short", "1", "sell 3 @ 50", ("-3", "50", "0", "0")),
    ("add to a short re-averages", "1", "sell 3 @ 50, sell 1 @ 54", ("-4", "51", "0", "0")),
    ("short then cover at a loss", "1", "sell 3 @ 50, buy 3 @ 52", ("0", "0", "-6", "-6")),
    ("short partial cover at a profit", "1", "sell 4 @ 50, buy 1 @ 45.5", ("-3", "50", "4.5", "4.5")),
    ("ES: round trip at multiplier 50", "50", "buy 2 @ 5000, sell 2 @ 5010.25", ("0", "0", "1025", "1025")),
    ("ES: short loses by the point value", "50", "sell 1 @ 5000, buy 1 @ 5000.25", ("0", "0", "-12.5", "-12.5")),
    ("ES: average with a repeating decimal", "50", "buy 1 @ 5000, buy 2 @ 5000.25", ("3", "5000.16666667", "0", "0")),
    ("ES: closing all of it is exact", "50", "buy 1 @ 5000, buy 2 @ 5000.25, sell 3 @ 5001", ("0", "0", "125", "125")),
    // Closing 1 of 3 releases 750025 / 3 = 250008.33333333 of cost basis.
    ("ES: closing part of a repeating average", "50", "buy 1 @ 5000, buy 2 @ 5000.25, sell 1 @ 5001", ("2", "5000.16666667", "41.66666667", "41.66666667")),
    ("ES: then the rest", "50", "buy 1 @ 5000, buy 2 @ 5000.25, sell 1 @ 5001, sell 2 @ 5001", ("0", "0", "125", "83.33333333")),
    ("several round trips accumulate", "1", "buy 1 @ 10, sell 1 @ 12, sell 2 @ 12, buy 2 @ 11", ("0", "0", "4", "2")),
    ("reopen after flat starts a fresh average", "1", "buy 1 @ 10, sell 1 @ 12, buy 2 @ 7", ("2", "7", "2", "0")),
    ("fractional crypto quantities", "1", "buy 0.5 @ 60000, buy 0.25 @ 63000, sell 0.25 @ 64000", ("0.5", "61000", "750", "750")),
];

#[test]
fn fill_sequence_table() {
    let mut failures = Vec::new();
    for (what, mult, seq, (qty, avg, realized, last)) in CASES {
        let mut pos = Position::flat();
        let mut last_realized = Money::ZERO;
        for fill in fills(seq) {
            last_realized = pos.apply(&fill, f(mult)).unwrap();
        }
        let got = (pos.qty, pos.avg_price, pos.realized_pnl, last_realized);
        let want = (q(qty), p(avg), m(realized), m(last));
        if got != want {
            failures.push(format!("{what}: {seq}\n  want: {want:?}\n  got:  {got:?}"));
        }
        if pos.is_flat() {
            assert_eq!(
                pos.cost_basis,
                Money::ZERO,
                "{what}: flat leaves no cost basis"
            );
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn unrealized_and_notional() {
    let mut long = Position::flat();
    long.apply(&fills("buy 2 @ 5000")[0], f("50")).unwrap();
    assert_eq!(long.unrealized(p("5010"), f("50")), m("1000"));
    assert_eq!(long.unrealized(p("4990.25"), f("50")), m("-975"));
    assert_eq!(long.notional(p("5010"), f("50")), m("501000"));

    let mut short = Position::flat();
    short.apply(&fills("sell 3 @ 100")[0], f("1")).unwrap();
    assert_eq!(short.unrealized(p("90"), f("1")), m("30"));
    assert_eq!(short.unrealized(p("101.5"), f("1")), m("-4.5"));
    assert_eq!(
        short.notional(p("90"), f("1")),
        m("270"),
        "notional is unsigned"
    );

    // Repeating average: unrealized is exact against the cost basis, not the rounded average.
    let mut pos = Position::flat();
    for fill in fills("buy 1 @ 5000, buy 2 @ 5000.25") {
        pos.apply(&fill, f("50")).unwrap();
    }
    assert_eq!(pos.unrealized(p("5001"), f("50")), m("125"));

    let flat = Position::flat();
    assert_eq!(flat.unrealized(p("5001"), f("50")), Money::ZERO);
    assert_eq!(flat.notional(p("5001"), f("50")), Money::ZERO);
}

#[test]
fn commissions_accumulate_and_stay_out_of_realized() {
    let mut pos = Position::flat();
    let mut account = Account::new("paper", m("100000"));
    for (side, price, fee) in [(Side::Buy, "100", "1.25"), (Side::Sell, "103", "1.25")] {
        let fill = Fill {
            side,
            qty: q("10"),
            price: p(price),
            commission: m(fee),
        };
        let realized = pos.apply(&fill, f("1")).unwrap();
        account.on_fill(realized, fill.commission);
    }
    assert_eq!(pos.realized_pnl, m("30"));
    assert_eq!(pos.commissions, m("2.5"));
    assert_eq!(account.cash, m("100027.5"));
    assert_eq!(account.starting_cash, m("100000"));
    assert_eq!(account.equity(Money::ZERO), m("100027.5"));
}

#[test]
fn account_equity_adds_unrealized() {
    let mut account = Account::new("swing", m("25000"));
    assert_eq!(
        (
            account.name.as_str(),
            account.currency.as_str(),
            account.cash
        ),
        ("swing", "USD", m("25000"))
    );
    account.on_fill(m("-120.5"), m("4"));
    assert_eq!(account.cash, m("24875.5"));
    assert_eq!(account.equity(m("300")), m("25175.5"));
    assert_eq!(account.equity(m("-875.5")), m("24000"));
}

#[test]
fn overflow_is_an_error_and_leaves_the_position_unchanged() {
    let mut pos = Position::flat();
    pos.apply(&fills("buy 1 @ 5000")[0], f("50")).unwrap();
    let before = pos.clone();
    let huge = Fill {
        side: Side::Buy,
        qty: q("1000000"),
        price: p("1000000"),
        commission: Money::ZERO,
    };
    assert_eq!(pos.apply(&huge, f("50")), Err(Overflow));
    assert_eq!(pos, before);
    assert_eq!(Overflow.to_string(), "arithmetic overflow");
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// (quantity step, price tick, multiplier): futures, equities, and a crypto grid whose products
/// need more than eight decimals (so `notional` rounds) — the identity must still be exact.
const GRIDS: [(&str, &str, &str); 4] = [
    ("1", "0.25", "50"),
    ("1", "0.01", "1"),
    ("0.00001", "0.01", "1"),
    ("0.00001", "0.00000003", "1"),
];

fn scenario() -> impl Strategy<Value = (usize, Vec<(bool, i64, i64)>, i64)> {
    (
        0..GRIDS.len(),
        proptest::collection::vec((any::<bool>(), 1i64..=10, 1i64..=400), 1..40),
        1i64..=400,
    )
}

fn on_grid(step: &str, units: i64) -> Fixed {
    f(step)
        .checked_mul(Fixed::from_int(units).unwrap())
        .unwrap()
}

proptest! {
    #[test]
    fn cash_flow_identity_holds_exactly((grid, seq, final_ticks) in scenario()) {
        let (step, tick, mult) = GRIDS[grid];
        let mult = f(mult);
        let mut pos = Position::flat();
        let mut cash_flow = Money::ZERO; // Σ sell notional − Σ buy notional
        let mut signed_qty = Qty::ZERO;
        let mut realized_sum = Money::ZERO;
        for (buy, units, ticks) in seq {
            let fill = Fill {
                side: if buy { Side::Buy } else { Side::Sell },
                qty: Qty(on_grid(step, units)),
                price: Price(on_grid(tick, ticks)),
                commission: Money::ZERO,
            };
            realized_sum = realized_sum.checked_add(pos.apply(&fill, mult).unwrap()).unwrap();
            let n = notional(fill.price, fill.qty, mult).unwrap();
            if buy {
                cash_flow = cash_flow.checked_sub(n).unwrap();
                signed_qty = signed_qty.checked_add(fill.qty).unwrap();
            } else {
                cash_flow = cash_flow.checked_add(n).unwrap();
                signed_qty = signed_qty.checked_sub(fill.qty).unwrap();
            }
            prop_assert_eq!(pos.qty, signed_qty);
            if pos.is_flat() {
                prop_assert_eq!(pos.avg_price, Price::ZERO);
                prop_assert_eq!(pos.cost_basis, Money::ZERO);
                prop_assert_eq!(pos.unrealized(fill.price, mult), Money::ZERO);
            }
        }
        prop_assert_eq!(pos.realized_pnl, realized_sum);

        let last = Price(on_grid(tick, final_ticks));
        let lhs = pos.realized_pnl.checked_add(pos.unrealized(last, mult)).unwrap();
        let rhs = cash_flow.checked_add(notional(last, signed_qty, mult).unwrap()).unwrap();
        prop_assert_eq!(lhs, rhs);
    }

    #[test]
    fn cost_basis_lies_within_the_fills_that_opened_it((grid, seq, _) in scenario()) {
        let (step, tick, mult) = GRIDS[grid];
        let mult = f(mult);
        let mut pos = Position::flat();
        // Price range of the fills that added to the position since it last opened.
        let (mut lo, mut hi) = (Price::ZERO, Price::ZERO);
        for (i, (buy, units, ticks)) in seq.into_iter().enumerate() {
            let fill = Fill {
                side: if buy { Side::Buy } else { Side::Sell },
                qty: Qty(on_grid(step, units)),
                price: Price(on_grid(tick, ticks)),
                commission: Money::ZERO,
            };
            let before = pos.qty;
            pos.apply(&fill, mult).unwrap();
            let fresh = before.is_zero() || before.is_positive() != pos.qty.is_positive();
            let adds = (before.is_positive() && buy) || (before.is_negative() && !buy);
            if fresh {
                (lo, hi) = (fill.price, fill.price);
            } else if adds {
                (lo, hi) = (lo.min(fill.price), hi.max(fill.price));
            }
            if pos.is_flat() {
                prop_assert_eq!(pos.avg_price, Price::ZERO);
                continue;
            }
            // |cost basis| is between the open quantity's notional at the lowest and highest
            // opening price. Each fill rounds at most once by at most 10⁻⁸ (a notional or a
            // released share), hence the slack; in price terms that slack is divided by
            // |qty| × multiplier, which is why the bound is stated on money, not on avg_price.
            let slack = Money::from_raw(i as i64 + 2);
            let open = pos.qty.abs();
            let cost = pos.cost_basis.abs();
            let floor = notional(lo, open, mult).unwrap().saturating_sub(slack);
            let ceiling = notional(hi, open, mult).unwrap().saturating_add(slack);
            prop_assert!(cost >= floor && cost <= ceiling, "cost {cost} outside [{floor}, {ceiling}]");
            // Never of the opposite sign (it may round to zero on the crypto grid).
            prop_assert!(pos.cost_basis.0.signum() * pos.qty.0.signum() >= 0);
            // On exact grids (every notional has at most eight decimals) a single opening
            // price is the average, exactly.
            if grid < 3 && lo == hi {
                prop_assert_eq!(pos.avg_price, lo);
            }
        }
    }
}

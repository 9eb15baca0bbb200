//! A venue that answers later: orders wait in `submitted` after risk, and the venue's reports
//! (acceptance, fills, cancel, rejection, expiry) become events through the same `apply`. A
//! repeated report changes nothing; a report for an order never sent, after its end, or beyond
//! its quantity is an anomaly that changes nothing either. Property: whatever the venue sends,
//! in whatever order and however often, every execution counts once, an order never fills
//! beyond its quantity, and replaying the events rebuilds the same state.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{Instrument, Instruments, Symbol};
use sovereign_core::trading::matching::{Decision, Gateway, Quote};
use sovereign_core::trading::oms::{
    AccountConfig, Event, Oms, PriceSource, ReportAnomaly, ReportOutcome, VenueReport,
};
use sovereign_core::trading::order::{NewOrder, Order, OrderStatus, OrderType, Side, Tif};
use sovereign_core::trading::risk::RiskLimits;

/// A venue that decides nothing itself: everything comes back as reports.
#[derive(Debug)]
struct Later;

impl Gateway for Later {
    fn name(&self) -> &'static str {
        "later"
    }
    fn work(&self, _: &Order, _: &Instrument, _: &Quote) -> Decision {
        Decision::default()
    }
    fn asynchronous(&self) -> bool {
        true
    }
}

fn f(s: &str) -> Fixed {
    Fixed::parse(s).unwrap()
}

fn q(n: i64) -> Qty {
    Qty(Fixed::from_int(n).unwrap())
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap()
}

fn es() -> Symbol {
    Symbol::parse("ES").unwrap()
}

fn venue_oms() -> Oms {
    let mut oms = Oms::with_gateway(
        Instruments::builtin(),
        Box::new(Later),
        &[AccountConfig {
            name: "live".into(),
            starting_cash: Money(f("100000")),
            limits: RiskLimits::default(),
        }],
    );
    let quote = Quote {
        last: Some(Price(f("5000"))),
        bid: Some(Price(f("4999.75"))),
        ask: Some(Price(f("5000.25"))),
    };
    oms.on_quote(&es(), quote, PriceSource::External, t0(), &mut Vec::new());
    oms
}

fn buy(oms: &mut Oms, qty: i64, out: &mut Vec<Event>) -> u64 {
    let new = NewOrder {
        account: "live".into(),
        symbol: es(),
        side: Side::Buy,
        qty: q(qty),
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: Tif::Day,
        client_order_id: None,
    };
    let submitted = oms.submit(new, t0(), out).unwrap();
    assert!(submitted.denial.is_none(), "{:?}", submitted.denial);
    submitted.order.id
}

fn fill(exec: &str, qty: i64, price: &str) -> VenueReport {
    VenueReport::Fill {
        exec_id: exec.into(),
        qty: q(qty),
        price: Price(f(price)),
        commission: Money(f("1.25")),
    }
}

fn position(oms: &Oms) -> Qty {
    oms.position_qty("live", &es())
}

#[test]
fn an_order_waits_for_the_venue_and_every_report_counts_once() {
    let mut oms = venue_oms();
    let mut out = Vec::new();
    let id = buy(&mut oms, 3, &mut out);
    let status = |oms: &Oms| oms.order(id).unwrap().status;
    assert_eq!(
        status(&oms),
        OrderStatus::Submitted,
        "no fill without the venue"
    );
    assert_eq!(position(&oms), Qty::ZERO);

    let now = t0();
    let mut report = |oms: &mut Oms, r| oms.report(id, r, now, &mut out);
    assert_eq!(
        report(&mut oms, VenueReport::Accepted),
        Ok(ReportOutcome::Applied)
    );
    assert_eq!(
        report(&mut oms, VenueReport::Accepted),
        Ok(ReportOutcome::Duplicate)
    );
    assert_eq!(status(&oms), OrderStatus::Accepted);

    assert_eq!(
        report(&mut oms, fill("e1", 1, "5000.25")),
        Ok(ReportOutcome::Applied)
    );
    assert_eq!(
        report(&mut oms, fill("e1", 1, "5000.25")),
        Ok(ReportOutcome::Duplicate)
    );
    assert_eq!(
        (status(&oms), position(&oms)),
        (OrderStatus::PartiallyFilled, q(1))
    );

    let over = report(&mut oms, fill("e2", 3, "5000.50"));
    assert_eq!(
        over,
        Err(ReportAnomaly::Overfill {
            id,
            qty: q(3),
            leaves: q(2)
        })
    );
    assert_eq!(over.unwrap_err().code(), "report_overfill");
    assert_eq!(position(&oms), q(1), "an overfill changes nothing");

    let bad = report(&mut oms, fill("e3", 0, "5000"));
    assert!(matches!(bad, Err(ReportAnomaly::BadFill { .. })), "{bad:?}");

    assert_eq!(
        report(&mut oms, fill("e2", 2, "5000.50")),
        Ok(ReportOutcome::Applied)
    );
    assert_eq!((status(&oms), position(&oms)), (OrderStatus::Filled, q(3)));
    let order = oms.order(id).unwrap();
    assert_eq!(order.filled_qty, q(3));

    // After its end: the same execution is a duplicate; anything new is an anomaly.
    assert_eq!(
        report(&mut oms, fill("e2", 2, "5000.50")),
        Ok(ReportOutcome::Duplicate)
    );
    let late = report(&mut oms, fill("e4", 1, "5001"));
    assert_eq!(late.as_ref().map_err(|e| e.code()), Err("report_after_end"));
    let cancel = report(
        &mut oms,
        VenueReport::Canceled {
            reason: "late".into(),
        },
    );
    assert!(
        matches!(cancel, Err(ReportAnomaly::Finished { .. })),
        "{cancel:?}"
    );
    assert_eq!(
        oms.report(999, VenueReport::Accepted, now, &mut Vec::new()),
        Err(ReportAnomaly::UnknownOrder(999))
    );
    let fills = oms.fills(Some("live"), 10);
    assert_eq!(fills.len(), 2);
    assert!(fills.iter().all(|f| f.exec_id.is_some()));
}

#[test]
fn refusals_cancels_and_expiries_end_an_order_once() {
    let now = t0();
    let cases: Vec<(Vec<VenueReport>, OrderStatus, Qty)> = vec![
        (
            vec![VenueReport::Rejected {
                code: "no_margin".into(),
                reason: "not enough margin".into(),
            }],
            OrderStatus::Rejected,
            Qty::ZERO,
        ),
        (
            vec![
                VenueReport::Accepted,
                VenueReport::Rejected {
                    code: "x".into(),
                    reason: "later check".into(),
                },
            ],
            OrderStatus::Rejected,
            Qty::ZERO,
        ),
        (
            vec![
                VenueReport::Accepted,
                VenueReport::Expired,
                VenueReport::Expired,
            ],
            OrderStatus::Expired,
            Qty::ZERO,
        ),
        (vec![VenueReport::Expired], OrderStatus::Expired, Qty::ZERO),
        (
            vec![
                VenueReport::Canceled {
                    reason: "by the venue".into(),
                },
                VenueReport::Canceled {
                    reason: "again".into(),
                },
            ],
            OrderStatus::Canceled,
            Qty::ZERO,
        ),
        // Part traded, the rest refused: a cancel of the rest, the fill stands.
        (
            vec![
                fill("a", 1, "5000"),
                VenueReport::Rejected {
                    code: "x".into(),
                    reason: "halted".into(),
                },
            ],
            OrderStatus::Canceled,
            q(1),
        ),
    ];
    for (reports, want, pos) in cases {
        let mut oms = venue_oms();
        let mut out = Vec::new();
        let id = buy(&mut oms, 2, &mut out);
        for r in &reports {
            oms.report(id, r.clone(), now, &mut out)
                .unwrap_or_else(|e| panic!("{reports:?}: {e}"));
        }
        assert_eq!(oms.order(id).unwrap().status, want, "{reports:?}");
        assert_eq!(position(&oms), pos, "{reports:?}");
        // A report after the end changes nothing.
        let before = format!("{:?}", oms.order(id));
        let _ = oms.report(id, fill("late", 1, "5000"), now, &mut out);
        assert_eq!(format!("{:?}", oms.order(id)), before, "{reports:?}");
    }
}

#[derive(Debug, Clone)]
enum Step {
    Submit(i64),
    Report(usize, VenueReport),
}

fn report() -> impl Strategy<Value = VenueReport> {
    prop_oneof![
        Just(VenueReport::Accepted),
        ((0u8..6), (0i64..4), (0i64..4)).prop_map(|(e, qty, tick)| VenueReport::Fill {
            exec_id: format!("x{e}"),
            qty: q(qty),
            price: Price(Fixed::from_int(5000 + tick).unwrap()),
            commission: Money::ZERO,
        }),
        Just(VenueReport::Canceled {
            reason: "venue".into()
        }),
        Just(VenueReport::Rejected {
            code: "r".into(),
            reason: "venue".into()
        }),
        Just(VenueReport::Expired),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (1i64..5).prop_map(Step::Submit),
        4 => ((0usize..4), report()).prop_map(|(i, r)| Step::Report(i, r)),
    ]
}

proptest! {
    #[test]
    fn whatever_the_venue_sends_each_execution_counts_once(
        steps in proptest::collection::vec(step(), 1..60),
        repeat in any::<bool>(),
    ) {
        let now = t0();
        let mut live = venue_oms();
        let mut events = Vec::new();
        let mut ids = Vec::new();
        // (order, exec id) -> qty of the executions taken.
        let mut taken = std::collections::BTreeMap::new();
        for s in &steps {
            match s {
                Step::Submit(n) => ids.push(buy(&mut live, *n, &mut events)),
                Step::Report(i, r) => {
                    let Some(&id) = ids.get(i % ids.len().max(1)) else { continue };
                    let times = if repeat { 2 } else { 1 };
                    for round in 0..times {
                        let outcome = live.report(id, r.clone(), now, &mut events);
                        if round == 1 {
                            prop_assert!(!matches!(outcome, Ok(ReportOutcome::Applied)), "a repeat was applied: {r:?}");
                        }
                        if let (Ok(ReportOutcome::Applied), VenueReport::Fill { exec_id, qty, .. }) = (&outcome, r) {
                            prop_assert!(taken.insert((id, exec_id.clone()), *qty).is_none());
                        }
                    }
                }
            }
        }
        let mut total = Qty::ZERO;
        for &id in &ids {
            let order = live.order(id).unwrap();
            let counted = taken
                .iter()
                .filter(|((o, _), _)| *o == id)
                .fold(Qty::ZERO, |a, (_, q)| a.saturating_add(*q));
            prop_assert_eq!(order.filled_qty, counted);
            prop_assert!(order.filled_qty <= order.request.qty);
            total = total.saturating_add(counted);
        }
        prop_assert_eq!(position(&live), total);
        // Replaying the journal rebuilds the same state.
        let mut replayed = venue_oms();
        for e in &events {
            replayed.apply(e);
        }
        prop_assert_eq!(
            format!("{:?}{:?}{:?}", live.orders(&Default::default(), usize::MAX), live.positions(None), live.fills(None, usize::MAX)),
            format!("{:?}{:?}{:?}", replayed.orders(&Default::default(), usize::MAX), replayed.positions(None), replayed.fills(None, usize::MAX))
        );
        // And a replayed OMS still knows every execution: none counts twice after a restart.
        for ((id, exec), qty) in &taken {
            let again = VenueReport::Fill { exec_id: exec.clone(), qty: *qty, price: Price(f("5000")), commission: Money::ZERO };
            prop_assert_eq!(replayed.report(*id, again, now, &mut Vec::new()), Ok(ReportOutcome::Duplicate));
        }
    }
}

#[test]
fn each_account_trades_at_its_own_venue() {
    let mut oms = Oms::new(
        Instruments::builtin(),
        Default::default(),
        &[
            AccountConfig {
                name: "paper".into(),
                starting_cash: Money(f("100000")),
                limits: RiskLimits::default(),
            },
            AccountConfig {
                name: "live".into(),
                starting_cash: Money(f("100000")),
                limits: RiskLimits::default(),
            },
        ],
    );
    oms.route("live", Box::new(Later));
    assert_eq!(oms.gateway_of("live").name(), "later");
    assert_eq!(oms.gateway_of("paper").name(), "paper");
    let quote = Quote {
        last: Some(Price(f("5000"))),
        bid: Some(Price(f("4999.75"))),
        ask: Some(Price(f("5000.25"))),
    };
    let mut out = Vec::new();
    oms.on_quote(&es(), quote, PriceSource::External, t0(), &mut out);
    let order = |account: &str| NewOrder {
        account: account.into(),
        symbol: es(),
        side: Side::Buy,
        qty: q(1),
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: Tif::Day,
        client_order_id: None,
    };
    let paper = oms.submit(order("paper"), t0(), &mut out).unwrap().order;
    let live = oms.submit(order("live"), t0(), &mut out).unwrap().order;
    assert_eq!(
        paper.status,
        OrderStatus::Filled,
        "the paper broker fills at once"
    );
    assert_eq!(
        live.status,
        OrderStatus::Submitted,
        "the venue answers later"
    );
    // The paper broker's orders were never sent to a venue: a report on one is refused.
    assert_eq!(
        oms.report(paper.id, fill("v0", 1, "5000"), t0(), &mut out),
        Err(ReportAnomaly::UnknownOrder(paper.id))
    );
    assert_eq!(oms.position_qty("live", &es()), Qty::ZERO);
    oms.report(live.id, fill("v1", 1, "5000.25"), t0(), &mut out)
        .unwrap();
    assert_eq!(oms.position_qty("live", &es()), q(1));
}

#[test]
fn the_venue_is_asked_to_place_cancel_and_change_and_decides_itself() {
    use sovereign_core::trading::oms::VenueInstruction as I;
    use sovereign_core::trading::risk::StateCommand;
    let mut oms = venue_oms();
    let mut out = Vec::new();
    let id = buy(&mut oms, 2, &mut out);
    assert_eq!(oms.take_instructions(), vec![I::Place { order_id: id }]);
    assert!(oms.take_instructions().is_empty(), "taken once");
    oms.report(id, VenueReport::Accepted, t0(), &mut out)
        .unwrap();

    // A change is applied and passed on.
    oms.modify(id, Some(q(3)), None, None, t0(), &mut out)
        .unwrap();
    assert_eq!(
        oms.take_instructions(),
        vec![I::Change {
            order_id: id,
            qty: Some(q(3)),
            limit_price: None,
            stop_price: None
        }]
    );

    // A cancel is asked once; the order works until the venue says it is canceled, and a fill
    // that beats the cancel still counts.
    let asked = oms.cancel(id, "by the operator", t0(), &mut out).unwrap();
    assert_eq!(asked.status, OrderStatus::Accepted);
    oms.cancel(id, "again", t0(), &mut out).unwrap();
    assert_eq!(oms.take_instructions(), vec![I::Cancel { order_id: id }]);
    oms.report(id, fill("f1", 1, "5000.25"), t0(), &mut out)
        .unwrap();
    oms.report(
        id,
        VenueReport::Canceled {
            reason: "canceled".into(),
        },
        t0(),
        &mut out,
    )
    .unwrap();
    assert_eq!(oms.order(id).unwrap().status, OrderStatus::Canceled);
    assert_eq!(position(&oms), q(1));

    // The kill switch reaches the venue: a halt asks it to cancel every working order.
    let a = buy(&mut oms, 1, &mut out);
    let b = buy(&mut oms, 1, &mut out);
    oms.take_instructions();
    oms.set_state(
        Some("live"),
        &StateCommand::Hardstop {
            reason: "test".into(),
        },
        t0(),
        &mut out,
    )
    .unwrap();
    let mut asked = oms.take_instructions();
    asked.sort_by_key(|i| format!("{i:?}"));
    assert_eq!(
        asked,
        vec![I::Cancel { order_id: a }, I::Cancel { order_id: b }]
    );
    // Replaying the journal asks nothing: instructions are not state.
    let mut replayed = venue_oms();
    for e in &out {
        replayed.apply(e);
    }
    assert!(replayed.take_instructions().is_empty());
}

#[test]
fn a_disconnected_venue_denies_new_orders_but_takes_cancels() {
    let mut oms = venue_oms();
    let mut out = Vec::new();
    let id = buy(&mut oms, 1, &mut out);
    oms.report(id, VenueReport::Accepted, t0(), &mut out)
        .unwrap();
    oms.take_instructions();
    oms.set_venue_connected("live", false);
    let new = NewOrder {
        account: "live".into(),
        symbol: es(),
        side: Side::Sell,
        qty: q(1),
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: Tif::Day,
        client_order_id: None,
    };
    let denied = oms.submit(new.clone(), t0(), &mut out).unwrap();
    assert_eq!(
        denied.denial.map(|d| d.code.code()),
        Some("venue_disconnected")
    );
    assert!(
        oms.take_instructions().is_empty(),
        "nothing goes to the venue"
    );
    // A cancel is asked all the same (the shell holds it until the connection is back).
    oms.cancel(id, "by request", t0(), &mut out).unwrap();
    assert_eq!(oms.take_instructions().len(), 1);
    oms.set_venue_connected("live", true);
    let taken = oms.submit(new, t0(), &mut out).unwrap();
    assert!(taken.denial.is_none());
}

#[test]
fn reconciliation_names_each_difference_and_adoption_takes_the_venue_view() {
    let mut oms = venue_oms();
    let mut out = Vec::new();
    let id = buy(&mut oms, 2, &mut out);
    oms.report(id, fill("e1", 2, "5000"), t0(), &mut out)
        .unwrap();
    let nq = Symbol::parse("NQ").unwrap();
    type Holding = (Symbol, i64);
    type Difference = (Symbol, i64, i64);
    let cases: Vec<(Vec<Holding>, Vec<Difference>)> = vec![
        // (venue holds, mismatches as (symbol, engine, venue))
        (vec![(es(), 2)], vec![]),
        (vec![(es(), 1)], vec![(es(), 2, 1)]),
        (vec![], vec![(es(), 2, 0)]),
        (vec![(es(), 2), (nq.clone(), -1)], vec![(nq.clone(), 0, -1)]),
        (vec![(es(), -2)], vec![(es(), 2, -2)]),
    ];
    for (venue, want) in cases {
        let held = venue.iter().map(|(s, n)| (s.clone(), q(*n))).collect();
        let got: Vec<(Symbol, i64, i64)> = oms
            .reconcile("live", &held)
            .into_iter()
            .map(|m| {
                (
                    m.symbol,
                    m.engine.0.raw() / Fixed::ONE.raw(),
                    m.venue.0.raw() / Fixed::ONE.raw(),
                )
            })
            .collect();
        assert_eq!(got, want, "venue {venue:?}");
    }
    // Adopting sets the quantity and average; realized P&L stays; a replay rebuilds it.
    let before = oms.positions(Some("live"))[0].position.realized_pnl;
    let mut adjusted = Vec::new();
    oms.adopt_position("live", &es(), q(3), Price(f("4990.5")), t0(), &mut adjusted)
        .unwrap();
    out.extend(adjusted.clone());
    let p = oms.positions(Some("live"))[0].position.clone();
    assert_eq!(
        (p.qty, p.avg_price, p.realized_pnl),
        (q(3), Price(f("4990.5")), before)
    );
    assert!(oms
        .reconcile("live", &[(es(), q(3))].into_iter().collect())
        .is_empty());
    let mut replay = venue_oms();
    for e in &out {
        replay.apply(e);
    }
    assert_eq!(replay.positions(Some("live")), oms.positions(Some("live")));
    // Bad adoptions change nothing.
    let mut none = Vec::new();
    assert!(oms
        .adopt_position("ghost", &es(), q(1), Price(f("1")), t0(), &mut none)
        .is_err());
    assert!(oms
        .adopt_position("live", &es(), q(1), Price(f("0")), t0(), &mut none)
        .is_err());
    assert!(none.is_empty());
    // Flat needs no price.
    oms.adopt_position("live", &es(), q(0), Price(f("0")), t0(), &mut none)
        .unwrap();
    assert!(oms.positions(Some("live"))[0].position.is_flat());
}

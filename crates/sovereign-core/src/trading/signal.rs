//! Strategy signals (TradingView-style alerts) and rebalancing turned into orders.
//!
//! Both are planners: given the current position(s) they return the orders that reach what the
//! signal or the target asks for. They never submit anything; the orders go through pre-trade
//! risk like any other.

use crate::error::Invalid;
use crate::trading::fixed::{Fixed, Money, Price, Qty};
use crate::trading::instrument::{Instrument, Instruments, Symbol};
use crate::trading::order::{NewOrder, OrderType, Side, Tif};

/// What an alert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Buy,
    Sell,
    /// Close the position (`exit` and `flat` are synonyms).
    Exit,
}

impl Action {
    pub fn parse(text: &str) -> Result<Action, Invalid> {
        match text.trim().to_ascii_lowercase().as_str() {
            "buy" | "long" => Ok(Action::Buy),
            "sell" | "short" => Ok(Action::Sell),
            "exit" | "flat" | "close" => Ok(Action::Exit),
            _ => Err(Invalid::new(
                "invalid_action",
                "action",
                format!("action must be buy, sell, exit or flat, not {text:?}"),
            )),
        }
    }
}

/// How a strategy's alerts become orders (from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyRule {
    pub name: String,
    pub account: String,
    /// Ticker → instrument, e.g. `ES1!` → `ES`. Unmapped tickers are used as symbols.
    pub symbols: Vec<(String, Symbol)>,
    /// Fixed quantity per signal; `None` = take the signal's `contracts`/`qty`.
    pub fixed_qty: Option<Qty>,
    /// An opposite signal closes the position and opens the new side in one order.
    pub reverse: bool,
    /// Use the signal's `price`/`order_type` (limit orders); otherwise market.
    pub use_signal_price: bool,
    pub tif: Tif,
}

/// A parsed alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub ticker: String,
    pub action: Action,
    pub qty: Option<Qty>,
    pub price: Option<Price>,
    pub order_type: Option<OrderType>,
}

impl StrategyRule {
    /// The instrument an alert's ticker maps to.
    pub fn instrument<'a>(
        &self,
        ticker: &str,
        instruments: &'a Instruments,
    ) -> Result<&'a Instrument, Invalid> {
        let mapped = self
            .symbols
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(ticker))
            .map(|(_, s)| s.to_string());
        instruments
            .find(mapped.as_deref().unwrap_or(ticker))
            .map_err(|e| Invalid::new(e.code, "ticker", e.message))
    }

    /// The orders that carry out `signal` given the current signed `position`.
    pub fn plan(
        &self,
        signal: &Signal,
        instrument: &Instrument,
        position: Qty,
    ) -> Result<Vec<NewOrder>, Invalid> {
        let qty = match (signal.action, self.fixed_qty, signal.qty) {
            (Action::Exit, _, _) => Qty::ZERO,
            (_, Some(q), _) | (_, None, Some(q)) => {
                instrument.check_qty(q, "contracts")?;
                q
            }
            (_, None, None) => {
                return Err(Invalid::new(
                    "missing_qty",
                    "contracts",
                    "this strategy takes its quantity from the alert: send contracts or qty",
                ))
            }
        };
        let (side, amount) = match signal.action {
            Action::Exit if position.is_zero() => return Ok(Vec::new()),
            Action::Exit => (
                if position.is_positive() {
                    Side::Sell
                } else {
                    Side::Buy
                },
                position.abs(),
            ),
            Action::Buy if self.reverse && position.is_negative() => {
                (Side::Buy, position.abs().saturating_add(qty))
            }
            Action::Sell if self.reverse && position.is_positive() => {
                (Side::Sell, position.saturating_add(qty))
            }
            Action::Buy => (Side::Buy, qty),
            Action::Sell => (Side::Sell, qty),
        };
        let (order_type, limit_price) =
            match (self.use_signal_price, signal.order_type, signal.price) {
                (true, Some(OrderType::Limit), Some(p)) | (true, None, Some(p))
                    if signal.action != Action::Exit =>
                {
                    instrument.check_price(p, "price")?;
                    (OrderType::Limit, Some(p))
                }
                _ => (OrderType::Market, None),
            };
        Ok(vec![NewOrder {
            account: self.account.clone(),
            symbol: instrument.symbol.clone(),
            side,
            qty: amount,
            order_type,
            limit_price,
            stop_price: None,
            tif: if order_type == OrderType::Market {
                Tif::Ioc
            } else {
                self.tif
            },
            client_order_id: None,
        }])
    }
}

/// A rebalance target for one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Hold exactly this signed quantity.
    Qty(Qty),
    /// Hold this fraction of equity (e.g. 0.25), long; rounded down to the quantity step.
    Weight(Fixed),
}

/// Orders that move `positions` to `targets`. Symbols with a position but no target are left
/// alone. Weights need the last price (`None` → error naming the symbol).
pub fn rebalance(
    account: &str,
    targets: &[(Symbol, Target)],
    position_of: impl Fn(&Symbol) -> Qty,
    last_of: impl Fn(&Symbol) -> Option<Price>,
    equity: Money,
    instruments: &Instruments,
) -> Result<Vec<NewOrder>, Invalid> {
    let mut orders = Vec::new();
    for (symbol, target) in targets {
        let instrument = instruments.get(symbol).ok_or_else(|| {
            Invalid::new(
                "unknown_symbol",
                format!("payload.targets.{symbol}"),
                format!("unknown symbol {symbol}"),
            )
        })?;
        let want = match *target {
            Target::Qty(q) => q,
            Target::Weight(w) => {
                let last = last_of(symbol).ok_or_else(|| {
                    Invalid::new(
                        "no_market_price",
                        format!("payload.targets.{symbol}"),
                        format!("no price for {symbol} yet"),
                    )
                })?;
                let money = equity.0.checked_mul(w).unwrap_or(Fixed::ZERO);
                let per_unit = last
                    .0
                    .checked_mul(instrument.multiplier)
                    .unwrap_or(Fixed::ZERO);
                let raw = money.checked_div(per_unit).unwrap_or(Fixed::ZERO);
                // Round toward zero onto the quantity step.
                let step = instrument.qty_step.0;
                let units = if step.is_zero() {
                    raw
                } else {
                    Fixed::from_raw(raw.raw() - raw.raw() % step.raw())
                };
                Qty(units)
            }
        };
        let delta = want.saturating_sub(position_of(symbol));
        if delta.is_zero() {
            continue;
        }
        orders.push(NewOrder {
            account: account.to_string(),
            symbol: symbol.clone(),
            side: if delta.is_positive() {
                Side::Buy
            } else {
                Side::Sell
            },
            qty: delta.abs(),
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: Tif::Ioc,
            client_order_id: None,
        });
    }
    Ok(orders)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(reverse: bool, fixed: Option<&str>) -> StrategyRule {
        StrategyRule {
            name: "s".into(),
            account: "paper".into(),
            symbols: vec![("ES1!".into(), Symbol::parse("ES").unwrap())],
            fixed_qty: fixed.map(|q| Qty::parse(q).unwrap()),
            reverse,
            use_signal_price: false,
            tif: Tif::Day,
        }
    }

    #[test]
    fn plan_table() {
        let set = Instruments::builtin();
        let q = |s: &str| Qty::parse(s).unwrap();
        let sig = |a: Action, n: Option<&str>| Signal {
            ticker: "ES1!".into(),
            action: a,
            qty: n.map(q),
            price: None,
            order_type: None,
        };
        // (rule, signal, position, expected (side, qty) or none)
        type Case<'a> = (StrategyRule, Signal, &'a str, Option<(Side, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                rule(true, None),
                sig(Action::Buy, Some("2")),
                "0",
                Some((Side::Buy, "2")),
            ),
            (
                rule(true, None),
                sig(Action::Buy, Some("2")),
                "-3",
                Some((Side::Buy, "5")),
            ),
            (
                rule(false, None),
                sig(Action::Buy, Some("2")),
                "-3",
                Some((Side::Buy, "2")),
            ),
            (
                rule(true, Some("1")),
                sig(Action::Sell, Some("9")),
                "2",
                Some((Side::Sell, "3")),
            ),
            (
                rule(true, None),
                sig(Action::Exit, None),
                "4",
                Some((Side::Sell, "4")),
            ),
            (
                rule(true, None),
                sig(Action::Exit, None),
                "-4",
                Some((Side::Buy, "4")),
            ),
            (rule(true, None), sig(Action::Exit, None), "0", None),
        ];
        let es = rule(true, None).instrument("es1!", &set).unwrap().clone();
        for (i, (r, s, pos, want)) in cases.into_iter().enumerate() {
            let got = r.plan(&s, &es, q(pos)).unwrap();
            let got = got.first().map(|o| (o.side, o.qty));
            assert_eq!(got, want.map(|(side, n)| (side, q(n))), "case {i}");
        }
        assert_eq!(
            rule(true, None)
                .plan(&sig(Action::Buy, None), &es, q("0"))
                .unwrap_err()
                .code,
            "missing_qty"
        );
        assert_eq!(Action::parse("hold").unwrap_err().code, "invalid_action");
    }

    #[test]
    fn rebalance_by_qty_and_weight() {
        let set = Instruments::builtin();
        let s = |t: &str| Symbol::parse(t).unwrap();
        let f = |t: &str| Fixed::parse(t).unwrap();
        let targets = vec![
            (s("SPY"), Target::Weight(f("0.6"))),
            (s("ES"), Target::Qty(Qty(f("-1")))),
        ];
        let orders = rebalance(
            "paper",
            &targets,
            |sym| {
                if sym.as_str() == "SPY" {
                    Qty(f("10"))
                } else {
                    Qty(f("2"))
                }
            },
            |_| Some(Price(f("500"))),
            Money(f("100000")),
            &set,
        )
        .unwrap();
        // SPY: 60,000 / 500 = 120 shares wanted, 10 held → buy 110; ES: −1 wanted, 2 held → sell 3.
        let got: Vec<(String, Side, Qty)> = orders
            .iter()
            .map(|o| (o.symbol.to_string(), o.side, o.qty))
            .collect();
        assert_eq!(
            got,
            vec![
                ("SPY".into(), Side::Buy, Qty(f("110"))),
                ("ES".into(), Side::Sell, Qty(f("3")))
            ]
        );
        let err = rebalance(
            "paper",
            &targets,
            |_| Qty::ZERO,
            |_| None,
            Money(f("1")),
            &set,
        )
        .unwrap_err();
        assert_eq!(err.code, "no_market_price");
    }
}

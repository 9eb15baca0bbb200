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
    /// Ticker → instrument, e.g. `ES1!` → `ES`: the tickers this strategy trades.
    pub symbols: Vec<(String, Symbol)>,
    /// Tickers not in `symbols` are taken as symbols themselves (otherwise refused).
    pub passthrough: bool,
    /// Round the alert's prices onto the tick grid, never to a worse price: buy limits and
    /// sell stops down, sell limits and buy stops up (otherwise a price off the grid is refused).
    pub round_to_tick: bool,
    /// Fixed quantity per signal; `None` = take the signal's `contracts`/`qty`.
    pub fixed_qty: Option<Qty>,
    /// An opposite signal closes the position and opens the new side in one order.
    pub reverse: bool,
    /// An alert with a `price` but no `order_type` becomes a limit order at that price
    /// (otherwise a market order; the price is then the bar's close, for information). An
    /// explicit `order_type` is always honoured.
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
        if mapped.is_none() && !self.passthrough {
            let known: Vec<&str> = self.symbols.iter().map(|(t, _)| t.as_str()).collect();
            return Err(Invalid::new(
                "unknown_ticker",
                "ticker",
                format!(
                    "strategy {:?} does not trade {ticker:?} (its tickers: {}); map it in [signals.{}.symbols] or set passthrough = true",
                    self.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") },
                    self.name
                ),
            ));
        }
        instruments
            .find(mapped.as_deref().unwrap_or(ticker))
            .map_err(|e| Invalid::new(e.code, "ticker", e.message))
    }

    /// The alert's price as an order price: on the tick grid, or rounded onto it toward the
    /// passive side when the strategy says `round_to_tick`.
    fn order_price(
        &self,
        price: Price,
        instrument: &Instrument,
        up: bool,
    ) -> Result<Price, Invalid> {
        let price = if self.round_to_tick {
            let step = instrument.tick_size.0.raw();
            let raw = price.0.raw();
            let rem = raw.rem_euclid(step);
            let down = raw - rem;
            Price(Fixed::from_raw(if up && rem != 0 {
                down.saturating_add(step)
            } else {
                down
            }))
        } else {
            price
        };
        instrument.check_price(price, "price")?;
        Ok(price)
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
        // The order is what the alert says, or refused: never a different kind of order.
        let buy = side == Side::Buy;
        let (order_type, limit_price, stop_price) = match (signal.order_type, signal.price) {
            (Some(OrderType::Market), _) => (OrderType::Market, None, None),
            (Some(OrderType::StopLimit), _) => {
                return Err(Invalid::new(
                    "unsupported_order_type",
                    "order_type",
                    "a stop_limit order needs a stop and a limit price; an alert carries one price: send limit or stop",
                ))
            }
            (Some(kind), None) => {
                return Err(Invalid::new(
                    "missing_price",
                    "price",
                    format!("a {} alert needs a price", kind.as_str()),
                ))
            }
            (Some(OrderType::Limit), Some(p)) => (
                OrderType::Limit,
                Some(self.order_price(p, instrument, !buy)?),
                None,
            ),
            (Some(OrderType::Stop), Some(p)) => (
                OrderType::Stop,
                None,
                Some(self.order_price(p, instrument, buy)?),
            ),
            (None, Some(p)) if self.use_signal_price && signal.action != Action::Exit => (
                OrderType::Limit,
                Some(self.order_price(p, instrument, !buy)?),
                None,
            ),
            (None, _) => (OrderType::Market, None, None),
        };
        Ok(vec![NewOrder {
            account: self.account.clone(),
            symbol: instrument.symbol.clone(),
            side,
            qty: amount,
            order_type,
            limit_price,
            stop_price,
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
            passthrough: false,
            round_to_tick: false,
            reverse,
            use_signal_price: false,
            tif: Tif::Day,
        }
    }

    #[test]
    fn the_alert_order_type_is_honoured_or_refused() {
        let set = Instruments::builtin();
        let es = rule(true, None).instrument("ES1!", &set).unwrap().clone();
        let p = |s: &str| Price(Fixed::parse(s).unwrap());
        let sig = |a: Action, t: Option<OrderType>, price: Option<&str>| Signal {
            ticker: "ES1!".into(),
            action: a,
            qty: Some(Qty::parse("1").unwrap()),
            price: price.map(p),
            order_type: t,
        };
        let rounding = StrategyRule {
            round_to_tick: true,
            ..rule(true, None)
        };
        let implicit = StrategyRule {
            use_signal_price: true,
            ..rule(true, None)
        };
        use OrderType as T;
        // (rule, signal) → (type, limit, stop) or the refusal's code
        type Want = Result<(OrderType, Option<&'static str>, Option<&'static str>), &'static str>;
        let cases: Vec<(&StrategyRule, Signal, Want)> = vec![
            (
                &rounding,
                sig(Action::Buy, None, Some("5000.1")),
                Ok((T::Market, None, None)),
            ),
            (
                &implicit,
                sig(Action::Buy, None, Some("5000")),
                Ok((T::Limit, Some("5000"), None)),
            ),
            (
                &implicit,
                sig(Action::Exit, None, Some("5000")),
                Ok((T::Market, None, None)),
            ),
            (
                &rounding,
                sig(Action::Buy, Some(T::Market), Some("1")),
                Ok((T::Market, None, None)),
            ),
            (
                &rounding,
                sig(Action::Buy, Some(T::Limit), Some("5000.1")),
                Ok((T::Limit, Some("5000"), None)),
            ),
            (
                &rounding,
                sig(Action::Sell, Some(T::Limit), Some("5000.1")),
                Ok((T::Limit, Some("5000.25"), None)),
            ),
            (
                &rounding,
                sig(Action::Buy, Some(T::Stop), Some("5000.1")),
                Ok((T::Stop, None, Some("5000.25"))),
            ),
            (
                &rounding,
                sig(Action::Sell, Some(T::Stop), Some("5000.1")),
                Ok((T::Stop, None, Some("5000"))),
            ),
            (
                &rounding,
                sig(Action::Sell, Some(T::Stop), Some("5000.25")),
                Ok((T::Stop, None, Some("5000.25"))),
            ),
            (
                &implicit,
                sig(Action::Buy, Some(T::Limit), Some("5000.1")),
                Err("price_off_tick"),
            ),
            (
                &implicit,
                sig(Action::Buy, Some(T::Stop), None),
                Err("missing_price"),
            ),
            (
                &implicit,
                sig(Action::Buy, Some(T::StopLimit), Some("5000")),
                Err("unsupported_order_type"),
            ),
        ];
        for (i, (r, s, want)) in cases.into_iter().enumerate() {
            let got = r
                .plan(&s, &es, Qty::parse("-1").unwrap())
                .map(|o| {
                    let o = &o[0];
                    (o.order_type, o.limit_price, o.stop_price)
                })
                .map_err(|e| e.code);
            let want = want.map(|(t, l, st)| (t, l.map(p), st.map(p)));
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn only_mapped_tickers_trade_unless_passed_through() {
        let set = Instruments::builtin();
        assert_eq!(
            rule(true, None).instrument("ES", &set).unwrap_err().code,
            "unknown_ticker"
        );
        let open = StrategyRule {
            passthrough: true,
            ..rule(true, None)
        };
        assert_eq!(open.instrument("ES", &set).unwrap().symbol.as_str(), "ES");
        assert_eq!(
            open.instrument("ZZ", &set).unwrap_err().code,
            "unknown_symbol"
        );
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

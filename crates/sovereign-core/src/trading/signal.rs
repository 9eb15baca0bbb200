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
    /// `mode = "target"`: an alert says the position to hold (TradingView's
    /// `{{strategy.market_position}}` and `{{strategy.position_size}}`) and the plan trades the
    /// difference, so a missed or repeated alert cannot leave the account drifting.
    pub target: bool,
}

/// A parsed alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub ticker: String,
    pub action: Action,
    pub qty: Option<Qty>,
    pub price: Option<Price>,
    pub order_type: Option<OrderType>,
    /// The position the strategy holds after this alert, when it says (see [`target_position`]).
    pub target: Option<HeldPosition>,
}

/// The position an alert says the strategy holds: its side (`long`, `short`, `flat`) and, when
/// sent, its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldPosition {
    /// -1, 0 or 1.
    pub sign: i64,
    pub size: Option<Qty>,
}

/// Read `market_position` (`long`/`short`/`flat`) and `position_size` (TradingView sends it
/// signed, or as the absolute `market_position_size`). Either may be absent; neither: `None`.
pub fn target_position(
    market_position: Option<&str>,
    position_size: Option<Qty>,
) -> Result<Option<HeldPosition>, Invalid> {
    let sign = match market_position.map(|m| m.trim().to_ascii_lowercase()) {
        None => None,
        Some(m) => Some(match m.as_str() {
            "long" => 1,
            "short" => -1,
            "flat" => 0,
            _ => {
                return Err(Invalid::new(
                    "invalid_market_position",
                    "market_position",
                    format!("market_position must be long, short or flat, not {m:?}"),
                ))
            }
        }),
    };
    Ok(match (sign, position_size) {
        (None, None) => None,
        (None, Some(size)) => Some(HeldPosition {
            sign: size.0.signum(),
            size: Some(size.abs()),
        }),
        (Some(sign), size) => {
            if let Some(size) = size {
                // A positive size with `short` is the absolute `market_position_size`; a
                // negative one with `long` contradicts it.
                if sign > 0 && size.is_negative() {
                    return Err(Invalid::new(
                        "conflicting_position",
                        "position_size",
                        format!("market_position says long but position_size is {size}"),
                    ));
                }
                if sign == 0 && !size.is_zero() {
                    return Err(Invalid::new(
                        "conflicting_position",
                        "position_size",
                        format!("market_position says flat but position_size is {size}"),
                    ));
                }
            }
            Some(HeldPosition {
                sign,
                size: size.map(Qty::abs),
            })
        }
    })
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

    /// The position a target-mode alert asks for: its side, and its size from the alert (or
    /// the strategy's fixed quantity).
    fn wanted(&self, signal: &Signal, instrument: &Instrument) -> Result<Qty, Invalid> {
        let target = signal.target.ok_or_else(|| {
            Invalid::new(
                "missing_target",
                "market_position",
                "this strategy holds target positions: send market_position and position_size \
                 ({{strategy.market_position}}, {{strategy.position_size}})",
            )
        })?;
        if target.sign == 0 {
            return Ok(Qty::ZERO);
        }
        let size = match (target.size, self.fixed_qty, signal.qty) {
            (Some(s), _, _) | (None, Some(s), _) | (None, None, Some(s)) => s,
            (None, None, None) => {
                return Err(Invalid::new(
                    "missing_qty",
                    "position_size",
                    "a long or short target needs its size: send position_size",
                ))
            }
        };
        if size.is_zero() {
            return Ok(Qty::ZERO);
        }
        instrument.check_qty(size, "position_size")?;
        Ok(if target.sign < 0 {
            Qty(size.0.negate())
        } else {
            size
        })
    }

    /// The orders that carry out `signal` given the current signed `position`.
    pub fn plan(
        &self,
        signal: &Signal,
        instrument: &Instrument,
        position: Qty,
    ) -> Result<Vec<NewOrder>, Invalid> {
        if self.target {
            let delta = self.wanted(signal, instrument)?.saturating_sub(position);
            if delta.is_zero() {
                return Ok(Vec::new());
            }
            let side = if delta.is_positive() {
                Side::Buy
            } else {
                Side::Sell
            };
            return self.order(signal, instrument, side, delta.abs(), false);
        }
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
        self.order(
            signal,
            instrument,
            side,
            amount,
            signal.action == Action::Exit,
        )
    }

    /// One order of `amount` on `side`, of the kind the alert asks for.
    fn order(
        &self,
        signal: &Signal,
        instrument: &Instrument,
        side: Side,
        amount: Qty,
        exit: bool,
    ) -> Result<Vec<NewOrder>, Invalid> {
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
            (None, Some(p)) if self.use_signal_price && !exit => (
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
            target: false,
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
            target: None,
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
            target: None,
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

    #[test]
    fn a_target_strategy_trades_to_the_position_the_alert_holds() {
        let set = Instruments::builtin();
        let q = |s: &str| Qty::parse(s).unwrap();
        let targeting = StrategyRule {
            target: true,
            ..rule(true, None)
        };
        let fixed = StrategyRule {
            target: true,
            ..rule(true, Some("2"))
        };
        let es = targeting.instrument("ES1!", &set).unwrap().clone();
        let sig = |m: Option<&str>, size: Option<&str>| Signal {
            ticker: "ES1!".into(),
            action: Action::Buy,
            qty: None,
            price: None,
            order_type: None,
            target: target_position(m, size.map(q)).unwrap(),
        };
        // (rule, market_position, position_size, position now) → (side, qty) or nothing
        type Case<'a> = (
            &'a StrategyRule,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Option<(Side, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            (
                &targeting,
                Some("long"),
                Some("3"),
                "0",
                Some((Side::Buy, "3")),
            ),
            (
                &targeting,
                Some("long"),
                Some("3"),
                "1",
                Some((Side::Buy, "2")),
            ),
            // A repeated alert: already there, nothing to do.
            (&targeting, Some("long"), Some("3"), "3", None),
            (
                &targeting,
                Some("long"),
                Some("3"),
                "5",
                Some((Side::Sell, "2")),
            ),
            (
                &targeting,
                Some("short"),
                Some("2"),
                "3",
                Some((Side::Sell, "5")),
            ),
            (&targeting, None, Some("-2"), "0", Some((Side::Sell, "2"))),
            (&targeting, Some("flat"), None, "-4", Some((Side::Buy, "4"))),
            (&targeting, Some("flat"), Some("0"), "0", None),
            (&fixed, Some("short"), None, "0", Some((Side::Sell, "2"))),
            (&fixed, Some("long"), Some("1"), "0", Some((Side::Buy, "1"))),
        ];
        for (rule, m, size, pos, want) in cases {
            let orders = rule.plan(&sig(m, size), &es, q(pos)).unwrap();
            let got = orders.first().map(|o| (o.side, o.qty));
            assert_eq!(got, want.map(|(s, n)| (s, q(n))), "{m:?} {size:?} at {pos}");
            assert!(orders.len() <= 1);
        }
        let missing = targeting.plan(&sig(None, None), &es, q("0")).unwrap_err();
        assert_eq!(missing.code, "missing_target");
        let no_size = targeting
            .plan(&sig(Some("long"), None), &es, q("0"))
            .unwrap_err();
        assert_eq!(no_size.code, "missing_qty");
        for (m, size, code) in [
            (Some("sideways"), None, "invalid_market_position"),
            (Some("long"), Some("-2"), "conflicting_position"),
            (Some("flat"), Some("1"), "conflicting_position"),
        ] {
            assert_eq!(target_position(m, size.map(q)).unwrap_err().code, code);
        }
        assert_eq!(target_position(None, None).unwrap(), None);
    }
}

//! Instruments: what can be traded and the grid its prices and quantities live on.
//!
//! A price off the tick grid or a quantity off the step grid is refused here, before an order
//! exists. The built-in set covers the common CME futures, a few US equities and BTC-USD; the
//! config can add more (or override these) with [`Instruments::insert`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::Invalid;
use crate::trading::fixed::{Fixed, Price, Qty};

/// An instrument's symbol: 1–32 characters of `[A-Z0-9._-!/]` (upper-cased on parse). Shared
/// text: cloning a symbol (which every order, fill and event does) costs a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(Arc<str>);

impl Symbol {
    pub fn parse(text: &str) -> Result<Symbol, Invalid> {
        let s = text.trim().to_ascii_uppercase();
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '!' | '/');
        if s.is_empty() || s.len() > 32 || !s.chars().all(ok) {
            return Err(Invalid::new(
                "invalid_symbol",
                "symbol",
                format!("{text:?} is not a symbol"),
            ));
        }
        Ok(Symbol(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetClass {
    Future,
    Equity,
    Crypto,
}

impl AssetClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetClass::Future => "future",
            AssetClass::Equity => "equity",
            AssetClass::Crypto => "crypto",
        }
    }
}

/// One tradable instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub symbol: Symbol,
    pub class: AssetClass,
    /// Smallest price increment.
    pub tick_size: Price,
    /// Money per 1.0 of price per 1 unit of quantity (futures point value; 1 for cash assets).
    pub multiplier: Fixed,
    pub currency: String,
    /// Smallest quantity increment.
    pub qty_step: Qty,
}

impl Instrument {
    /// Refuse a price that is not positive or not on the tick grid.
    pub fn check_price(&self, price: Price, field: &str) -> Result<(), Invalid> {
        if !price.is_positive() {
            return Err(Invalid::new(
                "invalid_price",
                field,
                format!("{field} must be greater than 0"),
            ));
        }
        if !price.0.is_multiple_of(self.tick_size.0) {
            return Err(Invalid::new(
                "price_off_tick",
                field,
                format!(
                    "{price} is not a multiple of {}'s tick size {}",
                    self.symbol, self.tick_size
                ),
            ));
        }
        Ok(())
    }

    /// Refuse a quantity that is not positive or not on the step grid.
    pub fn check_qty(&self, qty: Qty, field: &str) -> Result<(), Invalid> {
        if !qty.is_positive() {
            return Err(Invalid::new(
                "invalid_qty",
                field,
                format!("{field} must be greater than 0"),
            ));
        }
        if !qty.0.is_multiple_of(self.qty_step.0) {
            return Err(Invalid::new(
                "qty_off_step",
                field,
                format!(
                    "{qty} is not a multiple of {}'s quantity step {}",
                    self.symbol, self.qty_step
                ),
            ));
        }
        Ok(())
    }
}

/// The instruments a deployment knows.
#[derive(Debug, Clone, Default)]
pub struct Instruments {
    by_symbol: HashMap<Symbol, Instrument>,
}

impl Instruments {
    /// The built-in set: ES, MES, NQ, MNQ, CL, GC futures; SPY, QQQ, AAPL, MSFT; BTC-USD.
    pub fn builtin() -> Instruments {
        let mut set = Instruments::default();
        let f = |s: &str| Fixed::parse(s).unwrap_or(Fixed::ZERO);
        let futures = [
            ("ES", "0.25", "50"),
            ("MES", "0.25", "5"),
            ("NQ", "0.25", "20"),
            ("MNQ", "0.25", "2"),
            ("CL", "0.01", "1000"),
            ("GC", "0.1", "100"),
        ];
        for (sym, tick, mult) in futures {
            set.add(sym, AssetClass::Future, f(tick), f(mult), f("1"));
        }
        for sym in ["SPY", "QQQ", "AAPL", "MSFT"] {
            set.add(sym, AssetClass::Equity, f("0.01"), f("1"), f("1"));
        }
        set.add(
            "BTC-USD",
            AssetClass::Crypto,
            f("0.01"),
            f("1"),
            f("0.00001"),
        );
        set
    }

    fn add(&mut self, sym: &str, class: AssetClass, tick: Fixed, mult: Fixed, step: Fixed) {
        if let Ok(symbol) = Symbol::parse(sym) {
            self.insert(Instrument {
                symbol,
                class,
                tick_size: Price(tick),
                multiplier: mult,
                currency: "USD".into(),
                qty_step: Qty(step),
            });
        }
    }

    pub fn insert(&mut self, instrument: Instrument) {
        self.by_symbol.insert(instrument.symbol.clone(), instrument);
    }

    pub fn get(&self, symbol: &Symbol) -> Option<&Instrument> {
        self.by_symbol.get(symbol)
    }

    /// Look up by text, with an error that lists what is known.
    pub fn find(&self, text: &str) -> Result<&Instrument, Invalid> {
        let symbol = Symbol::parse(text)?;
        self.get(&symbol).ok_or_else(|| {
            Invalid::new(
                "unknown_symbol",
                "symbol",
                format!(
                    "unknown symbol {symbol}; known: {}",
                    self.symbols().join(", ")
                ),
            )
        })
    }

    pub fn symbols(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_symbol.keys().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = &Instrument> {
        self.by_symbol.values()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn grid_checks() {
        let set = Instruments::builtin();
        let es = set.find("es").unwrap();
        assert_eq!(es.multiplier, Fixed::parse("50").unwrap());
        let p = |s: &str| Price::parse(s).unwrap();
        let q = |s: &str| Qty::parse(s).unwrap();
        assert!(es.check_price(p("5000.25"), "limit_price").is_ok());
        assert_eq!(
            es.check_price(p("5000.3"), "limit_price").unwrap_err().code,
            "price_off_tick"
        );
        assert_eq!(
            es.check_price(p("0"), "limit_price").unwrap_err().code,
            "invalid_price"
        );
        assert!(es.check_qty(q("2"), "qty").is_ok());
        assert_eq!(
            es.check_qty(q("1.5"), "qty").unwrap_err().code,
            "qty_off_step"
        );
        assert_eq!(
            es.check_qty(q("-1"), "qty").unwrap_err().code,
            "invalid_qty"
        );
        let btc = set.find("BTC-USD").unwrap();
        assert!(btc.check_qty(q("0.00123"), "qty").is_ok());
        assert_eq!(set.find("ZZZ").unwrap_err().code, "unknown_symbol");
    }
}

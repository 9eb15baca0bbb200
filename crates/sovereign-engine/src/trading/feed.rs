//! The synthetic market-data feed: a random walk on every instrument's tick grid, so a fresh
//! `sovereign up` shows moving prices and fills paper orders with nothing configured.
//!
//! Each walk starts at the symbol's last journaled price (so a restart does not jump), else at a
//! reference price. Each step moves each price by −1, 0 or +1 tick, with a one-tick spread
//! around it; a symbol an external price has reached ignores these prices. The walk is
//! a seeded xorshift generator: deterministic for a seed, no dependencies, not cryptographic.

use std::time::Duration;

use sovereign_core::trading::fixed::{Fixed, Price};
use sovereign_core::trading::instrument::{Instruments, Symbol};
use sovereign_core::trading::oms::PriceSource;

use super::{Tick, Trading};
use crate::support::Tasks;

/// Where each built-in instrument's walk starts.
fn start_price(symbol: &str) -> &'static str {
    match symbol {
        "ES" | "MES" => "5000",
        "NQ" | "MNQ" => "18000",
        "CL" => "75",
        "GC" => "2000",
        "SPY" => "500",
        "QQQ" => "430",
        "AAPL" => "190",
        "MSFT" => "420",
        "BTC-USD" => "60000",
        _ => "100",
    }
}

/// xorshift64*: a tiny deterministic generator for the walk.
struct Walk(u64);

impl Walk {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// −1, 0 or +1.
    fn step(&mut self) -> i64 {
        (self.next() % 3) as i64 - 1
    }
}

/// Run the feed until told to stop (or until the trading actor goes away).
/// Each walk starts at `last` (the last journaled price) when known, else at a reference price.
pub async fn run(
    trading: Trading,
    instruments: Instruments,
    last: Vec<(Symbol, Price)>,
    interval: Duration,
    seed: u64,
    tasks: Tasks,
) {
    let mut walk = Walk(seed | 1);
    let mut prices = start_prices(&instruments, &last);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tasks.stopped() => return,
        }
        let mut batch = Vec::with_capacity(prices.len());
        for (symbol, price, size) in prices.iter_mut() {
            let moved = Fixed::from_raw(size.0.raw().saturating_mul(walk.step()));
            let next = price.0.saturating_add(moved);
            if next > size.0 {
                *price = Price(next);
            }
            batch.push(Tick {
                symbol: symbol.clone(),
                price: *price,
                bid: Some(Price(price.0.saturating_sub(size.0))),
                ask: Some(Price(price.0.saturating_add(size.0))),
                size: None,
                source: PriceSource::Synthetic,
                at: None,
            });
        }
        if trading.is_closed() {
            return;
        }
        trading.push_ticks(batch);
    }
}

/// Where each walk starts, in symbol order: the last journaled price when there is one, else
/// the instrument's reference price; each with the instrument's tick size.
fn start_prices(
    instruments: &Instruments,
    last: &[(Symbol, Price)],
) -> Vec<(Symbol, Price, Price)> {
    let mut prices: Vec<(Symbol, Price, Price)> = instruments
        .iter()
        .map(|i| {
            let start = match last.iter().find(|(s, _)| *s == i.symbol) {
                Some((_, p)) => p.0,
                None => Fixed::parse(start_price(i.symbol.as_str())).unwrap_or(Fixed::ONE),
            };
            (
                i.symbol.clone(),
                Price(start.round_to(i.tick_size.0)),
                i.tick_size,
            )
        })
        .collect();
    prices.sort_by(|a, b| a.0.cmp(&b.0));
    prices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_resume_from_the_last_journaled_price() {
        let instruments = Instruments::builtin();
        let es = Symbol::parse("ES").unwrap_or_else(|e| panic!("{e:?}"));
        let last = vec![(
            es.clone(),
            Price(Fixed::parse("4321.25").unwrap_or(Fixed::ONE)),
        )];
        let prices = start_prices(&instruments, &last);
        let find = |s: &str| {
            prices
                .iter()
                .find(|p| p.0.as_str() == s)
                .map(|p| p.1.to_string())
        };
        assert_eq!(find("ES").as_deref(), Some("4321.25"));
        assert_eq!(
            find("NQ").as_deref(),
            Some("18000"),
            "no journaled price: the reference"
        );
    }
}

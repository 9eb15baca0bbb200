//! The trading core: exact numbers, instruments, orders and their state machine, pre-trade risk,
//! paper matching, positions and P&L. Pure: no I/O, no clock, no async.
//!
//! # Layout
//! - [`changes`]: which orders, fills and positions each recent change touched, for the
//!   trading streams (a window's changes, a reconnect's missed ones).
//! - [`fixed`]: `Fixed` (8-decimal exact numbers) and the `Price`, `Qty`, `Money` newtypes.
//! - [`instrument`]: symbols, tick and quantity grids, point values; the built-in set.
//! - [`matching`]: the paper broker's decisions: trigger, fill or cancel a working order on a quote.
//! - [`ninjatrader`]: NinjaTrader's order instruction lines and its order state, position and
//!   connection files, read back exactly; the CME quarterly front month.
//! - [`oms`]: the order management core: commands → events → state; replay is recovery.
//! - [`signal`]: TradingView-style alerts and rebalance targets planned into orders.
//! - [`order`]: sides, types, TIF, the validated `NewOrder`, and the `OrderStatus` state machine.
//! - [`position`]: positions, exact cost basis, realized/unrealized P&L; account cash and equity.
//! - [`risk`]: pre-trade risk limits, the ordered `check`, and the account trading state.

pub mod changes;
pub mod fixed;
pub mod instrument;
pub mod matching;
pub mod ninjatrader;
pub mod oms;
pub mod order;
pub mod position;
pub mod risk;
pub mod signal;

//! The trading core: exact numbers, instruments, orders and their state machine, pre-trade risk,
//! paper matching, positions and P&L. Pure: no I/O, no clock, no async.
//!
//! # Layout
//! - [`fixed`]: `Fixed` (8-decimal exact numbers) and the `Price`, `Qty`, `Money` newtypes.
//! - [`instrument`]: symbols, tick and quantity grids, point values; the built-in set.
//! - [`order`]: sides, types, TIF, the validated `NewOrder`, and the `OrderStatus` state machine.

pub mod fixed;
pub mod instrument;
pub mod order;

//! Positions and P&L: what a stream of fills leaves open, what it realized, and an account's cash.
//!
//! Pure arithmetic on exact numbers; no I/O, no clock. The engine feeds fills in journal order,
//! so replaying the journal rebuilds every position exactly.
//!
//! # Exactness
//! A position keeps its **cost basis** — the money paid for the open quantity, `Σ price × qty ×
//! multiplier` over the open lots, signed like the quantity (a short's is negative: money
//! received) — rather than a rounded average price. Unrealized P&L is `notional at last − cost
//! basis`, so for every sequence of fills
//!
//! ```text
//! Σ realized + unrealized(last) = Σ sell notional − Σ buy notional + qty × last × multiplier
//! ```
//!
//! holds exactly (each notional being [`notional`]'s once-rounded product). The only division is
//! when part of a position is closed: the closed share of the cost basis is
//! `cost × closed ÷ open`, rounded half to even at the eighth decimal. That rounding moves at most
//! 10⁻⁸ between realized and unrealized and never creates or loses money; closing the whole
//! position releases the cost basis exactly. [`Position::avg_price`] is derived from the cost
//! basis for display (`cost ÷ (qty × multiplier)`, rounded half to even at eight decimals) and is
//! exact whenever the true average has at most eight decimals.

use crate::trading::fixed::{notional, Fixed, Money, Price, Qty, SCALE};
use crate::trading::order::Side;

/// One execution against a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    pub side: Side,
    /// Positive.
    pub qty: Qty,
    pub price: Price,
    pub commission: Money,
}

/// Arithmetic left the range of the fixed-point types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("arithmetic overflow")]
pub struct Overflow;

/// The open quantity of one symbol in one account and its P&L.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// Signed: + long, − short.
    pub qty: Qty,
    /// Average price of the open quantity, derived from `cost_basis` (see the module docs);
    /// zero when flat.
    pub avg_price: Price,
    /// Realized P&L, gross of commission.
    pub realized_pnl: Money,
    /// Commissions paid, positive.
    pub commissions: Money,
    /// Money paid for the open quantity (`Σ price × qty × multiplier` of the open lots), signed
    /// like `qty`; zero when flat. The exact basis of unrealized P&L.
    pub cost_basis: Money,
}

impl Position {
    pub fn flat() -> Position {
        Position::default()
    }

    pub fn is_flat(&self) -> bool {
        self.qty.is_zero()
    }

    /// Apply a fill and return the P&L it realized (gross of commission).
    ///
    /// Adding to the same side (or opening) adds the fill's notional to the cost basis;
    /// reducing realizes `exit notional − closed share of the cost basis` (for a long; mirrored
    /// for a short); crossing through zero closes the old side and opens the remainder at the
    /// fill price. All arithmetic is checked: on overflow the position is left unchanged.
    pub fn apply(&mut self, fill: &Fill, multiplier: Fixed) -> Result<Money, Overflow> {
        let open = self.qty.0.raw();
        let delta = match fill.side {
            Side::Buy => fill.qty.0.raw(),
            Side::Sell => fill.qty.0.raw().checked_neg().ok_or(Overflow)?,
        };
        let reducing = (open > 0 && delta < 0) || (open < 0 && delta > 0);
        let open_abs = open.unsigned_abs();
        let delta_abs = delta.unsigned_abs();

        // The part of the fill that closes existing quantity, signed like the fill, and the
        // share of the cost basis it releases.
        let (closed, released) = if !reducing {
            (0, Money::ZERO)
        } else if delta_abs >= open_abs {
            (open.checked_neg().ok_or(Overflow)?, self.cost_basis)
        } else {
            let share = mul_div(self.cost_basis.0.raw(), delta_abs, open_abs).ok_or(Overflow)?;
            (delta, Money::from_raw(share))
        };

        let m = |q: i64| notional(fill.price, Qty::from_raw(q), multiplier).ok_or(Overflow);
        let fill_notional = m(delta)?;
        let closed_notional = m(closed)?;
        let opened_notional = fill_notional.checked_sub(closed_notional).ok_or(Overflow)?;

        // Closing a long sells (receives |closed notional|); closing a short buys (pays it).
        let realized = Money::ZERO
            .checked_sub(closed_notional)
            .and_then(|r| r.checked_sub(released))
            .ok_or(Overflow)?;
        let cost_basis = self
            .cost_basis
            .checked_sub(released)
            .and_then(|c| c.checked_add(opened_notional))
            .ok_or(Overflow)?;
        let qty = self.qty.checked_add(Qty::from_raw(delta)).ok_or(Overflow)?;
        let realized_pnl = self.realized_pnl.checked_add(realized).ok_or(Overflow)?;
        let commissions = self
            .commissions
            .checked_add(fill.commission)
            .ok_or(Overflow)?;
        let avg_price = average(cost_basis, qty, multiplier).ok_or(Overflow)?;

        *self = Position {
            qty,
            avg_price,
            realized_pnl,
            commissions,
            cost_basis,
        };
        Ok(realized)
    }

    /// Hold `qty` at `avg_price` (an adjustment to what a venue holds): the cost basis follows;
    /// realized P&L and commissions stay. On overflow the position is left unchanged.
    pub fn set_open(&mut self, qty: Qty, avg_price: Price, multiplier: Fixed) {
        let Some(cost_basis) = notional(avg_price, qty, multiplier) else {
            return;
        };
        let Some(avg) = average(cost_basis, qty, multiplier) else {
            return;
        };
        self.qty = qty;
        self.cost_basis = cost_basis;
        self.avg_price = avg;
    }

    /// `(last − avg) × qty × multiplier`, computed exactly as `qty × last × multiplier − cost
    /// basis`; zero when flat. Saturates at the limits of `Money`.
    pub fn unrealized(&self, last: Price, multiplier: Fixed) -> Money {
        let sign = last.0.signum() * self.qty.0.signum() * multiplier.signum();
        notional(last, self.qty, multiplier)
            .and_then(|n| n.checked_sub(self.cost_basis))
            .unwrap_or_else(|| saturated(sign))
    }

    /// `|qty| × last × multiplier`. Saturates at the limits of `Money`.
    pub fn notional(&self, last: Price, multiplier: Fixed) -> Money {
        let sign = last.0.signum() * multiplier.signum();
        notional(last, self.qty.abs(), multiplier).unwrap_or_else(|| saturated(sign))
    }
}

/// Cash and equity of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub currency: String,
    pub starting_cash: Money,
    /// `starting_cash + Σ realized − Σ commissions`.
    pub cash: Money,
}

impl Account {
    /// An account in USD holding `starting_cash` (set `currency` afterwards for another one).
    pub fn new(name: impl Into<String>, starting_cash: Money) -> Account {
        Account {
            name: name.into(),
            currency: "USD".into(),
            starting_cash,
            cash: starting_cash,
        }
    }

    /// Book a fill's realized P&L and commission. Saturates at the limits of `Money`.
    pub fn on_fill(&mut self, realized: Money, commission: Money) {
        self.cash = self
            .cash
            .saturating_add(realized)
            .saturating_sub(commission);
    }

    /// Cash plus the unrealized P&L of every open position. Saturates at the limits of `Money`.
    pub fn equity(&self, unrealized_total: Money) -> Money {
        self.cash.saturating_add(unrealized_total)
    }
}

/// `cost ÷ (qty × multiplier)` as a price; zero when flat or without a multiplier.
fn average(cost: Money, qty: Qty, multiplier: Fixed) -> Option<Price> {
    let denominator = i128::from(qty.0.raw()) * i128::from(multiplier.raw());
    if denominator == 0 {
        return Some(Price::ZERO);
    }
    let scale = i128::from(SCALE);
    let numerator = i128::from(cost.0.raw()) * scale * scale;
    i64::try_from(div_round_half_even(numerator, denominator))
        .ok()
        .map(Price::from_raw)
}

/// `a × b ÷ d` with one rounding, half to even; `None` when `d` is zero or on overflow.
fn mul_div(a: i64, b: u64, d: u64) -> Option<i64> {
    if d == 0 {
        return None;
    }
    let n = i128::from(a) * i128::from(b);
    i64::try_from(div_round_half_even(n, i128::from(d))).ok()
}

/// `n ÷ d` rounded half to even; `d` is not zero.
fn div_round_half_even(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    let twice = r.unsigned_abs() * 2;
    let away = match twice.cmp(&d.unsigned_abs()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => q % 2 != 0,
    };
    match (away, (n < 0) != (d < 0)) {
        (false, _) => q,
        (true, true) => q - 1,
        (true, false) => q + 1,
    }
}

fn saturated(sign: i64) -> Money {
    Money::from_raw(if sign < 0 { i64::MIN } else { i64::MAX })
}

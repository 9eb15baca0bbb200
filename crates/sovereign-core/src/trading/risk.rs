//! Pre-trade risk: per-account limits, the one `check` every new order passes before it reaches a
//! gateway, and the account's trading state (`active | reducing | halted`) as a pure decision.
//!
//! Pure and allocation-free on the passing path: no I/O, no clock reads (the caller passes `now`
//! in [`RiskContext`]), no async, no binary floating point. The OMS computes the plain numbers of
//! the context (position, working quantities, gross exposure, day P&L); this module only decides.
//! A denial carries a stable [`RiskCode`] (machine-readable, snake_case) and a message; the
//! message is built only when an order is denied.
//!
//! # Rule order ([`check`]; the first failing rule wins)
//! 1. **State**: `halted` → `trading_halted`. `reducing` → `reducing_only` unless the order only
//!    reduces the absolute position, counting same-side working orders as filled first
//!    (a sell must fit in `position − open_sell_qty`, a buy in `|position + open_buy_qty|`).
//! 2. **Allowed symbols** → `symbol_not_allowed`.
//! 3. **Trading hours** (local time in the window's time zone, see [`TradingHours`]) →
//!    `outside_trading_hours`.
//! 4. **Order quantity**: `qty > max_order_qty` → `max_order_qty`.
//! 5. **Price band and market price**: every limit and stop price of the order must satisfy
//!    `|price − last| ≤ |last| × pct / 100` (compared exactly in integers; the edge passes) →
//!    `price_band`; with the band on, a priced order and no last price → `no_market_price`. An
//!    order without a limit price (market, stop) is valued at the last price, so with a notional
//!    rule on (`max_order_notional` or `max_gross_exposure`) and no last price → `no_market_price`.
//! 6. **Order notional**: `|price × qty × multiplier| > max_order_notional`, price = limit price,
//!    else last price → `max_order_notional` (an overflowing product is over any limit).
//! 7. **Open orders**: `open_orders ≥ max_open_orders` (this order would be one too many) →
//!    `max_open_orders`.
//! 8. **Order rate**: `n` orders already submitted inside the sliding window `(now − window, now]`
//!    (an order exactly `window` old has left it) → `max_order_rate`. `recent_order_times` must be
//!    oldest first; the check looks at one element.
//! 9. **Position, worst case**: `position + qty + open_buy_qty` for a buy, `position − qty −
//!    open_sell_qty` for a sell; `|worst| > max_position` → `max_position`, unless `|worst| ≤
//!    |position|` (an order that cannot grow the position is never refused by this rule, so an
//!    account over a lowered limit can still get out).
//! 10. **Gross exposure after the order**: `gross_exposure + (|position ± qty| − |position|) ×
//!     price × multiplier` (the existing book at the caller's marks, the change at the order's
//!     price, as in rule 6) `> max_gross_exposure` → `max_gross_exposure`. Only orders that grow
//!     the symbol's absolute position are checked.
//! 11. **Daily loss**: `day_pnl ≤ −|daily_loss_limit|` → `daily_loss_limit` (the OMS also feeds
//!     [`StateCommand::LossBreached`] to [`apply_state`] so the account halts).
//!
//! # Trading state
//! [`apply_state`] is one exhaustive `(state, command)` match: `Hardstop` halts, `Reduce` allows
//! only reducing orders, `Resume` re-activates, `LossBreached` halts. Operator commands need a
//! non-empty reason (it goes to the audit trail). A command that changes nothing returns `None`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use crate::error::Invalid;
use crate::trading::fixed::{notional, Fixed, Money, Price, Qty, SCALE};
use crate::trading::instrument::{Instrument, Symbol};
use crate::trading::order::{NewOrder, Side};

/// Per-account limits; every limit optional (`None` = rule off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest quantity of one order.
    pub max_order_qty: Option<Qty>,
    /// Largest `|price × qty × multiplier|` of one order.
    pub max_order_notional: Option<Money>,
    /// Largest absolute position per symbol once this order and same-side working orders fill.
    pub max_position: Option<Qty>,
    /// Largest sum over symbols of `|position| × last × multiplier`, after the order.
    pub max_gross_exposure: Option<Money>,
    /// Most working orders in the account.
    pub max_open_orders: Option<u32>,
    /// At most `n` orders per sliding `window`.
    pub max_orders_per_window: Option<(u32, Duration)>,
    /// Limit and stop prices within ± this percentage of the last price (`5` = ±5%).
    pub price_band_pct: Option<Fixed>,
    /// Symbols this account may trade; `None` = all.
    pub allowed_symbols: Option<Vec<Symbol>>,
    /// When this account may submit orders.
    pub trading_hours: Option<TradingHours>,
    /// A positive amount; realized + unrealized P&L today at or below its negative halts trading.
    pub daily_loss_limit: Option<Money>,
}

/// A daily local-time window in a time zone, on some weekdays.
///
/// `start` is inclusive and `end` exclusive. With `start < end` the window lies inside one local
/// date, open when that date's weekday is on. With `end < start` the window runs overnight
/// (CME Globex: 17:00 → 16:00 America/Chicago) and belongs to the trading day on which it *ends*:
/// from `start` to midnight counts as the next date's session, from midnight to `end` as the
/// current date's. So CME with Monday–Friday is open from Sunday 17:00 to Friday 16:00, closed
/// 16:00–17:00 each day. `start == end` means the whole local day on the listed weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradingHours {
    pub tz: Tz,
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// Indexed by `Weekday::num_days_from_monday()`.
    pub weekdays: [bool; 7],
}

impl TradingHours {
    /// Parse a window: an IANA time zone, `HH:MM` (or `HH:MM:SS`) times and at least one weekday.
    pub fn parse(
        tz: &str,
        start: &str,
        end: &str,
        weekdays: &[Weekday],
    ) -> Result<TradingHours, Invalid> {
        let tz_parsed = tz.trim().parse::<Tz>().map_err(|_| {
            Invalid::new(
                "invalid_time_zone",
                "trading_hours.tz",
                format!("unknown time zone `{tz}`; use an IANA name such as America/Chicago"),
            )
        })?;
        let start = parse_time("trading_hours.start", start)?;
        let end = parse_time("trading_hours.end", end)?;
        if weekdays.is_empty() {
            return Err(Invalid::new(
                "invalid_weekdays",
                "trading_hours.weekdays",
                "trading hours need at least one weekday",
            ));
        }
        let mut days = [false; 7];
        for d in weekdays {
            days[d.num_days_from_monday() as usize] = true;
        }
        Ok(TradingHours {
            tz: tz_parsed,
            start,
            end,
            weekdays: days,
        })
    }

    /// Whether `now` falls inside the window (see the type's documentation for overnight rules).
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz).naive_local();
        let time = local.time();
        let weekday = local.date().weekday();
        let on = |d: Weekday| self.weekdays[d.num_days_from_monday() as usize];
        if self.start < self.end {
            self.start <= time && time < self.end && on(weekday)
        } else if self.start == self.end {
            on(weekday)
        } else if time >= self.start {
            on(weekday.succ())
        } else if time < self.end {
            on(weekday)
        } else {
            false
        }
    }
}

fn parse_time(field: &str, text: &str) -> Result<NaiveTime, Invalid> {
    let t = text.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| {
            Invalid::new(
                "invalid_time",
                field,
                format!("`{text}` is not a time of day such as 09:30"),
            )
        })
}

/// Whether an account may trade: everything, only reducing orders, or nothing but cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TradingState {
    Active,
    Reducing,
    Halted,
}

impl TradingState {
    pub const ALL: [TradingState; 3] = [
        TradingState::Active,
        TradingState::Reducing,
        TradingState::Halted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::Reducing => "reducing",
            TradingState::Halted => "halted",
        }
    }

    /// The exact `as_str` form back, or `None`.
    pub fn parse(text: &str) -> Option<TradingState> {
        TradingState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for TradingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable machine-readable reasons a pre-trade check refuses an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskCode {
    MaxOrderQty,
    MaxOrderNotional,
    MaxPosition,
    MaxGrossExposure,
    MaxOpenOrders,
    MaxOrderRate,
    PriceBand,
    SymbolNotAllowed,
    OutsideTradingHours,
    DailyLossLimit,
    TradingHalted,
    ReducingOnly,
    NoMarketPrice,
    /// The account's venue reports its connection down: nothing new can reach it.
    VenueDisconnected,
}

impl RiskCode {
    pub const ALL: [RiskCode; 14] = [
        RiskCode::MaxOrderQty,
        RiskCode::MaxOrderNotional,
        RiskCode::MaxPosition,
        RiskCode::MaxGrossExposure,
        RiskCode::MaxOpenOrders,
        RiskCode::MaxOrderRate,
        RiskCode::PriceBand,
        RiskCode::SymbolNotAllowed,
        RiskCode::OutsideTradingHours,
        RiskCode::DailyLossLimit,
        RiskCode::TradingHalted,
        RiskCode::ReducingOnly,
        RiskCode::NoMarketPrice,
        RiskCode::VenueDisconnected,
    ];

    /// The snake_case code clients match on.
    pub fn code(self) -> &'static str {
        match self {
            RiskCode::MaxOrderQty => "max_order_qty",
            RiskCode::MaxOrderNotional => "max_order_notional",
            RiskCode::MaxPosition => "max_position",
            RiskCode::MaxGrossExposure => "max_gross_exposure",
            RiskCode::MaxOpenOrders => "max_open_orders",
            RiskCode::MaxOrderRate => "max_order_rate",
            RiskCode::PriceBand => "price_band",
            RiskCode::SymbolNotAllowed => "symbol_not_allowed",
            RiskCode::OutsideTradingHours => "outside_trading_hours",
            RiskCode::DailyLossLimit => "daily_loss_limit",
            RiskCode::TradingHalted => "trading_halted",
            RiskCode::ReducingOnly => "reducing_only",
            RiskCode::NoMarketPrice => "no_market_price",
            RiskCode::VenueDisconnected => "venue_disconnected",
        }
    }

    /// The exact `code()` form back, or `None`.
    pub fn parse(text: &str) -> Option<RiskCode> {
        RiskCode::ALL.into_iter().find(|c| c.code() == text)
    }
}

impl fmt::Display for RiskCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why an order was refused: the stable code and one sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskDenial {
    pub code: RiskCode,
    pub message: String,
}

impl fmt::Display for RiskDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RiskDenial {}

/// What the OMS knows about the account and symbol when an order arrives. Plain numbers, computed
/// by the caller.
#[derive(Debug, Clone, Copy)]
pub struct RiskContext<'a> {
    pub now: DateTime<Utc>,
    pub state: TradingState,
    pub instrument: &'a Instrument,
    /// Latest trade or mark for the symbol.
    pub last_price: Option<Price>,
    /// Signed current position in the symbol.
    pub position: Qty,
    /// Leaves quantity of working buy orders in the symbol.
    pub open_buy_qty: Qty,
    /// Leaves quantity of working sell orders in the symbol.
    pub open_sell_qty: Qty,
    /// Current gross exposure of the account over all symbols.
    pub gross_exposure: Money,
    /// Working orders in the account.
    pub open_orders: u32,
    /// Submit times of this account's recent orders, oldest first (the caller trims old ones).
    pub recent_order_times: &'a [DateTime<Utc>],
    /// Realized + unrealized P&L since the trading day began.
    pub day_pnl: Money,
}

#[cold]
#[inline(never)]
fn deny(code: RiskCode, message: String) -> RiskDenial {
    RiskDenial { code, message }
}

/// The pre-trade check: `Ok(())` or the first failing rule, in the order given in the module
/// documentation.
pub fn check(
    order: &NewOrder,
    limits: &RiskLimits,
    ctx: &RiskContext<'_>,
) -> Result<(), RiskDenial> {
    // 1. Trading state.
    match ctx.state {
        TradingState::Active => {}
        TradingState::Halted => {
            return Err(deny(
                RiskCode::TradingHalted,
                "trading is halted for this account; only cancels are accepted".into(),
            ))
        }
        TradingState::Reducing => {
            let before = match order.side {
                Side::Buy => ctx.position.saturating_add(ctx.open_buy_qty),
                Side::Sell => ctx.position.saturating_sub(ctx.open_sell_qty),
            };
            if !reduces_only(order, before) {
                return Err(deny(
                    RiskCode::ReducingOnly,
                    format!(
                        "the account is reducing only: {} {} does not reduce the position of {} \
                         (after {} working on the same side)",
                        order.side.as_str(),
                        order.qty,
                        ctx.position,
                        same_side_working(order.side, ctx),
                    ),
                ));
            }
        }
    }

    // 2. Allowed symbols.
    if let Some(allowed) = &limits.allowed_symbols {
        if !allowed.contains(&order.symbol) {
            return Err(deny(
                RiskCode::SymbolNotAllowed,
                format!(
                    "{} is not among this account's allowed symbols",
                    order.symbol
                ),
            ));
        }
    }

    // 3. Trading hours.
    if let Some(hours) = &limits.trading_hours {
        if !hours.contains(ctx.now) {
            return Err(deny(
                RiskCode::OutsideTradingHours,
                format!(
                    "{} is outside trading hours {}–{} {}",
                    ctx.now.with_timezone(&hours.tz).format("%a %H:%M:%S"),
                    hours.start.format("%H:%M"),
                    hours.end.format("%H:%M"),
                    hours.tz.name(),
                ),
            ));
        }
    }

    // 4. Order quantity.
    if let Some(max) = limits.max_order_qty {
        if order.qty > max {
            return Err(deny(
                RiskCode::MaxOrderQty,
                format!("order quantity {} exceeds the limit of {max}", order.qty),
            ));
        }
    }

    // 5. Price band, and a price to value the order at.
    if let Some(pct) = limits.price_band_pct {
        for (label, price) in [("limit", order.limit_price), ("stop", order.stop_price)] {
            let Some(price) = price else { continue };
            let Some(last) = ctx.last_price else {
                return Err(no_market_price(order, "check the price band"));
            };
            if !within_band(price, last, pct) {
                return Err(deny(
                    RiskCode::PriceBand,
                    format!(
                        "{label} price {price} is more than {pct}% away from the last price {last}"
                    ),
                ));
            }
        }
    }
    let price = order.limit_price.or(ctx.last_price);
    let notional_rule = limits.max_order_notional.is_some() || limits.max_gross_exposure.is_some();
    if notional_rule && price.is_none() {
        return Err(no_market_price(order, "value the order"));
    }
    let multiplier = ctx.instrument.multiplier;

    // 6. Order notional.
    if let Some(max) = limits.max_order_notional {
        let value = price.and_then(|p| notional(p, order.qty, multiplier));
        if value.is_none_or(|v| v.abs() > max) {
            return Err(deny(
                RiskCode::MaxOrderNotional,
                format!(
                    "order notional {} exceeds the limit of {max}",
                    show_money(value.map(Money::abs))
                ),
            ));
        }
    }

    // 7. Open orders.
    if let Some(max) = limits.max_open_orders {
        if ctx.open_orders >= max {
            return Err(deny(
                RiskCode::MaxOpenOrders,
                format!(
                    "{} orders are already working; the limit is {max}",
                    ctx.open_orders
                ),
            ));
        }
    }

    // 8. Order rate.
    if let Some((max, window)) = limits.max_orders_per_window {
        if rate_exceeded(ctx.recent_order_times, ctx.now, max, window) {
            return Err(deny(
                RiskCode::MaxOrderRate,
                format!(
                    "{} orders in the last {}; the limit is {max}",
                    orders_in_window(ctx.recent_order_times, ctx.now, window),
                    humantime::format_duration(window),
                ),
            ));
        }
    }

    let signed = match order.side {
        Side::Buy => order.qty,
        Side::Sell => Qty::ZERO.saturating_sub(order.qty),
    };

    // 9. Position, worst case.
    if let Some(max) = limits.max_position {
        let worst = ctx
            .position
            .saturating_add(signed)
            .saturating_add(match order.side {
                Side::Buy => ctx.open_buy_qty,
                Side::Sell => Qty::ZERO.saturating_sub(ctx.open_sell_qty),
            })
            .abs();
        if worst > max && worst > ctx.position.abs() {
            return Err(deny(
                RiskCode::MaxPosition,
                format!(
                    "position could reach {worst} (now {}, {} working on the same side, this order \
                     {} {}); the limit is {max}",
                    ctx.position,
                    same_side_working(order.side, ctx),
                    order.side.as_str(),
                    order.qty,
                ),
            ));
        }
    }

    // 10. Gross exposure after the order.
    if let Some(max) = limits.max_gross_exposure {
        let before = ctx.position.abs();
        let growth = ctx
            .position
            .saturating_add(signed)
            .abs()
            .saturating_sub(before);
        if growth.is_positive() {
            let after = price
                .and_then(|p| notional(p, growth, multiplier))
                .and_then(|added| ctx.gross_exposure.checked_add(added.abs()));
            if after.is_none_or(|a| a > max) {
                return Err(deny(
                    RiskCode::MaxGrossExposure,
                    format!(
                        "gross exposure would reach {} (now {}); the limit is {max}",
                        show_money(after),
                        ctx.gross_exposure
                    ),
                ));
            }
        }
    }

    // 11. Daily loss.
    if let Some(limit) = limits.daily_loss_limit {
        if ctx.day_pnl <= Money::ZERO.saturating_sub(limit.abs()) {
            return Err(deny(
                RiskCode::DailyLossLimit,
                format!(
                    "today's P&L {} has reached the daily loss limit of {}",
                    ctx.day_pnl,
                    limit.abs()
                ),
            ));
        }
    }

    Ok(())
}

/// Whether an order only reduces the absolute position: its side is opposite to the position and
/// its quantity is at most `|position|`. A flat position is never reduced.
pub fn reduces_only(order: &NewOrder, position: Qty) -> bool {
    let opposite = match order.side {
        Side::Buy => position.is_negative(),
        Side::Sell => position.is_positive(),
    };
    opposite && order.qty <= position.abs()
}

/// `|price − last| × 100 ≤ |last| × pct`, exactly (i128 on the raw 10⁻⁸ units; cannot overflow).
fn within_band(price: Price, last: Price, pct: Fixed) -> bool {
    let diff = (price.0.raw() as i128 - last.0.raw() as i128).abs();
    let lhs = diff * 100 * SCALE as i128;
    let rhs = (last.0.raw() as i128).abs() * pct.raw() as i128;
    lhs <= rhs
}

/// Whether `max` orders are already inside `(now − window, now]`. Sorted input: the `max`-th
/// newest decides.
fn rate_exceeded(times: &[DateTime<Utc>], now: DateTime<Utc>, max: u32, window: Duration) -> bool {
    let max = max as usize;
    if max == 0 {
        return true;
    }
    if times.len() < max {
        return false;
    }
    match window_start(now, window) {
        Some(cutoff) => times[times.len() - max] > cutoff,
        None => true,
    }
}

fn orders_in_window(times: &[DateTime<Utc>], now: DateTime<Utc>, window: Duration) -> usize {
    match window_start(now, window) {
        Some(cutoff) => times.len() - times.partition_point(|t| *t <= cutoff),
        None => times.len(),
    }
}

/// `now − window`; `None` when the window reaches before the representable past (all count).
fn window_start(now: DateTime<Utc>, window: Duration) -> Option<DateTime<Utc>> {
    TimeDelta::from_std(window)
        .ok()
        .and_then(|w| now.checked_sub_signed(w))
}

fn same_side_working(side: Side, ctx: &RiskContext<'_>) -> Qty {
    match side {
        Side::Buy => ctx.open_buy_qty,
        Side::Sell => ctx.open_sell_qty,
    }
}

fn show_money(value: Option<Money>) -> String {
    value.map_or_else(|| "more than can be represented".into(), |v| v.to_string())
}

fn no_market_price(order: &NewOrder, purpose: &str) -> RiskDenial {
    deny(
        RiskCode::NoMarketPrice,
        format!(
            "no last price for {} to {purpose} of this {} order",
            order.symbol,
            order.order_type.as_str()
        ),
    )
}

/// A request to change an account's trading state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateCommand {
    /// Operator HARDSTOP: halt; only cancels pass.
    Hardstop { reason: String },
    /// Operator: only orders that reduce positions pass.
    Reduce { reason: String },
    /// Operator: back to active.
    Resume { reason: String },
    /// The daily loss limit was reached at this P&L: halt.
    LossBreached { day_pnl: Money },
}

/// A trading-state change to record in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub from: TradingState,
    pub to: TradingState,
    pub reason: String,
}

/// Decide a trading-state change. `None` when nothing changes (e.g. `LossBreached` while already
/// halted, `Resume` while active). Operator commands (`Hardstop`, `Reduce`, `Resume`) need a
/// non-empty reason, checked before anything else: `Invalid { code: "missing_reason", field:
/// "reason" }`. `Reduce` from `halted` loosens the halt to reducing-only.
pub fn apply_state(
    state: TradingState,
    cmd: &StateCommand,
) -> Result<Option<StateChange>, Invalid> {
    use StateCommand as C;
    use TradingState as S;
    let (to, reason) = match cmd {
        C::Hardstop { reason } => (S::Halted, operator_reason(reason)?),
        C::Reduce { reason } => (S::Reducing, operator_reason(reason)?),
        C::Resume { reason } => (S::Active, operator_reason(reason)?),
        C::LossBreached { day_pnl } => (
            S::Halted,
            format!("daily loss limit reached: today's P&L is {day_pnl}"),
        ),
    };
    Ok((state != to).then_some(StateChange {
        from: state,
        to,
        reason,
    }))
}

fn operator_reason(reason: &str) -> Result<String, Invalid> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(Invalid::new(
            "missing_reason",
            "reason",
            "a reason is required; it is recorded in the audit trail",
        ));
    }
    Ok(r.to_string())
}

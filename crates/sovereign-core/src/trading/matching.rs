//! The paper broker's decisions: given a working order, its instrument and the latest quote, what
//! happens to the order now — trigger, fill, cancel, or nothing.
//!
//! [`decide`] is a pure function on plain data: it does not change the order, read a clock or
//! allocate. The engine applies the [`Decision`] through [`Order::apply`] (trigger, then fill, then
//! cancel) and journals each step. Day-order expiry needs a clock and is not decided here.
//!
//! # Rules
//! - **Prices.** A buy looks at the ask, a sell at the bid (its *touch*); when that side is
//!   missing it falls back to the last trade. The other side of the book is never used.
//! - **Market** fills at the touch, or at last ± `slippage_ticks` × tick (worse for the trader:
//!   up for a buy, down for a sell, never below one tick when last is positive).
//! - **Limit** is marketable when the touch is at or through the limit (buy: ask ≤ limit), or,
//!   without a touch, when last is at or through it; it fills at the better price for the trader
//!   (buy: min(limit, price), sell: max). A touch that does not cross wins over a last that does.
//! - **Stop / stop-limit** trigger when last or the touch reaches the stop (buy: ≥ stop, sell:
//!   ≤ stop) and then behave as market / limit; the triggering decision fills too when the order
//!   is then marketable.
//! - **Liquidity is unlimited**: a marketable order fills its whole leaves quantity at once.
//! - **IOC and FOK never rest**: every decision on one fills it or cancels it — `no_market_data`
//!   when there is no price to judge by, otherwise `ioc_unfilled` / `fok_unfillable` (including a
//!   stop that has not triggered). Day and GTC orders that cannot fill wait.
//! - **Commission** is `commission_per_unit × fill qty`, exact for whole quantities (fractional
//!   products round half to even at the eighth decimal, like all money products).

use crate::trading::fixed::{Fixed, Money, Price, Qty};
use crate::trading::instrument::Instrument;
use crate::trading::order::{Order, OrderType, Side, Tif};

/// Market data for one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quote {
    pub last: Option<Price>,
    pub bid: Option<Price>,
    pub ask: Option<Price>,
}

impl Quote {
    /// The price a `side` order trades against: the ask for a buy, the bid for a sell.
    pub fn touch(&self, side: Side) -> Option<Price> {
        match side {
            Side::Buy => self.ask,
            Side::Sell => self.bid,
        }
    }
}

/// How the paper broker fills.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaperConfig {
    /// Ticks of slippage for market orders filled from the last price (no bid/ask).
    pub slippage_ticks: u32,
    /// Commission per contract/share/coin, multiplied by the fill quantity.
    pub commission_per_unit: Money,
}

/// What the broker does with an order now. Order of application: trigger (if any), then fill (if
/// any), then cancel (if any). `Decision::default()` means "nothing yet, keep working".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The stop price was reached: apply [`OrderUpdate::Triggered`](crate::trading::order::OrderUpdate::Triggered).
    pub trigger: bool,
    pub fill: Option<FillDecision>,
    pub cancel: Option<CancelReason>,
}

impl Decision {
    /// Nothing happens: the order keeps working.
    pub fn is_wait(&self) -> bool {
        !self.trigger && self.fill.is_none() && self.cancel.is_none()
    }
}

/// One fill the broker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillDecision {
    pub qty: Qty,
    pub price: Price,
    pub commission: Money,
}

/// Why the broker cancels an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// An IOC order could not fill now.
    IocUnfilled,
    /// A FOK order could not fill in full now.
    FokUnfillable,
    /// An IOC/FOK order arrived with no price to judge it by.
    NoMarketData,
}

impl CancelReason {
    /// Stable snake_case code, as journaled and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::IocUnfilled => "ioc_unfilled",
            CancelReason::FokUnfillable => "fok_unfillable",
            CancelReason::NoMarketData => "no_market_data",
        }
    }
}

/// How a live (untriggered stops excluded) order prices itself.
#[derive(Clone, Copy)]
enum Live {
    Market,
    /// `None` only if validation was bypassed; such an order never fills.
    Limit(Option<Price>),
}

/// A venue that works orders. The OMS asks it about each working order whenever the order is
/// accepted, changed, or its market moves, and turns the answer into events. Decisions only:
/// a venue that answers asynchronously (a broker bridge, NinjaTrader's order files) returns
/// [`Decision::default`] here and reports its executions to the OMS later.
pub trait Gateway: std::fmt::Debug + Send {
    /// Short name for reports (`paper`, …).
    fn name(&self) -> &'static str;
    /// What the venue does with `order` now, given the latest `quote`.
    fn work(&self, order: &Order, instrument: &Instrument, quote: &Quote) -> Decision;
    /// Whether the venue answers later, through [`Oms::report`](crate::trading::oms::Oms::report):
    /// its orders stay `submitted` after risk until the venue says what became of them.
    fn asynchronous(&self) -> bool {
        false
    }
}

/// A venue that answers later (NinjaTrader, a broker bridge): it decides nothing here; the
/// engine sends it the OMS's instructions and brings its reports back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answering(pub &'static str);

impl Gateway for Answering {
    fn name(&self) -> &'static str {
        self.0
    }

    fn work(&self, _: &Order, _: &Instrument, _: &Quote) -> Decision {
        Decision::default()
    }

    fn asynchronous(&self) -> bool {
        true
    }
}

/// The paper broker: fills against the latest market data by the rules of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaperGateway(pub PaperConfig);

impl Gateway for PaperGateway {
    fn name(&self) -> &'static str {
        "paper"
    }

    fn work(&self, order: &Order, instrument: &Instrument, quote: &Quote) -> Decision {
        decide(order, instrument, quote, &self.0)
    }
}

/// Decide for a working order given the latest quote. See the module docs for the rules.
///
/// Orders that are not open (filled, canceled, …) or have nothing left to fill get
/// `Decision::default()`.
pub fn decide(
    order: &Order,
    instrument: &Instrument,
    quote: &Quote,
    config: &PaperConfig,
) -> Decision {
    let qty = order.leaves_qty();
    if !order.status.is_open() || !qty.is_positive() {
        return Decision::default();
    }
    let req = &order.request;
    let side = req.side;
    let has_data = quote.last.is_some() || quote.touch(side).is_some();
    let mut decision = Decision::default();

    let live = match req.order_type {
        OrderType::Market => Some(Live::Market),
        OrderType::Limit => Some(Live::Limit(req.limit_price)),
        OrderType::Stop | OrderType::StopLimit => {
            let as_live = if req.order_type == OrderType::Stop {
                Live::Market
            } else {
                Live::Limit(req.limit_price)
            };
            if order.triggered {
                Some(as_live)
            } else if req
                .stop_price
                .is_some_and(|stop| stop_reached(side, stop, quote))
            {
                decision.trigger = true;
                Some(as_live)
            } else {
                None
            }
        }
    };

    let price = match live {
        Some(Live::Market) => market_price(side, instrument, quote, config),
        Some(Live::Limit(Some(limit))) => limit_fill_price(side, limit, quote),
        Some(Live::Limit(None)) | None => None,
    };

    match price {
        Some(price) => {
            decision.fill = Some(FillDecision {
                qty,
                price,
                commission: commission(config.commission_per_unit, qty),
            });
        }
        None => {
            decision.cancel = match (req.tif, has_data) {
                (Tif::Day | Tif::Gtc, _) => None,
                (Tif::Ioc | Tif::Fok, false) => Some(CancelReason::NoMarketData),
                (Tif::Ioc, true) => Some(CancelReason::IocUnfilled),
                (Tif::Fok, true) => Some(CancelReason::FokUnfillable),
            };
        }
    }
    decision
}

/// Buy stops trigger when last or ask reaches the stop from below; sell stops when last or bid
/// reaches it from above.
fn stop_reached(side: Side, stop: Price, quote: &Quote) -> bool {
    let reached = |p: Option<Price>| {
        p.is_some_and(|p| match side {
            Side::Buy => p >= stop,
            Side::Sell => p <= stop,
        })
    };
    reached(quote.last) || reached(quote.touch(side))
}

/// The touch, else last moved `slippage_ticks` against the trader; `None` with neither.
fn market_price(
    side: Side,
    instrument: &Instrument,
    quote: &Quote,
    config: &PaperConfig,
) -> Option<Price> {
    if let Some(touch) = quote.touch(side) {
        return Some(touch);
    }
    let last = quote.last?;
    let tick = instrument.tick_size;
    let slip = Fixed::from_raw(
        tick.0
            .raw()
            .saturating_mul(i64::from(config.slippage_ticks)),
    );
    Some(match side {
        Side::Buy => Price(last.0.saturating_add(slip)),
        Side::Sell => {
            let slipped = Price(last.0.saturating_sub(slip));
            if last.is_positive() {
                slipped.max(tick.min(last))
            } else {
                slipped
            }
        }
    })
}

/// The fill price of a limit order if it is marketable now, judged by the touch or, without
/// one, by the last trade.
fn limit_fill_price(side: Side, limit: Price, quote: &Quote) -> Option<Price> {
    let reference = quote.touch(side).or(quote.last)?;
    match side {
        Side::Buy if reference <= limit => Some(limit.min(reference)),
        Side::Sell if reference >= limit => Some(limit.max(reference)),
        _ => None,
    }
}

/// `per_unit × qty`, saturating at the limits of `Money` (reachable only with absurd inputs).
fn commission(per_unit: Money, qty: Qty) -> Money {
    per_unit.0.checked_mul(qty.0).map_or_else(
        || {
            let negative = per_unit.is_negative() != qty.is_negative();
            Money::from_raw(if negative { i64::MIN } else { i64::MAX })
        },
        Money,
    )
}

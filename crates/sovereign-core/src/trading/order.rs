//! Orders: their vocabulary, the validated new-order request, and the state machine.
//!
//! The state machine is one exhaustive `(status, event)` table in [`OrderStatus::transition`];
//! anything not listed is an error, so an order can never reach a state by an unlisted path.
//! [`Order::apply`] is the only way an order changes after it is created, and every change is an
//! [`OrderEvent`] the engine journals.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::Invalid;
use crate::trading::fixed::{Fixed, Money, Price, Qty};
use crate::trading::instrument::{Instruments, Symbol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    pub fn parse(text: &str) -> Result<Side, Invalid> {
        match text.to_ascii_lowercase().as_str() {
            "buy" | "b" | "long" => Ok(Side::Buy),
            "sell" | "s" | "short" => Ok(Side::Sell),
            _ => Err(Invalid::new(
                "invalid_side",
                "side",
                format!("side must be buy or sell, not {text:?}"),
            )),
        }
    }

    /// +1 for buy, −1 for sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    Market,
    Limit,
    Stop,
    StopLimit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::Stop => "stop",
            OrderType::StopLimit => "stop_limit",
        }
    }

    pub fn parse(text: &str) -> Result<OrderType, Invalid> {
        match text.to_ascii_lowercase().as_str() {
            "market" | "mkt" => Ok(OrderType::Market),
            "limit" | "lmt" => Ok(OrderType::Limit),
            "stop" | "stp" | "stop_market" => Ok(OrderType::Stop),
            "stop_limit" | "stoplimit" | "stp_lmt" => Ok(OrderType::StopLimit),
            _ => Err(Invalid::new(
                "invalid_order_type",
                "type",
                format!("type must be market, limit, stop or stop_limit, not {text:?}"),
            )),
        }
    }

    pub fn needs_limit(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }

    pub fn needs_stop(self) -> bool {
        matches!(self, OrderType::Stop | OrderType::StopLimit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tif {
    Day,
    Gtc,
    Ioc,
    Fok,
}

impl Tif {
    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "day",
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
        }
    }

    pub fn parse(text: &str) -> Result<Tif, Invalid> {
        match text.to_ascii_lowercase().as_str() {
            "day" => Ok(Tif::Day),
            "gtc" => Ok(Tif::Gtc),
            "ioc" => Ok(Tif::Ioc),
            "fok" => Ok(Tif::Fok),
            _ => Err(Invalid::new(
                "invalid_tif",
                "tif",
                format!("tif must be day, gtc, ioc or fok, not {text:?}"),
            )),
        }
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Received, not yet through risk and the venue.
    Submitted,
    /// Working at the venue.
    Accepted,
    PartiallyFilled,
    Filled,
    Canceled,
    /// Refused by the venue.
    Rejected,
    /// Refused by pre-trade risk.
    Denied,
    Expired,
}

/// What happens to an order. Data (fill size, reasons) travels beside it in [`OrderUpdate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    Accept,
    Deny,
    Reject,
    /// A stop price was reached; the order now works as market/limit.
    Trigger,
    /// A fill; `complete` when it brings the filled quantity to the order quantity.
    Fill {
        complete: bool,
    },
    Cancel,
    Expire,
    /// Quantity or price changed.
    Modify,
}

/// An event that the current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {} cannot take {event:?}", from.as_str())]
pub struct InvalidTransition {
    pub from: OrderStatus,
    pub event: OrderEvent,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Submitted,
        OrderStatus::Accepted,
        OrderStatus::PartiallyFilled,
        OrderStatus::Filled,
        OrderStatus::Canceled,
        OrderStatus::Rejected,
        OrderStatus::Denied,
        OrderStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Submitted => "submitted",
            OrderStatus::Accepted => "accepted",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Denied => "denied",
            OrderStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No event can change a terminal order.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Rejected
                | OrderStatus::Denied
                | OrderStatus::Expired
        )
    }

    /// Working: can still fill.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Submitted | OrderStatus::Accepted | OrderStatus::PartiallyFilled
        )
    }

    /// The whole state machine. Every pair not listed is an error.
    pub fn transition(self, event: OrderEvent) -> Result<OrderStatus, InvalidTransition> {
        use OrderEvent as E;
        use OrderStatus as S;
        let next = match (self, event) {
            (S::Submitted, E::Accept) => S::Accepted,
            (S::Submitted, E::Deny) => S::Denied,
            (S::Submitted, E::Reject) => S::Rejected,
            // Venues may fill (or refuse an IOC/FOK) before acknowledging.
            (S::Submitted, E::Fill { complete: true }) => S::Filled,
            (S::Submitted, E::Fill { complete: false }) => S::PartiallyFilled,
            (S::Submitted, E::Cancel) => S::Canceled,
            (S::Submitted, E::Expire) => S::Expired,
            // A venue may refuse an order it first acknowledged (a later check of its own).
            (S::Accepted, E::Reject) => S::Rejected,
            (S::Accepted, E::Trigger) => S::Accepted,
            (S::Accepted, E::Fill { complete: true }) => S::Filled,
            (S::Accepted, E::Fill { complete: false }) => S::PartiallyFilled,
            (S::Accepted, E::Cancel) => S::Canceled,
            (S::Accepted, E::Expire) => S::Expired,
            (S::Accepted, E::Modify) => S::Accepted,
            (S::PartiallyFilled, E::Trigger) => S::PartiallyFilled,
            (S::PartiallyFilled, E::Fill { complete: true }) => S::Filled,
            (S::PartiallyFilled, E::Fill { complete: false }) => S::PartiallyFilled,
            (S::PartiallyFilled, E::Cancel) => S::Canceled,
            (S::PartiallyFilled, E::Expire) => S::Expired,
            (S::PartiallyFilled, E::Modify) => S::PartiallyFilled,
            (from, event) => return Err(InvalidTransition { from, event }),
        };
        Ok(next)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new order as a caller writes it (decimal fields as exact text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSpec {
    pub account: Option<String>,
    pub symbol: String,
    pub side: String,
    pub qty: String,
    pub order_type: Option<String>,
    pub limit_price: Option<String>,
    pub stop_price: Option<String>,
    pub tif: Option<String>,
    pub client_order_id: Option<String>,
}

impl OrderSpec {
    /// Every field's text (absent optional ones as `None`).
    pub fn fields(&self) -> [Option<&str>; 9] {
        [
            self.account.as_deref(),
            Some(&self.symbol),
            Some(&self.side),
            Some(&self.qty),
            self.order_type.as_deref(),
            self.limit_price.as_deref(),
            self.stop_price.as_deref(),
            self.tif.as_deref(),
            self.client_order_id.as_deref(),
        ]
    }
}

/// A validated new order: every field on its grid, prices present exactly where the type needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub account: String,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Qty,
    pub order_type: OrderType,
    pub limit_price: Option<Price>,
    pub stop_price: Option<Price>,
    pub tif: Tif,
    pub client_order_id: Option<String>,
}

fn decimal<T>(field: &str, text: &str, wrap: fn(Fixed) -> T) -> Result<T, Invalid> {
    Fixed::parse(text)
        .map(wrap)
        .map_err(|e| Invalid::new("invalid_number", field, e.to_string()))
}

impl NewOrder {
    pub fn validate(spec: &OrderSpec, instruments: &Instruments) -> Result<NewOrder, Invalid> {
        let account = spec.account.clone().unwrap_or_else(|| "paper".into());
        if account.is_empty() || account.len() > 64 {
            return Err(Invalid::new(
                "invalid_account",
                "account",
                "account must be 1-64 characters",
            ));
        }
        let instrument = instruments.find(&spec.symbol)?;
        let side = Side::parse(&spec.side)?;
        let qty = decimal("qty", &spec.qty, Qty)?;
        instrument.check_qty(qty, "qty")?;
        let order_type = OrderType::parse(spec.order_type.as_deref().unwrap_or("market"))?;
        let price =
            |field: &str, text: &Option<String>, needed: bool| -> Result<Option<Price>, Invalid> {
                match (text, needed) {
                    (Some(t), true) => {
                        let p = decimal(field, t, Price)?;
                        instrument.check_price(p, field)?;
                        Ok(Some(p))
                    }
                    (None, true) => Err(Invalid::new(
                        "missing_price",
                        field,
                        format!("a {} order needs {field}", order_type.as_str()),
                    )),
                    (Some(_), false) => Err(Invalid::new(
                        "unexpected_price",
                        field,
                        format!("a {} order takes no {field}", order_type.as_str()),
                    )),
                    (None, false) => Ok(None),
                }
            };
        let limit_price = price("limit_price", &spec.limit_price, order_type.needs_limit())?;
        let stop_price = price("stop_price", &spec.stop_price, order_type.needs_stop())?;
        let tif = Tif::parse(spec.tif.as_deref().unwrap_or("day"))?;
        if let Some(c) = &spec.client_order_id {
            if c.is_empty() || c.len() > 128 {
                return Err(Invalid::new(
                    "invalid_client_order_id",
                    "client_order_id",
                    "client_order_id must be 1-128 characters",
                ));
            }
        }
        Ok(NewOrder {
            account,
            symbol: instrument.symbol.clone(),
            side,
            qty,
            order_type,
            limit_price,
            stop_price,
            tif,
            client_order_id: spec.client_order_id.clone(),
        })
    }
}

/// An order and everything that happened to it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: u64,
    pub request: NewOrder,
    pub status: OrderStatus,
    pub filled_qty: Qty,
    pub avg_fill_price: Option<Price>,
    /// Stop orders: whether the stop price has been reached.
    pub triggered: bool,
    pub reject_code: Option<String>,
    pub reject_reason: Option<String>,
    /// Why it was canceled (`canceled by request`, `ioc_unfilled`, `fok_unfillable`, …).
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An event with its data, as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderUpdate {
    Accepted,
    Denied {
        code: String,
        reason: String,
    },
    Rejected {
        code: String,
        reason: String,
    },
    Triggered,
    Filled {
        qty: Qty,
        price: Price,
        commission: Money,
    },
    Canceled {
        reason: String,
    },
    Expired,
    Modified {
        qty: Option<Qty>,
        limit_price: Option<Price>,
        stop_price: Option<Price>,
    },
}

impl Order {
    pub fn new(id: u64, request: NewOrder, now: DateTime<Utc>) -> Order {
        Order {
            id,
            request,
            status: OrderStatus::Submitted,
            filled_qty: Qty::ZERO,
            avg_fill_price: None,
            triggered: false,
            reject_code: None,
            reject_reason: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Quantity still to fill.
    pub fn leaves_qty(&self) -> Qty {
        self.request
            .qty
            .saturating_sub(self.filled_qty)
            .max(Qty::ZERO)
    }

    /// Apply one update through the state machine. On error the order is unchanged.
    pub fn apply(
        &mut self,
        update: &OrderUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), InvalidTransition> {
        let event = match update {
            OrderUpdate::Accepted => OrderEvent::Accept,
            OrderUpdate::Denied { .. } => OrderEvent::Deny,
            OrderUpdate::Rejected { .. } => OrderEvent::Reject,
            OrderUpdate::Triggered => OrderEvent::Trigger,
            OrderUpdate::Filled { qty, .. } => OrderEvent::Fill {
                complete: self.filled_qty.saturating_add(*qty) >= self.request.qty,
            },
            OrderUpdate::Canceled { .. } => OrderEvent::Cancel,
            OrderUpdate::Expired => OrderEvent::Expire,
            OrderUpdate::Modified { .. } => OrderEvent::Modify,
        };
        let next = self.status.transition(event)?;
        match update {
            OrderUpdate::Denied { code, reason } | OrderUpdate::Rejected { code, reason } => {
                self.reject_code = Some(code.clone());
                self.reject_reason = Some(reason.clone());
            }
            OrderUpdate::Triggered => self.triggered = true,
            OrderUpdate::Canceled { reason } => self.cancel_reason = Some(reason.clone()),
            OrderUpdate::Filled { qty, price, .. } => {
                let before = self.filled_qty;
                let after = before.saturating_add(*qty);
                // Volume-weighted average, exact up to the final rounding at 8 decimals.
                let paid = self.avg_fill_price.map_or(Fixed::ZERO, |p| {
                    p.0.checked_mul(before.0).unwrap_or(Fixed::ZERO)
                });
                let this = price.0.checked_mul(qty.0).unwrap_or(Fixed::ZERO);
                self.avg_fill_price = paid
                    .checked_add(this)
                    .and_then(|total| total.checked_div(after.0))
                    .map(Price);
                self.filled_qty = after;
            }
            OrderUpdate::Modified {
                qty,
                limit_price,
                stop_price,
            } => {
                if let Some(q) = qty {
                    self.request.qty = *q;
                }
                if let Some(p) = limit_price {
                    self.request.limit_price = Some(*p);
                }
                if let Some(p) = stop_price {
                    self.request.stop_price = Some(*p);
                }
            }
            OrderUpdate::Accepted | OrderUpdate::Expired => {}
        }
        self.status = next;
        self.updated_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const EVENTS: [OrderEvent; 9] = [
        OrderEvent::Accept,
        OrderEvent::Deny,
        OrderEvent::Reject,
        OrderEvent::Trigger,
        OrderEvent::Fill { complete: true },
        OrderEvent::Fill { complete: false },
        OrderEvent::Cancel,
        OrderEvent::Expire,
        OrderEvent::Modify,
    ];

    #[test]
    fn terminal_states_take_no_event() {
        for s in OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for e in EVENTS {
                assert!(s.transition(e).is_err(), "{s} + {e:?}");
            }
        }
    }

    #[test]
    fn the_table_in_full() {
        use OrderStatus as S;
        // (from, event, expected) for every pair: None = refused.
        let allowed = |from: S, e: OrderEvent| -> Option<S> {
            match (from, e) {
                (S::Submitted, OrderEvent::Accept) => Some(S::Accepted),
                (S::Submitted, OrderEvent::Deny) => Some(S::Denied),
                (S::Submitted | S::Accepted, OrderEvent::Reject) => Some(S::Rejected),
                (
                    S::Submitted | S::Accepted | S::PartiallyFilled,
                    OrderEvent::Fill { complete: true },
                ) => Some(S::Filled),
                (
                    S::Submitted | S::Accepted | S::PartiallyFilled,
                    OrderEvent::Fill { complete: false },
                ) => Some(S::PartiallyFilled),
                (S::Submitted | S::Accepted | S::PartiallyFilled, OrderEvent::Cancel) => {
                    Some(S::Canceled)
                }
                (S::Submitted | S::Accepted | S::PartiallyFilled, OrderEvent::Expire) => {
                    Some(S::Expired)
                }
                (S::Accepted, OrderEvent::Trigger | OrderEvent::Modify) => Some(S::Accepted),
                (S::PartiallyFilled, OrderEvent::Trigger | OrderEvent::Modify) => {
                    Some(S::PartiallyFilled)
                }
                _ => None,
            }
        };
        for s in OrderStatus::ALL {
            for e in EVENTS {
                assert_eq!(s.transition(e).ok(), allowed(s, e), "{s} + {e:?}");
            }
        }
    }

    #[test]
    fn fills_average_exactly() {
        let set = Instruments::builtin();
        let spec = OrderSpec {
            symbol: "ES".into(),
            side: "buy".into(),
            qty: "3".into(),
            ..Default::default()
        };
        let mut o = Order::new(1, NewOrder::validate(&spec, &set).unwrap(), Utc::now());
        let p = |s: &str| Price::parse(s).unwrap();
        let q = |s: &str| Qty::parse(s).unwrap();
        o.apply(&OrderUpdate::Accepted, Utc::now()).unwrap();
        o.apply(
            &OrderUpdate::Filled {
                qty: q("1"),
                price: p("5000"),
                commission: Money::ZERO,
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(o.status, OrderStatus::PartiallyFilled);
        o.apply(
            &OrderUpdate::Filled {
                qty: q("2"),
                price: p("5000.25"),
                commission: Money::ZERO,
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(o.status, OrderStatus::Filled);
        assert_eq!(o.avg_fill_price, Some(p("5000.16666667")));
        assert_eq!(o.leaves_qty(), Qty::ZERO);
        let err = o
            .apply(&OrderUpdate::Canceled { reason: "x".into() }, Utc::now())
            .unwrap_err();
        assert_eq!(err.from, OrderStatus::Filled);
    }

    #[test]
    fn validation_table() {
        let set = Instruments::builtin();
        let base = OrderSpec {
            symbol: "ES".into(),
            side: "buy".into(),
            qty: "2".into(),
            ..Default::default()
        };
        type Edit = fn(&mut OrderSpec);
        let cases: [(Edit, &str, &str); 11] = [
            (|s| s.symbol = "ZZZ".into(), "unknown_symbol", "symbol"),
            (|s| s.side = "hold".into(), "invalid_side", "side"),
            (|s| s.qty = "0".into(), "invalid_qty", "qty"),
            (|s| s.qty = "-1".into(), "invalid_qty", "qty"),
            (|s| s.qty = "1.5".into(), "qty_off_step", "qty"),
            (|s| s.qty = "two".into(), "invalid_number", "qty"),
            (
                |s| s.order_type = Some("limit".into()),
                "missing_price",
                "limit_price",
            ),
            (
                |s| {
                    s.order_type = Some("limit".into());
                    s.limit_price = Some("5000.3".into())
                },
                "price_off_tick",
                "limit_price",
            ),
            (
                |s| s.limit_price = Some("5000".into()),
                "unexpected_price",
                "limit_price",
            ),
            (
                |s| s.order_type = Some("stop_limit".into()),
                "missing_price",
                "limit_price",
            ),
            (|s| s.tif = Some("week".into()), "invalid_tif", "tif"),
        ];
        for (edit, code, field) in cases {
            let mut s = base.clone();
            edit(&mut s);
            let e = NewOrder::validate(&s, &set).unwrap_err();
            assert_eq!((e.code, e.field.as_deref()), (code, Some(field)), "{s:?}");
        }
        let ok = NewOrder::validate(&base, &set).unwrap();
        assert_eq!(
            (ok.account.as_str(), ok.tif, ok.order_type),
            ("paper", Tif::Day, OrderType::Market)
        );
    }
}

//! The trading journal's encoding: each OMS [`Event`] as a `(kind, JSON)` pair and back.
//!
//! This is a storage format: fields are never renamed, only added (decoders tolerate missing
//! optional fields). Decimal numbers are stored as exact strings.
//!
//! One command's events go into one journal row of kind `events` (a JSON array of
//! `{"kind","at",...}` objects), so an order costs one insert however many events it makes.
//! Rows of a single event kind are read too.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::Symbol;
use sovereign_core::trading::matching::Quote;
use sovereign_core::trading::oms::{Event, FillRecord};
use sovereign_core::trading::order::{
    NewOrder, Order, OrderStatus, OrderType, OrderUpdate, Side, Tif,
};
use sovereign_core::trading::risk::{StateChange, TradingState};
use sovereign_store::JournalEntry;

/// Why a journal entry could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("journal entry {seq} ({kind}): {reason}")]
pub struct DecodeError {
    pub seq: i64,
    pub kind: String,
    pub reason: String,
}

/// All events of one command as one journal row.
pub fn encode_batch(events: &[Event]) -> JournalEntry {
    let mut at = DateTime::<Utc>::UNIX_EPOCH;
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            let (kind, when, mut v) = parts(e);
            at = when;
            v["kind"] = Value::String(kind.into());
            v["at"] = Value::String(when.to_rfc3339());
            v
        })
        .collect();
    JournalEntry {
        seq: 0,
        at,
        kind: "events".into(),
        payload: Value::Array(items).to_string(),
    }
}

/// Decode a journal row into its events, in order.
pub fn decode_row(entry: &JournalEntry) -> Result<Vec<Event>, DecodeError> {
    if entry.kind != "events" {
        return decode(entry).map(|e| vec![e]);
    }
    let err = |reason: String| DecodeError {
        seq: entry.seq,
        kind: entry.kind.clone(),
        reason,
    };
    let items: Vec<Value> = serde_json::from_str(&entry.payload).map_err(|e| err(e.to_string()))?;
    items
        .into_iter()
        .map(|item| {
            let kind = item
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| err("event without kind".into()))?;
            let at = item
                .get("at")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| err("event without time".into()))?;
            decode(&JournalEntry {
                seq: entry.seq,
                at,
                kind: kind.to_string(),
                payload: item.to_string(),
            })
        })
        .collect()
}

/// One event as a single-event row.
pub fn encode(event: &Event) -> JournalEntry {
    let (kind, at, payload) = parts(event);
    JournalEntry {
        seq: 0,
        at,
        kind: kind.to_string(),
        payload: payload.to_string(),
    }
}

/// An event's kind, time and JSON body.
fn parts(event: &Event) -> (&'static str, DateTime<Utc>, Value) {
    match event {
        Event::OrderCreated(o) => ("order_created", o.created_at, compact(order_record(o))),
        Event::OrderUpdated {
            order_id,
            update,
            at,
        } => {
            let mut v = update_json(update);
            v["order_id"] = json!(order_id);
            ("order_updated", *at, v)
        }
        Event::Filled(f) => {
            let mut v = json!({
                "fill_id": f.fill_id, "order_id": f.order_id, "account": f.account,
                "symbol": f.symbol.as_str(), "side": f.side.as_str(), "qty": f.qty.to_string(),
                "price": f.price.to_string(), "commission": f.commission.to_string(),
                "realized_pnl": f.realized_pnl.to_string(),
            });
            // Only venue fills carry one; paper rows stay as they always were.
            if let Some(exec) = &f.exec_id {
                v["exec_id"] = json!(exec);
            }
            ("filled", f.at, v)
        }
        Event::StateChanged {
            account,
            change,
            at,
        } => (
            "state_changed",
            *at,
            json!({"account": account, "from": change.from.as_str(), "to": change.to.as_str(), "reason": change.reason}),
        ),
        Event::Mark {
            symbol,
            quote,
            external,
            at,
        } => (
            "mark",
            *at,
            json!({
                "symbol": symbol.as_str(),
                "last": quote.last.map(|p| p.to_string()),
                "bid": quote.bid.map(|p| p.to_string()),
                "ask": quote.ask.map(|p| p.to_string()),
                "external": external,
            }),
        ),
        Event::Adjusted {
            account,
            symbol,
            qty,
            avg_price,
            at,
        } => (
            "position_adjusted",
            *at,
            json!({"account": account, "symbol": symbol.as_str(), "qty": qty.to_string(), "avg_price": avg_price.to_string()}),
        ),
    }
}

/// Drop what a decoder can default (nulls, `false`, a fresh order's status and zero fill), so
/// each order costs fewer journal bytes.
fn compact(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        let same_time = map.get("created_at") == map.get("updated_at");
        map.retain(|k, val| {
            !(val.is_null()
                || *val == Value::Bool(false)
                || (k == "status" && val == "submitted")
                || (k == "filled_qty" && val == "0")
                || (k == "updated_at" && same_time))
        });
    }
    v
}

/// An order as the journal stores it (a storage format: the id is a number here).
fn order_record(o: &Order) -> Value {
    let r = &o.request;
    json!({
        "id": o.id,
        "account": r.account,
        "symbol": r.symbol.as_str(),
        "side": r.side.as_str(),
        "qty": r.qty.to_string(),
        "type": r.order_type.as_str(),
        "limit_price": r.limit_price.map(|p| p.to_string()),
        "stop_price": r.stop_price.map(|p| p.to_string()),
        "tif": r.tif.as_str(),
        "client_order_id": r.client_order_id,
        "status": o.status.as_str(),
        "filled_qty": o.filled_qty.to_string(),
        "avg_fill_price": o.avg_fill_price.map(|p| p.to_string()),
        "triggered": o.triggered,
        "reject_code": o.reject_code,
        "reject_reason": o.reject_reason,
        "cancel_reason": o.cancel_reason,
        "created_at": o.created_at.to_rfc3339(),
        "updated_at": o.updated_at.to_rfc3339(),
    })
}

fn update_json(u: &OrderUpdate) -> Value {
    let opt = |p: &Option<Price>| p.map(|p| p.to_string());
    match u {
        OrderUpdate::Accepted => json!({"update": "accepted"}),
        OrderUpdate::Denied { code, reason } => {
            json!({"update": "denied", "code": code, "reason": reason})
        }
        OrderUpdate::Rejected { code, reason } => {
            json!({"update": "rejected", "code": code, "reason": reason})
        }
        OrderUpdate::Triggered => json!({"update": "triggered"}),
        OrderUpdate::Filled {
            qty,
            price,
            commission,
        } => json!({
            "update": "filled", "qty": qty.to_string(), "price": price.to_string(), "commission": commission.to_string()
        }),
        OrderUpdate::Canceled { reason } => json!({"update": "canceled", "reason": reason}),
        OrderUpdate::Expired => json!({"update": "expired"}),
        OrderUpdate::Modified {
            qty,
            limit_price,
            stop_price,
        } => json!({
            "update": "modified", "qty": qty.map(|q| q.to_string()),
            "limit_price": opt(limit_price), "stop_price": opt(stop_price),
        }),
    }
}

struct Reader<'a> {
    obj: &'a Map<String, Value>,
}

impl<'a> Reader<'a> {
    fn str(&self, k: &str) -> Result<&'a str, String> {
        self.obj
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing {k}"))
    }
    fn opt_str(&self, k: &str) -> Option<String> {
        self.obj.get(k).and_then(Value::as_str).map(str::to_string)
    }
    fn u64(&self, k: &str) -> Result<u64, String> {
        self.obj
            .get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("missing {k}"))
    }
    fn fixed(&self, k: &str) -> Result<Fixed, String> {
        Fixed::parse(self.str(k)?).map_err(|e| format!("{k}: {e}"))
    }
    fn opt_fixed(&self, k: &str) -> Result<Option<Fixed>, String> {
        match self.obj.get(k).and_then(Value::as_str) {
            Some(s) => Fixed::parse(s).map(Some).map_err(|e| format!("{k}: {e}")),
            None => Ok(None),
        }
    }
    fn time(&self, k: &str) -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_rfc3339(self.str(k)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{k}: {e}"))
    }
    fn symbol(&self) -> Result<Symbol, String> {
        Symbol::parse(self.str("symbol")?).map_err(|e| e.message)
    }
    fn side(&self) -> Result<Side, String> {
        Side::parse(self.str("side")?).map_err(|e| e.message)
    }
}

pub fn decode(entry: &JournalEntry) -> Result<Event, DecodeError> {
    let err = |reason: String| DecodeError {
        seq: entry.seq,
        kind: entry.kind.clone(),
        reason,
    };
    let value: Value = serde_json::from_str(&entry.payload).map_err(|e| err(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| err("payload is not an object".into()))?;
    let r = Reader { obj };
    let event = (|| -> Result<Event, String> {
        Ok(match entry.kind.as_str() {
            "order_created" => Event::OrderCreated(Order {
                id: r.u64("id")?,
                request: NewOrder {
                    account: r.str("account")?.to_string(),
                    symbol: r.symbol()?,
                    side: r.side()?,
                    qty: Qty(r.fixed("qty")?),
                    order_type: OrderType::parse(r.str("type")?).map_err(|e| e.message)?,
                    limit_price: r.opt_fixed("limit_price")?.map(Price),
                    stop_price: r.opt_fixed("stop_price")?.map(Price),
                    tif: Tif::parse(r.str("tif")?).map_err(|e| e.message)?,
                    client_order_id: r.opt_str("client_order_id"),
                },
                status: match r.opt_str("status") {
                    Some(s) => OrderStatus::parse(&s).ok_or("bad status")?,
                    None => OrderStatus::Submitted,
                },
                filled_qty: Qty(r.opt_fixed("filled_qty")?.unwrap_or(Fixed::ZERO)),
                avg_fill_price: r.opt_fixed("avg_fill_price")?.map(Price),
                triggered: obj
                    .get("triggered")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                reject_code: r.opt_str("reject_code"),
                reject_reason: r.opt_str("reject_reason"),
                cancel_reason: r.opt_str("cancel_reason"),
                created_at: r.time("created_at")?,
                updated_at: match r.opt_str("updated_at") {
                    Some(_) => r.time("updated_at")?,
                    None => r.time("created_at")?,
                },
            }),
            "order_updated" => {
                let update = match r.str("update")? {
                    "accepted" => OrderUpdate::Accepted,
                    "denied" => OrderUpdate::Denied {
                        code: r.str("code")?.into(),
                        reason: r.str("reason")?.into(),
                    },
                    "rejected" => OrderUpdate::Rejected {
                        code: r.str("code")?.into(),
                        reason: r.str("reason")?.into(),
                    },
                    "triggered" => OrderUpdate::Triggered,
                    "filled" => OrderUpdate::Filled {
                        qty: Qty(r.fixed("qty")?),
                        price: Price(r.fixed("price")?),
                        commission: Money(r.fixed("commission")?),
                    },
                    "canceled" => OrderUpdate::Canceled {
                        reason: r.str("reason")?.into(),
                    },
                    "expired" => OrderUpdate::Expired,
                    "modified" => OrderUpdate::Modified {
                        qty: r.opt_fixed("qty")?.map(Qty),
                        limit_price: r.opt_fixed("limit_price")?.map(Price),
                        stop_price: r.opt_fixed("stop_price")?.map(Price),
                    },
                    other => return Err(format!("unknown update {other:?}")),
                };
                Event::OrderUpdated {
                    order_id: r.u64("order_id")?,
                    update,
                    at: entry.at,
                }
            }
            "filled" => Event::Filled(FillRecord {
                fill_id: r.u64("fill_id")?,
                order_id: r.u64("order_id")?,
                account: r.str("account")?.to_string(),
                symbol: r.symbol()?,
                side: r.side()?,
                qty: Qty(r.fixed("qty")?),
                price: Price(r.fixed("price")?),
                commission: Money(r.fixed("commission")?),
                realized_pnl: Money(r.fixed("realized_pnl")?),
                at: entry.at,
                exec_id: r.opt_str("exec_id"),
            }),
            "state_changed" => {
                let state = |k: &str| -> Result<TradingState, String> {
                    TradingState::parse(r.str(k)?).ok_or_else(|| format!("bad {k}"))
                };
                Event::StateChanged {
                    account: r.str("account")?.to_string(),
                    change: StateChange {
                        from: state("from")?,
                        to: state("to")?,
                        reason: r.str("reason")?.to_string(),
                    },
                    at: entry.at,
                }
            }
            "mark" => Event::Mark {
                symbol: r.symbol()?,
                quote: Quote {
                    last: r.opt_fixed("last")?.map(Price),
                    bid: r.opt_fixed("bid")?.map(Price),
                    ask: r.opt_fixed("ask")?.map(Price),
                },
                external: obj
                    .get("external")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                at: entry.at,
            },
            "position_adjusted" => Event::Adjusted {
                account: r.str("account")?.to_string(),
                symbol: r.symbol()?,
                qty: Qty(r.fixed("qty")?),
                avg_price: Price(r.fixed("avg_price")?),
                at: entry.at,
            },
            other => return Err(format!("unknown kind {other:?}")),
        })
    })();
    event.map_err(err)
}

//! The NinjaTrader gateway: an account's orders go out as Order Instruction Files and come back
//! from `outgoing` as venue reports.
//!
//! - Out: the actor turns the OMS's venue instructions into OIF lines (order id `sov-<id>`) and
//!   queues them with the journal barrier of the command that made them; the writer waits for
//!   the barrier (nothing reaches the venue that a crash could forget), writes each batch beside
//!   `incoming` and renames it in, so NinjaTrader never reads half a file.
//! - In: the reader looks at `outgoing` every `poll` and sends each changed `sov-<id>.txt` to
//!   the actor, which turns the cumulative reading into reports against what the OMS already
//!   holds of that order: after a restart (or a kill -9 between an OIF and its fill) the same
//!   file gives the same execution id (`cum-<filled>`), so a fill is applied once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sovereign_core::error::Invalid;
use sovereign_core::trading::fixed::Fixed;
use sovereign_core::trading::ninjatrader::{
    contracts, front_month, increment, parse_order_state, Command as Oif, OrderReading, OrderState,
};
use sovereign_core::trading::oms::{Oms, VenueInstruction, VenueReport};
use sovereign_core::trading::order::{Order, OrderStatus};
use tokio::sync::mpsc;

use super::settings::GatewaySettings;
use super::Durable;
use crate::support::Tasks;

/// Where an account's instruction batches go, each with the journal barrier it waits for.
pub(super) type Outbox = mpsc::UnboundedSender<(Durable, Vec<String>)>;

/// The order id NinjaTrader knows an order by.
pub(super) fn venue_id(id: u64) -> String {
    format!("sov-{id}")
}

fn order_of(name: &str) -> Option<u64> {
    name.strip_prefix("sov-")?
        .strip_suffix(".txt")?
        .parse()
        .ok()
}

/// The NinjaTrader instrument of an order's symbol: the configured name, or the front month.
fn instrument(g: &GatewaySettings, order: &Order, now: DateTime<Utc>) -> Option<String> {
    let symbol = &order.request.symbol;
    g.instruments
        .get(symbol)
        .cloned()
        .or_else(|| front_month(symbol.as_str(), now.date_naive()))
}

/// The OIF line for one instruction (from the OMS as it is now).
pub(super) fn line(
    oms: &Oms,
    g: &GatewaySettings,
    instruction: &VenueInstruction,
    now: DateTime<Utc>,
) -> Result<String, Invalid> {
    let unknown = |id| Invalid::new("unknown_order", "order_id", format!("no order {id}"));
    Ok(match instruction {
        VenueInstruction::Place { order_id } => {
            let order = oms.order(*order_id).ok_or_else(|| unknown(*order_id))?;
            let name = instrument(g, order, now).ok_or_else(|| {
                Invalid::new(
                    "unmapped_instrument",
                    "symbol",
                    format!("no NinjaTrader instrument for {}", order.request.symbol),
                )
            })?;
            Oif::place(order, &g.venue_account, &name, &venue_id(*order_id))?.line()
        }
        VenueInstruction::Cancel { order_id } => Oif::Cancel {
            order_id: venue_id(*order_id),
        }
        .line(),
        VenueInstruction::Change {
            order_id,
            qty,
            limit_price,
            stop_price,
        } => Oif::Change {
            order_id: venue_id(*order_id),
            qty: qty.and_then(contracts),
            limit: *limit_price,
            stop: *stop_price,
        }
        .line(),
    })
}

/// The reports a reading of an order's state file makes, against what the OMS holds of it.
pub(super) fn reports(oms: &Oms, order_id: u64, reading: &OrderReading) -> Vec<VenueReport> {
    let Some(order) = oms.order(order_id) else {
        return Vec::new();
    };
    let tick = oms
        .instruments()
        .get(&order.request.symbol)
        .map(|i| i.tick_size)
        .unwrap_or_default();
    let mut out = Vec::new();
    let taken = reading.state.is_working() || reading.state == OrderState::Filled;
    if taken && order.status == OrderStatus::Submitted {
        out.push(VenueReport::Accepted);
    }
    // Venue fills are whole contracts, so what the OMS holds is too.
    let held = contracts(order.filled_qty).unwrap_or_default();
    let avg = order.avg_fill_price.map_or(Fixed::ZERO, |p| p.0);
    match increment((held, avg), (reading.filled, reading.avg_price), tick) {
        Ok(Some((qty, price))) => out.push(VenueReport::Fill {
            exec_id: format!("cum-{}", reading.filled),
            qty,
            price,
            commission: Default::default(),
        }),
        Ok(None) => {}
        Err(e) => tracing::warn!(order_id, "{}", e.message),
    }
    match reading.state {
        OrderState::Cancelled => out.push(VenueReport::Canceled {
            reason: "canceled at NinjaTrader".into(),
        }),
        OrderState::Rejected => out.push(VenueReport::Rejected {
            code: "venue_rejected".into(),
            reason: "rejected by NinjaTrader".into(),
        }),
        _ => {}
    }
    out
}

/// Write each batch once its journal barrier is durable: `DIR/oif<seq>.tmp`, renamed into
/// `incoming`.
pub(super) async fn writer(dir: PathBuf, mut rx: mpsc::UnboundedReceiver<(Durable, Vec<String>)>) {
    let mut seq: u64 = 0;
    let stamp = Utc::now().timestamp_micros();
    while let Some((durable, lines)) = rx.recv().await {
        if durable.await.is_err() {
            tracing::error!("a venue instruction was not sent: its journal write failed");
            continue;
        }
        seq += 1;
        let name = format!("oif{stamp}-{seq}");
        let staged = dir.join(format!("{name}.tmp"));
        let target = dir.join("incoming").join(format!("{name}.txt"));
        let text = lines.join("\r\n") + "\r\n";
        let written = tokio::fs::write(&staged, text).await;
        let moved = match written {
            Ok(()) => tokio::fs::rename(&staged, &target).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            tracing::error!(dir = %dir.display(), error = %e, "cannot write an order instruction file");
        }
    }
}

/// Look at `outgoing` every `poll` and hand each changed order state file to `send`.
pub(super) async fn reader(
    dir: PathBuf,
    poll: Duration,
    tasks: Tasks,
    send: impl Fn(u64, OrderReading) -> bool + Send + 'static,
) {
    let outgoing = dir.join("outgoing");
    let mut seen: HashMap<u64, String> = HashMap::new();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tasks.stopped() => return,
        }
        for (order_id, text) in read_states(&outgoing).await {
            if seen.get(&order_id) == Some(&text) {
                continue;
            }
            match parse_order_state(&text) {
                Ok(reading) => {
                    if !send(order_id, reading) {
                        return;
                    }
                    seen.insert(order_id, text);
                }
                // Half written, or not NinjaTrader's: read it again next time.
                Err(e) => tracing::debug!(order_id, "{}", e.message),
            }
        }
    }
}

async fn read_states(outgoing: &Path) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(outgoing).await else {
        return found;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(order_of) else {
            continue;
        };
        if let Ok(text) = tokio::fs::read_to_string(entry.path()).await {
            found.push((id, text));
        }
    }
    found.sort_by_key(|(id, _)| *id);
    found
}

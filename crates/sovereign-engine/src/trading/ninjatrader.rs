//! The NinjaTrader gateway: an account's orders go out as Order Instruction Files and come back
//! from `outgoing` as venue reports; NinjaTrader's position and connection files are watched.
//!
//! - Out: the actor turns the OMS's venue instructions into OIF lines (order id `sov-<id>`) and
//!   queues them with the journal barrier of the command that made them; the writer waits for
//!   the barrier (nothing reaches the venue that a crash could forget), writes each batch beside
//!   `incoming` and renames it in, so NinjaTrader never reads half a file. A batch that cannot
//!   be written comes back to the actor: its orders are rejected `venue_unwritable`.
//! - In: the reader looks at `outgoing` on every file notification and every `poll` (a share
//!   may send no notifications) and sends a [`Look`] whenever anything in it changed: the order state files that changed, which orders still have one, the account's
//!   positions and the connection. The actor turns each cumulative order reading into reports
//!   against what the OMS already holds of that order: after a restart (or a kill -9 between an
//!   OIF and its fill) the same file gives the same execution id (`cum-<filled>`), so a fill is
//!   applied once.
//! - Watch ([`Watch`]): what the folder says beyond orders — the connection (down: new orders
//!   are denied `venue_disconnected`, cancels wait for it to come back), orders NinjaTrader no
//!   longer shows (it clears `outgoing` when it restarts: they are marked unknown, not guessed),
//!   and positions reconciled against the engine's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sovereign_core::error::Invalid;
use sovereign_core::trading::fixed::{Fixed, Price, Qty};
use sovereign_core::trading::instrument::{AssetClass, Symbol};
use sovereign_core::trading::ninjatrader::{
    contracts, front_month, increment, parse_connection, parse_order_state, parse_position,
    position_file_instrument, Command as Oif, OrderReading, OrderState, PositionReading,
};
use sovereign_core::trading::oms::{Oms, VenueInstruction, VenueReport};
use sovereign_core::trading::order::{Order, OrderStatus};
use tokio::sync::mpsc;

use super::settings::NinjaSettings;
use super::{Durable, Sent};
use crate::support::Tasks;

/// How long a mismatch must last before it counts: a fill NinjaTrader has written into the
/// position file but not yet into the order's state file (or the other way round) is not one.
pub(super) const MISMATCH_GRACE: chrono::Duration = chrono::Duration::seconds(2);
/// How long an order sent to NinjaTrader may go without a state file before it is unknown.
const TAKE_GRACE: chrono::Duration = chrono::Duration::seconds(10);

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

/// The NinjaTrader instrument of an order's symbol: the configured name, or a future's front
/// month (`ES` → `ES 03-27`); anything else needs its name configured.
fn instrument(g: &NinjaSettings, oms: &Oms, order: &Order, now: DateTime<Utc>) -> Option<String> {
    let symbol = &order.request.symbol;
    if let Some(name) = g.instruments.get(symbol) {
        return Some(name.clone());
    }
    let future = oms
        .instruments()
        .get(symbol)
        .is_some_and(|i| i.class == AssetClass::Future);
    future.then(|| front_month(symbol.as_str(), now.date_naive()))?
}

/// The OIF line for one instruction (from the OMS as it is now).
pub(super) fn line(
    oms: &Oms,
    g: &NinjaSettings,
    venue_account: &str,
    instruction: &VenueInstruction,
    now: DateTime<Utc>,
) -> Result<String, Invalid> {
    let unknown = |id| Invalid::new("unknown_order", "order_id", format!("no order {id}"));
    Ok(match instruction {
        VenueInstruction::Place { order_id } => {
            let order = oms.order(*order_id).ok_or_else(|| unknown(*order_id))?;
            let name = instrument(g, oms, order, now).ok_or_else(|| {
                Invalid::new(
                    "unmapped_instrument",
                    "symbol",
                    format!("no NinjaTrader instrument for {}", order.request.symbol),
                )
            })?;
            Oif::place(order, venue_account, &name, &venue_id(*order_id))?.line()
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
/// `incoming`. A batch that cannot be written goes to `unsent` with the error.
pub(super) async fn writer(
    dir: PathBuf,
    mut rx: mpsc::UnboundedReceiver<(Durable, Vec<Sent>)>,
    unsent: impl Fn(Vec<Sent>, String) + Send + 'static,
) {
    let mut seq: u64 = 0;
    let stamp = Utc::now().timestamp_micros();
    while let Some((durable, batch)) = rx.recv().await {
        if durable.await.is_err() {
            tracing::error!("a venue instruction was not sent: its journal write failed");
            continue;
        }
        seq += 1;
        let name = format!("oif{stamp}-{seq}");
        let staged = dir.join(format!("{name}.tmp"));
        let target = dir.join("incoming").join(format!("{name}.txt"));
        let mut text = String::new();
        for sent in &batch {
            text.push_str(&sent.body);
            text.push_str("\r\n");
        }
        let written = tokio::fs::write(&staged, text).await;
        let moved = match written {
            Ok(()) => tokio::fs::rename(&staged, &target).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            let _ = tokio::fs::remove_file(&staged).await;
            unsent(
                batch,
                format!(
                    "cannot write an order instruction file into {}: {e}",
                    target.display()
                ),
            );
        }
    }
}

/// One look at `outgoing`, sent whenever anything in it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Look {
    /// Order state files whose text changed since the last look.
    pub changed: Vec<(u64, OrderReading)>,
    /// The orders of this engine (`sov-<id>`) that have a state file now.
    pub present: BTreeSet<u64>,
    /// The account's position files: NinjaTrader instrument (`ES 03-27`) → reading.
    pub positions: BTreeMap<String, PositionReading>,
    /// What the connection state file says; `None`: there is none.
    pub connection: Option<bool>,
    /// Files that read the same and unreadable on two looks in a row (not half written, then):
    /// (file, code, message), each reported once.
    pub malformed: Vec<(String, &'static str, String)>,
}

/// Watch `outgoing` for changes (file notifications: inotify, ReadDirectoryChangesW, kqueue),
/// waking `wake` on each; `None` when the folder cannot be watched (not there yet, or a share
/// that sends no notifications — polling covers it).
fn watch(outgoing: &Path, wake: &mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let wake = wake.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the folder opens its files: those events are the reader's own.
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already holds a wake-up: changes coalesce into one read.
            let _ = wake.try_send(());
        }
    })
    .ok()?;
    watcher
        .watch(outgoing, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}

/// Look at `outgoing` whenever a notification says it changed, and every `poll` in any case
/// (NinjaTrader's folder is often on a Windows share, where notifications never arrive); hand
/// each look in which anything changed to `send`.
pub(super) async fn reader(
    g: NinjaSettings,
    venue_account: String,
    tasks: Tasks,
    send: impl Fn(Look) -> bool + Send + 'static,
) {
    let outgoing = g.dir.join("outgoing");
    let mut texts: HashMap<u64, String> = HashMap::new();
    let mut last: Option<Look> = None;
    let mut folder = Folder::default();
    let mut looks: u32 = 0;
    // Files that did not read: their text, and whether that was reported.
    let mut unreadable: HashMap<String, (String, bool)> = HashMap::new();
    let mut tick = tokio::time::interval(g.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (wake_tx, mut wake) = mpsc::channel::<()>(1);
    let mut watcher = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = wake.recv() => {}
            _ = tasks.stopped() => return,
        }
        if watcher.is_none() && g.notifications {
            watcher = watch(&outgoing, &wake_tx);
        }
        // Every file again now and then, whatever its size and time say.
        looks = looks.wrapping_add(1);
        let full = looks.is_multiple_of(FULL_READ_EVERY);
        let path = outgoing.clone();
        let Ok((kept, files)) = tokio::task::spawn_blocking(move || {
            let files = folder.read(&path, full);
            (folder, files)
        })
        .await
        else {
            return;
        };
        folder = kept;
        let Some(files) = files else {
            continue;
        };
        let mut look = Look::default();
        let mut connections: Vec<bool> = Vec::new();
        let mut bad = |name: &str, text: &str, e: Invalid, look: &mut Look| {
            match unreadable.get_mut(name) {
                Some((seen, reported)) if seen == text => {
                    if !*reported {
                        *reported = true;
                        look.malformed.push((name.to_string(), e.code, e.message));
                    }
                }
                // Half written, perhaps: read it again next time.
                _ => {
                    unreadable.insert(name.to_string(), (text.to_string(), false));
                }
            }
        };
        let names: std::collections::HashSet<String> =
            files.iter().map(|(n, _)| n.clone()).collect();
        for (name, text) in files {
            if let Some(id) = order_of(&name) {
                look.present.insert(id);
                if texts.get(&id) == Some(&text) {
                    continue;
                }
                match parse_order_state(&text) {
                    Ok(reading) => {
                        look.changed.push((id, reading));
                        texts.insert(id, text);
                    }
                    Err(e) => bad(&name, &text, e, &mut look),
                }
            } else if let Some(instrument) = position_file_instrument(&name, &venue_account) {
                // `ES 03-27 Globex`: the instrument, then its exchange.
                let instrument = instrument.rsplit_once(' ').map_or(instrument, |(i, _)| i);
                match parse_position(&text) {
                    Ok(p) => {
                        look.positions.insert(instrument.to_string(), p);
                    }
                    Err(e) => bad(&name, &text, e, &mut look),
                }
            } else if g
                .connection
                .as_ref()
                .is_none_or(|c| name.strip_suffix(".txt") == Some(c.as_str()))
            {
                if let Ok(up) = parse_connection(&text) {
                    connections.push(up);
                }
            }
        }
        texts.retain(|id, _| look.present.contains(id));
        // A file that reads again (or is gone) starts over.
        unreadable.retain(|name, (seen, _)| {
            names.contains(name) && folder_text(&folder, name).is_some_and(|t| t == seen)
        });
        // Without a named connection, the account is connected while any connection is.
        look.connection = match connections.as_slice() {
            [] => None,
            all => Some(all.iter().any(|up| *up)),
        };
        let same = last.as_ref().is_some_and(|l| {
            l.present == look.present
                && l.positions == look.positions
                && l.connection == look.connection
        });
        if same && look.changed.is_empty() && look.malformed.is_empty() {
            continue;
        }
        let mut kept = look.clone();
        kept.changed.clear();
        if !send(look) {
            return;
        }
        last = Some(kept);
    }
}

/// The text a file had at the last look.
fn folder_text<'a>(folder: &'a Folder, name: &str) -> Option<&'a String> {
    folder.files.get(name).map(|(_, _, text)| text)
}

/// Every this many looks, every file of `outgoing` is read whatever its size and time say.
const FULL_READ_EVERY: u32 = 20;

/// What `outgoing` held at the last look: each file's size, time and text, so a look reads
/// only the files that changed (NinjaTrader leaves a state file for every order of the day).
#[derive(Debug, Default)]
struct Folder {
    files: HashMap<String, (u64, Option<std::time::SystemTime>, String)>,
}

impl Folder {
    /// Every `.txt` file with its text (blocking: one pass of plain file calls); `None` when
    /// the folder cannot be read. `full`: read every file again.
    fn read(&mut self, outgoing: &Path, full: bool) -> Option<Vec<(String, String)>> {
        let entries = std::fs::read_dir(outgoing).ok()?;
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.ends_with(".txt") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = (meta.len(), meta.modified().ok());
            let cached = self
                .files
                .get(&name)
                .filter(|(len, time, _)| !full && (*len, *time) == stamp);
            let text = match cached {
                Some((_, _, text)) => text.clone(),
                None => match std::fs::read_to_string(entry.path()) {
                    Ok(text) => {
                        self.files
                            .insert(name.clone(), (stamp.0, stamp.1, text.clone()));
                        text
                    }
                    Err(_) => continue,
                },
            };
            seen.insert(name.clone());
            found.push((name, text));
        }
        self.files.retain(|name, _| seen.contains(name));
        found.sort();
        Some(found)
    }
}

/// A symbol whose position differs between the engine and NinjaTrader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueMismatch {
    /// The engine's symbol; `None` for an instrument the engine does not trade.
    pub symbol: Option<Symbol>,
    /// NinjaTrader's instrument(s) of it.
    pub instruments: Vec<String>,
    pub engine: Qty,
    pub venue: Qty,
    /// NinjaTrader's average price of what it holds.
    pub venue_avg_price: Option<Price>,
}

/// What the folder says beyond order states, as the actor keeps it.
#[derive(Debug, Default)]
pub struct Watch {
    /// The last look (`None`: `outgoing` not read yet).
    pub look: Option<Look>,
    pub last_report_at: Option<DateTime<Utc>>,
    /// Open orders NinjaTrader no longer shows a state file for.
    pub unknown: BTreeSet<u64>,
    pub mismatches: Vec<VenueMismatch>,
    /// Since when the current mismatches have stood.
    pub mismatch_since: Option<DateTime<Utc>>,
    /// The mismatches were declared (the account put in `reducing`, a P1 raised).
    pub declared: bool,
    pub checked_at: Option<DateTime<Utc>>,
    /// Cancels and changes waiting for the connection to come back.
    pub held: Vec<Sent>,
    /// When a flatten was asked, and when the position files said flat after it.
    pub flatten_asked: Option<DateTime<Utc>>,
    pub flat_at: Option<DateTime<Utc>>,
}

impl Watch {
    pub fn connection(&self) -> Option<bool> {
        self.look.as_ref().and_then(|l| l.connection)
    }

    /// The engine symbol of a NinjaTrader instrument: the configured one, or the root of a
    /// contract name (`ES 03-27` → `ES`) when the engine trades it.
    fn symbol_of(g: &NinjaSettings, oms: &Oms, instrument: &str) -> Option<Symbol> {
        if let Some((s, _)) = g.instruments.iter().find(|(_, i)| i.as_str() == instrument) {
            return Some(s.clone());
        }
        let root = instrument.split_whitespace().next()?;
        oms.instruments().find(root).ok().map(|i| i.symbol.clone())
    }

    /// Compare the venue's positions with the engine's, symbol by symbol where NinjaTrader has
    /// a position file.
    pub fn mismatches(&self, g: &NinjaSettings, oms: &Oms, account: &str) -> Vec<VenueMismatch> {
        let Some(look) = &self.look else {
            return Vec::new();
        };
        let mut venue: BTreeMap<Symbol, (Qty, Vec<String>, Option<Price>)> = BTreeMap::new();
        let mut out = Vec::new();
        for (instrument, p) in &look.positions {
            let qty = Qty(Fixed::from_int(p.qty).unwrap_or(Fixed::ZERO));
            match Self::symbol_of(g, oms, instrument) {
                Some(symbol) => {
                    let e = venue.entry(symbol).or_default();
                    e.0 = e.0.saturating_add(qty);
                    e.1.push(instrument.clone());
                    if p.qty != 0 {
                        e.2 = Some(Price(p.avg_price));
                    }
                }
                None if p.qty != 0 => out.push(VenueMismatch {
                    symbol: None,
                    instruments: vec![instrument.clone()],
                    engine: Qty::ZERO,
                    venue: qty,
                    venue_avg_price: Some(Price(p.avg_price)),
                }),
                None => {}
            }
        }
        let quantities: BTreeMap<Symbol, Qty> =
            venue.iter().map(|(s, (q, _, _))| (s.clone(), *q)).collect();
        // A symbol without a position file is not compared: NinjaTrader writes one for each
        // instrument the account trades, and clears them all when it restarts.
        let listed = oms
            .reconcile(account, &quantities)
            .into_iter()
            .filter(|m| venue.contains_key(&m.symbol));
        for m in listed {
            let (instruments, avg) = venue
                .get(&m.symbol)
                .map(|(_, i, a)| (i.clone(), *a))
                .unwrap_or_default();
            out.push(VenueMismatch {
                symbol: Some(m.symbol),
                instruments,
                engine: m.engine,
                venue: m.venue,
                venue_avg_price: avg,
            });
        }
        out
    }

    /// Open orders of `account` NinjaTrader shows no state file for: taken (it reported on
    /// them) and then gone, or sent and never taken within [`TAKE_GRACE`].
    pub fn unknown_orders(&self, oms: &Oms, account: &str, now: DateTime<Utc>) -> BTreeSet<u64> {
        let Some(look) = &self.look else {
            return BTreeSet::new();
        };
        oms.working_orders()
            .into_iter()
            .filter(|o| {
                o.request.account == account
                    && !look.present.contains(&o.id)
                    && (o.status != OrderStatus::Submitted || now - o.updated_at > TAKE_GRACE)
            })
            .map(|o| o.id)
            .collect()
    }

    /// Whether every position file of the account says flat.
    pub fn venue_flat(&self) -> bool {
        self.look
            .as_ref()
            .is_some_and(|l| l.positions.values().all(|p| p.qty == 0))
    }
}

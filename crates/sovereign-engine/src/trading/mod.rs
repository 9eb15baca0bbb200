//! The trading actor: owns the OMS core, journals its events, and answers callers only once the
//! events of their command are durable.
//!
//! One task receives [`Command`]s in order. For each it runs the pure OMS (`sovereign_core::
//! trading::oms`), queues the resulting events on the store's journal without waiting, and hands
//! the reply to a small task that waits for that journal write to be durable. The group-commit
//! writer keeps queue order, so the journal is exactly the order in which the OMS decided.
//! Every change is numbered in the change log (`sovereign_core::trading::changes`), which names
//! what it touched: streams read what changed since a seq from it, after it is durable (a
//! conflated window, a reconnect), and per-change subscribers get each change once durable.
//!
//! The room also holds the journal's storage encoding (`journal`), the synthetic price feed
//! (`feed`), strategy signals (`signals`), the NinjaTrader gateway (`ninjatrader`: an
//! account's orders out as order files once durable, its `outgoing` files back as venue
//! reports) and the `[trading]`/`[signals]` settings.

mod bridge;
pub mod feed;
pub mod journal;
mod ninjatrader;
pub mod settings;
pub mod signals;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::notify::{truncate_chars, Alert, Priority};
use sovereign_core::trading::changes::{touches, ChangeLog, Changed};
use sovereign_core::trading::fixed::Fixed;
use sovereign_core::trading::fixed::{Price, Qty};
use sovereign_core::trading::instrument::{Instruments, Symbol};
use sovereign_core::trading::matching::{Answering, Quote};
use sovereign_core::trading::oms::{
    AccountView, Event, FillRecord, Oms, OmsError, OrderFilter, PositionView, PriceSource,
    ReportAnomaly, ReportOutcome, StateOutcome, Submitted, VenueInstruction, VenueReport,
    CANCELED_HALTED, CANCELED_REDUCING,
};
use sovereign_core::trading::order::{NewOrder, Order, OrderUpdate};
use sovereign_core::trading::risk::{StateChange, StateCommand, TradingState};
use sovereign_store::{Progress, Store, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::audit::Audit;
use crate::notify::Notifier;
use crate::support::Tasks;
use ninjatrader::venue_id;
pub use ninjatrader::VenueMismatch;
pub use settings::TradingSettings;
use settings::{GatewaySettings, VenueSettings};

/// Every way a trading command can fail.
#[derive(Debug, thiserror::Error)]
pub enum TradingError {
    #[error("{0}")]
    Oms(#[from] OmsError),
    #[error("journal: {0}")]
    Journal(StoreError),
    #[error("trading is unavailable: the journal could not be written; restart the engine")]
    JournalFailed,
    #[error("the engine is shutting down")]
    Closed,
}

/// Why the journal could not be replayed at start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading the journal: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Decode(#[from] journal::DecodeError),
}

/// One market-data update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub symbol: Symbol,
    pub price: Price,
    pub bid: Option<Price>,
    pub ask: Option<Price>,
    pub size: Option<Qty>,
    pub source: PriceSource,
    /// When the price was seen (a replayed tick's own time); `None`: now. What the tick
    /// causes (fills, a halt) carries this time.
    pub at: Option<DateTime<Utc>>,
}

/// The reason of the `reducing` a position mismatch with a venue puts an account in.
const MISMATCH_REASON: &str = "venue position mismatch";

/// `ES engine 2, venue 1; …` for people.
fn describe(mismatches: &[VenueMismatch]) -> String {
    mismatches
        .iter()
        .map(|m| {
            let what = m
                .symbol
                .as_ref()
                .map_or_else(|| m.instruments.join(", "), |s| s.to_string());
            format!("{what} engine {}, venue {}", m.engine, m.venue)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a bridge's report post did.
#[derive(Debug, Clone, Default)]
pub struct ReportsTaken {
    pub applied: usize,
    pub duplicates: usize,
    /// (order id, code, message) of each report that could not be applied.
    pub anomalies: Vec<(u64, &'static str, String)>,
}

/// The body and idempotency key of one bridge instruction: a new order's key is its venue id
/// (`sov-<id>`), a cancel's `sov-<id>-cancel`, a change's names the change by its time.
fn bridge_body(
    oms: &Oms,
    b: &settings::BridgeSettings,
    venue_account: &str,
    i: &VenueInstruction,
) -> (String, String) {
    let (id, action) = match i {
        VenueInstruction::Place { order_id } => (*order_id, None),
        VenueInstruction::Cancel { order_id } => (*order_id, Some("cancel")),
        VenueInstruction::Change { order_id, .. } => (*order_id, Some("change")),
    };
    let Some(order) = oms.order(id) else {
        return (String::new(), venue_id(id));
    };
    let key = match action {
        None => venue_id(id),
        Some("cancel") => format!("{}-cancel", venue_id(id)),
        Some(_) => format!(
            "{}-change-{}",
            venue_id(id),
            order.updated_at.timestamp_micros()
        ),
    };
    let ctx = bridge::context(
        order,
        venue_account,
        action.unwrap_or(order.request.side.as_str()),
    );
    (bridge::render(&ctx, &b.fields).to_string(), key)
}

/// A mismatch as the API and the audit trail show it.
pub fn mismatch_json(m: &VenueMismatch) -> Value {
    json!({
        "symbol": m.symbol.as_ref().map(|s| s.as_str()),
        "instruments": m.instruments,
        "engine_qty": m.engine.to_string(),
        "venue_qty": m.venue.to_string(),
        "venue_avg_price": m.venue_avg_price.map(|p| p.to_string()),
    })
}

/// How often the last prices are journaled, so a restart resumes from them.
const MARK_EVERY: u32 = 60;

/// A durable-write future the caller awaits before it answers anyone.
type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;
type Reply<T> = oneshot::Sender<Result<(T, Option<Durable>), TradingError>>;
type Deliver = Box<dyn FnOnce() + Send>;
/// Decides orders from the OMS state at the moment they are submitted (signals, rebalancing).
pub type Planner = Box<dyn FnOnce(&Oms) -> Result<Vec<NewOrder>, Invalid> + Send>;

/// What changed through a seq, as it stood then: the orders and positions touched and the new
/// fills (one change's, for a per-change subscriber; or what changed since a seq).
#[derive(Debug, Clone)]
pub struct Published {
    /// The last change it covers, by its place in this run's stream (1, 2, …): a stream's event
    /// id is `<epoch>-<seq>`.
    pub seq: u64,
    pub orders: Vec<Order>,
    pub fills: Vec<FillRecord>,
    pub positions: Vec<PositionView>,
}

/// What subscribers are sent: the published batches made durable together, in order (one
/// item per group commit, so a subscriber wakes once for a burst, not once per command).
pub type Durables = Arc<[Published]>;

/// How many entries the change log keeps (an order, a fill or a position a change touched;
/// 24 bytes each): a stream can resume after any of roughly the last 40,000 orders.
const CHANGES_KEPT: usize = 1 << 17;

/// Who asked for an operator action, and why (for the audit trail).
#[derive(Debug, Clone)]
pub struct Asked {
    pub actor: String,
    pub reason: Option<String>,
}

enum Command {
    Submit(NewOrder, Reply<Submitted>),
    Cancel(u64, Reply<Order>),
    Modify {
        id: u64,
        qty: Option<Qty>,
        limit_price: Option<Price>,
        stop_price: Option<Price>,
        reply: Reply<Order>,
    },
    CancelAll(Option<String>, Reply<Vec<u64>>),
    /// Close every position of the account (`None`: every account); who asked and why go on
    /// the audit trail.
    Flatten(Option<String>, Asked, Reply<Vec<Submitted>>),
    SetState(Option<String>, StateCommand, Reply<Vec<StateOutcome>>),
    Ticks(Vec<Tick>, Option<Reply<usize>>),
    Planned(Planner, Reply<Vec<Submitted>>),
    /// Time passes: expire day orders whose session closed.
    Clock,
    /// What NinjaTrader's `outgoing` of venue `usize` says now.
    VenueLook(usize, ninjatrader::Look),
    /// A batch venue `usize` could not be given, and why.
    VenueUnsent(usize, Vec<Sent>, String),
    /// How a bridge answered one instruction.
    BridgeAnswered(usize, Sent, bridge::Delivery),
    /// A bridge's reports, as posted (verified and read in the actor, which holds the secret).
    BridgeReports {
        gateway: String,
        body: Vec<u8>,
        signature: Option<String>,
        reply: Reply<ReportsTaken>,
    },
    /// Every gateway as it stands.
    Gateways(oneshot::Sender<Vec<GatewayView>>),
    /// Reconcile a gateway's account now; with `adopt`, take the venue's positions.
    Reconcile {
        gateway: String,
        adopt: bool,
        reply: Reply<GatewayView>,
    },
    /// Compute from the OMS; the returned closure delivers the answer (once it is durable).
    Read(Box<dyn FnOnce(&Oms) -> Deliver + Send>),
    /// What changed after a seq (through another), read once it is durable; `None`: gone.
    Changes {
        after: u64,
        through: Option<u64>,
        kept: usize,
        reply: oneshot::Sender<Option<Published>>,
    },
    /// Finish the commands queued before this one, then end the actor.
    Stop(oneshot::Sender<()>),
}

/// Handle to the trading actor. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Trading(Arc<Shared>);

impl std::ops::Deref for Trading {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every clone of the handle shares.
pub struct Shared {
    tx: mpsc::UnboundedSender<Command>,
    failed: Arc<AtomicBool>,
    instruments: Arc<Instruments>,
    events: broadcast::Sender<Durables>,
    spot: broadcast::Sender<Arc<Vec<Tick>>>,
    synthetic_feed: bool,
    epoch: u64,
    /// The newest change's seq (its events may not be durable yet).
    seq: Arc<AtomicU64>,
}

impl Trading {
    /// Rebuild the OMS from the journal, then start the actor.
    /// `notifier` hears of every halt (P0) and of every other trading-state change (P2).
    /// The clock (day-order expiry) and, when configured, the synthetic feed run on `tasks`.
    pub async fn start(
        settings: TradingSettings,
        store: Store,
        notifier: Notifier,
        audit: Audit,
        tasks: Tasks,
    ) -> Result<(Trading, usize), ReplayError> {
        let instruments = Arc::new(settings.instruments.clone());
        let mut oms = Oms::new(
            settings.instruments.clone(),
            settings.paper,
            &settings.accounts,
        );
        let mut after = 0i64;
        let mut replayed = 0usize;
        loop {
            let page = store.read_journal(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                for event in journal::decode_row(entry)? {
                    oms.apply(&event);
                    replayed += 1;
                }
            }
        }
        // The synthetic walk resumes from the last journaled prices.
        let last_prices: Vec<(Symbol, Price)> = oms
            .quotes()
            .into_iter()
            .filter_map(|(s, q)| Some((s, q.last?)))
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut venues = Vec::new();
        for (v, g) in settings.gateways.iter().enumerate() {
            let (outbox, instructions) = mpsc::unbounded_channel();
            match &g.venue {
                VenueSettings::NinjaTrader(nt) => {
                    oms.route(&g.account, Box::new(Answering("ninjatrader")));
                    if let Err(e) = std::fs::create_dir_all(nt.dir.join("incoming")) {
                        tracing::error!(dir = %nt.dir.display(), error = %e, "cannot create NinjaTrader's incoming folder");
                    }
                    let unsent = tx.clone();
                    tasks.spawn(ninjatrader::writer(
                        nt.dir.clone(),
                        instructions,
                        move |batch, why| drop(unsent.send(Command::VenueUnsent(v, batch, why))),
                    ));
                    let looks = tx.clone();
                    tasks.spawn(ninjatrader::reader(
                        nt.clone(),
                        g.venue_account.clone(),
                        tasks.clone(),
                        move |look| looks.send(Command::VenueLook(v, look)).is_ok(),
                    ));
                }
                VenueSettings::Bridge(b) => {
                    oms.route(&g.account, Box::new(Answering("webhook")));
                    // Orders a stop (or a crash) caught before the bridge answered go again,
                    // under the same idempotency key: the bridge makes them once.
                    oms.resend_submitted(&g.account);
                    let answers = tx.clone();
                    tasks.spawn(bridge::sender(
                        b.clone(),
                        instructions,
                        tasks.clone(),
                        move |sent, delivery| {
                            answers
                                .send(Command::BridgeAnswered(v, sent, delivery))
                                .is_ok()
                        },
                    ));
                }
            }
            venues.push(Venue {
                settings: g.clone(),
                outbox,
                watch: ninjatrader::Watch::default(),
            });
        }
        let (events, _) = broadcast::channel(4096);
        let (spot, _) = broadcast::channel(1024);
        let failed = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let publisher = Arc::new(Publisher {
            pending: std::sync::Mutex::default(),
            subscribers: events.clone(),
        });
        let told = publisher.clone();
        store.on_finished(move |progress| told.deliver(progress));
        let actor = Actor {
            notifier,
            audit,
            tasks: tasks.clone(),
            publisher,
            changes: ChangeLog::new(CHANGES_KEPT),
            seq: seq.clone(),
            oms,
            store,
            events: events.clone(),
            spot: spot.clone(),
            failed: failed.clone(),
            clock_ticks: 0,
            venues,
        };
        tasks.spawn(actor.run(rx));
        let clock = tx.clone();
        let stop = tasks.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.stopped() => return,
                }
                if clock.send(Command::Clock).is_err() {
                    return;
                }
            }
        });
        let trading = Trading(Arc::new(Shared {
            tx,
            failed,
            instruments,
            events,
            spot,
            synthetic_feed: settings.synthetic_feed,
            epoch: Utc::now().timestamp_micros().unsigned_abs(),
            seq,
        }));
        if settings.synthetic_feed {
            tasks.spawn(feed::run(
                trading.clone(),
                settings.instruments,
                last_prices,
                settings.feed_interval,
                Utc::now().timestamp_micros() as u64,
                tasks.clone(),
            ));
        }
        Ok((trading, replayed))
    }

    /// Finish what is queued, then end the actor (later commands get `Closed`). The clock
    /// and the feed stop with the tasks they were started on.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Send a command and wait for its answer, then for its events to be durable: the caller
    /// awaits the journal write itself, so no extra task sits between the writer and it.
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, TradingError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| TradingError::Closed)?;
        let (value, durable) = rx.await.map_err(|_| TradingError::Closed)??;
        match durable {
            None => Ok(value),
            Some(d) => match d.await {
                Ok(()) => Ok(value),
                Err(StoreError::Closed) => Err(TradingError::Closed),
                Err(e) => {
                    // Memory is ahead of the journal: stop trading rather than diverge further.
                    tracing::error!(error = %e, "journal write failed; trading stopped");
                    self.failed.store(true, Ordering::Release);
                    Err(TradingError::Journal(e))
                }
            },
        }
    }

    pub async fn submit(&self, order: NewOrder) -> Result<Submitted, TradingError> {
        self.call(|r| Command::Submit(order, r)).await
    }

    /// Plan orders from the current state and submit them, atomically: nothing else happens in
    /// between, so a signal's "reverse the position" sees the position it reverses.
    pub async fn submit_planned(&self, planner: Planner) -> Result<Vec<Submitted>, TradingError> {
        self.call(|r| Command::Planned(planner, r)).await
    }

    pub async fn cancel(&self, id: u64) -> Result<Order, TradingError> {
        self.call(|r| Command::Cancel(id, r)).await
    }

    pub async fn modify(
        &self,
        id: u64,
        qty: Option<Qty>,
        limit_price: Option<Price>,
        stop_price: Option<Price>,
    ) -> Result<Order, TradingError> {
        self.call(|reply| Command::Modify {
            id,
            qty,
            limit_price,
            stop_price,
            reply,
        })
        .await
    }

    pub async fn cancel_all(&self, account: Option<String>) -> Result<Vec<u64>, TradingError> {
        self.call(|r| Command::CancelAll(account, r)).await
    }

    /// Close every position of `account` (`None`: every account) at market; recorded on the
    /// audit trail with who asked and why.
    pub async fn flatten(
        &self,
        account: Option<String>,
        asked: Asked,
    ) -> Result<Vec<Submitted>, TradingError> {
        self.call(|r| Command::Flatten(account, asked, r)).await
    }

    /// Change one account's trading state, or every account's (`None`).
    pub async fn set_state(
        &self,
        account: Option<String>,
        cmd: StateCommand,
    ) -> Result<Vec<StateOutcome>, TradingError> {
        self.call(|r| Command::SetState(account, cmd, r)).await
    }

    /// Apply market data and wait until whatever it caused is durable.
    pub async fn ticks(&self, ticks: Vec<Tick>) -> Result<usize, TradingError> {
        self.call(|r| Command::Ticks(ticks, Some(r))).await
    }

    /// The instruments this engine trades (fixed at start).
    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    /// Whether the actor has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Apply market data without waiting (feeds).
    pub fn push_ticks(&self, ticks: Vec<Tick>) {
        let _ = self.tx.send(Command::Ticks(ticks, None));
    }

    /// Read the OMS state (a consistent snapshot between commands).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Oms) -> T + Send + 'static,
    ) -> Result<T, TradingError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Read(Box::new(move |oms| {
                let value = f(oms);
                Box::new(move || {
                    let _ = tx.send(value);
                })
            })))
            .map_err(|_| TradingError::Closed)?;
        rx.await.map_err(|_| self.closed_or_failed())
    }

    fn closed_or_failed(&self) -> TradingError {
        if self.failed.load(Ordering::Acquire) {
            TradingError::JournalFailed
        } else {
            TradingError::Closed
        }
    }

    pub async fn order(&self, id: u64) -> Result<Option<Order>, TradingError> {
        self.read(move |o| o.order(id).cloned()).await
    }

    pub async fn orders(
        &self,
        filter: OrderFilter,
        limit: usize,
    ) -> Result<Vec<Order>, TradingError> {
        self.read(move |o| {
            o.check_account(filter.account.as_deref())?;
            Ok(o.orders(&filter, limit))
        })
        .await?
    }

    pub async fn positions(
        &self,
        account: Option<String>,
    ) -> Result<Vec<PositionView>, TradingError> {
        self.read(move |o| {
            o.check_account(account.as_deref())?;
            Ok(o.positions(account.as_deref()))
        })
        .await?
    }

    pub async fn fills(
        &self,
        account: Option<String>,
        limit: usize,
    ) -> Result<Vec<FillRecord>, TradingError> {
        self.read(move |o| {
            o.check_account(account.as_deref())?;
            Ok(o.fills(account.as_deref(), limit))
        })
        .await?
    }

    pub async fn accounts(&self) -> Result<Vec<AccountView>, TradingError> {
        self.read(|o| o.accounts(Utc::now())).await
    }

    /// Symbols whose prices come from outside: the synthetic feed no longer moves them.
    pub async fn external_symbols(&self) -> Result<Vec<Symbol>, TradingError> {
        self.read(|o| o.external_symbols().cloned().collect()).await
    }

    /// Whether the synthetic feed runs (for the symbols no external price has reached).
    pub fn synthetic_feed(&self) -> bool {
        self.synthetic_feed
    }

    pub async fn quotes(&self) -> Result<Vec<(Symbol, Quote)>, TradingError> {
        self.read(|o| o.quotes()).await
    }

    /// Every gateway: connection, last report, reconciliation.
    pub async fn gateways(&self) -> Result<Vec<GatewayView>, TradingError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Gateways(tx))
            .map_err(|_| TradingError::Closed)?;
        rx.await.map_err(|_| self.closed_or_failed())
    }

    /// Compare a gateway's positions now; with `adopt`, take the venue's as the engine's.
    pub async fn reconcile(
        &self,
        gateway: String,
        adopt: bool,
    ) -> Result<GatewayView, TradingError> {
        self.call(|reply| Command::Reconcile {
            gateway,
            adopt,
            reply,
        })
        .await
    }

    /// A bridge's reports (`POST /api/gateways/{name}/reports`), with the signature it sent.
    pub async fn bridge_reports(
        &self,
        gateway: String,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> Result<ReportsTaken, TradingError> {
        self.call(|reply| Command::BridgeReports {
            gateway,
            body,
            signature,
            reply,
        })
        .await
    }

    /// Each change once it is durable, as it stood then (the changes of one group commit
    /// together).
    pub fn subscribe(&self) -> broadcast::Receiver<Durables> {
        self.events.subscribe()
    }

    /// This run's stream epoch: event ids are `<epoch>-<seq>`; another run has another.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The newest change's seq (its events may not be durable yet).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The seq a stream's event id (a `Last-Event-ID`) names, when it is one of this run's.
    pub fn seq_of(&self, event_id: &str) -> Option<u64> {
        let (epoch, seq) = event_id.trim().split_once('-')?;
        (epoch.parse::<u64>().ok()? == self.epoch).then_some(seq.parse::<u64>().ok()?)
    }

    /// What changed after `after` through `through` (`None`: the newest change), read once it
    /// is durable: the orders and positions touched as they stand now (at most `kept` orders)
    /// and the newest `kept` fills. `None` when the change log no longer reaches back to
    /// `after` (the stream says `reset`).
    pub async fn changes(
        &self,
        after: u64,
        through: Option<u64>,
        kept: usize,
    ) -> Result<Option<Published>, TradingError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Changes {
                after,
                through,
                kept,
                reply,
            })
            .map_err(|_| TradingError::Closed)?;
        rx.await.map_err(|_| self.closed_or_failed())
    }

    /// Market data as it arrives.
    pub fn subscribe_spot(&self) -> broadcast::Receiver<Arc<Vec<Tick>>> {
        self.spot.subscribe()
    }
}

struct Actor {
    notifier: Notifier,
    audit: Audit,
    tasks: Tasks,
    oms: Oms,
    store: Store,
    events: broadcast::Sender<Durables>,
    spot: broadcast::Sender<Arc<Vec<Tick>>>,
    failed: Arc<AtomicBool>,
    /// Delivers published batches once durable.
    publisher: Arc<Publisher>,
    /// What each recent change touched.
    changes: ChangeLog,
    /// The newest change's seq, for the handle.
    seq: Arc<AtomicU64>,
    /// Clock commands seen (prices are journaled every `MARK_EVERY`).
    clock_ticks: u32,
    /// Answering venues, in the order of the settings.
    venues: Vec<Venue>,
}

/// One instruction for a venue as it goes out: an OIF line, or a bridge's JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub order_id: u64,
    /// A new order (a cancel or change otherwise).
    pub place: bool,
    pub body: String,
    /// The same on every attempt at the same instruction (a bridge's idempotency key).
    pub key: String,
}

/// An answering venue as the actor keeps it.
struct Venue {
    settings: GatewaySettings,
    /// Where its batches go, each with the journal barrier it waits for.
    outbox: mpsc::UnboundedSender<(Durable, Vec<Sent>)>,
    watch: ninjatrader::Watch,
}

/// A gateway as `GET /api/gateways` shows it.
#[derive(Debug, Clone)]
pub struct GatewayView {
    pub name: String,
    pub kind: &'static str,
    pub account: String,
    pub venue_account: String,
    /// `connected`, `disconnected` or `unknown` (no connection state seen).
    pub connection: &'static str,
    pub last_report_at: Option<DateTime<Utc>>,
    /// `ok`, `mismatch` (declared), `pending` (a mismatch within its grace), `unread` (the
    /// venue's positions not read yet) or `none` (the venue shows no positions).
    pub reconciliation: &'static str,
    pub mismatches: Vec<VenueMismatch>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Open orders the venue no longer shows: their state is unknown.
    pub unknown_orders: Vec<u64>,
    /// Cancels and changes waiting for the connection.
    pub held: usize,
    pub flatten_asked_at: Option<DateTime<Utc>>,
    pub flat_at: Option<DateTime<Utc>>,
}

impl Venue {
    fn view(&self) -> GatewayView {
        let g = &self.settings;
        let w = &self.watch;
        let nt = matches!(g.venue, VenueSettings::NinjaTrader(_));
        GatewayView {
            name: g.name.clone(),
            kind: if nt { "ninjatrader" } else { "webhook" },
            account: g.account.clone(),
            venue_account: g.venue_account.clone(),
            connection: match w.connection() {
                Some(true) => "connected",
                Some(false) => "disconnected",
                None => "unknown",
            },
            last_report_at: w.last_report_at,
            reconciliation: if !nt {
                "none"
            } else if w.look.is_none() {
                "unread"
            } else if w.declared {
                "mismatch"
            } else if !w.mismatches.is_empty() {
                "pending"
            } else {
                "ok"
            },
            mismatches: w.mismatches.clone(),
            checked_at: w.checked_at,
            unknown_orders: w.unknown.iter().copied().collect(),
            held: w.held.len(),
            flatten_asked_at: w.flatten_asked,
            flat_at: w.flat_at,
        }
    }
}

/// Delivers published batches to subscribers in the order they were queued, each once its
/// journal row is durable. The store's writer
/// tells it after each commit (on its own thread: no task wakes up to publish), and the actor
/// after queueing one, in case the write finished first.
struct Publisher {
    /// Batches waiting for their write, each with the store's count of queued writes once its
    /// journal row was queued: it is durable when the writer has finished that many.
    pending: std::sync::Mutex<std::collections::VecDeque<(u64, Published)>>,
    subscribers: broadcast::Sender<Durables>,
}

impl Publisher {
    /// Queue `published`, whose journal row `store` has just queued; send it at once when the
    /// write has finished already.
    fn queue(&self, store: &Store, published: Published) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.push_back((store.queued(), published));
        self.send_ready(pending, store.progress());
    }

    /// What the writer calls after each commit.
    fn deliver(&self, progress: Progress) {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.send_ready(pending, progress);
    }

    /// Send what `progress` made durable, in order, as one item (one wake-up of each
    /// subscriber per commit, not per command). Sent under the queue's lock, so the writer and
    /// the actor never send out of order.
    fn send_ready(
        &self,
        mut pending: std::sync::MutexGuard<'_, std::collections::VecDeque<(u64, Published)>>,
        progress: Progress,
    ) {
        let ready = pending
            .iter()
            .take_while(|(ticket, _)| *ticket <= progress.finished)
            .count();
        if ready == 0 {
            return;
        }
        let ready = pending.drain(..ready);
        if progress.poisoned {
            // Not durable: never shown (the trading core stops on a failed write).
            return;
        }
        let durables: Durables = ready.map(|(_, published)| published).collect();
        let _ = self.subscribers.send(durables);
    }
}

impl Actor {
    /// Run `deliver` once everything the OMS has decided so far is durable: an answer (a read,
    /// a duplicate client order id, a refusal) must never show state a crash could still lose.
    fn after_durable(&self, deliver: Deliver) {
        if self.store.caught_up() {
            deliver();
            return;
        }
        let barrier = self.store.barrier();
        self.tasks.spawn(async move {
            let _ = barrier.await;
            deliver();
        });
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        // What recovery left for a venue (a bridge's unanswered orders) goes first.
        self.instruct(Utc::now());
        while let Some(cmd) = rx.recv().await {
            if self.store.poisoned() {
                self.failed.store(true, Ordering::Release);
            }
            if self.failed.load(Ordering::Acquire) {
                // Memory may be ahead of the journal: answer nothing from it.
                refuse(cmd);
                continue;
            }
            let cmd = match cmd {
                Command::Read(f) => {
                    let deliver = f(&self.oms);
                    self.after_durable(deliver);
                    continue;
                }
                Command::Changes {
                    after,
                    through,
                    kept,
                    reply,
                } => {
                    let changed = self
                        .changes
                        .since(after, through, kept)
                        .map(|c| self.published(c));
                    self.after_durable(Box::new(move || {
                        let _ = reply.send(changed);
                    }));
                    continue;
                }
                Command::Stop(done) => {
                    // The last prices, so the next start resumes from them.
                    let mut out = Vec::new();
                    self.oms.mark_prices(Utc::now(), &mut out);
                    if !out.is_empty() {
                        let (tx, _rx) = oneshot::channel();
                        self.commit(out, tx, Ok(()));
                    }
                    self.audit.checkpoint_journal();
                    // Answered once everything decided so far is durable.
                    self.after_durable(Box::new(move || {
                        let _ = done.send(());
                    }));
                    return;
                }
                cmd => cmd,
            };
            let now = Utc::now();
            let mut out = Vec::new();
            match cmd {
                Command::Submit(order, reply) => {
                    let r = self
                        .oms
                        .submit(order, now, &mut out)
                        .map_err(TradingError::from);
                    self.commit(out, reply, r);
                }
                Command::Cancel(id, reply) => {
                    let r = self
                        .oms
                        .cancel(id, "canceled by request", now, &mut out)
                        .map_err(TradingError::from);
                    self.commit(out, reply, r);
                }
                Command::Modify {
                    id,
                    qty,
                    limit_price,
                    stop_price,
                    reply,
                } => {
                    let r = self
                        .oms
                        .modify(id, qty, limit_price, stop_price, now, &mut out)
                        .map_err(TradingError::from);
                    self.commit(out, reply, r);
                }
                Command::CancelAll(account, reply) => {
                    let r = self
                        .oms
                        .cancel_all(account.as_deref(), now, &mut out)
                        .map_err(TradingError::from);
                    self.commit(out, reply, r);
                }
                Command::Flatten(account, asked, reply) => {
                    let r = self
                        .oms
                        .flatten(account.as_deref(), now, &mut out)
                        .map_err(TradingError::from);
                    if let Ok(done) = &r {
                        self.audit.record_at(
                            now,
                            &asked.actor,
                            "trading.flatten",
                            json!({
                                "account": account.as_deref().unwrap_or("all"),
                                "reason": asked.reason,
                                "orders": done.iter().map(|d| d.order.id.to_string()).collect::<Vec<_>>(),
                            }),
                        );
                        for v in &mut self.venues {
                            if account.as_ref().is_none_or(|a| *a == v.settings.account) {
                                v.watch.flatten_asked = Some(now);
                                v.watch.flat_at = None;
                            }
                        }
                    }
                    self.commit(out, reply, r);
                }
                Command::SetState(account, cmd, reply) => {
                    let r = self
                        .oms
                        .set_state(account.as_deref(), &cmd, now, &mut out)
                        .map_err(TradingError::from);
                    self.commit(out, reply, r);
                }
                Command::Ticks(mut ticks, reply) => {
                    ticks.retain(|t| {
                        let quote = Quote {
                            last: Some(t.price),
                            bid: t.bid,
                            ask: t.ask,
                        };
                        let taken = t.source == PriceSource::External
                            && !self.oms.is_external(&t.symbol);
                        let at = t.at.unwrap_or(now);
                        let applied = self.oms.on_quote(&t.symbol, quote, t.source, at, &mut out);
                        if taken {
                            tracing::info!(symbol = %t.symbol, "an external price arrived: the synthetic feed stops for this symbol");
                        }
                        applied
                    });
                    let n = ticks.len();
                    if n > 0 {
                        let _ = self.spot.send(Arc::new(ticks));
                    }
                    match reply {
                        Some(reply) => self.commit(out, reply, Ok(n)),
                        None => {
                            let (tx, _rx) = oneshot::channel();
                            self.commit(out, tx, Ok(n));
                        }
                    }
                }
                Command::Planned(planner, reply) => {
                    let r = match planner(&self.oms) {
                        Ok(orders) => orders
                            .into_iter()
                            .map(|o| self.oms.submit(o, now, &mut out))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(TradingError::from),
                        Err(e) => Err(TradingError::Oms(OmsError::Invalid(e))),
                    };
                    self.commit(out, reply, r);
                }
                Command::Clock => {
                    self.oms.expire_day_orders(now, &mut out);
                    self.clock_ticks = self.clock_ticks.wrapping_add(1);
                    for v in 0..self.venues.len() {
                        self.check_venue(v, now, &mut out);
                    }
                    if self.clock_ticks.is_multiple_of(MARK_EVERY) {
                        self.oms.mark_prices(now, &mut out);
                        // Now and then the trail pins the journal's head.
                        self.audit.checkpoint_journal();
                    }
                    if !out.is_empty() {
                        let (tx, _rx) = oneshot::channel();
                        self.commit(out, tx, Ok(()));
                    }
                }
                Command::VenueLook(v, look) => self.on_look(v, look, now),
                Command::VenueUnsent(v, batch, why) => self.on_unsent(v, batch, why, now),
                Command::BridgeAnswered(v, sent, delivery) => {
                    self.on_answer(v, sent, delivery, now)
                }
                Command::BridgeReports {
                    gateway,
                    body,
                    signature,
                    reply,
                } => {
                    let r =
                        self.bridge_reports(&gateway, &body, signature.as_deref(), now, &mut out);
                    self.commit(out, reply, r);
                }
                Command::Gateways(reply) => {
                    let views = self.venues.iter().map(Venue::view).collect();
                    self.after_durable(Box::new(move || drop(reply.send(views))));
                }
                Command::Reconcile {
                    gateway,
                    adopt,
                    reply,
                } => {
                    let r = self.reconcile(&gateway, adopt, now, &mut out);
                    self.commit(out, reply, r);
                }
                Command::Read(_) | Command::Changes { .. } | Command::Stop(_) => {}
            }
            self.instruct(now);
        }
    }

    /// Send what the OMS asks of its venues, each batch once the journal holds what led to it.
    /// An order the venue cannot be given (an instrument without a NinjaTrader name, an IOC)
    /// is rejected at once rather than left waiting; cancels and changes for a venue whose
    /// connection is down wait for it.
    fn instruct(&mut self, now: DateTime<Utc>) {
        let instructions = self.oms.take_instructions();
        if instructions.is_empty() {
            return;
        }
        let mut batches: Vec<Vec<Sent>> = vec![Vec::new(); self.venues.len()];
        let mut refused = Vec::new();
        for i in &instructions {
            let (id, place) = match i {
                VenueInstruction::Place { order_id } => (*order_id, true),
                VenueInstruction::Cancel { order_id }
                | VenueInstruction::Change { order_id, .. } => (*order_id, false),
            };
            let account = self.oms.order(id).map(|o| o.request.account.clone());
            let Some(v) = self
                .venues
                .iter()
                .position(|v| Some(&v.settings.account) == account.as_ref())
            else {
                continue;
            };
            let venue = &self.venues[v];
            let body = match &venue.settings.venue {
                VenueSettings::NinjaTrader(nt) => {
                    ninjatrader::line(&self.oms, nt, &venue.settings.venue_account, i, now)
                        .map(|line| (line, venue_id(id)))
                }
                VenueSettings::Bridge(b) => {
                    Ok(bridge_body(&self.oms, b, &venue.settings.venue_account, i))
                }
            };
            match body {
                Ok((body, key)) => {
                    let sent = Sent {
                        order_id: id,
                        place,
                        body,
                        key,
                    };
                    if !place && venue.watch.connection() == Some(false) {
                        self.venues[v].watch.held.push(sent);
                    } else {
                        batches[v].push(sent);
                    }
                }
                Err(e) => refused.push((id, e)),
            }
        }
        let mut out = Vec::new();
        for (id, e) in refused {
            let report = VenueReport::Rejected {
                code: e.code.to_string(),
                reason: e.message,
            };
            let _ = self.oms.report(id, report, now, &mut out);
        }
        if !out.is_empty() {
            let (tx, _rx) = oneshot::channel();
            self.commit(out, tx, Ok(()));
        }
        for (v, batch) in batches.into_iter().enumerate() {
            self.send_batch(v, batch);
        }
    }

    /// A bridge's answer to one instruction. A new order it took is `accepted` (and stays so
    /// for a fire-and-forget bridge); one it refused, or that found no bridge after every
    /// retry, is rejected with the code; one caught by a stop waits for the next start.
    fn on_answer(&mut self, v: usize, sent: Sent, delivery: bridge::Delivery, now: DateTime<Utc>) {
        let VenueSettings::Bridge(b) = &self.venues[v].settings.venue else {
            return;
        };
        let fire_and_forget = b.fire_and_forget;
        let name = self.venues[v].settings.name.clone();
        let id = sent.order_id;
        let mut out = Vec::new();
        let report = match delivery {
            bridge::Delivery::Accepted if sent.place => Some(VenueReport::Accepted),
            // Nobody will report the cancel: the bridge taking it is all there is to know.
            bridge::Delivery::Accepted if fire_and_forget && sent.key.ends_with("-cancel") => {
                Some(VenueReport::Canceled {
                    reason: "canceled at the bridge".into(),
                })
            }
            bridge::Delivery::Accepted => None,
            bridge::Delivery::Rejected {
                code: "bridge_stopped",
                ..
            } => None,
            bridge::Delivery::Rejected { code, reason } => {
                tracing::warn!(gateway = %name, order_id = id, code, "{reason}");
                self.audit.record(
                    "engine",
                    "trading.bridge_refused",
                    json!({"gateway": name, "order_id": id.to_string(), "code": code, "message": reason}),
                );
                if sent.place {
                    Some(VenueReport::Rejected {
                        code: code.into(),
                        reason,
                    })
                } else {
                    self.oms.forget_cancel(id);
                    self.alert(
                        Priority::P1,
                        format!("{name}: the bridge did not take a cancel or change"),
                        format!("order {id}: {reason}"),
                        json!({"gateway": name, "order_id": id.to_string(), "code": code}),
                        format!("bridge-refused:{name}"),
                    );
                    None
                }
            }
        };
        if let Some(report) = report {
            if let Err(anomaly) = self.oms.report(id, report, now, &mut out) {
                self.anomaly(id, &anomaly);
            }
        }
        if !out.is_empty() {
            let (tx, _rx) = oneshot::channel();
            self.commit(out, tx, Ok(()));
        }
    }

    /// A bridge's reports: the signature checked against the gateway's secret, then each
    /// report through the OMS (duplicates change nothing; anomalies are recorded).
    fn bridge_reports(
        &mut self,
        gateway: &str,
        body: &[u8],
        signature: Option<&str>,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<ReportsTaken, TradingError> {
        let invalid = |code: &'static str, field: &str, message: String| {
            TradingError::Oms(OmsError::Invalid(Invalid::new(code, field, message)))
        };
        let v = self
            .venues
            .iter()
            .position(|v| v.settings.name == gateway)
            .ok_or_else(|| invalid("unknown_gateway", "name", format!("no gateway {gateway:?}")))?;
        let VenueSettings::Bridge(b) = &self.venues[v].settings.venue else {
            return Err(invalid(
                "venue_unsupported",
                "name",
                format!("gateway {gateway:?} reads NinjaTrader's files; it takes no reports"),
            ));
        };
        if !signature.is_some_and(|sig| bridge::verify(&b.secret, body, sig)) {
            return Err(invalid(
                "bad_signature",
                bridge::SIGNATURE_HEADER,
                format!(
                    "{} must be sha256=<hex HMAC-SHA256 of the body under the gateway's secret>",
                    bridge::SIGNATURE_HEADER
                ),
            ));
        }
        let reports =
            bridge::parse_reports(body).map_err(|e| TradingError::Oms(OmsError::Invalid(e)))?;
        let account = self.venues[v].settings.account.clone();
        let mut taken = ReportsTaken::default();
        for (order, report) in reports {
            let id = match order {
                bridge::OrderRef::Id(id) => id,
                bridge::OrderRef::Client(c) => self
                    .oms
                    .order_by_client_id(&account, &c)
                    .map_or(0, |o| o.id),
            };
            // Only this gateway's orders: another account's order is not this bridge's.
            let result = if self
                .oms
                .order(id)
                .is_some_and(|o| o.request.account == account)
            {
                self.oms.report(id, report, now, out)
            } else {
                Err(ReportAnomaly::UnknownOrder(id))
            };
            match result {
                Ok(ReportOutcome::Applied) => taken.applied += 1,
                Ok(ReportOutcome::Duplicate) => taken.duplicates += 1,
                Err(anomaly) => {
                    self.anomaly(id, &anomaly);
                    taken
                        .anomalies
                        .push((id, anomaly.code(), anomaly.to_string()));
                }
            }
        }
        self.venues[v].watch.last_report_at = Some(now);
        Ok(taken)
    }

    fn send_batch(&self, v: usize, batch: Vec<Sent>) {
        if !batch.is_empty() {
            let barrier: Durable = Box::pin(self.store.barrier());
            let _ = self.venues[v].outbox.send((barrier, batch));
        }
    }

    /// What NinjaTrader's folder says now: the order readings become reports, then the
    /// connection, the orders it no longer shows and the positions are looked at.
    fn on_look(&mut self, v: usize, look: ninjatrader::Look, now: DateTime<Utc>) {
        let mut out = Vec::new();
        for (order_id, reading) in &look.changed {
            let reports = match self.oms.order(*order_id) {
                Some(_) => ninjatrader::reports(&self.oms, *order_id, reading),
                // A file for an order this engine never sent: recorded as the anomaly it is.
                None => vec![VenueReport::Accepted],
            };
            for report in reports {
                match self.oms.report(*order_id, report, now, &mut out) {
                    Ok(_) => self.venues[v].watch.last_report_at = Some(now),
                    Err(anomaly) => self.anomaly(*order_id, &anomaly),
                }
            }
        }
        for (file, code, message) in &look.malformed {
            let name = &self.venues[v].settings.name;
            tracing::warn!(gateway = %name, file = %file, code, "{message}");
            self.audit.record(
                "engine",
                "trading.venue_malformed",
                json!({"gateway": name, "file": file, "code": code, "message": message}),
            );
        }
        let was = self.venues[v].watch.connection();
        let up = look.connection;
        self.venues[v].watch.look = Some(look);
        if up != was && (up == Some(false) || was == Some(false)) {
            self.on_connection(v, up != Some(false));
        }
        self.check_venue(v, now, &mut out);
        if !out.is_empty() {
            let (tx, _rx) = oneshot::channel();
            self.commit(out, tx, Ok(()));
        }
    }

    fn anomaly(&self, order_id: u64, anomaly: &ReportAnomaly) {
        tracing::warn!(code = anomaly.code(), "{anomaly}");
        self.audit.record(
            "engine",
            "trading.venue_anomaly",
            json!({"order_id": order_id.to_string(), "code": anomaly.code(), "message": anomaly.to_string()}),
        );
    }

    /// The venue's connection went down (new orders are denied, cancels wait) or came back
    /// (what waited goes out).
    fn on_connection(&mut self, v: usize, up: bool) {
        let account = self.venues[v].settings.account.clone();
        let name = self.venues[v].settings.name.clone();
        self.oms.set_venue_connected(&account, up);
        let (kind, priority, title) = if up {
            (
                "trading.venue_connected",
                Priority::P2,
                format!("{name}: NinjaTrader connected again"),
            )
        } else {
            (
                "trading.venue_disconnected",
                Priority::P1,
                format!("{name}: NinjaTrader disconnected"),
            )
        };
        tracing::warn!(gateway = %name, account = %account, "{title}");
        self.audit
            .record("engine", kind, json!({"gateway": name, "account": account}));
        self.alert(
            priority,
            title,
            if up {
                "orders to the account are taken again; held cancels are sent".into()
            } else {
                "new orders to the account are refused (venue_disconnected); cancels wait for the connection".into()
            },
            json!({"gateway": name, "account": account}),
            format!("venue-connection:{name}"),
        );
        if up {
            let held = std::mem::take(&mut self.venues[v].watch.held);
            self.send_batch(v, held);
            // A fresh look at the positions after a reconnect: its own grace.
            self.venues[v].watch.mismatch_since = None;
        }
    }

    /// A batch the venue could not be given: its new orders are rejected, its cancels may be
    /// asked again.
    fn on_unsent(&mut self, v: usize, batch: Vec<Sent>, why: String, now: DateTime<Utc>) {
        let name = self.venues[v].settings.name.clone();
        tracing::error!(gateway = %name, "{why}");
        self.audit.record(
            "engine",
            "trading.venue_unwritable",
            json!({"gateway": name, "orders": batch.iter().map(|s| s.order_id.to_string()).collect::<Vec<_>>(), "message": why}),
        );
        self.alert(
            Priority::P1,
            format!("{name}: orders cannot reach the venue"),
            why.clone(),
            json!({"gateway": name}),
            format!("venue-unwritable:{name}"),
        );
        let mut out = Vec::new();
        for sent in batch {
            if sent.place {
                let report = VenueReport::Rejected {
                    code: "venue_unwritable".into(),
                    reason: why.clone(),
                };
                let _ = self.oms.report(sent.order_id, report, now, &mut out);
            } else {
                self.oms.forget_cancel(sent.order_id);
            }
        }
        if !out.is_empty() {
            let (tx, _rx) = oneshot::channel();
            self.commit(out, tx, Ok(()));
        }
    }

    /// Orders the venue no longer shows, positions against the engine's, and whether a
    /// flatten has reached the venue.
    fn check_venue(&mut self, v: usize, now: DateTime<Utc>, out: &mut Vec<Event>) {
        let VenueSettings::NinjaTrader(nt) = &self.venues[v].settings.venue else {
            return;
        };
        let nt = nt.clone();
        let (name, account) = (
            self.venues[v].settings.name.clone(),
            self.venues[v].settings.account.clone(),
        );
        let w = &self.venues[v].watch;
        if w.look.is_none() {
            return;
        }
        let unknown = w.unknown_orders(&self.oms, &account, now);
        let newly: Vec<u64> = unknown.difference(&w.unknown).copied().collect();
        let connected = w.connection() != Some(false);
        let mismatches = w.mismatches(&nt, &self.oms, &account);
        let flat = w.flatten_asked.is_some() && w.flat_at.is_none() && w.venue_flat();
        if !newly.is_empty() {
            let ids: Vec<String> = newly.iter().map(u64::to_string).collect();
            tracing::warn!(gateway = %name, orders = ?ids, "NinjaTrader shows no state for these orders: their state is unknown");
            self.audit.record(
                "engine",
                "trading.venue_orders_unknown",
                json!({"gateway": name, "account": account, "orders": ids}),
            );
            self.alert(
                Priority::P1,
                format!("{name}: the state of {} order(s) is unknown", ids.len()),
                "NinjaTrader shows no state file for them (it clears outgoing when it restarts); check them in NinjaTrader".into(),
                json!({"gateway": name, "orders": ids}),
                format!("venue-unknown:{name}"),
            );
        }
        if flat {
            self.audit.record(
                "engine",
                "trading.venue_flat",
                json!({"gateway": name, "account": account}),
            );
            self.alert(
                Priority::P2,
                format!("{name}: NinjaTrader reports the account flat"),
                "every position file of the account says FLAT after the flatten".into(),
                json!({"gateway": name, "account": account}),
                format!("venue-flat:{name}"),
            );
        }
        let w = &mut self.venues[v].watch;
        w.unknown = unknown;
        if flat {
            w.flat_at = Some(now);
        }
        if !connected {
            // Positions are compared only while the venue is connected.
            return;
        }
        w.checked_at = Some(now);
        if mismatches.is_empty() {
            let was_declared = std::mem::take(&mut w.declared);
            w.mismatches.clear();
            w.mismatch_since = None;
            if was_declared {
                self.audit.record(
                    "engine",
                    "trading.venue_reconciled",
                    json!({"gateway": name, "account": account}),
                );
                self.alert(
                    Priority::P2,
                    format!("{name}: positions agree with NinjaTrader again"),
                    format!("account {account} stays reducing until an operator resumes it"),
                    json!({"gateway": name, "account": account}),
                    format!("venue-mismatch:{name}"),
                );
            }
            return;
        }
        if mismatches != w.mismatches || w.mismatch_since.is_none() {
            w.mismatches = mismatches;
            w.mismatch_since = Some(now);
            return;
        }
        let due = w
            .mismatch_since
            .is_some_and(|t| now - t >= ninjatrader::MISMATCH_GRACE);
        if w.declared || !due {
            return;
        }
        w.declared = true;
        let what = describe(&w.mismatches);
        let detail: Vec<Value> = w.mismatches.iter().map(mismatch_json).collect();
        tracing::warn!(gateway = %name, account = %account, "position mismatch with NinjaTrader: {what}");
        self.audit.record(
            "engine",
            "trading.venue_mismatch",
            json!({"gateway": name, "account": account, "mismatches": detail}),
        );
        self.alert(
            Priority::P1,
            format!("{name}: positions differ from NinjaTrader"),
            format!("{what}; account {account} is reducing. `sovereign reconcile {account} --adopt-venue` takes NinjaTrader's positions"),
            json!({"gateway": name, "account": account, "mismatches": detail}),
            format!("venue-mismatch:{name}"),
        );
        // Only from active: a halt stays a halt (a reduce would loosen it).
        if self.oms.trading_state(&account) != Some(TradingState::Active) {
            return;
        }
        let reason = format!("{MISMATCH_REASON}: {what}");
        let _ = self
            .oms
            .set_state(Some(&account), &StateCommand::Reduce { reason }, now, out);
    }

    /// Reconcile now; with `adopt`, set each differing position to the venue's (one journaled
    /// adjustment each; all or none).
    fn reconcile(
        &mut self,
        gateway: &str,
        adopt: bool,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<GatewayView, TradingError> {
        let invalid = |code: &'static str, message: String| {
            TradingError::Oms(OmsError::Invalid(Invalid::new(code, "gateway", message)))
        };
        let v = self
            .venues
            .iter()
            .position(|v| v.settings.name == gateway)
            .ok_or_else(|| invalid("unknown_gateway", format!("no gateway {gateway:?}")))?;
        let VenueSettings::NinjaTrader(nt) = &self.venues[v].settings.venue else {
            return Err(invalid(
                "venue_unsupported",
                format!("gateway {gateway:?} is a broker bridge: it reports no positions"),
            ));
        };
        let nt = nt.clone();
        let account = self.venues[v].settings.account.clone();
        if self.venues[v].watch.look.is_none() {
            return Err(invalid(
                "venue_unread",
                format!(
                    "NinjaTrader's outgoing folder of gateway {gateway:?} has not been read yet"
                ),
            ));
        }
        let mismatches = self.venues[v].watch.mismatches(&nt, &self.oms, &account);
        if adopt {
            if let Some(m) = mismatches.iter().find(|m| m.symbol.is_none()) {
                return Err(invalid(
                    "unmapped_instrument",
                    format!(
                        "NinjaTrader holds {} {}, which the engine does not trade: close it there or map it in the gateway's instruments",
                        m.venue,
                        m.instruments.join(", ")
                    ),
                ));
            }
            for m in &mismatches {
                let Some(symbol) = &m.symbol else { continue };
                let avg = m.venue_avg_price.unwrap_or(Price(Fixed::ZERO));
                self.oms
                    .adopt_position(&account, symbol, m.venue, avg, now, out)?;
                self.audit.record(
                    "api",
                    "trading.position_adopted",
                    json!({"gateway": gateway, "account": account, "symbol": symbol.as_str(), "from": m.engine.to_string(), "to": m.venue.to_string(), "avg_price": avg.to_string()}),
                );
            }
        }
        self.check_venue(v, now, out);
        Ok(self.venues[v].view())
    }

    fn alert(
        &self,
        priority: Priority,
        title: String,
        message: String,
        context: Value,
        key: String,
    ) {
        self.notifier.raise_in_background(
            Alert {
                priority,
                source: "venue".into(),
                title: truncate_chars(&title, sovereign_core::notify::MAX_TITLE),
                message,
                context,
                dedup_key: Some(key),
            },
            "engine",
        );
    }

    /// What `changed` names, as it stands now.
    fn published(&self, changed: Changed<'_>) -> Published {
        Published {
            seq: changed.to,
            orders: changed
                .orders
                .iter()
                .filter_map(|id| self.oms.order(*id).cloned())
                .collect(),
            fills: self.oms.fills_in(changed.fills).cloned().collect(),
            positions: changed
                .positions
                .iter()
                .filter_map(|(account, symbol)| self.oms.position(account, symbol))
                .collect(),
        }
    }

    /// Journal `events` (queued now, in order) and answer `reply` once they are durable.
    fn commit<T: Send + 'static>(
        &mut self,
        events: Vec<Event>,
        reply: Reply<T>,
        result: Result<T, TradingError>,
    ) {
        if events.is_empty() {
            self.after_durable(Box::new(move || {
                let _ = reply.send(result.map(|v| (v, None)));
            }));
            return;
        }
        let durable = self
            .store
            .append_journal(vec![journal::encode_batch(&events)]);
        let mut audited = false;
        for e in &events {
            if let Event::OrderUpdated {
                order_id,
                update: OrderUpdate::Canceled { reason },
                at,
            } = e
            {
                if reason == CANCELED_HALTED || reason == CANCELED_REDUCING {
                    audited = true;
                    // What the kill switch canceled is on the audit trail, one record each.
                    self.audit.record_at(
                        *at,
                        "engine",
                        "trading.order_canceled",
                        json!({"order_id": order_id.to_string(), "reason": reason}),
                    );
                }
            }
            if let Event::StateChanged {
                account,
                change,
                at,
            } = e
            {
                // Trading-state changes go on the audit trail, right behind their journal row.
                audited = true;
                let actor = if change.reason.starts_with("daily loss")
                    || change.reason.starts_with(MISMATCH_REASON)
                {
                    "engine"
                } else {
                    "api"
                };
                self.audit.record_at(
                    *at,
                    actor,
                    "trading.state_changed",
                    json!({"account": account, "from": change.from.as_str(), "to": change.to.as_str(), "reason": change.reason}),
                );
                self.alert_state_change(account, change);
            }
        }
        if audited {
            // The trail pins the journal row it speaks of.
            self.audit.checkpoint_journal();
        }
        if let Some(seq) = self.changes.record(touches(&events, self.oms.fill_count())) {
            self.seq.store(seq, Ordering::Release);
            if self.events.receiver_count() > 0 {
                // Per-change subscribers hear of it once it is durable (its journal write is
                // queued already: the writes queued so far cover it), in the OMS's order.
                if let Some(changed) = self.changes.since(seq - 1, Some(seq), usize::MAX) {
                    self.publisher.queue(&self.store, self.published(changed));
                }
            }
        }
        let _ = reply.send(result.map(|v| (v, Some(Box::pin(durable) as Durable))));
    }
}

impl Actor {
    /// The alert rule for trading states: a halt is P0 (every channel), any other change P2.
    fn alert_state_change(&self, account: &str, change: &StateChange) {
        let halted = change.to == TradingState::Halted;
        let alert = Alert {
            priority: if halted { Priority::P0 } else { Priority::P2 },
            source: "risk".into(),
            title: truncate_chars(
                &format!("{account}: trading {}", change.to.as_str()),
                sovereign_core::notify::MAX_TITLE,
            ),
            message: change.reason.clone(),
            context: json!({"account": account, "from": change.from.as_str(), "to": change.to.as_str()}),
            dedup_key: Some(format!("trading-state:{account}:{}", change.to.as_str())),
        };
        self.notifier.raise_in_background(alert, "engine");
    }
}

fn refuse(cmd: Command) {
    fn e<T>() -> Result<T, TradingError> {
        Err(TradingError::JournalFailed)
    }
    match cmd {
        Command::Submit(_, r) => drop(r.send(e())),
        Command::Cancel(_, r) => drop(r.send(e())),
        Command::Modify { reply, .. } => drop(reply.send(e())),
        Command::CancelAll(_, r) => drop(r.send(e())),
        Command::Flatten(_, _, r) => drop(r.send(e())),
        Command::SetState(_, _, r) => drop(r.send(e())),
        Command::Ticks(_, r) => {
            if let Some(r) = r {
                drop(r.send(e()));
            }
        }
        Command::Planned(_, r) => drop(r.send(e())),
        Command::Reconcile { reply, .. } => drop(reply.send(e())),
        Command::BridgeReports { reply, .. } => drop(reply.send(e())),
        Command::Gateways(_)
        | Command::Clock
        | Command::Read(_)
        | Command::Changes { .. }
        | Command::VenueLook(..)
        | Command::VenueUnsent(..)
        | Command::BridgeAnswered(..) => {}
        Command::Stop(done) => drop(done.send(())),
    }
}

/// An order as the API shows it (`GET /api/orders/{id}`): ids as strings, decimals as exact
/// strings, times in UTC with microseconds. Task results (`place_order`, `rebalance`) carry
/// orders in this shape too; the journal has its own storage encoding (`journal`).
pub fn order_json(o: &Order) -> Value {
    let r = &o.request;
    let ts = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    json!({
        "id": o.id.to_string(),
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
        "created_at": ts(o.created_at),
        "updated_at": ts(o.updated_at),
    })
}

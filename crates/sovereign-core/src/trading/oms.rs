//! The order management core: accounts, orders, positions and quotes, changed only by events.
//!
//! Every command (`submit`, `cancel`, `modify`, `on_quote`, `set_state`, …) decides what happens
//! with the pure rules of this crate (risk, matching, the order state machine), and each outcome
//! is an [`Event`] that is applied at once and returned to the caller, who journals them. Replay
//! of the same events through [`Oms::apply`] rebuilds exactly the same state: that is recovery.
//! Nothing here does I/O or reads the clock; `now` is passed in.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::Invalid;
use crate::trading::fixed::{Fixed, Money, Price, Qty};
use crate::trading::instrument::{Instrument, Instruments, Symbol};
use crate::trading::matching::{Gateway, PaperConfig, PaperGateway, Quote};
use crate::trading::order::{NewOrder, Order, OrderStatus, OrderType, OrderUpdate, Side, Tif};
use crate::trading::position::{Account, Fill, Position};
use crate::trading::risk::{
    self, RiskCode, RiskContext, RiskDenial, RiskLimits, StateChange, StateCommand, TradingState,
};

/// The OMS's maps are keyed by its own ids and symbols, not by attacker-chosen text at scale, so
/// they use a fast multiplicative hash (FxHash, as in rustc) instead of SipHash.
type Map<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// An append-only sequence stored in fixed-size chunks: growing it never moves (copies) what is
/// already there, so a long-running OMS has no pause when its history doubles.
#[derive(Debug, Clone)]
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

const CHUNK: usize = 16 * 1024;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    fn push(&mut self, item: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(item);
            self.len += 1;
        }
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

/// Every order by id. Ids are dense and ascending from 1 (the OMS hands them out), so the book is
/// a sequence indexed by `id − 1`: O(1) lookup, append-only growth, no rehashing.
#[derive(Debug, Clone, Default)]
struct OrderBook(Chunked<Order>);

impl OrderBook {
    fn index(id: u64) -> Option<usize> {
        usize::try_from(id.checked_sub(1)?).ok()
    }

    fn get(&self, id: &u64) -> Option<&Order> {
        self.0.get(Self::index(*id)?)
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Order> {
        let i = Self::index(*id)?;
        self.0.get_mut(i)
    }

    /// Add the next order; an id out of sequence (a damaged journal) is ignored.
    fn insert(&mut self, id: u64, order: Order) {
        if Self::index(id) == Some(self.0.len) {
            self.0.push(order);
        }
    }

    fn values(&self) -> impl DoubleEndedIterator<Item = &Order> {
        self.0.iter()
    }
}

/// The first session close after `t`: the trading-hours end in its zone, or midnight UTC.
pub fn session_close_after(
    t: DateTime<Utc>,
    hours: Option<&crate::trading::risk::TradingHours>,
) -> DateTime<Utc> {
    use chrono::{Duration, NaiveTime, TimeZone};
    let (tz, end) = match hours {
        Some(h) => (h.tz, h.end),
        None => (chrono_tz::UTC, NaiveTime::MIN),
    };
    let local = t.with_timezone(&tz);
    let mut date = local.date_naive();
    if local.time() >= end {
        date = date.succ_opt().unwrap_or(date);
    }
    match tz.from_local_datetime(&date.and_time(end)).earliest() {
        Some(close) => close.with_timezone(&Utc),
        // The close falls in a daylight-saving gap: an hour later exists.
        None => (date.and_time(end) + Duration::hours(1)).and_utc(),
    }
}

/// Which pre-trade check an order gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// A new order: every rule.
    Submit,
    /// A working order with new quantity/prices: every rule, not counted again for the rate.
    Modify,
    /// A closing order from flatten: only that it reduces the position.
    Flatten,
}

/// One account's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    pub name: String,
    pub starting_cash: Money,
    pub limits: RiskLimits,
}

/// A fill as recorded: which order, what, at what price, and what it realized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRecord {
    pub fill_id: u64,
    pub order_id: u64,
    pub account: String,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Qty,
    pub price: Price,
    pub commission: Money,
    pub realized_pnl: Money,
    pub at: DateTime<Utc>,
    /// The venue's id of this execution (`None` for the paper broker's fills): a report that
    /// repeats it is a duplicate.
    pub exec_id: Option<String>,
}

/// What a venue reports about an order it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueReport {
    /// The venue works the order.
    Accepted,
    /// An execution: `exec_id` names it at the venue, so a repeated report is recognised.
    Fill {
        exec_id: String,
        qty: Qty,
        price: Price,
        commission: Money,
    },
    Canceled {
        reason: String,
    },
    Rejected {
        code: String,
        reason: String,
    },
    Expired,
}

impl VenueReport {
    fn what(&self) -> &'static str {
        match self {
            VenueReport::Accepted => "acceptance",
            VenueReport::Fill { .. } => "fill",
            VenueReport::Canceled { .. } => "cancel",
            VenueReport::Rejected { .. } => "rejection",
            VenueReport::Expired => "expiry",
        }
    }
}

/// What the OMS asks of an answering venue. Not journaled: the venue's reports are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueInstruction {
    /// Send this order (through risk, still `submitted`).
    Place { order_id: u64 },
    /// Cancel it; the order stays working until the venue reports the cancel.
    Cancel { order_id: u64 },
    /// Change it as the OMS already did.
    Change {
        order_id: u64,
        qty: Option<Qty>,
        limit_price: Option<Price>,
        stop_price: Option<Price>,
    },
}

/// A venue report that was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Applied: its events are in `out`.
    Applied,
    /// Already known (the same execution again, or the state the order is already in):
    /// nothing changed.
    Duplicate,
}

/// A venue report that cannot be applied. The caller records it; it never changes the OMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportAnomaly {
    #[error("the venue reports on order {0}, which was never sent to it")]
    UnknownOrder(u64),
    #[error("the venue reports a {what} for order {id}, which is already {status}")]
    Finished {
        id: u64,
        status: OrderStatus,
        what: &'static str,
    },
    #[error("the venue reports a fill of {qty} for order {id}, which has only {leaves} left")]
    Overfill { id: u64, qty: Qty, leaves: Qty },
    #[error(
        "the venue reports a fill of {qty} at {price} for order {id}: not a quantity and price"
    )]
    BadFill { id: u64, qty: Qty, price: Price },
}

impl ReportAnomaly {
    /// A stable code for alerts and records.
    pub fn code(&self) -> &'static str {
        match self {
            ReportAnomaly::UnknownOrder(_) => "report_unknown_order",
            ReportAnomaly::Finished { .. } => "report_after_end",
            ReportAnomaly::Overfill { .. } => "report_overfill",
            ReportAnomaly::BadFill { .. } => "report_bad_fill",
        }
    }
}

/// Everything that changes the OMS. Journaled in order; replayed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    OrderCreated(Order),
    OrderUpdated {
        order_id: u64,
        update: OrderUpdate,
        at: DateTime<Utc>,
    },
    Filled(FillRecord),
    StateChanged {
        account: String,
        change: StateChange,
        at: DateTime<Utc>,
    },
    /// The market price a decision was made on, or the last price now and then (kept so a
    /// restart knows the last prices). `external`: the symbol's prices come from outside (a
    /// pushed or replayed tick), so synthetic prices no longer apply to it.
    Mark {
        symbol: Symbol,
        quote: Quote,
        external: bool,
        at: DateTime<Utc>,
    },
    /// A position set to what the venue holds (an operator adopted the venue's view).
    Adjusted {
        account: String,
        symbol: Symbol,
        qty: Qty,
        avg_price: Price,
        at: DateTime<Utc>,
    },
}

/// A symbol whose position differs between the engine and its venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub symbol: Symbol,
    pub engine: Qty,
    pub venue: Qty,
}

/// Where a price comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The engine's own random walk: only for symbols no outside price has reached.
    Synthetic,
    /// A pushed or replayed tick, a venue's feed.
    External,
}

/// Why a command was refused outright (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OmsError {
    #[error("{0}")]
    Invalid(Invalid),
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error("order {0} not found")]
    UnknownOrder(u64),
    #[error("order {id} is {status} and can no longer be changed")]
    NotOpen { id: u64, status: OrderStatus },
    #[error("{}", .0.message)]
    Denied(RiskDenial),
    #[error("client order id {client_order_id:?} is already order {order_id}, with other fields")]
    ClientOrderIdConflict {
        client_order_id: String,
        order_id: u64,
    },
}

impl From<Invalid> for OmsError {
    fn from(e: Invalid) -> Self {
        OmsError::Invalid(e)
    }
}

/// The account a command names: `None` (every account) when absent or `"all"`.
pub fn selected_account(account: Option<String>) -> Option<String> {
    account.filter(|a| a != "all")
}

/// Which orders a listing shows; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub symbol: Option<Symbol>,
    pub account: Option<String>,
    pub client_order_id: Option<String>,
}

impl OrderFilter {
    fn matches(&self, o: &Order) -> bool {
        let r = &o.request;
        self.status.is_none_or(|s| o.status == s)
            && self.symbol.as_ref().is_none_or(|s| &r.symbol == s)
            && self.account.as_ref().is_none_or(|a| &r.account == a)
            && self
                .client_order_id
                .as_ref()
                .is_none_or(|c| r.client_order_id.as_ref() == Some(c))
    }
}

/// The cancel reason of working orders canceled because their account was halted.
pub const CANCELED_HALTED: &str = "account halted";
/// The cancel reason of working orders canceled because their account went reduce-only and
/// they would have increased exposure.
pub const CANCELED_REDUCING: &str = "account reducing: the order would increase exposure";

/// What a trading-state command did to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOutcome {
    pub account: String,
    /// The state the account is in now.
    pub state: TradingState,
    /// The change, when the state changed.
    pub change: Option<StateChange>,
    /// Working orders canceled because the state no longer allows them.
    pub canceled: Vec<u64>,
}

/// The answer to a submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub order: Order,
    /// True when the client order id matched an existing order (nothing new happened).
    pub duplicate: bool,
    pub denial: Option<RiskDenial>,
}

#[derive(Debug, Clone)]
struct Book {
    account: Account,
    state: TradingState,
    limits: RiskLimits,
    positions: Map<Symbol, Position>,
    open_orders: u32,
    recent: VecDeque<DateTime<Utc>>,
    day: Option<NaiveDate>,
    day_realized: Money,
}

/// A position with its account and symbol, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionView {
    pub account: String,
    pub symbol: Symbol,
    pub position: Position,
    pub last_price: Option<Price>,
    pub unrealized_pnl: Money,
}

/// An account summary, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub account: Account,
    pub state: TradingState,
    pub limits: RiskLimits,
    pub unrealized_pnl: Money,
    pub equity: Money,
    pub gross_exposure: Money,
    pub day_pnl: Money,
    pub open_orders: u32,
}

/// The OMS state.
#[derive(Debug)]
pub struct Oms {
    instruments: Arc<Instruments>,
    gateway: Box<dyn Gateway>,
    /// Accounts traded at another venue than `gateway`.
    venues: Map<String, Box<dyn Gateway>>,
    books: Map<String, Book>,
    orders: OrderBook,
    working: Map<Symbol, Vec<u64>>,
    client_ids: Map<(String, String), u64>,
    quotes: Map<Symbol, Quote>,
    /// The last quote journaled per symbol (a `Mark` is written only when it changes).
    marked: Map<Symbol, Quote>,
    /// Symbols an external price has reached: synthetic prices are ignored for them.
    external: std::collections::BTreeSet<Symbol>,
    fills: Chunked<FillRecord>,
    /// What answering venues are to be told, oldest first ([`Oms::take_instructions`]).
    instructions: Vec<VenueInstruction>,
    /// Orders whose cancel was asked of their venue (asked once).
    cancel_asked: std::collections::HashSet<u64, BuildHasherDefault<FxHasher>>,
    /// (order id, venue execution id) of every venue fill applied: the duplicate check.
    executions: std::collections::HashSet<(u64, String), BuildHasherDefault<FxHasher>>,
    /// Accounts whose venue reports its connection down (observed, not journaled).
    venue_down: std::collections::BTreeSet<String>,
    next_order_id: u64,
    next_fill_id: u64,
    /// Most recent window any account's rate rule needs; older submit times are dropped.
    rate_window: chrono::Duration,
}

impl Oms {
    /// An OMS trading on the paper broker.
    pub fn new(instruments: Instruments, paper: PaperConfig, accounts: &[AccountConfig]) -> Oms {
        Oms::with_gateway(instruments, Box::new(PaperGateway(paper)), accounts)
    }

    /// An OMS trading on any venue.
    pub fn with_gateway(
        instruments: Instruments,
        gateway: Box<dyn Gateway>,
        accounts: &[AccountConfig],
    ) -> Oms {
        let mut rate_window = chrono::Duration::zero();
        let books = accounts
            .iter()
            .map(|a| {
                if let Some((_, w)) = a.limits.max_orders_per_window {
                    rate_window =
                        rate_window.max(chrono::Duration::from_std(w).unwrap_or_default());
                }
                let book = Book {
                    account: Account::new(a.name.clone(), a.starting_cash),
                    state: TradingState::Active,
                    limits: a.limits.clone(),
                    positions: Map::default(),
                    open_orders: 0,
                    recent: VecDeque::new(),
                    day: None,
                    day_realized: Money::ZERO,
                };
                (a.name.clone(), book)
            })
            .collect();
        Oms {
            instruments: Arc::new(instruments),
            gateway,
            venues: Map::default(),
            books,
            orders: OrderBook::default(),
            working: Map::default(),
            client_ids: Map::default(),
            quotes: Map::default(),
            marked: Map::default(),
            external: Default::default(),
            fills: Chunked::default(),
            executions: Default::default(),
            instructions: Vec::new(),
            cancel_asked: Default::default(),
            venue_down: Default::default(),
            next_order_id: 1,
            next_fill_id: 1,
            rate_window,
        }
    }

    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    /// Trade `account` at `gateway` instead of the OMS's own (a venue per account).
    pub fn route(&mut self, account: &str, gateway: Box<dyn Gateway>) {
        self.venues.insert(account.to_string(), gateway);
    }

    /// What answering venues are to be told since the last call, oldest first: the caller
    /// sends each once its command's events are durable.
    pub fn take_instructions(&mut self) -> Vec<VenueInstruction> {
        std::mem::take(&mut self.instructions)
    }

    /// What the account's venue says of its connection: while it is down, new orders are
    /// denied `venue_disconnected` (cancels and changes still go to the venue's queue).
    pub fn set_venue_connected(&mut self, account: &str, connected: bool) {
        if connected {
            self.venue_down.remove(account);
        } else {
            self.venue_down.insert(account.to_string());
        }
    }

    /// Where the engine's positions of `account` differ from what its venue holds (`venue`:
    /// every symbol the venue holds; a symbol it does not list is flat there).
    pub fn reconcile(&self, account: &str, venue: &BTreeMap<Symbol, Qty>) -> Vec<Mismatch> {
        let mut symbols: std::collections::BTreeSet<&Symbol> = venue.keys().collect();
        if let Some(b) = self.books.get(account) {
            symbols.extend(
                b.positions
                    .iter()
                    .filter(|(_, p)| !p.is_flat())
                    .map(|(s, _)| s),
            );
        }
        symbols
            .into_iter()
            .filter_map(|s| {
                let engine = self.position_qty(account, s);
                let at_venue = venue.get(s).copied().unwrap_or(Qty::ZERO);
                (engine != at_venue).then(|| Mismatch {
                    symbol: s.clone(),
                    engine,
                    venue: at_venue,
                })
            })
            .collect()
    }

    /// Take the venue's position as the engine's: one journaled adjustment that sets the
    /// quantity and average price (realized P&L and cash stay as they are).
    pub fn adopt_position(
        &mut self,
        account: &str,
        symbol: &Symbol,
        qty: Qty,
        avg_price: Price,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<(), OmsError> {
        self.check_account(Some(account))?;
        if self.instruments.get(symbol).is_none() {
            return Err(Invalid::new(
                "unknown_symbol",
                "symbol",
                format!("unknown symbol {symbol}"),
            )
            .into());
        }
        if !qty.is_zero() && !avg_price.0.is_positive() {
            return Err(Invalid::new(
                "invalid_price",
                "avg_price",
                format!("a held position needs an average price above 0, not {avg_price}"),
            )
            .into());
        }
        self.emit(
            Event::Adjusted {
                account: account.to_string(),
                symbol: symbol.clone(),
                qty,
                avg_price: if qty.is_zero() {
                    Price(Fixed::ZERO)
                } else {
                    avg_price
                },
                at: now,
            },
            out,
        );
        Ok(())
    }

    /// Ask the account's venue again for every order it never answered (still `submitted`):
    /// after a restart, for a venue that makes each order once under its id.
    pub fn resend_submitted(&mut self, account: &str) {
        let mut ids: Vec<u64> = self
            .working_orders()
            .into_iter()
            .filter(|o| o.request.account == account && o.status == OrderStatus::Submitted)
            .map(|o| o.id)
            .collect();
        ids.sort_unstable();
        self.instructions.extend(
            ids.into_iter()
                .map(|order_id| VenueInstruction::Place { order_id }),
        );
    }

    /// A cancel that could not be given to the venue: the next cancel of the order asks again.
    pub fn forget_cancel(&mut self, order_id: u64) {
        self.cancel_asked.remove(&order_id);
    }

    fn answers_later(&self, order_id: u64) -> bool {
        self.orders
            .get(&order_id)
            .is_some_and(|o| self.gateway_of(&o.request.account).asynchronous())
    }

    /// The venue an account trades at.
    pub fn gateway_of(&self, account: &str) -> &dyn Gateway {
        self.venues
            .get(account)
            .map_or(self.gateway.as_ref(), |g| g.as_ref())
    }

    // ----- commands -------------------------------------------------------------------------

    /// Submit a validated order: idempotent on (account, client order id), then risk, then the
    /// paper venue. Events are appended to `out`.
    pub fn submit(
        &mut self,
        new: NewOrder,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<Submitted, OmsError> {
        self.submit_as(new, now, out, false)
    }

    fn submit_as(
        &mut self,
        new: NewOrder,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
        flattening: bool,
    ) -> Result<Submitted, OmsError> {
        if !self.books.contains_key(&new.account) {
            return Err(OmsError::UnknownAccount(new.account.clone()));
        }
        if let Some(coid) = &new.client_order_id {
            if let Some(order) = self.order_by_client_id(&new.account, coid) {
                // The same order again is the order already placed (idempotent); a different
                // order under the same id is refused, as FIX venues do.
                if order.request != new {
                    return Err(OmsError::ClientOrderIdConflict {
                        client_order_id: coid.clone(),
                        order_id: order.id,
                    });
                }
                return Ok(Submitted {
                    order: order.clone(),
                    duplicate: true,
                    denial: None,
                });
            }
        }
        let instruments = Arc::clone(&self.instruments);
        let instrument = instruments.get(&new.symbol).ok_or_else(|| {
            OmsError::Invalid(Invalid::new(
                "unknown_symbol",
                "symbol",
                format!("unknown symbol {}", new.symbol),
            ))
        })?;
        let id = self.next_order_id;
        let order = Order::new(id, new, now);
        self.emit(Event::OrderCreated(order), out);

        let request = self.orders.get(&id).map(|o| o.request.clone());
        let check = if flattening {
            Check::Flatten
        } else {
            Check::Submit
        };
        let verdict = match &request {
            Some(r) => self.risk_check(r, id, instrument, now, check),
            None => Err(RiskDenial {
                code: RiskCode::TradingHalted,
                message: "order vanished before its risk check".into(),
            }),
        };
        if let Err(denial) = &verdict {
            self.emit(
                Event::OrderUpdated {
                    order_id: id,
                    update: OrderUpdate::Denied {
                        code: denial.code.code().to_string(),
                        reason: denial.message.clone(),
                    },
                    at: now,
                },
                out,
            );
        } else if self.answers_later(id) {
            self.instructions
                .push(VenueInstruction::Place { order_id: id });
        } else {
            self.emit(
                Event::OrderUpdated {
                    order_id: id,
                    update: OrderUpdate::Accepted,
                    at: now,
                },
                out,
            );
            self.work(id, instrument, now, out);
        }
        let order = self
            .orders
            .get(&id)
            .cloned()
            .ok_or(OmsError::UnknownOrder(id))?;
        Ok(Submitted {
            order,
            duplicate: false,
            denial: verdict.err(),
        })
    }

    fn risk_check(
        &mut self,
        request: &NewOrder,
        id: u64,
        instrument: &Instrument,
        now: DateTime<Utc>,
        check: Check,
    ) -> Result<(), RiskDenial> {
        let order = request;
        let (account, symbol) = (order.account.as_str(), &order.symbol);
        if check != Check::Modify && self.venue_down.contains(account) {
            // A change waits for the connection; a new order cannot reach the venue at all.
            return Err(RiskDenial {
                code: RiskCode::VenueDisconnected,
                message: format!("the venue of account {account} reports its connection down"),
            });
        }
        let last_price = self.quotes.get(symbol).and_then(|q| q.last);
        let (mut open_buy, mut open_sell) = (Qty::ZERO, Qty::ZERO);
        for oid in self
            .working
            .get(symbol)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(o) = self.orders.get(oid) {
                if o.request.account == account && *oid != id {
                    match o.request.side {
                        Side::Buy => open_buy = open_buy.saturating_add(o.leaves_qty()),
                        Side::Sell => open_sell = open_sell.saturating_add(o.leaves_qty()),
                    }
                }
            }
        }
        let gross = self.gross_exposure(account);
        let day_pnl = self.day_pnl(account, now);
        let cutoff = now - self.rate_window;
        let Some(book) = self.books.get_mut(account) else {
            return Ok(());
        };
        while book.recent.front().is_some_and(|t| *t < cutoff) {
            book.recent.pop_front();
        }
        let position = book.positions.get(symbol).map_or(Qty::ZERO, |p| p.qty);
        if check == Check::Flatten {
            // The kill switch must always be able to close: only "does it reduce?" applies.
            return if risk::reduces_only(order, position) {
                Ok(())
            } else {
                Err(RiskDenial {
                    code: RiskCode::ReducingOnly,
                    message: format!("a closing order must reduce the {position} position"),
                })
            };
        }
        let state = book.state;
        let ctx = RiskContext {
            now,
            state,
            instrument,
            last_price,
            position,
            open_buy_qty: open_buy,
            open_sell_qty: open_sell,
            gross_exposure: gross,
            // The order itself is already counted as working; the limit is about the others.
            open_orders: book.open_orders.saturating_sub(1),
            recent_order_times: book.recent.make_contiguous(),
            day_pnl,
        };
        let verdict = risk::check(order, &book.limits, &ctx);
        if verdict.is_ok() && check == Check::Submit && book.limits.max_orders_per_window.is_some()
        {
            book.recent.push_back(now);
        }
        verdict
    }

    /// Run the paper venue on one working order.
    fn work(&mut self, id: u64, instrument: &Instrument, now: DateTime<Utc>, out: &mut Vec<Event>) {
        let Some(order) = self.orders.get(&id) else {
            return;
        };
        if !order.status.is_open() {
            return;
        }
        let quote = self
            .quotes
            .get(&order.request.symbol)
            .copied()
            .unwrap_or_default();
        let decision = self
            .gateway_of(&order.request.account)
            .work(order, instrument, &quote);
        if decision.trigger {
            self.emit(
                Event::OrderUpdated {
                    order_id: id,
                    update: OrderUpdate::Triggered,
                    at: now,
                },
                out,
            );
        }
        if let Some(fill) = decision.fill {
            // Journal the quote a fill was decided on, once per distinct quote.
            if self.marked.get(&instrument.symbol) != Some(&quote) {
                self.emit(
                    Event::Mark {
                        symbol: instrument.symbol.clone(),
                        quote,
                        external: self.external.contains(&instrument.symbol),
                        at: now,
                    },
                    out,
                );
            }
            self.fill(
                id,
                instrument,
                (fill.qty, fill.price, fill.commission),
                None,
                now,
                out,
            );
        }
        if let Some(reason) = decision.cancel {
            let still_open = self.orders.get(&id).is_some_and(|o| o.status.is_open());
            if still_open {
                self.emit_canceled(id, reason.as_str(), now, out);
            }
        }
    }

    fn fill(
        &mut self,
        id: u64,
        instrument: &Instrument,
        (qty, price, commission): (Qty, Price, Money),
        exec_id: Option<String>,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) {
        let Some(order) = self.orders.get(&id) else {
            return;
        };
        let account = order.request.account.clone();
        let side = order.request.side;
        let realized = self
            .books
            .get(&account)
            .and_then(|b| b.positions.get(&instrument.symbol))
            .cloned()
            .unwrap_or_else(Position::flat)
            .apply(
                &Fill {
                    side,
                    qty,
                    price,
                    commission,
                },
                instrument.multiplier,
            )
            .unwrap_or(Money::ZERO);
        self.emit(
            Event::OrderUpdated {
                order_id: id,
                update: OrderUpdate::Filled {
                    qty,
                    price,
                    commission,
                },
                at: now,
            },
            out,
        );
        self.emit(
            Event::Filled(FillRecord {
                fill_id: self.next_fill_id,
                order_id: id,
                account: account.clone(),
                symbol: instrument.symbol.clone(),
                side,
                qty,
                price,
                commission,
                realized_pnl: realized,
                at: now,
                exec_id,
            }),
            out,
        );
        self.check_loss(&account, now, out);
        if self
            .books
            .get(&account)
            .is_some_and(|b| b.state == TradingState::Reducing)
        {
            // The position moved: a working order that reduced it may now flip it.
            self.enforce_state(&account, now, out);
        }
    }

    /// Halt an account whose day P&L breached its loss limit.
    fn check_loss(&mut self, account: &str, now: DateTime<Utc>, out: &mut Vec<Event>) {
        let day_pnl = self.day_pnl(account, now);
        let Some(book) = self.books.get(account) else {
            return;
        };
        let Some(limit) = book.limits.daily_loss_limit else {
            return;
        };
        if day_pnl.0 > limit.0.negate() {
            return;
        }
        if let Ok(Some(change)) =
            risk::apply_state(book.state, &StateCommand::LossBreached { day_pnl })
        {
            self.emit(
                Event::StateChanged {
                    account: account.to_string(),
                    change,
                    at: now,
                },
                out,
            );
            self.enforce_state(account, now, out);
        }
    }

    /// Cancel the account's working orders its trading state no longer allows: every one when
    /// `halted`, those that would increase exposure when `reducing`. Returns their ids.
    fn enforce_state(
        &mut self,
        account: &str,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Vec<u64> {
        let Some(book) = self.books.get(account) else {
            return Vec::new();
        };
        let (state, positions) = (book.state, &book.positions);
        let reason = match state {
            TradingState::Active => return Vec::new(),
            TradingState::Halted => CANCELED_HALTED,
            TradingState::Reducing => CANCELED_REDUCING,
        };
        let ids: Vec<u64> = self
            .working_orders()
            .into_iter()
            .filter(|o| {
                let r = &o.request;
                r.account == account
                    && (state == TradingState::Halted || {
                        let position = positions.get(&r.symbol).map_or(Qty::ZERO, |p| p.qty);
                        let mut rest = r.clone();
                        rest.qty = o.leaves_qty();
                        !risk::reduces_only(&rest, position)
                    })
            })
            .map(|o| o.id)
            .collect();
        self.cancel_each(&ids, reason, now, out);
        ids
    }

    /// Cancel each of these working orders with `reason`.
    fn cancel_each(&mut self, ids: &[u64], reason: &str, now: DateTime<Utc>, out: &mut Vec<Event>) {
        for id in ids {
            let _ = self.cancel(*id, reason, now, out);
        }
    }

    /// Take a venue's report on an order it was given: a repeated report (the same execution,
    /// or the state the order is already in) changes nothing; a report for an order never sent,
    /// after the order's end, or a fill beyond what is left is refused as an anomaly and changes
    /// nothing either. Otherwise its events go to `out` through the same `apply` as every other
    /// change, so a replay rebuilds the same state.
    pub fn report(
        &mut self,
        order_id: u64,
        report: VenueReport,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<ReportOutcome, ReportAnomaly> {
        // Only orders of an account traded at an answering venue were ever sent to one.
        let order = self
            .orders
            .get(&order_id)
            .filter(|o| self.gateway_of(&o.request.account).asynchronous())
            .ok_or(ReportAnomaly::UnknownOrder(order_id))?;
        let status = order.status;
        let finished = |what| ReportAnomaly::Finished {
            id: order_id,
            status,
            what,
        };
        let update = match report {
            VenueReport::Fill {
                exec_id,
                qty,
                price,
                commission,
            } => {
                if self.executions.contains(&(order_id, exec_id.clone())) {
                    return Ok(ReportOutcome::Duplicate);
                }
                if !status.is_open() {
                    return Err(finished("fill"));
                }
                if !qty.is_positive() || !price.0.is_positive() || commission.0.is_negative() {
                    return Err(ReportAnomaly::BadFill {
                        id: order_id,
                        qty,
                        price,
                    });
                }
                let leaves = order.leaves_qty();
                if qty > leaves {
                    return Err(ReportAnomaly::Overfill {
                        id: order_id,
                        qty,
                        leaves,
                    });
                }
                let Some(instrument) = self.instruments.get(&order.request.symbol).cloned() else {
                    return Err(ReportAnomaly::UnknownOrder(order_id));
                };
                self.fill(
                    order_id,
                    &instrument,
                    (qty, price, commission),
                    Some(exec_id),
                    now,
                    out,
                );
                return Ok(ReportOutcome::Applied);
            }
            VenueReport::Accepted => match status {
                OrderStatus::Submitted => OrderUpdate::Accepted,
                OrderStatus::Accepted | OrderStatus::PartiallyFilled => {
                    return Ok(ReportOutcome::Duplicate)
                }
                _ => return Err(finished("acceptance")),
            },
            ref terminal => {
                let (same, update) = match terminal {
                    VenueReport::Canceled { reason } => (
                        OrderStatus::Canceled,
                        OrderUpdate::Canceled {
                            reason: reason.clone(),
                        },
                    ),
                    VenueReport::Rejected { code, reason } => (
                        OrderStatus::Rejected,
                        OrderUpdate::Rejected {
                            code: code.clone(),
                            reason: reason.clone(),
                        },
                    ),
                    _ => (OrderStatus::Expired, OrderUpdate::Expired),
                };
                if status == same {
                    return Ok(ReportOutcome::Duplicate);
                }
                if !status.is_open() {
                    return Err(finished(terminal.what()));
                }
                match update {
                    // Part of it traded: what the venue refuses is the rest, which ends the
                    // order as a cancel of what was left (its fills stand).
                    OrderUpdate::Rejected { reason, .. }
                        if status == OrderStatus::PartiallyFilled =>
                    {
                        OrderUpdate::Canceled {
                            reason: format!("the venue refused the rest: {reason}"),
                        }
                    }
                    update => update,
                }
            }
        };
        self.emit(
            Event::OrderUpdated {
                order_id,
                update,
                at: now,
            },
            out,
        );
        Ok(ReportOutcome::Applied)
    }

    /// Cancel a working order.
    pub fn cancel(
        &mut self,
        id: u64,
        reason: &str,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<Order, OmsError> {
        let order = self.orders.get(&id).ok_or(OmsError::UnknownOrder(id))?;
        if !order.status.is_open() {
            return Err(OmsError::NotOpen {
                id,
                status: order.status,
            });
        }
        if self.answers_later(id) {
            // The venue decides: it may fill first. Its cancel report ends the order.
            if self.cancel_asked.insert(id) {
                self.instructions
                    .push(VenueInstruction::Cancel { order_id: id });
            }
        } else {
            self.emit_canceled(id, reason, now, out);
        }
        self.orders
            .get(&id)
            .cloned()
            .ok_or(OmsError::UnknownOrder(id))
    }

    /// Change a working order's quantity and/or prices, then give it to the venue again.
    pub fn modify(
        &mut self,
        id: u64,
        qty: Option<Qty>,
        limit_price: Option<Price>,
        stop_price: Option<Price>,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<Order, OmsError> {
        let order = self.orders.get(&id).ok_or(OmsError::UnknownOrder(id))?;
        if !order.status.is_open() {
            return Err(OmsError::NotOpen {
                id,
                status: order.status,
            });
        }
        let instruments = Arc::clone(&self.instruments);
        let instrument = instruments
            .get(&order.request.symbol)
            .ok_or(OmsError::UnknownOrder(id))?;
        if qty.is_none() && limit_price.is_none() && stop_price.is_none() {
            return Err(Invalid::new(
                "nothing_to_change",
                "qty",
                "give qty, limit_price or stop_price",
            )
            .into());
        }
        if let Some(q) = qty {
            instrument.check_qty(q, "qty")?;
            if q <= order.filled_qty {
                return Err(Invalid::new(
                    "invalid_qty",
                    "qty",
                    format!(
                        "qty must be more than the {} already filled",
                        order.filled_qty
                    ),
                )
                .into());
            }
        }
        let kind = order.request.order_type;
        let check = |price: Option<Price>, field: &str, takes: bool| -> Result<(), Invalid> {
            let Some(p) = price else { return Ok(()) };
            if !takes {
                return Err(Invalid::new(
                    "unexpected_price",
                    field,
                    format!("a {} order takes no {field}", kind.as_str()),
                ));
            }
            instrument.check_price(p, field)
        };
        check(limit_price, "limit_price", kind.needs_limit())?;
        check(stop_price, "stop_price", kind.needs_stop())?;
        // The changed order must pass pre-trade risk as if it were new.
        let mut candidate = order.request.clone();
        candidate.qty = qty.unwrap_or(candidate.qty);
        candidate.limit_price = limit_price.or(candidate.limit_price);
        candidate.stop_price = stop_price.or(candidate.stop_price);
        self.risk_check(&candidate, id, instrument, now, Check::Modify)
            .map_err(OmsError::Denied)?;
        self.emit(
            Event::OrderUpdated {
                order_id: id,
                update: OrderUpdate::Modified {
                    qty,
                    limit_price,
                    stop_price,
                },
                at: now,
            },
            out,
        );
        if self.answers_later(id) {
            self.instructions.push(VenueInstruction::Change {
                order_id: id,
                qty,
                limit_price,
                stop_price,
            });
        }
        self.work(id, instrument, now, out);
        self.orders
            .get(&id)
            .cloned()
            .ok_or(OmsError::UnknownOrder(id))
    }

    /// `UnknownAccount` unless `account` is `None` (every account) or one this OMS has.
    pub fn check_account(&self, account: Option<&str>) -> Result<(), OmsError> {
        match account {
            Some(a) if !self.books.contains_key(a) => Err(OmsError::UnknownAccount(a.to_string())),
            _ => Ok(()),
        }
    }

    /// Cancel every working order (of one account, or all).
    pub fn cancel_all(
        &mut self,
        account: Option<&str>,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<Vec<u64>, OmsError> {
        self.check_account(account)?;
        let ids: Vec<u64> = self
            .working_orders()
            .into_iter()
            .filter(|o| account.is_none_or(|a| o.request.account == a))
            .map(|o| o.id)
            .collect();
        self.cancel_each(&ids, "cancel_all", now, out);
        Ok(ids)
    }

    /// Cancel working orders and close every position with market orders (of one account, or
    /// all). Closing orders go through risk as reduce-only, so they pass even while halted.
    pub fn flatten(
        &mut self,
        account: Option<&str>,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<Vec<Submitted>, OmsError> {
        self.cancel_all(account, now, out)?;
        let mut targets: Vec<(String, Symbol, Qty)> = self
            .books
            .iter()
            .filter(|(name, _)| account.is_none_or(|a| a == name.as_str()))
            .flat_map(|(name, b)| {
                b.positions
                    .iter()
                    .filter(|(_, p)| !p.qty.is_zero())
                    .map(|(s, p)| (name.clone(), s.clone(), p.qty))
            })
            .collect();
        targets.sort();
        Ok(targets
            .into_iter()
            .filter_map(|(account, symbol, qty)| {
                let order = NewOrder {
                    account,
                    symbol,
                    side: if qty.is_positive() {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                    qty: qty.abs(),
                    order_type: OrderType::Market,
                    limit_price: None,
                    stop_price: None,
                    tif: Tif::Ioc,
                    client_order_id: None,
                };
                self.submit_as(order, now, out, true).ok()
            })
            .collect())
    }

    /// Expire `day` orders whose session has closed: at the account's trading-hours end (in its
    /// time zone) when it has trading hours, else at midnight UTC. Called once a second by the
    /// engine and once after recovery.
    pub fn expire_day_orders(&mut self, now: DateTime<Utc>, out: &mut Vec<Event>) {
        let mut due: Vec<u64> = Vec::new();
        for id in self.working.values().flatten() {
            let Some(o) = self.orders.get(id) else {
                continue;
            };
            if o.request.tif != Tif::Day || !o.status.is_open() {
                continue;
            }
            let hours = self
                .books
                .get(&o.request.account)
                .and_then(|b| b.limits.trading_hours.as_ref());
            if now >= session_close_after(o.created_at, hours) {
                due.push(*id);
            }
        }
        due.sort_unstable();
        for id in due {
            self.emit(
                Event::OrderUpdated {
                    order_id: id,
                    update: OrderUpdate::Expired,
                    at: now,
                },
                out,
            );
        }
    }

    /// New market data for a symbol: remember it, then let the venue work that symbol's orders.
    /// A synthetic price for a symbol an external price has reached is ignored (returns
    /// false); the first external price of a symbol is journaled at once, so a restart keeps
    /// the synthetic feed off it.
    pub fn on_quote(
        &mut self,
        symbol: &Symbol,
        quote: Quote,
        source: PriceSource,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> bool {
        let first_external = match source {
            PriceSource::Synthetic if self.external.contains(symbol) => return false,
            PriceSource::Synthetic => false,
            PriceSource::External => !self.external.contains(symbol),
        };
        let merged = {
            let prev = self.quotes.get(symbol).copied().unwrap_or_default();
            Quote {
                last: quote.last.or(prev.last),
                bid: quote.bid.or(prev.bid),
                ask: quote.ask.or(prev.ask),
            }
        };
        self.quotes.insert(symbol.clone(), merged);
        if first_external {
            self.emit(
                Event::Mark {
                    symbol: symbol.clone(),
                    quote: merged,
                    external: true,
                    at: now,
                },
                out,
            );
        }
        let instruments = Arc::clone(&self.instruments);
        let Some(instrument) = instruments.get(symbol) else {
            return true;
        };
        let ids: Vec<u64> = self.working.get(symbol).cloned().unwrap_or_default();
        for id in ids {
            self.work(id, instrument, now, out);
        }
        let accounts: Vec<String> = self
            .books
            .iter()
            .filter(|(_, b)| b.positions.get(symbol).is_some_and(|p| !p.qty.is_zero()))
            .map(|(n, _)| n.clone())
            .collect();
        for a in accounts {
            self.check_loss(&a, now, out);
        }
        true
    }

    /// Journal the last price of every symbol whose price moved since its last `Mark`, so a
    /// restart resumes from it (called now and then, and at shutdown).
    pub fn mark_prices(&mut self, now: DateTime<Utc>, out: &mut Vec<Event>) {
        let mut moved: Vec<(Symbol, Quote)> = self
            .quotes
            .iter()
            .filter(|(s, q)| self.marked.get(*s) != Some(*q))
            .map(|(s, q)| (s.clone(), *q))
            .collect();
        moved.sort_by(|a, b| a.0.cmp(&b.0));
        for (symbol, quote) in moved {
            let external = self.external.contains(&symbol);
            self.emit(
                Event::Mark {
                    symbol,
                    quote,
                    external,
                    at: now,
                },
                out,
            );
        }
    }

    /// Symbols whose prices come from outside (the synthetic feed no longer moves them).
    pub fn external_symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.external.iter()
    }

    pub fn is_external(&self, symbol: &Symbol) -> bool {
        self.external.contains(symbol)
    }

    /// Operator trading-state command (hardstop, reduce, resume) for one account, or for every
    /// account when `account` is `None`. Entering `halted` cancels every working order of the
    /// account and `reducing` those that would increase exposure — also when the account was
    /// already in that state, so pressing HARDSTOP again still stops whatever is working.
    pub fn set_state(
        &mut self,
        account: Option<&str>,
        cmd: &StateCommand,
        now: DateTime<Utc>,
        out: &mut Vec<Event>,
    ) -> Result<Vec<StateOutcome>, OmsError> {
        self.check_account(account)?;
        let mut names: Vec<String> = match account {
            Some(a) => vec![a.to_string()],
            None => self.books.keys().cloned().collect(),
        };
        names.sort();
        // Judge every account first: a refused command (no reason) changes none of them.
        let mut changes = Vec::with_capacity(names.len());
        for name in &names {
            let state = self
                .books
                .get(name)
                .map_or(TradingState::Active, |b| b.state);
            changes.push(risk::apply_state(state, cmd)?);
        }
        let mut outcomes = Vec::with_capacity(names.len());
        for (name, change) in names.into_iter().zip(changes) {
            if let Some(change) = &change {
                self.emit(
                    Event::StateChanged {
                        account: name.clone(),
                        change: change.clone(),
                        at: now,
                    },
                    out,
                );
            }
            let canceled = self.enforce_state(&name, now, out);
            let state = self
                .books
                .get(&name)
                .map_or(TradingState::Active, |b| b.state);
            outcomes.push(StateOutcome {
                account: name,
                state,
                change,
                canceled,
            });
        }
        Ok(outcomes)
    }

    // ----- events ---------------------------------------------------------------------------

    fn emit_canceled(&mut self, id: u64, reason: &str, now: DateTime<Utc>, out: &mut Vec<Event>) {
        self.emit(
            Event::OrderUpdated {
                order_id: id,
                update: OrderUpdate::Canceled {
                    reason: reason.into(),
                },
                at: now,
            },
            out,
        );
    }

    fn emit(&mut self, event: Event, out: &mut Vec<Event>) {
        self.apply(&event);
        out.push(event);
    }

    /// Apply one event. Live commands and recovery both come through here.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::OrderCreated(order) => {
                self.next_order_id = self.next_order_id.max(order.id + 1);
                if let Some(c) = &order.request.client_order_id {
                    self.client_ids
                        .insert((order.request.account.clone(), c.clone()), order.id);
                }
                if order.status.is_open() {
                    self.working
                        .entry(order.request.symbol.clone())
                        .or_default()
                        .push(order.id);
                    if let Some(b) = self.books.get_mut(&order.request.account) {
                        b.open_orders += 1;
                    }
                }
                self.orders.insert(order.id, order.clone());
            }
            Event::OrderUpdated {
                order_id,
                update,
                at,
            } => {
                let Some(order) = self.orders.get_mut(order_id) else {
                    return;
                };
                let was_open = order.status.is_open();
                if order.apply(update, *at).is_err() {
                    return;
                }
                if was_open && !order.status.is_open() {
                    let (symbol, account) =
                        (order.request.symbol.clone(), order.request.account.clone());
                    if let Some(list) = self.working.get_mut(&symbol) {
                        list.retain(|id| id != order_id);
                    }
                    if let Some(b) = self.books.get_mut(&account) {
                        b.open_orders = b.open_orders.saturating_sub(1);
                    }
                }
            }
            Event::Filled(f) => {
                self.next_fill_id = self.next_fill_id.max(f.fill_id + 1);
                if let Some(exec) = &f.exec_id {
                    self.executions.insert((f.order_id, exec.clone()));
                }
                let multiplier = self
                    .instruments
                    .get(&f.symbol)
                    .map_or(Fixed::ONE, |i| i.multiplier);
                if let Some(b) = self.books.get_mut(&f.account) {
                    let pos = b
                        .positions
                        .entry(f.symbol.clone())
                        .or_insert_with(Position::flat);
                    let realized = pos
                        .apply(
                            &Fill {
                                side: f.side,
                                qty: f.qty,
                                price: f.price,
                                commission: f.commission,
                            },
                            multiplier,
                        )
                        .unwrap_or(Money::ZERO);
                    b.account.on_fill(realized, f.commission);
                    let day = f.at.date_naive();
                    if b.day != Some(day) {
                        b.day = Some(day);
                        b.day_realized = Money::ZERO;
                    }
                    b.day_realized = b
                        .day_realized
                        .saturating_add(realized)
                        .saturating_sub(f.commission);
                }
                let q = self.quotes.entry(f.symbol.clone()).or_default();
                q.last = q.last.or(Some(f.price));
                self.fills.push(f.clone());
            }
            Event::StateChanged {
                account, change, ..
            } => {
                if let Some(b) = self.books.get_mut(account) {
                    b.state = change.to;
                }
            }
            Event::Adjusted {
                account,
                symbol,
                qty,
                avg_price,
                ..
            } => {
                let multiplier = self
                    .instruments
                    .get(symbol)
                    .map_or(Fixed::ONE, |i| i.multiplier);
                if let Some(b) = self.books.get_mut(account) {
                    let pos = b
                        .positions
                        .entry(symbol.clone())
                        .or_insert_with(Position::flat);
                    pos.set_open(*qty, *avg_price, multiplier);
                }
            }
            Event::Mark {
                symbol,
                quote,
                external,
                ..
            } => {
                self.quotes.insert(symbol.clone(), *quote);
                self.marked.insert(symbol.clone(), *quote);
                if *external {
                    self.external.insert(symbol.clone());
                }
            }
        }
    }

    // ----- views ----------------------------------------------------------------------------

    pub fn order(&self, id: u64) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// The orders placed under `prefix:0`, `prefix:1`, … (a signal's orders), in that order.
    pub fn orders_by_client_prefix(&self, account: &str, prefix: &str) -> Vec<&Order> {
        (0..)
            .map_while(|i| self.order_by_client_id(account, &format!("{prefix}:{i}")))
            .collect()
    }

    /// The order an account's client order id names.
    pub fn order_by_client_id(&self, account: &str, client_order_id: &str) -> Option<&Order> {
        let id = self
            .client_ids
            .get(&(account.to_string(), client_order_id.to_string()))?;
        self.orders.get(id)
    }

    /// Orders, newest first, filtered.
    pub fn orders(&self, filter: &OrderFilter, limit: usize) -> Vec<Order> {
        if let Some(coid) = &filter.client_order_id {
            // Found through the index: the order an account's client order id names.
            let mut found: Vec<Order> = self
                .client_ids
                .iter()
                .filter(|((a, c), _)| c == coid && filter.account.as_ref().is_none_or(|f| f == a))
                .filter_map(|(_, id)| self.orders.get(id))
                .filter(|o| filter.matches(o))
                .cloned()
                .collect();
            found.sort_by_key(|o| std::cmp::Reverse(o.id));
            found.truncate(limit);
            return found;
        }
        self.orders
            .values()
            .rev()
            .filter(|o| filter.matches(o))
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many fills there are (the next fill's index).
    pub fn fill_count(&self) -> usize {
        self.fills.len
    }

    /// The fills of `range` (indexes, oldest first).
    pub fn fills_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &FillRecord> {
        range.filter_map(|i| self.fills.get(i))
    }

    /// Fills (of one account, or all), newest first.
    pub fn fills(&self, account: Option<&str>, limit: usize) -> Vec<FillRecord> {
        self.fills
            .iter()
            .rev()
            .filter(|f| account.is_none_or(|a| a == f.account))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn quote(&self, symbol: &Symbol) -> Option<Quote> {
        self.quotes.get(symbol).copied()
    }

    pub fn quotes(&self) -> Vec<(Symbol, Quote)> {
        let mut v: Vec<(Symbol, Quote)> =
            self.quotes.iter().map(|(s, q)| (s.clone(), *q)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn multiplier(&self, symbol: &Symbol) -> Fixed {
        self.instruments
            .get(symbol)
            .map_or(Fixed::ONE, |i| i.multiplier)
    }

    fn unrealized(&self, account: &str) -> Money {
        let Some(b) = self.books.get(account) else {
            return Money::ZERO;
        };
        b.positions.iter().fold(Money::ZERO, |acc, (s, p)| {
            match self.quotes.get(s).and_then(|q| q.last) {
                Some(last) => acc.saturating_add(p.unrealized(last, self.multiplier(s))),
                None => acc,
            }
        })
    }

    fn gross_exposure(&self, account: &str) -> Money {
        let Some(b) = self.books.get(account) else {
            return Money::ZERO;
        };
        b.positions.iter().fold(Money::ZERO, |acc, (s, p)| {
            match self.quotes.get(s).and_then(|q| q.last) {
                Some(last) => acc.saturating_add(p.notional(last, self.multiplier(s))),
                None => acc,
            }
        })
    }

    fn day_pnl(&self, account: &str, now: DateTime<Utc>) -> Money {
        let Some(b) = self.books.get(account) else {
            return Money::ZERO;
        };
        let realized = if b.day == Some(now.date_naive()) {
            b.day_realized
        } else {
            Money::ZERO
        };
        realized.saturating_add(self.unrealized(account))
    }

    pub fn positions(&self, account: Option<&str>) -> Vec<PositionView> {
        let mut v: Vec<PositionView> = self
            .books
            .iter()
            .filter(|(n, _)| account.is_none_or(|a| a == n.as_str()))
            .flat_map(|(name, b)| {
                b.positions
                    .iter()
                    .map(move |(s, p)| self.position_view(name, s, p))
            })
            .collect();
        v.sort_by(|a, b| (&a.account, &a.symbol).cmp(&(&b.account, &b.symbol)));
        v
    }

    /// One account's position in one symbol, when it has one.
    pub fn position(&self, account: &str, symbol: &Symbol) -> Option<PositionView> {
        let (name, b) = self.books.get_key_value(account)?;
        let p = b.positions.get(symbol)?;
        Some(self.position_view(name, symbol, p))
    }

    fn position_view(&self, account: &str, symbol: &Symbol, p: &Position) -> PositionView {
        let last = self.quotes.get(symbol).and_then(|q| q.last);
        PositionView {
            account: account.to_string(),
            symbol: symbol.clone(),
            position: p.clone(),
            last_price: last,
            unrealized_pnl: last.map_or(Money::ZERO, |l| p.unrealized(l, self.multiplier(symbol))),
        }
    }

    pub fn accounts(&self, now: DateTime<Utc>) -> Vec<AccountView> {
        let mut v: Vec<AccountView> = self
            .books
            .iter()
            .map(|(name, b)| {
                let unrealized = self.unrealized(name);
                AccountView {
                    account: b.account.clone(),
                    state: b.state,
                    limits: b.limits.clone(),
                    unrealized_pnl: unrealized,
                    equity: b.account.equity(unrealized),
                    gross_exposure: self.gross_exposure(name),
                    day_pnl: self.day_pnl(name, now),
                    open_orders: b.open_orders,
                }
            })
            .collect();
        v.sort_by(|a, b| a.account.name.cmp(&b.account.name));
        v
    }

    /// The working (open) orders, in id order.
    pub fn working_orders(&self) -> Vec<&Order> {
        let mut v: Vec<&Order> = self
            .working
            .values()
            .flatten()
            .filter_map(|id| self.orders.get(id))
            .collect();
        v.sort_by_key(|o| o.id);
        v
    }

    /// Signed position of an account in a symbol (zero when none).
    pub fn position_qty(&self, account: &str, symbol: &Symbol) -> Qty {
        self.books
            .get(account)
            .and_then(|b| b.positions.get(symbol))
            .map_or(Qty::ZERO, |p| p.qty)
    }

    /// Cash plus unrealized P&L of an account.
    pub fn equity(&self, account: &str) -> Option<Money> {
        let b = self.books.get(account)?;
        Some(b.account.equity(self.unrealized(account)))
    }

    /// The account's trading state (`None`: no such account).
    pub fn trading_state(&self, account: &str) -> Option<TradingState> {
        self.books.get(account).map(|b| b.state)
    }

    pub fn has_account(&self, name: &str) -> bool {
        self.books.contains_key(name)
    }
}

//! `sovereign gateway simulate ninjatrader DIR`: a stand-in for NinjaTrader's file interface,
//! for tests and dry runs (NinjaTrader runs only on Windows).
//!
//! It does what NinjaTrader does with the folder: creates `incoming` and `outgoing`, takes each
//! `oif*.txt` written into `incoming` (and deletes it), refuses lines NinjaTrader would refuse
//! (logged, nothing done), works the orders and writes `outgoing` in the documented formats:
//! `<orderId>.txt` (`State;Filled;AvgPrice`, cumulative), `<Instrument> <Exchange>_<Account>_
//! Position.txt` (`LONG|SHORT|FLAT;Qty;AvgPrice`) and `<Connection>.txt` (`CONNECTED` or
//! `DISCONNECTED`). Prices, first found: per instrument root in `DIR/prices.txt` (`ES 5000.25`
//! per line, re-read on every poll), the engine's last prices (`--engine URL`, read from
//! `GET /api/market/quotes` every 250 ms), `--price`. Market orders fill at the price, `--partial N` at most N
//! contracts per poll; limit and stop orders when the price reaches them. SIGHUP is a restart
//! (`outgoing` cleared, as NinjaTrader does), SIGUSR1 flips the connection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use sovereign_core::trading::fixed::{Fixed, Price};
use sovereign_core::trading::ninjatrader::Command;
use sovereign_core::trading::order::{OrderType, Side};

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Stand in for a venue: `ninjatrader DIR` works the ATI folder DIR like NinjaTrader.
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub struct SimulateArgs {
    /// The venue to stand in for (only `ninjatrader`).
    pub venue: String,
    /// The folder holding `incoming` and `outgoing`.
    pub dir: PathBuf,
    /// The price orders fill at when `DIR/prices.txt` has none for their instrument.
    #[arg(long)]
    pub price: Option<String>,
    /// Fill at most this many contracts of an order per poll (partial fills).
    #[arg(long)]
    pub partial: Option<i64>,
    /// The exchange part of position file names.
    #[arg(long, default_value = "Globex")]
    pub exchange: String,
    /// The connection's name (its state file is `NAME.txt`).
    #[arg(long, default_value = "Simulated")]
    pub connection: String,
    /// How often the folder is looked at, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// Fill at this engine's last prices (`http://127.0.0.1:8080`).
    #[arg(long, value_name = "URL")]
    pub engine: Option<String>,
}

/// The engine's last prices, by symbol, read now and then over HTTP.
struct EngineQuotes {
    url: String,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    prices: BTreeMap<String, Price>,
    read_at: Option<std::time::Instant>,
}

impl EngineQuotes {
    fn new(url: &str) -> anyhow::Result<EngineQuotes> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(EngineQuotes {
            url: format!("{}/api/market/quotes", url.trim_end_matches('/')),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the HTTP client")?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .context("cannot start the HTTP client")?,
            prices: BTreeMap::new(),
            read_at: None,
        })
    }

    /// Read the quotes again when the last read is 250 ms old; a failed read keeps the last.
    fn refresh(&mut self) {
        if self
            .read_at
            .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
        {
            return;
        }
        self.read_at = Some(std::time::Instant::now());
        let read = self.runtime.block_on(async {
            let v: serde_json::Value = self.http.get(&self.url).send().await?.json().await?;
            Ok::<_, reqwest::Error>(v)
        });
        match read {
            Ok(v) => {
                for q in v["quotes"].as_array().into_iter().flatten() {
                    let (Some(sym), Some(last)) = (q["symbol"].as_str(), q["last"].as_str()) else {
                        continue;
                    };
                    if let Ok(p) = Fixed::parse(last) {
                        self.prices.insert(sym.to_ascii_uppercase(), Price(p));
                    }
                }
            }
            Err(e) => eprintln!("cannot read the engine's prices at {}: {e}", self.url),
        }
    }
}

struct Working {
    account: String,
    instrument: String,
    side: Side,
    qty: i64,
    order_type: OrderType,
    limit: Option<Price>,
    stop: Option<Price>,
    triggered: bool,
    filled: i64,
    /// Filled notional (price × contracts), exact.
    notional: Fixed,
    done: bool,
}

#[derive(Default)]
struct Book {
    /// Signed contracts and the entry notional of what is open.
    qty: i64,
    cost: Fixed,
}

struct Venue {
    args: SimulateArgs,
    incoming: PathBuf,
    outgoing: PathBuf,
    orders: BTreeMap<String, Working>,
    positions: BTreeMap<(String, String), Book>,
    connected: bool,
    quotes: Option<EngineQuotes>,
}

pub fn run(cmd: GatewayCommand) -> anyhow::Result<()> {
    let GatewayCommand::Simulate(args) = cmd;
    if args.venue != "ninjatrader" {
        anyhow::bail!("no stand-in for {:?}: the venue is ninjatrader", args.venue);
    }
    if let Some(p) = &args.price {
        Fixed::parse(p).map_err(|e| anyhow::anyhow!("--price {p:?}: {e}"))?;
    }
    let incoming = args.dir.join("incoming");
    let outgoing = args.dir.join("outgoing");
    for d in [&incoming, &outgoing] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let restart = Arc::new(AtomicBool::new(false));
    let flip = Arc::new(AtomicBool::new(false));
    watch_signals(restart.clone(), flip.clone())?;
    let mut venue = Venue {
        args,
        incoming,
        outgoing,
        orders: BTreeMap::new(),
        positions: BTreeMap::new(),
        connected: true,
        quotes: None,
    };
    if let Some(url) = &venue.args.engine {
        venue.quotes = Some(EngineQuotes::new(url)?);
    }
    venue.write_connection()?;
    outln!(
        "standing in for NinjaTrader in {}",
        venue.args.dir.display()
    );
    loop {
        if restart.swap(false, Ordering::SeqCst) {
            venue.restart()?;
        }
        if flip.swap(false, Ordering::SeqCst) {
            venue.connected = !venue.connected;
            venue.write_connection()?;
        }
        if let Some(q) = &mut venue.quotes {
            q.refresh();
        }
        venue.take_instructions()?;
        venue.work()?;
        std::thread::sleep(Duration::from_millis(venue.args.poll_ms.max(1)));
    }
}

#[cfg(not(unix))]
fn watch_signals(_restart: Arc<AtomicBool>, _flip: Arc<AtomicBool>) -> anyhow::Result<()> {
    eprintln!("a restart (SIGHUP) and a connection flip (SIGUSR1) need a Unix system");
    Ok(())
}

#[cfg(unix)]
fn watch_signals(restart: Arc<AtomicBool>, flip: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal watcher")?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut hup), Ok(mut usr1)) = (
                signal(SignalKind::hangup()),
                signal(SignalKind::user_defined1()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => restart.store(true, Ordering::SeqCst),
                    _ = usr1.recv() => flip.store(true, Ordering::SeqCst),
                }
            }
        })
    });
    Ok(())
}

/// Write `text` to `path` whole: a reader never sees half of it.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let staging = path.with_extension("tmp~");
    std::fs::write(&staging, text)
        .with_context(|| format!("cannot write {}", staging.display()))?;
    std::fs::rename(&staging, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

impl Venue {
    fn write_connection(&self) -> anyhow::Result<()> {
        let state = if self.connected {
            "CONNECTED"
        } else {
            "DISCONNECTED"
        };
        write_whole(
            &self.outgoing.join(format!("{}.txt", self.args.connection)),
            state,
        )
    }

    /// NinjaTrader restarted: `outgoing` is emptied; positions stay at the broker, orders'
    /// state files are gone.
    fn restart(&mut self) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(&self.outgoing)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        self.orders.retain(|_, o| !o.done);
        self.write_connection()?;
        eprintln!("restarted: outgoing cleared");
        Ok(())
    }

    fn price(&self, instrument: &str) -> Option<Price> {
        let root = instrument.split_whitespace().next().unwrap_or(instrument);
        let listed = std::fs::read_to_string(self.args.dir.join("prices.txt"))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (sym, p) = l.trim().split_once(char::is_whitespace)?;
                    (sym.eq_ignore_ascii_case(root))
                        .then(|| Fixed::parse(p.trim()).ok())
                        .flatten()
                })
            });
        let engine = self
            .quotes
            .as_ref()
            .and_then(|q| q.prices.get(&root.to_ascii_uppercase()))
            .map(|p| p.0);
        listed
            .or(engine)
            .or_else(|| {
                self.args
                    .price
                    .as_deref()
                    .and_then(|p| Fixed::parse(p).ok())
            })
            .map(Price)
    }

    fn take_instructions(&mut self) -> anyhow::Result<()> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.incoming)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.to_ascii_lowercase().starts_with("oif") && n.ends_with(".txt")
                })
            })
            .collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue; // still being written: the next poll takes it
            };
            let _ = std::fs::remove_file(&file);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match Command::parse(line) {
                    Ok(c) => self.apply(c)?,
                    Err(e) => eprintln!("refused: {}", e.message),
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, command: Command) -> anyhow::Result<()> {
        match command {
            Command::Place {
                account,
                instrument,
                side,
                qty,
                order_type,
                limit,
                stop,
                order_id,
                ..
            } => {
                if order_id.is_empty() || self.orders.contains_key(&order_id) {
                    eprintln!("refused: order id {order_id:?} is missing or not unique");
                    return Ok(());
                }
                // Without a connection NinjaTrader rejects what it cannot send.
                let rejected = !self.connected;
                self.orders.insert(
                    order_id.clone(),
                    Working {
                        account,
                        instrument,
                        side,
                        qty,
                        order_type,
                        limit,
                        stop,
                        triggered: false,
                        filled: 0,
                        notional: Fixed::ZERO,
                        done: rejected,
                    },
                );
                if rejected {
                    return self.write_state(&order_id, "REJECTED");
                }
                self.write_state(&order_id, "ACCEPTED")?;
                self.write_state(&order_id, "WORKING")
            }
            Command::Cancel { order_id } => self.cancel(&order_id),
            Command::Change {
                order_id,
                qty,
                limit,
                stop,
            } => {
                let Some(o) = self.orders.get_mut(&order_id).filter(|o| !o.done) else {
                    eprintln!("refused: no working order {order_id:?} to change");
                    return Ok(());
                };
                if let Some(q) = qty {
                    o.qty = q.max(o.filled);
                }
                o.limit = limit.or(o.limit);
                o.stop = stop.or(o.stop);
                self.write_state(&order_id, "WORKING")
            }
            Command::ClosePosition {
                account,
                instrument,
            } => self.close(|a, i| a == account && i == instrument),
            Command::CancelAllOrders => {
                let ids: Vec<String> = self.orders.keys().cloned().collect();
                for id in ids {
                    self.cancel(&id)?;
                }
                Ok(())
            }
            Command::FlattenEverything => self.close(|_, _| true),
        }
    }

    fn cancel(&mut self, id: &str) -> anyhow::Result<()> {
        match self.orders.get_mut(id) {
            Some(o) if !o.done => {
                o.done = true;
                self.write_state(id, "CANCELLED")
            }
            _ => Ok(()),
        }
    }

    /// Cancel the working orders and flatten the positions that `which` names, at the price.
    fn close(&mut self, which: impl Fn(&str, &str) -> bool) -> anyhow::Result<()> {
        let ids: Vec<String> = self
            .orders
            .iter()
            .filter(|(_, o)| which(&o.account, &o.instrument))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.cancel(&id)?;
        }
        let keys: Vec<(String, String)> = self
            .positions
            .iter()
            .filter(|((a, i), b)| b.qty != 0 && which(a, i))
            .map(|(k, _)| k.clone())
            .collect();
        for (account, instrument) in keys {
            let Some(price) = self.price(&instrument) else {
                eprintln!("cannot flatten {instrument}: no price for it");
                continue;
            };
            let qty = self
                .positions
                .get(&(account.clone(), instrument.clone()))
                .map_or(0, |b| b.qty);
            self.book_fill(&account, &instrument, -qty, price)?;
        }
        Ok(())
    }

    /// Work every open order against its instrument's price.
    fn work(&mut self) -> anyhow::Result<()> {
        if !self.connected {
            return Ok(());
        }
        let ids: Vec<String> = self
            .orders
            .iter()
            .filter(|(_, o)| !o.done)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(o) = self.orders.get(&id) else {
                continue;
            };
            let Some(price) = self.price(&o.instrument) else {
                continue;
            };
            let buy = o.side == Side::Buy;
            let reached = |level: Option<Price>, up: bool| {
                level.is_some_and(|l| if up { price >= l } else { price <= l })
            };
            let triggered = o.triggered
                || match o.order_type {
                    OrderType::Stop | OrderType::StopLimit => reached(o.stop, buy),
                    _ => true,
                };
            let fill_price = match o.order_type {
                OrderType::Market | OrderType::Stop if triggered => Some(price),
                OrderType::Limit | OrderType::StopLimit if triggered => {
                    reached(o.limit, !buy).then_some(price)
                }
                _ => None,
            };
            let (account, instrument, left) =
                (o.account.clone(), o.instrument.clone(), o.qty - o.filled);
            if let Some(o) = self.orders.get_mut(&id) {
                o.triggered = triggered;
            }
            let Some(at) = fill_price else { continue };
            let now = self.args.partial.map_or(left, |n| n.clamp(1, left));
            if let Some(o) = self.orders.get_mut(&id) {
                o.filled += now;
                o.notional = o.notional.saturating_add(
                    at.0.checked_mul(Fixed::from_int(now).unwrap_or(Fixed::ZERO))
                        .unwrap_or(Fixed::ZERO),
                );
                o.done = o.filled >= o.qty;
            }
            let done = self.orders.get(&id).is_some_and(|o| o.done);
            self.write_state(&id, if done { "FILLED" } else { "PARTFILLED" })?;
            let signed = if buy { now } else { -now };
            self.book_fill(&account, &instrument, signed, at)?;
        }
        Ok(())
    }

    fn book_fill(
        &mut self,
        account: &str,
        instrument: &str,
        signed: i64,
        price: Price,
    ) -> anyhow::Result<()> {
        let book = self
            .positions
            .entry((account.to_string(), instrument.to_string()))
            .or_default();
        let amount = |n: i64| {
            price
                .0
                .checked_mul(Fixed::from_int(n).unwrap_or(Fixed::ZERO))
                .unwrap_or(Fixed::ZERO)
        };
        let next = book.qty + signed;
        if book.qty == 0 || book.qty.signum() == signed.signum() {
            book.cost = book.cost.saturating_add(amount(signed.abs()));
        } else if next == 0 || next.signum() == book.qty.signum() {
            // Reducing: the entry price of what stays is unchanged.
            let avg = book
                .cost
                .checked_div(Fixed::from_int(book.qty.abs()).unwrap_or(Fixed::ONE));
            book.cost = avg
                .and_then(|a| a.checked_mul(Fixed::from_int(next.abs()).unwrap_or(Fixed::ZERO)))
                .unwrap_or(Fixed::ZERO);
        } else {
            // Reversed: what is open now was entered at this price.
            book.cost = amount(next.abs());
        }
        book.qty = next;
        let (side, avg) = match next.signum() {
            0 => ("FLAT", Fixed::ZERO),
            s => (
                if s > 0 { "LONG" } else { "SHORT" },
                book.cost
                    .checked_div(Fixed::from_int(next.abs()).unwrap_or(Fixed::ONE))
                    .unwrap_or(Fixed::ZERO),
            ),
        };
        let file = format!("{instrument} {}_{account}_Position.txt", self.args.exchange);
        write_whole(
            &self.outgoing.join(file),
            &format!("{side};{};{}", next.abs(), avg),
        )
    }

    fn write_state(&self, id: &str, state: &str) -> anyhow::Result<()> {
        let Some(o) = self.orders.get(id) else {
            return Ok(());
        };
        let avg = if o.filled > 0 {
            o.notional
                .checked_div(Fixed::from_int(o.filled).unwrap_or(Fixed::ONE))
                .unwrap_or(Fixed::ZERO)
        } else {
            Fixed::ZERO
        };
        write_whole(
            &self.outgoing.join(format!("{id}.txt")),
            &format!("{state};{};{}", o.filled, avg),
        )
    }
}

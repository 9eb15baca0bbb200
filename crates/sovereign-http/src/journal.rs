//! The trading journal's streams: `/sse/orders`, `/sse/fills`, `/sse/positions`, and
//! `/sse/trading` with all three and the prices on one connection (a page that follows a
//! trading view holds one of the browser's six connections, not four).
//!
//! - **Per change** (no `every`): each subscriber has its own receiver of the engine's changes
//!   (and of its ticks) and renders each as it comes — an API client that follows every change.
//!   The engine builds a change for subscribers only while one of these listens.
//! - **Conflated** (`?every=250ms`): one [`Feed`] per window length asks the engine once a
//!   window what changed since the window before (the latest state of every order and position
//!   that changed and the newest fills, read from the OMS once it is durable), adds the
//!   window's prices and renders it once into SSE bytes; every subscriber of that length is
//!   sent those bytes as they are. Fifty dashboards cost one question and one rendering a
//!   window, and nothing per order. A feed starts with its first subscriber and ends at the
//!   first window without one.
//! - Both are resumable: the last journal event of each change or window carries the id
//!   `<epoch>-<seq>`; a client that reconnects with `Last-Event-ID` first gets what it missed
//!   (the orders and positions that changed, as they stand, and the fills), or `event: reset`
//!   when that is gone (another run of the engine, or too long ago) and it must fetch afresh.
//!   Prices carry no id: a reconnecting client fetches the quotes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sovereign_engine::trading::{Durables, Published, Tick, Trading, TradingError};
use tokio::sync::broadcast;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, Code};
use crate::extract::ApiQuery;
use crate::trading::{FillOut, OrderOut, PositionOut, TickOut};
use crate::Closing;

crate::routes! {
    sse_orders,
    sse_fills,
    sse_positions,
    sse_trading,
}

/// What a conflated window sends at most of orders and of fills: a page shows fewer.
const CONFLATED_KEPT: usize = 20;
/// A comment line this often keeps an idle stream's connection (and its proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Windows queued for a subscriber that reads slowly; one further behind gets `reset`.
const WINDOWS_QUEUED: usize = 16;

/// Which events a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kinds {
    Orders,
    Fills,
    Positions,
    All,
}

impl Kinds {
    const EACH: [Kinds; 4] = [Kinds::Orders, Kinds::Fills, Kinds::Positions, Kinds::All];

    fn index(self) -> usize {
        self as usize
    }

    fn orders(self) -> bool {
        matches!(self, Kinds::Orders | Kinds::All)
    }

    fn fills(self) -> bool {
        matches!(self, Kinds::Fills | Kinds::All)
    }

    fn positions(self) -> bool {
        matches!(self, Kinds::Positions | Kinds::All)
    }

    fn ticks(self) -> bool {
        self == Kinds::All
    }
}

/// `?every=250ms`: conflate a stream into one message per window (10 ms to 10 s).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Send at most once per this window: the latest state of each order, position and price
    /// that changed in it, the newest fills (at most 20 orders and 20 fills); absent: every
    /// change as it comes.
    pub every: Option<String>,
}

fn stream_window(q: &StreamQuery) -> Result<Option<Duration>, ApiError> {
    let Some(text) = &q.every else {
        return Ok(None);
    };
    let d = sovereign_core::schedule::parse_duration("every", text).map_err(ApiError::from)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(10) {
        return Err(
            ApiError::new(Code::InvalidQuery, "every must be between 10ms and 10s").field("every"),
        );
    }
    Ok(Some(d))
}

/// Order updates: `event: order`, `data: <order>` after every change.
#[utoipa::path(get, path = "/sse/orders", tag = "streams", params(StreamQuery), responses((status = 200, description = "server-sent events: `event: order` with the order after every change", content_type = "text/event-stream")))]
pub async fn sse_orders(
    State(t): State<Trading>,
    State(feeds): State<Feeds>,
    State(closing): State<Closing>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::Orders).await
}

/// Fills: `event: fill`, `data: <fill>`.
#[utoipa::path(get, path = "/sse/fills", tag = "streams", params(StreamQuery), responses((status = 200, description = "server-sent events: `event: fill` with each fill", content_type = "text/event-stream")))]
pub async fn sse_fills(
    State(t): State<Trading>,
    State(feeds): State<Feeds>,
    State(closing): State<Closing>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::Fills).await
}

/// Positions: `event: position`, `data: <position>` after every fill that changes one.
#[utoipa::path(get, path = "/sse/positions", tag = "streams", params(StreamQuery), responses((status = 200, description = "server-sent events: `event: position` with the position after each fill", content_type = "text/event-stream")))]
pub async fn sse_positions(
    State(t): State<Trading>,
    State(feeds): State<Feeds>,
    State(closing): State<Closing>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::Positions).await
}

/// Orders, fills, positions and prices on one stream: `event: order`, `event: fill` and
/// `event: position` as on their own streams, in the journal's order, and `event: tick` as on
/// `/sse/spot` (conflated: each symbol's latest price, then the orders, fills and positions of
/// each window).
#[utoipa::path(get, path = "/sse/trading", tag = "streams", params(StreamQuery), responses((status = 200, description = "server-sent events: `order`, `fill`, `position` and `tick` events on one stream", content_type = "text/event-stream")))]
pub async fn sse_trading(
    State(t): State<Trading>,
    State(feeds): State<Feeds>,
    State(closing): State<Closing>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::All).await
}

async fn journal_stream(
    t: &Trading,
    feeds: &Feeds,
    closing: Closing,
    headers: &HeaderMap,
    q: &StreamQuery,
    kinds: Kinds,
) -> ApiResult<Response> {
    let every = stream_window(q)?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let epoch = t.epoch();
    let mut first = Vec::new();
    let body = match every {
        None => {
            // Subscribed first: a change after what was missed comes live, once.
            let live = t.subscribe();
            let spot = kinds.ticks().then(|| t.subscribe_spot());
            let mut skip_to = 0;
            if let Some(last) = &last {
                if let Some(p) = missed(t, &mut first, last, None, usize::MAX).await? {
                    skip_to = p.seq;
                    render(&mut first, kinds, epoch, &Window::of(&p));
                }
            }
            per_change(live, spot, skip_to, first, kinds, epoch, closing)
        }
        Some(every) => {
            let (live, emitted_to) = feeds.join(t, every, closing.clone());
            if let Some(last) = &last {
                // What it missed up to the feed's last window; the next window brings the rest.
                if let Some(p) =
                    missed(t, &mut first, last, Some(emitted_to), CONFLATED_KEPT).await?
                {
                    render(&mut first, kinds, epoch, &Window::of(&p));
                }
            }
            conflated(live, first, kinds, closing)
        }
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

/// What a client that last saw the event `last` missed, through `through`; when that is gone
/// (or `last` is not an id of this run), `event: reset` in `first` instead.
async fn missed(
    t: &Trading,
    first: &mut Vec<u8>,
    last: &str,
    through: Option<u64>,
    kept: usize,
) -> Result<Option<Published>, TradingError> {
    let changed = match t.seq_of(last) {
        Some(after) => t.changes(after, through, kept).await?,
        None => None,
    };
    if changed.is_none() {
        first.extend_from_slice(RESET);
    }
    Ok(changed)
}

/// What a stream is sent when what a client missed is gone: fetch the state afresh.
const RESET: &[u8] = b"event: reset\ndata: {}\n\n";
const ALIVE: &[u8] = b":\n\n";

/// What `rx` receives, until its sender goes.
fn received<T: Clone + Send + 'static>(
    rx: broadcast::Receiver<T>,
) -> impl Stream<Item = Result<T, broadcast::error::RecvError>> + Send {
    stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Err(broadcast::error::RecvError::Closed) => None,
            r => Some((r, rx)),
        }
    })
}

/// A stream body: `first` (when not empty), then each of `chunks` (or a comment when there is
/// none for [`KEEP_ALIVE`]), until they end or the server begins to shut down.
fn body(
    first: Vec<u8>,
    chunks: impl Stream<Item = Bytes> + Send + 'static,
    closing: Closing,
) -> Body {
    let first = (!first.is_empty()).then(|| Bytes::from(first));
    let live = stream::unfold(
        (Box::pin(chunks), closing),
        |(mut chunks, closing)| async move {
            let bytes = tokio::select! {
                next = tokio::time::timeout(KEEP_ALIVE, chunks.next()) => match next {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => return None,
                    Err(_) => Bytes::from_static(ALIVE),
                },
                _ = closing.closed() => return None,
            };
            Some((bytes, (chunks, closing)))
        },
    );
    Body::from_stream(stream::iter(first).chain(live).map(Ok::<_, Infallible>))
}

/// Every published batch (and, with `spot`, every tick) as it comes, rendered for this
/// subscriber.
fn per_change(
    live: broadcast::Receiver<Durables>,
    spot: Option<broadcast::Receiver<Arc<Vec<Tick>>>>,
    skip_to: u64,
    first: Vec<u8>,
    kinds: Kinds,
    epoch: u64,
    closing: Closing,
) -> Body {
    let journal = received(live).filter_map(move |item| {
        let mut out = Vec::new();
        match item {
            Ok(durables) => {
                // Those the resume covered already are left out.
                for p in durables.iter().filter(|p| p.seq > skip_to) {
                    render(&mut out, kinds, epoch, &Window::of(p));
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let _ = write!(
                    Text(&mut out),
                    "event: lagged\ndata: {{\"missed\":{n}}}\n\n"
                );
            }
            Err(broadcast::error::RecvError::Closed) => {}
        }
        chunk(out)
    });
    let Some(spot) = spot else {
        return body(first, journal, closing);
    };
    // Ticks that went by unread are gone: the next ones bring the prices.
    let prices = received(spot).filter_map(|item| {
        let mut out = Vec::new();
        if let Ok(ticks) = item {
            let ticks: Vec<TickOut> = ticks.iter().map(TickOut::from).collect();
            render_ticks(&mut out, &ticks);
        }
        chunk(out)
    });
    body(first, stream::select(journal, prices), closing)
}

/// What a stream sends of `out`: nothing when it is empty.
fn chunk(out: Vec<u8>) -> std::future::Ready<Option<Bytes>> {
    std::future::ready((!out.is_empty()).then(|| Bytes::from(out)))
}

/// The feed's windows as they come, each already rendered for these kinds.
fn conflated(
    live: broadcast::Receiver<Arc<Rendered>>,
    first: Vec<u8>,
    kinds: Kinds,
    closing: Closing,
) -> Body {
    let windows = received(live).filter_map(move |item| {
        std::future::ready(match item {
            Ok(w) => {
                let chunk = &w.0[kinds.index()];
                (!chunk.is_empty()).then(|| chunk.clone())
            }
            // Windows went by unread: fetch afresh.
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Bytes::from_static(RESET)),
            Err(broadcast::error::RecvError::Closed) => None,
        })
    });
    body(first, windows, closing)
}

/// What a change (or the changes since a seq) comes to on a stream, up to its seq; and, in a
/// feed's window, each symbol's latest price.
struct Window {
    to: u64,
    orders: Vec<OrderOut>,
    fills: Vec<FillOut>,
    positions: Vec<PositionOut>,
    ticks: Vec<TickOut>,
}

impl Window {
    fn of(p: &Published) -> Window {
        Window {
            to: p.seq,
            orders: p.orders.iter().map(OrderOut::from).collect(),
            fills: p.fills.iter().map(FillOut::from).collect(),
            positions: p.positions.iter().map(PositionOut::from).collect(),
            ticks: Vec::new(),
        }
    }

    /// No change, through `to`.
    fn nothing(to: u64) -> Window {
        Window {
            to,
            orders: Vec::new(),
            fills: Vec::new(),
            positions: Vec::new(),
            ticks: Vec::new(),
        }
    }
}

/// Each symbol's latest price in `ticks` (in the order first seen): a tick without a bid or
/// an ask keeps the one before, as the engine's quote does.
fn latest_prices<'a>(ticks: impl IntoIterator<Item = &'a Tick>) -> Vec<Tick> {
    let mut latest: Vec<Tick> = Vec::new();
    for t in ticks {
        match latest.iter_mut().find(|l| l.symbol == t.symbol) {
            Some(l) => {
                let (bid, ask) = (t.bid.or(l.bid), t.ask.or(l.ask));
                *l = Tick {
                    bid,
                    ask,
                    ..t.clone()
                };
            }
            None => latest.push(t.clone()),
        }
    }
    latest
}

/// Append `w`'s events of `kinds` to `out`: prices first, then the journal's events, the last
/// of them with the id `<epoch>-<to>`.
fn render(out: &mut Vec<u8>, kinds: Kinds, epoch: u64, w: &Window) {
    if kinds.ticks() {
        render_ticks(out, &w.ticks);
    }
    let mut events: Vec<(&str, String)> = Vec::new();
    // Compact JSON has no newline: one `data:` line each.
    if kinds.orders() {
        events.extend(w.orders.iter().map(|o| ("order", json(o))));
    }
    if kinds.fills() {
        events.extend(w.fills.iter().map(|f| ("fill", json(f))));
    }
    if kinds.positions() {
        events.extend(w.positions.iter().map(|p| ("position", json(p))));
    }
    let n = events.len();
    let mut text = Text(out);
    for (i, (name, data)) in events.into_iter().enumerate() {
        let _ = write!(text, "event: {name}\ndata: {data}\n");
        if i + 1 == n {
            let _ = writeln!(text, "id: {epoch}-{}", w.to);
        }
        let _ = text.write_str("\n");
    }
}

/// Append one `event: tick` for each price (no id: prices are not replayed).
fn render_ticks(out: &mut Vec<u8>, ticks: &[TickOut]) {
    let mut text = Text(out);
    for t in ticks {
        let _ = write!(text, "event: tick\ndata: {}\n\n", json(t));
    }
}

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `fmt::Write` into bytes.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A window rendered once for every kind of stream (by [`Kinds::index`]).
pub struct Rendered([Bytes; 4]);

/// The conflating feeds, one per window length, started by their first subscriber.
#[derive(Clone, Default)]
pub struct Feeds(Arc<Mutex<HashMap<Duration, Arc<Feed>>>>);

/// One window length's feed: what it last sent, and to whom.
struct Feed {
    sent: Mutex<Sent>,
}

struct Sent {
    /// The seq the last window sent ended at (or the newest when the feed started).
    to: u64,
    tx: broadcast::Sender<Arc<Rendered>>,
}

impl Feeds {
    /// Subscribe to the `every` feed (starting it if it is not running): its windows from the
    /// next on, and the seq the last one sent ended at. Both are taken under the lock the feed
    /// sends under, so every window received holds only changes after that seq.
    fn join(
        &self,
        t: &Trading,
        every: Duration,
        closing: Closing,
    ) -> (broadcast::Receiver<Arc<Rendered>>, u64) {
        let mut feeds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let feed = feeds.entry(every).or_insert_with(|| {
            let (tx, _) = broadcast::channel(WINDOWS_QUEUED);
            let feed = Arc::new(Feed {
                sent: Mutex::new(Sent { to: t.seq(), tx }),
            });
            tokio::spawn(run_feed(
                self.clone(),
                feed.clone(),
                t.clone(),
                every,
                closing,
            ));
            feed
        });
        let sent = feed.sent.lock().unwrap_or_else(|p| p.into_inner());
        (sent.tx.subscribe(), sent.to)
    }
}

/// A feed: each window, ask the engine what changed since the last (when anything did), add
/// the window's prices, render it once and send it to every subscriber; end at a window without
/// subscribers (under the registry's lock, so no one joins it then) or with the engine.
async fn run_feed(feeds: Feeds, feed: Arc<Feed>, t: Trading, every: Duration, closing: Closing) {
    let (mut spot, epoch) = (t.subscribe_spot(), t.epoch());
    let mut sent_to = feed.sent.lock().unwrap_or_else(|p| p.into_inner()).to;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: Vec<Arc<Vec<Tick>>> = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.closed() => return,
        }
        {
            let mut registry = feeds.0.lock().unwrap_or_else(|p| p.into_inner());
            let sent = feed.sent.lock().unwrap_or_else(|p| p.into_inner());
            if sent.tx.receiver_count() == 0 {
                registry.remove(&every);
                return;
            }
        }
        // The window's prices, at once: one wake-up a window however fast they come.
        loop {
            match spot.try_recv() {
                Ok(t) => ticks.push(t),
                // Ticks that went by unread are gone: the newest are what a window sends.
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        let newest = t.seq();
        let (mut window, reset) = if newest > sent_to {
            match t.changes(sent_to, None, CONFLATED_KEPT).await {
                Ok(Some(p)) => (Window::of(&p), false),
                // More changed in the window than the engine's change log keeps: every
                // subscriber fetches afresh.
                Ok(None) => (Window::nothing(newest), true),
                Err(_) => {
                    // The engine stopped: the feed ends, and its subscribers' streams with it.
                    feeds
                        .0
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&every);
                    return;
                }
            }
        } else if ticks.is_empty() {
            continue;
        } else {
            (Window::nothing(sent_to), false)
        };
        window.ticks = latest_prices(ticks.iter().flat_map(|t| t.iter()))
            .iter()
            .map(TickOut::from)
            .collect();
        ticks.clear();
        sent_to = window.to;
        let chunks = Kinds::EACH.map(|kinds| {
            let mut out = Vec::new();
            if reset {
                out.extend_from_slice(RESET);
            }
            render(&mut out, kinds, epoch, &window);
            Bytes::from(out)
        });
        let mut sent = feed.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.to = sent_to;
        let _ = sent.tx.send(Arc::new(Rendered(chunks)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_core::trading::fixed::Price;
    use sovereign_core::trading::instrument::Symbol;
    use sovereign_core::trading::oms::PriceSource;

    fn tick(symbol: &str, price: &str, bid: Option<&str>, ask: Option<&str>) -> Tick {
        let p = |t: &str| Price::parse(t).expect("a price");
        Tick {
            symbol: Symbol::parse(symbol).expect("a symbol"),
            price: p(price),
            bid: bid.map(p),
            ask: ask.map(p),
            size: None,
            source: PriceSource::External,
            at: None,
        }
    }

    #[test]
    fn a_window_sends_each_symbols_latest_price_keeping_the_last_bid_and_ask() {
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let cases: &[(&[Row], &[Row])] = &[
            (&[], &[]),
            (
                &[("ES", "5000", Some("4999.75"), Some("5000.25"))],
                &[("ES", "5000", Some("4999.75"), Some("5000.25"))],
            ),
            // A tick without a bid or ask keeps the one before; one with them replaces it.
            (
                &[
                    ("ES", "5000", Some("4999.75"), Some("5000.25")),
                    ("ES", "5001", None, None),
                    ("ES", "5002", Some("5001.75"), None),
                ],
                &[("ES", "5002", Some("5001.75"), Some("5000.25"))],
            ),
            // Symbols in the order first seen, each with its own latest.
            (
                &[
                    ("NQ", "18000", None, None),
                    ("ES", "5000", None, Some("5000.25")),
                    ("NQ", "18001.25", Some("18001"), None),
                    ("ES", "4999.5", None, None),
                ],
                &[
                    ("NQ", "18001.25", Some("18001"), None),
                    ("ES", "4999.5", None, Some("5000.25")),
                ],
            ),
        ];
        for (ticks, want) in cases {
            let ticks: Vec<Tick> = ticks.iter().map(|&(s, p, b, a)| tick(s, p, b, a)).collect();
            let got = latest_prices(&ticks);
            let want: Vec<Tick> = want.iter().map(|&(s, p, b, a)| tick(s, p, b, a)).collect();
            assert_eq!(got, want, "{ticks:?}");
        }
    }
}

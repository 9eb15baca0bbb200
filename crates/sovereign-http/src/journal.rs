//! The trading journal's streams: `/sse/orders`, `/sse/fills`, `/sse/positions`, and
//! `/sse/trading` with all three on one connection (a page that follows orders, fills and
//! positions holds one of the browser's six connections, not three).
//!
//! - **Per change** (no `every`): each subscriber has its own receiver of the engine's published
//!   batches and renders each batch as it comes — an API client that follows every change.
//! - **Conflated** (`?every=250ms`): one [`Feed`] per window length receives the batches, merges
//!   each window into the latest state of every order and position that changed and the newest
//!   fills, and renders it once into SSE bytes; every subscriber of that length is sent those
//!   bytes as they are. Fifty dashboards cost one rendering a window, not fifty. A feed starts
//!   with its first subscriber and ends at the first empty window without one.
//! - Both are resumable: the last event of each batch or window carries the id `<epoch>-<seq>`;
//!   a client that reconnects with `Last-Event-ID` first gets what it missed, or `event: reset`
//!   when that is gone (another run of the engine, or too long ago) and it must fetch afresh.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use sovereign_core::trading::oms::Event;
use sovereign_engine::trading::{Durables, Published, Trading};
use tokio::sync::broadcast;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, Code};
use crate::extract::ApiQuery;
use crate::trading::{FillOut, OrderOut, PositionOut};
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
}

/// `?every=250ms`: conflate a stream into one message per window (10 ms to 10 s).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Send at most once per this window: the latest state of each order and position that
    /// changed in it, the newest fills (at most 200 of each); absent: every change as it comes.
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
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::Orders)
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
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::Fills)
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
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::Positions)
}

/// Orders, fills and positions on one stream: `event: order`, `event: fill` and
/// `event: position` as on their own streams, in the journal's order (conflated: orders,
/// then fills, then positions of each window).
#[utoipa::path(get, path = "/sse/trading", tag = "streams", params(StreamQuery), responses((status = 200, description = "server-sent events: `order`, `fill` and `position` events on one stream", content_type = "text/event-stream")))]
pub async fn sse_trading(
    State(t): State<Trading>,
    State(feeds): State<Feeds>,
    State(closing): State<Closing>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    journal_stream(&t, &feeds, closing, &headers, &q, Kinds::All)
}

fn journal_stream(
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
    let body = match every {
        None => {
            let sub = t.subscribe_after(last.as_deref());
            let mut first = Vec::new();
            if sub.reset {
                first.extend_from_slice(RESET);
            }
            for p in &sub.replay {
                render(
                    &mut first,
                    kinds,
                    epoch,
                    &Window::of(std::slice::from_ref(p), usize::MAX),
                );
            }
            per_change(sub.live, sub.replayed_to, first, kinds, epoch, closing)
        }
        Some(every) => {
            let (live, emitted_to) = feeds.join(t, every, closing.clone());
            let mut first = Vec::new();
            if last.is_some() {
                // What it missed up to the feed's last window; the next window brings the rest.
                let sub = t.subscribe_after(last.as_deref());
                let missed: Vec<_> = sub
                    .replay
                    .into_iter()
                    .filter(|p| p.seq <= emitted_to)
                    .collect();
                if sub.reset {
                    first.extend_from_slice(RESET);
                } else if !missed.is_empty() {
                    render(
                        &mut first,
                        kinds,
                        epoch,
                        &Window::of(&missed, CONFLATED_KEPT),
                    );
                }
            }
            conflated(live, emitted_to, first, kinds, closing)
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

/// What a stream is sent when what a client missed is gone: fetch the state afresh.
const RESET: &[u8] = b"event: reset\ndata: {}\n\n";
const ALIVE: &[u8] = b":\n\n";

/// What a stream's next wait brings.
enum Next<T> {
    Item(Result<T, broadcast::error::RecvError>),
    /// Nothing for [`KEEP_ALIVE`]: a comment goes out.
    Idle,
    /// The server begins to shut down: the stream ends.
    Closing,
}

async fn next<T: Clone>(rx: &mut broadcast::Receiver<T>, closing: &Closing) -> Next<T> {
    tokio::select! {
        r = tokio::time::timeout(KEEP_ALIVE, rx.recv()) => r.map_or(Next::Idle, Next::Item),
        _ = closing.closed() => Next::Closing,
    }
}

/// A stream body: `first` (when not empty), then what `chunk` makes of each item received (or
/// a comment when idle), until the sender or the server goes.
fn body<T, F>(first: Vec<u8>, rx: broadcast::Receiver<T>, closing: Closing, chunk: F) -> Body
where
    T: Clone + Send + 'static,
    F: Fn(Result<T, broadcast::error::RecvError>) -> Option<Bytes> + Send + 'static,
{
    let first = (!first.is_empty()).then(|| Bytes::from(first));
    let chunks = stream::unfold(
        (first, rx, closing, chunk),
        |(first, mut rx, closing, chunk)| async move {
            if let Some(bytes) = first {
                return Some((Ok::<_, Infallible>(bytes), (None, rx, closing, chunk)));
            }
            loop {
                let bytes = match next(&mut rx, &closing).await {
                    Next::Item(Err(broadcast::error::RecvError::Closed)) | Next::Closing => {
                        return None
                    }
                    Next::Item(item) => match chunk(item) {
                        Some(bytes) => bytes,
                        None => continue,
                    },
                    Next::Idle => Bytes::from_static(ALIVE),
                };
                return Some((Ok(bytes), (None, rx, closing, chunk)));
            }
        },
    );
    Body::from_stream(chunks)
}

/// Every published batch as it comes, rendered for this subscriber.
fn per_change(
    live: broadcast::Receiver<Durables>,
    skip_to: u64,
    first: Vec<u8>,
    kinds: Kinds,
    epoch: u64,
    closing: Closing,
) -> Body {
    body(first, live, closing, move |item| {
        let mut out = Vec::new();
        match item {
            Ok(durables) => {
                // Those replayed already are left out.
                for p in durables.iter().filter(|p| p.seq > skip_to) {
                    render(
                        &mut out,
                        kinds,
                        epoch,
                        &Window::of(std::slice::from_ref(p), usize::MAX),
                    );
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
        (!out.is_empty()).then(|| Bytes::from(out))
    })
}

/// The feed's windows as they come, each already rendered for these kinds.
fn conflated(
    live: broadcast::Receiver<Arc<Rendered>>,
    skip_to: u64,
    first: Vec<u8>,
    kinds: Kinds,
    closing: Closing,
) -> Body {
    body(first, live, closing, move |item| match item {
        Ok(w) if w.to <= skip_to => None,
        Ok(w) => {
            let chunk = &w.chunks[kinds.index()];
            (!chunk.is_empty()).then(|| chunk.clone())
        }
        // Windows went by unread: fetch afresh.
        Err(broadcast::error::RecvError::Lagged(_)) => Some(Bytes::from_static(RESET)),
        Err(broadcast::error::RecvError::Closed) => None,
    })
}

/// What one or more batches come to: the latest state of each order and position that changed
/// (in the order of their last change), the newest fills — at most `kept` of orders and of
/// fills — up to the last batch's seq.
struct Window {
    to: u64,
    orders: Vec<OrderOut>,
    fills: Vec<FillOut>,
    positions: Vec<PositionOut>,
}

impl Window {
    fn of(batches: &[Arc<Published>], kept: usize) -> Window {
        let mut seen_orders = std::collections::HashSet::new();
        let mut seen_positions = std::collections::HashSet::new();
        let (mut orders, mut positions, mut fills) = (Vec::new(), Vec::new(), Vec::new());
        // Newest first, so the first state met of each is its latest.
        for p in batches.iter().rev() {
            for o in p.orders.iter().rev() {
                if orders.len() < kept && seen_orders.insert(o.id) {
                    orders.push(OrderOut::from(o));
                }
            }
            for x in p.positions.iter().rev() {
                if seen_positions.insert((&x.account, &x.symbol)) {
                    positions.push(PositionOut::from(x));
                }
            }
            for e in p.events.iter().rev() {
                if let Event::Filled(f) = e {
                    if fills.len() < kept {
                        fills.push(FillOut::from(f));
                    }
                }
            }
        }
        orders.reverse();
        positions.reverse();
        fills.reverse();
        Window {
            to: batches.last().map_or(0, |b| b.seq),
            orders,
            fills,
            positions,
        }
    }
}

/// Append `w`'s events of `kinds` to `out`, the last with the id `<epoch>-<to>`.
fn render(out: &mut Vec<u8>, kinds: Kinds, epoch: u64, w: &Window) {
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

/// A window rendered once for every kind of stream.
pub struct Rendered {
    to: u64,
    chunks: [Bytes; 4],
}

/// The conflating feeds, one per window length, started by their first subscriber.
#[derive(Clone, Default)]
pub struct Feeds(Arc<Mutex<HashMap<Duration, Arc<Feed>>>>);

/// One window length's feed: what it last sent, and to whom.
struct Feed {
    sent: Mutex<Sent>,
}

struct Sent {
    /// The seq of the last batch in a window sent (or before the feed's first).
    to: u64,
    tx: broadcast::Sender<Arc<Rendered>>,
}

impl Feeds {
    /// Subscribe to the `every` feed (starting it if it is not running): its windows from the
    /// next on, and the seq the last one sent ended at.
    fn join(
        &self,
        t: &Trading,
        every: Duration,
        closing: Closing,
    ) -> (broadcast::Receiver<Arc<Rendered>>, u64) {
        let mut feeds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let feed = feeds.entry(every).or_insert_with(|| {
            let sub = t.subscribe_after(None);
            let (tx, _) = broadcast::channel(WINDOWS_QUEUED);
            let feed = Arc::new(Feed {
                sent: Mutex::new(Sent {
                    to: sub.replayed_to,
                    tx,
                }),
            });
            tokio::spawn(run_feed(
                self.clone(),
                feed.clone(),
                sub.live,
                sub.replayed_to,
                t.epoch(),
                every,
                closing,
            ));
            feed
        });
        let sent = feed.sent.lock().unwrap_or_else(|p| p.into_inner());
        (sent.tx.subscribe(), sent.to)
    }
}

/// A feed: merge the batches of each window, render it once, send it to every subscriber; end
/// at an empty window with none left (under the registry's lock, so no one joins it then).
async fn run_feed(
    feeds: Feeds,
    feed: Arc<Feed>,
    mut live: broadcast::Receiver<Durables>,
    skip_to: u64,
    epoch: u64,
    every: Duration,
    closing: Closing,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batches: Vec<Arc<Published>> = Vec::new();
    let mut lagged = false;
    let mut sent_to = skip_to;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.closed() => return,
        }
        // What queued up in the window, at once: one wake-up a window however fast orders
        // come (a window of more group commits than the queue holds says reset).
        loop {
            match live.try_recv() {
                Ok(durables) => {
                    batches.extend(durables.iter().filter(|p| p.seq > skip_to).cloned())
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => return,
            }
        }
        if batches.is_empty() && !lagged {
            let mut registry = feeds.0.lock().unwrap_or_else(|p| p.into_inner());
            let sent = feed.sent.lock().unwrap_or_else(|p| p.into_inner());
            if sent.tx.receiver_count() == 0 {
                registry.remove(&every);
                return;
            }
            continue;
        }
        let mut window = Window::of(&batches, CONFLATED_KEPT);
        window.to = window.to.max(sent_to);
        sent_to = window.to;
        let chunks = Kinds::EACH.map(|kinds| {
            let mut out = Vec::new();
            if lagged {
                // Batches went by unseen: every subscriber fetches afresh.
                out.extend_from_slice(RESET);
            }
            render(&mut out, kinds, epoch, &window);
            Bytes::from(out)
        });
        batches.clear();
        lagged = false;
        let mut sent = feed.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.to = sent_to;
        let _ = sent.tx.send(Arc::new(Rendered {
            to: sent_to,
            chunks,
        }));
    }
}

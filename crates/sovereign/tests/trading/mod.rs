//! End-to-end tests of trading: orders, risk, positions and P&L, fills, restart and crash
//! recovery, and the SSE streams — all through the real binary's HTTP API.
//!
//! Every engine here runs with `[trading] synthetic_feed = false`, so the only prices are the
//! ticks a test pushes with `POST /api/market/ticks`; every fill price and P&L figure below is
//! therefore known in advance and asserted exactly (decimals come back as strings in their
//! shortest form: `"5000.25"`, `"2"`, `"-25"`). ES has tick 0.25 and multiplier 50; NQ tick 0.25
//! and multiplier 20. The default `paper` account holds 100,000 USD.
//!
//! The crash tests (`fire_and_kill`) keep 16 order requests in flight, SIGKILL the engine, restart
//! it on the same data dir and hold every acknowledged answer to account. One of them is
//! `#[ignore]`d: it documents a durability bug (see its reason) and fails until that is fixed.
//!
//! This module must not reach into the engine: it knows only the wire contract.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::assert_error_shape;
use crate::util::{Engine, PATIENCE};

/// Prices under test control, no commission, default account.
const NO_FEED: &str = "[trading]\nsynthetic_feed = false\n";

/// The limits of the risk tests (the issue's list).
const RISK_CONFIG: &str = r#"
[trading]
synthetic_feed = false

[trading.accounts.paper]
max_order_qty = "5"
max_position = "10"
price_band_pct = "5"
max_order_rate = 3
rate_window = "10s"
daily_loss_limit = "1000"
allowed_symbols = ["ES", "NQ"]
"#;

// ----- helpers ------------------------------------------------------------------------------

/// Push one quote (last, bid, ask) and require it applied.
async fn tick(e: &Engine, symbol: &str, price: &str, bid: &str, ask: &str) {
    let (status, body) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": symbol, "price": price, "bid": bid, "ask": ask}]),
        )
        .await;
    assert_eq!(status, 200, "tick {symbol} {price}: {body}");
    assert_eq!(body["applied"], 1, "{body}");
}

/// `POST /api/orders` requiring `want`; returns the body.
async fn submit(e: &Engine, want: u16, order: Value) -> Value {
    let (status, body) = e.post("/api/orders", order.clone()).await;
    assert_eq!(status, want, "submit {order}: {body}");
    body
}

/// A risk denial: 422, `order.status` denied, `error.code` and `order.reject_code` both `code`.
async fn denied(e: &Engine, order: Value, code: &str) -> Value {
    let body = submit(e, 422, order.clone()).await;
    assert_eq!(body["order"]["status"], "denied", "{order}: {body}");
    assert_eq!(body["error"]["code"], code, "{order}: {body}");
    assert_eq!(body["order"]["reject_code"], code, "{order}: {body}");
    assert!(
        !body["order"]["reject_reason"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "a denial says why: {body}"
    );
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{body}"
    );
    assert_eq!(body["order"]["filled_qty"], "0", "{body}");
    body
}

/// One order by id, requiring 200.
async fn order(e: &Engine, id: &Value) -> Value {
    let id = id.as_str().expect("order ids are strings");
    let (status, body) = e.get(&format!("/api/orders/{id}")).await;
    assert_eq!(status, 200, "order {id}: {body}");
    body
}

/// `GET /api/orders{query}`, requiring 200 and `count` to match the list.
async fn orders(e: &Engine, query: &str) -> Vec<Value> {
    let (status, body) = e.get(&format!("/api/orders{query}")).await;
    assert_eq!(status, 200, "{body}");
    let list = body["orders"].as_array().cloned().expect("orders array");
    assert_eq!(body["count"], list.len(), "{body}");
    list
}

/// Every fill, newest first.
async fn fills(e: &Engine) -> Vec<Value> {
    let (status, body) = e.get("/api/fills?limit=100000").await;
    assert_eq!(status, 200, "{body}");
    let list = body["fills"].as_array().cloned().expect("fills array");
    assert_eq!(body["count"], list.len(), "{body}");
    list
}

/// The `paper` account's position in `symbol`.
async fn position(e: &Engine, symbol: &str) -> Value {
    let (status, body) = e.get("/api/positions?account=paper").await;
    assert_eq!(status, 200, "{body}");
    body["positions"]
        .as_array()
        .expect("positions array")
        .iter()
        .find(|p| p["symbol"] == symbol)
        .cloned()
        .unwrap_or_else(|| panic!("no {symbol} position in {body}"))
}

/// The `paper` account as `GET /api/accounts` shows it.
async fn account(e: &Engine) -> Value {
    let (status, body) = e.get("/api/accounts").await;
    assert_eq!(status, 200, "{body}");
    body["accounts"]
        .as_array()
        .expect("accounts array")
        .iter()
        .find(|a| a["account"] == "paper")
        .cloned()
        .unwrap_or_else(|| panic!("no paper account in {body}"))
}

fn ids(list: &[Value]) -> Vec<Value> {
    list.iter().map(|o| o["id"].clone()).collect()
}

/// A decimal string as an exact count of 10⁻⁸ (the engine's own resolution), parsed here
/// independently of the product.
fn units(text: &str) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    assert!(frac.len() <= 8, "{text:?} has more than 8 decimals");
    let int: i128 = int.parse().unwrap_or_else(|_| panic!("{text:?}"));
    let frac: i128 = format!("{frac:0<8}")
        .parse()
        .unwrap_or_else(|_| panic!("{text:?}"));
    let v = int * 100_000_000 + frac;
    if negative {
        -v
    } else {
        v
    }
}

fn num(v: &Value) -> i128 {
    units(
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not a decimal string")),
    )
}

/// Drop the fields of a JSON object that depend on the market rather than on the journal.
fn without(mut v: Value, fields: &[&str]) -> Value {
    if let Some(list) = v.as_array_mut() {
        for item in list {
            *item = without(item.take(), fields);
        }
    } else if let Some(map) = v.as_object_mut() {
        for f in fields {
            map.remove(*f);
        }
    }
    v
}

// ----- 1. order flow ------------------------------------------------------------------------

#[tokio::test]
async fn trading_order_flow() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;

    // A market buy fills at the ask.
    let buy = submit(&e, 201, json!({"symbol": "ES", "side": "buy", "qty": "2"})).await;
    assert_eq!(buy["status"], "filled", "{buy}");
    assert_eq!(buy["filled_qty"], "2");
    assert_eq!(buy["avg_fill_price"], "5000.25");
    assert_eq!(buy["account"], "paper", "account defaults to paper");
    assert_eq!(buy["tif"], "day", "tif defaults to day");
    assert_eq!(buy["type"], "market");
    assert_eq!(buy["qty"], "2");
    assert_eq!(buy["limit_price"], Value::Null);
    assert_eq!(buy["reject_code"], Value::Null);

    let p = position(&e, "ES").await;
    assert_eq!(p["qty"], "2", "{p}");
    assert_eq!(p["avg_price"], "5000.25", "{p}");
    assert_eq!(p["realized_pnl"], "0", "{p}");
    assert_eq!(p["last_price"], "5000", "{p}");
    // (5000 − 5000.25) × 2 × 50
    assert_eq!(p["unrealized_pnl"], "-25", "{p}");

    // The market moves: (5010 − 5000.25) × 2 × 50 = 975.
    tick(&e, "ES", "5010", "5009.75", "5010.25").await;
    let p = position(&e, "ES").await;
    assert_eq!(p["last_price"], "5010", "{p}");
    assert_eq!(p["unrealized_pnl"], "975", "{p}");

    // A limit sell above the market rests…
    let sell = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "sell", "qty": 2, "type": "limit", "limit_price": 5020}),
    )
    .await;
    assert_eq!(sell["status"], "accepted", "{sell}");
    assert_eq!(sell["filled_qty"], "0");
    assert_eq!(sell["avg_fill_price"], Value::Null);
    assert_eq!(sell["limit_price"], "5020", "numbers in, strings out");
    assert_eq!(account(&e).await["open_orders"], 1);

    // …until a tick goes through it: it fills at the better bid, 5020.5.
    tick(&e, "ES", "5021", "5020.5", "5021.5").await;
    let sold = order(&e, &sell["id"]).await;
    assert_eq!(sold["status"], "filled", "{sold}");
    assert_eq!(sold["filled_qty"], "2");
    assert_eq!(sold["avg_fill_price"], "5020.5");
    let p = position(&e, "ES").await;
    assert_eq!(p["qty"], "0", "{p}");
    // (5020.5 − 5000.25) × 2 × 50
    assert_eq!(p["realized_pnl"], "2025", "{p}");
    assert_eq!(p["unrealized_pnl"], "0", "{p}");
    let a = account(&e).await;
    assert_eq!(a["cash"], "102025", "{a}");
    assert_eq!(a["equity"], "102025", "{a}");
    assert_eq!(a["open_orders"], 0, "{a}");

    // Both fills, newest first.
    let f = fills(&e).await;
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0]["order_id"], sell["id"]);
    assert_eq!(
        (&f[0]["side"], &f[0]["qty"], &f[0]["price"]),
        (&json!("sell"), &json!("2"), &json!("5020.5"))
    );
    assert_eq!(f[0]["realized_pnl"], "2025");
    assert_eq!(f[0]["commission"], "0");
    assert_eq!(f[1]["order_id"], buy["id"]);
    assert_eq!(
        (&f[1]["side"], &f[1]["qty"], &f[1]["price"]),
        (&json!("buy"), &json!("2"), &json!("5000.25"))
    );
    assert_eq!(f[1]["realized_pnl"], "0");
    assert_ne!(f[0]["fill_id"], f[1]["fill_id"]);

    // Filters.
    let filled = orders(&e, "?status=filled&symbol=ES").await;
    assert_eq!(ids(&filled), vec![sell["id"].clone(), buy["id"].clone()]);
    assert!(orders(&e, "?status=filled&symbol=NQ").await.is_empty());
    assert!(orders(&e, "?status=accepted").await.is_empty());
    assert_eq!(
        order(&e, &buy["id"]).await,
        buy,
        "GET by id = the submit answer"
    );

    // Modify a resting limit: quantity and price.
    let rest = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "5000", "tif": "gtc"}),
    )
    .await;
    assert_eq!(rest["status"], "accepted", "{rest}");
    let id = rest["id"].as_str().unwrap().to_string();
    let (status, changed) = e
        .patch(
            &format!("/api/orders/{id}"),
            json!({"qty": "3", "limit_price": "4999.5"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["qty"], "3", "{changed}");
    assert_eq!(changed["limit_price"], "4999.5", "{changed}");
    assert_eq!(changed["status"], "accepted", "{changed}");
    assert_eq!(changed["tif"], "gtc");
    assert_eq!(order(&e, &rest["id"]).await, changed);
    let (status, body) = e
        .patch(
            &format!("/api/orders/{id}"),
            json!({"limit_price": "4999.3"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "price_off_tick", "{body}");
    assert_eq!(body["error"]["field"], "limit_price", "{body}");
    assert_eq!(
        order(&e, &rest["id"]).await,
        changed,
        "a bad modify changes nothing"
    );

    // Cancel, then cancel again.
    let (status, canceled) = e.delete(&format!("/api/orders/{id}")).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert_eq!(canceled["filled_qty"], "0");
    let (status, again) = e.delete(&format!("/api/orders/{id}")).await;
    assert_eq!(status, 409, "{again}");
    assert_error_shape(&again);
    assert_eq!(again["error"]["code"], "order_not_open", "{again}");
    assert_eq!(again["error"]["field"], "id", "{again}");
    let (status, body) = e
        .patch(&format!("/api/orders/{id}"), json!({"qty": "2"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "order_not_open", "{body}");

    // Cancel-all takes every working order and nothing else.
    let low = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "5000"}),
    )
    .await;
    let high = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "sell", "qty": "1", "type": "limit", "limit_price": "5040"}),
    )
    .await;
    assert_eq!(account(&e).await["open_orders"], 2);
    let (status, all) = e.post("/api/orders/cancel-all", json!({})).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(all["canceled"], json!([low["id"], high["id"]]), "{all}");
    for o in [&low, &high] {
        assert_eq!(order(&e, &o["id"]).await["status"], "canceled");
    }
    assert_eq!(account(&e).await["open_orders"], 0);
    let (status, none) = e.post_raw("/api/orders/cancel-all", b"", &[]).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["count"], 0, "{none}");

    // A buy stop above the market waits, then triggers on a tick and fills at the ask.
    let stop = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "stop", "stop_price": "5030"}),
    )
    .await;
    assert_eq!(stop["status"], "accepted", "{stop}");
    assert_eq!(stop["triggered"], false);
    assert_eq!(stop["stop_price"], "5030");
    tick(&e, "ES", "5025", "5024.75", "5025.25").await;
    assert_eq!(order(&e, &stop["id"]).await["status"], "accepted");
    tick(&e, "ES", "5030", "5029.75", "5030.25").await;
    let stopped = order(&e, &stop["id"]).await;
    assert_eq!(stopped["status"], "filled", "{stopped}");
    assert_eq!(stopped["triggered"], true, "{stopped}");
    assert_eq!(stopped["avg_fill_price"], "5030.25", "{stopped}");

    // IOC that cannot fill now is canceled at once, with nothing filled.
    let ioc = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "5000", "tif": "ioc"}),
    )
    .await;
    assert_eq!(ioc["status"], "canceled", "{ioc}");
    assert_eq!(ioc["filled_qty"], "0", "{ioc}");
    // A marketable IOC fills at the ask (the better price), not at its limit.
    let ioc2 = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "5031", "tif": "ioc"}),
    )
    .await;
    assert_eq!(ioc2["status"], "filled", "{ioc2}");
    assert_eq!(ioc2["avg_fill_price"], "5030.25", "{ioc2}");
    // FOK: all or nothing, now.
    let fok_no = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "sell", "qty": "2", "type": "limit", "limit_price": "5040", "tif": "fok"}),
    )
    .await;
    assert_eq!(fok_no["status"], "canceled", "{fok_no}");
    assert_eq!(fok_no["filled_qty"], "0", "{fok_no}");
    let fok = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "sell", "qty": "2", "type": "limit", "limit_price": "5029", "tif": "fok"}),
    )
    .await;
    assert_eq!(fok["status"], "filled", "{fok}");
    assert_eq!(fok["filled_qty"], "2", "{fok}");
    assert_eq!(fok["avg_fill_price"], "5029.75", "{fok}");

    // Flat again: bought 1 @ 5030.25 (stop) and 1 @ 5030.25 (IOC), sold 2 @ 5029.75:
    // 2025 − 0.5 × 2 × 50 = 1975.
    let p = position(&e, "ES").await;
    assert_eq!(p["qty"], "0", "{p}");
    assert_eq!(p["realized_pnl"], "1975", "{p}");
    assert_eq!(account(&e).await["cash"], "101975");
    assert_eq!(fills(&e).await.len(), 5);
    assert_eq!(account(&e).await["open_orders"], 0);
}

// ----- 2. idempotency -----------------------------------------------------------------------

#[tokio::test]
async fn trading_client_order_id_is_idempotent() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let order_in = json!({"symbol": "ES", "side": "buy", "qty": "1", "client_order_id": "abc-1"});
    let first = submit(&e, 201, order_in.clone()).await;
    assert_eq!(first["client_order_id"], "abc-1");
    assert_eq!(first["status"], "filled");
    let second = submit(&e, 200, order_in).await;
    assert_eq!(second, first, "the same order back, unchanged");
    // A different order under the same id is refused (409), never a second order.
    let third = submit(
        &e,
        409,
        json!({"symbol": "ES", "side": "buy", "qty": "3", "client_order_id": "abc-1"}),
    )
    .await;
    assert_eq!(
        third["error"]["code"], "client_order_id_conflict",
        "{third}"
    );

    assert_eq!(ids(&orders(&e, "").await), vec![first["id"].clone()]);
    assert_eq!(fills(&e).await.len(), 1);
    assert_eq!(position(&e, "ES").await["qty"], "1");

    // A new id is a new order.
    let other = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "client_order_id": "abc-2"}),
    )
    .await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(position(&e, "ES").await["qty"], "2");
}

// ----- 3. risk ------------------------------------------------------------------------------

#[tokio::test]
async fn trading_risk_denials() {
    let e = Engine::start(Some(RISK_CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;

    // Limits as configured.
    let (status, risk) = e.get("/api/risk").await;
    assert_eq!(status, 200, "{risk}");
    let paper = &risk["accounts"][0];
    assert_eq!(paper["account"], "paper", "{risk}");
    assert_eq!(paper["trading_state"], "active");
    let l = &paper["limits"];
    assert_eq!(l["max_order_qty"], "5", "{l}");
    assert_eq!(l["max_position"], "10", "{l}");
    assert_eq!(l["price_band_pct"], "5", "{l}");
    assert_eq!(
        l["max_order_rate"],
        json!({"orders": 3, "window_ms": 10_000}),
        "{l}"
    );
    assert_eq!(l["daily_loss_limit"], "1000", "{l}");
    assert_eq!(l["allowed_symbols"], json!(["ES", "NQ"]), "{l}");
    assert_eq!(l["max_order_notional"], Value::Null, "{l}");

    // Each rule, denied before it reaches the venue (denials do not count toward the rate).
    let es = |side: &str, qty: &str| json!({"symbol": "ES", "side": side, "qty": qty});
    denied(&e, es("buy", "6"), "max_order_qty").await;
    denied(
        &e,
        json!({"symbol": "CL", "side": "buy", "qty": "1"}),
        "symbol_not_allowed",
    )
    .await;
    // ±5% of 5000 is 250: 5250 is the edge and passes the band; one tick more does not.
    denied(
        &e,
        json!({"symbol": "ES", "side": "sell", "qty": "1", "type": "limit", "limit_price": "5250.25"}),
        "price_band",
    )
    .await;
    denied(
        &e,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "stop", "stop_price": "4749.75"}),
        "price_band",
    )
    .await;
    // NQ has no price yet: a priced order cannot be judged by the band.
    denied(
        &e,
        json!({"symbol": "NQ", "side": "buy", "qty": "1", "type": "limit", "limit_price": "18000"}),
        "no_market_price",
    )
    .await;
    assert_eq!(submit(&e, 201, es("buy", "5")).await["status"], "filled");
    assert_eq!(submit(&e, 201, es("buy", "5")).await["status"], "filled");
    denied(&e, es("buy", "1"), "max_position").await;
    assert_eq!(position(&e, "ES").await["qty"], "10");
    // The third order within the window is allowed (reducing; at the band's edge, resting),
    // the fourth is one too many.
    let edge = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "sell", "qty": "1", "type": "limit", "limit_price": "5250"}),
    )
    .await;
    assert_eq!(edge["status"], "accepted", "{edge}");
    denied(&e, es("sell", "1"), "max_order_rate").await;

    // Every denial is an order on record, with nothing filled.
    let denials = orders(&e, "?status=denied").await;
    assert_eq!(denials.len(), 7, "{denials:?}");
    assert_eq!(fills(&e).await.len(), 2);
    assert_eq!(account(&e).await["open_orders"], 1);
}

#[tokio::test]
async fn trading_hardstop_and_resume() {
    let e = Engine::start(Some(RISK_CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let resting = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4990"}),
    )
    .await;
    assert_eq!(resting["status"], "accepted");

    let (status, stop) = e.post("/api/risk/hardstop", json!({"reason": "x"})).await;
    assert_eq!(status, 200, "{stop}");
    // No account: every account (here only paper); the resting order is canceled.
    assert_eq!(
        stop,
        json!({"account": "all", "trading_state": "halted", "changed": true, "canceled": ["1"],
               "accounts": [{"account": "paper", "trading_state": "halted", "changed": true, "canceled": ["1"]}]})
    );
    let (_, again) = e.post("/api/risk/hardstop", json!({"reason": "x"})).await;
    assert_eq!(again["changed"], false, "already halted: {again}");
    assert_eq!(account(&e).await["trading_state"], "halted");
    let (_, risk) = e.get("/api/risk").await;
    assert_eq!(risk["accounts"][0]["trading_state"], "halted", "{risk}");

    // New orders are denied, including ones that would reduce; cancels still pass.
    denied(
        &e,
        json!({"symbol": "ES", "side": "buy", "qty": "1"}),
        "trading_halted",
    )
    .await;
    let canceled = order(&e, &resting["id"]).await;
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert_eq!(canceled["cancel_reason"], "account halted", "{canceled}");

    // Resuming needs a reason.
    let (status, body) = e.post("/api/risk/resume", json!({"reason": ""})).await;
    assert_eq!(status, 400, "{body}");
    assert_error_shape(&body);
    assert_eq!(body["error"]["field"], "reason", "{body}");
    let (status, body) = e.post("/api/risk/resume", json!({"reason": "  "})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(account(&e).await["trading_state"], "halted");
    let (status, body) = e.post("/api/risk/resume", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "reason", "{body}");
    let (status, body) = e
        .post("/api/risk/resume", json!({"reason": "checked"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["trading_state"], "active", "{body}");
    assert_eq!(body["changed"], true, "{body}");
    let filled = submit(&e, 201, json!({"symbol": "ES", "side": "buy", "qty": "1"})).await;
    assert_eq!(filled["status"], "filled");

    // Unknown account.
    let (status, body) = e
        .post(
            "/api/risk/hardstop",
            json!({"account": "nope", "reason": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_account", "{body}");
}

#[tokio::test]
async fn trading_daily_loss_limit_halts() {
    let e = Engine::start(Some(RISK_CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let buy = submit(&e, 201, json!({"symbol": "ES", "side": "buy", "qty": "5"})).await;
    assert_eq!(buy["avg_fill_price"], "5000.25");

    // (4997 − 5000.25) × 5 × 50 = −812.5: a loss, under the limit.
    tick(&e, "ES", "4997", "4996.75", "4997.25").await;
    let a = account(&e).await;
    assert_eq!(a["day_pnl"], "-812.5", "{a}");
    assert_eq!(a["trading_state"], "active", "{a}");

    // (4996 − 5000.25) × 5 × 50 = −1062.5 ≤ −1000: halted.
    tick(&e, "ES", "4996", "4995.75", "4996.25").await;
    let a = account(&e).await;
    assert_eq!(a["day_pnl"], "-1062.5", "{a}");
    assert_eq!(a["unrealized_pnl"], "-1062.5", "{a}");
    assert_eq!(a["equity"], "98937.5", "{a}");
    assert_eq!(a["trading_state"], "halted", "{a}");
    let (_, risk) = e.get("/api/risk").await;
    assert_eq!(risk["accounts"][0]["trading_state"], "halted", "{risk}");
    assert_eq!(risk["accounts"][0]["day_pnl"], "-1062.5", "{risk}");

    denied(
        &e,
        json!({"symbol": "ES", "side": "buy", "qty": "1"}),
        "trading_halted",
    )
    .await;
    // A price recovery does not lift the halt: only an operator does.
    tick(&e, "ES", "5010", "5009.75", "5010.25").await;
    assert_eq!(account(&e).await["trading_state"], "halted");

    // The kill switch still closes the position: flatten passes the loss limit while halted.
    let (status, closing) = e.post("/api/positions/flatten", json!({})).await;
    assert_eq!(status, 200, "{closing}");
    assert_eq!(closing["orders"][0]["status"], "filled", "{closing}");
    assert_eq!(position(&e, "ES").await["qty"], "0");
}

#[tokio::test]
async fn trading_risk_applies_to_changes_and_repeats() {
    let e = Engine::start(Some(RISK_CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let resting = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4900", "tif": "gtc"}),
    )
    .await;
    let path = format!("/api/orders/{}", resting["id"].as_str().unwrap());

    // A change must pass risk as if the order were new: size, then price band.
    for (change, code) in [
        (json!({"qty": "50"}), "max_order_qty"),
        (json!({"limit_price": "6000"}), "price_band"),
    ] {
        let (status, body) = e.patch(&path, change.clone()).await;
        assert_eq!(status, 422, "{change}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    assert_eq!(
        order(&e, &resting["id"]).await["qty"],
        "1",
        "refused changes change nothing"
    );

    // A halt cancels the working order, so nothing is left to change.
    e.post("/api/risk/hardstop", json!({"reason": "test"}))
        .await;
    let (status, body) = e.patch(&path, json!({"qty": "2"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("order_not_open")),
        "{body}"
    );
    e.post("/api/risk/resume", json!({"reason": "test"})).await;

    // Repeating a denied order's client id answers like the original: 422 with the reason.
    let first = denied(
        &e,
        json!({"symbol": "ES", "side": "buy", "qty": "50", "client_order_id": "big-1"}),
        "max_order_qty",
    )
    .await;
    let again = denied(
        &e,
        json!({"symbol": "ES", "side": "buy", "qty": "50", "client_order_id": "big-1"}),
        "max_order_qty",
    )
    .await;
    assert_eq!(first["order"]["id"], again["order"]["id"]);

    // Query errors are JSON too.
    for path in ["/api/fills?limit=abc", "/api/positions?limit=-1"] {
        let (status, body) = e.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_error_shape(&body);
    }
}

#[tokio::test]
async fn trading_open_order_limit_counts_other_orders() {
    let e = Engine::start(Some(
        "[trading]\nsynthetic_feed = false\n[trading.accounts.paper]\nmax_open_orders = 1\n",
    ));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let limit = |px: &str| json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": px, "tif": "gtc"});
    submit(&e, 201, limit("4990")).await;
    denied(&e, limit("4991"), "max_open_orders").await;
}

// ----- 4. bad input -------------------------------------------------------------------------

#[tokio::test]
async fn trading_bad_input_is_refused_whole() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;

    let es = |extra: Value| {
        let mut o = json!({"symbol": "ES", "side": "buy", "qty": "1"});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    // (body, status, code, field)
    let cases: Vec<(Value, u16, &str, Value)> = vec![
        (
            es(json!({"symbol": "ZZZ"})),
            400,
            "unknown_symbol",
            json!("symbol"),
        ),
        (es(json!({"qty": "0"})), 400, "invalid_qty", json!("qty")),
        (es(json!({"qty": -1})), 400, "invalid_qty", json!("qty")),
        (es(json!({"qty": "1.5"})), 400, "qty_off_step", json!("qty")),
        (
            es(json!({"qty": "two"})),
            400,
            "invalid_number",
            json!("qty"),
        ),
        (
            es(json!({"type": "limit", "limit_price": "5000.3"})),
            400,
            "price_off_tick",
            json!("limit_price"),
        ),
        (
            es(json!({"type": "limit"})),
            400,
            "missing_price",
            json!("limit_price"),
        ),
        (
            es(json!({"type": "stop_limit", "limit_price": "5000"})),
            400,
            "missing_price",
            json!("stop_price"),
        ),
        (
            es(json!({"limit_price": "5000"})),
            400,
            "unexpected_price",
            json!("limit_price"),
        ),
        (
            es(json!({"side": "hold"})),
            400,
            "invalid_side",
            json!("side"),
        ),
        (
            es(json!({"type": "trailing"})),
            400,
            "invalid_order_type",
            json!("type"),
        ),
        (es(json!({"tif": "gtd"})), 400, "invalid_tif", json!("tif")),
        (
            es(json!({"client_order_id": ""})),
            400,
            "invalid_client_order_id",
            json!("client_order_id"),
        ),
        (
            es(json!({"colour": "red"})),
            400,
            "unknown_field",
            json!("colour"),
        ),
        (
            json!({"side": "buy", "qty": "1"}),
            400,
            "missing_field",
            json!("symbol"),
        ),
        (
            es(json!({"account": "nope"})),
            404,
            "unknown_account",
            json!("account"),
        ),
    ];
    for (body, want, code, field) in &cases {
        let (status, answer) = e.post("/api/orders", body.clone()).await;
        assert_eq!(status, *want, "{body}: {answer}");
        assert_error_shape(&answer);
        assert_eq!(answer["error"]["code"], *code, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], *field, "{body}: {answer}");
    }

    // A ticks batch with one bad row applies none of it, and names the row.
    let good = json!({"symbol": "ES", "price": "5100", "bid": "5099.75", "ask": "5100.25"});
    let tick_cases: Vec<(Value, &str, &str)> = vec![
        (
            json!([good, {"symbol": "ES", "price": "5000.3"}]),
            "price_off_tick",
            "ticks[1].price",
        ),
        (
            json!([good, good, {"symbol": "ES", "price": "x"}]),
            "invalid_number",
            "ticks[2].price",
        ),
        (
            json!({"ticks": [good, {"symbol": "ES", "price": "5000", "bid": "-1"}]}),
            "invalid_price",
            "ticks[1].bid",
        ),
        (
            json!([good, {"symbol": "ZZZ", "price": "1"}]),
            "unknown_symbol",
            "ticks[1].symbol",
        ),
    ];
    for (body, code, field) in &tick_cases {
        let (status, answer) = e.post("/api/market/ticks", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_error_shape(&answer);
        assert_eq!(answer["error"]["code"], *code, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], *field, "{body}: {answer}");
    }
    // Last is still 5000 and the ask still 5000.25: a market buy proves both.
    let probe = submit(&e, 201, json!({"symbol": "ES", "side": "buy", "qty": "1"})).await;
    assert_eq!(probe["avg_fill_price"], "5000.25", "{probe}");
    assert_eq!(position(&e, "ES").await["last_price"], "5000");

    // Unknown order ids.
    for (method, path) in [
        (reqwest::Method::GET, "/api/orders/999"),
        (reqwest::Method::DELETE, "/api/orders/999"),
        (reqwest::Method::GET, "/api/orders/not-a-number"),
        (reqwest::Method::DELETE, "/api/orders/not-a-number"),
    ] {
        let (status, body) = e.call(method.clone(), path, None, &[]).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_error_shape(&body);
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
        assert_eq!(body["error"]["field"], "id", "{path}: {body}");
    }
    let (status, body) = e.patch("/api/orders/999", json!({"qty": "2"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (status, body) = e.get("/api/orders?status=done").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_status", "{body}");
    assert_eq!(body["error"]["field"], "status", "{body}");

    // Nothing but the probe was created.
    assert_eq!(ids(&orders(&e, "").await), vec![probe["id"].clone()]);
    assert_eq!(fills(&e).await.len(), 1);
    let a = account(&e).await;
    assert_eq!(a["open_orders"], 0, "{a}");
    assert_eq!(a["cash"], "100000", "{a}");
}

// ----- 5. restart ---------------------------------------------------------------------------

/// Everything the journal decides, minus what depends on the market after the last fill.
async fn book(e: &Engine) -> Value {
    let (s1, orders) = e.get("/api/orders?limit=100000").await;
    let (s2, positions) = e.get("/api/positions").await;
    let (s3, fills) = e.get("/api/fills?limit=100000").await;
    let (s4, accounts) = e.get("/api/accounts").await;
    let (s5, risk) = e.get("/api/risk").await;
    assert_eq!([s1, s2, s3, s4, s5], [200; 5]);
    let market = [
        "last_price",
        "unrealized_pnl",
        "equity",
        "day_pnl",
        "gross_exposure",
    ];
    json!({
        "orders": orders,
        "positions": without(positions["positions"].clone(), &market),
        "fills": fills,
        "accounts": without(accounts["accounts"].clone(), &market),
        "risk": without(risk["accounts"].clone(), &market),
    })
}

#[tokio::test]
async fn trading_state_survives_restart() {
    let e = Engine::start(Some(
        "[trading]\nsynthetic_feed = false\ncommission_per_unit = \"1.25\"\n",
    ));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    tick(&e, "NQ", "18000", "17999.75", "18000.25").await;
    let buy = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "3", "client_order_id": "r-1"}),
    )
    .await;
    submit(&e, 201, json!({"symbol": "NQ", "side": "sell", "qty": "2"})).await;
    submit(&e, 201, json!({"symbol": "ES", "side": "sell", "qty": "1"})).await;
    let resting = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4990", "tif": "gtc"}),
    )
    .await;
    submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "sell", "qty": "1", "type": "stop", "stop_price": "4980"}),
    )
    .await;
    let gone = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4995"}),
    )
    .await;
    let (status, _) = e
        .delete(&format!("/api/orders/{}", gone["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    let (status, _) = e
        .patch(
            &format!("/api/orders/{}", resting["id"].as_str().unwrap()),
            json!({"qty": "2"}),
        )
        .await;
    assert_eq!(status, 200);
    // The market moves after the last fill (not journaled; excluded from the comparison).
    tick(&e, "ES", "5003", "5002.75", "5003.25").await;

    // Exact values, so the comparison below compares something real:
    // ES: bought 3 @ 5000.25, sold 1 @ 4999.75 → realized −25; commissions 4 × 1.25;
    // NQ: sold 2 @ 17999.75, commission 2.5.
    let a = account(&e).await;
    assert_eq!(a["cash"], "99967.5", "{a}");
    assert_eq!(a["open_orders"], 2, "{a}");
    let es = position(&e, "ES").await;
    assert_eq!(
        (
            &es["qty"],
            &es["avg_price"],
            &es["realized_pnl"],
            &es["commissions"]
        ),
        (&json!("2"), &json!("5000.25"), &json!("-25"), &json!("5"))
    );
    let nq = position(&e, "NQ").await;
    assert_eq!(
        (&nq["qty"], &nq["avg_price"]),
        (&json!("-2"), &json!("17999.75"))
    );

    let before = book(&e).await;
    let e = e.restart();
    let after = book(&e).await;
    assert_eq!(after["orders"], before["orders"]);
    assert_eq!(after["positions"], before["positions"]);
    assert_eq!(after["fills"], before["fills"]);
    assert_eq!(after["accounts"], before["accounts"]);
    assert_eq!(after["risk"], before["risk"]);

    // Still idempotent, and the restored resting order still works: a tick through it fills it.
    let again = submit(
        &e,
        200,
        json!({"symbol": "ES", "side": "buy", "qty": "3", "client_order_id": "r-1"}),
    )
    .await;
    assert_eq!(again["id"], buy["id"]);
    tick(&e, "ES", "4990", "4989.75", "4990").await;
    let filled = order(&e, &resting["id"]).await;
    assert_eq!(filled["status"], "filled", "{filled}");
    assert_eq!(filled["filled_qty"], "2", "{filled}");
    assert_eq!(filled["avg_fill_price"], "4990", "{filled}");

    // A halt survives a restart too, and ids go on where they stopped.
    let (status, _) = e.post("/api/risk/hardstop", json!({"reason": "eod"})).await;
    assert_eq!(status, 200);
    let max_id = book(&e).await["orders"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap();
    let e = e.restart();
    assert_eq!(account(&e).await["trading_state"], "halted");
    let next = denied(
        &e,
        json!({"symbol": "ES", "side": "buy", "qty": "1"}),
        "trading_halted",
    )
    .await;
    assert_eq!(next["order"]["id"], (max_id + 1).to_string());
}

// ----- 6. reliability: SIGKILL mid-stream ---------------------------------------------------

const CRASH_ORDERS: usize = 300;
/// Requests kept in flight at once.
const CRASH_WORKERS: usize = 16;
/// Answers to wait for before the SIGKILL.
const KILL_AFTER: usize = 60;

fn crash_order(n: usize) -> Value {
    let side = if n.is_multiple_of(3) { "sell" } else { "buy" };
    json!({"symbol": "ES", "side": side, "qty": "1", "client_order_id": format!("rel-{n}")})
}

/// What became of one request.
enum Outcome {
    /// A complete answer: status and JSON body.
    Answered(u16, Value),
    /// The connection was refused: the request never reached the engine.
    NotSent,
    /// Sent, but the connection died before a complete answer: in flight at the kill.
    Lost,
}

/// Post `body` and classify what came back.
async fn try_post(http: &reqwest::Client, url: &str, body: &Value) -> Outcome {
    let resp = match http.post(url).json(body).send().await {
        Ok(resp) => resp,
        Err(e) if e.is_connect() => return Outcome::NotSent,
        Err(_) => return Outcome::Lost,
    };
    let status = resp.status().as_u16();
    match resp.bytes().await.map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(v)) => Outcome::Answered(status, v),
        _ => Outcome::Lost,
    }
}

/// What the client saw of a stream of orders cut by a SIGKILL.
struct Crash {
    /// Request index → the order of its complete 2xx/422 answer.
    acked: BTreeMap<usize, Value>,
    /// Sent, no complete answer.
    lost: usize,
    /// Never reached the engine.
    not_sent: usize,
}

/// Post `bodies` to `/api/orders` from [`CRASH_WORKERS`] concurrent workers (each sends its next
/// request as soon as the previous is answered, so requests are always in flight), SIGKILL the
/// engine once [`KILL_AFTER`] are answered, and collect what every request got.
async fn fire_and_kill(e: &mut Engine, bodies: Vec<Value>) -> Crash {
    let (http, url) = (e.http(), format!("{}/api/orders", e.url()));
    let bodies = Arc::new(bodies);
    let answered = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CRASH_WORKERS {
        let (http, url, bodies) = (http.clone(), url.clone(), bodies.clone());
        let (answered, next) = (answered.clone(), next.clone());
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(body) = bodies.get(n) else {
                    return outcomes;
                };
                let outcome = try_post(&http, &url, body).await;
                if matches!(outcome, Outcome::Answered(..)) {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                outcomes.push((n, outcome));
            }
        });
    }
    let deadline = Instant::now() + PATIENCE;
    while answered.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "{KILL_AFTER} orders not answered in time"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let status = e.kill9();
    assert!(!status.success(), "SIGKILL ends the engine: {status}");

    let mut crash = Crash {
        acked: BTreeMap::new(),
        lost: 0,
        not_sent: 0,
    };
    for (n, outcome) in tasks.join_all().await.into_iter().flatten() {
        match outcome {
            Outcome::Answered(status, body) => {
                assert!(
                    matches!(status, 200 | 201 | 422),
                    "request {n}: unexpected {status} {body}"
                );
                let order = if status == 422 {
                    body["order"].clone()
                } else {
                    body
                };
                assert_eq!(
                    order["client_order_id"], bodies[n]["client_order_id"],
                    "{order}"
                );
                crash.acked.insert(n, order);
            }
            Outcome::Lost => crash.lost += 1,
            Outcome::NotSent => crash.not_sent += 1,
        }
    }
    assert!(crash.acked.len() >= KILL_AFTER);
    // Whether any request was in flight at the kill depends on timing; that the kill came before
    // the stream ended does not.
    assert!(
        crash.not_sent > 0,
        "the kill should land mid-stream: {} answered, {} in flight, {} not sent",
        crash.acked.len(),
        crash.lost,
        crash.not_sent
    );
    crash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trading_acknowledged_orders_survive_sigkill() {
    let mut e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let Crash { acked, .. } =
        fire_and_kill(&mut e, (0..CRASH_ORDERS).map(crash_order).collect()).await;

    let e = e.resume();
    // Every acknowledged order is there, as it was acknowledged.
    for (n, was) in &acked {
        let now = order(&e, &was["id"]).await;
        assert_eq!(now["client_order_id"], format!("rel-{n}"), "{now}");
        assert_eq!(now["status"], was["status"], "rel-{n}: {now} vs {was}");
        assert_eq!(
            now["filled_qty"], was["filled_qty"],
            "rel-{n}: {now} vs {was}"
        );
    }

    // Resubmit all of them: acknowledged ones come back as they were, never as new orders.
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let http = e.http();
    let url = format!("{}/api/orders", e.url());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CRASH_ORDERS {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move { (n, try_post(&http, &url, &crash_order(n)).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, outcome) = joined.expect("request task");
        let Outcome::Answered(status, body) = outcome else {
            panic!("rel-{n}: no answer after restart");
        };
        match acked.get(&n) {
            Some(was) => {
                assert_eq!(status, 200, "rel-{n} was acknowledged: {body}");
                assert_eq!(body["id"], was["id"], "rel-{n}: {body}");
            }
            None => assert!(matches!(status, 200 | 201), "rel-{n}: {status} {body}"),
        }
    }

    // Exactly one order per client order id; each market order filled once.
    let all = orders(&e, "?limit=100000").await;
    let mut per_coid: BTreeMap<String, usize> = BTreeMap::new();
    for o in &all {
        *per_coid
            .entry(o["client_order_id"].as_str().unwrap().to_string())
            .or_default() += 1;
        assert_eq!(o["status"], "filled", "{o}");
    }
    assert_eq!(per_coid.len(), CRASH_ORDERS, "{per_coid:?}");
    assert!(per_coid.values().all(|c| *c == 1), "{per_coid:?}");
    assert_eq!(all.len(), CRASH_ORDERS);
    let fills = fills(&e).await;
    let filled_orders: BTreeSet<&str> = fills
        .iter()
        .map(|f| f["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(fills.len(), CRASH_ORDERS, "one fill per order");
    assert_eq!(filled_orders.len(), CRASH_ORDERS, "one fill per order");

    // Position and P&L from the fills, recomputed here: the signed quantity, and the cash-flow
    // identity realized + unrealized = Σ sell notional − Σ buy notional + qty × last × 50.
    let (mut qty, mut cash_flow, mut realized) = (0i128, 0i128, 0i128);
    for f in &fills {
        let (q, price) = (num(&f["qty"]), num(&f["price"]));
        let notional = q * price / 100_000_000 * 50;
        match f["side"].as_str().unwrap() {
            "buy" => {
                qty += q;
                cash_flow -= notional;
            }
            "sell" => {
                qty -= q;
                cash_flow += notional;
            }
            other => panic!("side {other}"),
        }
        realized += num(&f["realized_pnl"]);
        assert_eq!(f["commission"], "0");
    }
    let sells = (0..CRASH_ORDERS).filter(|n| n.is_multiple_of(3)).count() as i128;
    let buys = CRASH_ORDERS as i128 - sells;
    assert_eq!(qty, (buys - sells) * 100_000_000);
    let last = units("5000");
    let p = position(&e, "ES").await;
    assert_eq!(num(&p["qty"]), qty, "{p}");
    assert_eq!(p["last_price"], "5000", "{p}");
    assert_eq!(num(&p["realized_pnl"]), realized, "{p}");
    assert_eq!(
        num(&p["realized_pnl"]) + num(&p["unrealized_pnl"]),
        cash_flow + qty * last / 100_000_000 * 50,
        "{p}"
    );
    let a = account(&e).await;
    assert_eq!(num(&a["cash"]), units("100000") + realized, "{a}");
}

// ----- 7. SSE -------------------------------------------------------------------------------

/// A raw HTTP/1.1 reader of one SSE stream: its lines arrive on a channel. The headers have
/// been read (so the engine has subscribed) when this returns.
pub(crate) fn sse(e: &Engine, path: &str) -> mpsc::Receiver<String> {
    let addr = e.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("write request");
    let mut lines = BufReader::new(stream).lines();
    let status = lines
        .next()
        .expect("status line")
        .expect("read status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
    let mut content_type = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read header");
        if line.is_empty() {
            break;
        }
        if line.to_ascii_lowercase().starts_with("content-type:") {
            content_type = line;
        }
    }
    assert!(
        content_type.contains("text/event-stream"),
        "{content_type:?}"
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The data of the first `event: {name}` whose JSON satisfies `wanted`.
fn next_event(rx: &mpsc::Receiver<String>, name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    let mut in_event = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no `event: {name}` within {PATIENCE:?}: {e}"));
        if let Some(ev) = line.strip_prefix("event:") {
            in_event = ev.trim() == name;
        } else if let Some(data) = line.strip_prefix("data:") {
            if in_event {
                let v: Value = serde_json::from_str(data.trim()).expect("event data is JSON");
                if wanted(&v) {
                    return v;
                }
            }
        }
    }
}

#[tokio::test]
async fn trading_sse_streams_orders_and_fills() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let fills_rx = sse(&e, "/sse/fills");
    let orders_rx = sse(&e, "/sse/orders");
    let positions_rx = sse(&e, "/sse/positions");

    let buy = submit(&e, 201, json!({"symbol": "ES", "side": "buy", "qty": "2"})).await;
    let id = buy["id"].clone();

    let fill = next_event(&fills_rx, "fill", |f| f["order_id"] == id);
    assert_eq!(
        (&fill["side"], &fill["qty"], &fill["price"], &fill["symbol"]),
        (&json!("buy"), &json!("2"), &json!("5000.25"), &json!("ES")),
        "{fill}"
    );
    assert_eq!(fill, fills(&e).await[0], "the stream shows the stored fill");
    let streamed = next_event(&orders_rx, "order", |o| o["id"] == id);
    assert_eq!(streamed, buy, "the stream shows the order as acknowledged");
    let p = next_event(&positions_rx, "position", |p| p["symbol"] == "ES");
    assert_eq!(
        (&p["qty"], &p["avg_price"]),
        (&json!("2"), &json!("5000.25")),
        "{p}"
    );

    // A resting order streams its acceptance, then its cancel.
    let rest = submit(
        &e,
        201,
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4990"}),
    )
    .await;
    let rid = rest["id"].clone();
    let accepted = next_event(&orders_rx, "order", |o| o["id"] == rid);
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let (status, _) = e
        .delete(&format!("/api/orders/{}", rid.as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    let canceled = next_event(&orders_rx, "order", |o| o["id"] == rid);
    assert_eq!(canceled["status"], "canceled", "{canceled}");
}

/// Rounds of [`trading_duplicate_answers_survive_sigkill`]; the race it shows is hit in about
/// a third of the rounds on a laptop.
const DUPLICATE_ROUNDS: usize = 8;

/// Every client order id sent twice, back to back, by two workers, so one of each pair is
/// answered as a duplicate (200) of the other; SIGKILL mid-stream; every answered order must
/// exist after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trading_duplicate_answers_survive_sigkill() {
    let mut missing = Vec::new();
    for round in 0..DUPLICATE_ROUNDS {
        let mut e = Engine::start(Some(NO_FEED));
        tick(&e, "ES", "5000", "4999.75", "5000.25").await;
        let bodies = (0..CRASH_ORDERS * 2).map(|i| crash_order(i / 2)).collect();
        let Crash { acked, .. } = fire_and_kill(&mut e, bodies).await;
        let e = e.resume();
        for (i, was) in &acked {
            let id = was["id"].as_str().unwrap();
            let (status, now) = e.get(&format!("/api/orders/{id}")).await;
            if status == 200 {
                assert_eq!(now["client_order_id"], was["client_order_id"], "{now}");
            } else {
                missing.push(format!("round {round}, request {i}: {was}"));
            }
        }
        if !missing.is_empty() {
            break;
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged orders lost by the crash:\n{}",
        missing.join("\n")
    );
}

// ----- signals and trading handlers ---------------------------------------------------------

const SIGNAL_CONFIG: &str = r#"
[trading]
synthetic_feed = false

[signals.esb]
secret = "tv-secret-123"
symbols = { "ES1!" = "ES" }
"#;

/// `POST /api/signals/{strategy}` with the given alert, requiring `want`.
async fn alert(e: &Engine, strategy: &str, want: u16, body: Value) -> Value {
    let (status, answer) = e
        .post(&format!("/api/signals/{strategy}"), body.clone())
        .await;
    assert_eq!(status, want, "{body}: {answer}");
    answer
}

/// (side, qty, status) of each order a signal placed.
fn placed(answer: &Value) -> Vec<(String, String, String)> {
    answer["orders"]
        .as_array()
        .expect("orders array")
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap_or_default().to_string();
            (s("side"), s("qty"), s("status"))
        })
        .collect()
}

fn triple(side: &str, qty: &str, status: &str) -> (String, String, String) {
    (side.into(), qty.into(), status.into())
}

#[tokio::test]
async fn trading_signals_map_reverse_exit_and_dedup() {
    let e = Engine::start(Some(SIGNAL_CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let secret = "tv-secret-123";

    let a = alert(
        &e,
        "esb",
        200,
        json!({"ticker": "ES1!", "action": "buy", "contracts": 2, "id": "a1", "secret": secret}),
    )
    .await;
    assert_eq!(placed(&a), vec![triple("buy", "2", "filled")]);
    assert_eq!(a["duplicate"], false);
    assert_eq!(position(&e, "ES").await["qty"], "2");

    // The same alert again: acknowledged with the orders it placed, not traded again.
    let again = alert(
        &e,
        "esb",
        200,
        json!({"ticker": "ES1!", "action": "buy", "contracts": 2, "id": "a1", "secret": secret}),
    )
    .await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["orders"][0]["id"], a["orders"][0]["id"], "{again}");
    assert_eq!(position(&e, "ES").await["qty"], "2");

    // Opposite signal reverses: sell 2 to close + 1 to open short, in one order.
    let rev = alert(
        &e,
        "esb",
        200,
        json!({"ticker": "ES1!", "action": "sell", "qty": "1", "id": "a2", "secret": secret}),
    )
    .await;
    assert_eq!(placed(&rev), vec![triple("sell", "3", "filled")]);
    assert_eq!(position(&e, "ES").await["qty"], "-1");

    let flat = alert(
        &e,
        "esb",
        200,
        json!({"ticker": "ES1!", "action": "flat", "id": "a3", "secret": secret}),
    )
    .await;
    assert_eq!(placed(&flat), vec![triple("buy", "1", "filled")]);
    assert_eq!(position(&e, "ES").await["qty"], "0");

    // Bad alerts change nothing.
    let before = orders(&e, "").await.len();
    for (strategy, status, body, code) in [
        (
            "esb",
            401,
            json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "secret": "wrong"}),
            "bad_credential",
        ),
        (
            "esb",
            401,
            json!({"ticker": "ES1!", "action": "buy", "contracts": 1}),
            "missing_credential",
        ),
        (
            "esb",
            400,
            json!({"ticker": "ES1!", "action": "hold", "contracts": 1, "secret": secret}),
            "invalid_action",
        ),
        (
            "esb",
            400,
            json!({"ticker": "ZZ1!", "action": "buy", "contracts": 1, "secret": secret}),
            "unknown_ticker",
        ),
        (
            "esb",
            400,
            json!({"ticker": "ES1!", "action": "buy", "secret": secret}),
            "missing_qty",
        ),
        (
            "esb",
            400,
            json!({"ticker": "ES1!", "action": "buy", "contracts": "1.5", "secret": secret}),
            "qty_off_step",
        ),
        (
            "nope",
            404,
            json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "secret": secret}),
            "not_found",
        ),
    ] {
        let answer = alert(&e, strategy, status, body).await;
        assert_error_shape(&answer);
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    assert_eq!(
        orders(&e, "").await.len(),
        before,
        "bad alerts place no order"
    );

    // After a restart the alert id is still known: its order's client id makes it a repeat.
    let e = e.restart();
    let after = alert(
        &e,
        "esb",
        200,
        json!({"ticker": "ES1!", "action": "buy", "contracts": 2, "id": "a1", "secret": secret}),
    )
    .await;
    assert_eq!(after["duplicate"], true, "{after}");
    assert_eq!(position(&e, "ES").await["qty"], "0");
}

#[tokio::test]
async fn trading_handlers_place_order_and_rebalance() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    tick(&e, "SPY", "500", "499.99", "500.01").await;

    let task = e
        .register(json!({"task_id": "monthly_rebalance", "name": "Monthly rebalance", "handler": "rebalance",
            "payload": {"targets": {"SPY": {"weight": "0.5"}, "ES": {"qty": "-1"}}}}))
        .await;
    assert_eq!(task["handler"], "rebalance");
    let run = e.execute("monthly_rebalance", Value::Null).await;
    assert_eq!(run["status"], "success", "{run}");
    // Half of 100,000 at 500 = 100 SPY; ES to −1.
    assert_eq!(position(&e, "SPY").await["qty"], "100");
    assert_eq!(position(&e, "ES").await["qty"], "-1");
    // With quantity targets a second run has nothing to do. (Weights follow equity, which the
    // spread just moved, so they may adjust by a share.)
    e.register(
        json!({"task_id": "hold", "name": "Hold", "handler": "rebalance",
        "payload": {"targets": {"SPY": {"qty": "100"}, "ES": {"qty": "-1"}}}}),
    )
    .await;
    let again = e.execute("hold", Value::Null).await;
    assert_eq!(again["output"]["orders"], json!([]), "{again}");

    e.register(json!({"task_id": "buy_es", "name": "Buy ES", "handler": "place_order",
        "payload": {"symbol": "ES", "side": "buy", "qty": 1, "client_order_id": "buy-es-{{trigger.kind}}"}}))
        .await;
    let bought = e.execute("buy_es", Value::Null).await;
    assert_eq!(bought["status"], "success", "{bought}");
    assert_eq!(
        bought["output"]["order"]["client_order_id"],
        "buy-es-manual"
    );
    assert_eq!(position(&e, "ES").await["qty"], "0");
    // Same templated client order id: the existing order, not a second one.
    let repeat = e.execute("buy_es", Value::Null).await;
    assert_eq!(repeat["output"]["duplicate"], true, "{repeat}");
    assert_eq!(position(&e, "ES").await["qty"], "0");

    // A denied order is a failed run that says why.
    e.register(
        json!({"task_id": "fat", "name": "Fat finger", "handler": "place_order",
        "payload": {"symbol": "ES", "side": "buy", "qty": "5000"}}),
    )
    .await;
    let fat = e.execute("fat", Value::Null).await;
    assert_eq!(fat["status"], "error", "{fat}");
    assert!(
        fat["error"]
            .as_str()
            .unwrap_or_default()
            .contains("max_order_qty"),
        "{fat}"
    );
    assert_eq!(fat["output"]["order"]["status"], "denied");

    // Registration validates the order against the instruments.
    let (status, body) = e
        .post(
            "/register",
            json!({"task_id": "bad", "name": "b", "handler": "place_order",
            "payload": {"symbol": "ES", "side": "buy", "qty": "1.5"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["field"].as_str()
        ),
        (Some("qty_off_step"), Some("payload.qty"))
    );
}

#[tokio::test]
async fn a_target_strategy_holds_the_position_its_alerts_say() {
    let e = Engine::start(Some(
        "[trading]\nsynthetic_feed = false\n\n[signals.tgt]\nsecret = \"tv-secret-123\"\nsymbols = { \"ES1!\" = \"ES\" }\nmode = \"target\"\n",
    ));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    let held = |market: &str, size: &str, id: &str| {
        json!({"ticker": "ES1!", "market_position": market, "position_size": size,
               "id": id, "secret": "tv-secret-123"})
    };
    let a = alert(&e, "tgt", 200, held("long", "2", "a1")).await;
    assert_eq!(placed(&a), vec![triple("buy", "2", "filled")]);
    // A repeated alert with a new id (a resend): already held, nothing traded.
    let a = alert(&e, "tgt", 200, held("long", "2", "a2")).await;
    assert_eq!(placed(&a), vec![]);
    // A missed alert: from long 2 straight to short 1 (the signed size TradingView sends).
    let a = alert(&e, "tgt", 200, held("short", "-1", "a3")).await;
    assert_eq!(placed(&a), vec![triple("sell", "3", "filled")]);
    assert_eq!(position(&e, "ES").await["qty"], "-1");
    let a = alert(
        &e,
        "tgt",
        200,
        json!({"ticker": "ES1!", "market_position": "flat", "id": "a4", "secret": "tv-secret-123"}),
    )
    .await;
    assert_eq!(placed(&a), vec![triple("buy", "1", "filled")]);
    // Without a target it says what is missing; a contradiction is refused.
    let a = alert(
        &e,
        "tgt",
        400,
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "secret": "tv-secret-123"}),
    )
    .await;
    assert_eq!(a["error"]["code"], "missing_target");
    let a = alert(&e, "tgt", 400, held("long", "-2", "a5")).await;
    assert_eq!(a["error"]["code"], "conflicting_position");
}

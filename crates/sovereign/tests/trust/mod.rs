//! End-to-end tests of what a trader must be able to trust: one engine per data dir, a kill
//! switch that stops everything, prices that are not overwritten, signals and orders that mean
//! what they say. Each test drives the real binary, as a user would.

use serde_json::{json, Value};

use crate::util::{self, Engine, PATIENCE};

/// Prices under test control.
const NO_FEED: &str = "[trading]\nsynthetic_feed = false\n";

// ----- one engine per data dir ---------------------------------------------------------------

#[tokio::test]
async fn a_second_engine_on_the_same_data_dir_is_refused_in_one_line() {
    let mut first = Engine::start(None);
    let data = first.root().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let out = util::run_expecting_exit(&["up", "--port", "0", "--data-dir", &data_arg]);
    assert_eq!(out.code, Some(1), "second engine: {out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].contains("in use by process") && lines[0].contains(&data_arg),
        "{lines:?}"
    );
    // The first one is untouched.
    let (status, _) = first.get("/health").await;
    assert_eq!(status, 200);

    // A lock left by a process that died does not block the next start.
    first.kill9();
    let next = first.resume();
    let (status, _) = next.get("/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_start_that_fails_leaves_no_new_data_dir_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let root = util::unique_dir("sovereign-e2e-busy");
    let data = root.join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let out = util::run_expecting_exit(&["up", "--port", &port, "--data-dir", &data_arg]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("cannot listen"), "{}", out.stderr);
    assert!(
        !data.exists(),
        "a failed start left {} behind",
        data.display()
    );
    let _ = std::fs::remove_dir_all(&root);
}

// ----- the kill switch -----------------------------------------------------------------------

/// Push one quote and require it applied.
async fn tick(e: &Engine, symbol: &str, price: &str) {
    let (status, body) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": symbol, "price": price, "bid": price, "ask": price}]),
        )
        .await;
    assert_eq!(status, 200, "tick {symbol} {price}: {body}");
}

async fn post_ok(e: &Engine, path: &str, body: Value, want: u16) -> Value {
    let (status, answer) = e.post(path, body.clone()).await;
    assert_eq!(status, want, "{path} {body}: {answer}");
    answer
}

async fn get_ok(e: &Engine, path: &str) -> Value {
    let (status, answer) = e.get(path).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

const TWO_ACCOUNTS: &str = r#"
[trading]
synthetic_feed = false

[trading.accounts.paper]

[trading.accounts.swing]
starting_cash = "50000"
"#;

#[tokio::test]
async fn hardstop_of_every_account_cancels_resting_orders_so_a_price_through_them_fills_nothing() {
    let e = Engine::start(Some(TWO_ACCOUNTS));
    tick(&e, "ES", "5000").await;
    let limit = |account: &str, side: &str, price: &str| {
        json!({"account": account, "symbol": "ES", "side": side, "qty": "1", "type": "limit",
               "limit_price": price, "tif": "gtc"})
    };
    let a = post_ok(&e, "/api/orders", limit("paper", "buy", "4990"), 201).await;
    let b = post_ok(&e, "/api/orders", limit("swing", "sell", "5010"), 201).await;
    assert_eq!(a["status"], "accepted", "{a}");

    // No account: the kill switch for every account at once.
    let stop = post_ok(&e, "/api/risk/hardstop", json!({"reason": "panic"}), 200).await;
    assert_eq!(stop["account"], "all", "{stop}");
    assert_eq!(stop["trading_state"], "halted", "{stop}");
    let mut canceled: Vec<String> = stop["canceled"]
        .as_array()
        .expect("canceled")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    canceled.sort();
    let mut want = vec![
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(canceled, want, "{stop}");

    // Prices through both resting prices: nothing fills.
    tick(&e, "ES", "4980").await;
    tick(&e, "ES", "5020").await;
    let fills = get_ok(&e, "/api/fills").await;
    assert_eq!(fills["count"], 0, "{fills}");
    for id in [&a["id"], &b["id"]] {
        let o = get_ok(&e, &format!("/api/orders/{}", id.as_str().unwrap())).await;
        assert_eq!(o["status"], "canceled", "{o}");
        assert_eq!(o["cancel_reason"], "account halted", "{o}");
    }
    let positions = get_ok(&e, "/api/positions").await;
    assert!(
        positions["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["qty"] == "0"),
        "{positions}"
    );
    // One audit record per canceled order, behind the state changes.
    let audit = get_ok(&e, "/api/audit?limit=100").await;
    let records = audit["records"].as_array().expect("records");
    let cancels = records
        .iter()
        .filter(|r| r["kind"] == "trading.order_canceled")
        .count();
    assert_eq!(cancels, 2, "{audit}");
    let halts = records
        .iter()
        .filter(|r| r["kind"] == "trading.state_changed")
        .count();
    assert_eq!(halts, 2, "{audit}");
}

#[tokio::test]
async fn the_loss_limit_halt_cancels_working_orders_too() {
    let e = Engine::start(Some(
        "[trading]\nsynthetic_feed = false\n\n[trading.accounts.paper]\ndaily_loss_limit = \"1000\"\n",
    ));
    tick(&e, "ES", "5000").await;
    post_ok(
        &e,
        "/api/orders",
        json!({"symbol": "ES", "side": "buy", "qty": "1"}),
        201,
    )
    .await;
    let resting = post_ok(
        &e,
        "/api/orders",
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4900", "tif": "gtc"}),
        201,
    )
    .await;
    // (4970 − 5000) × 50 = −1500: halted, and the resting buy is canceled.
    tick(&e, "ES", "4970").await;
    let accounts = get_ok(&e, "/api/accounts").await;
    assert_eq!(
        accounts["accounts"][0]["trading_state"], "halted",
        "{accounts}"
    );
    tick(&e, "ES", "4890").await;
    let o = get_ok(
        &e,
        &format!("/api/orders/{}", resting["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(o["status"], "canceled", "{o}");
    assert_eq!(o["filled_qty"], "0", "{o}");
    let fills = get_ok(&e, "/api/fills").await;
    assert_eq!(fills["count"], 1, "only the first buy filled: {fills}");
}

#[tokio::test]
async fn cancel_all_from_the_cli_and_unknown_accounts_everywhere() {
    let e = Engine::start(Some(TWO_ACCOUNTS));
    tick(&e, "ES", "5000").await;
    let rest = post_ok(
        &e,
        "/api/orders",
        json!({"account": "swing", "symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4990", "tif": "gtc"}),
        201,
    )
    .await;
    let out = util::cli(&["cancel-all", "--account", "swing", "--url", e.url()]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains(rest["id"].as_str().unwrap()),
        "{}",
        out.stdout
    );
    let o = get_ok(&e, &format!("/api/orders/{}", rest["id"].as_str().unwrap())).await;
    assert_eq!(o["status"], "canceled", "{o}");

    for (path, body) in [
        ("/api/orders/cancel-all", json!({"account": "nope"})),
        ("/api/positions/flatten", json!({"account": "nope"})),
        (
            "/api/risk/hardstop",
            json!({"account": "nope", "reason": "x"}),
        ),
    ] {
        let (status, answer) = e.post(path, body).await;
        assert_eq!(status, 404, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "unknown_account", "{answer}");
    }
    for path in [
        "/api/positions?account=nope",
        "/api/fills?account=nope",
        "/api/orders?account=nope",
    ] {
        let (status, answer) = e.get(path).await;
        assert_eq!(status, 404, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "unknown_account", "{answer}");
    }
    // ?limit=0 is refused, not turned into 1.
    for path in ["/api/orders?limit=0", "/api/fills?limit=0"] {
        let (status, answer) = e.get(path).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_limit", "{answer}");
    }
    // Findable by client order id.
    post_ok(
        &e,
        "/api/orders",
        json!({"symbol": "ES", "side": "buy", "qty": "1", "client_order_id": "abc-1"}),
        201,
    )
    .await;
    let found = get_ok(&e, "/api/orders?client_order_id=abc-1").await;
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["orders"][0]["client_order_id"], "abc-1", "{found}");
    let none = get_ok(&e, "/api/orders?client_order_id=zzz").await;
    assert_eq!(none["count"], 0, "{none}");
}

// ----- the synthetic feed never overrides a real price -------------------------------------

async fn quote(e: &Engine, symbol: &str) -> Value {
    let quotes = get_ok(e, "/api/market/quotes").await;
    quotes["quotes"]
        .as_array()
        .expect("quotes")
        .iter()
        .find(|q| q["symbol"] == symbol)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_external_price_stops_the_synthetic_feed_for_its_symbol_and_a_restart_resumes_from_the_last_price(
) {
    let fast_feed = "[trading]\nsynthetic_feed = true\nfeed_interval = \"100ms\"\n";
    let e = Engine::start(Some(fast_feed));
    util::wait_for("synthetic prices", PATIENCE, || async {
        (quote(&e, "CL").await["source"] == "synthetic").then_some(())
    })
    .await;
    tick(&e, "CL", "80").await;
    // Many synthetic steps later the pushed price still stands.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cl = quote(&e, "CL").await;
    assert_eq!(
        (&cl["last"], &cl["source"]),
        (&json!("80"), &json!("external")),
        "{cl}"
    );
    let status = get_ok(&e, "/status").await;
    assert_eq!(status["feed"]["synthetic"], true, "{status}");
    assert_eq!(
        status["feed"]["external_symbols"],
        json!(["CL"]),
        "{status}"
    );
    assert!(
        e.stderr().contains("synthetic feed stops for this symbol"),
        "{}",
        e.stderr()
    );

    // A buy stop above the pushed price triggers on the next pushed price and fills there,
    // never at a synthetic one; the fill carries the tick's own time.
    let stop = post_ok(
        &e,
        "/api/orders",
        json!({"symbol": "CL", "side": "buy", "qty": "1", "type": "stop", "stop_price": "80.5", "tif": "gtc"}),
        201,
    )
    .await;
    let (status, answer) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": "CL", "price": "80.5", "bid": "80.49", "ask": "80.51", "ts": "2026-03-02T15:04:05Z"}]),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let filled = get_ok(&e, &format!("/api/orders/{}", stop["id"].as_str().unwrap())).await;
    assert_eq!(filled["status"], "filled", "{filled}");
    assert_eq!(filled["avg_fill_price"], "80.51", "{filled}");
    let fills = get_ok(&e, "/api/fills").await;
    assert_eq!(
        fills["fills"][0]["at"], "2026-03-02T15:04:05.000000Z",
        "{fills}"
    );
    // A tick from the future is refused.
    let (status, answer) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": "CL", "price": "81", "ts": "2999-01-01T00:00:00Z"}]),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "ticks[0].ts", "{answer}");

    // The synthetic NQ price when the engine stops (the stream ends as shutdown begins; the
    // feed may take a few more steps of one tick before trading stops)...
    let spot = crate::trading::sse(&e, "/sse/spot");
    let mut e = e;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let stopped = e.stop();
    assert!(stopped.status.success(), "{}", e.stderr());
    let mut last_nq = None;
    while let Ok(line) = spot.recv_timeout(PATIENCE) {
        if let Some(data) = line.strip_prefix("data: ") {
            if let Ok(tick) = serde_json::from_str::<Value>(data) {
                if tick["symbol"] == "NQ" {
                    last_nq = tick["price"].as_str().map(String::from);
                }
            }
        }
    }
    let last_nq: f64 = last_nq
        .expect("NQ ticks on /sse/spot")
        .parse()
        .expect("price");
    // ...is journaled, and the next start resumes from it (here with the feed off, so
    // nothing moves it); before, a restart knew no synthetic price at all.
    std::fs::write(e.root().join("config.toml"), NO_FEED).expect("config");
    let e = e.resume();
    let nq = quote(&e, "NQ").await;
    let resumed: f64 = nq["last"]
        .as_str()
        .expect("an NQ price after restart")
        .parse()
        .expect("price");
    assert!(
        (resumed - last_nq).abs() <= 40.0 * 0.25,
        "resumed at {resumed}, last streamed {last_nq}"
    );
    let cl = quote(&e, "CL").await;
    assert_eq!(
        (&cl["last"], &cl["source"]),
        (&json!("80.5"), &json!("external")),
        "{cl}"
    );
}

// ----- signals and orders mean what they say -------------------------------------------------

const SIGNALS: &str = r#"
[trading]
synthetic_feed = false

[trading.accounts.paper]
max_order_qty = "5"

[notify.channels.journal]
kind = "file"
path = "alerts.jsonl"

[signals.esb]
secret = "tv-secret-123"
symbols = { "ES1!" = "ES" }

[signals.rounding]
secret = "tv-secret-123"
symbols = { "ES1!" = "ES" }
round_to_tick = true
passthrough = true
"#;

async fn signal(e: &Engine, strategy: &str, body: Value) -> (u16, Value) {
    let mut body = body;
    body["secret"] = json!("tv-secret-123");
    e.post(&format!("/api/signals/{strategy}"), body).await
}

#[tokio::test]
async fn a_limit_or_stop_alert_becomes_that_order_never_a_market_order() {
    let e = Engine::start(Some(SIGNALS));
    tick(&e, "ES", "5000").await;
    let (status, a) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "order_type": "limit", "price": "4990"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    let o = &a["orders"][0];
    assert_eq!(
        (&o["type"], &o["limit_price"], &o["status"]),
        (&json!("limit"), &json!("4990"), &json!("accepted")),
        "{a}"
    );
    let (status, a) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "order_type": "stop", "price": "5010"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    let o = &a["orders"][0];
    assert_eq!(
        (&o["type"], &o["stop_price"], &o["status"]),
        (&json!("stop"), &json!("5010"), &json!("accepted")),
        "{a}"
    );
    // An unrounded TradingView price: refused here, rounded to the passive side where the
    // strategy says round_to_tick (a buy limit down, a buy stop up).
    let (status, a) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "order_type": "limit", "price": 4990.1234}),
    )
    .await;
    assert_eq!(status, 400, "{a}");
    assert_eq!(a["error"]["code"], "price_off_tick", "{a}");
    let (status, a) = signal(
        &e,
        "rounding",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "order_type": "limit", "price": 4990.1234}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["orders"][0]["limit_price"], "4990", "{a}");
    let (status, a) = signal(
        &e,
        "rounding",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "order_type": "stop", "price": "5010.01"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["orders"][0]["stop_price"], "5010.25", "{a}");
    // A limit without a price is refused, not sent at market.
    let (status, a) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "order_type": "limit"}),
    )
    .await;
    assert_eq!(status, 400, "{a}");
    assert_eq!(a["error"]["code"], "missing_price", "{a}");
    let fills = get_ok(&e, "/api/fills").await;
    assert_eq!(fills["count"], 0, "nothing traded at market: {fills}");
}

#[tokio::test]
async fn a_signal_denied_by_risk_answers_422_and_raises_a_p1_alert() {
    let e = Engine::start(Some(SIGNALS));
    tick(&e, "ES", "5000").await;
    let (status, a) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 50, "id": "big"}),
    )
    .await;
    assert_eq!(status, 422, "{a}");
    assert_eq!(a["error"]["code"], "max_order_qty", "{a}");
    assert_eq!(a["orders"][0]["status"], "denied", "{a}");
    // The repeat is answered the same way.
    let (status, again) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 50, "id": "big"}),
    )
    .await;
    assert_eq!(status, 422, "{again}");
    let alert = util::wait_for("the signals alert", PATIENCE, || async {
        let list = get_ok(&e, "/api/alerts").await;
        list["alerts"]
            .as_array()
            .and_then(|v| v.iter().find(|a| a["source"] == "signals").cloned())
    })
    .await;
    assert_eq!(alert["priority"], "P1", "{alert}");
    let title = alert["title"].as_str().unwrap_or_default();
    assert!(
        title.contains("esb") && title.contains("max_order_qty"),
        "{alert}"
    );
    // An accepted signal is on the audit trail.
    let (status, ok) = signal(
        &e,
        "esb",
        json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "id": "small"}),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    let id = ok["orders"][0]["id"].clone();
    util::wait_for(
        "the accepted signal on the audit trail",
        PATIENCE,
        || async {
            let audit = get_ok(&e, "/api/audit?limit=100").await;
            audit["records"].as_array().and_then(|v| {
                v.iter()
                    .find(|r| {
                        r["kind"] == "signal.accepted" && r["payload"]["orders"] == json!([id])
                    })
                    .cloned()
            })
        },
    )
    .await;
}

#[tokio::test]
async fn unmapped_tickers_are_refused_unless_the_strategy_passes_them_through() {
    let e = Engine::start(Some(SIGNALS));
    tick(&e, "ES", "5000").await;
    let (status, a) = signal(
        &e,
        "esb",
        json!({"ticker": "ES", "action": "buy", "contracts": 1}),
    )
    .await;
    assert_eq!(status, 400, "{a}");
    assert_eq!(a["error"]["code"], "unknown_ticker", "{a}");
    assert_eq!(a["error"]["field"], "ticker", "{a}");
    let (status, a) = signal(
        &e,
        "rounding",
        json!({"ticker": "ES", "action": "buy", "contracts": 1}),
    )
    .await;
    assert_eq!(status, 200, "passthrough: {a}");
    assert_eq!(a["orders"][0]["symbol"], "ES", "{a}");
}

#[tokio::test]
async fn a_client_order_id_reused_for_another_order_is_a_conflict() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000").await;
    let order = json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4990", "tif": "gtc", "client_order_id": "c-1"});
    let first = post_ok(&e, "/api/orders", order.clone(), 201).await;
    let again = post_ok(&e, "/api/orders", order.clone(), 200).await;
    assert_eq!(again["id"], first["id"], "the same order: idempotent");
    let mut other = order.clone();
    other["qty"] = json!("2");
    let (status, answer) = e.post("/api/orders", other).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        answer["error"]["code"], "client_order_id_conflict",
        "{answer}"
    );
    assert_eq!(answer["error"]["field"], "client_order_id", "{answer}");
    let all = get_ok(&e, "/api/orders").await;
    assert_eq!(all["count"], 1, "{all}");
}

// ----- templated orders and the kill-switch handlers -----------------------------------------

#[tokio::test]
async fn place_order_takes_templated_fields_and_a_missing_value_fails_the_run_placing_nothing() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000").await;
    e.register(
        json!({"task_id": "tv-order", "name": "order from an alert", "handler": "place_order",
        "payload": {"symbol": "{{trigger.data.symbol}}", "side": "{{trigger.data.side}}",
                    "qty": "{{trigger.data.qty}}", "client_order_id": "tv-{{trigger.data.id}}"}}),
    )
    .await;
    let ok = e
        .execute(
            "tv-order",
            json!({"symbol": "ES", "side": "sell", "qty": 2, "id": "7"}),
        )
        .await;
    assert_eq!(ok["status"], "success", "{ok}");
    assert_eq!(ok["output"]["order"]["side"], "sell", "{ok}");
    assert_eq!(ok["output"]["order"]["qty"], "2", "{ok}");
    assert_eq!(ok["output"]["order"]["client_order_id"], "tv-7", "{ok}");

    let missing = e
        .execute("tv-order", json!({"symbol": "ES", "id": "8"}))
        .await;
    assert_eq!(missing["status"], "error", "{missing}");
    let message = missing["error"].as_str().unwrap_or_default();
    assert!(message.contains("trigger.data.side"), "{missing}");
    let bad = e
        .execute(
            "tv-order",
            json!({"symbol": "ES", "side": "up", "qty": 1, "id": "9"}),
        )
        .await;
    assert_eq!(bad["status"], "error", "{bad}");
    let orders = get_ok(&e, "/api/orders").await;
    assert_eq!(
        orders["count"], 1,
        "only the first run placed an order: {orders}"
    );

    // An http_request body that names a missing value sends nothing (never a null).
    let receiver = util::Receiver::start(200, std::time::Duration::ZERO);
    e.register(
        json!({"task_id": "bridge", "name": "bridge", "handler": "http_request",
        "payload": {"url": receiver.url(), "method": "POST",
                    "body": {"qty": "{{trigger.data.qty}}", "side": "{{trigger.data.side}}"}}}),
    )
    .await;
    let run = e.execute("bridge", json!({"qty": 1})).await;
    assert_eq!(run["status"], "error", "{run}");
    assert!(receiver.requests().is_empty(), "nothing reached the bridge");
}

#[tokio::test]
async fn the_kill_switch_handlers_cancel_flatten_and_halt() {
    let e = Engine::start(Some(TWO_ACCOUNTS));
    tick(&e, "ES", "5000").await;
    post_ok(
        &e,
        "/api/orders",
        json!({"account": "swing", "symbol": "ES", "side": "buy", "qty": "2"}),
        201,
    )
    .await;
    let resting = post_ok(
        &e,
        "/api/orders",
        json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4990", "tif": "gtc"}),
        201,
    )
    .await;
    for (id, handler, payload) in [
        ("cancel", "cancel_all", json!({"account": "paper"})),
        (
            "close",
            "flatten",
            json!({"account": "{{trigger.data.account}}"}),
        ),
        ("stop", "hardstop", json!({"reason": "end of day"})),
    ] {
        e.register(json!({"task_id": id, "name": id, "handler": handler, "payload": payload}))
            .await;
    }
    let canceled = e.execute("cancel", json!({})).await;
    assert_eq!(canceled["status"], "success", "{canceled}");
    assert_eq!(
        canceled["output"]["canceled"],
        json!([resting["id"]]),
        "{canceled}"
    );
    let closed = e.execute("close", json!({"account": "swing"})).await;
    assert_eq!(closed["status"], "success", "{closed}");
    let positions = get_ok(&e, "/api/positions?account=swing").await;
    assert_eq!(positions["positions"][0]["qty"], "0", "{positions}");
    let stopped = e.execute("stop", json!({})).await;
    assert_eq!(stopped["status"], "success", "{stopped}");
    let accounts = get_ok(&e, "/api/accounts").await;
    assert!(
        accounts["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["trading_state"] == "halted"),
        "{accounts}"
    );
    // A hardstop task needs a reason, at registration.
    let (status, answer) = e
        .post(
            "/register",
            json!({"task_id": "bad", "name": "bad", "handler": "hardstop", "payload": {}}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "missing_reason", "{answer}");
}

// ----- the trading journal on the tamper-evident record -------------------------------------

#[tokio::test]
async fn audit_verify_proves_the_trading_journal_and_catches_a_rewritten_one() {
    let e = Engine::start(Some(NO_FEED));
    tick(&e, "ES", "5000").await;
    for _ in 0..3 {
        post_ok(
            &e,
            "/api/orders",
            json!({"symbol": "ES", "side": "buy", "qty": "1"}),
            201,
        )
        .await;
    }
    // A halt pins the journal's head into the audit trail.
    post_ok(&e, "/api/risk/hardstop", json!({"reason": "check"}), 200).await;
    let url = e.url().to_string();
    let verdict = util::wait_for("a journal checkpoint", PATIENCE, || async {
        let v = get_ok(&e, "/api/audit/verify").await;
        let audit = get_ok(&e, "/api/audit?limit=1000").await;
        audit["records"]
            .as_array()?
            .iter()
            .any(|r| r["kind"] == "trading.journal_checkpoint")
            .then_some(v)
    })
    .await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["journal"]["ok"], true, "{verdict}");
    let rows = verdict["journal"]["records"].as_u64().unwrap_or(0);
    assert!(
        rows >= 5,
        "ticks, orders and the halt are journaled: {verdict}"
    );
    let ok = util::cli(&["audit", "verify", "--url", &url]);
    assert!(ok.ok(), "{ok:?}");
    assert!(ok.stdout.contains("ok: trading journal "), "{}", ok.stdout);

    // Change one row: its hash no longer matches.
    let db = e.root().join("data").join("sovereign.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let original: String = conn
        .query_row("SELECT payload FROM journal WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute(
        "UPDATE journal SET payload = replace(payload, '\"1\"', '\"9\"') WHERE seq = 2",
        [],
    )
    .unwrap();
    let caught = util::cli(&["audit", "verify", "--url", &url]);
    assert_eq!(caught.code, Some(4), "{caught:?}");
    assert!(
        caught
            .stderr
            .contains("trading journal: record 2 (changed)"),
        "{}",
        caught.stderr
    );

    // Re-hash the whole journal after the change: the chain holds, the trail's checkpoint
    // does not.
    let rows: Vec<(i64, i64, String, String)> = {
        let mut stmt = conn
            .prepare("SELECT seq, at, kind, payload FROM journal ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut prev = [0u8; 32];
    for (seq, at, kind, payload) in rows {
        let hash = sovereign_core::audit::journal_digest(seq as u64, at, &kind, &payload, &prev);
        conn.execute(
            "UPDATE journal SET hash = ?1 WHERE seq = ?2",
            rusqlite::params![&hash[..], seq],
        )
        .unwrap();
        prev = hash;
    }
    assert_ne!(original, "", "row 2 existed");
    drop(conn);
    let forged = get_ok(&e, "/api/audit/verify").await;
    assert_eq!(forged["ok"], false, "{forged}");
    assert_eq!(forged["journal"]["problem"], "changed", "{forged}");
    assert!(
        forged["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rewritten"),
        "{forged}"
    );
}

// ----- the command line ---------------------------------------------------------------------

#[tokio::test]
async fn the_cli_survives_a_closed_pipe_fails_failed_runs_and_knows_its_engine() {
    // `sovereign openapi | head -1`: the reader is gone before the writer writes.
    let mut child = std::process::Command::new(util::BIN)
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // A run that ends in error is a failed command.
    let e = Engine::start(Some(NO_FEED));
    e.register(
        json!({"task_id": "broken", "name": "broken", "handler": "place_order",
        "payload": {"symbol": "ES", "side": "{{trigger.data.side}}", "qty": "1"}}),
    )
    .await;
    let run = util::cli(&["tasks", "execute", "broken", "--url", e.url()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("run error"), "{run:?}");

    // Some other service at --url is named as such, not shown as an empty table.
    let other = util::Receiver::start(200, std::time::Duration::ZERO);
    let wrong = util::cli(&["tasks", "list", "--url", &other.url()]);
    assert_eq!(wrong.code, Some(1), "{wrong:?}");
    assert!(
        wrong.stderr.contains("is not a Sovereign engine"),
        "{wrong:?}"
    );

    // LOG_LEVEL that is not a level is refused in one line.
    let root = util::unique_dir("sovereign-e2e-loglevel");
    let out = std::process::Command::new(util::BIN)
        .args(["up", "--port", "0", "--data-dir"])
        .arg(root.join("data"))
        .env("LOG_LEVEL", "bogus")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LOG_LEVEL=\"bogus\""), "{stderr}");
    let _ = std::fs::remove_dir_all(&root);
}

// ----- alerts that arrive --------------------------------------------------------------------

#[tokio::test]
async fn an_alert_goes_somewhere_and_a_dead_one_is_reported_on_the_other_channels() {
    let hook = util::Receiver::start(503, std::time::Duration::ZERO);
    let config = format!(
        r#"
[notify]
max_age = "2s"
[notify.channels.hook]
kind = "webhook"
url = "{}/alerts"
[notify.channels.journal]
kind = "file"
path = "alerts.jsonl"
"#,
        hook.url()
    );
    let e = Engine::start(Some(&config));
    // P2 (the default priority) with only a webhook and a file: the webhook gets it, and the
    // answer says so.
    let (status, raised) = e
        .post(
            "/api/alerts",
            json!({"source": "ops", "title": "fill feed lagging"}),
        )
        .await;
    assert_eq!(status, 202, "{raised}");
    assert_eq!(raised["channels"], json!(["hook"]), "{raised}");
    // The webhook stays down past max_age: the alert is dead there, and a P1 on the file says so.
    let id = raised["id"].as_u64().expect("id");
    let dead = util::wait_for("the dead notice in the file", PATIENCE, || async {
        let text =
            std::fs::read_to_string(e.root().join("data").join("alerts.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|a| a["title"] == format!("alert {id} never reached hook"))
    })
    .await;
    assert_eq!(dead["priority"], "P1", "{dead}");
    assert!(hook.requests().len() >= 2, "it was retried before it died");
    let (_, list) = e
        .get(&format!("/api/alerts?since={}&limit=1", id - 1))
        .await;
    assert_eq!(
        list["alerts"][0]["deliveries"][0]["status"], "dead",
        "{list}"
    );

    // With only a file channel, a P2 still reaches it.
    let only_file = Engine::start(Some(
        "[notify.channels.journal]\nkind = \"file\"\npath = \"alerts.jsonl\"\n",
    ));
    let (status, raised) = only_file
        .post("/api/alerts", json!({"source": "ops", "title": "t"}))
        .await;
    assert_eq!(status, 202, "{raised}");
    assert_eq!(raised["channels"], json!(["journal"]), "{raised}");
}

// ----- config values are range-checked, every problem in one run -----------------------------

#[test]
fn check_and_up_refuse_out_of_range_limits_naming_every_problem_at_once() {
    let root = util::unique_dir("sovereign-e2e-ranges");
    let path = root.join("bad.toml");
    std::fs::write(
        &path,
        "[trading.accounts.paper]\nmax_order_qty = \"-5\"\ndaily_loss_limit = \"0\"\ntypo = 1\n[signals.s]\nsecret = \"long-enough-secret\"\nqty = \"0\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let check = util::cli(&["check", p]);
    assert_eq!(check.code, Some(1), "{check:?}");
    for needle in [
        "typo",
        "bad.toml:2: trading.accounts.paper.max_order_qty: max_order_qty must be greater than 0",
        "bad.toml:3: trading.accounts.paper.daily_loss_limit",
        "bad.toml:7: signals.s.qty",
    ] {
        assert!(
            check.stderr.contains(needle),
            "{needle:?}: {}",
            check.stderr
        );
    }
    let data = root.join("data");
    let up = util::run_expecting_exit(&[
        "up",
        "--port",
        "0",
        "--config",
        p,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(up.code, Some(1), "{up:?}");
    assert!(
        up.stderr.contains("max_order_qty must be greater than 0"),
        "{}",
        up.stderr
    );
    assert!(!data.exists(), "a refused config leaves no data dir");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn error_messages_never_name_internal_types() {
    let e = Engine::start(Some(NO_FEED));
    for body in [
        json!([{"symbol": "ES", "price": true}]),
        json!({"ticks": [{"symbol": "ES"}]}),
        json!({"nope": 1}),
        json!("ES"),
    ] {
        let (status, answer) = e.post("/api/market/ticks", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        for internal in ["TicksIn", "TickIn", "DecimalIn", "untagged"] {
            assert!(!message.contains(internal), "{body}: {message}");
        }
    }
    let (_, answer) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": "ES", "price": "1"}, {"symbol": "ES", "price": true}]),
        )
        .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ticks[1]"),
        "{answer}"
    );
    let (status, answer) = e
        .post(
            "/register",
            json!({"task_id": "t", "name": "t", "handler": "log_signal", "schedule": {"cron": 5}}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        !answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ScheduleSpec"),
        "{answer}"
    );
}

// ----- schedules that can fire, durations and decimals in range ------------------------------

#[tokio::test]
async fn impossible_schedules_wrapping_durations_and_signed_decimals_are_refused() {
    let e = Engine::start(Some(NO_FEED));
    let task = |extra: Value| {
        let mut t = json!({"task_id": "t", "name": "t", "handler": "log_signal"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let cases = [
        (
            json!({"schedule": {"cron": "0 0 12 31 2 *"}}),
            "schedule.cron",
            "never fires",
        ),
        (
            json!({"schedule": {"at": "2020-01-01T00:00:00Z"}}),
            "schedule.at",
            "not in the future",
        ),
        (
            json!({"schedule": {"every": "1000000000d"}}),
            "schedule.every",
            "",
        ),
        (
            json!({"schedule": {"cron": "25 9 * * MON-FRI"}}),
            "schedule.cron",
            "cron here has 6 fields (seconds first): did you mean `0 25 9 * * MON-FRI`?",
        ),
        (json!({"timeout": "18446744073709552s"}), "timeout", ""),
        (json!({"timeout": "99999999999999999s"}), "timeout", ""),
    ];
    for (extra, field, says) in cases {
        let (status, answer) = e.post("/register", task(extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{extra}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{extra}: {message}");
        for internal in ["ScheduleSpec", "Hours must be"] {
            assert!(!message.contains(internal), "{extra}: {message}");
        }
    }
    let tasks = get_ok(&e, "/tasks").await;
    assert_eq!(tasks["count"], 0, "nothing was stored: {tasks}");

    tick(&e, "ES", "5000").await;
    for qty in [json!(" 1"), json!("+1"), json!("1e0")] {
        let (status, answer) = e
            .post(
                "/api/orders",
                json!({"symbol": "ES", "side": "buy", "qty": qty}),
            )
            .await;
        assert_eq!(status, 400, "{qty}: {answer}");
        assert_eq!(answer["error"]["field"], "qty", "{qty}: {answer}");
    }
    let (status, answer) = e
        .post_raw(
            "/api/orders",
            br#"{"symbol":"ES","side":"buy","qty":1e0}"#,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(
        status, 400,
        "a JSON 1e0 is refused like the string: {answer}"
    );
}

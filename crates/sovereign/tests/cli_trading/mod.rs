//! End-to-end tests of the trading CLI: `order`, `orders`, `cancel`, `positions`, `fills`,
//! `accounts`, `hardstop`, `resume`, `flatten` and `replay`, run as the real binary against a
//! real engine, with their exit codes, stdout tables or JSON, and one-line errors on stderr.
//!
//! Every engine runs with `[trading] synthetic_feed = false`, so the only prices are the ticks a
//! test pushes (over HTTP, or with `replay`) and every fill price is known in advance. ES has tick
//! 0.25; NQ too. What the CLI did is checked through the engine's HTTP API, never by trusting the
//! CLI's own output alone. This module knows only the wire contract and the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::util::{cli, CliOutput, Engine};

/// Prices under test control; a ±5% price band on `paper` for the denial tests.
const CONFIG: &str = r#"
[trading]
synthetic_feed = false

[trading.accounts.paper]
price_band_pct = "5"
"#;

// ----- helpers ------------------------------------------------------------------------------

/// `sovereign ARGS… --url <engine>`.
fn run(e: &Engine, args: &[&str]) -> CliOutput {
    let mut all = args.to_vec();
    all.extend(["--url", e.url()]);
    cli(&all)
}

/// Like [`run`], requiring exit 0 and a quiet stderr.
fn ok(e: &Engine, args: &[&str]) -> CliOutput {
    let out = run(e, args);
    assert!(out.ok(), "sovereign {args:?} failed: {out:?}");
    assert_eq!(out.stderr, "", "sovereign {args:?}: {out:?}");
    out
}

/// Like [`ok`] with `--json`; the parsed stdout.
fn ok_json(e: &Engine, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(e, &all);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|err| panic!("sovereign {args:?} --json: {err}: {:?}", out.stdout))
}

/// Like [`run`], requiring exit `code`, nothing on stdout and exactly one stderr line; the line.
fn fails(e: &Engine, code: i32, args: &[&str]) -> String {
    let out = run(e, args);
    assert_eq!(out.code, Some(code), "sovereign {args:?}: {out:?}");
    assert_eq!(out.stdout, "", "sovereign {args:?}: {out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one error line: {out:?}");
    lines[0].to_string()
}

/// A table printed by the CLI as one map per row, keyed by the header (cells are separated by
/// two or more spaces; no cell is empty).
fn table(stdout: &str) -> Vec<BTreeMap<String, String>> {
    let split = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let mut lines = stdout.lines();
    let header = split(
        lines
            .next()
            .unwrap_or_else(|| panic!("no header in {stdout:?}")),
    );
    lines
        .map(|line| {
            let cells = split(line);
            assert_eq!(cells.len(), header.len(), "{line:?} under {header:?}");
            header.iter().cloned().zip(cells).collect()
        })
        .collect()
}

/// `(column, value)` pairs as a row, for comparing with [`table`] output.
fn row(cells: &[(&str, &str)]) -> BTreeMap<String, String> {
    cells
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Push one quote over HTTP and require it applied.
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

/// The `paper` position in `symbol`, over HTTP.
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

/// One order's status, over HTTP.
async fn order_status(e: &Engine, id: &str) -> Value {
    let (status, body) = e.get(&format!("/api/orders/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["status"].clone()
}

async fn fill_count(e: &Engine) -> usize {
    let (status, body) = e.get("/api/fills?limit=100000").await;
    assert_eq!(status, 200, "{body}");
    body["fills"].as_array().expect("fills array").len()
}

fn id(order: &Value) -> String {
    order["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {order}"))
        .to_string()
}

/// `2024-03-01T14:30:00Z` plus `seconds`.
fn ts(seconds: i64) -> String {
    let t0 = DateTime::parse_from_rfc3339("2024-03-01T14:30:00Z").unwrap();
    (t0 + chrono::Duration::seconds(seconds))
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Write `text` as a file in the engine's private dir; its path as text.
fn write(e: &Engine, name: &str, text: &str) -> String {
    let path: PathBuf = e.root().join(name);
    std::fs::write(&path, text).expect("write csv");
    path.display().to_string()
}

/// A price with quarter ticks: `base + quarters × 0.25`, as exact text.
fn quarters(base: i64, quarters: i64) -> String {
    let hundredths = base * 100 + quarters * 25;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Decimal text in the engine's shortest form (`5010.00` → `5010`, `5000.50` → `5000.5`).
fn shortest(text: &str) -> String {
    match text.split_once('.') {
        Some((int, frac)) if frac.trim_end_matches('0').is_empty() => int.to_string(),
        Some((int, frac)) => format!("{int}.{}", frac.trim_end_matches('0')),
        None => text.to_string(),
    }
}

// ----- orders -------------------------------------------------------------------------------

#[tokio::test]
async fn cli_trading_orders_positions_cancel() {
    let e = Engine::start(Some(CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;

    // A market buy: the row as the engine stored it.
    let out = ok(&e, &["order", "buy", "ES", "2"]);
    let rows = table(&out.stdout);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    let buy_id = rows[0]["ID"].clone();
    assert_eq!(
        rows[0],
        row(&[
            ("ID", &buy_id),
            ("ACCOUNT", "paper"),
            ("SYMBOL", "ES"),
            ("SIDE", "buy"),
            ("QTY", "2"),
            ("TYPE", "market"),
            ("PRICE", "-"),
            ("TIF", "day"),
            ("STATUS", "filled"),
            ("FILLED", "2"),
            ("AVG", "5000.25"),
        ])
    );
    assert_eq!(order_status(&e, &buy_id).await, "filled");

    let out = ok(&e, &["positions"]);
    assert_eq!(
        table(&out.stdout),
        vec![row(&[
            ("ACCOUNT", "paper"),
            ("SYMBOL", "ES"),
            ("QTY", "2"),
            ("AVG", "5000.25"),
            ("LAST", "5000"),
            // (5000 − 5000.25) × 2 × 50
            ("UNREALIZED", "-25"),
            ("REALIZED", "0"),
        ])]
    );
    assert_eq!(position(&e, "ES").await["qty"], "2");
    let listed = ok_json(&e, &["positions", "--account", "paper"]);
    assert_eq!(listed["positions"][0]["qty"], "2", "{listed}");
    assert_eq!(listed["count"], 1, "{listed}");

    // A limit far outside the ±5% band: denied, one line, exit 3, nothing filled.
    let line = fails(&e, 3, &["order", "sell", "ES", "1", "--limit", "6000"]);
    assert!(line.starts_with("denied: price_band: "), "{line}");
    assert!(
        line.len() > "denied: price_band: ".len(),
        "a reason: {line}"
    );
    // With --json, the stored (denied) order still reaches the script on stdout.
    let out = run(
        &e,
        &["order", "sell", "ES", "1", "--limit", "6000", "--json"],
    );
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(out.stderr.starts_with("denied: price_band: "), "{out:?}");
    let denied: Value = serde_json::from_str(&out.stdout).expect("denial JSON");
    assert_eq!(denied["order"]["status"], "denied", "{denied}");
    assert_eq!(denied["error"]["code"], "price_band", "{denied}");
    let denied_id = id(&denied["order"]);
    assert_eq!(order_status(&e, &denied_id).await, "denied");
    assert_eq!(
        position(&e, "ES").await["qty"],
        "2",
        "a denial fills nothing"
    );

    // The order type follows from --limit/--stop: (extra args, type, limit, stop, tif).
    let cases: [(&[&str], &str, Value, Value, &str); 4] = [
        (
            &["buy", "ES", "1", "--limit", "4990"],
            "limit",
            json!("4990"),
            Value::Null,
            "day",
        ),
        (
            &["buy", "ES", "1", "--stop", "5050"],
            "stop",
            Value::Null,
            json!("5050"),
            "day",
        ),
        (
            &[
                "buy", "ES", "1", "--limit", "5051", "--stop", "5050", "--tif", "gtc",
            ],
            "stop_limit",
            json!("5051"),
            json!("5050"),
            "gtc",
        ),
        (
            &["sell", "ES", "1", "--limit", "5100.5", "--tif", "ioc"],
            "limit",
            json!("5100.5"),
            Value::Null,
            "ioc",
        ),
    ];
    let mut resting = Vec::new();
    for (args, kind, limit, stop, tif) in cases {
        let mut all = vec!["order"];
        all.extend(args);
        let o = ok_json(&e, &all);
        assert_eq!(o["type"], kind, "{args:?}: {o}");
        assert_eq!(o["limit_price"], limit, "{args:?}: {o}");
        assert_eq!(o["stop_price"], stop, "{args:?}: {o}");
        assert_eq!(o["tif"], tif, "{args:?}: {o}");
        assert_eq!(o["qty"], "1", "{args:?}: {o}");
        // Nothing crosses the 4999.75/5000.25 quote: day/gtc rest, the IOC is canceled.
        let want = if tif == "ioc" { "canceled" } else { "accepted" };
        assert_eq!(o["status"], want, "{args:?}: {o}");
        assert_eq!(order_status(&e, &id(&o)).await, want);
        resting.push(id(&o));
    }
    resting.pop();

    // The same --client-order-id answers with the existing order.
    let args = [
        "order",
        "buy",
        "ES",
        "1",
        "--limit",
        "4980",
        "--client-order-id",
        "cli-1",
        "--account",
        "paper",
    ];
    let first = ok_json(&e, &args);
    let again = ok_json(&e, &args);
    assert_eq!(first["client_order_id"], "cli-1", "{first}");
    assert_eq!(again["id"], first["id"], "idempotent: {again}");
    resting.push(id(&first));

    // Cancel a resting limit: the row, then the engine agrees; a second cancel is an error.
    let limit_id = resting[0].clone();
    let out = ok(&e, &["cancel", &limit_id]);
    let rows = table(&out.stdout);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert_eq!(
        (&*rows[0]["ID"], &*rows[0]["STATUS"], &*rows[0]["PRICE"]),
        (limit_id.as_str(), "canceled", "4990")
    );
    assert_eq!(order_status(&e, &limit_id).await, "canceled");
    let line = fails(&e, 1, &["cancel", &limit_id]);
    assert!(line.starts_with("error: order_not_open: "), "{line}");
    let line = fails(&e, 1, &["cancel", "999999"]);
    assert!(line.starts_with("error: not_found: "), "{line}");

    // `orders --json` is the API's list and holds every order above.
    let all = ok_json(&e, &["orders"]);
    let list = all["orders"].as_array().expect("orders array");
    assert_eq!(all["count"], list.len(), "{all}");
    let status_of = |wanted: &str| -> Value {
        list.iter()
            .find(|o| o["id"] == wanted)
            .map(|o| o["status"].clone())
            .unwrap_or_else(|| panic!("{wanted} missing from {all}"))
    };
    assert_eq!(status_of(&buy_id), "filled");
    assert_eq!(status_of(&denied_id), "denied");
    assert_eq!(status_of(&limit_id), "canceled");
    // 1 buy + 2 denials + 4 typed orders + 1 idempotent one.
    assert_eq!(list.len(), 8, "{all}");

    // Filters and limit, as a table.
    let out = ok(&e, &["orders", "--status", "filled", "--symbol", "ES"]);
    let filled = table(&out.stdout);
    assert_eq!(filled.len(), 1, "{}", out.stdout);
    assert_eq!(filled[0]["ID"], buy_id);
    let out = ok(&e, &["orders", "--status", "accepted"]);
    let mut open: Vec<String> = table(&out.stdout).iter().map(|r| r["ID"].clone()).collect();
    open.sort();
    let mut want = resting[1..].to_vec();
    want.sort();
    assert_eq!(open, want, "{}", out.stdout);
    let stop_limit = table(&out.stdout)
        .into_iter()
        .find(|r| r["TYPE"] == "stop_limit")
        .expect("the stop-limit rests");
    assert_eq!(stop_limit["PRICE"], "5051 stop 5050");
    let out = ok(&e, &["orders", "--limit", "2"]);
    assert_eq!(table(&out.stdout).len(), 2, "{}", out.stdout);
    let line = fails(&e, 1, &["orders", "--status", "bogus"]);
    assert!(line.starts_with("error: invalid_status: "), "{line}");
    assert!(line.ends_with("(field status)"), "{line}");
}

// ----- risk state, accounts, fills, flatten -------------------------------------------------

#[tokio::test]
async fn cli_trading_hardstop_resume_flatten() {
    let e = Engine::start(Some(CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    ok(&e, &["order", "buy", "ES", "2"]);

    assert_eq!(
        ok(&e, &["hardstop", "--reason", "x"]).stdout,
        "paper: halted\n"
    );
    assert_eq!(
        ok(&e, &["hardstop", "--reason", "x"]).stdout,
        "paper: halted (unchanged)\n"
    );
    let line = fails(&e, 3, &["order", "buy", "ES", "1"]);
    assert!(line.starts_with("denied: trading_halted: "), "{line}");
    let accounts = table(&ok(&e, &["accounts"]).stdout);
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["ACCOUNT"], "paper");
    assert_eq!(accounts[0]["STATE"], "halted");
    assert_eq!(accounts[0]["CURRENCY"], "USD");
    assert_eq!(accounts[0]["DAY P&L"], "-25");

    // The engine's validation comes back as one line naming the field.
    let line = fails(&e, 1, &["resume", "--reason", ""]);
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.ends_with("(field reason)"), "{line}");
    let line = fails(&e, 1, &["hardstop", "--reason", "x", "--account", "nope"]);
    assert!(line.starts_with("error: unknown_account: "), "{line}");

    let resumed = ok_json(&e, &["resume", "--reason", "y", "--account", "paper"]);
    assert_eq!(
        resumed,
        json!({"account": "paper", "trading_state": "active", "changed": true, "canceled": [],
               "accounts": [{"account": "paper", "trading_state": "active", "changed": true, "canceled": []}]})
    );
    let accounts = ok_json(&e, &["accounts"]);
    assert_eq!(
        accounts["accounts"][0]["trading_state"], "active",
        "{accounts}"
    );
    let o = ok_json(&e, &["order", "buy", "ES", "1"]);
    assert_eq!(o["status"], "filled", "{o}");

    // Fills, newest first; --limit keeps the newest.
    let fills = ok_json(&e, &["fills"]);
    assert_eq!(fills["count"], 2, "{fills}");
    let newest = table(&ok(&e, &["fills", "--limit", "1"]).stdout);
    assert_eq!(newest.len(), 1, "{newest:?}");
    assert_eq!(
        (
            &*newest[0]["ORDER"],
            &*newest[0]["QTY"],
            &*newest[0]["PRICE"]
        ),
        (o["id"].as_str().unwrap(), "1", "5000.25")
    );
    let line = fails(&e, 1, &["fills", "--account", "nobody"]);
    assert!(line.starts_with("error: unknown_account: "), "{line}");

    // Flatten sells the 3 at the bid; afterwards there is nothing left to flatten.
    let closing = table(&ok(&e, &["flatten"]).stdout);
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(
        (
            &*closing[0]["SIDE"],
            &*closing[0]["QTY"],
            &*closing[0]["STATUS"],
            &*closing[0]["AVG"]
        ),
        ("sell", "3", "filled", "4999.75")
    );
    assert_eq!(position(&e, "ES").await["qty"], "0");
    assert_eq!(fill_count(&e).await, 3);
    assert_eq!(
        ok(&e, &["flatten", "--account", "paper"]).stdout,
        "nothing to flatten\n"
    );
}

// ----- replay -------------------------------------------------------------------------------

/// ES at second `i`: last `5000 + i/4`, bid one tick under, ask one over.
fn es_row(i: i64) -> String {
    format!(
        "{},ES,{},{},{},1",
        ts(i),
        quarters(5000, i),
        quarters(5000, i - 1),
        quarters(5000, i + 1)
    )
}

#[tokio::test]
async fn cli_replay_moves_the_engine_prices() {
    let e = Engine::start(Some(CONFIG));
    // 40 ES rows a second apart and NQ rows sharing every fourth timestamp; the file lists the
    // second half first, so the last row in the file (ES at 19 s) is not the latest in time.
    let mut rows: Vec<String> = Vec::new();
    for i in (20..40).chain(0..20) {
        rows.push(es_row(i));
        if i % 4 == 0 {
            rows.push(format!(
                "{},NQ,{},,{},",
                ts(i),
                quarters(18000, i),
                quarters(18000, i + 2)
            ));
        }
    }
    let csv = format!("ts,symbol,price,bid,ask,size\n{}\n", rows.join("\n"));
    let path = write(&e, "ticks.csv", &csv);

    let out = ok(&e, &["replay", &path, "--speed", "max", "--batch", "7"]);
    let prefix = format!("replayed 50 ticks from {path} in ");
    assert!(
        out.stdout.starts_with(&prefix) && out.stdout.ends_with(" s\n"),
        "{out:?}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");

    // The latest ES tick (39 s) is the market now: a market buy fills at its ask.
    let es = ok_json(&e, &["order", "buy", "ES", "1"]);
    assert_eq!(es["avg_fill_price"], shortest(&quarters(5000, 40)), "{es}");
    assert_eq!(
        position(&e, "ES").await["last_price"],
        shortest(&quarters(5000, 39))
    );
    let nq = ok_json(&e, &["order", "buy", "NQ", "1"]);
    assert_eq!(nq["avg_fill_price"], shortest(&quarters(18000, 38)), "{nq}");
}

#[tokio::test]
async fn cli_replay_paces_by_timestamps() {
    let e = Engine::start(Some(CONFIG));
    // 2 s of recorded time at 10x: at least 0.2 s (a lower bound only; never an upper one).
    let csv = format!(
        "ts,symbol,price\n{},ES,5000\n{},ES,5000.25\n{},ES,5000.5\n",
        ts(0),
        ts(1),
        ts(2)
    );
    let path = write(&e, "paced.csv", &csv);
    let started = Instant::now();
    let out = ok(&e, &["replay", &path, "--speed", "10x"]);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let summary = ok_json(&e, &["replay", &path, "--speed", "10x"]);
    assert_eq!(summary["replayed"], 3, "{summary}");
    assert!(
        summary["seconds"].as_f64().unwrap() >= 0.2,
        "{summary} after {out:?}"
    );
    let o = ok_json(&e, &["order", "buy", "ES", "1"]);
    assert_eq!(
        o["status"], "filled",
        "no ask in the file: fills at the last price: {o}"
    );
    assert_eq!(position(&e, "ES").await["last_price"], "5000.5");
}

#[tokio::test]
async fn cli_replay_bad_rows_send_nothing() {
    let e = Engine::start(Some(CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    ok(&e, &["order", "buy", "ES", "1"]);
    let before = position(&e, "ES").await;
    assert_eq!(before["last_price"], "5000");

    let header = "ts,symbol,price,bid,ask,size";
    let good = es_row(1);
    let many_good: Vec<String> = (1..39).map(es_row).collect();
    // (file text, line, part of the problem)
    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!("{header}\n{good}\n{},ES,abc,,,\n", ts(2)),
            3,
            "price: \"abc\" is not a decimal",
        ),
        (
            format!("{header}\n{good}\nyesterday,ES,5001,,,\n"),
            3,
            "ts \"yesterday\"",
        ),
        (
            format!("{header}\n{good}\n{},ES,,,,\n", ts(2)),
            3,
            "price is empty",
        ),
        (
            format!("{header}\n{good}\n{},\"ES\",5001,,,\n", ts(2)),
            3,
            "quoted fields",
        ),
        (
            format!("{header}\n{good}\n{},ES,5001\n", ts(2)),
            3,
            "3 fields",
        ),
        (
            format!("{header}\n{good}\n{},ES,5001.123456789,,,\n", ts(2)),
            3,
            "more than 8 decimal",
        ),
        (
            format!("{header},venue\n{good},X\n"),
            1,
            "unknown column \"venue\"",
        ),
        // 38 good rows then a bad one, sent one per request: still nothing goes out.
        (
            format!("{header}\n{}\n{},ES,-5,,,\n", many_good.join("\n"), ts(40)),
            40,
            "price -5 is not above 0",
        ),
    ];
    for (n, (text, line, part)) in cases.into_iter().enumerate() {
        let path = write(&e, &format!("bad{n}.csv"), &text);
        let err = fails(&e, 1, &["replay", &path, "--speed", "max", "--batch", "1"]);
        assert!(err.starts_with(&format!("{path}:{line}: ")), "{err}");
        assert!(err.contains(&format!(":{line}:")), "{err}");
        assert!(err.contains(part), "{err} lacks {part:?}");
    }
    let missing = fails(&e, 1, &["replay", "/nonexistent/ticks.csv"]);
    assert!(
        missing.contains("cannot read /nonexistent/ticks.csv"),
        "{missing}"
    );

    // The engine saw none of it: same last price, same P&L.
    assert_eq!(position(&e, "ES").await, before);
    let o = ok_json(&e, &["order", "buy", "ES", "1"]);
    assert_eq!(
        o["avg_fill_price"], "5000.25",
        "the quote is unchanged: {o}"
    );
}

#[tokio::test]
async fn cli_replay_stops_at_a_refused_batch() {
    let e = Engine::start(Some(CONFIG));
    tick(&e, "ES", "5000", "4999.75", "5000.25").await;
    ok(&e, &["order", "buy", "ES", "1"]);

    // Requests of two: rows 2–3 apply, rows 4–5 are refused for row 5, row 6 is never sent.
    let csv = format!(
        "ts,symbol,price\n{},ES,5001\n{},ES,5002\n{},ES,5003\n{},ZZZ,1\n{},ES,5005\n",
        ts(1),
        ts(2),
        ts(3),
        ts(4),
        ts(5)
    );
    let path = write(&e, "refused.csv", &csv);
    let line = fails(&e, 1, &["replay", &path, "--speed", "max", "--batch", "2"]);
    assert!(line.starts_with(&format!("{path}:4: ")), "{line}");
    assert!(line.contains("unknown_symbol"), "{line}");
    assert!(line.contains("row 5"), "{line}");
    assert!(line.contains("2 earlier ticks were applied"), "{line}");
    assert_eq!(position(&e, "ES").await["last_price"], "5002");

    // A price off the tick grid is the engine's call too.
    let path = write(
        &e,
        "off_tick.csv",
        &format!("ts,symbol,price\n{},ES,5004.1\n", ts(6)),
    );
    let line = fails(&e, 1, &["replay", &path, "--speed", "max"]);
    assert!(line.starts_with(&format!("{path}:2: ")), "{line}");
    assert!(line.contains("price_off_tick"), "{line}");
    assert_eq!(position(&e, "ES").await["last_price"], "5002");
}

// ----- help and usage -----------------------------------------------------------------------

#[test]
fn cli_trading_help_and_usage() {
    let help = cli(&["order", "--help"]);
    assert!(help.ok(), "{help:?}");
    for part in [
        "Exit codes:",
        "0  accepted",
        "1  any other failure",
        "2  bad command-line arguments",
        "3  denied by pre-trade risk (HTTP 422): `denied: <code>: <message>`",
    ] {
        assert!(
            help.stdout.contains(part),
            "{part:?} missing from {}",
            help.stdout
        );
    }
    let help = cli(&["replay", "--help"]);
    assert!(
        help.stdout.contains("ts,symbol,price[,bid,ask,size]"),
        "{help:?}"
    );

    // Bad arguments are clap's: exit 2, before anything is read or sent.
    for args in [
        &["replay", "x.csv", "--speed", "fast"][..],
        &["replay", "x.csv", "--batch", "0"],
        &["order", "hold", "ES", "1"],
        &["order", "buy", "ES", "1", "--tif", "week"],
        &["hardstop"],
    ] {
        let out = cli(args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }

    // No engine: one line, exit 1.
    let out = cli(&["orders", "--url", "http://127.0.0.1:9"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: cannot reach the engine at http://127.0.0.1:9"),
        "{out:?}"
    );
}

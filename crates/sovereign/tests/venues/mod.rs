//! The NinjaTrader stand-in (`sovereign gateway simulate ninjatrader DIR`) against the file
//! formats NinjaTrader documents: order instruction files taken from `incoming`, order state,
//! position and connection files written to `outgoing`, a restart clearing `outgoing`, a
//! connection that drops.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{unique_dir, wait_for, BIN, PATIENCE};

struct StandIn(Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl StandIn {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn oif(dir: &Path, n: u32, lines: &str) {
    // Written elsewhere and renamed in, as the engine does: never a half-written file.
    let staged = dir.join(format!("oif{n}.tmp"));
    std::fs::write(&staged, lines).unwrap();
    std::fs::rename(&staged, dir.join("incoming").join(format!("oif{n}.txt"))).unwrap();
}

async fn file_says(dir: &Path, name: &str, want: &str) {
    let path = dir.join("outgoing").join(name);
    wait_for(&format!("{name} to say {want}"), PATIENCE, || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        async move { (text.trim() == want).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn the_stand_in_works_the_folder_as_ninjatrader_does() {
    let dir = unique_dir("sovereign-e2e-ninja");
    let child = Command::new(BIN)
        .args(["gateway", "simulate", "ninjatrader"])
        .arg(&dir)
        .args(["--price", "5000.25", "--partial", "1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stand-in.log")).unwrap())
        .spawn()
        .unwrap();
    let venue = StandIn(child);
    file_says(&dir, "Simulated.txt", "CONNECTED").await;

    // A market order fills one contract per poll; the state file is cumulative.
    oif(
        &dir,
        1,
        "PLACE;Sim101;ES 03-27;BUY;2;MARKET;;;DAY;;sov-1;;\r\n",
    );
    file_says(&dir, "sov-1.txt", "FILLED;2;5000.25").await;
    file_says(
        &dir,
        "ES 03-27 Globex_Sim101_Position.txt",
        "LONG;2;5000.25",
    )
    .await;
    assert!(
        !dir.join("incoming/oif1.txt").exists(),
        "a taken file is deleted"
    );

    // A resting limit, changed, then canceled; a malformed line is refused and does nothing.
    oif(
        &dir,
        2,
        "PLACE;Sim101;ES 03-27;SELL;1;LIMIT;5100;;GTC;;sov-2;;\nPLACE;Sim101;ES 03-27;HOLD;1;MARKET;;;DAY;;sov-3;;\n",
    );
    file_says(&dir, "sov-2.txt", "WORKING;0;0").await;
    oif(&dir, 3, "CHANGE;;;;0;;5000;0;;;sov-2;;\n");
    file_says(&dir, "sov-2.txt", "FILLED;1;5000.25").await;
    file_says(
        &dir,
        "ES 03-27 Globex_Sim101_Position.txt",
        "LONG;1;5000.25",
    )
    .await;
    oif(
        &dir,
        4,
        "PLACE;Sim101;ES 03-27;BUY;1;LIMIT;4000;;DAY;;sov-4;;\nCANCEL;;;;;;;;;;sov-4;;\n",
    );
    file_says(&dir, "sov-4.txt", "CANCELLED;0;0").await;
    assert!(!dir.join("outgoing/sov-3.txt").exists());
    let log = std::fs::read_to_string(dir.join("stand-in.log")).unwrap();
    assert!(log.contains("refused") && log.contains("HOLD"), "{log}");

    // Flatten everything: the position closes at the price.
    oif(&dir, 5, "FLATTENEVERYTHING;;;;;;;;;;;;\n");
    file_says(&dir, "ES 03-27 Globex_Sim101_Position.txt", "FLAT;0;0").await;

    // A restart clears outgoing (the connection file comes back).
    venue.signal("HUP");
    wait_for("outgoing cleared", PATIENCE, || {
        let gone = !dir.join("outgoing/sov-1.txt").exists();
        async move { gone.then_some(()) }
    })
    .await;
    file_says(&dir, "Simulated.txt", "CONNECTED").await;

    // The connection drops: new orders are rejected.
    venue.signal("USR1");
    file_says(&dir, "Simulated.txt", "DISCONNECTED").await;
    oif(
        &dir,
        6,
        "PLACE;Sim101;ES 03-27;BUY;1;MARKET;;;DAY;;sov-6;;\n",
    );
    file_says(&dir, "sov-6.txt", "REJECTED;0;0").await;
}

fn engine_with_stand_in() -> (crate::util::Engine, StandIn, std::path::PathBuf) {
    engine_with(&["--price", "5000.25"])
}

fn engine_with(stand_in: &[&str]) -> (crate::util::Engine, StandIn, std::path::PathBuf) {
    let root = unique_dir("sovereign-e2e-nt-engine");
    let nt = root.join("nt");
    let config = format!(
        "[trading]\nsynthetic_feed = false\n[trading.accounts.live]\nstarting_cash = \"100000\"\n\n[trading.gateways.nt]\nkind = \"ninjatrader\"\naccount = \"live\"\nvenue_account = \"Sim101\"\ndir = \"{}\"\ninstruments = {{ ES = \"ES 03-27\" }}\npoll = \"20ms\"\nconnection = \"Simulated\"\n\n[signals.tv]\nsecret = \"tv-secret-123\"\naccount = \"live\"\nsymbols = {{ \"ES1!\" = \"ES\" }}\n",
        nt.display()
    );
    let e = crate::util::Engine::start_in(root, Some(&config));
    let child = Command::new(BIN)
        .args(["gateway", "simulate", "ninjatrader"])
        .arg(&nt)
        // `{engine}`: this engine's URL (the stand-in fills at its prices).
        .args(stand_in.iter().map(|a| a.replace("{engine}", e.url())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (e, StandIn(child), nt)
}

async fn order_status(e: &crate::util::Engine, id: &str, want: &str) -> serde_json::Value {
    wait_for(&format!("order {id} {want}"), PATIENCE, || async {
        let (_, o) = e.get(&format!("/api/orders/{id}")).await;
        (o["status"] == want).then_some(o)
    })
    .await
}

#[tokio::test]
async fn an_alert_reaches_ninjatrader_and_its_fill_comes_back_once() {
    use serde_json::json;
    let (e, _venue, nt) = engine_with_stand_in();
    let (status, _) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": "ES", "price": "5000", "bid": "4999.75", "ask": "5000.25"}]),
        )
        .await;
    assert_eq!(status, 200);

    // A TradingView alert: its market order goes out as an order file and waits.
    let (status, answer) = e
        .post(
            "/api/signals/tv",
            json!({"ticker": "ES1!", "action": "buy", "contracts": 2, "secret": "tv-secret-123", "id": "a1"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["orders"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(answer["orders"][0]["status"], "submitted", "{answer}");
    let filled = order_status(&e, &id, "filled").await;
    assert_eq!(
        (
            filled["filled_qty"].as_str(),
            filled["avg_fill_price"].as_str()
        ),
        (Some("2"), Some("5000.25"))
    );
    let (_, positions) = e.get("/api/positions?account=live").await;
    assert_eq!(positions["positions"][0]["qty"], "2", "{positions}");

    // A resting order, canceled: it works until NinjaTrader says it is canceled.
    let (status, rest) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4800", "tif": "gtc"}))
        .await;
    assert_eq!(status, 201, "{rest}");
    let rest_id = rest["id"].as_str().unwrap().to_string();
    order_status(&e, &rest_id, "accepted").await;
    let (status, asked) = e.delete(&format!("/api/orders/{rest_id}")).await;
    assert_eq!(
        (status, asked["status"].as_str()),
        (200, Some("accepted")),
        "{asked}"
    );
    order_status(&e, &rest_id, "canceled").await;

    // An engine killed and started again reads the same files: nothing counts twice.
    let mut e = e;
    e.kill9();
    let e = e.resume();
    let (status, again) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "sell", "qty": "1", "type": "market"}))
        .await;
    assert_eq!(status, 201, "{again}");
    order_status(&e, again["id"].as_str().unwrap(), "filled").await;
    let (_, fills) = e.get("/api/fills?account=live").await;
    let fills = fills["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 2, "{fills:?}");
    let (_, positions) = e.get("/api/positions?account=live").await;
    assert_eq!(positions["positions"][0]["qty"], "1", "{positions}");
    assert!(nt.join("outgoing").join(format!("sov-{id}.txt")).exists());
}

async fn gateway(
    e: &crate::util::Engine,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(what, PATIENCE, || async {
        let (_, list) = e.get("/api/gateways").await;
        let g = list["gateways"][0].clone();
        ok(&g).then_some(g)
    })
    .await
}

async fn alert_titled(e: &crate::util::Engine, part: &str) -> serde_json::Value {
    wait_for(&format!("an alert about {part}"), PATIENCE, || async {
        let (_, list) = e.get("/api/alerts").await;
        list["alerts"].as_array().and_then(|a| {
            a.iter()
                .find(|x| x["title"].as_str().is_some_and(|t| t.contains(part)))
                .cloned()
        })
    })
    .await
}

async fn account_state(e: &crate::util::Engine, want: &str) {
    wait_for(&format!("account live {want}"), PATIENCE, || async {
        let (_, list) = e.get("/api/accounts").await;
        let live = list["accounts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["account"] == "live").cloned());
        live.filter(|a| a["trading_state"] == want).map(|_| ())
    })
    .await;
}

async fn price(e: &crate::util::Engine) {
    let (status, _) = e
        .post(
            "/api/market/ticks",
            serde_json::json!([{"symbol": "ES", "price": "5000", "bid": "4999.75", "ask": "5000.25"}]),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn partial_fills_changes_refusals_and_a_venue_restart() {
    use serde_json::json;
    let (e, venue, nt) = engine_with(&["--price", "5000.25", "--partial", "1"]);
    price(&e).await;
    let g = gateway(&e, "the gateway connected", |g| {
        g["connection"] == "connected"
    })
    .await;
    assert_eq!(
        (g["kind"].as_str(), g["reconciliation"].as_str()),
        (Some("ninjatrader"), Some("ok")),
        "{g}"
    );

    // Three contracts, one per NinjaTrader poll: three fills from one cumulative file.
    let (status, buy) = e
        .post(
            "/api/orders",
            json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "3", "type": "market"}),
        )
        .await;
    assert_eq!(status, 201, "{buy}");
    let id = buy["id"].as_str().unwrap().to_string();
    let done = order_status(&e, &id, "filled").await;
    assert_eq!(done["filled_qty"], "3", "{done}");
    let (_, fills) = e.get("/api/fills?account=live").await;
    let fills = fills["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 3, "{fills:?}");
    assert!(fills.iter().all(|f| f["qty"] == "1"), "{fills:?}");

    // A resting sell, changed to cross: NinjaTrader fills it.
    let (_, sell) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "sell", "qty": "1", "type": "limit", "limit_price": "5100", "tif": "gtc"}))
        .await;
    let sell_id = sell["id"].as_str().unwrap().to_string();
    order_status(&e, &sell_id, "accepted").await;
    let (status, changed) = e
        .patch(
            &format!("/api/orders/{sell_id}"),
            json!({"limit_price": "5000"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    order_status(&e, &sell_id, "filled").await;
    let (_, positions) = e.get("/api/positions?account=live").await;
    assert_eq!(positions["positions"][0]["qty"], "2", "{positions}");

    // What the interface cannot express is rejected up front, with a code.
    let (_, ioc) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4900", "tif": "ioc"}))
        .await;
    let ioc = order_status(&e, ioc["id"].as_str().unwrap(), "rejected").await;
    assert_eq!(ioc["reject_code"], "venue_unsupported", "{ioc}");

    // NinjaTrader restarts and clears outgoing: a resting order's state is unknown, not guessed.
    let (_, rest) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4800", "tif": "gtc"}))
        .await;
    let rest_id = rest["id"].as_str().unwrap().to_string();
    order_status(&e, &rest_id, "accepted").await;
    venue.signal("HUP");
    let g = gateway(&e, "the order unknown", |g| {
        g["unknown_orders"]
            .as_array()
            .is_some_and(|u| !u.is_empty())
    })
    .await;
    assert_eq!(g["unknown_orders"], json!([rest_id]), "{g}");
    let (_, o) = e.get(&format!("/api/orders/{rest_id}")).await;
    assert_eq!(o["status"], "accepted", "the engine does not guess: {o}");
    alert_titled(&e, "unknown").await;
    assert!(e
        .audit_kinds()
        .await
        .contains(&"trading.venue_orders_unknown".to_string()));
    assert!(!nt
        .join("outgoing")
        .join(format!("sov-{rest_id}.txt"))
        .exists());
}

#[tokio::test]
async fn a_position_mismatch_reduces_the_account_until_the_venue_is_adopted() {
    use serde_json::json;
    let (e, _venue, nt) = engine_with_stand_in();
    price(&e).await;
    gateway(&e, "positions read", |g| g["reconciliation"] == "ok").await;

    // NinjaTrader holds 3 the engine never traded (placed by hand in NinjaTrader, say).
    let file = nt
        .join("outgoing")
        .join("ES 03-27 Globex_Sim101_Position.txt");
    std::fs::write(&file, "LONG;3;4990.5\r\n").unwrap();
    let g = gateway(&e, "the mismatch declared", |g| {
        g["reconciliation"] == "mismatch"
    })
    .await;
    assert_eq!(
        (
            g["mismatches"][0]["symbol"].as_str(),
            g["mismatches"][0]["engine_qty"].as_str(),
            g["mismatches"][0]["venue_qty"].as_str()
        ),
        (Some("ES"), Some("0"), Some("3")),
        "{g}"
    );
    account_state(&e, "reducing").await;
    let alert = alert_titled(&e, "positions differ").await;
    assert_eq!(alert["priority"], "P1", "{alert}");
    assert!(e
        .audit_kinds()
        .await
        .contains(&"trading.venue_mismatch".to_string()));

    // A new buy is refused while reducing.
    let (status, denied) = e
        .post(
            "/api/orders",
            json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "market"}),
        )
        .await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (422, Some("reducing_only")),
        "{denied}"
    );

    // The operator takes NinjaTrader's view: one journaled adjustment.
    let out = crate::util::cli(&["reconcile", "live", "--adopt-venue", "--url", e.url()]);
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("positions agree"), "{}", out.stdout);
    let (_, positions) = e.get("/api/positions?account=live").await;
    let p = &positions["positions"][0];
    assert_eq!(
        (p["qty"].as_str(), p["avg_price"].as_str()),
        (Some("3"), Some("4990.5")),
        "{positions}"
    );
    gateway(&e, "reconciled", |g| g["reconciliation"] == "ok").await;
    assert!(e
        .audit_kinds()
        .await
        .contains(&"trading.position_adopted".to_string()));

    // It survives a restart (the adjustment is in the journal).
    let e = e.restart();
    let (_, positions) = e.get("/api/positions?account=live").await;
    assert_eq!(positions["positions"][0]["qty"], "3", "{positions}");
    let out = crate::util::cli(&["reconcile", "nobody", "--url", e.url()]);
    assert!(
        !out.ok() && out.stderr.contains("no gateway trades account"),
        "{}",
        out.stderr
    );

    // A mismatch never loosens a halt into reducing.
    let (status, _) = e
        .post(
            "/api/risk/hardstop",
            json!({"account": "live", "reason": "test"}),
        )
        .await;
    assert_eq!(status, 200);
    std::fs::write(&file, "LONG;4;4990.5\r\n").unwrap();
    gateway(&e, "the new mismatch declared", |g| {
        g["reconciliation"] == "mismatch" && g["mismatches"][0]["venue_qty"] == "4"
    })
    .await;
    account_state(&e, "halted").await;
}

#[tokio::test]
async fn a_disconnected_venue_refuses_orders_holds_cancels_and_the_kill_switch_reports_flat() {
    use serde_json::json;
    let (e, venue, _nt) = engine_with_stand_in();
    price(&e).await;
    gateway(&e, "the gateway connected", |g| {
        g["connection"] == "connected"
    })
    .await;
    let (_, buy) = e
        .post(
            "/api/orders",
            json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "2", "type": "market"}),
        )
        .await;
    order_status(&e, buy["id"].as_str().unwrap(), "filled").await;
    let (_, rest) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4800", "tif": "gtc"}))
        .await;
    let rest_id = rest["id"].as_str().unwrap().to_string();
    order_status(&e, &rest_id, "accepted").await;

    venue.signal("USR1");
    gateway(&e, "the gateway disconnected", |g| {
        g["connection"] == "disconnected"
    })
    .await;
    let alert = alert_titled(&e, "disconnected").await;
    assert_eq!(alert["priority"], "P1", "{alert}");
    let (status, denied) = e
        .post(
            "/api/orders",
            json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "market"}),
        )
        .await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (422, Some("venue_disconnected")),
        "{denied}"
    );
    // A cancel is taken and waits for the connection.
    let (status, asked) = e.delete(&format!("/api/orders/{rest_id}")).await;
    assert_eq!(
        (status, asked["status"].as_str()),
        (200, Some("accepted")),
        "{asked}"
    );
    let g = gateway(&e, "the cancel held", |g| g["held"] == 1).await;
    assert_eq!(g["held"], 1, "{g}");

    venue.signal("USR1");
    gateway(&e, "the gateway connected again", |g| {
        g["connection"] == "connected" && g["held"] == 0
    })
    .await;
    order_status(&e, &rest_id, "canceled").await;

    // HARDSTOP with flatten: halted, the position closed at NinjaTrader, and said so.
    let out = crate::util::cli(&[
        "hardstop",
        "--account",
        "live",
        "--reason",
        "test",
        "--flatten",
        "--url",
        e.url(),
    ]);
    assert!(out.ok(), "{} {}", out.stdout, out.stderr);
    account_state(&e, "halted").await;
    let g = gateway(&e, "flat at the venue", |g| g["flat_at"].is_string()).await;
    assert!(g["flatten_asked_at"].is_string(), "{g}");
    let (_, positions) = e.get("/api/positions?account=live").await;
    assert_eq!(positions["positions"][0]["qty"], "0", "{positions}");
    let out = crate::util::cli(&["gateways", "--url", e.url()]);
    assert!(
        out.ok() && out.stdout.contains("connected") && out.stdout.contains("nt"),
        "{}",
        out.stdout
    );
}

const BRIDGE_SECRET: &str = "bridge-secret-0123456789";

fn header<'a>(r: &'a crate::util::Recorded, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_broker_bridge_gets_each_order_once_signed_and_reports_back() {
    use crate::util::{Receiver, Reply};
    use serde_json::{json, Value};
    use sovereign_core::webhook::sign_hmac;
    let bridge = Receiver::start(200, std::time::Duration::ZERO);
    // The bridge fails the first attempt: the retry carries the same idempotency key.
    bridge.script(vec![Reply::status(500)]);
    let root = unique_dir("sovereign-e2e-bridge");
    let config = format!(
        r#"[trading]
synthetic_feed = false
[trading.accounts.bridged]
starting_cash = "100000"
[trading.accounts.blind]
starting_cash = "100000"

[trading.gateways.tp]
kind = "webhook"
account = "bridged"
url = "{url}/orders"
secret = "{BRIDGE_SECRET}"
retries = 3
fields = {{ ticker = "{{{{symbol}}}}", action = "{{{{action}}}}", quantity = "{{{{qty}}}}", orderType = "{{{{type}}}}", limitPrice = "{{{{limit_price}}}}", id = "{{{{order_id}}}}" }}
headers = {{ X-Bridge-Key = "bridge-api-key" }}

[trading.gateways.blind]
kind = "webhook"
account = "blind"
url = "{url}/blind"
secret = "{BRIDGE_SECRET}"
fire_and_forget = true
"#,
        url = bridge.url()
    );
    let e = crate::util::Engine::start_in(root, Some(&config));
    price(&e).await;
    let order = json!({"account": "bridged", "symbol": "ES", "side": "buy", "qty": "2", "type": "market", "client_order_id": "c-1"});
    let (status, placed) = e.post("/api/orders", order.clone()).await;
    assert_eq!(
        (status, placed["status"].as_str()),
        (201, Some("submitted")),
        "{placed}"
    );
    let id = placed["id"].as_str().unwrap().to_string();
    order_status(&e, &id, "accepted").await;

    let seen = bridge.requests();
    assert_eq!(
        seen.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 200],
        "one retry after the 500"
    );
    for r in &seen {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/orders"));
        assert_eq!(
            header(r, "idempotency-key"),
            Some(format!("sov-{id}").as_str())
        );
        let want = format!("sha256={}", sign_hmac(BRIDGE_SECRET, &r.body));
        assert_eq!(header(r, "x-sovereign-signature"), Some(want.as_str()));
        assert_eq!(header(r, "x-bridge-key"), Some("bridge-api-key"));
    }
    assert_eq!(seen[0].body, seen[1].body);
    let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(
        body,
        json!({"ticker": "ES", "action": "buy", "quantity": 2, "orderType": "market", "id": format!("sov-{id}")}),
        "the template, exact numbers, no limit price for a market order"
    );

    // The same client order id again is the same order: nothing is sent.
    let (status, again) = e.post("/api/orders", order).await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(id.as_str())),
        "{again}"
    );

    // The bridge reports a fill, signed; the same execution twice counts once.
    let report = json!({"order_id": format!("sov-{id}"), "type": "fill", "exec_id": "x-1", "qty": "2", "price": 5000.25}).to_string();
    let signature = format!("sha256={}", sign_hmac(BRIDGE_SECRET, report.as_bytes()));
    let post = |body: String, sig: Option<String>| {
        let e = &e;
        async move {
            let mut headers = vec![("content-type", "application/json".to_string())];
            if let Some(s) = sig {
                headers.push(("x-sovereign-signature", s));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.post_raw("/api/gateways/tp/reports", body.as_bytes(), &headers)
                .await
        }
    };
    let (status, taken) = post(report.clone(), Some(signature.clone())).await;
    assert_eq!(
        (status, taken["applied"].as_u64()),
        (200, Some(1)),
        "{taken}"
    );
    let (status, taken) = post(report.clone(), Some(signature)).await;
    assert_eq!(
        (status, taken["duplicates"].as_u64()),
        (200, Some(1)),
        "{taken}"
    );
    let filled = order_status(&e, &id, "filled").await;
    assert_eq!(filled["avg_fill_price"], "5000.25", "{filled}");
    let (_, fills) = e.get("/api/fills?account=bridged").await;
    assert_eq!(fills["fills"].as_array().unwrap().len(), 1, "{fills}");

    // Unsigned, forged, or for an order the bridge never had: refused or recorded, no change.
    let (status, err) = post(report.clone(), None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("bad_signature")),
        "{err}"
    );
    let forged = format!(
        "sha256={}",
        sign_hmac("not-the-secret-at-all", report.as_bytes())
    );
    let (status, _) = post(report, Some(forged)).await;
    assert_eq!(status, 401);
    let stray =
        json!({"order_id": "sov-999", "type": "fill", "exec_id": "x-9", "qty": "1", "price": "1"})
            .to_string();
    let sig = format!("sha256={}", sign_hmac(BRIDGE_SECRET, stray.as_bytes()));
    let (status, taken) = post(stray, Some(sig)).await;
    assert_eq!(
        (status, taken["anomalies"][0]["code"].as_str()),
        (200, Some("report_unknown_order")),
        "{taken}"
    );
    let garbage = "{\"order_id\": \"sov-1\", \"type\": \"fill\"}".to_string();
    let sig = format!("sha256={}", sign_hmac(BRIDGE_SECRET, garbage.as_bytes()));
    let (status, err) = post(garbage, Some(sig)).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("missing_field")),
        "{err}"
    );

    // A 4xx is the bridge refusing: the order is rejected with the code, not retried.
    bridge.script(vec![Reply::status(422)]);
    let before = bridge.requests().len();
    let (_, refused) = e
        .post("/api/orders", json!({"account": "bridged", "symbol": "ES", "side": "sell", "qty": "1", "type": "market"}))
        .await;
    let refused = order_status(&e, refused["id"].as_str().unwrap(), "rejected").await;
    assert_eq!(refused["reject_code"], "bridge_refused", "{refused}");
    assert_eq!(bridge.requests().len(), before + 1);

    // Fire and forget: accepted, never filled.
    let (_, blind) = e
        .post("/api/orders", json!({"account": "blind", "symbol": "ES", "side": "buy", "qty": "1", "type": "market"}))
        .await;
    let blind = order_status(&e, blind["id"].as_str().unwrap(), "accepted").await;
    assert_eq!(blind["filled_qty"], "0", "{blind}");
    let last = bridge.requests().pop().unwrap();
    assert_eq!(last.path, "/blind");
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(
        (body["qty"].to_string().as_str(), body["account"].as_str()),
        ("1", Some("blind")),
        "{body}"
    );
    let (_, list) = e.get("/api/gateways").await;
    let kinds: Vec<&str> = list["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["webhook", "webhook"], "{list}");
}

#[tokio::test]
async fn the_stand_in_fills_at_the_engines_prices_and_odd_files_are_recorded() {
    use serde_json::json;
    let (e, venue, nt) = engine_with(&["--engine", "{engine}"]);
    let (status, _) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": "ES", "price": "5012.5"}]),
        )
        .await;
    assert_eq!(status, 200);
    gateway(&e, "the gateway connected", |g| {
        g["connection"] == "connected"
    })
    .await;
    let (_, buy) = e
        .post(
            "/api/orders",
            json!({"account": "live", "symbol": "ES", "side": "buy", "qty": "1", "type": "market"}),
        )
        .await;
    let filled = order_status(&e, buy["id"].as_str().unwrap(), "filled").await;
    assert_eq!(filled["avg_fill_price"], "5012.5", "{filled}");

    // NinjaTrader gone: an order waits in submitted; its state file says NinjaTrader refused it.
    drop(venue);
    let (_, sell) = e
        .post("/api/orders", json!({"account": "live", "symbol": "ES", "side": "sell", "qty": "1", "type": "limit", "limit_price": "5100", "tif": "gtc"}))
        .await;
    let sell_id = sell["id"].as_str().unwrap().to_string();
    let out = nt.join("outgoing");
    std::fs::write(out.join(format!("sov-{sell_id}.txt")), "REJECTED;0;0\r\n").unwrap();
    let rejected = order_status(&e, &sell_id, "rejected").await;
    assert_eq!(rejected["reject_code"], "venue_rejected", "{rejected}");

    // A state file for an order this engine never sent, and one that is not NinjaTrader's:
    // each recorded, nothing changes.
    std::fs::write(out.join("sov-987654.txt"), "FILLED;1;5000\r\n").unwrap();
    std::fs::write(out.join("sov-7.txt"), "garbage here\r\n").unwrap();
    wait_for("both recorded", PATIENCE, || async {
        let kinds = e.audit_kinds().await;
        (kinds.contains(&"trading.venue_anomaly".to_string())
            && kinds.contains(&"trading.venue_malformed".to_string()))
        .then_some(())
    })
    .await;
    let (_, fills) = e.get("/api/fills?account=live").await;
    assert_eq!(fills["fills"].as_array().unwrap().len(), 1, "{fills}");
}

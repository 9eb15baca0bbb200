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
    let root = unique_dir("sovereign-e2e-nt-engine");
    let nt = root.join("nt");
    let config = format!(
        "[trading]\nsynthetic_feed = false\n[trading.accounts.live]\nstarting_cash = \"100000\"\n\n[trading.gateways.nt]\nkind = \"ninjatrader\"\naccount = \"live\"\nvenue_account = \"Sim101\"\ndir = \"{}\"\ninstruments = {{ ES = \"ES 03-27\" }}\npoll = \"20ms\"\n\n[signals.tv]\nsecret = \"tv-secret-123\"\naccount = \"live\"\nsymbols = {{ \"ES1!\" = \"ES\" }}\n",
        nt.display()
    );
    let e = crate::util::Engine::start_in(root, Some(&config));
    let child = Command::new(BIN)
        .args(["gateway", "simulate", "ninjatrader"])
        .arg(&nt)
        .args(["--price", "5000.25"])
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

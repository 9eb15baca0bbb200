//! The dashboard in a real headless Chromium (`browser.rs`), against the binary: what the page
//! shows, not that it loaded — live prices moving, an order from the ticket in orders and
//! positions, a risk denial's code, a service restarted from its button with a new pid, the kill
//! switch from the page, a viewer without buttons (and its forged POST refused), the page
//! resuming after the engine restarts; no console errors. Screenshots go to
//! `target/dashboard-screenshots/`. Also the streams' resumption (`Last-Event-ID`) over HTTP.

mod browser;

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{self, wait_for, Engine, PATIENCE};
use browser::Browser;

const CONFIG: &str = r#"
[trading]
feed_interval = "100ms"

[services.idle]
command = ["sleep", "3600"]
"#;

async fn api_pid(e: &Engine) -> Option<u64> {
    let (_, list) = e.get("/api/services").await;
    list["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "idle")?["pid"]
        .as_u64()
}

#[tokio::test]
async fn the_dashboard_shows_the_operation_live_and_acts_through_the_api() {
    let e = Engine::start(Some(CONFIG));
    let b = Browser::start(1280, 800).await;
    b.goto(e.url()).await;
    b.find("#conn[data-conn=\"live\"]").await;
    b.find("[data-account-state=\"paper\"]").await;
    b.screenshot("overview").await;

    // Prices move on their own (the synthetic feed), live.
    b.click("[data-tab=\"trading\"]").await;
    let first = b
        .text_until("a price for ES", "[data-symbol=\"ES\"] .last", |t| {
            !t.is_empty()
        })
        .await;
    b.text_until("the ES price to move", "[data-symbol=\"ES\"] .last", |t| {
        t != first
    })
    .await;

    // An order from the ticket: in orders and positions with its quantity.
    b.fill("#ticket-symbol", "ES").await;
    b.fill("#ticket-qty", "2").await;
    b.click("[data-action=\"submit-order\"]").await;
    let result = b
        .text_until("the ticket's answer", "#ticket-result", |t| !t.is_empty())
        .await;
    let (_, orders) = e.get("/api/orders?limit=1").await;
    let order = &orders["orders"][0];
    assert_eq!(order["qty"], "2", "{orders} / page said {result:?}");
    let id = order["id"].as_str().unwrap().to_string();
    b.text_until(
        "the order in the orders table",
        &format!("[data-order-id=\"{id}\"] .status"),
        |t| t == "filled",
    )
    .await;
    b.text_until("the position", "[data-position=\"paper:ES\"] .qty", |t| {
        t == "2"
    })
    .await;

    // A risk denial shows its code.
    b.fill("#ticket-qty", "5000").await;
    b.click("[data-action=\"submit-order\"]").await;
    b.text_until("the denial's code", "#ticket-result", |t| {
        t.contains("max_order_qty")
    })
    .await;
    b.screenshot("trading").await;

    // A service restarted from its button: a new pid, through the API and on the page.
    b.click("[data-tab=\"services\"]").await;
    let before = wait_for("the service's pid", PATIENCE, || api_pid(&e)).await;
    b.text_until("the pid shown", "[data-service=\"idle\"] .pid", |t| {
        t == before.to_string()
    })
    .await;
    b.click("[data-service=\"idle\"] [data-action=\"restart-service\"]")
        .await;
    let after = wait_for("a new pid", PATIENCE, || async {
        api_pid(&e).await.filter(|p| *p != before)
    })
    .await;
    b.text_until("the new pid shown", "[data-service=\"idle\"] .pid", |t| {
        t == after.to_string()
    })
    .await;
    b.screenshot("services").await;

    // HARDSTOP from the page, behind a confirmation with a reason.
    b.click("[data-tab=\"trading\"]").await;
    b.click("[data-action=\"hardstop\"]").await;
    b.fill("#confirm-reason", "stopped from the dashboard")
        .await;
    b.click("#confirm-ok").await;
    wait_for("the account halted", PATIENCE, || async {
        let (_, a) = e.get("/api/accounts").await;
        (a["accounts"][0]["trading_state"] == "halted").then_some(())
    })
    .await;
    b.click("[data-tab=\"overview\"]").await;
    b.text_until(
        "the page to say halted",
        "[data-account-state=\"paper\"]",
        |t| t == "halted",
    )
    .await;

    let problems = b.console_problems().await;
    assert!(problems.is_empty(), "console: {problems:?}");
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_and_cannot_act() {
    let root = util::unique_dir("sovereign-e2e-dash-viewer");
    let data = root.join("data");
    let out = util::cli(&[
        "keys",
        "create",
        "wall",
        "--role",
        "viewer",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.ok(), "{out:?}");
    let viewer = out.stdout.trim().to_string();
    let e = Engine::start_in(
        root,
        Some("[access]\nmode = \"keys\"\n[services.idle]\ncommand = [\"sleep\", \"3600\"]\n"),
    );
    let b = Browser::start(375, 800).await;
    b.goto(e.url()).await;
    b.fill("#login-key", &viewer).await;
    b.click("#login-submit").await;
    b.find("#conn[data-conn=\"live\"]").await;
    for tab in ["overview", "trading", "services", "tasks", "alerts"] {
        b.click(&format!("[data-tab=\"{tab}\"]")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(b.count("[data-action]").await, 0, "buttons on {tab}");
    }
    b.click("[data-tab=\"trading\"]").await;
    b.screenshot("viewer-phone").await;
    // The same credential, forged into a POST from the page: the server refuses it.
    let answer = b
        .eval(
            "return fetch('/api/risk/hardstop', {method: 'POST', headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + arguments[0]}, body: JSON.stringify({reason: 'forged'})}).then(r => r.status);",
            json!([viewer]),
        )
        .await;
    assert_eq!(answer, 403, "{answer}");
    let (_, a) = e
        .call(
            reqwest::Method::GET,
            "/api/accounts",
            None,
            &[("authorization", &format!("Bearer {viewer}"))],
        )
        .await;
    assert_eq!(a["accounts"][0]["trading_state"], "active", "{a}");
    let problems = b.console_problems().await;
    assert!(problems.is_empty(), "console: {problems:?}");
    // The check sees what the page's script reports.
    b.eval("console.error('probe'); return null;", json!([]))
        .await;
    let problems = b.console_problems().await;
    assert!(problems.iter().any(|p| p.contains("probe")), "{problems:?}");
}

#[tokio::test]
async fn the_page_resumes_after_the_engine_restarts() {
    let e = Engine::start(Some(CONFIG));
    let b = Browser::start(1280, 800).await;
    b.goto(e.url()).await;
    b.click("[data-tab=\"trading\"]").await;
    b.find("#conn[data-conn=\"live\"]").await;
    let e = e.restart_on_same_port();
    b.find("#conn[data-conn=\"live\"]").await;
    let (status, placed) = e
        .post(
            "/api/orders",
            json!({"symbol": "ES", "side": "buy", "qty": "3", "type": "market"}),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().unwrap().to_string();
    b.text_until(
        "the new order on the page",
        &format!("[data-order-id=\"{id}\"] .status"),
        |t| t == "filled",
    )
    .await;
}

/// Read one SSE stream until `want` events have come, with `last` as `Last-Event-ID`:
/// (event, id, data) each.
async fn read_events(
    e: &Engine,
    path: &str,
    last: Option<&str>,
    want: usize,
) -> Vec<(String, String, Value)> {
    let mut req = e.http().get(format!("{}{path}", e.url()));
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    let mut resp = req.send().await.unwrap();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while out.len() < want {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                }
            }
            if !event.is_empty() {
                out.push((event, id, data));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_stream_resumes_from_last_event_id_and_says_reset_when_it_cannot() {
    let e = Engine::start(Some("[trading]\nsynthetic_feed = false\n"));
    let (status, _) = e
        .post(
            "/api/market/ticks",
            json!([{"symbol": "ES", "price": "5000"}]),
        )
        .await;
    assert_eq!(status, 200);
    let order = json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4900", "tif": "gtc"});
    let reader = read_events(&e, "/sse/orders", None, 1);
    let (seen, _) = tokio::join!(reader, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        e.post("/api/orders", order.clone()).await
    });
    let last = seen[0].1.clone();
    assert!(last.contains('-'), "an id: {seen:?}");
    // Two more orders while nobody listens; the reconnect gets both, in order.
    let (_, a) = e.post("/api/orders", order.clone()).await;
    let (_, b) = e.post("/api/orders", order.clone()).await;
    let again = read_events(&e, "/sse/orders", Some(&last), 2).await;
    let ids: Vec<&str> = again
        .iter()
        .map(|(_, _, d)| d["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        ids,
        [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()],
        "{again:?}"
    );
    // An id of another run (or garbage): reset, so the client fetches afresh.
    let reset = read_events(&e, "/sse/orders", Some("1-1"), 1).await;
    assert_eq!(reset[0].0, "reset", "{reset:?}");

    // Conflated, as the page reads it: three changes of one window come as one message each
    // of the orders' latest states, resumable like the rest.
    let reader = read_events(&e, "/sse/orders?every=500ms", None, 3);
    let (seen, _) = tokio::join!(reader, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..3 {
            e.post("/api/orders", order.clone()).await;
        }
    });
    let ids: Vec<&str> = seen.iter().map(|(_, id, _)| id.as_str()).collect();
    assert!(
        ids[..2].iter().all(|i| i.is_empty()) && !ids[2].is_empty(),
        "one id, on the last: {seen:?}"
    );
    for bad in ["every=1h", "every=0ms", "every=soon", "nope=1"] {
        let (status, body) = e.get(&format!("/sse/orders?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

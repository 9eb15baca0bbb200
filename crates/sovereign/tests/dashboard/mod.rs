//! The dashboard in a real headless Chromium (`browser.rs`), against the binary: what the page
//! shows, not that it loaded — live prices moving, an order from the ticket in orders and
//! positions, a risk denial's code, a service restarted from its button with a new pid, flatten
//! and the kill switch from the page (with the reason on the audit trail), an alert arriving
//! live, a viewer without buttons (and its forged POST refused), the page worked from the
//! keyboard alone, dark and light schemes, the page resuming after the engine restarts; no
//! console errors. Screenshots go to `target/dashboard-screenshots/`. Also the streams over
//! HTTP: resumption (`Last-Event-ID`), conflation, alerts and task results.

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
    b.prefer_dark(true).await; // as most trading desks run it (headless Chromium says light)
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

    // Flatten from the page: the position closes, and the reason asked for is on the trail.
    b.click("[data-tab=\"trading\"]").await;
    b.click("[data-action=\"flatten\"]").await;
    b.fill("#confirm-reason", "flat before the close").await;
    b.click("#confirm-ok").await;
    b.text_until(
        "the position flat",
        "[data-position=\"paper:ES\"] .qty",
        |t| t == "0",
    )
    .await;
    let flattened = wait_for("trading.flatten on the audit trail", PATIENCE, || async {
        let (_, list) = e.get("/api/audit").await;
        list["records"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == "trading.flatten")
            .cloned()
    })
    .await;
    assert_eq!(
        flattened["payload"]["reason"], "flat before the close",
        "{flattened}"
    );
    // The kill box acts on every account unless one is chosen.
    assert_eq!(flattened["payload"]["account"], "all", "{flattened}");
    assert_eq!(flattened["actor"], "local", "{flattened}");
    assert_eq!(
        flattened["payload"]["orders"].as_array().map(Vec::len),
        Some(1),
        "{flattened}"
    );

    // HARDSTOP from the page, behind a confirmation with a reason.
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
    // A new alert reaches the overview live, as the outbox takes it.
    let (status, raised) = e
        .post(
            "/api/alerts",
            json!({"priority": "P1", "source": "test", "title": "feed stalled"}),
        )
        .await;
    assert_eq!(status, 202, "{raised}");
    b.text_until("the alert on the overview", "#last-alert", |t| {
        t.contains("feed stalled")
    })
    .await;
    let shown = b.text("#last-alert").await;
    assert!(
        !shown.contains("null"),
        "nothing absent is shown as text: {shown:?}"
    );
    b.screenshot("overview-after").await;

    let problems = b.console_problems().await;
    assert!(problems.is_empty(), "console: {problems:?}");
}

/// A CSS `rgb(r, g, b)` colour's mean channel, 0 (black) to 1 (white).
fn brightness(css: &Value) -> f64 {
    let text = css.as_str().unwrap_or_default();
    let inner = text
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')');
    let channels: Vec<f64> = inner
        .split(',')
        .take(3)
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    assert_eq!(channels.len(), 3, "a colour: {text}");
    channels.iter().sum::<f64>() / 765.0
}

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// Press Tab until the focus is on `css` (at most 60 presses); whether it got there.
async fn tab_to(b: &Browser, css: &str) -> bool {
    for _ in 0..60 {
        if b.focused(css).await {
            return true;
        }
        b.keys(&[TAB]).await;
    }
    false
}

#[tokio::test]
async fn the_page_works_from_the_keyboard_alone() {
    let e = Engine::start(Some(CONFIG));
    let b = Browser::start(1280, 800).await;
    b.prefer_dark(true).await;
    b.goto(e.url()).await;
    b.find("#conn[data-conn=\"live\"]").await;
    // Dark by default, and the emulated preference is what the page shows.
    let background = b
        .eval(
            "return getComputedStyle(document.body).backgroundColor;",
            json!([]),
        )
        .await;
    assert!(brightness(&background) < 0.25, "dark: {background}");
    b.screenshot("overview-dark").await;

    // To the trading tab and into it, by Tab and Enter only.
    assert!(
        tab_to(&b, "[data-tab=\"trading\"]").await,
        "the trading tab is not reachable"
    );
    let ring = b
        .eval(
            "return getComputedStyle(document.activeElement).outlineStyle;",
            json!([]),
        )
        .await;
    assert_ne!(ring, "none", "a focused tab shows where the focus is");
    b.keys(&[ENTER]).await;
    b.find("[data-symbol=\"ES\"]").await;

    // The order ticket, typed and sent from the keyboard.
    assert!(
        tab_to(&b, "#ticket-symbol").await,
        "the ticket is not reachable"
    );
    b.keys(&["E", "S"]).await;
    assert!(
        tab_to(&b, "#ticket-qty").await,
        "the quantity is not reachable"
    );
    b.keys(&["3"]).await;
    assert!(
        tab_to(&b, "[data-action=\"submit-order\"]").await,
        "the submit button is not reachable"
    );
    b.keys(&[ENTER]).await;
    let order = wait_for("the keyed order", PATIENCE, || async {
        let (_, orders) = e.get("/api/orders?limit=1").await;
        orders["orders"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(order["qty"], "3", "{order}");
    assert_eq!(order["symbol"], "ES", "{order}");

    // Light when the browser prefers light: the theme follows the preference.
    b.prefer_dark(false).await;
    let light = b
        .eval(
            "return getComputedStyle(document.body).backgroundColor;",
            json!([]),
        )
        .await;
    assert!(brightness(&light) > 0.75, "light: {light}");
    let problems = b.console_problems().await;
    assert!(problems.is_empty(), "console: {problems:?}");
}

#[tokio::test]
async fn the_deploys_panel_shows_plans_runs_and_steers_them() {
    // A stage whose gate needs many successes of a check that passes: it holds in verifying.
    let e = Engine::start(Some(
        r#"
[deploy.plans.web]
[[deploy.plans.web.stages]]
name = "canary"
health_timeout = "60s"
[[deploy.plans.web.stages.targets]]
name = "edge"
deploy = ["true"]
rollback = ["true"]
[[deploy.plans.web.stages.targets.checks]]
kind = "command"
command = ["true"]
interval = "100ms"
count = 500
"#,
    ));
    let (status, run) = e
        .post(
            "/api/v1/deploy/run",
            json!({"plan": "web", "version": "v1"}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let b = Browser::start(1280, 800).await;
    b.goto(e.url()).await;
    b.click("[data-tab=\"deploys\"]").await;
    b.text_until("the run verifying", "[data-deploy-state=\"web\"]", |t| {
        t == "verifying"
    })
    .await;
    let card = b.text("[data-plan=\"web\"]").await;
    assert!(card.contains("run 1: deploy v1"), "{card}");
    assert!(
        !card.contains("null"),
        "nothing absent is shown as text: {card}"
    );
    b.screenshot("deploys").await;
    // Promote from the page: the stage passes, the run succeeds, the history says so.
    b.click("[data-plan=\"web\"] [data-action=\"deploy-promote\"]")
        .await;
    b.text_until("the run in the history", "#deploys-body tr .tone-ok", |t| {
        t == "succeeded"
    })
    .await;
    let (_, h) = e.get("/api/v1/deploy/history?limit=1").await;
    assert_eq!(h["runs"][0]["outcome"], "succeeded", "{h}");
    b.text_until("the plan idle again", "[data-deploy-state=\"web\"]", |t| {
        t == "idle"
    })
    .await;
    assert_eq!(b.text("[data-target=\"edge\"]").await, "edge: v1");
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
async fn task_results_and_alerts_stream_as_they_are_stored() {
    let e = Engine::start(Some(
        r#"
[notify.channels.journal]
kind = "file"
path = "alerts.jsonl"

[tasks.note]
name = "A note"
handler = "log_signal"
payload = { note = "from the stream test" }
"#,
    ));
    // A run's result, once stored, as the results API shows it.
    let (seen, (status, ran)) = tokio::join!(read_events(&e, "/sse/results", None, 1), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        e.post("/api/tasks/note/execute", json!({})).await
    });
    assert_eq!(status, 200, "{ran}");
    assert_eq!(seen[0].0, "result", "{seen:?}");
    assert_eq!(seen[0].2["result_id"], ran["result_id"], "{seen:?}");
    assert_eq!(seen[0].2["status"], "success", "{seen:?}");

    // An alert once durable, then its delivery's new state on the file channel.
    let alert = json!({"priority": "P2", "source": "test", "title": "streamed"});
    let (seen, (status, raised)) = tokio::join!(read_events(&e, "/sse/alerts", None, 2), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        e.post("/api/alerts", alert).await
    });
    assert_eq!(status, 202, "{raised}");
    assert_eq!(seen[0].0, "alert", "{seen:?}");
    assert_eq!(seen[0].2["id"], raised["id"], "{seen:?}");
    assert_eq!(seen[0].2["title"], "streamed", "{seen:?}");
    assert_eq!(seen[0].2["deliveries"][0]["status"], "pending", "{seen:?}");
    assert_eq!(seen[1].0, "delivery", "{seen:?}");
    assert_eq!(seen[1].2["alert_id"], raised["id"], "{seen:?}");
    assert_eq!(seen[1].2["channel"], "journal", "{seen:?}");
    assert_eq!(seen[1].2["status"], "delivered", "{seen:?}");
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

    // All three on one stream, as the page reads it: a market order's order, fill and
    // position, and two readers of one window length get the same window.
    let market = json!({"symbol": "ES", "side": "buy", "qty": "2", "type": "market"});
    let (seen, other, _) = tokio::join!(
        read_events(&e, "/sse/trading?every=200ms", None, 3),
        read_events(&e, "/sse/trading?every=200ms", None, 3),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            e.post("/api/orders", market.clone()).await
        }
    );
    let kinds: Vec<&str> = seen.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds, ["order", "fill", "position"], "{seen:?}");
    assert_eq!(seen[0].2["status"], "filled", "{seen:?}");
    assert_eq!(seen[2].2["qty"], "2", "{seen:?}");
    assert_eq!(seen, other, "one window for both readers");
    // It resumes like the rest: what happened while away comes first on reconnect.
    let last = seen[2].1.clone();
    let (_, away) = e.post("/api/orders", market.clone()).await;
    let again = read_events(&e, "/sse/trading?every=200ms", Some(&last), 3).await;
    assert_eq!(again[0].2["id"], away["id"], "{again:?}");
    assert_eq!(again[2].0, "position", "{again:?}");
    assert_eq!(again[2].2["qty"], "4", "{again:?}");

    // Prices come on /sse/trading too: each tick as it comes, or conflated into each symbol's
    // latest price of the window (a tick without a bid keeps the one before), ahead of the
    // window's journal events and without an id (prices are fetched afresh, not replayed).
    let tick = |symbol: &str, price: &str, bid: Option<&str>| json!([{"symbol": symbol, "price": price, "bid": bid}]);
    let (each, _) = tokio::join!(read_events(&e, "/sse/trading", None, 2), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for price in ["5001", "5002"] {
            e.post("/api/market/ticks", tick("ES", price, None)).await;
        }
    });
    let prices: Vec<(&str, &str, &str)> = each
        .iter()
        .map(|(k, id, d)| (k.as_str(), id.as_str(), d["price"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        prices,
        [("tick", "", "5001"), ("tick", "", "5002")],
        "{each:?}"
    );
    let (window, _) = tokio::join!(
        read_events(&e, "/sse/trading?every=600ms", None, 3),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            e.post("/api/market/ticks", tick("ES", "5003", Some("5002.75")))
                .await;
            e.post("/api/market/ticks", tick("NQ", "18000", None)).await;
            e.post("/api/market/ticks", tick("ES", "5004", None)).await;
            e.post("/api/orders", order.clone()).await
        }
    );
    let kinds: Vec<(&str, bool)> = window
        .iter()
        .map(|(k, id, _)| (k.as_str(), id.is_empty()))
        .collect();
    assert_eq!(
        kinds,
        [("tick", true), ("tick", true), ("order", false)],
        "{window:?}"
    );
    assert_eq!(window[0].2["symbol"], "ES", "{window:?}");
    assert_eq!(window[0].2["price"], "5004", "{window:?}");
    assert_eq!(window[0].2["bid"], "5002.75", "{window:?}");
    assert_eq!(window[1].2["symbol"], "NQ", "{window:?}");
    assert_eq!(window[1].2["price"], "18000", "{window:?}");

    for bad in ["every=1h", "every=0ms", "every=soon", "nope=1"] {
        let (status, body) = e.get(&format!("/sse/orders?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

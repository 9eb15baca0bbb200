//! The notifier end to end: real HTTP receivers standing in for Slack, Discord and a webhook
//! (answering 429 with Retry-After, failing for a while, or gone), a real SMTP server
//! (Python's aiosmtpd) and the file channel; the outbox across a restart; the `notify` handler,
//! the task-failure rule and `sovereign notify`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::assert_error_shape;
use crate::util::{cli, unique_dir, wait_for, Engine, Receiver, Reply, PATIENCE};

fn channels_config(slack: &str, discord: &str, hook: &str, extra: &str) -> String {
    format!(
        r#"
[notify]
dedup_window = "1m"
[notify.channels.slack]
kind = "slack"
url = "{slack}/services/T000/B000/SECRETTOKEN"
[notify.channels.discord]
kind = "discord"
url = "{discord}/api/webhooks/1/SECRET"
[notify.channels.hook]
kind = "webhook"
url = "{hook}/alerts"
headers = {{ "X-Team" = "ops" }}
rate_per = "1ms"
[notify.channels.journal]
kind = "file"
path = "alerts.jsonl"
{extra}
"#
    )
}

async fn raise(e: &Engine, alert: Value) -> Value {
    let (status, body) = e.post("/api/alerts", alert).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted", "{body}");
    body
}

/// The alert's delivery states by channel, once none is pending.
async fn settled(e: &Engine, id: u64) -> BTreeMap<String, Value> {
    wait_for(&format!("alert {id} to settle"), PATIENCE, || async move {
        let (_, body) = e
            .get(&format!("/api/alerts?since={}&limit=1", id - 1))
            .await;
        let alert = body["alerts"][0].clone();
        assert_eq!(alert["id"], id, "{body}");
        let deliveries = alert["deliveries"].as_array().cloned().unwrap_or_default();
        if deliveries.iter().any(|d| d["status"] == "pending") {
            return None;
        }
        Some(
            deliveries
                .into_iter()
                .map(|d| (d["channel"].as_str().unwrap().to_string(), d))
                .collect(),
        )
    })
    .await
}

fn file_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn alerts_reach_every_channel_kind_by_priority() {
    let slack = Receiver::start(200, Duration::ZERO);
    let discord = Receiver::start(204, Duration::ZERO);
    let hook = Receiver::start(200, Duration::ZERO);
    // Discord answers the first post with its 429 JSON; the webhook fails twice first.
    discord.script(vec![Reply {
        status: 429,
        headers: vec![("retry-after", "5".into())],
        body: json!({"message": "You are being rate limited.", "retry_after": 0.4, "global": false}),
    }]);
    hook.script(vec![Reply::status(503), Reply::status(500)]);
    let e = Engine::start(Some(&channels_config(
        &slack.url(),
        &discord.url(),
        &hook.url(),
        "",
    )));

    // P0: every channel at once.
    let p0 = raise(
        &e,
        json!({"priority": "P0", "source": "risk", "title": "Daily loss limit hit",
               "message": "ES down 2,000 USD\nflattening", "context": {"account": "paper"}}),
    )
    .await;
    assert_eq!(
        p0["channels"],
        json!(["discord", "hook", "journal", "slack"])
    );
    assert_eq!(p0["digest"], false);
    let id = p0["id"].as_u64().unwrap();
    let states = settled(&e, id).await;
    for (name, d) in &states {
        assert_eq!(d["status"], "delivered", "{name}: {d}");
    }
    assert_eq!(states["discord"]["attempts"], 2);
    assert_eq!(states["hook"]["attempts"], 3);
    assert_eq!(states["slack"]["attempts"], 1);

    // Slack: text + blocks, to the configured path.
    let s = slack.requests();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].path, "/services/T000/B000/SECRETTOKEN");
    let body = s[0].json();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("Daily loss limit hit"),
        "{body}"
    );
    assert!(
        body["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{body}"
    );

    // Discord: retried after its JSON retry_after (0.4 s), not the header's 5 s.
    let d = discord.requests();
    assert_eq!(d.len(), 2, "{d:?}");
    let gap = d[1].at - d[0].at;
    assert!(
        gap >= Duration::from_millis(400) && gap < Duration::from_secs(4),
        "{gap:?}"
    );
    assert_eq!(
        d[1].json()["embeds"][0]["title"],
        d[0].json()["embeds"][0]["title"]
    );

    // Webhook: the alert as data; the same Idempotency-Key on every attempt; our header.
    let h = hook.requests();
    assert_eq!(
        h.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![503, 500, 200]
    );
    let keys: Vec<_> = h
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert!(
        keys.iter().all(|k| *k == format!("sovereign-alert-{id}")),
        "{keys:?}"
    );
    assert_eq!(h[0].header("x-team"), Some("ops"));
    let w = h[2].json();
    assert_eq!(
        (
            w["id"].as_u64(),
            w["priority"].as_str(),
            w["source"].as_str(),
            w["context"]["account"].as_str()
        ),
        (Some(id), Some("P0"), Some("risk"), Some("paper"))
    );

    // File: one JSON line with the id.
    let journal = e.root().join("data/alerts.jsonl");
    let lines = file_lines(&journal);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], id);
    assert_eq!(lines[0]["message"], "ES down 2,000 USD\nflattening");

    // P2: chat and the webhook. P3: the webhook, the file and the digest.
    let p2 = raise(
        &e,
        json!({"priority": 2, "source": "feed", "title": "Feed lagging"}),
    )
    .await;
    assert_eq!(p2["channels"], json!(["discord", "hook", "slack"]));
    let p3 = raise(
        &e,
        json!({"priority": "p3", "source": "feed", "title": "Reconnected"}),
    )
    .await;
    assert_eq!(p3["channels"], json!(["hook", "journal"]));
    assert_eq!(p3["digest"], true);
    settled(&e, p2["id"].as_u64().unwrap()).await;
    settled(&e, p3["id"].as_u64().unwrap()).await;
    assert_eq!(
        hook.requests().len(),
        5,
        "a generic webhook gets every priority"
    );
    assert_eq!(file_lines(&journal).len(), 2);

    // Dedup: the same alert again within the window is not sent again.
    let (status, dup) = e
        .post(
            "/api/alerts",
            json!({"priority": "P2", "source": "feed", "title": "Feed lagging"}),
        )
        .await;
    assert_eq!(
        (status, dup["status"].as_str()),
        (200, Some("duplicate")),
        "{dup}"
    );

    // Slack is held to about one message a second: three quick alerts arrive spaced.
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = raise(
            &e,
            json!({"priority": "P2", "source": "burst", "title": format!("burst {n}")}),
        )
        .await;
        ids.push(r["id"].as_u64().unwrap());
    }
    for id in &ids {
        settled(&e, *id).await;
    }
    let s = slack.requests();
    let burst: Vec<_> = s
        .iter()
        .filter(|r| r.json()["text"].as_str().unwrap().contains("burst"))
        .collect();
    assert_eq!(burst.len(), 3);
    for pair in burst.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(900),
            "slack messages {gap:?} apart"
        );
    }

    // Nothing secret in what the API shows.
    let (_, channels) = e.get("/api/alerts/channels").await;
    let text = channels.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    let slack_row = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "slack")
        .unwrap()
        .clone();
    assert_eq!(
        (
            slack_row["delivered"].as_u64(),
            slack_row["disabled"].is_null()
        ),
        (Some(5), true),
        "{slack_row}"
    );
    assert!(!e.stderr().contains("SECRET"), "a secret reached the log");

    // Every accepted alert is on the audit trail.
    let raised = e.audit_kinds().await;
    assert_eq!(raised.iter().filter(|k| *k == "alert.raised").count(), 6);
}

#[tokio::test]
async fn bad_alerts_are_refused_with_the_field_named() {
    let e = Engine::start(None);
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"priority": "P7", "source": "x", "title": "t"}),
            400,
            "invalid_priority",
            Some("priority"),
        ),
        (
            json!({"priority": true, "source": "x", "title": "t"}),
            400,
            "invalid_priority",
            Some("priority"),
        ),
        (
            json!({"source": "x", "title": ""}),
            400,
            "invalid_title",
            Some("title"),
        ),
        (
            json!({"source": "x", "title": "a\nb"}),
            400,
            "invalid_title",
            Some("title"),
        ),
        (
            json!({"source": "", "title": "t"}),
            400,
            "invalid_source",
            Some("source"),
        ),
        (
            json!({"source": "x", "title": "t", "context": [1]}),
            400,
            "invalid_context",
            Some("context"),
        ),
        (
            json!({"source": "x", "title": "t", "dedup_key": ""}),
            400,
            "invalid_dedup_key",
            Some("dedup_key"),
        ),
        (
            json!({"source": "x", "title": "t", "message": "m".repeat(4001)}),
            400,
            "invalid_message",
            Some("message"),
        ),
        (json!({"source": "x"}), 400, "missing_field", Some("title")),
        (
            json!({"source": "x", "title": "t", "severity": 1}),
            400,
            "unknown_field",
            Some("severity"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = e.post("/api/alerts", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_error_shape(&answer);
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
        assert_eq!(
            answer["error"]["field"].as_str(),
            field,
            "{body} → {answer}"
        );
    }
    let (_, list) = e.get("/api/alerts").await;
    assert_eq!(
        list["count"], 0,
        "a refused alert must leave nothing behind: {list}"
    );
    let (status, answer) = e.get("/api/alerts?since=x").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_since"))
    );
    let (status, answer) = e.post("/api/alerts/channels/nope/enable", json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_channel"))
    );
    let (status, answer) = e.post("/api/alerts/test", json!({"channel": "nope"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_channel"))
    );
    // No channels at all: accepted, delivered nowhere (P2 has no chat to go to).
    let r = raise(&e, json!({"source": "x", "title": "t"})).await;
    assert_eq!(r["channels"], json!([]));
}

#[tokio::test]
async fn the_outbox_survives_an_outage_and_a_restart_in_order_once() {
    let hook = Receiver::start(503, Duration::ZERO);
    let config = format!(
        r#"
[notify]
max_attempts = 50
[notify.channels.hook]
kind = "webhook"
url = "{}/alerts"
rate_per = "1ms"
"#,
        hook.url()
    );
    let e = Engine::start(Some(&config));
    let mut ids = Vec::new();
    for n in 0..5 {
        let r = raise(
            &e,
            json!({"priority": "P0", "source": "t", "title": format!("alert {n}")}),
        )
        .await;
        ids.push(r["id"].as_u64().unwrap());
    }
    // The channel is down: the first alert is retried, the others wait behind it.
    wait_for("two failed attempts", PATIENCE, || async {
        (hook.requests().len() >= 2).then_some(())
    })
    .await;
    let during: Vec<u64> = hook
        .requests()
        .iter()
        .map(|r| r.json()["id"].as_u64().unwrap())
        .collect();
    assert!(
        during.iter().all(|id| *id == ids[0]),
        "order broken during the outage: {during:?}"
    );
    let (_, pending) = e.get("/api/alerts/channels").await;
    assert_eq!(pending["channels"][0]["pending"], 5, "{pending}");

    // Back while the engine is down, so nothing is delivered before the restart.
    let mut e = e;
    assert!(e.stop().status.success());
    hook.set_status(200);
    let e = e.resume();
    for id in &ids {
        assert_eq!(settled(&e, *id).await["hook"]["status"], "delivered");
    }
    let delivered: Vec<u64> = hook
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["id"].as_u64().unwrap())
        .collect();
    assert_eq!(delivered, ids, "each alert delivered once, in order");
    // The attempts made before the restart were kept.
    let (_, list) = e
        .get(&format!("/api/alerts?since={}&limit=1", ids[0] - 1))
        .await;
    let attempts = list["alerts"][0]["deliveries"][0]["attempts"]
        .as_u64()
        .unwrap();
    let sent = hook
        .requests()
        .iter()
        .filter(|r| r.json()["id"] == ids[0])
        .count() as u64;
    assert_eq!(attempts, sent, "{list}");
}

#[tokio::test]
async fn a_gone_webhook_is_disabled_reported_and_can_be_enabled() {
    let gone = Receiver::start(404, Duration::ZERO);
    let ok = Receiver::start(200, Duration::ZERO);
    let config = format!(
        r#"
[notify.channels.gone]
kind = "webhook"
url = "{}/hook"
[notify.channels.ops]
kind = "webhook"
url = "{}/hook"
[[notify.routes]]
priorities = ["P1"]
channels = ["ops"]
"#,
        gone.url(),
        ok.url()
    );
    let e = Engine::start(Some(&config));
    let first = raise(&e, json!({"priority": "P0", "source": "t", "title": "one"})).await;
    let states = settled(&e, first["id"].as_u64().unwrap()).await;
    assert_eq!(states["gone"]["status"], "skipped", "{states:?}");
    assert!(
        states["gone"]["last_error"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{states:?}"
    );
    // The other channel hears about it (P1 from the notifier).
    let report = wait_for("the channel-disabled alert", PATIENCE, || async {
        ok.requests()
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["source"] == "notifier")
    })
    .await;
    assert_eq!(report["priority"], "P1");
    assert!(
        report["title"].as_str().unwrap().contains("gone"),
        "{report}"
    );
    let (_, channels) = e.get("/api/alerts/channels").await;
    assert!(
        channels["channels"][0]["disabled"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{channels}"
    );

    // Disabled survives a restart: the next alert is skipped without a request.
    let e = e.restart();
    let second = raise(&e, json!({"priority": "P0", "source": "t", "title": "two"})).await;
    let states = settled(&e, second["id"].as_u64().unwrap()).await;
    assert_eq!(states["gone"]["status"], "skipped");
    assert_eq!(states["ops"]["status"], "delivered");
    assert_eq!(gone.requests().len(), 1);

    // Enabled again by an operator: delivered once the endpoint is back.
    gone.set_status(200);
    let out = cli(&["notify", "enable", "gone", "--url", e.url()]);
    assert!(out.ok(), "{out:?}");
    let third = raise(
        &e,
        json!({"priority": "P0", "source": "t", "title": "three"}),
    )
    .await;
    assert_eq!(
        settled(&e, third["id"].as_u64().unwrap()).await["gone"]["status"],
        "delivered"
    );
    let kinds = e.audit_kinds().await;
    assert!(
        kinds.iter().any(|k| k == "notify.channel_disabled")
            && kinds.iter().any(|k| k == "notify.channel_enabled"),
        "{kinds:?}"
    );
}

/// A Python interpreter that has aiosmtpd (`scripts/test-deps.sh` installs it).
fn python_with_aiosmtpd() -> String {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python.to_string();
        }
    }
    panic!("no python3 with aiosmtpd: run scripts/test-deps.sh");
}

/// A real SMTP server on loopback writing what it receives into a Maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = unique_dir("sovereign-smtp").join("mail");
        let child = Command::new(python_with_aiosmtpd())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        wait_for("aiosmtpd to listen", PATIENCE, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server() {
    let smtp = SmtpServer::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        r#"
[notify.channels.mail]
kind = "email"
host = "127.0.0.1"
port = {}
tls = "none"
from = "Sovereign <sovereign@example.com>"
to = ["ops@example.com", "desk@example.com"]
[notify.channels.dead]
kind = "email"
host = "127.0.0.1"
port = {closed}
tls = "none"
from = "sovereign@example.com"
to = ["ops@example.com"]
timeout = "2s"
[[notify.routes]]
priorities = ["P0"]
channels = ["mail"]
"#,
        smtp.port
    );
    let e = Engine::start(Some(&config));
    let r = raise(
        &e,
        json!({"priority": "P0", "source": "ib-gateway", "title": "Gateway down",
               "message": "no heartbeat for 90 s", "context": {"host": "box-1"}}),
    )
    .await;
    let states = settled(&e, r["id"].as_u64().unwrap()).await;
    assert_eq!(states["mail"]["status"], "delivered", "{states:?}");
    let mail = wait_for("the e-mail in the maildir", PATIENCE, || {
        let m = smtp.messages();
        async move { m.into_iter().next() }
    })
    .await;
    assert!(
        mail.contains("Subject: [Sovereign P0] ib-gateway: Gateway down"),
        "{mail}"
    );
    assert!(
        mail.contains("To: ops@example.com, desk@example.com"),
        "{mail}"
    );
    assert!(mail.contains("no heartbeat for 90 s"), "{mail}");
    assert!(mail.contains("host: box-1"), "{mail}");

    // `notify test`: the working channel says so; the refusing one fails with its cause, exit 1.
    let out = cli(&["notify", "test", "--channel", "mail", "--url", e.url()]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("mail") && out.stdout.contains("ok"),
        "{out:?}"
    );
    let out = cli(&["notify", "test", "--url", e.url()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].starts_with("notify test failed: dead: SMTP 127.0.0.1:"),
        "{out:?}"
    );
    assert!(!lines[0].contains("mail:"), "{out:?}");
    wait_for("the test e-mail", PATIENCE, || {
        let n = smtp.messages().len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn tasks_raise_alerts_by_handler_and_by_rule() {
    let hook = Receiver::start(200, Duration::ZERO);
    let failing = Receiver::start(500, Duration::ZERO);
    let config = format!(
        r#"
[notify]
task_failures = 2
[notify.channels.hook]
kind = "webhook"
url = "{}/hook"
[[notify.routes]]
channels = ["hook"]
"#,
        hook.url()
    );
    let e = Engine::start(Some(&config));
    e.register(json!({"task_id": "eod", "name": "EOD", "handler": "notify",
        "payload": {"priority": "P1", "title": "EOD for {{trigger.data.symbol}}", "message": "done"}}))
        .await;
    let result = e.execute("eod", json!({"symbol": "ES"})).await;
    assert_eq!(result["status"], "success", "{result}");
    let id = result["output"]["alert_id"].as_u64().unwrap();
    settled(&e, id).await;
    let body = hook.requests()[0].json();
    assert_eq!(
        (
            body["title"].as_str(),
            body["source"].as_str(),
            body["priority"].as_str()
        ),
        (Some("EOD for ES"), Some("tasks"), Some("P1"))
    );
    assert_eq!(body["context"]["task_id"], "eod");

    // A bad notify payload is refused at registration.
    let (status, answer) = e
        .post("/register", json!({"task_id": "bad", "name": "b", "handler": "notify", "payload": {"priority": "P9", "title": "x"}}))
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("payload.priority")),
        "{answer}"
    );

    // Two failed runs in a row → one P1 alert naming the task.
    e.register(
        json!({"task_id": "pull", "name": "Pull", "handler": "http_request",
        "payload": {"url": format!("{}/x", failing.url())}}),
    )
    .await;
    for _ in 0..2 {
        let r = e.execute("pull", json!({})).await;
        assert_eq!(r["status"], "error", "{r}");
    }
    let rule = wait_for("the task-failure alert", PATIENCE, || async {
        hook.requests()
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["source"] == "tasks" && b["context"]["task_id"] == "pull")
    })
    .await;
    assert_eq!(rule["priority"], "P1");
    assert!(
        rule["title"]
            .as_str()
            .unwrap()
            .contains("pull failed 2 runs in a row"),
        "{rule}"
    );
    // A trading halt is P0 from `risk`.
    let (status, answer) = e
        .post(
            "/api/risk/hardstop",
            json!({"account": "paper", "reason": "desk says stop"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let halt = wait_for("the halt alert", PATIENCE, || async {
        hook.requests()
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["source"] == "risk")
    })
    .await;
    assert_eq!(
        (
            halt["priority"].as_str(),
            halt["title"].as_str(),
            halt["message"].as_str()
        ),
        (
            Some("P0"),
            Some("paper: trading halted"),
            Some("desk says stop")
        )
    );
    // `notify send` and `notify list` from the CLI.
    let out = cli(&[
        "notify",
        "send",
        "--priority",
        "P0",
        "--title",
        "from the cli",
        "--url",
        e.url(),
    ]);
    assert!(out.ok() && out.stdout.contains("accepted"), "{out:?}");
    let out = cli(&["notify", "list", "--url", e.url()]);
    assert!(
        out.ok() && out.stdout.contains("from the cli") && out.stdout.contains("hook="),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_digest_collects_p3_alerts_once_a_day() {
    // Digest due a few seconds from now, in a zone where that is not just before midnight (a
    // digest time already past at start would send today's digest before the alerts exist).
    let now = chrono::Utc::now();
    let tz = if now.format("%H%M").to_string().as_str() >= "2358" {
        "Etc/GMT-2"
    } else {
        "UTC"
    };
    let zone: chrono_tz::Tz = tz.parse().unwrap();
    let at = (now + chrono::Duration::seconds(4))
        .with_timezone(&zone)
        .format("%H:%M:%S")
        .to_string();
    let config = format!(
        r#"
[notify.channels.journal]
kind = "file"
path = "alerts.jsonl"
[notify.channels.digest-file]
kind = "file"
path = "digest.jsonl"
[[notify.routes]]
priorities = ["P3"]
channels = ["journal", "digest"]
[notify.digest]
at = "{at}"
tz = "{tz}"
channels = ["digest-file"]
"#
    );
    let e = Engine::start(Some(&config));
    for n in 0..3 {
        raise(
            &e,
            json!({"priority": "P3", "source": "feed", "title": format!("minor {n}")}),
        )
        .await;
    }
    let digest_path = e.root().join("data/digest.jsonl");
    let digest = wait_for("the digest", Duration::from_secs(75), || {
        let lines = file_lines(&digest_path);
        async move { lines.into_iter().next() }
    })
    .await;
    assert_eq!(digest["source"], "digest");
    assert!(
        digest["title"].as_str().unwrap().contains("3 alert(s)"),
        "{digest}"
    );
    for n in 0..3 {
        assert!(
            digest["message"]
                .as_str()
                .unwrap()
                .contains(&format!("minor {n}")),
            "{digest}"
        );
    }
    // Once a day: a restart does not send it again.
    let e = e.restart();
    let (_, list) = e.get("/api/alerts").await;
    assert_eq!(
        list["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["source"] == "digest")
            .count(),
        1
    );
    assert_eq!(file_lines(&digest_path).len(), 1);
}

#[test]
fn bad_channel_config_is_reported_before_anything_starts() {
    let dir = unique_dir("sovereign-notify-check");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[notify.channels.a]
kind = "slack"
url = "ftp://hooks.example.com/x"
[notify.channels.b]
kind = "email"
host = "127.0.0.1"
from = "x@example.com"
[[notify.routes]]
channels = ["nope"]
"#,
    )
    .unwrap();
    let out = cli(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let text = out.stderr;
    assert!(
        text.contains("notify.channels.a.url: url must be an http:// or https:// URL"),
        "{text}"
    );
    assert!(text.contains("notify.channels.b.to"), "{text}");
    assert!(
        text.contains("routes[0].channels[0]: no channel named \"nope\""),
        "{text}"
    );
    assert!(!text.contains("hooks.example.com"), "{text}");
}

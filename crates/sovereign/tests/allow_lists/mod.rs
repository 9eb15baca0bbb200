//! Allow-lists end to end: where `http_request` tasks may send (a listed URL prefix, or — with
//! no list — anywhere but the engine itself and the metadata service), checked at registration,
//! when a templated URL is rendered, and at every redirect; and which addresses may post to a
//! webhook source or a signal strategy (`allow_from`, checked before the credential).
//!
//! Receivers are real HTTP servers on 127.0.0.1; the engine runs on loopback, as by default, so
//! its callers here come from 127.0.0.1 — outside a `tradingview`-only list.

use std::time::Duration;

use serde_json::{json, Value};

use crate::assert_error_shape;
use crate::util::{cli, unique_dir, wait_for, Engine, Receiver, Reply, PATIENCE};

fn http_task(id: &str, url: &str) -> Value {
    json!({"task_id": id, "name": id, "handler": "http_request", "payload": {"url": url}})
}

/// `host:port` of a receiver (what a template fills in after `http://`).
fn host_port(r: &Receiver) -> String {
    r.url().trim_start_matches("http://").to_string()
}

/// A one-off redirect answer.
fn redirect_to(location: String) -> Reply {
    Reply {
        status: 302,
        headers: vec![("location", location)],
        body: json!({}),
    }
}

/// Register `url` and require the registration refused for its destination.
async fn refused_at_registration(e: &Engine, url: &str) {
    let (status, body) = e.post("/register", http_task("refused", url)).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["field"].as_str()
        ),
        (400, Some("destination_not_allowed"), Some("payload.url")),
        "{url}: {body}"
    );
    assert_error_shape(&body);
}

/// A failed run's error text.
fn error_of(run: &Value) -> String {
    assert_eq!(run["status"], "error", "{run}");
    run["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn http_request_reaches_only_the_listed_prefixes() {
    let allowed = Receiver::start(200, Duration::ZERO);
    let other = Receiver::start(200, Duration::ZERO);
    let config = format!(
        "[handlers.http_request]\nallow = [\"{}/hooks/\"]\n",
        allowed.url()
    );
    let e = Engine::start(Some(&config));

    // Under the prefix: registered and sent.
    e.register(http_task("fill", &format!("{}/hooks/fill", allowed.url())))
        .await;
    let run = e.execute("fill", Value::Null).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(allowed.requests()[0].path, "/hooks/fill");

    // Another port, a path that only starts like the prefix, the bare origin: refused, and
    // nothing is stored.
    for url in [
        format!("{}/hooks/fill", other.url()),
        format!("{}/hooksX", allowed.url()),
        format!("{}/", allowed.url()),
        format!("{}/hooks/../admin", allowed.url()),
    ] {
        refused_at_registration(&e, &url).await;
    }
    assert_eq!(e.task_ids().await, ["fill"]);

    // A templated URL is checked when rendered: refused, nothing sent; allowed, sent.
    e.register(http_task("tmpl", "http://{{trigger.data.target}}/hooks/t"))
        .await;
    let run = e
        .execute("tmpl", json!({"target": host_port(&other)}))
        .await;
    let error = error_of(&run);
    assert!(error.contains("is not allowed"), "{run}");
    assert!(error.contains("nothing was sent"), "{run}");
    let run = e
        .execute("tmpl", json!({"target": host_port(&allowed)}))
        .await;
    assert_eq!(run["status"], "success", "{run}");

    // A redirect out of the list is not followed: the run fails.
    e.register(http_task("hop", &format!("{}/hooks/hop", allowed.url())))
        .await;
    allowed.script(vec![redirect_to(format!("{}/stolen", other.url()))]);
    let run = e.execute("hop", Value::Null).await;
    assert!(error_of(&run).contains("redirect refused"), "{run}");
    // One within it is.
    allowed.script(vec![redirect_to(format!("{}/hooks/landed", allowed.url()))]);
    let run = e.execute("hop", Value::Null).await;
    assert_eq!(run["status"], "success", "{run}");
    let paths: Vec<String> = allowed.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/hooks/fill",
            "/hooks/t",
            "/hooks/hop",
            "/hooks/hop",
            "/hooks/landed"
        ]
    );
    assert!(
        other.requests().is_empty(),
        "nothing ever reached the destination outside the list: {:?}",
        other.requests()
    );
}

#[tokio::test]
async fn http_request_without_a_list_stays_off_the_engine_and_the_metadata_service() {
    let e = Engine::start(None);
    let neighbour = Receiver::start(200, Duration::ZERO);
    let port = e.url().rsplit(':').next().unwrap().to_string();

    // Neighbours on this machine keep working, by address or as localhost.
    e.register(http_task("near", &format!("{}/x", neighbour.url())))
        .await;
    assert_eq!(e.execute("near", Value::Null).await["status"], "success");
    let by_name = neighbour.url().replace("127.0.0.1", "localhost");
    e.register(http_task("named", &format!("{by_name}/y")))
        .await;
    let run = e.execute("named", Value::Null).await;
    assert_eq!(run["status"], "success", "{run}");

    // The engine's own API, however spelled, and what is never a task's business.
    for url in [
        format!("{}/api/tasks", e.url()),
        format!("http://localhost:{port}/api/keys"),
        format!("http://[::1]:{port}/"),
        format!("http://2130706433:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fe80::1]/".to_string(),
        "http://0.0.0.0:9/".to_string(),
    ] {
        refused_at_registration(&e, &url).await;
    }

    // Templated at the engine: registered, refused when rendered.
    e.register(http_task(
        "tmpl",
        "http://{{trigger.data.target}}/api/tasks",
    ))
    .await;
    let run = e
        .execute("tmpl", json!({"target": format!("127.0.0.1:{port}")}))
        .await;
    let error = error_of(&run);
    assert!(error.contains("engine's own API"), "{run}");
    assert!(error.contains("nothing was sent"), "{run}");

    // A neighbour that redirects to the engine is not followed.
    e.register(http_task("hop", &format!("{}/hop", neighbour.url())))
        .await;
    neighbour.script(vec![redirect_to(format!("{}/api/tasks", e.url()))]);
    let run = e.execute("hop", Value::Null).await;
    let error = error_of(&run);
    assert!(
        error.contains("redirect refused") && error.contains("engine's own API"),
        "{run}"
    );
}

const ALLOW_FROM: &str = r#"
[trading]
synthetic_feed = false

[webhooks.sources.tv]
token = "tok-123456"
allow_from = ["tradingview"]

[webhooks.sources.desk]
token = "tok-654321"
allow_from = ["tradingview", "127.0.0.0/8", "::1"]

[[webhooks.routes]]
source = "desk"
tasks = ["note"]

[tasks.note]
name = "Note"
handler = "log_signal"

[signals.far]
secret = "tv-secret-123"
symbols = { "ES1!" = "ES" }
allow_from = ["tradingview"]
"#;

#[tokio::test]
async fn allow_from_refuses_other_addresses_before_the_credential() {
    let e = Engine::start(Some(ALLOW_FROM));

    // From 127.0.0.1 to a TradingView-only source: 403, whether the token is right or not.
    for token in ["tok-123456", "wrong-token"] {
        let (status, body) = e
            .post_raw(&format!("/webhook/tv/{token}"), b"BUY ES", &[])
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("address_not_allowed")),
            "{token}: {body}"
        );
        assert_error_shape(&body);
    }
    // Recorded like a refused credential, with the address as the reason.
    let (_, recorded) = e.get("/api/webhooks?limit=10").await;
    let rows = recorded["webhooks"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{recorded}");
    for row in rows {
        assert_eq!(row["status"], "rejected", "{row}");
        assert!(
            row["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("127.0.0.1"),
            "{row}"
        );
    }

    // A source that lists this machine takes the call.
    let (status, body) = e.post_raw("/webhook/desk/tok-654321", b"BUY ES", &[]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["tasks"], json!(["note"]));

    // A strategy: refused with the right secret, before anything else is read.
    let (status, body) = e
        .post(
            "/api/signals/far",
            json!({"ticker": "ES1!", "action": "buy", "contracts": 1, "secret": "tv-secret-123"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("address_not_allowed")),
        "{body}"
    );
    let (_, orders) = e.get("/api/orders").await;
    assert_eq!(orders["count"], 0, "{orders}");
    let kinds = wait_for("the refusals on the audit trail", PATIENCE, || async {
        let kinds = e.audit_kinds().await;
        (kinds.iter().filter(|k| k.ends_with(".rejected")).count() >= 3).then_some(kinds)
    })
    .await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "signal.rejected").count(),
        1,
        "{kinds:?}"
    );
}

#[test]
fn check_names_every_bad_list_entry() {
    let dir = unique_dir("sovereign-e2e-allow");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[handlers.http_request]
allow = ["https://api.example.com", "ftp://files.example.com", "https://api.example.com/?q=1"]

[webhooks.sources.tv]
token = "tok-123456"
allow_from = ["tradingview", "10.0.0.1/8", "10.0.0.0/33", "example.com"]

[signals.far]
secret = "tv-secret-123"
allow_from = []
"#,
    )
    .unwrap();
    let out = cli(&["check", path.to_str().unwrap()]);
    assert!(!out.ok(), "{out:?}");
    for field in [
        "handlers.http_request.allow[1]",
        "handlers.http_request.allow[2]",
        "webhooks.sources.tv.allow_from[1]",
        "webhooks.sources.tv.allow_from[2]",
        "webhooks.sources.tv.allow_from[3]",
        "signals.far.allow_from",
    ] {
        assert!(out.stderr.contains(field), "{field} missing: {out:?}");
    }
    assert!(out.stderr.contains("did you mean 10.0.0.0/8?"), "{out:?}");
    assert!(
        !out.stderr.contains("allow[0]") && !out.stderr.contains("allow_from[0]"),
        "good entries are not reported: {out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TradingView-style post through a proxy that says the client is `forwarded`.
async fn hook(e: &Engine, forwarded: &str) -> (u16, Value) {
    let headers = [
        ("content-type", "application/json"),
        ("x-forwarded-for", forwarded),
    ];
    let body = json!({"event": "ping", "data": {}})
        .to_string()
        .into_bytes();
    e.call(
        reqwest::Method::POST,
        "/webhook/tv/tok-12345678",
        Some(body),
        &headers,
    )
    .await
}

#[tokio::test]
async fn only_a_trusted_proxy_says_who_the_client_is() {
    let source =
        "[webhooks.sources.tv]\ntoken = \"tok-12345678\"\nallow_from = [\"tradingview\"]\n";

    // A reverse proxy on this machine, named as trusted: its forwarded address is judged.
    let e = Engine::start(Some(&format!(
        "[access]\ntrusted_proxies = [\"127.0.0.1\"]\n{source}"
    )));
    assert_eq!(
        hook(&e, "52.89.214.238").await.0,
        202,
        "TradingView through the proxy"
    );
    let (status, body) = hook(&e, "198.51.100.7").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("address_not_allowed"))
    );
    // A client that writes TradingView's address itself: the proxy appends the real one,
    // and the nearest hop the proxy did not vouch for is the one judged.
    assert_eq!(hook(&e, "52.89.214.238, 198.51.100.7").await.0, 403);
    drop(e);

    // Without trusted proxies the header is not believed: the peer (127.0.0.1) is judged.
    let e = Engine::start(Some(source));
    assert_eq!(hook(&e, "52.89.214.238").await.0, 403);
}

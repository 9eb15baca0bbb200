//! Access control end to end: keys made with the CLI (offline, then through the running
//! engine), every request judged by the permission table in `keys` mode, revocation biting on
//! the next request, and no key ever in the engine's output.

mod hygiene;
mod limits;
mod routes;
mod socket;
mod sso;
mod tls;

use reqwest::Method;
use serde_json::json;

use crate::util::{self, Engine};

pub(super) fn create_offline(data: &std::path::Path, name: &str, role: &str) -> String {
    let out = util::cli(&[
        "keys",
        "create",
        name,
        "--role",
        role,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.ok(), "{out:?}");
    let key = out.stdout.trim().to_string();
    assert!(key.starts_with("sov_"), "{key}");
    key
}

async fn status(
    e: &Engine,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: serde_json::Value,
) -> u16 {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = (!body.is_null()).then(|| body.to_string().into_bytes());
    e.call(method, path, body, &headers).await.0
}

#[tokio::test]
async fn keys_mode_judges_every_request_by_role_and_a_revocation_bites_at_once() {
    let root = util::unique_dir("sovereign-e2e-access");
    let data = root.join("data");
    let admin = create_offline(&data, "ops", "admin");
    let trader = create_offline(&data, "desk", "trader");
    let viewer = create_offline(&data, "wall", "viewer");
    let e = Engine::start_in(
        root,
        Some("[access]\nmode = \"keys\"\n[trading]\nsynthetic_feed = false\n[webhooks.sources.tv]\ntoken = \"tok-123456\"\n"),
    );
    let tick = json!([{"symbol": "ES", "price": "4000"}]);
    assert_eq!(
        status(&e, Method::POST, "/api/market/ticks", Some(&trader), tick).await,
        200
    );
    let forged = format!("{}{}", &viewer[..viewer.len() - 4], "0000");
    let order = json!({"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4000", "tif": "gtc"});
    let stop = json!({"reason": "x"});
    // (method, path, body, [none, forged, viewer, trader, admin])
    let cases = [
        (
            Method::GET,
            "/health",
            json!(null),
            [200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/status",
            json!(null),
            [401, 401, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/orders",
            json!(null),
            [401, 401, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/orders",
            order.clone(),
            [401, 401, 403, 201, 201],
        ),
        (
            Method::POST,
            "/api/risk/resume",
            stop.clone(),
            [401, 401, 403, 403, 200],
        ),
        (
            Method::GET,
            "/api/keys",
            json!(null),
            [401, 401, 403, 403, 200],
        ),
        (
            Method::POST,
            "/register",
            json!({"task_id": "t", "name": "t", "handler": "log_signal"}),
            [401, 401, 403, 403, 201],
        ),
    ];
    for (method, path, body, want) in cases {
        for (who, key) in [
            None,
            Some(forged.as_str()),
            Some(viewer.as_str()),
            Some(trader.as_str()),
            Some(admin.as_str()),
        ]
        .into_iter()
        .enumerate()
        {
            let got = status(&e, method.clone(), path, key, body.clone()).await;
            assert_eq!(got, want[who], "{method} {path} as {who}");
        }
    }
    // X-Api-Key works like Bearer.
    let (code, _) = e
        .call(
            Method::GET,
            "/status",
            None,
            &[("x-api-key", viewer.as_str())],
        )
        .await;
    assert_eq!(code, 200);
    // The webhook route is judged by its own secret, not by a key.
    let (code, body) = e.post_raw("/webhook/tv/tok-123456", b"hello", &[]).await;
    assert_eq!(code, 202, "{body}");
    let (code, body) = e.get("/status").await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    // Revoked through the running engine (the data dir is locked): refused on the next request.
    let data_s = e.root().join("data");
    let out = util::cli(&[
        "keys",
        "revoke",
        "desk",
        "--data-dir",
        data_s.to_str().unwrap(),
        "--url",
        e.url(),
        "--api-key",
        &admin,
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        status(&e, Method::GET, "/status", Some(&trader), json!(null)).await,
        401
    );
    let listed = util::cli(&[
        "keys",
        "list",
        "--data-dir",
        data_s.to_str().unwrap(),
        "--url",
        e.url(),
        "--api-key",
        &admin,
    ]);
    assert!(
        listed.ok() && listed.stdout.contains("desk") && listed.stdout.contains("wall"),
        "{listed:?}"
    );
    // A CLI command without a key says how to give one.
    let bare = util::cli(&["status", "--url", e.url()]);
    assert_eq!(bare.code, Some(1), "{bare:?}");
    assert!(bare.stderr.contains("--api-key"), "{bare:?}");

    // No key is ever in the engine's output or on the audit trail.
    let audit = e
        .call(
            Method::GET,
            "/api/audit?limit=1000",
            None,
            &[("x-api-key", admin.as_str())],
        )
        .await
        .1
        .to_string();
    for k in [&admin, &trader, &viewer] {
        let secret = k.rsplit('_').next().unwrap();
        assert!(
            !e.stderr().contains(secret)
                && !audit.contains(secret)
                && !listed.stdout.contains(secret)
        );
    }
    assert!(
        audit.contains("key.created")
            && audit.contains("key.revoked")
            && audit.contains("key.used"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_web_page_cannot_reach_the_engine_even_on_loopback() {
    let e = Engine::start(Some("[trading]\nsynthetic_feed = false\n[signals.s]\nsecret = \"long-enough-secret\"\nsymbols = { \"ES1!\" = \"ES\" }\n"));
    let order = br#"{"symbol":"ES","side":"buy","qty":"1"}"#;
    // A browser's cross-site form or no-cors fetch sends text/plain (marked by Sec-Fetch-*):
    // refused, never parsed.
    let (code, body) = e
        .post_raw(
            "/api/orders",
            order,
            &[
                ("content-type", "text/plain"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{body}"
    );
    // Another origin may not change anything.
    let (code, body) = e
        .post_raw(
            "/api/orders",
            order,
            &[
                ("content-type", "application/json"),
                ("origin", "http://evil.example"),
            ],
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("cross_origin")),
        "{body}"
    );
    // DNS rebinding: a foreign name pointed at 127.0.0.1.
    let (code, body) = e
        .call(
            Method::GET,
            "/status",
            None,
            &[("host", "evil.example:8080")],
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("invalid_host")),
        "{body}"
    );
    let orders = e.get("/api/orders").await.1;
    assert_eq!(orders["count"], 0, "{orders}");
    // TradingView's text/plain still reaches the signal route (judged by its secret).
    let (code, body) = e
        .post_raw(
            "/api/signals/s",
            br#"{"ticker":"ES1!","action":"buy","contracts":1,"secret":"wrong-secret"}"#,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(code, 401, "{body}");
}

#[test]
fn the_data_dir_is_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let root = util::unique_dir("sovereign-e2e-mode");
    let data = root.join("data");
    create_offline(&data, "k", "viewer");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("sovereign.db")), 0o600);
    assert_eq!(mode(&data.join("LOCK")), 0o600);
    let _ = std::fs::remove_dir_all(&root);
}

//! Every route of the API × {no credential, forged key, revoked key, too-low role, right role}
//! in `keys` mode, against the binary. The expected need of each route is stated here, apart
//! from the engine's own table, as the product's rule: `viewer` reads; `trader` orders,
//! cancels, flattens, runs tasks, pushes prices and posts alerts and heartbeats; `admin`
//! everything else; webhook, signal, bridge-report and deploy push routes take only their own
//! secret.

use reqwest::Method;
use serde_json::Value;

use crate::util::{self, Engine};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Public,
    Own,
    Viewer,
    Trader,
    Admin,
}

fn expected(method: &str, path: &str) -> Need {
    use Need::*;
    match (method, path) {
        ("GET", "/health" | "/" | "/assets/{file}")
        | (_, "/api/auth/sso")
        | ("POST", "/api/auth/logout") => Public,
        ("POST", p)
            if p.starts_with("/webhook")
                || p.starts_with("/api/signals/")
                || p == "/api/gateways/{name}/reports"
                || p == "/api/v1/deploy/hooks/{plan}" =>
        {
            Own
        }
        ("GET", "/api/keys") => Admin,
        ("GET", _) => Viewer,
        ("POST", "/api/orders")
        | ("DELETE" | "PATCH", "/api/orders/{id}")
        | ("POST", "/api/orders/cancel-all")
        | ("POST", "/api/positions/flatten")
        | ("POST", "/execute")
        | ("POST", "/api/tasks/{id}/execute")
        | ("POST", "/api/market/ticks")
        | ("POST", "/api/alerts")
        | ("POST", "/api/heartbeats/{service}") => Trader,
        _ => Admin,
    }
}

/// (what is presented, the key, whether a status is right for it)
type Case<'a> = (&'static str, Option<&'a str>, fn(u16) -> bool);

async fn status(e: &Engine, method: &str, path: &str, key: Option<&str>) -> u16 {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let concrete = path
        .split('/')
        .map(|s| if s.starts_with('{') { "nope" } else { s })
        .collect::<Vec<_>>()
        .join("/");
    let mut req = e
        .http()
        .request(method.clone(), format!("{}{concrete}", e.url()));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if method != Method::GET && method != Method::DELETE {
        req = req.header("content-type", "application/json").body("{}");
    }
    // Streams answer their status first; the body is not read.
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_route_answers_each_credential_as_the_rule_says() {
    let root = util::unique_dir("sovereign-e2e-routes");
    let data = root.join("data");
    let admin = super::create_offline(&data, "ops", "admin");
    let trader = super::create_offline(&data, "desk", "trader");
    let viewer = super::create_offline(&data, "wall", "viewer");
    let revoked = super::create_offline(&data, "gone", "admin");
    let out = util::cli(&[
        "keys",
        "revoke",
        "gone",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.ok(), "{out:?}");
    let forged = format!("{}{}", &admin[..admin.len() - 8], "00000000");
    let e = Engine::start_in(
        root,
        Some("[access]\nmode = \"keys\"\n[access.rate_limits]\nfailed_auth = \"100000/min\"\n[trading]\nsynthetic_feed = false\n"),
    );

    let doc: Value = e
        .http()
        .get(format!("{}/openapi.json", e.url()))
        .header("authorization", format!("Bearer {viewer}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if ops.get(m).is_some() {
                routes.push((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    assert!(routes.len() > 60, "{}", routes.len());

    let mut wrong = Vec::new();
    for (method, path) in &routes {
        let need = expected(method, path);
        let cases: Vec<Case> = match need {
            Need::Public => vec![
                ("none", None, |s| s != 401 && s != 403),
                ("forged", Some(&forged), |s| s != 401 && s != 403),
            ],
            // Only the route's own secret authorises it: no key, good or bad, does.
            Need::Own => vec![
                ("none", None, |s| !(200..300).contains(&s)),
                ("admin key", Some(&admin), |s| !(200..300).contains(&s)),
            ],
            _ => {
                let (low, right) = match need {
                    Need::Viewer => (None, &viewer),
                    Need::Trader => (Some(&viewer), &trader),
                    _ => (Some(&trader), &admin),
                };
                let mut c: Vec<Case> = vec![
                    ("none", None, |s| s == 401),
                    ("forged", Some(&forged), |s| s == 401),
                    ("revoked", Some(&revoked), |s| s == 401),
                ];
                if let Some(low) = low {
                    c.push(("too-low role", Some(low), |s| s == 403));
                }
                c.push(("right role", Some(right), |s| s != 401 && s != 403));
                c
            }
        };
        for (what, key, ok) in cases {
            let got = status(&e, method, path, key).await;
            if !ok(got) {
                wrong.push(format!("{method} {path} ({need:?}) with {what}: {got}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

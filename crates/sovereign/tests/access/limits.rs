//! Rate limits end to end: a group's bucket empties into 429 with `Retry-After` and refills
//! after it; failed authentications block the address (even for a good key) and are on the
//! audit trail as one record per address, not one per request.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::util::{self, Engine};

async fn get(e: &Engine, path: &str, key: &str) -> (u16, Option<u64>, Value) {
    let resp = e
        .http()
        .request(Method::GET, format!("{}{path}", e.url()))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_empty_bucket_answers_429_with_retry_after_and_refills() {
    let root = util::unique_dir("sovereign-e2e-limits");
    let viewer = super::create_offline(&root.join("data"), "wall", "viewer");
    let e = Engine::start_in(
        root,
        Some("[access]\nmode = \"keys\"\n[access.rate_limits]\nloopback = true\n[access.rate_limits.read]\nper_address = \"1/s\"\nburst = 3\n[trading]\nsynthetic_feed = false\n"),
    );
    for i in 0..3 {
        assert_eq!(
            get(&e, "/api/orders", &viewer).await.0,
            200,
            "request {i} is within the burst"
        );
    }
    let (status, retry, body) = get(&e, "/api/orders", &viewer).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let retry = retry.expect("a Retry-After header");
    assert!((1..=2).contains(&retry), "{retry}");
    // Another group has its own budget.
    assert_eq!(get(&e, "/health", &viewer).await.0, 200);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        get(&e, "/api/orders", &viewer).await.0,
        200,
        "refilled after Retry-After"
    );
}

#[tokio::test]
async fn failed_authentications_block_the_address_and_are_audited_in_aggregate() {
    let root = util::unique_dir("sovereign-e2e-brute");
    let admin = super::create_offline(&root.join("data"), "ops", "admin");
    let e = Engine::start_in(
        root,
        Some("[access]\nmode = \"keys\"\n[access.rate_limits]\nfailed_auth = \"4/h\"\n[trading]\nsynthetic_feed = false\n"),
    );
    assert_eq!(get(&e, "/api/orders", &admin).await.0, 200);
    let forged = format!("{}{}", &admin[..admin.len() - 6], "000000");
    for i in 0..4 {
        assert_eq!(get(&e, "/api/orders", &forged).await.0, 401, "guess {i}");
    }
    // The fifth failure empties the bucket: from now on the address is refused outright,
    // the right key included, and told when to come back.
    assert_eq!(get(&e, "/api/orders", &forged).await.0, 401);
    let (status, retry, body) = get(&e, "/api/orders", &admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(retry.unwrap() > 60, "{retry:?}");
    for _ in 0..20 {
        assert_eq!(get(&e, "/api/orders", &forged).await.0, 429);
    }

    // At stop the refusals go on the trail: one record for this address with the counts.
    let e = e.restart();
    let stored = rusqlite::Connection::open(e.root().join("data").join("sovereign.db")).unwrap();
    let mut stmt = stored
        .prepare("SELECT payload FROM audit WHERE kind = 'access.refused'")
        .unwrap();
    let records: Vec<Value> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["address"], "127.0.0.1");
    assert_eq!(r["count"], 26, "{r}");
    assert_eq!(r["reasons"]["unknown_key"], 5, "{r}");
    assert_eq!(r["reasons"]["blocked_after_failures"], 21, "{r}");
    assert!(
        !r.to_string().contains(&forged[4..]),
        "no key text in the record"
    );
}

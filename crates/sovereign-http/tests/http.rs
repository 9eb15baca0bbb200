//! The HTTP crate's own tests: the router of a real engine (SQLite in a fresh temporary data
//! dir) driven in-process with `tower::ServiceExt::oneshot`, as in axum's `examples/testing`.
//! They check what ties the surface together: every documented route is routed, every error
//! code is documented, and task results carry orders in the API's own shape.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sovereign_engine::config::Settings;
use sovereign_engine::Engine;
use sovereign_http::error::Code;
use sovereign_store::{SqliteOptions, Store};
use tower::ServiceExt;

struct Fixture {
    engine: Engine,
    app: Router,
    dir: PathBuf,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "sovereign-http-{name}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = Store::open_sqlite(&dir, SqliteOptions::default()).expect("store");
        let settings = Settings {
            data_dir: dir.clone(),
            ..Settings::default()
        };
        let engine = Engine::start(settings, store).await.expect("engine");
        let app = sovereign_http::app(&engine, sovereign_http::Closing::default());
        Fixture { engine, app, dir }
    }

    /// Send one request; the status and, unless it is a stream, the JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let streaming = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            return (status, Value::Null);
        }
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn stop(self) {
        let left = self
            .engine
            .shutdown(
                std::time::Duration::from_secs(2),
                std::time::Duration::from_secs(10),
            )
            .await;
        assert_eq!(left, 0, "every engine task finished");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_error_code_is_in_the_openapi_document() {
    let doc = sovereign_http::openapi_json();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !doc.contains(&format!("`{c}`")))
        .collect();
    assert!(missing.is_empty(), "codes not in the document: {missing:?}");
}

#[tokio::test]
async fn every_documented_route_is_routed() {
    let f = Fixture::new("routes").await;
    let doc: Value = serde_json::from_str(&sovereign_http::openapi_json()).expect("document");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 50, "only {} paths documented", paths.len());
    let mut unrouted = Vec::new();
    for (path, item) in paths {
        let concrete = path.replace('{', "x").replace('}', "");
        for method in item.as_object().expect("path item").keys() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let (status, body) = f.call(m, &concrete, None).await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if code == "method_not_allowed" || message.starts_with("no route for") {
                unrouted.push(format!("{method} {path} → {status}"));
            }
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    let (status, body) = f.call(Method::GET, "/no/such/route", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = f.call(Method::DELETE, "/health", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    f.stop().await;
}

#[tokio::test]
async fn task_results_carry_orders_in_the_api_shape() {
    let f = Fixture::new("orders").await;
    let (status, _) = f
        .call(
            Method::POST,
            "/register",
            Some(json!({"task_id": "buy", "name": "buy", "handler": "place_order",
                "payload": {"symbol": "ES", "side": "buy", "qty": "1", "type": "limit", "limit_price": "4000", "tif": "gtc"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, result) = f
        .call(Method::POST, "/execute", Some(json!({"task_id": "buy"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let from_task = &result["output"]["order"];
    let id = from_task["id"]
        .as_str()
        .expect("the id is a string, as in the API");
    let (status, from_api) = f
        .call(Method::GET, &format!("/api/orders/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        from_task, &from_api,
        "one order shape for task results and the API"
    );
    f.stop().await;
}

#[tokio::test]
async fn errors_name_their_own_field() {
    let f = Fixture::new("fields").await;
    let (status, body) = f.call(Method::GET, "/api/tasks/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["field"], "task_id");
    let (status, body) = f
        .call(Method::POST, "/api/alerts/channels/nope/enable", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_channel");
    assert_ne!(body["error"]["field"], "task_id");
    let (status, body) = f.call(Method::POST, "/api/services/nope/start", None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("name"))
    );
    f.stop().await;
}

//! Sovereign's HTTP surface: the executor contract (`/health`, `/status`, `/tasks`, `/register`,
//! `/execute`, `/webhook`, `/results`), the task admin API under `/api`, and `/openapi.json`.
//!
//! Handlers are glue: parse the request into typed values ([`wire`], [`extract`]), call the
//! engine, turn the answer or the [`error::ApiError`] into JSON. No business logic lives here.
//!
//! # Layout
//! - [`wire`]: JSON types and conversions.
//! - [`alerts`]: raise alerts, read the outbox, channels and test messages.
//! - [`services`]: supervised services, their logs and heartbeats, and the engine's health.
//! - [`truth`]: the Truth version in force, secrets masked.
//! - [`trading`]: orders, positions, fills, accounts, risk, market data and SSE streams.
//! - [`extract`]: the JSON body extractor that names the offending field.
//! - [`error`]: `ApiError`, the only error response shape.
//! - `routes`: the handlers; `openapi`: the generated description.

pub mod alerts;
pub mod error;
pub mod extract;
mod openapi;
mod routes;
pub mod services;
pub mod trading;
pub mod truth;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use sovereign_engine::Engine;

pub use routes::AppState;

/// The whole application router.
pub fn app(engine: Arc<Engine>) -> Router {
    let limit = engine.settings().max_body_bytes;
    let webhook_limit = engine.settings().webhook_max_body_bytes;
    let state = AppState { engine };
    let webhooks = Router::new()
        .route("/webhook", post(routes::webhook))
        .route("/webhook/{source}", post(routes::webhook_source))
        .route("/webhook/{source}/{token}", post(routes::webhook_token))
        .layer(DefaultBodyLimit::max(webhook_limit));
    let api = Router::new()
        .route("/health", get(routes::health))
        .route("/status", get(routes::status))
        .route("/tasks", get(routes::list_tasks))
        .route("/register", post(routes::register))
        .route("/execute", post(routes::execute))
        .route("/results", get(routes::results))
        .route(
            "/api/tasks",
            get(routes::api_list_tasks).post(routes::api_register),
        )
        .route(
            "/api/tasks/{id}",
            get(routes::get_task)
                .put(routes::update_task)
                .delete(routes::delete_task),
        )
        .route("/api/tasks/{id}/execute", post(routes::execute_task))
        .route("/api/tasks/{id}/enable", post(routes::enable_task))
        .route("/api/tasks/{id}/disable", post(routes::disable_task))
        .route("/api/results", get(routes::api_results))
        .route("/api/webhooks", get(routes::list_webhooks))
        .route("/api/alerts", post(alerts::raise).get(alerts::list))
        .route("/api/alerts/channels", get(alerts::channels))
        .route("/api/alerts/channels/{name}/enable", post(alerts::enable))
        .route("/api/alerts/test", post(alerts::test))
        .route("/api/services", get(services::list))
        .route("/api/services/{name}/start", post(services::start))
        .route("/api/services/{name}/stop", post(services::stop))
        .route("/api/services/{name}/restart", post(services::restart))
        .route("/api/services/{name}/logs", get(services::logs))
        .route(
            "/api/services/{name}/logs/stream",
            get(services::log_stream),
        )
        .route("/api/heartbeats/{service}", post(services::heartbeat))
        .route("/api/health", get(services::health))
        .route("/api/health/deep", get(services::health_deep))
        .route("/sse/services", get(services::sse_services))
        .route("/api/truth", get(truth::show))
        .route("/api/truth/{component}", get(truth::component))
        .route("/api/audit", get(routes::audit))
        .route("/api/audit/verify", get(routes::audit_verify))
        .route(
            "/api/orders",
            get(trading::list_orders).post(trading::submit_order),
        )
        .route("/api/orders/cancel-all", post(trading::cancel_all))
        .route(
            "/api/orders/{id}",
            get(trading::get_order)
                .delete(trading::cancel_order)
                .patch(trading::modify_order),
        )
        .route("/api/positions", get(trading::positions))
        .route("/api/positions/flatten", post(trading::flatten))
        .route("/api/fills", get(trading::fills))
        .route("/api/accounts", get(trading::accounts))
        .route("/api/risk", get(trading::risk))
        .route("/api/risk/hardstop", post(trading::hardstop))
        .route("/api/risk/resume", post(trading::resume))
        .route("/api/market/ticks", post(trading::ticks))
        .route("/api/signals/{strategy}", post(trading::signal))
        .route("/sse/spot", get(trading::sse_spot))
        .route("/sse/orders", get(trading::sse_orders))
        .route("/sse/fills", get(trading::sse_fills))
        .route("/sse/positions", get(trading::sse_positions))
        .route("/openapi.json", get(openapi::serve))
        .layer(DefaultBodyLimit::max(limit));
    api.merge(webhooks)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
}

/// Serve `app` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The OpenAPI document as JSON (also served at `/openapi.json`).
pub fn openapi_json() -> String {
    openapi::document()
}

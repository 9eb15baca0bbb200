//! Sovereign's HTTP surface: the executor contract (`/health`, `/status`, `/tasks`, `/register`,
//! `/execute`, `/webhook`, `/results`), the admin and trading API under `/api`, the SSE
//! streams, and `/openapi.json`.
//!
//! Handlers are glue: parse the request into typed values ([`extract`], the wire types beside
//! each handler), call one capability's handle, turn the answer or the [`error::ApiError`] into
//! JSON. No business logic lives here.
//!
//! # Layout
//! One module per capability, each with its own `router()` whose handlers take only the
//! handles they need (axum `FromRef` sub-state of [`AppState`]):
//! - [`tasks`]: the executor; [`webhooks`]: webhook intake; [`trading`]: orders, positions,
//!   risk, market data, signals and their SSE streams; [`alerts`]: the notifier;
//!   [`services`]: the supervisor and the engine's health; [`truth`]; [`audit`].
//! - [`wire`]: JSON types shared by several modules; [`extract`]: body and query extractors
//!   that name the offending field; [`error`]: `ApiError` and the list of every code.
//! - `openapi`: routes and the OpenAPI document come from the same `routes!` lists
//!   (utoipa-axum), so a route cannot be missing from the document or the other way round.

pub mod alerts;
pub mod audit;
pub mod error;
pub mod extract;
mod openapi;
pub mod services;
pub mod tasks;
pub mod trading;
pub mod truth;
pub mod webhooks;
pub mod wire;

use std::future::Future;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::Uri;
use axum::Router;
use sovereign_engine::audit::Audit;
use sovereign_engine::executor::Executor;
use sovereign_engine::notify::Notifier;
use sovereign_engine::supervisor::Supervisor;
use sovereign_engine::trading::signals::Signals;
use sovereign_engine::trading::Trading;
use sovereign_engine::truth::TruthSource;
use sovereign_engine::webhooks::Webhooks;
use sovereign_engine::Engine;
use utoipa_axum::router::OpenApiRouter;

use error::{ApiError, Code};

/// The handles the routes use; each handler extracts only its own (`State<Trading>`, …).
#[derive(Clone)]
pub struct AppState {
    pub executor: Executor,
    pub webhooks: Webhooks,
    pub trading: Trading,
    pub signals: Signals,
    pub notifier: Notifier,
    pub supervisor: Supervisor,
    pub truth: TruthSource,
    pub audit: Audit,
}

/// `State<Handle>` for each handle of [`AppState`].
macro_rules! sub_states {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> $ty {
                state.$field.clone()
            }
        })*
    };
}

sub_states! {
    executor: Executor,
    webhooks: Webhooks,
    trading: Trading,
    signals: Signals,
    notifier: Notifier,
    supervisor: Supervisor,
    truth: TruthSource,
    audit: Audit,
}

impl AppState {
    pub fn of(engine: &Engine) -> AppState {
        AppState {
            executor: engine.executor().clone(),
            webhooks: engine.webhooks().clone(),
            trading: engine.trading().clone(),
            signals: engine.signals().clone(),
            notifier: engine.notifier().clone(),
            supervisor: engine.supervisor().clone(),
            truth: engine.truth().clone(),
            audit: engine.audit().clone(),
        }
    }
}

/// Body limits: the API's, and the webhook routes' (senders post small alerts).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body: usize,
    pub webhook_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: 1024 * 1024,
            webhook_body: 256 * 1024,
        }
    }
}

/// Every route with its OpenAPI description, from the capabilities' routers.
fn routes(limits: Limits) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(tasks::router())
        .merge(audit::router())
        .merge(truth::router())
        .merge(services::router())
        .merge(alerts::router())
        .merge(trading::router())
        .merge(openapi::router())
        .layer(DefaultBodyLimit::max(limits.body))
        .merge(webhooks::router(limits.webhook_body))
}

/// The whole application router over `state`.
pub fn app_with(state: AppState, limits: Limits) -> Router {
    let (router, doc) = routes(limits).split_for_parts();
    router
        .layer(axum::Extension(openapi::Document::new(doc)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The application router of a running engine.
pub fn app(engine: &Engine) -> Router {
    let limits = Limits {
        body: engine.settings().server.max_body_bytes,
        webhook_body: engine.webhooks().max_body_bytes(),
    };
    app_with(AppState::of(engine), limits)
}

/// Serve `app` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: &Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The OpenAPI document as JSON (also served at `/openapi.json`).
pub fn openapi_json() -> String {
    openapi::render(&routes(Limits::default()).split_for_parts().1)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

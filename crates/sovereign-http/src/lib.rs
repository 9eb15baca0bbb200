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
//!   risk, market data, signals and the price stream; [`journal`]: the order, fill and
//!   position streams; [`alerts`]: the notifier;
//!   [`services`]: the supervisor and the engine's health; [`truth`]; [`audit`];
//!   [`deploy`]: staged rollouts, their history and the autonomy document.
//! - [`wire`]: JSON types shared by several modules; [`extract`]: body and query extractors
//!   that name the offending field; [`error`]: `ApiError` and the list of every code.
//! - `openapi`: the document. Each module lists its handlers once, in `routes! { … }`; the list
//!   makes both its `router()` and its part of the document, each from the handler's own
//!   `#[utoipa::path]` (method and path), so a route cannot be missing from the document or the
//!   other way round. The document is built only when asked for.

/// One list of a module's handlers makes both its `router()` (each handler on the method and
/// path of its `#[utoipa::path]`) and `paths()`, its part of the OpenAPI document.
macro_rules! routes {
    ($($handler:ident),+ $(,)?) => {
        /// This module's routes.
        pub fn router() -> axum::Router<crate::AppState> {
            let router = axum::Router::new();
            $(
                let router = paste::paste! {
                    crate::openapi::route::<[<__path_ $handler>], _, _>(router, $handler)
                };
            )+
            router
        }

        /// This module's part of the OpenAPI document.
        pub fn paths(paths: &mut utoipa::openapi::path::Paths) {
            $(
                paste::paste! { crate::openapi::describe::<[<__path_ $handler>]>(paths) };
            )+
        }
    };
}
pub(crate) use routes;

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod deploy;
pub mod error;
pub mod extract;
pub mod gateways;
mod hygiene;
pub mod journal;
pub mod keys;
mod openapi;
pub mod permissions;
pub mod server;
pub mod services;
pub mod tasks;
pub mod tls;
pub mod trading;
pub mod truth;
pub mod webhooks;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::Uri;
use axum::Router;
use sovereign_engine::access::Access;
use sovereign_engine::audit::Audit;
use sovereign_engine::executor::Executor;
use sovereign_engine::notify::Notifier;
use sovereign_engine::supervisor::Supervisor;
use sovereign_engine::trading::signals::Signals;
use sovereign_engine::trading::Trading;
use sovereign_engine::truth::TruthSource;
use sovereign_engine::webhooks::Webhooks;
use sovereign_engine::Engine;
use tokio_util::sync::CancellationToken;

use error::{ApiError, Code};

/// The handles the routes use; each handler extracts only its own (`State<Trading>`, …).
/// Cloned once per request by axum, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

/// Fires when the server begins to shut down: long-lived responses (SSE) end then, so they
/// never hold the graceful shutdown open.
#[derive(Clone, Default)]
pub struct Closing(CancellationToken);

impl Closing {
    /// Resolves once the server is shutting down.
    pub async fn closed(&self) {
        self.0.cancelled().await
    }

    pub fn close(&self) {
        self.0.cancel();
    }
}

/// Every capability handle the HTTP layer talks to.
pub struct Handles {
    pub executor: Executor,
    pub webhooks: Webhooks,
    pub trading: Trading,
    pub signals: Signals,
    pub notifier: Notifier,
    pub supervisor: Supervisor,
    pub truth: TruthSource,
    pub audit: Audit,
    pub access: Access,
    pub closing: Closing,
    pub deploy: sovereign_engine::deploy::Deploy,
    /// The conflated journal streams' shared feeds.
    pub feeds: journal::Feeds,
}

/// `State<Handle>` for each handle of [`AppState`].
macro_rules! sub_states {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> $ty {
                state.0.$field.clone()
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
    access: Access,
    closing: Closing,
    deploy: sovereign_engine::deploy::Deploy,
    feeds: journal::Feeds,
}

impl AppState {
    pub fn of(engine: &Engine, closing: Closing) -> AppState {
        AppState(Arc::new(Handles {
            executor: engine.executor().clone(),
            webhooks: engine.webhooks().clone(),
            trading: engine.trading().clone(),
            signals: engine.signals().clone(),
            notifier: engine.notifier().clone(),
            supervisor: engine.supervisor().clone(),
            truth: engine.truth().clone(),
            audit: engine.audit().clone(),
            access: engine.access().clone(),
            closing,
            deploy: engine.deploy().clone(),
            feeds: journal::Feeds::default(),
        }))
    }
}

/// Body limits: the API's, and the webhook routes' (senders post small alerts); how long a
/// body may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body: usize,
    pub webhook_body: usize,
    pub body_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: 1024 * 1024,
            webhook_body: 256 * 1024,
            body_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Every route: the capabilities' routers, the webhook routes with their own body limit.
fn router(limits: Limits) -> Router<AppState> {
    let body = |limit| {
        axum::middleware::from_fn_with_state(
            hygiene::BodyRules {
                limit,
                timeout: limits.body_timeout,
            },
            hygiene::read_body,
        )
    };
    Router::new()
        .merge(tasks::router())
        .merge(audit::router())
        .merge(keys::router())
        .merge(auth::router())
        .merge(truth::router())
        .merge(services::router())
        .merge(alerts::router())
        .merge(trading::router())
        .merge(journal::router())
        .merge(gateways::router())
        .merge(deploy::router())
        .merge(dashboard::router())
        .merge(openapi::router())
        .layer(DefaultBodyLimit::max(limits.body))
        .layer(body(limits.body))
        .merge(
            webhooks::router()
                .layer(DefaultBodyLimit::max(limits.webhook_body))
                .layer(body(limits.webhook_body)),
        )
}

/// The header every answer carries, so a client knows it talks to a Sovereign engine (and
/// which version) rather than some other service on that port.
pub const ENGINE_HEADER: &str = "x-sovereign-version";

/// The whole application router over `state`.
pub fn app_with(state: AppState, limits: Limits) -> Router {
    router(limits)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            permissions::guard,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(hygiene::head_limits))
        .layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    ENGINE_HEADER,
                    axum::http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
                );
                response
            },
        ))
        .with_state(state)
}

/// The application router of a running engine; `closing` ends its streams.
pub fn app(engine: &Engine, closing: Closing) -> Router {
    let server = &engine.settings().server;
    let limits = Limits {
        body: server.max_body_bytes,
        webhook_body: engine.webhooks().max_body_bytes(),
        body_timeout: server.body_timeout,
    };
    app_with(AppState::of(engine, closing), limits)
}

/// Serve the engine on `endpoints` until `shutdown` resolves; then end the streams, finish
/// the requests in flight and close the connections.
pub async fn serve(
    endpoints: Vec<server::Endpoint>,
    engine: &Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = Closing::default();
    let app = app(engine, closing.clone());
    let settings = &engine.settings().server;
    let limits = server::ConnectionLimits {
        header_timeout: settings.header_timeout,
        max_connections: settings.max_connections,
    };
    server::serve_endpoints(endpoints, app, limits, closing, shutdown).await
}

/// The OpenAPI document as JSON (also served at `/openapi.json`), from the same lists as the
/// router.
pub fn openapi_json() -> String {
    let mut paths = utoipa::openapi::path::Paths::new();
    for part in [
        tasks::paths,
        webhooks::paths,
        audit::paths,
        keys::paths,
        auth::paths,
        truth::paths,
        services::paths,
        alerts::paths,
        trading::paths,
        journal::paths,
        gateways::paths,
        deploy::paths,
        dashboard::paths,
        openapi::paths,
    ] {
        part(&mut paths);
    }
    openapi::render(paths)
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

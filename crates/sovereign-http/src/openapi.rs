//! The OpenAPI 3.1 document: the paths come from the modules' `routes!` lists (the same lists
//! their routers are made from), the info and shared schemas from `ApiDoc`, and the
//! description of `ErrorDetail` lists every error code. Also the two helpers the `routes!`
//! macro expands to: [`route`] (serve a handler on its documented method and path) and
//! [`describe`] (add its operation to the document).

use axum::handler::Handler;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::{RefOr, Schema};
use utoipa::OpenApi;

use crate::error::{codes_description, ErrorBody, ErrorDetail};
use crate::trading::*;
use crate::wire::*;
use crate::{alerts, audit, deploy, services, truth, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sovereign",
        description = "Self-hosted trading-operations engine: executor, webhooks, scheduler."
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        TaskIn,
        TaskOut,
        TaskList,
        LastRunOut,
        ResultOut,
        ResultList,
        ExecuteIn,
        WebhookIn,
        WebhookOut,
        HealthOut,
        StatusOut,
        SchedulerOut,
        TaskCounts,
        StoreOut,
        WebhookRecordOut,
        WebhookList,
        truth::TruthOut,
        truth::RejectedOut,
        truth::ComponentOut,
        services::ServiceOut,
        services::ServiceList,
        services::ExitOut,
        services::HealthCheckOut,
        services::DependencyOut,
        services::HeartbeatOut,
        services::HealerOut,
        services::LogOut,
        services::TransitionOut,
        services::BeatOut,
        services::CheckOut,
        services::DeepHealthOut,
        services::HealthSummaryOut,
        deploy::DeployRunIn,
        deploy::DeployPromoteIn,
        deploy::DeployRollbackIn,
        deploy::DeployTargetOut,
        deploy::DeployGateCheckOut,
        deploy::DeployRunOut,
        deploy::DeployMeasurementOut,
        deploy::DeployCheckOut,
        deploy::DeployStageOut,
        deploy::DeployHistoryRunOut,
        deploy::DeployFiguresOut,
        deploy::DeployPlanOut,
        deploy::DeployStatusOut,
        deploy::DeployHistoryOut,
        deploy::DeployAlertOut,
        deploy::DeployAlertList,
        deploy::DeployEventOut,
        deploy::DeployRecordOut,
        alerts::AlertIn,
        alerts::RaisedOut,
        alerts::AlertOut,
        alerts::DeliveryOut,
        alerts::DeliveryChangeOut,
        alerts::AlertList,
        alerts::ChannelOut,
        alerts::ChannelList,
        alerts::TestIn,
        alerts::TestResultOut,
        alerts::TestOut,
        audit::AuditOut,
        audit::AuditList,
        audit::VerifyOut,
        OrderIn,
        OrderOut,
        OrderList,
        DeniedOut,
        PositionOut,
        PositionList,
        FillOut,
        FillList,
        AccountOut,
        AccountList,
        RiskOut,
        RiskList,
        StateIn,
        StateOut,
        ModifyIn,
        AccountSelector,
        FlattenIn,
        TickIn,
        TicksIn,
        DecimalIn,
        SignalIn,
        SignalOut
    ))
)]
struct ApiDoc;

/// Serve `handler` on the method(s) and path its `#[utoipa::path]` names (`P`).
pub(crate) fn route<P, H, T>(router: Router<AppState>, handler: H) -> Router<AppState>
where
    P: utoipa::Path,
    H: Handler<T, AppState>,
    T: 'static,
{
    let methods = P::methods()
        .into_iter()
        .fold(MethodRouter::new(), |m, method| {
            m.on(filter(method), handler.clone())
        });
    router.route(&P::path(), methods)
}

/// Add the handler's operation (`P`) to the document's paths, with its tags (utoipa keeps a
/// path's `tag` apart from its operation; its own `OpenApi` derive joins them the same way).
pub(crate) fn describe<P>(paths: &mut Paths)
where
    P: utoipa::Path + utoipa::__dev::Tags<'static>,
{
    let mut operation = P::operation();
    let tags = P::tags();
    if !tags.is_empty() {
        let list = operation.tags.get_or_insert_with(Vec::new);
        list.extend(tags.iter().map(|t| t.to_string()));
    }
    paths.add_path_operation(P::path(), P::methods(), operation);
}

fn filter(method: HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

/// The document as JSON, with every error code named on `ErrorDetail`.
pub(crate) fn render(paths: Paths) -> String {
    let mut doc = ApiDoc::openapi();
    doc.paths = paths;
    if let Some(components) = doc.components.as_mut() {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut("ErrorDetail") {
            o.description = Some(codes_description());
        }
    }
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

crate::routes! {
    serve,
}

/// This document (built from the routers when asked for: it is rarely read, so it is not kept).
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
}

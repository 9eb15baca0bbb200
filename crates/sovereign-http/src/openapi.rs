//! The OpenAPI 3.1 document: the paths come from the capabilities' `routes!` lists (so they
//! are the router's routes), the info and shared schemas from [`base`], and the description of
//! `ErrorDetail` lists every error code.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use utoipa::openapi::{OpenApi as Document_, RefOr, Schema};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{codes_description, ErrorBody, ErrorDetail};
use crate::trading::*;
use crate::wire::*;
use crate::{alerts, audit, services, truth, AppState};

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
        alerts::AlertIn,
        alerts::RaisedOut,
        alerts::AlertOut,
        alerts::DeliveryOut,
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
        TickIn,
        TicksIn,
        DecimalIn,
        SignalIn,
        SignalOut
    ))
)]
struct ApiDoc;

/// The document's info and shared schemas, before any path.
pub(crate) fn base() -> Document_ {
    ApiDoc::openapi()
}

/// The rendered document, made once when the router is built.
#[derive(Clone)]
pub(crate) struct Document(Arc<String>);

impl Document {
    pub(crate) fn new(doc: Document_) -> Document {
        Document(Arc::new(render(&doc)))
    }
}

/// The document as JSON, with every error code named on `ErrorDetail`.
pub(crate) fn render(doc: &Document_) -> String {
    let mut doc = doc.clone();
    if let Some(components) = doc.components.as_mut() {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut("ErrorDetail") {
            o.description = Some(codes_description());
        }
    }
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(serve))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn serve(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}

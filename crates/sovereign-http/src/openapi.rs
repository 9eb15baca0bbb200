//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::trading::{self, *};
use crate::wire::*;
use crate::{alerts, routes, services, truth};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sovereign",
        description = "Self-hosted trading-operations engine: executor, webhooks, scheduler."
    ),
    paths(
        routes::health,
        routes::status,
        routes::list_tasks,
        routes::register,
        routes::execute,
        routes::results,
        routes::webhook,
        routes::webhook_source,
        routes::webhook_token,
        routes::get_task,
        routes::update_task,
        routes::delete_task,
        routes::execute_task,
        routes::enable_task,
        routes::disable_task,
        routes::list_webhooks,
        routes::audit,
        routes::audit_verify,
        truth::show,
        truth::component,
        services::list,
        services::start,
        services::stop,
        services::restart,
        services::logs,
        services::log_stream,
        services::heartbeat,
        services::health,
        services::health_deep,
        services::sse_services,
        alerts::raise,
        alerts::list,
        alerts::channels,
        alerts::enable,
        alerts::test,
        routes::api_list_tasks,
        routes::api_register,
        routes::api_results,
        serve,
        trading::submit_order,
        trading::list_orders,
        trading::get_order,
        trading::cancel_order,
        trading::modify_order,
        trading::cancel_all,
        trading::flatten,
        trading::positions,
        trading::fills,
        trading::accounts,
        trading::risk,
        trading::hardstop,
        trading::resume,
        trading::ticks,
        trading::signal,
        trading::sse_spot,
        trading::sse_orders,
        trading::sse_fills,
        trading::sse_positions,
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
        routes::AuditOut,
        routes::AuditList,
        routes::VerifyOut,
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

pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

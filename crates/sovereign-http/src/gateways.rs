//! Venues over HTTP: each gateway's connection, last report and reconciliation
//! (`GET /api/gateways`), and reconciling an account with its venue now, optionally taking the
//! venue's positions (`POST /api/gateways/{name}/reconcile`), and a broker bridge's execution
//! reports (`POST /api/gateways/{name}/reports`, signed with the gateway's secret).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sovereign_core::trading::oms::OmsError;
use sovereign_engine::trading::{mismatch_json, GatewayView, Trading, TradingError};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, JsonBody};
use crate::wire::ts;

crate::routes! {
    list_gateways,
    reconcile,
    reports,
}

/// One gateway as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayOut {
    pub name: String,
    /// `ninjatrader` or `webhook`.
    pub kind: String,
    pub account: String,
    pub venue_account: String,
    /// `connected`, `disconnected` or `unknown` (the venue shows no connection state).
    pub connection: String,
    pub last_report_at: Option<String>,
    /// `ok`, `pending` (a difference within its grace), `mismatch` (declared: the account was
    /// put in `reducing`), `unread` (the venue's positions not read yet) or `none`.
    pub reconciliation: String,
    /// Each symbol whose position differs: `symbol`, `instruments`, `engine_qty`,
    /// `venue_qty`, `venue_avg_price`.
    #[schema(value_type = Vec<Object>)]
    pub mismatches: Vec<Value>,
    pub checked_at: Option<String>,
    /// Open orders the venue shows no state for: unknown, not guessed.
    pub unknown_orders: Vec<String>,
    /// Cancels and changes waiting for the connection.
    pub held: usize,
    pub flatten_asked_at: Option<String>,
    /// When the venue's position files said flat after the flatten.
    pub flat_at: Option<String>,
}

impl From<&GatewayView> for GatewayOut {
    fn from(g: &GatewayView) -> Self {
        GatewayOut {
            name: g.name.clone(),
            kind: g.kind.into(),
            account: g.account.clone(),
            venue_account: g.venue_account.clone(),
            connection: g.connection.into(),
            last_report_at: g.last_report_at.map(ts),
            reconciliation: g.reconciliation.into(),
            mismatches: g.mismatches.iter().map(mismatch_json).collect(),
            checked_at: g.checked_at.map(ts),
            unknown_orders: g.unknown_orders.iter().map(u64::to_string).collect(),
            held: g.held,
            flatten_asked_at: g.flatten_asked_at.map(ts),
            flat_at: g.flat_at.map(ts),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayList {
    pub gateways: Vec<GatewayOut>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileIn {
    /// Take the venue's positions as the engine's (one journaled adjustment per symbol).
    #[serde(default)]
    pub adopt_venue: bool,
}

#[utoipa::path(get, path = "/api/gateways", tag = "trading", responses((status = 200, body = GatewayList)))]
pub async fn list_gateways(State(t): State<Trading>) -> ApiResult<Json<GatewayList>> {
    let gateways = t.gateways().await?.iter().map(GatewayOut::from).collect();
    Ok(Json(GatewayList { gateways }))
}

#[utoipa::path(post, path = "/api/gateways/{name}/reconcile", tag = "trading", params(("name" = String, Path)),
    request_body = ReconcileIn,
    responses((status = 200, body = GatewayOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reconcile(
    State(t): State<Trading>,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody<ReconcileIn>,
) -> ApiResult<Json<GatewayOut>> {
    match t.reconcile(name, body.adopt_venue).await {
        Ok(view) => Ok(Json(GatewayOut::from(&view))),
        Err(e) => Err(gateway_error(e)),
    }
}

/// A gateway command's refusal with the status of its kind.
fn gateway_error(e: TradingError) -> ApiError {
    match e {
        TradingError::Oms(OmsError::Invalid(e)) => {
            let status = match e.code {
                "unknown_gateway" => StatusCode::NOT_FOUND,
                "bad_signature" => StatusCode::UNAUTHORIZED,
                "venue_unsupported" | "venue_unread" | "unmapped_instrument" => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::BAD_REQUEST,
            };
            let field = e.field.unwrap_or_else(|| "name".into());
            ApiError::domain(status, e.code, e.message).field(field)
        }
        e => e.into(),
    }
}

/// What a report post did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportsOut {
    /// Reports that changed an order.
    pub applied: usize,
    /// Reports already known (the same execution again): nothing changed.
    pub duplicates: usize,
    /// Reports that could not be applied (an order never sent, a fill beyond the order…):
    /// each recorded on the audit trail, nothing changed.
    #[schema(value_type = Vec<Object>)]
    pub anomalies: Vec<Value>,
}

/// A broker bridge's execution reports: one object or `{"reports": [...]}`, each naming the
/// order (`order_id` `sov-<id>` or `client_order_id`) and its `type` (`accepted`, `fill` with
/// `exec_id`, `qty`, `price` and optional `commission`, `canceled`, `rejected`, `expired`).
/// Signed: `X-Sovereign-Signature: sha256=<hex HMAC-SHA256 of the body under the gateway's
/// secret>`. A repeated execution id changes nothing.
#[utoipa::path(post, path = "/api/gateways/{name}/reports", tag = "trading", params(("name" = String, Path)),
    responses((status = 200, body = ReportsOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reports(
    State(t): State<Trading>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ReportsOut>> {
    let signature = headers
        .get("x-sovereign-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let taken = t
        .bridge_reports(name, body.to_vec(), signature)
        .await
        .map_err(gateway_error)?;
    Ok(Json(ReportsOut {
        applied: taken.applied,
        duplicates: taken.duplicates,
        anomalies: taken
            .anomalies
            .iter()
            .map(|(id, code, message)| json!({"order_id": id.to_string(), "code": code, "message": message}))
            .collect(),
    }))
}

//! Webhook intake over HTTP: `POST /webhook[/{source}[/{token}]]` and the record of calls
//! (`GET /api/webhooks`). Handlers take the [`Webhooks`] handle.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::Value;
use sovereign_engine::webhooks::{WebhookCall, Webhooks};

use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{body_error, parse, ApiPath, ApiQuery};
use crate::permissions::Client;
use crate::tasks::parse_limit;
use crate::wire::*;

// The webhook routes, with their own (smaller) body limit.
crate::routes! {
    webhook,
    webhook_source,
    webhook_token,
    list_webhooks,
}

#[utoipa::path(post, path = "/webhook", tag = "executor", request_body = WebhookIn,
    responses((status = 202, body = WebhookOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn webhook(
    State(w): State<Webhooks>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    intake(&w, None, None, from(client), &headers, body).await
}

#[utoipa::path(post, path = "/webhook/{source}", tag = "executor", request_body = WebhookIn,
    params(("source" = String, Path)),
    responses((status = 202, body = WebhookOut), (status = 401, body = ErrorBody)))]
pub async fn webhook_source(
    State(w): State<Webhooks>,
    ApiPath(source): ApiPath<String>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    intake(&w, Some(source), None, from(client), &headers, body).await
}

#[utoipa::path(post, path = "/webhook/{source}/{token}", tag = "executor", request_body = WebhookIn,
    params(("source" = String, Path), ("token" = String, Path)),
    responses((status = 202, body = WebhookOut), (status = 401, body = ErrorBody)))]
pub async fn webhook_token(
    State(w): State<Webhooks>,
    ApiPath((source, token)): ApiPath<(String, String)>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    intake(&w, Some(source), Some(token), from(client), &headers, body).await
}

/// The client address the guard found (`None` for in-process callers).
pub(crate) fn from(client: Option<Extension<Client>>) -> Option<std::net::IpAddr> {
    client.and_then(|Extension(c)| c.0)
}

async fn intake(
    w: &Webhooks,
    path_source: Option<String>,
    token: Option<String>,
    from: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let raw = body.map_err(body_error)?;
    // Senders addressed by URL (TradingView) may post plain text; keep it as `{"message": text}`.
    let parsed: Value = match (parse::<Value>(&raw), &path_source) {
        (Ok(v), _) => v,
        (Err(_), Some(_)) => serde_json::json!({ "message": String::from_utf8_lossy(&raw) }),
        (Err(e), None) => return Err(e),
    };
    let fields: WebhookIn = match &parsed {
        Value::Object(_) => serde_json::from_value(parsed.clone())
            .map_err(|e| ApiError::new(Code::InvalidType, e.to_string()))?,
        _ => {
            return Err(ApiError::new(
                Code::InvalidJson,
                "webhook body must be a JSON object",
            ))
        }
    };
    let source = match (path_source, fields.source.clone()) {
        (Some(p), _) => p,
        (None, Some(b)) if !b.is_empty() => b,
        _ => {
            return Err(ApiError::new(
                Code::MissingField,
                "missing field `source` (or post to /webhook/{source})",
            )
            .field("source"))
        }
    };
    let data = fields.data.clone().unwrap_or_else(|| match &fields.source {
        // `{"source","event","data"}` without data: no data. A bare payload: the payload is the data.
        Some(_) => Value::Object(Default::default()),
        None => parsed.clone(),
    });
    let body_id = match &fields.id {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let idempotency = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let delivery_id =
        sovereign_core::webhook::delivery_id(body_id.or(idempotency).as_deref(), &data);
    let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let receipt = w
        .receive(
            WebhookCall {
                source,
                event: fields.event,
                data,
                delivery_id,
                url_token: token.as_deref(),
                header: &lookup,
                raw_body: &raw,
                body: parsed,
            },
            from,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookOut {
            status: if receipt.duplicate {
                "duplicate"
            } else {
                "accepted"
            }
            .into(),
            webhook_id: receipt.webhook_id,
            duplicate: receipt.duplicate,
            tasks: receipt.tasks,
            skipped: receipt.skipped,
        }),
    ))
}

#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", params(LimitQuery),
    responses((status = 200, body = WebhookList)))]
pub async fn list_webhooks(
    State(w): State<Webhooks>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Json<WebhookList>> {
    let limit = parse_limit(q.limit.as_deref(), 100, 10_000)?;
    let rows = w.list(limit).await?;
    let webhooks: Vec<WebhookRecordOut> = rows
        .into_iter()
        .map(|w| WebhookRecordOut {
            webhook_id: w.id,
            source: w.source,
            event: w.event,
            delivery_id: w.delivery_id,
            received_at: ts(w.received_at),
            status: w.status.as_str().into(),
            reason: w.reason,
            tasks: w.tasks,
        })
        .collect();
    Ok(Json(WebhookList {
        count: webhooks.len(),
        webhooks,
    }))
}

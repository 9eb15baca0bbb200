//! Request handlers: one short function per endpoint, engine in, JSON out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sovereign_engine::executor::RunContext;
use sovereign_engine::webhooks::WebhookCall;
use sovereign_engine::Engine;
use sovereign_store::ResultFilter;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{body_error, parse, ApiQuery, JsonBody};
use crate::wire::*;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
}

type ApiResult<T> = Result<T, ApiError>;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[utoipa::path(get, path = "/health", tag = "executor",
    responses((status = 200, body = HealthOut), (status = 503, body = HealthOut)))]
pub async fn health(State(s): State<AppState>) -> Response {
    let verdict = s.engine.health().await;
    let uptime = s.engine.uptime();
    let body = HealthOut {
        status: if verdict.is_ok() {
            "healthy"
        } else {
            "unhealthy"
        }
        .into(),
        timestamp: ts(Utc::now()),
        phase: "3".into(),
        sovereignty: "local".into(),
        version: VERSION.into(),
        uptime_s: uptime.as_secs(),
        reason: verdict.err(),
    };
    let code = if body.reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/status", tag = "executor", responses((status = 200, body = StatusOut)))]
pub async fn status(State(s): State<AppState>) -> ApiResult<Json<StatusOut>> {
    let st = s.engine.status().await?;
    Ok(Json(StatusOut {
        sovereignty_level: "local".into(),
        version: VERSION.into(),
        started_at: ts(st.started_at),
        uptime_s: st.uptime.as_secs(),
        scheduler: SchedulerOut {
            running: st.scheduler_running,
            scheduled_tasks: st.scheduled,
            fired: st.fired,
            next_fire: st.next_fire.map(ts),
        },
        tasks: TaskCounts {
            total: st.tasks,
            enabled: st.enabled,
            running: st.running,
        },
        store: StoreOut {
            location: st.store_location,
            results: st.store.results,
            webhooks: st.store.webhooks,
            commits: st.store.commits,
            writes: st.store.writes,
        },
    }))
}

#[utoipa::path(get, path = "/tasks", tag = "executor", responses((status = 200, body = TaskList)))]
pub async fn list_tasks(State(s): State<AppState>) -> Json<TaskList> {
    let tasks: Vec<TaskOut> = s
        .engine
        .tasks()
        .await
        .into_iter()
        .map(TaskOut::from)
        .collect();
    Json(TaskList {
        count: tasks.len(),
        tasks,
    })
}

#[utoipa::path(post, path = "/register", tag = "executor", request_body = TaskIn,
    responses((status = 201, body = TaskOut), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn register(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<TaskIn>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let view = s.engine.register(body.into()).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/api/tasks", tag = "tasks", responses((status = 200, body = TaskList)))]
pub async fn api_list_tasks(state: State<AppState>) -> Json<TaskList> {
    list_tasks(state).await
}

#[utoipa::path(post, path = "/api/tasks", tag = "tasks", request_body = TaskIn,
    responses((status = 201, body = TaskOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn api_register(
    state: State<AppState>,
    body: JsonBody<TaskIn>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    register(state, body).await
}

#[utoipa::path(post, path = "/execute", tag = "executor", request_body = ExecuteIn,
    responses((status = 200, body = ResultOut), (status = 404, body = ErrorBody)))]
pub async fn execute(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<ExecuteIn>,
) -> ApiResult<Json<ResultOut>> {
    run_now(&s, &body.task_id, body.data).await
}

#[utoipa::path(post, path = "/api/tasks/{id}/execute", tag = "tasks",
    params(("id" = String, Path)),
    responses((status = 200, body = ResultOut), (status = 404, body = ErrorBody)))]
pub async fn execute_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ResultOut>> {
    let data = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse::<Value>(&body)?
    };
    run_now(&s, &id, data).await
}

async fn run_now(s: &AppState, id: &str, data: Value) -> ApiResult<Json<ResultOut>> {
    let mut ctx = RunContext::manual();
    ctx.data = data;
    let result = s.engine.execute(id, ctx).await?;
    Ok(Json(result.into()))
}

#[utoipa::path(get, path = "/results", tag = "executor", params(ResultQuery),
    responses((status = 200, body = ResultList), (status = 400, body = ErrorBody)))]
pub async fn results(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> ApiResult<Json<ResultList>> {
    let since = match q.since.as_deref() {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_time",
                        "since must be an RFC 3339 time",
                    )
                    .field("since")
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let filter = ResultFilter {
        task_id: q.task_id,
        since,
        limit: parse_limit(q.limit.as_deref(), 100, 10_000)?,
    };
    let results: Vec<ResultOut> = s
        .engine
        .results(filter)
        .await?
        .into_iter()
        .map(ResultOut::from)
        .collect();
    Ok(Json(ResultList {
        count: results.len(),
        results,
    }))
}

#[utoipa::path(get, path = "/api/results", tag = "tasks", params(ResultQuery),
    responses((status = 200, body = ResultList), (status = 400, body = ErrorBody)))]
pub async fn api_results(
    state: State<AppState>,
    query: ApiQuery<ResultQuery>,
) -> ApiResult<Json<ResultList>> {
    results(state, query).await
}

pub(crate) fn parse_limit(text: Option<&str>, default: usize, max: usize) -> ApiResult<usize> {
    match text {
        None => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_limit",
                format!("limit must be a whole number from 1 to {max}"),
            )
            .field("limit")),
        },
    }
}

#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(s.engine.task(&id).await?.into()))
}

#[utoipa::path(put, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    request_body = TaskIn,
    responses((status = 200, body = TaskOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TaskIn>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(s.engine.update(&id, body.into()).await?.into()))
}

#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/tasks/{id}/enable", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn enable_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(s.engine.set_enabled(&id, true).await?.into()))
}

#[utoipa::path(post, path = "/api/tasks/{id}/disable", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn disable_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(s.engine.set_enabled(&id, false).await?.into()))
}

#[utoipa::path(post, path = "/webhook", tag = "executor", request_body = WebhookIn,
    responses((status = 202, body = WebhookOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    intake(&s, None, None, &headers, body).await
}

#[utoipa::path(post, path = "/webhook/{source}", tag = "executor", request_body = WebhookIn,
    params(("source" = String, Path)),
    responses((status = 202, body = WebhookOut), (status = 401, body = ErrorBody)))]
pub async fn webhook_source(
    State(s): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    intake(&s, Some(source), None, &headers, body).await
}

#[utoipa::path(post, path = "/webhook/{source}/{token}", tag = "executor", request_body = WebhookIn,
    params(("source" = String, Path), ("token" = String, Path)),
    responses((status = 202, body = WebhookOut), (status = 401, body = ErrorBody)))]
pub async fn webhook_token(
    State(s): State<AppState>,
    Path((source, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    intake(&s, Some(source), Some(token), &headers, body).await
}

async fn intake(
    s: &AppState,
    path_source: Option<String>,
    token: Option<String>,
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
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_type", e.to_string()))?,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "webhook body must be a JSON object",
            ))
        }
    };
    let source = match (path_source, fields.source.clone()) {
        (Some(p), _) => p,
        (None, Some(b)) if !b.is_empty() => b,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_field",
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
    let receipt = s
        .engine
        .webhook(WebhookCall {
            source,
            event: fields.event,
            data,
            delivery_id,
            url_token: token.as_deref(),
            header: &lookup,
            raw_body: &raw,
            body: parsed,
        })
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
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Json<WebhookList>> {
    let limit = parse_limit(q.limit.as_deref(), 100, 10_000)?;
    let rows = s
        .engine
        .store()
        .list_webhooks(limit)
        .await
        .map_err(sovereign_engine::EngineError::from)?;
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

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

// ----- audit trail --------------------------------------------------------------------------

/// One audit record as exported (also one line of `sovereign audit export`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditOut {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub prev: String,
    pub hash: String,
}

impl From<&sovereign_core::audit::AuditRecord> for AuditOut {
    fn from(r: &sovereign_core::audit::AuditRecord) -> AuditOut {
        AuditOut {
            seq: r.seq,
            at: r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: r.actor.clone(),
            kind: r.kind.clone(),
            payload: r.payload.clone(),
            prev: r.prev.clone(),
            hash: r.hash.clone(),
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub records: Vec<AuditOut>,
    pub count: usize,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records with a greater sequence number.
    pub since: Option<String>,
    /// Default 1000, at most 10000.
    pub limit: Option<String>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody)))]
pub async fn audit(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let since = match q.since.as_deref() {
        None => 0,
        Some(t) => t.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_since",
                "since must be a record sequence number",
            )
            .field("since")
        })?,
    };
    let limit = parse_limit(q.limit.as_deref(), 1000, 10_000)?;
    let records = s
        .engine
        .store()
        .list_audit(since, limit)
        .await
        .map_err(sovereign_engine::EngineError::from)?;
    let records: Vec<AuditOut> = records.iter().map(AuditOut::from).collect();
    Ok(Json(AuditList {
        count: records.len(),
        records,
    }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VerifyOut {
    pub ok: bool,
    pub records: usize,
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// `changed`, `removed`, `inserted`, `reordered` when not ok.
    pub problem: Option<String>,
    pub problem_seq: Option<u64>,
    pub message: Option<String>,
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyOut, description = "the verdict on the stored trail")))]
pub async fn audit_verify(State(s): State<AppState>) -> ApiResult<Json<VerifyOut>> {
    let store = s.engine.store();
    let mut all = Vec::new();
    loop {
        let after = all
            .last()
            .map_or(0, |r: &sovereign_core::audit::AuditRecord| r.seq);
        let page = store
            .list_audit(after, 10_000)
            .await
            .map_err(sovereign_engine::EngineError::from)?;
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    Ok(Json(
        match sovereign_core::audit::verify(&all, None, None) {
            Ok(head) => VerifyOut {
                ok: true,
                records: head.records,
                head_seq: Some(head.seq).filter(|s| *s > 0),
                head_hash: Some(head.hash).filter(|_| head.seq > 0),
                problem: None,
                problem_seq: None,
                message: None,
            },
            Err(t) => VerifyOut {
                ok: false,
                records: all.len(),
                head_seq: None,
                head_hash: None,
                problem: Some(t.kind.as_str().into()),
                problem_seq: Some(t.seq),
                message: Some(t.to_string()),
            },
        },
    ))
}

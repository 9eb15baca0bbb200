//! The executor's routes: the contract (`/health`, `/status`, `/tasks`, `/register`,
//! `/execute`, `/results`) and the task admin API under `/api/tasks`. Each handler takes the
//! [`Executor`] handle, nothing else of the engine.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sovereign_core::task::RunResult;
use sovereign_engine::executor::{Executor, RunContext};
use sovereign_engine::trading::Trading;
use sovereign_store::ResultFilter;

use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{parse, ApiPath, ApiQuery, JsonBody};
use crate::trading::{event, sse_from};
use crate::wire::*;
use crate::Closing;

const VERSION: &str = env!("CARGO_PKG_VERSION");

// The executor's routes.
crate::routes! {
    health,
    status,
    list_tasks,
    register,
    execute,
    results,
    api_list_tasks,
    api_register,
    get_task,
    update_task,
    delete_task,
    execute_task,
    enable_task,
    disable_task,
    api_results,
    sse_results,
}

#[utoipa::path(get, path = "/health", tag = "executor",
    responses((status = 200, body = HealthOut), (status = 503, body = HealthOut)))]
pub async fn health(State(x): State<Executor>) -> Response {
    let verdict = x.health().await;
    let uptime = x.uptime();
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
pub async fn status(
    State(x): State<Executor>,
    State(t): State<Trading>,
) -> ApiResult<Json<StatusOut>> {
    let st = x.status().await?;
    let external_symbols = t
        .external_symbols()
        .await?
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
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
        feed: FeedOut {
            synthetic: t.synthetic_feed(),
            external_symbols,
        },
    }))
}

#[utoipa::path(get, path = "/tasks", tag = "executor", responses((status = 200, body = TaskList)))]
pub async fn list_tasks(State(x): State<Executor>) -> Json<TaskList> {
    let tasks: Vec<TaskOut> = x.tasks().await.into_iter().map(TaskOut::from).collect();
    Json(TaskList {
        count: tasks.len(),
        tasks,
    })
}

#[utoipa::path(post, path = "/register", tag = "executor", request_body = TaskIn,
    responses((status = 201, body = TaskOut), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn register(
    State(x): State<Executor>,
    JsonBody(body): JsonBody<TaskIn>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let view = x.register(body.into()).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/api/tasks", tag = "tasks", responses((status = 200, body = TaskList)))]
pub async fn api_list_tasks(state: State<Executor>) -> Json<TaskList> {
    list_tasks(state).await
}

#[utoipa::path(post, path = "/api/tasks", tag = "tasks", request_body = TaskIn,
    responses((status = 201, body = TaskOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn api_register(
    state: State<Executor>,
    body: JsonBody<TaskIn>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    register(state, body).await
}

#[utoipa::path(post, path = "/execute", tag = "executor", request_body = ExecuteIn,
    responses((status = 200, body = ResultOut), (status = 404, body = ErrorBody)))]
pub async fn execute(
    State(x): State<Executor>,
    JsonBody(body): JsonBody<ExecuteIn>,
) -> ApiResult<Json<ResultOut>> {
    run_now(&x, &body.task_id, body.data).await
}

#[utoipa::path(post, path = "/api/tasks/{id}/execute", tag = "tasks",
    params(("id" = String, Path)),
    responses((status = 200, body = ResultOut), (status = 404, body = ErrorBody)))]
pub async fn execute_task(
    State(x): State<Executor>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<ResultOut>> {
    let data = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse::<Value>(&body)?
    };
    run_now(&x, &id, data).await
}

async fn run_now(x: &Executor, id: &str, data: Value) -> ApiResult<Json<ResultOut>> {
    let mut ctx = RunContext::manual();
    ctx.data = data;
    let result = x.execute(id, ctx).await?;
    Ok(Json(result.into()))
}

#[utoipa::path(get, path = "/results", tag = "executor", params(ResultQuery),
    responses((status = 200, body = ResultList), (status = 400, body = ErrorBody)))]
pub async fn results(
    State(x): State<Executor>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> ApiResult<Json<ResultList>> {
    let since = match q.since.as_deref() {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::new(Code::InvalidTime, "since must be an RFC 3339 time")
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
    let results: Vec<ResultOut> = x
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
    state: State<Executor>,
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
                Code::InvalidLimit,
                format!("limit must be a whole number from 1 to {max}"),
            )
            .field("limit")),
        },
    }
}

#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(x): State<Executor>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(x.task(&id).await?.into()))
}

#[utoipa::path(put, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    request_body = TaskIn,
    responses((status = 200, body = TaskOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_task(
    State(x): State<Executor>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<TaskIn>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(x.update(&id, body.into()).await?.into()))
}

#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_task(
    State(x): State<Executor>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    x.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/tasks/{id}/enable", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn enable_task(
    State(x): State<Executor>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(x.set_enabled(&id, true).await?.into()))
}

#[utoipa::path(post, path = "/api/tasks/{id}/disable", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
pub async fn disable_task(
    State(x): State<Executor>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TaskOut>> {
    Ok(Json(x.set_enabled(&id, false).await?.into()))
}

/// Task results live: `event: result` with each run's result once it is stored.
#[utoipa::path(get, path = "/sse/results", tag = "streams", responses((status = 200, description = "server-sent events: `event: result` with each run's result once stored", content_type = "text/event-stream")))]
pub async fn sse_results(
    State(x): State<Executor>,
    State(closing): State<Closing>,
) -> impl IntoResponse {
    sse_from(x.subscribe_results(), closing, |r: &RunResult| {
        vec![event("result", ResultOut::from(r.clone()))]
    })
}

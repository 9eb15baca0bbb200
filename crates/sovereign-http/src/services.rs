//! Services over HTTP: list, start/stop/restart, logs (tail and live), heartbeats, the
//! transition stream, and the engine's health (`/api/health`, `/api/health/deep`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sovereign_core::supervise::{Score, State as ServiceState};
use sovereign_engine::audit::Audit;
use sovereign_engine::executor::Executor;
use sovereign_engine::notify::Notifier;
use sovereign_engine::supervisor::{ServiceEvent, ServiceView, Supervisor, SupervisorError};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse, ApiPath, ApiQuery};
use crate::tasks::parse_limit;
use crate::trading::{event, sse_from};
use crate::wire::ts;
use crate::Closing;

// The supervisor's routes and the engine's health.
crate::routes! {
    list,
    start,
    stop,
    restart,
    logs,
    log_stream,
    heartbeat,
    health,
    health_deep,
    sse_services,
}

fn unknown(name: &str) -> ApiError {
    SupervisorError::Unknown(name.to_string()).into()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExitOut {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCheckOut {
    /// `http`, `tcp`, `command`, `heartbeat` or `redis_key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The last verdict's detail, e.g. `HTTP 200`.
    pub last: Option<String>,
    /// Failed checks in a row.
    pub failures: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyOut {
    pub service: String,
    /// `started`, `healthy` or `completed`.
    pub condition: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatOut {
    pub at: String,
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealerOut {
    pub at: String,
    pub exit: Option<i32>,
    pub output: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceOut {
    pub name: String,
    /// `stopped`, `starting`, `running`, `healthy`, `unhealthy`, `backoff`, `stopping`,
    /// `exited` or `failed`.
    pub state: &'static str,
    pub reason: String,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    /// Whole seconds since the current process started (the wire contract's field).
    pub uptime_s: Option<i64>,
    pub uptime_ms: Option<i64>,
    pub restarts: u32,
    pub last_exit: Option<ExitOut>,
    pub health: Option<HealthCheckOut>,
    pub depends_on: Vec<DependencyOut>,
    pub waiting_for: Vec<String>,
    pub wanted: bool,
    pub autostart: bool,
    pub heartbeat: Option<HeartbeatOut>,
    pub healer: Option<HealerOut>,
}

impl From<ServiceView> for ServiceOut {
    fn from(v: ServiceView) -> ServiceOut {
        let now = chrono::Utc::now();
        ServiceOut {
            state: v.state.as_str(),
            reason: v.reason,
            pid: v.pid,
            started_at: v.started_at.map(ts),
            uptime_s: v.started_at.map(|t| (now - t).num_seconds()),
            uptime_ms: v.started_at.map(|t| (now - t).num_milliseconds()),
            restarts: v.restarts,
            last_exit: v.last_exit.map(|e| ExitOut {
                code: e.code,
                signal: e.signal,
                at: ts(e.at),
                description: e.describe(),
            }),
            health: v.health_kind.map(|kind| HealthCheckOut {
                kind,
                last: v.last_health,
                failures: v.health_failures,
            }),
            depends_on: v
                .depends_on
                .into_iter()
                .map(|(service, c)| DependencyOut {
                    service,
                    condition: c.as_str(),
                })
                .collect(),
            waiting_for: v.waiting_for,
            wanted: v.wanted,
            autostart: v.autostart,
            heartbeat: v.heartbeat.map(|b| HeartbeatOut {
                at: ts(b.at),
                payload: b.payload,
            }),
            healer: v.healer.map(|h| HealerOut {
                at: ts(h.at),
                exit: h.exit,
                output: h.output,
            }),
            name: v.name,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceOut>,
}

#[utoipa::path(get, path = "/api/services", tag = "services",
    responses((status = 200, description = "every service in start order", body = ServiceList)))]
pub async fn list(State(sup): State<Supervisor>) -> Json<ServiceList> {
    let services = sup.services().await;
    Json(ServiceList {
        services: services.into_iter().map(ServiceOut::from).collect(),
    })
}

#[utoipa::path(post, path = "/api/services/{name}/start", tag = "services", params(("name" = String, Path)),
    responses((status = 200, description = "wanted up: started, or waiting for its dependencies", body = ServiceOut), (status = 404, body = ErrorBody)))]
pub async fn start(
    State(sup): State<Supervisor>,
    State(audit): State<Audit>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServiceOut>> {
    let v = sup.start_service(&name).await?;
    audit.record("api", "service.start", json!({"service": name}));
    Ok(Json(v.into()))
}

#[utoipa::path(post, path = "/api/services/{name}/stop", tag = "services", params(("name" = String, Path)),
    responses((status = 200, description = "stopping (the stop signal sent) or stopped", body = ServiceOut), (status = 404, body = ErrorBody)))]
pub async fn stop(
    State(sup): State<Supervisor>,
    State(audit): State<Audit>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServiceOut>> {
    let v = sup.stop_service(&name).await?;
    audit.record("api", "service.stop", json!({"service": name}));
    Ok(Json(v.into()))
}

#[utoipa::path(post, path = "/api/services/{name}/restart", tag = "services", params(("name" = String, Path)),
    responses((status = 200, body = ServiceOut), (status = 404, body = ErrorBody)))]
pub async fn restart(
    State(sup): State<Supervisor>,
    State(audit): State<Audit>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServiceOut>> {
    let v = sup.restart_service(&name).await?;
    audit.record("api", "service.restart", json!({"service": name}));
    Ok(Json(v.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// The last this many lines (default 200, at most 1000).
    pub tail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogOut {
    pub service: String,
    /// The log file (rotated beside it as `.1`, `.2`, …).
    pub file: String,
    /// `TIME STREAM TEXT`, oldest first; STREAM is `out`, `err` or `sovereign`.
    pub lines: Vec<String>,
}

#[utoipa::path(get, path = "/api/services/{name}/logs", tag = "services", params(("name" = String, Path), LogQuery),
    responses((status = 200, body = LogOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(sup): State<Supervisor>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<LogOut>> {
    let tail = parse_limit(
        q.tail.as_deref(),
        200,
        sovereign_engine::supervisor::logs::RING,
    )
    .map_err(|e| e.field("tail"))?;
    let sink = sup.logs(&name).ok_or_else(|| unknown(&name))?;
    Ok(Json(LogOut {
        service: name,
        file: sink.path().display().to_string(),
        lines: sink.tail(tail),
    }))
}

/// Live log lines: `event: line`, `data: TIME STREAM TEXT`.
#[utoipa::path(get, path = "/api/services/{name}/logs/stream", tag = "services", params(("name" = String, Path)),
    responses((status = 200, description = "server-sent events: `event: line` per log line", content_type = "text/event-stream"), (status = 404, body = ErrorBody)))]
pub async fn log_stream(
    State(sup): State<Supervisor>,
    State(closing): State<Closing>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let sink = sup.logs(&name).ok_or_else(|| unknown(&name))?;
    Ok(sse_from(sink.subscribe(), closing, |line: &String| {
        vec![axum::response::sse::Event::default()
            .event("line")
            .data(line.clone())]
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionOut {
    pub at: String,
    pub service: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
}

/// Service transitions: `event: service`, `data: {at, service, from, to, reason}`.
#[utoipa::path(get, path = "/sse/services", tag = "streams", responses((status = 200, description = "server-sent events: `event: service` per state change", content_type = "text/event-stream")))]
pub async fn sse_services(
    State(sup): State<Supervisor>,
    State(closing): State<Closing>,
) -> impl IntoResponse {
    sse_from(sup.events(), closing, |e: &ServiceEvent| {
        vec![event(
            "service",
            TransitionOut {
                at: ts(e.at),
                service: e.service.clone(),
                from: e.from.as_str(),
                to: e.to.as_str(),
                reason: e.reason.clone(),
            },
        )]
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BeatOut {
    pub service: String,
    pub at: String,
}

#[utoipa::path(post, path = "/api/heartbeats/{service}", tag = "services", params(("service" = String, Path)),
    request_body(content = Object, description = "optional: any JSON, kept as the service's last status"),
    responses((status = 200, body = BeatOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn heartbeat(
    State(sup): State<Supervisor>,
    ApiPath(service): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<BeatOut>> {
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse(&body)?
    };
    if !sup.heartbeat(&service, payload) {
        return Err(unknown(&service).field("service"));
    }
    Ok(Json(BeatOut {
        service,
        at: ts(chrono::Utc::now()),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    /// `store`, `service:NAME`, `heartbeat:NAME`, `alerts`.
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// A failing critical check makes the score 0.
    pub critical: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeepHealthOut {
    /// `healthy` (score 1), `degraded` (0 < score < 1) or `unhealthy` (0).
    pub status: &'static str,
    /// A JSON number from 0 to 1 in thousandths (passing checks / all checks), e.g. `0.75`.
    pub score: f64,
    /// How the score is computed.
    pub how: &'static str,
    pub checks: Vec<CheckOut>,
}

const HOW: &str = "passing checks / all checks (the store, each wanted service: up and not unhealthy, each heartbeat within its TTL, alert channels not disabled); 0 when the store fails";

async fn deep(executor: &Executor, sup: &Supervisor, notifier: &Notifier) -> DeepHealthOut {
    let mut checks = Vec::new();
    let store = executor.health().await;
    checks.push(CheckOut {
        name: "store".into(),
        ok: store.is_ok(),
        detail: store.err().unwrap_or_else(|| "reads and writes".into()),
        critical: true,
    });
    for v in sup.services().await {
        if !v.wanted && !v.state.alive() {
            continue;
        }
        let ok = matches!(v.state, ServiceState::Running | ServiceState::Healthy)
            || (v.state == ServiceState::Exited
                && v.last_exit.as_ref().is_some_and(|e| e.success()));
        checks.push(CheckOut {
            name: format!("service:{}", v.name),
            ok,
            detail: format!("{}: {}", v.state.as_str(), v.reason),
            critical: false,
        });
        if v.health_kind == Some("heartbeat") {
            checks.push(CheckOut {
                name: format!("heartbeat:{}", v.name),
                ok: v.state == ServiceState::Healthy,
                detail: v
                    .last_health
                    .clone()
                    .unwrap_or_else(|| "no heartbeat yet".into()),
                critical: false,
            });
        }
    }
    let disabled: Vec<String> = notifier
        .channels()
        .into_iter()
        .filter(|c| c.state.disabled.is_some())
        .map(|c| c.name)
        .collect();
    checks.push(CheckOut {
        name: "alerts".into(),
        ok: disabled.is_empty(),
        detail: if disabled.is_empty() {
            "every alert channel is enabled".into()
        } else {
            format!("disabled: {}", disabled.join(", "))
        },
        critical: false,
    });
    let score = Score {
        passing: checks.iter().filter(|c| c.ok).count(),
        total: checks.len(),
        critical_failed: checks.iter().any(|c| c.critical && !c.ok),
    };
    let permille = score.permille();
    DeepHealthOut {
        status: match permille {
            1000 => "healthy",
            0 => "unhealthy",
            _ => "degraded",
        },
        score: f64::from(permille) / 1000.0,
        how: HOW,
        checks,
    }
}

#[utoipa::path(get, path = "/api/health/deep", tag = "meta",
    responses((status = 200, body = DeepHealthOut), (status = 503, description = "score 0", body = DeepHealthOut)))]
pub async fn health_deep(
    State(executor): State<Executor>,
    State(sup): State<Supervisor>,
    State(notifier): State<Notifier>,
) -> impl IntoResponse {
    let out = deep(&executor, &sup, &notifier).await;
    let code = if out.status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthSummaryOut {
    pub status: &'static str,
    /// From 0 to 1 (see `/api/health/deep`).
    pub score: f64,
    /// Checks failing, by name.
    pub failing: Vec<String>,
}

#[utoipa::path(get, path = "/api/health", tag = "meta",
    responses((status = 200, body = HealthSummaryOut), (status = 503, description = "score 0", body = HealthSummaryOut)))]
pub async fn health(
    State(executor): State<Executor>,
    State(sup): State<Supervisor>,
    State(notifier): State<Notifier>,
) -> impl IntoResponse {
    let out = deep(&executor, &sup, &notifier).await;
    let code = if out.status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        Json(HealthSummaryOut {
            status: out.status,
            score: out.score,
            failing: out
                .checks
                .into_iter()
                .filter(|c| !c.ok)
                .map(|c| c.name)
                .collect(),
        }),
    )
}

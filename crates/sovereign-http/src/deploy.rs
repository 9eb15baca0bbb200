//! Deploys over HTTP, as the stack this replaces had them under `/api/v1`: start a run, steer
//! it (promote, pause, resume, abort, roll back to a version), read status, history and the
//! deploys' alerts, one autonomy document (deploys, trading states, the healer, the
//! scheduler), a git push webhook, and the progress as server-sent events.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sovereign_core::webhook::{verify, Presented, SourceAuth};
use sovereign_engine::audit::Audit;
use sovereign_engine::deploy::{
    Deploy, DeployError, Figures, Notice, Op, PlanStatus, RunSummary, RunView, Trigger,
};
use sovereign_engine::executor::Executor;
use sovereign_engine::supervisor::Supervisor;
use sovereign_engine::trading::Trading;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Actor, ApiPath, ApiQuery, JsonBody};
use crate::tasks::parse_limit;
use crate::trading::{event, sse_from};
use crate::wire::ts;
use crate::Closing;

crate::routes! {
    run,
    promote,
    pause,
    resume,
    abort,
    rollback,
    status,
    history,
    run_record,
    audit_trail,
    autonomy,
    hook,
    sse_deploys,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRunIn {
    pub plan: String,
    /// A git ref (resolved in the plan's repository) or, for a plan without one, the version
    /// itself; absent: the plan's ref.
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployPromoteIn {
    /// Also skip every later stage's gate.
    #[serde(default)]
    pub full: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRollbackIn {
    /// The version every target goes back to.
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployTargetOut {
    pub stage: String,
    pub target: String,
    /// `waiting`, `deploying`, `deployed`, `deploy_failed`, `rolling_back`, `rolled_back`,
    /// `rollback_failed`.
    pub state: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployGateCheckOut {
    pub check: String,
    pub target: Option<String>,
    pub severity: &'static str,
    pub successes: u32,
    pub failures: u32,
    pub errors: u32,
    pub inconclusive: u32,
    /// What the last measurement found.
    pub last: Option<String>,
}

/// A run in progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployRunOut {
    pub id: u64,
    pub plan: String,
    /// `deploy`, or `rollback` (`rollback --to`).
    pub kind: String,
    pub version: String,
    pub trigger: String,
    pub actor: String,
    pub created_at: String,
    /// `pending`, `deploying`, `verifying`, `paused`, `promoting`, `rolling_back`,
    /// `succeeded`, `succeeded_partial`, `failed`, `rolled_back`, `aborted`.
    pub phase: &'static str,
    pub stage: Option<String>,
    pub reason: Option<String>,
    /// A run waiting for the exchange session to close starts then.
    pub waiting_until: Option<String>,
    pub targets: Vec<DeployTargetOut>,
    /// The checks of the stage being verified.
    pub gate: Vec<DeployGateCheckOut>,
}

impl From<RunView> for DeployRunOut {
    fn from(v: RunView) -> DeployRunOut {
        DeployRunOut {
            id: v.run.id,
            plan: v.run.plan,
            kind: v.run.kind,
            version: v.run.version,
            trigger: v.run.trigger,
            actor: v.run.actor,
            created_at: ts(v.run.created_at),
            phase: v.phase,
            stage: v.stage,
            reason: v.reason,
            waiting_until: v.waiting_until.map(ts),
            targets: v
                .targets
                .into_iter()
                .map(|t| DeployTargetOut {
                    stage: t.stage,
                    target: t.target,
                    state: t.state,
                })
                .collect(),
            gate: v
                .gate
                .into_iter()
                .map(|c| DeployGateCheckOut {
                    check: c.check,
                    target: c.target,
                    severity: c.severity,
                    successes: c.successes,
                    failures: c.failures,
                    errors: c.errors,
                    inconclusive: c.inconclusive,
                    last: c.last,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployMeasurementOut {
    pub at: String,
    /// `success`, `failure`, `inconclusive` or `error` (could not measure).
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployCheckOut {
    pub check: String,
    pub target: Option<String>,
    pub severity: String,
    pub measurements: Vec<DeployMeasurementOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployStageOut {
    pub name: String,
    pub started_at: Option<String>,
    /// When its gate passed (or it was promoted).
    pub passed_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub deployed: Vec<String>,
    pub failed: Vec<String>,
    pub rolled_back: Vec<String>,
    pub rollback_failed: Vec<String>,
    pub checks: Vec<DeployCheckOut>,
}

/// A run as its events tell it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployHistoryRunOut {
    pub id: u64,
    pub plan: String,
    pub kind: String,
    pub version: String,
    pub trigger: String,
    pub actor: String,
    /// The version each target ran before the run.
    pub previous: BTreeMap<String, String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The phase it ended in (or is in).
    pub outcome: String,
    /// Why it rolled back, failed or paused.
    pub reason: Option<String>,
    pub stages: Vec<DeployStageOut>,
}

impl From<RunSummary> for DeployHistoryRunOut {
    fn from(r: RunSummary) -> DeployHistoryRunOut {
        DeployHistoryRunOut {
            duration_ms: r.duration_ms(),
            id: r.run.id,
            plan: r.run.plan,
            kind: r.run.kind,
            version: r.run.version,
            trigger: r.run.trigger,
            actor: r.run.actor,
            previous: r.run.previous,
            started_at: ts(r.run.created_at),
            ended_at: r.ended_at.map(ts),
            outcome: r.outcome,
            reason: r.reason,
            stages: r
                .stages
                .into_iter()
                .map(|s| DeployStageOut {
                    duration_ms: s.duration_ms(),
                    name: s.name,
                    started_at: s.started_at.map(ts),
                    passed_at: s.passed_at.map(ts),
                    deployed: s.deployed,
                    failed: s.failed,
                    rolled_back: s.rolled_back,
                    rollback_failed: s.rollback_failed,
                    checks: s
                        .checks
                        .into_iter()
                        .map(|c| DeployCheckOut {
                            check: c.check,
                            target: c.target,
                            severity: c.severity,
                            measurements: c
                                .measurements
                                .into_iter()
                                .map(|m| DeployMeasurementOut {
                                    at: ts(m.at),
                                    outcome: m.outcome,
                                    detail: m.detail,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployFiguresOut {
    /// Runs that ended, of the last 100.
    pub runs: usize,
    pub success_rate: Option<f64>,
    pub rollback_rate: Option<f64>,
    pub stage_mean_ms: BTreeMap<String, u64>,
    pub check_pass_rate: BTreeMap<String, f64>,
}

impl From<Figures> for DeployFiguresOut {
    fn from(f: Figures) -> DeployFiguresOut {
        DeployFiguresOut {
            runs: f.runs,
            success_rate: f.success_rate,
            rollback_rate: f.rollback_rate,
            stage_mean_ms: f.stage_mean_ms,
            check_pass_rate: f.check_pass_rate,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployPlanOut {
    pub plan: String,
    pub active: Option<DeployRunOut>,
    /// The version each target runs.
    pub targets: BTreeMap<String, String>,
    pub last: Option<DeployHistoryRunOut>,
    pub figures: DeployFiguresOut,
}

impl From<PlanStatus> for DeployPlanOut {
    fn from(p: PlanStatus) -> DeployPlanOut {
        DeployPlanOut {
            plan: p.plan,
            active: p.active.map(DeployRunOut::from),
            targets: p.targets,
            last: p.last.map(DeployHistoryRunOut::from),
            figures: p.figures.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployStatusOut {
    pub plans: Vec<DeployPlanOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployHistoryOut {
    pub count: usize,
    pub runs: Vec<DeployHistoryRunOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployAlertOut {
    pub run: u64,
    pub at: String,
    pub priority: String,
    pub title: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployAlertList {
    pub count: usize,
    pub alerts: Vec<DeployAlertOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeployHistoryQuery {
    /// At most this many runs, newest first (default 20, at most 1,000).
    pub limit: Option<String>,
    /// Only this plan's runs.
    pub plan: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeployLimitQuery {
    /// At most this many (default 50, at most 1,000).
    pub limit: Option<String>,
}

fn trigger(how: &str, actor: String) -> Trigger {
    Trigger {
        how: how.into(),
        actor,
    }
}

#[utoipa::path(post, path = "/api/v1/deploy/run", tag = "deploy", request_body = DeployRunIn,
    responses((status = 202, body = DeployRunOut, description = "the run is recorded and under way"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "deploy_in_progress, or session_open")))]
pub async fn run(
    State(d): State<Deploy>,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<DeployRunIn>,
) -> ApiResult<impl IntoResponse> {
    let view = d
        .run(&body.plan, body.version.as_deref(), trigger("api", actor))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeployRunOut::from(view))))
}

async fn steer(d: &Deploy, plan: &str, op: Op, actor: &str) -> ApiResult<Json<DeployRunOut>> {
    Ok(Json(DeployRunOut::from(d.command(plan, op, actor).await?)))
}

#[utoipa::path(post, path = "/api/v1/deploy/{plan}/promote", tag = "deploy", params(("plan" = String, Path)),
    request_body = Option<DeployPromoteIn>,
    responses((status = 200, body = DeployRunOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn promote(
    State(d): State<Deploy>,
    Actor(actor): Actor,
    ApiPath(plan): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<DeployRunOut>> {
    let body: DeployPromoteIn = if body.iter().all(u8::is_ascii_whitespace) {
        DeployPromoteIn::default()
    } else {
        crate::extract::parse_object(&body)?
    };
    steer(&d, &plan, Op::Promote { full: body.full }, &actor).await
}

#[utoipa::path(post, path = "/api/v1/deploy/{plan}/pause", tag = "deploy", params(("plan" = String, Path)),
    responses((status = 200, body = DeployRunOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause(
    State(d): State<Deploy>,
    Actor(actor): Actor,
    ApiPath(plan): ApiPath<String>,
) -> ApiResult<Json<DeployRunOut>> {
    steer(&d, &plan, Op::Pause, &actor).await
}

#[utoipa::path(post, path = "/api/v1/deploy/{plan}/resume", tag = "deploy", params(("plan" = String, Path)),
    responses((status = 200, body = DeployRunOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(d): State<Deploy>,
    Actor(actor): Actor,
    ApiPath(plan): ApiPath<String>,
) -> ApiResult<Json<DeployRunOut>> {
    steer(&d, &plan, Op::Resume, &actor).await
}

#[utoipa::path(post, path = "/api/v1/deploy/{plan}/abort", tag = "deploy", params(("plan" = String, Path)),
    responses((status = 200, body = DeployRunOut, description = "rolling back what was deployed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn abort(
    State(d): State<Deploy>,
    Actor(actor): Actor,
    ApiPath(plan): ApiPath<String>,
) -> ApiResult<Json<DeployRunOut>> {
    steer(&d, &plan, Op::Abort, &actor).await
}

#[utoipa::path(post, path = "/api/v1/deploy/{plan}/rollback", tag = "deploy", params(("plan" = String, Path)),
    request_body = DeployRollbackIn,
    responses((status = 202, body = DeployRunOut, description = "every target is going back to the version"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback(
    State(d): State<Deploy>,
    Actor(actor): Actor,
    ApiPath(plan): ApiPath<String>,
    JsonBody(body): JsonBody<DeployRollbackIn>,
) -> ApiResult<impl IntoResponse> {
    let view = d
        .rollback_to(&plan, &body.to, trigger("api", actor))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeployRunOut::from(view))))
}

#[utoipa::path(get, path = "/api/v1/deploy/status", tag = "deploy",
    responses((status = 200, body = DeployStatusOut)))]
pub async fn status(State(d): State<Deploy>) -> ApiResult<Json<DeployStatusOut>> {
    let plans = d.status().await?;
    Ok(Json(DeployStatusOut {
        plans: plans.into_iter().map(DeployPlanOut::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/deploy/history", tag = "deploy", params(DeployHistoryQuery),
    responses((status = 200, body = DeployHistoryOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(d): State<Deploy>,
    ApiQuery(q): ApiQuery<DeployHistoryQuery>,
) -> ApiResult<Json<DeployHistoryOut>> {
    let limit = parse_limit(q.limit.as_deref(), 20, 1000)?;
    if let Some(p) = &q.plan {
        d.plan(p)?;
    }
    let runs: Vec<DeployHistoryRunOut> = d
        .history(q.plan.as_deref(), limit)
        .await?
        .into_iter()
        .map(DeployHistoryRunOut::from)
        .collect();
    Ok(Json(DeployHistoryOut {
        count: runs.len(),
        runs,
    }))
}

/// One event of a run's journal, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployEventOut {
    pub seq: u64,
    pub at: String,
    /// `input`, `phase`, `command`, `measurement`, `target`, `alert`, `waiting`, `recovered`,
    /// `end`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub body: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployRecordOut {
    pub run: DeployHistoryRunOut,
    pub events: Vec<DeployEventOut>,
}

/// One run and its whole journal: every input its state machine was fed, every command with
/// its exit status, output and duration, every measurement, phase and alert.
#[utoipa::path(get, path = "/api/v1/deploy/runs/{id}", tag = "deploy", params(("id" = String, Path)),
    responses((status = 200, body = DeployRecordOut), (status = 404, body = ErrorBody)))]
pub async fn run_record(
    State(d): State<Deploy>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeployRecordOut>> {
    let missing = || {
        ApiError::new(
            crate::error::Code::NotFound,
            format!("no deploy run {id:?}"),
        )
    };
    let n: u64 = id.parse().map_err(|_| missing())?;
    let (run, events) = d.run_record(n).await?.ok_or_else(missing)?;
    Ok(Json(DeployRecordOut {
        run: run.into(),
        events: events
            .into_iter()
            .map(|e| DeployEventOut {
                seq: e.seq,
                at: ts(e.at),
                kind: e.kind,
                body: e.body,
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/deploy/audit-trail", tag = "deploy", params(DeployLimitQuery),
    responses((status = 200, body = DeployAlertList, description = "the alerts deploys raised, newest first"), (status = 400, body = ErrorBody)))]
pub async fn audit_trail(
    State(d): State<Deploy>,
    ApiQuery(q): ApiQuery<DeployLimitQuery>,
) -> ApiResult<Json<DeployAlertList>> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let alerts: Vec<DeployAlertOut> = d
        .alerts(limit)
        .await?
        .into_iter()
        .map(|e| DeployAlertOut {
            run: e.run_id,
            at: ts(e.at),
            priority: e.body["priority"].as_str().unwrap_or_default().into(),
            title: e.body["title"].as_str().unwrap_or_default().into(),
            message: e.body["message"].as_str().unwrap_or_default().into(),
        })
        .collect();
    Ok(Json(DeployAlertList {
        count: alerts.len(),
        alerts,
    }))
}

/// Deploys, trading states (with HARDSTOP), the supervisor and its healer, and the scheduler,
/// in one document.
#[utoipa::path(get, path = "/api/v1/autonomy/status", tag = "deploy",
    responses((status = 200, description = "`deploy`, `trading`, `healer`, `scheduler`", body = Object)))]
pub async fn autonomy(
    State(d): State<Deploy>,
    State(t): State<Trading>,
    State(sup): State<Supervisor>,
    State(x): State<Executor>,
) -> ApiResult<Json<Value>> {
    let plans = d.status().await?;
    let deploy: Vec<Value> = plans
        .iter()
        .map(|p| {
            json!({
                "plan": p.plan,
                "state": p.active.as_ref().map_or("idle", |a| a.phase),
                "run": p.active.as_ref().map(|a| a.run.id),
                "version": p.active.as_ref().map(|a| a.run.version.clone()),
                "last_outcome": p.last.as_ref().map(|l| l.outcome.clone()),
                "last_version": p.last.as_ref().map(|l| l.run.version.clone()),
            })
        })
        .collect();
    let accounts = t.accounts().await?;
    let trading: Vec<Value> = accounts
        .iter()
        .map(|a| json!({"account": a.account.name, "trading_state": a.state.as_str()}))
        .collect();
    let hardstop = accounts
        .iter()
        .any(|a| a.state == sovereign_core::trading::risk::TradingState::Halted);
    let services = sup.services().await;
    let healer: Vec<Value> = services
        .iter()
        .map(|s| {
            json!({
                "service": s.name, "state": s.state.as_str(), "restarts": s.restarts,
                "healer_ran_at": s.healer.as_ref().map(|h| ts(h.at)),
                "healer_exit": s.healer.as_ref().and_then(|h| h.exit),
            })
        })
        .collect();
    let sched = x.status().await?;
    Ok(Json(json!({
        "deploy": {"plans": deploy, "deploying": plans.iter().any(|p| p.active.is_some())},
        "trading": {"hardstop": hardstop, "accounts": trading},
        "healer": {"services": healer},
        "scheduler": {
            "running": sched.scheduler_running, "tasks": sched.tasks, "scheduled": sched.scheduled,
            "runs_in_flight": sched.running, "next_fire": sched.next_fire.map(ts),
        },
    })))
}

/// A git host's push: a push to the plan's branch deploys the pushed commit. Signed with
/// `X-Hub-Signature-256` (GitHub's HMAC-SHA256 of the body) or carrying the secret in
/// `X-Deploy-Secret`; anything else is refused and recorded.
#[utoipa::path(post, path = "/api/v1/deploy/hooks/{plan}", tag = "deploy", params(("plan" = String, Path)),
    request_body(content = Object, description = "a push event: `ref` and `after` (the pushed commit)"),
    responses((status = 202, body = DeployRunOut, description = "a push to the branch: the commit is deploying"),
              (status = 200, description = "a push to another branch: ignored", body = Object),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn hook(
    State(d): State<Deploy>,
    State(audit): State<Audit>,
    ApiPath(plan): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::response::Response> {
    let Some(h) = d.hook(&plan)? else {
        return Err(ApiError::new(
            crate::error::Code::NotFound,
            format!("plan {plan:?} has no push webhook (hook.secret)"),
        ));
    };
    let auth = if headers.contains_key("x-hub-signature-256") {
        SourceAuth::Hmac {
            header: "x-hub-signature-256".into(),
            secret: h.secret.clone(),
        }
    } else {
        SourceAuth::Header {
            header: "x-deploy-secret".into(),
            secret: h.secret.clone(),
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = Presented {
        header: &header,
        url_token: None,
        body: &body,
    };
    if let Err(failure) = verify(&auth, presented) {
        audit.record(
            "hook",
            "deploy.hook_refused",
            json!({"plan": plan, "why": failure.code()}),
        );
        return Err(ApiError::domain(
            StatusCode::UNAUTHORIZED,
            failure.code(),
            format!("the push is not signed with plan {plan:?}'s secret"),
        ));
    }
    let push: Value = crate::extract::parse(&body)?;
    let wanted = format!("refs/heads/{}", h.branch);
    let pushed = push["ref"].as_str().unwrap_or_default();
    if pushed != wanted {
        return Ok(Json(
            json!({"status": "ignored", "reason": format!("{pushed:?} is not {wanted:?}")}),
        )
        .into_response());
    }
    let Some(commit) = push["after"].as_str().filter(|c| {
        c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()) && c.bytes().any(|b| b != b'0')
    }) else {
        return Err(ApiError::new(
            crate::error::Code::MissingField,
            "a push names its commit in after (a deleted branch names none)",
        )
        .field("after"));
    };
    let who = push["pusher"]["name"].as_str().unwrap_or("push");
    let view = d
        .run(&plan, Some(commit), trigger("hook", format!("hook:{who}")))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeployRunOut::from(view))).into_response())
}

/// Deploy progress: `event: deploy`, `data: {run, plan, at, kind, body}` for each event of
/// every run as it is recorded (phases, commands, measurements, alerts, the end).
#[utoipa::path(get, path = "/sse/deploys", tag = "streams", responses((status = 200, description = "server-sent events: `event: deploy` per event of a run", content_type = "text/event-stream")))]
pub async fn sse_deploys(
    State(d): State<Deploy>,
    State(closing): State<Closing>,
) -> impl IntoResponse {
    sse_from(d.subscribe(), closing, |n: &Notice| {
        vec![event(
            "deploy",
            json!({"run": n.run, "plan": n.plan, "at": ts(n.at), "kind": n.kind, "body": n.body}),
        )]
    })
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> ApiError {
        use crate::error::Code;
        let message = e.to_string();
        match e {
            DeployError::UnknownPlan(_) => ApiError::new(Code::UnknownPlan, message).field("plan"),
            DeployError::InProgress { .. } => ApiError::new(Code::DeployInProgress, message),
            DeployError::NoRun(_) => ApiError::new(Code::NoDeployInProgress, message),
            DeployError::Invalid(i) => i.into(),
            DeployError::Unresolved { .. } => {
                ApiError::new(Code::VersionUnresolved, message).field("version")
            }
            DeployError::SessionOpen { .. } => ApiError::new(Code::SessionOpen, message),
            DeployError::Refused(r) => ApiError::domain(StatusCode::CONFLICT, r.code, r.message),
            DeployError::Closed => ApiError::new(Code::ShuttingDown, message),
            DeployError::Store(s) => s.into(),
        }
    }
}

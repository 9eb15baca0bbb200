//! The audit trail over HTTP: records (`GET /api/audit`) and the verdict on the stored chain
//! (`GET /api/audit/verify`). Handlers take the [`Audit`] handle.

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use sovereign_core::audit::{Head, Tamper};
use sovereign_engine::audit::Audit;

use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiQuery;
use crate::tasks::parse_limit;

crate::routes! {
    audit,
    audit_verify,
}

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
    State(a): State<Audit>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let since = match q.since.as_deref() {
        None => 0,
        Some(t) => t.parse::<u64>().map_err(|_| {
            ApiError::new(Code::InvalidSince, "since must be a record sequence number")
                .field("since")
        })?,
    };
    let limit = parse_limit(q.limit.as_deref(), 1000, 10_000)?;
    let records = a.list(since, limit).await?;
    let records: Vec<AuditOut> = records.iter().map(AuditOut::from).collect();
    Ok(Json(AuditList {
        count: records.len(),
        records,
    }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VerifyOut {
    /// Both chains verify, and the journal matches the trail's checkpoints of it.
    pub ok: bool,
    /// The audit trail's verdict (these fields), and the trading journal's (`journal`).
    pub records: usize,
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// `changed`, `removed`, `inserted`, `reordered` when not ok.
    pub problem: Option<String>,
    pub problem_seq: Option<u64>,
    /// What is wrong, naming the chain (the trail first).
    pub message: Option<String>,
    pub journal: ChainOut,
}

/// One chain's verdict.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChainOut {
    pub ok: bool,
    pub records: usize,
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    pub problem: Option<String>,
    pub problem_seq: Option<u64>,
    pub message: Option<String>,
}

fn chain_out(verdict: Result<Head, (Tamper, usize)>, what: &str) -> ChainOut {
    match verdict {
        Ok(head) => ChainOut {
            ok: true,
            records: head.records,
            head_seq: Some(head.seq).filter(|s| *s > 0),
            head_hash: Some(head.hash).filter(|_| head.seq > 0),
            problem: None,
            problem_seq: None,
            message: None,
        },
        Err((t, records)) => ChainOut {
            ok: false,
            records,
            head_seq: None,
            head_hash: None,
            problem: Some(t.kind.as_str().into()),
            problem_seq: Some(t.seq),
            message: Some(format!("{what}{t}")),
        },
    }
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyOut, description = "the verdict on the stored trail and the trading journal")))]
pub async fn audit_verify(State(a): State<Audit>) -> ApiResult<Json<VerifyOut>> {
    let verdict = a.verify().await?;
    let trail = chain_out(verdict.audit, "");
    let journal = chain_out(verdict.journal, "trading journal: ");
    Ok(Json(VerifyOut {
        ok: trail.ok && journal.ok,
        records: trail.records,
        head_seq: trail.head_seq,
        head_hash: trail.head_hash,
        problem: trail.problem.or_else(|| journal.problem.clone()),
        problem_seq: trail.problem_seq.or(journal.problem_seq),
        message: trail.message.or_else(|| journal.message.clone()),
        journal,
    }))
}

//! Alerts over HTTP: raise one, read the outbox, see and re-enable channels, send a test.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sovereign_core::notify::AlertSpec;
use sovereign_engine::notify::{AlertChange, ChannelView, Notifier, Raised};
use sovereign_store::{AlertRecord, DeliveryRecord};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::tasks::parse_limit;
use crate::trading::{event, sse_from};
use crate::wire::ts;
use crate::Closing;

// The notifier's routes.
crate::routes! {
    raise,
    list,
    channels,
    enable,
    test,
    sse_alerts,
}

/// An alert to raise.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertIn {
    /// `"P0"`…`"P3"` or 0–3; default P2.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "P1")]
    pub priority: Value,
    pub source: String,
    pub title: String,
    #[serde(default)]
    pub message: String,
    /// A JSON object of details.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Value,
    /// Alerts with the same key within the dedup window are sent once.
    pub dedup_key: Option<String>,
}

/// What became of a raised alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct RaisedOut {
    /// `accepted` or `duplicate`.
    pub status: &'static str,
    pub id: Option<u64>,
    pub channels: Vec<String>,
    pub digest: bool,
}

#[utoipa::path(post, path = "/api/alerts", tag = "alerts", request_body = AlertIn,
    responses((status = 202, description = "in the outbox (durable); delivery follows", body = RaisedOut),
              (status = 200, description = "a duplicate within the dedup window: not sent again", body = RaisedOut),
              (status = 400, body = ErrorBody)))]
pub async fn raise(
    State(n): State<Notifier>,
    JsonBody(body): JsonBody<AlertIn>,
) -> ApiResult<Response> {
    let alert = AlertSpec {
        priority: body.priority,
        source: body.source,
        title: body.title,
        message: body.message,
        context: body.context,
        dedup_key: body.dedup_key,
    }
    .validate()?;
    let raised = n.raise(alert, "api").await?;
    Ok(match raised {
        Raised::Accepted {
            id,
            channels,
            digest,
        } => (
            StatusCode::ACCEPTED,
            Json(RaisedOut {
                status: "accepted",
                id: Some(id),
                channels,
                digest,
            }),
        )
            .into_response(),
        Raised::Duplicate => Json(RaisedOut {
            status: "duplicate",
            id: None,
            channels: Vec::new(),
            digest: false,
        })
        .into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Alerts after this id, oldest first; without it, the newest first.
    pub since: Option<String>,
    /// At most this many (default 100, at most 10,000).
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub channel: String,
    /// `pending`, `delivered`, `dropped`, `dead` or `skipped`.
    pub status: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    pub id: u64,
    pub at: String,
    pub priority: &'static str,
    pub source: String,
    pub title: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub context: Value,
    pub dedup_key: Option<String>,
    pub digest: bool,
    pub deliveries: Vec<DeliveryOut>,
}

impl From<AlertRecord> for AlertOut {
    fn from(r: AlertRecord) -> AlertOut {
        AlertOut {
            id: r.id,
            at: ts(r.at),
            priority: r.alert.priority.as_str(),
            source: r.alert.source,
            title: r.alert.title,
            message: r.alert.message,
            context: r.alert.context,
            dedup_key: r.alert.dedup_key,
            digest: r.digest,
            deliveries: r.deliveries.into_iter().map(DeliveryOut::from).collect(),
        }
    }
}

impl From<DeliveryRecord> for DeliveryOut {
    fn from(d: DeliveryRecord) -> DeliveryOut {
        DeliveryOut {
            channel: d.channel,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_error: d.last_error,
            updated_at: ts(d.updated_at),
        }
    }
}

/// One delivery's new state, on `/sse/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryChangeOut {
    pub alert_id: u64,
    #[serde(flatten)]
    pub delivery: DeliveryOut,
}

/// The outbox live: `event: alert` with each alert once it is accepted (durable), and
/// `event: delivery` with a delivery's new state (`alert_id`, `channel`, `status`, …).
#[utoipa::path(get, path = "/sse/alerts", tag = "streams", responses((status = 200, description = "server-sent events: `event: alert` per accepted alert, `event: delivery` per delivery state change", content_type = "text/event-stream")))]
pub async fn sse_alerts(
    State(n): State<Notifier>,
    State(closing): State<Closing>,
) -> impl IntoResponse {
    sse_from(n.subscribe(), closing, |c: &AlertChange| {
        vec![match c {
            AlertChange::Accepted(r) => event("alert", AlertOut::from((**r).clone())),
            AlertChange::Delivery { id, delivery } => event(
                "delivery",
                DeliveryChangeOut {
                    alert_id: *id,
                    delivery: DeliveryOut::from(delivery.clone()),
                },
            ),
        }]
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub count: usize,
    pub alerts: Vec<AlertOut>,
}

#[utoipa::path(get, path = "/api/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(n): State<Notifier>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<Json<AlertList>> {
    let since = match q.since.as_deref() {
        None => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| {
            ApiError::new(Code::InvalidSince, "since must be an alert id").field("since")
        })?),
    };
    let limit = parse_limit(q.limit.as_deref(), 100, 10_000)?;
    let alerts: Vec<AlertOut> = n
        .alerts(since, limit)
        .await?
        .into_iter()
        .map(AlertOut::from)
        .collect();
    Ok(Json(AlertList {
        count: alerts.len(),
        alerts,
    }))
}

/// A channel: where it delivers (never its secret), and how it is doing since start.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelOut {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
    /// Why it is disabled (its webhook is gone); `null` when active.
    pub disabled: Option<String>,
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
}

impl From<ChannelView> for ChannelOut {
    fn from(c: ChannelView) -> ChannelOut {
        ChannelOut {
            name: c.name,
            kind: c.kind.as_str(),
            target: c.target,
            disabled: c.state.disabled,
            pending: c.state.pending,
            delivered: c.state.delivered,
            failed: c.state.failed,
            last_error: c.state.last_error,
            last_delivered_at: c.state.last_delivered_at.map(ts),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelOut>,
}

#[utoipa::path(get, path = "/api/alerts/channels", tag = "alerts",
    responses((status = 200, body = ChannelList)))]
pub async fn channels(State(n): State<Notifier>) -> Json<ChannelList> {
    Json(ChannelList {
        channels: n.channels().into_iter().map(ChannelOut::from).collect(),
    })
}

fn unknown_channel(name: &str) -> ApiError {
    ApiError::new(Code::UnknownChannel, format!("no channel named {name:?}")).field("channel")
}

#[utoipa::path(post, path = "/api/alerts/channels/{name}/enable", tag = "alerts", params(("name" = String, Path)),
    responses((status = 200, body = ChannelOut), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(n): State<Notifier>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ChannelOut>> {
    let notifier = n;
    notifier
        .enable(&name, "api")
        .await?
        .ok_or_else(|| unknown_channel(&name))?;
    notifier
        .channels()
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| Json(ChannelOut::from(c)))
        .ok_or_else(|| unknown_channel(&name))
}

/// Which channel to test; every channel when absent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    pub channel: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResultOut {
    pub channel: String,
    pub ok: bool,
    /// What the channel answered, e.g. `HTTP 200`, `SMTP 250`, or why it failed.
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    /// Every tested channel took the message.
    pub ok: bool,
    pub results: Vec<TestResultOut>,
}

#[utoipa::path(post, path = "/api/alerts/test", tag = "alerts", request_body = TestIn,
    responses((status = 200, description = "one attempt per channel, outside the outbox", body = TestOut),
              (status = 404, body = ErrorBody)))]
pub async fn test(
    State(n): State<Notifier>,
    JsonBody(body): JsonBody<TestIn>,
) -> ApiResult<Json<TestOut>> {
    let results = n
        .test(body.channel.as_deref())
        .await
        .map_err(|_| unknown_channel(body.channel.as_deref().unwrap_or("")))?;
    let results: Vec<TestResultOut> = results
        .into_iter()
        .map(|r| TestResultOut {
            channel: r.channel,
            ok: r.ok,
            detail: r.detail,
        })
        .collect();
    Ok(Json(TestOut {
        ok: results.iter().all(|r| r.ok),
        results,
    }))
}

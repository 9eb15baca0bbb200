//! Trading over HTTP: orders, positions, fills, accounts, risk state, market data in, and the
//! live SSE streams. Wire types live here beside their handlers; decimals go out as strings.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::trading::fixed::{Fixed, Price, Qty};
use sovereign_core::trading::instrument::Symbol;
use sovereign_core::trading::oms::{
    selected_account, AccountView, FillRecord, OrderFilter, PositionView, PriceSource,
};
use sovereign_core::trading::order::{NewOrder, Order, OrderSpec, OrderStatus};
use sovereign_core::trading::risk::StateCommand;
use sovereign_engine::trading::signals::{SignalRequest, Signals};
use sovereign_engine::trading::{Asked, Tick, Trading};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Code, ErrorBody, ErrorDetail};
use crate::extract::{Actor, ApiPath, ApiQuery, JsonBody};
use crate::tasks::parse_limit;
use crate::wire::ts;
use crate::Closing;

// The trading routes: orders, positions, fills, accounts, risk, market data, signals, streams.
crate::routes! {
    list_orders,
    submit_order,
    cancel_all,
    get_order,
    cancel_order,
    modify_order,
    positions,
    flatten,
    fills,
    accounts,
    risk,
    hardstop,
    resume,
    ticks,
    quotes,
    signal,
    sse_spot,
}

/// A decimal as JSON text (`"5000.25"`) or number (`5000.25`). A number is kept as the digits
/// it was written with (serde_json's `arbitrary_precision`), never read through a float, so
/// `1234567890.12345678` arrives whole.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)] // for the schema: a string or a number (reading is the impl below)
pub enum DecimalIn {
    Text(String),
    #[schema(value_type = f64)]
    Number(serde_json::Number),
}

impl<'de> Deserialize<'de> for DecimalIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through `Value`, which understands serde_json's exact number form also where serde
        // buffers the input (untagged enums such as `TicksIn`).
        match Value::deserialize(d)? {
            Value::String(s) => Ok(DecimalIn::Text(s)),
            Value::Number(n) => Ok(DecimalIn::Number(n)),
            other => Err(serde::de::Error::custom(format!(
                "expected a decimal as a string or a number, not {}",
                match other {
                    Value::Null => "null",
                    Value::Bool(_) => "a boolean",
                    Value::Array(_) => "an array",
                    _ => "an object",
                }
            ))),
        }
    }
}

impl DecimalIn {
    fn text(&self) -> String {
        match self {
            DecimalIn::Text(s) => s.clone(),
            DecimalIn::Number(n) => n.to_string(),
        }
    }
}

fn decimal(field: &str, d: &DecimalIn) -> Result<Fixed, ApiError> {
    Fixed::parse(&d.text()).map_err(|e| Invalid::new("invalid_number", field, e.to_string()).into())
}

/// A new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderIn {
    /// Default `paper`.
    pub account: Option<String>,
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    pub qty: DecimalIn,
    /// `market` (default), `limit`, `stop`, `stop_limit`.
    #[serde(rename = "type")]
    pub order_type: Option<String>,
    pub limit_price: Option<DecimalIn>,
    pub stop_price: Option<DecimalIn>,
    /// `day` (default), `gtc`, `ioc`, `fok`.
    pub tif: Option<String>,
    /// Makes submission idempotent: the same id returns the existing order.
    pub client_order_id: Option<String>,
}

impl OrderIn {
    pub fn spec(&self) -> OrderSpec {
        OrderSpec {
            account: self.account.clone(),
            symbol: self.symbol.clone(),
            side: self.side.clone(),
            qty: self.qty.text(),
            order_type: self.order_type.clone(),
            limit_price: self.limit_price.as_ref().map(DecimalIn::text),
            stop_price: self.stop_price.as_ref().map(DecimalIn::text),
            tif: self.tif.clone(),
            client_order_id: self.client_order_id.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderOut {
    pub id: String,
    pub account: String,
    pub symbol: String,
    pub side: String,
    pub qty: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub limit_price: Option<String>,
    pub stop_price: Option<String>,
    pub tif: String,
    pub client_order_id: Option<String>,
    pub status: String,
    pub filled_qty: String,
    pub avg_fill_price: Option<String>,
    pub triggered: bool,
    pub reject_code: Option<String>,
    pub reject_reason: Option<String>,
    /// Why it was canceled: `canceled by request`, `cancel_all`, `ioc_unfilled`, `fok_unfillable`, `no_market_data`.
    pub cancel_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Order> for OrderOut {
    fn from(o: &Order) -> OrderOut {
        let r = &o.request;
        OrderOut {
            id: o.id.to_string(),
            account: r.account.clone(),
            symbol: r.symbol.to_string(),
            side: r.side.as_str().into(),
            qty: r.qty.to_string(),
            order_type: r.order_type.as_str().into(),
            limit_price: r.limit_price.map(|p| p.to_string()),
            stop_price: r.stop_price.map(|p| p.to_string()),
            tif: r.tif.as_str().into(),
            client_order_id: r.client_order_id.clone(),
            status: o.status.as_str().into(),
            filled_qty: o.filled_qty.to_string(),
            avg_fill_price: o.avg_fill_price.map(|p| p.to_string()),
            triggered: o.triggered,
            reject_code: o.reject_code.clone(),
            reject_reason: o.reject_reason.clone(),
            cancel_reason: o.cancel_reason.clone(),
            created_at: ts(o.created_at),
            updated_at: ts(o.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderOut>,
    pub count: usize,
}

/// A risk denial: the order as stored (status `denied`) and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeniedOut {
    pub order: OrderOut,
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PositionOut {
    pub account: String,
    pub symbol: String,
    /// Signed: positive long, negative short.
    pub qty: String,
    pub avg_price: String,
    pub realized_pnl: String,
    pub unrealized_pnl: String,
    pub last_price: Option<String>,
    pub commissions: String,
}

impl From<&PositionView> for PositionOut {
    fn from(p: &PositionView) -> PositionOut {
        PositionOut {
            account: p.account.clone(),
            symbol: p.symbol.to_string(),
            qty: p.position.qty.to_string(),
            avg_price: p.position.avg_price.to_string(),
            realized_pnl: p.position.realized_pnl.to_string(),
            unrealized_pnl: p.unrealized_pnl.to_string(),
            last_price: p.last_price.map(|x| x.to_string()),
            commissions: p.position.commissions.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PositionList {
    pub positions: Vec<PositionOut>,
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FillOut {
    pub fill_id: String,
    pub order_id: String,
    pub account: String,
    pub symbol: String,
    pub side: String,
    pub qty: String,
    pub price: String,
    pub commission: String,
    pub realized_pnl: String,
    pub at: String,
    /// The venue's id of the execution (absent for paper fills).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
}

impl From<&FillRecord> for FillOut {
    fn from(f: &FillRecord) -> FillOut {
        FillOut {
            fill_id: f.fill_id.to_string(),
            order_id: f.order_id.to_string(),
            account: f.account.clone(),
            symbol: f.symbol.to_string(),
            side: f.side.as_str().into(),
            qty: f.qty.to_string(),
            price: f.price.to_string(),
            commission: f.commission.to_string(),
            realized_pnl: f.realized_pnl.to_string(),
            at: ts(f.at),
            exec_id: f.exec_id.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FillList {
    pub fills: Vec<FillOut>,
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    pub account: String,
    pub currency: String,
    pub starting_cash: String,
    pub cash: String,
    pub unrealized_pnl: String,
    pub equity: String,
    pub gross_exposure: String,
    pub day_pnl: String,
    /// `active`, `reducing` or `halted`.
    pub trading_state: String,
    pub open_orders: u32,
}

impl From<&AccountView> for AccountOut {
    fn from(a: &AccountView) -> AccountOut {
        AccountOut {
            account: a.account.name.clone(),
            currency: a.account.currency.clone(),
            starting_cash: a.account.starting_cash.to_string(),
            cash: a.account.cash.to_string(),
            unrealized_pnl: a.unrealized_pnl.to_string(),
            equity: a.equity.to_string(),
            gross_exposure: a.gross_exposure.to_string(),
            day_pnl: a.day_pnl.to_string(),
            trading_state: a.state.as_str().into(),
            open_orders: a.open_orders,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountOut>,
}

/// One account's risk state and limits (absent limit = rule off).
#[derive(Debug, Serialize, ToSchema)]
pub struct RiskOut {
    pub account: String,
    pub trading_state: String,
    pub day_pnl: String,
    pub gross_exposure: String,
    pub open_orders: u32,
    #[schema(value_type = Object)]
    pub limits: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RiskList {
    pub accounts: Vec<RiskOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateIn {
    /// One account; absent or `"all"`: every account at once (the kill switch).
    pub account: Option<String>,
    pub reason: String,
    /// HARDSTOP only: also close every position of the account(s) at market.
    #[serde(default)]
    pub flatten: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateOut {
    /// The account, or `all`.
    pub account: String,
    /// The state now; with `all`, the state every account is in (or `mixed`).
    pub trading_state: String,
    /// Whether any account's state changed.
    pub changed: bool,
    /// Working orders canceled because the new state no longer allows them.
    pub canceled: Vec<String>,
    /// Each account the command reached.
    pub accounts: Vec<AccountStateOut>,
    /// With `flatten`: the closing orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flattened: Option<Vec<OrderOut>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountStateOut {
    pub account: String,
    pub trading_state: String,
    pub changed: bool,
    pub canceled: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyIn {
    pub qty: Option<DecimalIn>,
    pub limit_price: Option<DecimalIn>,
    pub stop_price: Option<DecimalIn>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSelector {
    /// Only this account (absent or `"all"`: every account).
    pub account: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlattenIn {
    /// Only this account (absent or `"all"`: every account).
    pub account: Option<String>,
    /// Why, for the audit trail (`trading.flatten`).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TickIn {
    pub symbol: String,
    pub price: DecimalIn,
    pub bid: Option<DecimalIn>,
    pub ask: Option<DecimalIn>,
    pub size: Option<DecimalIn>,
    /// When the price was seen (RFC 3339; default: now). Fills and halts the tick causes
    /// carry this time, so a replay keeps the recorded times. At most a minute ahead.
    pub ts: Option<String>,
}

/// A list of ticks, or `{"ticks": [...]}`. Read by shape first, so an error names the tick
/// and field that is wrong (never an internal type).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)] // for the schema (reading is the impl below)
pub enum TicksIn {
    Batch(Vec<TickIn>),
    Wrapped { ticks: Vec<TickIn> },
}

impl<'de> Deserialize<'de> for TicksIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let list = match Value::deserialize(d)? {
            Value::Array(items) => items,
            Value::Object(mut map) => match map.remove("ticks") {
                Some(Value::Array(items)) if map.is_empty() => items,
                _ => {
                    return Err(D::Error::custom(
                        "expected a list of ticks, or {\"ticks\": [...]}",
                    ))
                }
            },
            _ => {
                return Err(D::Error::custom(
                    "expected a list of ticks, or {\"ticks\": [...]}",
                ))
            }
        };
        list.into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value::<TickIn>(v)
                    .map_err(|e| D::Error::custom(format!("ticks[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TicksIn::Batch)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    pub status: Option<String>,
    pub symbol: Option<String>,
    pub account: Option<String>,
    /// The order (of each account) with this client order id.
    pub client_order_id: Option<String>,
    /// 1 to 100000 (default 1000).
    pub limit: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    pub account: Option<String>,
    /// 1 to 100000 (default 1000).
    pub limit: Option<String>,
}

fn order_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::new(Code::NotFound, format!("order {text:?} not found")).field("id"))
}

/// Validate an order body into a `NewOrder` with the engine's instruments.
pub fn new_order(t: &Trading, body: &OrderIn) -> Result<NewOrder, ApiError> {
    Ok(NewOrder::validate(&body.spec(), t.instruments())?)
}

#[utoipa::path(post, path = "/api/orders", tag = "trading", request_body = OrderIn,
    responses((status = 201, body = OrderOut), (status = 200, description = "same client_order_id: the existing order", body = OrderOut),
              (status = 400, body = ErrorBody), (status = 422, description = "denied by pre-trade risk", body = DeniedOut)))]
pub async fn submit_order(
    State(t): State<Trading>,
    JsonBody(body): JsonBody<OrderIn>,
) -> ApiResult<Response> {
    let order = new_order(&t, &body)?;
    let done = t.submit(order).await?;
    let out = OrderOut::from(&done.order);
    // A repeat of a denied order is answered like the original: 422 with the stored reason.
    let denial = done
        .denial
        .map(|d| (d.code.code().to_string(), d.message))
        .or_else(|| {
            (done.order.status == OrderStatus::Denied).then(|| {
                (
                    done.order.reject_code.clone().unwrap_or_default(),
                    done.order.reject_reason.clone().unwrap_or_default(),
                )
            })
        });
    Ok(match denial {
        Some((code, message)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(DeniedOut {
                order: out,
                error: ErrorDetail {
                    code,
                    message,
                    field: None,
                },
            }),
        )
            .into_response(),
        None if done.duplicate => (StatusCode::OK, Json(out)).into_response(),
        None => (StatusCode::CREATED, Json(out)).into_response(),
    })
}

#[utoipa::path(get, path = "/api/orders", tag = "trading", params(OrderQuery), responses((status = 200, body = OrderList)))]
pub async fn list_orders(
    State(t): State<Trading>,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> ApiResult<Json<OrderList>> {
    let status = match q.status.as_deref() {
        Some(t) => Some(OrderStatus::parse(t).ok_or_else(|| {
            ApiError::new(Code::InvalidStatus, format!("unknown order status {t:?}"))
                .field("status")
        })?),
        None => None,
    };
    let symbol = q.symbol.as_deref().map(Symbol::parse).transpose()?;
    let limit = parse_limit(q.limit.as_deref(), 1000, 100_000)?;
    let filter = OrderFilter {
        status,
        symbol,
        account: selected_account(q.account),
        client_order_id: q.client_order_id,
    };
    let orders: Vec<OrderOut> = t
        .orders(filter, limit)
        .await?
        .iter()
        .map(OrderOut::from)
        .collect();
    Ok(Json(OrderList {
        count: orders.len(),
        orders,
    }))
}

#[utoipa::path(get, path = "/api/orders/{id}", tag = "trading", params(("id" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(t): State<Trading>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderOut>> {
    let n = order_id(&id)?;
    let order = t.order(n).await?.ok_or_else(|| {
        ApiError::new(Code::NotFound, format!("order {id} not found")).field("id")
    })?;
    Ok(Json(OrderOut::from(&order)))
}

#[utoipa::path(delete, path = "/api/orders/{id}", tag = "trading", params(("id" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_order(
    State(t): State<Trading>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderOut>> {
    let order = t.cancel(order_id(&id)?).await?;
    Ok(Json(OrderOut::from(&order)))
}

#[utoipa::path(patch, path = "/api/orders/{id}", tag = "trading", params(("id" = String, Path)), request_body = ModifyIn,
    responses((status = 200, body = OrderOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn modify_order(
    State(t): State<Trading>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<ModifyIn>,
) -> ApiResult<Json<OrderOut>> {
    let n = order_id(&id)?;
    let qty = body
        .qty
        .as_ref()
        .map(|d| decimal("qty", d).map(Qty))
        .transpose()?;
    let limit = body
        .limit_price
        .as_ref()
        .map(|d| decimal("limit_price", d).map(Price))
        .transpose()?;
    let stop = body
        .stop_price
        .as_ref()
        .map(|d| decimal("stop_price", d).map(Price))
        .transpose()?;
    let order = t.modify(n, qty, limit, stop).await?;
    Ok(Json(OrderOut::from(&order)))
}

/// An optional JSON object body: an empty body is the default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::extract::parse_object::<T>(body)
}

fn selector(body: &[u8]) -> Result<Option<String>, ApiError> {
    Ok(selected_account(
        optional_body::<AccountSelector>(body)?.account,
    ))
}

#[utoipa::path(post, path = "/api/orders/cancel-all", tag = "trading", request_body = Option<AccountSelector>,
    responses((status = 200, description = "ids of the canceled orders")))]
pub async fn cancel_all(
    State(t): State<Trading>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let ids = t.cancel_all(selector(&body)?).await?;
    Ok(Json(
        json!({"canceled": ids.iter().map(u64::to_string).collect::<Vec<_>>(), "count": ids.len()}),
    ))
}

#[utoipa::path(post, path = "/api/positions/flatten", tag = "trading", request_body = Option<FlattenIn>,
    responses((status = 200, body = OrderList, description = "the closing orders")))]
pub async fn flatten(
    State(t): State<Trading>,
    Actor(actor): Actor,
    body: axum::body::Bytes,
) -> ApiResult<Json<OrderList>> {
    let body = optional_body::<FlattenIn>(&body)?;
    let asked = Asked {
        actor,
        reason: body.reason,
    };
    let done = t.flatten(selected_account(body.account), asked).await?;
    let orders: Vec<OrderOut> = done.iter().map(|d| OrderOut::from(&d.order)).collect();
    Ok(Json(OrderList {
        count: orders.len(),
        orders,
    }))
}

#[utoipa::path(get, path = "/api/positions", tag = "trading", params(AccountQuery), responses((status = 200, body = PositionList)))]
pub async fn positions(
    State(t): State<Trading>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> ApiResult<Json<PositionList>> {
    let limit = parse_limit(q.limit.as_deref(), 100_000, 100_000)?;
    let positions: Vec<PositionOut> = t
        .positions(selected_account(q.account))
        .await?
        .iter()
        .take(limit)
        .map(PositionOut::from)
        .collect();
    Ok(Json(PositionList {
        count: positions.len(),
        positions,
    }))
}

#[utoipa::path(get, path = "/api/fills", tag = "trading", params(AccountQuery), responses((status = 200, body = FillList)))]
pub async fn fills(
    State(t): State<Trading>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> ApiResult<Json<FillList>> {
    let limit = parse_limit(q.limit.as_deref(), 1000, 100_000)?;
    let fills: Vec<FillOut> = t
        .fills(selected_account(q.account), limit)
        .await?
        .iter()
        .map(FillOut::from)
        .collect();
    Ok(Json(FillList {
        count: fills.len(),
        fills,
    }))
}

#[utoipa::path(get, path = "/api/accounts", tag = "trading", responses((status = 200, body = AccountList)))]
pub async fn accounts(State(t): State<Trading>) -> ApiResult<Json<AccountList>> {
    let accounts = t.accounts().await?.iter().map(AccountOut::from).collect();
    Ok(Json(AccountList { accounts }))
}

#[utoipa::path(get, path = "/api/risk", tag = "trading", responses((status = 200, body = RiskList)))]
pub async fn risk(State(t): State<Trading>) -> ApiResult<Json<RiskList>> {
    let accounts = t
        .accounts()
        .await?
        .iter()
        .map(|a| {
            let l = &a.limits;
            let s = |v: Option<String>| v.map_or(Value::Null, Value::String);
            RiskOut {
                account: a.account.name.clone(),
                trading_state: a.state.as_str().into(),
                day_pnl: a.day_pnl.to_string(),
                gross_exposure: a.gross_exposure.to_string(),
                open_orders: a.open_orders,
                limits: json!({
                    "max_order_qty": s(l.max_order_qty.map(|x| x.to_string())),
                    "max_order_notional": s(l.max_order_notional.map(|x| x.to_string())),
                    "max_position": s(l.max_position.map(|x| x.to_string())),
                    "max_gross_exposure": s(l.max_gross_exposure.map(|x| x.to_string())),
                    "max_open_orders": l.max_open_orders,
                    "max_order_rate": l.max_orders_per_window.map(|(n, w)| json!({"orders": n, "window_ms": u64::try_from(w.as_millis()).unwrap_or(u64::MAX)})),
                    "price_band_pct": s(l.price_band_pct.map(|x| x.to_string())),
                    "allowed_symbols": l.allowed_symbols.as_ref().map(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
                    "trading_hours": l.trading_hours.as_ref().map(|h| json!({"tz": h.tz.name(), "start": h.start.to_string(), "end": h.end.to_string()})),
                    "daily_loss_limit": s(l.daily_loss_limit.map(|x| x.to_string())),
                }),
            }
        })
        .collect();
    Ok(Json(RiskList { accounts }))
}

async fn change_state(t: &Trading, body: StateIn, cmd: StateCommand) -> ApiResult<Json<StateOut>> {
    let account = selected_account(body.account);
    let outcomes = t.set_state(account.clone(), cmd).await?;
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>();
    let accounts: Vec<AccountStateOut> = outcomes
        .iter()
        .map(|o| AccountStateOut {
            account: o.account.clone(),
            trading_state: o.state.as_str().into(),
            changed: o.change.is_some(),
            canceled: ids(&o.canceled),
        })
        .collect();
    let trading_state = match accounts.split_first() {
        Some((first, rest)) if rest.iter().all(|a| a.trading_state == first.trading_state) => {
            first.trading_state.clone()
        }
        _ => "mixed".into(),
    };
    Ok(Json(StateOut {
        account: account.unwrap_or_else(|| "all".into()),
        trading_state,
        changed: accounts.iter().any(|a| a.changed),
        canceled: accounts.iter().flat_map(|a| a.canceled.clone()).collect(),
        accounts,
        flattened: None,
    }))
}

#[utoipa::path(post, path = "/api/risk/hardstop", tag = "trading", request_body = StateIn,
    responses((status = 200, body = StateOut), (status = 400, body = ErrorBody)))]
pub async fn hardstop(
    State(t): State<Trading>,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<StateIn>,
) -> ApiResult<Json<StateOut>> {
    let cmd = StateCommand::Hardstop {
        reason: body.reason.clone(),
    };
    let (flatten, account) = (body.flatten, selected_account(body.account.clone()));
    let asked = Asked {
        actor,
        reason: Some(body.reason.clone()),
    };
    let Json(mut out) = change_state(&t, body, cmd).await?;
    if flatten {
        // Halted first, so nothing new opens; closing orders pass a halt.
        let done = t.flatten(account, asked).await?;
        out.flattened = Some(done.iter().map(|s| OrderOut::from(&s.order)).collect());
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/risk/resume", tag = "trading", request_body = StateIn,
    responses((status = 200, body = StateOut), (status = 400, body = ErrorBody)))]
pub async fn resume(
    State(t): State<Trading>,
    JsonBody(body): JsonBody<StateIn>,
) -> ApiResult<Json<StateOut>> {
    if body.flatten {
        return Err(ApiError::new(
            Code::InvalidType,
            "flatten goes with a hardstop, not a resume",
        )
        .field("flatten"));
    }
    let cmd = StateCommand::Resume {
        reason: body.reason.clone(),
    };
    change_state(&t, body, cmd).await
}

/// A tick's own time: RFC 3339, not more than a minute ahead of this machine's clock.
fn tick_time(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| {
            ApiError::new(
                Code::InvalidTime,
                format!("ts {text:?} is not an RFC 3339 time such as 2026-03-01T14:30:00Z ({e})"),
            )
        })?
        .with_timezone(&chrono::Utc);
    if at > now + chrono::Duration::minutes(1) {
        return Err(ApiError::new(
            Code::InvalidTime,
            format!("ts {text:?} is in the future"),
        ));
    }
    Ok(at)
}

#[utoipa::path(post, path = "/api/market/ticks", tag = "trading", request_body = TicksIn,
    responses((status = 200, description = "how many ticks were applied"), (status = 400, body = ErrorBody)))]
pub async fn ticks(State(t): State<Trading>, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let parsed: TicksIn = crate::extract::parse(&body)?;
    let list = match parsed {
        TicksIn::Batch(v) | TicksIn::Wrapped { ticks: v } => v,
    };
    let instruments = t.instruments();
    let now = chrono::Utc::now();
    // Validate the whole batch first: a bad row applies nothing.
    let mut batch = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = |e: Invalid| ApiError::from(e.within(&format!("ticks[{i}]")));
        let instrument = instruments.find(&t.symbol).map_err(at)?;
        let price = |f: &str, d: &DecimalIn| -> Result<Price, ApiError> {
            let p = Price(decimal(f, d).map_err(|e| e.field(format!("ticks[{i}].{f}")))?);
            instrument.check_price(p, f).map_err(at)?;
            Ok(p)
        };
        batch.push(Tick {
            symbol: instrument.symbol.clone(),
            price: price("price", &t.price)?,
            bid: t.bid.as_ref().map(|d| price("bid", d)).transpose()?,
            ask: t.ask.as_ref().map(|d| price("ask", d)).transpose()?,
            size: t
                .size
                .as_ref()
                .map(|d| decimal("size", d).map(Qty))
                .transpose()?,
            source: PriceSource::External,
            at: t
                .ts
                .as_deref()
                .map(|text| tick_time(text, now).map_err(|e| e.field(format!("ticks[{i}].ts"))))
                .transpose()?,
        });
    }
    let n = t.ticks(batch).await?;
    Ok(Json(json!({"applied": n})))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteOut {
    pub symbol: String,
    pub last: Option<String>,
    pub bid: Option<String>,
    pub ask: Option<String>,
    /// `external` (pushed, replayed) or `synthetic` (the engine's random walk).
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteList {
    pub quotes: Vec<QuoteOut>,
}

#[utoipa::path(get, path = "/api/market/quotes", tag = "trading",
    responses((status = 200, body = QuoteList, description = "the last price of every symbol that has one")))]
pub async fn quotes(State(t): State<Trading>) -> ApiResult<Json<QuoteList>> {
    let external = t.external_symbols().await?;
    let quotes = t
        .quotes()
        .await?
        .into_iter()
        .map(|(symbol, q)| QuoteOut {
            source: if external.contains(&symbol) {
                "external"
            } else {
                "synthetic"
            }
            .into(),
            symbol: symbol.as_str().to_string(),
            last: q.last.map(|p| p.to_string()),
            bid: q.bid.map(|p| p.to_string()),
            ask: q.ask.map(|p| p.to_string()),
        })
        .collect();
    Ok(Json(QuoteList { quotes }))
}

// ----- SSE ----------------------------------------------------------------------------------

/// A server-sent event stream of what `rx` carries, each item rendered into events; a slow
/// reader gets `event: lagged` with how many items it missed.
/// The stream ends when the server begins to shut down (`closing`), so an open stream never
/// holds a graceful shutdown.
pub(crate) fn sse_from<T, F>(
    rx: broadcast::Receiver<T>,
    closing: Closing,
    render: F,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    T: Clone + Send + 'static,
    F: Fn(&T) -> Vec<SseEvent> + Send + 'static,
{
    let stream = stream::unfold(
        (rx, render, Vec::<SseEvent>::new(), closing),
        |(mut rx, render, mut pending, closing)| async move {
            loop {
                if let Some(ev) = pending.pop() {
                    return Some((Ok(ev), (rx, render, pending, closing)));
                }
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = closing.closed() => return None,
                };
                match received {
                    Ok(item) => {
                        pending = render(&item);
                        pending.reverse();
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let ev = SseEvent::default()
                            .event("lagged")
                            .data(json!({"missed": n}).to_string());
                        return Some((Ok(ev), (rx, render, pending, closing)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub(crate) fn event(name: &str, v: impl Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(&v).unwrap_or_default())
}

/// Live prices: `event: tick`, `data: {"symbol","price","bid","ask"}`.
#[utoipa::path(get, path = "/sse/spot", tag = "streams", responses((status = 200, description = "server-sent events: `event: tick` with symbol, price, bid, ask", content_type = "text/event-stream")))]
pub async fn sse_spot(
    State(t): State<Trading>,
    State(closing): State<Closing>,
) -> impl IntoResponse {
    sse_from(t.subscribe_spot(), closing, |ticks: &Arc<Vec<Tick>>| {
        ticks
            .iter()
            .map(|t| event("tick", TickOut::from(t)))
            .collect()
    })
}

/// A price as `/sse/spot` and `/sse/trading` send it (`event: tick`).
#[derive(Debug, Serialize)]
pub(crate) struct TickOut {
    symbol: String,
    price: String,
    bid: Option<String>,
    ask: Option<String>,
}

impl From<&Tick> for TickOut {
    fn from(t: &Tick) -> Self {
        TickOut {
            symbol: t.symbol.as_str().to_string(),
            price: t.price.to_string(),
            bid: t.bid.map(|p| p.to_string()),
            ask: t.ask.map(|p| p.to_string()),
        }
    }
}

// ----- signals ------------------------------------------------------------------------------

/// A TradingView-style alert. Fields other than these are ignored (alerts carry their own).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignalIn {
    pub ticker: String,
    /// `buy`, `sell`, `exit` or `flat` (a `target` strategy may leave it out).
    pub action: Option<String>,
    /// `long`, `short` or `flat` (`{{strategy.market_position}}`): a `target` strategy holds it.
    pub market_position: Option<String>,
    /// The position's size (`{{strategy.position_size}}`, signed, or the absolute
    /// `{{strategy.market_position_size}}`).
    pub position_size: Option<DecimalIn>,
    pub contracts: Option<DecimalIn>,
    pub qty: Option<DecimalIn>,
    pub price: Option<DecimalIn>,
    /// `market` or `limit` (used when the strategy takes the alert's price).
    pub order_type: Option<String>,
    /// Alert id: repeats with the same id are acknowledged but not traded again.
    #[schema(value_type = Option<String>)]
    pub id: Option<Value>,
    /// Alert time; identifies repeats when there is no id.
    pub time: Option<String>,
    /// The strategy's shared secret (TradingView cannot set headers).
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalOut {
    pub strategy: String,
    pub duplicate: bool,
    /// The orders placed (a risk denial shows as status `denied` with its code).
    pub orders: Vec<OrderOut>,
    /// With 422: the risk rule that denied an order of the signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[utoipa::path(post, path = "/api/signals/{strategy}", tag = "trading", params(("strategy" = String, Path)),
    request_body = SignalIn,
    responses((status = 200, body = SignalOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = SignalOut, description = "pre-trade risk denied an order of the signal: the orders and the rule")))]
pub async fn signal(
    State(signals): State<Signals>,
    ApiPath(strategy): ApiPath<String>,
    client: Option<axum::Extension<crate::permissions::Client>>,
    JsonBody(body): JsonBody<SignalIn>,
) -> ApiResult<Response> {
    let from = crate::webhooks::from(client);
    use sovereign_core::trading::order::OrderType;
    use sovereign_core::trading::signal::{Action, Signal};
    // The secret first: an unauthenticated sender learns nothing about the alert's validity.
    let holds_targets = signals
        .authenticate(&strategy, body.secret.as_deref(), from)?
        .rule
        .target;
    let action = match (&body.action, holds_targets) {
        (Some(a), _) => Action::parse(a)?,
        // Not read by a target strategy.
        (None, true) => Action::Exit,
        (None, false) => {
            return Err(ApiError::new(Code::MissingField, "action is required").field("action"))
        }
    };
    let target = sovereign_core::trading::signal::target_position(
        body.market_position.as_deref(),
        body.position_size
            .as_ref()
            .map(|d| decimal("position_size", d).map(Qty))
            .transpose()?,
    )?;
    let qty = match (&body.contracts, &body.qty) {
        (Some(d), _) => Some(Qty(decimal("contracts", d)?)),
        (None, Some(d)) => Some(Qty(decimal("qty", d)?)),
        (None, None) => None,
    };
    let signal = Signal {
        ticker: body.ticker.clone(),
        action,
        qty,
        price: body
            .price
            .as_ref()
            .map(|d| decimal("price", d).map(Price))
            .transpose()?,
        order_type: body
            .order_type
            .as_deref()
            .map(OrderType::parse)
            .transpose()?,
        target,
    };
    let delivery = match (&body.id, &body.time) {
        (Some(Value::String(id)), _) => Some(id.clone()),
        (Some(Value::Number(n)), _) => Some(n.to_string()),
        (_, Some(t)) => Some(t.clone()),
        _ => None,
    };
    let outcome = signals
        .receive(
            &strategy,
            SignalRequest {
                secret: body.secret.clone(),
                signal,
                delivery,
            },
            from,
        )
        .await?;
    // Answered like an order: a risk denial (also of a repeat) is 422 with the rule.
    let error = outcome.orders.iter().find_map(|o| {
        let (code, message) = match &o.denial {
            Some(d) => (d.code.code().to_string(), d.message.clone()),
            None if o.order.status == OrderStatus::Denied => (
                o.order.reject_code.clone().unwrap_or_default(),
                o.order.reject_reason.clone().unwrap_or_default(),
            ),
            None => return None,
        };
        Some(ErrorDetail {
            code,
            message,
            field: None,
        })
    });
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let out = SignalOut {
        strategy,
        duplicate: outcome.duplicate,
        orders: outcome
            .orders
            .iter()
            .map(|o| OrderOut::from(&o.order))
            .collect(),
        error,
    };
    Ok((status, Json(out)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(d: &DecimalIn) -> String {
        d.text()
    }

    #[test]
    fn json_numbers_keep_every_digit() {
        // 18 significant digits: an f64 would round this to 1234567890.1234567.
        let order: OrderIn = serde_json::from_str(
            r#"{"symbol":"ES","side":"buy","qty":1234567890.12345678,"limit_price":"5000.25"}"#,
        )
        .expect("an order");
        assert_eq!(order.spec().qty, "1234567890.12345678");
        assert_eq!(
            Fixed::parse(&order.spec().qty).map(|f| f.to_string()),
            Ok("1234567890.12345678".to_string())
        );
        // Also inside the untagged batch shapes, where serde buffers the input.
        for body in [
            r#"[{"symbol":"ES","price":1234567890.12345678,"bid":0.10000000000000001}]"#,
            r#"{"ticks":[{"symbol":"ES","price":1234567890.12345678,"bid":0.10000000000000001}]}"#,
        ] {
            let (TicksIn::Batch(v) | TicksIn::Wrapped { ticks: v }) =
                serde_json::from_str::<TicksIn>(body).expect("ticks");
            assert_eq!(text(&v[0].price), "1234567890.12345678", "{body}");
            assert_eq!(
                v[0].bid.as_ref().map(text).as_deref(),
                Some("0.10000000000000001"),
                "{body}"
            );
        }
        let bad = serde_json::from_str::<OrderIn>(r#"{"symbol":"ES","side":"buy","qty":true}"#);
        assert!(bad.is_err());
    }
}

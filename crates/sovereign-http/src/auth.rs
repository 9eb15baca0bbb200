//! Single sign-on over HTTP: a WordPress token becomes a session cookie (`POST /api/auth/sso`,
//! or `GET /api/auth/sso?token=…&next=/…` for a link that lands on a page), `POST
//! /api/auth/logout` ends it, and the tier gates (`GET/POST /api/tier-gates`).
//!
//! The cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when the connection is TLS;
//! the CSRF token that every mutating request of the session must send back as
//! `X-CSRF-Token` is in the answer and in the readable `sov_csrf` cookie.

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sovereign_core::access::Principal;
use sovereign_engine::access::{Access, SignOnError, SignedOn};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{Actor, ApiQuery, JsonBody};
use crate::permissions::Client;
use crate::server::Connection;

crate::routes! {
    me,
    sign_on,
    sign_on_link,
    sign_off,
    get_tier_gates,
    set_tier_gates,
}

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "sov_session";
/// The readable cookie holding the session's CSRF token.
const CSRF_COOKIE: &str = "sov_csrf";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOnIn {
    /// The JWT the WordPress site issued.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOnLink {
    pub token: String,
    /// Where to go once signed on: a path on this engine (default `/`).
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub subject: String,
    pub tier: String,
    pub role: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Send it back as `X-CSRF-Token` on every request that changes something.
    pub csrf_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedOff {
    /// Whether a session was ended (false: there was none).
    pub ended: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TierGatesOut {
    /// Each tier and whether it may use the engine (coaching and administrator always may).
    #[schema(value_type = Object)]
    pub allowed_tiers: Value,
}

/// The cookie's value in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The `Set-Cookie` values that end a session in the browser.
pub(crate) fn clearing_cookies() -> [HeaderValue; 2] {
    [
        HeaderValue::from_static("sov_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
        HeaderValue::from_static("sov_csrf=; Path=/; Max-Age=0; SameSite=Lax"),
    ]
}

fn session_cookies(signed: &SignedOn, secure: bool) -> Vec<HeaderValue> {
    let max_age = (signed.session.expires_at - chrono::Utc::now().timestamp()).max(0);
    let secure = if secure { "; Secure" } else { "" };
    [
        format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            signed.cookie
        ),
        format!(
            "{CSRF_COOKIE}={}; Path=/; Max-Age={max_age}; SameSite=Lax{secure}",
            signed.session.csrf
        ),
    ]
    .into_iter()
    .filter_map(|c| HeaderValue::from_str(&c).ok())
    .collect()
}

fn sign_on_error(e: SignOnError) -> ApiError {
    let message = e.to_string();
    match e {
        SignOnError::NotConfigured => ApiError::new(Code::SsoNotConfigured, message),
        SignOnError::Refused(_) => ApiError::new(Code::Unauthenticated, message).field("token"),
        SignOnError::Blocked(_) => ApiError::new(Code::TierBlocked, message),
        SignOnError::Secret(_) | SignOnError::Random => {
            ApiError::new(Code::SsoUnavailable, message)
        }
        SignOnError::Store(s) => s.into(),
    }
}

async fn open_session(
    access: &Access,
    token: &str,
    client: Option<Extension<Client>>,
) -> ApiResult<SignedOn> {
    let from = client
        .and_then(|Extension(c)| c.0)
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    access.sign_on(token, from).await.map_err(sign_on_error)
}

fn secure(connection: Option<Extension<Connection>>) -> bool {
    connection.is_some_and(|Extension(c)| c.tls)
}

/// Who a request is: the dashboard asks before it shows anything.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    /// `local` or `keys`.
    pub mode: String,
    /// `viewer`, `trader` or `admin`.
    pub role: String,
    /// The key's name, the session's subject, or `local`.
    pub subject: String,
    /// `local`, `key` or `session`.
    pub via: String,
    /// A session's CSRF token (send it back as `X-CSRF-Token`); `null` otherwise.
    pub csrf_token: Option<String>,
}

#[utoipa::path(get, path = "/api/auth/me", tag = "access",
    responses((status = 200, body = MeOut), (status = 401, body = ErrorBody)))]
pub async fn me(
    State(access): State<Access>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
) -> ApiResult<Json<MeOut>> {
    let Some(Extension(p)) = principal else {
        return Err(ApiError::new(Code::Unauthenticated, "no credential"));
    };
    let (subject, via) = match &p {
        Principal::Local => ("local".to_string(), "local"),
        Principal::Key { name, .. } => (name.clone(), "key"),
        Principal::Session { subject, .. } => (subject.clone(), "session"),
    };
    let csrf_token = matches!(p, Principal::Session { .. })
        .then(|| cookie(&headers, CSRF_COOKIE).map(str::to_string))
        .flatten();
    Ok(Json(MeOut {
        mode: match access.mode() {
            sovereign_engine::access::settings::Mode::Local => "local",
            sovereign_engine::access::settings::Mode::Keys => "keys",
        }
        .into(),
        role: p.role().as_str().into(),
        subject,
        via: via.into(),
        csrf_token,
    }))
}

#[utoipa::path(post, path = "/api/auth/sso", tag = "access", request_body = SignOnIn,
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn sign_on(
    State(access): State<Access>,
    client: Option<Extension<Client>>,
    connection: Option<Extension<Connection>>,
    JsonBody(body): JsonBody<SignOnIn>,
) -> ApiResult<Response> {
    let signed = open_session(&access, &body.token, client).await?;
    let mut response = Json(SessionOut {
        subject: signed.session.subject.clone(),
        tier: signed.session.tier.as_str().into(),
        role: signed.role.as_str().into(),
        expires_at: signed.session.expires_at,
        csrf_token: signed.session.csrf.clone(),
    })
    .into_response();
    for c in session_cookies(&signed, secure(connection)) {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/auth/sso", tag = "access", params(
        ("token" = String, Query, description = "The JWT the WordPress site issued"),
        ("next" = Option<String>, Query, description = "A path on this engine to go to (default /)")),
    responses((status = 303, description = "Signed on; to `next` with the session cookie"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn sign_on_link(
    State(access): State<Access>,
    client: Option<Extension<Client>>,
    connection: Option<Extension<Connection>>,
    ApiQuery(link): ApiQuery<SignOnLink>,
) -> ApiResult<Response> {
    // Only a path here: never a redirect to another site.
    let next = link
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".into());
    let signed = open_session(&access, &link.token, client).await?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(to) = HeaderValue::from_str(&next) {
        response.headers_mut().insert(LOCATION, to);
    }
    for c in session_cookies(&signed, secure(connection)) {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "access",
    responses((status = 200, body = SignedOff)))]
pub async fn sign_off(State(access): State<Access>, headers: HeaderMap) -> ApiResult<Response> {
    let mut ended = false;
    if let Some(text) = cookie(&headers, SESSION_COOKIE) {
        if let Ok((session, _)) = access.session(text) {
            access.sign_off(&session).await?;
            ended = true;
        }
    }
    let mut response = Json(SignedOff { ended }).into_response();
    for c in clearing_cookies() {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/tier-gates", tag = "access",
    responses((status = 200, body = TierGatesOut)))]
pub async fn get_tier_gates(State(access): State<Access>) -> Json<Value> {
    Json(access.tier_gates().to_json())
}

#[utoipa::path(post, path = "/api/tier-gates", tag = "access", request_body = TierGatesOut,
    responses((status = 200, body = TierGatesOut), (status = 400, body = ErrorBody)))]
pub async fn set_tier_gates(
    State(access): State<Access>,
    Actor(actor): Actor,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let gates = access.set_tier_gates(&body, &actor).await?;
    Ok(Json(gates.to_json()))
}

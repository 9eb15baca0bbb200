//! The one permission table: what every route needs, and the guard that applies it.
//!
//! `viewer` reads; `trader` orders, cancels, flattens, runs tasks, pushes prices, posts alerts;
//! `admin` everything else (tasks' definitions, services, hardstop/resume, keys, channels).
//! Webhook and signal routes are authorised by their own secret. A route missing here needs
//! `admin` (closed by default), and a test fails on it. A request over the data dir's Unix
//! socket is `local` (admin) in every mode, without a key and without an address budget.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sovereign_core::access::{allows, Group, Need, Principal, Role};
use sovereign_core::sso::{csrf_ok, Tier};
use sovereign_engine::access::{Access, Limited, Mode, SessionProblem};

use crate::error::{ApiError, Code};
use crate::server::Connection;

use Need::{OwnSecret, Public, Role as R};
use Role::{Admin, Trader, Viewer};

/// (method, route, need) for every route.
pub const TABLE: &[(&str, &str, Need)] = &[
    ("GET", "/health", Public),
    ("GET", "/", Public),
    ("GET", "/assets/{file}", Public),
    ("POST", "/api/auth/sso", Public),
    ("GET", "/api/auth/sso", Public),
    ("POST", "/api/auth/logout", Public),
    ("POST", "/webhook", OwnSecret),
    ("POST", "/webhook/{source}", OwnSecret),
    ("POST", "/webhook/{source}/{token}", OwnSecret),
    ("POST", "/api/signals/{strategy}", OwnSecret),
    ("POST", "/api/gateways/{name}/reports", OwnSecret),
    ("POST", "/api/v1/deploy/hooks/{plan}", OwnSecret),
    ("GET", "/status", R(Viewer)),
    ("GET", "/tasks", R(Viewer)),
    ("GET", "/results", R(Viewer)),
    ("GET", "/openapi.json", R(Viewer)),
    ("GET", "/api/accounts", R(Viewer)),
    ("GET", "/api/auth/me", R(Viewer)),
    ("GET", "/api/alerts", R(Viewer)),
    ("GET", "/api/alerts/channels", R(Viewer)),
    ("GET", "/api/audit", R(Viewer)),
    ("GET", "/api/audit/verify", R(Viewer)),
    ("GET", "/api/fills", R(Viewer)),
    ("GET", "/api/gateways", R(Viewer)),
    ("GET", "/api/health", R(Viewer)),
    ("GET", "/api/health/deep", R(Viewer)),
    ("GET", "/api/market/quotes", R(Viewer)),
    ("GET", "/api/orders", R(Viewer)),
    ("GET", "/api/orders/{id}", R(Viewer)),
    ("GET", "/api/positions", R(Viewer)),
    ("GET", "/api/results", R(Viewer)),
    ("GET", "/api/risk", R(Viewer)),
    ("GET", "/api/services", R(Viewer)),
    ("GET", "/api/services/{name}/logs", R(Viewer)),
    ("GET", "/api/services/{name}/logs/stream", R(Viewer)),
    ("GET", "/api/tasks", R(Viewer)),
    ("GET", "/api/tasks/{id}", R(Viewer)),
    ("GET", "/api/truth", R(Viewer)),
    ("GET", "/api/truth/{component}", R(Viewer)),
    ("GET", "/api/webhooks", R(Viewer)),
    ("GET", "/api/v1/deploy/status", R(Viewer)),
    ("GET", "/api/v1/deploy/history", R(Viewer)),
    ("GET", "/api/v1/deploy/runs/{id}", R(Viewer)),
    ("GET", "/api/v1/deploy/audit-trail", R(Viewer)),
    ("GET", "/api/v1/autonomy/status", R(Viewer)),
    ("GET", "/sse/deploys", R(Viewer)),
    ("GET", "/api/tier-gates", R(Viewer)),
    ("GET", "/sse/alerts", R(Viewer)),
    ("GET", "/sse/fills", R(Viewer)),
    ("GET", "/sse/orders", R(Viewer)),
    ("GET", "/sse/positions", R(Viewer)),
    ("GET", "/sse/results", R(Viewer)),
    ("GET", "/sse/services", R(Viewer)),
    ("GET", "/sse/spot", R(Viewer)),
    ("GET", "/sse/trading", R(Viewer)),
    ("POST", "/api/orders", R(Trader)),
    ("DELETE", "/api/orders/{id}", R(Trader)),
    ("PATCH", "/api/orders/{id}", R(Trader)),
    ("POST", "/api/orders/cancel-all", R(Trader)),
    ("POST", "/api/positions/flatten", R(Trader)),
    ("POST", "/execute", R(Trader)),
    ("POST", "/api/tasks/{id}/execute", R(Trader)),
    ("POST", "/api/market/ticks", R(Trader)),
    ("POST", "/api/alerts", R(Trader)),
    ("POST", "/api/heartbeats/{service}", R(Trader)),
    ("POST", "/register", R(Admin)),
    ("POST", "/api/tasks", R(Admin)),
    ("PUT", "/api/tasks/{id}", R(Admin)),
    ("DELETE", "/api/tasks/{id}", R(Admin)),
    ("POST", "/api/tasks/{id}/enable", R(Admin)),
    ("POST", "/api/tasks/{id}/disable", R(Admin)),
    ("POST", "/api/services/{name}/start", R(Admin)),
    ("POST", "/api/services/{name}/stop", R(Admin)),
    ("POST", "/api/services/{name}/restart", R(Admin)),
    ("POST", "/api/risk/hardstop", R(Admin)),
    ("POST", "/api/risk/resume", R(Admin)),
    ("POST", "/api/gateways/{name}/reconcile", R(Admin)),
    ("POST", "/api/alerts/test", R(Admin)),
    ("POST", "/api/alerts/channels/{name}/enable", R(Admin)),
    ("GET", "/api/keys", R(Admin)),
    ("POST", "/api/keys", R(Admin)),
    ("DELETE", "/api/keys/{name}", R(Admin)),
    ("POST", "/api/tier-gates", R(Admin)),
    ("POST", "/api/v1/deploy/run", R(Admin)),
    ("POST", "/api/v1/deploy/{plan}/promote", R(Admin)),
    ("POST", "/api/v1/deploy/{plan}/pause", R(Admin)),
    ("POST", "/api/v1/deploy/{plan}/resume", R(Admin)),
    ("POST", "/api/v1/deploy/{plan}/abort", R(Admin)),
    ("POST", "/api/v1/deploy/{plan}/rollback", R(Admin)),
];

/// The client a request is from: the peer, or the address a trusted proxy forwarded
/// (`None` for in-process callers). Handlers read it to apply allow-lists.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub Option<IpAddr>);

/// What `method route` needs (`None`: not in the table).
pub fn need(method: &Method, route: &str) -> Option<Need> {
    TABLE
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, n)| *n)
}

/// The key a request presents: `Authorization: Bearer …` or `X-Api-Key: …`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// Whether a request comes from this machine itself: a loopback peer, and no proxy in between
/// (a reverse proxy on the same host must not make the internet local).
fn from_this_machine(peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
    let proxied = headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for");
    // In-process callers (tests' `oneshot`) have no peer: they are this machine.
    !proxied && peer.is_none_or(|p| p.is_loopback())
}

/// A browser is an attacker too, even on loopback: a page the operator visits must not reach
/// the engine. A `Host` that is not this engine (DNS rebinding) is refused; a mutating request
/// from another `Origin` is refused; a body a browser sends to a JSON route must say it is JSON,
/// so a cross-site `text/plain` or form POST (which needs no preflight) never parses. Browsers
/// mark every such request (`Origin`, `Sec-Fetch-*`); scripts do not, so the legacy
/// `curl -d '{…}'` (a form content type) keeps working. Webhook and signal routes keep taking
/// `text/plain` (TradingView sends it).
fn browser_checks(access: &Access, req: &Request, need: Need) -> Option<ApiError> {
    let headers = req.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let host = text(axum::http::header::HOST);
    if let Some(h) = host {
        if !access.answers_to(h) {
            return Some(ApiError::new(
                Code::InvalidHost,
                format!("this engine does not answer to {h:?}; add it to access.hosts"),
            ));
        }
    }
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !mutating {
        return None;
    }
    if let Some(origin) = text(axum::http::header::ORIGIN) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if host.is_none_or(|h| !h.eq_ignore_ascii_case(origin_host)) {
            return Some(ApiError::new(
                Code::CrossOrigin,
                format!("a request from {origin:?} may not change anything here"),
            ));
        }
    }
    let has_body = text(axum::http::header::CONTENT_LENGTH).is_some_and(|l| l != "0")
        || headers.contains_key(axum::http::header::TRANSFER_ENCODING);
    let from_browser = headers.contains_key(axum::http::header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key("sec-fetch-mode");
    if has_body && from_browser && need != OwnSecret {
        let json = text(axum::http::header::CONTENT_TYPE).is_some_and(|t| {
            let t = t
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            t == "application/json" || t.ends_with("+json")
        });
        if !json {
            return Some(ApiError::new(
                Code::UnsupportedMediaType,
                "send the body as JSON (Content-Type: application/json)",
            ));
        }
    }
    None
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// nearest address in `X-Forwarded-For` that is not a trusted proxy itself.
fn client_address(access: &Access, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?;
    if !access.trusts_proxy(peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().parse::<IpAddr>())
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop {
            Ok(ip) if access.trusts_proxy(*ip) => continue,
            Ok(ip) => return Some(*ip),
            // A hop that is not an address: the chain cannot be believed past it.
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

fn limited(l: Limited) -> Response {
    let secs = l.retry_after.as_secs() + u64::from(l.retry_after.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut response = ApiError::new(
        Code::RateLimited,
        format!("too many requests; try again in {secs} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, secs.into());
    response
}

/// A refusal that also ends the session in the browser.
fn clearing(error: ApiError) -> Response {
    let mut response = error.into_response();
    for c in crate::auth::clearing_cookies() {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, c);
    }
    response
}

/// End a session's event stream as soon as the tier gates block its tier.
fn ending_when_blocked(access: &Access, tier: Tier, response: Response) -> Response {
    let is_stream = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return response;
    }
    let mut gates = access.watch_gates();
    let blocked = async move {
        loop {
            if !gates.borrow_and_update().allows(tier) {
                return;
            }
            if gates.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().take_until(Box::pin(blocked));
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

/// Apply the table: find who the request is, let it through or answer 401/403/429.
pub(crate) async fn guard(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let need = route
        .as_deref()
        .and_then(|r| need(req.method(), r))
        .unwrap_or(Need::Role(Admin));
    let connection = req.extensions().get::<Connection>().copied();
    if connection.is_some_and(|c| c.webhooks_only) && need != OwnSecret {
        return ApiError::new(
            Code::NotFound,
            "this listener serves only the webhook and signal routes",
        )
        .into_response();
    }
    if let Some(refusal) = browser_checks(&access, &req, need) {
        return refusal.into_response();
    }
    // The data dir's Unix socket: only its owner can connect, who is trusted with everything.
    let local_socket = connection.is_some_and(|c| c.local_socket);
    let peer = connection.map(|c| c.peer.ip());
    let client = if local_socket {
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else {
        client_address(&access, peer, req.headers())
    };
    req.extensions_mut().insert(Client(client));
    let group = Group::of(need);
    let from = client.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if client.is_some() && !local_socket {
        if let Err(l) = access.admit(group, from) {
            return limited(l);
        }
    }
    if matches!(need, Public | OwnSecret) {
        return next.run(req).await;
    }
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut session_tier = None;
    let principal = if local_socket {
        Some(Principal::Local)
    } else if let Some(key) = presented_key(req.headers()) {
        match access.authenticate(key, from) {
            Ok(p) => Some(p),
            Err(refusal) => {
                return ApiError::new(Code::Unauthenticated, refusal.message()).into_response()
            }
        }
    } else if let Some(cookie) = crate::auth::cookie(req.headers(), crate::auth::SESSION_COOKIE) {
        match access.session(cookie) {
            Ok((session, p)) => {
                let presented = req
                    .headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok());
                if mutating && !csrf_ok(&session, presented) {
                    return ApiError::new(
                        Code::CsrfFailed,
                        "a session's request that changes something must send its CSRF token \
                         as X-CSRF-Token",
                    )
                    .into_response();
                }
                session_tier = Some(session.tier);
                Some(p)
            }
            Err(problem @ SessionProblem::Blocked(_)) => {
                return clearing(ApiError::new(Code::TierBlocked, problem.message()))
            }
            Err(problem) => {
                if let SessionProblem::Invalid(r) = &problem {
                    access.failed(from, r.code());
                }
                return clearing(ApiError::new(Code::Unauthenticated, problem.message()));
            }
        }
    } else if access.mode() == Mode::Local && from_this_machine(peer, req.headers()) {
        Some(Principal::Local)
    } else {
        None
    };
    if let Some(p) = &principal {
        if let Err(l) = access.admit_principal(group, p, from) {
            return limited(l);
        }
    }
    if allows(need, principal.as_ref()) {
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        let response = next.run(req).await;
        return match session_tier {
            Some(tier) => ending_when_blocked(&access, tier, response),
            None => response,
        };
    }
    let wanted = need.as_str();
    match principal {
        None => ApiError::new(
            Code::Unauthenticated,
            format!("this needs an API key with the {wanted} role (Authorization: Bearer sov_…)"),
        ),
        Some(p) => ApiError::new(
            Code::Forbidden,
            format!(
                "this needs the {wanted} role; the {} has {}",
                match p {
                    Principal::Session { .. } => "session",
                    _ => "key",
                },
                p.role().as_str()
            ),
        ),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_api_has_exactly_one_entry() {
        let doc: serde_json::Value =
            serde_json::from_str(&crate::openapi_json()).unwrap_or_default();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        let mut listed = Vec::new();
        for (path, ops) in &paths {
            for m in ["get", "post", "put", "delete", "patch"] {
                if ops.get(m).is_some() {
                    let method = m.to_ascii_uppercase();
                    let hits = TABLE
                        .iter()
                        .filter(|(tm, tr, _)| *tm == method && tr == path)
                        .count();
                    assert_eq!(hits, 1, "{method} {path} needs one entry in the table");
                    listed.push((method, path.clone()));
                }
            }
        }
        assert!(
            listed.len() > 50,
            "the document lists the routes: {}",
            listed.len()
        );
        for (m, r, _) in TABLE {
            assert!(
                listed.iter().any(|(lm, lr)| lm == m && lr == r),
                "{m} {r} is in the table but not a route"
            );
        }
    }
}

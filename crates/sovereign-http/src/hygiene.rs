//! Request hygiene: what a request may cost before a handler sees it.
//!
//! - A head too large (URI over [`MAX_URI`], headers over [`MAX_HEADERS`] or [`MAX_HEAD`]
//!   bytes) is answered 414/431 in the JSON envelope. The connection layer's own limits are
//!   set above these, so only a head it cannot parse at all gets its bare answer.
//! - A body is read here, whole, within the route's limit and the body timeout: a declared
//!   `Content-Length` over the limit is refused at once (413, before `100 Continue`, so the
//!   client never sends it), a body that grows past it is cut off (413), a body that stalls
//!   gets 408. Handlers then parse from memory.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::error::{ApiError, Code};

/// The longest request target answered (bytes).
pub const MAX_URI: usize = 8 * 1024;
/// The most header fields a request may carry.
pub const MAX_HEADERS: usize = 100;
/// The most bytes the header fields of a request may take.
pub const MAX_HEAD: usize = 32 * 1024;

/// Refuse a request whose head is larger than the engine answers.
pub(crate) async fn head_limits(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return ApiError::new(
            Code::UriTooLong,
            format!("the request target is {target} bytes; at most {MAX_URI} are answered"),
        )
        .into_response();
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEAD {
        return ApiError::new(
            Code::HeadersTooLarge,
            format!(
                "the request has {} header fields of {bytes} bytes; at most {MAX_HEADERS} \
                 fields of {MAX_HEAD} bytes are answered",
                headers.len()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// How much body a group of routes takes, and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRules {
    pub limit: usize,
    pub timeout: Duration,
}

fn too_large(limit: usize) -> Response {
    ApiError::new(
        Code::BodyTooLarge,
        format!("request body is larger than the configured limit ({limit} bytes)"),
    )
    .into_response()
}

/// Read the body whole within the rules, or answer 413/408/400 without calling the handler.
pub(crate) async fn read_body(
    State(rules): State<BodyRules>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > rules.limit as u64) {
        return too_large(rules.limit);
    }
    let chunked = req.headers().contains_key(TRANSFER_ENCODING);
    if !chunked && declared.unwrap_or(0) == 0 {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(rules.timeout, collect(body, rules.limit)).await;
    match read {
        Err(_) => ApiError::new(
            Code::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                rules.timeout.as_secs_f64()
            ),
        )
        .into_response(),
        Ok(Err(Collect::TooLarge)) => too_large(rules.limit),
        Ok(Err(Collect::Broken(e))) => ApiError::new(
            Code::UnreadableBody,
            format!("the body could not be read: {e}"),
        )
        .into_response(),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

enum Collect {
    TooLarge,
    Broken(axum::Error),
}

/// The body's bytes, at most `limit` of them; one chunk is passed on without a copy.
async fn collect(body: Body, limit: usize) -> Result<Bytes, Collect> {
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Collect::Broken)?;
        total += chunk.len();
        if total > limit {
            return Err(Collect::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            None => joined.extend_from_slice(&chunk),
            Some(f) => {
                joined.extend_from_slice(&f);
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

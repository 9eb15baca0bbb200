//! `http_request`: send the payload's request (URL, headers and body templated) with the
//! engine's HTTP client; the status and a bounded body are the output, a 4xx/5xx fails.

use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::redact::redact_url;
use sovereign_core::task::HttpRequestSpec;
use sovereign_core::template::{render, render_value};

use super::{Context, Failure};
use crate::support::error_chain;

/// A request parsed at registration.
pub struct Request {
    spec: HttpRequestSpec,
    method: reqwest::Method,
}

impl Request {
    pub(super) fn parse(payload: &Value) -> Result<Request, Invalid> {
        let spec = HttpRequestSpec::from_payload(payload)?;
        let method = reqwest::Method::from_bytes(spec.method.as_bytes()).map_err(|_| {
            Invalid::new(
                "invalid_payload",
                "payload.method",
                format!("bad method {}", spec.method),
            )
        })?;
        Ok(Request { spec, method })
    }
}

pub(super) async fn run(ctx: &Context, req: &Request, template: &Value) -> Result<Value, Failure> {
    let spec = &req.spec;
    let url = render(&spec.url, template)?;
    let mut call = ctx.http.request(req.method.clone(), &url);
    for (k, v) in &spec.headers {
        call = call.header(k.as_str(), render(v, template)?);
    }
    if let Some(timeout) = spec.timeout {
        call = call.timeout(timeout);
    }
    match spec
        .body
        .as_ref()
        .map(|b| render_value(b, template))
        .transpose()?
    {
        Some(Value::String(text)) => call = call.body(text),
        Some(body) => call = call.json(&body),
        None => {}
    }
    let started = std::time::Instant::now();
    let mut resp = call.send().await.map_err(|e| {
        Failure::new(format!(
            "request to {} failed: {}",
            redact_url(&url),
            error_chain(&e)
        ))
    })?;
    let status = resp.status();
    let limit = ctx.settings.max_response_bytes;
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::new(format!("reading response failed: {}", error_chain(&e))))?
    {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let body_value = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let output = json!({
        "status": status.as_u16(),
        "body": body_value,
        "truncated": truncated,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    });
    if status.is_client_error() || status.is_server_error() {
        return Err(Failure {
            message: format!("HTTP {status}"),
            output,
        });
    }
    Ok(output)
}

//! `http_request`: send the payload's request (URL, headers and body templated) with the
//! handler's own HTTP client; the status and a bounded body are the output, a 4xx/5xx fails.
//!
//! Where it may send is `sovereign_core::egress`'s decision, enforced at every step a request
//! could leave the rule: the URL as written (at registration, by the core, when it has no
//! template), the rendered URL (before anything is sent; a refused one fails the run), each
//! redirect hop (followed only to an allowed URL, at most [`MAX_REDIRECTS`]; a refused hop fails
//! the run and is not requested), and — without an allow list — every address a host name
//! resolves to (the client's resolver drops forbidden ones, so DNS cannot point an allowed name
//! at the engine or the metadata service). Without an allow list the client also ignores the
//! `HTTP(S)_PROXY` variables: through a proxy the addresses could not be judged.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use sovereign_core::egress::Egress;
use sovereign_core::error::Invalid;
use sovereign_core::redact::redact_url;
use sovereign_core::task::HttpRequestSpec;
use sovereign_core::template::{render, render_value};

use super::{Context, Failure};
use crate::support::error_chain;

/// Redirects followed before a run fails (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// The client `http_request` sends with: redirects checked hop by hop against `egress`, and,
/// without an allow list, resolved addresses too (and no proxy).
pub(super) fn client(egress: Arc<Egress>) -> Result<reqwest::Client, reqwest::Error> {
    let hops = egress.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match hops.check(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(format!(
                "redirect refused, not followed: {}",
                refused.message
            )),
        }
    });
    let builder = reqwest::Client::builder()
        .user_agent(concat!("sovereign/", env!("CARGO_PKG_VERSION")))
        .redirect(policy);
    let builder = if egress.is_listed() {
        builder
    } else {
        builder.no_proxy().dns_resolver(Guard(egress))
    };
    builder.build()
}

/// The resolver of the guarded client: the system's answers, less the forbidden addresses.
struct Guard(Arc<Egress>);

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(lookup(self.0.clone(), name.as_str().to_string()))
    }
}

async fn lookup(
    egress: Arc<Egress>,
    host: String,
) -> Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .filter(|a| match egress.check_resolved(&host, a.ip()) {
            Ok(()) => true,
            Err(why) => {
                refused = Some(why);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        let why = refused.unwrap_or_else(|| format!("{host} has no address"));
        return Err(format!("destination not allowed: {why}").into());
    }
    let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
    Ok(addrs)
}

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
    // Checked again now, rendered, against the rules in force: nothing goes out otherwise.
    let target = reqwest::Url::parse(&url).map_err(|e| {
        Failure::new(format!(
            "{} is not a URL ({e}); nothing was sent",
            redact_url(&url)
        ))
    })?;
    ctx.rules
        .egress
        .check(&target)
        .map_err(|refused| Failure::new(format!("{}; nothing was sent", refused.message)))?;
    let mut call = ctx.http.request(req.method.clone(), target);
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

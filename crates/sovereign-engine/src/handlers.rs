//! The built-in task handlers. Each takes the task and a template context and returns the run's
//! output, or a failure with a message (and whatever output it has). Handlers never store
//! anything themselves; the executor records what they return.

use std::process::Stdio;

use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::task::{
    alert_spec_from_payload, order_spec_from_payload, CommandSpec, HandlerKind, HttpRequestSpec,
    RebalanceSpec, Task,
};
use sovereign_core::template::{render, render_value};
use sovereign_core::trading::oms::Submitted;
use sovereign_core::trading::order::NewOrder;
use sovereign_core::trading::signal;
use tokio::io::AsyncReadExt;

use crate::executor::Engine;
use crate::notifier::Raised;

/// A handler that did not succeed.
pub(crate) struct Failure {
    pub message: String,
    pub output: Value,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            output: Value::Null,
        }
    }
}

pub(crate) async fn run(engine: &Engine, task: &Task, ctx: &Value) -> Result<Value, Failure> {
    match task.handler {
        HandlerKind::LogSignal => Ok(log_signal(task, ctx)),
        HandlerKind::HttpRequest => http_request(engine, task, ctx).await,
        HandlerKind::Command => command(engine, task, ctx).await,
        HandlerKind::PlaceOrder => place_order(engine, task, ctx).await,
        HandlerKind::Rebalance => rebalance(engine, task).await,
        HandlerKind::Notify => notify(engine, task, ctx).await,
    }
}

/// Raise the payload's alert (templates rendered; source `tasks` unless given; the task id
/// added to its context).
async fn notify(engine: &Engine, task: &Task, ctx: &Value) -> Result<Value, Failure> {
    let payload = render_value(&task.payload, ctx);
    let mut spec =
        alert_spec_from_payload(&payload, "tasks").map_err(|e| Failure::new(e.to_string()))?;
    if let Value::Null = spec.context {
        spec.context = json!({});
    }
    if let Some(o) = spec.context.as_object_mut() {
        o.entry("task_id")
            .or_insert_with(|| Value::String(task.id.to_string()));
    }
    let alert = spec.validate().map_err(|e| Failure::new(e.to_string()))?;
    match engine
        .notifier()
        .raise(alert, &format!("task:{}", task.id))
        .await
    {
        Ok(Raised::Accepted {
            id,
            channels,
            digest,
        }) => Ok(json!({"alert_id": id, "channels": channels, "digest": digest})),
        Ok(Raised::Duplicate) => Ok(json!({"duplicate": true})),
        Err(e) => Err(Failure::new(format!("alert not accepted: {e}"))),
    }
}

fn order_output(s: &Submitted) -> Value {
    crate::journal::order_json(&s.order)
}

async fn place_order(engine: &Engine, task: &Task, ctx: &Value) -> Result<Value, Failure> {
    let mut spec =
        order_spec_from_payload(&task.payload).map_err(|e| Failure::new(e.to_string()))?;
    spec.client_order_id = spec.client_order_id.map(|c| render(&c, ctx));
    let order = NewOrder::validate(&spec, engine.trading().instruments())
        .map_err(|e| Failure::new(e.to_string()))?;
    let done = engine
        .trading()
        .submit(order)
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    let output = json!({"order": order_output(&done), "duplicate": done.duplicate});
    match done.denial {
        Some(d) => Err(Failure {
            message: format!("denied by risk: {}: {}", d.code.code(), d.message),
            output,
        }),
        None => Ok(output),
    }
}

async fn rebalance(engine: &Engine, task: &Task) -> Result<Value, Failure> {
    let spec = RebalanceSpec::from_payload(&task.payload, engine.trading().instruments())
        .map_err(|e| Failure::new(e.to_string()))?;
    let instruments = engine.trading().instruments().clone();
    let done = engine
        .trading()
        .submit_planned(Box::new(move |oms| {
            let equity = oms.equity(&spec.account).ok_or_else(|| {
                Invalid::new(
                    "unknown_account",
                    "payload.account",
                    format!("no trading account {:?}", spec.account),
                )
            })?;
            signal::rebalance(
                &spec.account,
                &spec.targets,
                |s| oms.position_qty(&spec.account, s),
                |s| oms.quote(s).and_then(|q| q.last),
                equity,
                &instruments,
            )
        }))
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    let denied: Vec<String> = done
        .iter()
        .filter_map(|d| {
            d.denial.as_ref().map(|x| {
                format!(
                    "{} {}: {}",
                    d.order.request.symbol,
                    x.code.code(),
                    x.message
                )
            })
        })
        .collect();
    let output = json!({"orders": done.iter().map(order_output).collect::<Vec<_>>()});
    if denied.is_empty() {
        Ok(output)
    } else {
        Err(Failure {
            message: format!("denied by risk: {}", denied.join("; ")),
            output,
        })
    }
}

fn log_signal(task: &Task, ctx: &Value) -> Value {
    let trigger = &ctx["trigger"];
    tracing::info!(
        target: "sovereign::signal",
        task = %task.id,
        trigger = %trigger["kind"],
        payload = %sovereign_core::redact::redact(&task.payload),
        "signal"
    );
    json!({
        "logged": true,
        "signal": task.payload,
        "trigger": trigger["kind"],
        "data": trigger["data"],
    })
}

async fn http_request(engine: &Engine, task: &Task, ctx: &Value) -> Result<Value, Failure> {
    let spec =
        HttpRequestSpec::from_payload(&task.payload).map_err(|e| Failure::new(e.to_string()))?;
    let url = render(&spec.url, ctx);
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| Failure::new(format!("bad method {}", spec.method)))?;
    let mut req = engine.http.request(method, &url);
    for (k, v) in &spec.headers {
        req = req.header(k.as_str(), render(v, ctx));
    }
    if let Some(timeout) = spec.timeout {
        req = req.timeout(timeout);
    }
    match spec.body.as_ref().map(|b| render_value(b, ctx)) {
        Some(Value::String(text)) => req = req.body(text),
        Some(body) => req = req.json(&body),
        None => {}
    }
    let started = std::time::Instant::now();
    let resp = req.send().await.map_err(|e| {
        Failure::new(format!(
            "request to {} failed: {}",
            sovereign_core::redact::redact_url(&url),
            error_chain(&e)
        ))
    })?;
    let status = resp.status();
    let limit = engine.settings.http_max_response_bytes;
    let mut body = Vec::new();
    let mut resp = resp;
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

async fn command(engine: &Engine, task: &Task, ctx: &Value) -> Result<Value, Failure> {
    let spec = CommandSpec::from_payload(&task.payload).map_err(|e| Failure::new(e.to_string()))?;
    // The allow-list is checked again at run time: the config may have changed since registration.
    engine
        .settings
        .handler_rules
        .check_command(&spec.argv[0])
        .map_err(|e| Failure::new(e.message))?;
    let argv: Vec<String> = spec.argv.iter().map(|a| render(a, ctx)).collect();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in &spec.env {
        cmd.env(k, render(v, ctx));
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {:?}: {e}", argv[0])))?;
    // If the run is abandoned (timeout, shutdown), kill the program and everything it started.
    let mut group = GroupGuard(child.id());
    let limit = engine.settings.http_max_response_bytes as u64;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = async {
        if let Some(s) = stdout {
            let _ = s.take(limit).read_to_end(&mut out).await;
        }
    };
    let read_err = async {
        if let Some(s) = stderr {
            let _ = s.take(limit).read_to_end(&mut err).await;
        }
    };
    let (status, _, _) = tokio::join!(child.wait(), read_out, read_err);
    group.0 = None;
    let status =
        status.map_err(|e| Failure::new(format!("waiting for {:?} failed: {e}", argv[0])))?;
    let output = json!({
        "exit_code": status.code(),
        "stdout": String::from_utf8_lossy(&out),
        "stderr": String::from_utf8_lossy(&err),
    });
    if status.success() {
        Ok(output)
    } else {
        Err(Failure {
            message: match status.code() {
                Some(code) => format!("{:?} exited with status {code}", argv[0]),
                None => format!("{:?} was killed by a signal", argv[0]),
            },
            output,
        })
    }
}

/// Kills a process group when dropped while still armed (holds the group id = the child's pid).
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // No signal API in std; `kill` is POSIX and takes a negative id for a whole group.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

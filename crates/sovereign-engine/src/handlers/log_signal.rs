//! `log_signal`: write the task's payload and its trigger to the log (secrets masked) and
//! return them as the run's output.

use serde_json::{json, Value};
use sovereign_core::task::Task;

pub(super) fn run(task: &Task, ctx: &Value) -> Value {
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

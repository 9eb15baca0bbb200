//! `notify`: raise the payload's alert (templates rendered; source `tasks` unless given; the
//! task id added to its context).

use serde_json::{json, Value};
use sovereign_core::task::{alert_spec_from_payload, Task};
use sovereign_core::template::render_value;

use super::{Context, Failure};
use crate::notify::Raised;

pub(super) async fn run(ctx: &Context, task: &Task, template: &Value) -> Result<Value, Failure> {
    let payload = render_value(&task.payload, template)?;
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
    match ctx
        .notifier
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

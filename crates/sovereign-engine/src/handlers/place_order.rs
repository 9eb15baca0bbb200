//! `place_order`: submit the payload's order (its client order id templated) through the
//! trading actor, so through pre-trade risk; a denial fails the run with the risk code.

use serde_json::{json, Value};
use sovereign_core::template::render;
use sovereign_core::trading::order::{NewOrder, OrderSpec};

use super::{Context, Failure};
use crate::trading::order_json;

pub(super) async fn run(
    ctx: &Context,
    spec: &OrderSpec,
    template: &Value,
) -> Result<Value, Failure> {
    let mut spec = spec.clone();
    spec.client_order_id = spec.client_order_id.map(|c| render(&c, template));
    let order = NewOrder::validate(&spec, ctx.trading.instruments())
        .map_err(|e| Failure::new(e.to_string()))?;
    let done = ctx
        .trading
        .submit(order)
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    let output = json!({"order": order_json(&done.order), "duplicate": done.duplicate});
    match done.denial {
        Some(d) => Err(Failure {
            message: format!("denied by risk: {}: {}", d.code.code(), d.message),
            output,
        }),
        None => Ok(output),
    }
}

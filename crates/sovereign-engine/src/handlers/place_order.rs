//! `place_order`: submit the payload's order through the trading actor, so through pre-trade
//! risk; a denial fails the run with the risk code. Every field may hold `{{…}}` templates
//! (`"side": "{{trigger.data.side}}"`), rendered and validated at run time: a template naming
//! a value the run lacks, or a rendered field that is not valid, fails the run and places
//! nothing.

use serde_json::{json, Value};
use sovereign_core::template::{render, Missing};
use sovereign_core::trading::order::{NewOrder, OrderSpec};

use super::{Context, Failure};
use crate::trading::order_json;

/// The spec with every templated field rendered from `ctx`.
fn rendered(spec: &OrderSpec, ctx: &Value) -> Result<OrderSpec, Missing> {
    let one = |t: &String| render(t, ctx);
    let opt = |t: &Option<String>| t.as_ref().map(one).transpose();
    Ok(OrderSpec {
        account: opt(&spec.account)?,
        symbol: one(&spec.symbol)?,
        side: one(&spec.side)?,
        qty: one(&spec.qty)?,
        order_type: opt(&spec.order_type)?,
        limit_price: opt(&spec.limit_price)?,
        stop_price: opt(&spec.stop_price)?,
        tif: opt(&spec.tif)?,
        client_order_id: opt(&spec.client_order_id)?,
    })
}

pub(super) async fn run(
    ctx: &Context,
    spec: &OrderSpec,
    template: &Value,
) -> Result<Value, Failure> {
    let spec = rendered(spec, template)?;
    let order = NewOrder::validate(&spec, ctx.trading.instruments())
        .map_err(|e| Failure::new(format!("the rendered order is not valid: {e}")))?;
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

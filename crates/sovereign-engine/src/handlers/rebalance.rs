//! `rebalance`: plan the orders that move an account to its targets (quantities or weights of
//! equity) from the OMS state at that moment, and submit them through risk in one command.

use serde_json::{json, Value};
use sovereign_core::error::Invalid;
use sovereign_core::task::RebalanceSpec;
use sovereign_core::trading::signal;

use super::{Context, Failure};
use crate::trading::order_json;

pub(super) async fn run(ctx: &Context, spec: &RebalanceSpec) -> Result<Value, Failure> {
    let spec = spec.clone();
    let instruments = ctx.trading.instruments().clone();
    let done = ctx
        .trading
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
    let output = json!({"orders": done.iter().map(|d| order_json(&d.order)).collect::<Vec<_>>()});
    if denied.is_empty() {
        Ok(output)
    } else {
        Err(Failure {
            message: format!("denied by risk: {}", denied.join("; ")),
            output,
        })
    }
}

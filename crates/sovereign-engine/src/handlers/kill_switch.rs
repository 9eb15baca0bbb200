//! The kill-switch handlers, so a schedule or a webhook can stop trading: `cancel_all` cancels
//! working orders, `flatten` also closes every position, `hardstop` halts the account(s) (which
//! cancels their working orders). Without an account they act on every account.

use serde_json::{json, Value};
use sovereign_core::task::KillSwitchSpec;
use sovereign_core::template::render;
use sovereign_core::trading::oms::selected_account;
use sovereign_core::trading::risk::StateCommand;

use super::{Context, Failure};
use crate::trading::order_json;

/// Which of the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    CancelAll,
    Flatten,
    Hardstop,
}

pub(super) async fn run(
    ctx: &Context,
    switch: Switch,
    spec: &KillSwitchSpec,
    template: &Value,
) -> Result<Value, Failure> {
    let account = selected_account(
        spec.account
            .as_ref()
            .map(|a| render(a, template))
            .transpose()?,
    );
    let reason = spec
        .reason
        .as_ref()
        .map(|r| render(r, template))
        .transpose()?;
    let failed = |e: crate::trading::TradingError| Failure::new(e.to_string());
    match switch {
        Switch::CancelAll => {
            let ids = ctx.trading.cancel_all(account).await.map_err(failed)?;
            Ok(json!({"canceled": ids.iter().map(u64::to_string).collect::<Vec<_>>()}))
        }
        Switch::Flatten => {
            let done = ctx
                .trading
                .flatten(
                    account,
                    crate::trading::Asked {
                        actor: "task".into(),
                        reason: reason.clone(),
                    },
                )
                .await
                .map_err(failed)?;
            let orders: Vec<Value> = done.iter().map(|d| order_json(&d.order)).collect();
            let output = json!({"orders": orders});
            match done.iter().find_map(|d| d.denial.as_ref()) {
                Some(d) => Err(Failure {
                    message: format!(
                        "a closing order was denied: {}: {}",
                        d.code.code(),
                        d.message
                    ),
                    output,
                }),
                None => Ok(output),
            }
        }
        Switch::Hardstop => {
            let cmd = StateCommand::Hardstop {
                reason: reason.unwrap_or_default(),
            };
            let outcomes = ctx.trading.set_state(account, cmd).await.map_err(failed)?;
            let accounts: Vec<Value> = outcomes
                .iter()
                .map(|o| {
                    json!({
                        "account": o.account,
                        "trading_state": o.state.as_str(),
                        "changed": o.change.is_some(),
                        "canceled": o.canceled.iter().map(u64::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok(json!({"accounts": accounts}))
        }
    }
}

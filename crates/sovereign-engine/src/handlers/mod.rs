//! The built-in task handlers, one file each. A task's payload is parsed once, at
//! registration, into a typed [`Action`] (`prepare`); a run performs that action with the
//! template context and returns the run's output, or a [`Failure`] with a message (and
//! whatever output it has). Handlers never store anything themselves; the executor records
//! what they return.
//!
//! Handlers reach the rest of the engine only through the small [`Context`] of handles the
//! root gives them.

mod command;
mod http_request;
mod kill_switch;
mod log_signal;
mod notify;
mod place_order;
mod rebalance;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use sovereign_core::error::Invalid;
use sovereign_core::task::{
    order_spec_from_payload, CommandSpec, HandlerKind, HandlerRules, KillSwitchSpec, RebalanceSpec,
    Task,
};
use sovereign_core::template::Missing;
use sovereign_core::trading::order::OrderSpec;

use crate::notify::Notifier;
use crate::trading::Trading;
use settings::HandlerSettings;

/// What handlers may use: the trading and notifier handles, `http_request`'s own HTTP client,
/// and their settings.
#[derive(Clone)]
pub struct Context {
    trading: Trading,
    notifier: Notifier,
    http: reqwest::Client,
    settings: HandlerSettings,
    rules: HandlerRules,
}

impl Context {
    /// `listeners` are where the engine itself listens, so `http_request` is kept off its own
    /// API (see `sovereign_core::egress`). Fails only if the HTTP client cannot be built.
    pub fn new(
        trading: Trading,
        notifier: Notifier,
        settings: HandlerSettings,
        listeners: Vec<SocketAddr>,
    ) -> Result<Context, reqwest::Error> {
        let egress = settings.egress(listeners);
        tracing::info!("http_request may reach: {}", egress.describe());
        let http = http_request::client(Arc::new(egress.clone()))?;
        let rules = HandlerRules {
            command_allow: settings.command_allow.clone(),
            instruments: trading.instruments().clone(),
            egress,
        };
        Ok(Context {
            trading,
            notifier,
            http,
            settings,
            rules,
        })
    }

    /// What registration checks a task against (the command allow-list, the instruments, the
    /// `http_request` destinations).
    pub fn rules(&self) -> &HandlerRules {
        &self.rules
    }
}

/// A task's handler with its payload parsed.
pub enum Action {
    LogSignal,
    HttpRequest(http_request::Request),
    Command(CommandSpec),
    PlaceOrder(OrderSpec),
    Rebalance(RebalanceSpec),
    /// The payload is a template rendered at each run, so it is parsed then.
    Notify,
    KillSwitch(kill_switch::Switch, KillSwitchSpec),
}

/// A handler that did not succeed.
pub struct Failure {
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

/// A template that names a value the run lacks fails the run: nothing is sent.
impl From<Missing> for Failure {
    fn from(e: Missing) -> Failure {
        Failure::new(format!("{e}; nothing was sent"))
    }
}

/// Parse a validated task's payload into the action its runs perform.
pub fn prepare(ctx: &Context, task: &Task) -> Result<Action, Invalid> {
    Ok(match task.handler {
        HandlerKind::LogSignal => Action::LogSignal,
        HandlerKind::HttpRequest => {
            Action::HttpRequest(http_request::Request::parse(&task.payload)?)
        }
        HandlerKind::Command => Action::Command(CommandSpec::from_payload(&task.payload)?),
        HandlerKind::PlaceOrder => Action::PlaceOrder(order_spec_from_payload(&task.payload)?),
        HandlerKind::Rebalance => Action::Rebalance(RebalanceSpec::from_payload(
            &task.payload,
            ctx.trading.instruments(),
        )?),
        HandlerKind::Notify => Action::Notify,
        HandlerKind::Flatten | HandlerKind::CancelAll | HandlerKind::Hardstop => {
            let switch = match task.handler {
                HandlerKind::Flatten => kill_switch::Switch::Flatten,
                HandlerKind::CancelAll => kill_switch::Switch::CancelAll,
                _ => kill_switch::Switch::Hardstop,
            };
            Action::KillSwitch(
                switch,
                KillSwitchSpec::from_payload(task.handler, &task.payload)?,
            )
        }
    })
}

/// Perform one attempt of `action` for `task`; `template` is what `{{…}}` can name.
pub async fn run(
    ctx: &Context,
    action: &Action,
    task: &Task,
    template: &Value,
) -> Result<Value, Failure> {
    match action {
        Action::LogSignal => Ok(log_signal::run(task, template)),
        Action::HttpRequest(req) => http_request::run(ctx, req, template).await,
        Action::Command(spec) => command::run(ctx, spec, template).await,
        Action::PlaceOrder(spec) => place_order::run(ctx, spec, template).await,
        Action::Rebalance(spec) => rebalance::run(ctx, spec).await,
        Action::Notify => notify::run(ctx, task, template).await,
        Action::KillSwitch(switch, spec) => kill_switch::run(ctx, *switch, spec, template).await,
    }
}

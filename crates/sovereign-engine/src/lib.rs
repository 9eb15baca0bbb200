//! Sovereign's runtime: the engine that owns tasks, runs them, schedules them and takes webhooks.
//!
//! # Layout
//! - [`config`]: the TOML file and its validation into [`config::Settings`].
//! - [`executor`]: the task registry and the run loop (overlap, timeout, retries, results).
//! - `scheduler`: an actor owning the timer heap; fires due tasks into the executor.
//! - `handlers`: the built-in handlers (`log_signal`, `http_request`, `command`).
//! - [`webhooks`]: webhook intake (auth, dedup, routing, durable record).
//! - [`signals`]: strategy alerts (TradingView) → planned orders through risk.
//! - [`trading`]: the trading actor around the pure OMS: journal first, then answer.
//! - [`notifier`]: the alert outbox and its channel workers (Slack, Discord, webhook, e-mail,
//!   file), the daily digest.
//! - [`supervisor`]: the configured services as child processes: dependency order, restarts,
//!   health checks, heartbeats, logs, the healer hook.
//! - [`truth`]: the Truth files → the version in force, stored, audited, watched.
//! - [`journal`]: the journal's encoding of OMS events; [`feed`]: the synthetic price feed.
//!
//! # Invariants
//! - Decisions come from `sovereign-core`; this crate performs their effects.
//! - A run's result is stored before anyone is told it finished.
//! - A webhook is answered only after its record is durable.

pub mod config;
pub mod executor;
pub mod feed;
mod handlers;
pub mod journal;
pub mod notifier;
mod scheduler;
pub mod signals;
pub mod supervisor;
pub mod trading;
pub mod truth;
pub mod webhooks;

pub use executor::{Engine, EngineError, TaskView};

//! Sovereign's runtime: one room per capability, wired together by one root.
//!
//! # Layout
//! - [`engine`]: the composition root. Starts the capabilities in dependency order, holds
//!   their handles, stops them in reverse and waits for every task it started.
//! - [`config`]: composes every capability's config section into [`config::Settings`]; only
//!   the root and the binary use it.
//! - Capabilities, each a folder with its `settings.rs` (file types and validation, importing
//!   only the core), its actor or runtime, its error type and a cheap `Clone` handle that is
//!   the only way in:
//!   - [`executor`]: the task registry, the run loop and the scheduler.
//!   - [`handlers`]: the built-in task handlers, one file each, payloads parsed at
//!     registration.
//!   - [`webhooks`]: webhook intake (auth, dedup, routing, durable record).
//!   - [`trading`]: the trading actor around the pure OMS, its journal encoding, the synthetic
//!     feed and strategy signals.
//!   - [`notify`]: the alert outbox, channel workers, one file per sender kind, the digest.
//!   - [`supervisor`]: the configured services as child processes.
//!   - [`deploy`]: staged rollouts of deploy plans, their gates and rollbacks, the journal of
//!     every run.
//!   - [`truth`]: the Truth files → the version in force, stored, audited, watched.
//!   - [`audit`]: the audit trail (record, read, verify).
//!   - [`support`]: the helpers every room shares (task tracker, locking, error chains,
//!     process groups, dedup-then-work).
//!
//! # Invariants
//! - Decisions come from `sovereign-core`; this crate performs their effects.
//! - Capabilities talk only through handles; only the root wires them; nothing below the root
//!   imports it, and the capabilities' imports form no circle (the tidy test checks).
//! - Every task the engine starts is spawned on the root's tracker and awaited at shutdown.
//! - A run's result is stored before anyone is told it finished.
//! - A webhook is answered only after its record is durable.

pub mod access;
pub mod audit;
pub mod config;
pub mod deploy;
pub mod engine;
pub mod executor;
pub mod handlers;
pub mod notify;
pub mod supervisor;
pub mod support;
pub mod trading;
pub mod truth;
pub mod webhooks;

pub use engine::{Engine, StartError};

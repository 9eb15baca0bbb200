//! Sovereign's functional core: plain data and pure decisions.
//!
//! Nothing here performs I/O, spawns, sleeps or reads the clock; callers pass `now` in. The
//! runtime (`sovereign-engine`) feeds these functions and performs their effects.
//!
//! # Layout
//! - [`anchor`]: the anchor document (file name, size, SHA-256, purpose, signature) as text.
//! - [`audit`]: the audit trail's hash chain and its verifier (changed/removed/inserted/reordered).
//! - [`schedule`]: cron / interval / one-shot schedules, time zones, DST, next-fire math.
//! - [`calendar`]: exchange calendars (weekdays + holidays), built-in US equities and CME sets.
//! - [`deploy`]: the rollout state machine of a staged deploy, its gates' analysis, argument
//!   templates and deploy windows.
//! - [`task`]: task ids, handler kinds, task specs and their validation.
//! - [`template`]: `{{path}}` templates for handler payloads.
//! - [`trading`]: exact numbers, instruments, orders and the order state machine.
//! - [`webhook`]: webhook credential checks (shared secret, URL token, HMAC-SHA256), dedup window.
//! - [`net`]: CIDR allow-lists of caller addresses (with the `tradingview` preset) and the scope
//!   of an address (loopback, link-local, private, public).
//! - [`egress`]: where `http_request` may send (the URL-prefix allow-list, or the guard against
//!   the engine's own API, metadata and — off loopback — private addresses).
//! - [`redact`]: masking secrets in anything shown or logged.
//! - [`sso`]: single sign-on: membership tiers and their gates, roles from a WordPress token's
//!   claims, the engine's signed session cookie and its CSRF check.
//! - [`truth`]: the node configuration document (node + components), its version, redaction, diff.
//! - [`notify`]: alert validation, routing, dedup, rate limits, retry decisions, channel payloads.
//! - [`supervise`]: service start order (dependency levels, cycles named) and the per-service
//!   state machine (restart policy, backoff, crash loop, stop escalation, health).
//! - [`retry`]: exponential backoff arithmetic.
//! - [`error`]: the one error shape every validation failure maps onto (code, message, field).

pub mod access;
pub mod anchor;
pub mod audit;
pub mod calendar;
pub mod deploy;
pub mod egress;
pub mod error;
pub mod net;
pub mod notify;
pub mod redact;
pub mod retry;
pub mod schedule;
pub mod sso;
pub mod supervise;
pub mod task;
pub mod template;
pub mod trading;
pub mod truth;
pub mod webhook;

//! Deploy: staged rollouts with health gates and automatic rollback, decided here, performed
//! by the engine's deploy room.
//!
//! - [`rollout`]: one run of a plan as a state machine (stages, parallelism, promotion, the
//!   rollback rules of canary, critical and non-critical stages, pause/resume/promote/abort).
//! - [`analysis`]: a stage's gate with Argo Rollouts' analysis semantics (successes needed,
//!   failure and consecutive-error limits, inconclusive measurements), and the conditions a
//!   measured value is judged by, compared exactly.
//! - [`plan`]: argument templates (`{version}`, `{previous}`, `{target}`, `{stage}`) and the
//!   version text that fills them.
//! - [`window`]: exchange sessions a plan may not deploy during.

pub mod analysis;
pub mod plan;
pub mod rollout;
pub mod window;

//! One run of a deploy plan as a state machine: stages in order, each deployed to its targets
//! (at most `parallelism` at a time), then verified by its gate, then promoted; a failure rolls
//! back by the stage's rules.
//!
//! Pure like the rest of the core: the engine runs the commands and measures the gates, feeds
//! what happened ([`Input`]) to [`Rollout::step`], and performs the [`Action`]s it gets back.
//! The run's journal is its inputs, so replaying them rebuilds the same state; after a crash,
//! [`Rollout::recover`] says what was in flight (a deploy or rollback that started and was never
//! answered is run again; a stage that was verifying is verified again from scratch).
//!
//! # Rules (those of the stack this replaces)
//! - A stage's targets deploy in parallel, `parallelism` at a time; once every one has answered
//!   and all succeeded, the stage's gate runs (unless promoted past it); a passed gate promotes
//!   the run to the next stage, and after the last, the run has `succeeded`.
//! - A deploy command that fails, or a gate that fails or times out, fails the stage. Commands
//!   already running finish first; then:
//!   - a failed critical stage, or any failed stage before a critical one has passed (a canary),
//!     rolls back every stage deployed so far, in reverse order → `rolled_back`;
//!   - a failed non-critical stage after a critical one passed rolls back itself only, and the
//!     run ends `succeeded_partial` (the primary is kept).
//! - An inconclusive gate pauses the run for a person: `resume` verifies again, `promote`
//!   passes the stage, `abort` rolls back.
//! - `pause` holds the run (no new deploys; a gate stops measuring); `resume` goes on.
//!   `promote` passes the verifying stage at once; `promote --full` also skips every later gate.
//!   `abort` rolls back everything deployed (after the commands running finish) → `aborted`.
//! - A rollback that fails leaves the run `failed` (the other targets are still rolled back;
//!   nothing is retried silently).
//! - Only targets whose deploy started are rolled back, each once.

use std::fmt;

/// A stage as the machine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageShape {
    pub name: String,
    pub targets: Vec<String>,
    pub critical: bool,
    /// At most this many commands at once (at least 1).
    pub parallelism: usize,
}

/// Where a target stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Waiting,
    Deploying,
    Deployed,
    DeployFailed,
    RollingBack,
    RolledBack,
    RollbackFailed,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Waiting => "waiting",
            TargetState::Deploying => "deploying",
            TargetState::Deployed => "deployed",
            TargetState::DeployFailed => "deploy_failed",
            TargetState::RollingBack => "rolling_back",
            TargetState::RolledBack => "rolled_back",
            TargetState::RollbackFailed => "rollback_failed",
        }
    }

    /// Its deploy command started: it may have changed, so a rollback covers it.
    fn touched(self) -> bool {
        !matches!(self, TargetState::Waiting | TargetState::Deploying)
    }
}

/// What the run was doing when it paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum During {
    Deploying,
    Verifying,
}

/// Which stages a rollback covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This stage only (a non-critical stage after the primary).
    Stage(usize),
    /// Every stage deployed up to and including this one, last first.
    Through(usize),
}

/// The run's phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Deploying {
        stage: usize,
    },
    Verifying {
        stage: usize,
    },
    Paused {
        stage: usize,
        during: During,
    },
    /// A stage passed; the next begins (or the run succeeds).
    Promoting {
        stage: usize,
    },
    RollingBack {
        scope: Scope,
    },
    Succeeded,
    SucceededPartial,
    Failed,
    RolledBack,
    Aborted,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Deploying { .. } => "deploying",
            Phase::Verifying { .. } => "verifying",
            Phase::Paused { .. } => "paused",
            Phase::Promoting { .. } => "promoting",
            Phase::RollingBack { .. } => "rolling_back",
            Phase::Succeeded => "succeeded",
            Phase::SucceededPartial => "succeeded_partial",
            Phase::Failed => "failed",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Succeeded
                | Phase::SucceededPartial
                | Phase::Failed
                | Phase::RolledBack
                | Phase::Aborted
        )
    }

    /// The stage it is about, if any.
    pub fn stage(&self) -> Option<usize> {
        match self {
            Phase::Deploying { stage }
            | Phase::Verifying { stage }
            | Phase::Paused { stage, .. }
            | Phase::Promoting { stage } => Some(*stage),
            Phase::RollingBack {
                scope: Scope::Stage(s) | Scope::Through(s),
            } => Some(*s),
            _ => None,
        }
    }
}

/// How a stage's gate ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    Passed,
    /// A check failed (P0 at once, P1 after its run of failures): why.
    Failed(String),
    /// A check was inconclusive: why.
    Inconclusive(String),
    /// Not every check passed within the stage's `health_timeout`.
    TimedOut,
}

/// What happened, fed to the machine (and journaled, in this order, before it is acted on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Start,
    /// A deploy command answered (`error`: why it failed).
    Deployed {
        stage: usize,
        target: usize,
        error: Option<String>,
    },
    /// A rollback command answered.
    RolledBack {
        stage: usize,
        target: usize,
        error: Option<String>,
    },
    Gate {
        stage: usize,
        outcome: GateOutcome,
    },
    /// Pass the verifying stage now; `full`: and skip every later gate.
    Promote {
        full: bool,
    },
    Pause,
    Resume,
    /// Roll back everything deployed.
    Abort,
}

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the target's deploy command.
    Deploy { stage: usize, target: usize },
    /// Run the target's rollback command.
    Rollback { stage: usize, target: usize },
    /// Start measuring the stage's gate (its health timeout starts now).
    StartGates { stage: usize },
    /// Stop measuring it.
    StopGates { stage: usize },
    /// The run entered this phase (record it).
    Entered(Phase),
}

/// An operator's command that does not fit the run's phase; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `run_finished`, `not_verifying`, `not_paused`, `already_paused`, `rolling_back`.
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// How a run that is rolling back will end when its rollbacks succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    RolledBack,
    SucceededPartial,
    Aborted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Unwind {
    /// Stages to roll back, in this order.
    stages: Vec<usize>,
    /// How far it got in `stages`.
    next: usize,
    end: End,
}

/// One run of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    stages: Vec<StageShape>,
    targets: Vec<Vec<TargetState>>,
    phase: Phase,
    /// Gates of this stage and later are skipped (`promote --full`).
    skip_gates_from: Option<usize>,
    /// A critical stage has passed: a later non-critical failure keeps what is deployed.
    critical_passed: bool,
    unwind: Option<Unwind>,
    /// Why the run rolled back, failed or paused.
    reason: Option<String>,
    rollback_failed: bool,
    /// A run of `rollback --to`: it starts by rolling everything back.
    rolls_back: bool,
}

impl Rollout {
    /// A pending run of `stages` (each with at least one target).
    pub fn new(stages: Vec<StageShape>) -> Rollout {
        let targets = stages
            .iter()
            .map(|s| vec![TargetState::Waiting; s.targets.len()])
            .collect();
        Rollout {
            stages,
            targets,
            phase: Phase::Pending,
            skip_gates_from: None,
            critical_passed: false,
            unwind: None,
            reason: None,
            rollback_failed: false,
            rolls_back: false,
        }
    }

    /// A run that deploys nothing and verifies nothing: it rolls every target back to a
    /// version (`rollback --to`), stages last first.
    pub fn rollback_to(stages: Vec<StageShape>) -> Rollout {
        let mut r = Rollout::new(stages);
        for t in r.targets.iter_mut().flatten() {
            *t = TargetState::Deployed;
        }
        r.rolls_back = true;
        r
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn target(&self, stage: usize, target: usize) -> Option<TargetState> {
        self.targets.get(stage)?.get(target).copied()
    }

    /// Why it rolled back, failed or paused.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Whether gates of `stage` are skipped (`promote --full`).
    pub fn skips_gates(&self, stage: usize) -> bool {
        self.skip_gates_from.is_some_and(|s| stage >= s)
    }

    /// Feed one input; what to do now. Operator commands that do not fit are refused and
    /// change nothing; a stale answer (a gate of a stage no longer verifying, a command result
    /// for a target not running one) is ignored.
    pub fn step(&mut self, input: &Input) -> Result<Vec<Action>, Refused> {
        let mut out = Vec::new();
        if self.phase.is_terminal() {
            return match input {
                Input::Deployed { .. } | Input::RolledBack { .. } | Input::Gate { .. } => Ok(out),
                _ => Err(refused(
                    "run_finished",
                    format!("the run has ended ({})", self.phase.name()),
                )),
            };
        }
        match input {
            Input::Start => {
                if self.phase == Phase::Pending {
                    if self.stages.is_empty() {
                        self.enter(Phase::Succeeded, &mut out);
                    } else if self.rolls_back {
                        let last = self.stages.len().saturating_sub(1);
                        self.begin_unwind(Scope::Through(last), End::RolledBack, &mut out);
                    } else {
                        self.enter(Phase::Deploying { stage: 0 }, &mut out);
                    }
                }
            }
            Input::Deployed {
                stage,
                target,
                error,
            } => {
                if self.target(*stage, *target) != Some(TargetState::Deploying) {
                    return Ok(out);
                }
                self.targets[*stage][*target] = if error.is_none() {
                    TargetState::Deployed
                } else {
                    TargetState::DeployFailed
                };
                if let Some(e) = error {
                    if self.unwind.is_none() {
                        let why = format!(
                            "the deploy of {} failed: {e}",
                            self.stages[*stage].targets[*target]
                        );
                        self.fail_stage(*stage, why, &mut out);
                    }
                }
            }
            Input::RolledBack {
                stage,
                target,
                error,
            } => {
                if self.target(*stage, *target) != Some(TargetState::RollingBack) {
                    return Ok(out);
                }
                self.targets[*stage][*target] = match error {
                    None => TargetState::RolledBack,
                    Some(e) => {
                        self.rollback_failed = true;
                        let why = format!(
                            "the rollback of {} failed: {e}",
                            self.stages[*stage].targets[*target]
                        );
                        self.reason = Some(match self.reason.take() {
                            Some(r) => format!("{r}; {why}"),
                            None => why,
                        });
                        TargetState::RollbackFailed
                    }
                };
            }
            Input::Gate { stage, outcome } => {
                if self.phase != (Phase::Verifying { stage: *stage }) {
                    return Ok(out);
                }
                out.push(Action::StopGates { stage: *stage });
                match outcome {
                    GateOutcome::Passed => self.pass_stage(*stage, &mut out),
                    GateOutcome::Failed(why) => self.fail_stage(*stage, why.clone(), &mut out),
                    GateOutcome::TimedOut => self.fail_stage(
                        *stage,
                        format!(
                            "the gate of {} did not pass within its health timeout",
                            self.stages[*stage].name
                        ),
                        &mut out,
                    ),
                    GateOutcome::Inconclusive(why) => {
                        self.reason = Some(why.clone());
                        self.enter(
                            Phase::Paused {
                                stage: *stage,
                                during: During::Verifying,
                            },
                            &mut out,
                        );
                    }
                }
            }
            Input::Promote { full } => self.promote(*full, &mut out)?,
            Input::Pause => match self.phase {
                _ if self.unwind.is_some() => return Err(rolling_back()),
                Phase::Deploying { stage } => {
                    self.reason = Some("paused by an operator".into());
                    self.enter(
                        Phase::Paused {
                            stage,
                            during: During::Deploying,
                        },
                        &mut out,
                    );
                }
                Phase::Verifying { stage } => {
                    self.reason = Some("paused by an operator".into());
                    out.push(Action::StopGates { stage });
                    self.enter(
                        Phase::Paused {
                            stage,
                            during: During::Verifying,
                        },
                        &mut out,
                    );
                }
                Phase::Paused { .. } => {
                    return Err(refused("already_paused", "the run is paused already"))
                }
                _ => {
                    return Err(refused(
                        "not_running",
                        format!("a run that is {} cannot pause", self.phase.name()),
                    ))
                }
            },
            Input::Resume => match self.phase {
                _ if self.unwind.is_some() => return Err(rolling_back()),
                Phase::Paused { stage, during } => {
                    self.reason = None;
                    match during {
                        During::Deploying => self.enter(Phase::Deploying { stage }, &mut out),
                        During::Verifying => self.verify(stage, &mut out),
                    }
                }
                _ => {
                    return Err(refused(
                        "not_paused",
                        format!("the run is {}, not paused", self.phase.name()),
                    ))
                }
            },
            Input::Abort => {
                if self.unwind.is_some() {
                    return Err(rolling_back());
                }
                match self.phase {
                    Phase::Pending => {
                        self.reason = Some("aborted before it started".into());
                        self.enter(Phase::Aborted, &mut out);
                    }
                    _ => {
                        let stage = self.phase.stage().unwrap_or(0);
                        if let Phase::Verifying { stage } = self.phase {
                            out.push(Action::StopGates { stage });
                        }
                        self.reason = Some("aborted by an operator".into());
                        self.begin_unwind(Scope::Through(stage), End::Aborted, &mut out);
                    }
                }
            }
        }
        self.pump(&mut out);
        Ok(out)
    }

    /// After a restart with the journal replayed: what was in flight, to do again.
    pub fn recover(&self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase.is_terminal() {
            return out;
        }
        for (s, targets) in self.targets.iter().enumerate() {
            for (t, state) in targets.iter().enumerate() {
                match state {
                    TargetState::Deploying => out.push(Action::Deploy {
                        stage: s,
                        target: t,
                    }),
                    TargetState::RollingBack => out.push(Action::Rollback {
                        stage: s,
                        target: t,
                    }),
                    _ => {}
                }
            }
        }
        if let Phase::Verifying { stage } = self.phase {
            out.push(Action::StartGates { stage });
        }
        out
    }

    fn enter(&mut self, phase: Phase, out: &mut Vec<Action>) {
        if self.phase != phase {
            self.phase = phase.clone();
            out.push(Action::Entered(phase));
        }
    }

    fn verify(&mut self, stage: usize, out: &mut Vec<Action>) {
        self.enter(Phase::Verifying { stage }, out);
        out.push(Action::StartGates { stage });
    }

    fn promote(&mut self, full: bool, out: &mut Vec<Action>) -> Result<(), Refused> {
        if self.unwind.is_some() {
            return Err(rolling_back());
        }
        match self.phase {
            Phase::Verifying { stage }
            | Phase::Paused {
                stage,
                during: During::Verifying,
            } => {
                if matches!(self.phase, Phase::Verifying { .. }) {
                    out.push(Action::StopGates { stage });
                }
                if full {
                    self.skip_gates_from = Some(stage + 1);
                }
                self.reason = None;
                self.pass_stage(stage, out);
                Ok(())
            }
            Phase::Deploying { stage }
            | Phase::Paused {
                stage,
                during: During::Deploying,
            } if full => {
                self.skip_gates_from = Some(stage);
                self.reason = None;
                self.enter(Phase::Deploying { stage }, out);
                Ok(())
            }
            _ => Err(refused(
                "not_verifying",
                format!(
                    "only a stage being verified can be promoted (the run is {}); --full skips the gates of one still deploying",
                    self.phase.name()
                ),
            )),
        }
    }

    fn pass_stage(&mut self, stage: usize, out: &mut Vec<Action>) {
        if self.stages[stage].critical {
            self.critical_passed = true;
        }
        self.enter(Phase::Promoting { stage }, out);
        if stage + 1 < self.stages.len() {
            self.enter(Phase::Deploying { stage: stage + 1 }, out);
        } else {
            self.enter(Phase::Succeeded, out);
        }
    }

    fn fail_stage(&mut self, stage: usize, why: String, out: &mut Vec<Action>) {
        self.reason = Some(why);
        if !self.stages[stage].critical && self.critical_passed {
            self.begin_unwind(Scope::Stage(stage), End::SucceededPartial, out);
        } else {
            self.begin_unwind(Scope::Through(stage), End::RolledBack, out);
        }
    }

    fn begin_unwind(&mut self, scope: Scope, end: End, out: &mut Vec<Action>) {
        let stages = match scope {
            Scope::Stage(s) => vec![s],
            Scope::Through(s) => (0..=s).rev().collect(),
        };
        self.unwind = Some(Unwind {
            stages,
            next: 0,
            end,
        });
        self.enter(Phase::RollingBack { scope }, out);
    }

    fn in_flight(&self, stage: usize, state: TargetState) -> usize {
        self.targets[stage].iter().filter(|t| **t == state).count()
    }

    /// Issue what is due now.
    fn pump(&mut self, out: &mut Vec<Action>) {
        if self.phase.is_terminal() {
            return;
        }
        if self.unwind.is_some() {
            self.pump_unwind(out);
            return;
        }
        let Phase::Deploying { stage } = self.phase else {
            return;
        };
        let limit = self.stages[stage].parallelism.max(1);
        let mut running = self.in_flight(stage, TargetState::Deploying);
        for t in 0..self.targets[stage].len() {
            if running >= limit {
                break;
            }
            if self.targets[stage][t] == TargetState::Waiting {
                self.targets[stage][t] = TargetState::Deploying;
                out.push(Action::Deploy { stage, target: t });
                running += 1;
            }
        }
        let done = self.targets[stage]
            .iter()
            .all(|t| *t == TargetState::Deployed);
        if done {
            if self.skips_gates(stage) {
                self.pass_stage(stage, out);
                self.pump(out);
            } else {
                self.verify(stage, out);
            }
        }
    }

    fn pump_unwind(&mut self, out: &mut Vec<Action>) {
        let Some(mut u) = self.unwind.take() else {
            return;
        };
        // Deploy commands still running finish first: their targets may change until then.
        let deploying =
            (0..self.stages.len()).any(|s| self.in_flight(s, TargetState::Deploying) > 0);
        if !deploying {
            while let Some(&stage) = u.stages.get(u.next) {
                let limit = self.stages[stage].parallelism.max(1);
                let mut running = self.in_flight(stage, TargetState::RollingBack);
                for t in 0..self.targets[stage].len() {
                    if running >= limit {
                        break;
                    }
                    if matches!(
                        self.targets[stage][t],
                        TargetState::Deployed | TargetState::DeployFailed
                    ) {
                        self.targets[stage][t] = TargetState::RollingBack;
                        out.push(Action::Rollback { stage, target: t });
                        running += 1;
                    }
                }
                if running > 0 {
                    break;
                }
                u.next += 1;
            }
            if u.next >= u.stages.len() {
                let end = if self.rollback_failed {
                    Phase::Failed
                } else {
                    match u.end {
                        End::RolledBack => Phase::RolledBack,
                        End::SucceededPartial => Phase::SucceededPartial,
                        End::Aborted => Phase::Aborted,
                    }
                };
                self.enter(end, out);
                return;
            }
        }
        self.unwind = Some(u);
    }

    /// Whether every target whose deploy started has been rolled back (or none started).
    pub fn all_touched_rolled_back(&self, through: usize) -> bool {
        self.targets
            .iter()
            .take(through + 1)
            .flatten()
            .all(|t| !t.touched() || *t == TargetState::RolledBack)
    }
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

fn rolling_back() -> Refused {
    refused(
        "rolling_back",
        "the run is rolling back; it can only finish doing so",
    )
}

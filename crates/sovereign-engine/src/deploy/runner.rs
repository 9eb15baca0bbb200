//! One run of a plan: a task that feeds the run's state machine what happens (command
//! results, gate verdicts, operators' commands, the deploy window closing) and does what it
//! decides.
//!
//! Every input is journaled, durably, before what it causes is done; what merely happened
//! (a command started, a measurement, a phase entered) is queued behind it without waiting.
//! Results that arrive together are journaled together (one durable write for a wave of a
//! stage's commands). A run found unfinished at start replays its inputs into a fresh machine
//! and does again only what was in flight.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sovereign_core::deploy::analysis::{Gate, GateVerdict};
use sovereign_core::deploy::plan::Vars;
use sovereign_core::deploy::rollout::{
    Action, GateOutcome, Input, Phase, Refused, Rollout, StageShape,
};
use sovereign_core::notify::{Alert, Priority};
use sovereign_store::{DeployEvent, DeployRun, Store};
use tokio::sync::{broadcast, mpsc};
use tokio::task::{AbortHandle, JoinSet};

use super::probes::{self, Measured, Probes};
use super::settings::{Check, Plan};
use super::{Notice, Op};
use crate::audit::Audit;
use crate::notify::Notifier;
use crate::support::{lock, run_program, Tasks};

/// Output kept of a deploy or rollback command (each stream).
const OUTPUT_KEPT: usize = 4096;

/// What a runner needs from the room.
pub(super) struct Context {
    pub store: Store,
    pub audit: Audit,
    pub notifier: Notifier,
    pub probes: Probes,
    pub tasks: Tasks,
    pub notices: broadcast::Sender<Notice>,
}

/// A run as the API shows it while it is in progress.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run as it was asked for.
    pub run: DeployRun,
    pub phase: &'static str,
    pub stage: Option<String>,
    pub reason: Option<String>,
    /// Waiting for the exchange session to close before it starts.
    pub waiting_until: Option<DateTime<Utc>>,
    pub targets: Vec<TargetView>,
    /// The checks of the stage being verified.
    pub gate: Vec<GateCheckView>,
}

#[derive(Debug, Clone)]
pub struct TargetView {
    pub stage: String,
    pub target: String,
    pub state: &'static str,
}

#[derive(Debug, Clone)]
pub struct GateCheckView {
    pub check: String,
    pub target: Option<String>,
    pub severity: &'static str,
    pub successes: u32,
    pub failures: u32,
    pub errors: u32,
    pub inconclusive: u32,
    pub last: Option<String>,
}

impl RunView {
    pub(super) fn new(plan: &Plan, run: &DeployRun) -> RunView {
        RunView {
            run: run.clone(),
            phase: "pending",
            stage: None,
            reason: None,
            waiting_until: None,
            targets: plan
                .stages
                .iter()
                .flat_map(|s| {
                    s.targets.iter().map(|t| TargetView {
                        stage: s.name.clone(),
                        target: t.name.clone(),
                        state: "waiting",
                    })
                })
                .collect(),
            gate: Vec::new(),
        }
    }
}

/// A stage's gate being measured.
struct GateRun {
    stage: usize,
    gen: u64,
    gate: Gate,
    /// Each check, and the target it belongs to (`None`: the stage's own).
    checks: Vec<(Check, Option<usize>)>,
    probes: Vec<AbortHandle>,
    last: Vec<Option<String>>,
    deadline: tokio::time::Instant,
}

/// A measurement of check `.1` of the gate of generation `.0`.
type Reading = (u64, usize, Measured);

/// A deploy or rollback command that finished.
struct Done {
    rollback: bool,
    stage: usize,
    target: usize,
    error: Option<String>,
    record: Value,
}

pub(super) struct Runner {
    ctx: Context,
    plan: Arc<Plan>,
    run: DeployRun,
    machine: Rollout,
    seq: u64,
    view: Arc<Mutex<RunView>>,
    journal: Option<Vec<DeployEvent>>,
    commands: JoinSet<Done>,
    gate: Option<GateRun>,
    gate_gen: u64,
    measured: (
        mpsc::UnboundedSender<Reading>,
        mpsc::UnboundedReceiver<Reading>,
    ),
    /// Inputs decided here (an empty gate passes at once), fed next.
    pending: VecDeque<Input>,
    /// When a run waiting for the session to close starts.
    start_at: Option<tokio::time::Instant>,
}

fn shapes(plan: &Plan) -> Vec<StageShape> {
    plan.stages
        .iter()
        .map(|s| StageShape {
            name: s.name.clone(),
            targets: s.targets.iter().map(|t| t.name.clone()).collect(),
            critical: s.critical,
            parallelism: s.parallelism,
        })
        .collect()
}

impl Runner {
    pub(super) fn new(
        ctx: Context,
        plan: Arc<Plan>,
        run: DeployRun,
        view: Arc<Mutex<RunView>>,
        journal: Option<Vec<DeployEvent>>,
    ) -> Runner {
        let machine = if run.kind == "rollback" {
            Rollout::rollback_to(shapes(&plan))
        } else {
            Rollout::new(shapes(&plan))
        };
        Runner {
            ctx,
            plan,
            run,
            machine,
            seq: 0,
            view,
            journal,
            commands: JoinSet::new(),
            gate: None,
            gate_gen: 0,
            measured: mpsc::unbounded_channel(),
            pending: VecDeque::new(),
            start_at: None,
        }
    }

    pub(super) fn plan_name(&self) -> String {
        self.plan.name.clone()
    }

    pub(super) async fn run(mut self, mut ops: mpsc::UnboundedReceiver<super::Command>) {
        if let Some(events) = self.journal.take() {
            self.recover(events).await;
        }
        if self.machine.phase() == &Phase::Pending {
            self.schedule_start().await;
        }
        loop {
            if !self.pending.is_empty() {
                let inputs: Vec<Input> = self.pending.drain(..).collect();
                if self.feed(inputs, "engine").await.is_err() {
                    return;
                }
                continue;
            }
            if self.machine.phase().is_terminal() {
                self.finish().await;
                return;
            }
            let deadline = self.gate.as_ref().map(|g| g.deadline);
            tokio::select! {
                Some(done) = self.commands.join_next(), if !self.commands.is_empty() => {
                    let mut finished = vec![done];
                    while let Some(more) = self.commands.try_join_next() {
                        finished.push(more);
                    }
                    let mut inputs = Vec::new();
                    for done in finished {
                        let Ok(done) = done else { continue };
                        self.note("command", done.record.clone());
                        if done.error.is_none() {
                            let target = &self.plan.stages[done.stage].targets[done.target].name;
                            let version = if done.rollback { self.rollback_version(target) } else { Some(self.run.version.clone()) };
                            if let Some(version) = version {
                                self.note("target", json!({"target": target, "version": version}));
                            }
                        }
                        inputs.push(if done.rollback {
                            Input::RolledBack { stage: done.stage, target: done.target, error: done.error }
                        } else {
                            Input::Deployed { stage: done.stage, target: done.target, error: done.error }
                        });
                    }
                    if self.feed(inputs, "engine").await.is_err() {
                        return;
                    }
                }
                Some((op, actor, reply)) = ops.recv() => {
                    let input = match op {
                        Op::Promote { full } => Input::Promote { full },
                        Op::Pause => Input::Pause,
                        Op::Resume => Input::Resume,
                        Op::Abort => Input::Abort,
                    };
                    match self.feed(vec![input], &actor).await {
                        Ok(()) => {
                            self.ctx.audit.record(&actor, &format!("deploy.{}", op.as_str()), json!({"run": self.run.id, "plan": self.run.plan, "phase": self.machine.phase().name()}));
                            let _ = reply.send(Ok(()));
                        }
                        Err(Stop::Refused(r)) => { let _ = reply.send(Err(r)); }
                        Err(Stop::Journal) => return,
                    }
                }
                Some((gen, check, m)) = self.measured.1.recv() => {
                    if let Some(input) = self.measurement(gen, check, m) {
                        if self.feed(vec![input], "engine").await.is_err() {
                            return;
                        }
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Some(g) = &self.gate {
                        let input = Input::Gate { stage: g.stage, outcome: GateOutcome::TimedOut };
                        if self.feed(vec![input], "engine").await.is_err() {
                            return;
                        }
                    }
                }
                _ = sleep_until(self.start_at) => {
                    self.start_at = None;
                    self.set_view(|v| v.waiting_until = None);
                    self.pending.push_back(Input::Start);
                }
                _ = self.ctx.tasks.stopped() => {
                    // Commands still running die with this task; a later start runs them again.
                    self.stop_gates();
                    return;
                }
            }
        }
    }

    /// Start now, or when the plan's exchange session closes.
    async fn schedule_start(&mut self) {
        let until = self
            .plan
            .window
            .as_ref()
            .filter(|w| w.wait)
            .and_then(|w| w.session.open_until(Utc::now()));
        match until {
            None => self.pending.push_back(Input::Start),
            Some(until) => {
                let wait = (until - Utc::now()).to_std().unwrap_or_default();
                self.start_at = Some(tokio::time::Instant::now() + wait);
                self.set_view(|v| v.waiting_until = Some(until));
                self.note("waiting", json!({"until": until.to_rfc3339()}));
            }
        }
    }

    /// Replay the journal of a run an earlier engine left, then redo what was in flight.
    async fn recover(&mut self, events: Vec<DeployEvent>) {
        for e in &events {
            self.seq = self.seq.max(e.seq);
            if e.kind == "input" {
                if let Some(input) = decode(&e.body) {
                    let _ = self.machine.step(&input);
                }
            }
        }
        let redo = self.machine.recover();
        let described: Vec<String> = redo.iter().map(|a| self.describe(a)).collect();
        self.note(
            "recovered",
            json!({"phase": self.machine.phase().name(), "redo": described}),
        );
        self.ctx.audit.record(
            "engine",
            "deploy.recovered",
            json!({"run": self.run.id, "plan": self.run.plan, "phase": self.machine.phase().name(), "redo": described}),
        );
        self.refresh_view();
        for a in redo {
            self.perform(a);
        }
    }

    fn describe(&self, a: &Action) -> String {
        match a {
            Action::Deploy { stage, target } => {
                format!("deploy {}", self.plan.stages[*stage].targets[*target].name)
            }
            Action::Rollback { stage, target } => {
                format!(
                    "rollback {}",
                    self.plan.stages[*stage].targets[*target].name
                )
            }
            Action::StartGates { stage } => format!("verify {}", self.plan.stages[*stage].name),
            other => format!("{other:?}"),
        }
    }

    /// Step the machine through `inputs`, journal them (one durable write), then do what they
    /// decided. A refused operator command changes and journals nothing.
    async fn feed(&mut self, inputs: Vec<Input>, actor: &str) -> Result<(), Stop> {
        let mut actions = Vec::new();
        let mut journaled = None;
        for input in inputs {
            match self.machine.step(&input) {
                Ok(a) => {
                    actions.extend(a);
                    let mut body = encode(&input);
                    body["actor"] = json!(actor);
                    journaled = Some(self.queue_event("input", body));
                }
                Err(refused) => return Err(Stop::Refused(refused)),
            }
        }
        if let Some(durable) = journaled {
            if let Err(e) = durable.await {
                tracing::error!(run = self.run.id, error = %e, "a deploy input was not journaled; the run stops here");
                self.stop_gates();
                return Err(Stop::Journal);
            }
        }
        for a in actions {
            self.perform(a);
        }
        self.refresh_view();
        Ok(())
    }

    /// Queue an event of the run (in order with every other write); the future says when it
    /// is durable.
    fn queue_event(
        &mut self,
        kind: &str,
        body: Value,
    ) -> impl std::future::Future<Output = Result<(), sovereign_store::StoreError>> + Send + 'static
    {
        self.seq += 1;
        let at = Utc::now();
        let _ = self.ctx.notices.send(Notice {
            run: self.run.id,
            plan: self.run.plan.clone(),
            at,
            kind: kind.to_string(),
            body: body.clone(),
        });
        self.ctx.store.append_deploy_event(DeployEvent {
            run_id: self.run.id,
            seq: self.seq,
            at,
            kind: kind.to_string(),
            body,
        })
    }

    /// Queue an event of the run that nothing waits for (it lands in order, before the next
    /// input's durable write).
    fn note(&mut self, kind: &str, body: Value) {
        drop(self.queue_event(kind, body));
    }

    fn vars<'a>(
        &'a self,
        stage: usize,
        target: Option<usize>,
        previous: Option<&'a str>,
    ) -> Vars<'a> {
        let s = &self.plan.stages[stage];
        Vars {
            version: &self.run.version,
            previous,
            target: target.map_or("", |t| s.targets[t].name.as_str()),
            stage: &s.name,
        }
    }

    /// The version a rollback of `target` goes back to: the run's own for `rollback --to`,
    /// else what the target ran before this run.
    fn rollback_version(&self, target: &str) -> Option<String> {
        if self.run.kind == "rollback" {
            Some(self.run.version.clone())
        } else {
            self.run.previous.get(target).cloned()
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Deploy { stage, target } => self.command(false, stage, target),
            Action::Rollback { stage, target } => self.command(true, stage, target),
            Action::StartGates { stage } => self.start_gates(stage),
            Action::StopGates { .. } => self.stop_gates(),
            Action::Entered(phase) => {
                let stage = phase.stage().map(|s| self.plan.stages[s].name.clone());
                let body =
                    json!({"phase": phase.name(), "stage": stage, "reason": self.machine.reason()});
                self.note("phase", body.clone());
                self.ctx.audit.record(
                    "engine",
                    "deploy.phase",
                    json!({"run": self.run.id, "plan": self.run.plan, "phase": phase.name(), "stage": stage, "reason": self.machine.reason()}),
                );
            }
        }
    }

    /// Run a target's deploy or rollback command (then restart its service) in the background.
    fn command(&mut self, rollback: bool, stage: usize, target: usize) {
        let t = self.plan.stages[stage].targets[target].clone();
        let previous = if rollback {
            self.rollback_version(&t.name)
        } else {
            self.run.previous.get(&t.name).cloned()
        };
        let vars = self.vars(stage, Some(target), previous.as_deref());
        let templates = if rollback { &t.rollback } else { &t.deploy };
        let argv: Result<Vec<String>, &str> = templates.iter().map(|a| a.render(&vars)).collect();
        let what = if rollback { "rollback" } else { "deploy" };
        self.note(
            "command",
            json!({"action": what, "stage": self.plan.stages[stage].name, "target": t.name, "started": true, "argv": argv.as_ref().ok()}),
        );
        let supervisor = self.ctx.probes.supervisor.clone();
        let stage_name = self.plan.stages[stage].name.clone();
        self.commands.spawn(async move {
            let started = Instant::now();
            let mut record = json!({"action": what, "stage": stage_name, "target": t.name});
            let error = match argv {
                Err(name) => Some(format!(
                    "{{{name}}} has no value: {} has no earlier version to go back to",
                    t.name
                )),
                Ok(argv) => {
                    match tokio::time::timeout(
                        t.timeout,
                        run_program(&argv, &[], Some(&t.cwd), OUTPUT_KEPT),
                    )
                    .await
                    {
                        Err(_) => Some(format!(
                            "{:?} did not finish within {:?}",
                            argv[0], t.timeout
                        )),
                        Ok(Err(e)) => Some(format!("cannot start {:?}: {e}", argv[0])),
                        Ok(Ok(ran)) => {
                            record["exit_code"] = json!(ran.status.code());
                            record["stdout"] = json!(String::from_utf8_lossy(&ran.stdout));
                            record["stderr"] = json!(String::from_utf8_lossy(&ran.stderr));
                            if ran.status.success() {
                                None
                            } else {
                                Some(match ran.status.code() {
                                    Some(c) => format!("{:?} exited with status {c}", argv[0]),
                                    None => format!("{:?} was killed by a signal", argv[0]),
                                })
                            }
                        }
                    }
                }
            };
            // A service target runs what it was given once its supervisor restarts it, and is
            // deployed once it is up again (its gate then judges it).
            let error = match (error, &t.service) {
                (None, Some(service)) => {
                    let left = t.timeout.saturating_sub(started.elapsed());
                    restart_and_wait(&supervisor, service, left).await.err()
                }
                (e, _) => e,
            };
            record["ok"] = json!(error.is_none());
            record["error"] = json!(error);
            record["duration_ms"] = json!(started.elapsed().as_millis() as u64);
            Done {
                rollback,
                stage,
                target,
                error,
                record,
            }
        });
    }

    fn start_gates(&mut self, stage: usize) {
        self.stop_gates();
        self.gate_gen += 1;
        let s = &self.plan.stages[stage];
        let mut checks: Vec<(Check, Option<usize>)> =
            s.checks.iter().map(|c| (c.clone(), None)).collect();
        for (i, t) in s.targets.iter().enumerate() {
            checks.extend(t.checks.iter().map(|c| (c.clone(), Some(i))));
        }
        let gate = Gate::new(checks.iter().map(|(c, _)| c.rules));
        let mut handles = Vec::new();
        for (i, (check, target)) in checks.iter().enumerate() {
            let (check, gen, tx) = (check.clone(), self.gate_gen, self.measured.0.clone());
            let previous = target.and_then(|t| self.run.previous.get(&s.targets[t].name).cloned());
            let version = self.run.version.clone();
            let stage_name = s.name.clone();
            let target_name = target
                .map(|t| s.targets[t].name.clone())
                .unwrap_or_default();
            let (probes, tasks) = (self.ctx.probes.clone(), self.ctx.tasks.clone());
            let h = self.ctx.tasks.spawn(async move {
                let mut pace = probes::pace(check.interval);
                loop {
                    tokio::select! {
                        _ = pace.tick() => {}
                        _ = tasks.stopped() => return,
                    }
                    let vars = Vars {
                        version: &version,
                        previous: previous.as_deref(),
                        target: &target_name,
                        stage: &stage_name,
                    };
                    let m = probes.measure(&check, &vars).await;
                    if tx.send((gen, i, m)).is_err() {
                        return;
                    }
                }
            });
            handles.push(h.abort_handle());
        }
        let verdict = gate.verdict();
        self.gate = Some(GateRun {
            stage,
            gen: self.gate_gen,
            last: vec![None; checks.len()],
            gate,
            checks,
            probes: handles,
            deadline: tokio::time::Instant::now() + s.health_timeout,
        });
        if verdict == Some(GateVerdict::Passed) {
            // No checks: nothing to wait for.
            self.pending.push_back(Input::Gate {
                stage,
                outcome: GateOutcome::Passed,
            });
        }
    }

    fn stop_gates(&mut self) {
        if let Some(g) = self.gate.take() {
            for p in g.probes {
                p.abort();
            }
        }
    }

    /// Count a measurement of the gate being measured; the gate's verdict as an input, once it
    /// has one.
    fn measurement(&mut self, gen: u64, check: usize, m: Measured) -> Option<Input> {
        let g = self.gate.as_mut()?;
        if g.gen != gen || !g.gate.open(check) {
            return None;
        }
        let (c, target) = &g.checks[check];
        let stage = g.stage;
        let target_name = target.map(|t| self.plan.stages[stage].targets[t].name.clone());
        let body = json!({
            "stage": self.plan.stages[stage].name, "check": c.name, "target": target_name,
            "severity": c.rules.severity.as_str(), "outcome": m.outcome.as_str(), "detail": m.detail,
        });
        let verdict = g.gate.record(check, m.outcome);
        g.last[check] = Some(m.detail.clone());
        if !g.gate.open(check) {
            g.probes[check].abort();
        }
        let name = c.name.clone();
        self.note("measurement", body);
        self.refresh_view();
        let on = |t: &Option<String>| t.as_ref().map(|t| format!(" on {t}")).unwrap_or_default();
        let outcome = match verdict? {
            GateVerdict::Passed => GateOutcome::Passed,
            GateVerdict::Failed { severity, by, .. } => GateOutcome::Failed(format!(
                "{} check {name:?}{} failed ({}): {}",
                severity.as_str(),
                on(&target_name),
                by.as_str(),
                m.detail
            )),
            GateVerdict::Inconclusive { .. } => GateOutcome::Inconclusive(format!(
                "check {name:?}{} was inconclusive: {}",
                on(&target_name),
                m.detail
            )),
        };
        Some(Input::Gate { stage, outcome })
    }

    fn set_view(&self, f: impl FnOnce(&mut RunView)) {
        f(&mut lock(&self.view));
    }

    fn refresh_view(&self) {
        let m = &self.machine;
        let stages = &self.plan.stages;
        let gate = self.gate.as_ref().map(|g| {
            g.checks
                .iter()
                .enumerate()
                .map(|(i, (c, t))| {
                    let tally = g.gate.tally(i).copied().unwrap_or_default();
                    GateCheckView {
                        check: c.name.clone(),
                        target: t.map(|t| stages[g.stage].targets[t].name.clone()),
                        severity: c.rules.severity.as_str(),
                        successes: tally.successes,
                        failures: tally.failures,
                        errors: tally.errors,
                        inconclusive: tally.inconclusive,
                        last: g.last[i].clone(),
                    }
                })
                .collect()
        });
        self.set_view(|v| {
            v.phase = m.phase().name();
            v.stage = m.phase().stage().map(|s| stages[s].name.clone());
            v.reason = m.reason().map(str::to_string);
            let mut k = 0;
            for (s, stage) in stages.iter().enumerate() {
                for t in 0..stage.targets.len() {
                    if let (Some(view), Some(state)) = (v.targets.get_mut(k), m.target(s, t)) {
                        view.state = state.as_str();
                    }
                    k += 1;
                }
            }
            v.gate = gate.unwrap_or_default();
        });
    }

    /// The run ended: its end on the journal and the audit trail, and the alert it calls for.
    async fn finish(&mut self) {
        self.stop_gates();
        let phase = self.machine.phase().name();
        let reason = self.machine.reason().map(str::to_string);
        let (priority, title) = match self.machine.phase() {
            Phase::Succeeded => (
                Priority::P2,
                format!("deploy {} {} succeeded", self.run.plan, self.run.version),
            ),
            Phase::SucceededPartial => (
                Priority::P1,
                format!(
                    "deploy {} {} succeeded in part: a later stage failed and was rolled back",
                    self.run.plan, self.run.version
                ),
            ),
            Phase::RolledBack => (
                Priority::P0,
                format!(
                    "deploy {} {} failed and was rolled back",
                    self.run.plan, self.run.version
                ),
            ),
            Phase::Failed => (
                Priority::P0,
                format!(
                    "deploy {} {} failed and its rollback failed",
                    self.run.plan, self.run.version
                ),
            ),
            _ => (
                Priority::P1,
                format!("deploy {} {} was aborted", self.run.plan, self.run.version),
            ),
        };
        let message = reason.clone().unwrap_or_default();
        self.note(
            "alert",
            json!({"priority": priority.as_str(), "title": title, "message": message}),
        );
        let end = self.queue_event("end", json!({"phase": phase, "reason": reason}));
        if let Err(e) = end.await {
            tracing::error!(run = self.run.id, error = %e, "a deploy run's end was not journaled");
        }
        self.ctx.audit.record(
            "engine",
            "deploy.finished",
            json!({"run": self.run.id, "plan": self.run.plan, "version": self.run.version, "outcome": phase, "reason": reason}),
        );
        tracing::info!(run = self.run.id, plan = %self.run.plan, outcome = phase, priority = priority.as_str(), "deploy finished");
        self.ctx.notifier.raise_in_background(
            Alert {
                priority,
                source: "deploy".into(),
                title: sovereign_core::notify::truncate_chars(&title, sovereign_core::notify::MAX_TITLE),
                message,
                context: json!({"run": self.run.id, "plan": self.run.plan, "version": self.run.version, "outcome": phase}),
                dedup_key: Some(format!("deploy-{}", self.run.id)),
            },
            "engine",
        );
    }
}

/// Restart `service` and wait, at most `within`, until it is up (healthy, or running without a
/// health check of its own); `Err` says why not.
async fn restart_and_wait(
    supervisor: &crate::supervisor::Supervisor,
    service: &str,
    within: std::time::Duration,
) -> Result<(), String> {
    use sovereign_core::supervise::State;
    let mut events = supervisor.events();
    supervisor
        .restart_service(service)
        .await
        .map_err(|e| format!("restarting {service} failed: {e}"))?;
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if e.service == service => match e.to {
                    State::Healthy | State::Running => return Ok(()),
                    State::Failed | State::Exited | State::Backoff | State::Unhealthy => {
                        return Err(format!(
                            "{service} did not come up: {} ({})",
                            e.to.as_str(),
                            e.reason
                        ))
                    }
                    _ => {}
                },
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err("the supervisor stopped".to_string())
                }
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or_else(|_| Err(format!("{service} was not up within {within:?}")))
}

/// Why a feed stopped.
enum Stop {
    Refused(Refused),
    /// The journal failed: the run can go no further in this process.
    Journal,
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An input as the journal holds it.
pub(super) fn encode(input: &Input) -> Value {
    match input {
        Input::Start => json!({"input": "start"}),
        Input::Deployed {
            stage,
            target,
            error,
        } => json!({"input": "deployed", "stage": stage, "target": target, "error": error}),
        Input::RolledBack {
            stage,
            target,
            error,
        } => json!({"input": "rolled_back", "stage": stage, "target": target, "error": error}),
        Input::Gate { stage, outcome } => {
            let (outcome, reason) = match outcome {
                GateOutcome::Passed => ("passed", None),
                GateOutcome::Failed(r) => ("failed", Some(r)),
                GateOutcome::Inconclusive(r) => ("inconclusive", Some(r)),
                GateOutcome::TimedOut => ("timed_out", None),
            };
            json!({"input": "gate", "stage": stage, "outcome": outcome, "reason": reason})
        }
        Input::Promote { full } => json!({"input": "promote", "full": full}),
        Input::Pause => json!({"input": "pause"}),
        Input::Resume => json!({"input": "resume"}),
        Input::Abort => json!({"input": "abort"}),
    }
}

/// The input a journal entry holds (`None`: not one this build knows).
pub(super) fn decode(v: &Value) -> Option<Input> {
    let index = |k: &str| v[k].as_u64().map(|n| n as usize);
    let error = || v["error"].as_str().map(str::to_string);
    Some(match v["input"].as_str()? {
        "start" => Input::Start,
        "deployed" => Input::Deployed {
            stage: index("stage")?,
            target: index("target")?,
            error: error(),
        },
        "rolled_back" => Input::RolledBack {
            stage: index("stage")?,
            target: index("target")?,
            error: error(),
        },
        "gate" => {
            let reason = v["reason"].as_str().unwrap_or_default().to_string();
            Input::Gate {
                stage: index("stage")?,
                outcome: match v["outcome"].as_str()? {
                    "passed" => GateOutcome::Passed,
                    "failed" => GateOutcome::Failed(reason),
                    "inconclusive" => GateOutcome::Inconclusive(reason),
                    "timed_out" => GateOutcome::TimedOut,
                    _ => return None,
                },
            }
        }
        "promote" => Input::Promote {
            full: v["full"].as_bool().unwrap_or(false),
        },
        "pause" => Input::Pause,
        "resume" => Input::Resume,
        "abort" => Input::Abort,
        _ => return None,
    })
}

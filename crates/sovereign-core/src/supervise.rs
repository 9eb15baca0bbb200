//! The supervisor's decisions: in which order services start, and what one service does next.
//!
//! Pure, like the rest of the core: the engine spawns, signals and times; it feeds what happened
//! ([`Input`]) and `now` to [`Service::step`], and performs the [`Action`]s it gets back.
//!
//! # States (as supervisord's, plus health)
//! `stopped` (not wanted) → `starting` (spawned; not yet healthy) → `running` (alive; no health
//! check) or `healthy` / `unhealthy` (by its check) → `stopping` (stop signal sent; SIGKILL after
//! the stop timeout). A process that ends goes to `backoff` (a restart is due after the backoff
//! delay), `exited` (its restart policy says no), or `failed` (it could not be spawned, or it
//! restarted too often within the crash-loop window; retried after the cooldown, or by hand).
//!
//! # Invariants (property-tested)
//! - At most one process: a `Spawn` is only ever issued when no process is alive.
//! - A stop is final: after `Stop`, nothing spawns until the next `Start`/`Restart`.
//! - Backoff delays follow the policy and reset after `reset_after` of healthy uptime.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Invalid;
use crate::retry::Backoff;

/// When a process that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Always,
    /// Unless it exited with status 0.
    OnFailure,
    Never,
}

impl Restart {
    pub fn parse(s: &str) -> Result<Restart, Invalid> {
        match s.trim() {
            "always" => Ok(Restart::Always),
            "on-failure" | "on_failure" => Ok(Restart::OnFailure),
            "never" | "no" => Ok(Restart::Never),
            other => Err(Invalid::new(
                "invalid_restart",
                "restart",
                format!("restart {other:?} must be always, on-failure or never"),
            )),
        }
    }
}

/// What a dependency must have reached before its dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Its process is up (spawned).
    Started,
    /// Its health check passes (or, without one, it is up).
    Healthy,
    /// It ran and exited with status 0 (a setup step).
    Completed,
}

impl Condition {
    pub fn parse(s: &str) -> Result<Condition, Invalid> {
        match s.trim() {
            "started" => Ok(Condition::Started),
            "healthy" => Ok(Condition::Healthy),
            "completed" => Ok(Condition::Completed),
            other => Err(Invalid::new(
                "invalid_condition",
                "depends_on",
                format!("condition {other:?} must be started, healthy or completed"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
    }
}

/// Too many restarts within `window` → `failed`; retried after `cooldown` (never, when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoop {
    pub max_restarts: u32,
    pub window: Duration,
    pub cooldown: Option<Duration>,
}

/// How one service is kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub restart: Restart,
    pub backoff: Backoff,
    /// This long healthy (or running, without a check) resets the backoff to its first delay.
    pub reset_after: Duration,
    pub crash_loop: CrashLoop,
    pub stop_timeout: Duration,
    /// Whether a health check decides `healthy`/`unhealthy`.
    pub has_health: bool,
    /// Failed checks in a row that make it `unhealthy`.
    pub failure_threshold: u32,
    /// Restart a service that turns unhealthy (else it is only reported).
    pub restart_unhealthy: bool,
}

impl Default for Policy {
    /// Always restart; 1 s doubling to 60 s, reset after 60 s up; 5 restarts in 60 s → failed,
    /// retried after 5 min; 10 s to stop.
    fn default() -> Self {
        Policy {
            restart: Restart::Always,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
                multiplier: 2,
            },
            reset_after: Duration::from_secs(60),
            crash_loop: CrashLoop {
                max_restarts: 5,
                window: Duration::from_secs(60),
                cooldown: Some(Duration::from_secs(300)),
            },
            stop_timeout: Duration::from_secs(10),
            has_health: false,
            failure_threshold: 3,
            restart_unhealthy: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Healthy,
    Unhealthy,
    Backoff,
    Stopping,
    Exited,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }

    /// Whether a process is alive in this state.
    pub fn alive(self) -> bool {
        matches!(
            self,
            State::Starting | State::Running | State::Healthy | State::Unhealthy | State::Stopping
        )
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at: DateTime<Utc>,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended".into(),
        }
    }
}

/// The one timer a service may have pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The backoff delay is over: start again.
    Backoff,
    /// The stop signal was ignored: kill.
    StopTimeout,
    /// The crash-loop cooldown is over: try again.
    Cooldown,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Wanted up (autostart, an operator). The engine sends it once dependencies are met.
    Start,
    /// Wanted down.
    Stop,
    /// Stop if alive, then start.
    Restart,
    /// The process is up.
    Spawned,
    /// The process could not be started (program missing, not executable, bad cwd).
    SpawnFailed(String),
    Exited(Exit),
    /// One health check's verdict, with its detail.
    Health {
        ok: bool,
        detail: String,
    },
    Timer(Timer),
}

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn,
    /// Send the stop signal to the whole process group.
    Signal,
    /// SIGKILL the whole process group.
    Kill,
    /// Arm the timer (replacing any other) to fire at that instant.
    SetTimer(Timer, DateTime<Utc>),
    ClearTimer,
    /// The state changed (an event for the bus and the store).
    Transition {
        from: State,
        to: State,
        reason: String,
    },
}

/// One service's supervision state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub state: State,
    /// Whether it should be up (autostart or an operator's start, until a stop).
    pub wanted: bool,
    /// Restarts by policy since the engine started.
    pub restarts: u32,
    /// Consecutive restarts without a reset: the backoff exponent.
    pub attempt: u32,
    /// When restarts happened, within the crash-loop window.
    recent: VecDeque<DateTime<Utc>>,
    /// When the current process was spawned.
    pub started_at: Option<DateTime<Utc>>,
    /// Since when it has been healthy (or running, without a check), continuously.
    pub up_since: Option<DateTime<Utc>>,
    pub last_exit: Option<Exit>,
    pub health_failures: u32,
    pub last_health: Option<String>,
    /// A restart was asked while stopping: start once the process is gone.
    restart_pending: bool,
    /// Stopping because it turned unhealthy: its exit is handled like a crash.
    stopping_unhealthy: bool,
    /// Why it is in its state.
    pub reason: String,
}

impl Default for Service {
    fn default() -> Self {
        Service::new()
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Service {
    pub fn new() -> Service {
        Service {
            state: State::Stopped,
            wanted: false,
            restarts: 0,
            attempt: 0,
            recent: VecDeque::new(),
            started_at: None,
            up_since: None,
            last_exit: None,
            health_failures: 0,
            last_health: None,
            restart_pending: false,
            stopping_unhealthy: false,
            reason: String::new(),
        }
    }

    fn go(&mut self, to: State, reason: impl Into<String>, out: &mut Vec<Action>) {
        let reason = reason.into();
        let from = self.state;
        self.state = to;
        self.reason = reason.clone();
        if !matches!(to, State::Healthy | State::Running) {
            self.up_since = None;
        }
        if from != to {
            out.push(Action::Transition { from, to, reason });
        }
    }

    fn spawn(&mut self, reason: &str, out: &mut Vec<Action>) {
        self.health_failures = 0;
        out.push(Action::ClearTimer);
        self.go(State::Starting, reason, out);
        out.push(Action::Spawn);
    }

    fn stop_process(
        &mut self,
        reason: &str,
        policy: &Policy,
        now: DateTime<Utc>,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Signal);
        out.push(Action::SetTimer(
            Timer::StopTimeout,
            after(now, policy.stop_timeout),
        ));
        self.go(State::Stopping, reason, out);
    }

    /// Feed one input; returns what to do, in order.
    pub fn step(&mut self, policy: &Policy, input: Input, now: DateTime<Utc>) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.wanted = true;
                match self.state {
                    State::Stopped | State::Exited | State::Failed | State::Backoff => {
                        if self.state == State::Failed {
                            self.recent.clear();
                            self.attempt = 0;
                        }
                        self.spawn("started", &mut out);
                    }
                    State::Stopping => self.restart_pending = true,
                    _ => {}
                }
            }
            Input::Stop => {
                self.wanted = false;
                self.restart_pending = false;
                self.stopping_unhealthy = false;
                if self.state.alive() && self.state != State::Stopping {
                    self.stop_process("stop requested", policy, now, &mut out);
                } else if matches!(self.state, State::Backoff | State::Failed | State::Exited) {
                    out.push(Action::ClearTimer);
                    self.go(State::Stopped, "stop requested", &mut out);
                }
            }
            Input::Restart => {
                self.wanted = true;
                self.stopping_unhealthy = false;
                self.recent.clear();
                self.attempt = 0;
                if self.state.alive() {
                    self.restart_pending = true;
                    if self.state != State::Stopping {
                        self.stop_process("restart requested", policy, now, &mut out);
                    }
                } else {
                    self.spawn("restart requested", &mut out);
                }
            }
            Input::Spawned => {
                if self.state == State::Starting {
                    self.started_at = Some(now);
                    if !policy.has_health {
                        self.go(State::Running, "process started", &mut out);
                        self.up_since = Some(now);
                    }
                }
            }
            Input::SpawnFailed(reason) => {
                self.started_at = None;
                match self.state {
                    State::Starting => self.fail(policy, now, reason, &mut out),
                    // Stopped before the spawn was known to have failed: nothing to stop.
                    State::Stopping if self.restart_pending && self.wanted => {
                        self.restart_pending = false;
                        self.fail(policy, now, reason, &mut out);
                    }
                    State::Stopping => {
                        out.push(Action::ClearTimer);
                        self.go(State::Stopped, reason, &mut out);
                    }
                    _ => {}
                }
            }
            Input::Health { ok, detail } => {
                self.last_health = Some(detail.clone());
                let checked = matches!(
                    self.state,
                    State::Starting | State::Running | State::Healthy | State::Unhealthy
                );
                if checked && self.started_at.is_some() {
                    if ok {
                        self.health_failures = 0;
                        if self.state != State::Healthy {
                            self.go(State::Healthy, detail, &mut out);
                            self.up_since = Some(now);
                        }
                    } else {
                        self.health_failures += 1;
                        if self.health_failures >= policy.failure_threshold.max(1)
                            && self.state != State::Unhealthy
                        {
                            let why = format!(
                                "{} failed checks in a row: {detail}",
                                self.health_failures
                            );
                            self.go(State::Unhealthy, why, &mut out);
                            if policy.restart_unhealthy && self.wanted {
                                // Its exit then counts like a crash (backoff, crash loop): a
                                // service that never gets healthy ends `failed`, not in
                                // endless restarts.
                                self.stopping_unhealthy = true;
                                self.stop_process("unhealthy: restarting", policy, now, &mut out);
                            }
                        }
                    }
                }
            }
            Input::Exited(exit) => self.exited(policy, exit, now, &mut out),
            Input::Timer(t) => match (t, self.state) {
                (Timer::Backoff, State::Backoff) => self.spawn("backoff over", &mut out),
                (Timer::Cooldown, State::Failed) if self.wanted => {
                    self.recent.clear();
                    self.attempt = 0;
                    self.spawn("cooldown over", &mut out);
                }
                (Timer::StopTimeout, State::Stopping) => {
                    out.push(Action::Kill);
                    self.reason = "stop timeout: killed".into();
                }
                _ => {}
            },
        }
        out
    }

    fn fail(&mut self, policy: &Policy, now: DateTime<Utc>, reason: String, out: &mut Vec<Action>) {
        out.push(Action::ClearTimer);
        if let Some(c) = policy.crash_loop.cooldown {
            out.push(Action::SetTimer(Timer::Cooldown, after(now, c)));
        }
        self.go(State::Failed, reason, out);
    }

    fn exited(&mut self, policy: &Policy, exit: Exit, now: DateTime<Utc>, out: &mut Vec<Action>) {
        if !self.state.alive() {
            return;
        }
        let was_stopping = self.state == State::Stopping;
        let up_long_enough = self.up_since.is_some_and(|t| {
            now.signed_duration_since(t)
                .to_std()
                .is_ok_and(|d| d >= policy.reset_after)
        });
        let unhealthy = std::mem::take(&mut self.stopping_unhealthy);
        let why = if unhealthy {
            format!("unhealthy, {}", exit.describe())
        } else {
            exit.describe()
        };
        self.last_exit = Some(exit.clone());
        self.started_at = None;
        if was_stopping && !unhealthy {
            out.push(Action::ClearTimer);
            if self.restart_pending && self.wanted {
                self.restart_pending = false;
                self.spawn("restarted", out);
            } else {
                self.go(State::Stopped, format!("stopped ({why})"), out);
            }
            return;
        }
        let restart = self.wanted
            && match policy.restart {
                _ if unhealthy => true,
                Restart::Always => true,
                Restart::OnFailure => !exit.success(),
                Restart::Never => false,
            };
        if !restart {
            out.push(Action::ClearTimer);
            self.go(State::Exited, why, out);
            return;
        }
        if up_long_enough {
            self.attempt = 0;
        }
        let window =
            chrono::Duration::from_std(policy.crash_loop.window).unwrap_or(chrono::Duration::MAX);
        while self
            .recent
            .front()
            .is_some_and(|t| now.signed_duration_since(*t) >= window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= policy.crash_loop.max_restarts {
            let n = self.recent.len();
            let reason = format!(
                "crash loop: {why}; {n} restarts within {}s",
                policy.crash_loop.window.as_secs()
            );
            self.fail(policy, now, reason, out);
            return;
        }
        self.recent.push_back(now);
        self.attempt += 1;
        self.restarts += 1;
        let delay = policy.backoff.delay(self.attempt);
        out.push(Action::SetTimer(Timer::Backoff, after(now, delay)));
        self.go(
            State::Backoff,
            format!("{why}; restart in {} ms", delay.as_millis()),
            out,
        );
    }

    /// Whether `condition` holds for a dependent.
    pub fn satisfies(&self, condition: Condition, policy: &Policy) -> bool {
        match condition {
            Condition::Started => {
                matches!(
                    self.state,
                    State::Running | State::Healthy | State::Unhealthy
                ) || (self.state == State::Starting && self.started_at.is_some())
            }
            Condition::Healthy => {
                self.state == State::Healthy || (!policy.has_health && self.state == State::Running)
            }
            Condition::Completed => {
                self.state == State::Exited && self.last_exit.as_ref().is_some_and(Exit::success)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dependency order
// ---------------------------------------------------------------------------------------------

/// Start order as levels: every service of a level depends only on earlier levels, so a level's
/// services may start in parallel. Names within a level are sorted. Errors name an unknown
/// dependency or a cycle (`a → b → a`).
pub fn start_order(deps: &BTreeMap<String, Vec<String>>) -> Result<Vec<Vec<String>>, Invalid> {
    for (name, ds) in deps {
        for d in ds {
            if !deps.contains_key(d) {
                return Err(Invalid::new(
                    "unknown_dependency",
                    format!("services.{name}.depends_on"),
                    format!("{name} depends on {d:?}, which is not a service"),
                ));
            }
            if d == name {
                return Err(Invalid::new(
                    "dependency_cycle",
                    format!("services.{name}.depends_on"),
                    format!("dependency cycle: {name} → {name}"),
                ));
            }
        }
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut levels = Vec::new();
    while done.len() < deps.len() {
        let level: Vec<String> = deps
            .iter()
            .filter(|(n, ds)| {
                !done.contains(n.as_str()) && ds.iter().all(|d| done.contains(d.as_str()))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if level.is_empty() {
            let cycle = find_cycle(deps, &done);
            let first = cycle.first().cloned().unwrap_or_default();
            return Err(Invalid::new(
                "dependency_cycle",
                format!("services.{first}.depends_on"),
                format!("dependency cycle: {}", cycle.join(" → ")),
            ));
        }
        for n in &level {
            done.insert(deps.get_key_value(n).map_or("", |(k, _)| k.as_str()));
        }
        levels.push(level);
    }
    Ok(levels)
}

/// A cycle among the services not yet placed, as names with the first repeated at the end.
fn find_cycle(deps: &BTreeMap<String, Vec<String>>, done: &BTreeSet<&str>) -> Vec<String> {
    let Some(start) = deps.keys().find(|n| !done.contains(n.as_str())) else {
        return Vec::new();
    };
    // Every remaining service has a remaining dependency: walk until a name repeats.
    let mut path: Vec<String> = vec![start.clone()];
    loop {
        let last = path.last().cloned().unwrap_or_default();
        let next = deps
            .get(&last)
            .and_then(|ds| ds.iter().find(|d| !done.contains(d.as_str())))
            .cloned();
        let Some(next) = next else { return path };
        if let Some(i) = path.iter().position(|p| *p == next) {
            let mut cycle = path.split_off(i);
            cycle.push(next);
            return cycle;
        }
        path.push(next);
    }
}

// ---------------------------------------------------------------------------------------------
// Health score
// ---------------------------------------------------------------------------------------------

/// The deep health score in [0, 1] as a rational: each check counts once; a failing check
/// counts 0; a `critical` failure (the store) makes the whole score 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    pub passing: usize,
    pub total: usize,
    pub critical_failed: bool,
}

impl Score {
    /// Thousandths, exact integer arithmetic (1000 = every check passes).
    pub fn permille(&self) -> u32 {
        if self.critical_failed {
            return 0;
        }
        if self.total == 0 {
            return 1000;
        }
        ((self.passing * 1000) / self.total) as u32
    }
}

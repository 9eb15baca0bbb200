//! The supervisor: runs the configured services as child processes, in dependency order, and
//! keeps them alive.
//!
//! One actor owns every service's state (`sovereign_core::supervise::Service`) and performs what
//! the core decides: spawn (own process group, output captured), signal the group, arm the one
//! timer, record transitions. Exits arrive from a task awaiting each child (no polling), health
//! verdicts from one task per live process; both carry the process generation so a late message
//! about an old process is ignored. Services wanted up whose dependencies are not met yet wait
//! in `waiting` and start as soon as they are; shutdown stops them in reverse order.
//!
//! Every transition is logged, broadcast (`/sse/services`), put on the audit trail, and checked
//! against the alert rules (failed → P0, unhealthy → P1); on alive → dead the healer hook runs.

pub mod health;
pub mod logs;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sovereign_core::notify::{Alert, Priority};
use sovereign_core::supervise::{Action, Condition, Exit, Input, Service, State, Timer};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::audit::Audit;
use crate::notify::Notifier;
use crate::support::{lock, Tasks};
use health::{Beat, Beats};
use logs::LogSink;
use settings::{Healer, ServiceSettings, SupervisorSettings};

/// One state change of one service.
#[derive(Debug, Clone)]
pub struct ServiceEvent {
    pub at: DateTime<Utc>,
    pub service: String,
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// What the healer hook did, the last time it ran for a service.
#[derive(Debug, Clone)]
pub struct HealerRun {
    pub at: DateTime<Utc>,
    pub exit: Option<i32>,
    pub output: String,
}

/// A service as the API shows it.
#[derive(Debug, Clone)]
pub struct ServiceView {
    pub name: String,
    pub state: State,
    pub reason: String,
    pub pid: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    pub health_kind: Option<&'static str>,
    pub last_health: Option<String>,
    pub health_failures: u32,
    pub depends_on: Vec<(String, Condition)>,
    /// Dependencies it is waiting for before it can start.
    pub waiting_for: Vec<String>,
    pub wanted: bool,
    pub autostart: bool,
    pub heartbeat: Option<Beat>,
    pub healer: Option<HealerRun>,
}

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no service named {0:?}")]
    Unknown(String),
    #[error("the supervisor has stopped")]
    Stopped,
}

#[derive(Debug, Clone, Copy)]
enum Control {
    Start,
    Stop,
    Restart,
}

enum Msg {
    Control {
        name: String,
        control: Control,
        reply: oneshot::Sender<Result<ServiceView, SupervisorError>>,
    },
    Exited {
        name: String,
        gen: u64,
        exit: Exit,
    },
    Health {
        name: String,
        gen: u64,
        ok: bool,
        detail: String,
    },
    Timer {
        name: String,
        id: u64,
        timer: Timer,
    },
    Beat(String),
    Healed {
        name: String,
        run: HealerRun,
    },
    /// Truth components that changed: restart the services that use them (when they say so).
    TruthChanged(BTreeSet<String>),
    Snapshot(oneshot::Sender<Vec<ServiceView>>),
    Shutdown(oneshot::Sender<()>),
}

/// A Truth component's `env` variables by component name, and which of their values are
/// secrets (masked in the service's captured output).
pub type TruthEnv = Arc<dyn Fn(&str) -> InjectedEnv + Send + Sync>;

/// The environment a Truth component gives a service.
#[derive(Debug, Clone, Default)]
pub struct InjectedEnv {
    pub vars: BTreeMap<String, String>,
    /// The values that are secrets.
    pub secrets: Vec<String>,
}

/// What the supervisor needs from the rest of the engine.
#[derive(Clone)]
pub struct Context {
    pub audit: Audit,
    /// Where the supervisor's tasks run (exit watchers, health checks, timers, log pumps).
    pub tasks: Tasks,
    pub notifier: Notifier,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
    /// The engine's base URL, given to every service as `SOVEREIGN_URL`.
    pub engine_url: String,
    /// A Truth component's `env`, read at each spawn.
    pub truth_env: TruthEnv,
}

/// The handle: cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    tx: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<ServiceEvent>,
    logs: Arc<BTreeMap<String, Arc<LogSink>>>,
    beats: Arc<BTreeMap<String, Beats>>,
}

struct Unit {
    spec: Arc<ServiceSettings>,
    core: Service,
    pid: Option<u32>,
    gen: u64,
    timer_id: u64,
    timer: Option<JoinHandle<()>>,
    health: Option<JoinHandle<()>>,
    log: Arc<LogSink>,
    beat: Beats,
    last_heal: Option<Instant>,
    healer: Option<HealerRun>,
}

struct Actor {
    units: BTreeMap<String, Unit>,
    /// Start order (dependencies first).
    order: Vec<String>,
    waiting: BTreeSet<String>,
    tx: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<ServiceEvent>,
    healer: Option<Healer>,
    ctx: Context,
    shutdown: Option<Vec<oneshot::Sender<()>>>,
    /// Shut down: every service has stopped and the waiters were answered.
    finished: bool,
}

impl Supervisor {
    /// Start the actor and every `autostart` service (each once its dependencies are met).
    pub fn start(settings: SupervisorSettings, ctx: Context) -> Supervisor {
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let log_dir = if settings.log_dir.is_absolute() {
            settings.log_dir.clone()
        } else {
            ctx.data_dir.join(&settings.log_dir)
        };
        let mut units = BTreeMap::new();
        let mut order = Vec::new();
        for spec in settings.services {
            let log = Arc::new(LogSink::new(
                &log_dir,
                &spec.name,
                spec.log_max_bytes,
                spec.log_keep,
            ));
            order.push(spec.name.clone());
            units.insert(
                spec.name.clone(),
                Unit {
                    spec: Arc::new(spec),
                    core: Service::new(),
                    pid: None,
                    gen: 0,
                    timer_id: 0,
                    timer: None,
                    health: None,
                    log,
                    beat: Arc::default(),
                    last_heal: None,
                    healer: None,
                },
            );
        }
        let handle = Supervisor {
            tx: tx.clone(),
            events: events.clone(),
            logs: Arc::new(
                units
                    .iter()
                    .map(|(n, u)| (n.clone(), u.log.clone()))
                    .collect(),
            ),
            beats: Arc::new(
                units
                    .iter()
                    .map(|(n, u)| (n.clone(), u.beat.clone()))
                    .collect(),
            ),
        };
        let waiting = units
            .values()
            .filter(|u| u.spec.autostart)
            .map(|u| u.spec.name.clone())
            .collect();
        let mut actor = Actor {
            units,
            order,
            waiting,
            tx,
            events,
            healer: settings.healer,
            ctx,
            shutdown: None,
            finished: false,
        };
        let tasks = actor.ctx.tasks.clone();
        tasks.spawn(async move {
            actor.settle();
            actor.run(rx).await;
        });
        handle
    }

    async fn control(&self, name: &str, control: Control) -> Result<ServiceView, SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Control {
                name: name.to_string(),
                control,
                reply,
            })
            .map_err(|_| SupervisorError::Stopped)?;
        rx.await.map_err(|_| SupervisorError::Stopped)?
    }

    pub async fn start_service(&self, name: &str) -> Result<ServiceView, SupervisorError> {
        self.control(name, Control::Start).await
    }

    pub async fn stop_service(&self, name: &str) -> Result<ServiceView, SupervisorError> {
        self.control(name, Control::Stop).await
    }

    pub async fn restart_service(&self, name: &str) -> Result<ServiceView, SupervisorError> {
        self.control(name, Control::Restart).await
    }

    /// Every service, in start order.
    pub async fn services(&self) -> Vec<ServiceView> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Snapshot(reply)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub fn logs(&self, name: &str) -> Option<Arc<LogSink>> {
        self.logs.get(name).cloned()
    }

    pub fn events(&self) -> broadcast::Receiver<ServiceEvent> {
        self.events.subscribe()
    }

    /// Record a heartbeat (with the service's last status). `false`: no such service.
    pub fn heartbeat(&self, name: &str, payload: Value) -> bool {
        let Some(beat) = self.beats.get(name) else {
            return false;
        };
        *lock(beat) = Some(Beat {
            at: Utc::now(),
            received: Instant::now(),
            payload,
        });
        let _ = self.tx.send(Msg::Beat(name.to_string()));
        true
    }

    /// Restart (per their policy) the services whose Truth component changed.
    pub fn truth_changed(&self, components: BTreeSet<String>) {
        let _ = self.tx.send(Msg::TruthChanged(components));
    }

    /// Stop every service, dependents first; returns once all have exited.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).is_ok() {
            let _ = rx.await;
        }
    }
}

impl Actor {
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Control {
                    name,
                    control,
                    reply,
                } => {
                    if !self.units.contains_key(&name) {
                        let _ = reply.send(Err(SupervisorError::Unknown(name)));
                        continue;
                    }
                    match control {
                        Control::Start => {
                            self.waiting.insert(name.clone());
                        }
                        Control::Stop => {
                            self.waiting.remove(&name);
                            self.feed(&name, Input::Stop);
                        }
                        Control::Restart => {
                            self.waiting.remove(&name);
                            self.feed(&name, Input::Restart);
                        }
                    }
                    self.settle();
                    let _ = reply.send(self.view(&name).ok_or(SupervisorError::Unknown(name)));
                }
                Msg::Exited { name, gen, exit } => {
                    if self.units.get(&name).is_some_and(|u| u.gen == gen) {
                        if let Some(u) = self.units.get_mut(&name) {
                            u.pid = None;
                            if let Some(h) = u.health.take() {
                                h.abort();
                            }
                            u.log.line("sovereign", &exit.describe());
                        }
                        self.feed(&name, Input::Exited(exit));
                        self.settle();
                    }
                }
                Msg::Health {
                    name,
                    gen,
                    ok,
                    detail,
                } => {
                    if self
                        .units
                        .get(&name)
                        .is_some_and(|u| u.gen == gen && u.pid.is_some())
                    {
                        self.feed(&name, Input::Health { ok, detail });
                        self.settle();
                    }
                }
                Msg::Beat(name) => {
                    let heartbeat_checked = self.units.get(&name).is_some_and(|u| {
                        u.pid.is_some()
                            && matches!(
                                u.spec.health.as_ref().map(|h| &h.check),
                                Some(settings::Check::Heartbeat { .. })
                            )
                    });
                    if heartbeat_checked {
                        self.feed(
                            &name,
                            Input::Health {
                                ok: true,
                                detail: "heartbeat received".into(),
                            },
                        );
                        self.settle();
                    }
                }
                Msg::Timer { name, id, timer } => {
                    if self.units.get(&name).is_some_and(|u| u.timer_id == id) {
                        if let Some(u) = self.units.get_mut(&name) {
                            u.timer = None;
                        }
                        self.feed(&name, Input::Timer(timer));
                        self.settle();
                    }
                }
                Msg::Healed { name, run } => {
                    if let Some(u) = self.units.get_mut(&name) {
                        u.healer = Some(run);
                    }
                }
                Msg::TruthChanged(components) => {
                    let names: Vec<String> = self
                        .units
                        .values()
                        .filter(|u| {
                            u.spec.restart_on_truth_change
                                && u.core.state.alive()
                                && u.spec
                                    .truth
                                    .as_ref()
                                    .is_some_and(|t| components.contains(t))
                        })
                        .map(|u| u.spec.name.clone())
                        .collect();
                    for name in names {
                        if let Some(u) = self.units.get(&name) {
                            u.log.line("sovereign", "truth changed: restarting");
                        }
                        self.feed(&name, Input::Restart);
                    }
                    self.settle();
                }
                Msg::Snapshot(reply) => {
                    let all = self.order.iter().filter_map(|n| self.view(n)).collect();
                    let _ = reply.send(all);
                }
                Msg::Shutdown(reply) => {
                    self.waiting.clear();
                    self.shutdown.get_or_insert_with(Vec::new).push(reply);
                    self.settle();
                }
            }
            if self.finished {
                return;
            }
        }
    }

    /// Feed one input to a service's core and perform what it decides.
    fn feed(&mut self, name: &str, input: Input) {
        let now = Utc::now();
        let Some(unit) = self.units.get_mut(name) else {
            return;
        };
        let actions = unit.core.step(&unit.spec.policy, input, now);
        for action in actions {
            self.perform(name, action, now);
        }
    }

    fn perform(&mut self, name: &str, action: Action, now: DateTime<Utc>) {
        match action {
            Action::Spawn => self.spawn(name),
            Action::Signal => {
                if let Some(u) = self.units.get(name) {
                    u.log
                        .line("sovereign", &format!("sending SIG{}", u.spec.stop_signal));
                    signal_group(u.pid, &u.spec.stop_signal);
                }
            }
            Action::Kill => {
                if let Some(u) = self.units.get(name) {
                    u.log.line(
                        "sovereign",
                        "stop timeout: sending SIGKILL to the process group",
                    );
                    signal_group(u.pid, "KILL");
                }
            }
            Action::SetTimer(timer, at) => {
                let tx = self.tx.clone();
                if let Some(u) = self.units.get_mut(name) {
                    if let Some(t) = u.timer.take() {
                        t.abort();
                    }
                    u.timer_id += 1;
                    let id = u.timer_id;
                    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
                    let name = name.to_string();
                    let stop = self.ctx.tasks.clone();
                    u.timer = Some(self.ctx.tasks.spawn(async move {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {
                                let _ = tx.send(Msg::Timer { name, id, timer });
                            }
                            _ = stop.stopped() => {}
                        }
                    }));
                }
            }
            Action::ClearTimer => {
                if let Some(u) = self.units.get_mut(name) {
                    if let Some(t) = u.timer.take() {
                        t.abort();
                    }
                    u.timer_id += 1;
                }
            }
            Action::Transition { from, to, reason } => self.transition(name, from, to, reason, now),
        }
    }

    fn transition(
        &mut self,
        name: &str,
        from: State,
        to: State,
        reason: String,
        now: DateTime<Utc>,
    ) {
        tracing::info!(service = name, from = from.as_str(), to = to.as_str(), %reason, "service state");
        let event = ServiceEvent {
            at: now,
            service: name.to_string(),
            from,
            to,
            reason: reason.clone(),
        };
        let _ = self.events.send(event);
        self.ctx.audit.record(
            "engine",
            "service.transition",
            json!({"service": name, "from": from.as_str(), "to": to.as_str(), "reason": reason}),
        );
        let alert = match to {
            State::Failed => Some((Priority::P0, format!("service {name} failed"))),
            State::Unhealthy => Some((Priority::P1, format!("service {name} is unhealthy"))),
            _ => None,
        };
        if let Some((priority, title)) = alert {
            let alert = Alert {
                priority,
                source: "supervisor".into(),
                title,
                message: reason.clone(),
                context: json!({"service": name, "from": from.as_str(), "to": to.as_str()}),
                dedup_key: Some(format!("service-{}:{name}", to.as_str())),
            };
            self.ctx.notifier.raise_in_background(alert, "engine");
        }
        let was_alive = matches!(from, State::Starting | State::Running | State::Healthy);
        let dead = matches!(
            to,
            State::Backoff | State::Exited | State::Failed | State::Unhealthy
        );
        if was_alive && dead && self.shutdown.is_none() {
            self.heal(name, to, &reason);
        }
    }

    /// Start what waits and can start; during shutdown, stop what no running service needs.
    fn settle(&mut self) {
        if self.shutdown.is_some() {
            let alive: BTreeSet<String> = self
                .units
                .values()
                .filter(|u| u.core.state.alive())
                .map(|u| u.spec.name.clone())
                .collect();
            let stoppable: Vec<String> = self
                .units
                .values()
                .filter(|u| u.core.state != State::Stopping && u.core.state != State::Stopped)
                .filter(|u| {
                    !self.units.values().any(|d| {
                        alive.contains(&d.spec.name)
                            && d.spec.depends_on.iter().any(|(n, _)| *n == u.spec.name)
                    })
                })
                .map(|u| u.spec.name.clone())
                .collect();
            for name in stoppable {
                self.feed(&name, Input::Stop);
            }
            if self.units.values().all(|u| !u.core.state.alive()) {
                for reply in self.shutdown.take().unwrap_or_default() {
                    let _ = reply.send(());
                }
                self.finished = true;
            }
            return;
        }
        loop {
            let ready: Vec<String> = self
                .order
                .iter()
                .filter(|n| self.waiting.contains(*n))
                .filter(|n| self.unmet(n).is_empty())
                .cloned()
                .collect();
            if ready.is_empty() {
                return;
            }
            for name in ready {
                self.waiting.remove(&name);
                self.feed(&name, Input::Start);
            }
        }
    }

    /// The dependencies of `name` whose condition does not hold yet.
    fn unmet(&self, name: &str) -> Vec<String> {
        let Some(u) = self.units.get(name) else {
            return Vec::new();
        };
        u.spec
            .depends_on
            .iter()
            .filter(|(d, cond)| {
                !self
                    .units
                    .get(d)
                    .is_some_and(|du| du.core.satisfies(*cond, &du.spec.policy))
            })
            .map(|(d, cond)| format!("{d} ({})", cond.as_str()))
            .collect()
    }

    fn view(&self, name: &str) -> Option<ServiceView> {
        let u = self.units.get(name)?;
        let waiting = self.waiting.contains(name);
        Some(ServiceView {
            name: name.to_string(),
            state: u.core.state,
            reason: if waiting {
                format!("waiting for {}", self.unmet(name).join(", "))
            } else {
                u.core.reason.clone()
            },
            pid: u.pid,
            started_at: u.core.started_at,
            restarts: u.core.restarts,
            last_exit: u.core.last_exit.clone(),
            health_kind: u.spec.health.as_ref().map(|h| h.check.kind()),
            last_health: u.core.last_health.clone(),
            health_failures: u.core.health_failures,
            depends_on: u.spec.depends_on.clone(),
            waiting_for: if waiting {
                self.unmet(name)
            } else {
                Vec::new()
            },
            wanted: u.core.wanted || waiting,
            autostart: u.spec.autostart,
            heartbeat: lock(&u.beat).clone(),
            healer: u.healer.clone(),
        })
    }

    /// Spawn the service's process in its own process group, output captured; report the
    /// outcome to its core at once.
    fn spawn(&mut self, name: &str) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        if let Some(reason) = &u.spec.missing_program {
            // Checked again: the program may have been installed since the config was read.
            if settings::find_program(&u.spec.argv[0], &u.spec.cwd).is_err() {
                let reason = reason.clone();
                u.log.line("sovereign", &format!("cannot start: {reason}"));
                self.feed(name, Input::SpawnFailed(reason));
                return;
            }
        }
        let spec = u.spec.clone();
        let injected = (self.ctx.truth_env)(spec.truth.as_deref().unwrap_or_default());
        // Every secret value this process is given is masked in what it prints.
        let mut secrets = injected.secrets.clone();
        secrets.extend(
            spec.env
                .iter()
                .filter(|(k, _)| sovereign_core::redact::is_secret_key(k))
                .map(|(_, v)| v.clone()),
        );
        u.log.mask(secrets);
        // A new process has not beaten yet: the last heartbeat was the old process's.
        *lock(&u.beat) = None;
        let mut cmd = tokio::process::Command::new(&spec.argv[0]);
        cmd.args(&spec.argv[1..])
            .current_dir(&spec.cwd)
            .envs(&injected.vars)
            .envs(&spec.env)
            .env("SOVEREIGN_SERVICE", name)
            .env("SOVEREIGN_URL", &self.ctx.engine_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        // Its own group, so a stop reaches whatever it starts.
        #[cfg(unix)]
        cmd.process_group(0);
        match cmd.spawn() {
            Err(e) => {
                let reason = format!("cannot start {:?}: {e}", spec.argv[0]);
                u.log.line("sovereign", &reason);
                self.feed(name, Input::SpawnFailed(reason));
            }
            Ok(mut child) => {
                u.gen += 1;
                let gen = u.gen;
                u.pid = child.id();
                u.log.line(
                    "sovereign",
                    &format!(
                        "started pid {}: {}",
                        u.pid.unwrap_or(0),
                        spec.argv.join(" ")
                    ),
                );
                if let Some(out) = child.stdout.take() {
                    self.ctx.tasks.spawn(pump(out, u.log.clone(), "out"));
                }
                if let Some(err) = child.stderr.take() {
                    self.ctx.tasks.spawn(pump(err, u.log.clone(), "err"));
                }
                let tx = self.tx.clone();
                let pid = u.pid;
                let service = name.to_string();
                self.ctx.tasks.spawn(async move {
                    let status = child.wait().await;
                    // Whatever the leader left behind in its group goes with it.
                    signal_group(pid, "KILL");
                    let exit = match status {
                        Ok(s) => Exit {
                            code: s.code(),
                            signal: crate::support::exit_signal(&s),
                            at: Utc::now(),
                        },
                        Err(_) => Exit {
                            code: None,
                            signal: None,
                            at: Utc::now(),
                        },
                    };
                    let _ = tx.send(Msg::Exited {
                        name: service,
                        gen,
                        exit,
                    });
                });
                if let Some(h) = spec.health.clone() {
                    let tx = self.tx.clone();
                    let http = self.ctx.http.clone();
                    let beat = u.beat.clone();
                    let service = name.to_string();
                    let started = Instant::now();
                    let stop = self.ctx.tasks.clone();
                    let checks = async move {
                        tokio::time::sleep(h.initial_delay).await;
                        loop {
                            if let Some((ok, detail)) =
                                health::run(&h.check, h.timeout, &http, &beat, started).await
                            {
                                let msg = Msg::Health {
                                    name: service.clone(),
                                    gen,
                                    ok,
                                    detail,
                                };
                                if tx.send(msg).is_err() {
                                    return;
                                }
                            }
                            tokio::time::sleep(h.interval).await;
                        }
                    };
                    u.health = Some(self.ctx.tasks.spawn(async move {
                        tokio::select! {
                            _ = checks => {}
                            _ = stop.stopped() => {}
                        }
                    }));
                }
                self.feed(name, Input::Spawned);
            }
        }
    }

    /// Run the healer hook for `name` unless it ran less than its cooldown ago.
    fn heal(&mut self, name: &str, to: State, reason: &str) {
        let Some(healer) = self.healer.clone() else {
            return;
        };
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        if u.last_heal.is_some_and(|t| t.elapsed() < healer.cooldown) {
            u.log
                .line("sovereign", "healer not run: within its cooldown");
            return;
        }
        u.last_heal = Some(Instant::now());
        let lines = u.log.tail(healer.log_lines);
        let exit_status = u
            .core
            .last_exit
            .as_ref()
            .and_then(|e| e.code)
            .map(|c| c.to_string())
            .unwrap_or_default();
        let snapshot = json!({
            "service": name,
            "state": to.as_str(),
            "reason": reason,
            "restarts": u.core.restarts,
            "last_exit": u.core.last_exit.as_ref().map(|e| json!({"code": e.code, "signal": e.signal, "at": e.at.to_rfc3339()})),
            "last_health": u.core.last_health,
            "health_failures": u.core.health_failures,
            "heartbeat": lock(&u.beat).as_ref().map(|b| json!({"at": b.at.to_rfc3339(), "payload": b.payload})),
        });
        let dir = self.ctx.data_dir.join("healer");
        let audit = self.ctx.audit.clone();
        let tx = self.tx.clone();
        let name = name.to_string();
        let reason = reason.to_string();
        let stop = self.ctx.tasks.clone();
        self.ctx.tasks.spawn(async move {
            let healing = run_healer(
                &healer,
                &dir,
                &name,
                &exit_status,
                &reason,
                &lines,
                &snapshot,
            );
            // At shutdown a healer still running is abandoned (and killed with its handle).
            let run = tokio::select! {
                run = healing => run,
                _ = stop.stopped() => return,
            };
            audit.record(
                "engine",
                "service.healer",
                json!({"service": name, "exit": run.exit, "output": run.output}),
            );
            let _ = tx.send(Msg::Healed { name, run });
        });
    }
}

/// Copy a child's output into its log, line by line.
async fn pump(stream: impl AsyncRead + Unpin, log: Arc<LogSink>, label: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.line(label, &line);
    }
}

/// Signal the process group led by `pid`, if there is one (not awaited: the actor goes on).
fn signal_group(pid: Option<u32>, signal: &str) {
    if let Some(pid) = pid {
        crate::support::signal_group(pid, signal);
    }
}

async fn run_healer(
    healer: &Healer,
    dir: &std::path::Path,
    name: &str,
    exit_status: &str,
    reason: &str,
    lines: &[String],
    snapshot: &Value,
) -> HealerRun {
    let at = Utc::now();
    let stamp = at.format("%Y%m%dT%H%M%S%.3fZ");
    let log_file = dir.join(format!("{name}-{stamp}.log"));
    let health_file = dir.join(format!("{name}-{stamp}.health.json"));
    let written = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&log_file, lines.join("\n") + "\n"))
        .and_then(|_| std::fs::write(&health_file, snapshot.to_string()));
    if let Err(e) = written {
        return HealerRun {
            at,
            exit: None,
            output: format!("healer not run: cannot write its files: {e}"),
        };
    }
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&healer.argv[0])
            .args(&healer.argv[1..])
            .current_dir(&healer.cwd)
            .env("SOVEREIGN_SERVICE", name)
            .env("SOVEREIGN_EXIT_STATUS", exit_status)
            .env("SOVEREIGN_REASON", reason)
            .env("SOVEREIGN_LOG_FILE", &log_file)
            .env("SOVEREIGN_HEALTH_FILE", &health_file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let (exit, output) = match out {
        Ok(Ok(o)) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            (
                o.status.code(),
                sovereign_core::notify::truncate_chars(&text, 16 * 1024),
            )
        }
        Ok(Err(e)) => (None, format!("cannot run the healer: {e}")),
        Err(_) => (None, "the healer did not finish within 60 s".into()),
    };
    HealerRun { at, exit, output }
}

//! Deploy: staged rollouts of a plan's targets (canary → primary → full), gated on health
//! checks, rolled back by themselves when unhealthy, on a history that is only ever appended to.
//!
//! Owns the plans' runs: one runner task per run in progress (at most one per plan), each
//! feeding its state machine (`sovereign_core::deploy::rollout`) what happens and doing what it
//! decides — deploy and rollback commands (argv, no shell, with a timeout), gates measured by
//! `probes.rs` and judged by `sovereign_core::deploy::analysis`. Every input is journaled (a
//! durable event of the run) before what it causes is done, so an engine killed during a
//! deploy finds the run at start, replays its journal, runs again only what was in flight and
//! verifies the stage it was verifying from scratch.
//!
//! Must not: run a command the config did not name (versions are plain text given as one
//! argument, never through a shell); change a run's recorded events; decide anything the state
//! machine decides. Files: `settings` (`[deploy]`), `runner` (one run), `probes` (one
//! measurement), `history` (reading runs back from their events).

mod history;
pub mod probes;
mod runner;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sovereign_core::deploy::plan;
use sovereign_core::deploy::rollout::Refused;
use sovereign_core::error::Invalid;
use sovereign_store::{DeployEvent, DeployRun, Store, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::audit::Audit;
use crate::notify::Notifier;
use crate::supervisor::Supervisor;
use crate::support::{lock, Tasks};
pub use history::{RunSummary, StageSummary};
use probes::Probes;
pub use runner::{GateCheckView, RunView, TargetView};
use settings::{DeploySettings, Plan};

/// Why a deploy request failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("no deploy plan is named {0:?}")]
    UnknownPlan(String),
    #[error("plan {plan:?} is deploying already (run {run})")]
    InProgress { plan: String, run: u64 },
    #[error("plan {0:?} has no run in progress")]
    NoRun(String),
    #[error("{0}")]
    Invalid(Invalid),
    #[error("version {version:?} does not resolve: {why}")]
    Unresolved { version: String, why: String },
    #[error("{calendar} is in session until {until}: plan {plan:?} deploys outside sessions")]
    SessionOpen {
        plan: String,
        calendar: String,
        until: DateTime<Utc>,
    },
    #[error("{0}")]
    Refused(Refused),
    #[error("the deploy runner stopped")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An operator's command to a run in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Promote { full: bool },
    Pause,
    Resume,
    Abort,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Promote { .. } => "promote",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Abort => "abort",
        }
    }
}

/// An operator's command to a runner: what, who, and where the answer goes.
pub(crate) type Command = (Op, String, oneshot::Sender<Result<(), Refused>>);

/// Who asked for a run, and how.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `cli`, `api`, `hook`.
    pub how: String,
    pub actor: String,
}

/// A run's progress, for `/sse/deploys`.
#[derive(Debug, Clone)]
pub struct Notice {
    pub run: u64,
    pub plan: String,
    pub at: DateTime<Utc>,
    /// The event's kind (`phase`, `command`, `measurement`, `end`, …) and body, as stored.
    pub kind: String,
    pub body: Value,
}

/// The deploy handle. Cheap to clone.
#[derive(Clone)]
pub struct Deploy {
    inner: Arc<Inner>,
}

struct Inner {
    settings: DeploySettings,
    store: Store,
    audit: Audit,
    notifier: Notifier,
    probes: Probes,
    tasks: Tasks,
    /// The run in progress of each plan (or reserved while one is being made).
    active: Mutex<BTreeMap<String, Slot>>,
    notices: broadcast::Sender<Notice>,
}

enum Slot {
    Reserved,
    Running(RunHandle),
}

#[derive(Clone)]
struct RunHandle {
    id: u64,
    ops: mpsc::UnboundedSender<Command>,
    view: Arc<Mutex<RunView>>,
}

/// What `run` needs beyond the plan: the version, and whether it is a rollback to it.
struct Asked {
    version: String,
    rollback: bool,
    trigger: Trigger,
}

impl Deploy {
    /// The runs an earlier engine left unfinished, with their journals.
    pub async fn unfinished(
        store: &Store,
    ) -> Result<Vec<(DeployRun, Vec<DeployEvent>)>, StoreError> {
        let mut out = Vec::new();
        for run in store.unfinished_deploy_runs().await? {
            let events = store.deploy_events(run.id).await?;
            out.push((run, events));
        }
        Ok(out)
    }

    /// Start the room; the runs an earlier engine `left` unfinished go on from their journals.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        settings: DeploySettings,
        left: Vec<(DeployRun, Vec<DeployEvent>)>,
        store: Store,
        audit: Audit,
        notifier: Notifier,
        supervisor: Supervisor,
        http: reqwest::Client,
        tasks: Tasks,
    ) -> Deploy {
        let deploy = Deploy {
            inner: Arc::new(Inner {
                settings,
                store,
                audit,
                notifier,
                probes: Probes { http, supervisor },
                tasks,
                active: Mutex::new(BTreeMap::new()),
                notices: broadcast::channel(1024).0,
            }),
        };
        for (run, events) in left {
            let Some(plan) = deploy.inner.settings.plans.get(&run.plan).cloned() else {
                tracing::error!(run = run.id, plan = %run.plan, "an unfinished deploy run's plan is no longer configured; left as it is");
                continue;
            };
            deploy.launch(plan, run, Some(events));
        }
        deploy
    }

    pub fn plan(&self, name: &str) -> Result<Arc<Plan>, DeployError> {
        self.inner
            .settings
            .plans
            .get(name)
            .cloned()
            .ok_or_else(|| DeployError::UnknownPlan(name.to_string()))
    }

    /// Start a run of `plan` with `version` (or the plan's git ref); answered once the run is
    /// recorded. 409-worthy when the plan has a run in progress or its window is closed.
    pub async fn run(
        &self,
        plan: &str,
        version: Option<&str>,
        trigger: Trigger,
    ) -> Result<RunView, DeployError> {
        let p = self.plan(plan)?;
        let version = resolve(&p, version).await?;
        self.begin(
            p,
            Asked {
                version,
                rollback: false,
                trigger,
            },
        )
        .await
    }

    /// Roll every target of `plan` back to `version` now (its rollback commands with
    /// `{previous}` = `version`), last stage first, without gates.
    pub async fn rollback_to(
        &self,
        plan: &str,
        version: &str,
        trigger: Trigger,
    ) -> Result<RunView, DeployError> {
        let p = self.plan(plan)?;
        let version = resolve(&p, Some(version)).await?;
        self.begin(
            p,
            Asked {
                version,
                rollback: true,
                trigger,
            },
        )
        .await
    }

    async fn begin(&self, p: Arc<Plan>, asked: Asked) -> Result<RunView, DeployError> {
        if let Some(w) = &p.window {
            if let (false, Some(until)) = (w.wait, w.session.open_until(Utc::now())) {
                return Err(DeployError::SessionOpen {
                    plan: p.name.clone(),
                    calendar: w.session.calendar.name().to_string(),
                    until,
                });
            }
        }
        {
            let mut active = lock(&self.inner.active);
            match active.get(&p.name) {
                Some(Slot::Running(h)) => {
                    return Err(DeployError::InProgress {
                        plan: p.name.clone(),
                        run: h.id,
                    })
                }
                Some(Slot::Reserved) => {
                    return Err(DeployError::InProgress {
                        plan: p.name.clone(),
                        run: 0,
                    })
                }
                None => {
                    active.insert(p.name.clone(), Slot::Reserved);
                }
            }
        }
        let made = async {
            let previous = self.inner.store.deploy_targets(p.name.clone()).await?;
            let mut run = DeployRun {
                id: 0,
                plan: p.name.clone(),
                kind: if asked.rollback { "rollback" } else { "deploy" }.into(),
                version: asked.version.clone(),
                trigger: asked.trigger.how.clone(),
                actor: asked.trigger.actor.clone(),
                previous,
                created_at: Utc::now(),
            };
            run.id = self.inner.store.insert_deploy_run(run.clone()).await?;
            Ok::<_, StoreError>(run)
        }
        .await;
        let run = match made {
            Ok(run) => run,
            Err(e) => {
                lock(&self.inner.active).remove(&p.name);
                return Err(e.into());
            }
        };
        self.inner.audit.record(
            &run.actor,
            "deploy.started",
            json!({"run": run.id, "plan": run.plan, "kind": run.kind, "version": run.version, "trigger": run.trigger, "previous": run.previous}),
        );
        let handle = self.launch(p, run, None);
        let view = lock(&handle.view).clone();
        Ok(view)
    }

    /// Spawn the runner of `run` (`journal`: the events of a run an earlier engine left).
    fn launch(
        &self,
        plan: Arc<Plan>,
        run: DeployRun,
        journal: Option<Vec<DeployEvent>>,
    ) -> RunHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let view = Arc::new(Mutex::new(RunView::new(&plan, &run)));
        let handle = RunHandle {
            id: run.id,
            ops: tx,
            view: view.clone(),
        };
        lock(&self.inner.active).insert(plan.name.clone(), Slot::Running(handle.clone()));
        let room = self.clone();
        let runner = runner::Runner::new(room.runner_context(), plan, run, view, journal);
        self.inner.tasks.spawn(async move {
            let plan = runner.plan_name();
            runner.run(rx).await;
            lock(&room.inner.active).remove(&plan);
        });
        handle
    }

    fn runner_context(&self) -> runner::Context {
        runner::Context {
            store: self.inner.store.clone(),
            audit: self.inner.audit.clone(),
            notifier: self.inner.notifier.clone(),
            probes: self.inner.probes.clone(),
            tasks: self.inner.tasks.clone(),
            notices: self.inner.notices.clone(),
        }
    }

    /// Promote, pause, resume or abort `plan`'s run in progress; its view after.
    pub async fn command(&self, plan: &str, op: Op, actor: &str) -> Result<RunView, DeployError> {
        self.plan(plan)?;
        let handle = match lock(&self.inner.active).get(plan) {
            Some(Slot::Running(h)) => h.clone(),
            _ => return Err(DeployError::NoRun(plan.to_string())),
        };
        let (reply, answer) = oneshot::channel();
        handle
            .ops
            .send((op, actor.to_string(), reply))
            .map_err(|_| DeployError::Closed)?;
        answer
            .await
            .map_err(|_| DeployError::Closed)?
            .map_err(DeployError::Refused)?;
        let view = lock(&handle.view).clone();
        Ok(view)
    }

    /// Each plan: its run in progress, what each target runs, its last run, its figures.
    pub async fn status(&self) -> Result<Vec<PlanStatus>, DeployError> {
        let mut out = Vec::new();
        for p in self.inner.settings.plans.values() {
            let active = match lock(&self.inner.active).get(&p.name) {
                Some(Slot::Running(h)) => Some(lock(&h.view).clone()),
                _ => None,
            };
            let targets = self.inner.store.deploy_targets(p.name.clone()).await?;
            let recent = self.history(Some(&p.name), history::FIGURES_OVER).await?;
            out.push(PlanStatus {
                plan: p.name.clone(),
                active,
                targets,
                figures: history::figures(&recent),
                last: recent.into_iter().find(|r| r.ended_at.is_some()),
            });
        }
        Ok(out)
    }

    /// The newest `limit` runs (of `plan`, or of every plan), newest first, each read back
    /// from its events.
    pub async fn history(
        &self,
        plan: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, DeployError> {
        let runs = self
            .inner
            .store
            .deploy_runs(plan.map(str::to_string), limit)
            .await?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            let events = self.inner.store.deploy_events(run.id).await?;
            let stages = self.stage_names(&run.plan);
            out.push(history::summarize(run, &events, stages));
        }
        Ok(out)
    }

    /// One run as its events tell it, and the events themselves (the journal, as recorded).
    pub async fn run_record(
        &self,
        id: u64,
    ) -> Result<Option<(RunSummary, Vec<DeployEvent>)>, DeployError> {
        let Some(run) = self.inner.store.deploy_run(id).await? else {
            return Ok(None);
        };
        let events = self.inner.store.deploy_events(run.id).await?;
        let stages = self.stage_names(&run.plan);
        Ok(Some((history::summarize(run, &events, stages), events)))
    }

    /// A plan's stage names in order (none for a plan no longer configured: its runs list the
    /// stages their events name).
    fn stage_names(&self, plan: &str) -> Vec<String> {
        self.inner
            .settings
            .plans
            .get(plan)
            .map(|p| p.stages.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The alerts deploys raised, newest first (`/api/v1/deploy/audit-trail`).
    pub async fn alerts(&self, limit: usize) -> Result<Vec<DeployEvent>, DeployError> {
        Ok(self
            .inner
            .store
            .deploy_events_of_kind("alert".into(), limit)
            .await?)
    }

    /// Progress of every run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// The secret of `plan`'s push webhook, and the branch it deploys (none: no hook).
    pub fn hook(&self, plan: &str) -> Result<Option<settings::Hook>, DeployError> {
        Ok(self.plan(plan)?.hook.clone())
    }

    /// Stop every runner: commands still running are killed (an engine started again runs
    /// them again), nothing else is lost — every decision is in the journal.
    pub fn stop(&self) {
        self.inner.tasks.stop();
    }
}

/// One plan's state, for `/api/v1/deploy/status`.
#[derive(Debug, Clone)]
pub struct PlanStatus {
    pub plan: String,
    pub active: Option<RunView>,
    /// The version each target runs.
    pub targets: BTreeMap<String, String>,
    pub last: Option<RunSummary>,
    pub figures: history::Figures,
}

pub use history::Figures;

/// The version a run deploys: the one given (a ref resolved in the plan's repository, or taken
/// as it is without one), else the plan's ref.
async fn resolve(p: &Plan, version: Option<&str>) -> Result<String, DeployError> {
    let Some(git) = &p.git else {
        let v = version.ok_or_else(|| {
            DeployError::Invalid(Invalid::new(
                "missing_version",
                "version",
                format!(
                    "plan {:?} takes its version from the run: give one (--version)",
                    p.name
                ),
            ))
        })?;
        return plan::version("version", v).map_err(DeployError::Invalid);
    };
    let reference = plan::version("version", version.unwrap_or(&git.reference))
        .map_err(DeployError::Invalid)?;
    let argv = vec![
        "git".to_string(),
        "-C".to_string(),
        git.repo.display().to_string(),
        "rev-parse".to_string(),
        "--verify".to_string(),
        "--quiet".to_string(),
        format!("{reference}^{{commit}}"),
    ];
    let unresolved = |why: String| DeployError::Unresolved {
        version: reference.clone(),
        why,
    };
    let ran = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        crate::support::run_program(&argv, &[], None, 4096),
    )
    .await
    .map_err(|_| unresolved("git did not answer within 30 s".into()))?
    .map_err(|e| unresolved(format!("cannot run git: {e}")))?;
    if !ran.status.success() {
        return Err(unresolved(format!(
            "no commit by that name in {}",
            git.repo.display()
        )));
    }
    let commit = String::from_utf8_lossy(&ran.stdout).trim().to_string();
    plan::version("version", &commit).map_err(DeployError::Invalid)
}

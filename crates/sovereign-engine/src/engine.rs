//! The composition root: starts every capability in dependency order, holds their handles,
//! and on shutdown stops them in reverse order and waits for every task it started.
//!
//! No business logic lives here: only wiring (which handle goes where) and the order of start
//! and stop. Capabilities never see this file; they get the handles they need.

use std::time::Duration;

use serde_json::json;
use sovereign_store::{Store, StoreError};

use crate::access::Access;
use crate::audit::Audit;
use crate::config::Settings;
use crate::deploy::Deploy;
use crate::executor::{Executor, ExecutorError};
use crate::handlers;
use crate::notify::Notifier;
use crate::supervisor::{self, Supervisor};
use crate::support::Tasks;
use crate::trading::signals::Signals;
use crate::trading::{ReplayError, Trading};
use crate::truth::TruthSource;
use crate::webhooks::Webhooks;

/// Why the engine could not start, named for what failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the store could not be read ({what}): {source}")]
    Store {
        what: &'static str,
        source: StoreError,
    },
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
    #[error("the trading journal could not be replayed: {0}")]
    Journal(ReplayError),
    #[error("the tasks could not be loaded: {0}")]
    Tasks(ExecutorError),
}

fn reading(what: &'static str) -> impl Fn(StoreError) -> StartError {
    move |source| StartError::Store { what, source }
}

/// The running engine: one handle per capability.
pub struct Engine {
    settings: Settings,
    store: Store,
    tasks: Tasks,
    audit: Audit,
    access: Access,
    notifier: Notifier,
    truth: TruthSource,
    supervisor: Supervisor,
    trading: Trading,
    signals: Signals,
    executor: Executor,
    webhooks: Webhooks,
    deploy: Deploy,
    /// One stop signal per capability, stopped in reverse order of start.
    stops: Stops,
}

/// The stop signals the root fires one at a time (children of its own).
struct Stops {
    truth: Tasks,
    trading: Tasks,
    wiring: Tasks,
    deploy: Tasks,
}

impl Engine {
    /// Start every capability: audit and notify first (everyone reports through them), then
    /// Truth, trading, the executor (with its handlers), webhook intake, and the supervisor.
    pub async fn start(settings: Settings, store: Store) -> Result<Engine, StartError> {
        // The TLS crypto provider for every outgoing connection (webhooks, alert channels,
        // SMTP); installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tasks = Tasks::new();
        let audit = Audit::new(store.clone(), tasks.clone());
        let access = Access::start(
            settings.access.clone(),
            settings.server.is_loopback(),
            store.clone(),
            audit.clone(),
            tasks.child(),
        )
        .await
        .map_err(reading("the API keys"))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("sovereign/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StartError::HttpClient(crate::support::error_chain(&e)))?;

        let stops = Stops {
            truth: tasks.child(),
            trading: tasks.child(),
            wiring: tasks.child(),
            deploy: tasks.child(),
        };
        let notifier = Notifier::start(
            settings.notify.clone(),
            store.clone(),
            audit.clone(),
            http.clone(),
            &settings.data_dir,
            tasks.child(),
        )
        .await
        .map_err(reading("the alert outbox"))?;

        let truth = TruthSource::start(
            settings.truth.clone(),
            store.clone(),
            audit.clone(),
            stops.truth.clone(),
        )
        .await;
        // `access.sso.secret_from = "component.key"` reads the version of Truth in force.
        let secrets = truth.clone();
        access.read_secrets_with(Box::new(move |reference| {
            let (component, key) = reference.split_once('.')?;
            secrets.env(component).0.get(key).cloned()
        }));
        let (trading, replayed) = Trading::start(
            settings.trading.clone(),
            store.clone(),
            notifier.clone(),
            audit.clone(),
            stops.trading.clone(),
        )
        .await
        .map_err(StartError::Journal)?;
        if replayed > 0 {
            tracing::info!(events = replayed, "trading state rebuilt from the journal");
        }
        let signals = Signals::new(
            settings.signals.clone(),
            trading.clone(),
            audit.clone(),
            notifier.clone(),
        );

        let handler_context = handlers::Context::new(
            trading.clone(),
            notifier.clone(),
            settings.handlers.clone(),
            settings.listeners(),
        )
        .map_err(|e| StartError::HttpClient(crate::support::error_chain(&e)))?;
        let executor = Executor::start(
            settings.executor.clone(),
            store.clone(),
            audit.clone(),
            notifier.clone(),
            handler_context,
            tasks.child(),
        )
        .await
        .map_err(StartError::Tasks)?;
        let webhooks = Webhooks::start(
            settings.webhooks.clone(),
            settings.requires_known_source(),
            store.clone(),
            audit.clone(),
            executor.clone(),
        )
        .await
        .map_err(reading("recent webhook deliveries"))?;

        let left_running = Deploy::unfinished(&store)
            .await
            .map_err(reading("the deploy runs"))?;
        // Services start last: they are the only part that starts processes, so no failure of
        // the start can leave one running.
        let env_source = truth.clone();
        let supervisor = Supervisor::start(
            settings.supervisor.clone(),
            supervisor::Context {
                audit: audit.clone(),
                tasks: tasks.child(),
                notifier: notifier.clone(),
                http: http.clone(),
                data_dir: settings.data_dir.clone(),
                engine_url: settings.url.clone(),
                truth_env: std::sync::Arc::new(move |component: &str| {
                    let (vars, secrets) = env_source.env(component);
                    supervisor::InjectedEnv { vars, secrets }
                }),
            },
        );
        // Deploys last: a run an earlier engine left unfinished goes on, with every service up.
        let deploy = Deploy::start(
            settings.deploy.clone(),
            left_running,
            store.clone(),
            audit.clone(),
            notifier.clone(),
            supervisor.clone(),
            http,
            stops.deploy.clone(),
        );
        // Services whose component changed restart (when their policy says so).
        let mut changes = truth.subscribe();
        let restarter = supervisor.clone();
        let wiring = stops.wiring.clone();
        stops.wiring.spawn(async move {
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(change) => restarter.truth_changed(change.diff.affected(&change.truth.components)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = wiring.stopped() => return,
                }
            }
        });

        let config = settings
            .source
            .as_ref()
            .map(|(path, sha256)| json!({"path": path, "sha256": sha256}));
        audit.record(
            "engine",
            "engine.started",
            json!({"version": env!("CARGO_PKG_VERSION"), "config": config, "tasks": executor.count(), "trading_events_replayed": replayed}),
        );
        Ok(Engine {
            settings,
            store,
            tasks,
            audit,
            access,
            notifier,
            truth,
            supervisor,
            trading,
            signals,
            executor,
            webhooks,
            deploy,
            stops,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    pub fn trading(&self) -> &Trading {
        &self.trading
    }

    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    pub fn truth(&self) -> &TruthSource {
        &self.truth
    }

    pub fn deploy(&self) -> &Deploy {
        &self.deploy
    }

    /// Stop in reverse order of dependency: no new runs (in-flight ones get `grace`, then are
    /// canceled and recorded; the services they may call are still up), services dependents
    /// first, the trading actor after what was queued, the Truth watcher, the alert workers
    /// (pending alerts stay in the outbox). Then wait for every task the engine started, and
    /// close the store. Returns how many tasks
    /// were still running when `wait` ran out (0 when every one finished).
    pub async fn shutdown(&self, grace: Duration, wait: Duration) -> usize {
        if let Err(e) = self
            .audit
            .record_durably("engine", "engine.stopping", json!({}))
            .await
        {
            tracing::warn!(error = %e, "engine.stopping not recorded");
        }
        self.executor.shutdown(grace).await;
        // Deploy runners first: their journals say what to do again at the next start.
        self.stops.deploy.stop();
        self.stops.wiring.stop();
        self.supervisor.shutdown().await;
        self.stops.trading.stop();
        self.trading.stop().await;
        self.stops.truth.stop();
        self.notifier.stop();
        self.tasks.stop();
        let left = match tokio::time::timeout(wait, self.tasks.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tasks.running(),
        };
        self.store.close().await;
        left
    }
}

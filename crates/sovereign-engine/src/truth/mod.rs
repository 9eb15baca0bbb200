//! Truth in the engine: read `DIR/node.json` and `DIR/components/*.json`, build the document
//! (`sovereign_core::truth`), keep the version in force, put each new version in the store and
//! on the audit trail, and watch the files for changes.
//!
//! A change that does not build leaves the version in force as it is and says why (the log,
//! `GET /api/truth`, the audit trail). At start, when the files do not build, the version last
//! in force (from the store) is used.
//!
//! The watcher polls file names, sizes and times on the blocking pool (never `std::fs` on the
//! async runtime) and ends when told to stop.

pub mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sovereign_core::truth::{build, Truth, TruthDiff, TruthFile};
use sovereign_store::Store;
use tokio::sync::broadcast;

use crate::audit::Audit;
use crate::support::{lock_read, lock_write, Tasks};
use settings::TruthSettings;

/// Read the files of a Truth directory (sorted, so messages come in a stable order).
pub fn read_dir(dir: &Path) -> Result<(TruthFile, Vec<TruthFile>), Vec<String>> {
    let node_path = dir.join("node.json");
    let node = std::fs::read_to_string(&node_path)
        .map(|text| TruthFile {
            path: node_path.display().to_string(),
            text,
        })
        .map_err(|e| vec![format!("{}: cannot read: {e}", node_path.display())])?;
    let comp_dir = dir.join("components");
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&comp_dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(vec![format!("{}: cannot read: {e}", comp_dir.display())]),
    };
    paths.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(text) => files.push(TruthFile {
                path: p.display().to_string(),
                text,
            }),
            Err(e) => problems.push(format!("{}: cannot read: {e}", p.display())),
        }
    }
    if problems.is_empty() {
        Ok((node, files))
    } else {
        Err(problems)
    }
}

/// Read and build a Truth directory.
pub fn load(dir: &Path) -> Result<Truth, Vec<String>> {
    let (node, components) = read_dir(dir)?;
    build(&node, &components)
}

/// The document as stored: node and component bodies, secrets included (the store is as
/// private as the files).
fn stored(t: &Truth) -> Value {
    json!({
        "node": t.node,
        "components": t.components.iter().map(|(k, c)| (k.clone(), c.body.clone())).collect::<Map<_, _>>(),
    })
}

/// Rebuild a stored document.
fn from_stored(doc: &Value) -> Result<Truth, Vec<String>> {
    let node = TruthFile {
        path: "store:node.json".into(),
        text: doc["node"].to_string(),
    };
    let components: Vec<TruthFile> = doc["components"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| TruthFile {
            path: format!("store:components/{k}.json"),
            text: v.to_string(),
        })
        .collect();
    build(&node, &components)
}

/// A new version was put in force.
#[derive(Debug, Clone)]
pub struct TruthChange {
    pub truth: Arc<Truth>,
    pub diff: TruthDiff,
}

/// What `GET /api/truth` shows.
#[derive(Debug, Clone, Default)]
pub struct TruthState {
    pub dir: Option<PathBuf>,
    pub truth: Option<Arc<Truth>>,
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last change that was refused, and why (cleared by the next good version).
    pub rejected: Option<(DateTime<Utc>, Vec<String>)>,
}

/// The engine's Truth. Cheap to clone.
#[derive(Clone)]
pub struct TruthSource {
    state: Arc<RwLock<TruthState>>,
    changes: broadcast::Sender<TruthChange>,
    audit: Audit,
}

impl TruthSource {
    /// Load the directory (or nothing), and watch it every `interval` until `tasks` stop.
    pub async fn start(
        settings: TruthSettings,
        store: Store,
        audit: Audit,
        tasks: Tasks,
    ) -> TruthSource {
        let TruthSettings { dir, interval } = settings;
        let source = TruthSource {
            state: Arc::new(RwLock::new(TruthState {
                dir: dir.clone(),
                ..TruthState::default()
            })),
            changes: broadcast::channel(16).0,
            audit,
        };
        let Some(dir) = dir else {
            return source;
        };
        match load_blocking(dir.clone()).await {
            Ok(t) => source.put(t, &store).await,
            Err(problems) => {
                let previous = store.latest_truth().await.ok().flatten();
                match previous.map(|(_, at, doc)| (at, from_stored(&doc))) {
                    Some((at, Ok(t))) => {
                        tracing::error!(problems = %problems.join("; "), version = %t.version, "Truth files do not build; the version last in force stays");
                        let mut s = source.write();
                        s.truth = Some(Arc::new(t));
                        s.loaded_at = Some(at);
                    }
                    _ => {
                        tracing::error!(problems = %problems.join("; "), "Truth files do not build; no Truth in force")
                    }
                }
                source.reject(problems).await;
            }
        }
        let watcher = source.clone();
        let stop = tasks.clone();
        tasks.spawn(async move { watcher.watch(dir, interval, store, stop).await });
        source
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, TruthState> {
        lock_write(&self.state)
    }

    pub fn state(&self) -> TruthState {
        lock_read(&self.state).clone()
    }

    /// A component's environment in the version in force (empty when there is none).
    /// A component's `env` variables, and which of their values are secrets (a secret-looking
    /// key, or one the component lists in `secrets`).
    pub fn env(&self, component: &str) -> (BTreeMap<String, String>, Vec<String>) {
        let state = lock_read(&self.state);
        let Some(c) = state
            .truth
            .as_ref()
            .and_then(|t| t.components.get(component))
        else {
            return Default::default();
        };
        let secrets = c
            .env
            .iter()
            .filter(|(k, _)| sovereign_core::redact::is_secret_key(k) || c.secrets.contains(*k))
            .map(|(_, v)| v.clone())
            .collect();
        (c.env.clone(), secrets)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<TruthChange> {
        self.changes.subscribe()
    }

    /// Keep the version in force and say why the change was refused: on the audit trail
    /// (durable before anyone can read the refusal from the API), then in the state.
    async fn reject(&self, problems: Vec<String>) {
        self.record("truth.rejected", json!({"problems": problems}))
            .await;
        self.write().rejected = Some((Utc::now(), problems));
    }

    /// Put a Truth event on the audit trail and wait until it is durable.
    async fn record(&self, kind: &str, payload: Value) {
        if let Err(e) = self.audit.record_durably("engine", kind, payload).await {
            tracing::error!(error = %e, kind, "Truth audit record not written");
        }
    }

    /// Put `t` in force if it is a new version: store, audit trail, subscribers.
    async fn put(&self, t: Truth, store: &Store) {
        let previous = self.state().truth;
        if previous.as_ref().is_some_and(|p| p.version == t.version) {
            self.write().rejected = None;
            return;
        }
        let now = Utc::now();
        if let Err(e) = store.put_truth(t.version.clone(), now, stored(&t)).await {
            tracing::error!(error = %e, "Truth version not stored");
        }
        let diff = match &previous {
            Some(p) => t.diff(p),
            None => TruthDiff {
                added: t.components.keys().cloned().collect(),
                ..TruthDiff::default()
            },
        };
        self.record(
            "truth.changed",
            json!({
                "version": t.version,
                "previous": previous.as_ref().map(|p| p.version.clone()),
                "node_changed": diff.node_changed,
                "added": diff.added, "removed": diff.removed, "changed": diff.changed,
            }),
        )
        .await;
        tracing::info!(version = %t.version, added = ?diff.added, removed = ?diff.removed, changed = ?diff.changed, "Truth version in force");
        let truth = Arc::new(t);
        {
            let mut s = self.write();
            s.truth = Some(truth.clone());
            s.loaded_at = Some(now);
            s.rejected = None;
        }
        if previous.is_some() {
            let _ = self.changes.send(TruthChange { truth, diff });
        }
    }

    /// Poll the files' names, sizes and times; rebuild when they change; end when told to.
    async fn watch(self, dir: PathBuf, interval: Duration, store: Store, tasks: Tasks) {
        let mut seen = fingerprint_blocking(dir.clone()).await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = tasks.stopped() => return,
            }
            let now = fingerprint_blocking(dir.clone()).await;
            if now == seen {
                continue;
            }
            seen = now;
            match load_blocking(dir.clone()).await {
                Ok(t) => self.put(t, &store).await,
                Err(problems) => {
                    tracing::error!(problems = %problems.join("; "), "Truth change refused; the version in force stays");
                    self.reject(problems).await;
                }
            }
        }
    }
}

/// [`load`] on the blocking pool.
async fn load_blocking(dir: PathBuf) -> Result<Truth, Vec<String>> {
    tokio::task::spawn_blocking(move || load(&dir))
        .await
        .unwrap_or_else(|e| Err(vec![format!("reading the Truth files failed: {e}")]))
}

/// [`fingerprint`] on the blocking pool.
async fn fingerprint_blocking(dir: PathBuf) -> Fingerprint {
    tokio::task::spawn_blocking(move || fingerprint(&dir))
        .await
        .unwrap_or_default()
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let entry = |p: PathBuf| {
        let m = std::fs::metadata(&p).ok();
        let len = m.as_ref().map_or(0, |m| m.len());
        let modified = m.and_then(|m| m.modified().ok());
        (p, len, modified)
    };
    let mut out = vec![entry(dir.join("node.json"))];
    if let Ok(entries) = std::fs::read_dir(dir.join("components")) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        out.extend(paths.into_iter().map(entry));
    }
    out
}

//! Deploy history: one row per run (what was asked: plan, version, who, the versions the
//! targets had before), and each run's events, append-only (the inputs its state machine was
//! fed, in order, and what happened: commands, measurements, phases, alerts). Nothing here is
//! ever updated or deleted: a run's state, and what each target runs now, are read from its
//! events.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde_json::Value;

use super::{corrupt, from_micros, Sqlite, WriteOp};
use crate::records::{DeployEvent, DeployRun};
use crate::StoreError;

/// Version 9 of the schema.
pub(super) const MIGRATION: &str = "CREATE TABLE deploy_runs (
        id INTEGER PRIMARY KEY,
        plan TEXT NOT NULL,
        kind TEXT NOT NULL,
        version TEXT NOT NULL,
        trigger TEXT NOT NULL,
        actor TEXT NOT NULL,
        previous TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX deploy_runs_by_plan ON deploy_runs (plan, id);
    CREATE TABLE deploy_events (
        run_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX deploy_events_by_kind ON deploy_events (kind, run_id);";

/// Writes of the deploy history.
pub(crate) enum DeployOp {
    /// A new run; its id is the write's answer.
    Run(DeployRun),
    Event(DeployEvent),
}

pub(super) fn apply(c: &Connection, op: &DeployOp) -> Result<u64, StoreError> {
    match op {
        DeployOp::Run(r) => {
            let previous = serde_json::to_string(&r.previous).unwrap_or_else(|_| "{}".into());
            c.prepare_cached(
                "INSERT INTO deploy_runs (plan, kind, version, trigger, actor, previous, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.plan,
                r.kind,
                r.version,
                r.trigger,
                r.actor,
                previous,
                r.created_at.timestamp_micros()
            ])?;
            Ok(c.last_insert_rowid() as u64)
        }
        DeployOp::Event(e) => {
            c.prepare_cached(
                "INSERT INTO deploy_events (run_id, seq, at, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                e.run_id as i64,
                e.seq as i64,
                e.at.timestamp_micros(),
                e.kind,
                e.body.to_string()
            ])?;
            Ok(1)
        }
    }
}

const RUN_COLUMNS: &str = "id, plan, kind, version, trigger, actor, previous, created_at";

fn run_row(r: &rusqlite::Row) -> Result<DeployRun, rusqlite::Error> {
    let id: i64 = r.get(0)?;
    let previous: String = r.get(6)?;
    Ok(DeployRun {
        id: id as u64,
        plan: r.get(1)?,
        kind: r.get(2)?,
        version: r.get(3)?,
        trigger: r.get(4)?,
        actor: r.get(5)?,
        previous: serde_json::from_str(&previous).unwrap_or_default(),
        created_at: from_micros(r.get(7)?),
    })
}

fn event_row(r: &rusqlite::Row) -> Result<(i64, i64, i64, String, String), rusqlite::Error> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn event_of(
    (run_id, seq, at, kind, body): (i64, i64, i64, String, String),
) -> Result<DeployEvent, StoreError> {
    let body: Value =
        serde_json::from_str(&body).map_err(|e| corrupt(&format!("{run_id}/{seq}"), "body", e))?;
    Ok(DeployEvent {
        run_id: run_id as u64,
        seq: seq as u64,
        at: from_micros(at),
        kind,
        body,
    })
}

/// The newest `limit` runs (of `plan`, or of every plan), newest first.
fn runs(c: &Connection, plan: Option<&str>, limit: usize) -> Result<Vec<DeployRun>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM deploy_runs WHERE ?1 IS NULL OR plan = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![plan, limit as i64], run_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn run(c: &Connection, id: u64) -> Result<Option<DeployRun>, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(c.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM deploy_runs WHERE id = ?1"
    ))?
    .query_row(params![id as i64], run_row)
    .optional()?)
}

/// Runs with no `end` event, oldest first.
fn unfinished(c: &Connection) -> Result<Vec<DeployRun>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM deploy_runs r WHERE NOT EXISTS \
         (SELECT 1 FROM deploy_events e WHERE e.run_id = r.id AND e.kind = 'end') ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], run_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn events(c: &Connection, run_id: u64) -> Result<Vec<DeployEvent>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT run_id, seq, at, kind, body FROM deploy_events WHERE run_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map(params![run_id as i64], event_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(event_of).collect()
}

/// The newest `limit` events of `kind` across runs, newest first.
fn events_of_kind(
    c: &Connection,
    kind: &str,
    limit: usize,
) -> Result<Vec<DeployEvent>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT run_id, seq, at, kind, body FROM deploy_events WHERE kind = ?1 \
         ORDER BY run_id DESC, seq DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![kind, limit as i64], event_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(event_of).collect()
}

/// What each target of `plan` runs: the version of its last `target` event (a deploy or a
/// rollback that succeeded), across the plan's runs.
fn targets(c: &Connection, plan: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT e.body FROM deploy_events e JOIN deploy_runs r ON r.id = e.run_id \
         WHERE r.plan = ?1 AND e.kind = 'target' ORDER BY e.run_id, e.seq",
    )?;
    let bodies = stmt
        .query_map(params![plan], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = BTreeMap::new();
    for b in bodies {
        let v: Value = serde_json::from_str(&b).map_err(|e| corrupt(plan, "target", e))?;
        if let (Some(t), Some(ver)) = (v["target"].as_str(), v["version"].as_str()) {
            out.insert(t.to_string(), ver.to_string());
        }
    }
    Ok(out)
}

impl Sqlite {
    pub(crate) async fn insert_deploy_run(&self, run: DeployRun) -> Result<u64, StoreError> {
        self.write(WriteOp::Deploy(DeployOp::Run(run))).await
    }

    pub(crate) fn append_deploy_event(
        &self,
        event: DeployEvent,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let write = self.queue_write(WriteOp::Deploy(DeployOp::Event(event)));
        async move { write.await.map(|_| ()) }
    }

    pub(crate) async fn deploy_runs(
        &self,
        plan: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeployRun>, StoreError> {
        self.read(move |c| runs(c, plan.as_deref(), limit)).await
    }

    pub(crate) async fn deploy_run(&self, id: u64) -> Result<Option<DeployRun>, StoreError> {
        self.read(move |c| run(c, id)).await
    }

    pub(crate) async fn unfinished_deploy_runs(&self) -> Result<Vec<DeployRun>, StoreError> {
        self.read(unfinished).await
    }

    pub(crate) async fn deploy_events(&self, run_id: u64) -> Result<Vec<DeployEvent>, StoreError> {
        self.read(move |c| events(c, run_id)).await
    }

    pub(crate) async fn deploy_events_of_kind(
        &self,
        kind: String,
        limit: usize,
    ) -> Result<Vec<DeployEvent>, StoreError> {
        self.read(move |c| events_of_kind(c, &kind, limit)).await
    }

    pub(crate) async fn deploy_targets(
        &self,
        plan: String,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(move |c| targets(c, &plan)).await
    }
}

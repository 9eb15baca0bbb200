//! Runs read back from their events: what each stage did (when it began and passed, which
//! targets were deployed, failed or rolled back, every measurement of every check), how the run
//! ended and why; and the figures over a plan's recent runs (success rate, rollback rate, mean
//! duration per stage, check pass rate per target). Nothing here is stored: the events are the
//! record.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sovereign_store::{DeployEvent, DeployRun};

/// Runs the figures are taken over.
pub const FIGURES_OVER: usize = 100;

#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run as it was asked for (it started when it was made).
    pub run: DeployRun,
    pub ended_at: Option<DateTime<Utc>>,
    /// The phase it is in, or ended in.
    pub outcome: String,
    pub reason: Option<String>,
    pub stages: Vec<StageSummary>,
}

impl RunSummary {
    pub fn duration_ms(&self) -> Option<u64> {
        self.ended_at.map(|e| millis(self.run.created_at, e))
    }

    /// Whether it rolled any target back.
    pub fn rolled_back_any(&self) -> bool {
        self.stages.iter().any(|s| !s.rolled_back.is_empty())
    }
}

#[derive(Debug, Clone, Default)]
pub struct StageSummary {
    pub name: String,
    pub started_at: Option<DateTime<Utc>>,
    /// When its gate passed (or it was promoted).
    pub passed_at: Option<DateTime<Utc>>,
    pub deployed: Vec<String>,
    pub failed: Vec<String>,
    pub rolled_back: Vec<String>,
    pub rollback_failed: Vec<String>,
    pub checks: Vec<CheckSummary>,
}

impl StageSummary {
    pub fn duration_ms(&self) -> Option<u64> {
        Some(millis(self.started_at?, self.passed_at?))
    }
}

#[derive(Debug, Clone)]
pub struct CheckSummary {
    pub check: String,
    pub target: Option<String>,
    pub severity: String,
    pub measurements: Vec<MeasurementRecord>,
}

#[derive(Debug, Clone)]
pub struct MeasurementRecord {
    pub at: DateTime<Utc>,
    pub outcome: String,
    pub detail: String,
}

/// Figures over recent runs; rates are `None` before any run ended.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub runs: usize,
    pub success_rate: Option<f64>,
    pub rollback_rate: Option<f64>,
    /// Mean time from a stage's first deploy to its gate passing, by stage.
    pub stage_mean_ms: BTreeMap<String, u64>,
    /// Successful measurements over all measurements of each target's checks (a stage's own
    /// checks under `stage:NAME`).
    pub check_pass_rate: BTreeMap<String, f64>,
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_milliseconds().max(0) as u64
}

fn text(v: &Value, k: &str) -> Option<String> {
    v[k].as_str().map(str::to_string)
}

/// Fold a run's events into its summary.
pub fn summarize(run: DeployRun, events: &[DeployEvent], stage_names: Vec<String>) -> RunSummary {
    let mut stages: Vec<StageSummary> = stage_names
        .into_iter()
        .map(|name| StageSummary {
            name,
            ..StageSummary::default()
        })
        .collect();
    let mut s = RunSummary {
        run,
        ended_at: None,
        outcome: "pending".into(),
        reason: None,
        stages: Vec::new(),
    };
    let stage_of = |stages: &mut Vec<StageSummary>, name: Option<String>| -> Option<usize> {
        let name = name?;
        match stages.iter().position(|st| st.name == name) {
            Some(i) => Some(i),
            None => {
                stages.push(StageSummary {
                    name,
                    ..StageSummary::default()
                });
                Some(stages.len() - 1)
            }
        }
    };
    for e in events {
        let b = &e.body;
        match e.kind.as_str() {
            "phase" => {
                if let Some(phase) = text(b, "phase") {
                    if let Some(i) = stage_of(&mut stages, text(b, "stage")) {
                        match phase.as_str() {
                            "deploying" if stages[i].started_at.is_none() => {
                                stages[i].started_at = Some(e.at)
                            }
                            "promoting" => stages[i].passed_at = Some(e.at),
                            _ => {}
                        }
                    }
                    s.outcome = phase;
                    s.reason = text(b, "reason");
                }
            }
            "command" if b["started"].is_null() => {
                let (Some(i), Some(target)) =
                    (stage_of(&mut stages, text(b, "stage")), text(b, "target"))
                else {
                    continue;
                };
                let ok = b["ok"].as_bool() == Some(true);
                let list = match (b["action"].as_str(), ok) {
                    (Some("deploy"), true) => &mut stages[i].deployed,
                    (Some("deploy"), false) => &mut stages[i].failed,
                    (_, true) => &mut stages[i].rolled_back,
                    (_, false) => &mut stages[i].rollback_failed,
                };
                list.push(target);
            }
            "measurement" => {
                let Some(i) = stage_of(&mut stages, text(b, "stage")) else {
                    continue;
                };
                let (check, target) = (text(b, "check").unwrap_or_default(), text(b, "target"));
                let checks = &mut stages[i].checks;
                let at = match checks
                    .iter()
                    .position(|c| c.check == check && c.target == target)
                {
                    Some(at) => at,
                    None => {
                        checks.push(CheckSummary {
                            check,
                            target,
                            severity: text(b, "severity").unwrap_or_default(),
                            measurements: Vec::new(),
                        });
                        checks.len() - 1
                    }
                };
                checks[at].measurements.push(MeasurementRecord {
                    at: e.at,
                    outcome: text(b, "outcome").unwrap_or_default(),
                    detail: text(b, "detail").unwrap_or_default(),
                });
            }
            "end" => {
                s.ended_at = Some(e.at);
                if let Some(phase) = text(b, "phase") {
                    s.outcome = phase;
                }
                s.reason = text(b, "reason");
            }
            _ => {}
        }
    }
    s.stages = stages;
    s
}

/// The figures over `runs` (those that ended count).
pub fn figures(runs: &[RunSummary]) -> Figures {
    let ended: Vec<&RunSummary> = runs.iter().filter(|r| r.ended_at.is_some()).collect();
    let rate = |n: usize| (!ended.is_empty()).then(|| n as f64 / ended.len() as f64);
    let mut stage_times: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut checks: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &ended {
        for st in &r.stages {
            if let Some(ms) = st.duration_ms() {
                let e = stage_times.entry(st.name.clone()).or_default();
                e.0 += ms;
                e.1 += 1;
            }
            for c in &st.checks {
                let key = c
                    .target
                    .clone()
                    .unwrap_or_else(|| format!("stage:{}", st.name));
                let e = checks.entry(key).or_default();
                e.0 += c
                    .measurements
                    .iter()
                    .filter(|m| m.outcome == "success")
                    .count() as u64;
                e.1 += c.measurements.len() as u64;
            }
        }
    }
    Figures {
        runs: ended.len(),
        success_rate: rate(ended.iter().filter(|r| r.outcome == "succeeded").count()),
        rollback_rate: rate(ended.iter().filter(|r| r.rolled_back_any()).count()),
        stage_mean_ms: stage_times
            .into_iter()
            .map(|(k, (sum, n))| (k, sum / n.max(1)))
            .collect(),
        check_pass_rate: checks
            .into_iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(k, (ok, n))| (k, ok as f64 / n as f64))
            .collect(),
    }
}

//! `sovereign deploy run|status|history|promote|pause|resume|abort|rollback`: staged rollouts
//! through a running engine.
//!
//! `run` and `rollback` start a run and, with `--wait`, follow it to its end (exit 0 when it
//! succeeded, 1 otherwise, naming how it ended and why).

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{block_on, Api, ClientArgs, Reported, EXIT_FAILURE};

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Start a run of PLAN: canary, primary, full, each gated on its checks.
    Run {
        plan: String,
        /// A git ref (resolved in the plan's repository) or, for a plan without one, the
        /// version itself; default: the plan's ref.
        #[arg(long)]
        version: Option<String>,
        /// Follow the run to its end; exit 1 unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Each plan: the run in progress, what each target runs, the last run, its figures.
    Status,
    /// Recent runs, newest first: version, outcome, stages, why it rolled back.
    History {
        /// Only this plan.
        plan: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Pass the stage being verified now (`--full`: and skip every later gate).
    Promote {
        plan: String,
        #[arg(long)]
        full: bool,
    },
    /// Hold the run: no new deploys; a gate stops measuring.
    Pause { plan: String },
    /// Go on with a paused run (a gate is measured again from scratch).
    Resume { plan: String },
    /// Roll back everything the run deployed.
    Abort { plan: String },
    /// Roll every target of PLAN back to VERSION now, last stage first, without gates.
    Rollback {
        plan: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        wait: bool,
    },
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One line for a run in progress, then its targets.
fn run_table(v: &Value) -> String {
    let mut out = format!(
        "run {} of {}: {} {} — {}{}{}\n",
        text(&v["id"]),
        text(&v["plan"]),
        text(&v["kind"]),
        text(&v["version"]),
        text(&v["phase"]),
        v["stage"]
            .as_str()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default(),
        v["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default(),
    );
    for t in v["targets"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<12} {:<16} {}\n",
            text(&t["stage"]),
            text(&t["target"]),
            text(&t["state"])
        ));
    }
    for c in v["gate"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  check {:<20} {:<10} {} {} ok / {} failed / {} errors  {}\n",
            text(&c["check"]),
            text(&c["target"]),
            text(&c["severity"]),
            text(&c["successes"]),
            text(&c["failures"]),
            text(&c["errors"]),
            text(&c["last"])
        ));
    }
    out
}

fn status_table(v: &Value) -> String {
    let plans = v["plans"].as_array().cloned().unwrap_or_default();
    if plans.is_empty() {
        return "no deploy plans configured\n".into();
    }
    let mut out = String::new();
    for p in plans {
        let f = &p["figures"];
        out.push_str(&format!(
            "{}: {}; last run {} ({}); success rate {}, rollback rate {} over {} runs\n",
            text(&p["plan"]),
            p["active"]["phase"]
                .as_str()
                .map(|ph| format!("run {} {ph}", text(&p["active"]["id"])))
                .unwrap_or_else(|| "idle".into()),
            text(&p["last"]["version"]),
            text(&p["last"]["outcome"]),
            text(&f["success_rate"]),
            text(&f["rollback_rate"]),
            text(&f["runs"])
        ));
        for (target, version) in p["targets"].as_object().into_iter().flatten() {
            out.push_str(&format!("  {target:<16} {}\n", text(version)));
        }
        if !p["active"].is_null() {
            out.push_str(&run_table(&p["active"]));
        }
    }
    out
}

fn history_table(v: &Value) -> String {
    let runs = v["runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        return "no runs yet\n".into();
    }
    let mut out = format!(
        "{:>5}  {:<12} {:<14} {:<18} {:>9}  {:<20} REASON\n",
        "RUN", "PLAN", "VERSION", "OUTCOME", "DURATION", "STARTED"
    );
    for r in runs {
        let version: String = text(&r["version"]).chars().take(14).collect();
        out.push_str(&format!(
            "{:>5}  {:<12} {:<14} {:<18} {:>9}  {:<20} {}\n",
            text(&r["id"]),
            text(&r["plan"]),
            version,
            text(&r["outcome"]),
            r["duration_ms"]
                .as_u64()
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            text(&r["started_at"]).chars().take(19).collect::<String>(),
            text(&r["reason"])
        ));
    }
    out
}

pub fn run(cmd: DeployCommand, client: &ClientArgs) -> anyhow::Result<()> {
    block_on(async {
        let api = Api::new(client);
        let (post, get) = (reqwest::Method::POST, reqwest::Method::GET);
        let (answer, table, wait): (Value, fn(&Value) -> String, bool) = match cmd {
            DeployCommand::Run {
                plan,
                version,
                wait,
            } => (
                api.call(
                    post,
                    "/api/v1/deploy/run",
                    Some(json!({"plan": plan, "version": version})),
                )
                .await?,
                run_table,
                wait,
            ),
            DeployCommand::Rollback { plan, to, wait } => (
                api.call(
                    post,
                    &format!("/api/v1/deploy/{plan}/rollback"),
                    Some(json!({"to": to})),
                )
                .await?,
                run_table,
                wait,
            ),
            DeployCommand::Status => (
                api.call(get, "/api/v1/deploy/status", None).await?,
                status_table,
                false,
            ),
            DeployCommand::History { plan, limit } => {
                let q = match plan {
                    Some(p) => format!("?limit={limit}&plan={p}"),
                    None => format!("?limit={limit}"),
                };
                (
                    api.call(get, &format!("/api/v1/deploy/history{q}"), None)
                        .await?,
                    history_table,
                    false,
                )
            }
            DeployCommand::Promote { plan, full } => (
                api.call(
                    post,
                    &format!("/api/v1/deploy/{plan}/promote"),
                    Some(json!({"full": full})),
                )
                .await?,
                run_table,
                false,
            ),
            DeployCommand::Pause { plan } => (
                api.call(post, &format!("/api/v1/deploy/{plan}/pause"), None)
                    .await?,
                run_table,
                false,
            ),
            DeployCommand::Resume { plan } => (
                api.call(post, &format!("/api/v1/deploy/{plan}/resume"), None)
                    .await?,
                run_table,
                false,
            ),
            DeployCommand::Abort { plan } => (
                api.call(post, &format!("/api/v1/deploy/{plan}/abort"), None)
                    .await?,
                run_table,
                false,
            ),
        };
        if !wait {
            if client.json {
                outln!("{answer}");
            } else {
                out!("{}", table(&answer));
            }
            return Ok(());
        }
        // Follow the run until it is in the history with an end.
        let id = answer["id"].as_u64().unwrap_or_default();
        let plan = text(&answer["plan"]);
        loop {
            let h = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/deploy/history?plan={plan}&limit=20"),
                    None,
                )
                .await?;
            let ended = h["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"].as_u64() == Some(id) && !r["ended_at"].is_null())
                .cloned();
            if let Some(r) = ended {
                if client.json {
                    outln!("{r}");
                } else {
                    out!("{}", history_table(&json!({"runs": [r.clone()]})));
                }
                return match r["outcome"].as_str() {
                    Some("succeeded") => Ok(()),
                    other => Err(Reported {
                        exit: EXIT_FAILURE,
                        line: format!(
                            "run {id} ended {}: {}",
                            other.unwrap_or("?"),
                            text(&r["reason"])
                        ),
                    }
                    .into()),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
}

//! The command-line client of a running engine: `tasks`, `results`, `status`.
//!
//! Talks HTTP to `--url`; prints tables for people and, with `--json`, the API's JSON for
//! scripts. An API error becomes one line on stderr and a non-zero exit.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Base URL of the running engine.
    #[arg(
        long,
        env = "SOVEREIGN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// List tasks with their last and next run.
    List,
    /// Register a task.
    Register {
        /// Task id.
        task_id: String,
        /// Human name (defaults to the id).
        #[arg(long)]
        name: Option<String>,
        /// Handler: log_signal, http_request or command.
        #[arg(long, default_value = "log_signal")]
        handler: String,
        /// Handler payload as JSON.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Schedule as JSON, e.g. '{"every":"15m"}' or '{"cron":"0 25 9 * * MON-FRI","tz":"America/New_York"}'.
        #[arg(long)]
        schedule: Option<String>,
        /// Register it disabled.
        #[arg(long)]
        disabled: bool,
        /// Read the whole task (the /register body) from a JSON file instead.
        #[arg(long, conflicts_with_all = ["name", "payload", "schedule"])]
        file: Option<PathBuf>,
    },
    /// Run a task now and print its result.
    Execute {
        task_id: String,
        /// Trigger data as JSON (templates see it as trigger.data).
        #[arg(long)]
        data: Option<String>,
    },
    /// Delete a task.
    Rm { task_id: String },
    /// Enable a task.
    Enable { task_id: String },
    /// Disable a task (it keeps its history; schedules and webhooks stop running it).
    Disable { task_id: String },
}

#[derive(Args, Clone)]
pub struct ResultsArgs {
    /// Only this task's results.
    #[arg(long = "task")]
    pub task_id: Option<String>,
    /// How many (default 20).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only results started at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub enum Request {
    Tasks(TasksCommand),
    Results(ResultsArgs),
    Status,
}

pub fn run(request: Request, args: &ClientArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let api = Api {
            base: args.url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        };
        let (value, table): (Value, fn(&Value) -> String) = match request {
            Request::Status => (
                api.call(reqwest::Method::GET, "/status", None).await?,
                status_table,
            ),
            Request::Results(r) => {
                let mut path = format!("/results?limit={}", r.limit);
                if let Some(t) = &r.task_id {
                    path.push_str(&format!("&task_id={}", encode(t)));
                }
                if let Some(s) = &r.since {
                    path.push_str(&format!("&since={}", encode(s)));
                }
                (
                    api.call(reqwest::Method::GET, &path, None).await?,
                    results_table,
                )
            }
            Request::Tasks(cmd) => tasks(&api, cmd).await?,
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            print!("{}", table(&value));
        }
        Ok(())
    })
}

async fn tasks(api: &Api, cmd: TasksCommand) -> anyhow::Result<(Value, fn(&Value) -> String)> {
    use reqwest::Method;
    Ok(match cmd {
        TasksCommand::List => (api.call(Method::GET, "/tasks", None).await?, tasks_table),
        TasksCommand::Register {
            task_id,
            name,
            handler,
            payload,
            schedule,
            disabled,
            file,
        } => {
            let body = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let mut v: Value = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", path.display()))?;
                    v["task_id"] = json!(task_id);
                    v
                }
                None => {
                    let payload: Value =
                        serde_json::from_str(&payload).context("--payload is not valid JSON")?;
                    let mut body = json!({
                        "task_id": task_id,
                        "name": name.unwrap_or_else(|| task_id.clone()),
                        "handler": handler,
                        "payload": payload,
                        "enabled": !disabled,
                    });
                    if let Some(s) = schedule {
                        body["schedule"] =
                            serde_json::from_str(&s).context("--schedule is not valid JSON")?;
                    }
                    body
                }
            };
            let task = api.call(Method::POST, "/register", Some(body)).await?;
            (json!({"tasks": [task]}), tasks_table)
        }
        TasksCommand::Execute { task_id, data } => {
            let mut body = json!({ "task_id": task_id });
            if let Some(d) = data {
                body["data"] = serde_json::from_str(&d).context("--data is not valid JSON")?;
            }
            let result = api.call(Method::POST, "/execute", Some(body)).await?;
            (json!({"results": [result]}), results_table)
        }
        TasksCommand::Rm { task_id } => {
            api.call(
                Method::DELETE,
                &format!("/api/tasks/{}", encode(&task_id)),
                None,
            )
            .await?;
            (json!({"deleted": task_id}), |v| {
                format!("deleted {}\n", v["deleted"].as_str().unwrap_or_default())
            })
        }
        TasksCommand::Enable { task_id } => {
            let t = api
                .call(
                    Method::POST,
                    &format!("/api/tasks/{}/enable", encode(&task_id)),
                    None,
                )
                .await?;
            (json!({"tasks": [t]}), tasks_table)
        }
        TasksCommand::Disable { task_id } => {
            let t = api
                .call(
                    Method::POST,
                    &format!("/api/tasks/{}/disable", encode(&task_id)),
                    None,
                )
                .await?;
            (json!({"tasks": [t]}), tasks_table)
        }
    })
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the engine at {}: {}",
                self.base,
                root_cause(&e)
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| anyhow!("HTTP {status}: {}", text.trim()))?
        };
        if status.is_success() {
            return Ok(value);
        }
        let err = &value["error"];
        let field = err["field"]
            .as_str()
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        Err(anyhow!(
            "{}: {}{field}",
            err["code"].as_str().unwrap_or("http_error"),
            err["message"].as_str().unwrap_or(status.as_str())
        ))
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Render rows as a left-aligned table with a header.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn schedule_text(v: &Value) -> String {
    if let Some(c) = v["cron"].as_str() {
        let tz = v["tz"].as_str().unwrap_or("UTC");
        match v["calendar"].as_str() {
            Some(cal) => format!("cron {c} {tz} [{cal}]"),
            None => format!("cron {c} {tz}"),
        }
    } else if let Some(e) = v["every"].as_str() {
        format!("every {e}")
    } else if let Some(a) = v["at"].as_str() {
        format!("at {a}")
    } else {
        "-".into()
    }
}

fn tasks_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["tasks"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|t| {
            vec![
                s(&t["task_id"]),
                s(&t["handler"]),
                if t["enabled"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                schedule_text(&t["schedule"]),
                s(&t["last_run"]["status"]),
                s(&t["next_run"]),
            ]
        })
        .collect();
    table(
        &["TASK", "HANDLER", "ENABLED", "SCHEDULE", "LAST", "NEXT RUN"],
        &rows,
    )
}

fn results_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["results"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                s(&r["started_at"]),
                s(&r["task_id"]),
                s(&r["trigger"]),
                s(&r["status"]),
                format!("{} ms", s(&r["duration_ms"])),
                s(&r["attempt"]),
                r["error"].as_str().unwrap_or("").chars().take(60).collect(),
            ]
        })
        .collect();
    table(
        &[
            "STARTED", "TASK", "TRIGGER", "STATUS", "DURATION", "ATTEMPT", "ERROR",
        ],
        &rows,
    )
}

fn status_table(v: &Value) -> String {
    let rows = vec![
        vec!["version".into(), s(&v["version"])],
        vec!["uptime".into(), format!("{} s", s(&v["uptime_s"]))],
        vec![
            "tasks".into(),
            format!(
                "{} ({} enabled, {} running)",
                s(&v["tasks"]["total"]),
                s(&v["tasks"]["enabled"]),
                s(&v["tasks"]["running"])
            ),
        ],
        vec![
            "scheduled".into(),
            format!(
                "{} (next {})",
                s(&v["scheduler"]["scheduled_tasks"]),
                s(&v["scheduler"]["next_fire"])
            ),
        ],
        vec!["results".into(), s(&v["store"]["results"])],
        vec!["webhooks".into(), s(&v["store"]["webhooks"])],
        vec!["store".into(), s(&v["store"]["location"])],
    ];
    let text = table(&["", ""], &rows);
    // The two-column key/value view needs no header line.
    text.split_once('\n')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(text)
}

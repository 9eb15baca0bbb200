//! The command-line client of a running engine: `tasks`, `results`, `status`, and the trading
//! commands (`orders`, `order`, `cancel`, `positions`, `fills`, `accounts`, `hardstop`, `resume`,
//! `flatten`).
//!
//! Talks HTTP to `--url`; prints tables for people and, with `--json`, the API's JSON for
//! scripts. An API error becomes one line on stderr and a non-zero exit ([`Reported`] carries
//! the exact line and exit code when it is not the generic `error: …`). No trading logic here:
//! the engine validates and decides; this only builds requests and renders answers.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

/// Exit code of a failure other than a risk denial.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of an order denied by pre-trade risk (HTTP 422).
pub const EXIT_DENIED: u8 = 3;

/// The exit codes of the order commands, for their `--help`.
pub const ORDER_EXIT_CODES: &str = "Exit codes:
  0  accepted: the order row is printed (filled, working, or the earlier order with the same
     --client-order-id)
  1  any other failure: engine unreachable, invalid order (HTTP 400), or rejected by the
     venue (the row is printed, and `rejected: <code>: <reason>` on stderr)
  2  bad command-line arguments
  3  denied by pre-trade risk (HTTP 422): `denied: <code>: <message>` on stderr; with --json
     the engine's answer ({\"order\", \"error\"}) is still printed on stdout";

/// A failure already phrased as the one line to print (as is, on stderr) and its exit code.
#[derive(Debug)]
pub struct Reported {
    pub exit: u8,
    pub line: String,
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Reported {}

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
    /// The API key to send (`Authorization: Bearer …`); needed when the engine asks for keys.
    #[arg(long, env = "SOVEREIGN_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
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
    Trading(Trading),
}

/// How an answer is shown without `--json`.
type Table = fn(&Value) -> String;

/// Run `work` on a fresh single-threaded runtime: the client commands are sequential.
pub(crate) fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(work)
}

pub fn run(request: Request, args: &ClientArgs) -> anyhow::Result<()> {
    block_on(async {
        let api = Api::new(args);
        let (value, table, failure): (Value, Table, Option<Reported>) = match request {
            Request::Status => (
                api.call(reqwest::Method::GET, "/status", None).await?,
                status_table,
                None,
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
                    None,
                )
            }
            Request::Tasks(cmd) => {
                let executed = matches!(cmd, TasksCommand::Execute { .. });
                let (value, table) = tasks(&api, cmd).await?;
                // A run that did not succeed is a failed command (exit 1), with the table.
                let failure = executed
                    .then(|| &value["results"][0])
                    .filter(|r| r["status"] != "success")
                    .map(|r| Reported {
                        exit: EXIT_FAILURE,
                        line: format!(
                            "run {}: {}",
                            r["status"].as_str().unwrap_or("unknown"),
                            r["error"].as_str().unwrap_or("no reason given")
                        ),
                    });
                (value, table, failure)
            }
            Request::Trading(cmd) => trading(&api, cmd).await?,
        };
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            out!("{}", table(&value));
        }
        match failure {
            Some(f) => Err(f.into()),
            None => Ok(()),
        }
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

/// An HTTP client of one engine.
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
    /// The Unix socket every request goes through, when not `base`'s address.
    socket: Option<PathBuf>,
}

impl Api {
    pub(crate) fn new(client: &ClientArgs) -> Api {
        Api {
            base: client.url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            key: client.api_key.clone(),
            socket: None,
        }
    }

    /// Through the Unix socket at `path` (the data dir's), with no key: the engine trusts
    /// whoever can reach it.
    #[cfg(unix)]
    pub(crate) fn unix(path: &std::path::Path) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .unix_socket(path)
            .build()
            .map_err(|e| {
                anyhow!(
                    "cannot reach the engine through {}: {}",
                    path.display(),
                    root_cause(&e)
                )
            })?;
        Ok(Api {
            base: "http://localhost".into(),
            http,
            key: None,
            socket: Some(path.to_path_buf()),
        })
    }

    /// Where the engine is, as error lines name it.
    fn place(&self) -> String {
        match &self.socket {
            Some(path) => format!("through {}", path.display()),
            None => format!("at {}", self.base),
        }
    }

    /// The answer's status and JSON body, whatever the status. `Err` only when the engine
    /// cannot be reached or answers something that is not JSON.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the engine {}: {}",
                self.place(),
                root_cause(&e)
            )
        })?;
        let status = resp.status();
        if !resp.headers().contains_key(sovereign_http::ENGINE_HEADER) {
            return Err(match &self.socket {
                Some(path) => anyhow!(
                    "{} is not a Sovereign engine's socket (HTTP {status} without the {} header)",
                    path.display(),
                    sovereign_http::ENGINE_HEADER
                ),
                None => anyhow!(
                    "{} is not a Sovereign engine (HTTP {status} without the {} header); check --url",
                    self.base,
                    sovereign_http::ENGINE_HEADER
                ),
            });
        }
        let text = resp.text().await.unwrap_or_default();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| anyhow!("HTTP {status}: {}", text.trim()))?
        };
        Ok((status, value))
    }

    /// The JSON body of a successful answer; any other answer becomes its error line.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.send(method, path, body).await?;
        if status.is_success() {
            return Ok(value);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED && self.key.is_none() {
            return Err(anyhow!(
                "{} (pass --api-key or set SOVEREIGN_API_KEY)",
                error_text(status, &value)
            ));
        }
        Err(anyhow!(error_text(status, &value)))
    }
}

/// An API error body as one line: `code: message (field f)`.
pub(crate) fn error_text(status: reqwest::StatusCode, value: &Value) -> String {
    let err = &value["error"];
    let field = err["field"]
        .as_str()
        .map(|f| format!(" (field {f})"))
        .unwrap_or_default();
    format!(
        "{}: {}{field}",
        err["code"].as_str().unwrap_or("http_error"),
        err["message"].as_str().unwrap_or(status.as_str())
    )
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

pub(crate) fn encode(s: &str) -> String {
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
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

// ----- trading ------------------------------------------------------------------------------

#[derive(Args, Clone)]
pub struct OrdersArgs {
    /// Only orders in this status (e.g. accepted, filled, canceled, denied).
    #[arg(long)]
    pub status: Option<String>,
    /// Only orders in this symbol.
    #[arg(long)]
    pub symbol: Option<String>,
    /// How many, newest first (the engine's default is 1000).
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Tif {
    Day,
    Gtc,
    Ioc,
    Fok,
}

#[derive(Args, Clone)]
pub struct OrderArgs {
    /// Buy or sell.
    pub side: Side,
    /// Instrument, e.g. ES.
    pub symbol: String,
    /// Quantity as exact decimal text, e.g. 2.
    pub qty: String,
    /// Limit price: a limit order (with --stop, a stop-limit order).
    #[arg(long, value_name = "PRICE")]
    pub limit: Option<String>,
    /// Stop (trigger) price: a stop order (with --limit, a stop-limit order).
    #[arg(long, value_name = "PRICE")]
    pub stop: Option<String>,
    /// Time in force (the engine's default is day).
    #[arg(long, value_enum)]
    pub tif: Option<Tif>,
    /// One account; without it (or with `all`), every account.
    #[arg(long)]
    pub account: Option<String>,
    /// Makes the submission idempotent: the same id answers with the existing order.
    #[arg(long, value_name = "ID")]
    pub client_order_id: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone)]
pub struct FillsArgs {
    /// How many, newest first (the engine's default is 1000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only this account's fills.
    #[arg(long)]
    pub account: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone)]
pub struct StateArgs {
    /// Why (kept in the journal); required.
    #[arg(long)]
    pub reason: String,
    /// One account; without it (or with `all`), every account.
    #[arg(long)]
    pub account: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone)]
pub struct HardstopArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Also close every position at market once halted (at NinjaTrader too: the gateways
    /// view says when its position files read flat).
    #[arg(long)]
    pub flatten: bool,
}

/// The trading commands, as parsed.
pub enum Trading {
    Gateways,
    /// Reconcile the account's gateway now; `true`: take the venue's positions.
    Reconcile(String, bool),
    Orders(OrdersArgs),
    Order(OrderArgs),
    Cancel(String),
    Positions(Option<String>),
    Fills(FillsArgs),
    Accounts,
    Hardstop(HardstopArgs),
    Resume(StateArgs),
    /// Close every position of the account (`None`: all), with a reason for the audit trail.
    Flatten(Option<String>, Option<String>),
    CancelAll(Option<String>),
}

/// The `POST /api/orders` body; the order type follows from which prices are given.
fn order_body(o: &OrderArgs) -> Value {
    let order_type = match (&o.limit, &o.stop) {
        (None, None) => "market",
        (Some(_), None) => "limit",
        (None, Some(_)) => "stop",
        (Some(_), Some(_)) => "stop_limit",
    };
    let side = match o.side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    };
    let mut body = json!({"symbol": o.symbol, "side": side, "qty": o.qty, "type": order_type});
    let optional = [
        ("limit_price", o.limit.clone()),
        ("stop_price", o.stop.clone()),
        ("account", o.account.clone()),
        ("client_order_id", o.client_order_id.clone()),
        (
            "tif",
            o.tif.map(|t| {
                match t {
                    Tif::Day => "day",
                    Tif::Gtc => "gtc",
                    Tif::Ioc => "ioc",
                    Tif::Fok => "fok",
                }
                .to_string()
            }),
        ),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            body[key] = json!(v);
        }
    }
    body
}

/// `{"account": A}` or `{}`.
fn account_body(account: Option<String>) -> Value {
    match account {
        Some(a) => json!({ "account": a }),
        None => json!({}),
    }
}

/// A query string from the parameters that are set (`""` when none is).
fn query(params: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

/// An order the engine stored but did not take: denied by risk or rejected by the venue.
fn refusal(order: &Value) -> Option<Reported> {
    let status = order["status"].as_str()?;
    let exit = match status {
        "denied" => EXIT_DENIED,
        "rejected" => EXIT_FAILURE,
        _ => return None,
    };
    Some(Reported {
        exit,
        line: format!(
            "{status}: {}: {}",
            s(&order["reject_code"]),
            s(&order["reject_reason"])
        ),
    })
}

async fn trading(api: &Api, cmd: Trading) -> anyhow::Result<(Value, Table, Option<Reported>)> {
    use reqwest::Method;
    Ok(match cmd {
        Trading::Orders(o) => {
            let path = format!(
                "/api/orders{}",
                query(&[
                    ("status", o.status),
                    ("symbol", o.symbol),
                    ("limit", o.limit.map(|n| n.to_string())),
                ])
            );
            (
                api.call(Method::GET, &path, None).await?,
                orders_table,
                None,
            )
        }
        Trading::Order(o) => {
            let (status, body) = api
                .send(Method::POST, "/api/orders", Some(order_body(&o)))
                .await?;
            if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
                let err = &body["error"];
                let denied = Reported {
                    exit: EXIT_DENIED,
                    line: format!("denied: {}: {}", s(&err["code"]), s(&err["message"])),
                };
                // The stored order goes to --json readers; people get the one line.
                (body, |_| String::new(), Some(denied))
            } else if status.is_success() {
                let failure = refusal(&body);
                (body, order_table, failure)
            } else {
                return Err(anyhow!(error_text(status, &body)));
            }
        }
        Trading::Cancel(id) => (
            api.call(
                Method::DELETE,
                &format!("/api/orders/{}", encode(&id)),
                None,
            )
            .await?,
            order_table,
            None,
        ),
        Trading::Positions(account) => (
            api.call(
                Method::GET,
                &format!("/api/positions{}", query(&[("account", account)])),
                None,
            )
            .await?,
            positions_table,
            None,
        ),
        Trading::Fills(f) => {
            let path = format!(
                "/api/fills{}",
                query(&[
                    ("account", f.account),
                    ("limit", f.limit.map(|n| n.to_string())),
                ])
            );
            (api.call(Method::GET, &path, None).await?, fills_table, None)
        }
        Trading::Accounts => (
            api.call(Method::GET, "/api/accounts", None).await?,
            accounts_table,
            None,
        ),
        Trading::Hardstop(a) => {
            let mut body = state_body(a.state);
            if a.flatten {
                body["flatten"] = json!(true);
            }
            let out = api
                .call(Method::POST, "/api/risk/hardstop", Some(body))
                .await?;
            let failure = out["flattened"]
                .as_array()
                .and_then(|list| list.iter().find_map(refusal));
            (out, state_table, failure)
        }
        Trading::Gateways => (
            api.call(Method::GET, "/api/gateways", None).await?,
            gateways_table,
            None,
        ),
        Trading::Reconcile(account, adopt) => {
            let all = api.call(Method::GET, "/api/gateways", None).await?;
            let name = list(&all, "gateways")
                .iter()
                .find(|g| g["account"] == account.as_str())
                .map(|g| s(&g["name"]))
                .ok_or_else(|| {
                    anyhow!("no gateway trades account {account:?} (sovereign gateways lists them)")
                })?;
            let out = api
                .call(
                    Method::POST,
                    &format!("/api/gateways/{}/reconcile", encode(&name)),
                    Some(json!({ "adopt_venue": adopt })),
                )
                .await?;
            (out, reconcile_table, None)
        }
        Trading::Resume(a) => (
            api.call(Method::POST, "/api/risk/resume", Some(state_body(a)))
                .await?,
            state_table,
            None,
        ),
        Trading::CancelAll(account) => (
            api.call(
                Method::POST,
                "/api/orders/cancel-all",
                Some(account_body(account)),
            )
            .await?,
            canceled_table,
            None,
        ),
        Trading::Flatten(account, reason) => {
            let mut request = account_body(account);
            if let Some(reason) = reason {
                request["reason"] = json!(reason);
            }
            let body = api
                .call(Method::POST, "/api/positions/flatten", Some(request))
                .await?;
            // A closing order that did not go through leaves a position open: say so.
            let failure = body["orders"]
                .as_array()
                .and_then(|list| list.iter().find_map(refusal));
            (body, flatten_table, failure)
        }
    })
}

fn state_body(a: StateArgs) -> Value {
    let mut body = account_body(a.account);
    body["reason"] = json!(a.reason);
    body
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(|a| a.as_slice()).unwrap_or_default()
}

/// Limit and stop prices in one cell: `5020`, `stop 5030`, `5031 stop 5030`, `-` (market).
fn price_text(o: &Value) -> String {
    match (o["limit_price"].as_str(), o["stop_price"].as_str()) {
        (Some(l), Some(st)) => format!("{l} stop {st}"),
        (Some(l), None) => l.to_string(),
        (None, Some(st)) => format!("stop {st}"),
        (None, None) => "-".into(),
    }
}

fn order_rows(orders: &[Value]) -> String {
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                s(&o["id"]),
                s(&o["account"]),
                s(&o["symbol"]),
                s(&o["side"]),
                s(&o["qty"]),
                s(&o["type"]),
                price_text(o),
                s(&o["tif"]),
                s(&o["status"]),
                s(&o["filled_qty"]),
                s(&o["avg_fill_price"]),
            ]
        })
        .collect();
    table(
        &[
            "ID", "ACCOUNT", "SYMBOL", "SIDE", "QTY", "TYPE", "PRICE", "TIF", "STATUS", "FILLED",
            "AVG",
        ],
        &rows,
    )
}

fn orders_table(v: &Value) -> String {
    order_rows(list(v, "orders"))
}

fn order_table(v: &Value) -> String {
    order_rows(std::slice::from_ref(v))
}

fn flatten_table(v: &Value) -> String {
    if list(v, "orders").is_empty() {
        return "nothing to flatten\n".into();
    }
    orders_table(v)
}

fn positions_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v, "positions")
        .iter()
        .map(|p| {
            vec![
                s(&p["account"]),
                s(&p["symbol"]),
                s(&p["qty"]),
                s(&p["avg_price"]),
                s(&p["last_price"]),
                s(&p["unrealized_pnl"]),
                s(&p["realized_pnl"]),
            ]
        })
        .collect();
    table(
        &[
            "ACCOUNT",
            "SYMBOL",
            "QTY",
            "AVG",
            "LAST",
            "UNREALIZED",
            "REALIZED",
        ],
        &rows,
    )
}

fn fills_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v, "fills")
        .iter()
        .map(|f| {
            vec![
                s(&f["at"]),
                s(&f["order_id"]),
                s(&f["account"]),
                s(&f["symbol"]),
                s(&f["side"]),
                s(&f["qty"]),
                s(&f["price"]),
                s(&f["commission"]),
                s(&f["realized_pnl"]),
            ]
        })
        .collect();
    table(
        &[
            "AT",
            "ORDER",
            "ACCOUNT",
            "SYMBOL",
            "SIDE",
            "QTY",
            "PRICE",
            "COMMISSION",
            "REALIZED",
        ],
        &rows,
    )
}

fn gateway_rows(gateways: &[Value]) -> String {
    let rows: Vec<Vec<String>> = gateways
        .iter()
        .map(|g| {
            vec![
                s(&g["name"]),
                s(&g["kind"]),
                s(&g["account"]),
                s(&g["venue_account"]),
                s(&g["connection"]),
                s(&g["reconciliation"]),
                list(g, "unknown_orders").len().to_string(),
                s(&g["last_report_at"]),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "KIND",
            "ACCOUNT",
            "VENUE ACCOUNT",
            "CONNECTION",
            "POSITIONS",
            "UNKNOWN",
            "LAST REPORT",
        ],
        &rows,
    )
}

fn gateways_table(v: &Value) -> String {
    gateway_rows(list(v, "gateways"))
}

/// The gateway, then each position that differs.
fn reconcile_table(v: &Value) -> String {
    let mut text = gateway_rows(std::slice::from_ref(v));
    let rows: Vec<Vec<String>> = list(v, "mismatches")
        .iter()
        .map(|m| {
            vec![
                s(&m["symbol"]),
                m["instruments"]
                    .as_array()
                    .map(|i| i.iter().map(s).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                s(&m["engine_qty"]),
                s(&m["venue_qty"]),
                s(&m["venue_avg_price"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        text.push_str("positions agree\n");
    } else {
        text.push_str(&table(
            &["SYMBOL", "INSTRUMENT", "ENGINE", "VENUE", "VENUE AVG"],
            &rows,
        ));
    }
    text
}

fn accounts_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v, "accounts")
        .iter()
        .map(|a| {
            vec![
                s(&a["account"]),
                s(&a["trading_state"]),
                s(&a["cash"]),
                s(&a["equity"]),
                s(&a["unrealized_pnl"]),
                s(&a["day_pnl"]),
                s(&a["gross_exposure"]),
                s(&a["open_orders"]),
                s(&a["currency"]),
            ]
        })
        .collect();
    table(
        &[
            "ACCOUNT",
            "STATE",
            "CASH",
            "EQUITY",
            "UNREALIZED",
            "DAY P&L",
            "EXPOSURE",
            "OPEN ORDERS",
            "CURRENCY",
        ],
        &rows,
    )
}

/// `paper: halted`, or `paper: halted (unchanged)` when it already was.
/// One line per account: its state, and the working orders the change canceled.
fn state_table(v: &Value) -> String {
    list(v, "accounts")
        .iter()
        .map(|a| {
            let unchanged = if a["changed"].as_bool() == Some(false) {
                " (unchanged)"
            } else {
                ""
            };
            let canceled = list(a, "canceled");
            let canceled = if canceled.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = canceled.iter().map(s).collect();
                format!("; canceled {}", ids.join(", "))
            };
            format!(
                "{}: {}{unchanged}{canceled}\n",
                s(&a["account"]),
                s(&a["trading_state"])
            )
        })
        .collect()
}

fn canceled_table(v: &Value) -> String {
    let ids: Vec<String> = list(v, "canceled").iter().map(s).collect();
    if ids.is_empty() {
        "no working orders\n".into()
    } else {
        format!("canceled {}\n", ids.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(limit: Option<&str>, stop: Option<&str>) -> OrderArgs {
        OrderArgs {
            side: Side::Sell,
            symbol: "ES".into(),
            qty: "2".into(),
            limit: limit.map(String::from),
            stop: stop.map(String::from),
            tif: None,
            account: None,
            client_order_id: None,
            client: ClientArgs {
                url: String::new(),
                json: false,
                api_key: None,
            },
        }
    }

    #[test]
    fn order_type_follows_the_prices_given() {
        // (limit, stop, type, body)
        let cases = [
            (None, None, "market", json!({})),
            (
                Some("5000.25"),
                None,
                "limit",
                json!({"limit_price": "5000.25"}),
            ),
            (None, Some("4990"), "stop", json!({"stop_price": "4990"})),
            (
                Some("4989.75"),
                Some("4990"),
                "stop_limit",
                json!({"limit_price": "4989.75", "stop_price": "4990"}),
            ),
        ];
        for (limit, stop, kind, prices) in cases {
            let mut want = json!({"symbol": "ES", "side": "sell", "qty": "2", "type": kind});
            for (k, v) in prices.as_object().into_iter().flatten() {
                want[k] = v.clone();
            }
            assert_eq!(order_body(&order(limit, stop)), want, "{limit:?} {stop:?}");
        }
    }

    #[test]
    fn optional_fields_are_sent_only_when_given() {
        let mut o = order(None, None);
        o.tif = Some(Tif::Ioc);
        o.account = Some("swing".into());
        o.client_order_id = Some("abc-1".into());
        assert_eq!(
            order_body(&o),
            json!({"symbol": "ES", "side": "sell", "qty": "2", "type": "market",
                   "tif": "ioc", "account": "swing", "client_order_id": "abc-1"})
        );
    }

    #[test]
    fn query_encodes_only_what_is_set() {
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("status", Some("filled".into())),
                ("x", None),
                ("symbol", Some("B&Q".into()))
            ]),
            "?status=filled&symbol=B%26Q"
        );
    }
}

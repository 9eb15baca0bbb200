//! `sovereign notify send|test|list|channels|enable`: alerts through a running engine.
//!
//! `test` sends one message on each channel (or `--channel`) at once and prints what each
//! answered; it exits 1 when any channel failed, naming it and the cause.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{block_on, Api, ClientArgs, Reported, EXIT_FAILURE};

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send a test message on every channel (or one), now, and report what each answered.
    Test {
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Raise an alert (routed by priority and source, like any other).
    Send {
        /// P0 (most urgent) to P3.
        #[arg(long, default_value = "P2")]
        priority: String,
        #[arg(long, default_value = "cli")]
        source: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        message: String,
        /// Alerts with the same key within the dedup window are sent once.
        #[arg(long)]
        dedup_key: Option<String>,
    },
    /// Recent alerts, newest first, with their delivery on each channel.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The configured channels and how they are doing.
    Channels,
    /// Re-enable a channel that was disabled because its webhook was gone.
    Enable { channel: String },
}

pub fn run(cmd: NotifyCommand, client: &ClientArgs) -> anyhow::Result<()> {
    block_on(async {
        let api = Api::new(client);
        let post = reqwest::Method::POST;
        let get = reqwest::Method::GET;
        let (answer, table): (Value, fn(&Value) -> String) = match cmd {
            NotifyCommand::Test { channel } => {
                let v = api
                    .call(post, "/api/alerts/test", Some(json!({"channel": channel})))
                    .await?;
                if !client.json {
                    out!("{}", test_table(&v));
                } else {
                    outln!("{v}");
                }
                return match failed(&v) {
                    None => Ok(()),
                    Some(line) => Err(Reported {
                        exit: EXIT_FAILURE,
                        line,
                    }
                    .into()),
                };
            }
            NotifyCommand::Send {
                priority,
                source,
                title,
                message,
                dedup_key,
            } => {
                let body = json!({"priority": priority, "source": source, "title": title,
                                  "message": message, "dedup_key": dedup_key});
                (
                    api.call(post, "/api/alerts", Some(body)).await?,
                    raised_line,
                )
            }
            NotifyCommand::List { limit } => (
                api.call(get, &format!("/api/alerts?limit={limit}"), None)
                    .await?,
                alerts_table,
            ),
            NotifyCommand::Channels => (
                api.call(get, "/api/alerts/channels", None).await?,
                channels_table,
            ),
            NotifyCommand::Enable { channel } => (
                api.call(
                    post,
                    &format!("/api/alerts/channels/{channel}/enable"),
                    None,
                )
                .await?,
                |v| format!("{}: enabled\n", v["name"].as_str().unwrap_or("")),
            ),
        };
        if client.json {
            outln!("{answer}");
        } else {
            out!("{}", table(&answer));
        }
        Ok(())
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The one error line of a failed test: every channel that failed, with its cause.
fn failed(v: &Value) -> Option<String> {
    let bad: Vec<String> = v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["ok"] != true)
        .map(|r| format!("{}: {}", text(&r["channel"]), text(&r["detail"])))
        .collect();
    (!bad.is_empty()).then(|| format!("notify test failed: {}", bad.join("; ")))
}

fn test_table(v: &Value) -> String {
    let rows = v["results"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no channels configured\n".into();
    }
    rows.iter()
        .map(|r| {
            let ok = if r["ok"] == true { "ok" } else { "FAILED" };
            format!(
                "{:<20} {:<6} {}\n",
                text(&r["channel"]),
                ok,
                text(&r["detail"])
            )
        })
        .collect()
}

fn raised_line(v: &Value) -> String {
    match v["status"].as_str() {
        Some("accepted") => {
            let channels: Vec<String> = v["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let digest = if v["digest"] == true {
                " (+ digest)"
            } else {
                ""
            };
            format!(
                "alert {} accepted → {}{digest}\n",
                text(&v["id"]),
                if channels.is_empty() {
                    "no channel".into()
                } else {
                    channels.join(", ")
                }
            )
        }
        _ => "duplicate: the same alert went out within the dedup window\n".into(),
    }
}

fn alerts_table(v: &Value) -> String {
    let mut out = format!(
        "{:<6} {:<24} {:<3} {:<12} {:<32} DELIVERIES\n",
        "ID", "AT", "P", "SOURCE", "TITLE"
    );
    for a in v["alerts"].as_array().into_iter().flatten() {
        let deliveries: Vec<String> = a["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| format!("{}={}", text(&d["channel"]), text(&d["status"])))
            .collect();
        let title: String = text(&a["title"]).chars().take(32).collect();
        out.push_str(&format!(
            "{:<6} {:<24} {:<3} {:<12} {:<32} {}\n",
            text(&a["id"]),
            text(&a["at"]).chars().take(24).collect::<String>(),
            text(&a["priority"]),
            text(&a["source"]),
            title,
            deliveries.join(" ")
        ));
    }
    out
}

fn channels_table(v: &Value) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:<9} {:>7} {:>9} {:>6}  TARGET\n",
        "NAME", "KIND", "STATE", "PENDING", "DELIVERED", "FAILED"
    );
    for c in v["channels"].as_array().into_iter().flatten() {
        let state = if c["disabled"].is_null() {
            "active"
        } else {
            "disabled"
        };
        out.push_str(&format!(
            "{:<16} {:<8} {:<9} {:>7} {:>9} {:>6}  {}\n",
            text(&c["name"]),
            text(&c["kind"]),
            state,
            text(&c["pending"]),
            text(&c["delivered"]),
            text(&c["failed"]),
            text(&c["target"])
        ));
    }
    out
}

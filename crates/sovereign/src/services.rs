//! `sovereign services`, `start|stop|restart NAME`, `logs NAME [-f]`: the supervised services of
//! a running engine.

use serde_json::Value;

use crate::client::{block_on, Api, ClientArgs};

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn uptime(v: &Value) -> String {
    match v.as_i64() {
        None => "-".into(),
        Some(ms) => {
            let s = ms / 1000;
            match s {
                0..=59 => format!("{s}s"),
                60..=3599 => format!("{}m{}s", s / 60, s % 60),
                _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
            }
        }
    }
}

fn table(v: &Value) -> String {
    let rows = v["services"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no services configured\n".into();
    }
    let mut out = format!(
        "{:<16} {:<10} {:>7} {:>8} {:>8}  {:<14} REASON\n",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH"
    );
    for s in rows {
        let health = match &s["health"] {
            Value::Null => "-".to_string(),
            h => format!("{} {}", text(&h["type"]), text(&h["last"])),
        };
        out.push_str(&format!(
            "{:<16} {:<10} {:>7} {:>8} {:>8}  {:<14} {}\n",
            text(&s["name"]),
            text(&s["state"]),
            text(&s["pid"]),
            uptime(&s["uptime_ms"]),
            text(&s["restarts"]),
            health.chars().take(14).collect::<String>(),
            text(&s["reason"])
        ));
    }
    out
}

pub fn list(client: &ClientArgs) -> anyhow::Result<()> {
    block_on(async {
        let v = Api::new(client)
            .call(reqwest::Method::GET, "/api/services", None)
            .await?;
        if client.json {
            outln!("{v}");
        } else {
            out!("{}", table(&v));
        }
        Ok(())
    })
}

/// `start`, `stop` or `restart` one service; prints its new state.
pub fn control(verb: &str, name: &str, client: &ClientArgs) -> anyhow::Result<()> {
    block_on(async {
        let v = Api::new(client)
            .call(
                reqwest::Method::POST,
                &format!("/api/services/{name}/{verb}"),
                None,
            )
            .await?;
        if client.json {
            outln!("{v}");
        } else {
            outln!(
                "{}: {} ({})",
                text(&v["name"]),
                text(&v["state"]),
                text(&v["reason"])
            );
        }
        Ok(())
    })
}

/// The last `tail` lines; with `follow`, then every new line until interrupted.
pub fn logs(name: &str, tail: usize, follow: bool, client: &ClientArgs) -> anyhow::Result<()> {
    block_on(async {
        let api = Api::new(client);
        // Subscribe first, so no line falls between the tail and the stream.
        let stream = if follow {
            let resp = reqwest::Client::new()
                .get(format!(
                    "{}/api/services/{name}/logs/stream",
                    client.url.trim_end_matches('/')
                ))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the engine at {}: {e}", client.url))?;
            Some(resp)
        } else {
            None
        };
        let v = api
            .call(
                reqwest::Method::GET,
                &format!("/api/services/{name}/logs?tail={tail}"),
                None,
            )
            .await?;
        let seen: Vec<String> = v["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        for line in &seen {
            outln!("{line}");
        }
        let Some(mut resp) = stream else {
            return Ok(());
        };
        // The stream starts at the subscription, so its first lines may repeat the tail's last
        // ones: skip the stream's prefix that matches a run at the end of the tail.
        let mut pending = String::new();
        let mut repeat: Option<usize> = None; // next tail index the stream should repeat
        let mut caught_up = seen.is_empty();
        while let Some(chunk) = resp.chunk().await? {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let Some(data) = line.trim_end().strip_prefix("data: ") else {
                    continue;
                };
                if !caught_up {
                    let next = match repeat {
                        None => seen.iter().position(|l| l == data),
                        Some(i) => (seen.get(i).map(String::as_str) == Some(data)).then_some(i),
                    };
                    match next {
                        Some(i) => {
                            repeat = Some(i + 1);
                            continue;
                        }
                        None => caught_up = true,
                    }
                }
                outln!("{data}");
            }
        }
        Ok(())
    })
}

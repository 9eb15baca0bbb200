//! `sovereign audit export|verify`: the audit trail as JSON lines, and its verification — of
//! the engine's stored trail (through the API) or of an exported file (offline, no engine).
//!
//! Exit codes: 0 intact, 4 tampered (the first changed, removed, inserted or reordered record is
//! named), 1 unreadable or malformed input.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::Value;
use sovereign_core::audit::{verify, AuditRecord};

use crate::client::{block_on, Api, ClientArgs, Reported};

/// Exit code of `audit verify` when the trail was tampered with.
pub const EXIT_TAMPERED: u8 = 4;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write every audit record as JSON lines (to --output, or stdout).
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check the hash chain: of FILE (an export; no engine needed), or of the engine's trail.
    /// With --head (a head file from `anchor audit`), the chain must also pass through that
    /// record with that hash. Exit 0 intact, 4 tampered, 1 unreadable.
    Verify {
        file: Option<PathBuf>,
        #[arg(long)]
        head: Option<PathBuf>,
    },
}

pub fn run(cmd: AuditCommand, client: &ClientArgs) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Export { output } => block_on(export(client, output)),
        AuditCommand::Verify {
            file: Some(path),
            head,
        } => verify_file(&path, head.as_deref()),
        AuditCommand::Verify {
            file: None,
            head: None,
        } => block_on(verify_engine(client)),
        AuditCommand::Verify {
            file: None,
            head: Some(head),
        } => {
            // Verify the engine's trail against an anchored head: export it first.
            let records = block_on(fetch_all(client))?;
            verify_records(&records, Some(&head))
        }
    }
}

async fn export(client: &ClientArgs, output: Option<PathBuf>) -> anyhow::Result<()> {
    let api = Api::new(client);
    let mut out: Box<dyn Write> = match &output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut since = 0u64;
    let mut written = 0usize;
    loop {
        let page = api
            .call(
                reqwest::Method::GET,
                &format!("/api/audit?since={since}&limit=10000"),
                None,
            )
            .await?;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        let Some(last) = records.last().and_then(|r| r["seq"].as_u64()) else {
            break;
        };
        for r in &records {
            writeln!(out, "{r}")?;
        }
        written += records.len();
        since = last;
    }
    out.flush()?;
    if let Some(p) = output {
        outln!("exported {written} audit records to {}", p.display());
    }
    Ok(())
}

fn parse_line(line: &str) -> Result<AuditRecord, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(format!("missing {k}"))
    };
    Ok(AuditRecord {
        seq: v.get("seq").and_then(Value::as_u64).ok_or("missing seq")?,
        at: DateTime::parse_from_rfc3339(&s("at")?)
            .map_err(|e| format!("at: {e}"))?
            .with_timezone(&Utc),
        actor: s("actor")?,
        kind: s("kind")?,
        payload: v.get("payload").cloned().ok_or("missing payload")?,
        prev: s("prev")?,
        hash: s("hash")?,
    })
}

/// The head of a trail as `anchor audit` writes it: `{"seq","hash","records","at"}`.
pub fn read_head(path: &std::path::Path) -> anyhow::Result<(u64, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an audit head file", path.display()))?;
    match (v["seq"].as_u64(), v["hash"].as_str()) {
        (Some(seq), Some(hash)) => Ok((seq, hash.to_string())),
        _ => Err(anyhow::anyhow!(
            "{} is not an audit head file (seq, hash)",
            path.display()
        )),
    }
}

/// Every record of the engine's trail, in order.
pub async fn fetch_all(client: &ClientArgs) -> anyhow::Result<Vec<AuditRecord>> {
    let api = Api::new(client);
    let mut out = Vec::new();
    loop {
        let since = out.last().map_or(0, |r: &AuditRecord| r.seq);
        let page = api
            .call(
                reqwest::Method::GET,
                &format!("/api/audit?since={since}&limit=10000"),
                None,
            )
            .await?;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            return Ok(out);
        }
        for r in records {
            out.push(
                parse_line(&r.to_string())
                    .map_err(|e| anyhow::anyhow!("the engine sent a bad record: {e}"))?,
            );
        }
    }
}

fn verify_records(records: &[AuditRecord], head: Option<&std::path::Path>) -> anyhow::Result<()> {
    let anchor = head.map(read_head).transpose()?;
    let anchor_ref = anchor.as_ref().map(|(s, h)| (*s, h.as_str()));
    report(
        verify(records, None, anchor_ref)
            .map(|h| (h.records, h.seq, h.hash))
            .map_err(|t| t.to_string()),
    )
}

fn verify_file(path: &PathBuf, head: Option<&std::path::Path>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r = parse_line(line).map_err(|e| Reported {
            exit: 1,
            line: format!("{}:{}: malformed audit record: {e}", path.display(), i + 1),
        })?;
        records.push(r);
    }
    verify_records(&records, head)
}

async fn verify_engine(client: &ClientArgs) -> anyhow::Result<()> {
    let api = Api::new(client);
    let v = api
        .call(reqwest::Method::GET, "/api/audit/verify", None)
        .await?;
    let verdict = if v["ok"].as_bool() == Some(true) {
        Ok((
            v["records"].as_u64().unwrap_or(0) as usize,
            v["head_seq"].as_u64().unwrap_or(0),
            v["head_hash"].as_str().unwrap_or("").to_string(),
        ))
    } else {
        Err(v["message"]
            .as_str()
            .unwrap_or("the trail does not verify")
            .to_string())
    };
    report(verdict)?;
    // The trading journal's head, behind the trail's.
    let journal = &v["journal"];
    match journal["head_seq"].as_u64() {
        Some(seq) => outln!(
            "ok: trading journal {} rows, head {seq} {}",
            journal["records"].as_u64().unwrap_or(0),
            journal["head_hash"].as_str().unwrap_or("")
        ),
        None => outln!("ok: the trading journal is empty"),
    }
    Ok(())
}

fn report(verdict: Result<(usize, u64, String), String>) -> anyhow::Result<()> {
    match verdict {
        Ok((0, _, _)) => {
            outln!("ok: the audit trail is empty");
            Ok(())
        }
        Ok((n, seq, hash)) => {
            outln!("ok: {n} records, head {seq} {hash}");
            Ok(())
        }
        Err(message) => Err(Reported {
            exit: EXIT_TAMPERED,
            line: format!("tampered: {message}"),
        }
        .into()),
    }
}

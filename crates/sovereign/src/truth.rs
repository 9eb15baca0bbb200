//! `sovereign truth build|show|diff`: the Truth files on this machine, and how they differ from
//! the version the engine has in force.
//!
//! `build` and `show` read the files (no engine needed); `show --reveal` prints secrets, for
//! whoever may read the files anyway. `diff` compares the files with the engine's version.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Subcommand;
use sovereign_core::truth::Truth;

use crate::client::{block_on, Api, ClientArgs};

#[derive(Subcommand)]
pub enum TruthCommand {
    /// Check the files and print the version they make.
    Build {
        /// Directory with node.json and components/.
        #[arg(long, default_value = "truth")]
        dir: PathBuf,
    },
    /// Print the document (or one component) built from the files; secrets masked unless
    /// --reveal.
    Show {
        component: Option<String>,
        #[arg(long, default_value = "truth")]
        dir: PathBuf,
        /// Print secret values too.
        #[arg(long)]
        reveal: bool,
    },
    /// Compare the files with the version the running engine has in force.
    Diff {
        #[arg(long, default_value = "truth")]
        dir: PathBuf,
    },
}

fn built(dir: &Path) -> anyhow::Result<Truth> {
    sovereign_engine::truth::load(dir).map_err(|problems| anyhow!("{}", problems.join("\n")))
}

pub fn run(cmd: TruthCommand, client: &ClientArgs) -> anyhow::Result<()> {
    match cmd {
        TruthCommand::Build { dir } => {
            let t = built(&dir)?;
            let names: Vec<&str> = t.components.keys().map(String::as_str).collect();
            outln!(
                "ok: {} (node {}, {} component(s): {})",
                t.version,
                t.node["name"].as_str().unwrap_or("?"),
                names.len(),
                names.join(", ")
            );
            Ok(())
        }
        TruthCommand::Show {
            component,
            dir,
            reveal,
        } => {
            let t = built(&dir)?;
            let view = t.view(reveal);
            let out = match component {
                None => view,
                Some(name) => {
                    let c = view["components"].get(&name).cloned();
                    c.ok_or_else(|| anyhow!("no component named {name:?} in {}", dir.display()))?
                }
            };
            outln!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        TruthCommand::Diff { dir } => {
            let local = built(&dir)?;
            block_on(async {
                let remote = Api::new(client)
                    .call(reqwest::Method::GET, "/api/truth", None)
                    .await?;
                let version = remote["version"].as_str();
                if version == Some(local.version.as_str()) {
                    outln!("same: {} is in force", local.version);
                    return Ok(());
                }
                outln!(
                    "engine: {}\nfiles:  {}",
                    version.unwrap_or("(none)"),
                    local.version
                );
                let hashes = remote["hashes"].as_object().cloned().unwrap_or_default();
                for (name, c) in &local.components {
                    match hashes.get(name).and_then(|h| h.as_str()) {
                        None => outln!("+ {name}"),
                        Some(h) if h != c.hash => outln!("~ {name}"),
                        Some(_) => {}
                    }
                }
                for name in hashes.keys().filter(|k| !local.components.contains_key(*k)) {
                    outln!("- {name}");
                }
                if remote["node_hash"].as_str() != Some(local.node_hash().as_str()) {
                    outln!("~ node");
                }
                Ok(())
            })
        }
    }
}

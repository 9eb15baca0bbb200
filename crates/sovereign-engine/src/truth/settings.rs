//! `[truth]`: where the Truth files are and how often they are checked, validated into
//! [`TruthSettings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sovereign_core::error::Invalid;
use sovereign_core::schedule::parse_duration;

/// `[truth]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthSection {
    /// Directory with `node.json` and `components/` (relative to the config file; default
    /// `truth` there, when it has a `node.json`).
    pub dir: Option<String>,
    /// How often the files are checked for changes (default 1s).
    pub watch_interval: Option<String>,
}

/// Where the Truth files are, if anywhere, and how often they are checked.
#[derive(Debug, Clone)]
pub struct TruthSettings {
    pub dir: Option<PathBuf>,
    pub interval: Duration,
}

impl Default for TruthSettings {
    fn default() -> Self {
        TruthSettings {
            dir: None,
            interval: Duration::from_secs(1),
        }
    }
}

/// Validate `[truth]`; relative paths resolve against `base` (the config file's directory).
pub fn settings(file: TruthSection, base: &Path) -> Result<TruthSettings, Vec<Invalid>> {
    let mut s = TruthSettings {
        dir: match &file.dir {
            Some(d) => Some(base.join(d)),
            None => Some(base.join("truth")).filter(|d| d.join("node.json").is_file()),
        },
        ..TruthSettings::default()
    };
    if let Some(t) = &file.watch_interval {
        s.interval = parse_duration("truth.watch_interval", t).map_err(|e| vec![e])?;
    }
    Ok(s)
}

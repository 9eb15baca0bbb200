//! A service's captured output: timestamped lines appended to `NAME.log` (rotated by size to
//! `NAME.log.1` … `NAME.log.K`), the last lines kept in memory for `logs?tail=`, and a live feed.
//! Every secret value the service was given is masked (`***`) before a line is stored or served.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use tokio::sync::broadcast;

/// Lines kept in memory per service (the most `tail` can return).
pub const RING: usize = 1000;

pub struct LogSink {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    inner: Mutex<Inner>,
    live: broadcast::Sender<String>,
}

struct Inner {
    file: Option<File>,
    size: u64,
    ring: VecDeque<String>,
    /// Secret values to mask, longest first (so a secret inside another is masked whole).
    secrets: Vec<String>,
}

/// Values shorter than this are not masked: they would mask ordinary text.
const MIN_SECRET_LEN: usize = 4;

impl LogSink {
    pub fn new(dir: &Path, name: &str, max_bytes: u64, keep: usize) -> LogSink {
        let path = dir.join(format!("{name}.log"));
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        LogSink {
            path,
            max_bytes,
            keep,
            inner: Mutex::new(Inner {
                file: None,
                size,
                ring: VecDeque::with_capacity(64),
                secrets: Vec::new(),
            }),
            live: broadcast::channel(1024).0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mask these values in every line from now on (the secrets the next process is given).
    pub fn mask(&self, secrets: Vec<String>) {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        crate::support::lock(&self.inner).secrets = secrets;
    }

    /// Record one line from `stream` (`out`, `err`, or `sovereign` for the supervisor's notes).
    pub fn line(&self, stream: &str, text: &str) {
        let mut inner = crate::support::lock(&self.inner);
        let mut text = text.trim_end_matches(['\r', '\n']).to_string();
        for secret in &inner.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), sovereign_core::redact::MASK);
            }
        }
        let line = format!(
            "{} {stream} {text}",
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(line.clone());
        if let Err(e) = self.append(&mut inner, &line) {
            // Keep the line in memory; say once per failure why the file did not get it.
            inner.file = None;
            tracing::warn!(path = %self.path.display(), error = %e, "service log not written");
        }
        drop(inner);
        let _ = self.live.send(line);
    }

    fn append(&self, inner: &mut Inner, line: &str) -> std::io::Result<()> {
        let bytes = line.len() as u64 + 1;
        if inner.size + bytes > self.max_bytes && inner.size > 0 {
            inner.file = None;
            self.rotate()?;
            inner.size = 0;
        }
        if inner.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            inner.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        if let Some(f) = inner.file.as_mut() {
            f.write_all(line.as_bytes())?;
            f.write_all(b"\n")?;
        }
        inner.size += bytes;
        Ok(())
    }

    /// NAME.log → NAME.log.1 → … → NAME.log.K (the oldest dropped).
    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))
    }

    /// The last `n` lines (at most [`RING`]), oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let inner = crate::support::lock(&self.inner);
        let skip = inner.ring.len().saturating_sub(n);
        inner.ring.iter().skip(skip).cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.live.subscribe()
    }
}

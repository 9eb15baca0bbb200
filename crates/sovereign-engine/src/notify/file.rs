//! The file channel: one JSON line per alert, appended and fsynced; at start, the id of the
//! last line, so a line written just before a crash is not written again.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;

/// Append one line and make it durable.
pub(super) fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    f.write_all(&bytes)?;
    f.sync_data()
}

/// The id of the last alert line in a file channel's file (0: none), so a line written just
/// before a crash is not written again.
pub(super) fn last_file_id(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut tail = String::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_string(&mut tail).is_err() {
        return 0;
    }
    tail.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_u64())
        .unwrap_or(0)
}

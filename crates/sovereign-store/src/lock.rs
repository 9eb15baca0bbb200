//! The data dir's exclusive lock: one engine per data dir.
//!
//! An OS file lock (`flock`) on `DIR/LOCK`, held for as long as the store is open. The kernel
//! drops it when the process ends, however it ends, so a lock left by a dead process never
//! blocks. The file holds the owner's pid, only to name it in the refusal.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::StoreError;

/// Held while the store is open; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    /// Take the lock of `dir` (which must exist), or say who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join("LOCK");
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| {
            StoreError::Database(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let who = if owner.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {owner}")
                };
                return Err(StoreError::Locked(format!(
                    "data dir {} is in use by {who} (another engine); stop it or choose another --data-dir",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Database(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
        // Ours now: record who holds it.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DirLock(file))
    }
}

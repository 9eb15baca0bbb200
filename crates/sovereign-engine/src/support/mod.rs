//! Helpers every capability shares, one of each: the task tracker every background task is
//! spawned on, poison-tolerant locking, an error's whole cause chain as one line, killing a
//! process group, running a program to its end with bounded output, and "admit into a dedup
//! window, do the work, forget on failure".
//!
//! This room knows no capability: it imports only the core, the store and std/tokio.

use std::future::Future;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where every background task of the engine is spawned, and how it learns to stop.
///
/// The root makes one `Tasks` and hands each capability a [`Tasks::child`]: the children share
/// the tracker (so the root can wait for every task the engine started) but each has its own
/// stop signal, so the root stops capabilities one at a time in reverse dependency order.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// The same tracker, with a stop signal of its own that also fires when this one does.
    pub fn child(&self) -> Tasks {
        Tasks {
            tracker: self.tracker.clone(),
            stop: self.stop.child_token(),
        }
    }

    /// Spawn a tracked task: the root waits for it at shutdown.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Resolves once this capability is told to stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Tell this capability's tasks to stop (they finish on their own; see [`Tasks::wait`]).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// How many tracked tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Accept no new tasks and wait until every tracked task has finished.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Lock a mutex whose critical sections are a few field updates: a panic in one cannot leave
/// the data half-updated, so a poisoned lock is taken as it is.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`lock`] for readers of an `RwLock`.
pub fn lock_read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// [`lock`] for the writer of an `RwLock`.
pub fn lock_write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// An error and every cause under it, on one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The signal that ended a process (Unix only).
pub fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    return std::os::unix::process::ExitStatusExt::signal(status);
    #[cfg(not(unix))]
    return {
        let _ = status;
        None
    };
}

/// Send `signal` (`TERM`, `KILL`, …) to the whole process group led by `pgid`, without
/// waiting: std has no signal API and the project forbids unsafe code, so this runs the POSIX
/// `kill` program (a negative id names a group); tokio reaps it in the background. On Windows,
/// `taskkill /T` ends the process tree (`/F` for `KILL`).
pub fn signal_group(pgid: u32, signal: &str) {
    #[cfg(unix)]
    let mut cmd = tokio::process::Command::new("kill");
    #[cfg(unix)]
    cmd.args([format!("-{signal}"), "--".into(), format!("-{pgid}")]);
    #[cfg(not(unix))]
    let mut cmd = tokio::process::Command::new("taskkill");
    #[cfg(not(unix))]
    {
        cmd.args(["/T", "/PID", &pgid.to_string()]);
        if signal == "KILL" {
            cmd.arg("/F");
        }
    }
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        tracing::error!(pgid, signal, error = %e, "cannot run kill");
    }
}

/// Kills a process group with SIGKILL when dropped while still armed: a run that is abandoned
/// (timeout, shutdown) takes the program and everything it started with it.
pub struct GroupGuard(Option<u32>);

impl GroupGuard {
    pub fn new(pgid: Option<u32>) -> GroupGuard {
        GroupGuard(pgid)
    }

    /// The group ended on its own: nothing to kill.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, "KILL");
        }
    }
}

/// What a program that ran to its end left: its exit status and the first bytes of its output.
#[derive(Debug)]
pub struct Ran {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Run `argv` (never through a shell) in its own process group with `env` added and in `cwd`,
/// keeping at most `max_output` bytes of each stream (the rest is read and dropped, so a
/// chatty program never blocks on a full pipe). Dropping the future (a timeout, a shutdown)
/// kills the program and everything it started. `Err`: it could not be started or waited for.
pub async fn run_program(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&std::path::Path>,
    max_output: usize,
) -> std::io::Result<Ran> {
    use tokio::io::{AsyncRead, AsyncReadExt};
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("no program to run"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    let mut group = GroupGuard::new(child.id());
    async fn keep<R: AsyncRead + Unpin>(r: Option<R>, max: usize) -> Vec<u8> {
        let mut kept = Vec::new();
        let Some(mut r) = r else { return kept };
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let room = max.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (status, stdout, stderr) = tokio::join!(
        child.wait(),
        keep(stdout, max_output),
        keep(stderr, max_output)
    );
    group.disarm();
    Ok(Ran {
        status: status?,
        stdout,
        stderr,
    })
}

/// Run `work` once per dedup key: `admit` says whether the key is new (and remembers it);
/// if `work` fails, `forget` takes the key back, so a retry is not taken for a repeat.
/// `None`: a repeat, nothing done.
pub async fn once<T, E>(
    admit: impl FnOnce() -> bool,
    forget: impl FnOnce(),
    work: impl Future<Output = Result<T, E>>,
) -> Option<Result<T, E>> {
    if !admit() {
        return None;
    }
    let done = work.await;
    if done.is_err() {
        forget();
    }
    Some(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn once_forgets_a_failure_and_keeps_a_success() {
        let seen = Mutex::new(std::collections::BTreeSet::new());
        let seen = &seen;
        let admit = |k: &'static str| move || lock(seen).insert(k);
        let forget = |k: &'static str| {
            move || {
                lock(seen).remove(k);
            }
        };
        let failed = once(admit("a"), forget("a"), async { Err::<(), _>("no") }).await;
        assert_eq!(failed, Some(Err("no")));
        assert!(!lock(seen).contains("a"), "a failure is forgotten");
        let ok = once(admit("a"), forget("a"), async { Ok::<_, ()>(1) }).await;
        assert_eq!(ok, Some(Ok(1)));
        let repeat = once(admit("a"), forget("a"), async { Ok::<_, ()>(2) }).await;
        assert_eq!(repeat, None, "a success is remembered");
    }

    #[tokio::test]
    async fn child_tasks_stop_alone_and_are_awaited_together() {
        let root = Tasks::new();
        let a = root.child();
        let b = root.child();
        let (a2, b2) = (a.clone(), b.clone());
        a.spawn(async move { a2.stopped().await });
        b.spawn(async move { b2.stopped().await });
        assert_eq!(root.running(), 2);
        a.stop();
        assert!(
            !b.is_stopping(),
            "stopping one child leaves the other running"
        );
        root.stop();
        root.wait().await;
        assert_eq!(root.running(), 0);
    }
}

//! `command`: run an allow-listed program (argv, env and cwd templated; never through a shell)
//! in its own process group; the exit code and bounded stdout/stderr are the output. An
//! abandoned run (timeout, shutdown) kills the whole group.

use std::process::Stdio;

use serde_json::{json, Value};
use sovereign_core::task::CommandSpec;
use sovereign_core::template::render;
use tokio::io::AsyncReadExt;

use super::{Context, Failure};
use crate::support::GroupGuard;

pub(super) async fn run(
    ctx: &Context,
    spec: &CommandSpec,
    template: &Value,
) -> Result<Value, Failure> {
    // The allow-list is checked again at run time, against the settings in force now.
    ctx.rules
        .check_command(&spec.argv[0])
        .map_err(|e| Failure::new(e.message))?;
    // The program itself is never templated: it is what the allow-list approved.
    let mut argv = vec![spec.argv[0].clone()];
    for a in &spec.argv[1..] {
        argv.push(render(a, template)?);
    }
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    for (k, v) in &spec.env {
        cmd.env(k, render(v, template)?);
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {:?}: {e}", argv[0])))?;
    // If the run is abandoned (timeout, shutdown), kill the program and everything it started.
    let mut group = GroupGuard::new(child.id());
    let limit = ctx.settings.max_response_bytes as u64;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = async {
        if let Some(s) = stdout {
            let _ = s.take(limit).read_to_end(&mut out).await;
        }
    };
    let read_err = async {
        if let Some(s) = stderr {
            let _ = s.take(limit).read_to_end(&mut err).await;
        }
    };
    let (status, _, _) = tokio::join!(child.wait(), read_out, read_err);
    group.disarm();
    let status =
        status.map_err(|e| Failure::new(format!("waiting for {:?} failed: {e}", argv[0])))?;
    let output = json!({
        "exit_code": status.code(),
        "stdout": String::from_utf8_lossy(&out),
        "stderr": String::from_utf8_lossy(&err),
    });
    if status.success() {
        Ok(output)
    } else {
        Err(Failure {
            message: match status.code() {
                Some(code) => format!("{:?} exited with status {code}", argv[0]),
                None => format!("{:?} was killed by a signal", argv[0]),
            },
            output,
        })
    }
}

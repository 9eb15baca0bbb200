//! `command`: run an allow-listed program (argv, env and cwd templated; never through a shell)
//! in its own process group; the exit code and bounded stdout/stderr are the output. An
//! abandoned run (timeout, shutdown) kills the whole group.

use serde_json::{json, Value};
use sovereign_core::task::CommandSpec;
use sovereign_core::template::render;

use super::{Context, Failure};
use crate::support::run_program;

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
    let env = spec
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), render(v, template)?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    let ran = run_program(
        &argv,
        &env,
        spec.cwd.as_deref().map(std::path::Path::new),
        ctx.settings.max_response_bytes,
    )
    .await
    .map_err(|e| Failure::new(format!("cannot start {:?}: {e}", argv[0])))?;
    let (status, out, err) = (ran.status, ran.stdout, ran.stderr);
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

//! End-to-end tests of what a trader must be able to trust: one engine per data dir, a kill
//! switch that stops everything, prices that are not overwritten, signals and orders that mean
//! what they say. Each test drives the real binary, as a user would.

use serde_json::{json, Value};

use crate::util::{self, Engine, PATIENCE};

/// Prices under test control.
const NO_FEED: &str = "[trading]\nsynthetic_feed = false\n";

// ----- one engine per data dir ---------------------------------------------------------------

#[tokio::test]
async fn a_second_engine_on_the_same_data_dir_is_refused_in_one_line() {
    let mut first = Engine::start(None);
    let data = first.root().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let out = util::run_expecting_exit(&["up", "--port", "0", "--data-dir", &data_arg]);
    assert_eq!(out.code, Some(1), "second engine: {out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].contains("in use by process") && lines[0].contains(&data_arg),
        "{lines:?}"
    );
    // The first one is untouched.
    let (status, _) = first.get("/health").await;
    assert_eq!(status, 200);

    // A lock left by a process that died does not block the next start.
    first.kill9();
    let next = first.resume();
    let (status, _) = next.get("/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_start_that_fails_leaves_no_new_data_dir_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let root = util::unique_dir("sovereign-e2e-busy");
    let data = root.join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let out = util::run_expecting_exit(&["up", "--port", &port, "--data-dir", &data_arg]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("cannot listen"), "{}", out.stderr);
    assert!(!data.exists(), "a failed start left {} behind", data.display());
    let _ = std::fs::remove_dir_all(&root);
}

//! Helpers for the end-to-end tests: drive the real `sovereign` binary and watch what it does.
//!
//! - [`Engine`]: `sovereign up --port 0` on a private temp data dir, stopped with SIGTERM,
//!   restarted on the same dir, killed and cleaned up on drop; small HTTP helpers on top.
//! - [`Receiver`]: a real HTTP server on 127.0.0.1:0 that records every request it gets and
//!   answers a fixed status after an optional delay (the far end of `http_request` tasks).
//! - [`cli`]: run a client subcommand of the binary and capture its exit code and output.
//! - [`wait_for`]: poll until a condition holds, with a bound. These are not timing tests: the
//!   bounds are generous and only stop a broken engine from hanging the suite.
//!
//! Nothing here knows the engine's internals: everything goes through the process, its HTTP API
//! and its exit status, exactly as a user would see them.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sovereign");

/// The usual bound for [`wait_for`].
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a process may take to print its banner or to exit after SIGTERM.
const PROCESS_PATIENCE: Duration = Duration::from_secs(15);

/// Environment variables the binary reads; cleared so the host's settings cannot leak in.
const ENV_KNOBS: [&str; 6] = [
    "LOG_LEVEL",
    "SOVEREIGN_TRUSTED_KEYS",
    "SOVEREIGN_URL",
    "SOVEREIGN_CONFIG",
    "SOVEREIGN_DATA_DIR",
    "RUST_LOG",
];

fn http_client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`; a provider must exist before the first client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build an HTTP client")
}

/// A fresh, empty directory under the system temp dir, unique within and across test runs.
pub fn unique_dir(prefix: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// How a stopped engine ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// From sending SIGTERM to the process being reaped.
    pub took: Duration,
}

/// A running `sovereign up` process with its own data dir.
///
/// Layout of its private root: `data/` (the store), `config.toml` (when given), `stderr.log`
/// (the engine's logs, appended across restarts; printed when a test panics).
pub struct Engine {
    child: Option<Child>,
    url: String,
    /// Owned root dir; `None` once handed over to the restarted engine.
    root: Option<PathBuf>,
    http: reqwest::Client,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Engine {
    /// Start an engine on a fresh data dir, with `config_toml` as its config file when given.
    pub fn start(config_toml: Option<&str>) -> Engine {
        Engine::start_in(unique_dir("sovereign-e2e"), config_toml)
    }

    /// Start in `root` (which may already hold files the config refers to).
    pub fn start_in(root: PathBuf, config_toml: Option<&str>) -> Engine {
        if let Some(text) = config_toml {
            std::fs::write(root.join("config.toml"), text).expect("write config");
        }
        Engine::launch(root)
    }

    fn launch(root: PathBuf) -> Engine {
        Engine::launch_on(root, 0)
    }

    /// SIGTERM, a clean exit, and start again on the same data dir and the same port (a
    /// browser pointed at the engine finds it again).
    pub fn restart_on_same_port(mut self) -> Engine {
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the URL");
        let stopped = self.stop();
        assert!(stopped.status.success(), "{}", self.stderr());
        let root = self.root.take().expect("engine owns its root");
        Engine::launch_on(root, port)
    }

    fn launch_on(root: PathBuf, port: u16) -> Engine {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("stderr.log"))
            .expect("open stderr log");
        let mut cmd = Command::new(BIN);
        cmd.arg("up")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(root.join("data"));
        let config = root.join("config.toml");
        if config.exists() {
            cmd.arg("--config").arg(&config);
        }
        for knob in ENV_KNOBS {
            cmd.env_remove(knob);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn sovereign up");

        // The banner is the first stdout line; keep draining afterwards so the pipe never fills.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let later = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = later.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let banner = match rx.recv_timeout(PROCESS_PATIENCE) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "no banner from sovereign up ({e}; exit {status:?}); stderr:\n{}",
                    read_log(&root)
                );
            }
        };
        let url = banner_url(&banner)
            .unwrap_or_else(|| panic!("unexpected banner {banner:?}"))
            .to_string();
        Engine {
            child: Some(child),
            url,
            root: Some(root),
            http: http_client(),
            stdout: later,
        }
    }

    /// The lines `up` printed after its banner so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The private root dir (holds `data/`, `config.toml`, `stderr.log`); free for test files.
    pub fn root(&self) -> &Path {
        self.root.as_deref().expect("engine owns its root")
    }

    /// What the engine logged so far.
    pub fn stderr(&self) -> String {
        read_log(self.root())
    }

    /// Send SIGTERM and wait for the process to exit.
    pub fn stop(&mut self) -> Stopped {
        let mut child = self.child.take().expect("engine is running");
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM failed: {kill}");
        loop {
            if let Some(status) = child.try_wait().expect("wait for sovereign") {
                return Stopped {
                    status,
                    took: sent.elapsed(),
                };
            }
            if sent.elapsed() > PROCESS_PATIENCE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sovereign did not exit within {PROCESS_PATIENCE:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send SIGKILL (no graceful shutdown, nothing flushed) and reap the process; the data dir
    /// stays, so [`Engine::resume`] starts again on exactly what the engine left on disk.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("engine is running");
        let kill = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -KILL failed: {kill}");
        child.wait().expect("reap sovereign")
    }

    /// Start again on the same data dir and config (after [`Engine::stop`]).
    pub fn resume(mut self) -> Engine {
        assert!(self.child.is_none(), "stop the engine before resuming it");
        let root = self.root.take().expect("engine owns its root");
        Engine::launch(root)
    }

    /// SIGTERM, require a clean exit (status 0), start again on the same data dir.
    pub fn restart(mut self) -> Engine {
        let stopped = self.stop();
        assert!(
            stopped.status.success(),
            "SIGTERM should end the engine with status 0, got {}; stderr:\n{}",
            stopped.status,
            self.stderr()
        );
        self.resume()
    }

    /// One request; the answer's status and body (JSON, or the text as a JSON string, or null
    /// when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {path} failed: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("read response body");
        (status, body_value(&bytes))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body.to_vec()), headers)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::PUT,
            path,
            Some(body.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::PATCH,
            path,
            Some(body.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// A clone of the engine's HTTP client, for requests that must survive the engine dying
    /// under them (the helpers above panic when a connection fails).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// `POST /register`, requiring 201; returns the stored task.
    pub async fn register(&self, task: Value) -> Value {
        let (status, body) = self.post("/register", task.clone()).await;
        assert_eq!(status, 201, "register {task}: {body}");
        body
    }

    /// `POST /execute`, requiring 200; returns the result.
    pub async fn execute(&self, task_id: &str, data: Value) -> Value {
        let (status, body) = self
            .post("/execute", json!({"task_id": task_id, "data": data}))
            .await;
        assert_eq!(status, 200, "execute {task_id}: {body}");
        body
    }

    /// Every stored result of one task, newest first.
    pub async fn results(&self, task_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/results?task_id={task_id}&limit=10000"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["results"].as_array().cloned().expect("results array")
    }

    /// Wait until the results of `task_id` satisfy `done` (named `what` in the timeout panic);
    /// return them, newest first.
    pub async fn wait_results(
        &self,
        task_id: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let done = &done;
        wait_for(&format!("{task_id}: {what}"), PATIENCE, || async move {
            let results = self.results(task_id).await;
            done(&results).then_some(results)
        })
        .await
    }

    /// One task as `GET /api/tasks/{id}` shows it, requiring 200.
    pub async fn task(&self, task_id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/tasks/{task_id}")).await;
        assert_eq!(status, 200, "task {task_id}: {body}");
        body
    }

    /// The ids of `GET /tasks`, in the order served.
    /// The kinds of the audit records so far, in order.
    pub async fn audit_kinds(&self) -> Vec<String> {
        let (_, audit) = self.get("/api/audit?limit=10000").await;
        audit["records"]
            .as_array()
            .expect("audit records")
            .iter()
            .map(|r| r["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn task_ids(&self) -> Vec<String> {
        let (status, body) = self.get("/tasks").await;
        assert_eq!(status, 200, "{body}");
        body["tasks"]
            .as_array()
            .expect("tasks array")
            .iter()
            .map(|t| t["task_id"].as_str().expect("task_id").to_string())
            .collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(root) = self.root.take() {
            if std::thread::panicking() {
                eprintln!(
                    "--- sovereign stderr ({}) ---\n{}",
                    root.display(),
                    read_log(&root)
                );
            }
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}

fn read_log(root: &Path) -> String {
    std::fs::read_to_string(root.join("stderr.log")).unwrap_or_default()
}

/// `sovereign X listening on http://127.0.0.1:PORT (data: …)` → the URL.
fn banner_url(line: &str) -> Option<&str> {
    if !line.starts_with("sovereign ") {
        return None;
    }
    let rest = line.split(" listening on ").nth(1)?;
    let url = rest.split_whitespace().next()?;
    (url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:")).then_some(url)
}

fn body_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// Poll `probe` every 20 ms until it yields a value; panic naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An RFC 3339 field of a JSON value as a UTC instant.
pub fn instant(v: &Value) -> DateTime<Utc> {
    let text = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Hex HMAC-SHA256, computed here independently of the product's own signer.
pub fn hmac_sha256_hex(key: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether [`process_running`] can see processes at all (Linux `/proc`).
pub fn can_see_processes() -> bool {
    Path::new("/proc/self/cmdline").exists()
}

/// Whether a live (non-zombie) process has exactly this argv. Linux `/proc`; elsewhere `false`.
pub fn process_running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted))
}

/// One request as the [`Receiver`] saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("receiver got non-JSON body {:?}: {e}", self.body))
    }
}

/// A scripted answer: status, extra headers, JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: json!({"ok": status < 400}),
        }
    }
}

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    script: Arc<Mutex<std::collections::VecDeque<Reply>>>,
    delay: Duration,
}

/// A real HTTP server on 127.0.0.1:0 that records requests and answers `status` with
/// `{"ok": status < 400, "path": …}` after `delay`. Runs on its own thread and runtime, so a
/// test may block without starving it.
pub struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    script: Arc<Mutex<std::collections::VecDeque<Reply>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    pub fn start(status: u16, delay: Duration) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("receiver address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let state = ReceiverState {
            seen: seen.clone(),
            status: status.clone(),
            script: script.clone(),
            delay,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(record).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Receiver {
            addr,
            seen,
            status,
            script,
            stop: Some(stop),
        }
    }

    /// Answer the next requests with `replies`, in order, before the standing status again.
    pub fn script(&self, replies: Vec<Reply>) {
        self.script.lock().expect("receiver lock").extend(replies);
    }

    /// Change the standing status (an outage, a recovery).
    pub fn set_status(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().expect("receiver lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn record(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let reply = state
        .script
        .lock()
        .expect("receiver lock")
        .pop_front()
        .unwrap_or_else(|| {
            let status = state.status.load(std::sync::atomic::Ordering::SeqCst);
            Reply {
                status,
                headers: Vec::new(),
                body: json!({"ok": status < 400, "path": path}),
            }
        });
    state.seen.lock().expect("receiver lock").push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
        status: reply.status,
    });
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let mut response = axum::response::IntoResponse::into_response((
        axum::http::StatusCode::from_u16(reply.status).expect("valid status"),
        axum::Json(reply.body),
    ));
    for (k, v) in reply.headers {
        response
            .headers_mut()
            .insert(k, v.parse().expect("header value"));
    }
    response
}

/// What a client subcommand did.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Run `sovereign ARGS…` to completion (client subcommands, `check`, `openapi`).
pub fn cli(args: &[&str]) -> CliOutput {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for knob in ENV_KNOBS {
        cmd.env_remove(knob);
    }
    let out = cmd.output().expect("run sovereign");
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `sovereign ARGS…` that is expected to exit by itself (e.g. `up` with a bad config);
/// kill it and panic if it is still running after the process patience.
pub fn run_expecting_exit(args: &[&str]) -> CliOutput {
    let dir = unique_dir("sovereign-e2e-run");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    for knob in ENV_KNOBS {
        cmd.env_remove(knob);
    }
    let mut child = cmd.spawn().expect("spawn sovereign");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > PROCESS_PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("sovereign {args:?} was still running after {PROCESS_PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = CliOutput {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

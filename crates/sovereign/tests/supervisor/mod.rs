//! The supervisor end to end: real child processes (sh, sleep, python3), ordering by condition,
//! restarts with backoff and its reset, crash loop → failed → recovery, stop escalation to
//! SIGKILL of a group that ignores SIGTERM, heartbeats over HTTP and through a real Redis, the
//! healer hook and its cooldown, logs, and the example stack.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::util::{cli, run_expecting_exit, unique_dir, wait_for, Engine, PATIENCE};

async fn service(e: &Engine, name: &str) -> Value {
    let (status, body) = e.get("/api/services").await;
    assert_eq!(status, 200, "{body}");
    body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name}: {body}"))
        .clone()
}

async fn wait_state(e: &Engine, name: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let s = service(e, name).await;
        if s["state"] == state {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let (_, all) = e.get("/api/services").await;
            panic!("{name} is not {state} after {PATIENCE:?}: {all}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The audit trail's service transitions of `name`: (to, reason).
async fn transitions(e: &Engine, name: &str) -> Vec<(String, String)> {
    let (_, audit) = e.get("/api/audit?limit=10000").await;
    audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "service.transition" && r["payload"]["service"] == name)
        .map(|r| {
            (
                r["payload"]["to"].as_str().unwrap().to_string(),
                r["payload"]["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn alive(pid: i64) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn services_start_by_condition_and_stop_in_reverse() {
    // Each service notes "start NAME" when it runs and "stop NAME" on SIGTERM, in one file.
    let svc = |name: &str| {
        format!(
            r#"["sh", "-c", "trap 'echo stop {name} >> events; exit 0' TERM; echo start {name} >> events; while true; do sleep 0.05; done"]"#
        )
    };
    let config = format!(
        r#"
[services.db]
command = {db}
health = {{ type = "command", command = ["sh", "-c", "test -f db-ready"], interval = "100ms" }}
[services.migrate]
command = ["sh", "-c", "echo start migrate >> events; touch db-ready; sleep 0.3; echo done migrate >> events"]
restart = "on-failure"
[services.api]
command = {api}
depends_on = {{ db = "healthy", migrate = "completed" }}
[services.worker]
command = {worker}
depends_on = ["api"]
[services.idle]
command = {idle}
autostart = false
"#,
        db = svc("db"),
        api = svc("api"),
        worker = svc("worker"),
        idle = svc("idle"),
    );
    let mut e = Engine::start(Some(&config));
    wait_state(&e, "worker", "running").await;
    let events = e.root().join("events");
    // Running means spawned; each script writes its line a moment later (on a busy machine,
    // the api's may come after the worker's).
    let seen = wait_for("the start lines", PATIENCE, || {
        let seen = lines(&events);
        let all = ["done migrate", "start api", "start worker"]
            .iter()
            .all(|l| seen.contains(&l.to_string()));
        async move { all.then_some(seen) }
    })
    .await;
    let at = |what: &str| {
        seen.iter()
            .position(|l| l == what)
            .unwrap_or_else(|| panic!("{what} missing: {seen:?}"))
    };
    // api waited for db to be healthy (migrate touched db-ready) and for migrate to complete.
    assert!(at("done migrate") < at("start api"), "{seen:?}");
    // Spawn order (a `started` dependent may print before its dependency: both are up).
    let started = |v: &Value| {
        v["started_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let (db, api, worker) = (
        service(&e, "db").await,
        service(&e, "api").await,
        service(&e, "worker").await,
    );
    assert!(started(&db) <= started(&api) && started(&api) <= started(&worker));
    // The wire contract's fields.
    for field in [
        "name",
        "state",
        "pid",
        "uptime_s",
        "restarts",
        "last_exit",
        "health",
    ] {
        assert!(worker.get(field).is_some(), "{field} missing: {worker}");
    }
    assert!(worker["uptime_s"].is_i64(), "{worker}");
    assert_eq!(service(&e, "migrate").await["state"], "exited");
    assert_eq!(service(&e, "db").await["state"], "healthy");
    let idle = service(&e, "idle").await;
    assert_eq!(
        (idle["state"].as_str(), idle["wanted"].as_bool()),
        (Some("stopped"), Some(false))
    );

    // Started by hand; stopped by hand; an unknown service is a 404.
    let out = cli(&["start", "idle", "--url", e.url()]);
    assert!(out.ok() && out.stdout.starts_with("idle: "), "{out:?}");
    wait_state(&e, "idle", "running").await;
    wait_for("idle's start line (its trap is set)", PATIENCE, || async {
        lines(&events)
            .contains(&"start idle".to_string())
            .then_some(())
    })
    .await;
    let (status, body) = e.post("/api/services/idle/stop", json!({})).await;
    assert_eq!(status, 200, "{body}");
    wait_state(&e, "idle", "stopped").await;
    for verb in ["start", "stop", "restart"] {
        let (status, body) = e
            .post(&format!("/api/services/nope/{verb}"), json!({}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("unknown_service")),
            "{body}"
        );
    }
    let out = cli(&["stop", "nope", "--url", e.url()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr_lines(),
        vec!["error: unknown_service: no service named \"nope\" (field name)"]
    );

    // Shutdown: dependents first.
    let stopped = e.stop();
    assert!(stopped.status.success());
    let seen = lines(&events);
    let stops: Vec<&str> = seen
        .iter()
        .filter(|l| l.starts_with("stop "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        stops,
        vec!["stop idle", "stop worker", "stop api", "stop db"],
        "{seen:?}"
    );
}

#[tokio::test]
async fn crashes_back_off_reset_and_a_crash_loop_fails_then_recovers() {
    // Runs 1, 2 and 4+ crash at once; run 3 stays up 1.5 s (past reset_after) first.
    let config = r#"
[services.flaky]
command = ["sh", "-c", "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; if [ $n -eq 3 ]; then sleep 1.5; fi; exit 3"]
backoff = { initial = "200ms", max = "2s", multiplier = 2, reset_after = "1s" }
crash_loop = { restarts = 4, window = "1m", cooldown = "1500ms" }
"#;
    let e = Engine::start(Some(config));
    let failed = wait_state(&e, "flaky", "failed").await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("crash loop: exited with status 3; 4 restarts within 60s"),
        "{failed}"
    );
    assert_eq!(failed["restarts"], 4);
    assert_eq!(failed["last_exit"]["code"], 3);
    let delays: Vec<String> = transitions(&e, "flaky")
        .await
        .into_iter()
        .filter(|(to, _)| to == "backoff")
        .map(|(_, reason)| reason.rsplit("restart in ").next().unwrap().to_string())
        .collect();
    // 200, 400, then reset by run 3's uptime: 200, 400.
    assert_eq!(delays, vec!["200 ms", "400 ms", "200 ms", "400 ms"]);

    // The restarts really waited: spawn times in the log are at least the delays apart.
    let (_, log) = e.get("/api/services/flaky/logs?tail=100").await;
    let starts: Vec<chrono::DateTime<chrono::Utc>> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.contains(" sovereign started pid "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(starts.len() >= 5, "{log}");
    assert!(starts[1] - starts[0] >= chrono::Duration::milliseconds(200));
    assert!(starts[2] - starts[1] >= chrono::Duration::milliseconds(400));

    // Failed raises a P0 alert.
    let (_, alerts) = e.get("/api/alerts").await;
    let p0 = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["source"] == "supervisor")
        .cloned();
    assert_eq!(
        p0.as_ref().map(|a| a["priority"].clone()),
        Some(json!("P0")),
        "{alerts}"
    );

    // After the cooldown it is tried again (and, still crashing, ends in backoff or failed).
    wait_for("a run after the cooldown", PATIENCE, || async {
        let runs: u32 = std::fs::read_to_string(e.root().join("runs"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (runs >= 6).then_some(())
    })
    .await;
    // The transition is recorded on its own durable write: wait for it rather than race it.
    wait_for("the cooldown's restart recorded", PATIENCE, || async {
        let t = transitions(&e, "flaky").await;
        t.iter()
            .any(|(to, reason)| to == "starting" && reason == "cooldown over")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn stop_escalates_to_sigkill_of_the_whole_group() {
    // Both the shell and its child ignore SIGTERM (an ignored signal stays ignored across exec).
    let config = r#"
[services.stubborn]
command = ["sh", "-c", "trap '' TERM; sleep 1000 & echo child $!; wait"]
stop_timeout = "500ms"
"#;
    let e = Engine::start(Some(config));
    let running = wait_state(&e, "stubborn", "running").await;
    let pid = running["pid"].as_i64().unwrap();
    let child: i64 = wait_for("the child's pid in the log", PATIENCE, || async {
        let (_, log) = e.get("/api/services/stubborn/logs").await;
        log["lines"]
            .as_array()?
            .iter()
            .find_map(|l| l.as_str()?.split(" out child ").nth(1)?.parse().ok())
    })
    .await;
    assert!(alive(pid) && alive(child));
    let out = cli(&["stop", "stubborn", "--url", e.url()]);
    assert!(
        out.ok() && out.stdout.starts_with("stubborn: stopping"),
        "{out:?}"
    );
    let stopped = wait_state(&e, "stubborn", "stopped").await;
    assert_eq!(stopped["last_exit"]["signal"], 9, "{stopped}");
    assert!(!alive(pid), "the leader survived");
    wait_for("the child to be gone", PATIENCE, || async {
        (!alive(child)).then_some(())
    })
    .await;
    let (_, log) = e.get("/api/services/stubborn/logs").await;
    let text = log["lines"].to_string();
    assert!(
        text.contains("sending SIGTERM") && text.contains("sending SIGKILL"),
        "{text}"
    );
}

/// A real Redis on a free loopback port, for as long as the value lives.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test-deps.sh installs it)");
        wait_for("redis to listen", PATIENCE, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Redis { child, port }
    }

    async fn set(&self, key: &str, value: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        s.write_all(cmd.as_bytes()).await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"+OK\r\n");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn heartbeats_over_http_and_through_redis() {
    let redis = Redis::start().await;
    let config = format!(
        r#"
[services.feed]
command = ["sleep", "1000"]
health = {{ type = "heartbeat", ttl = "800ms" }}
[services.hung]
command = ["sleep", "1000"]
health = {{ type = "heartbeat", ttl = "300ms", on_unhealthy = "restart" }}
backoff = {{ initial = "100ms", max = "100ms" }}
[services.bridge]
command = ["sleep", "1000"]
health = {{ type = "redis_key", url = "redis://127.0.0.1:{}", key = "bridge:heartbeat", ttl = "2s", interval = "100ms", failure_threshold = 1 }}
"#,
        redis.port
    );
    let e = Engine::start(Some(&config));
    // HTTP: a beat makes it healthy and keeps its last status; silence makes it unhealthy.
    let (status, beat) = e
        .post("/api/heartbeats/feed", json!({"last_price": "5000.25"}))
        .await;
    assert_eq!(status, 200, "{beat}");
    let healthy = wait_state(&e, "feed", "healthy").await;
    assert_eq!(healthy["heartbeat"]["payload"]["last_price"], "5000.25");
    let unhealthy = wait_state(&e, "feed", "unhealthy").await;
    assert!(
        unhealthy["reason"]
            .as_str()
            .unwrap()
            .contains("no heartbeat for"),
        "{unhealthy}"
    );
    let (_, deep) = e.get("/api/health/deep").await;
    assert_eq!(deep["status"], "degraded", "{deep}");
    let (status, _) = e
        .call(reqwest::Method::POST, "/api/heartbeats/feed", None, &[])
        .await;
    assert_eq!(status, 200, "an empty beat is a beat");
    let beating = wait_state(&e, "feed", "healthy").await;
    // A restart clears the last heartbeat: it was the old process's.
    let (status, body) = e.post("/api/services/feed/restart", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let restarted = wait_for("the feed's new process", PATIENCE, || async {
        let s = service(&e, "feed").await;
        (s["pid"] != beating["pid"] && !s["pid"].is_null()).then_some(s)
    })
    .await;
    assert!(restarted["heartbeat"].is_null(), "{restarted}");
    assert_ne!(restarted["state"], "healthy", "{restarted}");
    e.post("/api/heartbeats/feed", json!({})).await;
    wait_state(&e, "feed", "healthy").await;
    let (status, body) = e.post("/api/heartbeats/nope", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_service"))
    );
    let (status, body) = e
        .call(
            reqwest::Method::POST,
            "/api/heartbeats/feed",
            Some(b"{not json".to_vec()),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );

    // A service that never beats, with on_unhealthy = "restart": restarted like a crash.
    let hung = wait_for("the silent service to be restarted", PATIENCE, || async {
        let s = service(&e, "hung").await;
        (s["restarts"].as_u64()? >= 1).then_some(s)
    })
    .await;
    assert!(
        hung["last_exit"]["signal"] == 15 || hung["last_exit"]["code"] == 143,
        "{hung}"
    );
    let t = transitions(&e, "hung").await;
    assert!(
        t.iter()
            .any(|(to, reason)| to == "backoff" && reason.starts_with("unhealthy, ")),
        "{t:?}"
    );
    // The feed, without it, is only reported.
    assert_eq!(service(&e, "feed").await["restarts"], 0);

    // Redis: missing key → unhealthy; a fresh Unix time → healthy; a stale one → unhealthy.
    let missing = wait_state(&e, "bridge", "unhealthy").await;
    assert!(
        missing["health"]["last"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{missing}"
    );
    let now = chrono::Utc::now().timestamp();
    redis.set("bridge:heartbeat", &now.to_string()).await;
    wait_state(&e, "bridge", "healthy").await;
    redis.set("bridge:heartbeat", &(now - 60).to_string()).await;
    let stale = wait_state(&e, "bridge", "unhealthy").await;
    assert!(
        stale["health"]["last"].as_str().unwrap().contains("old"),
        "{stale}"
    );
}

#[tokio::test]
async fn the_healer_runs_with_context_once_per_cooldown() {
    let config = r#"
[supervisor]
healer = ["sh", "-c", "echo \"$SOVEREIGN_SERVICE $SOVEREIGN_EXIT_STATUS\" >> healed; cp \"$SOVEREIGN_LOG_FILE\" healer-log; cp \"$SOVEREIGN_HEALTH_FILE\" healer-health; echo healed it"]
healer_cooldown = "1h"
healer_log_lines = 5
[services.crashy]
command = ["sh", "-c", "echo about to fail; sleep 0.2; exit 7"]
backoff = { initial = "100ms", max = "100ms" }
crash_loop = { restarts = 100, window = "1m" }
"#;
    let e = Engine::start(Some(config));
    let healed = e.root().join("healed");
    wait_for("the healer", PATIENCE, || async {
        (!lines(&healed).is_empty()).then_some(())
    })
    .await;
    // Several more crashes, but the cooldown holds it to one run.
    wait_for("three restarts", PATIENCE, || async {
        (service(&e, "crashy").await["restarts"].as_u64()? >= 3).then_some(())
    })
    .await;
    assert_eq!(lines(&healed), vec!["crashy 7"]);
    let log = lines(&e.root().join("healer-log"));
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    assert!(
        log.iter().any(|l| l.ends_with("out about to fail")),
        "{log:?}"
    );
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(e.root().join("healer-health")).unwrap())
            .unwrap();
    assert_eq!(
        (
            snapshot["service"].as_str(),
            snapshot["last_exit"]["code"].as_i64()
        ),
        (Some("crashy"), Some(7))
    );
    let s = wait_for("the healer's output", PATIENCE, || async {
        let s = service(&e, "crashy").await;
        (!s["healer"].is_null()).then_some(s)
    })
    .await;
    assert_eq!(
        (s["healer"]["exit"].as_i64(), s["healer"]["output"].as_str()),
        (Some(0), Some("healed it\n"))
    );
    assert!(e.audit_kinds().await.iter().any(|k| k == "service.healer"));
}

#[tokio::test]
async fn a_missing_program_fails_only_that_service() {
    let config = r#"
[services.ghost]
command = ["no-such-program-here", "--flag"]
[services.fine]
command = ["sleep", "1000"]
"#;
    let e = Engine::start(Some(config));
    let ghost = wait_state(&e, "ghost", "failed").await;
    assert_eq!(
        ghost["reason"], "program not found on PATH: no-such-program-here",
        "{ghost}"
    );
    wait_state(&e, "fine", "running").await;
    let (status, _) = e.get("/health").await;
    assert_eq!(status, 200);
    // `sovereign check` agrees with `up`: a warning, with the key; `--strict` fails on it.
    let config = e.root().join("config.toml");
    let out = cli(&["check", config.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("warning: ")
            && out.stderr.contains(
                "services.ghost.command: program not found on PATH: no-such-program-here"
            ),
        "{out:?}"
    );
    assert!(out.stdout.contains("ok, with 1 warning"), "{out:?}");
    let strict = cli(&["check", "--strict", config.to_str().unwrap()]);
    assert_eq!(strict.code, Some(1), "{strict:?}");
    // The CLI table and the logs.
    let out = cli(&["services", "--url", e.url()]);
    assert!(
        out.ok() && out.stdout.contains("ghost") && out.stdout.contains("failed"),
        "{out:?}"
    );
    let out = cli(&["logs", "ghost", "--url", e.url()]);
    assert!(
        out.ok() && out.stdout.contains("cannot start: program not found"),
        "{out:?}"
    );
    let (status, body) = e.get("/api/services/fine/logs?tail=0").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("tail"))
    );
}

#[test]
fn config_problems_stop_everything_before_it_starts() {
    let dir = unique_dir("sovereign-services-check");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[services.a]
command = ["sleep", "1"]
depends_on = { b = "healthy" }
[services.b]
command = ["sleep", "1"]
depends_on = { c = "started" }
[services.c]
command = ["sleep", "1"]
depends_on = ["a"]
[services.d]
command = "sleep 1"
restart = "sometimes"
health = { type = "smoke" }
stop_signal = "NOPE"
[services.e]
command = ["sleep", "1"]
bogus = 1
"#,
    )
    .unwrap();
    // One run names the unknown key and every other problem.
    let out = cli(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("bogus") && out.stderr.contains("line 18"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("dependency cycle: a → b → c → a")
            && out.stderr.contains("bad.toml:13: services.d.restart:"),
        "{out:?}"
    );
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("bogus = 1\n", ""),
    )
    .unwrap();
    let out = cli(&["check", path.to_str().unwrap()]);
    let text = out.stderr;
    assert!(text.contains("dependency cycle: a → b → c → a"), "{text}");
    assert!(
        text.contains("services.d.command: command must be a list of arguments"),
        "{text}"
    );
    assert!(text.contains("bad.toml:13: services.d.restart:"), "{text}");
    assert!(
        text.contains("bad.toml:4: services.a.depends_on: dependency cycle"),
        "{text}"
    );
    assert!(text.contains("services.d.health.type:"), "{text}");
    assert!(text.contains("services.d.stop_signal:"), "{text}");
    // `up` refuses to start at all.
    let data = dir.join("data");
    let out = run_expecting_exit(&[
        "up",
        "--port",
        "0",
        "--config",
        path.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("dependency cycle"), "{out:?}");
}

#[tokio::test]
async fn the_example_stack_comes_up_in_order() {
    assert!(
        python3_available(),
        "python3 is needed for the example stack (scripts/test-deps.sh installs it)"
    );
    let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/stack/sovereign.toml");
    let text = std::fs::read_to_string(&stack).unwrap();
    // Same stack on free ports; commands still run in examples/stack.
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = stack.parent().unwrap().canonicalize().unwrap();
    let text = text
        .replace("18081", &api_port.to_string())
        .replace("port = 8080", "port = 0")
        .replace(
            "[services.api]\n",
            &format!("[services.api]\ncwd = \"{}\"\n", dir.display()),
        )
        .replace(
            "[services.feed]\n",
            &format!("[services.feed]\ncwd = \"{}\"\n", dir.display()),
        )
        .replace(
            "[services.worker]\n",
            &format!("[services.worker]\ncwd = \"{}\"\n", dir.display()),
        )
        .replace(
            "healer = [\"sh\", \"heal.sh\"]",
            &format!("healer = [\"sh\", \"{}/heal.sh\"]", dir.display()),
        );
    // The deploy plan's version file in a folder of the test's own, not in the repository.
    let versions = crate::util::unique_dir("sovereign-e2e-stack-version");
    let version_file = versions.join("api.version");
    let text = text
        .replace(
            "\"api.version\"",
            &format!("\"{}\"", version_file.display()),
        )
        .replace(
            "name = \"api\"\nservice = \"api\"\n",
            &format!(
                "name = \"api\"\nservice = \"api\"\ncwd = \"{}\"\n",
                dir.display()
            ),
        );
    let text = format!("[truth]\ndir = \"{}/truth\"\n\n{text}", dir.display());
    let e = Engine::start(Some(&text));
    let worker = wait_state(&e, "worker", "running").await;
    let api = service(&e, "api").await;
    let feed = service(&e, "feed").await;
    assert_eq!(
        (api["state"].as_str(), feed["state"].as_str()),
        (Some("healthy"), Some("healthy"))
    );
    let started = |s: &Value| {
        s["started_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    assert!(started(&worker) > started(&api) && started(&worker) > started(&feed));
    assert!(
        feed["heartbeat"]["payload"]["last_price"].is_string(),
        "{feed}"
    );
    // The feed's symbol came from its Truth component; the key is masked in the API.
    assert_eq!(feed["heartbeat"]["payload"]["symbol"], "MES", "{feed}");
    let (_, truth) = e.get("/api/truth/feed").await;
    assert_eq!(truth["document"]["env"]["FEED_API_KEY"], "***", "{truth}");
    wait_for("the worker's output", PATIENCE, || async {
        let (_, log) = e.get("/api/services/worker/logs").await;
        log["lines"]
            .to_string()
            .contains("processed quote")
            .then_some(())
    })
    .await;
    let (_, deep) = e.get("/api/health/deep").await;
    assert_eq!(
        deep["score"].as_f64(),
        Some(1.0),
        "the score is a JSON number: {deep}"
    );

    // The stack's deploy plan: a service target is given its version, restarted through the
    // supervisor and gated on serving it.
    let before = api["pid"].as_u64();
    let out = crate::util::cli(&[
        "deploy",
        "run",
        "api",
        "--version",
        "v2",
        "--wait",
        "--url",
        e.url(),
    ]);
    assert!(out.ok(), "{out:?}");
    let api = service(&e, "api").await;
    assert_ne!(api["pid"].as_u64(), before, "restarted: {api}");
    let served: Value = reqwest::get(format!("http://127.0.0.1:{api_port}/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["version"], "v2", "{served}");
}

fn python3_available() -> bool {
    Command::new("python3")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn logs_follow_prints_the_tail_then_new_lines() {
    use std::io::{BufRead, BufReader};
    let config = r#"
[services.ticker]
command = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"]
log = { max_bytes = 2048, keep = 2 }
"#;
    let e = Engine::start(Some(config));
    wait_for("a few ticks", PATIENCE, || async {
        log_lines(&e)
            .await
            .iter()
            .any(|l| l.ends_with("out tick 3"))
            .then_some(())
    })
    .await;
    let mut follow = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(["logs", "ticker", "-f", "-n", "2", "--url", e.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let got = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(8)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(PATIENCE, got)
        .await
        .expect("eight lines")
        .unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    let ticks: Vec<u64> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    // The tail, then live lines: consecutive, none twice, none missed.
    for pair in ticks.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{lines:?}");
    }
    // Rotation kept the files small and numbered.
    let logs = e.root().join("data/logs");
    wait_for("a rotated log", PATIENCE, || async {
        logs.join("ticker.log.1").exists().then_some(())
    })
    .await;
    assert!(std::fs::metadata(logs.join("ticker.log")).unwrap().len() <= 2048);
    assert!(!logs.join("ticker.log.3").exists());
}

async fn log_lines(e: &Engine) -> Vec<String> {
    let (_, log) = e.get("/api/services/ticker/logs?tail=1000").await;
    log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

//! Deploys end to end through the binary: each region is a small HTTP server on its own
//! loopback port (`region.py`), started by the plan's deploy command with the version it
//! serves. A good version promotes through canary, primary and full; a canary failing its P0
//! check rolls back itself only; a primary failing its P1 check three times in a row rolls back
//! primary then canary; a failing full-stage target ends `succeeded_partial`; pause, promote,
//! abort; an engine killed during the primary's gate finishes the run after a restart without
//! running a deploy command twice; the push webhook with a valid and a forged signature; a
//! deploy window refusing during a session; bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{self, hmac_sha256_hex, unique_dir, wait_for, Engine};

/// A run takes a few seconds of gates; give it room on a busy machine.
const RUN_PATIENCE: Duration = Duration::from_secs(60);

fn region_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy/region.py")
}

/// A port for a region, free now and taken by no one else meanwhile: below the range the
/// kernel hands out for port 0 (where the engines, browsers and receivers of tests running
/// alongside get theirs), each given once in this test process. A region binds it only when it
/// is deployed, so a port picked with `bind(0)` could be taken by then.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 100) as u16 * 100,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(
            port < 32_768,
            "no region ports left below the ephemeral range"
        );
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The seed's regions: canary [lhr, nrt] → primary [ewr] (critical) → full [ord, fra, sin, bom].
const STAGES: [(&str, &[&str], bool); 3] = [
    ("canary", &["lhr", "nrt"], false),
    ("primary", &["ewr"], true),
    ("full", &["ord", "fra", "sin", "bom"], false),
];

/// The regions' folder (commands.log, pid files) and each region's port; the servers are
/// killed when it goes.
struct Fleet {
    dir: PathBuf,
    ports: BTreeMap<String, u16>,
}

impl Fleet {
    fn new(root: &Path) -> Fleet {
        let dir = root.join("fleet");
        std::fs::create_dir_all(&dir).unwrap();
        let ports = STAGES
            .iter()
            .flat_map(|(_, targets, _)| targets.iter())
            .map(|t| (t.to_string(), free_port()))
            .collect();
        Fleet { dir, ports }
    }

    /// The plan's config: every target with a P0 health check and a check that it serves the
    /// version deployed; the primary also with a P1 error-rate metric. `primary_count`: the
    /// successes the primary's gate needs (each 100 ms apart).
    fn config(&self, extra: &str, canary_count: u32, primary_count: u32) -> String {
        let mut toml = format!("{extra}\n[deploy.plans.regions]\ncommand_timeout = \"5s\"\n");
        for (stage, targets, critical) in STAGES {
            toml.push_str(&format!(
                "\n[[deploy.plans.regions.stages]]\nname = \"{stage}\"\ncritical = {critical}\nparallelism = 2\nhealth_timeout = \"20s\"\n"
            ));
            for t in targets {
                let port = self.ports[*t];
                let count = match stage {
                    "canary" => canary_count,
                    "primary" => primary_count,
                    _ => 1,
                };
                toml.push_str(&format!(
                    r#"
[[deploy.plans.regions.stages.targets]]
name = "{t}"
deploy = ["python3", "{py}", "deploy", "{dir}", "{{target}}", "{{version}}", "{port}"]
rollback = ["python3", "{py}", "rollback", "{dir}", "{{target}}", "{{previous}}", "{port}"]
[[deploy.plans.regions.stages.targets.checks]]
name = "health"
kind = "http"
url = "http://127.0.0.1:{port}/health"
interval = "100ms"
count = {count}
[[deploy.plans.regions.stages.targets.checks]]
name = "serves the version"
kind = "http"
url = "http://127.0.0.1:{port}/version"
field = "version"
pass = "== {{version}}"
interval = "100ms"
"#,
                    py = region_py().display(),
                    dir = self.dir.display(),
                ));
                if stage == "primary" {
                    toml.push_str(&format!(
                        r#"[[deploy.plans.regions.stages.targets.checks]]
name = "error rate"
kind = "metric"
severity = "P1"
url = "http://127.0.0.1:{port}/metrics"
field = "error_rate"
pass = "< 0.05"
interval = "100ms"
count = {count}
"#
                    ));
                }
            }
        }
        toml
    }

    /// What the deploy and rollback commands did, in order.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The version a region serves now.
    async fn serves(&self, target: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/version", self.ports[target]);
        let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        v["version"].as_str().map(str::to_string)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in self.ports.keys() {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{t}.pid"))) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .status();
            }
        }
    }
}

/// Start a run of `regions`; its id.
async fn start(e: &Engine, version: &str) -> u64 {
    let (status, run) = e
        .post(
            "/api/v1/deploy/run",
            json!({"plan": "regions", "version": version}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    run["id"].as_u64().unwrap()
}

/// Wait for run `id` to end; its history entry.
async fn ended(e: &Engine, id: u64) -> Value {
    wait_for(&format!("run {id} to end"), RUN_PATIENCE, || async {
        let (_, h) = e.get("/api/v1/deploy/history?limit=50").await;
        h["runs"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == id && !r["ended_at"].is_null())
            .cloned()
    })
    .await
}

/// Wait until the plan's run in progress is in `phase` (at `stage`).
async fn phase(e: &Engine, phase: &str, stage: &str) -> Value {
    wait_for(
        &format!("the run {phase} {stage}"),
        RUN_PATIENCE,
        || async {
            let (_, s) = e.get("/api/v1/deploy/status").await;
            let active = s["plans"][0]["active"].clone();
            (active["phase"] == phase && active["stage"] == stage).then_some(active)
        },
    )
    .await
}

/// Why a run ended as it did.
fn reason(run: &Value) -> &str {
    run["reason"].as_str().unwrap_or_default()
}

fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

/// A fleet running `v1` everywhere, deployed by the engine.
async fn fleet_on_v1(extra: &str, canary_count: u32, primary_count: u32) -> (Engine, Fleet) {
    let root = unique_dir("sovereign-e2e-deploy");
    let fleet = Fleet::new(&root);
    let e = Engine::start_in(
        root,
        Some(&fleet.config(extra, canary_count, primary_count)),
    );
    let id = start(&e, "v1").await;
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    (e, fleet)
}

#[tokio::test]
async fn a_good_version_promotes_and_a_canary_failing_its_p0_check_rolls_back_alone() {
    let (e, fleet) = fleet_on_v1("", 2, 2).await;
    for t in fleet.ports.keys() {
        assert_eq!(fleet.serves(t).await.as_deref(), Some("v1"), "{t}");
    }
    let (_, status) = e.get("/api/v1/deploy/status").await;
    let plan = &status["plans"][0];
    assert_eq!(plan["targets"]["bom"], "v1", "{status}");
    assert_eq!(plan["last"]["outcome"], "succeeded", "{status}");
    assert_eq!(plan["figures"]["success_rate"], 1.0, "{status}");
    // Each stage in order, its gate passed before the next began.
    let (_, h) = e.get("/api/v1/deploy/history?limit=1").await;
    let first = &h["runs"][0];
    let times: Vec<&str> = ["canary", "primary", "full"]
        .iter()
        .map(|s| stage(first, s)["passed_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{first}");
    let health = stage(first, "canary")["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "health" && c["target"] == "lhr")
        .cloned()
        .unwrap();
    assert_eq!(
        health["measurements"].as_array().map(Vec::len),
        Some(2),
        "each measurement is in the history: {health}"
    );

    // The run's journal as recorded: numbered from 1, its inputs first, its end last.
    let (status, record) = e.get(&format!("/api/v1/deploy/runs/{}", first["id"])).await;
    assert_eq!(status, 200, "{record}");
    let events = record["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(events[0]["kind"], "input", "{record}");
    assert_eq!(events[0]["body"]["input"], "start", "{record}");
    assert_eq!(events.last().unwrap()["kind"], "end", "{record}");
    let deploys = events
        .iter()
        .filter(|e| e["kind"] == "command" && e["body"]["ok"] == true)
        .count();
    assert_eq!(deploys, 7, "{record}");
    let (status, _) = e.get("/api/v1/deploy/runs/999").await;
    assert_eq!(status, 404);

    // v2 breaks lhr: its P0 health check fails at once; the canary goes back to v1, and no
    // other stage is touched.
    let before = fleet.log().len();
    let id = start(&e, "v2-lhr-bad").await;
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "rolled_back", "{run}");
    assert!(
        reason(&run).contains("P0 check \"health\" on lhr failed"),
        "{run}"
    );
    let log = fleet.log()[before..].to_vec();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("deploy ")).count(),
        2,
        "only the canary was deployed: {log:?}"
    );
    assert!(log.contains(&"rollback lhr v1".to_string()), "{log:?}");
    assert!(log.contains(&"rollback nrt v1".to_string()), "{log:?}");
    assert_eq!(fleet.serves("lhr").await.as_deref(), Some("v1"));
    assert_eq!(fleet.serves("ewr").await.as_deref(), Some("v1"));
    // The P0 alert is in the deploys' alerts, and the run on the audit trail.
    let (_, trail) = e.get("/api/v1/deploy/audit-trail?limit=5").await;
    assert_eq!(trail["alerts"][0]["priority"], "P0", "{trail}");
    assert_eq!(trail["alerts"][0]["run"], id, "{trail}");
    let kinds = e.audit_kinds().await;
    for k in ["deploy.started", "deploy.phase", "deploy.finished"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let (_, status) = e.get("/api/v1/deploy/status").await;
    assert_eq!(status["plans"][0]["targets"]["lhr"], "v1", "{status}");
}

#[tokio::test]
async fn a_primary_failing_its_p1_check_three_times_rolls_back_primary_then_canary() {
    let (e, fleet) = fleet_on_v1("", 1, 8).await;
    let before = fleet.log().len();
    let id = start(&e, "v2-ewr-slow").await;
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "rolled_back", "{run}");
    assert!(
        reason(&run).contains("P1 check \"error rate\" on ewr failed (consecutive_failures)"),
        "{run}"
    );
    let rate = stage(&run, "primary")["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "error rate")
        .unwrap()
        .clone();
    let outcomes: Vec<&str> = rate["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failure", "failure", "failure"], "{rate}");
    let log = fleet.log()[before..].to_vec();
    let rollbacks: Vec<&String> = log.iter().filter(|l| l.starts_with("rollback")).collect();
    assert_eq!(
        rollbacks[0], "rollback ewr v1",
        "the primary first: {log:?}"
    );
    assert_eq!(rollbacks.len(), 3, "then both canaries: {log:?}");
    assert!(
        !log.iter().any(|l| l.contains("ord")),
        "full never touched: {log:?}"
    );
    assert_eq!(fleet.serves("ewr").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_failing_full_stage_target_ends_partial_and_keeps_the_primary() {
    let (e, fleet) = fleet_on_v1("", 1, 1).await;
    let id = start(&e, "v3-sin-bad").await;
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "succeeded_partial", "{run}");
    assert_eq!(
        fleet.serves("ewr").await.as_deref(),
        Some("v3-sin-bad"),
        "primary kept"
    );
    assert_eq!(
        fleet.serves("lhr").await.as_deref(),
        Some("v3-sin-bad"),
        "canary kept"
    );
    assert_eq!(fleet.serves("sin").await.as_deref(), Some("v1"), "sin back");
    let full = stage(&run, "full");
    assert_eq!(full["rolled_back"].as_array().unwrap().len(), 4, "{full}");
    let (_, trail) = e.get("/api/v1/deploy/audit-trail?limit=1").await;
    assert_eq!(trail["alerts"][0]["priority"], "P1", "{trail}");
}

#[tokio::test]
async fn pause_resume_promote_and_abort() {
    // The canary's gate needs 600 successes: it holds until someone acts.
    let (mut e, fleet) = fleet_on_v1("", 1, 1).await;
    let config = fleet.config("", 600, 600);
    std::fs::write(e.root().join("config.toml"), config).unwrap();
    e = e.restart();
    let id = start(&e, "v4").await;
    phase(&e, "verifying", "canary").await;
    let (status, v) = e.post("/api/v1/deploy/regions/pause", json!({})).await;
    assert_eq!((status, v["phase"].as_str()), (200, Some("paused")), "{v}");
    let (status, v) = e.post("/api/v1/deploy/regions/pause", json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("already_paused")),
        "{v}"
    );
    let (status, v) = e.post("/api/v1/deploy/regions/resume", json!({})).await;
    assert_eq!(
        (status, v["phase"].as_str()),
        (200, Some("verifying")),
        "{v}"
    );
    // Promote: the canary passes now; the primary deploys and is verified.
    let out = util::cli(&["deploy", "promote", "regions", "--url", e.url()]);
    assert!(out.ok(), "{out:?}");
    phase(&e, "verifying", "primary").await;
    // A second run while this one goes on: 409.
    let (status, v) = e
        .post(
            "/api/v1/deploy/run",
            json!({"plan": "regions", "version": "v5"}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("deploy_in_progress")),
        "{v}"
    );
    // Abort: the primary, then the canary, go back to v1.
    let (status, v) = e.post("/api/v1/deploy/regions/abort", json!({})).await;
    assert_eq!(status, 200, "{v}");
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "aborted", "{run}");
    assert_eq!(fleet.serves("ewr").await.as_deref(), Some("v1"));
    assert_eq!(fleet.serves("nrt").await.as_deref(), Some("v1"));
    let (status, v) = e.post("/api/v1/deploy/regions/resume", json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("no_deploy_in_progress")),
        "{v}"
    );
}

#[tokio::test]
async fn an_engine_killed_during_the_primarys_gate_finishes_without_deploying_twice() {
    // The primary's gate takes ~3 s (30 successes, 100 ms apart): time to kill the engine in it.
    let (mut e, fleet) = fleet_on_v1("", 1, 30).await;
    let before = fleet.log().len();
    let id = start(&e, "v6").await;
    phase(&e, "verifying", "primary").await;
    e.kill9();
    let e = e.resume();
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let log = fleet.log()[before..].to_vec();
    let mut seen = std::collections::BTreeSet::new();
    for line in &log {
        assert!(seen.insert(line.clone()), "{line} ran twice: {log:?}");
    }
    assert_eq!(log.len(), 7, "each region deployed once: {log:?}");
    for t in fleet.ports.keys() {
        assert_eq!(fleet.serves(t).await.as_deref(), Some("v6"), "{t}");
    }
    let kinds = e.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "deploy.recovered"), "{kinds:?}");
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git (scripts/test-deps.sh installs it)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_push_deploys_the_pushed_commit_and_a_forged_push_is_refused() {
    let root = unique_dir("sovereign-e2e-deploy-hook");
    let repo = root.join("app");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "one"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let fleet = Fleet::new(&root);
    let config = fleet
        .config("", 1, 1)
        .replace(
            "[deploy.plans.regions]\n",
            "[deploy.plans.regions]\nversion = { git = \"app\", ref = \"main\" }\nhook = { secret = \"push-secret-0123456789\", branch = \"main\" }\n",
        );
    let e = Engine::start_in(root, Some(&config));
    let push =
        json!({"ref": "refs/heads/main", "after": commit, "pusher": {"name": "dev"}}).to_string();
    let sign = |secret: &str| format!("sha256={}", hmac_sha256_hex(secret, push.as_bytes()));
    let post = |sig: String, body: String| {
        let e = &e;
        async move {
            e.post_raw(
                "/api/v1/deploy/hooks/regions",
                body.as_bytes(),
                &[
                    ("content-type", "application/json"),
                    ("x-hub-signature-256", &sig),
                ],
            )
            .await
        }
    };
    // Forged: refused, recorded, nothing deployed.
    let (status, v) = post(sign("not-the-secret-000000"), push.clone()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("bad_signature")),
        "{v}"
    );
    wait_for(
        "deploy.hook_refused on the audit trail",
        util::PATIENCE,
        || async {
            e.audit_kinds()
                .await
                .iter()
                .any(|k| k == "deploy.hook_refused")
                .then_some(())
        },
    )
    .await;
    // Another branch: ignored.
    let other = push.replace("refs/heads/main", "refs/heads/dev");
    let (status, v) = post(
        format!(
            "sha256={}",
            hmac_sha256_hex("push-secret-0123456789", other.as_bytes())
        ),
        other,
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("ignored")),
        "{v}"
    );
    // Signed: the pushed commit deploys.
    let (status, v) = post(sign("push-secret-0123456789"), push.clone()).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["version"], commit.as_str(), "{v}");
    assert_eq!(v["trigger"], "hook", "{v}");
    let run = ended(&e, v["id"].as_u64().unwrap()).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(fleet.serves("bom").await.as_deref(), Some(commit.as_str()));
    assert_eq!(fleet.log().len(), 7, "one run, each region once");
    // A ref that does not resolve in the repository.
    let (status, v) = e
        .post(
            "/api/v1/deploy/run",
            json!({"plan": "regions", "version": "no-such-ref"}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("version_unresolved")),
        "{v}"
    );
}

#[tokio::test]
async fn a_deploy_window_refuses_during_a_session() {
    let root = unique_dir("sovereign-e2e-deploy-window");
    let fleet = Fleet::new(&root);
    // A session open from an hour ago to an hour from now, every day.
    let now = chrono::Utc::now();
    let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let window = "[calendars.daily]\nweekdays = [\"MON\", \"TUE\", \"WED\", \"THU\", \"FRI\", \"SAT\", \"SUN\"]\n";
    let config = fleet.config(window, 1, 1).replace(
        "[deploy.plans.regions]\n",
        &format!(
            "[deploy.plans.regions]\nwindow = {{ calendar = \"daily\", session = \"{}-{}\", tz = \"UTC\" }}\n",
            hm(now - chrono::Duration::hours(1)),
            hm(now + chrono::Duration::hours(1))
        ),
    );
    let e = Engine::start_in(root, Some(&config));
    let (status, v) = e
        .post(
            "/api/v1/deploy/run",
            json!({"plan": "regions", "version": "v1"}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("session_open")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily is in session until"),
        "{v}"
    );
    assert!(fleet.log().is_empty());
}

#[tokio::test]
async fn bad_input_gets_a_stable_code_and_changes_nothing() {
    let (e, fleet) = fleet_on_v1("", 1, 1).await;
    let (status, v) = e
        .post(
            "/api/v1/deploy/run",
            json!({"plan": "nope", "version": "v1"}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("unknown_plan")),
        "{v}"
    );
    for bad in ["-rf", "v 2", "$(id)"] {
        let (status, v) = e
            .post(
                "/api/v1/deploy/run",
                json!({"plan": "regions", "version": bad}),
            )
            .await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("invalid_version")),
            "{bad}: {v}"
        );
    }
    // A deploy command that exits non-zero: the canary goes back, the reason says why.
    let id = start(&e, "v2-nrt-fail").await;
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "rolled_back", "{run}");
    assert!(reason(&run).contains("the deploy of nrt failed"), "{run}");
    assert!(reason(&run).contains("exited with status 1"), "{run}");
    // A deploy command that hangs past its timeout (5 s).
    let id = start(&e, "v3-lhr-hang").await;
    let run = ended(&e, id).await;
    assert_eq!(run["outcome"], "rolled_back", "{run}");
    assert!(reason(&run).contains("did not finish within"), "{run}");
    // A rollback that itself fails: P0, the run ends failed, the other targets still go
    // back, and nothing is retried.
    let before = fleet.log().len();
    let out = util::cli(&[
        "deploy",
        "rollback",
        "regions",
        "--to",
        "v9-lhr-fail",
        "--wait",
        "--url",
        e.url(),
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("ended failed: the rollback of lhr failed"),
        "{out:?}"
    );
    let log = fleet.log()[before..].to_vec();
    assert_eq!(log.len(), 6, "every other target went back: {log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("rollback lhr")),
        "{log:?}"
    );
    let (_, h) = e.get("/api/v1/deploy/history?limit=1").await;
    assert_eq!(
        stage(&h["runs"][0], "canary")["rollback_failed"],
        json!(["lhr"]),
        "{h}"
    );
    let (_, trail) = e.get("/api/v1/deploy/audit-trail?limit=1").await;
    assert_eq!(trail["alerts"][0]["priority"], "P0", "{trail}");
    let (_, v) = e.get("/api/v1/deploy/status").await;
    assert!(v["plans"][0]["active"].is_null(), "{v}");
    // Deploys, trading, the healer and the scheduler in one document.
    let (status, a) = e.get("/api/v1/autonomy/status").await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["deploy"]["plans"][0]["plan"], "regions", "{a}");
    assert_eq!(a["deploy"]["plans"][0]["state"], "idle", "{a}");
    assert_eq!(a["deploy"]["plans"][0]["last_outcome"], "failed", "{a}");
    assert_eq!(a["trading"]["hardstop"], false, "{a}");
    assert_eq!(
        a["trading"]["accounts"][0]["trading_state"], "active",
        "{a}"
    );
    assert_eq!(a["scheduler"]["running"], true, "{a}");
}

#[test]
fn a_template_naming_an_unknown_placeholder_stops_the_start() {
    let dir = unique_dir("sovereign-e2e-deploy-config");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        r#"
[deploy.plans.web]
[[deploy.plans.web.stages]]
name = "canary"
[[deploy.plans.web.stages.targets]]
name = "a"
service = "nope"
deploy = ["./deploy.sh", "{verison}"]
rollback = ["./deploy.sh", "{previous}"]
[[deploy.plans.web.stages.targets.checks]]
kind = "tcp"
address = "127.0.0.1:1"
url = "http://x"
"#,
    )
    .unwrap();
    let out = util::cli(&["check", config.to_str().unwrap()]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("deploy.plans.web.stages[0].targets[0].deploy[1]"),
        "{out:?}"
    );
    assert!(out.stderr.contains("{verison}"), "{out:?}");
    assert!(
        out.stderr.contains("url does not belong to a tcp check"),
        "{out:?}"
    );
}

//! Truth end to end: files → the version in force, injected into a service's environment,
//! reloaded on change (the service restarted), a malformed change refused with the previous
//! version kept, secrets masked in the API and the CLI unless revealed.

use std::path::Path;

use serde_json::{json, Value};

use crate::util::{cli, unique_dir, wait_for, Engine, PATIENCE};

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn truth_files(root: &Path, feed_url: &str) {
    write(
        &root.join("truth/node.json"),
        &json!({"name": "box-1", "env": {"REGION": "us"}}),
    );
    write(
        &root.join("truth/components/feed.json"),
        &json!({"env": {"FEED_URL": feed_url, "FEED_HOST": feed_url.trim_start_matches("wss://"),
                        "API_KEY": "k-secret-123"}, "secrets": ["FEED_URL"]}),
    );
    write(
        &root.join("truth/components/risk.json"),
        &json!({"max_loss": "2500"}),
    );
}

async fn log_text(e: &Engine, name: &str) -> String {
    let (_, log) = e.get(&format!("/api/services/{name}/logs?tail=1000")).await;
    log["lines"].to_string()
}

#[tokio::test]
async fn truth_feeds_services_reloads_on_change_and_keeps_the_last_good_version() {
    let config = r#"
[truth]
dir = "truth"
watch_interval = "100ms"
[services.feed]
command = ["sh", "-c", "echo \"feed=$FEED_URL host=$FEED_HOST region=$REGION key=$API_KEY\"; exec sleep 1000"]
truth = "feed"
[services.other]
command = ["sh", "-c", "echo \"other=$FEED_URL\"; exec sleep 1000"]
"#;
    // The files must exist before the engine starts: write them into a fresh root first.
    let root = unique_dir("sovereign-truth");
    truth_files(&root, "wss://a.example");
    let e = Engine::start_in(root, Some(config));
    let (_, t) = e.get("/api/truth").await;
    let v1 = t["version"].as_str().unwrap().to_string();
    assert!(v1.starts_with("sha256:"), "{t}");
    assert_eq!(t["node"]["name"], "box-1");
    assert_eq!(t["components"]["feed"]["env"]["API_KEY"], "***");
    assert_eq!(t["components"]["feed"]["env"]["FEED_URL"], "***");
    assert!(
        !t.to_string().contains("k-secret-123") && !t.to_string().contains("wss://a"),
        "{t}"
    );
    let (status, c) = e.get("/api/truth/feed").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c["env_keys"],
        json!(["API_KEY", "FEED_HOST", "FEED_URL", "REGION"])
    );
    let (status, c) = e.get("/api/truth/nope").await;
    assert_eq!(
        (status, c["error"]["code"].as_str()),
        (404, Some("unknown_component"))
    );
    // The service gets its secrets; what it prints of them is masked in its captured log.
    wait_for(
        "the service with its Truth environment",
        PATIENCE,
        || async {
            log_text(&e, "feed")
                .await
                .contains("feed=*** host=a.example region=us key=***")
                .then_some(())
        },
    )
    .await;
    let log = log_text(&e, "feed").await;
    assert!(
        !log.contains("k-secret-123") && !log.contains("wss://"),
        "{log}"
    );
    let file = std::fs::read_to_string(e.root().join("data/logs/feed.log")).expect("feed.log");
    assert!(!file.contains("k-secret-123"), "{file}");
    // A service without truth gets none.
    wait_for("the other service's line", PATIENCE, || async {
        log_text(&e, "other")
            .await
            .contains("out other=\"")
            .then_some(())
    })
    .await;

    // A change: new version in force, the feed service restarted with the new environment,
    // the other service left alone.
    let other_pid = e.get("/api/services").await.1["services"][1]["pid"].clone();
    truth_files(e.root(), "wss://b.example");
    wait_for("the restarted service", PATIENCE, || async {
        log_text(&e, "feed")
            .await
            .contains("host=b.example")
            .then_some(())
    })
    .await;
    let (_, t) = e.get("/api/truth").await;
    let v2 = t["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert!(log_text(&e, "feed")
        .await
        .contains("truth changed: restarting"));
    assert_eq!(
        e.get("/api/services").await.1["services"][1]["pid"],
        other_pid
    );

    // A malformed change: refused, named, the version in force stays, nothing restarted.
    std::fs::write(
        e.root().join("truth/components/feed.json"),
        "{\"env\": {\"FEED_URL\": }",
    )
    .unwrap();
    let rejected = wait_for("the refusal", PATIENCE, || async {
        let (_, t) = e.get("/api/truth").await;
        (!t["rejected"].is_null()).then_some(t)
    })
    .await;
    assert_eq!(rejected["version"], v2.as_str());
    let problem = rejected["rejected"]["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("components/feed.json: not JSON:"),
        "{problem}"
    );
    assert_eq!(
        log_text(&e, "feed").await.matches("feed=*** host=").count(),
        2
    );

    let kinds = e.audit_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "truth.changed").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "truth.rejected"));
    let (_, audit) = e.get("/api/audit?limit=10000").await;
    assert!(!audit.to_string().contains("k-secret-123"));

    // Restarted on a broken file: the version last in force (from the store) is used.
    let e = e.restart();
    let (_, t) = e.get("/api/truth").await;
    assert_eq!(t["version"], v2.as_str(), "{t}");
    assert!(!t["rejected"].is_null());
    wait_for(
        "the service with the stored version's environment",
        PATIENCE,
        || async {
            log_text(&e, "feed")
                .await
                .contains("host=b.example")
                .then_some(())
        },
    )
    .await;
}

#[test]
fn the_truth_cli_builds_shows_and_reveals() {
    let root = unique_dir("sovereign-truth-cli");
    truth_files(&root, "wss://a.example");
    let dir = root.join("truth");
    let dir = dir.to_str().unwrap();
    let out = cli(&["truth", "build", "--dir", dir]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.starts_with("ok: sha256:")
            && out
                .stdout
                .contains("node box-1, 2 component(s): feed, risk"),
        "{out:?}"
    );
    let out = cli(&["truth", "show", "feed", "--dir", dir]);
    assert!(
        out.ok() && out.stdout.contains("\"***\"") && !out.stdout.contains("k-secret-123"),
        "{out:?}"
    );
    let out = cli(&["truth", "show", "feed", "--dir", dir, "--reveal"]);
    assert!(out.ok() && out.stdout.contains("k-secret-123"), "{out:?}");
    let out = cli(&["truth", "show", "nope", "--dir", dir]);
    assert_eq!(out.code, Some(1));
    // A malformed file: every problem, by file, exit 1.
    std::fs::write(root.join("truth/components/risk.json"), "[1]").unwrap();
    std::fs::write(root.join("truth/node.json"), "{}").unwrap();
    let out = cli(&["truth", "build", "--dir", dir]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("node.json: name: must be a non-empty string"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("components/risk.json: must be a JSON object"),
        "{out:?}"
    );
}

#[tokio::test]
async fn truth_diff_compares_the_files_with_the_engine() {
    let root = unique_dir("sovereign-truth-diff");
    truth_files(&root, "wss://a.example");
    let e = Engine::start_in(root, Some("[truth]\ndir = \"truth\"\n"));
    let dir = e.root().join("truth");
    let out = cli(&[
        "truth",
        "diff",
        "--dir",
        dir.to_str().unwrap(),
        "--url",
        e.url(),
    ]);
    assert!(
        out.ok() && out.stdout.starts_with("same: sha256:"),
        "{out:?}"
    );
    // A copy changed elsewhere: one component changed, one added, one removed.
    let copy = unique_dir("sovereign-truth-copy");
    truth_files(&copy, "wss://c.example");
    std::fs::remove_file(copy.join("truth/components/risk.json")).unwrap();
    write(&copy.join("truth/components/exec.json"), &json!({}));
    let out = cli(&[
        "truth",
        "diff",
        "--dir",
        copy.join("truth").to_str().unwrap(),
        "--url",
        e.url(),
    ]);
    assert!(out.ok(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().skip(2).collect();
    assert_eq!(lines, vec!["+ exec", "~ feed", "- risk"], "{out:?}");
}

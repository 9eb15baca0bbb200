//! The audit trail end to end: actions land on it, `sovereign audit export|verify` work on the
//! engine and on an exported file, and tampering — in a file or in the database itself — is
//! caught and named.

use serde_json::{json, Value};

use crate::util::{cli, Engine};

const CONFIG: &str =
    "[trading]\nsynthetic_feed = false\n[webhooks.sources.tv]\ntoken = \"tok-123456\"\n";

async fn records(e: &Engine) -> Vec<Value> {
    let (status, body) = e.get("/api/audit?limit=10000").await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().cloned().expect("records")
}

fn write_lines(path: &std::path::Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write file");
}

#[tokio::test]
async fn audit_trail_records_actions_and_catches_tampering() {
    let e = Engine::start(Some(CONFIG));
    e.register(json!({"task_id": "t1", "name": "T1", "handler": "log_signal"}))
        .await;
    let (status, _) = e.post_raw("/webhook/tv/guess-987654", b"x", &[]).await;
    assert_eq!(status, 401);
    e.post("/api/risk/hardstop", json!({"reason": "end of day"}))
        .await;
    e.delete("/api/tasks/t1").await;

    // Records are queued behind the actions; wait until all seven are there (the halt pins the
    // journal's head with a checkpoint). The halt also raises an alert, whose record follows
    // once the alert is in the outbox (it may pass the delete).
    let list = crate::util::wait_for("audit records", crate::util::PATIENCE, || async {
        let r = records(&e).await;
        (r.len() >= 7).then_some(r)
    })
    .await;
    let alert = list.iter().find(|r| r["kind"] == "alert.raised").unwrap();
    assert_eq!(
        (
            alert["actor"].as_str(),
            alert["payload"]["priority"].as_str(),
            alert["payload"]["source"].as_str()
        ),
        (Some("engine"), Some("P0"), Some("risk"))
    );
    let kinds: Vec<&str> = list
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or_default())
        .filter(|k| *k != "alert.raised")
        .collect();
    assert_eq!(
        kinds,
        [
            "engine.started",
            "task.registered",
            "webhook.rejected",
            "trading.state_changed",
            "trading.journal_checkpoint",
            "task.deleted"
        ]
    );
    assert_eq!(list[3]["payload"]["reason"], "end of day");
    assert_eq!(list[3]["payload"]["to"], "halted");
    assert!(
        !list[2].to_string().contains("guess-987654"),
        "a rejected credential is not recorded: {}",
        list[2]
    );
    assert_eq!(list[0]["prev"], "0".repeat(64));
    // The start names the config by path and content hash.
    let config_path = e.root().join("config.toml");
    assert_eq!(
        list[0]["payload"]["config"]["path"],
        config_path.display().to_string()
    );
    assert_eq!(
        list[0]["payload"]["config"]["sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    assert_eq!(list[1]["prev"], list[0]["hash"]);
    let (_, paged) = e.get("/api/audit?since=3&limit=1").await;
    assert_eq!(paged["records"][0]["seq"], 4);
    let (status, bad) = e.get("/api/audit?since=abc").await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("since"))
    );

    // Verify through the engine, export, verify the file offline.
    let url = e.url().to_string();
    let ok = cli(&["audit", "verify", "--url", &url]);
    assert!(ok.ok(), "{ok:?}");
    assert!(
        ok.stdout.starts_with("ok: 7 records, head 7 "),
        "{}",
        ok.stdout
    );
    let file = e.root().join("audit.jsonl");
    let file_s = file.to_str().unwrap().to_string();
    let exported = cli(&["audit", "export", "--url", &url, "--output", &file_s]);
    assert!(exported.ok(), "{exported:?}");
    let offline = cli(&["audit", "verify", &file_s]);
    assert!(offline.ok(), "{offline:?}");
    assert_eq!(
        offline.stdout,
        ok.stdout.lines().next().unwrap_or_default().to_string() + "\n",
        "the file and the engine agree on the head"
    );

    // Each kind of tampering with the file: exit 4, the first bad record named.
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let edited = {
        let mut v: Value = serde_json::from_str(&lines[3]).unwrap();
        v["payload"]["reason"] = json!("nothing to see");
        v.to_string()
    };
    type Tamper = Box<dyn Fn(&[String]) -> Vec<String>>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "changed",
            Box::new(move |l: &[String]| {
                let mut v = l.to_vec();
                v[3] = edited.clone();
                v
            }),
            "record 4 (changed)",
        ),
        (
            "removed",
            Box::new(|l: &[String]| {
                let mut v = l.to_vec();
                v.remove(1);
                v
            }),
            "record 2 (removed)",
        ),
        (
            "reordered",
            Box::new(|l: &[String]| {
                let mut v = l.to_vec();
                v.swap(1, 2);
                v
            }),
            "(reordered)",
        ),
    ];
    for (name, tamper, expected) in cases {
        let path = e.root().join(format!("audit-{name}.jsonl"));
        write_lines(&path, &tamper(&lines));
        let out = cli(&["audit", "verify", path.to_str().unwrap()]);
        assert_eq!(out.code, Some(4), "{name}: {out:?}");
        assert_eq!(out.stderr_lines().len(), 1, "{name}: {out:?}");
        assert!(out.stderr.contains(expected), "{name}: {}", out.stderr);
    }
    let malformed = e.root().join("audit-malformed.jsonl");
    write_lines(&malformed, &[lines[0].clone(), "{not json".into()]);
    let out = cli(&["audit", "verify", malformed.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("audit-malformed.jsonl:2:"),
        "{}",
        out.stderr
    );

    // Anchor the head, then drop the last record from an export: only the anchored head shows it.
    let anchors = e.root().join("anchors");
    let anchored = cli(&[
        "anchor",
        "audit",
        "--url",
        &url,
        "--output",
        anchors.to_str().unwrap(),
    ]);
    assert!(anchored.ok(), "{anchored:?}");
    let head_file = anchors.join("audit-head-7.json");
    let head_anchor = anchors.join("audit-head-7.json.anchor.yaml");
    let checked = cli(&[
        "anchor",
        "verify",
        head_anchor.to_str().unwrap(),
        head_file.to_str().unwrap(),
    ]);
    assert!(checked.ok(), "{checked:?}");
    let truncated = e.root().join("audit-truncated.jsonl");
    write_lines(&truncated, &lines[..6]);
    let plain = cli(&["audit", "verify", truncated.to_str().unwrap()]);
    assert!(
        plain.ok(),
        "a cut tail is a valid chain on its own: {plain:?}"
    );
    let against_head = cli(&[
        "audit",
        "verify",
        truncated.to_str().unwrap(),
        "--head",
        head_file.to_str().unwrap(),
    ]);
    assert_eq!(against_head.code, Some(4), "{against_head:?}");
    assert!(
        against_head.stderr.contains("record 7 (removed)"),
        "{}",
        against_head.stderr
    );

    // Tampering with the database itself is caught by the engine's verify.
    let db = e.root().join("data").join("sovereign.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let caught = cli(&["audit", "verify", "--url", &url]);
    assert_eq!(caught.code, Some(4), "{caught:?}");
    assert!(
        caught.stderr.contains("record 2 (changed)"),
        "{}",
        caught.stderr
    );
}

//! Truth documents: building, every problem named by file and field, versions, redaction, diff.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use sovereign_core::truth::{build, TruthFile};

fn file(path: &str, v: serde_json::Value) -> TruthFile {
    TruthFile {
        path: path.into(),
        text: v.to_string(),
    }
}

fn node() -> TruthFile {
    file(
        "truth/node.json",
        json!({"name": "box-1", "env": {"TZ": "UTC", "REGION": "us"}}),
    )
}

fn feed() -> TruthFile {
    file(
        "truth/components/feed.json",
        json!({"name": "feed", "env": {"FEED_URL": "wss://x", "API_KEY": "k-123", "PORT": 9000, "DEBUG": false, "REGION": "eu"},
               "secrets": ["FEED_URL"], "symbols": ["ES", "NQ"]}),
    )
}

#[test]
fn builds_env_and_a_stable_content_version() {
    let t = build(&node(), &[feed()]).unwrap();
    let env = &t.components["feed"].env;
    assert_eq!(env["TZ"], "UTC");
    assert_eq!(env["REGION"], "eu", "the component overrides the node");
    assert_eq!(
        (env["PORT"].as_str(), env["DEBUG"].as_str()),
        ("9000", "false")
    );
    assert!(t.version.starts_with("sha256:") && t.version.len() == 7 + 64);
    // Same content, other key order and whitespace: same version.
    let reordered = TruthFile {
        path: "truth/components/feed.json".into(),
        text: r#"{ "symbols": ["ES","NQ"], "secrets": ["FEED_URL"],
                   "env": {"REGION": "eu", "DEBUG": false, "PORT": 9000, "API_KEY": "k-123", "FEED_URL": "wss://x"}, "name": "feed" }"#
            .into(),
    };
    assert_eq!(build(&node(), &[reordered]).unwrap().version, t.version);
    let changed = file("truth/components/feed.json", json!({"env": {"PORT": 9001}}));
    assert_ne!(build(&node(), &[changed]).unwrap().version, t.version);
}

#[test]
fn secrets_are_masked_unless_revealed() {
    let t = build(&node(), &[feed()]).unwrap();
    let shown = t.redacted_component("feed").unwrap();
    assert_eq!(shown["env"]["API_KEY"], "***");
    assert_eq!(shown["env"]["FEED_URL"], "***", "listed in secrets");
    assert_eq!(shown["env"]["PORT"], 9000);
    let view = t.view(false).to_string();
    assert!(
        !view.contains("k-123") && !view.contains("wss://x"),
        "{view}"
    );
    let revealed = t.view(true);
    assert_eq!(revealed["components"]["feed"]["env"]["API_KEY"], "k-123");
}

#[test]
fn every_problem_names_its_file_and_field() {
    let bad_node = file("truth/node.json", json!({"env": {"1BAD": "x", "OK": [1]}}));
    let files = [
        file("truth/components/feed.json", json!({"name": "other"})),
        TruthFile {
            path: "truth/components/api.json".into(),
            text: "{\"env\": {,}}".into(),
        },
        file("truth/components/list.json", json!([1, 2])),
        file("truth/components/bad name.json", json!({})),
        file(
            "truth/components/sec.json",
            json!({"secrets": "API_KEY", "env": "x"}),
        ),
    ];
    let problems = build(&bad_node, &files).unwrap_err();
    let expected = [
        "truth/node.json: name: must be a non-empty string",
        "truth/node.json: env.1BAD: not a valid environment variable name",
        "truth/node.json: env.OK: must be a string, number or boolean",
        "truth/components/feed.json: name: must be \"feed\", as the file is named",
        "truth/components/api.json: not JSON: key must be a string at line 1 column 10",
        "truth/components/list.json: must be a JSON object",
        "truth/components/bad name.json: a component file is NAME.json",
        "truth/components/sec.json: env: must be an object",
        "truth/components/sec.json: secrets: must be a list of key names",
    ];
    for e in expected {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "missing {e:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn the_node_component_list_must_match_the_files() {
    let node = file(
        "truth/node.json",
        json!({"name": "box-1", "environment": "prod", "components": ["feed", "gateway"]}),
    );
    let files = [feed(), file("truth/components/extra.json", json!({}))];
    let problems = build(&node, &files).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "truth/node.json: components[1]: no file components/gateway.json",
            "truth/components/extra.json: not listed in node.json components",
        ]
    );
    let node = file(
        "truth/node.json",
        json!({"name": "box-1", "environment": "prod", "components": ["feed"]}),
    );
    let t = build(&node, &[feed()]).unwrap();
    assert_eq!(t.node["environment"], "prod");
    let bad = file(
        "truth/node.json",
        json!({"name": "box-1", "components": "feed"}),
    );
    assert_eq!(
        build(&bad, &[feed()]).unwrap_err(),
        vec!["truth/node.json: components: must be a list of component names"]
    );
}

#[test]
fn diff_names_what_changed() {
    let old = build(
        &node(),
        &[
            feed(),
            file("truth/components/api.json", json!({"port": 1})),
        ],
    )
    .unwrap();
    let new = build(
        &node(),
        &[
            feed(),
            file("truth/components/api.json", json!({"port": 2})),
            file("truth/components/risk.json", json!({})),
        ],
    )
    .unwrap();
    let d = new.diff(&old);
    assert_eq!(
        (
            d.added.clone(),
            d.changed.clone(),
            d.removed.clone(),
            d.node_changed
        ),
        (
            vec!["risk".to_string()],
            vec!["api".to_string()],
            vec![],
            false
        )
    );
    assert_eq!(
        d.affected(&new.components).into_iter().collect::<Vec<_>>(),
        vec!["api", "risk"]
    );
    assert!(new.diff(&new).is_empty());
    let other_node = build(
        &file("truth/node.json", json!({"name": "box-2"})),
        &[feed()],
    )
    .unwrap();
    let d = other_node.diff(&build(&node(), &[feed()]).unwrap());
    assert!(d.node_changed);
    assert_eq!(d.affected(&other_node.components).len(), 1);
}

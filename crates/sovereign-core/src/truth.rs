//! Truth: the node's configuration document, built from `node.json` and one
//! `components/NAME.json` per component, with a content-hash version.
//!
//! Pure: the caller reads the files and passes their names and text. Every problem is reported
//! with its file and field; a document is only produced when there are none.
//!
//! # Shape
//! - `node.json`: an object with a non-empty `name`; an optional `env` (string, number or bool
//!   values) applies to every component; an optional `components` list names the components,
//!   and then every one listed must have its file and every file must be listed. Other fields
//!   (`environment`, …) are kept as they are.
//! - `components/NAME.json`: an object; `name`, when given, must equal `NAME`; an optional `env`
//!   (overriding the node's) is what a service that names this component receives; an optional
//!   `secrets` list names more keys to hide. Other fields are kept as they are.
//! - Secrets — keys with secret names (`*_PASSWORD`, `*_TOKEN`, `api_key`, … see
//!   [`crate::redact`]) and those listed — are masked in [`Truth::redacted`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::audit::hash_of;
use crate::redact::{redact, MASK};

/// One file as read: its path (for messages) and text.
#[derive(Debug, Clone)]
pub struct TruthFile {
    pub path: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// The file's object as written.
    pub body: Value,
    /// The environment a service of this component receives (node env + component env).
    pub env: BTreeMap<String, String>,
    /// Keys hidden from every view besides their secret-looking names.
    pub secrets: BTreeSet<String>,
    /// SHA-256 of the component's canonical JSON.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// `sha256:` + the hash of the whole document's canonical JSON.
    pub version: String,
    pub node: Value,
    pub components: BTreeMap<String, Component>,
}

/// What changed between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TruthDiff {
    pub node_changed: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl TruthDiff {
    pub fn is_empty(&self) -> bool {
        !self.node_changed
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }

    /// Components whose services see a different environment or document: every component
    /// (and every removed one) when the node changed.
    pub fn affected(&self, all: &BTreeMap<String, Component>) -> BTreeSet<String> {
        if self.node_changed {
            return all.keys().chain(&self.removed).cloned().collect();
        }
        self.added
            .iter()
            .chain(&self.removed)
            .chain(&self.changed)
            .cloned()
            .collect()
    }
}

fn problem(file: &str, field: &str, message: impl std::fmt::Display) -> String {
    if field.is_empty() {
        format!("{file}: {message}")
    } else {
        format!("{file}: {field}: {message}")
    }
}

fn parse_object(f: &TruthFile, problems: &mut Vec<String>) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(&f.text) {
        Ok(Value::Object(m)) => Some(m),
        Ok(_) => {
            problems.push(problem(&f.path, "", "must be a JSON object"));
            None
        }
        Err(e) => {
            problems.push(problem(&f.path, "", format!("not JSON: {e}")));
            None
        }
    }
}

fn env_of(
    f: &TruthFile,
    obj: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match obj.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let field = format!("env.{k}");
                let valid_name = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid_name {
                    problems.push(problem(
                        &f.path,
                        &field,
                        "not a valid environment variable name",
                    ));
                    continue;
                }
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    Value::Number(n) => {
                        out.insert(k.clone(), n.to_string());
                    }
                    Value::Bool(b) => {
                        out.insert(k.clone(), b.to_string());
                    }
                    _ => problems.push(problem(
                        &f.path,
                        &field,
                        "must be a string, number or boolean",
                    )),
                }
            }
        }
        Some(_) => problems.push(problem(&f.path, "env", "must be an object")),
    }
    out
}

fn component_name(path: &str) -> Option<&str> {
    let file = path.rsplit('/').next()?;
    let stem = file.strip_suffix(".json")?;
    let ok = !stem.is_empty()
        && stem.len() <= 64
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(stem)
}

/// Build the document, or every problem found (each `FILE: FIELD: message`).
pub fn build(node: &TruthFile, components: &[TruthFile]) -> Result<Truth, Vec<String>> {
    let mut problems = Vec::new();
    let node_obj = parse_object(node, &mut problems);
    if let Some(n) = &node_obj {
        match n.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => problems.push(problem(&node.path, "name", "must be a non-empty string")),
        }
    }
    let node_env = node_obj
        .as_ref()
        .map(|n| env_of(node, n, &mut problems))
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for f in components {
        let Some(name) = component_name(&f.path) else {
            problems.push(problem(
                &f.path,
                "",
                "a component file is NAME.json, NAME of letters, digits, '-', '_' or '.'",
            ));
            continue;
        };
        let Some(obj) = parse_object(f, &mut problems) else {
            continue;
        };
        match obj.get("name") {
            None => {}
            Some(Value::String(s)) if s == name => {}
            Some(_) => problems.push(problem(
                &f.path,
                "name",
                format!("must be {name:?}, as the file is named"),
            )),
        }
        let mut env = node_env.clone();
        env.extend(env_of(f, &obj, &mut problems));
        let secrets = match obj.get("secrets") {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                problems.push(problem(&f.path, "secrets", "must be a list of key names"));
                BTreeSet::new()
            }
        };
        let body = Value::Object(obj);
        out.insert(
            name.to_string(),
            Component {
                hash: hash_of(&body.to_string()),
                body,
                env,
                secrets,
            },
        );
    }
    if let Some(listed) = node_obj.as_ref().and_then(|n| n.get("components")) {
        check_listed(node, listed, components, &out, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let node = Value::Object(node_obj.unwrap_or_default());
    // serde_json's maps are sorted, so `to_string` is canonical for a given content.
    let whole = serde_json::json!({
        "node": node,
        "components": out.iter().map(|(k, c)| (k.clone(), c.body.clone())).collect::<Map<_, _>>(),
    });
    Ok(Truth {
        version: format!("sha256:{}", hash_of(&whole.to_string())),
        node,
        components: out,
    })
}

/// `node.json`'s `components` list against the component files.
fn check_listed(
    node: &TruthFile,
    listed: &Value,
    files: &[TruthFile],
    built: &BTreeMap<String, Component>,
    problems: &mut Vec<String>,
) {
    let Some(names) = listed.as_array().filter(|a| a.iter().all(Value::is_string)) else {
        problems.push(problem(
            &node.path,
            "components",
            "must be a list of component names",
        ));
        return;
    };
    let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    for (i, name) in names.iter().enumerate() {
        let has_file = files.iter().any(|f| component_name(&f.path) == Some(*name));
        if !has_file {
            problems.push(problem(
                &node.path,
                &format!("components[{i}]"),
                format!("no file components/{name}.json"),
            ));
        }
    }
    for name in built.keys().filter(|k| !names.contains(&k.as_str())) {
        let path = files
            .iter()
            .find(|f| component_name(&f.path) == Some(name.as_str()))
            .map_or_else(|| format!("components/{name}.json"), |f| f.path.clone());
        problems.push(problem(&path, "", "not listed in node.json components"));
    }
}

fn mask_listed(v: &mut Value, secrets: &BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, item) in m.iter_mut() {
            if secrets.contains(k) && !item.is_null() {
                *item = Value::String(MASK.into());
            } else {
                mask_listed(item, secrets);
            }
        }
    }
}

impl Truth {
    /// A component as shown to anyone but an admin revealing it: secret values masked.
    pub fn redacted_component(&self, name: &str) -> Option<Value> {
        let c = self.components.get(name)?;
        let mut v = redact(&c.body);
        mask_listed(&mut v, &c.secrets);
        Some(v)
    }

    /// The whole document as shown: version, node and every component, secrets masked unless
    /// `reveal`.
    pub fn view(&self, reveal: bool) -> Value {
        let components: Map<String, Value> = self
            .components
            .iter()
            .map(|(k, c)| {
                let body = if reveal {
                    c.body.clone()
                } else {
                    self.redacted_component(k).unwrap_or(Value::Null)
                };
                (k.clone(), body)
            })
            .collect();
        serde_json::json!({
            "version": self.version,
            "node": if reveal { self.node.clone() } else { redact(&self.node) },
            "components": components,
        })
    }

    /// SHA-256 of the node's canonical JSON.
    pub fn node_hash(&self) -> String {
        hash_of(&self.node.to_string())
    }

    /// What changed from `old` to `self`.
    pub fn diff(&self, old: &Truth) -> TruthDiff {
        TruthDiff {
            node_changed: self.node != old.node,
            added: self
                .components
                .keys()
                .filter(|k| !old.components.contains_key(*k))
                .cloned()
                .collect(),
            removed: old
                .components
                .keys()
                .filter(|k| !self.components.contains_key(*k))
                .cloned()
                .collect(),
            changed: self
                .components
                .iter()
                .filter(|(k, c)| old.components.get(*k).is_some_and(|o| o.hash != c.hash))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }
}

//! The text a deploy plan is made of: argument templates with `{version}`, `{previous}`,
//! `{target}` and `{stage}`, and the version text that fills them.
//!
//! A template is parsed when the config is read, so a placeholder it does not know stops the
//! start (`unknown_placeholder`), never a deploy half-way. A version reaches a program as one
//! argument (no shell), and may only hold what a git ref, a tag or a build number holds; it never
//! starts with `-`, so no program takes it for an option.

use crate::error::Invalid;

/// The placeholders a deploy, rollback or check template may use.
pub const PLACEHOLDERS: [&str; 4] = ["version", "previous", "target", "stage"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(&'static str),
}

/// One argument (or URL) with placeholders: `deploy-{target}.sh`, `{version}`. `{{` and `}}`
/// stand for braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values a template is rendered with; `previous` is absent for a target never deployed.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub version: &'a str,
    pub previous: Option<&'a str>,
    pub target: &'a str,
    pub stage: &'a str,
}

impl Template {
    pub fn parse(field: &str, text: &str) -> Result<Template, Invalid> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(r) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = r;
            } else if let Some(r) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = r;
            } else if let Some(r) = tail.strip_prefix('{') {
                let Some(end) = r.find('}') else {
                    return Err(Invalid::new(
                        "invalid_template",
                        field,
                        format!("{text:?} opens a placeholder it never closes (a literal brace is written {{{{)"),
                    ));
                };
                let name = &r[..end];
                let Some(var) = PLACEHOLDERS.iter().find(|p| **p == name) else {
                    return Err(Invalid::new(
                        "unknown_placeholder",
                        field,
                        format!(
                            "{text:?} names {{{name}}}; a template may use {}",
                            PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                        ),
                    ));
                };
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(var));
                rest = &r[end + 1..];
            } else {
                return Err(Invalid::new(
                    "invalid_template",
                    field,
                    format!(
                        "{text:?} closes a brace it never opened (a literal brace is written }}}})"
                    ),
                ));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Whether it uses `{name}`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if *v == name))
    }

    /// The text with the values filled in; `Err` names a placeholder without a value (only
    /// `previous` can lack one: the target has no earlier version).
    pub fn render(&self, vars: &Vars) -> Result<String, &'static str> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var("version") => out.push_str(vars.version),
                Part::Var("previous") => out.push_str(vars.previous.ok_or("previous")?),
                Part::Var("target") => out.push_str(vars.target),
                Part::Var(_) => out.push_str(vars.stage),
            }
        }
        Ok(out)
    }
}

/// A program and its arguments, each a template; the program must not be empty.
pub fn argv(field: &str, items: &[String]) -> Result<Vec<Template>, Invalid> {
    if items.first().is_none_or(|p| p.trim().is_empty()) {
        return Err(Invalid::new(
            "invalid_argv",
            field,
            "a command is a non-empty list: the program, then its arguments",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, a)| Template::parse(&format!("{field}[{i}]"), a))
        .collect()
}

/// Longest version accepted.
pub const MAX_VERSION: usize = 128;

/// A version as a deploy may carry it: 1–128 of `A–Z a–z 0–9 . _ - / + @`, not starting with
/// `-` (never an option to the program that gets it).
pub fn version(field: &str, text: &str) -> Result<String, Invalid> {
    let bad = |why: &str| Invalid::new("invalid_version", field, format!("version {text:?} {why}"));
    if text.is_empty() || text.len() > MAX_VERSION {
        return Err(bad("must be 1 to 128 characters"));
    }
    if text.starts_with('-') {
        return Err(bad("must not start with '-'"));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-/+@".contains(&b))
    {
        return Err(bad("may only hold letters, digits and . _ - / + @"));
    }
    Ok(text.to_string())
}

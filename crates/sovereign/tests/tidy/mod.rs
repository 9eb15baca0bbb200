//! Tidy: tests that keep the shape of the code base, in the spirit of rust-analyzer's tidy tests.
//!
//! - the engine's capability folders (every directory directly under `sovereign-engine/src`)
//!   depend on each other without a circle, never reach back to the composition root
//!   (`engine`, `config`, `Engine`), and their `settings.rs` files are leaves;
//! - every task the engine starts goes through its tracker (`support::Tasks`): no bare
//!   `tokio::spawn` outside `support/`, so shutdown can wait for each one;
//! - every Rust file opens with a `//!` header saying what it is for;
//! - `sovereign-core` does no I/O and reads no clock outside its `#[cfg(test)]` items.
//!
//! The checks read source text, not the compiler's view: comments and the contents of string and
//! char literals are blanked first (`mask`), so braces and paths in them never count. Each test
//! collects every violation and fails once, so one run shows them all.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// Names a core file may not use: each reads the clock or pulls in the async runtime.
const CORE_FORBIDDEN: &[&str] = &[
    "Utc::now",
    "Local::now",
    "Instant::now",
    "SystemTime",
    "tokio",
];
/// Modules of `std` the core may not use (as `std::fs::…` or inside `std::{fs, …}`).
const CORE_FORBIDDEN_STD: &[&str] = &["fs", "net", "process", "thread", "env"];
/// Root items a capability may not name: only `lib.rs` and `engine.rs` compose.
const ROOT_ONLY: &[&str] = &["engine", "config", "Engine"];

#[test]
fn engine_capabilities_form_no_circle() {
    let (src, caps) = engine();
    let mut edges = BTreeMap::new(); // (from, to) → where the first reference is
    for cap in &caps {
        for (file, code) in masked_files(&src.join(cap)) {
            for (line, to) in path_refs(&code, "crate::") {
                if &to != cap && caps.contains(&to) {
                    edges
                        .entry((cap.clone(), to))
                        .or_insert(format!("{file}:{line}"));
                }
            }
        }
    }
    let violations = cycles(&edges).into_iter().map(|cycle| {
        let steps = cycle.windows(2).map(|w| {
            let at = &edges[&(w[0].clone(), w[1].clone())];
            format!("\n    {} → {}: {at}", w[0], w[1])
        });
        format!("circle {}:{}", cycle.join(" → "), steps.collect::<String>())
    });
    assert_clean(
        "capabilities depend on each other without a circle",
        "move what both sides need down into the lower capability (often `support/`) or into \
         sovereign-core, or have engine.rs hand the lower one a callback or handle",
        violations.collect(),
    );
}

#[test]
fn nothing_below_the_root_imports_it() {
    let (src, caps) = engine();
    let mut violations = Vec::new();
    for cap in &caps {
        for path in rust_files(&src.join(cap)) {
            let (file, code) = (rel(&path), mask(&read(&path)));
            for (line, name) in path_refs(&code, "crate::") {
                if ROOT_ONLY.contains(&name.as_str()) {
                    violations.push(format!(
                        "{file}:{line}: `crate::{name}` in capability `{cap}`"
                    ));
                }
            }
            // `super::` chains that reach the crate root: from `cap/mod.rs` one hop does, from
            // `cap/x.rs` or `cap/sub/mod.rs` two. (#[cfg(test)] modules sit one deeper: skipped.)
            let parts = path
                .strip_prefix(&src)
                .expect("under src")
                .components()
                .count();
            let depth = parts - usize::from(path.ends_with("mod.rs"));
            let code = blank_cfg_test_items(&code);
            for (at, _) in code.match_indices("super::") {
                let hops = (code[at..].len() - code[at..].trim_start_matches("super::").len()) / 7;
                let starts = !code[..at].ends_with("::") && !code[..at].ends_with(is_ident);
                if starts && hops >= depth {
                    let (line, chain) = (line_of(&code, at), "super::".repeat(hops));
                    violations.push(format!("{file}:{line}: `{chain}` climbs out of `{cap}`"));
                }
            }
        }
    }
    assert_clean(
        "nothing inside a capability folder imports the root (engine, config, Engine, super:: out)",
        "let engine.rs pass the value in (a constructor argument or the capability's own \
         settings); reach another capability as `crate::NAME::…`, never through the root",
        violations,
    );
}

#[test]
fn capability_settings_are_leaves() {
    let (src, caps) = engine();
    let mut violations = Vec::new();
    for cap in &caps {
        for (file, code) in masked_files(&src.join(cap))
            .into_iter()
            .filter(|(f, _)| f.ends_with("/settings.rs"))
        {
            for (line, name) in path_refs(&code, "crate::") {
                violations.push(format!("{file}:{line}: settings reference `crate::{name}`"));
            }
        }
    }
    assert_clean(
        "a capability's settings.rs references no `crate::` path",
        "settings import only std, sovereign-core and parsing crates: move the shared type into \
         sovereign-core or into the settings file itself",
        violations,
    );
}

#[test]
fn every_engine_task_is_tracked() {
    let (src, _) = engine();
    let mut violations = Vec::new();
    for (file, code) in masked_files(&src) {
        if file.contains("/support/") {
            continue;
        }
        let code = blank_cfg_test_items(&code);
        for token in ["tokio::spawn", "tokio::task::spawn(", "std::thread::spawn"] {
            for (at, _) in code.match_indices(token) {
                violations.push(format!("{file}:{}: `{token}`", line_of(&code, at)));
            }
        }
    }
    assert_clean(
        "the engine spawns tasks only on its tracker",
        "spawn with the `support::Tasks` the capability was given (`tasks.spawn(…)`) and end the \
         task when `tasks.stopped()` fires",
        violations,
    );
}

#[test]
fn every_file_has_a_header() {
    let mut violations = Vec::new();
    for krate in sorted_entries(&workspace_root().join("crates")) {
        for dir in ["src", "tests", "benches", "examples"] {
            for file in rust_files(&krate.join(dir)) {
                let text = read(&file);
                let first = text.lines().map(str::trim).find(|l| !l.is_empty());
                if !first.is_some_and(|l| l.starts_with("//!")) {
                    violations.push(format!("{}: no `//!` header", rel(&file)));
                }
            }
        }
    }
    assert_clean(
        "every .rs file opens with a `//!` header",
        "start the file with `//! <what this file is for>`",
        violations,
    );
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let mut violations = Vec::new();
    for (file, code) in masked_files(&workspace_root().join("crates/sovereign-core/src")) {
        let code = blank_cfg_test_items(&code);
        let mut found: Vec<(usize, String)> = path_refs(&code, "std::")
            .into_iter()
            .filter(|(_, name)| CORE_FORBIDDEN_STD.contains(&name.as_str()))
            .map(|(line, name)| (line, format!("std::{name}")))
            .collect();
        for token in CORE_FORBIDDEN {
            let hits = code
                .match_indices(token)
                .filter(|(at, _)| !code[..*at].ends_with(is_ident));
            found.extend(hits.map(|(at, _)| (line_of(&code, at), (*token).to_string())));
        }
        found.sort();
        violations.extend(
            found
                .into_iter()
                .map(|(line, token)| format!("{file}:{line}: `{token}`")),
        );
    }
    assert_clean(
        "sovereign-core does no I/O, reads no clock and uses no runtime (outside #[cfg(test)])",
        "take the time or the data as a parameter and do the I/O in sovereign-engine (or move \
         the code under #[cfg(test)])",
        violations,
    );
}

// ---- helpers ------------------------------------------------------------------------------------

fn assert_clean(rule: &str, fix: &str, violations: Vec<String>) {
    let list = violations.join("\n  ");
    let n = violations.len();
    assert!(
        n == 0,
        "\ntidy rule broken: {rule}\n  {list}\nfix: {fix}\n({n} violation(s))\n"
    );
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .expect("the workspace root is CARGO_MANIFEST_DIR/../..")
}

/// The engine's `src` and its capability folders: every directory directly under it.
fn engine() -> (PathBuf, BTreeSet<String>) {
    let src = workspace_root().join("crates/sovereign-engine/src");
    let dirs = sorted_entries(&src).into_iter().filter(|p| p.is_dir());
    let caps = dirs
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect();
    (src, caps)
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    }; // absent: nothing to check
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    paths.sort();
    paths
}

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in sorted_entries(dir) {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every `.rs` file under `dir` as (path relative to the workspace, masked text).
fn masked_files(dir: &Path) -> Vec<(String, String)> {
    rust_files(dir)
        .iter()
        .map(|f| (rel(f), mask(&read(f))))
        .collect()
}

fn read(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_else(|e| panic!("tidy: cannot read {}: {e}", rel(file)))
}

fn rel(file: &Path) -> String {
    let root = workspace_root();
    file.strip_prefix(&root)
        .unwrap_or(file)
        .display()
        .to_string()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

/// The text with comments, the contents of string and char literals, and anything non-ASCII
/// replaced by spaces (newlines kept, so line numbers hold; byte = char, so slicing is safe).
/// Knows escapes, `r"…"`/`r#"…"#` (and the `b` forms), and tells `'{'` from a lifetime `'a`.
fn mask(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, ch)| c.get(i + k) == Some(&ch))
    };
    let find = |from: usize, s: &str| (from..c.len()).find(|&j| at(j, s)).unwrap_or(c.len());
    let ident_before = |i: usize| i > 0 && is_ident(c[i - 1]);
    let string_end = |mut j: usize| {
        while j < c.len() && c[j] != '"' {
            j += 1 + usize::from(c[j] == '\\');
        }
        j
    };
    let (mut out, mut i) = (String::with_capacity(c.len()), 0);
    while i < c.len() {
        let raw = c[i] == 'r' && (!ident_before(i) || (c[i - 1] == 'b' && !ident_before(i - 1)));
        let n = if raw {
            c[i + 1..].iter().take_while(|&&h| h == '#').count()
        } else {
            0
        };
        let hashes = "#".repeat(n);
        // (chars kept as written, where the blanked stretch ends, chars kept after it)
        let (keep, end, close) = if at(i, "//") {
            (0, find(i, "\n"), 0)
        } else if at(i, "/*") {
            (0, find(i, "*/") + 2, 0)
        } else if raw && at(i + 1, &format!("{hashes}\"")) {
            (2 + n, find(i + 2 + n, &format!("\"{hashes}")), 1 + n)
        } else if c[i] == '"' {
            (1, string_end(i + 1), 1)
        } else if at(i, "'\\") {
            (1, find(i + 3, "'"), 1) // '\n', '\'', '\u{7b}'
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            (1, i + 2, 1) // 'x'; a lifetime `'a` has no closing quote
        } else {
            (1, i + 1, 0)
        };
        let end = end.clamp(i + keep, c.len());
        let stop = (end + close).min(c.len());
        for (k, &ch) in c[i..stop].iter().enumerate() {
            let blanked = (keep..end - i).contains(&k);
            out.push(if ch == '\n' || (ch.is_ascii() && !blanked) {
                ch
            } else {
                ' '
            });
        }
        i = stop;
    }
    out
}

/// Names reached through `prefix` (e.g. `crate::`): `crate::a::b` gives `a`, a grouped
/// `crate::{a::X, b::{c, d}}` gives `a` and `b` (across lines too), each with its line.
fn path_refs(code: &str, prefix: &str) -> Vec<(usize, String)> {
    let name = |at: usize| -> (usize, String) {
        (
            line_of(code, at),
            code[at..].chars().take_while(|&c| is_ident(c)).collect(),
        )
    };
    let mut refs = Vec::new();
    for (at, _) in code
        .match_indices(prefix)
        .filter(|(at, _)| !code[..*at].ends_with(is_ident))
    {
        let start = at + prefix.len();
        if !code[start..].starts_with('{') {
            refs.push(name(start));
            continue;
        }
        let (mut depth, mut want) = (0, false);
        for (i, c) in code[start..].char_indices() {
            match c {
                '{' => (depth, want) = (depth + 1, depth == 0),
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' => want = depth == 1,
                c if want && is_ident(c) => {
                    refs.push(name(start + i));
                    want = false;
                }
                _ => {}
            }
        }
    }
    refs.retain(|(_, name)| !name.is_empty());
    refs
}

/// Masked code with each item that follows a `#[cfg(test)]` blanked: up to the brace that closes
/// its body, or up to its `;` when it has none (`#[cfg(test)] mod tests;`).
fn blank_cfg_test_items(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]").map(|k| from + k) {
        let (mut end, mut depth) = (found, 0);
        while end < out.len() {
            match out[end] {
                b'{' => depth += 1,
                b'}' if depth <= 1 => break,
                b'}' => depth -= 1,
                b';' if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        from = (end + 1).min(out.len());
        out[found..from]
            .iter_mut()
            .filter(|b| **b != b'\n')
            .for_each(|b| *b = b' ');
    }
    String::from_utf8(out).expect("masked code is ASCII")
}

/// Every circle, once, as `[a, b, …, a]`: for each edge a → b, the shortest way from b back to a.
fn cycles(edges: &BTreeMap<(String, String), String>) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    for (a, b) in edges.keys() {
        let mut queue = VecDeque::from([vec![a.clone(), b.clone()]]);
        let mut seen = BTreeSet::from([b.clone()]);
        while let Some(path) = queue.pop_front() {
            let last = &path[path.len() - 1];
            if last == a {
                let mut cycle = path[1..].to_vec();
                let first = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
                cycle.rotate_left(first); // one spelling per circle
                cycle.push(cycle[0].clone());
                found.insert(cycle);
                break;
            }
            for (_, next) in edges.keys().filter(|(from, _)| from == last) {
                if seen.insert(next.clone()) {
                    queue.push_back([path.clone(), vec![next.clone()]].concat());
                }
            }
        }
    }
    found
}

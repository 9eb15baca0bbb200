//! Anchors: a small YAML document that pins a file (name, size, SHA-256, time, purpose, host)
//! and may carry a detached signature over its own text. Rendering, parsing and the exact text
//! that is signed live here; hashing files and signing are the shell's work.
//!
//! The format is a strict subset of YAML that this module writes and reads back: one
//! `key: value` per line in a fixed order, strings as JSON-style double-quoted scalars (valid
//! YAML), and an optional `signature:` block indented by two spaces. The signed text is every
//! line before `signature:`.

use chrono::{DateTime, SecondsFormat, Utc};

/// A detached signature carried in the anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Ed25519 over the signed text: public key and signature, hex.
    Ed25519 { public_key: String, value: String },
    /// An ASCII-armored OpenPGP detached signature over the signed text, made by `gpg`.
    OpenPgp { key: String, armored: String },
}

/// One anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub name: String,
    pub size: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub purpose: String,
    pub host: String,
    pub tool: String,
    pub signature: Option<Signature>,
}

/// Why a text is not an anchor (1-based line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct AnchorError {
    pub line: usize,
    pub message: String,
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl Anchor {
    /// The text a signature covers: everything but the signature block.
    pub fn signed_text(&self) -> String {
        format!(
            "# Sovereign anchor\nversion: 1\nname: {}\nsize: {}\nsha256: {}\ncreated_at: {}\npurpose: {}\nhost: {}\ntool: {}\n",
            quote(&self.name),
            self.size,
            self.sha256,
            self.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            quote(&self.purpose),
            quote(&self.host),
            quote(&self.tool),
        )
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let mut text = self.signed_text();
        match &self.signature {
            None => {}
            Some(Signature::Ed25519 { public_key, value }) => {
                text.push_str(&format!(
                    "signature:\n  type: ed25519\n  public_key: {public_key}\n  value: {value}\n"
                ));
            }
            Some(Signature::OpenPgp { key, armored }) => {
                text.push_str(&format!(
                    "signature:\n  type: openpgp\n  key: {}\n  armored: |\n",
                    quote(key)
                ));
                for line in armored.lines() {
                    text.push_str("    ");
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }

    /// Read an anchor back. Strict: unknown or missing keys are errors naming the line.
    pub fn parse(text: &str) -> Result<Anchor, AnchorError> {
        let lines: Vec<&str> = text.lines().collect();
        let err = |line: usize, message: String| AnchorError { line, message };
        let mut fields: Vec<(usize, &str, &str)> = Vec::new();
        let mut i = 0;
        let mut signature_at = None;
        while i < lines.len() {
            let line = lines[i];
            if line.trim().is_empty() || line.starts_with('#') {
                i += 1;
                continue;
            }
            if line == "signature:" {
                signature_at = Some(i);
                break;
            }
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| err(i + 1, format!("expected `key: value`, found {line:?}")))?;
            fields.push((i + 1, k, v));
            i += 1;
        }
        let get = |key: &str| -> Result<(usize, &str), AnchorError> {
            fields
                .iter()
                .find(|(_, k, _)| *k == key)
                .map(|(l, _, v)| (*l, *v))
                .ok_or_else(|| err(0, format!("missing `{key}`")))
        };
        for (l, k, _) in &fields {
            const KNOWN: [&str; 8] = [
                "version",
                "name",
                "size",
                "sha256",
                "created_at",
                "purpose",
                "host",
                "tool",
            ];
            if !KNOWN.contains(k) {
                return Err(err(*l, format!("unknown key `{k}`")));
            }
        }
        let string = |key: &str| -> Result<String, AnchorError> {
            let (l, v) = get(key)?;
            serde_json::from_str::<String>(v)
                .map_err(|_| err(l, format!("`{key}` must be a double-quoted string")))
        };
        let (lv, version) = get("version")?;
        if version != "1" {
            return Err(err(lv, format!("unsupported anchor version {version}")));
        }
        let (ls, size) = get("size")?;
        let (lh, sha256) = get("sha256")?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(lh, "`sha256` must be 64 hex digits".into()));
        }
        let (lc, created) = get("created_at")?;
        let signature = match signature_at {
            None => None,
            Some(start) => Some(parse_signature(&lines[start + 1..], start + 2)?),
        };
        Ok(Anchor {
            name: string("name")?,
            size: size
                .parse()
                .map_err(|_| err(ls, "`size` must be a whole number".into()))?,
            sha256: sha256.to_ascii_lowercase(),
            created_at: DateTime::parse_from_rfc3339(created)
                .map_err(|_| err(lc, "`created_at` must be an RFC 3339 time".into()))?
                .with_timezone(&Utc),
            purpose: string("purpose")?,
            host: string("host")?,
            tool: string("tool")?,
            signature,
        })
    }
}

fn parse_signature(lines: &[&str], first_line: usize) -> Result<Signature, AnchorError> {
    let err = |line: usize, message: String| AnchorError { line, message };
    let field = |key: &str| -> Option<(usize, &str)> {
        lines.iter().enumerate().find_map(|(i, l)| {
            l.strip_prefix("  ")
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(": "))
                .map(|v| (first_line + i, v))
        })
    };
    let hex_field = |key: &str| -> Result<String, AnchorError> {
        let (l, v) =
            field(key).ok_or_else(|| err(first_line, format!("signature without `{key}`")))?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(l, format!("`{key}` must be hex")));
        }
        Ok(v.to_ascii_lowercase())
    };
    match field("type").map(|(_, v)| v) {
        Some("ed25519") => Ok(Signature::Ed25519 {
            public_key: hex_field("public_key")?,
            value: hex_field("value")?,
        }),
        Some("openpgp") => {
            let (l, key) =
                field("key").ok_or_else(|| err(first_line, "signature without `key`".into()))?;
            let key = serde_json::from_str::<String>(key)
                .map_err(|_| err(l, "`key` must be a double-quoted string".into()))?;
            let start = lines
                .iter()
                .position(|l| *l == "  armored: |")
                .ok_or_else(|| err(first_line, "signature without `armored`".into()))?;
            let armored: Vec<&str> = lines[start + 1..]
                .iter()
                .take_while(|l| l.starts_with("    "))
                .map(|l| &l[4..])
                .collect();
            Ok(Signature::OpenPgp {
                key,
                armored: armored.join("\n") + "\n",
            })
        }
        Some(other) => Err(err(first_line, format!("unknown signature type {other:?}"))),
        None => Err(err(first_line, "signature without `type`".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn anchor(sig: Option<Signature>) -> Anchor {
        Anchor {
            name: "report \"Q3\".pdf".into(),
            size: 1234,
            sha256: "ab".repeat(32),
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap(),
            purpose: "quarterly: statement".into(),
            host: "desk-1".into(),
            tool: "sovereign 0.1.0".into(),
            signature: sig,
        }
    }

    #[test]
    fn renders_and_parses_back() {
        for sig in [
            None,
            Some(Signature::Ed25519 {
                public_key: "0a".repeat(32),
                value: "ff".repeat(64),
            }),
            Some(Signature::OpenPgp {
                key: "ABCD1234".into(),
                armored: "-----BEGIN PGP SIGNATURE-----\n\nabc=\n-----END PGP SIGNATURE-----\n"
                    .into(),
            }),
        ] {
            let a = anchor(sig);
            assert_eq!(Anchor::parse(&a.render()).unwrap(), a);
            assert!(a.render().starts_with(&a.signed_text()));
        }
    }

    #[test]
    fn malformed_anchors_name_the_line() {
        let good = anchor(None).render();
        let cases = [
            (good.replace("size: 1234", "size: lots"), "size"),
            (good.replace("version: 1", "version: 9"), "version"),
            (good.replace(&"ab".repeat(32), "xyz"), "sha256"),
            (
                good.replace("host: \"desk-1\"", "hostname: \"desk-1\""),
                "hostname",
            ),
            (good.replace("purpose: ", "purpose "), "line 7"),
            (good.replace("tool: ", "tool "), "key: value"),
            ("".to_string(), "missing"),
        ];
        for (text, needle) in cases {
            let e = Anchor::parse(&text).unwrap_err();
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }
}

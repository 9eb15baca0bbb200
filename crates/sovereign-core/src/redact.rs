//! Secret redaction for anything shown to a person or written to a log.
//!
//! A key is secret when, upper-cased, it ends in `_KEY`, `_SECRET`, `_PASSWORD`, `_TOKEN` or is
//! one of the well-known credential names (`authorization`, `password`, `secret`, `token`,
//! `api_key`, `cookie`). URLs with `user:password@` have the password masked. Pure.

use serde_json::Value;

pub const MASK: &str = "***";

/// Whether a key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase().replace('-', "_");
    const SUFFIXES: [&str; 4] = ["_KEY", "_SECRET", "_PASSWORD", "_TOKEN"];
    const NAMES: [&str; 8] = [
        "AUTHORIZATION",
        "PASSWORD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "COOKIE",
        "X_API_KEY",
        "PROXY_AUTHORIZATION",
    ];
    SUFFIXES.iter().any(|s| k.ends_with(s)) || NAMES.contains(&k.as_str())
}

/// Mask the password of `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}://{}:{}{}",
            &url[..scheme_end],
            &authority[..colon],
            MASK,
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

/// A copy of `value` with secret-named fields masked and credentials in URLs hidden.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_key(k) && !v.is_null() {
                        Value::String(MASK.into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) if s.contains("://") && s.contains('@') => Value::String(redact_url(s)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for (key, secret) in [
            ("API_KEY", true),
            ("x-api-key", true),
            ("Authorization", true),
            ("db_password", true),
            ("SLACK_TOKEN", true),
            ("symbol", false),
            ("keyboard", false),
            ("monkey", false),
        ] {
            assert_eq!(is_secret_key(key), secret, "{key}");
        }
    }

    #[test]
    fn redacts_nested_values_and_urls() {
        let v = json!({"url": "https://u:pw@h.example/x", "headers": {"Authorization": "Bearer x", "Accept": "a"}, "list": [{"TOKEN": 1}]});
        assert_eq!(
            redact(&v),
            json!({"url": "https://u:***@h.example/x", "headers": {"Authorization": "***", "Accept": "a"}, "list": [{"TOKEN": "***"}]})
        );
        assert_eq!(redact_url("http://h/x@y"), "http://h/x@y");
    }
}

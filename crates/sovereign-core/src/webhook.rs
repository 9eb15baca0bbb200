//! Webhook decisions: is the credential right, is this call a duplicate, which tasks does it start.
//!
//! Pure functions over the request's parts; the HTTP layer extracts headers and body, the engine
//! stores the call and runs the tasks. Secrets are compared in constant time.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde_json::Value;

/// How a webhook source proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceAuth {
    /// No credential required (only sensible on a loopback bind).
    None,
    /// A header (e.g. `X-Webhook-Secret`) must carry the shared secret.
    Header { header: String, secret: String },
    /// The URL must be `/webhook/{source}/{token}`: for senders that cannot set headers.
    UrlToken { token: String },
    /// A header carries the hex HMAC-SHA256 of the raw body, optionally prefixed `sha256=`.
    Hmac { header: String, secret: String },
}

impl std::fmt::Debug for SourceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            SourceAuth::None => f.write_str("None"),
            SourceAuth::Header { header, .. } => write!(f, "Header({header}, <redacted>)"),
            SourceAuth::UrlToken { .. } => f.write_str("UrlToken(<redacted>)"),
            SourceAuth::Hmac { header, .. } => write!(f, "Hmac({header}, <redacted>)"),
        }
    }
}

/// Why a credential was refused. The message never echoes what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing credential header {0}")]
    MissingHeader(&'static str),
    #[error("wrong shared secret")]
    WrongSecret,
    #[error("missing URL token: post to /webhook/{{source}}/{{token}}")]
    MissingToken,
    #[error("wrong URL token")]
    WrongToken,
    #[error("signature is not hex HMAC-SHA256")]
    MalformedSignature,
    #[error("HMAC signature does not match the body")]
    BadSignature,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::MissingHeader(_) | AuthFailure::MissingToken => "missing_credential",
            AuthFailure::WrongSecret | AuthFailure::WrongToken => "bad_credential",
            AuthFailure::MalformedSignature | AuthFailure::BadSignature => "bad_signature",
        }
    }
}

/// The parts of a webhook request a credential check looks at.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    /// Looks up a header value by (case-insensitive) name.
    pub header: &'a (dyn Fn(&str) -> Option<&'a str> + Sync),
    pub url_token: Option<&'a str>,
    pub body: &'a [u8],
}

/// Check a request against its source's auth rule.
pub fn verify(auth: &SourceAuth, presented: Presented<'_>) -> Result<(), AuthFailure> {
    match auth {
        SourceAuth::None => Ok(()),
        SourceAuth::Header { header, secret } => {
            let got = (presented.header)(header).ok_or(AuthFailure::MissingHeader("secret"))?;
            if constant_time_eq(got.as_bytes(), secret.as_bytes()) {
                Ok(())
            } else {
                Err(AuthFailure::WrongSecret)
            }
        }
        SourceAuth::UrlToken { token } => {
            let got = presented.url_token.ok_or(AuthFailure::MissingToken)?;
            if constant_time_eq(got.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(AuthFailure::WrongToken)
            }
        }
        SourceAuth::Hmac { header, secret } => {
            let got = (presented.header)(header).ok_or(AuthFailure::MissingHeader("signature"))?;
            let hex_sig = got.trim();
            let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
            let sig = hex::decode(hex_sig).map_err(|_| AuthFailure::MalformedSignature)?;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|_| AuthFailure::BadSignature)?;
            mac.update(presented.body);
            mac.verify_slice(&sig)
                .map_err(|_| AuthFailure::BadSignature)
        }
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`, as a sender computes it.
pub fn sign_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A config rule: calls from `source` (and `event`, when given) start `tasks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub source: String,
    pub event: Option<String>,
    pub tasks: Vec<String>,
}

/// The task ids a webhook starts: `data.trigger` (a task id) first, then every matching rule's
/// tasks, each id once, in that order.
pub fn route(routes: &[Route], source: &str, event: Option<&str>, data: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(t) = data.get("trigger").and_then(Value::as_str) {
        out.push(t.to_string());
    }
    for r in routes {
        let event_ok = r.event.as_deref().is_none_or(|e| Some(e) == event);
        if r.source == source && event_ok {
            for t in &r.tasks {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
    }
    out
}

/// Remembers `(source, id)` pairs for a window so a re-delivered call is not run twice.
#[derive(Debug, Clone)]
pub struct DedupWindow {
    window: Duration,
    seen: HashMap<(String, String), DateTime<Utc>>,
    order: VecDeque<(DateTime<Utc>, String, String)>,
}

impl DedupWindow {
    pub fn new(window: Duration) -> Self {
        DedupWindow {
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Record `(source, id)` seen at `at`. Returns `true` if it is new (not seen within the window).
    pub fn admit(&mut self, source: &str, id: &str, at: DateTime<Utc>) -> bool {
        self.expire(at);
        let key = (source.to_string(), id.to_string());
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, at);
        self.order
            .push_back((at, source.to_string(), id.to_string()));
        true
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        while let Some((at, _, _)) = self.order.front() {
            if now.signed_duration_since(*at) < window {
                break;
            }
            if let Some((at, s, i)) = self.order.pop_front() {
                let key = (s, i);
                if self.seen.get(&key) == Some(&at) {
                    self.seen.remove(&key);
                }
            }
        }
    }

    /// Drop a pair admitted by mistake (its call could not be recorded).
    pub fn forget(&mut self, source: &str, id: &str) {
        self.seen.remove(&(source.to_string(), id.to_string()));
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The id that identifies a call for dedup: the body's `id`, else `data.id`, else none.
pub fn delivery_id(body_id: Option<&str>, data: &Value) -> Option<String> {
    body_id
        .map(str::to_string)
        .or_else(|| match data.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn check(
        auth: &SourceAuth,
        headers: &[(&str, &str)],
        token: Option<&str>,
        body: &[u8],
    ) -> Result<(), AuthFailure> {
        let owned: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        let lookup = |name: &str| -> Option<&str> {
            let name = name.to_ascii_lowercase();
            owned
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        verify(
            auth,
            Presented {
                header: &lookup,
                url_token: token,
                body,
            },
        )
    }

    type Case<'a> = (
        &'a SourceAuth,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        Result<(), AuthFailure>,
    );

    #[test]
    fn credential_table() {
        let header = SourceAuth::Header {
            header: "X-Webhook-Secret".into(),
            secret: "s3cret".into(),
        };
        let token = SourceAuth::UrlToken {
            token: "tok".into(),
        };
        let hmac = SourceAuth::Hmac {
            header: "X-Signature".into(),
            secret: "k".into(),
        };
        let body = br#"{"a":1}"#;
        let good_sig = sign_hmac("k", body);
        let prefixed = format!("sha256={good_sig}");
        let cases: Vec<Case<'_>> = vec![
            (&SourceAuth::None, vec![], None, Ok(())),
            (&header, vec![("x-webhook-secret", "s3cret")], None, Ok(())),
            (
                &header,
                vec![("X-Webhook-Secret", "s3cre")],
                None,
                Err(AuthFailure::WrongSecret),
            ),
            (
                &header,
                vec![],
                None,
                Err(AuthFailure::MissingHeader("secret")),
            ),
            (&token, vec![], Some("tok"), Ok(())),
            (&token, vec![], Some("tok2"), Err(AuthFailure::WrongToken)),
            (&token, vec![], None, Err(AuthFailure::MissingToken)),
            (
                &hmac,
                vec![("X-Signature", good_sig.as_str())],
                None,
                Ok(()),
            ),
            (
                &hmac,
                vec![("X-Signature", prefixed.as_str())],
                None,
                Ok(()),
            ),
            (
                &hmac,
                vec![("X-Signature", "zz")],
                None,
                Err(AuthFailure::MalformedSignature),
            ),
            (
                &hmac,
                vec![("X-Signature", "00ff")],
                None,
                Err(AuthFailure::BadSignature),
            ),
            (
                &hmac,
                vec![],
                None,
                Err(AuthFailure::MissingHeader("signature")),
            ),
        ];
        for (i, (auth, headers, tok, expected)) in cases.into_iter().enumerate() {
            assert_eq!(check(auth, &headers, tok, body), expected, "case {i}");
        }
    }

    #[test]
    fn hmac_over_a_different_body_fails() {
        let hmac = SourceAuth::Hmac {
            header: "X-Signature".into(),
            secret: "k".into(),
        };
        let sig = sign_hmac("k", b"original");
        assert_eq!(
            check(&hmac, &[("X-Signature", &sig)], None, b"tampered"),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn routes_trigger_then_rules_without_repeats() {
        let routes = vec![
            Route {
                source: "tv".into(),
                event: Some("alert".into()),
                tasks: vec!["a".into(), "b".into()],
            },
            Route {
                source: "tv".into(),
                event: None,
                tasks: vec!["b".into(), "c".into()],
            },
            Route {
                source: "other".into(),
                event: None,
                tasks: vec!["z".into()],
            },
        ];
        assert_eq!(
            route(&routes, "tv", Some("alert"), &json!({"trigger": "b"})),
            vec!["b", "a", "c"]
        );
        assert_eq!(
            route(&routes, "tv", Some("fill"), &json!({})),
            vec!["b", "c"]
        );
        assert_eq!(
            route(&routes, "nobody", None, &json!({"trigger": "x"})),
            vec!["x"]
        );
        assert!(route(&routes, "nobody", None, &json!({})).is_empty());
    }

    #[test]
    fn dedup_window_admits_once_then_again_after_expiry() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap();
        let mut w = DedupWindow::new(Duration::from_secs(60));
        assert!(w.admit("tv", "1", t0));
        assert!(!w.admit("tv", "1", t0 + chrono::Duration::seconds(59)));
        assert!(w.admit("other", "1", t0), "sources are separate");
        assert!(
            w.admit("tv", "1", t0 + chrono::Duration::seconds(60)),
            "window passed"
        );
        assert_eq!(w.len(), 1, "entries older than the window are gone");
    }

    #[test]
    fn constant_time_eq_matches_plain_eq() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("a", "b"),
            ("ab", "a"),
            ("secret", "secreT"),
        ] {
            assert_eq!(constant_time_eq(a.as_bytes(), b.as_bytes()), a == b);
        }
    }
}

//! `[webhooks]`: the file as written (sources with their credentials and the addresses they
//! may post from, routes), and its validation into [`WebhookSettings`], every problem
//! collected.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sovereign_core::error::Invalid;
use sovereign_core::net::AllowList;
use sovereign_core::schedule::parse_duration;
use sovereign_core::webhook::{Route, SourceAuth};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    pub dedup_window: Option<String>,
    pub max_body_bytes: Option<usize>,
    /// Refuse calls from sources not listed under `[webhooks.sources]`.
    pub require_known_source: Option<bool>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Shared secret expected in `secret_header` (default `X-Webhook-Secret`).
    pub secret: Option<String>,
    pub secret_header: Option<String>,
    /// Token expected in the URL: `POST /webhook/{source}/{token}`.
    pub token: Option<String>,
    /// HMAC-SHA256 key; the hex signature is expected in `hmac_header` (default `X-Signature-256`).
    pub hmac_secret: Option<String>,
    pub hmac_header: Option<String>,
    /// Addresses the source may post from: IPs, CIDR networks, `tradingview`. Absent: any.
    pub allow_from: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub source: String,
    pub event: Option<String>,
    pub tasks: Vec<String>,
}

/// Webhook intake's validated settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub dedup_window: Duration,
    /// Body limit of the webhook routes (senders post small alerts; refuse floods early).
    pub max_body_bytes: usize,
    /// Refuse webhooks from sources not listed under `[webhooks.sources]`. Unset: refuse them
    /// when the server listens beyond loopback (the root decides, knowing the bind address).
    pub require_known_source: Option<bool>,
    pub sources: BTreeMap<String, SourceAuth>,
    /// The addresses each source may post from (only sources with an `allow_from`); checked
    /// before the credential.
    pub allow_from: BTreeMap<String, AllowList>,
    pub routes: Vec<Route>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            dedup_window: Duration::from_secs(600),
            max_body_bytes: 256 * 1024,
            require_known_source: None,
            sources: BTreeMap::new(),
            allow_from: BTreeMap::new(),
            routes: Vec::new(),
        }
    }
}

/// Validate `[webhooks]`, collecting every problem.
pub fn settings(file: WebhooksFile) -> Result<WebhookSettings, Vec<Invalid>> {
    let mut s = WebhookSettings::default();
    let mut problems = Vec::new();
    if let Some(t) = &file.dedup_window {
        match parse_duration("webhooks.dedup_window", t) {
            Ok(d) => s.dedup_window = d,
            Err(e) => problems.push(e),
        }
    }
    if let Some(n) = file.max_body_bytes {
        s.max_body_bytes = n;
    }
    s.require_known_source = file.require_known_source;
    for (name, mut src) in file.sources {
        if let Some(items) = src.allow_from.take() {
            match allow_from(&items, &format!("webhooks.sources.{name}.allow_from")) {
                Ok(list) => {
                    s.allow_from.insert(name.clone(), list);
                }
                Err(errs) => problems.extend(errs),
            }
        }
        match source_auth(&name, src) {
            Ok(a) => {
                s.sources.insert(name, a);
            }
            Err(e) => problems.push(e),
        }
    }
    for (i, r) in file.routes.into_iter().enumerate() {
        if r.tasks.is_empty() {
            problems.push(Invalid::new(
                "invalid_route",
                format!("webhooks.routes[{i}].tasks"),
                "a route needs at least one task",
            ));
        }
        s.routes.push(Route {
            source: r.source,
            event: r.event,
            tasks: r.tasks,
        });
    }
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

/// An `allow_from` list as written at `field`; an empty one is refused (it would read as
/// "nobody" but mean "anybody").
pub fn allow_from(items: &[String], field: &str) -> Result<AllowList, Vec<Invalid>> {
    if items.is_empty() {
        return Err(vec![Invalid::new(
            "invalid_address",
            field,
            "allow_from is empty: list the addresses (an IP, a CIDR network like 10.0.0.0/8, or \
             `tradingview`), or remove the key to accept any address",
        )]);
    }
    AllowList::parse(items, field)
}

fn source_auth(name: &str, f: SourceFile) -> Result<SourceAuth, Invalid> {
    let modes = [
        f.secret.is_some(),
        f.token.is_some(),
        f.hmac_secret.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if modes > 1 {
        return Err(Invalid::new(
            "invalid_source",
            format!("webhooks.sources.{name}"),
            "choose one of secret, token, hmac_secret",
        ));
    }
    let empty = |s: &String| s.is_empty();
    if f.secret.as_ref().is_some_and(empty)
        || f.token.as_ref().is_some_and(empty)
        || f.hmac_secret.as_ref().is_some_and(empty)
    {
        return Err(Invalid::new(
            "invalid_source",
            format!("webhooks.sources.{name}"),
            "a credential must not be empty",
        ));
    }
    Ok(if let Some(secret) = f.secret {
        SourceAuth::Header {
            header: f.secret_header.unwrap_or_else(|| "X-Webhook-Secret".into()),
            secret,
        }
    } else if let Some(token) = f.token {
        SourceAuth::UrlToken { token }
    } else if let Some(secret) = f.hmac_secret {
        SourceAuth::Hmac {
            header: f.hmac_header.unwrap_or_else(|| "X-Signature-256".into()),
            secret,
        }
    } else {
        SourceAuth::None
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn with_allow(items: &[&str]) -> WebhooksFile {
        let source = SourceFile {
            token: Some("tok-123456".into()),
            allow_from: Some(items.iter().map(|s| s.to_string()).collect()),
            ..SourceFile::default()
        };
        WebhooksFile {
            sources: BTreeMap::from([("tv".to_string(), source)]),
            ..WebhooksFile::default()
        }
    }

    #[test]
    fn allow_from_is_parsed_per_source() {
        let s = settings(with_allow(&["tradingview", "10.0.0.0/8"])).unwrap();
        let list = &s.allow_from["tv"];
        assert!(list.contains("52.89.214.238".parse().unwrap()));
        assert!(list.contains("10.9.8.7".parse().unwrap()));
        assert!(!list.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(list.describe(), "tradingview, 10.0.0.0/8");
        assert!(settings(WebhooksFile::default())
            .unwrap()
            .allow_from
            .is_empty());
    }

    #[test]
    fn every_bad_entry_is_named_and_an_empty_list_refused() {
        let bad = ["1.2.3.4", "10.0.0.1/8", "nope", "::1/129"];
        let problems = settings(with_allow(&bad)).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.clone().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "webhooks.sources.tv.allow_from[1]",
                "webhooks.sources.tv.allow_from[2]",
                "webhooks.sources.tv.allow_from[3]",
            ]
        );
        assert!(
            problems[0].message.contains("did you mean 10.0.0.0/8?"),
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.code == "invalid_address"));
        let empty = settings(with_allow(&[])).unwrap_err();
        assert_eq!(
            empty[0].field.as_deref(),
            Some("webhooks.sources.tv.allow_from")
        );
    }
}

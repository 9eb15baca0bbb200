//! `[handlers]`: the file as written and the handlers' settings (the `command` allow-list, the
//! `http_request` destinations and the response limit of `http_request` and `command` output).

use std::net::SocketAddr;

use serde::Deserialize;
use sovereign_core::egress::{Egress, UrlPrefix};
use sovereign_core::error::Invalid;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlersFile {
    #[serde(default)]
    pub command: CommandFile,
    #[serde(default)]
    pub http_request: HttpRequestFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestFile {
    pub max_response_bytes: Option<usize>,
    /// URL prefixes `http_request` may reach; absent: the guard (see `sovereign_core::egress`).
    pub allow: Option<Vec<String>>,
}

/// The handlers' validated settings.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    /// Programs the `command` handler may run; empty: `command` is off.
    pub command_allow: Vec<String>,
    /// How much of a response body (or of a program's output) a result keeps.
    pub max_response_bytes: usize,
    /// Where `http_request` may send: `Some` as listed (empty: the handler is off), `None`:
    /// anywhere the guard allows.
    pub http_allow: Option<Vec<UrlPrefix>>,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        HandlerSettings {
            command_allow: Vec::new(),
            max_response_bytes: 64 * 1024,
            http_allow: None,
        }
    }
}

impl HandlerSettings {
    /// The `http_request` destination rule for an engine listening on `listeners`.
    pub fn egress(&self, listeners: Vec<SocketAddr>) -> Egress {
        Egress::new(self.http_allow.clone(), listeners)
    }
}

/// Validate `[handlers]`, collecting every problem (each bad `allow` entry on its own).
pub fn settings(file: HandlersFile) -> Result<HandlerSettings, Vec<Invalid>> {
    let mut s = HandlerSettings {
        command_allow: file.command.allow,
        ..HandlerSettings::default()
    };
    if let Some(n) = file.http_request.max_response_bytes {
        s.max_response_bytes = n;
    }
    let mut problems = Vec::new();
    if let Some(entries) = &file.http_request.allow {
        let mut prefixes = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match UrlPrefix::parse(entry, &format!("handlers.http_request.allow[{i}]")) {
                Ok(p) => prefixes.push(p),
                Err(e) => problems.push(e),
            }
        }
        s.http_allow = Some(prefixes);
    }
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(allow: Option<&[&str]>) -> HandlersFile {
        HandlersFile {
            http_request: HttpRequestFile {
                max_response_bytes: None,
                allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            },
            ..HandlersFile::default()
        }
    }

    #[test]
    fn every_bad_entry_is_named() {
        let problems = settings(file(Some(&[
            "https://api.example.com",
            "ftp://files.example.com",
            "not a url",
            "https://api.example.com/x?y=1",
            "https://user:pw@api.example.com",
        ])))
        .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.clone().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "handlers.http_request.allow[1]",
                "handlers.http_request.allow[2]",
                "handlers.http_request.allow[3]",
                "handlers.http_request.allow[4]",
            ]
        );
        assert!(
            problems.iter().all(|p| p.code == "invalid_url"),
            "{problems:?}"
        );
    }

    #[test]
    fn absent_key_is_the_guard_and_an_empty_list_is_off() {
        let guard = settings(file(None)).unwrap();
        assert!(guard.http_allow.is_none());
        assert!(!guard.egress(vec![]).is_listed());
        let off = settings(file(Some(&[]))).unwrap();
        let egress = off.egress(vec![]);
        assert!(egress.is_listed());
        let refused = egress.check_text("https://api.example.com/").unwrap_err();
        assert_eq!(refused.code, "destination_not_allowed");
    }
}

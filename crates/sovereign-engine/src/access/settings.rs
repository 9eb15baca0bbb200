//! `[access]`: when requests need a key, and which proxies' forwarded addresses are believed.

use std::net::IpAddr;

use serde::Deserialize;
use sovereign_core::error::Invalid;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// `local` (requests from this machine need no key) or `keys` (every request does, but
    /// `GET /health` and the routes with their own secret). Default: `local` when the server
    /// binds a loopback address, `keys` otherwise.
    pub mode: Option<String>,
    /// Proxies whose `X-Forwarded-For` client address is believed (never for `local` trust).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Host names the engine answers to besides IP addresses and `localhost` (a request with
    /// any other `Host` is refused: DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// When requests need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Local,
    Keys,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessSettings {
    /// `None`: decided by the bind address.
    pub mode: Option<Mode>,
    pub trusted_proxies: Vec<IpAddr>,
    /// Lower-case host names, besides IP addresses and `localhost`.
    pub hosts: Vec<String>,
}

impl AccessSettings {
    /// The mode in force for a server bound to a loopback address or not.
    pub fn mode_for(&self, loopback_bind: bool) -> Mode {
        self.mode.unwrap_or(if loopback_bind {
            Mode::Local
        } else {
            Mode::Keys
        })
    }
}

pub fn settings(file: AccessFile) -> Result<AccessSettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let mode = match file.mode.as_deref() {
        None => None,
        Some("local") => Some(Mode::Local),
        Some("keys") => Some(Mode::Keys),
        Some(other) => {
            problems.push(Invalid::new(
                "invalid_mode",
                "access.mode",
                format!("access.mode must be local or keys, not {other:?}"),
            ));
            None
        }
    };
    let mut trusted_proxies = Vec::new();
    for (i, p) in file.trusted_proxies.iter().enumerate() {
        match p.parse::<IpAddr>() {
            Ok(ip) => trusted_proxies.push(ip),
            Err(_) => problems.push(Invalid::new(
                "invalid_address",
                format!("access.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(AccessSettings {
            mode,
            trusted_proxies,
            hosts: file.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        })
    } else {
        Err(problems)
    }
}

//! `[handlers]`: the file as written and the handlers' settings (the `command` allow-list and
//! the response limit of `http_request` and `command` output).

use serde::Deserialize;

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
}

/// The handlers' validated settings.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    /// Programs the `command` handler may run; empty: `command` is off.
    pub command_allow: Vec<String>,
    /// How much of a response body (or of a program's output) a result keeps.
    pub max_response_bytes: usize,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        HandlerSettings {
            command_allow: Vec::new(),
            max_response_bytes: 64 * 1024,
        }
    }
}

pub fn settings(file: HandlersFile) -> HandlerSettings {
    let mut s = HandlerSettings {
        command_allow: file.command.allow,
        ..HandlerSettings::default()
    };
    if let Some(n) = file.http_request.max_response_bytes {
        s.max_response_bytes = n;
    }
    s
}

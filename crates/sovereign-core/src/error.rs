//! The shape every input-validation failure takes: a stable snake_case code, a human message and
//! the offending field. The HTTP layer turns it into `{"error":{"code","message","field"}}`; the
//! CLI prints the message on one line. Nothing here knows about HTTP status codes.

use std::fmt;

/// A rejected input: which rule, why, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Stable machine-readable code, e.g. `invalid_cron`.
    pub code: &'static str,
    /// One sentence a person can act on.
    pub message: String,
    /// Dotted path of the offending field (`schedule.tz`), when there is one.
    pub field: Option<String>,
}

impl Invalid {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// Prefix the field path, e.g. `tz` inside `schedule` becomes `schedule.tz`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = Some(match self.field.take() {
            Some(f) if !f.is_empty() => format!("{parent}.{f}"),
            _ => parent.to_string(),
        });
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Invalid {}

//! `[notify]`: the files as written (channels, routes, the digest), and their validation into
//! [`NotifySettings`], every problem collected. A channel's target (`Target`) never shows its
//! secret in `Debug` or [`Target::describe`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;
use sovereign_core::error::Invalid;
use sovereign_core::notify::{self, Channel, ChannelKind, Priority, RateLimit, RetryPolicy, Route};
use sovereign_core::schedule::parse_duration;

/// `[notify]`: alert channels, routing, the digest, and the engine's alert rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    pub dedup_window: Option<String>,
    /// How long an undelivered alert is retried on a channel before it is dead (default 24h);
    /// a dead alert raises a P1 on the other channels.
    pub max_age: Option<String>,
    /// Attempts per alert and channel before it is given up as dead (default: no limit; the
    /// age decides).
    pub max_attempts: Option<u32>,
    /// Raise a P1 alert when a task's runs fail this many times in a row (0: never).
    pub task_failures: Option<u32>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelFile>,
    #[serde(default)]
    pub routes: Vec<AlertRouteFile>,
    #[serde(default)]
    pub digest: DigestFile,
}

/// `[notify.channels.NAME]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelFile {
    pub kind: String,
    /// slack, discord, webhook: where to POST (a secret: never shown).
    pub url: Option<String>,
    /// webhook: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// file: the JSONL file (relative paths are inside the data dir).
    pub path: Option<String>,
    /// email: `host`, `port` (default 587 for starttls, 465 for tls, 25 for none).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// email: `starttls` (default), `tls` or `none`.
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// email: read the password from this environment variable instead.
    pub password_env: Option<String>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// Per-attempt timeout (default 10s).
    pub timeout: Option<String>,
    /// Rate limit: at most `burst` messages at once, then one per `rate_per`.
    pub rate_per: Option<String>,
    pub rate_burst: Option<u32>,
}

impl std::fmt::Debug for ChannelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelFile")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// `[[notify.routes]]`: alerts of these priorities from these sources go to these channels.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRouteFile {
    #[serde(default)]
    pub priorities: Vec<String>,
    pub sources: Option<Vec<String>>,
    pub channels: Vec<String>,
}

/// `[notify.digest]`: when the daily digest of P3 alerts goes out, and where.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestFile {
    /// Local time of day, `HH:MM` (default 18:00).
    pub at: Option<String>,
    /// IANA zone (default UTC).
    pub tz: Option<String>,
    /// Default: the e-mail channels, else the file channels.
    pub channels: Option<Vec<String>>,
}

/// The validated `[notify]` section.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub channels: Vec<ChannelSettings>,
    pub routes: Vec<Route>,
    pub dedup_window: Duration,
    pub retry: RetryPolicy,
    pub digest: DigestSettings,
    /// Raise a P1 alert when a task fails this many runs in a row (0: never).
    pub task_failures: u32,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            channels: Vec::new(),
            routes: Vec::new(),
            dedup_window: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            digest: DigestSettings {
                at: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
                tz: chrono_tz::UTC,
                channels: Vec::new(),
            },
            task_failures: 3,
        }
    }
}

/// When the daily digest goes out and where.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    pub at: NaiveTime,
    pub tz: chrono_tz::Tz,
    pub channels: Vec<String>,
}

/// One configured channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub name: String,
    pub kind: ChannelKind,
    pub target: Target,
    pub timeout: Duration,
    pub rate: Option<RateLimit>,
}

/// Where a channel delivers. `Debug` and [`Target::describe`] never show a secret.
#[derive(Clone)]
pub enum Target {
    Http {
        url: reqwest::Url,
        headers: Vec<(String, String)>,
    },
    Email(EmailTarget),
    File {
        path: PathBuf,
    },
}

#[derive(Clone)]
pub struct EmailTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    None,
}

impl Target {
    /// What the API shows: the host of a webhook (its path holds the token), the SMTP server, the
    /// file path.
    pub fn describe(&self) -> String {
        match self {
            Target::Http { url, .. } => format!(
                "{}://{}{}/…",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Target::Email(e) => format!("smtp://{}:{}", e.host, e.port),
            Target::File { path } => path.display().to_string(),
        }
    }

    /// A hash of where it delivers: a disabled channel comes back once its target changes.
    pub fn fingerprint(&self) -> String {
        let identity = match self {
            Target::Http { url, .. } => url.to_string(),
            Target::Email(e) => format!("{}:{}", e.host, e.port),
            Target::File { path } => path.display().to_string(),
        };
        sovereign_core::audit::hash_of(&identity)
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Validate `[notify]`; every problem is reported.
pub fn settings(file: NotifyFile) -> Result<NotifySettings, Vec<Invalid>> {
    let mut s = NotifySettings::default();
    let mut problems = Vec::new();
    if let Some(t) = &file.dedup_window {
        match parse_duration("notify.dedup_window", t) {
            Ok(d) => s.dedup_window = d,
            Err(e) => problems.push(e),
        }
    }
    if let Some(n) = file.max_attempts {
        if n == 0 {
            problems.push(Invalid::new(
                "invalid_max_attempts",
                "notify.max_attempts",
                "max_attempts must be at least 1",
            ));
        }
        s.retry.max_attempts = Some(n.max(1));
    }
    if let Some(t) = &file.max_age {
        match parse_duration("notify.max_age", t) {
            Ok(d) if d.is_zero() => problems.push(Invalid::new(
                "invalid_duration",
                "notify.max_age",
                "max_age must be more than 0",
            )),
            Ok(d) => s.retry.max_age = d,
            Err(e) => problems.push(e),
        }
    }
    if let Some(n) = file.task_failures {
        s.task_failures = n;
    }
    for (name, c) in file.channels {
        match channel(&name, c) {
            Ok(c) => s.channels.push(c),
            Err(e) => problems.push(e.within(&format!("notify.channels.{name}"))),
        }
    }
    for (i, r) in file.routes.into_iter().enumerate() {
        let mut priorities = Vec::new();
        for (j, p) in r.priorities.iter().enumerate() {
            match Priority::parse(p) {
                Ok(p) => priorities.push(p),
                Err(e) => problems.push(e.within(&format!("notify.routes[{i}].priorities[{j}]"))),
            }
        }
        s.routes.push(Route {
            priorities,
            sources: r.sources,
            channels: r.channels,
        });
    }
    let core = core_channels(&s.channels);
    if let Err(e) = notify::validate_routes(&core, &s.routes) {
        problems.push(e.within("notify"));
    }
    if let Some(at) = &file.digest.at {
        let t = at.trim();
        match NaiveTime::parse_from_str(t, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        {
            Ok(t) => s.digest.at = t,
            Err(_) => problems.push(Invalid::new(
                "invalid_digest_time",
                "notify.digest.at",
                format!("{at:?} is not a time of day HH:MM (or HH:MM:SS)"),
            )),
        }
    }
    if let Some(tz) = &file.digest.tz {
        match tz.trim().parse::<chrono_tz::Tz>() {
            Ok(z) => s.digest.tz = z,
            Err(_) => problems.push(Invalid::new(
                "invalid_tz",
                "notify.digest.tz",
                format!("{tz:?} is not an IANA time zone"),
            )),
        }
    }
    s.digest.channels = match file.digest.channels {
        Some(names) => {
            for (j, n) in names.iter().enumerate() {
                if !s.channels.iter().any(|c| c.name == *n) {
                    problems.push(Invalid::new(
                        "unknown_channel",
                        format!("notify.digest.channels[{j}]"),
                        format!("no channel named {n:?}"),
                    ));
                }
            }
            names
        }
        None => {
            let of = |k: ChannelKind| -> Vec<String> {
                s.channels
                    .iter()
                    .filter(|c| c.kind == k)
                    .map(|c| c.name.clone())
                    .collect()
            };
            let email = of(ChannelKind::Email);
            if email.is_empty() {
                of(ChannelKind::File)
            } else {
                email
            }
        }
    };
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

fn channel(name: &str, f: ChannelFile) -> Result<ChannelSettings, Invalid> {
    let kind = ChannelKind::parse(&f.kind)?;
    let unused = |field: &str, set: bool| -> Result<(), Invalid> {
        if set {
            return Err(Invalid::new(
                "unused_field",
                field,
                format!("{field} is not used by a {} channel", kind.as_str()),
            ));
        }
        Ok(())
    };
    let is_http = matches!(
        kind,
        ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Webhook
    );
    unused("url", !is_http && f.url.is_some())?;
    unused(
        "headers",
        kind != ChannelKind::Webhook && !f.headers.is_empty(),
    )?;
    unused("path", kind != ChannelKind::File && f.path.is_some())?;
    if kind != ChannelKind::Email {
        for (field, set) in [
            ("host", f.host.is_some()),
            ("port", f.port.is_some()),
            ("tls", f.tls.is_some()),
            ("username", f.username.is_some()),
            ("password", f.password.is_some()),
            ("password_env", f.password_env.is_some()),
            ("from", f.from.is_some()),
            ("to", !f.to.is_empty()),
        ] {
            unused(field, set)?;
        }
    }
    let required = |field: &str, v: Option<String>| {
        v.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Invalid::new(
                "missing_field",
                field,
                format!("a {} channel needs {field}", kind.as_str()),
            )
        })
    };
    let target = match kind {
        ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Webhook => {
            let text = required("url", f.url)?;
            let url = reqwest::Url::parse(text.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    Invalid::new(
                        "invalid_channel_url",
                        "url",
                        "url must be an http:// or https:// URL",
                    )
                })?;
            Target::Http {
                url,
                headers: f.headers.into_iter().collect(),
            }
        }
        ChannelKind::File => Target::File {
            path: PathBuf::from(required("path", f.path)?),
        },
        ChannelKind::Email => {
            let tls = match f.tls.as_deref().map(str::trim) {
                None | Some("starttls") => SmtpTls::StartTls,
                Some("tls") => SmtpTls::Tls,
                Some("none") => SmtpTls::None,
                Some(other) => {
                    return Err(Invalid::new(
                        "invalid_tls",
                        "tls",
                        format!("tls {other:?} must be starttls, tls or none"),
                    ))
                }
            };
            let mailbox = |field: String, text: &str| {
                text.trim()
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| {
                        Invalid::new(
                            "invalid_address",
                            field,
                            format!("{text:?} is not an e-mail address: {e}"),
                        )
                    })
            };
            let from = mailbox("from".into(), &required("from", f.from)?)?;
            if f.to.is_empty() {
                return Err(Invalid::new(
                    "missing_field",
                    "to",
                    "an email channel needs at least one recipient in to",
                ));
            }
            let to =
                f.to.iter()
                    .enumerate()
                    .map(|(i, t)| mailbox(format!("to[{i}]"), t))
                    .collect::<Result<Vec<_>, _>>()?;
            let password = match (f.password, f.password_env) {
                (Some(_), Some(_)) => {
                    return Err(Invalid::new(
                        "invalid_password",
                        "password_env",
                        "give password or password_env, not both",
                    ))
                }
                (Some(p), None) => Some(p),
                (None, Some(var)) => Some(std::env::var(&var).map_err(|_| {
                    Invalid::new(
                        "missing_env",
                        "password_env",
                        format!("environment variable {var:?} is not set"),
                    )
                })?),
                (None, None) => None,
            };
            let credentials = match (f.username, password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    return Err(Invalid::new(
                        "invalid_credentials",
                        "username",
                        "username and password go together",
                    ))
                }
            };
            let port = f.port.unwrap_or(match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            });
            Target::Email(EmailTarget {
                host: required("host", f.host)?.trim().to_string(),
                port,
                tls,
                credentials,
                from,
                to,
            })
        }
    };
    let timeout = match &f.timeout {
        Some(t) => parse_duration("timeout", t)?,
        None => Duration::from_secs(10),
    };
    let rate = match (&f.rate_per, f.rate_burst) {
        (None, None) => RateLimit::default_for(kind),
        (per, burst) => {
            let per = match per {
                Some(t) => parse_duration("rate_per", t)?,
                None => Duration::from_secs(1),
            };
            Some(RateLimit::new(per, burst.unwrap_or(1)))
        }
    };
    Ok(ChannelSettings {
        name: name.to_string(),
        kind,
        target,
        timeout,
        rate,
    })
}

pub fn core_channels(channels: &[ChannelSettings]) -> Vec<Channel> {
    channels
        .iter()
        .map(|c| Channel {
            name: c.name.clone(),
            kind: c.kind,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_settings_are_checked() {
        let file = |kind: &str| ChannelFile {
            kind: kind.into(),
            ..ChannelFile::default()
        };
        let err = |f: ChannelFile| channel("c", f).err().map(|e| (e.code, e.field));
        let some = |code: &'static str, field: &str| Some((code, Some(field.to_string())));
        assert_eq!(err(file("pager")), some("invalid_channel_kind", "kind"));
        assert_eq!(err(file("slack")), some("missing_field", "url"));
        for bad in [
            "ftp://x/y",
            "hooks.slack.com/x",
            "http://",
            "file:///etc/passwd",
        ] {
            let f = ChannelFile {
                url: Some(bad.into()),
                ..file("webhook")
            };
            assert_eq!(err(f), some("invalid_channel_url", "url"), "{bad}");
        }
        let f = ChannelFile {
            url: Some("http://127.0.0.1:9/x".into()),
            ..file("file")
        };
        assert_eq!(err(f), some("unused_field", "url"));
        assert_eq!(err(file("email")), some("missing_field", "from"));
        let mail = |to: Vec<&str>| ChannelFile {
            host: Some("127.0.0.1".into()),
            from: Some("ops@example.com".into()),
            to: to.into_iter().map(String::from).collect(),
            ..file("email")
        };
        assert_eq!(err(mail(vec![])), some("missing_field", "to"));
        assert_eq!(
            err(mail(vec!["not an address"])),
            some("invalid_address", "to[0]")
        );
        let ok = channel("c", mail(vec!["a@example.com"]));
        assert!(matches!(ok.map(|c| c.target), Ok(Target::Email(e)) if e.port == 587));
        let secret = ChannelFile {
            url: Some("https://hooks.slack.com/services/T0/B0/SECRET".into()),
            ..file("slack")
        };
        let c = channel("c", secret).map(|c| format!("{:?} {}", c, c.target.describe()));
        assert!(matches!(&c, Ok(t) if !t.contains("SECRET")), "{c:?}");
    }
}

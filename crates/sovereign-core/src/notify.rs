//! The notifier's decisions: what an alert is, where it goes, whether it is a duplicate, whether a
//! channel may send now, what to do after a failed delivery, and what each channel is sent.
//!
//! Pure functions on plain data. Nothing here sends, sleeps, reads the clock or touches the outbox:
//! the engine passes `now`, performs the HTTP/SMTP/file effects and feeds the outcomes back.
//!
//! # Layout
//! - [`Priority`], [`AlertSpec`] → [`Alert`]: validate first (codes `invalid_priority`,
//!   `invalid_source`, `invalid_title`, `invalid_message`, `invalid_context`, `invalid_dedup_key`).
//! - [`ChannelKind`], [`Channel`], [`Route`], [`route`]: routing by priority and source, with the
//!   default policy P0 → every channel, P1 → chat + webhooks + file, P2 → chat + webhooks,
//!   P3 → webhooks + file + the daily digest; an alert none of whose kinds exist goes to every
//!   channel (never to none).
//! - [`AlertDedup`]: drop the same alert within a window.
//! - [`RateLimit`]: a per-channel token bucket (GCRA) that answers "send now" or "wait this long".
//! - [`RetryPolicy::after_failure`]: delivered / retry at / disable channel / drop / dead, honouring
//!   HTTP 429 `Retry-After` (seconds or HTTP-date) and Discord's JSON `retry_after`.
//! - Payloads: [`slack_payload`], [`discord_payload`] (within Discord's documented limits),
//!   [`webhook_payload`], [`email_subject_body`], [`file_line`].

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use crate::error::Invalid;
use crate::retry::Backoff;
use crate::webhook::DedupWindow;

// ---------------------------------------------------------------------------------------------
// Priorities and alerts
// ---------------------------------------------------------------------------------------------

/// How urgent an alert is. `P0` is the most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Immediate, every channel.
    P0,
    /// Chat and file.
    P1,
    /// Chat.
    P2,
    /// File and the daily digest.
    P3,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::P0, Priority::P1, Priority::P2, Priority::P3];

    /// `"P0"`, `"p0"` or `"0"` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<Priority, Invalid> {
        let t = s.trim();
        let digits = t
            .strip_prefix('P')
            .or_else(|| t.strip_prefix('p'))
            .unwrap_or(t);
        match digits {
            "0" => Ok(Priority::P0),
            "1" => Ok(Priority::P1),
            "2" => Ok(Priority::P2),
            "3" => Ok(Priority::P3),
            _ => Err(invalid_priority()),
        }
    }

    /// A JSON string (see [`Priority::parse`]) or an integer 0–3.
    pub fn from_json(v: &Value) -> Result<Priority, Invalid> {
        match v {
            Value::String(s) => Priority::parse(s),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Ok(Priority::P0),
                Some(1) => Ok(Priority::P1),
                Some(2) => Ok(Priority::P2),
                Some(3) => Ok(Priority::P3),
                _ => Err(invalid_priority()),
            },
            _ => Err(invalid_priority()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P0 => "P0",
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }

    /// Embed/attachment colour as `0xRRGGBB`.
    pub fn color(self) -> u32 {
        match self {
            Priority::P0 => 0xE0_1E_5A,
            Priority::P1 => 0xF2_99_4A,
            Priority::P2 => 0xEC_B2_2E,
            Priority::P3 => 0x3A_A3_E3,
        }
    }

    pub fn emoji(self) -> &'static str {
        match self {
            Priority::P0 => "🔴",
            Priority::P1 => "🟠",
            Priority::P2 => "🟡",
            Priority::P3 => "🔵",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn invalid_priority() -> Invalid {
    Invalid::new(
        "invalid_priority",
        "priority",
        "priority must be one of P0, P1, P2, P3 (or 0-3)",
    )
}

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest message, in characters.
pub const MAX_MESSAGE: usize = 4000;
/// Longest source, in characters.
pub const MAX_SOURCE: usize = 64;
/// Longest dedup key, in characters.
pub const MAX_DEDUP_KEY: usize = 200;

/// An alert as submitted (`POST /api/alerts`, an engine rule), before validation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertSpec {
    /// `"P0"`…`"P3"` or 0–3. Missing (`null`) means `P2`.
    #[serde(default)]
    pub priority: Value,
    pub source: String,
    pub title: String,
    #[serde(default)]
    pub message: String,
    /// A JSON object (or `null`, read as `{}`).
    #[serde(default)]
    pub context: Value,
    #[serde(default)]
    pub dedup_key: Option<String>,
}

/// A validated alert. [`AlertSpec::validate`] guarantees the documented lengths; the payload
/// functions nevertheless stay within every channel's limits for any value of these fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub priority: Priority,
    pub source: String,
    pub title: String,
    pub message: String,
    /// Always a JSON object after validation.
    pub context: Value,
    pub dedup_key: Option<String>,
}

impl AlertSpec {
    /// Check every field; source, title and dedup key are trimmed, the message is kept as sent.
    pub fn validate(self) -> Result<Alert, Invalid> {
        let priority = match &self.priority {
            Value::Null => Priority::P2,
            v => Priority::from_json(v)?,
        };
        let source = self.source.trim().to_string();
        let n = source.chars().count();
        if n == 0 || n > MAX_SOURCE || source.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_source",
                "source",
                format!("source must be 1-{MAX_SOURCE} characters without control characters"),
            ));
        }
        let title = self.title.trim().to_string();
        let n = title.chars().count();
        if n == 0 || n > MAX_TITLE || title.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_title",
                "title",
                format!("title must be 1-{MAX_TITLE} characters on one line"),
            ));
        }
        if self.message.chars().count() > MAX_MESSAGE {
            return Err(Invalid::new(
                "invalid_message",
                "message",
                format!("message must be at most {MAX_MESSAGE} characters"),
            ));
        }
        let context = match self.context {
            Value::Null => Value::Object(Map::new()),
            v @ Value::Object(_) => v,
            _ => {
                return Err(Invalid::new(
                    "invalid_context",
                    "context",
                    "context must be a JSON object",
                ))
            }
        };
        let dedup_key = match self.dedup_key {
            None => None,
            Some(k) => {
                let k = k.trim().to_string();
                let n = k.chars().count();
                if n == 0 || n > MAX_DEDUP_KEY || k.chars().any(char::is_control) {
                    return Err(Invalid::new(
                        "invalid_dedup_key",
                        "dedup_key",
                        format!("dedup_key must be 1-{MAX_DEDUP_KEY} characters"),
                    ));
                }
                Some(k)
            }
        };
        Ok(Alert {
            priority,
            source,
            title,
            message: self.message,
            context,
            dedup_key,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Channels and routing
// ---------------------------------------------------------------------------------------------

/// What a channel delivers through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Slack,
    Discord,
    Webhook,
    Email,
    File,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Webhook,
        ChannelKind::Email,
        ChannelKind::File,
    ];

    pub fn parse(s: &str) -> Result<ChannelKind, Invalid> {
        match s.trim() {
            "slack" => Ok(ChannelKind::Slack),
            "discord" => Ok(ChannelKind::Discord),
            "webhook" => Ok(ChannelKind::Webhook),
            "email" => Ok(ChannelKind::Email),
            "file" => Ok(ChannelKind::File),
            _ => Err(Invalid::new(
                "invalid_channel_kind",
                "kind",
                "channel kind must be one of slack, discord, webhook, email, file",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
            ChannelKind::File => "file",
        }
    }

    /// Slack and Discord: the "chat" of the default routing policy.
    pub fn is_chat(self) -> bool {
        matches!(self, ChannelKind::Slack | ChannelKind::Discord)
    }
}

/// A configured channel, as routing sees it (its URL/credentials live in the engine's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
}

/// The reserved pseudo-channel name that sends an alert to the daily digest.
pub const DIGEST: &str = "digest";

/// A config rule: alerts of one of `priorities` (empty: any) from one of `sources` (`None`: any)
/// go to `channels`. A channel name may be [`DIGEST`]. An empty `channels` list mutes the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub priorities: Vec<Priority>,
    pub sources: Option<Vec<String>>,
    pub channels: Vec<String>,
}

impl Route {
    pub fn matches(&self, alert: &Alert) -> bool {
        let prio_ok = self.priorities.is_empty() || self.priorities.contains(&alert.priority);
        let source_ok = self
            .sources
            .as_ref()
            .is_none_or(|s| s.contains(&alert.source));
        prio_ok && source_ok
    }
}

/// Where one alert goes: channel names in order, each once, and whether it joins the digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routing {
    pub channels: Vec<String>,
    pub digest: bool,
}

/// Check channel names and routes against each other before anything is sent: channel names are
/// unique and not [`DIGEST`]; every route names configured channels (or [`DIGEST`]).
pub fn validate_routes(channels: &[Channel], routes: &[Route]) -> Result<(), Invalid> {
    for (i, c) in channels.iter().enumerate() {
        let field = format!("channels[{i}].name");
        if c.name.trim().is_empty() || c.name == DIGEST {
            return Err(Invalid::new(
                "invalid_channel_name",
                field,
                format!("channel name must be non-empty and not the reserved \"{DIGEST}\""),
            ));
        }
        if channels[..i].iter().any(|p| p.name == c.name) {
            return Err(Invalid::new(
                "duplicate_channel",
                field,
                format!("channel {:?} is defined twice", c.name),
            ));
        }
    }
    for (i, r) in routes.iter().enumerate() {
        for (j, name) in r.channels.iter().enumerate() {
            if name != DIGEST && !channels.iter().any(|c| c.name == *name) {
                return Err(Invalid::new(
                    "unknown_channel",
                    format!("routes[{i}].channels[{j}]"),
                    format!("no channel named {name:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Where `alert` goes. When any config route matches, the union of the matching routes' channels
/// (in route order, each once) replaces the default, and the digest is joined only if one of them
/// lists [`DIGEST`]. Otherwise the default policy over `channels` (in config order): P0 → every
/// channel; P1 → chat (Slack, Discord) + file; P2 → chat; P3 → file + digest.
pub fn route(routes: &[Route], channels: &[Channel], alert: &Alert) -> Routing {
    let mut out = Routing::default();
    let mut matched = false;
    for r in routes.iter().filter(|r| r.matches(alert)) {
        matched = true;
        for name in &r.channels {
            if name == DIGEST {
                out.digest = true;
            } else if !out.channels.contains(name) {
                out.channels.push(name.clone());
            }
        }
    }
    if matched {
        return out;
    }
    // A generic webhook is the user's own receiver: it gets every priority.
    let wanted = |k: ChannelKind| match alert.priority {
        Priority::P0 => true,
        Priority::P1 => k.is_chat() || k == ChannelKind::File || k == ChannelKind::Webhook,
        Priority::P2 => k.is_chat() || k == ChannelKind::Webhook,
        Priority::P3 => k == ChannelKind::File || k == ChannelKind::Webhook,
    };
    for c in channels.iter().filter(|c| wanted(c.kind)) {
        if !out.channels.contains(&c.name) {
            out.channels.push(c.name.clone());
        }
    }
    out.digest = alert.priority == Priority::P3;
    if out.channels.is_empty() && !out.digest {
        // No channel of the kinds this priority goes to: every channel, never none.
        out.channels = channels.iter().map(|c| c.name.clone()).collect();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Dedup
// ---------------------------------------------------------------------------------------------

/// What makes two alerts "the same": the dedup key when given, else priority + source + title.
pub fn dedup_identity(alert: &Alert) -> (&'static str, String) {
    match &alert.dedup_key {
        Some(k) => ("key", k.clone()),
        None => (
            "auto",
            format!(
                "{}\u{1f}{}\u{1f}{}",
                alert.priority.as_str(),
                alert.source,
                alert.title
            ),
        ),
    }
}

/// Drops an alert identical (see [`dedup_identity`]) to one admitted less than `window` ago. The
/// window runs from the first admitted copy, so a repeating alert goes out once per window.
#[derive(Debug, Clone)]
pub struct AlertDedup {
    seen: DedupWindow,
}

impl AlertDedup {
    pub fn new(window: Duration) -> Self {
        AlertDedup {
            seen: DedupWindow::new(window),
        }
    }

    /// `true`: new, deliver it (and it is remembered). `false`: a duplicate, drop it.
    pub fn admit(&mut self, alert: &Alert, now: DateTime<Utc>) -> bool {
        let (ns, id) = dedup_identity(alert);
        self.seen.admit(ns, &id, now)
    }

    /// Forget an alert admitted by mistake (it could not be stored).
    pub fn forget(&mut self, alert: &Alert) {
        let (ns, id) = dedup_identity(alert);
        self.seen.forget(ns, &id);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limit
// ---------------------------------------------------------------------------------------------

/// A token bucket holding `burst` tokens, refilled by one every `per`, as GCRA: one timestamp of
/// state, exact to the nanosecond. A refused request consumes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub per: Duration,
    /// Bucket size; 0 behaves like 1.
    pub burst: u32,
    /// Theoretical arrival time of the next request at the steady rate.
    tat: Option<DateTime<Utc>>,
}

impl RateLimit {
    pub fn new(per: Duration, burst: u32) -> Self {
        RateLimit {
            per,
            burst,
            tat: None,
        }
    }

    /// Slack incoming webhooks: about one message per second.
    pub fn slack() -> Self {
        RateLimit::new(Duration::from_secs(1), 1)
    }

    /// Discord webhooks: five messages per two seconds.
    pub fn discord() -> Self {
        RateLimit::new(Duration::from_millis(400), 5)
    }

    /// The built-in limit for a channel kind; `None` for kinds without one.
    pub fn default_for(kind: ChannelKind) -> Option<Self> {
        match kind {
            ChannelKind::Slack => Some(RateLimit::slack()),
            ChannelKind::Discord => Some(RateLimit::discord()),
            ChannelKind::Webhook | ChannelKind::Email | ChannelKind::File => None,
        }
    }

    fn step(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.per).unwrap_or(chrono::Duration::MAX)
    }

    fn tolerance(&self) -> chrono::Duration {
        let extra = i32::try_from(self.burst.max(1) - 1).unwrap_or(i32::MAX);
        self.step()
            .checked_mul(extra)
            .unwrap_or(chrono::Duration::MAX)
    }

    /// Take one token at `now`: `Ok(())` to send, or `Err(wait)` until a token is there.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let ahead = tat.signed_duration_since(now);
        let tolerance = self.tolerance();
        if ahead > tolerance {
            let wait = ahead - tolerance;
            return Err(wait.to_std().unwrap_or(Duration::MAX));
        }
        self.tat = Some(tat.checked_add_signed(self.step()).unwrap_or(tat));
        Ok(())
    }

    /// Admit nothing before `until` (a 429 told us so); afterwards, the bucket refills as usual.
    pub fn hold_until(&mut self, until: DateTime<Utc>) {
        let held = until.checked_add_signed(self.tolerance()).unwrap_or(until);
        self.tat = Some(self.tat.map_or(held, |t| t.max(held)));
    }
}

// ---------------------------------------------------------------------------------------------
// Retry decisions
// ---------------------------------------------------------------------------------------------

/// What one delivery attempt came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response; `retry_after` is the server's hint (see [`retry_hint`]).
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No response: connection refused, timeout, TLS failure, SMTP transient failure, I/O error.
    Network,
    /// A permanent refusal outside HTTP (an SMTP 5xx reply): retrying cannot help.
    Refused,
    /// Taken outside HTTP: the SMTP server accepted the message, the file line is on disk.
    Accepted,
}

/// What to do with an alert on one channel after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// It arrived; mark it delivered on this channel.
    Delivered,
    /// Try again at `at` (= now + `after`). `rate_limited`: the channel said 429, so the whole
    /// channel should hold until `at` (see [`RateLimit::hold_until`]).
    Retry {
        after: Duration,
        at: DateTime<Utc>,
        rate_limited: bool,
    },
    /// The endpoint is gone (404/410): disable the channel and report it.
    Disable { reason: String },
    /// A permanent refusal (4xx): this alert will never be accepted by this channel.
    Drop { reason: String },
    /// Transient failures until the alert was too old (or the attempts ran out).
    Dead { attempts: u32, reason: String },
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before retry `n` when the server gives no hint (capped by the backoff's `max`).
    pub backoff: Backoff,
    /// An alert still undelivered this long after it was accepted is dead: a channel that is
    /// down holds its queue until then.
    pub max_age: Duration,
    /// Attempts in all (the first one included) after which the alert is dead, if set.
    pub max_attempts: Option<u32>,
    /// A server's `Retry-After` longer than this is cut to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 1s, 2s, 4s, … ≤ 60s, for up to 24 hours; `Retry-After` honoured up to one hour.
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff::default(),
            max_age: Duration::from_secs(24 * 3600),
            max_attempts: None,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The decision after attempt number `attempt` (1 = the first try) of an alert accepted at
    /// `accepted` ended in `outcome`.
    ///
    /// 2xx → delivered. 404/410 → disable the channel. 408 and 429 → retry (429 after the
    /// server's hint when it gave one). Other 1xx/3xx/4xx → drop. 5xx, other statuses and network
    /// failures → retry with backoff. A retry is never later than `accepted + max_age`; once
    /// that has passed (or `max_attempts` were made) → dead.
    pub fn after_failure(
        &self,
        attempt: u32,
        outcome: &Outcome,
        accepted: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RetryDecision {
        let (hint, rate_limited, reason) = match *outcome {
            Outcome::Accepted => return RetryDecision::Delivered,
            Outcome::Http { status, .. } if (200..300).contains(&status) => {
                return RetryDecision::Delivered
            }
            Outcome::Http {
                status: status @ (404 | 410),
                ..
            } => {
                return RetryDecision::Disable {
                    reason: format!("webhook gone (HTTP {status})"),
                }
            }
            Outcome::Http {
                status: 429,
                retry_after,
            } => (retry_after, true, "rate limited (HTTP 429)".to_string()),
            Outcome::Http { status: 408, .. } => (None, false, "HTTP 408".to_string()),
            Outcome::Http { status, .. } if (100..500).contains(&status) => {
                return RetryDecision::Drop {
                    reason: format!("refused (HTTP {status})"),
                }
            }
            Outcome::Http { status, .. } => (None, false, format!("HTTP {status}")),
            Outcome::Network => (None, false, "network failure".to_string()),
            Outcome::Refused => {
                return RetryDecision::Drop {
                    reason: "refused permanently".to_string(),
                }
            }
        };
        let deadline = chrono::Duration::from_std(self.max_age)
            .ok()
            .and_then(|d| accepted.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now >= deadline || self.max_attempts.is_some_and(|m| attempt >= m) {
            return RetryDecision::Dead {
                attempts: attempt,
                reason,
            };
        }
        let left = (deadline - now).to_std().unwrap_or_default();
        let after = match hint {
            Some(d) => d.min(self.max_retry_after),
            None => self.backoff.delay(attempt),
        }
        .min(left);
        let at = chrono::Duration::from_std(after)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        RetryDecision::Retry {
            after,
            at,
            rate_limited,
        }
    }
}

/// The wait a 429 response asks for: Discord's JSON body `retry_after` (seconds, fractions
/// allowed) when present, else the `Retry-After` header (seconds or an HTTP-date).
pub fn retry_hint(
    retry_after_header: Option<&str>,
    body: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    body.and_then(discord_retry_after)
        .or_else(|| retry_after_header.and_then(|h| parse_retry_after(h, now)))
}

/// A `Retry-After` header value: delay-seconds (`"120"`; a decimal is accepted too) or an
/// HTTP-date (IMF-fixdate, RFC 850 or asctime). A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Some(d) = parse_seconds(v) {
        return Some(d);
    }
    let at = parse_http_date(v)?;
    Some(
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// An HTTP-date in any of the three forms RFC 9110 makes recipients accept, always GMT.
pub fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc2822(v) {
        return Some(t.with_timezone(&Utc));
    }
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; asctime: "Sun Nov  6 08:49:37 1994".
    let naive = v
        .strip_suffix(" GMT")
        .and_then(|s| NaiveDateTime::parse_from_str(s, "%A, %d-%b-%y %H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(v, "%a %b %e %H:%M:%S %Y").ok())?;
    Some(naive.and_utc())
}

/// Discord's 429 body `{"retry_after": 1.5, ...}` → 1500 ms. The number's decimal text is read
/// exactly (no float arithmetic), rounding up to the millisecond.
pub fn discord_retry_after(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    match v.get("retry_after")? {
        Value::Number(n) => parse_seconds(&n.to_string()),
        Value::String(s) => parse_seconds(s.trim()),
        _ => None,
    }
}

/// Decimal seconds (`"120"`, `"1.5"`, `"0.0015"`, `"1e-3"`) → a duration, exact, rounded up to
/// the millisecond. `None` for anything else (signs, junk, absurdly large).
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => {
            let e = &text[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6
            {
                return None;
            }
            (&text[..i], e.parse::<i64>().ok()?)
        }
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = int.chars().chain(frac.chars()).collect();
    let digits = digits.trim_start_matches('0');
    // Value = digits × 10^(exp − len(frac)) seconds = digits × 10^(scale) ms.
    let frac_len = i64::try_from(frac.len()).ok()?;
    let scale = exp - frac_len + 3;
    if digits.is_empty() {
        return Some(Duration::ZERO);
    }
    if digits.len() > 38 {
        return None;
    }
    let m: u128 = digits.parse().ok()?;
    let ms: u128 = if scale >= 0 {
        let p = 10u128.checked_pow(u32::try_from(scale).ok()?)?;
        m.checked_mul(p)?
    } else {
        match u32::try_from(-scale)
            .ok()
            .and_then(|s| 10u128.checked_pow(s))
        {
            Some(p) => m.div_ceil(p),
            None => 1, // a positive amount far below a millisecond
        }
    };
    Some(Duration::from_millis(u64::try_from(ms).ok()?))
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// `s` cut to at most `max` characters; when cut, the last one kept is "…". Never splits a char.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let cut = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            let mut out = String::with_capacity(cut + 3);
            out.push_str(&s[..cut]);
            out.push('…');
            out
        }
    }
}

/// A context value as text: strings as they are, anything else as compact JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Context entries as `(key, text)` pairs: an object's members, or one `context` entry.
fn context_entries(context: &Value) -> Vec<(String, String)> {
    match context {
        Value::Null => Vec::new(),
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect(),
        other => vec![("context".to_string(), value_text(other))],
    }
}

/// Slack's limits for the blocks [`slack_payload`] builds (characters).
pub mod slack_limits {
    /// The top-level `text` (notification fallback).
    pub const TEXT: usize = 4000;
    /// A `header` block's plain text.
    pub const HEADER: usize = 150;
    /// A `section` block's text.
    pub const SECTION: usize = 3000;
    /// Elements in a `context` block.
    pub const CONTEXT_ELEMENTS: usize = 10;
    /// One context element's text.
    pub const CONTEXT_TEXT: usize = 3000;
}

fn slack_escape_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

/// Escape `&`, `<`, `>` for Slack mrkdwn and fit the escaped text in `max` characters, never
/// cutting inside an escape or a char.
fn slack_mrkdwn(s: &str, max: usize) -> String {
    let total: usize = s.chars().map(slack_escape_len).sum();
    let budget = if total <= max {
        usize::MAX
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let l = slack_escape_len(c);
        if used + l > budget {
            break;
        }
        used += l;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    if total > max && max > 0 {
        out.push('…');
    }
    out
}

/// A Slack incoming-webhook body: `text` (the notification fallback) and `blocks` — a header
/// (emoji, priority, title), a section with the message (omitted when empty) and a context line
/// with the source and up to nine context entries. Every text is within [`slack_limits`].
pub fn slack_payload(alert: &Alert) -> Value {
    let p = alert.priority;
    let text = slack_mrkdwn(
        &format!("{} [{}] {}: {}", p.emoji(), p, alert.source, alert.title),
        slack_limits::TEXT,
    );
    let header = truncate_chars(
        &format!(
            "{} {} · {}",
            p.emoji(),
            p,
            non_blank(&alert.title, "(no title)")
        ),
        slack_limits::HEADER,
    );
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header, "emoji": true},
    })];
    if !alert.message.trim().is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": slack_mrkdwn(&alert.message, slack_limits::SECTION)},
        }));
    }
    let mut elements = vec![json!({
        "type": "mrkdwn",
        "text": slack_mrkdwn(
            &format!("*{}* · source: {}", p, non_blank(&alert.source, "(none)")),
            slack_limits::CONTEXT_TEXT,
        ),
    })];
    for (k, v) in context_entries(&alert.context)
        .into_iter()
        .take(slack_limits::CONTEXT_ELEMENTS - 1)
    {
        elements.push(json!({
            "type": "mrkdwn",
            "text": slack_mrkdwn(&format!("{k}: {v}"), slack_limits::CONTEXT_TEXT),
        }));
    }
    blocks.push(json!({"type": "context", "elements": elements}));
    json!({"text": text, "blocks": blocks})
}

fn non_blank<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.trim().is_empty() {
        fallback
    } else {
        s
    }
}

/// Discord's webhook/embed limits (characters).
pub mod discord_limits {
    pub const CONTENT: usize = 2000;
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    /// Title + description + field names and values + footer + author of all embeds together.
    pub const EMBED_TOTAL: usize = 6000;
}

/// The footer is kept short so the description and fields have room within the 6000 total.
const DISCORD_FOOTER_MAX: usize = 256;

/// A Discord webhook body: a short `content` line and one embed (title, message as description,
/// colour by priority, context entries as fields, source/priority footer), every part within
/// [`discord_limits`] and truncated with "…" on char boundaries. Mentions are disabled, so alert
/// text can never ping `@everyone`.
pub fn discord_payload(alert: &Alert) -> Value {
    use discord_limits as L;
    let p = alert.priority;
    let content = truncate_chars(
        &format!("{} **{}** alert from {}", p.emoji(), p, alert.source),
        L::CONTENT,
    );
    let title = truncate_chars(non_blank(&alert.title, "(no title)"), L::TITLE);
    let footer = truncate_chars(
        &format!("{} · {}", non_blank(&alert.source, "(none)"), p),
        DISCORD_FOOTER_MAX.min(L::FOOTER),
    );
    let mut left = L::EMBED_TOTAL - title.chars().count() - footer.chars().count();
    let mut embed = Map::new();
    embed.insert("title".into(), Value::String(title));
    embed.insert("color".into(), json!(p.color()));
    if !alert.message.trim().is_empty() {
        let description = truncate_chars(&alert.message, L::DESCRIPTION.min(left));
        left -= description.chars().count();
        embed.insert("description".into(), Value::String(description));
    }
    let mut fields = Vec::new();
    for (k, v) in context_entries(&alert.context).into_iter().take(L::FIELDS) {
        let name = truncate_chars(non_blank(&k, "(key)"), L::FIELD_NAME.min(left));
        let name_len = name.chars().count();
        // Room for the name and at least one character of value.
        if name_len == 0 || left < name_len + 1 {
            break;
        }
        let value = truncate_chars(non_blank(&v, "—"), L::FIELD_VALUE.min(left - name_len));
        left -= name_len + value.chars().count();
        let inline = value.chars().count() <= 40;
        fields.push(json!({"name": name, "value": value, "inline": inline}));
    }
    if !fields.is_empty() {
        embed.insert("fields".into(), Value::Array(fields));
    }
    embed.insert("footer".into(), json!({"text": footer}));
    json!({
        "content": content,
        "embeds": [Value::Object(embed)],
        "allowed_mentions": {"parse": []},
    })
}

/// The generic JSON webhook body: the alert as data, with its outbox id (receivers may use it
/// to drop a redelivery) and the time it was raised.
pub fn webhook_payload(id: u64, alert: &Alert, at: DateTime<Utc>) -> Value {
    json!({
        "id": id,
        "priority": alert.priority.as_str(),
        "source": alert.source,
        "title": alert.title,
        "message": alert.message,
        "context": alert.context,
        "dedup_key": alert.dedup_key,
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Longest e-mail subject, in characters.
pub const MAX_SUBJECT: usize = 200;

/// An e-mail's subject (one line: control characters become spaces, so no header can be
/// injected) and plain-text body.
pub fn email_subject_body(alert: &Alert) -> (String, String) {
    let raw = format!(
        "[Sovereign {}] {}: {}",
        alert.priority, alert.source, alert.title
    );
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let subject = truncate_chars(&one_line, MAX_SUBJECT);
    let mut body = format!(
        "{}\n\nPriority: {}\nSource: {}\n",
        alert.title, alert.priority, alert.source
    );
    if let Some(k) = &alert.dedup_key {
        body.push_str(&format!("Dedup key: {k}\n"));
    }
    if !alert.message.is_empty() {
        body.push('\n');
        body.push_str(&alert.message);
        body.push('\n');
    }
    let entries = context_entries(&alert.context);
    if !entries.is_empty() {
        body.push_str("\nContext:\n");
        for (k, v) in entries {
            body.push_str(&format!("  {k}: {v}\n"));
        }
    }
    (subject, body)
}

/// One JSONL record for the file channel (no trailing newline; the writer adds it). Newlines in
/// the alert are escaped by JSON, so a record is always exactly one line.
pub fn file_line(id: u64, alert: &Alert, at: DateTime<Utc>) -> String {
    webhook_payload(id, alert, at).to_string()
}

// ---------------------------------------------------------------------------------------------
// The daily digest (P3)
// ---------------------------------------------------------------------------------------------

/// The local date whose digest is due at `now`, if any: the digest goes out once a day at `at`
/// in `tz`, for the day it closes, unless `last_sent` already covers that date.
pub fn digest_due(
    now: DateTime<Utc>,
    at: chrono::NaiveTime,
    tz: chrono_tz::Tz,
    last_sent: Option<chrono::NaiveDate>,
) -> Option<chrono::NaiveDate> {
    let local = now.with_timezone(&tz);
    let date = local.date_naive();
    (local.time() >= at && last_sent.is_none_or(|d| d < date)).then_some(date)
}

/// Subject and plain-text body of a digest of `alerts` (time, alert), oldest first.
pub fn digest_text(date: chrono::NaiveDate, alerts: &[(DateTime<Utc>, Alert)]) -> (String, String) {
    let subject = format!("Sovereign daily digest {date}: {} alert(s)", alerts.len());
    let mut body = String::new();
    for (at, a) in alerts {
        body.push_str(&format!(
            "{} [{}] {}: {}\n",
            at.format("%H:%M:%S"),
            a.priority.as_str(),
            a.source,
            a.title
        ));
        if !a.message.is_empty() {
            body.push_str("    ");
            body.push_str(&truncate_chars(&a.message, 500).replace('\n', "\n    "));
            body.push('\n');
        }
    }
    if alerts.is_empty() {
        body.push_str("No alerts.\n");
    }
    (subject, body)
}

//! Task schedules: validate a user's `{cron | every | at}` spec, then answer "when does it fire next
//! after this instant?".
//!
//! Pure: callers pass `after` (and, for intervals, the `anchor` the schedule counts from). Nothing
//! here reads the clock, sleeps or stores state between calls; the engine's scheduler owns timers.
//!
//! # Kinds
//! - `cron`: a pattern with seconds (`"0 25 9 * * MON-FRI"`). Five fields (no seconds; seconds = 0)
//!   and seven (trailing year) are accepted too, as are `@hourly`, `@daily`, `@weekly`,
//!   `@monthly`, `@yearly`. Day-of-week must be written with names (`MON-FRI`, `SUN`): numbers mean
//!   different days in different cron dialects, so they are rejected rather than guessed.
//!   Evaluated on the wall clock of `tz` (IANA name, default `UTC`); years beyond 2100 never match.
//! - `every`: a humantime interval (`"15m"`, `"1h 30m"`, `"500ms"`, at least 100ms). Fires at
//!   `anchor + k * interval` for k >= 1 — fixed spacing in real time, unaffected by DST.
//! - `at`: one RFC 3339 instant (`"2026-03-09T14:30:00Z"`); fires once if still in the future.
//!   `tz` and `calendar` are rejected with `at`: the text carries its own offset.
//!
//! # Cron and daylight saving time (Vixie cron rules)
//! The `cron` crate only matches patterns against wall-clock times; this module maps wall-clock
//! times to instants:
//! - **Wildcard-hour patterns** (the hour field is literally `*`, or `@hourly`) run in real time:
//!   every instant whose local wall-clock time matches fires. In a fall-back repeated hour they fire
//!   in both passes (01:00 EDT and again at 01:00 EST); wall-clock times inside a spring-forward gap
//!   do not exist and do not fire.
//! - **Fixed-hour patterns** (anything else) fire once per matching wall-clock time: a time that
//!   occurs twice fires at its first occurrence only; a time inside a spring-forward gap fires at
//!   the first valid instant after the gap (02:30 on the US spring-forward day fires at 03:00
//!   daylight time). Several matching times inside the same gap collapse into that one fire.
//!
//! # Calendars
//! With `calendar`, a fire whose *local* date (in `tz`, default UTC — also for `every`) is not a
//! trading day is skipped and the search continues. Every search is bounded (five-year horizon and
//! iteration caps), so an impossible pattern (`"0 0 0 30 2 *"`) or a calendar that is never open
//! yields `None` rather than a hang.

use std::time::Duration;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use crate::calendar::{Calendar, Calendars};
use crate::error::Invalid;

/// The wire form of a task schedule, exactly as a user writes it (JSON or TOML); exactly one of
/// `cron`, `every`, `at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Cron pattern: 6 fields with seconds (`"0 25 9 * * MON-FRI"`); 5 (seconds = 0) and 7 (year)
    /// are accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone for `cron` (and for the calendar date of `every`); default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Name of a calendar in [`Calendars`]; fires on non-trading days are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Interval, humantime syntax (`"15m"`, `"1h 30m"`, `"500ms"`); at least 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// One-shot instant, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// A validated, compiled schedule. Construct with [`Schedule::parse`].
#[derive(Debug, Clone)]
pub struct Schedule {
    spec: ScheduleSpec,
    kind: Kind,
    tz: Tz,
    calendar: Option<Calendar>,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron {
        pattern: Box<cron::Schedule>,
        /// Wildcard hour: real-time DST semantics (see the module doc).
        real_time: bool,
    },
    Every(TimeDelta),
    At(DateTime<Utc>),
}

/// The shortest accepted `every` interval.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How far ahead a search looks before concluding the schedule never fires.
const HORIZON: TimeDelta = TimeDelta::days(5 * 366);
/// Cap on pattern matches examined in one scan (matches that resolve to instants not after `after`).
const MAX_SCAN_STEPS: usize = 100_000;
/// Cap on non-trading days skipped in one search (the horizon has fewer days than this).
const MAX_CALENDAR_SKIPS: usize = 2_000;
/// Longest spring-forward gap we step across, in minutes.
const MAX_GAP_MINUTES: u32 = 24 * 60;
/// The `cron` crate matches years up to this one.
const LAST_CRON_YEAR: i32 = 2100;

impl Schedule {
    /// Validate and compile. Error fields are relative to the schedule object (`cron`, `tz`,
    /// `calendar`, `every`, `at`); "none or several of cron/every/at" has no field, so that
    /// `.within("schedule")` points at the schedule itself.
    pub fn parse(spec: &ScheduleSpec, calendars: &Calendars) -> Result<Schedule, Invalid> {
        let kind = match (&spec.cron, &spec.every, &spec.at) {
            (Some(cron), None, None) => compile_cron(cron)?,
            (None, Some(every), None) => Kind::Every(parse_interval(every)?),
            (None, None, Some(at)) => {
                if spec.tz.is_some() {
                    return Err(Invalid::new(
                        "invalid_schedule",
                        "tz",
                        "tz cannot be combined with at: the RFC 3339 time carries its own offset",
                    ));
                }
                if spec.calendar.is_some() {
                    return Err(Invalid::new(
                        "invalid_schedule",
                        "calendar",
                        "calendar cannot be combined with at: a one-shot time is not skipped",
                    ));
                }
                Kind::At(parse_at(at)?)
            }
            (None, None, None) => {
                return Err(schedule_error("a schedule needs one of cron, every or at"))
            }
            _ => {
                return Err(schedule_error(
                    "a schedule takes exactly one of cron, every or at",
                ))
            }
        };
        let tz = match &spec.tz {
            Some(name) => parse_tz(name)?,
            None => Tz::UTC,
        };
        let calendar = match &spec.calendar {
            Some(name) => Some(lookup_calendar(name, calendars)?),
            None => None,
        };
        Ok(Schedule {
            spec: spec.clone(),
            kind,
            tz,
            calendar,
        })
    }

    /// The original spec, for echoing back.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// True for `at` schedules, which fire at most once.
    pub fn is_one_shot(&self) -> bool {
        matches!(self.kind, Kind::At(_))
    }

    /// The first fire time strictly after `after`. `anchor` is when the schedule started counting
    /// (task creation / registration); only `every` uses it (fires at `anchor + k * interval`,
    /// k >= 1). `None`: never fires again, or nothing within the five-year search horizon.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.calendar.as_ref().is_some_and(Calendar::is_never_open) {
            return None;
        }
        let horizon = after
            .checked_add_signed(HORIZON)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        match &self.kind {
            Kind::At(at) => (*at > after).then_some(*at),
            Kind::Every(interval) => self.next_every(after, anchor, *interval, horizon),
            Kind::Cron { pattern, real_time } => {
                self.next_cron(pattern, *real_time, after, horizon)
            }
        }
    }

    fn next_every(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        interval: TimeDelta,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let Some(calendar) = &self.calendar else {
            return next_multiple(anchor, interval, after);
        };
        let mut cursor = after;
        for _ in 0..MAX_CALENDAR_SKIPS {
            let fire = next_multiple(anchor, interval, cursor)?;
            if fire > horizon {
                return None;
            }
            let date = fire.with_timezone(&self.tz).date_naive();
            if calendar.is_trading_day(date) {
                return Some(fire);
            }
            cursor = self.end_of_local_day(date)?.max(fire);
        }
        None
    }

    fn next_cron(
        &self,
        pattern: &cron::Schedule,
        real_time: bool,
        after: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut cursor = after;
        for _ in 0..MAX_CALENDAR_SKIPS {
            let fire = self.next_cron_any_day(pattern, real_time, cursor, horizon)?;
            let Some(calendar) = &self.calendar else {
                return Some(fire);
            };
            let date = fire.with_timezone(&self.tz).date_naive();
            if calendar.is_trading_day(date) {
                return Some(fire);
            }
            cursor = self.end_of_local_day(date)?.max(fire);
        }
        None
    }

    /// The next cron fire strictly after `after`, ignoring the calendar.
    fn next_cron_any_day(
        &self,
        pattern: &cron::Schedule,
        real_time: bool,
        after: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        let naive_after = local.naive_local();
        if naive_after.year() > LAST_CRON_YEAR {
            return None;
        }
        let forward = self.scan(pattern, real_time, naive_after, after, horizon);
        if !real_time {
            return forward;
        }
        // Real time, and `after` is in the first pass of a repeated hour: wall-clock times earlier
        // than `after`'s own still occur again in the second pass, so look back by the fold length.
        // Every first-pass instant precedes every second-pass one, so the earlier result wins.
        let LocalResult::Ambiguous(first, second) = self.tz.from_local_datetime(&naive_after)
        else {
            return forward;
        };
        if first != local {
            return forward;
        }
        let fold = second.signed_duration_since(first);
        let second_pass = naive_after
            .checked_sub_signed(fold)
            .and_then(|from| self.scan(pattern, true, from, after, horizon));
        match (forward, second_pass) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Walk wall-clock matches strictly after `from` and return the first one that resolves (under
    /// the DST rules) to an instant strictly after `after`.
    fn scan(
        &self,
        pattern: &cron::Schedule,
        real_time: bool,
        from: NaiveDateTime,
        after: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        // Local and UTC wall clocks differ by less than a day.
        let naive_limit = horizon
            .naive_utc()
            .checked_add_signed(TimeDelta::days(2))
            .unwrap_or(NaiveDateTime::MAX);
        // The cron crate only matches wall-clock fields, so hand it the local time dressed as UTC.
        let start = Utc.from_utc_datetime(&from);
        for matched in pattern.after(&start).take(MAX_SCAN_STEPS) {
            let naive = matched.naive_utc();
            if naive > naive_limit {
                return None;
            }
            let fire = match self.tz.from_local_datetime(&naive) {
                LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, second) => {
                    let (first, second) = (first.with_timezone(&Utc), second.with_timezone(&Utc));
                    if first > after {
                        Some(first)
                    } else if real_time {
                        Some(second)
                    } else {
                        None
                    }
                }
                LocalResult::None if real_time => None,
                LocalResult::None => first_instant_after_gap(&self.tz, naive),
            };
            if let Some(t) = fire.filter(|t| *t > after) {
                return (t <= horizon).then_some(t);
            }
        }
        None
    }

    /// The last instant of local `date`: a search strictly after it starts at the next local day.
    fn end_of_local_day(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let midnight = date.succ_opt()?.and_time(NaiveTime::MIN);
        let start = match self.tz.from_local_datetime(&midnight) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => first_instant_after_gap(&self.tz, midnight)?,
        };
        start.checked_sub_signed(TimeDelta::nanoseconds(1))
    }
}

/// The first valid instant after the spring-forward gap that swallowed the wall-clock time `naive`.
fn first_instant_after_gap(tz: &Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut t = naive.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..MAX_GAP_MINUTES {
        t = t.checked_add_signed(TimeDelta::minutes(1))?;
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => {
                return Some(x.with_timezone(&Utc))
            }
            LocalResult::None => {}
        }
    }
    None
}

/// `anchor + k * interval` for the smallest k >= 1 that lands strictly after `after`.
fn next_multiple(
    anchor: DateTime<Utc>,
    interval: TimeDelta,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    const NANOS: i128 = 1_000_000_000;
    let nanos = |d: TimeDelta| i128::from(d.num_seconds()) * NANOS + i128::from(d.subsec_nanos());
    let step = nanos(interval);
    if step <= 0 {
        return None;
    }
    let elapsed = nanos(after.signed_duration_since(anchor));
    let k = if elapsed < 0 { 1 } else { elapsed / step + 1 };
    let offset = k.checked_mul(step)?;
    let secs = i64::try_from(offset.div_euclid(NANOS)).ok()?;
    let subsec = u32::try_from(offset.rem_euclid(NANOS)).ok()?;
    anchor.checked_add_signed(TimeDelta::new(secs, subsec)?)
}

fn schedule_error(message: &str) -> Invalid {
    Invalid {
        code: "invalid_schedule",
        message: message.to_string(),
        field: None,
    }
}

fn compile_cron(text: &str) -> Result<Kind, Invalid> {
    let bad = |why: String| Invalid::new("invalid_cron", "cron", why);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let normalized = match fields.as_slice() {
        [] => return Err(bad("the cron pattern is empty".to_string())),
        [shorthand] if shorthand.starts_with('@') => (*shorthand).to_string(),
        [_, _, _, _, _] => format!("0 {}", fields.join(" ")),
        [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => fields.join(" "),
        _ => {
            return Err(bad(format!(
                "expected 5, 6 or 7 fields (sec min hour day month weekday [year]), got {}",
                fields.len()
            )))
        }
    };
    let parts: Vec<&str> = normalized.split_whitespace().collect();
    if let Some(weekday) = parts.get(5) {
        let numeric = weekday.split(',').any(|item| {
            item.split('/')
                .next()
                .is_some_and(|base| base.chars().any(|c| c.is_ascii_digit()))
        });
        if numeric {
            return Err(bad(format!(
                "day-of-week `{weekday}` must use names such as MON-FRI or SUN: \
                 numbers mean different days in different cron dialects"
            )));
        }
    }
    let pattern: cron::Schedule = normalized
        .parse()
        .map_err(|e| bad(format!("`{text}` is not a valid cron pattern: {e}")))?;
    let real_time = match parts.get(2) {
        Some(hour) => *hour == "*",
        None => normalized == "@hourly",
    };
    Ok(Kind::Cron {
        pattern: Box::new(pattern),
        real_time,
    })
}

fn parse_tz(name: &str) -> Result<Tz, Invalid> {
    name.parse::<Tz>().map_err(|_| {
        Invalid::new(
            "invalid_time_zone",
            "tz",
            format!("unknown time zone `{name}`; use an IANA name such as America/New_York"),
        )
    })
}

fn lookup_calendar(name: &str, calendars: &Calendars) -> Result<Calendar, Invalid> {
    calendars.get(name).cloned().ok_or_else(|| {
        let known = calendars.names();
        let known = if known.is_empty() {
            "none are defined".to_string()
        } else {
            format!("known calendars: {}", known.join(", "))
        };
        Invalid::new(
            "unknown_calendar",
            "calendar",
            format!("unknown calendar `{name}`; {known}"),
        )
    })
}

fn parse_interval(text: &str) -> Result<TimeDelta, Invalid> {
    let bad = |why: String| Invalid::new("invalid_interval", "every", why);
    let interval = humantime::parse_duration(text.trim()).map_err(|e| {
        bad(format!(
            "`{text}` is not an interval such as 15m or 1h 30m: {e}"
        ))
    })?;
    if interval < MIN_INTERVAL {
        return Err(bad(format!("`{text}` is too short; the minimum is 100ms")));
    }
    TimeDelta::from_std(interval).map_err(|_| bad(format!("`{text}` is too long")))
}

fn parse_at(text: &str) -> Result<DateTime<Utc>, Invalid> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Invalid::new(
                "invalid_time",
                "at",
                format!("`{text}` is not an RFC 3339 time such as 2026-03-09T14:30:00Z: {e}"),
            )
        })
}

/// Parse a humantime duration (`"30s"`, `"5m"`, `"1h 30m"`) for config fields such as timeouts
/// and windows. Zero is accepted; callers that need a positive value check it themselves.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, Invalid> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Invalid::new(
            "invalid_duration",
            field,
            format!("`{text}` is not a duration such as 30s, 5m or 1h 30m: {e}"),
        )
    })
}

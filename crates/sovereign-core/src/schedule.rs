//! Task schedules: validate a user's `{cron | every | at}` spec, then answer "when does it fire next
//! after this instant?".
//!
//! Pure: callers pass `after` (and, for intervals, the `anchor` the schedule counts from; for the
//! registration check, `now`). Nothing here reads the clock, sleeps or stores state between calls;
//! the engine's scheduler owns timers.
//!
//! # Kinds
//! - `cron`: six fields, seconds first (`"0 25 9 * * MON-FRI"`), or seven with a trailing year;
//!   also `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Five fields (classic crontab,
//!   no seconds) are refused with the six-field spelling to use, rather than guessed at.
//!   Day-of-week must be written with names (`MON-FRI`, `SUN`): numbers mean different days in
//!   different cron dialects, so they are rejected rather than guessed. A pattern whose dates
//!   exist in no year (`"0 0 12 31 2 *"`: February has no 31st) is refused; February 29 is fine.
//!   Evaluated on the wall clock of `tz` (IANA name, default `UTC`); years beyond 2100 never match.
//! - `every`: a humantime interval (`"15m"`, `"1h 30m"`, `"500ms"`), from 100ms to 366 days.
//!   Fires at `anchor + k * interval` for k >= 1 — fixed spacing in real time, unaffected by DST.
//! - `at`: one RFC 3339 instant (`"2026-03-09T14:30:00Z"`); fires once if still in the future.
//!   `tz` and `calendar` are rejected with `at`: the text carries its own offset.
//!
//! [`Schedule::parse`] checks everything that does not depend on the time. At registration,
//! [`Schedule::check_fires`] also refuses a schedule with no fire after `now` within the
//! eight-year horizon: an `at` in the past, a cron whose years are over, a calendar never open.
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
//! trading day is skipped and the search continues. Every search is bounded (eight-year horizon and
//! iteration caps), so a pattern that no longer fires (`"0 0 0 1 1 * 2020"`) or a calendar that is
//! never open yields `None` rather than a hang.

use std::time::Duration;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use cron::TimeUnitSpec;

use crate::calendar::{Calendar, Calendars};
use crate::error::Invalid;

/// The wire form of a task schedule, exactly as a user writes it (JSON or TOML); exactly one of
/// `cron`, `every`, `at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// `expecting` keeps the type's name out of messages: `"schedule": "15m"` is refused with
// "expected a schedule object ...", not "expected struct ScheduleSpec".
#[serde(
    deny_unknown_fields,
    expecting = "a schedule object with one of cron, every or at, such as {\"every\": \"15m\"}"
)]
pub struct ScheduleSpec {
    /// Cron pattern: 6 fields, seconds first (`"0 25 9 * * MON-FRI"`), or 7 with a trailing
    /// year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone for `cron` (and for the calendar date of `every`); default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Name of a calendar in [`Calendars`]; fires on non-trading days are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Interval, humantime syntax (`"15m"`, `"1h 30m"`, `"500ms"`); 100ms to 366 days.
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
/// The longest accepted `every` interval.
const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);
/// The longest duration [`parse_duration`] accepts: 100 years of 365.25 days (humantime's
/// `100y`). Far inside every representation a duration is converted to downstream (milliseconds
/// as `u64` or `i64`, `chrono::TimeDelta`, timer deadlines), so none of those conversions wraps.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);
/// The search horizon in years: long enough that a February 29 pattern always meets a leap day.
const HORIZON_YEARS: i64 = 8;
/// How far ahead a search looks before concluding the schedule never fires.
const HORIZON: TimeDelta = TimeDelta::days(HORIZON_YEARS * 366);
/// Cap on pattern matches examined in one scan (matches that resolve to instants not after `after`).
const MAX_SCAN_STEPS: usize = 100_000;
/// Cap on non-trading days skipped in one search (the horizon has fewer days than this).
const MAX_CALENDAR_SKIPS: usize = 3_000;
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

    /// Refuse a schedule that has no fire after `now` within the eight-year search horizon: an
    /// `at` that is not ahead of `now`, a cron pattern whose years are over (or too far ahead), a
    /// calendar that is never open or never open when the pattern fires. Call it when a schedule
    /// is registered or changed, with the current time and the task's `anchor` (its creation;
    /// `now` for a new task), as [`Schedule::next_after`] takes them; [`Schedule::parse`] has
    /// already refused what never fires at any time (`0 0 12 31 2 *`). Accepted means
    /// `next_after(now, anchor)` is `Some`. Error fields are relative to the schedule object, as
    /// for [`Schedule::parse`].
    pub fn check_fires(&self, now: DateTime<Utc>, anchor: DateTime<Utc>) -> Result<(), Invalid> {
        if self.next_after(now, anchor).is_some() {
            return Ok(());
        }
        if matches!(self.kind, Kind::At(_)) {
            return Err(Invalid::new(
                "invalid_time",
                "at",
                format!(
                    "`{}` is not in the future (now is {}): a one-shot time must be ahead",
                    self.spec.at.as_deref().unwrap_or_default(),
                    now.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
        if let Kind::Cron { pattern, real_time } = &self.kind {
            let horizon = now
                .checked_add_signed(HORIZON)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            if self
                .next_cron_any_day(pattern, *real_time, now, horizon)
                .is_none()
            {
                return Err(Invalid::new(
                    "invalid_cron",
                    "cron",
                    self.cron_never_fires(pattern, now),
                ));
            }
        }
        let Some(calendar) = &self.calendar else {
            return Err(schedule_error(&format!(
                "the schedule never fires in the next {HORIZON_YEARS} years"
            )));
        };
        let name = calendar.name();
        let why = if calendar.is_never_open() {
            format!("calendar `{name}` has no trading days, so the schedule never fires")
        } else {
            format!(
                "the schedule never fires on a trading day of calendar `{name}` \
                 in the next {HORIZON_YEARS} years"
            )
        };
        Err(Invalid::new("invalid_schedule", "calendar", why))
    }

    /// Why a cron pattern has no fire after `now` within the horizon, naming its years if they
    /// are the reason.
    fn cron_never_fires(&self, pattern: &cron::Schedule, now: DateTime<Utc>) -> String {
        let text = self.spec.cron.as_deref().unwrap_or_default();
        let this_year = i64::from(now.with_timezone(&self.tz).year());
        let years = pattern.years();
        if !years.is_all() {
            let first_ahead = years.iter().find(|y| i64::from(*y) >= this_year);
            match (first_ahead, years.iter().next_back()) {
                (None, Some(last)) => {
                    return format!(
                        "cron `{text}` never fires again: its last year, {last}, is past"
                    )
                }
                (Some(first), _) if i64::from(first) > this_year + HORIZON_YEARS => {
                    return format!(
                        "cron `{text}` first fires in {first}, more than {HORIZON_YEARS} \
                         years ahead"
                    );
                }
                _ => {}
            }
        }
        format!("cron `{text}` never fires in the next {HORIZON_YEARS} years")
    }

    /// The first fire time strictly after `after`. `anchor` is when the schedule started counting
    /// (task creation / registration); only `every` uses it (fires at `anchor + k * interval`,
    /// k >= 1). `None`: never fires again, or nothing within the eight-year search horizon.
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
    let pattern = match fields.as_slice() {
        [] => return Err(bad("the cron pattern is empty".to_string())),
        [shorthand] if shorthand.starts_with('@') => parse_shorthand(shorthand).map_err(bad)?,
        [_, _, _, _, _] => return Err(bad(five_fields(&fields))),
        [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => {
            parse_fields(&fields).map_err(|why| bad(format!("cron `{text}`: {why}")))?
        }
        _ => {
            let noun = if fields.len() == 1 { "field" } else { "fields" };
            return Err(bad(format!(
                "cron `{text}` has {} {noun}; cron here has 6 (second minute hour day-of-month \
                 month day-of-week), or 7 with a trailing year",
                fields.len()
            )));
        }
    };
    if let Some(why) = impossible_date(&pattern) {
        return Err(bad(format!("cron `{text}` never fires: {why}")));
    }
    let real_time = match fields.as_slice() {
        [shorthand] => *shorthand == "@hourly",
        _ => fields.get(2) == Some(&"*"),
    };
    Ok(Kind::Cron {
        pattern: Box::new(pattern),
        real_time,
    })
}

/// One field of a cron pattern: its name in messages and the numbers it takes.
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// The accepted values in words.
    takes: &'static str,
}

/// The fields in pattern order, with the ranges the `cron` crate accepts.
static CRON_FIELDS: [CronField; 7] = [
    CronField {
        name: "second",
        min: 0,
        max: 59,
        takes: "seconds are 0-59",
    },
    CronField {
        name: "minute",
        min: 0,
        max: 59,
        takes: "minutes are 0-59",
    },
    CronField {
        name: "hour",
        min: 0,
        max: 23,
        takes: "hours are 0-23",
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        takes: "days of the month are 1-31",
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        takes: "months are 1-12 or JAN-DEC",
    },
    CronField {
        name: "day-of-week",
        min: 1,
        max: 7,
        takes: "days of the week are names such as MON-FRI or SUN",
    },
    CronField {
        name: "year",
        min: 1970,
        max: 2100,
        takes: "years are 1970-2100",
    },
];

const SHORTHANDS: [&str; 5] = ["@yearly", "@monthly", "@weekly", "@daily", "@hourly"];

fn parse_shorthand(text: &str) -> Result<cron::Schedule, String> {
    if !SHORTHANDS.contains(&text) {
        return Err(format!(
            "unknown cron shorthand `{text}`; use one of {}",
            SHORTHANDS.join(", ")
        ));
    }
    text.parse()
        .map_err(|e| format!("`{text}` is not a valid cron pattern: {e}"))
}

/// The message for a five-field (classic crontab) pattern: the six-field spelling to use when an
/// obvious repair is valid — seconds = 0 in front, or (when the last field is `*`) a day-of-week
/// the user left out — otherwise why the seconds-first reading fails too.
fn five_fields(fields: &[&str]) -> String {
    let did_you_mean = |pattern: &str| {
        format!("cron here has 6 fields (seconds first): did you mean `{pattern}`?")
    };
    let valid = |pattern: &str| {
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        parse_fields(&fields).and_then(|p| match impossible_date(&p) {
            Some(why) => Err(format!("it never fires: {why}")),
            None => Ok(()),
        })
    };
    let joined = fields.join(" ");
    let seconds_first = format!("0 {joined}");
    let why = match valid(&seconds_first) {
        Ok(()) => return did_you_mean(&seconds_first),
        Err(why) => why,
    };
    if fields.get(4) == Some(&"*") {
        let completed = format!("{joined} *");
        if valid(&completed).is_ok() {
            return did_you_mean(&completed);
        }
    }
    format!(
        "cron here has 6 fields (seconds first); read that way, `{seconds_first}` is not valid \
         either: {why}"
    )
}

/// Compile a six- or seven-field pattern; the error names the field that is wrong.
fn parse_fields(fields: &[&str]) -> Result<cron::Schedule, String> {
    if let Some(weekday) = fields.get(5) {
        let numeric = weekday.split(',').any(|item| {
            item.split('/')
                .next()
                .is_some_and(|base| base.chars().any(|c| c.is_ascii_digit()))
        });
        if numeric {
            return Err(format!(
                "day-of-week `{weekday}` must use names such as MON-FRI or SUN: \
                 numbers mean different days in different cron dialects"
            ));
        }
    }
    for (field, text) in CRON_FIELDS.iter().zip(fields) {
        check_field(field, text)?;
    }
    fields.join(" ").parse::<cron::Schedule>().map_err(|e| {
        // Find the field the cron crate objects to by compiling each one alone.
        let culprit = CRON_FIELDS.iter().zip(fields).enumerate().find(|(i, _)| {
            let probe: Vec<&str> = fields
                .iter()
                .enumerate()
                .map(|(j, f)| if j == *i { *f } else { "*" })
                .collect();
            probe.join(" ").parse::<cron::Schedule>().is_err()
        });
        match culprit {
            Some((_, (field, text))) => {
                format!(
                    "the {} field `{text}` is not valid; {}",
                    field.name, field.takes
                )
            }
            None => format!("not a valid cron pattern ({e})"),
        }
    })
}

/// Check the numbers in one field (`5`, `1-5`, `*/15`, `10-40/5`, lists of those) against its
/// range; names and other syntax are left to the `cron` crate.
fn check_field(field: &CronField, text: &str) -> Result<(), String> {
    let name = field.name;
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(n) if (1..=field.max).contains(&n) => {}
                Ok(n) => {
                    return Err(format!(
                        "the {name} field `{text}` has the step {n}; steps here are 1-{}",
                        field.max
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "the {name} field `{text}` needs a whole number after `/`"
                    ))
                }
            }
        }
        let bounds: Vec<&str> = base.split('-').collect();
        for bound in &bounds {
            if bound.is_empty() || !bound.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let in_range = bound
                .parse::<u32>()
                .is_ok_and(|n| (field.min..=field.max).contains(&n));
            if !in_range {
                let has = if *bound == text {
                    String::new()
                } else {
                    format!(" has {bound}, which")
                };
                return Err(format!(
                    "the {name} field `{text}`{has} is out of range: {}",
                    field.takes
                ));
            }
        }
        if let [low, high] = bounds.as_slice() {
            let backwards = matches!(
                (low.parse::<u32>(), high.parse::<u32>()),
                (Ok(l), Ok(h)) if l > h
            );
            if backwards {
                return Err(format!(
                    "the {name} field `{text}` has the range {low}-{high}, which runs \
                     backwards; write it low to high"
                ));
            }
        }
    }
    Ok(())
}

/// Why no month-and-day of the pattern exists in any year, if none does (`31 2`: February has
/// no 31st). February counts 29 days: a leap day exists every four years.
fn impossible_date(pattern: &cron::Schedule) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let longest = |month: u32| match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let days: Vec<u32> = pattern.days_of_month().iter().collect();
    let months: Vec<u32> = pattern.months().iter().collect();
    if months
        .iter()
        .any(|&m| days.iter().any(|&d| d <= longest(m)))
    {
        return None;
    }
    let month_names: Vec<String> = months
        .iter()
        .filter_map(|&m| {
            MONTHS
                .get((m as usize).wrapping_sub(1))
                .map(|name| (*name).to_string())
        })
        .collect();
    let day_names: Vec<String> = days.iter().map(|&d| ordinal(d)).collect();
    let verb = if month_names.len() == 1 {
        "has"
    } else {
        "have"
    };
    Some(format!(
        "{} {verb} no {}",
        join_words(&month_names, "and"),
        join_words(&day_names, "or")
    ))
}

/// `30th`, `31st`, `22nd`.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `a`, `a and b`, `a, b and c`.
fn join_words(words: &[String], conjunction: &str) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
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
    let range = "intervals run from 100ms to 366 days";
    let interval = humantime::parse_duration(text.trim()).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => {
            bad(format!("`{text}` is out of range: {range}"))
        }
        e => bad(format!(
            "`{text}` is not an interval such as 15m or 1h 30m: {e}"
        )),
    })?;
    if interval < MIN_INTERVAL {
        return Err(bad(format!("`{text}` is too short: {range}")));
    }
    if interval > MAX_INTERVAL {
        return Err(bad(format!("`{text}` is too long: {range}")));
    }
    TimeDelta::from_std(interval).map_err(|_| bad(format!("`{text}` is too long: {range}")))
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
/// and windows: whole milliseconds from zero to [`MAX_DURATION`] (100 years). Within that range a
/// duration converts exactly to every form it is stored or shown in (milliseconds as `u64` or
/// `i64`, `chrono::TimeDelta`, humantime text) and back, so nothing downstream wraps or rounds.
/// Zero is accepted; callers that need a positive value check it themselves.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, Invalid> {
    let bad = |why: String| Invalid::new("invalid_duration", field, why);
    let range = "durations run from 0 to 100 years, in whole milliseconds";
    let duration = humantime::parse_duration(text.trim()).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => {
            bad(format!("`{text}` is out of range: {range}"))
        }
        e => bad(format!(
            "`{text}` is not a duration such as 30s, 5m or 1h 30m: {e}"
        )),
    })?;
    if duration > MAX_DURATION {
        return Err(bad(format!(
            "`{text}` is longer than 100 years, the longest duration accepted"
        )));
    }
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(bad(format!(
            "`{text}` is finer than a millisecond: {range}"
        )));
    }
    Ok(duration)
}

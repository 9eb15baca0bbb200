//! Schedules, calendars and backoff through the public API: exact next-fire instants as a table
//! (DST in both directions, calendars, intervals, one-shots), validation failures as a table, and
//! properties checked against brute-force oracles that share no code with the implementation.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use proptest::prelude::*;
use sovereign_core::calendar::{Calendar, Calendars};
use sovereign_core::retry::Backoff;
use sovereign_core::schedule::{parse_duration, Schedule, ScheduleSpec, MAX_DURATION};
use sovereign_core::task::{HttpRequestSpec, PolicySpec};

// ---------------------------------------------------------------------------------------------
// Helpers

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
        .with_timezone(&Utc)
}

fn cron(pattern: &str, tz: Option<&str>, calendar: Option<&str>) -> ScheduleSpec {
    ScheduleSpec {
        cron: Some(pattern.into()),
        tz: tz.map(Into::into),
        calendar: calendar.map(Into::into),
        ..ScheduleSpec::default()
    }
}

fn every(interval: &str, tz: Option<&str>, calendar: Option<&str>) -> ScheduleSpec {
    ScheduleSpec {
        every: Some(interval.into()),
        tz: tz.map(Into::into),
        calendar: calendar.map(Into::into),
        ..ScheduleSpec::default()
    }
}

fn at(instant: &str) -> ScheduleSpec {
    ScheduleSpec {
        at: Some(instant.into()),
        ..ScheduleSpec::default()
    }
}

/// Built-ins plus `closed`, a calendar with no trading weekdays.
fn calendars() -> Calendars {
    let mut cals = Calendars::with_builtins();
    cals.insert(Calendar::new("closed", &[], []));
    cals
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

const NY: &str = "America/New_York";
const CHI: &str = "America/Chicago";

// ---------------------------------------------------------------------------------------------
// Next-fire table

struct Case {
    name: &'static str,
    spec: ScheduleSpec,
    anchor: &'static str,
    after: &'static str,
    expected: Option<&'static str>,
}

const NO_ANCHOR: &str = "2026-01-01T00:00:00Z";

fn case(
    name: &'static str,
    spec: ScheduleSpec,
    after: &'static str,
    expected: Option<&'static str>,
) -> Case {
    Case {
        name,
        spec,
        anchor: NO_ANCHOR,
        after,
        expected,
    }
}

#[test]
fn next_after_table() {
    let daily_open = || cron("0 25 9 * * MON-FRI", Some(NY), None);
    let us_ten = || cron("0 0 10 * * *", Some(NY), Some("us_equities"));
    let cme_close = || cron("0 0 17 * * *", Some(CHI), Some("cme_futures"));
    let quarter = || cron("0 */15 * * * *", Some(NY), None);
    let quarter_hourly = || every("15m", None, None);
    #[rustfmt::skip]
    let cases = vec![
        // Plain cron in UTC.
        case("utc daily", cron("0 0 12 * * *", None, None), "2026-01-01T12:00:00Z", Some("2026-01-02T12:00:00Z")),
        case("utc daily, sub-second before", cron("0 0 12 * * *", None, None), "2026-01-01T11:59:59.500Z", Some("2026-01-01T12:00:00Z")),
        case("seven fields: year", cron("0 0 0 1 1 * 2027", None, None), "2026-06-01T00:00:00Z", Some("2027-01-01T00:00:00Z")),
        case("@daily shorthand", cron("@daily", Some(NY), None), "2026-01-01T06:00:00Z", Some("2026-01-02T05:00:00Z")),
        // New York open across spring-forward (Sun 2026-03-08): 14:25Z (EST) -> 13:25Z (EDT).
        case("NY open, Friday before spring-forward", daily_open(), "2026-03-06T12:00:00Z", Some("2026-03-06T14:25:00Z")),
        case("NY open, Monday after spring-forward", daily_open(), "2026-03-06T14:25:00Z", Some("2026-03-09T13:25:00Z")),
        // ... and across fall-back (Sun 2026-11-01): 13:25Z (EDT) -> 14:25Z (EST).
        case("NY open, Friday before fall-back", daily_open(), "2026-10-30T12:00:00Z", Some("2026-10-30T13:25:00Z")),
        case("NY open, Monday after fall-back", daily_open(), "2026-10-30T13:25:00Z", Some("2026-11-02T14:25:00Z")),
        // Fixed hour inside the spring-forward gap fires at the end of the gap (03:00 CDT).
        case("Chicago 02:30 on spring-forward day", cron("0 30 2 * * *", Some(CHI), None), "2026-03-07T12:00:00Z", Some("2026-03-08T08:00:00Z")),
        case("Chicago 02:30 the day after", cron("0 30 2 * * *", Some(CHI), None), "2026-03-08T08:00:00Z", Some("2026-03-09T07:30:00Z")),
        // Fixed hour inside the repeated hour fires once, at the first (CDT) occurrence.
        case("Chicago 01:30 on fall-back day", cron("0 30 1 * * *", Some(CHI), None), "2026-10-31T12:00:00Z", Some("2026-11-01T06:30:00Z")),
        case("Chicago 01:30 not again in the CST pass", cron("0 30 1 * * *", Some(CHI), None), "2026-11-01T06:30:00Z", Some("2026-11-02T07:30:00Z")),
        case("Chicago 01:30 asked during the CST pass", cron("0 30 1 * * *", Some(CHI), None), "2026-11-01T07:00:00Z", Some("2026-11-02T07:30:00Z")),
        // Wildcard hour runs in real time: both passes of the repeated hour fire.
        case("every 15m, 01:00 EDT", quarter(), "2026-11-01T04:50:00Z", Some("2026-11-01T05:00:00Z")),
        case("every 15m, 01:15 EDT", quarter(), "2026-11-01T05:00:00Z", Some("2026-11-01T05:15:00Z")),
        case("every 15m, 01:00 EST after 01:45 EDT", quarter(), "2026-11-01T05:45:00Z", Some("2026-11-01T06:00:00Z")),
        case("every 15m, 01:15 EST", quarter(), "2026-11-01T06:00:00Z", Some("2026-11-01T06:15:00Z")),
        case("every 15m, 02:00 EST", quarter(), "2026-11-01T06:45:00Z", Some("2026-11-01T07:00:00Z")),
        // ... and skips the wall-clock times that do not exist.
        case("every 15m across the gap", quarter(), "2026-03-08T06:45:00Z", Some("2026-03-08T07:00:00Z")),
        // Calendars: the local date must be a trading day.
        case("no calendar: Good Friday fires", cron("0 0 10 * * *", Some(NY), None), "2026-04-02T14:00:00Z", Some("2026-04-03T14:00:00Z")),
        case("us_equities skips Good Friday + weekend", us_ten(), "2026-04-02T14:00:00Z", Some("2026-04-06T14:00:00Z")),
        case("us_equities skips Jul 3 observed + weekend", us_ten(), "2026-07-02T14:00:00Z", Some("2026-07-06T14:00:00Z")),
        case("us_equities skips a plain weekend", us_ten(), "2026-03-13T14:00:00Z", Some("2026-03-16T14:00:00Z")),
        case("us_equities 2027 Good Friday", us_ten(), "2027-03-25T14:00:00Z", Some("2027-03-29T14:00:00Z")),
        case("cme_futures trades Dec 24 2026", cme_close(), "2026-12-23T23:00:00Z", Some("2026-12-24T23:00:00Z")),
        case("cme_futures closed Dec 25 2026", cme_close(), "2026-12-24T23:00:00Z", Some("2026-12-28T23:00:00Z")),
        case("cme_futures trades MLK day", cme_close(), "2026-01-16T23:00:00Z", Some("2026-01-19T23:00:00Z")),
        // every: anchor + k * interval, k >= 1.
        Case { name: "every 15m from anchor", spec: quarter_hourly(), anchor: "2026-01-05T09:07:00Z", after: "2026-01-05T10:00:00Z", expected: Some("2026-01-05T10:07:00Z") },
        Case { name: "every 15m, exactly on a fire", spec: quarter_hourly(), anchor: "2026-01-05T09:07:00Z", after: "2026-01-05T10:07:00Z", expected: Some("2026-01-05T10:22:00Z") },
        Case { name: "every 15m, before the anchor", spec: quarter_hourly(), anchor: "2026-01-05T09:07:00Z", after: "2026-01-01T00:00:00Z", expected: Some("2026-01-05T09:22:00Z") },
        Case { name: "every 500ms", spec: every("500ms", None, None), anchor: "2026-01-05T09:07:00Z", after: "2026-01-05T09:07:01.200Z", expected: Some("2026-01-05T09:07:01.500Z") },
        Case { name: "every 1h 30m", spec: every("1h 30m", None, None), anchor: "2026-01-05T00:00:00Z", after: "2026-01-05T04:00:00Z", expected: Some("2026-01-05T04:30:00Z") },
        // every + calendar: the local date (UTC by default) decides.
        Case { name: "every 6h, us_equities, UTC dates", spec: every("6h", None, Some("us_equities")), anchor: "2026-04-02T00:00:00Z", after: "2026-04-02T20:00:00Z", expected: Some("2026-04-06T00:00:00Z") },
        Case { name: "every 6h, us_equities, New York dates", spec: every("6h", Some(NY), Some("us_equities")), anchor: "2026-04-02T00:00:00Z", after: "2026-04-02T20:00:00Z", expected: Some("2026-04-03T00:00:00Z") },
        // at: once, only if still ahead.
        case("at in the past", at("2026-03-09T14:30:00Z"), "2026-03-10T00:00:00Z", None),
        case("at exactly now", at("2026-03-09T14:30:00Z"), "2026-03-09T14:30:00Z", None),
        case("at ahead, with offset", at("2026-03-09T09:30:00-05:00"), "2026-03-01T00:00:00Z", Some("2026-03-09T14:30:00Z")),
        // Never fires: returns None instead of hanging.
        case("only a past year", cron("0 0 0 1 1 * 2020", None, None), "2026-01-01T00:00:00Z", None),
        case("calendar never open", cron("* * * * * *", None, Some("closed")), "2026-01-01T00:00:00Z", None),
        case("every, calendar never open", every("1s", None, Some("closed")), "2026-01-01T00:00:00Z", None),
        case("beyond the eight-year horizon", cron("0 0 0 1 1 * 2035", None, None), "2026-01-01T00:00:00Z", None),
        // The horizon is eight years (it was five): seven years ahead is found.
        case("within the eight-year horizon", cron("0 0 0 1 1 * 2033", None, None), "2026-01-01T00:00:00Z", Some("2033-01-01T00:00:00Z")),
        // February 29 exists: leap-day patterns are accepted and fire every four years.
        case("Feb 29 noon, next leap day", cron("0 0 12 29 2 *", None, None), "2026-01-01T00:00:00Z", Some("2028-02-29T12:00:00Z")),
        case("Feb 29 noon, the leap day after", cron("0 0 12 29 2 *", None, None), "2028-02-29T12:00:00Z", Some("2032-02-29T12:00:00Z")),
        case("Feb 28-31, Feb 29 in a leap year", cron("0 0 0 28-31 2 *", None, None), "2028-02-28T00:00:00Z", Some("2028-02-29T00:00:00Z")),
        // Intervals up to 366 days.
        Case { name: "every 366d", spec: every("366d", None, None), anchor: "2026-01-01T00:00:00Z", after: "2026-06-01T00:00:00Z", expected: Some("2027-01-02T00:00:00Z") },
    ];
    let cals = calendars();
    let mut failures = Vec::new();
    for c in &cases {
        let schedule = Schedule::parse(&c.spec, &cals)
            .unwrap_or_else(|e| panic!("{}: spec rejected: {e}", c.name));
        let got = schedule.next_after(utc(c.after), utc(c.anchor));
        let want = c.expected.map(utc);
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wildcard_hour_fires_in_both_passes_of_the_repeated_hour() {
    let schedule = Schedule::parse(&cron("0 */15 * * * *", Some(NY), None), &calendars()).unwrap();
    let anchor = utc(NO_ANCHOR);
    let mut fires = Vec::new();
    let mut t = utc("2026-11-01T04:40:00Z"); // 00:40 EDT
    while let Some(next) = schedule.next_after(t, anchor) {
        if next > utc("2026-11-01T07:00:00Z") {
            break;
        }
        fires.push(next.to_rfc3339());
        t = next;
    }
    let tz: Tz = NY.parse().unwrap();
    let local: Vec<String> = fires
        .iter()
        .map(|f| utc(f).with_timezone(&tz).format("%H:%M %Z").to_string())
        .collect();
    assert_eq!(
        local,
        [
            "00:45 EDT",
            "01:00 EDT",
            "01:15 EDT",
            "01:30 EDT",
            "01:45 EDT",
            "01:00 EST",
            "01:15 EST",
            "01:30 EST",
            "01:45 EST",
            "02:00 EST"
        ]
    );
}

#[test]
fn schedule_echoes_its_spec_and_kind() {
    let cals = calendars();
    let spec = cron("0 25 9 * * MON-FRI", Some(NY), Some("us_equities"));
    let schedule = Schedule::parse(&spec, &cals).unwrap();
    assert_eq!(schedule.spec(), &spec);
    assert!(!schedule.is_one_shot());
    assert!(Schedule::parse(&at("2026-03-09T14:30:00Z"), &cals)
        .unwrap()
        .is_one_shot());
    assert!(!Schedule::parse(&every("1m", None, None), &cals)
        .unwrap()
        .is_one_shot());
}

#[test]
fn spec_wire_form() {
    let spec: ScheduleSpec =
        serde_json::from_str(r#"{"cron":"0 25 9 * * MON-FRI","tz":"America/New_York"}"#).unwrap();
    assert_eq!(spec, cron("0 25 9 * * MON-FRI", Some(NY), None));
    assert_eq!(
        serde_json::to_string(&every("15m", None, None)).unwrap(),
        r#"{"every":"15m"}"#
    );
    let unknown = serde_json::from_str::<ScheduleSpec>(r#"{"cron":"* * * * * *","zone":"UTC"}"#);
    assert!(unknown
        .unwrap_err()
        .to_string()
        .contains("unknown field `zone`"));
    // A schedule that is not an object is refused in words, without the Rust type's name.
    for body in [r#""15m""#, "15", "null", "true"] {
        let message = serde_json::from_str::<ScheduleSpec>(body)
            .unwrap_err()
            .to_string();
        assert!(!message.contains("ScheduleSpec"), "{body}: {message}");
        assert!(
            message.contains("a schedule object with one of cron, every or at"),
            "{body}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Validation table

#[test]
fn bad_specs_table() {
    let both = ScheduleSpec {
        cron: Some("0 0 * * * *".into()),
        every: Some("15m".into()),
        ..ScheduleSpec::default()
    };
    let tz_with_at = ScheduleSpec {
        tz: Some(NY.into()),
        ..at("2026-03-09T14:30:00Z")
    };
    let calendar_with_at = ScheduleSpec {
        calendar: Some("us_equities".into()),
        ..at("2026-03-09T14:30:00Z")
    };
    let only_tz = ScheduleSpec {
        tz: Some(NY.into()),
        ..ScheduleSpec::default()
    };
    // (name, spec, code, field relative to the schedule, field after .within("schedule"))
    #[rustfmt::skip]
    let cases: Vec<(&str, ScheduleSpec, &str, Option<&str>, &str)> = vec![
        ("cron text", cron("every day at nine", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron hour 25", cron("0 0 25 * * *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron 4 fields", cron("0 9 * *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron empty", cron("  ", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron numeric weekday", cron("0 0 9 * * 1-5", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("bad tz", cron("0 0 9 * * *", Some("Mars/Olympus_Mons"), None), "invalid_time_zone", Some("tz"), "schedule.tz"),
        ("unknown calendar", cron("0 0 9 * * *", None, Some("lse")), "unknown_calendar", Some("calendar"), "schedule.calendar"),
        ("every abc", every("abc", None, None), "invalid_interval", Some("every"), "schedule.every"),
        ("every 0s", every("0s", None, None), "invalid_interval", Some("every"), "schedule.every"),
        ("every 50ms", every("50ms", None, None), "invalid_interval", Some("every"), "schedule.every"),
        ("every 367d", every("367d", None, None), "invalid_interval", Some("every"), "schedule.every"),
        ("every 1000000000d", every("1000000000d", None, None), "invalid_interval", Some("every"), "schedule.every"),
        ("every beyond u64", every("99999999999999999999d", None, None), "invalid_interval", Some("every"), "schedule.every"),
        ("cron five fields", cron("25 9 * * *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron Feb 31", cron("0 0 12 31 2 *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron Feb 30", cron("0 0 0 30 2 *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron Apr/Jun 31", cron("0 0 0 31 4,6 *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron minute 61", cron("0 61 * * * *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron step 0", cron("*/0 * * * * *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron backwards hours", cron("0 0 17-9 * * *", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron year 2200", cron("0 0 0 1 1 * 2200", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("cron unknown shorthand", cron("@reboot", None, None), "invalid_cron", Some("cron"), "schedule.cron"),
        ("every with bad tz", every("1h", Some("Nowhere"), None), "invalid_time_zone", Some("tz"), "schedule.tz"),
        ("at yesterday", at("yesterday"), "invalid_time", Some("at"), "schedule.at"),
        ("at without offset", at("2026-03-09T14:30:00"), "invalid_time", Some("at"), "schedule.at"),
        ("cron and every", both, "invalid_schedule", None, "schedule"),
        ("none of them", ScheduleSpec::default(), "invalid_schedule", None, "schedule"),
        ("only tz", only_tz, "invalid_schedule", None, "schedule"),
        ("tz with at", tz_with_at, "invalid_schedule", Some("tz"), "schedule.tz"),
        ("calendar with at", calendar_with_at, "invalid_schedule", Some("calendar"), "schedule.calendar"),
    ];
    let cals = calendars();
    for (name, spec, code, field, within) in cases {
        let err = Schedule::parse(&spec, &cals).expect_err(name);
        assert_eq!(err.code, code, "{name}: {err}");
        assert_eq!(err.field.as_deref(), field, "{name}: {err}");
        assert!(!err.message.is_empty(), "{name}");
        assert_eq!(
            err.within("schedule").field.as_deref(),
            Some(within),
            "{name}"
        );
    }
}

/// Cron refusals say what is wrong in plain words: which field, which range, which repair.
#[test]
fn cron_error_messages_table() {
    #[rustfmt::skip]
    let cases: &[(&str, &[&str])] = &[
        // Five fields: the seconds-first spelling, not the cron crate's out-of-range complaint.
        ("25 9 * * *", &["cron here has 6 fields (seconds first): did you mean `0 25 9 * * *`?"]),
        ("30 9 * * MON", &["did you mean `0 30 9 * * MON`?"]),
        ("*/5 * * * *", &["did you mean `0 */5 * * * *`?"]),
        // Seconds first with the day-of-week left out.
        ("0 25 9 * *", &["did you mean `0 25 9 * * *`?"]),
        // Neither repair is valid: say why the seconds-first reading fails.
        ("25 9 * * 1-5", &["cron here has 6 fields (seconds first)", "`0 25 9 * * 1-5`", "MON-FRI"]),
        ("0 0 31 2 *", &["cron here has 6 fields (seconds first)", "February has no 31st"]),
        // Never fires on any date.
        ("0 0 12 31 2 *", &["cron `0 0 12 31 2 *` never fires: February has no 31st"]),
        ("0 0 0 30,31 2 *", &["February has no 30th or 31st"]),
        ("0 0 0 31 4,6,9 *", &["April, June and September have no 31st"]),
        // The field that is wrong, by name, with its range.
        ("0 0 25 * * *", &["the hour field `25` is out of range: hours are 0-23"]),
        ("61 * * * * *", &["the second field `61` is out of range: seconds are 0-59"]),
        ("0 0-60 * * * *", &["the minute field `0-60` has 60, which is out of range: minutes are 0-59"]),
        ("0 0 0 0 * *", &["the day-of-month field `0` is out of range: days of the month are 1-31"]),
        ("0 0 0 1 13 *", &["the month field `13` is out of range"]),
        ("0 0 0 1 1 * 2200", &["the year field `2200` is out of range: years are 1970-2100"]),
        ("0 */0 * * * *", &["the minute field `*/0` has the step 0"]),
        ("0 */x * * * *", &["the minute field `*/x` needs a whole number after `/`"]),
        ("0 0 17-9 * * *", &["the hour field `17-9` has the range 17-9, which runs backwards"]),
        ("0 0 nine * * *", &["the hour field `nine` is not valid; hours are 0-23"]),
        ("0 0 9 * FOO *", &["the month field `FOO` is not valid"]),
        ("0 0 9 * * FRI-MON", &["the day-of-week field `FRI-MON` is not valid"]),
        ("0 9 * *", &["has 4 fields", "cron here has 6"]),
        ("@reboot", &["unknown cron shorthand `@reboot`", "@daily"]),
    ];
    let cals = calendars();
    let mut failures = Vec::new();
    for &(pattern, wanted) in cases {
        let message = match Schedule::parse(&cron(pattern, None, None), &cals) {
            Ok(_) => {
                failures.push(format!("{pattern}: accepted"));
                continue;
            }
            Err(e) => {
                assert_eq!(e.code, "invalid_cron", "{pattern}: {e}");
                e.message
            }
        };
        for w in wanted {
            if !message.contains(w) {
                failures.push(format!("{pattern}: {message:?} lacks {w:?}"));
            }
        }
        for internal in ["Hours must", "must be less than", "Invalid", "winnow"] {
            if message.contains(internal) {
                failures.push(format!(
                    "{pattern}: {message:?} shows the cron crate's {internal:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `check_fires` refuses, at registration, schedules with no fire after `now`.
#[test]
fn check_fires_table() {
    let now = utc("2026-03-10T00:00:00Z");
    let christmas_ten = cron("0 0 10 25 12 *", Some(NY), Some("us_equities"));
    type Case<'a> = (&'a str, ScheduleSpec, Option<(&'a str, &'a str, &'a str)>);
    // (name, spec, refusal: (code, field, words in the message))
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("at ahead", at("2026-03-10T00:00:01Z"), None),
        ("at in the past", at("2026-03-09T14:30:00Z"), Some(("invalid_time", "at", "`2026-03-09T14:30:00Z` is not in the future"))),
        ("at exactly now", at("2026-03-10T00:00:00Z"), Some(("invalid_time", "at", "now is 2026-03-10T00:00:00Z"))),
        ("cron daily", cron("0 25 9 * * MON-FRI", Some(NY), Some("us_equities")), None),
        ("cron Feb 29", cron("0 0 12 29 2 *", None, None), None),
        ("cron seven years ahead", cron("0 0 0 1 1 * 2033", None, None), None),
        ("cron past year", cron("0 0 0 1 1 * 2020", None, None), Some(("invalid_cron", "cron", "its last year, 2020, is past"))),
        ("cron earlier this year", cron("0 0 0 1 1 * 2026", None, None), Some(("invalid_cron", "cron", "never fires"))),
        ("cron too far ahead", cron("0 0 0 1 1 * 2040", None, None), Some(("invalid_cron", "cron", "first fires in 2040, more than 8 years ahead"))),
        ("cron Feb 29 of a common year", cron("0 0 0 29 2 * 2027", None, None), Some(("invalid_cron", "cron", "never fires in the next 8 years"))),
        ("calendar never open", cron("0 0 10 * * *", None, Some("closed")), Some(("invalid_schedule", "calendar", "calendar `closed` has no trading days"))),
        ("every, calendar never open", every("1h", None, Some("closed")), Some(("invalid_schedule", "calendar", "has no trading days"))),
        ("Christmas is never a trading day", christmas_ten, Some(("invalid_schedule", "calendar", "never fires on a trading day of calendar `us_equities`"))),
        ("every 366d", every("366d", None, None), None),
        ("every, us_equities", every("1h", Some(NY), Some("us_equities")), None),
        ("every 7d from a Tuesday, us_equities", every("7d", None, Some("us_equities")), None),
    ];
    let cals = calendars();
    for (name, spec, refusal) in cases {
        let schedule = Schedule::parse(&spec, &cals)
            .unwrap_or_else(|e| panic!("{name}: spec rejected by parse: {e}"));
        let got = schedule.check_fires(now, now);
        match refusal {
            None => {
                assert_eq!(got, Ok(()), "{name}");
                assert!(
                    schedule.next_after(now, now).is_some(),
                    "{name}: accepted but no next fire"
                );
            }
            Some((code, field, words)) => {
                let err = got.expect_err(name);
                assert_eq!(err.code, code, "{name}: {err}");
                assert!(
                    err.message.contains(words),
                    "{name}: {:?} lacks {words:?}",
                    err.message
                );
                assert_eq!(
                    err.within("schedule").field,
                    Some(format!("schedule.{field}")),
                    "{name}"
                );
            }
        }
    }
}

/// `every` counts from the task's anchor, so the check does too: every seven days from a
/// Saturday is always a weekend.
#[test]
fn check_fires_counts_every_from_the_anchor() {
    let weekly = Schedule::parse(&every("7d", None, Some("us_equities")), &calendars()).unwrap();
    let now = utc("2026-03-10T12:00:00Z"); // a Tuesday
    assert_eq!(weekly.check_fires(now, now), Ok(()));
    let saturday = utc("2026-03-07T12:00:00Z");
    let err = weekly.check_fires(now, saturday).unwrap_err();
    assert_eq!(err.code, "invalid_schedule");
    assert_eq!(err.field.as_deref(), Some("calendar"));
    assert!(
        err.message.contains("never fires on a trading day"),
        "{}",
        err.message
    );
}

#[test]
fn unknown_calendar_message_lists_known_names() {
    let err = Schedule::parse(&cron("0 0 9 * * *", None, Some("lse")), &calendars()).unwrap_err();
    assert!(
        err.message.contains("closed, cme_futures, us_equities"),
        "{}",
        err.message
    );
}

#[test]
fn parse_duration_cases() {
    assert_eq!(
        parse_duration("timeout", "1h 30m").unwrap(),
        Duration::from_secs(5400)
    );
    assert_eq!(
        parse_duration("timeout", "500ms").unwrap(),
        Duration::from_millis(500)
    );
    assert_eq!(parse_duration("window", "0s").unwrap(), Duration::ZERO);
    assert_eq!(parse_duration("window", "100y").unwrap(), MAX_DURATION);
    let err = parse_duration("payload.timeout", "soon").unwrap_err();
    assert_eq!(err.code, "invalid_duration");
    assert_eq!(err.field.as_deref(), Some("payload.timeout"));
}

/// Every accepted duration survives the conversions the engine makes (milliseconds as `u64` and
/// `i64`, `chrono::TimeDelta`); anything that would not is refused with its range.
#[test]
fn durations_are_range_checked() {
    #[rustfmt::skip]
    let refused = [
        // 18446744073709552 s is 18446744073709552000 ms: u64 milliseconds wrap to 384.
        ("18446744073709552s", "longer than 100 years"),
        ("99999999999999999s", "longer than 100 years"),
        ("101y", "longer than 100 years"),
        ("100y 1ms", "longer than 100 years"),
        ("1000000000d", "longer than 100 years"),
        // Beyond u64 seconds: humantime's overflow, in plain words.
        ("99999999999999999999s", "out of range: durations run from 0 to 100 years"),
        ("1.5ns", "out of range"),
        // Finer than the millisecond the API shows and stores.
        ("1500us", "finer than a millisecond"),
        ("1ns", "finer than a millisecond"),
        ("soon", "not a duration"),
        ("", "not a duration"),
    ];
    for (text, words) in refused {
        let err = parse_duration("timeout", text).expect_err(text);
        assert_eq!(err.code, "invalid_duration", "{text}");
        assert_eq!(err.field.as_deref(), Some("timeout"), "{text}");
        assert!(
            err.message.contains(words),
            "{text}: {:?} lacks {words:?}",
            err.message
        );
    }
    for text in ["0s", "1ms", "1.5s", "30s", "1h 30m", "365d", "99y", "100y"] {
        let d = parse_duration("timeout", text).unwrap();
        let ms = u64::try_from(d.as_millis()).unwrap();
        assert_eq!(Duration::from_millis(ms), d, "{text} through u64 ms");
        let ms = i64::try_from(d.as_millis()).unwrap();
        assert_eq!(
            TimeDelta::milliseconds(ms).to_std().unwrap(),
            d,
            "{text} through i64 ms"
        );
        assert_eq!(
            TimeDelta::from_std(d).unwrap().to_std().unwrap(),
            d,
            "{text} through TimeDelta"
        );
        assert_eq!(
            parse_duration("timeout", &humantime::format_duration(d).to_string()),
            Ok(d),
            "{text} through text"
        );
    }
}

/// Task timeouts go through the same check, and a zero timeout (every run fails at once) is
/// refused too.
#[test]
fn task_timeouts_are_range_checked() {
    let policy = |timeout: &str| PolicySpec {
        timeout: Some(timeout.into()),
        ..PolicySpec::default()
    };
    assert_eq!(
        policy("90s").compile().unwrap().timeout,
        Duration::from_secs(90)
    );
    for bad in ["18446744073709552s", "99999999999999999s", "0s", "0"] {
        let err = policy(bad).compile().expect_err(bad);
        assert_eq!(err.code, "invalid_duration", "{bad}: {err}");
        assert_eq!(err.field.as_deref(), Some("timeout"), "{bad}");
    }
    let backoff = PolicySpec {
        retry_backoff: Some("18446744073709552s".into()),
        ..PolicySpec::default()
    };
    assert_eq!(
        backoff.compile().unwrap_err().field.as_deref(),
        Some("retry_backoff")
    );
    for bad in ["18446744073709552s", "0s"] {
        let payload = serde_json::json!({"url": "http://x", "timeout": bad});
        let err = HttpRequestSpec::from_payload(&payload).expect_err(bad);
        assert_eq!(err.code, "invalid_duration", "{bad}: {err}");
        assert_eq!(err.field.as_deref(), Some("payload.timeout"), "{bad}");
    }
    let payload = serde_json::json!({"url": "http://x", "timeout": "10s"});
    assert_eq!(
        HttpRequestSpec::from_payload(&payload).unwrap().timeout,
        Some(Duration::from_secs(10))
    );
}

// ---------------------------------------------------------------------------------------------
// Calendars

fn observed(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d.pred_opt().unwrap(),
        Weekday::Sun => d.succ_opt().unwrap(),
        _ => d,
    }
}

fn nth(y: i32, m: u32, wd: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(y, m, wd, n).unwrap()
}

fn last_monday_of_may(y: i32) -> NaiveDate {
    let mut d = date(y, 5, 31);
    while d.weekday() != Weekday::Mon {
        d = d.pred_opt().unwrap();
    }
    d
}

/// Gregorian Easter Sunday (anonymous algorithm).
fn easter(y: i32) -> NaiveDate {
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    date(y, month as u32, day as u32)
}

fn good_friday(y: i32) -> NaiveDate {
    easter(y) - TimeDelta::days(2)
}

#[test]
fn us_equities_holidays_follow_the_nyse_rules() {
    let mut expected = BTreeSet::new();
    for y in [2026, 2027] {
        expected.extend([
            observed(date(y, 1, 1)),
            nth(y, 1, Weekday::Mon, 3),
            nth(y, 2, Weekday::Mon, 3),
            good_friday(y),
            last_monday_of_may(y),
            observed(date(y, 6, 19)),
            observed(date(y, 7, 4)),
            nth(y, 9, Weekday::Mon, 1),
            nth(y, 11, Weekday::Thu, 4),
            observed(date(y, 12, 25)),
        ]);
    }
    let cal = Calendar::builtin("us_equities").unwrap();
    let actual: BTreeSet<NaiveDate> = [2026, 2027]
        .into_iter()
        .flat_map(|y| cal.holidays_in(y))
        .collect();
    assert_eq!(actual, expected);
    // The literal dates the spec lists, and the weekday each falls on.
    let listed = [
        (date(2026, 1, 1), Weekday::Thu),
        (date(2026, 1, 19), Weekday::Mon),
        (date(2026, 2, 16), Weekday::Mon),
        (date(2026, 4, 3), Weekday::Fri),
        (date(2026, 5, 25), Weekday::Mon),
        (date(2026, 6, 19), Weekday::Fri),
        (date(2026, 7, 3), Weekday::Fri),
        (date(2026, 9, 7), Weekday::Mon),
        (date(2026, 11, 26), Weekday::Thu),
        (date(2026, 12, 25), Weekday::Fri),
        (date(2027, 1, 1), Weekday::Fri),
        (date(2027, 1, 18), Weekday::Mon),
        (date(2027, 2, 15), Weekday::Mon),
        (date(2027, 3, 26), Weekday::Fri),
        (date(2027, 5, 31), Weekday::Mon),
        (date(2027, 6, 18), Weekday::Fri),
        (date(2027, 7, 5), Weekday::Mon),
        (date(2027, 9, 6), Weekday::Mon),
        (date(2027, 11, 25), Weekday::Thu),
        (date(2027, 12, 24), Weekday::Fri),
    ];
    assert_eq!(listed.len(), actual.len());
    for (d, wd) in listed {
        assert_eq!(d.weekday(), wd, "{d}");
        assert!(actual.contains(&d), "{d}");
        assert!(!cal.is_trading_day(d), "{d}");
    }
}

#[test]
fn cme_futures_closes_only_on_full_closure_days() {
    let cal = Calendar::builtin("cme_futures").unwrap();
    let expected: BTreeSet<NaiveDate> = [2026, 2027]
        .into_iter()
        .flat_map(|y| {
            [
                observed(date(y, 1, 1)),
                good_friday(y),
                observed(date(y, 12, 25)),
            ]
        })
        .collect();
    assert_eq!(
        [2026, 2027]
            .into_iter()
            .flat_map(|y| cal.holidays_in(y))
            .collect::<BTreeSet<_>>(),
        expected
    );
    // Early-close days trade.
    for d in [
        date(2026, 1, 19),
        date(2026, 11, 26),
        date(2026, 7, 3),
        date(2026, 12, 24),
    ] {
        assert!(cal.is_trading_day(d), "{d}");
    }
    for d in [date(2026, 4, 3), date(2026, 12, 25), date(2027, 12, 24)] {
        assert!(!cal.is_trading_day(d), "{d}");
    }
}

#[test]
fn calendar_basics() {
    let cal = Calendar::new(
        "mid_week",
        &[Weekday::Tue, Weekday::Wed],
        [date(2026, 1, 7)],
    );
    assert_eq!(cal.name(), "mid_week");
    assert!(!cal.is_trading_day(date(2026, 1, 5))); // Monday
    assert!(cal.is_trading_day(date(2026, 1, 6))); // Tuesday
    assert!(!cal.is_trading_day(date(2026, 1, 7))); // holiday Wednesday
    let cal = cal.with_extra_holidays([date(2026, 1, 6)]);
    assert!(!cal.is_trading_day(date(2026, 1, 6)));
    assert!(cal.is_trading_day(date(2026, 1, 13)));
    assert!(!cal.is_trading_day(date(2026, 1, 10))); // Saturday
    assert_eq!(Calendar::builtin("lse"), None);

    let mut cals = Calendars::with_builtins();
    assert_eq!(cals.names(), ["cme_futures", "us_equities"]);
    assert_eq!(
        cals.get("us_equities").map(Calendar::name),
        Some("us_equities")
    );
    cals.insert(Calendar::new("us_equities", &[Weekday::Sat], []));
    assert_eq!(cals.names(), ["cme_futures", "us_equities"]);
    assert!(cals
        .get("us_equities")
        .unwrap()
        .is_trading_day(date(2026, 1, 3)));
    cals.insert(Calendar::new("asx", &[Weekday::Mon], []));
    assert_eq!(cals.names(), ["asx", "cme_futures", "us_equities"]);
    assert!(Calendars::default().names().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Backoff

#[test]
fn backoff_table() {
    let b = Backoff::default();
    let delays: Vec<u64> = (1..=8).map(|a| b.delay(a).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(b.delay(0), Duration::from_secs(1));
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    let flat = Backoff {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(10),
        multiplier: 1,
    };
    assert_eq!(flat.delay(1_000_000), Duration::from_millis(250));
    let huge = Backoff {
        initial: Duration::from_secs(u64::MAX / 2),
        max: Duration::MAX,
        multiplier: 3,
    };
    assert_eq!(huge.delay(2), Duration::MAX);
}

// ---------------------------------------------------------------------------------------------
// Properties against brute-force oracles

/// Cron patterns with their meaning spelled out for the oracles.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Fires once a day at local h:m:s on the given weekdays (all when empty).
    Daily {
        cron: &'static str,
        hms: (u32, u32, u32),
        weekdays: &'static [Weekday],
    },
    /// Wildcard hour: fires at every instant whose local minute is in `minutes` and second is `second`.
    RealTime {
        cron: &'static str,
        minutes: &'static [u32],
        second: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct PropCase {
    pattern: Pattern,
    tz: &'static str,
    calendar: Option<&'static str>,
}

const MON_FRI: &[Weekday] = &[
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

#[rustfmt::skip]
const PROP_CASES: &[PropCase] = &[
    PropCase { pattern: Pattern::Daily { cron: "0 25 9 * * MON-FRI", hms: (9, 25, 0), weekdays: MON_FRI }, tz: NY, calendar: None },
    PropCase { pattern: Pattern::Daily { cron: "0 30 2 * * *", hms: (2, 30, 0), weekdays: &[] }, tz: CHI, calendar: None },
    PropCase { pattern: Pattern::Daily { cron: "0 30 1 * * *", hms: (1, 30, 0), weekdays: &[] }, tz: CHI, calendar: None },
    PropCase { pattern: Pattern::Daily { cron: "0 0 0 * * *", hms: (0, 0, 0), weekdays: &[] }, tz: "America/Santiago", calendar: None },
    PropCase { pattern: Pattern::Daily { cron: "30 15 2 * * *", hms: (2, 15, 30), weekdays: &[] }, tz: "Australia/Lord_Howe", calendar: None },
    PropCase { pattern: Pattern::Daily { cron: "30 45 1 * * *", hms: (1, 45, 30), weekdays: &[] }, tz: "Australia/Lord_Howe", calendar: None },
    PropCase { pattern: Pattern::Daily { cron: "0 0 10 * * *", hms: (10, 0, 0), weekdays: &[] }, tz: NY, calendar: Some("us_equities") },
    PropCase { pattern: Pattern::Daily { cron: "0 30 1 * * *", hms: (1, 30, 0), weekdays: &[] }, tz: NY, calendar: Some("us_equities") },
    PropCase { pattern: Pattern::Daily { cron: "0 0 17 * * SUN-FRI", hms: (17, 0, 0), weekdays: &[Weekday::Sun, Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri] }, tz: CHI, calendar: Some("cme_futures") },
    PropCase { pattern: Pattern::RealTime { cron: "0 */15 * * * *", minutes: &[0, 15, 30, 45], second: 0 }, tz: NY, calendar: None },
    PropCase { pattern: Pattern::RealTime { cron: "15 45 * * * *", minutes: &[45], second: 15 }, tz: "Australia/Lord_Howe", calendar: None },
    PropCase { pattern: Pattern::RealTime { cron: "0 0,30 * * * *", minutes: &[0, 30], second: 0 }, tz: "America/Santiago", calendar: None },
    PropCase { pattern: Pattern::RealTime { cron: "0 10 * * * *", minutes: &[10], second: 0 }, tz: CHI, calendar: Some("us_equities") },
];

impl PropCase {
    fn spec(&self) -> ScheduleSpec {
        let pattern = match self.pattern {
            Pattern::Daily { cron, .. } | Pattern::RealTime { cron, .. } => cron,
        };
        cron(pattern, Some(self.tz), self.calendar)
    }

    fn tz(&self) -> Tz {
        self.tz.parse().unwrap()
    }

    /// The expected next fire, found by walking days (fixed hour) or real-time minutes (wildcard).
    fn oracle(&self, cals: &Calendars, after: DateTime<Utc>) -> DateTime<Utc> {
        let tz = self.tz();
        let trading = |t: DateTime<Utc>| {
            self.calendar.is_none_or(|name| {
                cals.get(name)
                    .unwrap()
                    .is_trading_day(t.with_timezone(&tz).date_naive())
            })
        };
        match self.pattern {
            Pattern::Daily {
                hms: (h, m, s),
                weekdays,
                ..
            } => {
                let mut day = after.with_timezone(&tz).date_naive() - TimeDelta::days(1);
                loop {
                    if weekdays.is_empty() || weekdays.contains(&day.weekday()) {
                        let wall = day.and_hms_opt(h, m, s).unwrap();
                        let fire = match tz.from_local_datetime(&wall) {
                            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                                t.with_timezone(&Utc)
                            }
                            LocalResult::None => after_gap(&tz, wall),
                        };
                        if fire > after && trading(fire) {
                            return fire;
                        }
                    }
                    day = day.succ_opt().unwrap();
                }
            }
            Pattern::RealTime {
                minutes, second, ..
            } => {
                let mut t = after
                    .with_nanosecond(0)
                    .unwrap()
                    .with_second(second)
                    .unwrap();
                loop {
                    let local = t.with_timezone(&tz);
                    if t > after
                        && minutes.contains(&local.minute())
                        && local.second() == second
                        && trading(t)
                    {
                        return t;
                    }
                    t += TimeDelta::minutes(1);
                }
            }
        }
    }
}

/// First instant after a spring-forward gap, by brute force over real instants.
fn after_gap(tz: &Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    // Any instant whose local time is past `wall` on the same side of the gap: scan real seconds
    // from well before the gap for the first local time later than `wall`.
    let start = wall.with_second(0).unwrap() - TimeDelta::hours(16);
    let mut t = Utc.from_utc_datetime(&start);
    loop {
        let local = t.with_timezone(tz).naive_local();
        if local > wall {
            return t;
        }
        t += TimeDelta::minutes(1);
    }
}

/// UTC instants in 2026–2027 where `tz`'s offset changes.
fn transitions(tz: Tz) -> Vec<i64> {
    static CACHE: OnceLock<Vec<(String, Vec<i64>)>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        let mut zones: Vec<&str> = PROP_CASES.iter().map(|c| c.tz).collect();
        zones.sort();
        zones.dedup();
        zones
            .into_iter()
            .map(|name| {
                let zone: Tz = name.parse().unwrap();
                let offset = |secs: i64| {
                    let t = Utc.timestamp_opt(secs, 0).unwrap();
                    zone.offset_from_utc_datetime(&t.naive_utc()).to_string()
                };
                let start = utc("2026-01-01T00:00:00Z").timestamp();
                let end = utc("2028-01-01T00:00:00Z").timestamp();
                let step = 15 * 60;
                let found = (start..end)
                    .step_by(step as usize)
                    .filter(|&s| offset(s) != offset(s + step))
                    .map(|s| s + step)
                    .collect();
                (name.to_string(), found)
            })
            .collect()
    });
    all.iter()
        .find(|(name, _)| name == tz.name())
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Random instants in 2026–2027, half of them within four hours of one of `tz`'s DST transitions.
fn after_strategy(tz: Tz) -> BoxedStrategy<DateTime<Utc>> {
    let start = utc("2026-01-01T00:00:00Z").timestamp_millis();
    let end = utc("2028-01-01T00:00:00Z").timestamp_millis();
    let uniform = (start..end).prop_map(|ms| Utc.timestamp_millis_opt(ms).unwrap());
    let edges = transitions(tz);
    assert!(
        edges.len() >= 4,
        "{} should change offset in 2026-2027",
        tz.name()
    );
    let near = (
        proptest::sample::select(edges),
        -4 * 3_600_000i64..4 * 3_600_000i64,
        prop_oneof![Just(0i64), Just(500i64), 0i64..1000],
    )
        .prop_map(|(edge, delta_ms, ms)| {
            Utc.timestamp_millis_opt(edge * 1000 + (delta_ms / 1000) * 1000 + ms)
                .unwrap()
        });
    prop_oneof![uniform, near].boxed()
}

fn prop_case_and_after() -> impl Strategy<Value = (PropCase, DateTime<Utc>)> {
    proptest::sample::select(PROP_CASES).prop_flat_map(|c| (Just(c), after_strategy(c.tz())))
}

proptest! {
    #[test]
    fn cron_next_after_matches_the_oracle((case, after) in prop_case_and_after()) {
        let cals = calendars();
        let schedule = Schedule::parse(&case.spec(), &cals).unwrap();
        let anchor = utc(NO_ANCHOR);
        let tz = case.tz();
        let mut t = after;
        for step in 0..4 {
            let next = schedule.next_after(t, anchor);
            let want = case.oracle(&cals, t);
            prop_assert_eq!(next, Some(want), "step {} after {}", step, t);
            let next = want;
            prop_assert!(next > t);
            let local = next.with_timezone(&tz);
            match case.pattern {
                Pattern::Daily { hms: (h, m, s), .. } => {
                    let on_time = (local.hour(), local.minute(), local.second()) == (h, m, s);
                    let wall = local.date_naive().and_hms_opt(h, m, s).unwrap();
                    let gap = matches!(tz.from_local_datetime(&wall), LocalResult::None);
                    prop_assert!(on_time || (gap && local.second() == 0), "{} is {}", next, local);
                }
                Pattern::RealTime { minutes, second, .. } => {
                    prop_assert!(minutes.contains(&local.minute()) && local.second() == second);
                }
            }
            if let Some(name) = case.calendar {
                prop_assert!(cals.get(name).unwrap().is_trading_day(local.date_naive()));
            }
            t = next;
        }
    }

    #[test]
    fn every_lands_on_the_anchor_grid(
        anchor_ms in 1_767_225_600_000i64..1_830_297_600_000i64,
        after_ms in 1_767_225_600_000i64..1_830_297_600_000i64,
        interval_ms in 100i64..86_400_000,
    ) {
        let spec = every(&format!("{interval_ms}ms"), None, None);
        let schedule = Schedule::parse(&spec, &calendars()).unwrap();
        let anchor = Utc.timestamp_millis_opt(anchor_ms).unwrap();
        let after = Utc.timestamp_millis_opt(after_ms).unwrap();
        let next = schedule.next_after(after, anchor).unwrap();
        let offset = (next - anchor).num_milliseconds();
        prop_assert!(next > after);
        prop_assert!(offset > 0 && offset % interval_ms == 0);
        // The first grid point after `after`: the previous one is not after it (or is the anchor).
        prop_assert!(offset == interval_ms || next - TimeDelta::milliseconds(interval_ms) <= after);
        prop_assert!(schedule.next_after(next, anchor).unwrap() == next + TimeDelta::milliseconds(interval_ms));
    }

    #[test]
    fn every_with_calendar_fires_on_trading_days(
        anchor_ms in 1_767_225_600_000i64..1_830_297_600_000i64,
        after_ms in 1_767_225_600_000i64..1_830_297_600_000i64,
        interval_min in 1i64..(3 * 24 * 60),
    ) {
        let cals = calendars();
        let spec = every(&format!("{interval_min}m"), Some(NY), Some("us_equities"));
        let schedule = Schedule::parse(&spec, &cals).unwrap();
        let anchor = Utc.timestamp_millis_opt(anchor_ms).unwrap();
        let after = Utc.timestamp_millis_opt(after_ms).unwrap();
        let tz: Tz = NY.parse().unwrap();
        let cal = cals.get("us_equities").unwrap();
        let next = schedule.next_after(after, anchor).unwrap();
        prop_assert!(next > after);
        prop_assert!((next - anchor).num_minutes() % interval_min == 0);
        prop_assert!(cal.is_trading_day(next.with_timezone(&tz).date_naive()));
        // No trading-day grid point was skipped on the way.
        let mut k = next - TimeDelta::minutes(interval_min);
        while k > after && k > anchor {
            prop_assert!(!cal.is_trading_day(k.with_timezone(&tz).date_naive()), "skipped {}", k);
            k -= TimeDelta::minutes(interval_min);
        }
    }

    #[test]
    fn backoff_is_monotonic_and_capped(
        initial_ms in 0u64..10_000_000,
        max_ms in 0u64..100_000_000,
        multiplier in 0u32..10,
        a in any::<u32>(),
        b in any::<u32>(),
    ) {
        let backoff = Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier,
        };
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(backoff.delay(lo) <= backoff.delay(hi));
        prop_assert!(backoff.delay(hi) <= backoff.max);
        prop_assert!(backoff.delay(lo.saturating_add(1)) >= backoff.delay(lo));
    }
}

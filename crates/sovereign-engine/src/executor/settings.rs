//! `[results]`, `[calendars.NAME]` and `[tasks.ID]`: the files as written, and their
//! validation into [`ExecutorSettings`] (every problem collected, each naming its key).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDate, Weekday};
use serde::Deserialize;
use serde_json::Value;
use sovereign_core::calendar::{Calendar, Calendars};
use sovereign_core::error::Invalid;
use sovereign_core::schedule::{parse_duration, ScheduleSpec};
use sovereign_core::task::{HandlerRules, PolicySpec, Task, TaskSpec};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsFile {
    pub max_age: Option<String>,
    pub max_count: Option<usize>,
    pub prune_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    pub extends: Option<String>,
    pub weekdays: Option<Vec<String>>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: String,
    pub handler: String,
    #[serde(default = "empty_object")]
    pub payload: Value,
    pub schedule: Option<ScheduleSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(flatten)]
    pub policy: PolicySpec,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}

/// The executor's validated settings.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub results_max_age: Option<Duration>,
    pub results_max_count: Option<usize>,
    pub prune_interval: Duration,
    pub calendars: Calendars,
    /// Tasks declared in the file: created or replaced at start-up.
    pub tasks: Vec<TaskSpec>,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            results_max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            results_max_count: Some(100_000),
            prune_interval: Duration::from_secs(600),
            calendars: Calendars::with_builtins(),
            tasks: Vec::new(),
        }
    }
}

/// Validate `[results]`, the calendars and the tasks (each checked against the calendars and
/// the handler rules), collecting every problem.
pub fn settings(
    results: ResultsFile,
    calendars: BTreeMap<String, CalendarFile>,
    tasks: BTreeMap<String, TaskFile>,
    rules: &HandlerRules,
) -> Result<ExecutorSettings, Vec<Invalid>> {
    let mut s = ExecutorSettings::default();
    let mut problems: Vec<Invalid> = Vec::new();
    let mut note = |r: Result<(), Invalid>| {
        if let Err(e) = r {
            problems.push(e);
        }
    };
    if let Some(t) = &results.max_age {
        note(parse_duration("results.max_age", t).map(|d| s.results_max_age = Some(d)));
    }
    if let Some(n) = results.max_count {
        s.results_max_count = Some(n);
    }
    if let Some(t) = &results.prune_interval {
        note(parse_duration("results.prune_interval", t).map(|d| s.prune_interval = d));
    }
    for (name, cal) in calendars {
        note(calendar(&name, cal, &s.calendars).map(|c| s.calendars.insert(c)));
    }
    for (id, t) in tasks {
        let spec = TaskSpec {
            task_id: id.clone(),
            name: t.name,
            handler: t.handler,
            payload: t.payload,
            schedule: t.schedule,
            enabled: t.enabled,
            policy: t.policy,
        };
        // Validate now, so `sovereign check` and start-up agree; the time is irrelevant here.
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        note(
            Task::validate(spec.clone(), &s.calendars, rules, epoch, epoch)
                .map(|_| ())
                .map_err(|e| e.within(&format!("tasks.{id}"))),
        );
        s.tasks.push(spec);
    }
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

fn calendar(name: &str, file: CalendarFile, known: &Calendars) -> Result<Calendar, Invalid> {
    let field = |f: &str| format!("calendars.{name}.{f}");
    let base = match &file.extends {
        Some(b) => Some(known.get(b).cloned().ok_or_else(|| {
            Invalid::new(
                "unknown_calendar",
                field("extends"),
                format!(
                    "unknown calendar {b:?}; known: {}",
                    known.names().join(", ")
                ),
            )
        })?),
        None => None,
    };
    let mut holidays = Vec::new();
    for h in &file.holidays {
        holidays.push(NaiveDate::parse_from_str(h, "%Y-%m-%d").map_err(|_| {
            Invalid::new(
                "invalid_date",
                field("holidays"),
                format!("{h:?} is not a YYYY-MM-DD date"),
            )
        })?);
    }
    let weekdays: Option<Vec<Weekday>> = match &file.weekdays {
        Some(days) => Some(
            days.iter()
                .map(|d| {
                    d.parse::<Weekday>().map_err(|_| {
                        Invalid::new(
                            "invalid_weekday",
                            field("weekdays"),
                            format!("{d:?} is not a weekday"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    Ok(match (base, weekdays) {
        (Some(base), None) => base.renamed(name).with_extra_holidays(holidays),
        (Some(base), Some(days)) => base
            .renamed(name)
            .with_weekdays(&days)
            .with_extra_holidays(holidays),
        (None, days) => {
            let days = days.unwrap_or_else(|| {
                vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ]
            });
            Calendar::new(name, &days, holidays)
        }
    })
}

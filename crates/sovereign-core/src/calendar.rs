//! Exchange calendars: which local dates are trading days (allowed weekdays minus holidays).
//!
//! A calendar answers one question — "is this date a trading day?" — for schedules that should
//! skip weekends and exchange holidays. It knows nothing about sessions, open/close times or time
//! zones: the schedule decides which *local* date a fire falls on and asks here. Pure data; no I/O,
//! no clock reads, no fetching of holiday lists at run time (config may add calendars or holidays).
//!
//! Two calendars are built in, with holidays for 2026 and 2027 (dates outside those years count only
//! the weekday rule, so extend them through config before relying on them later):
//! - `us_equities`: NYSE full-day closures, Monday–Friday. Early closes (e.g. the day after
//!   Thanksgiving) are trading days.
//! - `cme_futures`: CME Globex *full-closure* days only, Monday–Friday. Days with an early halt or
//!   an abbreviated session — Martin Luther King Jr. Day, Presidents Day, Memorial Day, Juneteenth,
//!   Independence Day, Labor Day, Thanksgiving — count as trading days, because Globex still trades.

use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate, Weekday};

/// A named set of trading weekdays and holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    /// Indexed by `Weekday::num_days_from_monday()`.
    weekdays: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// A calendar trading on `weekdays` except on `holidays`.
    pub fn new(
        name: impl Into<String>,
        weekdays: &[Weekday],
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Calendar {
        let mut days = [false; 7];
        for d in weekdays {
            days[d.num_days_from_monday() as usize] = true;
        }
        Calendar {
            name: name.into(),
            weekdays: days,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// A built-in calendar by name (`us_equities`, `cme_futures`), or `None`.
    pub fn builtin(name: &str) -> Option<Calendar> {
        let holidays: &[(i32, u32, u32)] = match name {
            US_EQUITIES => US_EQUITIES_HOLIDAYS,
            CME_FUTURES => CME_FUTURES_HOLIDAYS,
            _ => return None,
        };
        let dates = holidays
            .iter()
            .filter_map(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d));
        Some(Calendar::new(name, &MON_FRI, dates))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trading weekdays, Monday first.
    pub fn weekdays(&self) -> Vec<Weekday> {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .filter(|d| self.weekdays[d.num_days_from_monday() as usize])
        .collect()
    }

    /// True when `date`'s weekday is a trading weekday and `date` is not a holiday.
    pub fn is_trading_day(&self, date: NaiveDate) -> bool {
        self.weekdays[date.weekday().num_days_from_monday() as usize]
            && !self.holidays.contains(&date)
    }

    /// True when no date can ever be a trading day (no weekdays allowed).
    pub fn is_never_open(&self) -> bool {
        !self.weekdays.iter().any(|&d| d)
    }

    /// The holidays, in date order.
    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// The same calendar with more holidays (e.g. an unscheduled closure added in config).
    pub fn with_extra_holidays(mut self, extra: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        self.holidays.extend(extra);
        self
    }
}

/// The calendars a deployment knows, by name: the built-ins plus any defined in config.
#[derive(Debug, Clone, Default)]
pub struct Calendars {
    by_name: HashMap<String, Calendar>,
}

impl Calendars {
    /// Both built-in calendars registered.
    pub fn with_builtins() -> Calendars {
        let mut cals = Calendars::default();
        for name in [US_EQUITIES, CME_FUTURES] {
            if let Some(cal) = Calendar::builtin(name) {
                cals.insert(cal);
            }
        }
        cals
    }

    /// Register a calendar, replacing any calendar of the same name.
    pub fn insert(&mut self, cal: Calendar) {
        self.by_name.insert(cal.name.clone(), cal);
    }

    pub fn get(&self, name: &str) -> Option<&Calendar> {
        self.by_name.get(name)
    }

    /// All registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }
}

const US_EQUITIES: &str = "us_equities";
const CME_FUTURES: &str = "cme_futures";

const MON_FRI: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

/// NYSE full-day closures.
const US_EQUITIES_HOLIDAYS: &[(i32, u32, u32)] = &[
    (2026, 1, 1),   // New Year's Day
    (2026, 1, 19),  // Martin Luther King Jr. Day
    (2026, 2, 16),  // Washington's Birthday
    (2026, 4, 3),   // Good Friday
    (2026, 5, 25),  // Memorial Day
    (2026, 6, 19),  // Juneteenth
    (2026, 7, 3),   // Independence Day (observed; Jul 4 is a Saturday)
    (2026, 9, 7),   // Labor Day
    (2026, 11, 26), // Thanksgiving Day
    (2026, 12, 25), // Christmas Day
    (2027, 1, 1),   // New Year's Day
    (2027, 1, 18),  // Martin Luther King Jr. Day
    (2027, 2, 15),  // Washington's Birthday
    (2027, 3, 26),  // Good Friday
    (2027, 5, 31),  // Memorial Day
    (2027, 6, 18),  // Juneteenth (observed; Jun 19 is a Saturday)
    (2027, 7, 5),   // Independence Day (observed; Jul 4 is a Sunday)
    (2027, 9, 6),   // Labor Day
    (2027, 11, 25), // Thanksgiving Day
    (2027, 12, 24), // Christmas Day (observed; Dec 25 is a Saturday)
];

/// CME Globex full-closure days only; early-close days are trading days.
const CME_FUTURES_HOLIDAYS: &[(i32, u32, u32)] = &[
    (2026, 1, 1),   // New Year's Day
    (2026, 4, 3),   // Good Friday
    (2026, 12, 25), // Christmas Day
    (2027, 1, 1),   // New Year's Day
    (2027, 3, 26),  // Good Friday
    (2027, 12, 24), // Christmas Day (observed)
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_hold_only_valid_dates() {
        assert_eq!(
            Calendar::builtin(US_EQUITIES)
                .map(|c| c.holidays().count())
                .unwrap_or(0),
            US_EQUITIES_HOLIDAYS.len()
        );
        assert_eq!(
            Calendar::builtin(CME_FUTURES)
                .map(|c| c.holidays().count())
                .unwrap_or(0),
            CME_FUTURES_HOLIDAYS.len()
        );
    }
}

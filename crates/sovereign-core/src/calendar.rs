//! Exchange calendars: which local dates are trading days (allowed weekdays minus holidays), and
//! which trading days close early.
//!
//! A calendar answers "is this date a trading day?" — for schedules that should skip weekends and
//! exchange holidays — and "does this date close early, and when (local exchange time)?". It knows
//! nothing about sessions or time zones: the schedule decides which *local* date a fire falls on
//! and asks here. Pure computation; no I/O, no clock reads, no fetching of holiday lists at run
//! time.
//!
//! A calendar is its trading weekdays, a [`HolidayRules`] set and explicit holidays (from config:
//! `[calendars.NAME] holidays = [...]`, e.g. an unscheduled closure). The rule sets compute each
//! year's holidays from the exchange's published rules, so they hold for any year — no list runs
//! out. They describe *current* practice and are not a history: rules that changed (Martin Luther
//! King Jr. Day before 1998, for instance) are applied to every year, and one-off closures
//! (national days of mourning, weather) are not known — add those as explicit holidays.
//!
//! Two calendars are built in, both Monday–Friday:
//! - `us_equities` ([`HolidayRules::Nyse`]): NYSE full-day closures — New Year's Day, Martin Luther
//!   King Jr. Day, Washington's Birthday, Good Friday, Memorial Day, Juneteenth (from 2022),
//!   Independence Day, Labor Day, Thanksgiving Day, Christmas Day. A holiday on a Saturday is
//!   observed the Friday before, on a Sunday the Monday after — except New Year's Day on a
//!   Saturday, which is not observed at all (NYSE rule: no closure on Dec 31). Early closes at
//!   13:00 New York time: July 3 when July 4 falls Tuesday–Friday, the day after Thanksgiving, and
//!   Christmas Eve on a weekday that is not itself the observed Christmas holiday. Early-close days
//!   are trading days.
//! - `cme_futures` ([`HolidayRules::Cme`]): CME Globex *full-closure* days only — New Year's Day
//!   (observed as on the NYSE), Good Friday, Christmas Day (observed). Days with an early halt or
//!   an abbreviated session count as trading days, because Globex still trades; they are reported
//!   by [`Calendar::early_close`] in Chicago time, simplified to one halt per day: 12:00 on Martin
//!   Luther King Jr. Day, Presidents Day, Memorial Day, Juneteenth (from 2022), Independence Day
//!   (observed), Labor Day and Thanksgiving Day; 12:15 on the day after Thanksgiving and on
//!   Christmas Eve (a weekday that is not the observed Christmas holiday). Product-specific halt
//!   times differ; treat these as "the session is abbreviated", not as an exact per-contract
//!   schedule.

use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};

/// The rule set that computes a calendar's holidays and early closes for any year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HolidayRules {
    /// No computed holidays: only the calendar's explicit ones.
    #[default]
    None,
    /// NYSE (US equities) full-day closures and 13:00 early closes.
    Nyse,
    /// CME Globex full closures and abbreviated (early-halt) sessions.
    Cme,
}

/// A holiday some exchange closes or shortens its session for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holiday {
    /// January 1; on a Sunday observed Monday January 2, on a Saturday not observed.
    NewYearsDay,
    /// Third Monday of January.
    MartinLutherKingJrDay,
    /// Third Monday of February (Presidents Day).
    WashingtonsBirthday,
    /// The Friday before Easter Sunday.
    GoodFriday,
    /// Last Monday of May.
    MemorialDay,
    /// June 19 (observed), from 2022 on.
    Juneteenth,
    /// July 4 (observed).
    IndependenceDay,
    /// First Monday of September.
    LaborDay,
    /// Fourth Thursday of November.
    ThanksgivingDay,
    /// December 25 (observed).
    ChristmasDay,
}

impl Holiday {
    /// Every holiday, in calendar order.
    pub const ALL: [Holiday; 10] = [
        Holiday::NewYearsDay,
        Holiday::MartinLutherKingJrDay,
        Holiday::WashingtonsBirthday,
        Holiday::GoodFriday,
        Holiday::MemorialDay,
        Holiday::Juneteenth,
        Holiday::IndependenceDay,
        Holiday::LaborDay,
        Holiday::ThanksgivingDay,
        Holiday::ChristmasDay,
    ];

    /// The holiday's name as exchanges publish it.
    pub fn name(self) -> &'static str {
        match self {
            Holiday::NewYearsDay => "New Year's Day",
            Holiday::MartinLutherKingJrDay => "Martin Luther King, Jr. Day",
            Holiday::WashingtonsBirthday => "Washington's Birthday",
            Holiday::GoodFriday => "Good Friday",
            Holiday::MemorialDay => "Memorial Day",
            Holiday::Juneteenth => "Juneteenth National Independence Day",
            Holiday::IndependenceDay => "Independence Day",
            Holiday::LaborDay => "Labor Day",
            Holiday::ThanksgivingDay => "Thanksgiving Day",
            Holiday::ChristmasDay => "Christmas Day",
        }
    }

    /// The date the holiday is observed in `year`, or `None` when it is not observed that year
    /// (New Year's Day on a Saturday; Juneteenth before 2022) or the date is out of range.
    ///
    /// Fixed-date holidays other than New Year's Day move from a Saturday to the Friday before and
    /// from a Sunday to the Monday after. Every observed date stays in the holiday's own month (and
    /// so its own year).
    pub fn date(self, year: i32) -> Option<NaiveDate> {
        match self {
            Holiday::NewYearsDay => {
                let d = NaiveDate::from_ymd_opt(year, 1, 1)?;
                match d.weekday() {
                    Weekday::Sat => None,
                    Weekday::Sun => d.succ_opt(),
                    _ => Some(d),
                }
            }
            Holiday::MartinLutherKingJrDay => {
                NaiveDate::from_weekday_of_month_opt(year, 1, Weekday::Mon, 3)
            }
            Holiday::WashingtonsBirthday => {
                NaiveDate::from_weekday_of_month_opt(year, 2, Weekday::Mon, 3)
            }
            Holiday::GoodFriday => easter_sunday(year)?.pred_opt()?.pred_opt(),
            Holiday::MemorialDay => {
                let may31 = NaiveDate::from_ymd_opt(year, 5, 31)?;
                NaiveDate::from_ymd_opt(year, 5, 31 - may31.weekday().num_days_from_monday())
            }
            Holiday::Juneteenth => {
                if year >= 2022 {
                    observed(NaiveDate::from_ymd_opt(year, 6, 19)?)
                } else {
                    None
                }
            }
            Holiday::IndependenceDay => observed(NaiveDate::from_ymd_opt(year, 7, 4)?),
            Holiday::LaborDay => NaiveDate::from_weekday_of_month_opt(year, 9, Weekday::Mon, 1),
            Holiday::ThanksgivingDay => {
                NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Thu, 4)
            }
            Holiday::ChristmasDay => observed(NaiveDate::from_ymd_opt(year, 12, 25)?),
        }
    }

    /// True when the holiday's observed date can fall in `month` (a cheap pre-filter, so a
    /// membership check computes only the holidays of the date's month).
    fn may_fall_in(self, month: u32) -> bool {
        match self {
            Holiday::NewYearsDay | Holiday::MartinLutherKingJrDay => month == 1,
            Holiday::WashingtonsBirthday => month == 2,
            Holiday::GoodFriday => month == 3 || month == 4,
            Holiday::MemorialDay => month == 5,
            Holiday::Juneteenth => month == 6,
            Holiday::IndependenceDay => month == 7,
            Holiday::LaborDay => month == 9,
            Holiday::ThanksgivingDay => month == 11,
            Holiday::ChristmasDay => month == 12,
        }
    }

    /// True when `date` is this holiday's observed date.
    fn falls_on(self, date: NaiveDate) -> bool {
        self.may_fall_in(date.month()) && self.date(date.year()) == Some(date)
    }
}

/// Saturday → the Friday before, Sunday → the Monday after.
fn observed(d: NaiveDate) -> Option<NaiveDate> {
    match d.weekday() {
        Weekday::Sat => d.pred_opt(),
        Weekday::Sun => d.succ_opt(),
        _ => Some(d),
    }
}

/// Gregorian Easter Sunday of `year` (the anonymous Gregorian algorithm, Meeus/Jones/Butcher).
/// Always between March 22 and April 25. `None` only when the date is out of `NaiveDate`'s range.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    // Euclidean division keeps every intermediate non-negative for any year; all of them stay far
    // below i32::MAX (the largest is about year / 100).
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let n = h + l - 7 * m + 114;
    let month = u32::try_from(n.div_euclid(31)).ok()?;
    let day = u32::try_from(n.rem_euclid(31) + 1).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The Friday after Thanksgiving Day.
fn is_day_after_thanksgiving(date: NaiveDate) -> bool {
    if date.month() != 11 {
        return false;
    }
    let thanksgiving = Holiday::ThanksgivingDay.date(date.year());
    thanksgiving.and_then(|t| t.succ_opt()) == Some(date)
}

/// The CME holidays on which Globex trades an abbreviated session halting at 12:00 Chicago time.
const CME_NOON_HALTS: [Holiday; 7] = [
    Holiday::MartinLutherKingJrDay,
    Holiday::WashingtonsBirthday,
    Holiday::MemorialDay,
    Holiday::Juneteenth,
    Holiday::IndependenceDay,
    Holiday::LaborDay,
    Holiday::ThanksgivingDay,
];

impl HolidayRules {
    /// The holidays this rule set closes for all day.
    pub fn full_closures(self) -> &'static [Holiday] {
        match self {
            HolidayRules::None => &[],
            HolidayRules::Nyse => &Holiday::ALL,
            HolidayRules::Cme => &[
                Holiday::NewYearsDay,
                Holiday::GoodFriday,
                Holiday::ChristmasDay,
            ],
        }
    }

    /// The full closures observed in `year`, in date order.
    pub fn closures_in(self, year: i32) -> Vec<(Holiday, NaiveDate)> {
        let mut days: Vec<(Holiday, NaiveDate)> = self
            .full_closures()
            .iter()
            .filter_map(|&h| h.date(year).map(|d| (h, d)))
            .collect();
        days.sort_by_key(|&(h, d)| (d, h));
        days
    }

    /// True when `date` is a full closure under these rules.
    pub fn is_closed(self, date: NaiveDate) -> bool {
        self.full_closures().iter().any(|h| h.falls_on(date))
    }

    /// The early close on `date` (local exchange time) under these rules, or `None`. Never on a
    /// Saturday, Sunday or full closure. Ignores a calendar's weekdays and explicit holidays; ask
    /// [`Calendar::early_close`] for that.
    pub fn early_close(self, date: NaiveDate) -> Option<NaiveTime> {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) || self.is_closed(date) {
            return None;
        }
        let (month, day) = (date.month(), date.day());
        match self {
            HolidayRules::None => None,
            HolidayRules::Nyse => {
                // July 3 on a weekday that is not the observed Independence Day: July 3 Friday
                // means July 4 is a Saturday, so July 3 is the holiday (excluded above) — what is
                // left is July 3 Monday–Thursday, i.e. July 4 Tuesday–Friday.
                // Christmas Eve on a Friday is the observed Christmas holiday (excluded above).
                let early = (month, day) == (7, 3)
                    || (month, day) == (12, 24)
                    || is_day_after_thanksgiving(date);
                if early {
                    NaiveTime::from_hms_opt(13, 0, 0)
                } else {
                    None
                }
            }
            HolidayRules::Cme => {
                if (month, day) == (12, 24) || is_day_after_thanksgiving(date) {
                    NaiveTime::from_hms_opt(12, 15, 0)
                } else if CME_NOON_HALTS.iter().any(|h| h.falls_on(date)) {
                    NaiveTime::from_hms_opt(12, 0, 0)
                } else {
                    None
                }
            }
        }
    }
}

/// A named set of trading weekdays, holiday rules and explicit holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    /// Indexed by `Weekday::num_days_from_monday()`.
    weekdays: [bool; 7],
    rules: HolidayRules,
    /// Explicit holidays (constructor, config), on top of the rules.
    holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// A calendar trading on `weekdays` except on `holidays`, with no holiday rules.
    pub fn new(
        name: impl Into<String>,
        weekdays: &[Weekday],
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Calendar {
        Calendar {
            name: name.into(),
            weekdays: weekday_mask(weekdays),
            rules: HolidayRules::None,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// A built-in calendar by name (`us_equities`, `cme_futures`), or `None`.
    pub fn builtin(name: &str) -> Option<Calendar> {
        let rules = match name {
            US_EQUITIES => HolidayRules::Nyse,
            CME_FUTURES => HolidayRules::Cme,
            _ => return None,
        };
        Some(Calendar::new(name, &MON_FRI, []).with_rules(rules))
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

    /// The holiday rules.
    pub fn rules(&self) -> HolidayRules {
        self.rules
    }

    /// True when `date`'s weekday is a trading weekday and `date` is neither an explicit holiday
    /// nor a full closure under the calendar's rules.
    pub fn is_trading_day(&self, date: NaiveDate) -> bool {
        self.weekdays[date.weekday().num_days_from_monday() as usize]
            && !self.holidays.contains(&date)
            && !self.rules.is_closed(date)
    }

    /// The early close of `date` in local exchange time (New York for `Nyse` rules, Chicago for
    /// `Cme`), or `None` — also when `date` is not a trading day at all.
    pub fn early_close(&self, date: NaiveDate) -> Option<NaiveTime> {
        if self.is_trading_day(date) {
            self.rules.early_close(date)
        } else {
            None
        }
    }

    /// True when no date can ever be a trading day (no weekdays allowed).
    pub fn is_never_open(&self) -> bool {
        !self.weekdays.iter().any(|&d| d)
    }

    /// The *explicit* holidays (given to [`Calendar::new`] or [`Calendar::with_extra_holidays`],
    /// i.e. from config), in date order. Rule-based holidays are unbounded and not included: use
    /// [`Calendar::holidays_in`] for a year's full set, and [`Calendar::renamed`] /
    /// [`Calendar::with_weekdays`] to derive a calendar that keeps the rules.
    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// Every holiday of `year` — the rules' full closures plus the explicit holidays that fall in
    /// it — in date order, without duplicates. Early closes are not holidays.
    pub fn holidays_in(&self, year: i32) -> Vec<NaiveDate> {
        let mut days: BTreeSet<NaiveDate> = self
            .rules
            .closures_in(year)
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        days.extend(self.holidays.iter().copied().filter(|d| d.year() == year));
        days.into_iter().collect()
    }

    /// The same calendar with more holidays (e.g. an unscheduled closure added in config).
    pub fn with_extra_holidays(mut self, extra: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        self.holidays.extend(extra);
        self
    }

    /// The same calendar with other holiday rules.
    pub fn with_rules(mut self, rules: HolidayRules) -> Calendar {
        self.rules = rules;
        self
    }

    /// The same calendar (weekdays, rules, holidays) under another name.
    pub fn renamed(mut self, name: impl Into<String>) -> Calendar {
        self.name = name.into();
        self
    }

    /// The same calendar (name, rules, holidays) trading on other weekdays.
    pub fn with_weekdays(mut self, weekdays: &[Weekday]) -> Calendar {
        self.weekdays = weekday_mask(weekdays);
        self
    }
}

fn weekday_mask(weekdays: &[Weekday]) -> [bool; 7] {
    let mut days = [false; 7];
    for d in weekdays {
        days[d.num_days_from_monday() as usize] = true;
    }
    days
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_carry_their_rules() {
        assert_eq!(
            Calendar::builtin(US_EQUITIES).map(|c| c.rules()),
            Some(HolidayRules::Nyse)
        );
        assert_eq!(
            Calendar::builtin(CME_FUTURES).map(|c| c.rules()),
            Some(HolidayRules::Cme)
        );
        assert_eq!(
            Calendar::builtin(US_EQUITIES).map(|c| c.holidays().count()),
            Some(0)
        );
    }

    #[test]
    fn easter_at_the_extremes_of_chrono_years_does_not_panic() {
        for year in [i32::MIN, -262_144, -1, 0, 1, 262_142, i32::MAX] {
            let _ = easter_sunday(year);
            for h in Holiday::ALL {
                let _ = h.date(year);
            }
        }
        assert_eq!(easter_sunday(2026), NaiveDate::from_ymd_opt(2026, 4, 5));
    }
}

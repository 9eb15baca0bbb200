//! Deploy windows: a plan may refuse to start, or wait, while an exchange's session is open
//! (nobody wants a deploy at 09:30 New York time).
//!
//! A session is a trading day of a calendar (its weekdays, holidays and early closes) between
//! an open and a close in the exchange's time zone. A close earlier than the open makes an
//! overnight session that belongs to the day it closes on (CME Globex: 17:00 the evening
//! before to 16:00 Chicago time).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::calendar::Calendar;
use crate::error::Invalid;

/// When a calendar's sessions are open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub calendar: Calendar,
    pub tz: Tz,
    pub open: NaiveTime,
    pub close: NaiveTime,
}

/// The hours of a built-in calendar, when none are given: `us_equities` 09:30–16:00 New York,
/// `cme_futures` 17:00–16:00 Chicago (overnight).
pub fn builtin_hours(calendar: &str) -> Option<(Tz, NaiveTime, NaiveTime)> {
    let t = |h, m| NaiveTime::from_hms_opt(h, m, 0);
    match calendar {
        "us_equities" => Some((chrono_tz::America::New_York, t(9, 30)?, t(16, 0)?)),
        "cme_futures" => Some((chrono_tz::America::Chicago, t(17, 0)?, t(16, 0)?)),
        _ => None,
    }
}

/// `"09:30-16:00"` as an open and a close.
pub fn parse_hours(field: &str, text: &str) -> Result<(NaiveTime, NaiveTime), Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_session",
            field,
            format!("session {text:?} must be \"HH:MM-HH:MM\" (open-close, exchange time)"),
        )
    };
    let (open, close) = text.split_once('-').ok_or_else(bad)?;
    let time = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
    let (open, close) = (time(open)?, time(close)?);
    if open == close {
        return Err(bad());
    }
    Ok((open, close))
}

impl Session {
    /// When the session open at `now` closes, or `None` when none is open.
    pub fn open_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&self.tz).date_naive();
        // An overnight session that opened yesterday evening belongs to today; one opening
        // this evening belongs to tomorrow.
        [today, today.succ_opt()?]
            .into_iter()
            .filter_map(|day| self.of_day(day))
            .find(|(open, close)| *open <= now && now < *close)
            .map(|(_, close)| close)
    }

    /// The session of trading day `day`, as instants; `None` when `day` does not trade.
    fn of_day(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.calendar.is_trading_day(day) {
            return None;
        }
        let close = match self.calendar.early_close(day) {
            Some(early) if early < self.close => early,
            _ => self.close,
        };
        let open_day = if self.open > self.close {
            day - Duration::days(1)
        } else {
            day
        };
        let at = |d: NaiveDate, t: NaiveTime| {
            let local = self.tz.from_local_datetime(&d.and_time(t));
            local
                .earliest()
                .or_else(|| local.latest())
                .map(|x| x.with_timezone(&Utc))
        };
        Some((at(open_day, self.open)?, at(day, close)?))
    }
}

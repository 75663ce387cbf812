//! Quartz cron expressions as the operator reads them for periodic snapshots
//! (`kubernetes.operator.periodic.savepoint.interval`, `...checkpoint.interval`; the operator
//! parses them with log4j's copy of Quartz's `CronExpression`, FLINK-32904). Pure: the
//! caller passes the instant to look from.
//!
//! Fields: `second minute hour day-of-month month day-of-week [year]`, evaluated in UTC (the
//! operator's JVM zone in its image). The `cron` crate parses the plain parts (lists, ranges,
//! steps, names, `?`). This module bridges the rest of Quartz:
//!
//! * exactly one of day-of-month and day-of-week must be `?`, as Quartz requires ("Support
//!   for specifying both a day-of-week AND a day-of-month parameter is not implemented");
//!   the `cron` crate would read both and intersect them;
//! * `L` alone in day-of-week is Saturday (`7`), as in Quartz;
//! * `L`, `L-n`, `LW` and `nW` in day-of-month and `nL`, `n#k` in day-of-week, each alone in
//!   its field, are read as a day-of-month or day-of-week range the crate understands plus a
//!   rule on the date (last day, nearest weekday, last or k-th weekday of the month).
//!
//! Anything else is refused with a sentence saying what is allowed.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};

use super::quantity::{parse_duration, DURATION_ALLOWED};

/// Why an interval or cron expression cannot be read: one sentence saying what is wrong
/// and what is allowed (the first line of the cron crate's own message, when it has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchedule(pub String);

impl From<String> for InvalidSchedule {
    fn from(s: String) -> Self {
        // The cron crate's messages carry a second line with a caret: keep the first.
        InvalidSchedule(s.lines().next().unwrap_or("").trim_end().to_string())
    }
}

impl From<&str> for InvalidSchedule {
    fn from(s: &str) -> Self {
        InvalidSchedule::from(s.to_string())
    }
}

/// What a cron expression may look like, for error messages.
pub const CRON_ALLOWED: &str = "a Quartz cron expression of 6 or 7 fields (second minute hour day-of-month month day-of-week [year]) with `?` in exactly one of day-of-month and day-of-week, such as \"0 0 * * * ?\" or \"*/5 * * * * ?\"";

/// Days looked through for a date rule (`L`, `W`, `#`) before giving up: about eleven years.
const MAX_DAYS_SEARCHED: usize = 4_000;

/// A rule on the date that the `cron` crate cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayRule {
    /// `L` / `L-n`: the last day of the month, minus `n`.
    LastDay { offset: u32 },
    /// `LW`: the last weekday (Monday to Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest day `n`, within the same month.
    NearestWeekday { day: u32 },
    /// `nL` (day-of-week): the last such weekday of the month.
    LastOfWeekday,
    /// `n#k`: the k-th such weekday of the month.
    NthWeekday { k: u32 },
}

/// A parsed Quartz cron expression.
#[derive(Debug, Clone)]
pub struct QuartzCron {
    schedule: cron::Schedule,
    rule: Option<DayRule>,
    source: String,
}

impl PartialEq for QuartzCron {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

fn day_of_week_number(s: &str) -> Option<u32> {
    let names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    if let Ok(n) = s.parse::<u32>() {
        return (1..=7).contains(&n).then_some(n);
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

/// Day-of-month special forms: the range handed to the crate and the date rule.
fn day_of_month_rule(field: &str) -> Result<Option<(String, DayRule)>, InvalidSchedule> {
    if !field.contains(['L', 'W']) {
        return Ok(None);
    }
    let alone = "L, L-n, LW and nW stand alone in day-of-month (no lists, ranges or steps)";
    if field.contains([',', '/', '*']) {
        return Err(InvalidSchedule::from(alone.to_string()));
    }
    if field == "L" {
        return Ok(Some(("28-31".into(), DayRule::LastDay { offset: 0 })));
    }
    if field == "LW" {
        return Ok(Some(("26-31".into(), DayRule::LastWeekday)));
    }
    if let Some(n) = field.strip_prefix("L-") {
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| (1..=30).contains(n))
            .ok_or_else(|| format!("L-n needs n from 1 to 30, found {field:?}"))?;
        let low = 28u32.saturating_sub(n).max(1);
        return Ok(Some((
            format!("{low}-{}", 31 - n),
            DayRule::LastDay { offset: n },
        )));
    }
    if let Some(n) = field.strip_suffix('W') {
        let day: u32 = n
            .parse()
            .ok()
            .filter(|n| (1..=31).contains(n))
            .ok_or_else(|| format!("nW needs a day from 1 to 31, found {field:?}"))?;
        let low = day.saturating_sub(2).max(1);
        let high = (day + 2).min(31);
        return Ok(Some((
            format!("{low}-{high}"),
            DayRule::NearestWeekday { day },
        )));
    }
    Err(InvalidSchedule::from(alone.to_string()))
}

/// Day-of-week special forms: the field handed to the crate and the date rule.
fn day_of_week_rule(field: &str) -> Result<(String, Option<DayRule>), InvalidSchedule> {
    if field == "L" {
        // Quartz: L alone in day-of-week means the last day of the week, Saturday.
        return Ok(("7".into(), None));
    }
    if !field.contains(['L', '#']) {
        return Ok((field.to_string(), None));
    }
    let alone = "nL and n#k stand alone in day-of-week (no lists, ranges or steps)";
    if field.contains([',', '/', '*', '-']) {
        return Err(InvalidSchedule::from(alone.to_string()));
    }
    if let Some((day, k)) = field.split_once('#') {
        let n = day_of_week_number(day)
            .ok_or_else(|| format!("n#k needs a day of week 1-7 or SUN-SAT, found {day:?}"))?;
        let k: u32 = k
            .parse()
            .ok()
            .filter(|k| (1..=5).contains(k))
            .ok_or_else(|| format!("n#k needs k from 1 to 5, found {field:?}"))?;
        return Ok((n.to_string(), Some(DayRule::NthWeekday { k })));
    }
    if let Some(day) = field.strip_suffix('L') {
        let n = day_of_week_number(day)
            .ok_or_else(|| format!("nL needs a day of week 1-7 or SUN-SAT, found {day:?}"))?;
        return Ok((n.to_string(), Some(DayRule::LastOfWeekday)));
    }
    Err(InvalidSchedule::from(alone.to_string()))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

impl DayRule {
    fn matches(self, d: NaiveDate) -> bool {
        let last = days_in_month(d.year(), d.month());
        let day = d.day();
        let on = |n: u32| NaiveDate::from_ymd_opt(d.year(), d.month(), n);
        match self {
            DayRule::LastDay { offset } => last.checked_sub(offset) == Some(day),
            DayRule::LastWeekday => {
                let mut n = last;
                while on(n).is_some_and(is_weekend) && n > 1 {
                    n -= 1;
                }
                day == n
            }
            DayRule::NearestWeekday { day: want } => {
                let Some(target) = on(want) else {
                    return false;
                };
                let nearest = match target.weekday() {
                    Weekday::Sat if want == 1 => 3,
                    Weekday::Sat => want - 1,
                    Weekday::Sun if want == last => want - 2,
                    Weekday::Sun => want + 1,
                    _ => want,
                };
                day == nearest
            }
            DayRule::LastOfWeekday => day + 7 > last,
            DayRule::NthWeekday { k } => (day - 1) / 7 + 1 == k,
        }
    }
}

impl FromStr for QuartzCron {
    type Err = InvalidSchedule;

    /// # Errors
    /// A sentence saying what is wrong and what is allowed.
    fn from_str(expression: &str) -> Result<QuartzCron, InvalidSchedule> {
        let upper = expression.trim().to_ascii_uppercase();
        let mut fields: Vec<String> = upper.split_whitespace().map(str::to_string).collect();
        if !(6..=7).contains(&fields.len()) {
            return Err(InvalidSchedule::from(format!(
                "a Quartz cron expression has 6 or 7 fields, found {}",
                fields.len()
            )));
        }
        let (dom_any, dow_any) = (fields[3] == "?", fields[5] == "?");
        if dom_any == dow_any {
            return Err(InvalidSchedule::from(
                "Quartz needs `?` in exactly one of day-of-month and day-of-week (the operator refuses both set or both `?`)"
                    .to_string(),
            ));
        }
        let mut rule = None;
        if !dom_any {
            if let Some((range, r)) = day_of_month_rule(&fields[3])? {
                fields[3] = range;
                rule = Some(r);
            }
        } else {
            let (field, r) = day_of_week_rule(&fields[5])?;
            fields[5] = field;
            rule = r;
        }
        for (i, f) in fields.iter().enumerate() {
            if i != 3 && i != 5 && f.contains('?') {
                return Err(InvalidSchedule::from(
                    "`?` is allowed only in day-of-month and day-of-week".to_string(),
                ));
            }
            if f.contains(['L', 'W', '#'])
                && !f
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || ",-/".contains(c))
            {
                return Err(InvalidSchedule::from(format!("{f:?}: L, W and # are allowed only in day-of-month (L, L-n, LW, nW) and day-of-week (L, nL, n#k)")));
            }
        }
        let schedule = cron::Schedule::from_str(&fields.join(" "))
            .map_err(|e| InvalidSchedule::from(format!("not a cron expression: {e}")))?;
        Ok(QuartzCron {
            schedule,
            rule,
            source: expression.trim().to_string(),
        })
    }
}

impl QuartzCron {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first time the expression names strictly after `after_ms` (milliseconds since
    /// the epoch), in milliseconds; none when it names no later time (a year passed, or a
    /// date rule that no month meets).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let mut from: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms as i64).single()?;
        for _ in 0..MAX_DAYS_SEARCHED {
            let next = self.schedule.after(&from).next()?;
            match self.rule {
                Some(rule) if !rule.matches(next.date_naive()) => {
                    // Skip the rest of that day: the rule is about the date only.
                    let end_of_day = next
                        .date_naive()
                        .and_hms_opt(23, 59, 59)
                        .map(|t| Utc.from_utc_datetime(&t))?;
                    from = end_of_day;
                }
                _ => return u64::try_from(next.timestamp_millis()).ok(),
            }
        }
        None
    }

    /// Up to `n` times after `after_ms`, for showing a schedule.
    pub fn upcoming(&self, after_ms: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut t = after_ms;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

/// A periodic snapshot schedule as the operator reads its interval options: a Flink
/// duration or a Quartz cron expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Interval(Duration),
    Cron(Box<QuartzCron>),
}

impl Schedule {
    /// Reads an option value. `Ok(None)`: off (empty, or a zero duration, as the operator
    /// reads them).
    ///
    /// # Errors
    /// A sentence saying why the value is neither a duration nor a cron expression the
    /// operator accepts, and what is allowed.
    pub fn parse(value: &str) -> Result<Option<Schedule>, InvalidSchedule> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        if let Some(d) = parse_duration(v) {
            return Ok((!d.is_zero()).then_some(Schedule::Interval(d)));
        }
        if !v.contains(char::is_whitespace) {
            return Err(InvalidSchedule::from(format!(
                "not a duration; allowed: {DURATION_ALLOWED}, or {CRON_ALLOWED}"
            )));
        }
        v.parse::<QuartzCron>()
            .map(|c| Some(Schedule::Cron(Box::new(c))))
            .map_err(|why| {
                InvalidSchedule(format!(
                    "{why}; allowed: {DURATION_ALLOWED}, or {CRON_ALLOWED}"
                ))
            })
    }

    /// Whether a snapshot last triggered at `last_ms` is due again at `now_ms`.
    pub fn due(&self, last_ms: u64, now_ms: u64) -> bool {
        self.next_after(last_ms).is_some_and(|t| t < now_ms)
    }

    /// The time after `last_ms` at which the next snapshot is due.
    pub fn next_after(&self, last_ms: u64) -> Option<u64> {
        match self {
            Schedule::Interval(d) => last_ms.checked_add(d.as_millis() as u64),
            Schedule::Cron(c) => c.next_after(last_ms),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Interval(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Cron(c) => write!(f, "on cron \"{}\" (UTC)", c.source()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .timestamp_millis() as u64
    }

    fn at(ms: u64) -> String {
        Utc.timestamp_millis_opt(ms as i64)
            .single()
            .expect("time")
            .to_rfc3339()
    }

    /// Rows: (expression, after, the next time). Sources: Quartz's CronTrigger tutorial
    /// (quartz-scheduler.org, 2.3.0) for each special character.
    #[test]
    fn next_times_follow_quartz() {
        let rows: &[(&str, &str, &str)] = &[
            (
                "*/5 * * * * ?",
                "2026-03-02T10:00:01Z",
                "2026-03-02T10:00:05+00:00",
            ),
            (
                "0 0 * * * ?",
                "2026-03-02T10:00:00Z",
                "2026-03-02T11:00:00+00:00",
            ),
            (
                "0 15 10 ? * MON-FRI",
                "2026-03-07T00:00:00Z",
                "2026-03-09T10:15:00+00:00",
            ),
            (
                "0 0 12 1/5 * ?",
                "2026-03-02T00:00:00Z",
                "2026-03-06T12:00:00+00:00",
            ),
            (
                "0 0 12 ? * WED",
                "2026-03-02T00:00:00Z",
                "2026-03-04T12:00:00+00:00",
            ),
            // L in day-of-month: the last day (2028 is a leap year).
            (
                "0 15 10 L * ?",
                "2028-02-01T00:00:00Z",
                "2028-02-29T10:15:00+00:00",
            ),
            (
                "0 15 10 L-2 * ?",
                "2026-04-01T00:00:00Z",
                "2026-04-28T10:15:00+00:00",
            ),
            // LW: the last weekday; 2026-05-31 is a Sunday.
            (
                "0 0 8 LW * ?",
                "2026-05-01T00:00:00Z",
                "2026-05-29T08:00:00+00:00",
            ),
            // 15W: 2026-03-15 is a Sunday, so Monday the 16th.
            (
                "0 0 8 15W * ?",
                "2026-03-01T00:00:00Z",
                "2026-03-16T08:00:00+00:00",
            ),
            // 1W: 2026-08-01 is a Saturday; Quartz does not leave the month: Monday the 3rd.
            (
                "0 0 8 1W * ?",
                "2026-07-31T00:00:00Z",
                "2026-08-03T08:00:00+00:00",
            ),
            // 6L: the last Friday of the month.
            (
                "0 15 10 ? * 6L",
                "2026-03-01T00:00:00Z",
                "2026-03-27T10:15:00+00:00",
            ),
            // 6#3: the third Friday.
            (
                "0 15 10 ? * 6#3",
                "2026-03-01T00:00:00Z",
                "2026-03-20T10:15:00+00:00",
            ),
            // L alone in day-of-week: Saturday.
            (
                "0 0 0 ? * L",
                "2026-03-02T00:00:00Z",
                "2026-03-07T00:00:00+00:00",
            ),
            // The optional year field.
            (
                "0 0 0 1 1 ? 2030",
                "2026-03-02T00:00:00Z",
                "2030-01-01T00:00:00+00:00",
            ),
            (
                "0 0 0 1 jan ? 2030",
                "2026-03-02T00:00:00Z",
                "2030-01-01T00:00:00+00:00",
            ),
        ];
        for (expr, after, want) in rows {
            let c: QuartzCron = expr.parse().unwrap_or_else(|e| panic!("{expr}: {e}"));
            let got = c.next_after(ms(after)).map(at);
            assert_eq!(got.as_deref(), Some(*want), "{expr} after {after}");
        }
        let once: QuartzCron = "0 0 0 1 1 ? 2020".parse().expect("parses");
        assert_eq!(
            once.next_after(ms("2026-01-01T00:00:00Z")),
            None,
            "a past year"
        );
        let every5: QuartzCron = "*/5 * * * * ?".parse().expect("parses");
        assert_eq!(every5.upcoming(ms("2026-03-02T10:00:00Z"), 3).len(), 3);
    }

    /// Rows: (expression, words the refusal must contain).
    #[test]
    fn what_quartz_refuses_is_refused_with_a_reason() {
        let rows: &[(&str, &str)] = &[
            ("0 0 * * *", "6 or 7 fields"),
            ("0 0 * * * * * *", "6 or 7 fields"),
            // Quartz (QUARTZ-621): both day fields set, or both `?`.
            ("0 0 * * * *", "exactly one of day-of-month and day-of-week"),
            (
                "0 0 12 ? * ?",
                "exactly one of day-of-month and day-of-week",
            ),
            ("? 0 12 * * ?", "only in day-of-month and day-of-week"),
            ("0 0 12 L,15 * ?", "stand alone in day-of-month"),
            ("0 0 12 ? * 6#7", "k from 1 to 5"),
            ("0 0 12 ? * 2-6L", "stand alone in day-of-week"),
            ("0 0 12 L-40 * ?", "n from 1 to 30"),
            ("0 0 25 * * ?", "not a cron expression"),
            ("0 61 * * * ?", "not a cron expression"),
            ("every hour 0 0 * ?", "not a cron expression"),
        ];
        for (expr, words) in rows {
            match expr.parse::<QuartzCron>() {
                Ok(_) => panic!("{expr} should be refused"),
                Err(e) => assert!(e.0.contains(words), "{expr}: {e}"),
            }
        }
    }
}

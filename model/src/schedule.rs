//! Schedule triggers: cron patterns in an IANA time zone, and the fire times they give.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

/// The time zone a schedule uses when its trigger names none: our users are in China.
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// Why a schedule does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron {cron:?} has {fields} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)"
    )]
    Fields { cron: String, fields: usize },
    #[error("cron {cron:?}: {reason}")]
    Cron { cron: String, reason: String },
    #[error("unknown time zone {name:?}; use an IANA name such as \"Asia/Shanghai\"")]
    TimeZone { name: String },
}

impl ScheduleError {
    /// The trigger config field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::TimeZone { .. } => "timezone",
            _ => "cron",
        }
    }
}

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Parses a cron pattern (5 fields, or 6 with seconds first) and a time zone name.
    pub fn parse(cron: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let fields = cron.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(ScheduleError::Fields {
                cron: cron.to_owned(),
                fields,
            });
        }
        let parsed = Cron::from_str(cron).map_err(|e| ScheduleError::Cron {
            cron: cron.to_owned(),
            reason: e.to_string(),
        })?;
        let name = timezone.unwrap_or(DEFAULT_TIMEZONE);
        let tz = chrono_tz::Tz::from_str(name).map_err(|_| ScheduleError::TimeZone {
            name: name.to_owned(),
        })?;
        Ok(Schedule { cron: parsed, tz })
    }

    /// Fire times in `(after, until]`, oldest first, at most `limit` of them.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after.with_timezone(&self.tz);
        while out.len() < limit {
            match self.cron.find_next_occurrence(&cursor, false) {
                Ok(next) if next.with_timezone(&Utc) <= until => {
                    out.push(next.with_timezone(&Utc));
                    cursor = next;
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weekday_mornings_in_shanghai() {
        let s = Schedule::parse("0 9 * * 1-5", None).unwrap();
        // Friday 2026-11-27 00:30 UTC = 08:30 in Shanghai; 09:00 Shanghai = 01:00 UTC.
        let after = Utc.with_ymd_and_hms(2026, 11, 27, 0, 30, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap();
        let fires = s.fires_between(after, until, 10);
        assert_eq!(
            fires,
            vec![
                Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap(),
                // Saturday and Sunday skipped; Monday 09:00 Shanghai.
                Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap(),
            ]
        );
    }

    #[test]
    fn seconds_utc_and_errors() {
        let s = Schedule::parse("*/2 * * * * *", Some("UTC")).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            s.fires_between(t, t + chrono::Duration::seconds(5), 10)
                .len(),
            2
        );
        assert_eq!(
            s.fires_between(t, t + chrono::Duration::hours(1), 3).len(),
            3
        );
        assert!(Schedule::parse("61 * * * *", None).is_err());
        assert!(Schedule::parse("* * *", None).is_err());
        let e = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e.field(), "timezone");
        assert_eq!(Schedule::parse("* * *", None).unwrap_err().field(), "cron");
    }
}

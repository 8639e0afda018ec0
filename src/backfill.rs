//! How many runs unpausing a DAG would start: the catchup backfill that the new-DAG announcer
//! warns about and that `!dag enable` asks to confirm.
//!
//! The estimate is deliberately rough: Airflow creates one run per schedule interval between the
//! DAG's start date and now when `catchup` is on, so counting the schedule's occurrences over that
//! span is what a person needs to decide ("about 3,650 runs"). Pure: the Airflow client reads the
//! DAG's `catchup` and start date and asks here
//! ([`DagDetails::catchup_backfill`](crate::integrations::airflow::DagDetails::catchup_backfill)).

use crate::timefmt;

/// Counting cron occurrences stops here: "over 100,000 runs" is answer enough.
const MAX_COUNT: u64 = 100_000;

/// The runs enabling a DAG would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub runs: u64,
    /// The count reached [`MAX_COUNT`] and stopped.
    pub capped: bool,
    /// `2015-11-01`.
    pub since: String,
    pub schedule: String,
}

impl Backfill {
    /// `about 3,650 runs since 2015-11-01 (@daily)`.
    pub fn describe(&self) -> String {
        let n = thousands(self.runs);
        let what = if self.capped {
            format!("over {n} runs")
        } else if self.runs == 1 {
            "about 1 run".to_string()
        } else {
            format!("about {n} runs")
        };
        format!("{what} since {} ({})", self.since, self.schedule)
    }
}

/// The backfill of a DAG with `catchup` on, scheduled by `schedule` from `start` (ms) on, if it
/// were unpaused at `now`: `None` when the start is not in the past, the schedule cannot be
/// counted, or no interval has ended yet.
pub fn estimate(schedule: &str, start: i64, now: i64) -> Option<Backfill> {
    if start >= now {
        return None;
    }
    let (runs, capped) = count_runs(schedule, start, now)?;
    (runs > 0).then(|| Backfill {
        runs,
        capped,
        since: timefmt::rfc3339(start)[..10].to_string(),
        schedule: schedule.to_string(),
    })
}

/// Completed schedule intervals between `start` and `now` (ms): Airflow schedules a run once its
/// interval has ended, so an interval starting at `start` counts when it ends before `now`.
fn count_runs(schedule: &str, start: i64, now: i64) -> Option<(u64, bool)> {
    let span = now - start;
    let fixed = |period_ms: i64| Some(((span / period_ms).max(0) as u64, false));
    match schedule.trim() {
        "@hourly" => fixed(3_600_000),
        "@daily" | "@midnight" => fixed(86_400_000),
        "@weekly" => fixed(7 * 86_400_000),
        "@monthly" => Some((months_between(start, now, 1), false)),
        "@quarterly" => Some((months_between(start, now, 3), false)),
        "@yearly" | "@annually" => Some((months_between(start, now, 12), false)),
        "@once" => Some((1, false)),
        expr if expr.starts_with('@') => None,
        expr => count_cron(expr, start, now),
    }
}

fn months_between(start: i64, now: i64, step: i64) -> u64 {
    let ym = |ms: i64| {
        let s = timefmt::rfc3339(ms);
        let y: i64 = s[0..4].parse().unwrap_or(0);
        let m: i64 = s[5..7].parse().unwrap_or(1);
        y * 12 + m - 1
    };
    ((ym(now) - ym(start)).max(0) / step) as u64
}

/// Counts a cron expression's occurrences after `start`; the last one opens an interval that has
/// not ended yet, so it is not a run.
fn count_cron(expr: &str, start: i64, now: i64) -> Option<(u64, bool)> {
    use chrono::{DateTime, Utc};
    let cron = croner::Cron::new(expr).parse().ok()?;
    let from: DateTime<Utc> = DateTime::from_timestamp_millis(start)?;
    let until: DateTime<Utc> = DateTime::from_timestamp_millis(now)?;
    let mut n: u64 = 0;
    for t in cron.iter_from(from) {
        if t > until {
            break;
        }
        n += 1;
        if n >= MAX_COUNT {
            return Some((n, true));
        }
    }
    Some((n.saturating_sub(1), false))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The estimate for a DAG with `catchup` on, as the Airflow client computes it.
    fn estimate_for(schedule: &str, start: &str, now: i64) -> Option<Backfill> {
        estimate(
            schedule,
            timefmt::parse_rfc3339_ms(start).expect("timestamp"),
            now,
        )
    }

    #[test]
    fn backfill_counts_presets_and_cron() {
        let now = timefmt::parse_rfc3339_ms("2025-11-01T12:00:00Z").unwrap();
        let b = estimate_for("@daily", "2015-11-01T00:00:00+00:00", now).unwrap();
        assert_eq!(b.runs, 3653);
        assert_eq!(b.since, "2015-11-01");
        assert!(
            b.describe()
                .starts_with("about 3,653 runs since 2015-11-01")
        );
        let b = estimate_for("@monthly", "2025-01-01T00:00:00Z", now).unwrap();
        assert_eq!(b.runs, 10);
        let b = estimate_for("0 0 2 * *", "2025-01-01T00:00:00Z", now).unwrap();
        assert_eq!(
            b.runs, 9,
            "Jan 2 … Oct 2 intervals have ended; Nov 2 has not started"
        );
        let b = estimate_for("@hourly", "2000-01-01T00:00:00Z", now).unwrap();
        assert!(b.runs > 200_000);
        let b = estimate_for("*/1 * * * *", "2000-01-01T00:00:00Z", now).unwrap();
        assert!(b.capped && b.describe().starts_with("over 100,000 runs"));
        assert_eq!(estimate_for("@daily", "2030-01-01T00:00:00Z", now), None);
        assert_eq!(
            estimate_for("@every_full_moon", "2015-11-01T00:00:00Z", now),
            None
        );
    }
}

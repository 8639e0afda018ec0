//! `!dags new` (DAGs first seen recently that are still paused) and `!dag enable <id>`
//! (unpause through the API, with a confirmation step when enabling starts a catchup backfill).
//!
//! The backfill estimate is deliberately rough: Airflow creates one run per schedule interval
//! between the DAG's start date and now when `catchup` is on, so counting the schedule's
//! occurrences over that span is what a person needs to decide ("about 3,650 runs").

use std::collections::HashMap;

use crate::deploy::preflight::parse_rfc3339_ms;
use crate::engine::Ctx;
use crate::integrations::airflow::DagDetails;
use crate::reply::{Outcome, Reply};
use crate::store::{self, now_ms};
use crate::suggest;
use crate::timefmt;

/// `!dags new` looks back this many days unless told otherwise.
pub const DEFAULT_DAYS: u32 = 7;
/// At most this many DAGs get their details (catchup, start date) fetched per answer.
const DETAILS_FOR: usize = 20;
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

/// The catchup backfill enabling `dag` would start, if any: `catchup` on, a start date in the
/// past and a schedule that can be counted.
pub fn backfill_estimate(dag: &DagDetails, now: i64) -> Option<Backfill> {
    if dag.catchup != Some(true) {
        return None;
    }
    let schedule = dag.schedule.as_deref()?;
    let start = parse_rfc3339_ms(dag.start_date.as_deref()?)?;
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

/// `!dags new [--days N]`.
pub async fn new_dags(ctx: &Ctx, days: Option<u32>) -> store::Result<Reply> {
    let days = days.unwrap_or(DEFAULT_DAYS);
    let now = now_ms();
    let since = now - i64::from(days) * 86_400_000;
    let prefix = &ctx.config.chat.prefix;
    let seen = ctx.store.seen_dags_since(since).await?;
    let seeded_ms: Option<i64> = ctx
        .store
        .state("announcer.seeded")
        .await?
        .and_then(|v| v.parse().ok());
    if seeded_ms.is_none() && seen.is_empty() {
        return Ok(Reply::ok(
            "The DAG announcer has not polled Airflow yet, so no DAG is known as new. It runs in \
             the background of `run`/`console`, or once with `catalog-chatops watch --once`.",
        ));
    }
    // The live list says what is still paused now; when Airflow does not answer, the store's
    // last poll does, and the reply says so.
    let (live, note) = match ctx.integrations.airflow.list_dags().await {
        Ok(dags) => (
            Some(
                dags.into_iter()
                    .map(|d| (d.dag_id.clone(), d))
                    .collect::<HashMap<_, _>>(),
            ),
            String::new(),
        ),
        Err(e) => (
            None,
            format!(
                "\n(Airflow did not answer — {}; paused flags are from the last poll.)",
                ctx.redactor.redact(&e.to_string())
            ),
        ),
    };
    let paused: Vec<_> = seen
        .into_iter()
        .filter(|d| match &live {
            Some(l) => l.get(&d.dag_id).is_some_and(|x| x.is_paused),
            None => d.is_paused,
        })
        // The seeding poll records every DAG of an existing Airflow; those are not "new".
        .filter(|d| seeded_ms.is_none_or(|seeded| d.first_seen_ms > seeded))
        .collect();
    let window = if days == 1 {
        "the last day".to_string()
    } else {
        format!("the last {days} days")
    };
    if paused.is_empty() {
        return Ok(Reply::ok(format!(
            "No new paused DAGs: none first seen in {window} is still paused.{note}"
        )));
    }
    let mut lines = vec![format!(
        "{} new paused DAG{} (first seen in {window}):",
        paused.len(),
        if paused.len() == 1 { "" } else { "s" }
    )];
    for (i, d) in paused.iter().enumerate() {
        let schedule = live
            .as_ref()
            .and_then(|l| l.get(&d.dag_id))
            .and_then(|x| x.schedule.clone());
        let details = if i < DETAILS_FOR {
            ctx.integrations
                .airflow
                .dag_details(&d.dag_id)
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let schedule = schedule
            .or_else(|| details.as_ref().and_then(|x| x.schedule.clone()))
            .unwrap_or_else(|| "none (manual runs only)".to_string());
        let backfill = details.as_ref().and_then(|x| backfill_estimate(x, now));
        let (catchup, cmd) = match (&backfill, &details) {
            (Some(b), _) => (
                format!("⚠️ enabling starts a catchup backfill: {}", b.describe()),
                format!("{prefix}dag enable {} --confirm", d.dag_id),
            ),
            (None, Some(x)) if x.catchup == Some(true) => (
                "catchup on, nothing to backfill".to_string(),
                format!("{prefix}dag enable {}", d.dag_id),
            ),
            (None, Some(_)) => (
                "no catchup".to_string(),
                format!("{prefix}dag enable {}", d.dag_id),
            ),
            (None, None) => (
                "catchup unknown".to_string(),
                format!("{prefix}dag enable {}", d.dag_id),
            ),
        };
        lines.push(format!(
            "• `{}` · first seen {} · schedule {schedule} · {catchup} → `{cmd}`",
            d.dag_id,
            timefmt::ago(d.first_seen_ms, now)
        ));
    }
    Ok(Reply::ok(format!("{}{note}", lines.join("\n"))))
}

/// `!dag enable <dag_id> [--confirm]`.
pub async fn enable(ctx: &Ctx, dag_id: &str, confirm: bool) -> store::Result<Reply> {
    let airflow = &ctx.integrations.airflow;
    let prefix = &ctx.config.chat.prefix;
    let upstream = |e: crate::integrations::UpstreamError| {
        Reply::new(
            Outcome::Blocked,
            format!(
                "Cannot enable `{dag_id}`: {}. Nothing was changed.",
                ctx.redactor.redact(&e.to_string())
            ),
        )
    };
    let details = match airflow.dag_details(dag_id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            let known = match airflow.list_dags().await {
                Ok(dags) => dags.into_iter().map(|d| d.dag_id).collect::<Vec<_>>(),
                Err(_) => ctx.store.seen_dags().await?.into_keys().collect(),
            };
            let near: Vec<&str> = suggest::ranked(dag_id, known.iter().map(String::as_str))
                .into_iter()
                .take(3)
                .map(|s| s.candidate)
                .collect();
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!(
                    " Did you mean {}?",
                    near.iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Ok(Reply::new(
                Outcome::Invalid,
                format!("Airflow has no DAG `{dag_id}`.{hint} Nothing was changed."),
            ));
        }
        Err(e) => return Ok(upstream(e)),
    };
    if !details.is_paused {
        return Ok(Reply::ok(format!(
            "`{dag_id}` is already enabled (not paused); nothing was changed."
        )));
    }
    let backfill = backfill_estimate(&details, now_ms());
    if let Some(b) = &backfill
        && !confirm
    {
        return Ok(Reply::new(
            Outcome::Blocked,
            format!(
                "Enabling `{dag_id}` starts a catchup backfill: {}. If that is intended, run \
                 `{prefix}dag enable {dag_id} --confirm`. Nothing was changed.",
                b.describe()
            ),
        ));
    }
    match airflow.set_paused(dag_id, false).await {
        Ok(Some(d)) if !d.is_paused => {
            ctx.store.set_seen_paused(dag_id, false).await?;
            let tail = match &backfill {
                Some(b) => format!(" Airflow now starts the backfill: {}.", b.describe()),
                None => String::new(),
            };
            Ok(Reply::ok(format!(
                "Enabled `{dag_id}`: it is unpaused and will run on its schedule.{tail}"
            )))
        }
        Ok(Some(_)) => Ok(Reply::new(
            Outcome::Failed,
            format!("Airflow accepted the change but still reports `{dag_id}` as paused."),
        )),
        Ok(None) => Ok(Reply::new(
            Outcome::Failed,
            format!("`{dag_id}` disappeared from Airflow while enabling it; nothing was changed."),
        )),
        Err(e) => Ok(Reply::new(
            Outcome::Failed,
            format!(
                "Enabling `{dag_id}` failed: {}. Check `{prefix}dags new` to see whether it is \
                 still paused.",
                ctx.redactor.redact(&e.to_string())
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(schedule: &str, catchup: bool, start: &str) -> DagDetails {
        DagDetails {
            dag_id: "d".into(),
            is_paused: true,
            schedule: Some(schedule.into()),
            catchup: Some(catchup),
            start_date: Some(start.into()),
        }
    }

    #[test]
    fn backfill_counts_presets_and_cron() {
        let now = parse_rfc3339_ms("2025-11-01T12:00:00Z").unwrap();
        let b = backfill_estimate(&dag("@daily", true, "2015-11-01T00:00:00+00:00"), now).unwrap();
        assert_eq!(b.runs, 3653);
        assert_eq!(b.since, "2015-11-01");
        assert!(
            b.describe()
                .starts_with("about 3,653 runs since 2015-11-01")
        );
        let b = backfill_estimate(&dag("@monthly", true, "2025-01-01T00:00:00Z"), now).unwrap();
        assert_eq!(b.runs, 10);
        let b = backfill_estimate(&dag("0 0 2 * *", true, "2025-01-01T00:00:00Z"), now).unwrap();
        assert_eq!(
            b.runs, 9,
            "Jan 2 … Oct 2 intervals have ended; Nov 2 has not started"
        );
        let b = backfill_estimate(&dag("@hourly", true, "2000-01-01T00:00:00Z"), now).unwrap();
        assert!(b.runs > 200_000);
        let b = backfill_estimate(&dag("*/1 * * * *", true, "2000-01-01T00:00:00Z"), now).unwrap();
        assert!(b.capped && b.describe().starts_with("over 100,000 runs"));
        assert_eq!(
            backfill_estimate(&dag("@daily", false, "2015-11-01T00:00:00Z"), now),
            None
        );
        assert_eq!(
            backfill_estimate(&dag("@daily", true, "2030-01-01T00:00:00Z"), now),
            None
        );
    }
}

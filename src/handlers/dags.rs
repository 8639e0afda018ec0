//! `!dags new` (DAGs first seen recently that are still paused) and `!dag enable <id>`
//! (unpause through the API, with a confirmation step when enabling starts a catchup backfill,
//! estimated by [`crate::backfill`]).

use std::collections::HashMap;

use crate::backfill::Backfill;
use crate::context::Ctx;
use crate::integrations::airflow::DagDetails;
use crate::reply::{Outcome, Reply};
use crate::store::{self, now_ms};
use crate::suggest;
use crate::timefmt;

/// `!dags new` looks back this many days unless told otherwise.
pub const DEFAULT_DAYS: u32 = 7;
/// At most this many DAGs get their details (catchup, start date) fetched per answer.
const DETAILS_FOR: usize = 20;

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
        let backfill = details.as_ref().and_then(|x| x.catchup_backfill(now));
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
    let backfill = details.catchup_backfill(now_ms());
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
            Ok(Reply::ok(format!(
                "Enabled `{dag_id}`: it is unpaused; {}",
                what_happens_next(&details, backfill.as_ref(), now_ms())
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

/// What Airflow does once a DAG is unpaused, as a sentence: only the truth a maintainer needs.
pub fn what_happens_next(dag: &DagDetails, backfill: Option<&Backfill>, now: i64) -> String {
    let Some(schedule) = dag.schedule.as_deref() else {
        return "it has no schedule, so it runs only when triggered (from the Airflow UI, the \
                API, or another DAG)."
            .to_string();
    };
    if let Some(b) = backfill {
        return format!(
            "it runs on its schedule ({schedule}), and Airflow now starts the catchup backfill: {}.",
            b.describe()
        );
    }
    let started = dag
        .start_date
        .as_deref()
        .and_then(timefmt::parse_rfc3339_ms)
        .is_some_and(|s| s < now);
    if dag.catchup == Some(false) && started && schedule != "@once" {
        // Seen on real Airflow 2.9.3: unpausing a @monthly catchup=False DAG created the latest
        // interval's scheduled run at once.
        format!(
            "it runs on its schedule ({schedule}); without catchup Airflow starts the latest \
             interval's run right away, not the missed ones."
        )
    } else {
        format!("it runs on its schedule ({schedule}).")
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
    fn enabling_says_what_really_happens() {
        let now = timefmt::parse_rfc3339_ms("2025-11-01T12:00:00Z").unwrap();
        let mut d = dag("@daily", false, "2015-11-01T00:00:00Z");
        d.schedule = None;
        assert_eq!(
            what_happens_next(&d, None, now),
            "it has no schedule, so it runs only when triggered (from the Airflow UI, the API, \
             or another DAG)."
        );
        let d = dag("@monthly", false, "2024-01-01T00:00:00Z");
        assert_eq!(
            what_happens_next(&d, None, now),
            "it runs on its schedule (@monthly); without catchup Airflow starts the latest \
             interval's run right away, not the missed ones."
        );
        let d = dag("@daily", true, "2015-11-01T00:00:00Z");
        let b = d.catchup_backfill(now);
        assert!(what_happens_next(&d, b.as_ref(), now).starts_with(
            "it runs on its schedule (@daily), and Airflow now starts the catchup backfill: \
                 about 3,653 runs"
        ));
        let d = dag("@daily", false, "2030-01-01T00:00:00Z");
        assert_eq!(
            what_happens_next(&d, None, now),
            "it runs on its schedule (@daily)."
        );
    }
}

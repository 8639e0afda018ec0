//! The DAG-runs gate: which active runs block a deploy, which do not and why, and which DAGs the
//! deploy pauses for its apply (`pause_during_deploy`).
//!
//! A run blocks unless one of these holds:
//! - its DAG is in `ignore_dags`;
//! - it is **queued and its DAG is paused**: Airflow never starts a queued run of a paused DAG
//!   (a run carries no paused flag, so the gate asks for the paused DAGs once);
//! - it is **running, its DAG is in `pause_during_deploy`, and every task of it that has started
//!   and not finished is a waiting sensor**. Such a run is safe to freeze: pausing the DAG stops
//!   the scheduler from moving it on, and a sensor that waits holds no work.
//!
//! The task rule (written down once, here, and in the README):
//! - a task with no state (`null`), or one that finished (`success`, `failed`, `skipped`,
//!   `upstream_failed`, `removed`) does not count;
//! - a **sensor** — an operator class whose name ends in `Sensor` (or `SensorAsync`, the
//!   deferrable variants) — is *waiting* in `up_for_reschedule`, `deferred`, `scheduled`, `queued`
//!   and `running`. A reschedule-mode sensor cycles `scheduled → queued → running →
//!   up_for_reschedule` on every poke (seen on real Airflow 2.9.3 and 3.1.8), so accepting only
//!   `up_for_reschedule` would make the gate flicker on a poll that lands mid-poke;
//! - any other started task blocks: a non-sensor in `scheduled`, `queued`, `running`,
//!   `up_for_retry`, `restarting`, `deferred` or `up_for_reschedule`, a sensor in `up_for_retry`
//!   or `restarting` (it failed a poke), and any state this code does not know (fail closed).
//!
//! A queued run of an active DAG blocks: it starts as soon as the scheduler gets to it.
//! An answer that cannot be had (the runs, the paused DAGs, a run's tasks) makes the whole check
//! `unknown`, which blocks.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::preflight::{BlockingRun, Check, Status};
use crate::config::TargetConfig;
use crate::integrations::airflow::{AirflowClient, DagRun, PauseChange, TaskInstance};
use crate::timefmt::{self, parse_rfc3339_ms};

/// The check's name, as preflight shows it.
pub const CHECK_NAME: &str = "DAG runs";
/// Runs shown by name in each list of the check.
const SHOWN: usize = 10;

/// How one task counts for the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskClass {
    /// No state yet, or finished: does not count.
    Idle,
    /// A sensor between or inside its pokes.
    WaitingSensor,
    /// Started, not finished, and not a waiting sensor.
    Busy,
}

/// True for an operator class that is a sensor: `…Sensor`, or `…SensorAsync` (deferrable).
pub fn is_sensor_operator(name: &str) -> bool {
    name.ends_with("Sensor") || name.ends_with("SensorAsync")
}

/// The task rule of the module docs.
pub fn classify_task(t: &TaskInstance) -> TaskClass {
    let Some(state) = t.state.as_deref() else {
        return TaskClass::Idle;
    };
    if matches!(
        state,
        "success" | "failed" | "skipped" | "upstream_failed" | "removed"
    ) {
        return TaskClass::Idle;
    }
    let sensor = [t.operator.as_deref(), t.operator_name.as_deref()]
        .into_iter()
        .flatten()
        .any(is_sensor_operator);
    let waiting_state = matches!(
        state,
        "up_for_reschedule" | "deferred" | "scheduled" | "queued" | "running"
    );
    if sensor && waiting_state {
        TaskClass::WaitingSensor
    } else {
        TaskClass::Busy
    }
}

/// Where one active run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum Standing {
    /// Running, or queued for an active DAG, or a `pause_during_deploy` run doing real work.
    Blocks {
        /// Why, when there is more to say than the state (`task copy_data (BashOperator) is
        /// running`).
        reason: Option<String>,
    },
    /// Queued, and the DAG is paused: it never starts.
    NeverStarts,
    /// In `ignore_dags`.
    Ignored,
    /// A `pause_during_deploy` DAG's running run whose started tasks are all waiting sensors.
    WaitsOnSensor {
        /// `wait_for_idle (up_for_reschedule)`, one per waiting sensor.
        sensors: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JudgedRun {
    pub run: DagRun,
    pub standing: Standing,
}

/// A DAG the deploy pauses for its apply, and the run that made it so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseCandidate {
    pub dag_id: String,
    pub run_id: String,
    pub sensors: Vec<String>,
}

/// The gate's whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    pub check: Check,
    /// Runs that block (or that `--force` would override).
    pub blocking: Vec<BlockingRun>,
    /// DAGs to pause right before apply, one entry per DAG, sorted by id.
    pub to_pause: Vec<PauseCandidate>,
    pub runs: Vec<JudgedRun>,
}

/// What the gate learnt from Airflow besides the runs.
#[derive(Debug, Default)]
pub struct Facts {
    /// `None` when no queued run needed it.
    pub paused: Option<Result<HashSet<String>, String>>,
    /// Task instances of the running runs of `pause_during_deploy` DAGs, by (dag, run).
    pub tasks: HashMap<(String, String), Result<Vec<TaskInstance>, String>>,
}

/// Asks Airflow and judges every active run for `target`.
pub async fn evaluate(airflow: &AirflowClient, target: &TargetConfig) -> Gate {
    let runs = match airflow.active_runs().await {
        Ok(r) => r,
        Err(e) => return unknown(e.to_string()),
    };
    let counted = |r: &&DagRun| !target.ignore_dags.contains(&r.dag_id);
    let needs_paused = runs.iter().filter(counted).any(|r| r.state == "queued");
    let mut facts = Facts::default();
    if needs_paused {
        facts.paused = Some(airflow.paused_dag_ids().await.map_err(|e| e.to_string()));
    }
    let wanted: Vec<&DagRun> = runs
        .iter()
        .filter(counted)
        .filter(|r| r.state == "running" && target.pause_during_deploy.contains(&r.dag_id))
        .collect();
    // One request per running run of a pause_during_deploy DAG: a handful at most.
    for r in wanted {
        let answer = airflow.task_instances(&r.dag_id, &r.run_id).await;
        facts.tasks.insert(
            (r.dag_id.clone(), r.run_id.clone()),
            answer.map_err(|e| e.to_string()),
        );
    }
    judge(runs, &facts, target, crate::store::now_ms())
}

fn unknown(why: String) -> Gate {
    Gate {
        check: Check::new(CHECK_NAME, Status::Unknown, why),
        blocking: Vec::new(),
        to_pause: Vec::new(),
        runs: Vec::new(),
    }
}

/// Judges `runs` with what was learnt; pure, so recorded answers can be replayed in tests.
pub fn judge(runs: Vec<DagRun>, facts: &Facts, target: &TargetConfig, now: i64) -> Gate {
    // A question that could not be answered decides nothing: the check is unknown.
    if let Some(Err(e)) = &facts.paused {
        return unknown(format!("cannot tell which DAGs are paused: {e}"));
    }
    let paused = match &facts.paused {
        Some(Ok(p)) => Some(p),
        _ => None,
    };
    let mut judged = Vec::with_capacity(runs.len());
    for run in runs {
        let standing = if target.ignore_dags.contains(&run.dag_id) {
            Standing::Ignored
        } else if run.state == "queued" {
            match paused {
                Some(p) if p.contains(&run.dag_id) => Standing::NeverStarts,
                Some(_) => Standing::Blocks {
                    reason: Some("the DAG is active, so the run will start".to_string()),
                },
                // `evaluate` always asks when a run is queued; a caller that did not is told.
                None => {
                    return unknown(
                        "a queued run needs the paused DAGs, which were not asked".to_string(),
                    );
                }
            }
        } else if run.state == "running" && target.pause_during_deploy.contains(&run.dag_id) {
            let key = (run.dag_id.clone(), run.run_id.clone());
            match facts.tasks.get(&key) {
                None => {
                    return unknown(format!(
                        "the tasks of {} · {} were not asked",
                        run.dag_id, run.run_id
                    ));
                }
                Some(Err(e)) => {
                    return unknown(format!(
                        "cannot read the tasks of {} · {}: {e}",
                        run.dag_id, run.run_id
                    ));
                }
                Some(Ok(tasks)) => sensor_standing(tasks),
            }
        } else {
            Standing::Blocks { reason: None }
        };
        judged.push(JudgedRun { run, standing });
    }
    summarise(judged, target, now)
}

/// A `pause_during_deploy` run: waiting while every started task is a waiting sensor.
fn sensor_standing(tasks: &[TaskInstance]) -> Standing {
    let mut sensors = Vec::new();
    let mut busy = Vec::new();
    for t in tasks {
        let state = t.state.as_deref().unwrap_or("none");
        match classify_task(t) {
            TaskClass::Idle => {}
            TaskClass::WaitingSensor => sensors.push(format!("{} ({state})", t.label())),
            TaskClass::Busy => busy.push(format!(
                "task {} ({}) is {state}",
                t.label(),
                t.operator.as_deref().unwrap_or("unknown operator")
            )),
        }
    }
    // Task lists come back in no stable order.
    sensors.sort();
    busy.sort();
    if busy.is_empty() {
        Standing::WaitsOnSensor { sensors }
    } else {
        let more = if busy.len() > 3 {
            format!(" and {} more", busy.len() - 3)
        } else {
            String::new()
        };
        busy.truncate(3);
        Standing::Blocks {
            reason: Some(format!(
                "{}{more} — not only waiting sensors, so pausing it would not make the deploy safe",
                busy.join(", ")
            )),
        }
    }
}

fn since(r: &DagRun, now: i64) -> String {
    r.start_date
        .as_deref()
        .or(r.queued_at.as_deref())
        .and_then(parse_rfc3339_ms)
        .map(|ms| format!(", {} since {}", r.state, timefmt::ago(ms, now)))
        .unwrap_or_else(|| format!(", {}", r.state))
}

fn summarise(judged: Vec<JudgedRun>, target: &TargetConfig, now: i64) -> Gate {
    let ignored: BTreeSet<&str> = judged
        .iter()
        .filter(|j| j.standing == Standing::Ignored)
        .map(|j| j.run.dag_id.as_str())
        .collect();
    let ignored_count = judged
        .iter()
        .filter(|j| j.standing == Standing::Ignored)
        .count();
    let ignored_note = if ignored_count == 0 {
        String::new()
    } else {
        format!(
            " ({ignored_count} ignored: {})",
            ignored.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    let mut blocking_lines = Vec::new();
    let mut free_lines = Vec::new();
    let mut blocking = Vec::new();
    let mut to_pause: Vec<PauseCandidate> = Vec::new();
    for j in &judged {
        let r = &j.run;
        let head = format!("{} · {}{}", r.dag_id, r.run_id, since(r, now));
        match &j.standing {
            Standing::Ignored => {}
            Standing::Blocks { reason } => {
                blocking_lines.push(match reason {
                    Some(why) => format!("{head}: {why}"),
                    None => head,
                });
                blocking.push(BlockingRun {
                    since: r.start_date.clone().or(r.queued_at.clone()),
                    dag_id: r.dag_id.clone(),
                    run_id: r.run_id.clone(),
                    state: r.state.clone(),
                });
            }
            Standing::NeverStarts => free_lines.push(format!(
                "{head}: not blocking — the DAG is paused, so the run never starts"
            )),
            Standing::WaitsOnSensor { sensors } => {
                let what = if sensors.is_empty() {
                    "no task has started yet".to_string()
                } else {
                    format!("it waits on its sensor {}", sensors.join(", "))
                };
                free_lines.push(format!(
                    "{head}: not blocking — {what}; the DAG will be paused during the deploy \
                     (pause_during_deploy)"
                ));
                if !to_pause.iter().any(|p| p.dag_id == r.dag_id) {
                    to_pause.push(PauseCandidate {
                        dag_id: r.dag_id.clone(),
                        run_id: r.run_id.clone(),
                        sensors: sensors.clone(),
                    });
                }
            }
        }
    }
    to_pause.sort_by(|a, b| a.dag_id.cmp(&b.dag_id));
    let free = free_lines.len();
    let (status, summary) = if blocking.is_empty() {
        let summary = if free == 0 {
            format!("no active DAG runs{ignored_note}")
        } else {
            format!("no blocking DAG runs; {free} active run(s) do not block{ignored_note}")
        };
        (Status::Pass, summary)
    } else if !target.block_on_running_dags {
        (
            Status::Pass,
            format!(
                "{} active DAG run(s), not blocking (block_on_running_dags = false){ignored_note}",
                blocking.len()
            ),
        )
    } else {
        (
            Status::Fail,
            format!(
                "{} active DAG run(s) block the deploy{ignored_note}",
                blocking.len()
            ),
        )
    };
    let mut check = Check::new(CHECK_NAME, status, summary);
    if status == Status::Fail {
        push_capped(&mut check.details, blocking_lines);
    }
    push_capped(&mut check.details, free_lines);
    Gate {
        check,
        // Only runs that block are named for `--force` and the audit.
        blocking: if status == Status::Fail {
            blocking
        } else {
            Vec::new()
        },
        to_pause,
        runs: judged,
    }
}

fn push_capped(out: &mut Vec<String>, lines: Vec<String>) {
    let n = lines.len();
    out.extend(lines.into_iter().take(SHOWN));
    if n > SHOWN {
        out.push(format!("… and {} more", n - SHOWN));
    }
}

/// What pausing or unpausing one DAG for a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseReport {
    pub dag_id: String,
    pub change: PauseChange,
}

impl PauseReport {
    /// True when the DAG now has the asked flag, whoever set it.
    pub fn holds(&self) -> bool {
        matches!(self.change, PauseChange::Changed | PauseChange::Unchanged)
    }

    /// One sentence for the card and the audit log: `paused image_data_refresh`,
    /// `image_data_refresh was already paused (left paused afterwards)`, ….
    pub fn describe(&self, pausing: bool) -> String {
        let verb = if pausing { "paused" } else { "unpaused" };
        let id = &self.dag_id;
        match &self.change {
            PauseChange::Changed => format!("{verb} `{id}`"),
            PauseChange::Unchanged if pausing => {
                format!("`{id}` was already paused; the deploy will not unpause it")
            }
            PauseChange::Unchanged => format!("`{id}` was already unpaused"),
            PauseChange::NotFound => format!("`{id}` could not be {verb}: Airflow has no such DAG"),
            PauseChange::Ignored => format!(
                "`{id}` could not be {verb}: Airflow accepted the request but reports the old flag"
            ),
            PauseChange::Refused { error } | PauseChange::Failed { error } => {
                format!("`{id}` could not be {verb}: {error}")
            }
        }
    }
}

/// Pauses each DAG, in order, and reports each outcome. A DAG that was already paused is left as
/// it was and reported [`PauseChange::Unchanged`]: [`unpause_after_deploy`] must get only the
/// DAGs this call changed ([`paused_by_us`]), so a DAG someone paused on purpose stays paused.
pub async fn pause_for_deploy(airflow: &AirflowClient, dag_ids: &[String]) -> Vec<PauseReport> {
    let mut out = Vec::with_capacity(dag_ids.len());
    for id in dag_ids {
        out.push(PauseReport {
            dag_id: id.clone(),
            change: airflow.set_paused_reporting(id, true).await,
        });
    }
    out
}

/// The DAGs a [`pause_for_deploy`] call actually paused: the ones to unpause afterwards.
pub fn paused_by_us(reports: &[PauseReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| r.change == PauseChange::Changed)
        .map(|r| r.dag_id.clone())
        .collect()
}

/// Unpauses each DAG the deploy paused and reports each outcome. Safe to call again (after a
/// crash, by the recovering process): a DAG already unpaused is reported unchanged.
pub async fn unpause_after_deploy(airflow: &AirflowClient, dag_ids: &[String]) -> Vec<PauseReport> {
    let mut out = Vec::with_capacity(dag_ids.len());
    for id in dag_ids {
        out.push(PauseReport {
            dag_id: id.clone(),
            change: airflow.set_paused_reporting(id, false).await,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Task instances as the real Airflow sent them (tests/fixtures/airflow, recorded from
    /// Airflow 2.9.3 `/api/v1` and 3.1.8 `/api/v2`).
    fn recorded(name: &str) -> Vec<TaskInstance> {
        let path = format!(
            "{}/tests/fixtures/airflow/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        crate::integrations::airflow::parse_task_instances(&text)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn target(pause: &[&str], ignore: &[&str]) -> TargetConfig {
        let toml = format!(
            "[targets.catalog]\nrepo = \"WordPress/openverse-catalog\"\nimage = \
             \"wordpress/openverse-catalog\"\nworkdir = \"/srv\"\nbump = [\"true\"]\nplan = \
             [\"true\"]\napply = [\"true\"]\npause_during_deploy = {pause:?}\nignore_dags = \
             {ignore:?}\n"
        );
        let config = crate::config::load_from_str(&toml, &[]).expect("valid config");
        config.targets["catalog"].clone()
    }

    /// An hour after the recorded runs started.
    const NOW: i64 = 1_796_102_205_000;

    fn run(dag: &str, state: &str) -> DagRun {
        DagRun {
            dag_id: dag.into(),
            run_id: format!("manual__{dag}"),
            state: state.into(),
            logical_date: None,
            queued_at: None,
            start_date: Some("2026-12-01T04:16:45+00:00".into()),
            end_date: None,
            run_type: Some("manual".into()),
        }
    }

    fn tasks_of(dag: &str, tasks: Vec<TaskInstance>) -> Facts {
        let mut f = Facts::default();
        f.tasks
            .insert((dag.into(), format!("manual__{dag}")), Ok(tasks));
        f
    }

    #[test]
    fn a_waiting_sensor_in_every_recorded_state_is_waiting_on_both_versions() {
        for name in [
            "af2-ti-sensor-up_for_reschedule",
            "af2-ti-sensor-queued",
            "af2-ti-sensor-running",
            "af3-ti-sensor-up_for_reschedule",
            "af3-ti-sensor-running",
        ] {
            let tasks = recorded(name);
            let sensor = tasks
                .iter()
                .find(|t| t.task_id == "wait_for_idle")
                .expect("the sensor");
            assert_eq!(classify_task(sensor), TaskClass::WaitingSensor, "{name}");
            let copy = tasks
                .iter()
                .find(|t| t.task_id == "copy_data")
                .expect("copy");
            assert_eq!(copy.state, None, "{name}");
            assert_eq!(classify_task(copy), TaskClass::Idle, "{name}");
            let gate = judge(
                vec![run("refresh_dag", "running")],
                &tasks_of("refresh_dag", tasks),
                &target(&["refresh_dag"], &[]),
                NOW,
            );
            assert_eq!(gate.check.status, Status::Pass, "{name}: {:?}", gate.check);
            assert_eq!(gate.to_pause.len(), 1, "{name}");
            assert_eq!(gate.to_pause[0].dag_id, "refresh_dag");
            let text = gate.check.details.join("\n");
            assert!(
                text.contains("it waits on its sensor wait_for_idle (")
                    && text.contains("the DAG will be paused during the deploy"),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn a_running_copy_blocks_on_both_versions() {
        for name in ["af2-ti-refresh-copy-running", "af3-ti-refresh-copy-running"] {
            let gate = judge(
                vec![run("refresh_dag", "running")],
                &tasks_of("refresh_dag", recorded(name)),
                &target(&["refresh_dag"], &[]),
                NOW,
            );
            assert_eq!(gate.check.status, Status::Fail, "{name}");
            assert!(gate.to_pause.is_empty());
            assert_eq!(gate.blocking.len(), 1);
            let text = gate.check.details.join("\n");
            assert!(
                text.contains(
                    "task copy_data (BashOperator) is running — not only waiting sensors"
                ),
                "{name}: {text}"
            );
        }
        // A busy run of a DAG not in pause_during_deploy blocks without looking at tasks.
        let gate = judge(
            vec![run("busy_dag", "running")],
            &Facts::default(),
            &target(&["refresh_dag"], &[]),
            NOW,
        );
        assert_eq!(gate.check.status, Status::Fail);
    }

    #[test]
    fn finished_tasks_do_not_count_and_a_failed_sensor_run_is_not_waiting() {
        // The Airflow 3.1.8 race (apache/airflow#71172): sensor failed, copy upstream_failed,
        // the run about to fail — nothing started and unfinished, so nothing to protect.
        let tasks = recorded("af3-ti-sensor-race-failed");
        assert!(tasks.iter().all(|t| classify_task(t) == TaskClass::Idle));
    }

    #[test]
    fn the_task_rule_state_by_state() {
        let t = |op: &str, state: Option<&str>| TaskInstance {
            task_id: "t".into(),
            map_index: -1,
            state: state.map(str::to_string),
            operator: Some(op.into()),
            operator_name: None,
            start_date: None,
        };
        for s in [
            "up_for_reschedule",
            "deferred",
            "scheduled",
            "queued",
            "running",
        ] {
            assert_eq!(
                classify_task(&t("HttpSensor", Some(s))),
                TaskClass::WaitingSensor
            );
            assert_eq!(
                classify_task(&t("TimeDeltaSensorAsync", Some(s))),
                TaskClass::WaitingSensor
            );
        }
        for s in ["up_for_retry", "restarting", "sensing", "shutdown"] {
            assert_eq!(
                classify_task(&t("HttpSensor", Some(s))),
                TaskClass::Busy,
                "{s}"
            );
        }
        for s in [
            "scheduled",
            "queued",
            "running",
            "up_for_retry",
            "restarting",
            "deferred",
            "up_for_reschedule",
        ] {
            assert_eq!(
                classify_task(&t("PythonOperator", Some(s))),
                TaskClass::Busy,
                "{s}"
            );
        }
        for s in ["success", "failed", "skipped", "upstream_failed", "removed"] {
            assert_eq!(
                classify_task(&t("PythonOperator", Some(s))),
                TaskClass::Idle,
                "{s}"
            );
        }
        assert_eq!(classify_task(&t("BashOperator", None)), TaskClass::Idle);
        // A name that merely contains "Sensor" is not a sensor.
        assert_eq!(
            classify_task(&t("SensorCleanupOperator", Some("running"))),
            TaskClass::Busy
        );
    }

    #[test]
    fn queued_runs_block_only_when_their_dag_is_active() {
        let mut facts = Facts {
            paused: Some(Ok(["daily_dag".to_string()].into_iter().collect())),
            ..Facts::default()
        };
        let runs = vec![run("daily_dag", "queued"), run("busy_dag", "queued")];
        let gate = judge(runs.clone(), &facts, &target(&[], &[]), NOW);
        assert_eq!(gate.check.status, Status::Fail);
        assert_eq!(gate.check.summary, "1 active DAG run(s) block the deploy");
        assert_eq!(
            gate.check.details,
            [
                "busy_dag · manual__busy_dag, queued since 1 h ago: the DAG is active, so the \
                 run will start",
                "daily_dag · manual__daily_dag, queued since 1 h ago: not blocking — the DAG is \
                 paused, so the run never starts",
            ]
        );
        assert_eq!(gate.blocking.len(), 1);
        assert_eq!(gate.blocking[0].dag_id, "busy_dag");

        // Only the paused DAG's queued run: passes and says why.
        let gate = judge(
            vec![run("daily_dag", "queued")],
            &facts,
            &target(&[], &[]),
            NOW,
        );
        assert_eq!(gate.check.status, Status::Pass, "{:?}", gate.check);
        assert_eq!(
            gate.check.summary,
            "no blocking DAG runs; 1 active run(s) do not block"
        );

        // Not knowing which DAGs are paused blocks (fail closed).
        facts.paused = Some(Err("Airflow: answered 503 3 times".into()));
        let gate = judge(runs, &facts, &target(&[], &[]), NOW);
        assert_eq!(gate.check.status, Status::Unknown);
        assert!(
            gate.check
                .summary
                .contains("cannot tell which DAGs are paused")
        );
    }

    #[test]
    fn unreadable_tasks_and_ignored_dags() {
        let mut facts = Facts::default();
        facts.tasks.insert(
            ("refresh_dag".into(), "manual__refresh_dag".into()),
            Err("Airflow: timed out".into()),
        );
        let gate = judge(
            vec![run("refresh_dag", "running")],
            &facts,
            &target(&["refresh_dag"], &[]),
            NOW,
        );
        assert_eq!(gate.check.status, Status::Unknown);
        assert!(
            gate.check
                .summary
                .contains("cannot read the tasks of refresh_dag")
        );

        let gate = judge(
            vec![run("image_data_refresh", "running")],
            &Facts::default(),
            &target(&[], &["image_data_refresh"]),
            NOW,
        );
        assert_eq!(gate.check.status, Status::Pass);
        assert_eq!(
            gate.check.summary,
            "no active DAG runs (1 ignored: image_data_refresh)"
        );
    }

    #[test]
    fn a_run_with_no_task_started_can_be_paused() {
        let tasks = recorded("af2-ti-sensor-up_for_reschedule")
            .into_iter()
            .map(|mut t| {
                t.state = None;
                t
            })
            .collect();
        let gate = judge(
            vec![run("refresh_dag", "running")],
            &tasks_of("refresh_dag", tasks),
            &target(&["refresh_dag"], &[]),
            NOW,
        );
        assert_eq!(gate.check.status, Status::Pass);
        assert!(gate.check.details[0].contains("no task has started yet"));
        assert_eq!(gate.to_pause.len(), 1);
    }

    #[test]
    fn pause_reports_say_what_happened() {
        let r = |change| PauseReport {
            dag_id: "image_data_refresh".into(),
            change,
        };
        assert_eq!(
            r(PauseChange::Changed).describe(true),
            "paused `image_data_refresh`"
        );
        assert_eq!(
            r(PauseChange::Unchanged).describe(true),
            "`image_data_refresh` was already paused; the deploy will not unpause it"
        );
        assert_eq!(
            r(PauseChange::Failed {
                error: "Airflow: timed out after 10s".into()
            })
            .describe(false),
            "`image_data_refresh` could not be unpaused: Airflow: timed out after 10s"
        );
        let reports = vec![
            r(PauseChange::Changed),
            PauseReport {
                dag_id: "audio_data_refresh".into(),
                change: PauseChange::Unchanged,
            },
        ];
        assert_eq!(paused_by_us(&reports), ["image_data_refresh"]);
    }
}

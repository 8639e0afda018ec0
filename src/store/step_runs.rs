//! Detached step runs (issue 16): which deploy step runs under which supervisor, where its files
//! are, how far its output was posted, and how the workflow took its end. The process that
//! re-attaches after a crash finds the run here; the files say what the step did meanwhile.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, now_ms};
use crate::deploy::step::Step;

/// One started run of a deploy step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRun {
    pub id: i64,
    pub deploy_id: i64,
    pub step: String,
    /// The host whose filesystem holds `dir` (only a process there can follow the run).
    pub host: String,
    pub dir: String,
    pub supervisor_pid: Option<i64>,
    /// Clock ticks since boot when the supervisor started: with the pid, its identity.
    pub supervisor_start: Option<i64>,
    /// Bytes of output already posted to the deploy's conversation.
    pub output_offset: i64,
    pub started_ms: i64,
    /// `succeeded`, `failed` or `lost` once the workflow took the run's end.
    pub outcome: Option<String>,
    pub exit_code: Option<i64>,
    pub finished_ms: Option<i64>,
}

const COLUMNS: &str = "id, deploy_id, step, host, dir, supervisor_pid, supervisor_start, \
                       output_offset, started_ms, outcome, exit_code, finished_ms";

fn from_row(r: &AnyRow) -> Result<StepRun> {
    Ok(StepRun {
        id: r.try_get("id")?,
        deploy_id: r.try_get("deploy_id")?,
        step: r.try_get("step")?,
        host: r.try_get("host")?,
        dir: r.try_get("dir")?,
        supervisor_pid: r.try_get("supervisor_pid")?,
        supervisor_start: r.try_get("supervisor_start")?,
        output_offset: r.try_get("output_offset")?,
        started_ms: r.try_get("started_ms")?,
        outcome: r.try_get("outcome")?,
        exit_code: r.try_get("exit_code")?,
        finished_ms: r.try_get("finished_ms")?,
    })
}

impl Store {
    /// Records a run about to start (before its supervisor exists, so a crash in between leaves
    /// a row that says a step may have started); returns its id.
    pub async fn start_step_run(
        &self,
        deploy_id: i64,
        step: Step,
        host: &str,
        dir: &str,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO step_runs (deploy_id, step, host, dir, started_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(deploy_id)
        .bind(step.as_str())
        .bind(host)
        .bind(dir)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Records who supervises run `id`.
    pub async fn set_step_supervisor(&self, id: i64, pid: i64, start: i64) -> Result<()> {
        sqlx::query(
            "UPDATE step_runs SET supervisor_pid = $1, supervisor_start = $2 WHERE id = $3",
        )
        .bind(pid)
        .bind(start)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest run of `step` of deploy `deploy_id`, ended or not.
    pub async fn latest_step_run(&self, deploy_id: i64, step: Step) -> Result<Option<StepRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM step_runs WHERE deploy_id = $1 AND step = $2 \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(deploy_id)
        .bind(step.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every run of deploy `deploy_id`, oldest first.
    pub async fn step_runs(&self, deploy_id: i64) -> Result<Vec<StepRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM step_runs WHERE deploy_id = $1 ORDER BY id"
        )))
        .bind(deploy_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records how far run `id`'s output has been posted.
    pub async fn step_run_posted(&self, id: i64, offset: i64) -> Result<()> {
        sqlx::query("UPDATE step_runs SET output_offset = $1 WHERE id = $2 AND output_offset < $1")
            .bind(offset)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the workflow took run `id`'s end (`succeeded`, `failed` or `lost`).
    pub async fn finish_step_run(
        &self,
        id: i64,
        outcome: &str,
        exit_code: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE step_runs SET outcome = $1, exit_code = $2, finished_ms = $3 \
             WHERE id = $4 AND finished_ms IS NULL",
        )
        .bind(outcome)
        .bind(exit_code)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

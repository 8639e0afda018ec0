//! What a deploy remembers about DAGs across processes (migration 0010): the
//! `pause_during_deploy` DAGs it paused for its apply, so whichever process ends it (or finds it
//! interrupted after a crash) unpauses exactly those; and the `--when-idle` wait, so the deploy
//! survives the restart of the process that would start it.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::deploys::{Deploy, NewDeploy, Start};
use super::{Lock, NewAuditEvent, Result, Store, StoreError, now_ms};
use crate::deploy::state::DeployState;

/// One DAG a deploy paused (or asked Airflow to pause) for its apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PausedDag {
    pub deploy_id: i64,
    pub dag_id: String,
    pub run_id: Option<String>,
    pub asked_ms: i64,
    /// `None` while Airflow's answer is not recorded (asked, then the process died, or the
    /// request failed): such a DAG is unpaused at the end all the same.
    pub paused_ms: Option<i64>,
    pub unpaused_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// A deploy waiting for DAG runs (`--when-idle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wait {
    pub deploy_id: i64,
    pub deadline_ms: i64,
    /// What the last check found, for the card: `flickr_workflow run …, running for 2 h`.
    pub waiting_for: String,
    pub checked_ms: i64,
    /// The requester's roles and source when they asked; the starting process acts with these.
    pub roles: Vec<String>,
    pub source: String,
}

/// What a waiting deploy starts with besides the deploy itself.
#[derive(Debug, Clone)]
pub struct NewWait<'a> {
    pub deadline_ms: i64,
    pub waiting_for: &'a str,
    pub roles: &'a [String],
    pub source: &'a str,
}

fn paused_from_row(r: &AnyRow) -> Result<PausedDag> {
    Ok(PausedDag {
        deploy_id: r.try_get("deploy_id")?,
        dag_id: r.try_get("dag_id")?,
        run_id: r.try_get("run_id")?,
        asked_ms: r.try_get("asked_ms")?,
        paused_ms: r.try_get("paused_ms")?,
        unpaused_ms: r.try_get("unpaused_ms")?,
        last_error: r.try_get("last_error")?,
    })
}

fn wait_from_row(r: &AnyRow) -> Result<Wait> {
    let roles: String = r.try_get("roles")?;
    Ok(Wait {
        deploy_id: r.try_get("deploy_id")?,
        deadline_ms: r.try_get("deadline_ms")?,
        waiting_for: r.try_get("waiting_for")?,
        checked_ms: r.try_get("checked_ms")?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        source: r.try_get("source")?,
    })
}

impl Store {
    /// Records that deploy `deploy_id` is about to ask Airflow to pause `dag_id` (before the
    /// request, so a crash in between still leaves it on record to unpause).
    pub async fn record_pause_asked(
        &self,
        deploy_id: i64,
        dag_id: &str,
        run_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO deploy_paused_dags (deploy_id, dag_id, run_id, asked_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (deploy_id, dag_id) DO NOTHING",
        )
        .bind(deploy_id)
        .bind(dag_id)
        .bind(run_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records Airflow's answer to the pause: `Some(true)` paused by this deploy, `Some(false)`
    /// not paused by it — already paused (the deploy must not unpause a DAG someone paused on
    /// purpose), refused or unknown to Airflow — so the row goes; `None` unknown (the row stays,
    /// so the end unpauses it to be safe).
    pub async fn record_pause_answer(
        &self,
        deploy_id: i64,
        dag_id: &str,
        paused_by_us: Option<bool>,
    ) -> Result<()> {
        match paused_by_us {
            Some(true) => {
                sqlx::query(
                    "UPDATE deploy_paused_dags SET paused_ms = $1 \
                     WHERE deploy_id = $2 AND dag_id = $3",
                )
                .bind(now_ms())
                .bind(deploy_id)
                .bind(dag_id)
                .execute(&self.pool)
                .await?;
            }
            Some(false) => {
                sqlx::query("DELETE FROM deploy_paused_dags WHERE deploy_id = $1 AND dag_id = $2")
                    .bind(deploy_id)
                    .bind(dag_id)
                    .execute(&self.pool)
                    .await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Every DAG deploy `deploy_id` paused or asked to pause, by id.
    pub async fn paused_dags(&self, deploy_id: i64) -> Result<Vec<PausedDag>> {
        let rows = sqlx::query(
            "SELECT deploy_id, dag_id, run_id, asked_ms, paused_ms, unpaused_ms, last_error \
             FROM deploy_paused_dags WHERE deploy_id = $1 ORDER BY dag_id",
        )
        .bind(deploy_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(paused_from_row).collect()
    }

    /// Records an unpause attempt: `None` when Airflow confirmed the DAG unpaused, else why not
    /// (the row stays pending and a later attempt tries again).
    pub async fn record_unpause(
        &self,
        deploy_id: i64,
        dag_id: &str,
        error: Option<&str>,
    ) -> Result<()> {
        let q = match error {
            None => sqlx::query(
                "UPDATE deploy_paused_dags SET unpaused_ms = $1, last_error = NULL \
                 WHERE deploy_id = $2 AND dag_id = $3",
            )
            .bind(now_ms()),
            Some(e) => sqlx::query(
                "UPDATE deploy_paused_dags SET last_error = $1 \
                 WHERE deploy_id = $2 AND dag_id = $3",
            )
            .bind(e.to_string()),
        };
        q.bind(deploy_id).bind(dag_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Deploys that have ended (or were interrupted) with DAGs still to unpause: what a process
    /// that recovers deploys settles.
    pub async fn deploys_with_dags_to_unpause(&self) -> Result<Vec<i64>> {
        let resting = DeployState::ALL
            .into_iter()
            .filter(|s| s.is_final() || *s == DeployState::Interrupted)
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        // The state names come from the enum, never from input, so formatting them is safe.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT p.deploy_id AS deploy_id FROM deploy_paused_dags p \
             JOIN deploys d ON d.id = p.deploy_id \
             WHERE p.unpaused_ms IS NULL AND d.state IN ({resting}) ORDER BY p.deploy_id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>("deploy_id").map_err(StoreError::from))
            .collect()
    }

    /// Creates a deploy that waits for DAG runs holding its target's lock
    /// ([`DeployState::WaitingForDags`], no owner), with its wait and `event` (its `deploy_id`
    /// filled in), atomically: all of them exist afterwards, or none does and the lock's holder
    /// is returned.
    pub async fn create_waiting_deploy(
        &self,
        d: &NewDeploy<'_>,
        lock_key: &str,
        wait: &NewWait<'_>,
        event: &NewAuditEvent,
    ) -> Result<std::result::Result<Deploy, Lock>> {
        self.create_deploy_with_lock(d, lock_key, Start::Waiting(wait), event)
            .await
    }

    /// The wait of deploy `id`, if it was ever asked to wait.
    pub async fn wait_of(&self, id: i64) -> Result<Option<Wait>> {
        let row = sqlx::query(
            "SELECT deploy_id, deadline_ms, waiting_for, checked_ms, roles, source \
             FROM deploy_waits WHERE deploy_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| wait_from_row(&r)).transpose()
    }

    /// The deploys waiting for DAG runs now, oldest first, with their waits.
    pub async fn waiting_deploys(&self) -> Result<Vec<(Deploy, Wait)>> {
        let rows = sqlx::query(
            "SELECT d.id AS id FROM deploys d JOIN deploy_waits w ON w.deploy_id = d.id \
             WHERE d.state = $1 ORDER BY d.id",
        )
        .bind(DeployState::WaitingForDags.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("id")?;
            if let (Some(d), Some(w)) = (self.get_deploy(id).await?, self.wait_of(id).await?) {
                out.push((d, w));
            }
        }
        Ok(out)
    }

    /// Records what the latest check of a waiting deploy found.
    pub async fn update_wait(&self, id: i64, waiting_for: &str) -> Result<()> {
        sqlx::query(
            "UPDATE deploy_waits SET waiting_for = $1, checked_ms = $2 WHERE deploy_id = $3",
        )
        .bind(waiting_for)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Inserts deploy `id`'s wait inside the transaction that creates the deploy.
pub(super) async fn insert_wait(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    wait: &NewWait<'_>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deploy_waits (deploy_id, deadline_ms, waiting_for, checked_ms, roles, \
         source) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(wait.deadline_ms)
    .bind(wait.waiting_for)
    .bind(now)
    .bind(serde_json::to_string(wait.roles).unwrap_or_else(|_| "[]".into()))
    .bind(wait.source)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

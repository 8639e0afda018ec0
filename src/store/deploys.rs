//! Deploys and their step journal. The workflow writes each transition here before it is
//! announced, so `!deploy status` and `!deploy history` always tell the stored truth.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, now_ms};

/// Where a deploy is in the workflow (ARCHITECTURE.md, "The deploy workflow").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    Requested,
    Preflight,
    Locked,
    Bump,
    Plan,
    AwaitingApproval,
    Approved,
    Apply,
    Verify,
    Succeeded,
    Failed,
    Cancelled,
    Interrupted,
}

impl DeployState {
    pub const ALL: [DeployState; 13] = [
        DeployState::Requested,
        DeployState::Preflight,
        DeployState::Locked,
        DeployState::Bump,
        DeployState::Plan,
        DeployState::AwaitingApproval,
        DeployState::Approved,
        DeployState::Apply,
        DeployState::Verify,
        DeployState::Succeeded,
        DeployState::Failed,
        DeployState::Cancelled,
        DeployState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Requested => "requested",
            DeployState::Preflight => "preflight",
            DeployState::Locked => "locked",
            DeployState::Bump => "bump",
            DeployState::Plan => "plan",
            DeployState::AwaitingApproval => "awaiting_approval",
            DeployState::Approved => "approved",
            DeployState::Apply => "apply",
            DeployState::Verify => "verify",
            DeployState::Succeeded => "succeeded",
            DeployState::Failed => "failed",
            DeployState::Cancelled => "cancelled",
            DeployState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<DeployState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished for good: nothing will move it again. An interrupted deploy is not final: it
    /// waits for a maintainer's `!deploy resolve`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeployState::Succeeded | DeployState::Failed | DeployState::Cancelled
        )
    }
}

impl std::fmt::Display for DeployState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub target: String,
    pub environment: String,
    pub version: String,
    pub requested_by: String,
    pub state: DeployState,
    pub step: Option<String>,
    pub reason: Option<String>,
    pub force: bool,
    pub image_digest: Option<String>,
    pub plan_fingerprint: Option<String>,
    pub plan_summary: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub finished_ms: Option<i64>,
}

const COLUMNS: &str = "id, target, environment, version, requested_by, state, step, reason, force, \
                       image_digest, plan_fingerprint, plan_summary, created_ms, updated_ms, finished_ms";

fn deploy_from_row(r: &AnyRow) -> Result<Deploy> {
    let state: String = r.try_get("state")?;
    let force: i64 = r.try_get("force")?;
    Ok(Deploy {
        id: r.try_get("id")?,
        target: r.try_get("target")?,
        environment: r.try_get("environment")?,
        version: r.try_get("version")?,
        requested_by: r.try_get("requested_by")?,
        state: DeployState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown deploy state `{state}`")))?,
        step: r.try_get("step")?,
        reason: r.try_get("reason")?,
        force: force != 0,
        image_digest: r.try_get("image_digest")?,
        plan_fingerprint: r.try_get("plan_fingerprint")?,
        plan_summary: r.try_get("plan_summary")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
        finished_ms: r.try_get("finished_ms")?,
    })
}

/// What a new deploy starts with.
#[derive(Debug, Clone)]
pub struct NewDeploy<'a> {
    pub target: &'a str,
    pub environment: &'a str,
    pub version: &'a str,
    pub requested_by: &'a str,
    pub force: bool,
}

impl Store {
    pub async fn create_deploy(&self, d: &NewDeploy<'_>) -> Result<Deploy> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deploys (target, environment, version, requested_by, state, force, \
             created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(d.target)
        .bind(d.environment)
        .bind(d.version)
        .bind(d.requested_by)
        .bind(DeployState::Requested.as_str())
        .bind(i64::from(d.force))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        self.get_deploy(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("deploy {id} vanished after insert")))
    }

    /// Moves a deploy to `state` (recording the step and reason) and journals the transition.
    pub async fn set_deploy_state(
        &self,
        id: i64,
        state: DeployState,
        step: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let now = now_ms();
        let finished = state.is_final().then_some(now);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE deploys SET state = $1, step = $2, reason = $3, updated_ms = $4, \
             finished_ms = COALESCE($5, finished_ms) WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(step)
        .bind(reason)
        .bind(now)
        .bind(finished)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deploy_steps (deploy_id, step, state, detail, started_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(step.unwrap_or(state.as_str()))
        .bind(state.as_str())
        .bind(serde_json::json!({ "reason": reason }).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_deploy(&self, id: i64) -> Result<Option<Deploy>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deploys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| deploy_from_row(&r)).transpose()
    }

    /// The newest deploys first, optionally for one target.
    pub async fn list_deploys(&self, target: Option<&str>, limit: u32) -> Result<Vec<Deploy>> {
        let rows = match target {
            Some(t) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM deploys WHERE target = $1 ORDER BY id DESC LIMIT $2"
                )))
                .bind(t)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM deploys ORDER BY id DESC LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(deploy_from_row).collect()
    }

    /// Deploys that are not finished for good (including interrupted ones awaiting resolution).
    pub async fn active_deploys(&self) -> Result<Vec<Deploy>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deploys WHERE state NOT IN ('succeeded', 'failed', 'cancelled') \
             ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deploy_from_row).collect()
    }
}

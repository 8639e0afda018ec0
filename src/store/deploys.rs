//! Deploys and their step journal. The workflow writes each transition here before it is
//! announced, so `!deploy status` and `!deploy history` always tell the stored truth.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::waits::NewWait;
use super::{Lock, NewAuditEvent, Result, Store, StoreError, now_ms};
use crate::deploy::state::{self, DeployState};
use crate::deploy::step::Step;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub target: String,
    pub environment: String,
    pub version: String,
    pub requested_by: String,
    /// The requester's stable identity ([`crate::policy::Actor::id`]); `requested_by` is only
    /// the name they had then.
    pub requested_by_id: String,
    pub state: DeployState,
    pub step: Option<String>,
    pub reason: Option<String>,
    pub force: bool,
    pub image_digest: Option<String>,
    pub plan_fingerprint: Option<String>,
    pub plan_summary: Option<String>,
    pub preflight: Option<serde_json::Value>,
    pub conversation: Option<String>,
    pub owner: Option<Owner>,
    pub heartbeat_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub finished_ms: Option<i64>,
}

/// How a new deploy starts: run by this process now, or waiting for DAG runs (`--when-idle`).
#[derive(Clone, Copy)]
pub(super) enum Start<'a> {
    Locked(&'a Owner),
    Waiting(&'a NewWait<'a>),
}

/// The process that is running a deploy's current step: it holds a lease it renews by
/// heartbeat, so other processes can tell a live owner from a dead one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub host: String,
    pub pid: i64,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        Owner {
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown-host".to_string()),
            pid: i64::from(std::process::id()),
        }
    }
}

/// One row of a deploy's journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub state: String,
    pub detail: serde_json::Value,
    pub exit_code: Option<i64>,
    pub output_tail: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The approver's stable identity: one approval per identity, whatever the name.
    pub approver_id: String,
    pub approver: String,
    pub fingerprint: String,
    pub ts_ms: i64,
}

const COLUMNS: &str = "id, target, environment, version, requested_by, requested_by_id, state, step, reason, force, \
                       image_digest, plan_fingerprint, plan_summary, preflight, conversation, \
                       owner_host, owner_pid, heartbeat_ms, created_ms, updated_ms, finished_ms";

fn deploy_from_row(r: &AnyRow) -> Result<Deploy> {
    let state: String = r.try_get("state")?;
    let force: i64 = r.try_get("force")?;
    Ok(Deploy {
        id: r.try_get("id")?,
        target: r.try_get("target")?,
        environment: r.try_get("environment")?,
        version: r.try_get("version")?,
        requested_by: r.try_get("requested_by")?,
        requested_by_id: r.try_get("requested_by_id")?,
        state: DeployState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown deploy state `{state}`")))?,
        step: r.try_get("step")?,
        reason: r.try_get("reason")?,
        force: force != 0,
        image_digest: r.try_get("image_digest")?,
        plan_fingerprint: r.try_get("plan_fingerprint")?,
        plan_summary: r.try_get("plan_summary")?,
        preflight: r
            .try_get::<Option<String>, _>("preflight")?
            .and_then(|p| serde_json::from_str(&p).ok()),
        conversation: r.try_get("conversation")?,
        owner: match (
            r.try_get::<Option<String>, _>("owner_host")?,
            r.try_get::<Option<i64>, _>("owner_pid")?,
        ) {
            (Some(host), Some(pid)) => Some(Owner { host, pid }),
            _ => None,
        },
        heartbeat_ms: r.try_get("heartbeat_ms")?,
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
    pub requested_by_id: &'a str,
    pub force: bool,
}

impl Store {
    pub async fn create_deploy(&self, d: &NewDeploy<'_>) -> Result<Deploy> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deploys (target, environment, version, requested_by, requested_by_id, \
             state, force, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(d.target)
        .bind(d.environment)
        .bind(d.version)
        .bind(d.requested_by)
        .bind(d.requested_by_id)
        .bind(DeployState::Requested.as_str())
        .bind(i64::from(d.force))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        self.get_deploy(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("deploy {id} vanished after insert")))
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

    /// Creates a deploy already holding its target's lock, atomically with `locked_event` (its
    /// `deploy_id` filled in): either all three exist afterwards or none does and the current
    /// holder is returned. The deploy is requested and takes its lock in one go
    /// ([`state::Event::LockTaken`]), so it starts out `locked`.
    pub async fn create_locked_deploy(
        &self,
        d: &NewDeploy<'_>,
        lock_key: &str,
        owner: &Owner,
        locked_event: &NewAuditEvent,
    ) -> Result<std::result::Result<Deploy, Lock>> {
        self.create_deploy_with_lock(d, lock_key, Start::Locked(owner), locked_event)
            .await
    }

    /// The one way a deploy comes to be: the deploy, its target's lock, its first journal row,
    /// its wait (if it waits) and `event` (its `deploy_id` filled in) in one transaction, so all
    /// of them exist afterwards or none does and the lock's holder is returned.
    pub(super) async fn create_deploy_with_lock(
        &self,
        d: &NewDeploy<'_>,
        lock_key: &str,
        start: Start<'_>,
        event: &NewAuditEvent,
    ) -> Result<std::result::Result<Deploy, Lock>> {
        let now = now_ms();
        let (state, step, owner, reason, detail) = match start {
            Start::Locked(owner) => (
                DeployState::Locked,
                Step::Lock,
                Some(owner),
                format!("deploy {} {}", d.target, d.version),
                serde_json::json!({ "lock": lock_key }),
            ),
            Start::Waiting(wait) => (
                DeployState::WaitingForDags,
                Step::Wait,
                None,
                format!(
                    "deploy {} {} waiting for DAG runs (--when-idle)",
                    d.target, d.version
                ),
                serde_json::json!({
                    "lock": lock_key,
                    "deadline_ms": wait.deadline_ms,
                    "reason": wait.waiting_for,
                }),
            ),
        };
        let mut tx = self.pool.begin().await?;
        // A locked deploy is owned by the process that runs it (its `step` is set by the first
        // transition); a waiting one has no owner until a process starts it.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deploys (target, environment, version, requested_by, requested_by_id, \
             state, step, force, owner_host, owner_pid, heartbeat_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
        )
        .bind(d.target)
        .bind(d.environment)
        .bind(d.version)
        .bind(d.requested_by)
        .bind(d.requested_by_id)
        .bind(state.as_str())
        .bind(owner.is_none().then(|| step.as_str()))
        .bind(i64::from(d.force))
        .bind(owner.map(|o| o.host.clone()))
        .bind(owner.map(|o| o.pid))
        .bind(owner.map(|_| now))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO locks (lock_key, holder, deploy_id, reason, acquired_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lock_key) DO NOTHING",
        )
        .bind(lock_key)
        .bind(d.requested_by)
        .bind(id)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return match self.get_lock(lock_key).await? {
                Some(held) => Ok(Err(held)),
                // Released in between: try again rather than report a holder that is gone.
                None => Box::pin(self.create_deploy_with_lock(d, lock_key, start, event)).await,
            };
        }
        if let Start::Waiting(wait) = start {
            super::waits::insert_wait(&mut tx, id, wait, now).await?;
        }
        sqlx::query(
            "INSERT INTO deploy_steps (deploy_id, step, state, detail, started_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(step.as_str())
        .bind(state.as_str())
        .bind(detail.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let event = NewAuditEvent {
            deploy_id: Some(id),
            ..event.clone()
        };
        super::audit::append_in_tx(&mut tx, &[&event]).await?;
        tx.commit().await?;
        let deploy = self
            .get_deploy(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("deploy {id} vanished after insert")))?;
        Ok(Ok(deploy))
    }

    /// Moves a deploy to `to` only if it is in one of `from` (compare-and-set), journaling the
    /// transition and appending `audit` in the same transaction (a crash cannot keep one without
    /// the other); false when another actor moved it first, and then nothing is written.
    ///
    /// A move the state machine does not allow ([`state::allowed`]) from any of `from` is refused
    /// before anything is written: a bug in a caller cannot put a deploy where the diagram
    /// has no way to.
    pub async fn transition(
        &self,
        id: i64,
        from: &[DeployState],
        to: DeployState,
        step: Option<Step>,
        reason: Option<&str>,
        audit: Option<&NewAuditEvent>,
    ) -> Result<bool> {
        if let Some(bad) = from.iter().find(|f| !state::allowed(**f, to)) {
            return Err(StoreError::IllegalTransition { id, from: *bad, to });
        }
        let step = step.map(Step::as_str);
        let now = now_ms();
        let finished = to.is_final().then_some(now);
        let states = state_list(from.iter().copied());
        let mut tx = self.pool.begin().await?;
        // The state names come from the enum, never from input, so formatting them is safe.
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE deploys SET state = $1, step = $2, reason = $3, updated_ms = $4, \
             finished_ms = COALESCE($5, finished_ms) WHERE id = $6 AND state IN ({states})"
        )))
        .bind(to.as_str())
        .bind(step)
        .bind(reason)
        .bind(now)
        .bind(finished)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 1 {
            sqlx::query(
                "INSERT INTO deploy_steps (deploy_id, step, state, detail, started_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(step.unwrap_or(to.as_str()))
            .bind(to.as_str())
            .bind(serde_json::json!({ "reason": reason }).to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(ev) = audit {
                super::audit::append_in_tx(&mut tx, &[ev]).await?;
            }
        }
        tx.commit().await?;
        Ok(moved == 1)
    }

    /// Records a finished step's exit and redacted output tail in the journal.
    #[allow(clippy::too_many_arguments)] // one journal row's columns; a struct would only rename them
    pub async fn record_step_output(
        &self,
        id: i64,
        step: Step,
        state: &str,
        exit_code: Option<i64>,
        output_tail: &str,
        started_ms: i64,
        detail: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO deploy_steps (deploy_id, step, state, detail, exit_code, output_tail, \
             started_ms, finished_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(step.as_str())
        .bind(state)
        .bind(detail.to_string())
        .bind(exit_code)
        .bind(output_tail)
        .bind(started_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The journal of one deploy, oldest first.
    pub async fn deploy_steps(&self, id: i64) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT step, state, detail, exit_code, output_tail, started_ms, finished_ms \
             FROM deploy_steps WHERE deploy_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(StepRecord {
                    step: r.try_get("step")?,
                    state: r.try_get("state")?,
                    detail: serde_json::from_str(&detail).unwrap_or_default(),
                    exit_code: r.try_get("exit_code")?,
                    output_tail: r.try_get("output_tail")?,
                    started_ms: r.try_get("started_ms")?,
                    finished_ms: r.try_get("finished_ms")?,
                })
            })
            .collect()
    }

    /// Sets the facts learned along the way (each `None` leaves the column as it is).
    pub async fn set_deploy_facts(
        &self,
        id: i64,
        image_digest: Option<&str>,
        preflight: Option<&serde_json::Value>,
        plan: Option<(&str, &str)>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE deploys SET image_digest = COALESCE($1, image_digest), \
             preflight = COALESCE($2, preflight), plan_fingerprint = COALESCE($3, plan_fingerprint), \
             plan_summary = COALESCE($4, plan_summary), updated_ms = $5 WHERE id = $6",
        )
        .bind(image_digest)
        .bind(preflight.map(|p| p.to_string()))
        .bind(plan.map(|p| p.0))
        .bind(plan.map(|p| p.1))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Where the deploy's conversation lives (a chat thread reference), for later processes.
    pub async fn set_deploy_conversation(&self, id: i64, conversation: &str) -> Result<()> {
        sqlx::query("UPDATE deploys SET conversation = $1 WHERE id = $2")
            .bind(conversation)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes the lease on a deploy for `owner` unless another owner still holds it: `expected`
    /// is the owner the caller saw (compare-and-set), `None` for an unowned deploy.
    pub async fn take_lease(
        &self,
        id: i64,
        owner: &Owner,
        expected: Option<&Owner>,
    ) -> Result<bool> {
        let now = now_ms();
        let done = match expected {
            Some(prev) => {
                sqlx::query(
                    "UPDATE deploys SET owner_host = $1, owner_pid = $2, heartbeat_ms = $3 \
                     WHERE id = $4 AND owner_host = $5 AND owner_pid = $6",
                )
                .bind(&owner.host)
                .bind(owner.pid)
                .bind(now)
                .bind(id)
                .bind(&prev.host)
                .bind(prev.pid)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE deploys SET owner_host = $1, owner_pid = $2, heartbeat_ms = $3 \
                     WHERE id = $4 AND owner_host IS NULL",
                )
                .bind(&owner.host)
                .bind(owner.pid)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Renews the lease; false when this owner no longer holds it.
    pub async fn heartbeat(&self, id: i64, owner: &Owner) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deploys SET heartbeat_ms = $1 WHERE id = $2 AND owner_host = $3 AND owner_pid = $4",
        )
        .bind(now_ms())
        .bind(id)
        .bind(&owner.host)
        .bind(owner.pid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up when the workflow rests (waiting for approval) or ends.
    pub async fn release_lease(&self, id: i64, owner: &Owner) -> Result<()> {
        sqlx::query(
            "UPDATE deploys SET owner_host = NULL, owner_pid = NULL, heartbeat_ms = NULL \
             WHERE id = $1 AND owner_host = $2 AND owner_pid = $3",
        )
        .bind(id)
        .bind(&owner.host)
        .bind(owner.pid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an approval by the person `approver_id` (shown as `approver`); false when this
    /// person had already approved, under whatever name.
    pub async fn add_approval(
        &self,
        id: i64,
        approver_id: &str,
        approver: &str,
        fingerprint: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO deploy_approvals (deploy_id, approver_id, approver, fingerprint, ts_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deploy_id, approver_id) DO NOTHING",
        )
        .bind(id)
        .bind(approver_id)
        .bind(approver)
        .bind(fingerprint)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn approvals(&self, id: i64) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT approver_id, approver, fingerprint, ts_ms FROM deploy_approvals \
             WHERE deploy_id = $1 ORDER BY ts_ms, approver_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Approval {
                    approver_id: r.try_get("approver_id")?,
                    approver: r.try_get("approver")?,
                    fingerprint: r.try_get("fingerprint")?,
                    ts_ms: r.try_get("ts_ms")?,
                })
            })
            .collect()
    }

    /// The newest succeeded deploys of a target, newest first (rollback looks for the one
    /// before the current).
    pub async fn succeeded_deploys(&self, target: &str, limit: u32) -> Result<Vec<Deploy>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deploys WHERE target = $1 AND state = $2 \
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(target)
        .bind(DeployState::Succeeded.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deploy_from_row).collect()
    }

    /// Deploys that are not finished for good (including interrupted ones awaiting resolution).
    pub async fn active_deploys(&self) -> Result<Vec<Deploy>> {
        let finals = state_list(DeployState::ALL.into_iter().filter(|s| s.is_final()));
        // The state names come from the enum, never from input, so formatting them is safe.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deploys WHERE state NOT IN ({finals}) ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deploy_from_row).collect()
    }
}

impl Store {
    /// The locks still held by deploys that have ended (succeeded, failed, cancelled, blocked,
    /// resolved). A deploy's ending path releases its lock right after the final state is
    /// written; the recovery sweep frees what a process that died in between left behind.
    pub async fn locks_of_ended_deploys(&self) -> Result<Vec<Lock>> {
        let finals = state_list(DeployState::ALL.into_iter().filter(|s| s.is_final()));
        // The state names come from the enum, never from input, so formatting them is safe.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT l.lock_key, l.holder, l.deploy_id, l.reason, l.acquired_ms FROM locks l \
             JOIN deploys d ON d.id = l.deploy_id WHERE d.state IN ({finals}) ORDER BY l.lock_key"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(super::locks::lock_from_row).collect()
    }
}

/// `'a', 'b'` for an SQL `IN (…)` list of states.
fn state_list(states: impl Iterator<Item = DeployState>) -> String {
    states
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

//! Deploy locks: one per target+environment. Acquisition is a single `INSERT … ON CONFLICT DO
//! NOTHING`, so exactly one of any number of concurrent acquirers wins, in one process or many.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    pub key: String,
    pub holder: String,
    pub deploy_id: Option<i64>,
    pub reason: String,
    pub acquired_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewLock<'a> {
    pub key: &'a str,
    pub holder: &'a str,
    pub deploy_id: Option<i64>,
    pub reason: &'a str,
}

impl Store {
    /// Takes the lock, or returns who holds it.
    pub async fn try_acquire_lock(&self, lock: &NewLock<'_>) -> Result<Result<Lock, Lock>> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO locks (lock_key, holder, deploy_id, reason, acquired_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lock_key) DO NOTHING",
        )
        .bind(lock.key)
        .bind(lock.holder)
        .bind(lock.deploy_id)
        .bind(lock.reason)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Ok(Lock {
                key: lock.key.to_string(),
                holder: lock.holder.to_string(),
                deploy_id: lock.deploy_id,
                reason: lock.reason.to_string(),
                acquired_ms: now,
            }));
        }
        match self.get_lock(lock.key).await? {
            Some(held) => Ok(Err(held)),
            // Released between our insert and our read: try once more rather than report a
            // holder that no longer exists.
            None => Box::pin(self.try_acquire_lock(lock)).await,
        }
    }

    pub async fn get_lock(&self, key: &str) -> Result<Option<Lock>> {
        let row = sqlx::query(
            "SELECT lock_key, holder, deploy_id, reason, acquired_ms FROM locks WHERE lock_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| lock_from_row(&r)).transpose()
    }

    /// Releases the lock if `deploy_id` still holds it; true when a lock was released.
    pub async fn release_lock(&self, key: &str, deploy_id: Option<i64>) -> Result<bool> {
        let done = match deploy_id {
            Some(id) => {
                sqlx::query("DELETE FROM locks WHERE lock_key = $1 AND deploy_id = $2")
                    .bind(key)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM locks WHERE lock_key = $1 AND deploy_id IS NULL")
                    .bind(key)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_locks(&self) -> Result<Vec<Lock>> {
        let rows = sqlx::query(
            "SELECT lock_key, holder, deploy_id, reason, acquired_ms FROM locks ORDER BY lock_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lock_from_row).collect()
    }
}

pub(super) fn lock_from_row(r: &sqlx::any::AnyRow) -> Result<Lock> {
    Ok(Lock {
        key: r.try_get("lock_key")?,
        holder: r.try_get("holder")?,
        deploy_id: r.try_get("deploy_id")?,
        reason: r.try_get("reason")?,
        acquired_ms: r.try_get("acquired_ms")?,
    })
}

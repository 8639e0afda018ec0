//! The dag-sync announcer's memory: which DAG-touching commits reached the Airflow host, and
//! which of them were announced. A commit is recorded once (its sha is the key) and claimed for
//! announcing once (`announced_ms`), so neither a restart nor a second replica posts it twice.

use sqlx::Row;

use super::{Result, Store, now_ms};

/// One DAG-touching commit the checkout moved onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedCommit {
    pub sha: String,
    pub subject: String,
    /// Oldest first within one move.
    pub position: i64,
    pub detected_ms: i64,
    /// The DAG ids Airflow had when the move was seen; `None` when it did not answer.
    pub dags_before: Option<Vec<String>>,
    pub announced_ms: Option<i64>,
}

impl Store {
    /// Records commits the checkout moved onto (already-known shas are left alone); true for
    /// each one that was new.
    pub async fn record_synced_commits(
        &self,
        commits: &[(String, String)],
        detected_ms: i64,
        dags_before: Option<&[String]>,
    ) -> Result<Vec<bool>> {
        let before = match dags_before {
            Some(ids) => Some(
                serde_json::to_string(ids)
                    .map_err(|e| super::StoreError::Corrupt(format!("DAG id list: {e}")))?,
            ),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(commits.len());
        for (i, (sha, subject)) in commits.iter().enumerate() {
            let n = sqlx::query(
                "INSERT INTO dag_sync_commits (sha, subject, position, detected_ms, dags_before) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha) DO NOTHING",
            )
            .bind(sha)
            .bind(subject)
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .bind(detected_ms)
            .bind(before.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            out.push(n == 1);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Commits recorded and not announced yet, in the order they were deployed.
    pub async fn pending_synced_commits(&self) -> Result<Vec<SyncedCommit>> {
        let rows = sqlx::query(
            "SELECT sha, subject, position, detected_ms, dags_before, announced_ms \
             FROM dag_sync_commits WHERE announced_ms IS NULL ORDER BY detected_ms, position",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let before: Option<String> = r.try_get("dags_before")?;
                let dags_before = match before {
                    None => None,
                    Some(text) => {
                        Some(serde_json::from_str::<Vec<String>>(&text).map_err(|e| {
                            super::StoreError::Corrupt(format!("dag_sync_commits.dags_before: {e}"))
                        })?)
                    }
                };
                Ok(SyncedCommit {
                    sha: r.try_get("sha")?,
                    subject: r.try_get("subject")?,
                    position: r.try_get("position")?,
                    detected_ms: r.try_get("detected_ms")?,
                    dags_before,
                    announced_ms: r.try_get("announced_ms")?,
                })
            })
            .collect()
    }

    /// Claims a commit's announcement; true for the one caller that may post it.
    pub async fn claim_synced_commit(&self, sha: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE dag_sync_commits SET announced_ms = $2 WHERE sha = $1 AND announced_ms IS NULL",
        )
        .bind(sha)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

//! The DAGs the announcer has seen, the watchers' small state, and pending catalog-migration
//! requests. A DAG stays in `seen_dags` forever once seen, so one that disappears from Airflow and
//! comes back is never announced as new again.

use std::collections::HashMap;

use sqlx::Row;

use super::{Result, Store, now_ms};

/// One row of `seen_dags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenDag {
    pub dag_id: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub is_paused: bool,
    pub announced_ms: Option<i64>,
}

/// A request to run a catalog migration, waiting for a second maintainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRequest {
    pub name: String,
    pub requested_by: String,
    /// The requester's stable identity ([`crate::policy::Actor::id`]).
    pub requested_by_id: String,
    pub requested_ms: i64,
}

/// Rows per upsert statement in [`Store::record_seen`]: 2 + 2 × 500 parameters, far below
/// SQLite's (32,766) and Postgres's (65,535) limits.
const SEEN_ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Every seen DAG id with its row.
    pub async fn seen_dags(&self) -> Result<HashMap<String, SeenDag>> {
        let rows = sqlx::query(
            "SELECT dag_id, first_seen_ms, last_seen_ms, is_paused, announced_ms FROM seen_dags",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let d = SeenDag {
                dag_id: r.try_get("dag_id")?,
                first_seen_ms: r.try_get("first_seen_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
                is_paused: r.try_get::<i64, _>("is_paused")? != 0,
                announced_ms: r.try_get("announced_ms")?,
            };
            out.insert(d.dag_id.clone(), d);
        }
        Ok(out)
    }

    /// DAGs first seen at or after `since_ms`, oldest first.
    pub async fn seen_dags_since(&self, since_ms: i64) -> Result<Vec<SeenDag>> {
        let mut all: Vec<SeenDag> = self
            .seen_dags()
            .await?
            .into_values()
            .filter(|d| d.first_seen_ms >= since_ms)
            .collect();
        all.sort_by(|a, b| (a.first_seen_ms, &a.dag_id).cmp(&(b.first_seen_ms, &b.dag_id)));
        Ok(all)
    }

    /// Records what one poll saw, in one transaction: new ids are inserted with `first_seen_ms`
    /// = now (and `announced_ms` = now when `announce_new` is false, i.e. while seeding), known
    /// ids get their paused flag and `last_seen_ms` refreshed.
    ///
    /// Rows go [`SEEN_ROWS_PER_STATEMENT`] to a statement: an Airflow with 10,000 DAGs is 20
    /// round trips per poll, not 10,000 (seconds on a Postgres across a network).
    pub async fn record_seen(&self, dags: &[(String, bool)], seeding: bool) -> Result<()> {
        // Offset pages can overlap when DAGs are added between two requests, and one statement
        // must not upsert the same id twice (Postgres refuses): the last sighting wins.
        let mut latest: HashMap<&str, bool> = HashMap::with_capacity(dags.len());
        for (dag_id, paused) in dags {
            latest.insert(dag_id, *paused);
        }
        let mut rows: Vec<(&str, bool)> = latest.into_iter().collect();
        rows.sort_unstable();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(SEEN_ROWS_PER_STATEMENT) {
            // $1 = now, $2 = announced_ms, then (dag_id, is_paused) per row.
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, $1, $1, ${}, $2)", 3 + 2 * i, 4 + 2 * i))
                .collect();
            let sql = format!(
                "INSERT INTO seen_dags (dag_id, first_seen_ms, last_seen_ms, is_paused, announced_ms) \
                 VALUES {} \
                 ON CONFLICT (dag_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, \
                 is_paused = excluded.is_paused",
                values.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(seeding.then_some(now));
            for (dag_id, paused) in chunk {
                query = query.bind(*dag_id).bind(i64::from(*paused));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a DAG as announced; true when this caller was first (replicas announce once).
    pub async fn mark_announced(&self, dag_id: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE seen_dags SET announced_ms = $2 WHERE dag_id = $1 AND announced_ms IS NULL",
        )
        .bind(dag_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Updates the paused flag after the bot changed it.
    pub async fn set_seen_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        sqlx::query("UPDATE seen_dags SET is_paused = $2 WHERE dag_id = $1")
            .bind(dag_id)
            .bind(i64::from(paused))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn state(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT state_value FROM bot_state WHERE state_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn set_state(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO bot_state (state_key, state_value, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (state_key) DO UPDATE SET state_value = $2, updated_ms = $3",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn migration_request(&self, name: &str) -> Result<Option<MigrationRequest>> {
        let row = sqlx::query(
            "SELECT name, requested_by, requested_by_id, requested_ms FROM migration_requests \
             WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(MigrationRequest {
                name: r.try_get("name")?,
                requested_by: r.try_get("requested_by")?,
                requested_by_id: r.try_get("requested_by_id")?,
                requested_ms: r.try_get("requested_ms")?,
            })
        })
        .transpose()
    }

    /// Files a request by the person `by_id` (shown as `by`); false when one is already pending
    /// for `name`.
    pub async fn request_migration(&self, name: &str, by_id: &str, by: &str) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO migration_requests (name, requested_by, requested_by_id, requested_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(by)
        .bind(by_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Removes the pending request; true when this caller removed it (so only one approver runs it).
    pub async fn take_migration_request(&self, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM migration_requests WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

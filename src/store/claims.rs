//! Message claims: a chat message or button click is handled once, even when it is delivered
//! twice or seen by two replicas, because its id is claimed here before any work starts.

use super::{Result, Store, now_ms};

impl Store {
    /// True when this caller claimed `key` first; false when someone already had it.
    pub async fn claim(&self, key: &str, claimed_by: &str) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO command_claims (claim_key, claimed_by, claimed_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (claim_key) DO NOTHING",
        )
        .bind(key)
        .bind(claimed_by)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }
}

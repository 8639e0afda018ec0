//! Leader election for the watchers: with replicas on Postgres exactly one process runs them.
//!
//! The leader holds a session-level `pg_try_advisory_lock` on a connection taken out of the pool
//! for its whole reign. Postgres releases the lock when that session ends, so a leader that dies
//! (process killed, network gone) frees it without any lease arithmetic; the others retry every
//! `poll` and one of them takes over. The leader pings its connection at the same interval and
//! steps down when the ping fails, so two leaders never overlap by more than one interval.
//!
//! SQLite is a single-host, single-process store: the one process is always the leader.

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};
use tokio_util::sync::CancellationToken;

use crate::store::{Backend, Store};

/// The advisory-lock id for a name: the first 8 bytes of its SHA-256, so different names (and
/// other applications' small integer ids) do not collide in practice.
pub fn lock_id(key: &str) -> i64 {
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

pub struct Leadership;

impl Leadership {
    /// Competes for leadership of `key` until `cancel` fires. Each time this process becomes the
    /// leader, `on_gain` is called with a token that is cancelled when it stops leading (lost
    /// connection or shutdown); the future it returns runs as a task and is awaited before the
    /// lock is let go.
    pub async fn acquire_loop<F, Fut>(
        store: Store,
        key: &str,
        poll: Duration,
        mut on_gain: F,
        cancel: CancellationToken,
    ) where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if store.backend() == Backend::Sqlite {
            Self::reign(&mut on_gain, &cancel, async { cancel.cancelled().await }).await;
            return;
        }
        let id = lock_id(key);
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match try_lock(&store, id).await {
                Ok(Some(mut conn)) => {
                    tracing::info!(key, "leading the watchers");
                    let hold = async {
                        loop {
                            tokio::select! {
                                _ = cancel.cancelled() => return,
                                _ = tokio::time::sleep(poll) => {}
                            }
                            if let Err(e) = conn.ping().await {
                                tracing::warn!(key, error = %e, "lost the leader's connection; stepping down");
                                return;
                            }
                        }
                    };
                    Self::reign(&mut on_gain, &cancel, hold).await;
                    // Ending the session releases the advisory lock.
                    let _ = conn.close().await;
                    tracing::info!(key, "no longer leading the watchers");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(key, error = %e, "cannot compete for leadership"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Runs `on_gain` while `hold` lasts.
    async fn reign<F, Fut>(
        on_gain: &mut F,
        cancel: &CancellationToken,
        hold: impl Future<Output = ()>,
    ) where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        crate::metrics::set_leader(true);
        let lead = cancel.child_token();
        let task = tokio::spawn(on_gain(lead.clone()));
        hold.await;
        lead.cancel();
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the leader's task panicked");
        }
        crate::metrics::set_leader(false);
    }
}

/// A dedicated connection holding the lock, or `None` when someone else holds it.
async fn try_lock(store: &Store, id: i64) -> Result<Option<sqlx::AnyConnection>, sqlx::Error> {
    // Detached from the pool: the pool must never recycle or close the session that holds the lock.
    let mut conn = store.pool().acquire().await?.detach();
    let row = sqlx::query("SELECT CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END AS got")
        .bind(id)
        .fetch_one(&mut conn)
        .await?;
    let got: i32 = row.try_get("got")?;
    if got == 1 {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

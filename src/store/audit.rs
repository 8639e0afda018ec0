//! The append-only, hash-chained audit log.
//!
//! Each event carries the hash of the one before it, so an edited, removed or reordered row breaks
//! the chain and `audit verify` names the first broken event. Appends are serialised by the
//! database (the `audit_head` row is updated first in the appending transaction), never by an
//! in-process mutex, so concurrent tasks, processes and replicas keep one unbroken chain.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Result, Store, StoreError, now_ms};

/// How many waiting appends one transaction takes at most.
const MAX_BATCH: usize = 256;

pub(super) type AppendRequest = (NewAuditEvent, oneshot::Sender<Result<AuditEvent>>);

/// The store's single audit writer: takes every append waiting in the queue, writes them in one
/// transaction and answers each caller. Order within the chain is queue order; across processes
/// the database's lock on `audit_head` decides.
pub(super) async fn run_writer(
    pool: AnyPool,
    backend: Backend,
    mut rx: mpsc::Receiver<AppendRequest>,
) {
    let mut batch: Vec<AppendRequest> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let events: Vec<&NewAuditEvent> = batch.iter().map(|(ev, _)| ev).collect();
        match write_batch(&pool, backend, &events).await {
            Ok(stored) => {
                for ((_, reply), ev) in batch.drain(..).zip(stored) {
                    let _ = reply.send(Ok(ev));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = batch.len(), "audit append failed");
                let msg = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::Append(msg.clone())));
                }
            }
        }
    }
}

/// Appends `events` to the chain in one transaction: all or none.
async fn write_batch(
    pool: &AnyPool,
    backend: Backend,
    events: &[&NewAuditEvent],
) -> Result<Vec<AuditEvent>> {
    let mut tx = match backend {
        // IMMEDIATE takes the write lock up front, so the busy timeout queues writers
        // instead of failing a read-then-write upgrade.
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    let stored = append_in_tx(&mut tx, events).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Appends `events` to the chain inside the caller's transaction, so that a state change and
/// its audit event commit together (a crash between two commits would lose the event).
pub(super) async fn append_in_tx(
    tx: &mut sqlx::AnyConnection,
    events: &[&NewAuditEvent],
) -> Result<Vec<AuditEvent>> {
    // Updating the head first locks it (a row lock on Postgres, the write lock on SQLite)
    // until commit: this is what serialises appends across processes.
    let (last_seq, mut prev_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(events.len() as i64)
            .fetch_one(&mut *tx)
            .await?;
    let first_seq = last_seq - events.len() as i64 + 1;
    let ts_ms = now_ms();
    let mut stored = Vec::with_capacity(events.len());
    // Every path into the chain (group-committed appends, deploy transitions) passes here.
    let events: Vec<NewAuditEvent> = events.iter().map(|ev| ev.storable()).collect();
    for (i, ev) in events.iter().enumerate() {
        let seq = first_seq + i as i64;
        let roles =
            serde_json::to_string(&ev.roles).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let detail = if ev.detail.is_null() {
            "{}".to_string()
        } else {
            ev.detail.to_string()
        };
        let hash = StoredFields {
            seq,
            ts_ms,
            kind: &ev.kind,
            source: &ev.source,
            actor: &ev.actor,
            os_user: ev.os_user.as_deref(),
            roles: &roles,
            raw: ev.raw.as_deref(),
            command: ev.command.as_deref(),
            decision: ev.decision.as_deref(),
            outcome: ev.outcome.as_deref(),
            target: ev.target.as_deref(),
            deploy_id: ev.deploy_id,
            detail: &detail,
            prev_hash: &prev_hash,
        }
        .hash();
        sqlx::query(
            "INSERT INTO audit_events (seq, ts_ms, kind, source, actor, os_user, roles, raw, \
             command, decision, outcome, target, deploy_id, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(seq)
        .bind(ts_ms)
        .bind(&ev.kind)
        .bind(&ev.source)
        .bind(&ev.actor)
        .bind(ev.os_user.as_deref())
        .bind(&roles)
        .bind(ev.raw.as_deref())
        .bind(ev.command.as_deref())
        .bind(ev.decision.as_deref())
        .bind(ev.outcome.as_deref())
        .bind(ev.target.as_deref())
        .bind(ev.deploy_id)
        .bind(&detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        stored.push(AuditEvent {
            seq,
            ts_ms,
            kind: ev.kind.clone(),
            source: ev.source.clone(),
            actor: ev.actor.clone(),
            os_user: ev.os_user.clone(),
            roles: ev.roles.clone(),
            raw: ev.raw.clone(),
            command: ev.command.clone(),
            decision: ev.decision.clone(),
            outcome: ev.outcome.clone(),
            target: ev.target.clone(),
            deploy_id: ev.deploy_id,
            detail: serde_json::from_str(&detail).unwrap_or_default(),
            prev_hash: std::mem::replace(&mut prev_hash, hash),
            hash: String::new(),
        });
    }
    // Each stored event's hash is the next one's prev_hash; the last one is the new head.
    for i in 0..stored.len() {
        stored[i].hash = match stored.get(i + 1) {
            Some(next) => next.prev_hash.clone(),
            None => prev_hash.clone(),
        };
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev_hash)
        .execute(&mut *tx)
        .await?;
    Ok(stored)
}

/// The hash the first event points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append. Text must already be redacted: the log is permanent.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    /// `command`, `result`, `deploy.transition`, …
    pub kind: String,
    /// `local`, `discord`, `watcher`, `system`.
    pub source: String,
    pub actor: String,
    pub os_user: Option<String>,
    pub roles: Vec<String>,
    pub raw: Option<String>,
    pub command: Option<String>,
    /// `allowed`, `denied`, `invalid`, `rate_limited`.
    pub decision: Option<String>,
    pub outcome: Option<String>,
    pub target: Option<String>,
    pub deploy_id: Option<i64>,
    pub detail: serde_json::Value,
}

impl NewAuditEvent {
    /// A copy every backend can store: Postgres refuses NUL in text, and one event carrying it
    /// (a message with a NUL byte) would fail its whole group-committed batch, other people's
    /// events included. NUL becomes U+FFFD. `detail` needs nothing: JSON escapes it.
    fn storable(&self) -> NewAuditEvent {
        fn clean(s: &str) -> String {
            s.replace('\0', "\u{FFFD}")
        }
        let opt = |s: &Option<String>| s.as_deref().map(clean);
        NewAuditEvent {
            kind: clean(&self.kind),
            source: clean(&self.source),
            actor: clean(&self.actor),
            os_user: opt(&self.os_user),
            roles: self.roles.iter().map(|r| clean(r)).collect(),
            raw: opt(&self.raw),
            command: opt(&self.command),
            decision: opt(&self.decision),
            outcome: opt(&self.outcome),
            target: opt(&self.target),
            deploy_id: self.deploy_id,
            detail: self.detail.clone(),
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEvent {
    pub seq: i64,
    pub ts_ms: i64,
    pub kind: String,
    pub source: String,
    pub actor: String,
    pub os_user: Option<String>,
    pub roles: Vec<String>,
    pub raw: Option<String>,
    pub command: Option<String>,
    pub decision: Option<String>,
    pub outcome: Option<String>,
    pub target: Option<String>,
    pub deploy_id: Option<i64>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The columns exactly as stored; the hash covers these texts, not re-serialised values, so that
/// verification does not depend on JSON formatting choices.
struct StoredFields<'a> {
    seq: i64,
    ts_ms: i64,
    kind: &'a str,
    source: &'a str,
    actor: &'a str,
    os_user: Option<&'a str>,
    roles: &'a str,
    raw: Option<&'a str>,
    command: Option<&'a str>,
    decision: Option<&'a str>,
    outcome: Option<&'a str>,
    target: Option<&'a str>,
    deploy_id: Option<i64>,
    detail: &'a str,
    prev_hash: &'a str,
}

impl StoredFields<'_> {
    fn hash(&self) -> String {
        // A JSON array gives every field an unambiguous boundary (no concatenation collisions).
        let canonical = serde_json::json!([
            self.seq,
            self.ts_ms,
            self.kind,
            self.source,
            self.actor,
            self.os_user,
            self.roles,
            self.raw,
            self.command,
            self.decision,
            self.outcome,
            self.target,
            self.deploy_id,
            self.detail,
            self.prev_hash,
        ]);
        let mut h = Sha256::new();
        h.update(canonical.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events: i64,
    pub first_broken: Option<Broken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub seq: i64,
    pub reason: String,
}

const COLUMNS: &str = "seq, ts_ms, kind, source, actor, os_user, roles, raw, command, decision, \
                       outcome, target, deploy_id, detail, prev_hash, hash";

fn event_from_row(row: &AnyRow) -> Result<AuditEvent> {
    let roles: String = row.try_get("roles")?;
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        ts_ms: row.try_get("ts_ms")?,
        kind: row.try_get("kind")?,
        source: row.try_get("source")?,
        actor: row.try_get("actor")?,
        os_user: row.try_get("os_user")?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        raw: row.try_get("raw")?,
        command: row.try_get("command")?,
        decision: row.try_get("decision")?,
        outcome: row.try_get("outcome")?,
        target: row.try_get("target")?,
        deploy_id: row.try_get("deploy_id")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Appends one event to the chain and returns it as stored. Concurrent appends from this
    /// process are group-committed (one transaction, one fsync) by the store's writer task.
    pub async fn append_audit(&self, ev: &NewAuditEvent) -> Result<AuditEvent> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.audit_writer
            .send((ev.clone(), reply_tx))
            .await
            .map_err(|_| StoreError::Append("the audit writer has stopped".into()))?;
        reply_rx
            .await
            .map_err(|_| StoreError::Append("the audit writer has stopped".into()))?
    }
    /// The newest `limit` events (optionally only those about `target`), newest first.
    pub async fn list_audit(&self, limit: u32, target: Option<&str>) -> Result<Vec<AuditEvent>> {
        let rows = match target {
            Some(t) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_events WHERE target = $1 ORDER BY seq DESC LIMIT $2"
            )))
            .bind(t)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }

    /// Every event in chain order, read in pages so memory stays flat on a long log; `each`
    /// receives them one at a time.
    pub async fn for_each_audit(
        &self,
        mut each: impl FnMut(&AuditEvent) -> std::io::Result<()>,
    ) -> Result<i64> {
        let mut after = 0i64;
        let mut count = 0i64;
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"
            )))
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(count);
            }
            for row in &rows {
                let ev = event_from_row(row)?;
                after = ev.seq;
                count += 1;
                each(&ev).map_err(|e| StoreError::Corrupt(format!("cannot write event: {e}")))?;
            }
        }
    }

    /// Walks the whole chain and reports the first event whose link or content does not hold.
    pub async fn verify_audit(&self) -> Result<VerifyReport> {
        let mut expected_prev = GENESIS_HASH.to_string();
        let mut expected_seq = 1i64;
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"
            )))
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let broken = |reason: String| VerifyReport {
                    events: expected_seq - 1,
                    first_broken: Some(Broken { seq, reason }),
                };
                if seq != expected_seq {
                    return Ok(broken(format!(
                        "event {expected_seq} is missing (the next stored event is {seq})"
                    )));
                }
                let stored_hash: String = row.try_get("hash")?;
                let prev_hash: String = row.try_get("prev_hash")?;
                if prev_hash != expected_prev {
                    return Ok(broken(
                        "its prev_hash does not match the hash of the event before it".to_string(),
                    ));
                }
                let kind: String = row.try_get("kind")?;
                let source: String = row.try_get("source")?;
                let actor: String = row.try_get("actor")?;
                let os_user: Option<String> = row.try_get("os_user")?;
                let roles: String = row.try_get("roles")?;
                let raw: Option<String> = row.try_get("raw")?;
                let command: Option<String> = row.try_get("command")?;
                let decision: Option<String> = row.try_get("decision")?;
                let outcome: Option<String> = row.try_get("outcome")?;
                let target: Option<String> = row.try_get("target")?;
                let detail: String = row.try_get("detail")?;
                let fields = StoredFields {
                    seq,
                    ts_ms: row.try_get("ts_ms")?,
                    kind: &kind,
                    source: &source,
                    actor: &actor,
                    os_user: os_user.as_deref(),
                    roles: &roles,
                    raw: raw.as_deref(),
                    command: command.as_deref(),
                    decision: decision.as_deref(),
                    outcome: outcome.as_deref(),
                    target: target.as_deref(),
                    deploy_id: row.try_get("deploy_id")?,
                    detail: &detail,
                    prev_hash: &prev_hash,
                };
                if fields.hash() != stored_hash {
                    return Ok(broken(
                        "its content does not match its hash (the event was altered)".to_string(),
                    ));
                }
                expected_prev = stored_hash;
                expected_seq += 1;
                after = seq;
            }
        }
        let events = expected_seq - 1;
        // The head must point at the last event: a truncated tail shows up here.
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        if head_seq != events || head_hash != expected_prev {
            return Ok(VerifyReport {
                events,
                first_broken: Some(Broken {
                    seq: events + 1,
                    reason: format!(
                        "the chain head records {head_seq} events but {events} are stored intact \
                         (events were removed from the end)"
                    ),
                }),
            });
        }
        Ok(VerifyReport {
            events,
            first_broken: None,
        })
    }

    /// Number of audit events of one kind (load tests count attempts with it).
    pub async fn count_audit(&self, kind: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = $1")
                .bind(kind)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

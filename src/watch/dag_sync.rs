//! The dag-sync announcer: the bot's counterpart of dag-sync.sh's "Deployed: …" Slack message.
//!
//! dag-sync moves the host's checkout one commit per cron run and posts "Deployed: <subject>" only
//! for a commit that touched the DAG folder — but without escaping, and its exit code means
//! nothing (facts.md). The bot watches the checkout itself: every poll reads the deployed commit
//! (`[dag_sync] commit_source`); when it moved, GitHub says which commits arrived (a diverged
//! checkout that dag-sync reset onto the branch counts too) and which of them touched the DAG
//! folder. Each such commit gets one message in the announce channel,
//! "Deployed: <subject> (<short sha>)", posted `[dag_sync] announce_after` after the move so that
//! Airflow has parsed what arrived; DAGs that appeared in Airflow since the move come with their
//! Enable action. Other commits get none.
//!
//! - The first poll only records where the checkout is (nothing announced).
//! - Commits are recorded in the store when the move is seen and claimed when posted: a restart
//!   picks up what was pending, and a second replica (only the leader polls anyway) cannot post
//!   a commit twice.
//! - When the source, GitHub or Airflow cannot answer, the poll fails or waits; it never guesses.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use super::poll::{self, Next};
use crate::config::DagSyncConfig;
use crate::context::Ctx;
use crate::conversation::{Conversation, DeployedAnnouncement, EnableAction};
use crate::integrations::UpstreamError;
use crate::integrations::checkout::deployed_commit;
use crate::store::{StoreError, SyncedCommit, now_ms};

/// The store key holding the last deployed commit the announcer saw.
const DEPLOYED_KEY: &str = "dag_sync.deployed";
/// Commits posted per poll at most; a checkout that jumps far (the bot was off for a day) is
/// caught up over the next polls instead of in one burst.
const POSTS_PER_POLL: usize = 10;
/// Without an Airflow answer a pending commit is posted anyway after this many waits, saying
/// that its new DAGs are unknown (the new-DAG announcer still announces them).
const AIRFLOW_PATIENCE: u32 = 10;

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPollReport {
    /// `[dag_sync]` is not configured: nothing was read.
    pub disabled: bool,
    /// This poll recorded the first deployed commit (nothing announced).
    pub seeded: bool,
    /// The deployed commit now.
    pub deployed: Option<String>,
    /// DAG-touching commits recorded by this poll (the checkout moved onto them).
    pub recorded: Vec<String>,
    pub announced: Vec<DeployedAnnouncement>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncPollError {
    #[error("the deployed commit cannot be read: {0}")]
    Source(String),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct DagSyncAnnouncer {
    ctx: Ctx,
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

impl DagSyncAnnouncer {
    pub fn new(ctx: Ctx) -> DagSyncAnnouncer {
        DagSyncAnnouncer { ctx }
    }

    /// Polls once: records a move of the checkout, then posts what is due.
    pub async fn poll_once(
        &self,
        conv: &dyn Conversation,
    ) -> Result<SyncPollReport, SyncPollError> {
        let Some(cfg) = self.ctx.config.dag_sync.clone() else {
            return Ok(SyncPollReport {
                disabled: true,
                ..SyncPollReport::default()
            });
        };
        let deployed = deployed_commit(&cfg.commit_source)
            .await
            .map_err(|e| SyncPollError::Source(self.ctx.redactor.redact(&e)))?;
        let store = &self.ctx.store;
        let mut report = SyncPollReport {
            deployed: Some(deployed.sha.clone()),
            ..SyncPollReport::default()
        };
        match store.state(DEPLOYED_KEY).await? {
            None => {
                store.set_state(DEPLOYED_KEY, &deployed.sha).await?;
                report.seeded = true;
                tracing::info!(sha = %deployed.sha, "dag-sync announcer: recorded the deployed commit");
            }
            Some(last) if last == deployed.sha => {}
            Some(last) => {
                report.recorded = self.record_move(&cfg, &last, &deployed.sha).await?;
                // Written after the commits: a crash in between only records them again.
                store.set_state(DEPLOYED_KEY, &deployed.sha).await?;
            }
        }
        report.announced = self.post_due(&cfg, conv).await?;
        Ok(report)
    }

    /// The DAG-touching commits between `from` and `to`, recorded as pending; their shas.
    async fn record_move(
        &self,
        cfg: &DagSyncConfig,
        from: &str,
        to: &str,
    ) -> Result<Vec<String>, SyncPollError> {
        let gh = &self.ctx.integrations.github;
        let (comparison, touching) = tokio::join!(
            gh.compare(&cfg.repo, from, to),
            gh.commits_touching(&cfg.repo, to, &cfg.dag_folder, 100),
        );
        let touching = touching?;
        let arrived = match comparison? {
            // `ahead` (dag-sync moved forward) and `diverged` (a checkout with commits of its own
            // that dag-sync reset onto the branch): the commits listed are the ones that arrived.
            Some(c) if c.status == "ahead" || c.status == "diverged" => c.commits,
            // Moved back, or nowhere: nothing new was deployed.
            Some(_) => Vec::new(),
            // GitHub does not know `from` (a commit made on the host only): the move's own
            // commit is all that can be said to have arrived.
            None => {
                tracing::warn!(
                    from,
                    to,
                    "dag-sync announcer: GitHub cannot compare the move; considering only its last commit"
                );
                touching.iter().filter(|c| c.sha == to).cloned().collect()
            }
        };
        let touched: HashSet<&str> = touching.iter().map(|c| c.sha.as_str()).collect();
        let commits: Vec<(String, String)> = arrived
            .into_iter()
            .filter(|c| touched.contains(c.sha.as_str()))
            .map(|c| (c.sha, c.subject))
            .collect();
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        // What Airflow has now; what it has later and not now arrived with these commits.
        let before = match self.ctx.integrations.airflow.list_dags().await {
            Ok(dags) => Some(dags.into_iter().map(|d| d.dag_id).collect::<Vec<_>>()),
            Err(e) => {
                tracing::warn!(error = %e, "dag-sync announcer: Airflow did not answer; new DAGs of this move will not be linked");
                None
            }
        };
        let fresh = self
            .ctx
            .store
            .record_synced_commits(&commits, now_ms(), before.as_deref())
            .await?;
        Ok(commits
            .into_iter()
            .zip(fresh)
            .filter(|(_, f)| *f)
            .map(|((sha, _), _)| sha)
            .collect())
    }

    /// Posts the pending commits whose wait is over, oldest first.
    async fn post_due(
        &self,
        cfg: &DagSyncConfig,
        conv: &dyn Conversation,
    ) -> Result<Vec<DeployedAnnouncement>, SyncPollError> {
        let now = now_ms();
        let wait = i64::try_from(cfg.announce_after.as_millis()).unwrap_or(i64::MAX);
        let pending = self.ctx.store.pending_synced_commits().await?;
        let due: Vec<&SyncedCommit> = pending
            .iter()
            .filter(|c| now.saturating_sub(c.detected_ms) >= wait)
            .take(POSTS_PER_POLL)
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let airflow = &self.ctx.integrations.airflow;
        let dags = match airflow.list_dags().await {
            Ok(d) => Some(d),
            Err(e) => {
                let patience = wait.max(1).saturating_mul(i64::from(AIRFLOW_PATIENCE));
                if due
                    .iter()
                    .all(|c| now.saturating_sub(c.detected_ms) < patience)
                {
                    tracing::debug!(error = %e, "dag-sync announcer: Airflow did not answer; waiting");
                    return Ok(Vec::new());
                }
                None
            }
        };
        let mut out = Vec::new();
        for c in due {
            // Several commits seen in one move share its new DAGs: the newest of them gets them.
            let last_of_move = !pending
                .iter()
                .any(|p| p.detected_ms == c.detected_ms && p.position > c.position);
            let new_dags = match (&dags, &c.dags_before) {
                (Some(now_dags), Some(before)) if last_of_move => {
                    let before: HashSet<&str> = before.iter().map(String::as_str).collect();
                    Some(
                        now_dags
                            .iter()
                            .filter(|d| !before.contains(d.dag_id.as_str()))
                            .cloned()
                            .collect::<Vec<_>>(),
                    )
                }
                (Some(_), Some(_)) => Some(Vec::new()),
                _ => None,
            };
            if !self.ctx.store.claim_synced_commit(&c.sha).await? {
                continue; // posted by another process
            }
            let a = self.announcement(c, new_dags).await;
            conv.announce_deployed(&a).await;
            out.push(a);
        }
        Ok(out)
    }

    async fn announcement(
        &self,
        c: &SyncedCommit,
        new_dags: Option<Vec<crate::integrations::airflow::Dag>>,
    ) -> DeployedAnnouncement {
        let prefix = &self.ctx.config.chat.prefix;
        let mut lines = vec![format!("🔄 Deployed: {} ({})", c.subject, short(&c.sha))];
        let mut enable = Vec::new();
        match new_dags {
            None => lines.push(format!(
                "(Airflow did not answer, so the DAGs this brought are not known; new paused DAGs \
                 are announced on their own. `{prefix}dags new` lists them.)"
            )),
            Some(mut dags) => {
                dags.sort_by(|a, b| a.dag_id.cmp(&b.dag_id));
                for d in dags {
                    if !d.is_paused {
                        lines.push(format!("New DAG `{}` is already enabled.", d.dag_id));
                        continue;
                    }
                    let backfill = match self.ctx.integrations.airflow.dag_details(&d.dag_id).await
                    {
                        Ok(Some(details)) => details.catchup_backfill(now_ms()),
                        Ok(None) | Err(_) => None,
                    };
                    let (command, warning) = match &backfill {
                        Some(b) => (
                            format!("{prefix}dag enable {} --confirm", d.dag_id),
                            format!(" ⚠️ enabling starts a catchup backfill: {}.", b.describe()),
                        ),
                        None => (format!("{prefix}dag enable {}", d.dag_id), String::new()),
                    };
                    let schedule = d
                        .schedule
                        .as_deref()
                        .map_or("no schedule (runs only when triggered)".to_string(), |s| {
                            format!("schedule {s}")
                        });
                    lines.push(format!(
                        "🆕 New DAG `{}` is paused · {schedule}.{warning} Enable it with \
                         `{command}`.",
                        d.dag_id
                    ));
                    enable.push(EnableAction {
                        button_id: format!("dag:enable:{}", d.dag_id),
                        dag_id: d.dag_id,
                        command,
                    });
                }
            }
        }
        DeployedAnnouncement {
            sha: c.sha.clone(),
            subject: c.subject.clone(),
            text: self.ctx.redactor.redact(&lines.join("\n")),
            enable,
        }
    }

    /// Polls every `[watch] poll_interval` until `cancel`, backing off while something it needs
    /// does not answer ([`poll::every`]); ends at once without `[dag_sync]`.
    pub async fn run(&self, conv: &dyn Conversation, cancel: CancellationToken) {
        let interval = self.ctx.config.watch.poll_interval;
        poll::every("dag-sync announcer", interval, &cancel, || async {
            let report = self.poll_once(conv).await?;
            Ok::<_, SyncPollError>(if report.disabled {
                Next::Stop
            } else {
                Next::Again
            })
        })
        .await
    }
}

/// Starts the dag-sync announcer in the background (it ends at once without `[dag_sync]`);
/// cancelling the token stops it.
pub fn spawn(
    ctx: Ctx,
    conv: std::sync::Arc<dyn Conversation>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        DagSyncAnnouncer::new(ctx).run(conv.as_ref(), cancel).await;
    })
}

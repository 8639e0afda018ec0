//! The new-DAG announcer: polls Airflow's DAG list (every page), remembers every DAG id in the
//! store's `seen_dags`, and announces each new DAG that is paused, once.
//!
//! - The first poll on an existing Airflow seeds the seen set without announcing (a flood of 40
//!   "new" DAGs helps nobody); the store remembers that seeding happened, so an Airflow that was
//!   empty at first does not make the next DAGs look like a seed.
//! - A DAG stays in the seen set when it disappears, so one that comes back is not new.
//! - Announcing is claimed in the store (`announced_ms`), so two replicas announce once.
//! - When Airflow is down the loop logs once per outage, backs off (doubling up to ten
//!   intervals) and posts nothing.

use tokio_util::sync::CancellationToken;

use super::poll::{self, Next};
use crate::backfill::Backfill;
use crate::context::Ctx;
use crate::conversation::{Announcement, Conversation};
use crate::integrations::UpstreamError;
use crate::store::{StoreError, now_ms};

/// The store key that says the seen set has been seeded.
const SEEDED_KEY: &str = "announcer.seeded";

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollReport {
    pub dags: usize,
    /// This poll seeded the seen set (nothing announced).
    pub seeded: bool,
    pub new: Vec<String>,
    pub announced: Vec<Announcement>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Announcer {
    ctx: Ctx,
}

impl Announcer {
    pub fn new(ctx: Ctx) -> Announcer {
        Announcer { ctx }
    }

    /// Polls once: reads every DAG, records them, posts an announcement for each new paused one
    /// (when `[watch] announce` is on) and returns what happened.
    pub async fn poll_once(&self, conv: &dyn Conversation) -> Result<PollReport, PollError> {
        let dags = self.ctx.integrations.airflow.list_dags().await?;
        let store = &self.ctx.store;
        let seen = store.seen_dags().await?;
        let seeded_before = store.state(SEEDED_KEY).await?.is_some() || !seen.is_empty();
        let rows: Vec<(String, bool)> = dags
            .iter()
            .map(|d| (d.dag_id.clone(), d.is_paused))
            .collect();
        let mut report = PollReport {
            dags: dags.len(),
            seeded: !seeded_before,
            ..PollReport::default()
        };
        store.record_seen(&rows, !seeded_before).await?;
        if !seeded_before {
            store.set_state(SEEDED_KEY, &now_ms().to_string()).await?;
            tracing::info!(
                dags = dags.len(),
                "seeded the seen-DAG set; nothing announced"
            );
            return Ok(report);
        }
        let new: Vec<_> = dags
            .iter()
            .filter(|d| !seen.contains_key(&d.dag_id))
            .collect();
        report.new = new.iter().map(|d| d.dag_id.clone()).collect();
        for dag in new {
            if !dag.is_paused {
                // Already running (someone enabled it, or paused-at-creation is off): nothing to
                // ask anyone; record it as announced so it never comes up later.
                store.mark_announced(&dag.dag_id).await?;
                continue;
            }
            if !self.ctx.config.watch.announce {
                continue;
            }
            if !store.mark_announced(&dag.dag_id).await? {
                continue; // another replica announced it
            }
            let backfill = match self.ctx.integrations.airflow.dag_details(&dag.dag_id).await {
                Ok(Some(d)) => d.catchup_backfill(now_ms()),
                // The announcement matters more than the estimate: go without it.
                Ok(None) | Err(_) => None,
            };
            let a = self.announcement(&dag.dag_id, dag.schedule.clone(), backfill);
            conv.announce(&a).await;
            report.announced.push(a);
        }
        Ok(report)
    }

    fn announcement(
        &self,
        dag_id: &str,
        schedule: Option<String>,
        backfill: Option<Backfill>,
    ) -> Announcement {
        let prefix = &self.ctx.config.chat.prefix;
        let schedule_text = schedule
            .as_deref()
            .map_or("no schedule (runs only when triggered)".to_string(), |s| {
                format!("schedule {s}")
            });
        let (enable_command, warning) = match &backfill {
            Some(b) => (
                format!("{prefix}dag enable {dag_id} --confirm"),
                format!("\n⚠️ Enabling starts a catchup backfill: {}.", b.describe()),
            ),
            None => (format!("{prefix}dag enable {dag_id}"), String::new()),
        };
        let text = format!(
            "🆕 New DAG `{dag_id}` is paused · {schedule_text}.{warning}\n\
             Enable it with `{enable_command}`."
        );
        Announcement {
            dag_id: dag_id.to_string(),
            schedule,
            backfill,
            text: self.ctx.redactor.redact(&text),
            enable_command,
            button_id: format!("dag:enable:{dag_id}"),
        }
    }

    /// Polls every `[watch] poll_interval` until `cancel`; survives Airflow being down
    /// ([`poll::every`]).
    pub async fn run(&self, conv: &dyn Conversation, cancel: CancellationToken) {
        let interval = self.ctx.config.watch.poll_interval;
        poll::every("DAG announcer", interval, &cancel, || async {
            self.poll_once(conv).await.map(|_| Next::Again)
        })
        .await
    }
}

/// Starts the announcer in the background; cancelling the token stops it.
pub fn spawn(
    ctx: Ctx,
    conv: std::sync::Arc<dyn Conversation>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        Announcer::new(ctx).run(conv.as_ref(), cancel).await;
    })
}

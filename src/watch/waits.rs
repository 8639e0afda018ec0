//! The waits watcher: what a long-running process does for deploys that nobody's command is
//! driving. Every `[deploy] when_idle_poll` it sweeps for deploys whose owner died (recovery),
//! unpauses what ended or interrupted deploys left paused (`pause_during_deploy`), and looks at
//! the deploys waiting for DAG runs (`--when-idle`), starting those whose runs are over and ending
//! those past their deadline. Run on the watchers' leader only, so replicas never race (the
//! deploy's compare-and-set would stop a second starter anyway).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::waiting::{self, WaitsReport};
use crate::deploy::{pauses, recovery};

/// One round: recovery, leftover pauses, waiting deploys.
pub async fn tick(ctx: &Ctx, conv: Arc<dyn Conversation>) -> crate::store::Result<WaitsReport> {
    let interrupted = recovery::sweep(&ctx.store, ctx.config.deploy.lease).await?;
    for (d, reason) in interrupted {
        conv.post(&format!(
            "⚠️ Deploy #{} ({} {}) was interrupted: {reason}. Its lock stays held; check reality, \
             then `{}deploy resolve {} succeeded|failed`.",
            d.id, d.target, d.version, ctx.config.chat.prefix, d.id
        ))
        .await;
    }
    pauses::settle_leftovers(ctx, Some(conv.as_ref())).await;
    waiting::check_waiting(ctx, conv).await
}

/// Runs [`tick`] every `[deploy] when_idle_poll` until `cancel`.
pub fn spawn(
    ctx: Ctx,
    conv: Arc<dyn Conversation>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = ctx.config.deploy.when_idle_poll;
        loop {
            match tick(&ctx, conv.clone()).await {
                Ok(r) if !r.started.is_empty() || !r.blocked.is_empty() => {
                    tracing::info!(started = ?r.started, blocked = ?r.blocked, "waiting deploys")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the waits watcher failed; trying again"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

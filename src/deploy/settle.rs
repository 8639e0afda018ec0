//! Ending a deploy from outside its flow: `!deploy cancel` before apply starts, and
//! `!deploy resolve` for an interrupted deploy once a maintainer has checked reality. Both are a
//! compare-and-set from the states the state machine allows, so a deploy that moved on meanwhile
//! is reported, never overwritten.

use crate::command::Resolution;
use crate::deploy::state::{DeployState, Event};
use crate::reply::{Outcome, Reply};

use super::journal::describe_state;
use super::workflow::{Flow, Workflow};

impl Workflow<'_> {
    /// `!deploy cancel <id>`: before apply it ends the deploy and releases the lock.
    pub async fn cancel(&self, id: i64) -> Reply {
        match self.cancel_inner(id).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn cancel_inner(&self, id: i64) -> Flow<Reply> {
        self.sweep().await?;
        let d = self.existing(id).await?;
        match d.state {
            s if s.is_cancellable() => {}
            DeployState::Interrupted => {
                return Ok(Reply::new(
                    Outcome::Blocked,
                    format!(
                        "Deploy #{id} was interrupted; check reality and settle it with \
                         `{}deploy resolve {id} succeeded|failed`.",
                        self.prefix()
                    ),
                )
                .with_deploy(id));
            }
            s if s.is_final() => {
                return Ok(Reply::new(
                    Outcome::Blocked,
                    format!("Deploy #{id} is already {}.", describe_state(&d)),
                )
                .with_deploy(id));
            }
            // Approved, applying or verifying.
            _ => {
                return Ok(Reply::new(
                    Outcome::Blocked,
                    format!(
                        "Deploy #{id} is {}: apply has started and cannot be cancelled half-way. \
                         It ends by itself (step timeout {}).",
                        describe_state(&d),
                        humantime::format_duration(self.target(&d.target)?.step_timeout)
                    ),
                )
                .with_deploy(id));
            }
        }
        let reason = format!("cancelled by {}", self.actor.name);
        if !self
            .transition(
                &d,
                &Event::Cancelled.sources(),
                Event::Cancelled,
                Some(&reason),
            )
            .await?
        {
            let now = self.reload(id).await?;
            return Ok(Reply::new(
                Outcome::Blocked,
                format!(
                    "Deploy #{id} moved on meanwhile: it is {}.",
                    describe_state(&now)
                ),
            ));
        }
        // A step running in another process stops at its next transition and releases its
        // lease; the lock is ours to release now that the deploy is final.
        self.release_lock(&d).await;
        super::pauses::unpause_after(self.ctx, &d, Some(self.conv)).await;
        Ok(Reply::ok(format!(
            "🛑 Deploy #{id} of {} {} cancelled by {}. The lock is released.",
            d.target, d.version, self.actor.name
        ))
        .with_deploy(id))
    }

    /// `!deploy resolve <id> succeeded|failed`: settles an interrupted deploy.
    pub async fn resolve(&self, id: i64, resolution: Resolution) -> Reply {
        match self.resolve_inner(id, resolution).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn resolve_inner(&self, id: i64, resolution: Resolution) -> Flow<Reply> {
        self.sweep().await?;
        let d = self.existing(id).await?;
        if d.state != DeployState::Interrupted {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!(
                    "Deploy #{id} is {}; only an interrupted deploy can be resolved.",
                    describe_state(&d)
                ),
            )
            .with_deploy(id));
        }
        let (event, word) = match resolution {
            Resolution::Succeeded => (Event::ResolvedSucceeded, "succeeded"),
            Resolution::Failed => (Event::ResolvedFailed, "failed"),
        };
        let reason = format!(
            "resolved as {word} by {} after an interruption",
            self.actor.name
        );
        if !self
            .transition(&d, &[DeployState::Interrupted], event, Some(&reason))
            .await?
        {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!("Deploy #{id} was resolved meanwhile."),
            ));
        }
        self.release_lock(&d).await;
        super::pauses::unpause_after(self.ctx, &d, Some(self.conv)).await;
        Ok(Reply::ok(format!(
            "Deploy #{id} of {} {} resolved as {word} by {}. The lock is released.",
            d.target, d.version, self.actor.name
        ))
        .with_deploy(id))
    }
}

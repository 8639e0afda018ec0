//! How the workflow records what happens: every transition is a compare-and-set in the store
//! with its journal row and audit event in one transaction, written before the message that
//! announces it; the status card is redrawn from the store afterwards. Also the endings the
//! workflow shares: failing, being interrupted at shutdown, finding the deploy moved elsewhere.

use crate::config::TargetConfig;
use crate::deploy::fingerprint::ApplyCheck;
use crate::deploy::recovery;
use crate::deploy::runner::StepError;
use crate::deploy::state::{DeployState, Event, journal_step, next};
use crate::deploy::step::Step;
use crate::reply::{Outcome, Reply};
use crate::store::{Deploy, Lock, NewAuditEvent, Owner, StoreError, now_ms};
use crate::timefmt;

use super::workflow::{Flow, Workflow, lock_key};

impl Workflow<'_> {
    pub(super) fn prefix(&self) -> &str {
        &self.ctx.config.chat.prefix
    }

    pub(super) fn store_error(&self, e: StoreError) -> Reply {
        tracing::error!(error = %e, "store error in the deploy workflow");
        Reply::new(
            Outcome::Failed,
            format!(
                "The store failed ({}); the deploy stops here and its lock stays held. Check \
                 `{}deploy status` and `{}locks`.",
                self.ctx.redactor.redact(&e.to_string()),
                self.prefix(),
                self.prefix()
            ),
        )
    }

    pub(super) fn target(&self, name: &str) -> Flow<&TargetConfig> {
        self.ctx.config.targets.get(name).ok_or_else(|| {
            Reply::new(
                Outcome::Invalid,
                format!("Unknown target `{name}`: it is no longer configured."),
            )
        })
    }

    /// Marks dead owners' deploys interrupted and tells this conversation about them.
    pub(super) async fn sweep(&self) -> Flow<()> {
        let found = recovery::sweep(&self.ctx.store, self.ctx.config.deploy.lease)
            .await
            .map_err(|e| self.store_error(e))?;
        for (d, reason) in found {
            self.conv
                .post(&format!(
                    "⚠️ Deploy #{} ({} {}) was interrupted: {reason}. Its lock stays held; check \
                     reality, then `{}deploy resolve {} succeeded|failed`.",
                    d.id,
                    d.target,
                    d.version,
                    self.prefix(),
                    d.id
                ))
                .await;
        }
        // What ended or interrupted deploys left paused (pause_during_deploy) is unpaused.
        super::pauses::settle_leftovers(self.ctx, Some(self.conv)).await;
        Ok(())
    }

    /// Journals `event` happening to `d` (compare-and-set from any of `from`, all of which the
    /// event must lead to the same state) and audits it; false when the deploy had already moved
    /// on (cancelled or interrupted elsewhere).
    pub(super) async fn transition(
        &self,
        d: &Deploy,
        from: &[DeployState],
        event: Event,
        reason: Option<&str>,
    ) -> Flow<bool> {
        let to = event.target();
        if let Some(bad) = from.iter().find(|f| next(**f, event).is_none()) {
            // A bug in the workflow, not a race: nothing is written.
            tracing::error!(deploy_id = d.id, from = %bad, ?event, "no such transition");
            return Err(Reply::new(
                Outcome::Failed,
                format!(
                    "Deploy #{} cannot move from {bad} to {to}: the deploy workflow has no such \
                     step. It stops here; check `{}deploy status {}`.",
                    d.id,
                    self.prefix(),
                    d.id
                ),
            ));
        }
        let step = journal_step(d.state, event);
        let reason = reason.map(|r| self.ctx.redactor.redact(r));
        let audit = NewAuditEvent {
            deploy_id: Some(d.id),
            outcome: Some(to.as_str().into()),
            detail: serde_json::json!({
                "to": to.as_str(),
                "step": step.map(Step::as_str),
                "reason": reason,
            }),
            ..self.event("deploy.transition", d)
        };
        let moved = self
            .ctx
            .store
            .transition(d.id, from, to, step, reason.as_deref(), Some(&audit))
            .await
            .map_err(|e| self.store_error(e))?;
        if moved {
            if to.is_final() || to == DeployState::AwaitingApproval {
                crate::metrics::deploy_reached(to.as_str());
            }
            self.refresh_card(d.id).await;
        }
        Ok(moved)
    }

    /// Moves a deploy this process owns by `event` from where it is; when someone else moved it
    /// first (a cancel, an interruption) the work stops with the reply that says so.
    pub(super) async fn advance(
        &self,
        d: &mut Deploy,
        event: Event,
        reason: Option<&str>,
        owner: &Owner,
    ) -> Flow<()> {
        if !self.transition(d, &[d.state], event, reason).await? {
            return Err(self.moved_elsewhere(d.id, owner).await);
        }
        d.step = journal_step(d.state, event).map(|s| s.as_str().to_string());
        d.state = event.target();
        Ok(())
    }

    /// Redraws the deploy's status card from the store (after the change was written).
    /// Records what Terraform reported after the `yes` against the approved plan: in the
    /// journal (the card and `!deploy status` show it) and the audit log; anything but the
    /// approved counts is also posted.
    pub(super) async fn record_apply_check(&self, d: &Deploy, check: &ApplyCheck) -> Flow<()> {
        let sentence = check.sentence();
        let mut detail = check.detail();
        detail["reason"] = sentence.clone().into();
        detail["apply_check"] = check.kind().into();
        if let Err(e) = self
            .ctx
            .store
            .record_step_output(d.id, Step::Apply, check.kind(), None, "", now_ms(), &detail)
            .await
        {
            tracing::error!(error = %e, "cannot journal the apply check");
        }
        self.ctx
            .store
            .append_audit(&NewAuditEvent {
                deploy_id: Some(d.id),
                outcome: Some(check.kind().into()),
                detail,
                ..self.event("deploy.apply_check", d)
            })
            .await
            .map_err(|e| self.store_error(e))?;
        if check.needs_attention() {
            tracing::warn!(deploy_id = d.id, check = check.kind(), "{sentence}");
            self.conv
                .post(&format!("🚨 Deploy #{}: {sentence}", d.id))
                .await;
        }
        self.refresh_card(d.id).await;
        Ok(())
    }

    /// Keeps deploy `id`'s preflight report and the image digest it found: the card, the plan's
    /// fingerprint and the approval read them from the store, whichever process runs them.
    pub(super) async fn keep_preflight(
        &self,
        id: i64,
        report: &super::preflight::Report,
    ) -> Flow<()> {
        let report_json = serde_json::to_value(report).unwrap_or_default();
        self.ctx
            .store
            .set_deploy_facts(id, report.image_digest.as_deref(), Some(&report_json), None)
            .await
            .map_err(|e| self.store_error(e))
    }

    pub(super) async fn refresh_card(&self, id: i64) {
        let Ok(d) = self.ctx.store.get_deploy(id).await else {
            return;
        };
        let needed = self
            .ctx
            .config
            .targets
            .get(d.as_ref().map(|d| d.target.as_str()).unwrap_or(""))
            .map_or(1, |t| t.approvals);
        match crate::deploy::card::build(&self.ctx.store, id, needed).await {
            Ok(Some(mut card)) => {
                // Discord's 2,000 characters fall short of a deploy's story: link its page.
                if let Some(url) = crate::links::deploy_page(&self.ctx.config, id) {
                    card.lines.push(format!("📄 {url}"));
                }
                self.conv.deploy_card(&card).await
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(deploy_id = id, error = %e, "cannot build the status card"),
        }
    }

    /// An audit event about deploy `d` by this command's actor; callers fill in the rest.
    pub(super) fn event(&self, kind: &str, d: &Deploy) -> NewAuditEvent {
        NewAuditEvent {
            deploy_id: Some(d.id),
            ..self.target_event(kind, &d.target)
        }
    }

    /// An event by this actor about `target`, before a deploy id exists.
    pub(super) fn target_event(&self, kind: &str, target: &str) -> NewAuditEvent {
        NewAuditEvent {
            kind: kind.into(),
            source: self.actor.source.name().into(),
            actor: self.actor.name.clone(),
            os_user: self.actor.source.os_user().map(str::to_string),
            roles: self.actor.roles.clone(),
            target: Some(target.to_string()),
            ..NewAuditEvent::default()
        }
    }

    /// The deploy as stored now.
    pub(super) async fn reload(&self, id: i64) -> Flow<Deploy> {
        self.ctx
            .store
            .get_deploy(id)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| {
                Reply::new(
                    Outcome::Failed,
                    format!("Deploy #{id} vanished from the store."),
                )
            })
    }

    /// The deploy a command names, or the sentence that it does not exist.
    pub(super) async fn existing(&self, id: i64) -> Flow<Deploy> {
        self.ctx
            .store
            .get_deploy(id)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| {
                Reply::new(
                    Outcome::Blocked,
                    format!(
                        "There is no deploy #{id}. `{}deploy history` lists the recent ones.",
                        self.prefix()
                    ),
                )
            })
    }

    /// Ends a deploy that was moved away by someone else while this process worked on it.
    pub(super) async fn moved_elsewhere(&self, id: i64, owner: &Owner) -> Reply {
        match self.reload(id).await {
            Ok(d) => {
                self.ended(&d, Some(owner)).await;
                Reply::new(
                    Outcome::Failed,
                    format!(
                        "Deploy #{id} stopped: it is now {}{}.",
                        d.state,
                        d.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                )
                .with_deploy(id)
            }
            Err(r) => r,
        }
    }

    /// The one ending path. Every deploy that stops, however it stops — succeeded, failed,
    /// cancelled (here or from another process), interrupted, resolved, or left running for the
    /// next process at a shutdown — passes here once its state is written, from the workflow of
    /// the process that ran it, of the process that re-attached to it, or of `!deploy
    /// cancel`/`resolve`. It gives up `owner`'s lease and, when the deploy is final, releases the
    /// target's lock; an interrupted deploy keeps its lock until a maintainer resolves it.
    /// (Whatever else a deploy must undo when it ends belongs here, so that no ending skips it.)
    pub(super) async fn ended(&self, d: &Deploy, owner: Option<&Owner>) {
        if let Some(owner) = owner
            && let Err(e) = self.ctx.store.release_lease(d.id, owner).await
        {
            tracing::warn!(error = %e, deploy_id = d.id, "cannot give up the lease");
        }
        // The state as stored decides, not the caller's copy: another process may have moved it.
        let now = match self.ctx.store.get_deploy(d.id).await {
            Ok(Some(now)) => now,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, deploy_id = d.id, "cannot read the deploy at its end");
                return;
            }
        };
        if now.state.is_final() {
            let key = lock_key(&now.target, &now.environment);
            if let Err(e) = self.ctx.store.release_lock(&key, Some(now.id)).await {
                tracing::error!(error = %e, deploy_id = d.id, "cannot release the lock");
            }
        }
        // Whatever the deploy paused for its apply (pause_during_deploy) is unpaused once it
        // has stopped for good, or stopped with an unknown outcome (interrupted): a deploy left
        // running for the next process keeps its pauses.
        if now.state.is_final() || now.state == DeployState::Interrupted {
            super::pauses::unpause_after(self.ctx, &now, Some(self.conv)).await;
        }
    }

    /// Fails the deploy at its current step with `reason`, releases its lock and lease.
    pub(super) async fn fail(&self, d: &Deploy, reason: &str, owner: &Owner) -> Reply {
        self.fail_at(d, d.state.step(), reason, owner).await
    }

    /// [`Workflow::fail`] naming the step that failed where the state does not: the pause and
    /// the Ansible flow's second dry run run while the deploy is `approved`, and "failed at
    /// approval" would send a reader to the approvals.
    pub(super) async fn fail_at(
        &self,
        d: &Deploy,
        step: Option<Step>,
        reason: &str,
        owner: &Owner,
    ) -> Reply {
        let step = step.map_or("its start", Step::as_str);
        let moved = match self
            .transition(d, &[d.state], Event::Failed, Some(reason))
            .await
        {
            Ok(m) => m,
            Err(r) => return r,
        };
        if !moved {
            return self.moved_elsewhere(d.id, owner).await;
        }
        self.ended(d, Some(owner)).await;
        Reply::new(
            Outcome::Failed,
            format!(
                "❌ Deploy #{} of {} {} failed at {step}: {}. The lock is released.",
                d.id,
                d.target,
                d.version,
                self.ctx.redactor.redact(reason)
            ),
        )
        .with_deploy(d.id)
    }

    /// Ends the deploy for a step that produced no outcome: failed when it could not run;
    /// interrupted (lock kept) when the bot shut down around it.
    pub(super) async fn step_error(&self, d: &Deploy, e: StepError, owner: &Owner) -> Reply {
        let reason = match e {
            StepError::Failed(reason) => reason,
            StepError::ShutDown(reason) => {
                self.interrupt(d, &Event::ShutDown, &reason).await;
                reason
            }
            StepError::Lost(reason) => {
                self.interrupt(d, &Event::OwnerLost, &reason).await;
                self.ended(d, Some(owner)).await;
                return Reply::new(
                    Outcome::Failed,
                    format!(
                        "⚠️ Deploy #{} ({} {}) was interrupted: {reason}. Its lock stays held; \
                         check reality, then `{}deploy resolve {} succeeded|failed`.",
                        d.id,
                        d.target,
                        d.version,
                        self.prefix(),
                        d.id
                    ),
                )
                .with_deploy(d.id);
            }
            StepError::LeftRunning(reason) => {
                // Nothing is decided: the deploy stays where it is for the next process to take
                // over at its start. The lease stays too: it names this process, whose pid is
                // gone as soon as it exits, and until then nobody else should take the deploy.
                let _ = owner;
                self.ended(d, None).await;
                return Reply::new(
                    Outcome::Failed,
                    format!(
                        "⏸️ Deploy #{} of {} {} is still at {}: {reason}. Its lock stays held; \
                         `{}deploy status {}` tells how it went once a bot process is back.",
                        d.id,
                        d.target,
                        d.version,
                        d.state,
                        self.prefix(),
                        d.id
                    ),
                )
                .with_deploy(d.id);
            }
        };
        // After an interruption the deploy has moved: this says so and releases the lease.
        self.fail(d, &reason, owner).await
    }

    /// Records the deploy interrupted: the process is shutting down around an attached step
    /// (`ShutDown`), or a detached step's supervisor and step are gone without a status
    /// (`OwnerLost`). The lock stays held: what the step did is unknown until a maintainer
    /// checks reality.
    async fn interrupt(&self, d: &Deploy, event: &Event, reason: &str) {
        let event = *event;
        if let Err(r) = self
            .transition(d, &event.sources(), event, Some(reason))
            .await
        {
            tracing::error!(deploy_id = d.id, reply = %r.message, "cannot record the interruption");
        }
    }

    /// The deploy just created, or (as the answer) that its target's lock is held by another.
    pub(super) fn created(
        &self,
        created: crate::store::Result<std::result::Result<Deploy, Lock>>,
    ) -> Flow<Deploy> {
        match created.map_err(|e| self.store_error(e))? {
            Ok(d) => Ok(d),
            Err(held) => Err(self.lock_held(&held)),
        }
    }

    pub(super) fn lock_held(&self, held: &Lock) -> Reply {
        let deploy = held
            .deploy_id
            .map(|id| format!(" for deploy #{id}"))
            .unwrap_or_default();
        Reply::new(
            Outcome::Blocked,
            format!(
                "Blocked: `{}` is locked by {}{deploy} since {} ({}): {}. See `{}deploy status`.",
                held.key,
                held.holder,
                timefmt::utc(held.acquired_ms),
                timefmt::ago(held.acquired_ms, now_ms()),
                held.reason,
                self.prefix()
            ),
        )
    }
}

/// `v1.2.3 (reason)`: a deploy's state and why, for replies.
pub(super) fn describe_state(d: &Deploy) -> String {
    match &d.reason {
        Some(r) => format!("{} ({r})", d.state),
        None => d.state.to_string(),
    }
}

/// The first characters of a fingerprint, as chat shows it.
pub(super) fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

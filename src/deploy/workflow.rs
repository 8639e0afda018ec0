//! The deploy workflow (ARCHITECTURE.md): preflight → lock → bump → plan → awaiting approval →
//! approved (by others, bound to the plan's fingerprint) → apply → verify → succeeded; any state
//! → failed | cancelled | interrupted.
//!
//! Every transition is a compare-and-set in the store plus an audit event, written before the
//! message that announces it. A process that runs a step holds the deploy's lease; the workflow
//! rests (and gives the lease up) while it waits for approval, so a later process — another
//! `exec`, a restarted bot, a replica — continues from the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::command::Resolution;
use crate::config::TargetConfig;
use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::fingerprint::Plan;
use crate::deploy::{preflight, recovery};
use crate::integrations::infra::{
    self, PromptAnswer, PromptContext, StepEvent, StepOutcome, StepSpec,
};
use crate::policy::Actor;
use crate::reply::{Outcome, Reply};
use crate::store::{Approval, Deploy, DeployState, NewAuditEvent, NewDeploy, Owner, now_ms};
use crate::timefmt;
use crate::version::Version;

/// At most this many output lines are posted per batch; the whole output is stored.
const LINES_PER_POST: usize = 15;
/// Output is posted at most this often, so a chatty step does not flood the conversation.
const POST_INTERVAL: Duration = Duration::from_secs(2);
/// How many of a failed step's last lines the failure message quotes.
const FAILURE_LINES: usize = 10;
/// How often verify asks Airflow for its health.
const VERIFY_POLL: Duration = Duration::from_secs(5);

/// The lock that serialises deploys of one target in one environment.
pub fn lock_key(target: &str, environment: &str) -> String {
    format!("{target}/{environment}")
}

/// One command's view of the workflow: who acts, where to speak.
pub struct Workflow<'a> {
    pub ctx: &'a Ctx,
    pub actor: &'a Actor,
    pub conv: &'a dyn Conversation,
}

/// Renews a deploy's lease while a step runs; stops when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Flow<T> = Result<T, Reply>;

impl Workflow<'_> {
    fn prefix(&self) -> &str {
        &self.ctx.config.chat.prefix
    }

    fn store_error(&self, e: crate::store::StoreError) -> Reply {
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

    fn target(&self, name: &str) -> Flow<&TargetConfig> {
        self.ctx.config.targets.get(name).ok_or_else(|| {
            Reply::new(
                Outcome::Invalid,
                format!("Unknown target `{name}`: it is no longer configured."),
            )
        })
    }

    /// Marks dead owners' deploys interrupted and tells this conversation about them.
    async fn sweep(&self) -> Flow<()> {
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
        Ok(())
    }

    /// Journals a transition (compare-and-set from `from`) and audits it; false when the deploy
    /// had already moved on (cancelled or interrupted elsewhere).
    async fn transition(
        &self,
        d: &Deploy,
        from: &[DeployState],
        to: DeployState,
        step: Option<&str>,
        reason: Option<&str>,
    ) -> Flow<bool> {
        let reason = reason.map(|r| self.ctx.redactor.redact(r));
        let event = NewAuditEvent {
            deploy_id: Some(d.id),
            outcome: Some(to.as_str().into()),
            detail: serde_json::json!({ "to": to.as_str(), "step": step, "reason": reason }),
            ..self.event("deploy.transition", d)
        };
        let moved = self
            .ctx
            .store
            .transition(d.id, from, to, step, reason.as_deref(), Some(&event))
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

    /// Redraws the deploy's status card from the store (after the change was written).
    async fn refresh_card(&self, id: i64) {
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
    fn event(&self, kind: &str, d: &Deploy) -> NewAuditEvent {
        NewAuditEvent {
            deploy_id: Some(d.id),
            ..self.target_event(kind, &d.target)
        }
    }

    /// An event by this actor about `target`, before a deploy id exists.
    fn target_event(&self, kind: &str, target: &str) -> NewAuditEvent {
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
    async fn reload(&self, id: i64) -> Flow<Deploy> {
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

    /// Ends a deploy that was moved away by someone else while this process worked on it.
    async fn moved_elsewhere(&self, id: i64, owner: &Owner) -> Reply {
        let _ = self.ctx.store.release_lease(id, owner).await;
        match self.reload(id).await {
            Ok(d) => {
                if d.state == DeployState::Cancelled {
                    self.release_lock(&d).await;
                }
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

    async fn release_lock(&self, d: &Deploy) {
        let key = lock_key(&d.target, &d.environment);
        if let Err(e) = self.ctx.store.release_lock(&key, Some(d.id)).await {
            tracing::error!(error = %e, deploy_id = d.id, "cannot release the lock");
        }
    }

    /// Moves a deploy this process owns from `from` to `to`; when someone else moved it first
    /// (a cancel, an interruption) the work stops with the reply that says so.
    async fn advance(
        &self,
        d: &Deploy,
        from: DeployState,
        to: DeployState,
        step: Option<&str>,
        reason: Option<&str>,
        owner: &Owner,
    ) -> Flow<()> {
        if self.transition(d, &[from], to, step, reason).await? {
            Ok(())
        } else {
            Err(self.moved_elsewhere(d.id, owner).await)
        }
    }

    /// Fails the deploy at `step` with `reason`, releases its lock and lease.
    async fn fail(
        &self,
        d: &Deploy,
        from: DeployState,
        step: &str,
        reason: &str,
        owner: &Owner,
    ) -> Reply {
        let moved = match self
            .transition(d, &[from], DeployState::Failed, Some(step), Some(reason))
            .await
        {
            Ok(m) => m,
            Err(r) => return r,
        };
        if !moved {
            return self.moved_elsewhere(d.id, owner).await;
        }
        self.release_lock(d).await;
        let _ = self.ctx.store.release_lease(d.id, owner).await;
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

    fn heartbeat(&self, id: i64, owner: &Owner) -> Heartbeat {
        let store = self.ctx.store.clone();
        let owner = owner.clone();
        let every = (self.ctx.config.deploy.lease / 3).max(Duration::from_millis(200));
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.heartbeat(id, &owner).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(deploy_id = id, "lost the lease of the deploy");
                        return;
                    }
                    Err(e) => tracing::warn!(deploy_id = id, error = %e, "heartbeat failed"),
                }
            }
        }))
    }

    /// Runs one step, streaming its output in batches and journaling its end.
    async fn step(
        &self,
        d: &Deploy,
        name: &str,
        template: &[String],
        target: &TargetConfig,
        prompt: Option<infra::PromptHandler>,
    ) -> Result<StepOutcome, String> {
        let version =
            Version::parse(&d.version).map_err(|e| format!("stored version is not valid: {e}"))?;
        let spec = StepSpec::for_target(
            name,
            template,
            target,
            &version,
            (*self.ctx.redactor).clone(),
        )
        .map_err(|e| e.to_string())?;
        if self.ctx.shutdown.is_cancelled() {
            // A step that has not started is not started during a shutdown: the deploy is
            // recorded interrupted (lock kept) for a maintainer to pick up.
            let reason = format!("the bot shut down before {name} started");
            self.interrupt(d, name, &reason).await;
            return Err(reason);
        }
        self.conv
            .post(&format!(
                "▶️ Deploy #{}: running {name}: `{}`",
                d.id,
                spec.argv.join(" ")
            ))
            .await;
        let started = now_ms();
        let argv = spec.argv.clone();
        let pending: Arc<Mutex<Vec<String>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let run = {
            let pending = pending.clone();
            let done = done.clone();
            let wake = wake.clone();
            let name = name.to_string();
            async move {
                let result = infra::run_step(
                    &spec,
                    move |ev| {
                        let line = match ev {
                            StepEvent::Line { text, .. } => text.to_string(),
                            // The prompt's own text arrives as a line too; say only the answer.
                            StepEvent::Prompt { answer, .. } => format!(
                                "(the bot answered: {})",
                                answer.map_or("nothing", PromptAnswer::as_str)
                            ),
                            StepEvent::Started { pid } => {
                                tracing::info!(step = %name, pid, "step started");
                                return;
                            }
                        };
                        if let Ok(mut p) = pending.lock() {
                            p.push(line);
                        }
                    },
                    prompt,
                )
                .await;
                done.store(true, Ordering::SeqCst);
                wake.notify_one();
                result
            }
        };
        let post_batches = async {
            loop {
                let finished = done.load(Ordering::SeqCst);
                let lines: Vec<String> = pending
                    .lock()
                    .map(|mut p| std::mem::take(&mut *p))
                    .unwrap_or_default();
                if !lines.is_empty() {
                    self.conv.post(&batch_text(name, &lines)).await;
                }
                if finished {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POST_INTERVAL) => {}
                    _ = wake.notified() => {}
                }
            }
        };
        let grace = self.ctx.config.deploy.shutdown_grace;
        let guarded = async {
            let r = crate::shutdown::within_grace(run, &self.ctx.shutdown, grace).await;
            // When the grace ran out the step's future was dropped (killing its process group)
            // before it could say it was done.
            done.store(true, Ordering::SeqCst);
            wake.notify_one();
            r
        };
        let (result, ()) = tokio::join!(guarded, post_batches);
        let Some(result) = result else {
            let reason = format!(
                "the bot shut down while {name} ran; it was killed after the {} grace period",
                humantime::format_duration(grace)
            );
            let detail = serde_json::json!({ "argv": argv, "interrupted": true });
            if let Err(e) = self
                .ctx
                .store
                .record_step_output(d.id, name, "interrupted", None, "", started, &detail)
                .await
            {
                tracing::error!(error = %e, "cannot journal step output");
            }
            crate::metrics::step_finished(
                name,
                false,
                Duration::from_millis((now_ms() - started).max(0) as u64),
            );
            self.interrupt(d, name, &reason).await;
            return Err(reason);
        };
        let outcome = result.map_err(|e| e.to_string())?;
        crate::metrics::step_finished(name, outcome.success(), outcome.duration);
        let detail = serde_json::json!({
            "argv": argv,
            "timed_out": outcome.timed_out,
            "signal": outcome.signal,
            "answers": outcome.answers.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "duration_ms": outcome.duration.as_millis() as u64,
            "output_bytes": outcome.full_output_len,
        });
        if let Err(e) = self
            .ctx
            .store
            .record_step_output(
                d.id,
                name,
                if outcome.success() {
                    "succeeded"
                } else {
                    "failed"
                },
                outcome.exit_code.map(i64::from),
                &outcome.output_tail,
                started,
                &detail,
            )
            .await
        {
            tracing::error!(error = %e, "cannot journal step output");
        }
        Ok(outcome)
    }

    /// Records the deploy interrupted at `step` because the process is shutting down. The lock
    /// stays held: what the killed step did is unknown until a maintainer checks reality. The
    /// caller's later transition to failed then finds the deploy moved and says so.
    async fn interrupt(&self, d: &Deploy, step: &str, reason: &str) {
        let active = [
            DeployState::Requested,
            DeployState::Preflight,
            DeployState::Locked,
            DeployState::Bump,
            DeployState::Plan,
            DeployState::Approved,
            DeployState::Apply,
            DeployState::Verify,
        ];
        if let Err(r) = self
            .transition(
                d,
                &active,
                DeployState::Interrupted,
                Some(step),
                Some(reason),
            )
            .await
        {
            tracing::error!(deploy_id = d.id, reply = %r.message, "cannot record the interruption");
        }
    }

    /// `!deploy <target> <version> [--force]`.
    pub async fn start(&self, target_name: &str, version: &Version, force: bool) -> Reply {
        match self.start_inner(target_name, version, force).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn start_inner(&self, target_name: &str, version: &Version, force: bool) -> Flow<Reply> {
        self.sweep().await?;
        let target = self.target(target_name)?;
        let key = lock_key(target_name, &target.environment);
        // A held lock makes the preflight pointless: say who holds it straight away.
        if let Some(held) = self
            .ctx
            .store
            .get_lock(&key)
            .await
            .map_err(|e| self.store_error(e))?
        {
            return Ok(self.lock_held(&held));
        }
        let report = preflight::run(&self.ctx.integrations, target_name, target, version).await;
        self.conv.post(&report.render()).await;
        if !report.passed(force) {
            let blockers = report.blockers(force).join(", ");
            let hint = if report.dag_runs.status == preflight::Status::Fail && !force {
                format!(
                    " Wait for the runs to finish, or (with `deploy.force`) `{}deploy {target_name} {} --force`.",
                    self.prefix(),
                    version
                )
            } else {
                String::new()
            };
            return Ok(Reply::new(
                Outcome::Blocked,
                format!(
                    "Deploy of {target_name} {version} blocked by {blockers}; nothing was changed.{hint}"
                ),
            ));
        }
        // `latest` becomes the concrete version here: the deploy pins what preflight checked.
        let concrete = report
            .version
            .clone()
            .unwrap_or_else(|| version.to_string());
        let owner = Owner::current();
        // Written with the deploy and its lock (the store fills in the id).
        let locked_event = NewAuditEvent {
            outcome: Some("locked".into()),
            detail: serde_json::json!({
                "to": "locked",
                "version": concrete,
                "image_digest": report.image_digest,
                "force": force,
                // --force is recorded with the runs it overrode.
                "overridden_runs": if force { serde_json::to_value(&report.blocking_runs).unwrap_or_default() } else { serde_json::Value::Null },
            }),
            ..self.target_event("deploy.transition", target_name)
        };
        let created = self
            .ctx
            .store
            .create_locked_deploy(
                &NewDeploy {
                    target: target_name,
                    environment: &target.environment,
                    version: &concrete,
                    requested_by: &self.actor.name,
                    requested_by_id: &self.actor.id,
                    force,
                },
                &key,
                &owner,
                &locked_event,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        let d = match created {
            Ok(d) => d,
            Err(held) => return Ok(self.lock_held(&held)),
        };
        let _beat = self.heartbeat(d.id, &owner);
        let report_json = serde_json::to_value(&report).unwrap_or_default();
        self.ctx
            .store
            .set_deploy_facts(
                d.id,
                report.image_digest.as_deref(),
                Some(&report_json),
                None,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        let forced = if force && !report.blocking_runs.is_empty() {
            format!(
                " Forced past {} active DAG run(s) (recorded in the audit log).",
                report.blocking_runs.len()
            )
        } else {
            String::new()
        };
        self.refresh_card(d.id).await;
        self.conv
            .post(&format!(
                "🔒 Deploy #{} of {target_name} {concrete} to {} by {}: preflight passed, lock `{key}` taken.{forced}",
                d.id, target.environment, self.actor.name
            ))
            .await;
        self.bump_and_plan(d, target, &owner).await
    }

    fn lock_held(&self, held: &crate::store::Lock) -> Reply {
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

    async fn bump_and_plan(&self, d: Deploy, target: &TargetConfig, owner: &Owner) -> Flow<Reply> {
        // bump
        self.advance(
            &d,
            DeployState::Locked,
            DeployState::Bump,
            Some("bump"),
            None,
            owner,
        )
        .await?;
        match self.step(&d, "bump", &target.bump, target, None).await {
            Err(e) => return Ok(self.fail(&d, DeployState::Bump, "bump", &e, owner).await),
            Ok(o) if !o.success() => {
                let reason = failure_reason(&o);
                return Ok(self
                    .fail(&d, DeployState::Bump, "bump", &reason, owner)
                    .await);
            }
            Ok(_) => {}
        }
        // plan
        self.advance(
            &d,
            DeployState::Bump,
            DeployState::Plan,
            Some("plan"),
            None,
            owner,
        )
        .await?;
        let outcome = match self.step(&d, "plan", &target.plan, target, None).await {
            Err(e) => return Ok(self.fail(&d, DeployState::Plan, "plan", &e, owner).await),
            Ok(o) if !o.success() => {
                let reason = failure_reason(&o);
                return Ok(self
                    .fail(&d, DeployState::Plan, "plan", &reason, owner)
                    .await);
            }
            Ok(o) => o,
        };
        if outcome.output_truncated {
            let reason = "the plan output is too long to fingerprint safely";
            return Ok(self
                .fail(&d, DeployState::Plan, "plan", reason, owner)
                .await);
        }
        let plan = Plan::parse(&outcome.output);
        if !plan.is_recognised() {
            let reason =
                "the plan output has no `Plan:` line and no \"No changes.\": nothing to approve";
            return Ok(self
                .fail(&d, DeployState::Plan, "plan", reason, owner)
                .await);
        }
        if plan.no_changes {
            let reason = "the plan has no changes: nothing to apply";
            self.advance(
                &d,
                DeployState::Plan,
                DeployState::Cancelled,
                Some("plan"),
                Some(reason),
                owner,
            )
            .await?;
            self.release_lock(&d).await;
            let _ = self.ctx.store.release_lease(d.id, owner).await;
            return Ok(Reply::ok(format!(
                "Deploy #{} of {} {} ends here: the plan has no changes, so there is nothing to \
                 apply. The lock is released.",
                d.id, d.target, d.version
            ))
            .with_deploy(d.id));
        }
        let fingerprint = plan.fingerprint();
        let summary = plan.human_summary();
        self.ctx
            .store
            .set_deploy_facts(d.id, None, None, Some((&fingerprint, &summary)))
            .await
            .map_err(|e| self.store_error(e))?;
        self.advance(
            &d,
            DeployState::Plan,
            DeployState::AwaitingApproval,
            Some("approval"),
            None,
            owner,
        )
        .await?;
        // Resting: nobody owns a deploy that waits for people.
        let _ = self.ctx.store.release_lease(d.id, owner).await;
        self.conv
            .post_long(
                &format!(
                    "📋 Deploy #{} plan: {summary}\nFingerprint `{}`.",
                    d.id,
                    short(&fingerprint)
                ),
                &format!("deploy-{}-plan.txt", d.id),
                &outcome.output,
            )
            .await;
        let counts = plan
            .summary
            .map(|s| {
                format!(
                    "{} to add, {} to change, {} to destroy",
                    s.add, s.change, s.destroy
                )
            })
            .unwrap_or_else(|| summary.clone());
        Ok(Reply::new(
            Outcome::AwaitingApproval,
            format!(
                "Plan ready: {counts}. Waiting for {} approval{} from a maintainer other than {}: \
                 `{}deploy approve {}` (or `{}deploy cancel {}`).",
                target.approvals,
                if target.approvals == 1 { "" } else { "s" },
                d.requested_by,
                self.prefix(),
                d.id,
                self.prefix(),
                d.id
            ),
        )
        .with_deploy(d.id))
    }

    /// `!deploy approve <id>`: records the approval; the last one needed applies.
    pub async fn approve(&self, id: i64) -> Reply {
        match self.approve_inner(id).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn approve_inner(&self, id: i64) -> Flow<Reply> {
        self.sweep().await?;
        let d = self.existing(id).await?;
        if d.state != DeployState::AwaitingApproval {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!(
                    "Deploy #{id} is not waiting for approval: it is {}.",
                    describe_state(&d)
                ),
            )
            .with_deploy(id));
        }
        if is_requester(&d, &self.actor.id, &self.actor.name) {
            return Ok(Reply::new(
                Outcome::Denied,
                format!(
                    "You requested deploy #{id}; another maintainer must approve it (approving \
                     your own deploy is not allowed)."
                ),
            )
            .with_deploy(id));
        }
        let target = self.target(&d.target)?;
        let Some(fingerprint) = d.plan_fingerprint.clone() else {
            return Ok(Reply::new(
                Outcome::Failed,
                format!("Deploy #{id} has no stored plan fingerprint."),
            ));
        };
        let added = self
            .ctx
            .store
            .add_approval(id, &self.actor.id, &self.actor.name, &fingerprint)
            .await
            .map_err(|e| self.store_error(e))?;
        self.ctx
            .store
            .append_audit(&NewAuditEvent {
                deploy_id: Some(id),
                outcome: Some(
                    if added {
                        "approved"
                    } else {
                        "already_approved"
                    }
                    .into(),
                ),
                detail: serde_json::json!({ "fingerprint": fingerprint }),
                ..self.event("deploy.approval", &d)
            })
            .await
            .map_err(|e| self.store_error(e))?;
        let approvals = self
            .ctx
            .store
            .approvals(id)
            .await
            .map_err(|e| self.store_error(e))?;
        let valid = distinct_approvers(&d, &approvals, &fingerprint);
        let needed = target.approvals as usize;
        if valid.len() < needed {
            self.refresh_card(id).await;
            let msg = if added {
                format!(
                    "👍 {} approved deploy #{id} (plan `{}`): {} of {needed} approvals.",
                    self.actor.name,
                    short(&fingerprint),
                    valid.len()
                )
            } else {
                format!(
                    "You already approved deploy #{id}; it needs {} more from other maintainers.",
                    needed - valid.len()
                )
            };
            return Ok(Reply::ok(msg).with_deploy(id));
        }
        // Only one approver's process may go on to apply: the compare-and-set decides.
        if !self
            .transition(
                &d,
                &[DeployState::AwaitingApproval],
                DeployState::Approved,
                Some("approved"),
                Some(&format!("approved by {}", valid.join(", "))),
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
            )
            .with_deploy(id));
        }
        let owner = Owner::current();
        if !self
            .ctx
            .store
            .take_lease(id, &owner, None)
            .await
            .map_err(|e| self.store_error(e))?
        {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!("Deploy #{id} is already owned by another process."),
            ));
        }
        let _beat = self.heartbeat(id, &owner);
        self.conv
            .post(&format!(
                "✅ Deploy #{id} approved by {} (plan `{}`). Applying {} {}.",
                valid.join(", "),
                short(&fingerprint),
                d.target,
                d.version
            ))
            .await;
        self.apply_and_verify(d, target, &owner, &fingerprint).await
    }

    async fn apply_and_verify(
        &self,
        d: Deploy,
        target: &TargetConfig,
        owner: &Owner,
        approved: &str,
    ) -> Flow<Reply> {
        self.advance(
            &d,
            DeployState::Approved,
            DeployState::Apply,
            Some("apply"),
            None,
            owner,
        )
        .await?;
        let seen: Arc<Mutex<Option<String>>> = Arc::default();
        let handler: infra::PromptHandler = {
            let approved = approved.to_string();
            let seen = seen.clone();
            Box::new(move |p: &PromptContext<'_>| {
                let Some(plan) = Plan::parse_before_prompt(p.output) else {
                    return PromptAnswer::No;
                };
                let fp = plan.fingerprint();
                let ok = !p.truncated && plan.is_recognised() && fp == approved;
                if let Ok(mut s) = seen.lock() {
                    *s = Some(fp);
                }
                if ok {
                    PromptAnswer::Yes
                } else {
                    PromptAnswer::No
                }
            })
        };
        let outcome = match self
            .step(&d, "apply", &target.apply, target, Some(handler))
            .await
        {
            Err(e) => return Ok(self.fail(&d, DeployState::Apply, "apply", &e, owner).await),
            Ok(o) => o,
        };
        if outcome.answers.contains(&PromptAnswer::No) {
            let got = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
            let reason = format!(
                "plan changed since approval (approved `{}`, apply showed `{}`); answered no",
                short(approved),
                short(&got)
            );
            return Ok(self
                .fail(&d, DeployState::Apply, "apply", &reason, owner)
                .await);
        }
        if !outcome.success() {
            let reason = failure_reason(&outcome);
            return Ok(self
                .fail(&d, DeployState::Apply, "apply", &reason, owner)
                .await);
        }
        if !outcome.answers.contains(&PromptAnswer::Yes) {
            // Apply went through without asking: the applied plan could not be checked against
            // the approval. Recorded, not hidden.
            tracing::warn!(
                deploy_id = d.id,
                "apply did not prompt; the plan was not re-checked"
            );
            self.conv
                .post(&format!(
                    "⚠️ Deploy #{}: apply finished without asking for confirmation, so the applied \
                     plan could not be checked against the approved one. Configure apply to prompt.",
                    d.id
                ))
                .await;
        }
        // verify
        self.advance(
            &d,
            DeployState::Apply,
            DeployState::Verify,
            Some("verify"),
            None,
            owner,
        )
        .await?;
        self.conv
            .post(&format!(
                "🔎 Deploy #{}: applied; waiting up to {} for Airflow to report healthy.",
                d.id,
                humantime::format_duration(target.verify_timeout)
            ))
            .await;
        match self.verify(target.verify_timeout).await {
            Err(reason) => Ok(self
                .fail(&d, DeployState::Verify, "verify", &reason, owner)
                .await),
            Ok(health) => {
                self.advance(
                    &d,
                    DeployState::Verify,
                    DeployState::Succeeded,
                    Some("verify"),
                    Some(&health),
                    owner,
                )
                .await?;
                self.release_lock(&d).await;
                let _ = self.ctx.store.release_lease(d.id, owner).await;
                let took = now_ms() - d.created_ms;
                Ok(Reply::ok(format!(
                    "🚀 Deploy #{} succeeded: {} {} is live in {} ({health}; {} in all). The lock is released.",
                    d.id,
                    d.target,
                    d.version,
                    d.environment,
                    timefmt::duration(took)
                ))
                .with_deploy(d.id))
            }
        }
    }

    /// Polls Airflow's health until it is healthy or the deadline passes.
    async fn verify(&self, deadline: Duration) -> Result<String, String> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let last = match self.ctx.integrations.airflow.health().await {
                Ok(h) => {
                    let bad: Vec<&str> = [
                        ("metadatabase", Some(&h.metadatabase)),
                        ("scheduler", Some(&h.scheduler)),
                        ("triggerer", h.triggerer.as_ref()),
                        ("dag_processor", h.dag_processor.as_ref()),
                    ]
                    .into_iter()
                    .filter_map(|(name, c)| {
                        let c = c?;
                        (c.status.as_deref().is_some_and(|s| s != "healthy")).then_some(name)
                    })
                    .collect();
                    if bad.is_empty() {
                        let version = self
                            .ctx
                            .integrations
                            .airflow
                            .version()
                            .await
                            .map(|v| format!("Airflow {} healthy", v.version))
                            .unwrap_or_else(|_| "Airflow healthy".to_string());
                        return Ok(version);
                    }
                    format!("unhealthy: {}", bad.join(", "))
                }
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() + VERIFY_POLL > until {
                return Err(format!(
                    "Airflow was not healthy within {} (last: {last})",
                    humantime::format_duration(deadline)
                ));
            }
            tokio::time::sleep(VERIFY_POLL).await;
        }
    }

    async fn existing(&self, id: i64) -> Flow<Deploy> {
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

    /// `!deploy cancel <id>`: before apply it ends the deploy and releases the lock.
    pub async fn cancel(&self, id: i64) -> Reply {
        match self.cancel_inner(id).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn cancel_inner(&self, id: i64) -> Flow<Reply> {
        self.sweep().await?;
        let d = self.existing(id).await?;
        let cancellable = [
            DeployState::Locked,
            DeployState::Bump,
            DeployState::Plan,
            DeployState::AwaitingApproval,
        ];
        match d.state {
            DeployState::Approved | DeployState::Apply | DeployState::Verify => {
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
            _ => {}
        }
        let reason = format!("cancelled by {}", self.actor.name);
        if !self
            .transition(
                &d,
                &cancellable,
                DeployState::Cancelled,
                d.step.as_deref(),
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
        let (to, word) = match resolution {
            Resolution::Succeeded => (DeployState::Succeeded, "succeeded"),
            Resolution::Failed => (DeployState::Failed, "failed"),
        };
        let reason = format!(
            "resolved as {word} by {} after an interruption",
            self.actor.name
        );
        if !self
            .transition(
                &d,
                &[DeployState::Interrupted],
                to,
                Some("resolve"),
                Some(&reason),
            )
            .await?
        {
            return Ok(Reply::new(
                Outcome::Blocked,
                format!("Deploy #{id} was resolved meanwhile."),
            ));
        }
        self.release_lock(&d).await;
        Ok(Reply::ok(format!(
            "Deploy #{id} of {} {} resolved as {word} by {}. The lock is released.",
            d.target, d.version, self.actor.name
        ))
        .with_deploy(id))
    }

    /// `!deploy rollback <target>`: deploys the version before the newest successful one.
    pub async fn rollback(&self, target_name: &str) -> Reply {
        let succeeded = match self.ctx.store.succeeded_deploys(target_name, 50).await {
            Ok(s) => s,
            Err(e) => return self.store_error(e),
        };
        let Some(current) = succeeded.first() else {
            return Reply::new(
                Outcome::Blocked,
                format!(
                    "No successful deploy of {target_name} is recorded, so there is nothing to roll back to."
                ),
            );
        };
        let Some(previous) = succeeded.iter().find(|d| d.version != current.version) else {
            return Reply::new(
                Outcome::Blocked,
                format!(
                    "Only {} {} was ever deployed successfully; there is no earlier version to roll back to.",
                    target_name, current.version
                ),
            );
        };
        let version = match Version::parse(&previous.version) {
            Ok(v) => v,
            Err(e) => {
                return Reply::new(
                    Outcome::Failed,
                    format!("The stored version is not valid: {e}"),
                );
            }
        };
        self.conv
            .post(&format!(
                "↩️ Rolling back {target_name} from {} (deploy #{}) to {} (deploy #{}).",
                current.version, current.id, previous.version, previous.id
            ))
            .await;
        self.start(target_name, &version, false).await
    }
}

/// The last lines of a failed step, for the failure message.
fn failure_reason(o: &StepOutcome) -> String {
    let lines: Vec<&str> = o.output_tail.lines().collect();
    let tail = lines[lines.len().saturating_sub(FAILURE_LINES)..].join("\n");
    if tail.trim().is_empty() {
        o.describe()
    } else {
        format!("{}; last lines:\n```\n{tail}\n```", o.describe())
    }
}

fn batch_text(step: &str, lines: &[String]) -> String {
    let skipped = lines.len().saturating_sub(LINES_PER_POST);
    let mut out = String::new();
    if skipped > 0 {
        out.push_str(&format!(
            "[{step}] … {skipped} line(s) not shown (kept in the journal)\n"
        ));
    }
    for l in &lines[skipped..] {
        out.push_str(&format!("[{step}] {l}\n"));
    }
    out.truncate(out.trim_end().len());
    out
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

fn describe_state(d: &Deploy) -> String {
    match &d.reason {
        Some(r) => format!("{} ({r})", d.state),
        None => d.state.to_string(),
    }
}

/// Whether the person `actor_id` (now called `name`) requested `d`. Identities decide; a name
/// match also counts, so that deploys requested before identities were recorded (whose id is
/// only `local:<name>`) stay protected, and taking the requester's old name approves nothing.
fn is_requester(d: &Deploy, actor_id: &str, name: &str) -> bool {
    d.requested_by_id == actor_id || d.requested_by == name
}

/// The names of the people whose approvals of `fingerprint` count: never the requester, and
/// each person once. The store keeps one approval per identity; rows from before identities
/// were recorded carry `local:<name>`, so a name already counted is not counted again either.
fn distinct_approvers<'a>(
    d: &Deploy,
    approvals: &'a [Approval],
    fingerprint: &str,
) -> Vec<&'a str> {
    let mut ids = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    approvals
        .iter()
        .filter(|a| a.fingerprint == fingerprint && !is_requester(d, &a.approver_id, &a.approver))
        .filter(|a| {
            // Both sets learn this row, even when one of them already knew it.
            let new_id = ids.insert(a.approver_id.as_str());
            let new_name = names.insert(a.approver.as_str());
            new_id && new_name
        })
        .map(|a| a.approver.as_str())
        .collect()
}

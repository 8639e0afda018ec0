//! The deploy workflow (ARCHITECTURE.md): preflight → lock → bump → plan → awaiting approval →
//! approved (by others, bound to the plan's fingerprint) → apply → verify → succeeded; any state
//! → failed | cancelled | interrupted. The states and their moves are [`super::state`]; this
//! file walks them in order, one `advance` per arrow.
//!
//! Every transition is a compare-and-set in the store plus an audit event, written before the
//! message that announces it ([`super::journal`]). A process that runs a step holds the deploy's
//! lease; the workflow rests (and gives the lease up) while it waits for approval, so a later
//! process — another `exec`, a restarted bot, a replica — continues from the store.

use std::time::Duration;

// `Flow` is this file's name for a step's result; the config's flow is `StepFlow` here.
use crate::config::{Flow as StepFlow, TargetConfig};
use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::ansible_steps::ansible_failure;
use crate::deploy::approval::{self, ApplyGate};
use crate::deploy::fingerprint::ApplyCheck;
use crate::deploy::planned::Planned;
use crate::deploy::preflight;
use crate::deploy::runner::{self, Runner, failure_reason};
use crate::deploy::state::{DeployState, Event};
use crate::deploy::step::Step;
use crate::deploy::verify;
use crate::integrations::infra::PromptAnswer;
use crate::policy::Actor;
use crate::reply::{Outcome, Reply};
use crate::store::{Deploy, NewAuditEvent, NewDeploy, Owner, StepRun, now_ms};
use crate::timefmt;
use crate::version::Version;

use super::journal::{describe_state, short};

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

/// A step of the workflow: its result, or the reply that ends the command early.
pub(super) type Flow<T> = Result<T, Reply>;

impl Workflow<'_> {
    pub(super) fn runner(&self) -> Runner<'_> {
        Runner {
            ctx: self.ctx,
            conv: self.conv,
        }
    }

    fn heartbeat(&self, id: i64, owner: &Owner) -> runner::Heartbeat {
        runner::heartbeat(&self.ctx.store, self.ctx.config.deploy.lease, id, owner)
    }

    /// `!deploy <target> <version> [--force] [--when-idle [--within <duration>]]`; `when_idle`
    /// is how long the deploy may wait for DAG runs.
    pub async fn start(
        &self,
        target_name: &str,
        version: &Version,
        force: bool,
        when_idle: Option<Duration>,
    ) -> Reply {
        match self
            .start_inner(target_name, version, force, when_idle)
            .await
        {
            Ok(r) | Err(r) => r,
        }
    }

    /// preflight → locked (or → waiting for DAG runs, with `--when-idle`).
    async fn start_inner(
        &self,
        target_name: &str,
        version: &Version,
        force: bool,
        when_idle: Option<Duration>,
    ) -> Flow<Reply> {
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
        if let Some(within) = when_idle
            && !report.passed(force)
            && super::waiting::only_runs_block(&report)
        {
            return self
                .wait_for_dags(target_name, target, &report, within)
                .await;
        }
        if !report.passed(force) {
            let blockers = report.blockers(force).join(", ");
            let hint = if report.dag_runs.status == preflight::Status::Fail && !force {
                format!(
                    " Wait for the runs to finish, or (with `deploy.force`) `{}deploy {target_name} {} --force`. \
                     `{}deploy {target_name} {} --when-idle` takes the lock and starts the deploy by \
                     itself when they are over.",
                    self.prefix(),
                    version,
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
        let locked = DeployState::Locked.as_str();
        let locked_event = NewAuditEvent {
            outcome: Some(locked.into()),
            detail: serde_json::json!({
                "to": locked,
                "version": concrete,
                "image_digest": report.image_digest,
                "force": force,
                // --force is recorded with the runs it overrode.
                "overridden_runs": if force { serde_json::to_value(&report.blocking_runs).unwrap_or_default() } else { serde_json::Value::Null },
            }),
            ..self.target_event("deploy.transition", target_name)
        };
        let new = NewDeploy {
            target: target_name,
            environment: &target.environment,
            version: &concrete,
            requested_by: &self.actor.name,
            requested_by_id: &self.actor.id,
            force,
        };
        let d = self.created(
            self.ctx
                .store
                .create_locked_deploy(&new, &key, &owner, &locked_event)
                .await,
        )?;
        let _beat = self.heartbeat(d.id, &owner);
        self.keep_preflight(d.id, &report).await?;
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
                "🔒 Deploy #{} of {target_name} {concrete} to {} by {}: preflight passed, lock `{key}` taken.{forced}{}",
                d.id,
                target.environment,
                self.actor.name,
                super::waiting::pause_notice(&report.dags_to_pause())
            ))
            .await;
        self.bump_and_plan(d, target, &owner, None).await
    }

    /// Carries on a working deploy this process has just taken over from a process that died
    /// (the lease is `owner`'s): from its state, following `attach` — the run of the state's
    /// step that the dead process started — instead of starting that step again. The same
    /// functions as a live deploy's, so it ends through the same path.
    pub async fn carry_on(&self, d: Deploy, owner: &Owner, attach: Option<StepRun>) -> Reply {
        let target = match self.target(&d.target) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let flow = match d.state {
            DeployState::Locked | DeployState::Bump | DeployState::Plan => {
                self.bump_and_plan(d, target, owner, attach).await
            }
            DeployState::Approved | DeployState::Apply | DeployState::Verify => {
                let Some(approved) = d.plan_fingerprint.clone() else {
                    let reason = "the deploy has no stored plan fingerprint to apply against";
                    return self.fail(&d, reason, owner).await;
                };
                self.apply_and_verify(d, target, owner, &approved, attach)
                    .await
            }
            _ => Ok(Reply::new(
                Outcome::Blocked,
                format!(
                    "Deploy #{} is {}: nothing to carry on.",
                    d.id,
                    describe_state(&d)
                ),
            )
            .with_deploy(d.id)),
        };
        match flow {
            Ok(r) | Err(r) => r,
        }
    }

    /// locked → bump → plan → awaiting approval (or → cancelled when the plan has no changes);
    /// entered at any of the three (a deploy carried on after its process died).
    pub(super) async fn bump_and_plan(
        &self,
        mut d: Deploy,
        target: &TargetConfig,
        owner: &Owner,
        mut attach: Option<StepRun>,
    ) -> Flow<Reply> {
        if d.state == DeployState::Locked {
            self.advance(&mut d, Event::BumpStarted, None, owner)
                .await?;
        }
        if d.state == DeployState::Bump {
            match self
                .runner()
                .run(&d, Step::Bump, &target.bump, target, None, attach.take())
                .await
            {
                Err(e) => return Ok(self.step_error(&d, e, owner).await),
                Ok(o) if !o.success() => {
                    return Ok(self.fail(&d, &failure_reason(&o), owner).await);
                }
                Ok(_) => {}
            }
            // The recipe may pick its own version: what it wrote is checked before anything is
            // planned under the requested version's name.
            if let Err(reply) = self.verify_bump(&d, target, owner).await {
                return Ok(reply);
            }
            self.advance(&mut d, Event::Bumped, None, owner).await?;
        }
        let outcome = match self
            .runner()
            .run(&d, Step::Plan, &target.plan, target, None, attach.take())
            .await
        {
            Err(e) => return Ok(self.step_error(&d, e, owner).await),
            Ok(o) if !o.success() => {
                let reason =
                    ansible_failure(target, &o.output).unwrap_or_else(|| failure_reason(&o));
                return Ok(self.fail(&d, &reason, owner).await);
            }
            Ok(o) => o,
        };
        if outcome.output_truncated {
            let reason = "the plan output is too long to fingerprint safely";
            return Ok(self.fail(&d, reason, owner).await);
        }
        let plan = Planned::parse(target.flow, &outcome.output);
        if let Some(reason) = plan.problem() {
            return Ok(self.fail(&d, &reason, owner).await);
        }
        if plan.no_changes() {
            let reason = "the plan has no changes: nothing to apply";
            self.advance(&mut d, Event::NothingToApply, Some(reason), owner)
                .await?;
            self.ended(&d, Some(owner)).await;
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
        // What ships, on the card before anyone is asked to approve.
        self.record_changes(&d, target).await;

        self.advance(&mut d, Event::Planned, None, owner).await?;
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
        // Every count Terraform printed (imports, forgets, action invocations, outputs too).
        let counts = plan.counts();
        let p = self.prefix();
        Ok(Reply::new(
            Outcome::AwaitingApproval,
            format!(
                "Plan ready: {counts}. Waiting for {} approval{} from a maintainer other than {}: \
                 `{p}deploy approve {}` (or `{p}deploy cancel {}`).",
                target.approvals,
                if target.approvals == 1 { "" } else { "s" },
                d.requested_by,
                d.id,
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

    /// awaiting approval → approved (once enough others approved the fingerprint).
    async fn approve_inner(&self, id: i64) -> Flow<Reply> {
        self.sweep().await?;
        let mut d = self.existing(id).await?;
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
        if approval::is_requester(&d, &self.actor.id, &self.actor.name) {
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
        let outcome = if added {
            "approved"
        } else {
            "already_approved"
        };
        self.ctx
            .store
            .append_audit(&NewAuditEvent {
                deploy_id: Some(id),
                outcome: Some(outcome.into()),
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
        let valid = approval::distinct_approvers(&d, &approvals, &fingerprint);
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
        let by = format!("approved by {}", valid.join(", "));
        if !self
            .transition(&d, &[d.state], Event::Approved, Some(&by))
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
        d.state = DeployState::Approved;
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
        self.apply_and_verify(d, target, &owner, &fingerprint, None)
            .await
    }

    /// approved → apply (answered `yes` only for the approved plan) → verify → succeeded;
    /// entered at any of the three (a deploy carried on after its process died).
    async fn apply_and_verify(
        &self,
        mut d: Deploy,
        target: &TargetConfig,
        owner: &Owner,
        approved: &str,
        attach: Option<StepRun>,
    ) -> Flow<Reply> {
        if d.state == DeployState::Approved {
            if target.flow == StepFlow::Ansible {
                self.dry_run_again(&d, target, owner, approved).await?;
            }
            // pause_during_deploy: re-checked and paused here, closest to apply; unpaused by the
            // ending path.
            self.pause_before_apply(&d, target, owner).await?;
            self.advance(&mut d, Event::ApplyStarted, None, owner)
                .await?;
        }
        if d.state == DeployState::Verify {
            // The apply's end was recorded by a process that died since: verify again.
            return self.verify_and_finish(d, target, owner).await;
        }
        let gate = ApplyGate::new(approved);
        // Ansible's apply asks nothing: the dry run above was its check.
        let prompt = (target.flow == StepFlow::Terraform).then(|| gate.prompt_handler());
        let outcome = match self
            .runner()
            .run(&d, Step::Apply, &target.apply, target, prompt, attach)
            .await
        {
            Err(e) => return Ok(self.step_error(&d, e, owner).await),
            Ok(o) => o,
        };
        if target.flow == StepFlow::Ansible {
            self.ansible_recap(&d, &outcome, owner).await?;
            return self.verify_and_finish(d, target, owner).await;
        }
        if outcome.answers.contains(&PromptAnswer::No) {
            let reason = format!(
                "plan changed since approval (approved `{}`, apply showed `{}`); answered no",
                short(approved),
                short(&gate.seen())
            );
            return Ok(self.fail(&d, &reason, owner).await);
        }
        if !outcome.success() {
            return Ok(self.fail(&d, &failure_reason(&outcome), owner).await);
        }
        if outcome.answers.contains(&PromptAnswer::Yes)
            && let Some(plan) = gate.shown()
        {
            // What Terraform says it did, against what was approved.
            let check = ApplyCheck::new(&plan, &outcome.output, &outcome.output_tail);
            self.record_apply_check(&d, &check).await?;
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
        self.verify_and_finish(d, target, owner).await
    }

    /// apply → verify (Airflow healthy within `verify_timeout`) → succeeded, lock released;
    /// entered at verify too (a deploy carried on after its process died).
    async fn verify_and_finish(
        &self,
        mut d: Deploy,
        target: &TargetConfig,
        owner: &Owner,
    ) -> Flow<Reply> {
        if d.state == DeployState::Apply {
            self.advance(&mut d, Event::Applied, None, owner).await?;
            self.conv
                .post(&format!(
                    "🔎 Deploy #{}: applied; waiting up to {} for Airflow to report healthy.",
                    d.id,
                    humantime::format_duration(target.verify_timeout)
                ))
                .await;
        }
        let health =
            match verify::airflow_healthy(&self.ctx.integrations.airflow, target.verify_timeout)
                .await
            {
                Err(reason) => return Ok(self.fail(&d, &reason, owner).await),
                Ok(health) => health,
            };
        let health = match self.verify_image(&d, target, owner, health).await {
            Ok(said) => said,
            Err(reply) => return Ok(reply),
        };
        self.advance(&mut d, Event::Verified, Some(&health), owner)
            .await?;
        // The bump is committed while the lock still keeps other deploys out of the checkout;
        // the push and the pull request (network, slow) come after the lock is released.
        let prepared = self.prepare_infra_pr(&d, target).await;
        self.ended(&d, Some(owner)).await;
        let took = now_ms() - d.created_ms;
        let pr = match self.open_infra_pr(&d, prepared).await {
            None => String::new(),
            Some(Ok(url)) => format!(" Infra pull request: {url}"),
            Some(Err(_)) => " The infra pull request was not opened (said above); the deploy \
                             itself succeeded."
                .to_string(),
        };
        Ok(Reply::ok(format!(
            "🚀 Deploy #{} succeeded: {} {} is live in {} ({health}; {} in all). The lock is released.{pr}",
            d.id,
            d.target,
            d.version,
            d.environment,
            timefmt::duration(took)
        ))
        .with_deploy(d.id))
    }
}

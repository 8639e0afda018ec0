//! The Ansible flow's steps in the workflow: the dry run again after approval (apply runs only
//! when it still has the approved fingerprint) and the apply's recap, which decides whether the
//! apply worked. Reading a playbook's output is [`super::ansible`]; this is what the workflow
//! does with it.

use crate::config::{Flow as StepFlow, TargetConfig};
use crate::deploy::ansible::DryRun;
use crate::deploy::runner::failure_reason;
use crate::deploy::step::Step;
use crate::store::{Deploy, Owner};

use super::journal::short;
use super::workflow::{Flow, Workflow};

impl Workflow<'_> {
    /// The Ansible flow's guard before apply: the dry run again, which must have the approved
    /// fingerprint (a variable, a template or a host changed since approval makes it differ).
    /// Anything else fails the deploy with nothing applied.
    pub(super) async fn dry_run_again(
        &self,
        d: &Deploy,
        target: &TargetConfig,
        owner: &Owner,
        approved: &str,
    ) -> Flow<()> {
        let outcome = match self
            .runner()
            .run(d, Step::DryRun, &target.plan, target, None, None)
            .await
        {
            Err(e) => return Err(self.step_error(d, e, owner).await),
            Ok(o) => o,
        };
        let nothing = "nothing was applied";
        if !outcome.success() {
            let reason = ansible_failure(target, &outcome.output)
                .unwrap_or_else(|| failure_reason(&outcome));
            let reason = format!("the dry run after approval failed ({nothing}): {reason}");
            return Err(self.fail_at(d, Some(Step::DryRun), &reason, owner).await);
        }
        if outcome.output_truncated {
            let reason =
                format!("the dry run after approval is too long to fingerprint safely; {nothing}");
            return Err(self.fail_at(d, Some(Step::DryRun), &reason, owner).await);
        }
        let run = DryRun::parse(&outcome.output);
        if let Some(problem) = run.problem() {
            let reason =
                format!("the dry run after approval cannot be checked: {problem}; {nothing}");
            return Err(self.fail_at(d, Some(Step::DryRun), &reason, owner).await);
        }
        let seen = run.fingerprint();
        if seen != approved {
            let reason = format!(
                "plan changed since approval (approved `{}`, the dry run now shows `{}`: {}); {nothing}",
                short(approved),
                short(&seen),
                run.counts()
            );
            self.conv
                .post_long(
                    &format!(
                        "🛑 Deploy #{}: the dry run after approval differs from the approved one:\n{}",
                        d.id,
                        run.human_summary()
                    ),
                    &format!("deploy-{}-dry-run.txt", d.id),
                    &outcome.output,
                )
                .await;
            return Err(self.fail_at(d, Some(Step::DryRun), &reason, owner).await);
        }
        self.conv
            .post(&format!(
                "🔁 Deploy #{}: the dry run again has the approved fingerprint `{}`; applying.",
                d.id,
                short(approved)
            ))
            .await;
        Ok(())
    }

    /// The Ansible apply's end: its recap decides (a failed or unreachable host fails the
    /// deploy, naming the task); without a recap what it did is not known, and it fails too.
    pub(super) async fn ansible_recap(
        &self,
        d: &Deploy,
        outcome: &crate::integrations::infra::StepOutcome,
        owner: &Owner,
    ) -> Flow<()> {
        let run = DryRun::parse(&outcome.output);
        let reason = if let Some(f) = run.failures.first() {
            Some(f.sentence())
        } else if !outcome.success() {
            Some(failure_reason(outcome))
        } else if run.recap.is_empty() {
            Some(
                "apply printed no `PLAY RECAP` the bot can read, so whether it applied is not \
                 known; check the hosts"
                    .to_string(),
            )
        } else {
            run.recap
                .iter()
                .find(|h| h.failed > 0 || h.unreachable > 0)
                .map(|h| {
                    format!(
                        "the recap reports {} failed and {} unreachable on {}",
                        h.failed, h.unreachable, h.host
                    )
                })
        };
        if let Some(reason) = reason {
            return Err(self.fail(d, &reason, owner).await);
        }
        self.conv
            .post(&format!(
                "📦 Deploy #{}: the playbook applied ({}).",
                d.id,
                run.recap_line()
            ))
            .await;
        Ok(())
    }
}

/// For an Ansible target, the failed task a playbook's output names, as a sentence.
pub(super) fn ansible_failure(target: &TargetConfig, output: &str) -> Option<String> {
    (target.flow == StepFlow::Ansible)
        .then(|| DryRun::parse(output).failures.first().map(|f| f.sentence()))
        .flatten()
}

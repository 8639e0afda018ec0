//! The steps of a deploy, as its journal (`deploy_steps.step`, `deploys.step`) names them.
//!
//! Pure, like [`super::state`]: the store writes these names, the workflow runs the steps, the
//! card and `!deploy status` read them back. A step stored by an older version that this one does
//! not know parses to `None` and is shown as it was written.

use std::fmt;

/// One step of the deploy workflow, or one point of its journal that is not a step of its own
/// (the lock, a resolution, an unknown outcome).
///
/// New steps (an Ansible dry run, the infra pull request) are new variants here with their
/// names; [`super::state::DeployState::step`] says in which state each one runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `--when-idle`: the deploy holds the lock and waits for the DAG runs to be over.
    Wait,
    /// The target's lock was taken with the deploy (preflight ran before the deploy existed).
    Lock,
    /// The target's `bump` template: the new version is written into the infrastructure repo.
    Bump,
    /// The target's `plan` template: the plan is printed and fingerprinted.
    Plan,
    /// The plan waits for, and gets, the approvals of people other than the requester.
    Approval,
    /// Pausing the `pause_during_deploy` DAGs right before apply, and unpausing them when the
    /// deploy ends (journal rows `paused` / `unpaused`; the deploy never rests in it).
    Pause,
    /// The Ansible flow's dry run again after approval (the target's `plan` template): apply
    /// runs only when it still has the approved fingerprint.
    DryRun,
    /// The target's `apply` template, whose prompt is answered `yes` only for the approved plan.
    Apply,
    /// Airflow must report healthy after apply.
    Verify,
    /// After a successful deploy: the bump committed on a branch, pushed, and proposed to the
    /// infra repository as a pull request (`infra_pr`). Runs in no state of its own: the deploy
    /// has succeeded, and this step's failure never changes that.
    InfraPr,
    /// A maintainer settled an interrupted deploy after checking reality.
    Resolve,
    /// The process running the deploy died: what its step did is unknown. (The audit event of
    /// the interruption records the state and step it was at.)
    Unknown,
}

impl Step {
    pub const ALL: [Step; 12] = [
        Step::Wait,
        Step::Lock,
        Step::Bump,
        Step::Plan,
        Step::Approval,
        Step::Pause,
        Step::DryRun,
        Step::Apply,
        Step::Verify,
        Step::InfraPr,
        Step::Resolve,
        Step::Unknown,
    ];

    /// The name in the journal, the metrics and chat (`[plan] …`).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Wait => "wait",
            Step::Lock => "lock",
            Step::Bump => "bump",
            Step::Plan => "plan",
            Step::Approval => "approval",
            Step::Pause => "pause",
            Step::DryRun => "dry_run",
            Step::Apply => "apply",
            Step::Verify => "verify",
            Step::InfraPr => "infra_pr",
            Step::Resolve => "resolve",
            Step::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_round_trips_through_its_journal_name() {
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(step), "{step}");
        }
        let names: std::collections::HashSet<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Step::ALL.len(), "names are distinct");
        assert_eq!(Step::parse("approved"), None, "an unknown name stays text");
    }
}

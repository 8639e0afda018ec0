//! The plan step's output read the way the target's flow prints it: a Terraform plan
//! ([`super::fingerprint::Plan`]) or an Ansible dry run ([`super::ansible::DryRun`]). The
//! workflow asks both the same questions: can it be approved, does it change anything, what is
//! its fingerprint, and how to say it.

use super::ansible::DryRun;
use super::fingerprint::Plan;
use crate::config::Flow;

pub enum Planned {
    Terraform(Plan),
    Ansible(DryRun),
}

impl Planned {
    pub fn parse(flow: Flow, output: &str) -> Planned {
        match flow {
            Flow::Terraform => Planned::Terraform(Plan::parse(output)),
            Flow::Ansible => Planned::Ansible(DryRun::parse(output)),
        }
    }

    /// Why the output cannot be approved, as the deploy's failure reason; `None` for a plan.
    pub fn problem(&self) -> Option<String> {
        match self {
            Planned::Terraform(p) if !p.is_recognised() => Some(
                "the plan output has no `Plan:` line the bot can read, no changes to outputs \
                 only and no \"No changes.\": nothing to approve"
                    .to_string(),
            ),
            Planned::Terraform(_) => None,
            Planned::Ansible(r) => r.problem(),
        }
    }

    pub fn no_changes(&self) -> bool {
        match self {
            Planned::Terraform(p) => p.no_changes,
            Planned::Ansible(r) => r.no_changes(),
        }
    }

    pub fn fingerprint(&self) -> String {
        match self {
            Planned::Terraform(p) => p.fingerprint(),
            Planned::Ansible(r) => r.fingerprint(),
        }
    }

    /// For the card and the plan message.
    pub fn human_summary(&self) -> String {
        match self {
            Planned::Terraform(p) => p.human_summary(),
            Planned::Ansible(r) => r.human_summary(),
        }
    }

    /// Every count the tool printed, for the one-line reply.
    pub fn counts(&self) -> String {
        match self {
            Planned::Terraform(p) => p.counts(),
            Planned::Ansible(r) => r.counts(),
        }
    }
}

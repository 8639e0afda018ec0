//! The approval rules (ARCHITECTURE.md, "Approve what you saw"): the requester never approves
//! their own deploy, each person counts once, an approval binds to the plan's fingerprint, and
//! apply answers Terraform's prompt `yes` only for the plan that was approved.

use std::sync::{Arc, Mutex};

use crate::deploy::fingerprint::Plan;
use crate::integrations::infra::{PromptAnswer, PromptContext, PromptHandler};
use crate::store::{Approval, Deploy};

/// Whether the person `actor_id` (now called `name`) requested `d`. Identities decide; a name
/// match also counts, so that deploys requested before identities were recorded (whose id is
/// only `local:<name>`) stay protected, and taking the requester's old name approves nothing.
pub fn is_requester(d: &Deploy, actor_id: &str, name: &str) -> bool {
    d.requested_by_id == actor_id || d.requested_by == name
}

/// The names of the people whose approvals of `fingerprint` count: never the requester, and
/// each person once. The store keeps one approval per identity; rows from before identities
/// were recorded carry `local:<name>`, so a name already counted is not counted again either.
pub fn distinct_approvers<'a>(
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

/// The answer to apply's `Enter a value:` for one approved fingerprint: `yes` only when the plan
/// apply printed before the prompt is whole, recognised and has exactly that fingerprint, `no`
/// otherwise (the step runner then closes the step's stdin, so nothing later is approved by
/// accident). It remembers the plan it saw: its fingerprint for the failure message, the plan
/// itself to compare Terraform's result with after a `yes`.
pub struct ApplyGate {
    approved: String,
    seen: Arc<Mutex<Option<Plan>>>,
}

impl ApplyGate {
    pub fn new(approved: &str) -> ApplyGate {
        ApplyGate {
            approved: approved.to_string(),
            seen: Arc::default(),
        }
    }

    /// The decision the step runner asks when apply prompts.
    pub fn prompt_handler(&self) -> PromptHandler {
        let approved = self.approved.clone();
        let seen = self.seen.clone();
        Box::new(move |p: &PromptContext<'_>| {
            let Some(plan) = Plan::parse_before_prompt(p.output) else {
                return PromptAnswer::No;
            };
            let ok = !p.truncated && plan.is_recognised() && plan.fingerprint() == approved;
            if let Ok(mut s) = seen.lock() {
                *s = Some(plan);
            }
            if ok {
                PromptAnswer::Yes
            } else {
                PromptAnswer::No
            }
        })
    }

    /// The fingerprint of the plan apply showed at its prompt (empty before it asked).
    pub fn seen(&self) -> String {
        self.shown().map(|p| p.fingerprint()).unwrap_or_default()
    }

    /// The plan apply showed at its prompt: after a `yes`, the approved plan.
    pub fn shown(&self) -> Option<Plan> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::state::DeployState;

    const PLAN: &str = include_str!("../../tests/fixtures/terraform-plan-image-bump.txt");
    const APPLY: &str = include_str!("../../tests/fixtures/terraform-apply-prompt.txt");

    fn deploy() -> Deploy {
        Deploy {
            id: 7,
            target: "catalog".into(),
            environment: "prod".into(),
            version: "v1.5.3".into(),
            requested_by: "alice".into(),
            requested_by_id: "discord:111".into(),
            state: DeployState::AwaitingApproval,
            step: Some("approval".into()),
            reason: None,
            force: false,
            image_digest: None,
            plan_fingerprint: Some("fp1".into()),
            plan_summary: None,
            preflight: None,
            conversation: None,
            owner: None,
            heartbeat_ms: None,
            created_ms: 0,
            updated_ms: 0,
            finished_ms: None,
        }
    }

    fn approval(id: &str, name: &str, fingerprint: &str) -> Approval {
        Approval {
            approver_id: id.into(),
            approver: name.into(),
            fingerprint: fingerprint.into(),
            ts_ms: 0,
        }
    }

    #[test]
    fn the_requester_is_known_by_identity_and_by_old_name() {
        let d = deploy();
        assert!(is_requester(&d, "discord:111", "alice-renamed"));
        assert!(is_requester(&d, "local:alice", "alice"));
        assert!(!is_requester(&d, "discord:222", "bob"));
    }

    #[test]
    fn each_person_other_than_the_requester_counts_once_for_the_fingerprint_they_saw() {
        let d = deploy();
        let rows = [
            approval("discord:111", "alice", "fp1"),
            approval("discord:222", "bob", "fp1"),
            approval("local:bob", "bob", "fp1"),
            approval("discord:333", "carol", "fp0"),
            approval("discord:444", "dave", "fp1"),
        ];
        assert_eq!(distinct_approvers(&d, &rows, "fp1"), ["bob", "dave"]);
        assert_eq!(distinct_approvers(&d, &rows, "fp0"), ["carol"]);
        assert!(distinct_approvers(&d, &rows, "fp2").is_empty());
    }

    #[test]
    fn apply_is_answered_yes_only_for_the_approved_whole_plan() {
        let approved = Plan::parse(PLAN).fingerprint();
        let ask = |gate: &ApplyGate, output: &str, truncated: bool| {
            let mut answer = gate.prompt_handler();
            answer(&PromptContext { output, truncated })
        };
        let gate = ApplyGate::new(&approved);
        assert_eq!(ask(&gate, APPLY, false), PromptAnswer::Yes);
        assert_eq!(gate.seen(), approved);
        assert_eq!(gate.shown(), Plan::parse_before_prompt(APPLY));
        assert_eq!(
            ask(&gate, APPLY, true),
            PromptAnswer::No,
            "a cut output is never approved"
        );

        let other = ApplyGate::new("0123456789ab");
        assert_eq!(other.seen(), "", "nothing seen before the prompt");
        assert_eq!(ask(&other, APPLY, false), PromptAnswer::No);
        assert_eq!(
            other.seen(),
            approved,
            "the failure names what apply showed"
        );

        assert_eq!(
            ask(&gate, "no prompt in here", false),
            PromptAnswer::No,
            "an output without the prompt is refused"
        );
    }
}

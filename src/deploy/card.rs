//! The deploy's status card: one message per deploy that a chat front end edits in place as the
//! workflow moves (Discord), built from the store alone so any process can redraw it.

use crate::conversation::{Button, DeployCard};
use crate::store::{Deploy, DeployState, Store};

/// The thread / card title of a deploy.
pub fn title(d: &Deploy) -> String {
    format!("deploy {} {} · #{}", d.target, d.version, d.id)
}

fn icon(done: bool, failed_here: bool, running: bool) -> &'static str {
    if failed_here {
        "❌"
    } else if done {
        "✅"
    } else if running {
        "⏳"
    } else {
        "▫️"
    }
}

/// Builds the card of deploy `id` from what the store holds.
pub async fn build(
    store: &Store,
    id: i64,
    needed_approvals: u32,
) -> crate::store::Result<Option<DeployCard>> {
    let Some(d) = store.get_deploy(id).await? else {
        return Ok(None);
    };
    let approvals = store.approvals(id).await?;
    let order = [
        DeployState::Locked,
        DeployState::Bump,
        DeployState::Plan,
        DeployState::AwaitingApproval,
        DeployState::Approved,
        DeployState::Apply,
        DeployState::Verify,
        DeployState::Succeeded,
    ];
    // Where the deploy got to: for a failed or interrupted deploy, the step it stopped at.
    let reached = match d.state {
        DeployState::Failed | DeployState::Cancelled | DeployState::Interrupted => d
            .step
            .as_deref()
            .and_then(|s| match s {
                "bump" => Some(DeployState::Bump),
                "plan" => Some(DeployState::Plan),
                "approval" => Some(DeployState::AwaitingApproval),
                "apply" => Some(DeployState::Apply),
                "verify" => Some(DeployState::Verify),
                _ => None,
            })
            .unwrap_or(DeployState::Locked),
        s => s,
    };
    let pos = |s: DeployState| order.iter().position(|o| *o == s).unwrap_or(0);
    let at = pos(reached);
    let stopped = matches!(
        d.state,
        DeployState::Failed | DeployState::Cancelled | DeployState::Interrupted
    );
    let mut lines = Vec::new();
    if let Some(p) = &d.preflight {
        let mut parts = Vec::new();
        for key in ["release", "image", "dag_runs"] {
            if let Some(c) = p.get(key) {
                let status = c
                    .get("status")
                    .and_then(|s| s.as_str())
                    .unwrap_or("unknown");
                let name = c.get("name").and_then(|s| s.as_str()).unwrap_or(key);
                let mark = match status {
                    "pass" => "✅",
                    "fail" if d.force && key == "dag_runs" => "⚠️ forced",
                    "fail" => "❌",
                    _ => "⚠️",
                };
                parts.push(format!("{mark} {name}"));
            }
        }
        if let Some(digest) = &d.image_digest {
            parts.push(format!("image {}…", &digest[..digest.len().min(19)]));
        }
        lines.push(parts.join(" · "));
    }
    let step_line = |label: &str, s: DeployState| {
        let i = pos(s);
        let failed_here = stopped && i == at && d.state != DeployState::Cancelled;
        let done = i < at || (!stopped && d.state == DeployState::Succeeded);
        let running = !stopped && i == at;
        format!("{} {label}", icon(done, failed_here, running))
    };
    lines.push(step_line("bump", DeployState::Bump));
    let mut plan = step_line("plan", DeployState::Plan);
    if let Some(summary) = &d.plan_summary {
        plan.push_str(&format!(": {summary}"));
    }
    lines.push(plan);
    let approvers: Vec<&str> = approvals.iter().map(|a| a.approver.as_str()).collect();
    let mut approval = step_line("approval", DeployState::AwaitingApproval);
    if approvers.is_empty() {
        approval.push_str(&format!(
            " (needs {needed_approvals} from someone other than {})",
            d.requested_by
        ));
    } else {
        approval.push_str(&format!(" by {}", approvers.join(", ")));
    }
    lines.push(approval);
    lines.push(step_line("apply", DeployState::Apply));
    lines.push(step_line("verify", DeployState::Verify));
    let end = match d.state {
        DeployState::Succeeded => "🚀 succeeded".to_string(),
        DeployState::Failed => format!("❌ failed{}", reason(&d)),
        DeployState::Cancelled => format!("🛑 cancelled{}", reason(&d)),
        DeployState::Interrupted => format!(
            "⚠️ interrupted{} — settle with `!deploy resolve {} succeeded|failed`",
            reason(&d),
            d.id
        ),
        s => format!("state: {s}"),
    };
    lines.push(end);
    let buttons = if d.state == DeployState::AwaitingApproval {
        vec![
            Button {
                id: format!("deploy:approve:{id}"),
                label: "Approve".into(),
                style: "success",
            },
            Button {
                id: format!("deploy:cancel:{id}"),
                label: "Cancel".into(),
                style: "danger",
            },
        ]
    } else {
        Vec::new()
    };
    Ok(Some(DeployCard {
        deploy_id: id,
        title: title(&d),
        lines,
        buttons,
        state: d.state,
    }))
}

fn reason(d: &Deploy) -> String {
    d.reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

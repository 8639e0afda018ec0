//! The deploy's status card: one message per deploy that a chat front end edits in place as the
//! workflow moves (Discord), built from the store alone so any process can redraw it.

use crate::conversation::{Button, DeployCard};
use crate::deploy::state::DeployState;
use crate::deploy::step::Step;
use crate::store::{Deploy, PausedDag, StepRecord, Store};

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
    // Where the deploy got to on its path: for one that stopped off it (failed, cancelled,
    // interrupted), the state of the step it stopped at.
    let stopped = !DeployState::PATH.contains(&d.state);
    let reached = if stopped {
        d.step
            .as_deref()
            .and_then(Step::parse)
            .and_then(DeployState::running)
            .unwrap_or(DeployState::Locked)
    } else {
        d.state
    };
    let pos = |s: DeployState| DeployState::PATH.iter().position(|o| *o == s).unwrap_or(0);
    let at = pos(reached);
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
    if let Some(w) = store.wait_of(id).await?
        && d.state == DeployState::WaitingForDags
    {
        lines.push(format!(
            "⏳ waiting for DAG runs (--when-idle) until {}: {} (checked {})",
            crate::timefmt::utc(w.deadline_ms),
            w.waiting_for,
            crate::timefmt::ago(w.checked_ms, crate::store::now_ms())
        ));
    }
    let approvers: Vec<&str> = approvals.iter().map(|a| a.approver.as_str()).collect();
    let journal = store.deploy_steps(id).await?;
    let paused = store.paused_dags(id).await?;
    for step in shown_steps() {
        let Some(i) = DeployState::running(step).map(pos) else {
            continue;
        };
        let failed_here = stopped && i == at && d.state != DeployState::Cancelled;
        let done = i < at || (!stopped && d.state == DeployState::Succeeded);
        let running = !stopped && i == at;
        let mut line = format!("{} {step}", icon(done, failed_here, running));
        match step {
            Step::Plan => {
                if let Some(summary) = &d.plan_summary {
                    line.push_str(&format!(": {summary}"));
                }
                lines.push(line);
                // What ships (the release's commits), under the plan it belongs to.
                lines.extend(changes_lines(&journal));
                continue;
            }
            Step::Approval if approvers.is_empty() => line.push_str(&format!(
                " (needs {needed_approvals} from someone other than {})",
                d.requested_by
            )),
            Step::Approval => line.push_str(&format!(" by {}", approvers.join(", "))),
            Step::Apply => {
                // pause_during_deploy: what was paused for the apply, and whether it is back.
                for p in &paused {
                    lines.push(pause_line(p));
                }
                line = apply_line(line, &journal)
            }
            Step::Verify => {
                if let Some(said) = journal
                    .iter()
                    .rev()
                    .find(|s| s.step == Step::Verify.as_str() && s.state == "succeeded")
                    .and_then(|s| s.detail.get("reason"))
                    .and_then(|r| r.as_str())
                {
                    line.push_str(&format!(": {said}"));
                }
            }
            _ => {}
        }
        lines.push(line);
    }
    let end = match d.state {
        DeployState::Succeeded => "🚀 succeeded".to_string(),
        DeployState::Failed => format!("❌ failed{}", reason(&d)),
        DeployState::Cancelled => format!("🛑 cancelled{}", reason(&d)),
        DeployState::Blocked => format!("⌛ blocked{}", reason(&d)),
        DeployState::Interrupted => format!(
            "⚠️ interrupted{} — settle with `!deploy resolve {} succeeded|failed`",
            reason(&d),
            d.id
        ),
        s => format!("state: {s}"),
    };
    lines.push(end);
    if let Some(pr) = infra_pr_line(&journal) {
        lines.push(pr);
    }
    let buttons = if d.state == DeployState::WaitingForDags {
        vec![Button {
            id: format!("deploy:cancel:{id}"),
            label: "Cancel".into(),
            style: "danger",
        }]
    } else if d.state == DeployState::AwaitingApproval {
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

/// The steps the card has a line for: those of the path after the lock, in order.
fn shown_steps() -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for step in DeployState::PATH.iter().filter_map(|s| s.step()) {
        if step != Step::Lock && !steps.contains(&step) {
            steps.push(step);
        }
    }
    steps
}

/// The apply step's line with what Terraform reported after the `yes` (the journal's apply
/// check); anything but the approved counts replaces the tick with a siren.
fn apply_line(line: String, journal: &[StepRecord]) -> String {
    let Some(check) = journal
        .iter()
        .rev()
        .find(|s| s.step == Step::Apply.as_str() && s.detail.get("apply_check").is_some())
    else {
        return line;
    };
    let said = check.detail["reason"].as_str().unwrap_or(&check.state);
    if check.state == "as_approved" {
        format!("{line}: {said}")
    } else {
        let rest = line.split_once(' ').map_or("apply", |(_, r)| r);
        format!("🚨 {rest}: {said}")
    }
}

/// One DAG paused for the apply: `⏸️ paused \`image_data_refresh\` for the apply · unpaused`.
fn pause_line(p: &PausedDag) -> String {
    let id = &p.dag_id;
    match (p.paused_ms, p.unpaused_ms, &p.last_error) {
        (_, Some(_), _) => format!("⏸️ `{id}` paused for the apply · ▶️ unpaused"),
        (_, None, Some(e)) => format!("🚨 `{id}` is still paused: {e}"),
        (Some(_), None, None) => {
            format!("⏸️ `{id}` paused for the apply (unpaused when the deploy ends)")
        }
        (None, None, None) => format!(
            "⏸️ `{id}`: pause asked, Airflow's answer not recorded (unpaused when the deploy ends)"
        ),
    }
}

/// The lines of what the deploy ships, as the plan step recorded them.
fn changes_lines(journal: &[StepRecord]) -> Vec<String> {
    journal
        .iter()
        .rev()
        .find(|s| s.step == Step::Plan.as_str() && s.state == crate::deploy::changes::JOURNAL_STATE)
        .and_then(|s| s.detail.get("changes")?.as_array().cloned())
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The infra pull request's link, or why it was not opened (the deploy's outcome above it
/// stands either way).
fn infra_pr_line(journal: &[StepRecord]) -> Option<String> {
    let s = journal
        .iter()
        .rev()
        .find(|s| s.step == Step::InfraPr.as_str())?;
    Some(match s.state.as_str() {
        "opened" => format!(
            "🔀 infra pull request: {}",
            s.detail["url"].as_str().unwrap_or("(no link)")
        ),
        _ => format!(
            "⚠️ infra pull request not opened: {}",
            s.detail["reason"].as_str().unwrap_or("unknown reason")
        ),
    })
}

fn reason(d: &Deploy) -> String {
    d.reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_has_a_line_for_each_step_of_the_path_after_the_lock() {
        assert_eq!(
            shown_steps(),
            [
                Step::Bump,
                Step::Plan,
                Step::Approval,
                Step::Apply,
                Step::Verify
            ]
        );
    }
}

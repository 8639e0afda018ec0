//! `!deploy check`, `!deploy status [id]` and `!deploy history [target]`: the preflight on its
//! own, and what the store says about deploys. The workflow itself is `deploy::workflow`.

use crate::context::Ctx;
use crate::deploy::{preflight, recovery};
use crate::reply::{Outcome, Reply};
use crate::store::{Deploy, Result, now_ms};
use crate::timefmt;
use crate::version::Version;

const HISTORY_LEN: u32 = 10;

/// `!deploy check <target> <version>`: the three checks, all reported, nothing changed.
pub async fn check(ctx: &Ctx, target: &str, version: &Version) -> Reply {
    let Some(t) = ctx.config.targets.get(target) else {
        return Reply::new(Outcome::Invalid, format!("Unknown target `{target}`."));
    };
    let report = preflight::run(&ctx.integrations, target, t, version).await;
    let text = report.render();
    if report.passed(false) {
        Reply::ok(format!(
            "{text}\nAll checks passed: {target} {version} can be deployed."
        ))
    } else {
        Reply::new(
            Outcome::Blocked,
            format!("{text}\nBlocked by {}.", report.blockers(false).join(", ")),
        )
    }
}

pub async fn status(ctx: &Ctx, id: Option<i64>) -> Result<Reply> {
    let p = &ctx.config.chat.prefix;
    // A deploy whose owner died is reported as interrupted, not as still running.
    recovery::sweep(&ctx.store, ctx.config.deploy.lease).await?;
    // … and what such a deploy had paused for its apply is unpaused (pause_during_deploy).
    crate::deploy::pauses::settle_leftovers(ctx, None).await;
    let now = now_ms();
    if let Some(id) = id {
        return Ok(match ctx.store.get_deploy(id).await? {
            Some(d) => {
                let mut text = detail(&d, now);
                if d.state == crate::deploy::DeployState::WaitingForDags
                    && let Some(w) = ctx.store.wait_of(id).await?
                {
                    text.push_str(&format!(
                        "\nWaits (--when-idle) until {} for: {} (checked {}). `{p}deploy cancel {id}` \
                         ends the wait.",
                        timefmt::utc(w.deadline_ms),
                        w.waiting_for,
                        timefmt::ago(w.checked_ms, now)
                    ));
                }
                for paused in ctx.store.paused_dags(id).await? {
                    let state = match (paused.unpaused_ms, &paused.last_error) {
                        (Some(ms), _) => format!("unpaused {}", timefmt::utc(ms)),
                        (None, Some(e)) => format!("STILL PAUSED: {e}"),
                        (None, None) => "paused until the deploy ends".to_string(),
                    };
                    text.push_str(&format!(
                        "\nPaused for the apply: `{}` ({state}).",
                        paused.dag_id
                    ));
                }
                let approvals = ctx.store.approvals(id).await?;
                if !approvals.is_empty() {
                    let names: Vec<&str> = approvals.iter().map(|a| a.approver.as_str()).collect();
                    text.push_str(&format!("\nApproved by: {}", names.join(", ")));
                }
                let lock_key = crate::deploy::workflow::lock_key(&d.target, &d.environment);
                if let Some(l) = ctx.store.get_lock(&lock_key).await?
                    && l.deploy_id == Some(d.id)
                {
                    text.push_str(&format!("\nHolds the lock `{lock_key}`."));
                }
                let steps = ctx.store.deploy_steps(id).await?;
                if !steps.is_empty() {
                    text.push_str("\nJournal:");
                    for s in &steps {
                        let exit = s
                            .exit_code
                            .map(|c| format!(" (exit {c})"))
                            .unwrap_or_default();
                        let state = if s.state == s.step {
                            "started"
                        } else {
                            &s.state
                        };
                        text.push_str(&format!(
                            "\n  {} · {} {state}{exit}",
                            timefmt::utc(s.started_ms),
                            s.step,
                        ));
                    }
                }
                if d.state == crate::deploy::DeployState::Interrupted {
                    text.push_str(&format!(
                        "\nCheck reality, then `{p}deploy resolve {id} succeeded|failed`."
                    ));
                }
                Reply::ok(text).with_deploy(d.id)
            }
            None => Reply::ok(format!(
                "There is no deploy #{id}. `{p}deploy history` lists the recent ones."
            )),
        });
    }
    let active = ctx.store.active_deploys().await?;
    if active.is_empty() {
        let last = ctx.store.list_deploys(None, 1).await?;
        let tail = match last.first() {
            Some(d) => format!(" The last one was {}", summary(d, now)),
            None => " No deploy has been made yet.".to_string(),
        };
        return Ok(Reply::ok(format!("No deploy is in progress.{tail}")));
    }
    let mut out = format!("{} deploy(s) in progress:", active.len());
    for d in &active {
        out.push('\n');
        out.push_str(&summary(d, now));
    }
    Ok(Reply::ok(out))
}

pub async fn history(ctx: &Ctx, target: Option<&str>) -> Result<Reply> {
    let p = &ctx.config.chat.prefix;
    let deploys = ctx.store.list_deploys(target, HISTORY_LEN).await?;
    if deploys.is_empty() {
        let example = target
            .map(str::to_string)
            .or_else(|| ctx.config.targets.keys().next().cloned())
            .unwrap_or_else(|| "<target>".into());
        let scope = target.map(|t| format!(" for `{t}`")).unwrap_or_default();
        return Ok(Reply::ok(format!(
            "No deploys yet{scope}. Start one with `{p}deploy {example} <version>`, or check a \
             version first with `{p}deploy check {example} <version>`."
        )));
    }
    let now = now_ms();
    let mut out = match target {
        Some(t) => format!("Last {} deploy(s) of `{t}` (newest first):", deploys.len()),
        None => format!("Last {} deploy(s) (newest first):", deploys.len()),
    };
    for d in &deploys {
        out.push('\n');
        out.push_str(&summary(d, now));
    }
    Ok(Reply::ok(out))
}

/// One line: `#7 catalog v1.2.3 (prod) · succeeded · by alice · 2 h ago`.
fn summary(d: &Deploy, now: i64) -> String {
    let mut s = format!(
        "#{} {} {} ({}) · {}",
        d.id, d.target, d.version, d.environment, d.state
    );
    if let Some(step) = d.step.as_deref().filter(|s| *s != d.state.as_str()) {
        s.push_str(&format!(" at {step}"));
    }
    s.push_str(&format!(
        " · by {} · {}",
        d.requested_by,
        timefmt::ago(d.created_ms, now)
    ));
    s
}

fn detail(d: &Deploy, now: i64) -> String {
    let mut s = format!("Deploy {}", summary(d, now));
    s.push_str(&format!("\nRequested {}", timefmt::utc(d.created_ms)));
    if let Some(f) = d.finished_ms {
        s.push_str(&format!(
            ", finished {} after {}",
            timefmt::utc(f),
            timefmt::duration(f - d.created_ms)
        ));
    }
    if let Some(r) = &d.reason {
        s.push_str(&format!("\nReason: {r}"));
    }
    if let Some(digest) = &d.image_digest {
        s.push_str(&format!("\nImage: {digest}"));
    }
    if let Some(plan) = &d.plan_summary {
        s.push_str(&format!("\n{plan}"));
    }
    if let Some(fp) = &d.plan_fingerprint {
        s.push_str(&format!(" (fingerprint {})", &fp[..fp.len().min(12)]));
    }
    if d.force {
        s.push_str("\nForced past active DAG runs.");
    }
    s
}

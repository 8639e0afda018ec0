//! `!deploy status [id]` and `!deploy history [target]`: what the store says about deploys.

use crate::engine::Ctx;
use crate::reply::Reply;
use crate::store::{Deploy, Result, now_ms};
use crate::timefmt;

const HISTORY_LEN: u32 = 10;

pub async fn status(ctx: &Ctx, id: Option<i64>) -> Result<Reply> {
    let p = &ctx.config.chat.prefix;
    let now = now_ms();
    if let Some(id) = id {
        return Ok(match ctx.store.get_deploy(id).await? {
            Some(d) => Reply::ok(detail(&d, now)).with_deploy(d.id),
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
        s.push_str(&format!("\nPlan: {plan}"));
    }
    if let Some(fp) = &d.plan_fingerprint {
        s.push_str(&format!(" (fingerprint {})", &fp[..fp.len().min(12)]));
    }
    if d.force {
        s.push_str("\nForced past active DAG runs.");
    }
    s
}

//! `!locks`: who holds which deploy lock, for which deploy, since when.

use crate::context::Ctx;
use crate::reply::Reply;
use crate::store::{Lock, Result, now_ms};
use crate::timefmt;

pub async fn list(ctx: &Ctx) -> Result<Reply> {
    crate::deploy::recovery::sweep(&ctx.store, ctx.config.deploy.lease).await?;
    let locks = ctx.store.list_locks().await?;
    if locks.is_empty() {
        return Ok(Reply::ok("No locks are held: a deploy may start."));
    }
    let now = now_ms();
    let mut out = format!("{} lock(s) held:", locks.len());
    for l in &locks {
        out.push('\n');
        out.push_str(&describe(l, now));
    }
    Ok(Reply::ok(out))
}

/// `🔒 catalog/prod — held by alice for deploy #7 since 2026-11-26 04:43 UTC (5 min ago): deploy v1.2.3`
pub fn describe(l: &Lock, now: i64) -> String {
    let deploy = l
        .deploy_id
        .map(|id| format!(" for deploy #{id}"))
        .unwrap_or_default();
    format!(
        "🔒 {} — held by {}{} since {} ({}): {}",
        l.key,
        l.holder,
        deploy,
        timefmt::utc(l.acquired_ms),
        timefmt::ago(l.acquired_ms, now),
        l.reason
    )
}

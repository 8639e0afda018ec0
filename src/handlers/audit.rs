//! `!audit [n]`: the newest audit events, one line each.

use crate::context::Ctx;
use crate::reply::Reply;
use crate::store::{AuditEvent, Result, now_ms};
use crate::timefmt;

const DEFAULT_EVENTS: u32 = 10;

pub async fn recent(ctx: &Ctx, limit: Option<u32>) -> Result<Reply> {
    let events = ctx
        .store
        .list_audit(limit.unwrap_or(DEFAULT_EVENTS), None)
        .await?;
    if events.is_empty() {
        return Ok(Reply::ok("The audit log is empty."));
    }
    let now = now_ms();
    let mut out = format!("Last {} audit events (newest first):", events.len());
    for ev in &events {
        out.push('\n');
        out.push_str(&line(ev, now));
    }
    Ok(Reply::ok(out))
}

/// `#12 · 3 min ago · alice (local) · deploy · denied` plus the command text when there is one.
pub fn line(ev: &AuditEvent, now: i64) -> String {
    let mut s = format!(
        "#{} · {} · {} ({}) · {}",
        ev.seq,
        timefmt::ago(ev.ts_ms, now),
        ev.actor,
        ev.source,
        ev.kind
    );
    for part in [&ev.decision, &ev.outcome].into_iter().flatten() {
        s.push_str(" · ");
        s.push_str(part);
    }
    if let Some(cmd) = ev.command.as_ref().or(ev.raw.as_ref()) {
        s.push_str(&format!(" · `{cmd}`"));
    }
    s
}

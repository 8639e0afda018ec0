//! `!airflow status`: version, each component's health with its heartbeat age, running and
//! queued runs (count and the oldest few), failed runs of the last 24 h and import errors.
//!
//! The five upstream questions go out concurrently, and the whole answer goes through the
//! context's [`Coalescer`](crate::coalesce::Coalescer): a hundred people asking at once cost
//! Airflow one request per endpoint, and a recent answer is reused and dated.

use crate::coalesce::as_of;
use crate::context::Ctx;
use crate::integrations::airflow::{AirflowVersion, Component, DagRun, Health, ImportError};
use crate::reply::{Outcome, Reply};
use crate::store::now_ms;
use crate::timefmt::{self, parse_rfc3339_ms};

/// Oldest active runs shown by name.
const SHOWN_RUNS: usize = 5;
const SHOWN_FAILED: usize = 5;
const SHOWN_ERRORS: usize = 10;
/// Failed runs are read up to this many; beyond, the count comes from `total_entries`.
const FAILED_READ: usize = 100;

/// One fetch of everything the reply shows; each part is its own answer or its error sentence.
#[derive(Debug, Clone)]
pub struct AirflowSnapshot {
    pub fetched_ms: i64,
    pub version: Result<AirflowVersion, String>,
    pub health: Result<Health, String>,
    pub active: Result<Vec<DagRun>, String>,
    pub failed: Result<(Vec<DagRun>, usize), String>,
    pub import_errors: Result<Vec<ImportError>, String>,
}

impl AirflowSnapshot {
    fn complete(&self) -> bool {
        self.version.is_ok()
            && self.health.is_ok()
            && self.active.is_ok()
            && self.failed.is_ok()
            && self.import_errors.is_ok()
    }
}

/// Reads everything at once. A snapshot with a failed part comes back as `Err` so that the
/// cache does not keep it for later questions.
pub async fn snapshot(ctx: &Ctx) -> Result<AirflowSnapshot, AirflowSnapshot> {
    let a = &ctx.integrations.airflow;
    let now = now_ms();
    let since = timefmt::rfc3339(now - 86_400_000);
    let text = |e: crate::integrations::UpstreamError| ctx.redactor.redact(&e.to_string());
    let (version, health, active, failed, import_errors) = tokio::join!(
        a.version(),
        a.health(),
        a.active_runs(),
        a.runs_ended_since("failed", &since, FAILED_READ),
        a.import_errors(),
    );
    let snap = AirflowSnapshot {
        fetched_ms: now,
        version: version.map_err(text),
        health: health.map_err(text),
        active: active.map_err(text),
        failed: failed.map_err(text),
        import_errors: import_errors.map_err(text),
    };
    if snap.complete() { Ok(snap) } else { Err(snap) }
}

/// `!airflow status`.
pub async fn status(ctx: &Ctx) -> Reply {
    let cache = ctx.caches.of::<AirflowSnapshot, AirflowSnapshot>();
    let (result, age) = cache.get("airflow.status", || snapshot(ctx)).await;
    let complete = result.is_ok();
    let snap = result.unwrap_or_else(|partial| partial);
    let text = render(ctx, &snap, now_ms());
    let message = format!("{text}{}", as_of(age));
    if complete {
        Reply::ok(message)
    } else if snap.version.is_err() && snap.health.is_err() {
        Reply::new(Outcome::Blocked, message)
    } else {
        // Partly answered is still an answer; the failed parts say what went wrong.
        Reply::ok(message)
    }
}

fn component_line(name: &str, c: &Component, now: i64) -> String {
    // Airflow 2 reports `"status": null` for a component that does not run as its own process:
    // the DAG processor inside the scheduler (the default), or no triggerer at all. That is a
    // deployment choice, not a failure: no red mark.
    let Some(status) = c.status.as_deref() else {
        let why = match name {
            "dag processor" => " (it runs inside the scheduler)",
            "triggerer" => " (no triggerer has reported; deferrable tasks need one)",
            _ => "",
        };
        return format!("➖ {name}: not running separately{why}");
    };
    let icon = if status == "healthy" { "✅" } else { "❌" };
    let beat = match c.latest_heartbeat.as_deref().and_then(parse_rfc3339_ms) {
        Some(ms) => format!(" · heartbeat {}", timefmt::ago(ms, now)),
        None => String::new(),
    };
    format!("{icon} {name}: {status}{beat}")
}

fn run_line(r: &DagRun, now: i64) -> String {
    let since = r
        .start_date
        .as_deref()
        .or(r.queued_at.as_deref())
        .and_then(parse_rfc3339_ms);
    let age = since
        .map(|ms| format!(" for {}", timefmt::duration(now - ms)))
        .unwrap_or_default();
    format!("  • `{}` {} {}{age}", r.dag_id, r.run_id, r.state)
}

/// The reply's text for one snapshot.
pub fn render(ctx: &Ctx, s: &AirflowSnapshot, now: i64) -> String {
    let url = &ctx.config.airflow.url;
    let mut out = Vec::new();
    match &s.version {
        Ok(v) => out.push(format!("Airflow {} at {url}", v.version)),
        Err(e) => out.push(format!("Airflow at {url}: version unknown ({e})")),
    }
    match &s.health {
        Ok(h) => {
            out.push(component_line("metadatabase", &h.metadatabase, now));
            out.push(component_line("scheduler", &h.scheduler, now));
            if let Some(t) = &h.triggerer {
                out.push(component_line("triggerer", t, now));
            }
            if let Some(d) = &h.dag_processor {
                out.push(component_line("dag processor", d, now));
            }
        }
        Err(e) => out.push(format!("❓ health unknown: {e}")),
    }
    match &s.active {
        Ok(runs) => {
            let running = runs.iter().filter(|r| r.state == "running").count();
            let queued = runs.iter().filter(|r| r.state == "queued").count();
            out.push(format!("Active runs: {running} running, {queued} queued"));
            let mut oldest: Vec<&DagRun> = runs.iter().collect();
            oldest.sort_by_key(|r| {
                r.start_date
                    .as_deref()
                    .or(r.queued_at.as_deref())
                    .and_then(parse_rfc3339_ms)
                    .unwrap_or(i64::MAX)
            });
            for r in oldest.iter().take(SHOWN_RUNS) {
                out.push(run_line(r, now));
            }
            if runs.len() > SHOWN_RUNS {
                out.push(format!("  … and {} more", runs.len() - SHOWN_RUNS));
            }
        }
        Err(e) => out.push(format!("Active runs unknown: {e}")),
    }
    match &s.failed {
        Ok((runs, total)) => {
            out.push(format!("Failed runs in the last 24 h: {total}"));
            for r in runs.iter().take(SHOWN_FAILED) {
                let ended = r
                    .end_date
                    .as_deref()
                    .and_then(parse_rfc3339_ms)
                    .map(|ms| format!(" ended {}", timefmt::ago(ms, now)))
                    .unwrap_or_default();
                out.push(format!("  • `{}` {}{ended}", r.dag_id, r.run_id));
            }
            if *total > SHOWN_FAILED {
                out.push(format!("  … and {} more", total - SHOWN_FAILED));
            }
        }
        Err(e) => out.push(format!("Failed runs unknown: {e}")),
    }
    match &s.import_errors {
        Ok(errors) if errors.is_empty() => out.push("Import errors: none".to_string()),
        Ok(errors) => {
            out.push(format!("Import errors: {}", errors.len()));
            for e in errors.iter().take(SHOWN_ERRORS) {
                out.push(format!("  • {}: {}", e.filename, e.summary));
            }
            if errors.len() > SHOWN_ERRORS {
                out.push(format!("  … and {} more", errors.len() - SHOWN_ERRORS));
            }
        }
        Err(e) => out.push(format!("Import errors unknown: {e}")),
    }
    out.join("\n")
}

//! `--when-idle`: a deploy whose preflight is blocked only by DAG runs takes the lock and waits
//! (`waiting_for_dags`, its wait in the store), instead of someone coming back hours later.
//!
//! Nobody owns a waiting deploy. A long-running process (`run`, `serve`, `console`, `sandbox`)
//! calls [`check_waiting`] every `[deploy] when_idle_poll` (on the watchers' leader only, so two
//! replicas never both look): each waiting deploy's preflight is run again; when it passes, the
//! checking process takes the deploy's lease and moves it `locked` by compare-and-set (one
//! process wins even if two looked), says so and carries on with bump and plan as the requester
//! would have. Past the deadline the deploy ends `blocked` and frees the lock; a release or image
//! that no longer passes ends it `blocked` as well; `!deploy cancel` ends the wait. All of it is
//! in the store, so the wait survives any restart.

use std::sync::Arc;
use std::time::Duration;

use super::preflight::{self, BlockingRun, Report, Status};
use super::workflow::{Flow, Workflow, lock_key};
use crate::config::TargetConfig;
use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::state::{DeployState, Event};
use crate::policy::{Actor, Source};
use crate::reply::{Outcome, Reply};
use crate::store::{Deploy, NewAuditEvent, NewDeploy, NewWait, Owner, Wait, now_ms};
use crate::timefmt::{self, parse_rfc3339_ms};
use crate::version::Version;

/// Runs named in the card's waiting line.
const NAMED: usize = 3;

/// True when DAG runs are the only thing that blocks: the release and the image pass, and the
/// run check failed on real runs (an unanswered check is not something to wait for).
pub fn only_runs_block(report: &Report) -> bool {
    report.release.status == Status::Pass
        && report.image.status == Status::Pass
        && report.dag_runs.status == Status::Fail
}

/// `flickr_workflow run scheduled__2026-…, running for 2 h; …`: what a deploy waits for.
pub fn describe_runs(runs: &[BlockingRun], now: i64) -> String {
    let mut parts: Vec<String> = runs
        .iter()
        .take(NAMED)
        .map(|r| {
            let age = r
                .since
                .as_deref()
                .and_then(parse_rfc3339_ms)
                .map(|ms| {
                    let ago = timefmt::ago(ms, now);
                    format!(", {} for {}", r.state, ago.trim_end_matches(" ago"))
                })
                .unwrap_or_else(|| format!(", {}", r.state));
            format!("{} run {}{age}", r.dag_id, r.run_id)
        })
        .collect();
    if runs.len() > NAMED {
        parts.push(format!("and {} more", runs.len() - NAMED));
    }
    if parts.is_empty() {
        "DAG runs".to_string()
    } else {
        parts.join("; ")
    }
}

/// The sentence after "lock taken" when the deploy will pause DAGs for its apply.
pub(super) fn pause_notice(dags: &[String]) -> String {
    if dags.is_empty() {
        return String::new();
    }
    let names: Vec<String> = dags.iter().map(|d| format!("`{d}`")).collect();
    format!(
        " {} will be paused right before apply (its run waits on its sensor) and unpaused when \
         the deploy ends.",
        names.join(", ")
    )
}

impl Workflow<'_> {
    /// preflight blocked only by DAG runs, `--when-idle`: record the deploy waiting, with the
    /// lock, until the runs are over or `within` has passed.
    pub(super) async fn wait_for_dags(
        &self,
        target_name: &str,
        target: &TargetConfig,
        report: &Report,
        within: Duration,
    ) -> Flow<Reply> {
        let key = lock_key(target_name, &target.environment);
        let concrete = report
            .version
            .clone()
            .unwrap_or_else(|| report.requested.clone());
        let now = now_ms();
        let deadline = now + i64::try_from(within.as_millis()).unwrap_or(i64::MAX / 2);
        let waiting_for = describe_runs(&report.blocking_runs, now);
        let state = DeployState::WaitingForDags.as_str();
        let event = NewAuditEvent {
            outcome: Some(state.into()),
            detail: serde_json::json!({
                "to": state,
                "version": concrete,
                "image_digest": report.image_digest,
                "within_s": within.as_secs(),
                "deadline_ms": deadline,
                "waiting_for": report.blocking_runs,
            }),
            ..self.target_event("deploy.transition", target_name)
        };
        let new = NewDeploy {
            target: target_name,
            environment: &target.environment,
            version: &concrete,
            requested_by: &self.actor.name,
            requested_by_id: &self.actor.id,
            force: false,
        };
        let wait = NewWait {
            deadline_ms: deadline,
            waiting_for: &waiting_for,
            roles: &self.actor.roles,
            source: self.actor.source.name(),
        };
        let d = self.created(
            self.ctx
                .store
                .create_waiting_deploy(&new, &key, &wait, &event)
                .await,
        )?;
        self.keep_preflight(d.id, report).await?;
        self.refresh_card(d.id).await;
        let p = self.prefix();
        Ok(Reply::new(
            Outcome::Waiting,
            format!(
                "⏳ Deploy #{} of {target_name} {concrete} holds the lock `{key}` and waits for the \
                 DAG runs to be over (until {}, {} from now): {waiting_for}. A running bot (`run`, \
                 `serve`, `console` or `sandbox`) starts it by itself as soon as they are over and \
                 says so; `{p}deploy cancel {}` ends the wait.",
                d.id,
                timefmt::utc(deadline),
                humantime::format_duration(within),
                d.id
            ),
        )
        .with_deploy(d.id))
    }

    /// The runs are over and preflight passed again: waiting → locked → bump → plan. `Ok(None)`
    /// when another process took the deploy first (a replica, a cancel).
    async fn start_waiting(
        &self,
        d: Deploy,
        target: &TargetConfig,
        report: &Report,
    ) -> Flow<Option<Reply>> {
        let owner = Owner::current();
        // The lease first, while the deploy still waits (nobody sweeps a waiting deploy): once
        // it is `locked` it must have a live owner, or recovery would call it orphaned.
        // A starter that died between its lease and its transition left its lease on a deploy
        // that still waits: taken over once that owner is gone, never while it may be alive.
        let expected = match &d.owner {
            None => None,
            Some(o) if starter_gone(o, d.heartbeat_ms, self.ctx.config.deploy.lease) => Some(o),
            Some(_) => return Ok(None),
        };
        if !self
            .ctx
            .store
            .take_lease(d.id, &owner, expected)
            .await
            .map_err(|e| self.store_error(e))?
        {
            return Ok(None);
        }
        let reason = "the DAG runs are over and preflight passed again";
        let mut d = d;
        if !self
            .transition(
                &d,
                &[DeployState::WaitingForDags],
                Event::LockTaken,
                Some(reason),
            )
            .await?
        {
            let _ = self.ctx.store.release_lease(d.id, &owner).await;
            return Ok(None);
        }
        d.state = DeployState::Locked;
        d.step = Some(crate::deploy::step::Step::Lock.as_str().to_string());
        let _beat =
            super::runner::heartbeat(&self.ctx.store, self.ctx.config.deploy.lease, d.id, &owner);
        self.keep_preflight(d.id, report).await?;
        self.conv
            .post(&format!(
                "▶️ Deploy #{} of {} {} (requested by {} with --when-idle): the DAG runs are over, \
                 so it starts now.{}",
                d.id,
                d.target,
                d.version,
                d.requested_by,
                pause_notice(&report.dags_to_pause())
            ))
            .await;
        let target = target.clone();
        self.bump_and_plan(d, &target, &owner, None).await.map(Some)
    }

    /// Ends a waiting deploy `blocked` (deadline, or a precondition that no longer holds) and
    /// frees its lock; false when it had moved on meanwhile.
    async fn give_up(&self, d: &Deploy, reason: &str) -> Flow<bool> {
        if !self
            .transition(
                d,
                &[DeployState::WaitingForDags],
                Event::GaveUp,
                Some(reason),
            )
            .await?
        {
            return Ok(false);
        }
        self.ended(d, None).await;
        self.conv
            .post(&format!(
                "⌛ Deploy #{} of {} {} (--when-idle) ends blocked: {reason}. Nothing was changed; \
                 the lock is released.",
                d.id, d.target, d.version
            ))
            .await;
        Ok(true)
    }
}

/// Whether the process that took a waiting deploy's lease (to start it) is gone: its pid is
/// dead on this host, or elsewhere its heartbeat is older than the lease.
fn starter_gone(o: &Owner, heartbeat_ms: Option<i64>, lease: Duration) -> bool {
    let me = Owner::current();
    if o.host == me.host {
        !super::recovery::pid_alive(o.pid)
    } else {
        now_ms() - heartbeat_ms.unwrap_or(0) > i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// What one look at the waiting deploys did, for tests and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WaitsReport {
    /// Deploys still waiting, with what they wait for.
    pub waiting: Vec<(i64, String)>,
    /// Deploys this process started (they run on in their own tasks).
    pub started: Vec<i64>,
    /// Deploys that ended blocked.
    pub blocked: Vec<i64>,
}

/// Looks at every waiting deploy once: ends those past their deadline, starts those whose runs
/// are over (each in its own task, posting to `conv`), and records what the others wait for.
pub async fn check_waiting(
    ctx: &Ctx,
    conv: Arc<dyn Conversation>,
) -> crate::store::Result<WaitsReport> {
    let mut report = WaitsReport::default();
    for (d, wait) in ctx.store.waiting_deploys().await? {
        match check_one(ctx, conv.clone(), d, &wait).await {
            Look::Waiting(id, what) => report.waiting.push((id, what)),
            Look::Started(id) => report.started.push(id),
            Look::Blocked(id) => report.blocked.push(id),
            Look::Gone => {}
        }
    }
    Ok(report)
}

enum Look {
    Waiting(i64, String),
    Started(i64),
    Blocked(i64),
    Gone,
}

/// The requester, as the process that starts their waiting deploy acts for them.
fn requester(d: &Deploy, wait: &Wait) -> Actor {
    Actor {
        id: d.requested_by_id.clone(),
        name: d.requested_by.clone(),
        roles: wait.roles.clone(),
        source: Source::System,
    }
}

async fn check_one(ctx: &Ctx, conv: Arc<dyn Conversation>, d: Deploy, wait: &Wait) -> Look {
    let actor = requester(&d, wait);
    let flow = Workflow {
        ctx,
        actor: &actor,
        conv: conv.as_ref(),
    };
    let id = d.id;
    let Some(target) = ctx.config.targets.get(&d.target) else {
        let reason = format!("the target `{}` is no longer configured", d.target);
        return match flow.give_up(&d, &reason).await {
            Ok(true) => Look::Blocked(id),
            _ => Look::Gone,
        };
    };
    let now = now_ms();
    if now >= wait.deadline_ms {
        let reason = format!(
            "the DAG runs were still active at its deadline ({}): {}",
            timefmt::utc(wait.deadline_ms),
            wait.waiting_for
        );
        return match flow.give_up(&d, &reason).await {
            Ok(true) => Look::Blocked(id),
            _ => Look::Gone,
        };
    }
    let version = match Version::parse(&d.version) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("its stored version is not valid: {e}");
            return match flow.give_up(&d, &reason).await {
                Ok(true) => Look::Blocked(id),
                _ => Look::Gone,
            };
        }
    };
    let report = preflight::run(&ctx.integrations, &d.target, target, &version).await;
    if report.passed(d.force) {
        // Started in its own task: bump and plan take minutes, and the other waits must not
        // wait for them. The compare-and-set inside decides who starts it.
        let ctx = ctx.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let flow = Workflow {
                ctx: &ctx,
                actor: &actor,
                conv: conv.as_ref(),
            };
            match flow.start_waiting(d, &target, &report).await {
                Ok(Some(reply)) | Err(reply) => conv.post(&reply.message).await,
                Ok(None) => {}
            }
        });
        return Look::Started(id);
    }
    // A release or image that fails for real will not come back by waiting; an unanswered
    // check (a flaky service) is asked again at the next look.
    let hard: Vec<&str> = [&report.release, &report.image]
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    if !hard.is_empty() {
        let reason = format!(
            "preflight no longer passes ({}): {}",
            hard.join(", "),
            [&report.release, &report.image]
                .into_iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| c.summary.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        return match flow.give_up(&d, &reason).await {
            Ok(true) => Look::Blocked(id),
            _ => Look::Gone,
        };
    }
    let what = match report.dag_runs.status {
        Status::Fail => describe_runs(&report.blocking_runs, now),
        _ => {
            let unknown: Vec<String> = report
                .checks()
                .into_iter()
                .filter(|c| c.status == Status::Unknown)
                .map(|c| format!("{}: {}", c.name, c.summary))
                .collect();
            // What was known before, with why it could not be checked this time.
            let before = wait
                .waiting_for
                .split(" (could not be checked: ")
                .next()
                .unwrap_or(&wait.waiting_for);
            format!("{before} (could not be checked: {})", unknown.join("; "))
        }
    };
    if what != wait.waiting_for {
        if let Err(e) = ctx.store.update_wait(id, &what).await {
            tracing::warn!(deploy_id = id, error = %e, "cannot record what the deploy waits for");
        }
        super::pauses::redraw_card(ctx, conv.as_ref(), id).await;
    }
    Look::Waiting(id, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dag: &str, since: Option<&str>) -> BlockingRun {
        BlockingRun {
            dag_id: dag.into(),
            run_id: format!("scheduled__{dag}"),
            state: "running".into(),
            since: since.map(str::to_string),
        }
    }

    #[test]
    fn what_a_deploy_waits_for_reads_as_the_card_shows_it() {
        let now = parse_rfc3339_ms("2026-12-01T12:00:00+00:00").expect("time");
        let two_h = Some("2026-12-01T10:00:00+00:00");
        assert_eq!(
            describe_runs(&[run("flickr_workflow", two_h)], now),
            "flickr_workflow run scheduled__flickr_workflow, running for 2 h"
        );
        let many: Vec<BlockingRun> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|d| run(d, None))
            .collect();
        assert_eq!(
            describe_runs(&many, now),
            "a run scheduled__a, running; b run scheduled__b, running; c run scheduled__c, \
             running; and 2 more"
        );
        assert_eq!(describe_runs(&[], now), "DAG runs");
    }

    #[test]
    fn a_starter_on_this_host_is_gone_only_when_its_pid_is() {
        let me = Owner::current();
        assert!(!starter_gone(&me, None, Duration::from_secs(30)));
        let dead = Owner {
            host: me.host.clone(),
            pid: 999_999_999,
        };
        assert!(starter_gone(&dead, Some(now_ms()), Duration::from_secs(30)));
        let remote = Owner {
            host: "replica-b".into(),
            pid: 1,
        };
        assert!(!starter_gone(
            &remote,
            Some(now_ms()),
            Duration::from_secs(30)
        ));
        assert!(starter_gone(
            &remote,
            Some(now_ms() - 31_000),
            Duration::from_secs(30)
        ));
    }
}

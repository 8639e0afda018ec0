//! Deploys whose owner died. A process running a deploy step holds a lease (host, pid,
//! heartbeat). Another process never touches a deploy whose owner is alive; it can tell the
//! owner is gone at once when the owner was on this host and its pid is dead (or now names a
//! process that started after the owner's last heartbeat), otherwise when the lease has expired.
//!
//! Then, on the owner's host, the deploy is carried on ([`reattach`]): its step ran detached
//! under its own supervisor and outlived the owner, so the process that takes the deploy over
//! (a compare-and-set on the lease: with two replicas exactly one wins) follows the step to its
//! recorded end and goes on from there — verify, success or failure, the lock released — through
//! the workflow's own functions. A deploy is marked `interrupted` (step `unknown`) only when its
//! outcome is truly unknown ([`sweep`]): its step's supervisor and the step are gone without a
//! recorded status, it ran attached (no supervisor), or it ran on another host. The sweep also
//! frees the lock of a deploy whose final state was written but whose process died before it
//! released the lock.

use std::time::Duration;

use crate::context::Ctx;
use crate::conversation::Conversation;
use crate::deploy::state::{DeployState, Event, journal_step};
use crate::deploy::workflow::Workflow;
use crate::integrations::infra::detached::{self, Ident};
use crate::policy::{Actor, Source};
use crate::reply::Reply;
use crate::store::{Deploy, NewAuditEvent, Owner, StepRun, Store, now_ms};

/// Whether a process with this pid exists on this host (a zombie does not count: it has ended).
pub fn pid_alive(pid: i64) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..])
        && rest.trim_start().starts_with('Z')
    {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Whether the process now holding `pid` started after `ms` (epoch milliseconds): then it is not
/// the process that renewed a lease at `ms`, whatever its pid (pids are reused).
fn started_after(pid: i64, ms: i64) -> bool {
    started_ms(pid).is_some_and(|started| started > ms)
}

/// When process `pid` started, in epoch milliseconds, never later than the truth (boot time is
/// read in whole seconds, rounded down).
fn started_ms(pid: i64) -> Option<i64> {
    let ident = Ident::of(pid)?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)? as i64;
    Some(btime * 1000 + ident.start * 1000 / ticks)
}

/// Why `d`'s owner is considered gone, or `None` while it may still be working.
pub fn owner_gone(d: &Deploy, me: &Owner, lease: Duration, now: i64) -> Option<String> {
    // Only a working deploy has an owner to lose; one that rests (waiting for approval) or has
    // ended has nobody working on it.
    if !d.state.is_working() {
        return None;
    }
    holder_gone(d, me, lease, now)
}

/// Why the process holding `d`'s lease is gone (nobody holds it; on this host its pid is dead or
/// now names a later process; on another host its lease expired), or `None` while it may still
/// be working on `d`, whatever `d`'s state.
fn holder_gone(d: &Deploy, me: &Owner, lease: Duration, now: i64) -> Option<String> {
    let step = d.step.as_deref().unwrap_or(d.state.as_str());
    match &d.owner {
        None => Some(format!(
            "nobody holds the lease of deploy #{} while it is at {step}",
            d.id
        )),
        Some(o) if o == me => None,
        Some(o) if o.host == me.host => {
            let reused = d.heartbeat_ms.is_some_and(|hb| started_after(o.pid, hb));
            (!pid_alive(o.pid) || reused).then(|| {
                format!(
                    "the process that was running {step} (pid {} on {}) is gone",
                    o.pid, o.host
                )
            })
        }
        Some(o) => {
            let last = d.heartbeat_ms.unwrap_or(0);
            let silent = now - last;
            (silent > lease.as_millis() as i64).then(|| {
                format!(
                    "the process that was running {step} (pid {} on {}) has not renewed its \
                     lease for {} s",
                    o.pid,
                    o.host,
                    silent / 1000
                )
            })
        }
    }
}

/// What a process on this host can do with a working deploy whose owner is gone.
#[derive(Debug)]
pub enum Orphan {
    /// Carry it on: from its state (`None`: no step was running — locked, approved, verify — or
    /// a bump or plan with no run on record, which never started since a run is recorded before
    /// its supervisor exists, and which change nothing outside the infra repo's working copy),
    /// or by following the run of its step that outlived the owner.
    CarryOn(Option<StepRun>),
    /// Its outcome is unknown: it is interrupted, for a maintainer to resolve. With the reason
    /// when it is more precise than the owner's absence (the step's supervisor and the step are
    /// gone without a status). An apply with no run on record may have run attached, under a bot
    /// from before detached steps, so it is never started again on a guess; a run on another
    /// host cannot be followed from here.
    Unknown(Option<String>),
}

/// What can be done with `d`, whose owner is gone, from this process.
pub async fn orphan(store: &Store, d: &Deploy) -> crate::store::Result<Orphan> {
    if !detached::enabled() {
        // This process cannot follow detached steps (the library without the binary): the
        // attached behaviour, where an ownerless deploy is interrupted.
        return Ok(Orphan::Unknown(None));
    }
    let step = match d.state {
        DeployState::Locked | DeployState::Approved | DeployState::Verify => {
            return Ok(Orphan::CarryOn(None));
        }
        DeployState::Bump | DeployState::Plan | DeployState::Apply => d.state.step(),
        _ => None,
    };
    let Some(step) = step else {
        return Ok(Orphan::Unknown(None));
    };
    let run = store.latest_step_run(d.id, step).await?;
    Ok(match run {
        None if d.state != DeployState::Apply => Orphan::CarryOn(None),
        None => Orphan::Unknown(None),
        Some(run) if run.host != Owner::current().host => Orphan::Unknown(None),
        Some(run) => {
            let recorded = run.supervisor_pid.map(|pid| Ident {
                pid,
                start: run.supervisor_start.unwrap_or(0),
            });
            match detached::lost(std::path::Path::new(&run.dir), recorded) {
                None => Orphan::CarryOn(Some(run)),
                Some(why) => {
                    if run.finished_ms.is_none()
                        && let Err(e) = store.finish_step_run(run.id, "lost", None).await
                    {
                        tracing::warn!(error = %e, "cannot record the step run lost");
                    }
                    Orphan::Unknown(Some(why))
                }
            }
        }
    })
}

/// Takes over, on this host, every working deploy whose owner is gone and whose step can be
/// followed ([`orphan`]), and carries each on to its end, speaking in `conv`. The take-over is
/// a compare-and-set on the lease the dead owner held: when two processes start at once, exactly
/// one carries a deploy on and the other leaves it alone. Returns the replies of the deploys
/// carried on (each was also posted).
pub async fn reattach(ctx: &Ctx, conv: &dyn Conversation) -> crate::store::Result<Vec<Reply>> {
    let store = &ctx.store;
    let lease = ctx.config.deploy.lease;
    let me = Owner::current();
    let actor = Actor {
        id: "system:catalog-chatops".into(),
        name: "catalog-chatops".into(),
        roles: Vec::new(),
        source: Source::System,
    };
    let mut replies = Vec::new();
    for d in store.active_deploys().await? {
        let now = now_ms();
        let Some(reason) = owner_gone(&d, &me, lease, now) else {
            continue;
        };
        if d.owner.is_none() && now - d.updated_ms < lease.as_millis() as i64 {
            // Between an approval's compare-and-set and the approver's take of the lease, a
            // deploy has no owner for a moment: only a lease's silence makes it an orphan.
            continue;
        }
        let Orphan::CarryOn(attach) = orphan(store, &d).await? else {
            continue;
        };
        if !store.take_lease(d.id, &me, d.owner.as_ref()).await? {
            // Another process took it over first.
            continue;
        }
        let Some(mut now) = store.get_deploy(d.id).await? else {
            continue;
        };
        if now.state != d.state {
            // It moved between the look and the take-over (a cancel): not ours to carry on.
            let _ = store.release_lease(d.id, &me).await;
            continue;
        }
        now.owner = Some(me.clone());
        store
            .append_audit(&NewAuditEvent {
                kind: "deploy.reattached".into(),
                source: "system".into(),
                actor: "catalog-chatops".into(),
                target: Some(d.target.clone()),
                deploy_id: Some(d.id),
                outcome: Some(d.state.as_str().into()),
                detail: serde_json::json!({
                    "state": d.state.as_str(),
                    "step": d.step,
                    "previous_owner": d.owner,
                    "owner": me,
                    "reason": reason,
                    "run": attach.as_ref().map(|r| &r.dir),
                }),
                ..NewAuditEvent::default()
            })
            .await?;
        tracing::warn!(deploy_id = d.id, %reason, state = %d.state, "carrying the deploy on");
        conv.post(&format!(
            "🔁 Deploy #{} ({} {}): {reason}; this process carries it on from {}.",
            d.id, d.target, d.version, d.state
        ))
        .await;
        let _beat = super::runner::heartbeat(store, lease, d.id, &me);
        let flow = Workflow {
            ctx,
            actor: &actor,
            conv,
        };
        let reply = flow.carry_on(now, &me, attach).await;
        conv.post(&reply.message).await;
        replies.push(reply);
    }
    Ok(replies)
}

/// Marks every deploy whose owner is gone and whose outcome is unknown as interrupted
/// (journaled and audited) and returns them with the reason, so the caller can tell their
/// conversations. Deploys a process on this host can carry on ([`orphan`]) are left to
/// [`reattach`].
pub async fn sweep(store: &Store, lease: Duration) -> crate::store::Result<Vec<(Deploy, String)>> {
    let me = Owner::current();
    let now = now_ms();
    // A process that died between writing a deploy's final state and releasing its lock left
    // the lock behind; it is released here, or the target would stay locked for good. Not while
    // the deploy's process lives: after `succeeded` it still commits the bump for `infra_pr`
    // under the lock, and releases the lock itself right after.
    for lock in store.locks_of_ended_deploys().await? {
        let Some(id) = lock.deploy_id else { continue };
        let Some(d) = store.get_deploy(id).await? else {
            continue;
        };
        let Some(why) = holder_gone(&d, &me, lease, now) else {
            continue;
        };
        if store.release_lock(&lock.key, Some(id)).await? {
            tracing::warn!(
                lock = %lock.key,
                deploy_id = id,
                reason = %why,
                "released the lock of a deploy that had already ended"
            );
        }
    }
    let mut interrupted = Vec::new();
    for d in store.active_deploys().await? {
        let Some(owner_reason) = owner_gone(&d, &me, lease, now) else {
            continue;
        };
        let reason = match orphan(store, &d).await? {
            Orphan::CarryOn(_) => continue,
            Orphan::Unknown(why) => why.unwrap_or(owner_reason),
        };
        // Compare-and-set on the state we saw: if the owner moved it meanwhile, it was alive.
        // The audit event commits with the transition.
        let event = NewAuditEvent {
            kind: "deploy.interrupted".into(),
            source: "system".into(),
            actor: "catalog-chatops".into(),
            target: Some(d.target.clone()),
            deploy_id: Some(d.id),
            outcome: Some("interrupted".into()),
            detail: serde_json::json!({
                "was": d.state.as_str(),
                "step": d.step,
                "owner": d.owner,
                "reason": reason,
            }),
            ..NewAuditEvent::default()
        };
        if !store
            .transition(
                d.id,
                &[d.state],
                DeployState::Interrupted,
                journal_step(d.state, Event::OwnerLost),
                Some(&reason),
                Some(&event),
            )
            .await?
        {
            continue;
        }
        tracing::warn!(deploy_id = d.id, %reason, "deploy interrupted");
        interrupted.push((d, reason));
    }
    Ok(interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(state: DeployState, owner: Option<Owner>, heartbeat_ms: Option<i64>) -> Deploy {
        Deploy {
            id: 7,
            target: "catalog".into(),
            environment: "prod".into(),
            version: "v1.5.3".into(),
            requested_by: "alice".into(),
            requested_by_id: "local:alice".into(),
            state,
            step: Some("plan".into()),
            reason: None,
            force: false,
            image_digest: None,
            plan_fingerprint: None,
            plan_summary: None,
            preflight: None,
            conversation: None,
            owner,
            heartbeat_ms,
            created_ms: 0,
            updated_ms: 0,
            finished_ms: None,
        }
    }

    const LEASE: Duration = Duration::from_secs(30);

    #[test]
    fn a_live_owner_is_never_declared_gone() {
        let me = Owner::current();
        // This very process.
        assert_eq!(
            owner_gone(
                &deploy(DeployState::Plan, Some(me.clone()), Some(0)),
                &me,
                LEASE,
                1_000_000
            ),
            None
        );
        // Another live process on this host (pid 1 always exists, and started before any
        // heartbeat of this test's), however old its heartbeat.
        let init = Owner {
            host: me.host.clone(),
            pid: 1,
        };
        let after_boot = started_ms(1).expect("pid 1's start") + 1;
        assert_eq!(
            owner_gone(
                &deploy(DeployState::Apply, Some(init.clone()), Some(after_boot)),
                &me,
                LEASE,
                1_000_000
            ),
            None
        );
        // Another host within its lease.
        let remote = Owner {
            host: "replica-b".into(),
            pid: 42,
        };
        let now = 1_000_000;
        assert_eq!(
            owner_gone(
                &deploy(DeployState::Bump, Some(remote), Some(now - 29_000)),
                &me,
                LEASE,
                now
            ),
            None
        );
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let me = Owner::current();
        // This process holds the pid now, but it started after the lease was last renewed
        // (at the epoch): the owner was another process with the same pid.
        let mine = Owner {
            host: me.host.clone(),
            pid: me.pid,
        };
        let other = Owner {
            host: me.host.clone(),
            pid: 1,
        };
        let why = owner_gone(
            &deploy(DeployState::Apply, Some(mine), Some(1)),
            &other,
            LEASE,
            1_000_000,
        )
        .expect("gone");
        assert!(why.contains("is gone"), "{why}");
    }

    #[test]
    fn a_dead_local_pid_is_gone_at_once_and_a_silent_remote_after_the_lease() {
        let me = Owner::current();
        // A pid far above any pid_max is certainly not running.
        let dead = Owner {
            host: me.host.clone(),
            pid: 999_999_999,
        };
        let why = owner_gone(
            &deploy(DeployState::Plan, Some(dead), Some(1_000_000)),
            &me,
            LEASE,
            1_000_001,
        )
        .expect("gone");
        assert!(
            why.contains("pid 999999999") && why.contains("is gone"),
            "{why}"
        );

        let remote = Owner {
            host: "replica-b".into(),
            pid: 42,
        };
        let now = 1_000_000;
        let why = owner_gone(
            &deploy(DeployState::Apply, Some(remote), Some(now - 31_000)),
            &me,
            LEASE,
            now,
        )
        .expect("expired");
        assert!(why.contains("has not renewed its lease for 31 s"), "{why}");
    }

    #[test]
    fn resting_and_final_deploys_have_no_owner_to_lose() {
        let me = Owner::current();
        for state in [
            DeployState::AwaitingApproval,
            DeployState::Succeeded,
            DeployState::Failed,
            DeployState::Cancelled,
            DeployState::Interrupted,
        ] {
            assert_eq!(
                owner_gone(&deploy(state, None, None), &me, LEASE, 0),
                None,
                "{state}"
            );
        }
        // A working state without any owner is an orphan.
        assert!(owner_gone(&deploy(DeployState::Bump, None, None), &me, LEASE, 0).is_some());
    }
}

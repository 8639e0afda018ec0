//! Finding deploys whose owner died. A process running a deploy step holds a lease (host, pid,
//! heartbeat). Another process never touches a deploy whose owner is alive; it marks it
//! `interrupted` (step `unknown`) as soon as it can tell the owner is gone: at once when the owner
//! was on this host and its pid is dead, otherwise when the lease has expired.

use std::time::Duration;

use crate::deploy::state::{DeployState, Event, journal_step};
use crate::store::{Deploy, NewAuditEvent, Owner, Store, now_ms};

/// Whether a process with this pid exists on this host.
pub fn pid_alive(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Why `d`'s owner is considered gone, or `None` while it may still be working.
pub fn owner_gone(d: &Deploy, me: &Owner, lease: Duration, now: i64) -> Option<String> {
    // Only a working deploy has an owner to lose; one that rests (waiting for approval) or has
    // ended has nobody working on it.
    if !d.state.is_working() {
        return None;
    }
    let step = d.step.as_deref().unwrap_or(d.state.as_str());
    match &d.owner {
        None => Some(format!(
            "nobody holds the lease of deploy #{} while it is at {step}",
            d.id
        )),
        Some(o) if o == me => None,
        Some(o) if o.host == me.host => (!pid_alive(o.pid)).then(|| {
            format!(
                "the process that was running {step} (pid {} on {}) is gone",
                o.pid, o.host
            )
        }),
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

/// Marks every deploy whose owner is gone as interrupted (journaled and audited) and returns
/// them with the reason, so the caller can tell their conversations.
pub async fn sweep(store: &Store, lease: Duration) -> crate::store::Result<Vec<(Deploy, String)>> {
    let me = Owner::current();
    let now = now_ms();
    let mut interrupted = Vec::new();
    for d in store.active_deploys().await? {
        let Some(reason) = owner_gone(&d, &me, lease, now) else {
            continue;
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
        // Another live process on this host (pid 1 always exists), however old its heartbeat.
        let init = Owner {
            host: me.host.clone(),
            pid: 1,
        };
        assert_eq!(
            owner_gone(
                &deploy(DeployState::Apply, Some(init), Some(0)),
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

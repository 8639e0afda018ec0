//! Processes killed mid-deploy. The step's process group killed under the bot: the deploy fails
//! saying the step was killed. The bot killed during preflight leaves nothing behind, and once
//! the deploy rests (awaiting approval) it keeps waiting. The bot killed while a step runs is
//! `outlive.rs`: the step outlives it and the next process records the real outcome.

use std::time::Duration;

use catalog_chatops::integrations::Service;
use catalog_chatops::store::DeployState;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{
    ALICE, BOB, DEPLOY, Sbx, message, parse, require_just, sigkill, sigkill_group_of,
};

/// Starts alice's deploy with `env`, waits for deploy #1 to reach `state` and `log` to appear on
/// the step side; returns the running bot.
async fn deploy_until(
    s: &Sbx,
    env: &[(&str, &str)],
    state: DeployState,
    log: &str,
) -> tokio::process::Child {
    let child = s.spawn(ALICE, DEPLOY, env);
    let store = s.store().await;
    assert!(
        s.wait_state(&store, 1, state).await,
        "deploy #1 reached {state}"
    );
    assert!(s.wait_log(log).await, "the step side logged `{log}`");
    child
}

/// The step's whole process group SIGKILLed while the bot waits for it: the deploy fails at that
/// step saying it was killed, releases the lock, and applies nothing.
async fn step_killed(step: &str) {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let slow = [
        (
            "SANDBOX_BUMP_SECONDS",
            if step == "bump" { "30" } else { "0" },
        ),
        (
            "SANDBOX_PLAN_SECONDS",
            if step == "plan" { "30" } else { "0" },
        ),
        (
            "SANDBOX_APPLY_SECONDS",
            if step == "apply" { "30" } else { "0" },
        ),
    ];
    let (child, marker) = if step == "apply" {
        let (r, _) = s.exec(ALICE, DEPLOY).await;
        assert_eq!(r["outcome"], "awaiting_approval", "{r}");
        // Killed after the bot answered yes, while the apply changes things.
        (
            s.spawn(BOB, "!deploy approve 1", &slow),
            "apply answered yes",
        )
    } else {
        let state = if step == "bump" {
            DeployState::Bump
        } else {
            DeployState::Plan
        };
        let marker = if step == "bump" {
            "bump start"
        } else {
            "plan start"
        };
        (deploy_until(&s, &slow, state, marker).await, marker)
    };
    assert!(s.wait_log(marker).await);
    sigkill_group_of(s.step_pid(step).expect("step pid"));
    let out = child.wait_with_output().await.expect("bot ends");
    let (r, _) = parse(&out);
    assert_eq!(r["outcome"], "failed", "{r}");
    // The message names the step and the signal, then quotes the step's last lines if any.
    let msg = message(&r);
    let says = format!(
        "❌ Deploy #1 of catalog v1.5.3 failed at {step}: step {step} was killed by signal 9 \
         (SIGKILL)"
    );
    assert!(msg.starts_with(&says), "{msg}");
    assert!(msg.ends_with("The lock is released."), "{msg}");
    let store = s.store().await;
    assert_eq!(s.deploy(&store, 1).await.state, DeployState::Failed);
    assert!(store.list_locks().await.expect("locks").is_empty());
    assert!(
        !s.workdir().join("state/deployed").exists(),
        "nothing applied"
    );
    s.closing_checks(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_step_killed_fails_the_deploy_saying_so() {
    step_killed("bump").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_step_killed_fails_the_deploy_saying_so() {
    step_killed("plan").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_step_killed_fails_the_deploy_saying_so() {
    step_killed("apply").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_preflight_leaves_nothing_behind() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    s.world
        .world
        .faults(Service::Github, |f| f.latency = Duration::from_secs(60));
    let mut child = s.spawn(ALICE, DEPLOY, &[]);
    for _ in 0..600 {
        if s.world.world.count_prefix(Service::Github, "GET /repos/") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.world.world.count_prefix(Service::Github, "GET /repos/") > 0);
    sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");

    // Nothing was created or locked; the attempt is on record.
    let store = s.store().await;
    assert!(
        store
            .list_deploys(None, 10)
            .await
            .expect("deploys")
            .is_empty()
    );
    let (r, _) = s.exec(("carol", &[]), "!locks").await;
    assert_eq!(message(&r), "No locks are held: a deploy may start.", "{r}");
    assert!(s.steps_log().is_empty());
    // The next deploy goes ahead normally.
    s.world
        .world
        .faults(Service::Github, |f| f.latency = Duration::ZERO);
    let (r, _) = s.exec(BOB, DEPLOY).await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    assert_eq!(r["deploy_id"], 1);
    s.closing_checks(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_once_awaiting_approval_keeps_the_deploy_waiting() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let mut child = s.spawn(ALICE, DEPLOY, &[]);
    let pid = child.id().expect("pid") as i32;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // The plan is posted after the move to awaiting approval: kill on seeing it, before the
    // command's closing audit event and reply.
    let mut seen = false;
    while let Some(l) = lines.next_line().await.expect("read") {
        if l.contains("📋 Deploy #1 plan:") {
            seen = true;
            // It may have exited already; a resting deploy is the same either way.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            break;
        }
    }
    assert!(seen, "the plan was posted");
    child.wait().await.expect("reaped");

    // A resting deploy has no owner to lose: still waiting, lock held, approvable.
    let (r, _) = s.exec(("carol", &[]), "!deploy status 1").await;
    let msg = message(&r);
    assert!(msg.contains("awaiting_approval"), "{msg}");
    assert!(!msg.contains("interrupted"), "{msg}");
    let (r, _) = s.exec(("carol", &[]), "!locks").await;
    assert!(message(&r).contains("held by alice for deploy #1"), "{r}");
    assert_eq!(s.applies(), 0);
    let (r, _) = s.exec(BOB, "!deploy approve 1").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    assert!(message(&r).starts_with("🚀 Deploy #1 succeeded"), "{r}");
    let store = s.store().await;
    assert!(store.list_locks().await.expect("locks").is_empty());
    s.closing_checks(1).await;
}

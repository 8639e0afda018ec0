//! Processes killed mid-deploy. The step's process group killed under the bot: the deploy fails
//! saying the step was killed. The bot itself (an `exec` process) SIGKILLed at each workflow
//! state, then a new process looks: what it reports, who holds the lock, and that `resolve`
//! settles what was interrupted. The killed bot's step is not killed with it (it has its own
//! process group, as on a host where only the bot died); it dies at its next line of output, whose
//! pipe has no reader any more (SIGPIPE). Each case waits for the step's group to be gone before
//! judging the step side.

use std::time::Duration;

use catalog_chatops::integrations::Service;
use catalog_chatops::store::DeployState;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{
    ALICE, BOB, DEPLOY, Sbx, message, parse, require_just, sigkill, sigkill_group_of, wait_gone,
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

/// After the bot died at a working state: a new process reports deploy #1 interrupted (its owner
/// is gone), the lock stays held and blocks a new deploy, and `resolve` settles it.
async fn interrupted_then_resolved(s: &Sbx, was: &str, resolution: &str) {
    let (r, _) = s.exec(("carol", &[]), "!deploy status 1").await;
    let msg = message(&r);
    assert!(msg.contains("interrupted at unknown"), "{msg}");
    assert!(
        msg.contains(&format!("the process that was running {was} (pid")),
        "{msg}"
    );
    assert!(msg.contains("is gone"), "{msg}");
    assert!(msg.contains("Holds the lock `catalog/prod`."), "{msg}");
    let (r, _) = s.exec(("carol", &[]), "!locks").await;
    assert!(message(&r).contains("held by alice for deploy #1"), "{r}");
    let (r, _) = s.exec(BOB, DEPLOY).await;
    assert_eq!(r["outcome"], "blocked", "{r}");
    assert!(message(&r).contains("`catalog/prod` is locked by alice for deploy #1"));
    let (r, _) = s
        .exec(BOB, &format!("!deploy resolve 1 {resolution}"))
        .await;
    assert_eq!(r["outcome"], "ok", "{r}");
    assert_eq!(
        message(&r),
        format!(
            "Deploy #1 of catalog v1.5.3 resolved as {resolution} by bob. The lock is released."
        )
    );
    let store = s.store().await;
    assert!(store.list_locks().await.expect("locks").is_empty());
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
async fn bot_killed_during_bump_is_interrupted_and_resolved() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let mut child = deploy_until(
        &s,
        &[("SANDBOX_BUMP_SECONDS", "3")],
        DeployState::Bump,
        "bump start",
    )
    .await;
    let group = s.step_group("bump");
    sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");
    assert!(wait_gone(group).await, "the orphaned bump ends");
    assert!(
        !s.steps_log().contains(&"bump end".to_string()),
        "it died at its first output"
    );
    interrupted_then_resolved(&s, "bump", "failed").await;
    assert!(!s.steps_log().iter().any(|l| l.starts_with("plan")));
    let store = s.store().await;
    assert_eq!(s.deploy(&store, 1).await.state, DeployState::Failed);
    s.closing_checks(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_plan_is_interrupted_and_resolved() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let mut child = deploy_until(
        &s,
        &[("SANDBOX_PLAN_SECONDS", "3")],
        DeployState::Plan,
        "plan start",
    )
    .await;
    let group = s.step_group("plan");
    sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");
    assert!(wait_gone(group).await, "the orphaned plan ends");
    interrupted_then_resolved(&s, "plan", "failed").await;
    assert!(!s.steps_log().iter().any(|l| l.starts_with("apply")));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_an_approved_apply_is_interrupted_and_resolved() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let (r, _) = s.exec(ALICE, DEPLOY).await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let mut child = s.spawn(BOB, "!deploy approve 1", &[("SANDBOX_APPLY_SECONDS", "3")]);
    assert!(s.wait_log("apply answered yes").await);
    let group = s.step_group("apply");
    sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");
    // The approved apply outlives the bot only until its next line of output.
    assert!(wait_gone(group).await, "the orphaned apply ends");
    assert!(
        !s.workdir().join("state/deployed").exists(),
        "it stopped short"
    );
    interrupted_then_resolved(&s, "apply", "failed").await;
    let (r, _) = s.exec(("carol", &[]), "!deploy history catalog").await;
    assert!(
        message(&r).contains("#1 catalog v1.5.3 (prod) · failed"),
        "{r}"
    );
    s.closing_checks(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_verify_is_interrupted_and_resolved() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let (r, _) = s.exec(ALICE, DEPLOY).await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    // Airflow stops answering: verify waits on its health.
    s.world.world.faults(Service::Airflow, |f| f.hang = true);
    let mut child = s.spawn(BOB, "!deploy approve 1", &[]);
    let store = s.store().await;
    assert!(s.wait_state(&store, 1, DeployState::Verify).await);
    sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");
    assert!(s.steps_log().iter().any(|l| l.starts_with("apply applied")));
    interrupted_then_resolved(&s, "verify", "succeeded").await;
    s.closing_checks(1).await;
}

//! Steps that outlive the bot (issue 16). The bot (an `exec` process) is SIGKILLed while its
//! deploy is at bump, plan, apply before the prompt, apply after `yes`, and verify. Each step runs
//! under its own supervisor, so it goes on to its end; the next process to start — a fresh
//! `exec`, or a restarted `run` on the fake Discord — takes the deploy over, follows the step,
//! gives a pending prompt the approved plan's answer, and records the real outcome. Nothing is
//! applied twice, no step starts twice, and the audit chain stays intact. Only when the
//! supervisor and the step are both gone without a status is the deploy `interrupted`, and
//! `resolve` settles it. With two processes starting at once, exactly one carries the deploy on.
//!
//! The infra stand-in waits at a `hold-<point>` file, so every kill lands at its point without
//! a sleep; every wait polls for a condition with a generous deadline.

use catalog_chatops::deploy::step::Step;
use catalog_chatops::integrations::Service;
use catalog_chatops::store::DeployState;
use serde_json::Value;

use crate::fake_discord::{FakeDiscord, GUILD_ID, TOKEN};
use crate::harness::{
    ALICE, BOB, DEPLOY, Sbx, group_running, message, messages, parse, require_just, sigkill,
    sigkill_group_of,
};

const CAROL: (&str, &[&str]) = ("carol", &[]);

/// Where the bot dies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Point {
    Bump,
    Plan,
    ApplyBeforePrompt,
    ApplyAfterYes,
    Verify,
}

impl Point {
    /// The infra stand-in's hold file, and the steps-log line that says the step waits there.
    fn hold(self) -> Option<(&'static str, &'static str)> {
        match self {
            Point::Bump => Some(("bump", "bump start")),
            Point::Plan => Some(("plan", "plan start")),
            Point::ApplyBeforePrompt => Some(("apply-prompt", "apply holding before the prompt")),
            Point::ApplyAfterYes => Some(("apply", "apply answered yes")),
            Point::Verify => None,
        }
    }

    fn recipe(self) -> &'static str {
        match self {
            Point::Bump => "bump",
            Point::Plan => "plan",
            _ => "apply",
        }
    }

    fn applies(self) -> bool {
        !matches!(self, Point::Bump | Point::Plan)
    }
}

/// Runs deploy #1 to `point`, holds its step there and SIGKILLs the bot alone (the step has its
/// own session). Returns the step's process group, which must still be running.
async fn kill_bot_at(s: &Sbx, point: Point) -> Option<nix::unistd::Pid> {
    let store = s.store().await;
    if point.applies() {
        let (r, _) = s.exec(ALICE, DEPLOY).await;
        assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    }
    if let Some((hold, _)) = point.hold() {
        s.hold(hold);
    }
    if point == Point::Verify {
        // Airflow stops answering: verify waits on its health.
        s.world.world.faults(Service::Airflow, |f| f.hang = true);
    }
    let mut child = if point.applies() {
        s.spawn(BOB, "!deploy approve 1", &[])
    } else {
        s.spawn(ALICE, DEPLOY, &[])
    };
    match point.hold() {
        Some((_, line)) => assert!(s.wait_log(line).await, "the step reached `{line}`"),
        None => assert!(s.wait_state(&store, 1, DeployState::Verify).await),
    }
    if point.applies() && point != Point::Verify {
        // The dead bot posted the apply's first lines (the plan it re-prints) before it died.
        assert!(
            posted_some(&store, Step::Apply).await,
            "the bot posted the apply's first lines"
        );
    }
    sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");
    if point == Point::Verify {
        s.world.world.faults(Service::Airflow, |f| f.hang = false);
        return None;
    }
    let group = s.step_group(point.recipe());
    assert!(group_running(group), "the {point:?} step outlived the bot");
    Some(group)
}

/// Waits until some of `step`'s output was posted (the run's `output_offset` moved).
async fn posted_some(store: &catalog_chatops::store::Store, step: Step) -> bool {
    for _ in 0..600 {
        if let Ok(Some(run)) = store.latest_step_run(1, step).await
            && run.output_offset > 0
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Starts `who`'s `text` in a new process, waits until that process has taken deploy #1 over
/// (for a held step), then lets the step go on; returns the process's result and lines.
async fn carry_on_with(
    s: &Sbx,
    point: Point,
    who: (&str, &[&str]),
    text: &str,
) -> (Value, Vec<Value>) {
    let child = s.spawn(who, text, &[]);
    if let Some((hold, _)) = point.hold() {
        let store = s.store().await;
        assert!(
            s.wait_owner(&store, 1, child.id().expect("pid")).await,
            "the new process took deploy #1 over"
        );
        s.release(hold);
    }
    let out = child.wait_with_output().await.expect("exec ends");
    parse(&out)
}

/// After the carry-on: the outcome the deploy really had, each step started once, applied at
/// most once, the lock released, the audit chain intact.
async fn real_outcome_recorded(s: &Sbx, point: Point, said: &[String]) {
    let store = s.store().await;
    assert!(
        said.iter()
            .any(|m| m.starts_with("🔁 Deploy #1 (catalog v1.5.3):")),
        "the new process said it carries deploy #1 on: {said:?}"
    );
    for recipe in ["bump", "plan", "apply"] {
        assert!(
            s.log_count(&format!("{recipe} start")) <= 1,
            "{recipe} started once at most: {:?}",
            s.steps_log()
        );
    }
    if point.applies() {
        assert!(
            said.iter().any(|m| m.starts_with("🚀 Deploy #1 succeeded")),
            "{said:?}"
        );
        if point != Point::Verify {
            // The new process posts the apply from where the dead one stopped posting: its
            // first line is not posted again, its last one is.
            let first = "[apply] module.catalog_airflow.data.aws_ami.ubuntu: Reading...";
            assert!(!said.iter().any(|m| m.contains(first)), "{said:?}");
            assert!(
                said.iter().any(|m| m.contains("[apply] Apply complete!")),
                "{said:?}"
            );
        }
        assert_eq!(s.deploy(&store, 1).await.state, DeployState::Succeeded);
        assert_eq!(s.log_count("apply answered yes"), 1);
        assert!(store.list_locks().await.expect("locks").is_empty());
        s.closing_checks(1).await;
    } else {
        // Bump and plan ran to their ends; the plan waits for approval as it would have.
        assert!(s.log_count(&format!("{} end", point.recipe())) == 1);
        assert_eq!(
            s.deploy(&store, 1).await.state,
            DeployState::AwaitingApproval
        );
        let (r, _) = s.exec(BOB, "!deploy approve 1").await;
        assert!(message(&r).starts_with("🚀 Deploy #1 succeeded"), "{r}");
        s.closing_checks(1).await;
    }
    // The journal says the step ran detached and how it ended.
    let runs = store.step_runs(1).await.expect("runs");
    let step = Step::parse(point.recipe()).expect("step");
    if point != Point::Verify {
        let run = runs
            .iter()
            .find(|r| r.step == step.as_str())
            .expect("the run of the step");
        assert_eq!(run.outcome.as_deref(), Some("succeeded"), "{run:?}");
        assert_eq!(run.exit_code, Some(0));
    }
}

async fn killed_then_exec(point: Point) {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    kill_bot_at(&s, point).await;
    let (r, lines) = carry_on_with(&s, point, CAROL, "!deploy status 1").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    real_outcome_recorded(&s, point, &messages(&lines)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_bump_the_next_exec_records_the_real_outcome() {
    killed_then_exec(Point::Bump).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_plan_the_next_exec_records_the_real_outcome() {
    killed_then_exec(Point::Plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_before_the_apply_prompt_the_next_exec_answers_it_and_records_success() {
    killed_then_exec(Point::ApplyBeforePrompt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_after_yes_the_apply_finishes_and_the_next_exec_records_success() {
    killed_then_exec(Point::ApplyAfterYes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_verify_the_next_exec_verifies_and_records_success() {
    killed_then_exec(Point::Verify).await;
}

/// A step that fails after the bot died: the deploy is failed with the step's own exit code,
/// and the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failing_after_the_bot_died_fails_the_deploy_with_its_exit_code() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    std::fs::create_dir_all(s.workdir().join("state")).expect("state");
    std::fs::write(s.workdir().join("state/fail-bump"), "").expect("fail-bump");
    kill_bot_at(&s, Point::Bump).await;
    let (_, lines) = carry_on_with(&s, Point::Bump, CAROL, "!deploy status 1").await;
    let said = messages(&lines);
    assert!(
        said.iter().any(|m| m.starts_with(
            "❌ Deploy #1 of catalog v1.5.3 failed at bump: step bump exited with code 1"
        )),
        "{said:?}"
    );
    let store = s.store().await;
    assert_eq!(s.deploy(&store, 1).await.state, DeployState::Failed);
    assert!(store.list_locks().await.expect("locks").is_empty());
    let run = store
        .latest_step_run(1, Step::Bump)
        .await
        .expect("run")
        .expect("the bump's run");
    assert_eq!(
        (run.outcome.as_deref(), run.exit_code),
        (Some("failed"), Some(1))
    );
    assert_eq!(s.log_count("plan start"), 0);
    s.closing_checks(0).await;
}

/// The supervisor killed too, with the step: nothing recorded how the apply ended, so the
/// deploy is interrupted (lock kept), and `resolve` settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_and_step_killed_too_the_deploy_is_interrupted_and_resolved() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    let group = kill_bot_at(&s, Point::ApplyAfterYes).await.expect("group");
    let store = s.store().await;
    let run = store
        .latest_step_run(1, Step::Apply)
        .await
        .expect("run")
        .expect("the apply's run");
    let supervisor = run.supervisor_pid.expect("supervisor pid") as i32;
    sigkill(supervisor);
    sigkill_group_of(group.as_raw());
    for _ in 0..600 {
        if !group_running(group) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!group_running(group), "the apply is gone");
    s.release("apply");

    let (r, _) = s.exec(CAROL, "!deploy status 1").await;
    let msg = message(&r);
    assert!(msg.contains("interrupted at unknown"), "{msg}");
    assert!(
        msg.contains("the step's supervisor (pid")
            && msg.contains("and the step are gone without recording how the step ended"),
        "{msg}"
    );
    assert!(msg.contains("Holds the lock `catalog/prod`."), "{msg}");
    assert_eq!(s.deploy(&store, 1).await.state, DeployState::Interrupted);
    assert_eq!(store.list_locks().await.expect("locks").len(), 1);
    let (r, _) = s.exec(BOB, "!deploy resolve 1 failed").await;
    assert_eq!(
        message(&r),
        "Deploy #1 of catalog v1.5.3 resolved as failed by bob. The lock is released."
    );
    assert!(store.list_locks().await.expect("locks").is_empty());
    assert_eq!(s.applies(), 0);
    s.closing_checks(0).await;
}

/// Two processes start at once after the bot died: exactly one takes the deploy over and
/// carries it on; the other leaves it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_starting_at_once_exactly_one_carries_the_deploy_on() {
    if !require_just() {
        return;
    }
    let s = Sbx::start().await;
    kill_bot_at(&s, Point::Plan).await;
    let a = s.spawn(CAROL, "!deploy status 1", &[]);
    let b = s.spawn(("dave", &[]), "!deploy status 1", &[]);
    let store = s.store().await;
    // One of them owns it (the other found it owned, or lost the compare-and-set).
    let (pa, pb) = (a.id().expect("pid"), b.id().expect("pid"));
    let mut owner = None;
    for _ in 0..600 {
        if let Ok(Some(d)) = store.get_deploy(1).await
            && let Some(o) = d.owner
            && (o.pid == i64::from(pa) || o.pid == i64::from(pb))
        {
            owner = Some(o.pid);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(owner.is_some(), "one of them took deploy #1 over");
    s.release("plan");
    let (_, la) = parse(&a.wait_with_output().await.expect("a ends"));
    let (_, lb) = parse(&b.wait_with_output().await.expect("b ends"));
    let carried = |lines: &[Value]| {
        messages(lines)
            .iter()
            .any(|m| m.starts_with("🔁 Deploy #1"))
    };
    assert!(
        carried(&la) ^ carried(&lb),
        "exactly one carried it on:\n{la:?}\n{lb:?}"
    );
    assert_eq!(
        store.count_audit("deploy.reattached").await.expect("count"),
        1
    );
    assert_eq!(s.log_count("plan start"), 1, "{:?}", s.steps_log());
    assert_eq!(s.log_count("plan end"), 1);
    assert_eq!(
        s.deploy(&store, 1).await.state,
        DeployState::AwaitingApproval
    );
    s.closing_checks(0).await;
}

/// A restarted `run` (Discord, on the fake) is the next process: it carries the deploy on from
/// where the bot died and records the real outcome, saying so in its announcement channel and
/// the deploy's thread.
async fn killed_then_run(point: Point) {
    if !require_just() {
        return;
    }
    const ANNOUNCE: u64 = 1300;
    let s = Sbx::start().await;
    kill_bot_at(&s, point).await;
    let fake = FakeDiscord::start().await;
    let mut cmd = s.cmd(&[]);
    cmd.env("CATALOG_CHATOPS__DISCORD__GUILD_ID", GUILD_ID.to_string())
        .env(
            "CATALOG_CHATOPS__DISCORD__ANNOUNCE_CHANNEL_ID",
            ANNOUNCE.to_string(),
        )
        .env("CATALOG_CHATOPS__DISCORD__API_URL", &fake.api_url)
        .env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0")
        .env("DISCORD_TOKEN", TOKEN);
    let (run, _url) = crate::support::spawn_listening(cmd, "run").await;
    let store = s.store().await;
    if let Some((hold, _)) = point.hold() {
        assert!(
            s.wait_owner(&store, 1, run.id().expect("pid")).await,
            "the restarted run took deploy #1 over"
        );
        s.release(hold);
    }
    let (end, last) = if point.applies() {
        (DeployState::Succeeded, "🚀 Deploy #1 succeeded")
    } else {
        (DeployState::AwaitingApproval, "Plan ready: ")
    };
    assert!(
        s.wait_state(&store, 1, end).await,
        "deploy #1 reached {end}"
    );
    let path = format!("/channels/{ANNOUNCE}/messages");
    let said = fake
        .wait_for("the carry-on in the announcements and its end", |calls| {
            let said: Vec<String> = calls
                .iter()
                .filter(|c| c.method == "POST" && c.path.ends_with("/messages"))
                .filter_map(|c| c.content().map(|t| (c.path == path, t.to_string())))
                .map(|(announced, t)| {
                    if announced {
                        t
                    } else {
                        format!("(thread) {t}")
                    }
                })
                .collect();
            let announced = said
                .iter()
                .any(|t| t.starts_with("🔁 Deploy #1 (catalog v1.5.3)"));
            let ended = said
                .iter()
                .any(|t| t.trim_start_matches("(thread) ").starts_with(last));
            (announced && ended).then(|| {
                said.iter()
                    .map(|t| t.trim_start_matches("(thread) ").to_string())
                    .collect::<Vec<_>>()
            })
        })
        .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id().expect("pid") as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let _ = run.wait_with_output().await;
    real_outcome_recorded(&s, point, &said).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_bump_a_restarted_run_records_the_real_outcome() {
    killed_then_run(Point::Bump).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_plan_a_restarted_run_records_the_real_outcome() {
    killed_then_run(Point::Plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_before_the_apply_prompt_a_restarted_run_records_success() {
    killed_then_run(Point::ApplyBeforePrompt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_after_yes_a_restarted_run_records_success() {
    killed_then_run(Point::ApplyAfterYes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_killed_during_verify_a_restarted_run_records_success() {
    killed_then_run(Point::Verify).await;
}

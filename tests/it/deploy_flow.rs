//! The deploy workflow end to end through `exec --json`, as an operator or script drives it: the
//! sandbox world (fake GitHub, registry, Airflow) runs in this test process, the binary runs as
//! child processes, the infra steps run a real `just` with the sandbox's infra justfile.

use crate::harness::{ALICE, BOB, Sbx, parse_code, require_just};

use std::process::Stdio;

use catalog_chatops::sandbox::World;
use catalog_chatops::store::DeployState;
use serde_json::Value;

fn text(lines: &[Value]) -> String {
    lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_check_in_the_sandbox_passes_and_blocks_saying_why() {
    let s = Sbx::with_world(World::openverse_idle()).await;
    let (r, lines, code) = s
        .exec_code(("carol", &[]), "!deploy check catalog v1.5.3")
        .await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("ok"), 0),
        "{}",
        text(&lines)
    );
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("✅ release: `v1.5.3`"), "{msg}");
    assert!(
        msg.contains("✅ image: `wordpress/openverse-catalog:v1.5.3` → sha256:"),
        "{msg}"
    );
    assert!(msg.contains("✅ DAG runs: no active DAG runs"), "{msg}");

    // `latest` resolves to the newest published release (the draft v1.6.0 does not count), and
    // the image is checked for that version.
    let (r, _, code) = s
        .exec_code(("carol", &[]), "!deploy check catalog latest")
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("ok"), 0), "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("Preflight for catalog latest (v1.5.3):"),
        "{msg}"
    );
    assert!(
        msg.contains("✅ image: `wordpress/openverse-catalog:v1.5.3` → sha256:"),
        "{msg}"
    );

    // A running DAG blocks and is named.
    let run_id = s
        .world
        .world
        .lock()
        .airflow
        .add_running("inaturalist_workflow", 60_000, None);
    let (r, _, code) = s
        .exec_code(("carol", &[]), "!deploy check catalog v1.5.3")
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("blocked"), 1));
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("inaturalist_workflow"), "{msg}");
    assert!(msg.contains(&run_id), "{msg}");
    assert!(msg.contains("Blocked by DAG runs."), "{msg}");
    // The release and image were still checked and reported.
    assert!(msg.contains("✅ release"), "{msg}");
    assert!(msg.contains("✅ image"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_or_release_blocks_saying_which() {
    let s = Sbx::with_world(World::openverse_idle()).await;
    // The sandbox has release v1.5.2 without an image.
    let (r, _, code) = s
        .exec_code(("carol", &[]), "!deploy check catalog v1.5.2")
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("blocked"), 1));
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("❌ image: no image `wordpress/openverse-catalog:v1.5.2`"),
        "{msg}"
    );
    assert!(msg.contains("Blocked by image."), "{msg}");

    let (r, _, _) = s
        .exec_code(("carol", &[]), "!deploy check catalog v9.9.9")
        .await;
    let msg = r["message"].as_str().unwrap_or("");
    assert_eq!(r["outcome"], "blocked");
    assert!(
        msg.contains("❌ release: no release `v9.9.9` in WordPress/openverse-catalog"),
        "{msg}"
    );

    // A draft does not count.
    let (r, _, _) = s
        .exec_code(("carol", &[]), "!deploy check catalog v1.6.0")
        .await;
    assert_eq!(r["outcome"], "blocked");

    // An upstream that cannot answer blocks too (fail closed), naming the service.
    let out = s
        .cmd(&["exec", "--json", "!deploy check catalog v1.5.3"])
        .env("CATALOG_CHATOPS__REGISTRY__URL", "http://127.0.0.1:9")
        .output()
        .await
        .expect("exec");
    let (r, _, code) = parse_code(&out);
    assert_eq!((r["outcome"].as_str(), code), (Some("blocked"), 1));
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("⚠️ image: registry:"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_request_approval_apply() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;

    // A contributor cannot start a deploy: nothing runs.
    let (r, _, code) = s
        .exec_code(("carol", &["contributor"]), "!deploy catalog v1.5.3")
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("denied"), 1));
    assert!(
        !s.workdir().join("state/wanted").exists(),
        "no step ran for a denied actor"
    );

    let (r, lines, code) = s.exec_code(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("awaiting_approval"), 0),
        "{}",
        text(&lines)
    );
    assert_eq!(r["deploy_id"], 1);
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Plan ready: 1 to add, 1 to change, 1 to destroy."),
        "{r}"
    );
    let store = s.store().await;
    let steps = store.deploy_steps(1).await.expect("steps");
    let ran = |name: &str| {
        steps
            .iter()
            .filter(|s| s.step == name && s.exit_code.is_some())
            .count()
    };
    assert_eq!((ran("bump"), ran("plan"), ran("apply")), (1, 1, 0));

    // A second deploy while the lock is held is blocked, naming the holder.
    let (r, _, code) = s.exec_code(BOB, "!deploy catalog v1.5.3").await;
    assert_eq!((r["outcome"].as_str(), code), (Some("blocked"), 1));
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("`catalog/prod` is locked by alice for deploy #1"),
        "{msg}"
    );

    // The requester cannot approve their own deploy.
    let (r, _, code) = s.exec_code(ALICE, "!deploy approve 1").await;
    assert_eq!((r["outcome"].as_str(), code), (Some("denied"), 1));
    // Somebody without the permission cannot either.
    let (r, _, _) = s
        .exec_code(("carol", &["contributor"]), "!deploy approve 1")
        .await;
    assert_eq!(r["outcome"], "denied");

    // Another maintainer approves, in another process: apply runs once and is answered yes.
    let (r, lines, code) = s.exec_code(BOB, "!deploy approve 1").await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("ok"), 0),
        "{}",
        text(&lines)
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("🚀 Deploy #1 succeeded"),
        "{r}"
    );
    assert!(text(&lines).contains("(the bot answered: yes)"));
    let steps = store.deploy_steps(1).await.expect("steps");
    let applies: Vec<_> = steps
        .iter()
        .filter(|s| s.step == "apply" && s.exit_code.is_some())
        .collect();
    assert_eq!(applies.len(), 1);
    assert_eq!(applies[0].detail["answers"], serde_json::json!(["yes"]));
    assert_eq!(
        std::fs::read_to_string(s.workdir().join("state/deployed"))
            .expect("applied")
            .trim(),
        "v1.5.3"
    );
    let d = store.get_deploy(1).await.expect("get").expect("deploy");
    assert_eq!(d.state, DeployState::Succeeded);
    assert!(
        store.list_locks().await.expect("locks").is_empty(),
        "lock released"
    );
    assert_eq!(
        store.verify_audit().await.expect("verify").first_broken,
        None
    );

    // Status and history tell it.
    let (r, _, _) = s.exec_code(("carol", &[]), "!deploy history catalog").await;
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("#1 catalog v1.5.3 (prod) · succeeded"),
        "{r}"
    );

    // Deploying the same version again: the plan has no changes, so the deploy ends there.
    let (r, _, code) = s.exec_code(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!((r["outcome"].as_str(), code), (Some("ok"), 0), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("the plan has no changes"),
        "{r}"
    );
    assert!(store.list_locks().await.expect("locks").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_changed_since_approval_is_answered_no() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    let (r, _, _) = s.exec_code(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval");
    // Something changes the infrastructure between plan and apply.
    std::fs::write(s.workdir().join("state/drift"), "").expect("drift");
    let (r, lines, code) = s.exec_code(BOB, "!deploy approve 1").await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("failed"), 1),
        "{}",
        text(&lines)
    );
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("plan changed since approval"), "{msg}");
    assert!(text(&lines).contains("(the bot answered: no)"));
    assert!(
        !s.workdir().join("state/deployed").exists(),
        "nothing was applied"
    );
    let store = s.store().await;
    let apply = store
        .deploy_steps(1)
        .await
        .expect("steps")
        .into_iter()
        .find(|s| s.step == "apply" && s.exit_code.is_some())
        .expect("apply ran");
    assert_eq!(apply.detail["answers"], serde_json::json!(["no"]));
    assert!(store.list_locks().await.expect("locks").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_proceeds_past_running_dags_and_names_them_in_the_audit() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    s.world
        .world
        .lock()
        .airflow
        .add_running("image_data_refresh", 3_600_000, None);
    let (r, _, _) = s.exec_code(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "blocked");
    // --force needs deploy.force …
    let (r, _, _) = s
        .exec_code(
            ("carol", &["contributor"]),
            "!deploy catalog v1.5.3 --force",
        )
        .await;
    assert_eq!(r["outcome"], "denied");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("`deploy.force`")
    );
    // … and then proceeds, recording the runs it overrode.
    let (r, _, _) = s.exec_code(ALICE, "!deploy catalog v1.5.3 --force").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let out = s.cmd(&["audit", "export"]).output().await.expect("export");
    let log = String::from_utf8_lossy(&out.stdout);
    let locked = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["kind"] == "deploy.transition" && e["outcome"] == "locked")
        .expect("locked event");
    assert_eq!(locked["detail"]["force"], true);
    assert_eq!(
        locked["detail"]["overridden_runs"][0]["dag_id"],
        "image_data_refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_apply_releases_the_lock_and_rollback_redeploys_the_previous_version() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    let (r, _, _) = s.exec_code(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval");
    // The requester may cancel their own even without deploy.cancel … (alice has it anyway;
    // carol lacks it and is not the requester).
    let (r, _, _) = s
        .exec_code(("carol", &["contributor"]), "!deploy cancel 1")
        .await;
    assert_eq!(r["outcome"], "denied");
    let (r, _, _) = s.exec_code(ALICE, "!deploy cancel 1").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    let store = s.store().await;
    assert!(store.list_locks().await.expect("locks").is_empty());
    assert_eq!(
        store.get_deploy(1).await.expect("get").expect("d").state,
        DeployState::Cancelled
    );
    let (r, _, _) = s.exec_code(BOB, "!deploy approve 1").await;
    assert_eq!(
        r["outcome"], "blocked",
        "a cancelled deploy cannot be approved: {r}"
    );

    // Two successful deploys, then a rollback goes back to the first version.
    for (v, id) in [("v1.5.1", 2), ("v1.5.3", 3)] {
        let (r, _, _) = s.exec_code(ALICE, &format!("!deploy catalog {v}")).await;
        assert_eq!(r["outcome"], "awaiting_approval", "{r}");
        let (r, _, _) = s.exec_code(BOB, &format!("!deploy approve {id}")).await;
        assert_eq!(r["outcome"], "ok", "{r}");
    }
    let (r, lines, _) = s.exec_code(ALICE, "!deploy rollback catalog").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{}", text(&lines));
    assert!(
        text(&lines).contains("Rolling back catalog from v1.5.3 (deploy #3) to v1.5.1 (deploy #2)")
    );
    assert_eq!(
        store.get_deploy(4).await.expect("get").expect("d").version,
        "v1.5.1"
    );
}

/// The bot killed together with its step's supervisor and the step (a host losing everything
/// but the store): nothing recorded how the plan ended, so the next process reports the deploy
/// interrupted, the lock stays, and `resolve` settles it. (Only the bot killed: the step outlives
/// it and the next process carries the deploy on, `faults::outlive`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_with_its_step_leaves_an_interrupted_deploy_that_resolve_settles() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    s.hold("plan");
    let mut child = s
        .cmd(&[
            "exec",
            "--json",
            "--user",
            "alice",
            "--role",
            "core-maintainer",
            "!deploy catalog v1.5.3",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let store = s.store().await;
    assert!(s.wait_log("plan start").await, "the plan runs");
    crate::harness::sigkill(child.id().expect("pid") as i32);
    child.wait().await.expect("reaped");
    let run = store
        .latest_step_run(1, catalog_chatops::deploy::step::Step::Plan)
        .await
        .expect("run")
        .expect("the plan's run");
    crate::harness::sigkill(run.supervisor_pid.expect("supervisor") as i32);
    let group = s.step_group("plan");
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).expect("killpg");
    for _ in 0..600 {
        if !crate::harness::group_running(group) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.release("plan");

    // A new process finds the supervisor and the step gone without a status: interrupted.
    let (r, _, _) = s.exec_code(("carol", &[]), "!deploy status 1").await;
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("interrupted at unknown"), "{msg}");
    assert!(msg.contains("and the step are gone"), "{msg}");
    assert!(msg.contains("Holds the lock `catalog/prod`."), "{msg}");
    let (r, _, _) = s.exec_code(("carol", &[]), "!locks").await;
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("held by alice for deploy #1"),
        "{r}"
    );
    // The lock still blocks a new deploy.
    let (r, _, _) = s.exec_code(BOB, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "blocked");
    let out = s.cmd(&["audit", "verify"]).output().await.expect("verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Cancel is refused for an interrupted deploy; resolve settles it and frees the lock.
    let (r, _, _) = s.exec_code(BOB, "!deploy cancel 1").await;
    assert_eq!(r["outcome"], "blocked");
    let (r, _, _) = s.exec_code(BOB, "!deploy resolve 1 failed").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    assert!(store.list_locks().await.expect("locks").is_empty());
    assert_eq!(
        store.get_deploy(1).await.expect("get").expect("d").state,
        DeployState::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_past_its_timeout_fails_the_deploy_saying_so() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    let out = s
        .cmd(&[
            "exec",
            "--json",
            "--user",
            "alice",
            "--role",
            "core-maintainer",
            "!deploy catalog v1.5.3",
        ])
        .env("SANDBOX_PLAN_SECONDS", "60")
        .env("CATALOG_CHATOPS__TARGETS__CATALOG__STEP_TIMEOUT", "3s")
        .output()
        .await
        .expect("exec");
    let (r, _, code) = parse_code(&out);
    assert_eq!((r["outcome"].as_str(), code), (Some("failed"), 1), "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("failed at plan"), "{msg}");
    assert!(msg.contains("timed out"), "{msg}");
    assert!(msg.contains("killed with its child processes"), "{msg}");
    assert!(
        s.store()
            .await
            .list_locks()
            .await
            .expect("locks")
            .is_empty()
    );
}

/// A deploy cancelled from another process while its plan runs: the plan's whole process group is
/// ended at once (its supervisor does it), the owner's next move finds the deploy cancelled, stops
/// there (no approval asked, nothing applied) and says so; the lock is free for the next deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_cancelled_during_its_plan_ends_the_plan_and_stops() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    // The plan waits until released, so the cancel surely meets it running.
    s.hold("plan");
    let owner = s
        .cmd(&[
            "exec",
            "--json",
            "--user",
            ALICE.0,
            "--role",
            "core-maintainer",
            "!deploy catalog v1.5.3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let store = s.store().await;
    assert!(
        s.wait_state(&store, 1, DeployState::Plan).await,
        "deploy #1 did not reach its plan step"
    );
    assert!(s.wait_log("plan start").await, "the plan runs");

    let (r, _, code) = s.exec_code(BOB, "!deploy cancel 1").await;
    assert_eq!((r["outcome"].as_str(), code), (Some("ok"), 0), "{r}");
    assert!(store.list_locks().await.expect("locks").is_empty());

    // The owner's plan ends; its next transition loses the compare-and-set to the cancel.
    let out = owner.wait_with_output().await.expect("owner");
    let (r, lines, _) = parse_code(&out);
    let said = text(&lines);
    assert_eq!(r["outcome"], "failed", "{said}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("Deploy #1 stopped: it is now cancelled (cancelled by bob)"),
        "{r}"
    );
    assert!(
        !said.contains("deploy approve 1"),
        "no approval asked: {said}"
    );
    let d = store.get_deploy(1).await.expect("get").expect("d");
    assert_eq!(d.state, DeployState::Cancelled);
    let steps = std::fs::read_to_string(s.workdir().join("state/steps.log")).expect("steps.log");
    assert!(
        !steps.contains("plan end"),
        "the plan was ended with its group: {steps}"
    );
    assert!(!steps.contains("apply"), "nothing applied: {steps}");
    assert!(store.list_locks().await.expect("locks").is_empty());

    s.release("plan");
    // The target is free again.
    let (r, _, _) = s.exec_code(BOB, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let out = s.cmd(&["audit", "verify"]).output().await.expect("verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------------------------
// Every Terraform case, through a whole deploy with a real `just`.

/// The justfile that plays a case's recorded output back (see the file).
const CASES_JUSTFILE: &str = include_str!("../fixtures/terraform-cases.justfile");

/// One row of a Terraform corpus's `cases.tsv`: id, kind, drift partner, Terraform's own summary
/// line.
struct TfCase {
    id: String,
    partner: String,
    summary: String,
}

/// The cases of `dir` (the corpus must be there: a missing corpus fails, it never passes
/// silently).
fn tf_cases(dir: &std::path::Path) -> Vec<TfCase> {
    let index = dir.join("cases.tsv");
    let tsv = std::fs::read_to_string(&index)
        .unwrap_or_else(|e| panic!("{}: {e}: the Terraform corpus is required", index.display()));
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "{l:?}");
            TfCase {
                id: cols[0].into(),
                partner: cols[2].into(),
                summary: cols[3].into(),
            }
        })
        .collect()
}

/// What Terraform prints after `yes` for a plan whose summary line is `summary`: its counts in
/// the past tense (`Plan: 1 to import, 0 to add, …. Actions: 1 to invoke.` → `Apply complete!
/// Resources: 1 imported, 0 added, …. Actions: 1 invoked.`); an outputs-only plan changes none.
fn apply_complete(summary: &str) -> String {
    if summary == "Changes to Outputs:" {
        return "Apply complete! Resources: 0 added, 0 changed, 0 destroyed.".into();
    }
    summary
        .replace("Plan: ", "Apply complete! Resources: ")
        .replace(" to import", " imported")
        .replace(" to add", " added")
        .replace(" to change", " changed")
        .replace(" to destroy", " destroyed")
        .replace(" to invoke", " invoked")
}

/// Runs every case of `dir` through two whole deploys in one sandbox: apply prints the case's
/// own apply output (answered `yes`, applied, Terraform's result compared as approved), then its
/// drift partner's (answered `no`, the deploy fails, nothing applied). Returns the number of
/// cases.
async fn deploy_every_case(dir: &std::path::Path) -> usize {
    let s = Sbx::with_world(World::openverse_idle()).await;
    std::fs::write(s.workdir().join("infra.justfile"), CASES_JUSTFILE).expect("justfile");
    let store = s.store().await;
    let applied = s.workdir().join("applied");
    let cases = tf_cases(dir);
    for c in &cases {
        let plan_file = dir.join(format!("{}.plan.txt", c.id));
        for (drift, apply_id) in [(false, &c.id), (true, &c.partner)] {
            let _ = std::fs::remove_file(&applied);
            let (r, lines, _) = s
                .exec_env(
                    ALICE,
                    "!deploy catalog v1.5.3",
                    &[("SANDBOX_PLAN_FILE", (&plan_file).into())],
                )
                .await;
            assert_eq!(
                r["outcome"],
                "awaiting_approval",
                "{}: {}",
                c.id,
                text(&lines)
            );
            let id = r["deploy_id"].as_i64().expect("a deploy id");
            let msg = r["message"].as_str().unwrap_or("");
            if c.summary == "Changes to Outputs:" {
                assert!(
                    msg.starts_with("Plan ready: changes ") && msg.contains(" outputs."),
                    "{}: {msg}",
                    c.id
                );
            } else {
                // Every count Terraform printed, in its words (and the outputs a plan changes
                // besides, which Terraform does not count).
                let counts = c.summary.trim_start_matches("Plan: ").trim_end_matches('.');
                let rest = msg.strip_prefix(&format!("Plan ready: {counts}"));
                assert!(
                    rest.is_some_and(|r| r.starts_with(". Waiting")
                        || (r.starts_with("; changes ") && r.contains(" outputs. Waiting"))),
                    "{}: {msg}",
                    c.id
                );
            }
            let (r, lines, _) = s
                .exec_env(
                    BOB,
                    &format!("!deploy approve {id}"),
                    &[
                        (
                            "SANDBOX_APPLY_FILE",
                            dir.join(format!("{apply_id}.apply.txt")).into(),
                        ),
                        ("SANDBOX_APPLY_RESULT", apply_complete(&c.summary).into()),
                    ],
                )
                .await;
            let answers = store
                .deploy_steps(id)
                .await
                .expect("steps")
                .into_iter()
                .find(|st| st.step == "apply" && st.exit_code.is_some())
                .map(|st| st.detail["answers"].clone());
            let d = store.get_deploy(id).await.expect("get").expect("deploy");
            if drift {
                assert_eq!(
                    r["outcome"],
                    "failed",
                    "{} drifting to {}: {}",
                    c.id,
                    c.partner,
                    text(&lines)
                );
                assert!(
                    r["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("plan changed since approval"),
                    "{}: {r}",
                    c.id
                );
                assert_eq!(answers, Some(serde_json::json!(["no"])), "{}", c.id);
                assert!(!applied.exists(), "{}: nothing may be applied", c.id);
                assert_eq!(d.state, DeployState::Failed, "{}", c.id);
            } else {
                assert_eq!(r["outcome"], "ok", "{}: {}", c.id, text(&lines));
                assert_eq!(answers, Some(serde_json::json!(["yes"])), "{}", c.id);
                assert!(applied.exists(), "{}: applied", c.id);
                assert_eq!(d.state, DeployState::Succeeded, "{}", c.id);
                let check = store
                    .deploy_steps(id)
                    .await
                    .expect("steps")
                    .into_iter()
                    .find(|st| st.step == "apply" && st.detail.get("apply_check").is_some())
                    .expect("the apply result was compared");
                assert_eq!(check.state, "as_approved", "{}: {:?}", c.id, check.detail);
                assert!(!text(&lines).contains('🚨'), "{}: {}", c.id, text(&lines));
            }
            assert!(
                store.list_locks().await.expect("locks").is_empty(),
                "{}",
                c.id
            );
        }
    }
    assert_eq!(
        store.verify_audit().await.expect("verify").first_broken,
        None
    );
    cases.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_terraform_case_deploys_when_unchanged_and_is_refused_when_it_drifted() {
    if !require_just() {
        return;
    }
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real-terraform");
    assert_eq!(deploy_every_case(&dir).await, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_own_terraform_form_deploys_when_unchanged_and_is_refused_when_it_drifted() {
    if !require_just() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform");
    assert!(deploy_every_case(&dir).await >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_result_other_than_the_approved_plan_is_shown_loudly() {
    if !require_just() {
        return;
    }
    let s = Sbx::with_world(World::openverse_idle()).await;
    std::fs::write(s.workdir().join("infra.justfile"), CASES_JUSTFILE).expect("justfile");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform");
    let (r, _, _) = s
        .exec_env(
            ALICE,
            "!deploy catalog v1.5.3",
            &[(
                "SANDBOX_PLAN_FILE",
                dir.join("tf14-update-action.plan.txt").into(),
            )],
        )
        .await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    // Terraform applies the approved plan, then reports one more change than it showed.
    let (r, lines, _) = s
        .exec_env(BOB, "!deploy approve 1", &[("SANDBOX_APPLY_FILE", dir.join("tf14-update-action.apply.txt").into()), ("SANDBOX_APPLY_RESULT", "Apply complete! Resources: 1 added, 1 changed, 0 destroyed. Actions: 1 invoked.".into())])
        .await;
    let said = text(&lines);
    assert!(
        said.contains(
            "🚨 Deploy #1: MISMATCH: Terraform reported 1 added, 1 changed, 0 destroyed; actions: \
             1 invoked, but the approved plan was 0 to add, 1 to change, 0 to destroy; actions: 1 \
             to invoke; check what was applied."
        ),
        "{said}"
    );
    // It was applied (answered yes) and is not hidden: the card, the journal and the audit
    // log say so.
    assert_eq!(r["outcome"], "ok", "{r}");
    let store = s.store().await;
    let card = catalog_chatops::deploy::card::build(&store, 1, 1)
        .await
        .expect("card")
        .expect("a card");
    assert!(
        card.text()
            .contains("🚨 apply: MISMATCH: Terraform reported 1 added"),
        "{}",
        card.text()
    );
    let audit = store.list_audit(50, None).await.expect("audit");
    let event = audit
        .iter()
        .find(|e| e.kind == "deploy.apply_check")
        .expect("the apply check is audited");
    assert_eq!(event.outcome.as_deref(), Some("mismatch"));
    assert_eq!(
        event.detail["reported"],
        "1 added, 1 changed, 0 destroyed; actions: 1 invoked"
    );
    let out = s
        .cmd(&["audit", "list"])
        .output()
        .await
        .expect("audit list");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("[deploy.apply_check]") && listed.contains("outcome=mismatch"),
        "{listed}"
    );

    // And the approved counts read as approved on the card.
    let (r, _, _) = s
        .exec_env(
            ALICE,
            "!deploy catalog v1.5.3",
            &[(
                "SANDBOX_PLAN_FILE",
                dir.join("tf15-import-update.plan.txt").into(),
            )],
        )
        .await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, _, _) = s
        .exec_env(
            BOB,
            "!deploy approve 2",
            &[
                (
                    "SANDBOX_APPLY_FILE",
                    dir.join("tf15-import-update.apply.txt").into(),
                ),
                (
                    "SANDBOX_APPLY_RESULT",
                    "Apply complete! Resources: 1 imported, 0 added, 1 changed, 0 destroyed."
                        .into(),
                ),
            ],
        )
        .await;
    assert_eq!(r["outcome"], "ok", "{r}");
    let card = catalog_chatops::deploy::card::build(&store, 2, 1)
        .await
        .expect("card")
        .expect("a card");
    assert!(
        card.text().contains(
            "✅ apply: Terraform reported 1 imported, 0 added, 1 changed, 0 destroyed, as approved."
        ),
        "{}",
        card.text()
    );
}

//! Issue 15 in the workflow, end to end through the binary (`exec --json`, `serve`) against the
//! sandbox's fake Airflow, with a real `just` running the infra steps:
//!
//! - `pause_during_deploy`: the data refresh whose run waits on its sensor is paused right before
//!   apply and unpaused when the deploy ends — after success, after a failed apply, after the bot
//!   killed at its step timeout, after the bot was SIGKILLed during apply (by the restarted process, without a command); a refresh that
//!   left its sensor stops the deploy before apply; a cancelled deploy never paused anything.
//! - `--when-idle`: waits with the lock (outcome `waiting`), a `serve` started later starts it as
//!   soon as the run is over; the deadline ends it `blocked` and frees the lock; cancel ends the
//!   wait; two `serve` replicas start it once.
//! - `verify`: an argv whose output must contain the deployed image tag; without one the card
//!   says only health was checked.
//!
//! The same pause story runs against real Airflow 2.9.3 and 3 in `airflow_real.rs`.

use crate::support;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use catalog_chatops::sandbox::{self, SandboxHandle, SimTask, World};
use catalog_chatops::store::{DeployState, Store};
use serde_json::Value;
use tokio::process::Command;

const REFRESH: &str = "image_data_refresh";
const ALICE: (&str, &[&str]) = ("alice", &["core-maintainer"]);
const BOB: (&str, &[&str]) = ("bob", &["core-maintainer"]);

fn require_just() -> bool {
    support::require_tool("just", "the pause_during_deploy and --when-idle tests")
}

struct Sbx {
    world: SandboxHandle,
    dir: tempfile::TempDir,
    store_url: String,
    env: Vec<(String, String)>,
}

impl Sbx {
    async fn start(world: World) -> Sbx {
        let world = sandbox::start(world).await.expect("sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        sandbox::session::write_infra(&dir.path().join("infra")).expect("infra justfile");
        let store_url = support::store_url(dir.path()).await;
        Sbx {
            world,
            dir,
            store_url,
            env: vec![
                (
                    "CATALOG_CHATOPS__TARGETS__CATALOG__PAUSE_DURING_DEPLOY".into(),
                    format!("[\"{REFRESH}\"]"),
                ),
                // verify asks Airflow's health every 5 s; the fake is healthy at once.
                (
                    "CATALOG_CHATOPS__DEPLOY__WHEN_IDLE_POLL".into(),
                    "1s".into(),
                ),
                ("CATALOG_CHATOPS__DEPLOY__LEASE".into(), "3s".into()),
            ],
        }
    }

    fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("infra/state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c =
            support::sandbox_command(&self.world, &self.store_url, self.dir.path(), "sandbox");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.args(args);
        c
    }

    fn exec_cmd(&self, (user, roles): (&str, &[&str]), text: &str) -> Command {
        let mut args = vec!["exec", "--json", "--user", user];
        for r in roles {
            args.push("--role");
            args.push(r);
        }
        args.push(text);
        self.cmd(&args)
    }

    async fn exec(&self, who: (&str, &[&str]), text: &str) -> (Value, String) {
        let out = self.exec_cmd(who, text).output().await.expect("exec");
        parse(&out)
    }

    async fn store(&self) -> Store {
        Store::open(&self.store_url).await.expect("store")
    }

    fn paused(&self, dag_id: &str) -> bool {
        self.world
            .world
            .lock()
            .airflow
            .dags
            .iter()
            .find(|d| d.dag_id == dag_id)
            .map(|d| d.is_paused)
            .expect("a known DAG")
    }

    /// The refresh runs and waits on its reschedule-mode sensor; its copy has not started.
    fn refresh_waits_on_sensor(&self) -> String {
        let mut w = self.world.world.lock();
        for d in w.airflow.dags.iter_mut().filter(|d| d.dag_id == REFRESH) {
            d.is_paused = false;
        }
        let run = w.airflow.add_running(REFRESH, 3_600_000, None);
        w.airflow.set_tasks(
            REFRESH,
            &run,
            vec![
                SimTask::new("wait_for_index", "HttpSensor", Some("up_for_reschedule")),
                SimTask::new("copy_data", "BashOperator", None),
            ],
        );
        run
    }

    fn refresh_copies(&self, run: &str) {
        self.world.world.lock().airflow.set_tasks(
            REFRESH,
            run,
            vec![
                SimTask::new("wait_for_index", "HttpSensor", Some("success")),
                SimTask::new("copy_data", "BashOperator", Some("running")),
            ],
        );
    }

    fn audit_kinds(&self) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalog-chatops"))
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"),
                "audit",
                "export",
            ])
            .env("CATALOG_CHATOPS__STORE__URL", &self.store_url)
            .current_dir(self.dir.path())
            .output()
            .expect("audit export");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn parse(out: &Output) -> (Value, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let result = lines.last().cloned().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(result["type"], "result", "{stdout}");
    let text = lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    (result, text)
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn state_of(store: &Store, id: i64) -> DeployState {
    store
        .get_deploy(id)
        .await
        .expect("get")
        .expect("deploy")
        .state
}

fn kill(child: &tokio::process::Child) {
    let pid = child.id().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_waiting_on_its_sensor_is_paused_for_apply_and_unpaused_however_the_deploy_ends()
{
    if !require_just() {
        return;
    }
    let mut s = Sbx::start(World::openverse_idle()).await;
    s.set("SANDBOX_APPLY_SECONDS", "2");
    let run = s.refresh_waits_on_sensor();
    let store = s.store().await;

    // 1. Success. Preflight and the lock message say what will be paused.
    let (r, text) = s.exec(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    assert!(
        text.contains("the DAG will be paused during the deploy (pause_during_deploy)")
            && text.contains(&format!(
                "`{REFRESH}` will be paused right before apply (its run waits on its sensor) and \
                 unpaused when the deploy ends."
            )),
        "{text}"
    );
    assert!(!s.paused(REFRESH), "nothing paused before apply");
    let approve = s
        .exec_cmd(BOB, "!deploy approve 1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("approve");
    eventually("apply running with the refresh paused", 20, || async {
        (state_of(&store, 1).await == DeployState::Apply).then_some(())
    })
    .await;
    assert!(s.paused(REFRESH), "paused while apply runs");
    let (r, text) = parse(&approve.wait_with_output().await.expect("approve ran"));
    assert_eq!(r["outcome"], "ok", "{r}\n{text}");
    assert!(
        text.contains(&format!("⏸️ Deploy #1 before apply: paused `{REFRESH}`")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "▶️ Deploy #1 ended: unpaused `{REFRESH}` (paused for its apply)."
        )),
        "{text}"
    );
    assert!(!s.paused(REFRESH), "unpaused after success");
    let (r, _) = s.exec(BOB, "!deploy status 1").await;
    let status = r["message"].as_str().unwrap_or("");
    assert!(
        status.contains(&format!("Paused for the apply: `{REFRESH}` (unpaused ")),
        "{status}"
    );
    // Without a verify command the card and the journal say only health was checked.
    assert!(
        r["message"].as_str().unwrap_or("").contains("succeeded"),
        "{status}"
    );
    let steps = store.deploy_steps(1).await.expect("journal");
    let verified = steps
        .iter()
        .find(|st| st.step == "verify" && st.state == "succeeded")
        .expect("verified");
    assert!(
        verified.detail["reason"]
            .as_str()
            .unwrap_or("")
            .contains("only health was checked"),
        "{:?}",
        verified.detail
    );
    let audit = s.audit_kinds();
    assert!(
        audit.contains("\"deploy.pause\"") && audit.contains("\"deploy.unpause\""),
        "{audit}"
    );

    // 2. A failed apply (the plan drifted: answered no) unpauses too.
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    std::fs::write(s.state_dir().join("drift"), "").expect("drift");
    let (r, text) = s.exec(BOB, "!deploy approve 2").await;
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(text.contains(&format!("paused `{REFRESH}`")), "{text}");
    assert!(
        text.contains(&format!("▶️ Deploy #2 ended: unpaused `{REFRESH}`")),
        "{text}"
    );
    assert!(!s.paused(REFRESH), "unpaused after a failed apply");
    std::fs::remove_file(s.state_dir().join("drift")).expect("no drift");

    // 2b. An apply killed at its step timeout unpauses too.
    s.set("CATALOG_CHATOPS__TARGETS__CATALOG__STEP_TIMEOUT", "3s");
    s.set("SANDBOX_APPLY_SECONDS", "20");
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.0").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, text) = s.exec(BOB, "!deploy approve 3").await;
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(
        text.contains("▶️ Deploy #3 ended: unpaused `image_data_refresh`"),
        "{text}"
    );
    assert!(!s.paused(REFRESH), "unpaused after the apply timed out");
    s.set("CATALOG_CHATOPS__TARGETS__CATALOG__STEP_TIMEOUT", "5m");
    s.set("SANDBOX_APPLY_SECONDS", "2");

    // 3. Cancelled while waiting for approval: nothing was ever paused.
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, _) = s.exec(ALICE, "!deploy cancel 4").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    assert!(!s.paused(REFRESH));
    assert!(store.paused_dags(4).await.expect("paused").is_empty());

    // 4. The bot is SIGKILLed during apply; the restarted bot (`serve`) carries it on and unpauses.
    s.set("SANDBOX_APPLY_SECONDS", "30");
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let mut approve = s
        .exec_cmd(BOB, "!deploy approve 5")
        .stdout(Stdio::null())
        .spawn()
        .expect("approve");
    eventually("apply running", 20, || async {
        (state_of(&store, 5).await == DeployState::Apply).then_some(())
    })
    .await;
    assert!(s.paused(REFRESH));
    kill(&approve);
    approve.wait().await.expect("reaped");
    assert!(s.paused(REFRESH), "still paused: nobody has recovered yet");
    let (mut serve, _) = support::spawn_listening(
        {
            let mut c = s.cmd(&[]);
            c.env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0");
            c
        },
        "serve",
    )
    .await;
    // The apply outlives the bot (issue 16): the restarted `serve` follows it to its end, and
    // the deploy's ending unpauses the refresh.
    eventually("the restarted bot to unpause the refresh", 120, || async {
        (!s.paused(REFRESH)).then_some(())
    })
    .await;
    assert_eq!(state_of(&store, 5).await, DeployState::Succeeded);
    let rows = store.paused_dags(5).await.expect("paused");
    assert!(rows[0].unpaused_ms.is_some(), "{rows:?}");
    serve.kill().await.ok();

    // 5. The refresh left its sensor after preflight: the deploy stops before apply.
    // (v1.5.1 is live now, so another version: the plan must have changes.)
    s.set("SANDBOX_APPLY_SECONDS", "0");
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.0").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    s.refresh_copies(&run);
    let (r, text) = s.exec(BOB, "!deploy approve 6").await;
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains(&format!(
            "`{REFRESH}` run {run} (task copy_data (BashOperator) is running"
        )) && r["message"]
            .as_str()
            .unwrap_or("")
            .contains("left its sensor before apply, so pausing it would not make the deploy safe; nothing was applied"),
        "{r}\n{text}"
    );
    assert!(!s.paused(REFRESH), "never paused");
    let steps = std::fs::read_to_string(s.state_dir().join("steps.log")).unwrap_or_default();
    assert_eq!(
        steps.matches("apply start").count(),
        4,
        "deploys 1, 2, 3 and 5 started apply; 6 did not: {steps}"
    );
    let out = s.cmd(&["audit", "verify"]).output().await.expect("verify");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_leaves_its_sensor_while_being_paused_or_a_refused_pause_stops_the_deploy_before_apply()
 {
    if !require_just() {
        return;
    }
    let mut s = Sbx::start(World::openverse_idle()).await;
    s.set("SANDBOX_APPLY_SECONDS", "0");
    let run = s.refresh_waits_on_sensor();
    let store = s.store().await;

    // 1. The sensor succeeds and the copy starts between the bot's check and its pause: only the
    //    check after the pause sees it. The deploy stops before apply and unpauses the refresh.
    s.world.world.lock().airflow.tasks_on_pause = Some((
        REFRESH.to_string(),
        run.clone(),
        vec![
            SimTask::new("wait_for_index", "HttpSensor", Some("success")),
            SimTask::new("copy_data", "BashOperator", Some("running")),
        ],
    ));
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, text) = s.exec(BOB, "!deploy approve 1").await;
    assert_eq!(r["outcome"], "failed", "{r}\n{text}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("failed at pause: ")
            && msg.contains(&format!(
                "`{REFRESH}` run {run} (task copy_data (BashOperator) is running"
            ))
            && msg.contains("left its sensor while it was being paused; nothing was applied"),
        "{r}\n{text}"
    );
    assert!(
        text.contains(&format!("⏸️ Deploy #1 before apply: paused `{REFRESH}`"))
            && text.contains(&format!("▶️ Deploy #1 ended: unpaused `{REFRESH}`")),
        "{text}"
    );
    assert!(!s.paused(REFRESH), "unpaused again");
    assert!(
        s.world.world.lock().airflow.tasks_on_pause.is_none(),
        "the race was played"
    );

    // 2. Airflow refuses the pause (the bot's user may only read): the deploy stops before apply,
    //    says why, and has nothing to unpause.
    s.world.world.lock().airflow.set_tasks(
        REFRESH,
        &run,
        vec![
            SimTask::new("wait_for_index", "HttpSensor", Some("up_for_reschedule")),
            SimTask::new("copy_data", "BashOperator", None),
        ],
    );
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    s.world.world.lock().airflow.read_only = true;
    let (r, text) = s.exec(BOB, "!deploy approve 2").await;
    assert_eq!(r["outcome"], "failed", "{r}\n{text}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&format!(
            "failed at pause: `{REFRESH}` could not be paused: "
        )) && msg.contains("403")
            && msg.contains("nothing was applied"),
        "{r}\n{text}"
    );
    assert!(!text.contains("Deploy #2 ended: unpaused"), "{text}");
    assert!(
        !text.contains("🚨"),
        "nothing was paused, so nothing is left paused: {text}"
    );
    assert!(!s.paused(REFRESH));
    assert!(store.paused_dags(2).await.expect("paused").is_empty());
    s.world.world.lock().airflow.read_only = false;

    let steps = std::fs::read_to_string(s.state_dir().join("steps.log")).unwrap_or_default();
    assert_eq!(steps.matches("apply start").count(), 0, "{steps}");
    let audit = s.audit_kinds();
    assert!(
        audit.contains("\"incomplete\""),
        "the refused pause is audited: {audit}"
    );
    let out = s.cmd(&["audit", "verify"]).output().await.expect("verify");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_idle_waits_with_the_lock_and_a_running_bot_starts_it_when_the_run_is_over() {
    if !require_just() {
        return;
    }
    let s = Sbx::start(World::openverse_idle()).await;
    let run = s
        .world
        .world
        .lock()
        .airflow
        .add_running("flickr_workflow", 2 * 3_600_000, None);
    let store = s.store().await;

    // Blocked without --when-idle, and the refusal names the option.
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "blocked", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("`!deploy catalog v1.5.3 --when-idle` takes the lock"),
        "{r}"
    );
    // --within without --when-idle is refused with a sentence.
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.3 --within 2h").await;
    assert_eq!(r["outcome"], "invalid", "{r}");
    assert_eq!(
        r["message"],
        "Option `--within` only works together with `--when-idle`, e.g. `!deploy catalog \
         v1.2.3 --when-idle --within 6h`."
    );
    let (r, _) = s
        .exec(ALICE, "!deploy catalog v1.5.3 --when-idle --within 3 weeks")
        .await;
    assert_eq!(r["outcome"], "invalid", "{r}");

    let out = s
        .exec_cmd(ALICE, "!deploy catalog v1.5.3 --when-idle --within 2h")
        .output()
        .await
        .expect("exec");
    assert_eq!(out.status.code(), Some(0), "waiting exits 0");
    let (r, _) = parse(&out);
    assert_eq!(r["outcome"], "waiting", "{r}");
    assert_eq!(r["deploy_id"], 1);
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("holds the lock `catalog/prod` and waits for the DAG runs to be over")
            && msg.contains(&format!("flickr_workflow run {run}, running for 2 h")),
        "{msg}"
    );
    assert_eq!(state_of(&store, 1).await, DeployState::WaitingForDags);
    let (r, _) = s.exec(BOB, "!locks").await;
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("held by alice for deploy #1"),
        "{r}"
    );
    let (r, _) = s.exec(BOB, "!deploy status 1").await;
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("flickr_workflow run"),
        "{r}"
    );
    // A second waiting deploy of the same target is refused while the first holds the lock,
    // and creates nothing.
    let (r, _) = s
        .exec(BOB, "!deploy catalog v1.5.3 --when-idle --within 1h")
        .await;
    assert_eq!(r["outcome"], "blocked", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("`catalog/prod` is locked by alice for deploy #1"),
        "{r}"
    );
    assert!(
        store.get_deploy(2).await.expect("read").is_none(),
        "no second deploy"
    );

    // The first bot process is killed while it waits; the wait is in the store.
    let bind = |c: &mut Command| {
        c.env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0");
    };
    let mut first = s.cmd(&[]);
    bind(&mut first);
    let (first, _) = support::spawn_listening(first, "serve").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state_of(&store, 1).await, DeployState::WaitingForDags);
    kill(&first);

    // Two replicas now; the run ends; exactly one starts the deploy.
    let mut a = s.cmd(&[]);
    bind(&mut a);
    let (mut a, _) = support::spawn_listening(a, "serve").await;
    let mut b = s.cmd(&[]);
    bind(&mut b);
    let (mut b, _) = support::spawn_listening(b, "serve").await;
    for r in s.world.world.lock().airflow.runs.iter_mut() {
        if r.run_id == run {
            r.ends_at_ms = Some(catalog_chatops::store::now_ms() - 1);
        }
    }
    eventually("the deploy started by a running bot", 30, || async {
        (state_of(&store, 1).await == DeployState::AwaitingApproval).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steps =
        std::fs::read_to_string(s.dir.path().join("infra/state/steps.log")).unwrap_or_default();
    assert_eq!(steps.matches("bump start").count(), 1, "{steps}");
    assert_eq!(steps.matches("plan start").count(), 1, "{steps}");
    let journal = store.deploy_steps(1).await.expect("journal");
    assert!(
        journal.iter().any(|st| st.state == "locked"
            && st.detail["reason"]
                .as_str()
                .unwrap_or("")
                .contains("the DAG runs are over")),
        "{journal:?}"
    );
    a.kill().await.ok();
    b.kill().await.ok();
    let (r, _) = s.exec(ALICE, "!deploy cancel 1").await;
    assert_eq!(r["outcome"], "ok", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_deploy_ends_blocked_at_its_deadline_and_cancel_ends_the_wait() {
    let s = Sbx::start(World::openverse_idle()).await;
    s.world
        .world
        .lock()
        .airflow
        .add_running("flickr_workflow", 600_000, None);
    let store = s.store().await;
    let (r, _) = s
        .exec(ALICE, "!deploy catalog v1.5.3 --when-idle --within 1m")
        .await;
    assert_eq!(r["outcome"], "waiting", "{r}");
    // The deadline passes (moved into the past rather than waiting a minute).
    sqlx::query("UPDATE deploy_waits SET deadline_ms = 1 WHERE deploy_id = 1")
        .execute(store.pool())
        .await
        .expect("deadline");
    let mut c = s.cmd(&[]);
    c.env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0");
    let (mut serve, _) = support::spawn_listening(c, "serve").await;
    eventually("the deadline to end it", 20, || async {
        (state_of(&store, 1).await == DeployState::Blocked).then_some(())
    })
    .await;
    serve.kill().await.ok();
    let d = store.get_deploy(1).await.expect("get").expect("d");
    assert!(
        d.reason
            .as_deref()
            .unwrap_or("")
            .contains("the DAG runs were still active at its deadline"),
        "{d:?}"
    );
    assert!(store.list_locks().await.expect("locks").is_empty());

    // Cancel ends a wait at once and frees the lock; nothing starts it afterwards.
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.3 --when-idle").await;
    assert_eq!(r["outcome"], "waiting", "{r}");
    let (r, _) = s.exec(BOB, "!deploy cancel 2").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    assert_eq!(state_of(&store, 2).await, DeployState::Cancelled);
    assert!(store.list_locks().await.expect("locks").is_empty());
    let out = s.cmd(&["audit", "verify"]).output().await.expect("verify");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_command_must_print_the_deployed_tag() {
    if !require_just() {
        return;
    }
    let mut s = Sbx::start(World::openverse_idle()).await;
    // `echo` stands in for `ssh airflow-host docker inspect …`: it prints the tag it is given.
    s.set(
        "CATALOG_CHATOPS__TARGETS__CATALOG__VERIFY",
        r#"["echo", "ghcr.io/wordpress/openverse-catalog:{version}"]"#,
    );
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, text) = s.exec(BOB, "!deploy approve 1").await;
    assert_eq!(r["outcome"], "ok", "{r}\n{text}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("the running image is `v1.5.3` (verify)"),
        "{r}"
    );

    // A host still running the old image: the deploy fails at verify, saying what it saw.
    s.set(
        "CATALOG_CHATOPS__TARGETS__CATALOG__VERIFY",
        r#"["echo", "ghcr.io/wordpress/openverse-catalog:v1.4.0"]"#,
    );
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, _) = s.exec(BOB, "!deploy approve 2").await;
    assert_eq!(r["outcome"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("failed at verify")
            && msg.contains("does not contain the deployed image tag `v1.5.1`")
            && msg.contains("openverse-catalog:v1.4.0"),
        "{msg}"
    );

    // A verify command that fails is a failure too.
    s.set("CATALOG_CHATOPS__TARGETS__CATALOG__VERIFY", r#"["false"]"#);
    let (r, _) = s.exec(ALICE, "!deploy catalog v1.5.0").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, _) = s.exec(BOB, "!deploy approve 3").await;
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("the verify command did not succeed"),
        "{r}"
    );
}

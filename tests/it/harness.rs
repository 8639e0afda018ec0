//! What every fault case needs: a sandbox world with its infra stand-in, the bot as a child
//! process (`exec --json`) or in-process (an engine with quick HTTP timeouts), and the three
//! checks each case ends with — no apply without approval (read on the step side, from
//! `state/steps.log`), no lost audit event (the deploy journal against the audit log), and
//! `audit verify` passing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use catalog_chatops::chat::Transcript;
use catalog_chatops::config;
use catalog_chatops::integrations::HttpPolicy;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, SandboxHandle, World};
use catalog_chatops::store::{Deploy, DeployState, Store};
use catalog_chatops::{Engine, Reply};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::support;

pub const ALICE: (&str, &[&str]) = ("alice", &["core-maintainer"]);
pub const BOB: (&str, &[&str]) = ("bob", &["core-maintainer"]);

/// The deploy every case asks for: the sandbox's newest release, with an image.
pub const DEPLOY: &str = "!deploy catalog v1.5.3";

/// `just` runs the infra steps; without it the workflow cases cannot run.
pub fn require_just() -> bool {
    support::require_tool("just", "the sandbox deploy tests")
}

/// Small numbers so that a hanging or failing upstream costs about a second, not half a minute.
pub fn quick_http() -> HttpPolicy {
    HttpPolicy {
        timeout: Duration::from_millis(400),
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_wait: Duration::from_secs(5),
    }
}

pub struct Sbx {
    pub world: SandboxHandle,
    pub dir: tempfile::TempDir,
    pub store_url: String,
    /// The password the bot's child processes log in to Airflow with.
    airflow_password: String,
    /// Settings beyond the world's addresses, for the children and the in-process engine.
    extra_env: Vec<(String, String)>,
    /// Commands sent with effects (each must leave a `command` audit event).
    pub sent: std::sync::atomic::AtomicUsize,
}

impl Sbx {
    /// The fault cases' world: the idle Openverse, an Airflow that accepts any password (the
    /// in-process engine reads secrets from this process's env, which has none), and a verify
    /// that one poll decides.
    pub async fn start() -> Sbx {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_url = support::store_url(dir.path()).await;
        Sbx::start_with_store(store_url, dir).await
    }

    pub async fn start_with_store(store_url: String, dir: tempfile::TempDir) -> Sbx {
        let world = World::openverse_idle();
        world.lock().airflow.password.clear();
        let mut s = Sbx::launch(world, store_url, dir, "sandbox").await;
        // Verify polls every 5 s: one poll decides.
        s.extra_env.push((
            "CATALOG_CHATOPS__TARGETS__CATALOG__VERIFY_TIMEOUT".into(),
            "3s".into(),
        ));
        s
    }

    /// Any world, with the store in the test's temp dir (SQLite, or Postgres with
    /// `TEST_STORE=postgres`); the children log in with the sandbox's password.
    pub async fn with_world(world: World) -> Sbx {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_url = support::store_url(dir.path()).await;
        Sbx::launch(world, store_url, dir, "sandbox").await
    }

    /// The idle world whose Airflow wants `password`, so that a leak of it is recognisable;
    /// the store is `store_url` or a SQLite file in the temp dir.
    pub async fn with_airflow_password(store_url: Option<String>, password: &str) -> Sbx {
        let world = World::openverse_idle();
        world.lock().airflow.password = password.to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let store_url =
            store_url.unwrap_or_else(|| format!("sqlite://{}/bot.db", dir.path().display()));
        Sbx::launch(world, store_url, dir, password).await
    }

    async fn launch(
        world: World,
        store_url: String,
        dir: tempfile::TempDir,
        airflow_password: &str,
    ) -> Sbx {
        let world = sandbox::start(world).await.expect("sandbox");
        sandbox::session::write_infra(&dir.path().join("infra")).expect("infra justfile");
        Sbx {
            world,
            dir,
            store_url,
            airflow_password: airflow_password.to_string(),
            extra_env: Vec::new(),
            sent: Default::default(),
        }
    }

    pub fn workdir(&self) -> PathBuf {
        self.dir.path().join("infra")
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = support::sandbox_env(&self.world, &self.store_url, self.dir.path());
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// The bot as a child process, configured like `config/sandbox.toml` on this world.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = support::sandbox_command(
            &self.world,
            &self.store_url,
            self.dir.path(),
            &self.airflow_password,
        );
        c.envs(self.extra_env.iter().cloned()).args(args);
        c
    }

    fn exec_args<'a>(user: &'a str, roles: &[&'a str], text: &'a str) -> Vec<&'a str> {
        let mut args = vec!["exec", "--json", "--user", user];
        for r in roles {
            args.push("--role");
            args.push(r);
        }
        args.push(text);
        args
    }

    /// Runs one command in a new bot process and returns its result line and every line.
    pub async fn exec(&self, who: (&str, &[&str]), text: &str) -> (Value, Vec<Value>) {
        let (result, lines, _) = self.exec_code(who, text).await;
        (result, lines)
    }

    /// As `exec`, with the process's exit code.
    pub async fn exec_code(&self, who: (&str, &[&str]), text: &str) -> (Value, Vec<Value>, i32) {
        self.exec_env(who, text, &[]).await
    }

    /// As `exec_code`, with more environment for this one process (what the sandbox's infra
    /// steps print, say).
    pub async fn exec_env(
        &self,
        who: (&str, &[&str]),
        text: &str,
        env: &[(&str, std::ffi::OsString)],
    ) -> (Value, Vec<Value>, i32) {
        self.count_sent(who, text);
        let out = self
            .cmd(&Self::exec_args(who.0, who.1, text))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .expect("exec");
        parse_code(&out)
    }

    /// Starts one command in a new bot process (stdout piped, JSON lines) without waiting.
    pub fn spawn(&self, who: (&str, &[&str]), text: &str, env: &[(&str, &str)]) -> Child {
        self.count_sent(who, text);
        let mut c = self.cmd(&Self::exec_args(who.0, who.1, text));
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    }

    fn count_sent(&self, who: (&str, &[&str]), text: &str) {
        // Read-only commands leave their one event after the reply; only commands with effects
        // are audited before they act, so only those are counted as attempts that must survive
        // a kill.
        let read_only = text.starts_with("!locks")
            || text.starts_with("!deploy status")
            || text.starts_with("!deploy history")
            || text.starts_with("!deploy check");
        if !read_only && !who.1.is_empty() {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The engine in this process, with quick HTTP timeouts, on this world.
    pub async fn engine(&self) -> Engine {
        let toml = std::fs::read_to_string(sandbox_toml()).expect("sandbox.toml");
        let config = config::load_from_str(&toml, &self.env()).expect("config");
        let store = self.store().await;
        store.migrate().await.expect("migrate");
        Engine::with_http_policy(config, store, quick_http()).expect("engine")
    }

    /// Sends one command through an in-process engine.
    pub async fn handle(
        &self,
        engine: &Engine,
        who: (&str, &[&str]),
        text: &str,
    ) -> (Reply, Vec<String>) {
        self.count_sent(who, text);
        let roles: Vec<String> = who.1.iter().map(|r| r.to_string()).collect();
        let actor = Actor::local(who.0, &roles, "tester");
        let conv = Transcript::new();
        let reply = engine.handle(&actor, text, &conv).await.expect("addressed");
        (reply, conv.messages())
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.store_url).await.expect("store")
    }

    /// The step-side record: one line per thing the infra stand-in did.
    pub fn steps_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.workdir().join("state/steps.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How often the infra stand-in applied a change.
    pub fn applies(&self) -> usize {
        self.steps_log()
            .iter()
            .filter(|l| l.starts_with("apply applied"))
            .count()
    }

    /// The pid of the newest run of `recipe` (its shell; its group is the step's group).
    pub fn step_pid(&self, recipe: &str) -> Option<i32> {
        let prefix = format!("{recipe} start pid=");
        self.steps_log()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
    }

    /// The process group of the newest run of `recipe` (the step's whole group).
    pub fn step_group(&self, recipe: &str) -> nix::unistd::Pid {
        let pid = self.step_pid(recipe).expect("step pid");
        nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))).expect("pgid")
    }

    /// Waits until the steps log has a line starting with `prefix`.
    pub async fn wait_log(&self, prefix: &str) -> bool {
        for _ in 0..600 {
            if self.steps_log().iter().any(|l| l.starts_with(prefix)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits until deploy `id` is in `state`.
    pub async fn wait_state(&self, store: &Store, id: i64, state: DeployState) -> bool {
        for _ in 0..600 {
            if let Ok(Some(d)) = store.get_deploy(id).await
                && d.state == state
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn deploy(&self, store: &Store, id: i64) -> Deploy {
        store.get_deploy(id).await.expect("get").expect("deploy")
    }

    /// The three closing checks of every case.
    ///
    /// * Applies: the infra stand-in applied at most as often as deploys were approved, and
    ///   exactly `applied` times.
    /// * Audit: every transition the deploy journal holds has its audit event, and every command
    ///   with effects that was sent has its `command` event.
    /// * `audit verify` (the CLI, in its own process) reports the chain intact.
    pub async fn closing_checks(&self, applied: usize) {
        let store = self.store().await;
        let approved = store
            .count_audit("deploy.approval")
            .await
            .expect("count approvals") as usize;
        let applies = self.applies();
        assert_eq!(
            applies,
            applied,
            "applies on the step side: {:?}",
            self.steps_log()
        );
        assert!(
            applies <= approved,
            "{applies} apply(ies) but only {approved} approval(s)"
        );
        // Each apply that answered yes belongs to an approved deploy.
        let yes = self
            .steps_log()
            .iter()
            .filter(|l| *l == "apply answered yes")
            .count();
        assert!(yes <= approved, "{yes} yes answers, {approved} approvals");

        let commands = store.count_audit("command").await.expect("count") as usize;
        let sent = self.sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            commands >= sent,
            "{sent} commands with effects sent but only {commands} audited"
        );
        let lost = lost_transitions(&store).await;
        assert!(lost.is_empty(), "journaled but not audited: {lost:?}");

        self.assert_audit_intact().await;
    }

    /// `audit verify`, run as an operator would (the CLI, in its own process), reports the
    /// chain intact.
    pub async fn assert_audit_intact(&self) {
        let out = self
            .cmd(&["audit", "verify"])
            .output()
            .await
            .expect("verify");
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(said.starts_with("Audit log intact:"), "{said}");
    }
}

pub fn sandbox_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sandbox.toml")
}

/// Transitions in the deploy journal (rows without an end time; step outputs have one) that no
/// audit event records, as `(deploy, state)`.
pub async fn lost_transitions(store: &Store) -> Vec<(i64, String)> {
    let mut audited: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut events = Vec::new();
    store
        .for_each_audit(|e| {
            events.push(e.clone());
            Ok(())
        })
        .await
        .expect("read audit");
    for e in &events {
        let (Some(id), Some(outcome)) = (e.deploy_id, e.outcome.as_deref()) else {
            continue;
        };
        if e.kind == "deploy.transition" || e.kind == "deploy.interrupted" {
            *audited.entry((id, outcome.to_string())).or_default() += 1;
        }
    }
    let mut lost = Vec::new();
    for d in store.list_deploys(None, 1000).await.expect("deploys") {
        for s in store.deploy_steps(d.id).await.expect("steps") {
            if s.finished_ms.is_some() {
                continue;
            }
            let key = (d.id, s.state.clone());
            match audited.get_mut(&key) {
                Some(n) if *n > 0 => *n -= 1,
                _ => lost.push(key),
            }
        }
    }
    lost
}

pub fn parse(out: &Output) -> (Value, Vec<Value>) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = json_lines(&stdout);
    let result = lines.last().cloned().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(result["type"], "result", "{stdout}");
    (result, lines)
}

/// As `parse`, with the process's exit code.
pub fn parse_code(out: &Output) -> (Value, Vec<Value>, i32) {
    let (result, lines) = parse(out);
    (result, lines, out.status.code().unwrap_or(-1))
}

pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

pub fn message(r: &Value) -> &str {
    r["message"].as_str().unwrap_or("")
}

/// SIGKILLs one process (never a group: the bot's step children live on, as they would when the
/// bot alone is killed).
pub fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
}

/// SIGKILLs the process group `pid` belongs to.
pub fn sigkill_group_of(pid: i32) {
    let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))).expect("pgid");
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).expect("killpg");
}

impl Sbx {
    /// Makes the infra stand-in wait at `point` (`bump`, `plan`, `apply-prompt`, `apply`) until
    /// [`Sbx::release`]: a kill lands exactly there, whatever the machine's speed.
    pub fn hold(&self, point: &str) {
        let state = self.workdir().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::write(state.join(format!("hold-{point}")), "").expect("hold");
    }

    pub fn release(&self, point: &str) {
        let _ = std::fs::remove_file(self.workdir().join(format!("state/hold-{point}")));
    }

    /// How many lines of the steps log start with `prefix`.
    pub fn log_count(&self, prefix: &str) -> usize {
        self.steps_log()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// Waits until deploy `id` is owned by process `pid`.
    pub async fn wait_owner(&self, store: &Store, id: i64, pid: u32) -> bool {
        for _ in 0..600 {
            if let Ok(Some(d)) = store.get_deploy(id).await
                && d.owner.as_ref().is_some_and(|o| o.pid == i64::from(pid))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Whether a process of group `pgid` still runs (zombies left to an init that does not reap
/// do not count).
pub fn group_running(pgid: nix::unistd::Pid) -> bool {
    catalog_chatops::integrations::infra::detached::group_running(pgid.as_raw())
}

/// The messages (`"type": "message"`) of an `exec --json` run.
pub fn messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["type"] == "message")
        .filter_map(|l| l["text"].as_str().map(str::to_string))
        .collect()
}

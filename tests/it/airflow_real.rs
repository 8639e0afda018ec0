//! Against REAL Airflow: 2.9.3 (what production runs, `/api/v1`, the basic-auth backend, a
//! password user made with `airflow users create`, the LocalExecutor on a fresh Postgres
//! database) and 3.1.8 (`/api/v2`, a JWT), each `airflow standalone` on loopback from the venv
//! that `scripts/airflow-venv.sh 2` / `scripts/airflow-venv.sh` installs. One test per version,
//! the same story for both:
//!
//! - `!airflow status` (on 2.9.3 the DAG processor inside the scheduler is "not running
//!   separately", not a failure);
//! - a queued run of a paused DAG does not block `!deploy check`;
//! - `!dag enable` of a DAG without a schedule says it runs only when triggered;
//! - a `pause_during_deploy` DAG whose run waits on a reschedule-mode sensor does not block and
//!   is listed to be paused; pausing and unpausing it for a deploy work and say so; once its copy
//!   task runs, it blocks;
//! - a DAG file added to the folder is announced once as new and paused; `!dags new` lists it;
//!   a typo gets the nearest id; a running run and a queued run of an active DAG block;
//! - a broken DAG file shows as an import error;
//! - the data-refresh exception through whole deploys run by the binary (`exec`, `serve`): the
//!   refresh is paused during apply and unpaused after success, after a failed apply, never
//!   paused by a cancelled deploy, unpaused by the restarted bot after the bot was SIGKILLed
//!   during apply; a deploy approved after the copy task started stops before apply;
//! - `--when-idle`: a deploy waits for a real running run and a running `serve` starts it when
//!   the run ends.
//!
//! GitHub and the registry are the sandbox's fakes. Without a venv the test panics in CI
//! (`CI=true`) and skips elsewhere, saying why. Start-up takes 30–140 s depending on the load:
//! every step waits for readiness, nothing asserts a time. The two tests take turns (one
//! Airflow at a time). Set `AIRFLOW_REAL_TRANSCRIPT=path` to keep the bot's answers (the
//! README's examples; `-2.9` / `-3` is appended to the name).

use crate::support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalog_chatops::chat::Transcript;
use catalog_chatops::command::Version;
use catalog_chatops::config::AirflowApi;
use catalog_chatops::deploy::{dag_runs, preflight};
use catalog_chatops::integrations::HttpPolicy;
use catalog_chatops::integrations::airflow::{AirflowClient, PauseChange, TaskInstance};
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, World};
use catalog_chatops::store::{DeployState, Store};
use catalog_chatops::watch::Announcer;
use catalog_chatops::{Engine, Outcome};
use secrecy::SecretString;
use serde_json::Value;

const USER: &str = "chatops";
const PASSWORD: &str = "real-airflow-test-pw";

/// One Airflow at a time: two standalones on two loaded cores starve each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Major {
    /// 2.9.3, production's version.
    Two,
    /// 3.1.8.
    Three,
}

impl Major {
    fn name(self) -> &'static str {
        match self {
            Major::Two => "2.9",
            Major::Three => "3",
        }
    }

    fn venv(self) -> Option<PathBuf> {
        let (var, default) = match self {
            Major::Two => ("AIRFLOW2_VENV", ".cache/catalog-chatops-airflow2-venv"),
            Major::Three => ("AIRFLOW_VENV", ".cache/catalog-chatops-airflow-venv"),
        };
        let dir = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(default)))?;
        dir.join("bin/airflow").is_file().then_some(dir)
    }

    fn install_hint(self) -> &'static str {
        match self {
            Major::Two => "run scripts/airflow-venv.sh 2 or set AIRFLOW2_VENV",
            Major::Three => "run scripts/airflow-venv.sh or set AIRFLOW_VENV",
        }
    }

    fn api(self) -> AirflowApi {
        match self {
            Major::Two => AirflowApi::V1,
            Major::Three => AirflowApi::V2,
        }
    }

    /// Airflow 3.1.8 fails a reschedule sensor that pokes every few seconds under load
    /// (apache/airflow#71172); 30 s ran cleanly there.
    fn poke_interval(self) -> u32 {
        match self {
            Major::Two => 10,
            Major::Three => 30,
        }
    }

    /// The DAG file's imports for this version.
    fn imports(self) -> &'static str {
        match self {
            Major::Two => {
                "from airflow import DAG\n\
                 from airflow.operators.empty import EmptyOperator\n\
                 from airflow.operators.bash import BashOperator\n\
                 from airflow.sensors.python import PythonSensor\n"
            }
            Major::Three => {
                "from airflow.sdk import DAG\n\
                 from airflow.providers.standard.operators.empty import EmptyOperator\n\
                 from airflow.providers.standard.operators.bash import BashOperator\n\
                 from airflow.providers.standard.sensors.python import PythonSensor\n"
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `airflow standalone` in its own session. Dropping it kills the process group, then every
/// process left in the session (2.9's DAG-file processor and task runners put themselves in
/// process groups of their own), then drops its Postgres database.
struct Airflow {
    major: Major,
    child: Child,
    url: String,
    home: tempfile::TempDir,
    log: PathBuf,
    venv: PathBuf,
    /// `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`, for 2.9 (and the CLI calls that need it).
    sql_alchemy_conn: Option<String>,
    database: Option<String>,
}

impl Drop for Airflow {
    fn drop(&mut self) {
        let leader = self.child.id() as i32;
        let pgid = nix::unistd::Pid::from_raw(leader);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Whatever ignored SIGTERM (task runners, log servers) goes now …
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        // … and so does whatever left the group but not the session.
        for pid in session_members(leader) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(db) = self.database.take() {
            drop_database(&db);
        }
    }
}

/// Processes whose session id (field 6 of `/proc/<pid>/stat`) is `sid`.
fn session_members(sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command name is in parentheses and may hold spaces: count after it.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(3)?.parse::<i32>().ok()
                })
                == Some(sid)
        })
        .collect()
}

/// Drops a test database (best effort, after its Airflow is gone).
fn drop_database(name: &str) {
    let admin = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| support::DEFAULT_PG.into());
    let name = name.to_string();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await;
                let _ = c.close().await;
            }
        });
    })
    .join();
}

impl Airflow {
    async fn start(major: Major, venv: &Path, files: &[(&str, String)]) -> Airflow {
        let home = tempfile::tempdir().expect("AIRFLOW_HOME");
        let dags = home.path().join("dags");
        std::fs::create_dir_all(&dags).expect("dags folder");
        for (name, text) in files {
            std::fs::write(dags.join(name), text).expect("write a DAG");
        }
        let port = free_port();
        let log = home.path().join("standalone.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let s = |p: &Path| p.display().to_string();
        let mut cmd = Command::new("setsid");
        cmd.arg(venv.join("bin/airflow"))
            .arg("standalone")
            .env("PATH", path_with(venv))
            .env("AIRFLOW_HOME", s(home.path()))
            .env("AIRFLOW__CORE__DAGS_FOLDER", s(&dags))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
            .env(
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                free_port().to_string(),
            )
            .env(
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
                free_port().to_string(),
            )
            .env("AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL", "3")
            .env_remove("AIRFLOW_PASSWORD")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut sql_alchemy_conn = None;
        let mut database = None;
        match major {
            Major::Two => {
                // SQLite would load the SequentialExecutor, which runs tasks inside the
                // scheduler loop and stalls it: LocalExecutor on a fresh Postgres database.
                let url = support::postgres_url()
                    .await
                    .expect("Airflow 2.9.3 needs the test Postgres (TEST_POSTGRES_URL)");
                let name = url.rsplit('/').next().unwrap_or_default().to_string();
                let conn = url.replacen("postgres://", "postgresql+psycopg2://", 1);
                cmd.env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", &conn)
                    .env("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
                    .env(
                        "AIRFLOW__API__AUTH_BACKENDS",
                        "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session",
                    )
                    .env("AIRFLOW__WEBSERVER__WEB_SERVER_HOST", "127.0.0.1")
                    .env("AIRFLOW__WEBSERVER__WEB_SERVER_PORT", port.to_string())
                    .env(
                        "AIRFLOW__WEBSERVER__BASE_URL",
                        format!("http://127.0.0.1:{port}"),
                    )
                    .env("AIRFLOW__WEBSERVER__WORKERS", "2")
                    // 2.9 lists the folder for new files every 300 s by default.
                    .env("AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL", "3");
                sql_alchemy_conn = Some(conn);
                database = Some(name);
            }
            Major::Three => {
                let passwords = home.path().join("passwords.json");
                std::fs::write(&passwords, format!("{{\"{USER}\": \"{PASSWORD}\"}}"))
                    .expect("passwords");
                cmd.env(
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                    format!("{USER}:admin"),
                )
                .env(
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
                    s(&passwords),
                )
                .env("AIRFLOW__API__HOST", "127.0.0.1")
                .env("AIRFLOW__API__PORT", port.to_string())
                .env("AIRFLOW__API__BASE_URL", format!("http://127.0.0.1:{port}"))
                .env("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "3");
            }
        }
        let child = cmd.spawn().expect("start airflow standalone");
        Airflow {
            major,
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            venv: venv.to_path_buf(),
            sql_alchemy_conn,
            database,
            home,
        }
    }

    fn dags(&self) -> PathBuf {
        self.home.path().join("dags")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `airflow users create` with this instance's home and database (Airflow 2 only: its API
    /// takes the password of a user it knows).
    async fn create_user(&self) {
        let mut cmd = tokio::process::Command::new(self.venv.join("bin/airflow"));
        cmd.args([
            "users",
            "create",
            "--username",
            USER,
            "--password",
            PASSWORD,
            "--firstname",
            "Chat",
            "--lastname",
            "Ops",
            "--role",
            "Admin",
            "--email",
            "chatops@example.org",
        ])
        .env("PATH", path_with(&self.venv))
        .env("AIRFLOW_HOME", self.home.path())
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .stdin(Stdio::null());
        if let Some(conn) = &self.sql_alchemy_conn {
            cmd.env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", conn);
        }
        let out = cmd.output().await.expect("run airflow users create");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains(&format!("User \"{USER}\" created")),
            "airflow users create: {text}"
        );
    }

    /// Triggers a manual run through the REST API (the bot has no trigger command).
    async fn trigger(&self, dag_id: &str) {
        let http = reqwest::Client::new();
        let resp = match self.major {
            Major::Two => http
                .post(format!("{}/api/v1/dags/{dag_id}/dagRuns", self.url))
                .basic_auth(USER, Some(PASSWORD))
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("trigger"),
            Major::Three => {
                let token: serde_json::Value = http
                    .post(format!("{}/auth/token", self.url))
                    .json(&serde_json::json!({"username": USER, "password": PASSWORD}))
                    .send()
                    .await
                    .expect("login")
                    .json()
                    .await
                    .expect("token json");
                let token = token["access_token"].as_str().expect("access_token");
                http.post(format!("{}/api/v2/dags/{dag_id}/dagRuns", self.url))
                    .bearer_auth(token)
                    .json(&serde_json::json!({"logical_date": null}))
                    .send()
                    .await
                    .expect("trigger")
            }
        };
        assert!(resp.status().is_success(), "trigger: {}", resp.status());
    }
}

fn path_with(venv: &Path) -> String {
    format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn maintainer(name: &str) -> Actor {
    Actor::local(name, &["core-maintainer".to_string()], "tester")
}

fn existing_dag(major: Major) -> String {
    format!(
        "from datetime import datetime\n{}\
         with DAG(\"existing_dag\", schedule=\"@daily\", start_date=datetime(2024, 1, 1), \
         catchup=False):\n    EmptyOperator(task_id=\"noop\")\n",
        major.imports()
    )
}

/// Like `image_data_refresh`: waits on a reschedule-mode sensor, then copies.
fn refresh_dag(major: Major) -> String {
    format!(
        "import os\nfrom datetime import datetime\n{}\
         GO = os.path.join(os.path.dirname(__file__), \"..\", \"refresh.go\")\n\
         with DAG(\"refresh_dag\", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,\n\
         \x20        max_active_runs=1, tags=[\"data_refresh\"]):\n\
         \x20   wait = PythonSensor(task_id=\"wait_for_idle\", python_callable=lambda: \
         os.path.exists(GO),\n\
         \x20                       mode=\"reschedule\", poke_interval={}, timeout=3600)\n\
         \x20   copy = BashOperator(task_id=\"copy_data\", bash_command=\"sleep 180\")\n\
         \x20   wait >> copy\n",
        major.imports(),
        major.poke_interval()
    )
}

/// A provider-like DAG whose run keeps a plain task busy for half a minute.
fn busy_dag(major: Major) -> String {
    format!(
        "from datetime import datetime\n{}\
         with DAG(\"busy_dag\", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):\n\
         \x20   BashOperator(task_id=\"pull\", bash_command=\"sleep 30\")\n",
        major.imports()
    )
}

/// The binary as an operator runs it against this Airflow: `exec` and `serve` with the sandbox's
/// GitHub and registry, the infra stand-in run by a real `just`, and a store of its own.
struct Bot {
    dir: tempfile::TempDir,
    store_url: String,
    env: Vec<(String, String)>,
}

impl Bot {
    async fn new(major: Major, af: &Airflow) -> Bot {
        let dir = tempfile::tempdir().expect("tempdir");
        sandbox::session::write_infra(&dir.path().join("infra")).expect("infra justfile");
        let store_url = support::store_url(dir.path()).await;
        let api = match major {
            Major::Two => "v1",
            Major::Three => "v2",
        };
        let env = [
            ("CATALOG_CHATOPS__AIRFLOW__URL", af.url.as_str()),
            ("CATALOG_CHATOPS__AIRFLOW__API", api),
            ("CATALOG_CHATOPS__AIRFLOW__USERNAME", USER),
            (
                "CATALOG_CHATOPS__TARGETS__CATALOG__PAUSE_DURING_DEPLOY",
                "[\"refresh_dag\"]",
            ),
            ("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0"),
            ("CATALOG_CHATOPS__DEPLOY__WHEN_IDLE_POLL", "2s"),
            ("CATALOG_CHATOPS__DEPLOY__LEASE", "10s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Bot {
            dir,
            store_url,
            env,
        }
    }

    fn cmd(&self, fakes: &sandbox::SandboxHandle, args: &[&str]) -> tokio::process::Command {
        let mut c = support::sandbox_command(fakes, &self.store_url, self.dir.path(), PASSWORD);
        // After the sandbox's settings, so these win.
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.args(args);
        c
    }

    fn exec_cmd(
        &self,
        fakes: &sandbox::SandboxHandle,
        user: &str,
        text: &str,
    ) -> tokio::process::Command {
        self.cmd(
            fakes,
            &[
                "exec",
                "--json",
                "--user",
                user,
                "--role",
                "core-maintainer",
                text,
            ],
        )
    }

    async fn exec(
        &self,
        fakes: &sandbox::SandboxHandle,
        user: &str,
        text: &str,
    ) -> (Value, String) {
        let out = self
            .exec_cmd(fakes, user, text)
            .output()
            .await
            .expect("exec");
        json_result(&out)
    }

    async fn deploy(&self, id: i64) -> Option<catalog_chatops::store::Deploy> {
        let store = Store::open(&self.store_url).await.ok()?;
        let d = store.get_deploy(id).await.ok()?;
        store.close().await;
        d
    }

    async fn state(&self, id: i64) -> Option<DeployState> {
        let store = Store::open(&self.store_url).await.ok()?;
        let d = store.get_deploy(id).await.ok()??;
        store.close().await;
        Some(d.state)
    }

    fn infra_state(&self) -> PathBuf {
        self.dir.path().join("infra/state")
    }
}

fn json_result(out: &std::process::Output) -> (Value, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let result = lines.last().cloned().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let text = lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    (result, text)
}

async fn is_paused(client: &AirflowClient, dag_id: &str) -> bool {
    client
        .dag_details(dag_id)
        .await
        .expect("details")
        .expect("known")
        .is_paused
}

fn new_dag(major: Major) -> String {
    format!(
        "from datetime import datetime\n{}\
         with DAG(\"justtakeitfree_workflow\", schedule=None, start_date=datetime(2024, 1, 1),\n\
         \x20        catchup=False, max_active_runs=1, tags=[\"provider\"]):\n\
         \x20   BashOperator(task_id=\"pull\", bash_command=\"sleep 900\")\n",
        major.imports()
    )
}

const BROKEN_2: &str = "from airflow import DAG\n\
raise ImportError(\"providers.provider_api_scripts.nowhere is not installed\")\n";
const BROKEN_3: &str = "from airflow.sdk import DAG\n\
raise ImportError(\"providers.provider_api_scripts.nowhere is not installed\")\n";

/// Polls `check` every second until it yields, or fails with Airflow's log.
async fn eventually<T, F, Fut>(af: &Airflow, what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "Airflow {}: timed out after {secs} s waiting for {what}; airflow log:\n{}",
            af.major.name(),
            af.log_tail()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The tasks of `dag_id`'s newest running run, when there is one.
async fn running_tasks(client: &AirflowClient, dag_id: &str) -> Option<Vec<TaskInstance>> {
    let runs = client.active_runs().await.ok()?;
    let run = runs
        .iter()
        .find(|r| r.dag_id == dag_id && r.state == "running")?;
    client.task_instances(dag_id, &run.run_id).await.ok()
}

fn task_state<'a>(tasks: &'a [TaskInstance], task_id: &str) -> Option<&'a str> {
    tasks
        .iter()
        .find(|t| t.task_id == task_id)
        .and_then(|t| t.state.as_deref())
}

fn venv_or_skip(major: Major) -> Option<PathBuf> {
    match major.venv() {
        Some(v) => Some(v),
        None => {
            let why = format!(
                "no Airflow {} venv ({})",
                major.name(),
                major.install_hint()
            );
            if support::in_ci() {
                panic!(
                    "the real-Airflow {} test is required in CI: {why}",
                    major.name()
                );
            }
            eprintln!("skipping the real-Airflow {} test: {why}", major.name());
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflow_2_9_3_status_gate_pause_enable_announce_and_import_errors() {
    let Some(venv) = venv_or_skip(Major::Two) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    story(Major::Two, &venv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflow_3_status_gate_pause_enable_announce_and_import_errors() {
    let Some(venv) = venv_or_skip(Major::Three) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    story(Major::Three, &venv).await;
}

async fn story(major: Major, venv: &Path) {
    let af = Airflow::start(
        major,
        venv,
        &[
            ("existing_dag.py", existing_dag(major)),
            ("refresh_dag.py", refresh_dag(major)),
            ("busy_dag.py", busy_dag(major)),
        ],
    )
    .await;
    let fakes = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox fakes");
    let store = support::sqlite().await;
    let mut config = support::config_with_store(&store.url);
    fakes.configure(&mut config);
    config.airflow.url = af.url.clone();
    config.airflow.api = major.api();
    config.airflow.username = USER.into();
    config.secrets.airflow_password = Some(SecretString::from(PASSWORD.to_string()));
    config.dag_sync = None;
    config.watch.status_cache = Duration::from_millis(1);
    if let Some(t) = config.targets.get_mut("catalog") {
        t.pause_during_deploy = vec!["refresh_dag".into()];
    }
    // Basic auth re-hashes the password on every request (1–2 s each on a loaded machine), and
    // a loaded standalone answers slowly: a patient policy, as production would want too.
    let policy = HttpPolicy {
        timeout: Duration::from_secs(60),
        ..HttpPolicy::default()
    };
    let engine = Engine::with_http_policy(config, store.store.clone(), policy).expect("engine");
    let client = engine.ctx().integrations.airflow.clone();
    let mut transcript = String::new();

    // Up: the scheduler healthy (no credentials needed for that).
    eventually(&af, "a healthy scheduler", 240, || async {
        let h = client.health().await.ok()?;
        (h.scheduler.status.as_deref() == Some("healthy")).then_some(())
    })
    .await;
    if major == Major::Two {
        af.create_user().await;
    }
    eventually(&af, "the DAGs parsed", 180, || async {
        let dags = client.list_dags().await.ok()?;
        let has = |id: &str| dags.iter().any(|d| d.dag_id == id);
        (has("existing_dag") && has("refresh_dag") && has("busy_dag")).then_some(())
    })
    .await;

    let alice = maintainer("alice");
    let ask = |text: &'static str| {
        let engine = engine.clone();
        let alice = alice.clone();
        async move {
            engine
                .handle(&alice, text, &Transcript::new())
                .await
                .expect("addressed")
        }
    };

    // Status: on 2.9.3 the DAG processor runs inside the scheduler — not a failure.
    let status = ask("!airflow status").await;
    assert_eq!(status.outcome, Outcome::Ok, "{}", status.message);
    let processor = match major {
        Major::Two => "➖ dag processor: not running separately (it runs inside the scheduler)",
        Major::Three => "✅ dag processor: healthy",
    };
    for needle in [
        &format!("Airflow {}.", major.name().split('.').next().unwrap_or("")) as &str,
        "✅ scheduler: healthy",
        processor,
    ] {
        assert!(
            status.message.contains(needle),
            "{needle}: {}",
            status.message
        );
    }
    assert!(!status.message.contains("❌"), "{}", status.message);
    transcript.push_str(&format!("!airflow status\n{}\n\n", status.message));

    // The announcer's first poll seeds: nothing announced.
    let announcer = Announcer::new(engine.ctx().clone());
    let conv = Transcript::new();
    let first = announcer.poll_once(&conv).await.expect("first poll");
    assert!(first.seeded, "{first:?}");
    assert!(first.announced.is_empty() && conv.messages().is_empty());

    // A queued run of a paused DAG never starts, so it does not block.
    af.trigger("existing_dag").await;
    eventually(&af, "the paused DAG's queued run", 60, || async {
        let runs = client.active_runs().await.ok()?;
        runs.iter()
            .any(|r| r.dag_id == "existing_dag" && r.state == "queued")
            .then_some(())
    })
    .await;
    let check = ask("!deploy check catalog v1.5.3").await;
    assert_eq!(check.outcome, Outcome::Ok, "{}", check.message);
    assert!(
        check.message.contains("existing_dag · manual__")
            && check
                .message
                .contains("not blocking — the DAG is paused, so the run never starts"),
        "{}",
        check.message
    );

    // A DAG without a schedule: enabling says what really happens.
    let enabled = ask("!dag enable refresh_dag").await;
    assert_eq!(enabled.outcome, Outcome::Ok, "{}", enabled.message);
    assert_eq!(
        enabled.message,
        "Enabled `refresh_dag`: it is unpaused; it has no schedule, so it runs only when \
         triggered (from the Airflow UI, the API, or another DAG)."
    );
    transcript.push_str(&format!("!dag enable refresh_dag\n{}\n\n", enabled.message));

    // The data-refresh exception: its run waits on a reschedule-mode sensor.
    af.trigger("refresh_dag").await;
    eventually(&af, "the sensor waiting", 240, || async {
        let tasks = running_tasks(&client, "refresh_dag").await?;
        let sensor = tasks.iter().find(|t| t.task_id == "wait_for_idle")?;
        (dag_runs::classify_task(sensor) == dag_runs::TaskClass::WaitingSensor).then_some(())
    })
    .await;
    let check = ask("!deploy check catalog v1.5.3").await;
    assert_eq!(check.outcome, Outcome::Ok, "{}", check.message);
    assert!(
        check.message.contains("refresh_dag · manual__")
            && check
                .message
                .contains("it waits on its sensor wait_for_idle (")
            && check
                .message
                .contains("the DAG will be paused during the deploy (pause_during_deploy)"),
        "{}",
        check.message
    );
    transcript.push_str(&format!(
        "!deploy check catalog v1.5.3 (sensor waiting)\n{}\n\n",
        check.message
    ));
    let target = engine.ctx().config.targets["catalog"].clone();
    let v = Version::parse("v1.5.3").expect("version");
    let report = preflight::run(&engine.ctx().integrations, "catalog", &target, &v).await;
    assert_eq!(
        report.dags_to_pause(),
        ["refresh_dag"],
        "{}",
        report.render()
    );

    // Pausing it for a deploy, and back: both said, both true in Airflow.
    let paused = dag_runs::pause_for_deploy(&client, &report.dags_to_pause()).await;
    assert_eq!(paused[0].change, PauseChange::Changed, "{paused:?}");
    let details = client.dag_details("refresh_dag").await.expect("details");
    assert!(details.expect("known").is_paused);
    // Paused, its run still only waits: the re-check before apply passes.
    let gate = dag_runs::evaluate(&client, &target).await;
    assert_eq!(gate.to_pause.len(), 1, "{:?}", gate.check);
    let back = dag_runs::unpause_after_deploy(&client, &dag_runs::paused_by_us(&paused)).await;
    assert_eq!(back[0].describe(false), "unpaused `refresh_dag`");
    let details = client.dag_details("refresh_dag").await.expect("details");
    assert!(!details.expect("known").is_paused);

    // The same through whole deploys, as the binary runs them.
    let bot = Bot::new(major, &af).await;
    deploys_around_the_sensor(&af, &fakes, &bot, &client).await;
    when_idle_waits_for_a_real_run(&af, &fakes, &bot, &client).await;
    // A deploy planned while the sensor waits, approved after the copy started: see below. (v1.5.1
    // is live after the deploys above, so another version: the plan must have changes.)
    let (r, _) = bot.exec(&fakes, "alice", "!deploy catalog v1.5.0").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let late = r["deploy_id"].as_i64().expect("deploy id");

    // Released: the copy runs, and now the run blocks.
    std::fs::write(af.home.path().join("refresh.go"), "go").expect("release the sensor");
    eventually(&af, "copy_data running", 240, || async {
        let tasks = running_tasks(&client, "refresh_dag").await?;
        (task_state(&tasks, "copy_data") == Some("running")).then_some(())
    })
    .await;
    let check = ask("!deploy check catalog v1.5.3").await;
    assert_eq!(check.outcome, Outcome::Blocked, "{}", check.message);
    assert!(
        check.message.contains(
            "task copy_data (BashOperator) is running — not only waiting sensors, so pausing \
             it would not make the deploy safe"
        ),
        "{}",
        check.message
    );
    transcript.push_str(&format!(
        "!deploy check catalog v1.5.3 (copy running)\n{}\n\n",
        check.message
    ));
    // The deploy approved now stops before apply: the run left its sensor.
    let (r, _) = bot
        .exec(&fakes, "bob", &format!("!deploy approve {late}"))
        .await;
    assert_eq!(r["outcome"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("`refresh_dag` run manual__")
            && msg.contains("task copy_data (BashOperator) is running")
            && msg.contains("left its sensor before apply")
            && msg.contains("nothing was applied"),
        "{msg}"
    );
    assert!(!is_paused(&client, "refresh_dag").await, "never paused");
    transcript.push_str(&format!("!deploy approve {late} (copy running)\n{msg}\n\n"));

    // A DAG file arrives (dag-sync would do this): announced once, paused.
    std::fs::write(af.dags().join("justtakeitfree.py"), new_dag(major)).expect("write");
    eventually(&af, "the new DAG in the list", 180, || async {
        let dags = client.list_dags().await.ok()?;
        dags.iter()
            .any(|d| d.dag_id == "justtakeitfree_workflow")
            .then_some(())
    })
    .await;
    let second = announcer.poll_once(&conv).await.expect("second poll");
    assert_eq!(second.new, ["justtakeitfree_workflow"]);
    assert_eq!(second.announced.len(), 1, "{second:?}");
    let a = &second.announced[0];
    assert_eq!(a.button_id, "dag:enable:justtakeitfree_workflow");
    assert!(a.text.contains("is paused"), "{}", a.text);
    assert!(
        a.text.contains("!dag enable justtakeitfree_workflow"),
        "{}",
        a.text
    );
    let third = announcer.poll_once(&conv).await.expect("third poll");
    assert!(third.announced.is_empty(), "announced once only");
    assert_eq!(conv.messages().len(), 1);
    transcript.push_str(&format!("(announcer) {}\n\n", a.text));

    let new = ask("!dags new").await;
    assert_eq!(new.outcome, Outcome::Ok, "{}", new.message);
    assert!(
        new.message.contains("justtakeitfree_workflow"),
        "{}",
        new.message
    );
    assert!(!new.message.contains("existing_dag"), "{}", new.message);
    transcript.push_str(&format!("!dags new\n{}\n\n", new.message));

    // Unknown ids get the nearest known ones.
    let typo = ask("!dag enable justtakeitfree_workflw").await;
    assert_eq!(typo.outcome, Outcome::Invalid);
    assert!(
        typo.message.contains("`justtakeitfree_workflow`"),
        "{}",
        typo.message
    );

    let enabled = ask("!dag enable justtakeitfree_workflow").await;
    assert_eq!(enabled.outcome, Outcome::Ok, "{}", enabled.message);
    let details = client
        .dag_details("justtakeitfree_workflow")
        .await
        .expect("details")
        .expect("known");
    assert!(!details.is_paused, "unpaused according to the API");

    // One run running and, with max_active_runs=1, one queued behind it: both block.
    af.trigger("justtakeitfree_workflow").await;
    eventually(&af, "the triggered run to be running", 180, || async {
        let runs = client.active_runs().await.ok()?;
        runs.iter()
            .any(|r| r.dag_id == "justtakeitfree_workflow" && r.state == "running")
            .then_some(())
    })
    .await;
    af.trigger("justtakeitfree_workflow").await;
    eventually(&af, "a second run queued", 60, || async {
        let runs = client.active_runs().await.ok()?;
        runs.iter()
            .any(|r| r.dag_id == "justtakeitfree_workflow" && r.state == "queued")
            .then_some(())
    })
    .await;
    let check = ask("!deploy check catalog v1.5.3").await;
    assert_eq!(check.outcome, Outcome::Blocked, "{}", check.message);
    assert!(
        check.message.contains("justtakeitfree_workflow · manual__")
            && check
                .message
                .contains("the DAG is active, so the run will start"),
        "{}",
        check.message
    );
    assert!(
        check
            .message
            .contains("not blocking — the DAG is paused, so the run never starts"),
        "the paused DAG's queued run is still named as not blocking: {}",
        check.message
    );
    transcript.push_str(&format!(
        "!deploy check catalog v1.5.3 (runs active)\n{}\n\n",
        check.message
    ));

    // A broken DAG file is an import error.
    let broken = match major {
        Major::Two => BROKEN_2,
        Major::Three => BROKEN_3,
    };
    std::fs::write(af.dags().join("broken_provider.py"), broken).expect("write a broken DAG");
    eventually(&af, "the import error", 180, || async {
        let errors = client.import_errors().await.ok()?;
        errors
            .iter()
            .any(|e| e.filename.ends_with("broken_provider.py"))
            .then_some(())
    })
    .await;
    let status = ask("!airflow status").await;
    assert_eq!(status.outcome, Outcome::Ok, "{}", status.message);
    for needle in [
        "`justtakeitfree_workflow` manual__",
        "broken_provider.py: ImportError: providers.provider_api_scripts.nowhere is not installed",
    ] {
        assert!(
            status.message.contains(needle),
            "{needle}: {}",
            status.message
        );
    }
    transcript.push_str(&format!("!airflow status\n{}\n", status.message));
    if let Some(path) = std::env::var_os("AIRFLOW_REAL_TRANSCRIPT") {
        let mut path = PathBuf::from(path).into_os_string();
        path.push(format!("-{}", major.name()));
        std::fs::write(path, &transcript).expect("write the transcript");
    }
    println!("{transcript}");
    fakes.shutdown().await;
    drop(af);
}

/// The refresh's run waits on its sensor: deploys pause it for apply and unpause it however they
/// end (success, failed apply, a cancel that never paused it, the bot killed during apply).
async fn deploys_around_the_sensor(
    af: &Airflow,
    fakes: &sandbox::SandboxHandle,
    bot: &Bot,
    client: &AirflowClient,
) {
    // Success, with the DAG paused while apply runs.
    let (r, text) = bot.exec(fakes, "alice", "!deploy catalog v1.5.3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}\n{text}");
    assert!(
        text.contains("`refresh_dag` will be paused right before apply"),
        "{text}"
    );
    assert!(!is_paused(client, "refresh_dag").await);
    let approve = bot
        .exec_cmd(fakes, "bob", "!deploy approve 1")
        .env("SANDBOX_APPLY_SECONDS", "8")
        .stdout(Stdio::piped())
        .spawn()
        .expect("approve");
    eventually(af, "apply running", 120, || async {
        (bot.state(1).await == Some(DeployState::Apply)).then_some(())
    })
    .await;
    assert!(
        is_paused(client, "refresh_dag").await,
        "paused during apply"
    );
    let (r, text) = json_result(&approve.wait_with_output().await.expect("approve"));
    assert_eq!(r["outcome"], "ok", "{r}\n{text}");
    assert!(
        text.contains("▶️ Deploy #1 ended: unpaused `refresh_dag`"),
        "{text}"
    );
    assert!(
        !is_paused(client, "refresh_dag").await,
        "unpaused after success"
    );

    // A failed apply (the plan drifted since approval: answered no).
    let (r, _) = bot.exec(fakes, "alice", "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    std::fs::write(bot.infra_state().join("drift"), "").expect("drift");
    let (r, text) = bot.exec(fakes, "bob", "!deploy approve 2").await;
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(
        text.contains("paused `refresh_dag`") && text.contains("unpaused `refresh_dag`"),
        "{text}"
    );
    assert!(
        !is_paused(client, "refresh_dag").await,
        "unpaused after a failed apply"
    );
    std::fs::remove_file(bot.infra_state().join("drift")).expect("no drift");

    // Cancelled before apply: never paused.
    let (r, _) = bot.exec(fakes, "alice", "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let (r, _) = bot.exec(fakes, "alice", "!deploy cancel 3").await;
    assert_eq!(r["outcome"], "ok", "{r}");
    assert!(!is_paused(client, "refresh_dag").await);

    // The bot is SIGKILLed during apply; the restarted bot unpauses by itself.
    let (r, _) = bot.exec(fakes, "alice", "!deploy catalog v1.5.1").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let mut approve = bot
        .exec_cmd(fakes, "bob", "!deploy approve 4")
        .env("SANDBOX_APPLY_SECONDS", "60")
        .stdout(Stdio::null())
        .spawn()
        .expect("approve");
    eventually(af, "apply running", 120, || async {
        (bot.state(4).await == Some(DeployState::Apply)).then_some(())
    })
    .await;
    assert!(is_paused(client, "refresh_dag").await);
    let pid = approve.id().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the bot");
    approve.wait().await.expect("reaped");
    assert!(
        is_paused(client, "refresh_dag").await,
        "nobody recovered yet"
    );
    let (mut serve, _) = support::spawn_listening(bot.cmd(fakes, &[]), "serve").await;
    eventually(
        af,
        "the restarted bot to unpause the refresh",
        120,
        || async { (!is_paused(client, "refresh_dag").await).then_some(()) },
    )
    .await;
    serve.kill().await.ok();
    // The apply outlived the bot (issue 16): the restarted process followed it to its end, and
    // the deploy ended as it really ended before the refresh was unpaused.
    assert_eq!(bot.state(4).await, Some(DeployState::Succeeded));
}

/// `--when-idle` against a real running run: the deploy waits with the lock and a running
/// `serve` starts it when the run is over.
async fn when_idle_waits_for_a_real_run(
    af: &Airflow,
    fakes: &sandbox::SandboxHandle,
    bot: &Bot,
    client: &AirflowClient,
) {
    assert_eq!(
        client.set_paused_reporting("busy_dag", false).await,
        PauseChange::Changed
    );
    af.trigger("busy_dag").await;
    eventually(af, "busy_dag running", 180, || async {
        let runs = client.active_runs().await.ok()?;
        runs.iter()
            .any(|r| r.dag_id == "busy_dag" && r.state == "running")
            .then_some(())
    })
    .await;
    let (r, _) = bot
        .exec(
            fakes,
            "alice",
            // Not v1.5.3: it is deployed already, so its plan would have nothing to apply.
            "!deploy catalog v1.5.0 --when-idle --within 30m",
        )
        .await;
    assert_eq!(r["outcome"], "waiting", "{r}");
    let id = r["deploy_id"].as_i64().expect("deploy id");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("busy_dag run manual__") && msg.contains(", running for "),
        "{msg}"
    );
    let (mut serve, _) = support::spawn_listening(bot.cmd(fakes, &[]), "serve").await;
    let rested = eventually(
        af,
        "the waiting deploy started and planned",
        240,
        || async {
            let d = bot.deploy(id).await?;
            let moving = [
                DeployState::WaitingForDags,
                DeployState::Locked,
                DeployState::Bump,
                DeployState::Plan,
            ];
            (!moving.contains(&d.state)).then_some(d)
        },
    )
    .await;
    assert_eq!(rested.state, DeployState::AwaitingApproval, "{rested:?}");
    serve.kill().await.ok();
    let runs = client.active_runs().await.expect("runs");
    assert!(
        !runs.iter().any(|r| r.dag_id == "busy_dag"),
        "started only after the run was over: {runs:?}"
    );
    let (r, _) = bot
        .exec(fakes, "alice", &format!("!deploy cancel {id}"))
        .await;
    assert_eq!(r["outcome"], "ok", "{r}");
}

//! Against a REAL Airflow 3 (`airflow standalone` on loopback, from the venv that
//! `scripts/airflow-venv.sh` installs): a DAG file added to the folder is announced once as new
//! and paused; `!dag enable` unpauses it (checked through the API); a triggered run that is
//! running blocks `!deploy check` and shows in `!airflow status`; a broken DAG file shows as an
//! import error. GitHub and the registry are the sandbox's fakes.
//!
//! Without the venv the test panics in CI (`CI=true`) and skips elsewhere, saying why.
//! Set `AIRFLOW_REAL_TRANSCRIPT=path` to keep the bot's answers (the README's examples).

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalog_chatops::chat::Transcript;
use catalog_chatops::config::AirflowApi;
use catalog_chatops::policy::Actor;
use catalog_chatops::sandbox::{self, World};
use catalog_chatops::watch::Announcer;
use catalog_chatops::{Engine, Outcome};
use secrecy::SecretString;

const USER: &str = "chatops";
const PASSWORD: &str = "real-airflow-test-pw";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("AIRFLOW_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/catalog-chatops-airflow-venv"))
        })?;
    dir.join("bin/airflow").is_file().then_some(dir)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `airflow standalone` in its own session; dropping it kills the whole process group.
struct Airflow {
    child: Child,
    url: String,
    dags: PathBuf,
    log: PathBuf,
    _home: tempfile::TempDir,
}

impl Drop for Airflow {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Whatever ignored SIGTERM (task runners, log servers) goes now.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Airflow {
    fn start(venv: &Path, first_dag: &str) -> Airflow {
        let home = tempfile::tempdir().expect("AIRFLOW_HOME");
        let dags = home.path().join("dags");
        std::fs::create_dir_all(&dags).expect("dags folder");
        std::fs::write(dags.join("existing_dag.py"), first_dag).expect("write a DAG");
        let passwords = home.path().join("passwords.json");
        std::fs::write(&passwords, format!("{{\"{USER}\": \"{PASSWORD}\"}}")).expect("passwords");
        let port = free_port();
        let log = home.path().join("standalone.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let s = |p: &Path| p.display().to_string();
        // setsid: the standalone supervisor and everything it starts share one process group
        // that Drop can kill whole.
        let child = Command::new("setsid")
            .arg(venv.join("bin/airflow"))
            .arg("standalone")
            .env("PATH", path)
            .env("AIRFLOW_HOME", s(home.path()))
            .env("AIRFLOW__CORE__DAGS_FOLDER", s(&dags))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env(
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
            .env(
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                free_port().to_string(),
            )
            .env(
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
                free_port().to_string(),
            )
            .env("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "3")
            .env("AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL", "3")
            .env("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
            .env_remove("AIRFLOW_PASSWORD")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start airflow standalone");
        Airflow {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dags,
            log,
            _home: home,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn maintainer(name: &str) -> Actor {
    Actor::local(name, &["core-maintainer".to_string()], "tester")
}

const EXISTING: &str = r#"
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("existing_dag", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=False):
    EmptyOperator(task_id="noop")
"#;

const NEW: &str = r#"
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator
with DAG("justtakeitfree_workflow", schedule="@monthly", start_date=datetime(2024, 1, 1),
         catchup=False, tags=["provider"]):
    BashOperator(task_id="pull", bash_command="sleep 900")
"#;

const BROKEN: &str = "from airflow.sdk import DAG\n\
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
            "timed out after {secs} s waiting for {what}; airflow log:\n{}",
            af.log_tail()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_airflow3_announce_enable_block_and_report() {
    let Some(venv) = venv() else {
        let why = "no Airflow venv (run scripts/airflow-venv.sh or set AIRFLOW_VENV)";
        if in_ci() {
            panic!("the real-Airflow test is required in CI: {why}");
        }
        eprintln!("skipping the real-Airflow test: {why}");
        return;
    };
    let af = Airflow::start(&venv, EXISTING);
    let fakes = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox fakes");
    let store = support::sqlite().await;
    let mut config = support::config_with_store(&store.url);
    fakes.configure(&mut config);
    config.airflow.url = af.url.clone();
    config.airflow.api = AirflowApi::V2;
    config.airflow.username = USER.into();
    config.secrets.airflow_password = Some(SecretString::from(PASSWORD.to_string()));
    config.dag_sync = None;
    config.watch.status_cache = Duration::from_millis(1);
    let engine = Engine::new(config, store.store.clone()).expect("engine");
    let client = engine.ctx().integrations.airflow.clone();
    let mut transcript = String::new();

    // Up, healthy, and the first DAG parsed.
    eventually(&af, "a healthy Airflow with existing_dag", 240, || async {
        let h = client.health().await.ok()?;
        let ok = h.scheduler.status.as_deref() == Some("healthy");
        let dags = client.list_dags().await.ok()?;
        (ok && dags.iter().any(|d| d.dag_id == "existing_dag")).then_some(())
    })
    .await;

    // The first poll seeds: nothing announced.
    let announcer = Announcer::new(engine.ctx().clone());
    let conv = Transcript::new();
    let first = announcer.poll_once(&conv).await.expect("first poll");
    assert!(first.seeded, "{first:?}");
    assert!(first.announced.is_empty() && conv.messages().is_empty());

    // A DAG file arrives (dag-sync would do this): announced once, paused.
    std::fs::write(af.dags.join("justtakeitfree.py"), NEW).expect("write the new DAG");
    eventually(&af, "the new DAG in the list", 120, || async {
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
    transcript.push_str(&format!("announcement:\n{}\n\n", a.text));

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

    // A triggered run that is running blocks a deploy and shows in the status.
    trigger(&client_url(&af), "justtakeitfree_workflow").await;
    eventually(&af, "the triggered run to be running", 120, || async {
        let runs = client.active_runs().await.ok()?;
        runs.iter()
            .any(|r| r.dag_id == "justtakeitfree_workflow" && r.state == "running")
            .then_some(())
    })
    .await;
    let check = ask("!deploy check catalog v1.5.3").await;
    assert_eq!(check.outcome, Outcome::Blocked, "{}", check.message);
    assert!(
        check.message.contains("justtakeitfree_workflow"),
        "{}",
        check.message
    );

    // A broken DAG file is an import error.
    std::fs::write(af.dags.join("broken_provider.py"), BROKEN).expect("write a broken DAG");
    eventually(&af, "the import error", 120, || async {
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
        "Airflow 3.",
        "scheduler: healthy",
        // Enabling also schedules the latest @monthly interval: one or two runs.
        "Active runs: ",
        "`justtakeitfree_workflow` manual__",
        "broken_provider.py: ImportError: providers.provider_api_scripts.nowhere is not installed",
    ] {
        assert!(
            status.message.contains(needle),
            "{needle}: {}",
            status.message
        );
    }
    transcript.push_str(&format!("!airflow status\n{}\n\n", status.message));
    transcript.push_str(&format!(
        "!deploy check catalog v1.5.3\n{}\n",
        check.message
    ));
    if let Some(path) = std::env::var_os("AIRFLOW_REAL_TRANSCRIPT") {
        std::fs::write(path, &transcript).expect("write the transcript");
    }
    println!("{transcript}");
    fakes.shutdown().await;
    drop(af);
}

fn client_url(af: &Airflow) -> String {
    af.url.clone()
}

/// Triggers a manual run through the REST API (the bot has no trigger command).
async fn trigger(base: &str, dag_id: &str) {
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base}/auth/token"))
        .json(&serde_json::json!({"username": USER, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"].as_str().expect("access_token");
    let resp = http
        .post(format!("{base}/api/v2/dags/{dag_id}/dagRuns"))
        .bearer_auth(token)
        .json(&serde_json::json!({"logical_date": null}))
        .send()
        .await
        .expect("trigger");
    assert!(resp.status().is_success(), "trigger: {}", resp.status());
}

//! `catalog-chatops watch --once` as cron or a script runs it, against the sandbox's fake
//! Airflow: the first run seeds silently, a new paused DAG is printed once (with its Enable
//! command and button id), and an unreachable Airflow fails with a sentence and exit 1.

use catalog_chatops::sandbox::{self, SimDag, World};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");

async fn watch_once(dir: &std::path::Path, airflow_url: &str) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/catalog-chatops.toml"
        ))
        .args(["watch", "--once", "--json"])
        .env(
            "CATALOG_CHATOPS__STORE__URL",
            format!("sqlite://{}/bot.db", dir.display()),
        )
        .env("CATALOG_CHATOPS__AIRFLOW__URL", airflow_url)
        .env("CATALOG_CHATOPS__AIRFLOW__API", "v2")
        .env("AIRFLOW_PASSWORD", "sandbox")
        .env_remove("CATALOG_CHATOPS_CONFIG")
        .current_dir(dir)
        .output()
        .await
        .expect("run watch --once")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_once_seeds_then_prints_each_new_paused_dag_once() {
    let h = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().expect("tempdir");

    let first = watch_once(dir.path(), &h.airflow_url).await;
    assert_eq!(first.status.code(), Some(0));
    assert!(first.stdout.is_empty(), "seeding prints nothing");
    assert!(String::from_utf8_lossy(&first.stderr).contains("seeded the seen set"));

    h.world.lock().airflow.add_dag(SimDag {
        dag_id: "kew_gardens_workflow".into(),
        is_paused: true,
        schedule: Some("@weekly".into()),
        catchup: false,
        start_date: Some("2024-01-01T00:00:00Z".into()),
        tags: vec![],
        fileloc: "/opt/airflow/catalog/dags/kew.py".into(),
    });
    let second = watch_once(dir.path(), &h.airflow_url).await;
    assert_eq!(second.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&second.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "announcement");
    assert_eq!(lines[0]["dag_id"], "kew_gardens_workflow");
    assert_eq!(lines[0]["button_id"], "dag:enable:kew_gardens_workflow");
    assert_eq!(
        lines[0]["enable_command"],
        "!dag enable kew_gardens_workflow"
    );

    let third = watch_once(dir.path(), &h.airflow_url).await;
    assert!(third.stdout.is_empty(), "announced once");

    let down = watch_once(dir.path(), "http://127.0.0.1:9").await;
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("the poll failed"));
    h.shutdown().await;
}

//! Measured, not asserted: one new-DAG announcer poll over 2,000 DAGs on the sandbox's fake
//! Airflow (every page read, the seen set written to SQLite), its wall time, the process's peak
//! RSS (`VmHWM` in /proc/self/status) and the requests it needed. Run with
//! `cargo bench --bench announcer`; figures go to docs/BENCHMARKS.md ("Announcer").

mod common;

use common::peak_rss_kib;
use std::time::Instant;

use catalog_chatops::Engine;
use catalog_chatops::chat::Transcript;
use catalog_chatops::config;
use catalog_chatops::integrations::Service;
use catalog_chatops::sandbox::{self, SimDag, World};
use catalog_chatops::store::Store;
use catalog_chatops::watch::Announcer;
use secrecy::SecretString;

const DAGS: usize = 2_000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/catalog-chatops.toml"
    ))
    .expect("config");
    let mut config = config::load_from_str(
        &toml,
        &[("CATALOG_CHATOPS__STORE__URL".into(), url.clone())],
    )
    .expect("valid config");
    let h = sandbox::start(World::big(DAGS, 0)).await.expect("sandbox");
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from("sandbox"));
    let store = Store::open(&url).await.expect("store");
    store.migrate().await.expect("migrate");
    let engine = Engine::new(config, store).expect("engine");
    let announcer = Announcer::new(engine.ctx().clone());
    let conv = Transcript::new();

    // The seeding poll writes all 2,000 rows; the steady-state poll finds one new DAG.
    for (label, add) in [
        ("first poll (seeds 2,000 rows)", false),
        ("steady poll (1 new DAG)", true),
    ] {
        if add {
            h.world.lock().airflow.add_dag(SimDag {
                dag_id: "zz_brand_new_workflow".into(),
                is_paused: true,
                schedule: Some("@daily".into()),
                catchup: false,
                start_date: Some("2024-01-01T00:00:00Z".into()),
                tags: vec![],
                fileloc: "/opt/airflow/catalog/dags/zz.py".into(),
            });
        }
        let before = h.world.count(Service::Airflow, "GET /api/v2/dags");
        let start = Instant::now();
        let report = announcer.poll_once(&conv).await.expect("poll");
        let took = start.elapsed();
        let requests = h.world.count(Service::Airflow, "GET /api/v2/dags") - before;
        println!(
            "announcer {label:<32} dags={:<5} time={:>7.1} ms  requests={requests} (pages of 100: {})  announced={}  peak RSS={} MiB",
            report.dags,
            took.as_secs_f64() * 1e3,
            report.dags.div_ceil(100),
            report.announced.len(),
            peak_rss_kib().map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    h.shutdown().await;
}

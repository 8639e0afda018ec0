//! Measured, not asserted: the bot against a fake Airflow at scale — 10,000 DAGs and 20,000 DAG
//! runs, 2,000 of them running (so the preflight pages through 20 pages of running runs while the
//! fake filters the whole history on every page). Reports, median of several runs:
//!
//! - preflight (`!deploy check`) in-process with fresh clients (as each `exec` has): wall time and
//!   requests per service;
//! - one new-DAG announcer poll: the first (seeds 10,000 rows into SQLite) and the steady one
//!   (one new DAG): wall time and requests;
//! - peak RSS: this process's `VmHWM` (fakes included), and separate `exec '!deploy check …'` and
//!   `watch --once` processes, each measured on its own by `/usr/bin/time -f %M`.
//!
//! Run with `cargo bench --bench scale`; figures go to docs/BENCHMARKS.md ("Scale").

mod common;

use common::{median, median_u64, mib, ms, peak_rss_kib, sandbox_config};
use std::path::Path;
use std::time::{Duration, Instant};

use catalog_chatops::Engine;
use catalog_chatops::chat::Transcript;
use catalog_chatops::command::Version;
use catalog_chatops::config::Config;
use catalog_chatops::deploy::preflight;
use catalog_chatops::integrations::{HttpPolicy, Integrations, Service};
use catalog_chatops::sandbox::{self, SandboxHandle, SimDag, World};
use catalog_chatops::store::Store;
use catalog_chatops::watch::Announcer;
use secrecy::SecretString;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");
const DAGS: usize = 10_000;
const RUNS: usize = 20_000;
const RUNNING: usize = 2_000;
const REPEATS: usize = 5;
const PROCESS_REPEATS: usize = 3;
const SERVICES: [Service; 3] = [Service::Github, Service::Registry, Service::Airflow];

/// Requests per service since `before`.
fn requests(world: &World, before: [u64; 3]) -> [u64; 3] {
    let now = counts(world);
    [now[0] - before[0], now[1] - before[1], now[2] - before[2]]
}

fn counts(world: &World) -> [u64; 3] {
    SERVICES.map(|s| world.count_prefix(s, ""))
}

async fn preflight_in_process(h: &SandboxHandle, config: &Config) {
    let target = config.targets["catalog"].clone();
    let version = Version::parse("v1.5.3").expect("version");
    let mut times = Vec::new();
    let mut reqs = [0; 3];
    let mut pages = 0;
    for _ in 0..REPEATS {
        // Fresh clients: no token or realm carried over, as in each `exec`.
        let clients = Integrations::from_config(config, HttpPolicy::default()).expect("clients");
        let before = counts(&h.world);
        let before_pages = h
            .world
            .count_prefix(Service::Airflow, "GET /api/v2/dags/~/dagRuns");
        let t = Instant::now();
        let report = preflight::run(&clients, "catalog", &target, &version).await;
        times.push(t.elapsed());
        reqs = requests(&h.world, before);
        pages = h
            .world
            .count_prefix(Service::Airflow, "GET /api/v2/dags/~/dagRuns")
            - before_pages;
        assert_eq!(report.blocking_runs.len(), RUNNING, "{}", report.render());
    }
    println!(
        "preflight in-process (cold clients), {DAGS} DAGs / {RUNS} runs / {RUNNING} running: \
         median {:.0} ms (min {:.0}, max {:.0}) over {REPEATS}; requests GitHub {} · registry {} · \
         Airflow {} ({pages} dagRuns pages); {} blocking runs reported",
        ms(median(times.clone())),
        ms(*times.iter().min().expect("runs")),
        ms(*times.iter().max().expect("runs")),
        reqs[0],
        reqs[1],
        reqs[2],
        RUNNING,
    );
}

/// A fresh Postgres database on `BENCH_POSTGRES_URL` (default the local test server), or `None`
/// with the reason printed.
async fn postgres_url() -> Option<(sqlx::AnyPool, String, String)> {
    let admin = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    sqlx::any::install_default_drivers();
    let pool = match sqlx::AnyPool::connect(&admin).await {
        Ok(p) => p,
        Err(e) => {
            println!("(Postgres half skipped: {admin} unreachable: {e})");
            return None;
        }
    };
    let name = format!("ccx_bench_scale_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create the bench database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some((pool, format!("{base}/{name}"), name))
}

async fn engine_on_store(config: &Config, url: &str) -> Engine {
    let mut config = config.clone();
    config.store.url = url.to_string();
    let store = Store::open(url).await.expect("store");
    store.migrate().await.expect("migrate");
    Engine::new(config, store).expect("engine")
}

async fn engine_on_fresh_store(config: &Config, dir: &Path, name: &str) -> Engine {
    let url = format!("sqlite://{}/{name}.db", dir.display());
    let mut config = config.clone();
    config.store.url = url.clone();
    let store = Store::open(&url).await.expect("store");
    store.migrate().await.expect("migrate");
    Engine::new(config, store).expect("engine")
}

/// The same polls with the seen set on Postgres (one first poll, then steady ones).
async fn announcer_postgres(h: &SandboxHandle, config: &Config) {
    let Some((admin, url, name)) = postgres_url().await else {
        return;
    };
    let engine = engine_on_store(config, &url).await;
    let announcer = Announcer::new(engine.ctx().clone());
    let conv = Transcript::new();
    let t = Instant::now();
    announcer.poll_once(&conv).await.expect("poll");
    let first = t.elapsed();
    let mut steady = Vec::new();
    let mut reqs = 0;
    for _ in 0..REPEATS {
        let before = h.world.count_prefix(Service::Airflow, "");
        let t = Instant::now();
        announcer.poll_once(&conv).await.expect("poll");
        steady.push(t.elapsed());
        reqs = h.world.count_prefix(Service::Airflow, "") - before;
    }
    println!(
        "announcer on Postgres (127.0.0.1): first poll {:.0} ms, steady poll median {:.0} ms over \
         {REPEATS}, {reqs} Airflow requests",
        ms(first),
        ms(median(steady))
    );
    drop(announcer);
    engine.ctx().store.close().await;
    drop(engine);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
}

async fn announcer(h: &SandboxHandle, config: &Config, dir: &Path) {
    let conv = Transcript::new();
    let mut first = Vec::new();
    let mut first_reqs = 0;
    let mut last = None;
    for i in 0..PROCESS_REPEATS {
        let engine = engine_on_fresh_store(config, dir, &format!("announce{i}")).await;
        let announcer = Announcer::new(engine.ctx().clone());
        let before = h.world.count_prefix(Service::Airflow, "");
        let t = Instant::now();
        let report = announcer.poll_once(&conv).await.expect("poll");
        first.push(t.elapsed());
        first_reqs = h.world.count_prefix(Service::Airflow, "") - before;
        assert_eq!(
            report.dags,
            h.world.lock().airflow.dags.len(),
            "every DAG read"
        );
        last = Some(announcer);
    }
    let announcer = last.expect("an announcer");
    let mut steady = Vec::new();
    let mut steady_reqs = Vec::new();
    for k in 0..REPEATS {
        h.world.lock().airflow.add_dag(SimDag {
            dag_id: format!("zz_brand_new_{k}_workflow"),
            is_paused: true,
            schedule: Some("@daily".into()),
            catchup: false,
            start_date: Some("2024-01-01T00:00:00Z".into()),
            tags: vec![],
            fileloc: format!("/opt/airflow/catalog/dags/zz_{k}.py"),
        });
        let before = h.world.count_prefix(Service::Airflow, "");
        let t = Instant::now();
        let report = announcer.poll_once(&conv).await.expect("poll");
        steady.push(t.elapsed());
        steady_reqs.push(h.world.count_prefix(Service::Airflow, "") - before);
        assert_eq!(report.announced.len(), 1, "the one new DAG");
    }
    println!(
        "announcer first poll (seeds the seen set): median {:.0} ms over {PROCESS_REPEATS} fresh \
         stores, {first_reqs} Airflow requests",
        ms(median(first))
    );
    println!(
        "announcer steady poll (1 new DAG): median {:.0} ms over {REPEATS}, {} Airflow requests \
         (pages of 100: {})",
        ms(median(steady)),
        median_u64(steady_reqs),
        h.world.lock().airflow.dags.len().div_ceil(100)
    );
}

/// Runs the binary under `/usr/bin/time -f %M`: wall time and that process's own peak RSS (KiB).
async fn measured(h: &SandboxHandle, dir: &Path, store: &str, args: &[&str]) -> (Duration, u64) {
    let rss_file = dir.join("rss.txt");
    let t = Instant::now();
    let out = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(BIN)
        .args([
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"),
        ])
        .args(args)
        .env(
            "CATALOG_CHATOPS__STORE__URL",
            format!("sqlite://{}/{store}.db", dir.display()),
        )
        .env("CATALOG_CHATOPS__GITHUB__API_URL", &h.github_url)
        .env("CATALOG_CHATOPS__REGISTRY__URL", &h.registry_url)
        .env("CATALOG_CHATOPS__AIRFLOW__URL", &h.airflow_url)
        .env("AIRFLOW_PASSWORD", "sandbox")
        .env_remove("CATALOG_CHATOPS_CONFIG")
        .output()
        .await
        .expect("run the binary under /usr/bin/time");
    let wall = t.elapsed();
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or_else(|| {
            panic!(
                "no RSS from /usr/bin/time; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (wall, rss)
}

async fn processes(h: &SandboxHandle, dir: &Path) {
    if !Path::new("/usr/bin/time").exists() {
        println!("(separate-process RSS skipped: /usr/bin/time is not installed)");
        return;
    }
    // A first run migrates the store, so the measured ones start like any later `exec`.
    measured(h, dir, "exec", &["migrate"]).await;
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..PROCESS_REPEATS {
        let (wall, kib) = measured(h, dir, "exec", &["exec", "!deploy check catalog v1.5.3"]).await;
        walls.push(wall);
        rss.push(kib);
    }
    println!(
        "exec '!deploy check catalog v1.5.3' process: median wall {:.0} ms, peak RSS median {} \
         (max {}) over {PROCESS_REPEATS}",
        ms(median(walls)),
        mib(median_u64(rss.clone())),
        mib(*rss.iter().max().expect("runs"))
    );
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for i in 0..PROCESS_REPEATS {
        // A fresh store each time: the first poll, which writes every DAG, is the heavy one.
        let (wall, kib) = measured(h, dir, &format!("watch{i}"), &["watch", "--once"]).await;
        walls.push(wall);
        rss.push(kib);
    }
    println!(
        "watch --once process (first poll, fresh store): median wall {:.0} ms, peak RSS median {} \
         (max {}) over {PROCESS_REPEATS}",
        ms(median(walls)),
        mib(median_u64(rss.clone())),
        mib(*rss.iter().max().expect("runs"))
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = Instant::now();
        let world = World::big_with_history(DAGS, RUNS - RUNNING, RUNNING);
        let h = sandbox::start(world).await.expect("sandbox");
        println!(
            "fake Airflow: {} DAGs ({DAGS} synthetic), {RUNS} runs ({RUNNING} running), built in \
             {:.0} ms; RSS after seeding {}",
            h.world.lock().airflow.dags.len(),
            ms(t.elapsed()),
            peak_rss_kib().map_or("?".into(), mib)
        );
        let mut config = sandbox_config();
        h.configure(&mut config);
        config.secrets.airflow_password = Some(SecretString::from("sandbox"));
        let dir = tempfile::tempdir().expect("tempdir");

        preflight_in_process(&h, &config).await;
        announcer(&h, &config, dir.path()).await;
        announcer_postgres(&h, &config).await;
        println!(
            "this bench process (fakes included) peak RSS (VmHWM): {}",
            peak_rss_kib().map_or("?".into(), mib)
        );
        processes(&h, dir.path()).await;
        h.shutdown().await;
    });
}

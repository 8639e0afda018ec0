//! Measured, not asserted: preflight wall time with every upstream request delayed by 200 ms,
//! against the same requests made one after another (cold clients with and without what earlier
//! processes left in the store, and warm clients); and a preflight against a fake Airflow with
//! 2,000 DAGs and 5,000 running runs (time, requests, peak RSS of the `exec` process).
//! Run with `cargo bench --bench preflight`; figures go to docs/BENCHMARKS.md.

mod common;

use common::{median, ms, sandbox_config};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_chatops::command::Version;
use catalog_chatops::deploy::preflight;
use catalog_chatops::integrations::{HttpPolicy, Integrations, Service};
use catalog_chatops::sandbox::{self, World};
use catalog_chatops::store::Store;

/// What the store holds from earlier processes when a cold client starts.
#[derive(Clone, Copy)]
enum Memory {
    Nothing,
    RealmAndToken,
    RealmOnly,
}

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");

async fn latency_ratio() {
    let world = World::openverse_idle();
    for s in [Service::Github, Service::Registry, Service::Airflow] {
        world.faults(s, |f| f.latency = Duration::from_millis(200));
    }
    let handle = sandbox::start(world).await.expect("sandbox");
    let mut config = sandbox_config();
    handle.configure(&mut config);
    // No secret needed: this Airflow accepts any password.
    handle.world.lock().airflow.password.clear();
    let target = config.targets["catalog"].clone();
    let version = Version::parse("v1.5.3").expect("version");

    // A new `exec` process builds fresh clients over the store that earlier processes used.
    // The manual runbook remembers nothing: its side always starts from fresh clients.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&format!("sqlite://{}/bench.db", dir.path().display()))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let registry = config.registry.url.trim_end_matches('/').to_string();
    let scope = format!("repository:{}:pull", target.image.to_ascii_lowercase());
    let variants = [
        (
            "cold clients (exec), nothing remembered (the first exec on a store)",
            Memory::Nothing,
        ),
        (
            "cold clients (exec), realm and anonymous token remembered (the next exec)",
            Memory::RealmAndToken,
        ),
        (
            "cold clients (exec), realm remembered (token expired, or obtained with credentials)",
            Memory::RealmOnly,
        ),
    ];
    for (label, memory) in variants {
        if !matches!(memory, Memory::Nothing) {
            // An earlier process on this store.
            let earlier = Integrations::from_config(&config, HttpPolicy::default())
                .expect("clients")
                .remembering(Arc::new(store.clone()));
            preflight::run(&earlier, "catalog", &target, &version).await;
        }
        let mut bot = Vec::new();
        let mut sequential = Vec::new();
        let mut requests = (0, 0);
        for _ in 0..5 {
            let mut clients =
                Integrations::from_config(&config, HttpPolicy::default()).expect("clients");
            match memory {
                Memory::Nothing => {}
                Memory::RealmAndToken => clients = clients.remembering(Arc::new(store.clone())),
                Memory::RealmOnly => {
                    store
                        .forget_registry_token(&registry, &scope)
                        .await
                        .expect("forget the token");
                    clients = clients.remembering(Arc::new(store.clone()));
                }
            }
            let before = count(&handle.world);
            let t = Instant::now();
            let report = preflight::run(&clients, "catalog", &target, &version).await;
            bot.push(t.elapsed());
            requests.0 = count(&handle.world) - before;
            assert!(report.passed(false), "{}", report.render());

            // The manual runbook: the same three checks, one after another.
            let clients =
                Integrations::from_config(&config, HttpPolicy::default()).expect("clients");
            let before = count(&handle.world);
            let t = Instant::now();
            let r = clients
                .github
                .release_by_tag(&target.repo, "v1.5.3")
                .await
                .expect("release");
            let m = clients
                .registry
                .manifest(&target.image, "v1.5.3")
                .await
                .expect("manifest");
            let runs = clients.airflow.active_runs().await.expect("runs");
            sequential.push(t.elapsed());
            requests.1 = count(&handle.world) - before;
            assert!(r.is_some() && m.is_some() && runs.is_empty());
        }
        let (b, s) = (median(bot), median(sequential));
        println!(
            "preflight, 200 ms per upstream request, {label}: bot {:.0} ms ({} requests) vs one after another {:.0} ms ({} requests): ratio {:.2}",
            ms(b),
            requests.0,
            ms(s),
            requests.1,
            b.as_secs_f64() / s.as_secs_f64()
        );
    }

    // Warm clients, as in the long-running bot (run, console, sandbox): the registry token and
    // the Airflow JWT are reused until refused.
    let clients = Integrations::from_config(&config, HttpPolicy::default()).expect("clients");
    preflight::run(&clients, "catalog", &target, &version).await;
    let (mut bot, mut sequential) = (Vec::new(), Vec::new());
    let mut requests = (0, 0);
    for _ in 0..5 {
        let before = count(&handle.world);
        let t = Instant::now();
        preflight::run(&clients, "catalog", &target, &version).await;
        bot.push(t.elapsed());
        requests.0 = count(&handle.world) - before;
        let before = count(&handle.world);
        let t = Instant::now();
        clients
            .github
            .release_by_tag(&target.repo, "v1.5.3")
            .await
            .expect("release");
        clients
            .registry
            .manifest(&target.image, "v1.5.3")
            .await
            .expect("manifest");
        clients.airflow.active_runs().await.expect("runs");
        sequential.push(t.elapsed());
        requests.1 = count(&handle.world) - before;
    }
    let (b, s) = (median(bot), median(sequential));
    println!(
        "preflight, 200 ms per upstream request, warm clients (run/console): bot {:.0} ms ({} requests) vs one after another {:.0} ms ({} requests): ratio {:.2}",
        ms(b),
        requests.0,
        ms(s),
        requests.1,
        b.as_secs_f64() / s.as_secs_f64()
    );
    handle.shutdown().await;
}

fn count(world: &World) -> u64 {
    [Service::Github, Service::Registry, Service::Airflow]
        .into_iter()
        .map(|s| world.count_prefix(s, ""))
        .sum()
}

async fn big_airflow() {
    let handle = sandbox::start(World::big(2_000, 5_000))
        .await
        .expect("sandbox");
    let mut config = sandbox_config();
    handle.configure(&mut config);
    let target = config.targets["catalog"].clone();
    let version = Version::parse("v1.5.3").expect("version");
    // No secret needed: this Airflow accepts any password.
    handle.world.lock().airflow.password.clear();

    let mut times = Vec::new();
    let mut runs_requests = 0;
    for _ in 0..5 {
        let clients = Integrations::from_config(&config, HttpPolicy::default()).expect("clients");
        let before = handle
            .world
            .count_prefix(Service::Airflow, "GET /api/v2/dags/~/dagRuns");
        let t = Instant::now();
        let report = preflight::run(&clients, "catalog", &target, &version).await;
        times.push(t.elapsed());
        runs_requests = handle
            .world
            .count_prefix(Service::Airflow, "GET /api/v2/dags/~/dagRuns")
            - before;
        assert_eq!(report.blocking_runs.len(), 5_000);
    }
    println!(
        "preflight in-process, 2,000 DAGs / 5,000 running runs: median {:.0} ms, {} dagRuns page requests",
        ms(median(times)),
        runs_requests
    );

    // The whole `exec` process: wall time and peak RSS (ru_maxrss of the child).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut walls = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = tokio::process::Command::new(BIN)
            .args([
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"),
            ])
            .args(["exec", "!deploy check catalog v1.5.3"])
            .env(
                "CATALOG_CHATOPS__STORE__URL",
                format!("sqlite://{}/b.db", dir.path().display()),
            )
            .env("CATALOG_CHATOPS__GITHUB__API_URL", &handle.github_url)
            .env("CATALOG_CHATOPS__REGISTRY__URL", &handle.registry_url)
            .env("CATALOG_CHATOPS__AIRFLOW__URL", &handle.airflow_url)
            .env("AIRFLOW_PASSWORD", "sandbox")
            .output()
            .await
            .expect("exec");
        walls.push(t.elapsed());
        assert_eq!(out.status.code(), Some(1), "blocked by 5,000 runs");
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("rusage");
    println!(
        "exec '!deploy check' process, 2,000 DAGs / 5,000 running runs: median wall {:.0} ms, peak RSS {:.1} MB",
        ms(median(walls)),
        usage.max_rss() as f64 / 1024.0
    );
    handle.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        latency_ratio().await;
        big_airflow().await;
    });
}

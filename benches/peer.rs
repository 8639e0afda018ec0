//! Measured, not asserted: the peer comparison — the manual runbook (`scripts/runbook-curl.sh`:
//! the same three checks one after another with curl and jq, a new process per check step)
//! against the bot's preflight, on the same fakes with the same injected latency (200 ms before
//! every answer), in one run. The bot is measured as a cold `exec '!deploy check catalog v1.5.3'`
//! process and as a warm in-process check (clients kept, as in `run`, `console`, `sandbox`).
//!
//! Before timing, the script is shown to check for real: against a release without an image, a
//! draft and an active DAG run it exits 1, as the bot blocks.
//!
//! Run with `cargo bench --bench peer`; figures go to docs/BENCHMARKS.md ("Peer comparison").

mod common;

use common::{median, ms, sandbox_config};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use catalog_chatops::command::Version;
use catalog_chatops::config::Config;
use catalog_chatops::deploy::preflight;
use catalog_chatops::integrations::{HttpPolicy, Integrations, Service};
use catalog_chatops::sandbox::{self, SandboxHandle, World};
use secrecy::SecretString;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/runbook-curl.sh");
const LATENCY: Duration = Duration::from_millis(200);
const RUNS: usize = 7;
const SERVICES: [Service; 3] = [Service::Github, Service::Registry, Service::Airflow];

fn total_requests(world: &World) -> u64 {
    SERVICES.iter().map(|s| world.count_prefix(*s, "")).sum()
}

async fn script(h: &SandboxHandle, config: &Config, version: &str) -> Output {
    let t = &config.targets["catalog"];
    tokio::process::Command::new("bash")
        .arg(SCRIPT)
        .arg(version)
        .env("GITHUB_API", &h.github_url)
        .env("REPO", &t.repo)
        .env("REGISTRY", &h.registry_url)
        .env("IMAGE", &t.image)
        .env("AIRFLOW", &h.airflow_url)
        .env("AIRFLOW_API", "v2")
        .env("AIRFLOW_USER", &config.airflow.username)
        .env("AIRFLOW_PASSWORD", "sandbox")
        .output()
        .await
        .expect("run the runbook script")
}

async fn exec(h: &SandboxHandle, dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args([
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"),
        ])
        .args(args)
        .env(
            "CATALOG_CHATOPS__STORE__URL",
            format!("sqlite://{}/peer.db", dir.display()),
        )
        .env("CATALOG_CHATOPS__GITHUB__API_URL", &h.github_url)
        .env("CATALOG_CHATOPS__REGISTRY__URL", &h.registry_url)
        .env("CATALOG_CHATOPS__AIRFLOW__URL", &h.airflow_url)
        .env("CATALOG_CHATOPS__AIRFLOW__API", "v2")
        .env("AIRFLOW_PASSWORD", "sandbox")
        .env_remove("CATALOG_CHATOPS_CONFIG")
        .output()
        .await
        .expect("run the binary")
}

/// The script fails where the bot blocks: it checks, it does not only time requests.
async fn script_blocks(h: &SandboxHandle, config: &Config) {
    let cases = [
        ("v1.5.2", "❌ image"),
        ("v1.6.0", "❌ release"),
        ("v1.5.3 with a run active", "❌ DAG runs: 1 active"),
    ];
    for (case, expect) in cases {
        let version = case.split(' ').next().expect("a version");
        if case.contains("active") {
            h.world
                .lock()
                .airflow
                .add_running("inaturalist_workflow", 60_000, None);
        }
        let out = script(h, config, version).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{case}: {stdout}");
        assert!(stdout.contains(expect), "{case}: {stdout}");
        println!("script against {case}: exit 1, {expect:?} reported");
        h.world.lock().airflow.runs.clear();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let world = World::openverse_idle();
        for s in SERVICES {
            world.faults(s, |f| f.latency = LATENCY);
        }
        let h = sandbox::start(world).await.expect("sandbox");
        let mut config = sandbox_config();
        h.configure(&mut config);
        config.secrets.airflow_password = Some(SecretString::from("sandbox"));
        let dir = tempfile::tempdir().expect("tempdir");

        script_blocks(&h, &config).await;
        let migrated = exec(&h, dir.path(), &["migrate"]).await;
        assert!(migrated.status.success(), "migrate");

        let target = config.targets["catalog"].clone();
        let version = Version::parse("v1.5.3").expect("version");
        let warm = Integrations::from_config(&config, HttpPolicy::default()).expect("clients");
        assert!(
            preflight::run(&warm, "catalog", &target, &version)
                .await
                .passed(false),
            "warm-up check passes"
        );

        let (mut s_times, mut c_times, mut w_times) = (Vec::new(), Vec::new(), Vec::new());
        let mut reqs = [0u64; 3];
        for _ in 0..RUNS {
            let before = total_requests(&h.world);
            let t = Instant::now();
            let out = script(&h, &config, "v1.5.3").await;
            s_times.push(t.elapsed());
            reqs[0] = total_requests(&h.world) - before;
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );

            let before = total_requests(&h.world);
            let t = Instant::now();
            let out = exec(&h, dir.path(), &["exec", "!deploy check catalog v1.5.3"]).await;
            c_times.push(t.elapsed());
            reqs[1] = total_requests(&h.world) - before;
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );

            let before = total_requests(&h.world);
            let t = Instant::now();
            let report = preflight::run(&warm, "catalog", &target, &version).await;
            w_times.push(t.elapsed());
            reqs[2] = total_requests(&h.world) - before;
            assert!(report.passed(false), "{}", report.render());
        }
        let (s, c, w) = (median(s_times), median(c_times), median(w_times));
        println!(
            "{} ms injected before every answer; medians of {RUNS}, interleaved:",
            LATENCY.as_millis()
        );
        println!(
            "  runbook script (curl, one after another): {:>6.0} ms, {} requests",
            ms(s),
            reqs[0]
        );
        println!(
            "  bot, cold `exec '!deploy check …'`:       {:>6.0} ms, {} requests, ratio bot/script {:.2}",
            ms(c),
            reqs[1],
            c.as_secs_f64() / s.as_secs_f64()
        );
        println!(
            "  bot, warm in-process check:               {:>6.0} ms, {} requests, ratio bot/script {:.2}",
            ms(w),
            reqs[2],
            w.as_secs_f64() / s.as_secs_f64()
        );
        h.shutdown().await;
    });
}

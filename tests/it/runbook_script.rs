//! `scripts/runbook-curl.sh`, the manual runbook the bot is benchmarked against (benches/peer.rs),
//! checks what the bot checks: against the sandbox's fakes it passes where the bot's preflight
//! passes and exits 1, naming the failed check, where the bot blocks. Needs bash, curl and jq;
//! without them it prints why it skips.

use crate::support;

use catalog_chatops::command::Version;
use catalog_chatops::config;
use catalog_chatops::deploy::preflight;
use catalog_chatops::integrations::{HttpPolicy, Integrations};
use catalog_chatops::sandbox::{self, World};
use secrecy::SecretString;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/runbook-curl.sh");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_script_agrees_with_the_bots_preflight() {
    if !["bash", "curl", "jq"]
        .into_iter()
        .all(|tool| support::require_tool(tool, "the runbook script"))
    {
        return;
    }
    let h = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sandbox.toml"))
        .expect("config");
    let mut config = config::load_from_str(&toml, &[]).expect("valid");
    h.configure(&mut config);
    config.secrets.airflow_password = Some(SecretString::from("sandbox"));
    let target = config.targets["catalog"].clone();

    // (version, a run active, what the script must report)
    let cases = [
        ("v1.5.3", false, "✅ DAG runs: no active DAG runs"),
        (
            "v1.5.2",
            false,
            "❌ image: wordpress/openverse-catalog:v1.5.2 is not on",
        ),
        ("v1.6.0", false, "❌ release: no published release v1.6.0"),
        (
            "v1.5.3",
            true,
            "❌ DAG runs: 1 active DAG run(s) block the deploy",
        ),
        ("v9.9.9", false, "❌ release: no published release v9.9.9"),
    ];
    for (version, active, expect) in cases {
        h.world.lock().airflow.runs.clear();
        if active {
            h.world
                .lock()
                .airflow
                .add_running("inaturalist_workflow", 60_000, None);
        }
        let out = tokio::process::Command::new("bash")
            .arg(SCRIPT)
            .arg(version)
            .env("GITHUB_API", &h.github_url)
            .env("REPO", &target.repo)
            .env("REGISTRY", &h.registry_url)
            .env("IMAGE", &target.image)
            .env("AIRFLOW", &h.airflow_url)
            .env("AIRFLOW_PASSWORD", "sandbox")
            .output()
            .await
            .expect("run the script");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(expect),
            "{version} active={active}: {stdout}"
        );

        let clients = Integrations::from_config(&config, HttpPolicy::default()).expect("clients");
        let v = Version::parse(version).expect("version");
        let report = preflight::run(&clients, "catalog", &target, &v).await;
        let bot_passed = report.passed(false);
        assert_eq!(
            out.status.code(),
            Some(if bot_passed { 0 } else { 1 }),
            "{version} active={active}: script says {stdout}, bot says {}",
            report.render()
        );
    }

    // A wrong Airflow password is a failed check, not a pass.
    let out = tokio::process::Command::new("bash")
        .arg(SCRIPT)
        .arg("v1.5.3")
        .env("GITHUB_API", &h.github_url)
        .env("REPO", &target.repo)
        .env("REGISTRY", &h.registry_url)
        .env("IMAGE", &target.image)
        .env("AIRFLOW", &h.airflow_url)
        .env("AIRFLOW_PASSWORD", "wrong")
        .output()
        .await
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("❌ DAG runs: Airflow answered 401"),
        "{stdout}"
    );
    h.shutdown().await;
}

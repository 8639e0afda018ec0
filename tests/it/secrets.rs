//! Secrets never leave: a whole deploy with distinctive secret values configured and
//! secret-shaped tokens printed by a step; none of them may appear in what the bot posts, in its
//! logs, in the store file, in the pages, or reach the step's environment.

use crate::support;

use std::sync::Arc;

use catalog_chatops::sandbox::{self, World};
use catalog_chatops::server::{self, AppState, Readiness};
use tokio_util::sync::CancellationToken;

const AIRFLOW_PASSWORD: &str = "af-pw-7Qz!x9-distinctive";
const GITHUB_TOKEN: &str = "ghp_SecretGithubTokenForTests1234567890ab";
const DISCORD_TOKEN: &str = "discord-token-Zp4Kx8-distinctive";
// Shaped like real credentials, printed by the step itself.
const AWS_KEY_IN_OUTPUT: &str = "AKIAZZZZSECRETKEY123";
const GH_TOKEN_IN_OUTPUT: &str = "ghs_StepPrintedTokenAbcdefghij1234567890";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_chat_logs_store_or_step_environment() {
    if !support::require_tool("just", "the secrets test") {
        return;
    }
    let world = sandbox::start(World::openverse_idle())
        .await
        .expect("sandbox");
    world.world.lock().airflow.password = AIRFLOW_PASSWORD.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().join("infra");
    sandbox::session::write_infra(&workdir).expect("infra");
    let store_url = support::store_url(dir.path()).await;
    let env_dump = dir.path().join("step-env.txt");

    let run = |user: &'static str, text: &'static str, extra: Vec<(&'static str, String)>| {
        let mut c = support::sandbox_command(&world, &store_url, dir.path(), AIRFLOW_PASSWORD);
        c.args([
            "--log-format",
            "json",
            "exec",
            "--json",
            "--user",
            user,
            "--role",
            "core-maintainer",
            text,
        ])
        .env("RUST_LOG", "debug")
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("DISCORD_TOKEN", DISCORD_TOKEN);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    };
    // The step prints secret-shaped tokens and, if they leaked into its environment, the bot's
    // own secrets.
    let echo = format!("aws={AWS_KEY_IN_OUTPUT} gh={GH_TOKEN_IN_OUTPUT}");
    let first = run(
        "alice",
        "!deploy catalog v1.5.3",
        vec![
            ("SANDBOX_ECHO", echo),
            ("SANDBOX_ENV_DUMP", env_dump.display().to_string()),
            // Even a passthrough glob that matches everything must not hand over the secrets.
            (
                "CATALOG_CHATOPS__TARGETS__CATALOG__ENV_PASSTHROUGH",
                "[\"*\"]".to_string(),
            ),
        ],
    )
    .output()
    .await
    .expect("deploy");
    // A second command whose raw text carries a secret value: the audit log must not keep it.
    let typed = run("bob", "!deploy approve 1", vec![])
        .output()
        .await
        .expect("approve");
    let leak_attempt = run(
        "bob",
        "!audit ghp_SecretGithubTokenForTests1234567890ab",
        vec![],
    )
    .output()
    .await
    .expect("typo");

    // The step's environment, as the step itself saw it.
    let step_env = std::fs::read_to_string(&env_dump).expect("the step wrote its environment");
    assert!(
        step_env.contains("SANDBOX_ECHO="),
        "passthrough works: {step_env}"
    );
    for name in [
        "GITHUB_TOKEN=",
        "AIRFLOW_PASSWORD=",
        "DISCORD_TOKEN=",
        "CATALOG_CHATOPS__",
    ] {
        assert!(!step_env.contains(name), "{name} reached the step");
    }

    let mut everything = String::new();
    for out in [&first, &typed, &leak_attempt] {
        everything.push_str(&String::from_utf8_lossy(&out.stdout));
        everything.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        everything.contains("awaiting_approval") && everything.contains("succeeded"),
        "the deploy ran: {everything}"
    );
    assert!(
        everything.contains("[redacted]"),
        "the step's tokens were masked, not dropped"
    );
    // Logs were on (debug, JSON): they are part of `everything`.
    assert!(everything.contains("\"level\""), "logs were captured");

    let store_text = if store_url.starts_with("postgres") {
        // Every row of every table, as text.
        let store = catalog_chatops::store::Store::open(&store_url)
            .await
            .expect("open");
        let mut all = String::new();
        for table in [
            "audit_events",
            "deploys",
            "deploy_steps",
            "deploy_approvals",
            "locks",
            "command_claims",
            "seen_dags",
        ] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT row_to_json(t)::text FROM {table} t"
            )))
            .fetch_all(store.pool())
            .await
            .expect("dump");
            all.push_str(&rows.join("\n"));
        }
        all
    } else {
        // The database file and its WAL, byte for byte.
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let path = entry.expect("entry").path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bot.db"))
            {
                bytes.extend(std::fs::read(&path).expect("read store"));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(store_text.contains("v1.5.3"), "the store was read");

    // The pages read the same store: the deploy list, the deploy's page with its full step
    // output, the locks and the audit log.
    let pages = {
        let store = catalog_chatops::store::Store::open(&store_url)
            .await
            .expect("open");
        let config = support::config_with_store(&store_url);
        let state = Arc::new(AppState::new(
            Arc::new(config),
            store.clone(),
            Arc::new(Readiness::default()),
        ));
        let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, state, cancel.clone()));
        let mut text = String::new();
        for path in ["/", "/deploys/1", "/locks", "/audit"] {
            let resp = reqwest::get(format!("{base}{path}")).await.expect("page");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            text.push_str(&resp.text().await.expect("body"));
        }
        cancel.cancel();
        let _ = task.await;
        store.close().await;
        text
    };
    assert!(
        pages.contains("v1.5.3") && pages.contains("[redacted]"),
        "the deploy page shows the step output, masked"
    );
    for secret in [
        AIRFLOW_PASSWORD,
        GITHUB_TOKEN,
        DISCORD_TOKEN,
        AWS_KEY_IN_OUTPUT,
        GH_TOKEN_IN_OUTPUT,
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked into chat output or logs"
        );
        assert!(
            !store_text.contains(secret),
            "`{secret}` leaked into the store"
        );
        assert!(!pages.contains(secret), "`{secret}` leaked into the pages");
    }
    // The registry's bearer tokens (anonymous here, so kept in the store for the next process)
    // are never printed or logged, even at debug level.
    let issued: Vec<String> = world.world.lock().registry.tokens.keys().cloned().collect();
    assert!(
        !issued.is_empty(),
        "the preflight asked the registry for a token"
    );
    for token in &issued {
        assert!(
            !everything.contains(token.as_str()),
            "a registry token leaked into chat output or logs"
        );
        assert!(
            !pages.contains(token.as_str()),
            "a registry token leaked into the pages"
        );
    }
}

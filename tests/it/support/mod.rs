//! Shared test helpers: fresh stores on SQLite (a temp file) and on Postgres (a fresh database per
//! test on the server at `TEST_POSTGRES_URL`, default `postgres://root@127.0.0.1:5432/test`).
//!
//! Postgres is a required tier in CI: when `CI=true` and the server is unreachable the test
//! panics; elsewhere it prints why it skips the Postgres half.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use catalog_chatops::config::{self, Config};
use catalog_chatops::store::Store;

pub const DEFAULT_PG: &str = "postgres://root@127.0.0.1:5432/test";

/// A store plus whatever keeps it alive (the temp dir of a SQLite file).
pub struct TestStore {
    pub store: Store,
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/store.db", dir.path().display());
    let store = Store::open(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    TestStore {
        store,
        url,
        backend: "sqlite",
        _dir: Some(dir),
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when `tool --version` runs. Outside CI a missing tool skips the caller with a printed
/// reason; in CI it panics, so no tier is skipped silently there.
pub fn require_tool(tool: &str, needed_for: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if in_ci() {
            panic!("`{tool}` is required in CI for {needed_for}");
        }
        eprintln!("skipping {needed_for}: `{tool}` is not on PATH");
    }
    found
}

/// A fresh, empty Postgres database URL, or `None` (with the reason printed) outside CI when no
/// server answers.
pub async fn postgres_url() -> Option<String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    sqlx::any::install_default_drivers();
    let pool = match sqlx::AnyPool::connect(&admin).await {
        Ok(p) => p,
        Err(e) => {
            if in_ci() {
                panic!("Postgres is required in CI but {admin} is unreachable: {e}");
            }
            eprintln!("skipping the Postgres half of this test: {admin} is unreachable ({e})");
            return None;
        }
    };
    let name = format!(
        "ccx_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

pub async fn postgres() -> Option<TestStore> {
    let url = postgres_url().await?;
    let store = Store::open(&url).await.expect("open postgres");
    store.migrate().await.expect("migrate postgres");
    Some(TestStore {
        store,
        url,
        backend: "postgres",
        _dir: None,
    })
}

/// Which store the end-to-end suites (`cli`, `deploy_flow`, `secrets`) use: SQLite by default,
/// Postgres with `TEST_STORE=postgres` (CI runs them both ways).
pub fn postgres_selected() -> bool {
    std::env::var("TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// A fresh store URL for one test: a SQLite file in `dir`, or a fresh Postgres database when
/// `TEST_STORE=postgres`.
pub async fn store_url(dir: &std::path::Path) -> String {
    if postgres_selected() {
        match postgres_url().await {
            Some(url) => return url,
            None => panic!("TEST_STORE=postgres but Postgres is unreachable"),
        }
    }
    format!("sqlite://{}/bot.db", dir.display())
}

/// [`store_url`] for synchronous tests.
pub fn store_url_blocking(dir: &std::path::Path) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(store_url(dir))
}

/// Both backends (Postgres when available).
pub async fn all_backends() -> Vec<TestStore> {
    let mut v = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        v.push(pg);
    }
    v
}

/// A port on loopback where nothing listens: upstream calls fail at once, never leaving the
/// machine.
pub const CLOSED: &str = "http://127.0.0.1:9";

/// The shipped seed-era Openverse config (`config/examples/openverse-catalog-2022.toml`: semver
/// releases of WordPress/openverse-catalog, the Terraform flow, the sandbox's `v1.5.3`), pointed
/// at `store_url`, with every upstream service pointed at a closed loopback port (tests never
/// reach the internet). Today's config, `config/catalog-chatops.toml`, has its own end-to-end
/// test (tests/it/ansible_flow.rs).
pub fn config_with_store(store_url: &str) -> Config {
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/examples/openverse-catalog-2022.toml"
    ))
    .expect("read shipped config");
    let env = vec![
        (
            "CATALOG_CHATOPS__STORE__URL".to_string(),
            store_url.to_string(),
        ),
        (
            "CATALOG_CHATOPS__GITHUB__API_URL".to_string(),
            CLOSED.to_string(),
        ),
        (
            "CATALOG_CHATOPS__REGISTRY__URL".to_string(),
            CLOSED.to_string(),
        ),
        (
            "CATALOG_CHATOPS__AIRFLOW__URL".to_string(),
            CLOSED.to_string(),
        ),
    ];
    config::load_from_str(&toml, &env).expect("shipped config is valid")
}

/// Starts `cmd` with the subcommand `mode` (`run` or `serve`) and waits for the address its
/// HTTP server reports ("catalog-chatops MODE: listening on URL"). Its stderr keeps being read
/// (echoed, so a failing test shows it) so the child never blocks on a full pipe.
pub async fn spawn_listening(
    mut cmd: tokio::process::Command,
    mode: &str,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .arg(mode)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {mode}: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let marker = format!("catalog-chatops {mode}: listening on ");
    let url = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix(&marker) {
                return url.to_string();
            }
            eprintln!("[{mode}] {line}");
        }
        panic!("{mode} exited before listening")
    })
    .await
    .unwrap_or_else(|_| panic!("{mode} did not listen within 30 s"));
    let tag = mode.to_string();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{tag}] {line}");
        }
    });
    (child, url)
}

/// The settings that point the bot at a sandbox world: the store at `store_url`, every upstream
/// at the sandbox's fakes, the infra stand-in in `dir/infra`.
pub fn sandbox_env(
    world: &catalog_chatops::sandbox::SandboxHandle,
    store_url: &str,
    dir: &std::path::Path,
) -> Vec<(String, String)> {
    [
        ("CATALOG_CHATOPS__STORE__URL", store_url.to_string()),
        ("CATALOG_CHATOPS__GITHUB__API_URL", world.github_url.clone()),
        ("CATALOG_CHATOPS__REGISTRY__URL", world.registry_url.clone()),
        ("CATALOG_CHATOPS__AIRFLOW__URL", world.airflow_url.clone()),
        ("CATALOG_CHATOPS__AIRFLOW__API", "v2".to_string()),
        (
            "CATALOG_CHATOPS__TARGETS__CATALOG__WORKDIR",
            dir.join("infra").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The `catalog-chatops` binary as the end-to-end tests run it: `config/sandbox.toml` pointed at
/// `world` by `sandbox_env`, logging in to Airflow with `airflow_password`, run from `dir`, and
/// killed when dropped. Callers add the subcommand.
pub fn sandbox_command(
    world: &catalog_chatops::sandbox::SandboxHandle,
    store_url: &str,
    dir: &std::path::Path,
    airflow_password: &str,
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog-chatops"));
    c.arg("--config")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sandbox.toml"))
        .envs(sandbox_env(world, store_url, dir))
        .env("AIRFLOW_PASSWORD", airflow_password)
        .env_remove("CATALOG_CHATOPS_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .kill_on_drop(true);
    c
}

/// How many store migrations the crate has (the files in `migrations/sqlite`).
pub fn store_migrations() -> usize {
    std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"))
        .expect("migrations/sqlite")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count()
}

/// The sandbox's infra justfile, with `extra_plan_lines` more lines of plan output (a plan too
/// long for one chat message).
pub fn infra_justfile(extra_plan_lines: usize) -> String {
    let base = catalog_chatops::sandbox::session::INFRA_JUSTFILE;
    if extra_plan_lines == 0 {
        return base.to_string();
    }
    let marker = "    echo \"        # (29 unchanged attributes hidden)\"\n";
    assert!(base.contains(marker), "the infra justfile changed shape");
    let padding = format!(
        "{marker}    for i in $(seq 1 {extra_plan_lines}); do printf '        # tag_%03d = \"%s\"\\n' \"$i\" \"$(printf 'x%.0s' $(seq 1 60))\"; done\n"
    );
    base.replacen(marker, &padding, 1)
}

/// What the chat front-end tests run on: `config` pointed at a sandbox world (openverse, idle,
/// Airflow without a password) and at a workdir of its own whose infra steps are the sandbox's
/// justfile run by a real `just`. The world and the workdir live as long as the returned handles.
pub async fn chat_sandbox(
    config: &mut Config,
    extra_plan_lines: usize,
) -> (catalog_chatops::sandbox::SandboxHandle, tempfile::TempDir) {
    use catalog_chatops::sandbox::{self, World};
    let world = World::openverse_idle();
    world.lock().airflow.password.clear();
    let sb = sandbox::start(world).await.expect("sandbox");
    sb.configure(config);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("infra.justfile"),
        infra_justfile(extra_plan_lines),
    )
    .expect("write justfile");
    let target = config.targets.get_mut("catalog").expect("catalog target");
    target.workdir = dir.path().display().to_string();
    let just = |args: &[&str]| -> Vec<String> {
        ["just", "--justfile", "infra.justfile"]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    };
    target.bump = just(&["bump", "{version}"]);
    target.plan = just(&["plan"]);
    target.apply = just(&["apply"]);
    (sb, dir)
}

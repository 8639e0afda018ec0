//! Running it for real: the HTTP server (health, metrics, pages and their auth) against a deploy
//! made through `exec` in the sandbox world, the pages in headless Chromium, graceful shutdown
//! during a slow step, secrets kept out of logs, leader election and two replicas on Postgres.
//! Everything stays on loopback.

use crate::harness::Sbx;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use catalog_chatops::Engine;
use catalog_chatops::chat::Transcript;
use catalog_chatops::leader::Leadership;
use catalog_chatops::policy::Actor;
use catalog_chatops::server::{self, AppState, Readiness};
use catalog_chatops::store::{DeployState, Store};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");
/// Distinctive secret values: if any of them shows up in a page or a log, it leaked.
const AIRFLOW_SECRET: &str = "af-pw-Zq8LEAKCHECK-31337";
const GITHUB_SECRET: &str = "ghp_LEAKCHECKtoken0000111122223333";
const REGISTRY_SECRET: &str = "reg-pw-LEAKCHECK-9876";
/// Who makes and approves the deploys here.
const MAINTAINER: &[&str] = &["core-maintainer"];
const SERVER_TOKEN: &str = "server-token-LEAKCHECK-abcdef123456";

fn require(tool: &str) -> bool {
    support::require_tool(tool, "this test")
}

fn result(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON: {last}: {e}"))
}

/// A `serve` process and the address it reported.
struct Served {
    child: Child,
    url: String,
}

async fn serve(cmd: Command) -> Served {
    let (child, url) = support::spawn_listening(cmd, "serve").await;
    Served { child, url }
}

/// Makes deploy #1 through `exec`: alice starts it, bob approves, it succeeds.
async fn make_deploy(s: &Sbx) {
    let (r, _, code) = s
        .exec_code(("alice", MAINTAINER), "!deploy catalog v1.5.3")
        .await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("awaiting_approval"), 0),
        "{r}"
    );
    let (r, _, code) = s.exec_code(("bob", MAINTAINER), "!deploy approve 1").await;
    assert_eq!((r["outcome"].as_str(), code), (Some("ok"), 0), "{r}");
}

/// A minimal check of the Prometheus text format: comments, then `name{labels} value` samples
/// whose families were declared by `# TYPE`. Returns sample → value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, tail) = (parts.next(), parts.next(), parts.next());
            match kind {
                Some("TYPE") => {
                    let t = tail.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad type line: {line}"
                    );
                    types.insert(name.expect("type name").to_string(), t.to_string());
                }
                Some("HELP") => assert!(name.is_some(), "bad help line: {line}"),
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name = series.split('{').next().unwrap_or(series);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels: {line}"
            );
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(!k.is_empty() && !v.contains('\n'), "bad label: {line}");
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample without # TYPE: {line}");
        samples.insert(series.to_string(), value);
    }
    samples
}

/// The status `url` answers with.
async fn status(c: &reqwest::Client, url: String) -> reqwest::StatusCode {
    c.get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .status()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_when_commands_run() {
    let ts = support::sqlite().await;
    let config = support::config_with_store(&ts.url);
    let engine = Engine::new(config.clone(), ts.store.clone()).expect("engine");
    let readiness = Arc::new(Readiness::default());
    let state = Arc::new(AppState::new(
        Arc::new(config),
        ts.store.clone(),
        readiness.clone(),
    ));
    let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server::serve(listener, state, cancel.clone()));
    let c = http();

    assert_eq!(status(&c, format!("{base}/healthz")).await, 200);
    // Not ready until the front end says the chat is connected.
    assert_eq!(status(&c, format!("{base}/readyz")).await, 503);
    readiness.set_chat(true);
    assert_eq!(status(&c, format!("{base}/readyz")).await, 200);

    let scrape = || async {
        let text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        parse_prometheus(&text)
    };
    let help = "catalog_chatops_commands_total{command=\"help\",outcome=\"ok\"}";
    let errors = "catalog_chatops_upstream_errors_total{service=\"github\"}";
    let before = scrape().await;
    let actor = Actor::local("carol", &[], "carol");
    let conv = Transcript::new();
    for _ in 0..3 {
        engine
            .handle(&actor, "!help", &conv)
            .await
            .expect("addressed");
    }
    // Every upstream points at a closed loopback port: the check is blocked, the errors counted.
    let r = engine
        .handle(&actor, "!deploy check catalog v1.5.3", &conv)
        .await
        .expect("addressed");
    let after = scrape().await;
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(get(&after, help) - get(&before, help), 3.0, "{after:#?}");
    let check = format!(
        "catalog_chatops_commands_total{{command=\"deploy.check\",outcome=\"{}\"}}",
        r.outcome.as_str()
    );
    assert_eq!(
        get(&after, &check) - get(&before, &check),
        1.0,
        "{after:#?}"
    );
    assert!(get(&after, errors) > get(&before, errors), "{after:#?}");
    assert!(
        after.keys().any(|k| k.starts_with(
            "catalog_chatops_upstream_request_duration_seconds_bucket{service=\"github\""
        )),
        "{after:#?}"
    );
    cancel.cancel();
    task.await.expect("join").expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_a_deploy_made_through_exec_behind_a_token_and_in_chromium() {
    if !require("just") {
        return;
    }
    let s = Sbx::with_airflow_password(None, AIRFLOW_SECRET).await;
    make_deploy(&s).await;

    let mut cmd = s.cmd(&[]);
    cmd.env("CATALOG_CHATOPS__SERVER__BIND", "0.0.0.0:0")
        .env("SERVER_TOKEN", SERVER_TOKEN)
        .env("GITHUB_TOKEN", GITHUB_SECRET)
        .env("REGISTRY_PASSWORD", REGISTRY_SECRET);
    let mut served = serve(cmd).await;
    let port = served.url.rsplit(':').next().expect("port").to_string();
    let base = format!("http://127.0.0.1:{port}");
    let c = http();

    // Beyond loopback: health is open, pages and metrics need the token or a signed link.
    assert_eq!(status(&c, format!("{base}/healthz")).await, 200);
    assert_eq!(status(&c, format!("{base}/readyz")).await, 200);
    assert_eq!(status(&c, format!("{base}/")).await, 401);
    assert_eq!(status(&c, format!("{base}/metrics")).await, 401);
    let bad = c
        .get(format!("{base}/deploys/1"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), 401);
    let sig_for_2 = server::sign_path(SERVER_TOKEN, "/deploys/2");
    let wrong_path = c
        .get(format!("{base}/deploys/1?sig={sig_for_2}"))
        .send()
        .await
        .expect("wrong path");
    assert_eq!(
        wrong_path.status(),
        401,
        "a signature opens only its own page"
    );

    let page = |path: &'static str| {
        let c = c.clone();
        let base = base.clone();
        async move {
            let r = c
                .get(format!("{base}{path}"))
                .bearer_auth(SERVER_TOKEN)
                .send()
                .await
                .expect("page");
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.expect("body")
        }
    };
    let list = page("/").await;
    for want in [
        "catalog (prod)",
        "v1.5.3",
        "alice",
        "bob",
        "succeeded",
        "<svg",
    ] {
        assert!(list.contains(want), "list lacks {want}: {list}");
    }
    let one = page("/deploys/1").await;
    for want in [
        "Deploy #1 · catalog v1.5.3",
        "id=\"fingerprint\"",
        "1 to add, 1 to change, 1 to destroy",
        "release",
        "image",
        "DAG runs",
        "awaiting_approval",
        "just --justfile infra.justfile apply",
        "Apply complete",
    ] {
        assert!(one.contains(want), "deploy page lacks {want}: {one}");
    }
    let audit = page("/audit").await;
    assert!(audit.contains("Hash chain intact"), "{audit}");
    let locks = page("/locks").await;
    assert!(locks.contains("No locks are held."), "{locks}");
    for (name, body) in [
        ("list", &list),
        ("deploy", &one),
        ("audit", &audit),
        ("locks", &locks),
    ] {
        for secret in [AIRFLOW_SECRET, GITHUB_SECRET, REGISTRY_SECRET, SERVER_TOKEN] {
            assert!(!body.contains(secret), "the {name} page shows a secret");
        }
    }

    // The same pages in a real browser, opened through signed links (no header needed).
    if require("chromium") {
        // The README's screenshots are rewritten only on request, so a test run leaves the
        // checkout as it found it; otherwise they go to the test's temp dir.
        let shots = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
        } else {
            s.dir.path().join("screenshots")
        };
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        for (path, file, wants) in [
            (
                "/",
                "deploys.png",
                &["v1.5.3", "alice", "bob", "succeeded"][..],
            ),
            (
                "/deploys/1",
                "deploy-1.png",
                &["Deploy #1", "fingerprint", "Apply complete"][..],
            ),
        ] {
            let url = format!("{base}{path}?sig={}", server::sign_path(SERVER_TOKEN, path));
            let dom = chromium(&url, None).await;
            for want in wants {
                assert!(
                    dom.contains(want),
                    "chromium DOM of {path} lacks {want}: {dom}"
                );
            }
            for secret in [AIRFLOW_SECRET, GITHUB_SECRET, REGISTRY_SECRET, SERVER_TOKEN] {
                assert!(!dom.contains(secret), "chromium shows a secret on {path}");
            }
            let shot = shots.join(file);
            let _ = std::fs::remove_file(&shot);
            chromium(&url, Some(&shot)).await;
            let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
            assert!(
                len > 1000,
                "screenshot {} was saved ({len} bytes)",
                shot.display()
            );
        }
    }

    // SIGTERM stops serve cleanly.
    let pid = served.child.id().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let status = tokio::time::timeout(Duration::from_secs(10), served.child.wait())
        .await
        .expect("serve stopped")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

/// Runs headless Chromium on `url`: the rendered DOM, or a screenshot into `shot`.
async fn chromium(url: &str, shot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,1600",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match shot {
        Some(p) => c.arg(format!("--screenshot={}", p.display())),
        None => c.arg("--dump-dom"),
    };
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        c.arg(url).stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .expect("chromium finished in time")
    .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `!deploy` with a slow plan, waits for the plan step, sends SIGTERM.
async fn sigterm_during_plan(s: &Sbx, grace: &str, plan_seconds: &str) -> Value {
    let child = s
        .cmd(&[
            "exec",
            "--json",
            "--user",
            "alice",
            "--role",
            "core-maintainer",
            "!deploy catalog v1.5.3",
        ])
        .env("SANDBOX_PLAN_SECONDS", plan_seconds)
        .env("CATALOG_CHATOPS__DEPLOY__SHUTDOWN_GRACE", grace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let store = s.store().await;
    let mut at_plan = false;
    for _ in 0..400 {
        if let Ok(Some(d)) = store.get_deploy(1).await
            && d.state == DeployState::Plan
        {
            at_plan = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(at_plan, "the deploy reached the plan step");
    // Let the step actually start its process.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("exec ended after SIGTERM")
        .expect("wait");
    store.close().await;
    result(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_long_grace_lets_the_plan_finish() {
    if !require("just") {
        return;
    }
    let s = Sbx::with_airflow_password(None, AIRFLOW_SECRET).await;
    let r = sigterm_during_plan(&s, "60s", "3").await;
    assert_eq!(r["outcome"], "awaiting_approval", "{r}");
    let d = s
        .store()
        .await
        .get_deploy(1)
        .await
        .expect("get")
        .expect("deploy");
    assert_eq!(d.state, DeployState::AwaitingApproval);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_short_grace_records_the_deploy_interrupted() {
    if !require("just") {
        return;
    }
    let s = Sbx::with_airflow_password(None, AIRFLOW_SECRET).await;
    let r = sigterm_during_plan(&s, "1s", "30").await;
    // The 30 s plan was killed after the 1 s grace, not awaited: it never reached its end.
    let steps_log = std::fs::read_to_string(s.dir.path().join("infra/state/steps.log"))
        .expect("the infra stand-in's step log");
    assert!(steps_log.contains("plan start"), "{steps_log}");
    assert!(!steps_log.contains("plan end"), "{steps_log}");
    assert_eq!(r["outcome"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("interrupted"), "{msg}");
    let store = s.store().await;
    let d = store.get_deploy(1).await.expect("get").expect("deploy");
    assert_eq!(d.state, DeployState::Interrupted, "{d:?}");
    assert!(
        d.reason
            .as_deref()
            .unwrap_or("")
            .contains("shut down while plan ran"),
        "{d:?}"
    );
    // Never a silent loss: the journal says so and the lock stays for a maintainer.
    let steps = store.deploy_steps(1).await.expect("steps");
    assert!(
        steps
            .iter()
            .any(|st| st.step == "plan" && st.state == "interrupted"),
        "{steps:?}"
    );
    assert_eq!(store.list_locks().await.expect("locks").len(), 1);
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["json", "human"] {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalog-chatops.toml"))
            .args([
                "--log-format",
                format,
                "exec",
                "--json",
                "!deploy check catalog v1.5.3",
            ])
            .env(
                "CATALOG_CHATOPS__STORE__URL",
                format!("sqlite://{}/x.db", dir.path().display()),
            )
            .env("CATALOG_CHATOPS__GITHUB__API_URL", support::CLOSED)
            .env("CATALOG_CHATOPS__REGISTRY__URL", support::CLOSED)
            .env("CATALOG_CHATOPS__AIRFLOW__URL", support::CLOSED)
            .env("GITHUB_TOKEN", GITHUB_SECRET)
            .env("AIRFLOW_PASSWORD", AIRFLOW_SECRET)
            .env("REGISTRY_USERNAME", "bot")
            .env("REGISTRY_PASSWORD", REGISTRY_SECRET)
            .env("SERVER_TOKEN", SERVER_TOKEN)
            .env("RUST_LOG", "trace")
            .env_remove("CATALOG_CHATOPS_CONFIG")
            .output()
            .await
            .expect("exec");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(result(&out)["outcome"], "blocked", "{stdout}");
        assert!(
            stderr.lines().count() > 5,
            "trace logging produced lines: {stderr}"
        );
        if format == "json" {
            for line in stderr.lines() {
                let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("--log-format json wrote a non-JSON line: {line}: {e}")
                });
                assert!(v.get("level").is_some(), "{line}");
            }
        }
        for secret in [GITHUB_SECRET, AIRFLOW_SECRET, REGISTRY_SECRET, SERVER_TOKEN] {
            assert!(
                !stderr.contains(secret),
                "a secret reached the {format} log"
            );
            assert!(!stdout.contains(secret), "a secret reached stdout");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_among_contenders_and_failover_when_its_connection_dies() {
    let Some(url) = support::postgres_url().await else {
        return;
    };
    let poll = Duration::from_millis(200);
    let leaders = Arc::new(AtomicUsize::new(0));
    let gained = Arc::new(AtomicUsize::new(0));
    let mut contenders = Vec::new();
    for _ in 0..2 {
        let store = Store::open(&url).await.expect("open");
        store.migrate().await.expect("migrate");
        let cancel = CancellationToken::new();
        let (l, g) = (leaders.clone(), gained.clone());
        let task = tokio::spawn(Leadership::acquire_loop(
            store,
            "test/watchers",
            poll,
            move |lead: CancellationToken| {
                let (l, g) = (l.clone(), g.clone());
                async move {
                    l.fetch_add(1, Ordering::SeqCst);
                    g.fetch_add(1, Ordering::SeqCst);
                    lead.cancelled().await;
                    l.fetch_sub(1, Ordering::SeqCst);
                }
            },
            cancel.clone(),
        ));
        contenders.push((cancel, task));
    }
    let admin = Store::open(&url).await.expect("admin");
    // Exactly one leads, steadily.
    let deadline = Instant::now() + Duration::from_secs(5);
    while leaders.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        assert_eq!(leaders.load(Ordering::SeqCst), 1);
        tokio::time::sleep(poll / 2).await;
    }
    assert_eq!(gained.load(Ordering::SeqCst), 1);

    // Kill the leader's session, as a dead host or a cut network would.
    let killed: Vec<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN pg_terminate_backend(pid) THEN 1 ELSE 0 END::bigint FROM pg_locks \
         WHERE locktype = 'advisory' AND granted AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(admin.pool())
    .await
    .expect("terminate");
    assert_eq!(killed, vec![1], "one session held the lock");
    let deadline = Instant::now() + poll * 10;
    while gained.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gained.load(Ordering::SeqCst),
        2,
        "leadership moved within a few polls"
    );
    tokio::time::sleep(poll * 2).await;
    assert_eq!(
        leaders.load(Ordering::SeqCst),
        1,
        "still exactly one leader"
    );

    for (cancel, task) in contenders {
        cancel.cancel();
        task.await.expect("join");
    }
    assert_eq!(leaders.load(Ordering::SeqCst), 0);
}

async fn leader_gauge(c: &reqwest::Client, url: &str) -> Option<f64> {
    let text = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    parse_prometheus(&text)
        .get("catalog_chatops_leader")
        .copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_handle_each_message_once_and_fail_over_the_watchers() {
    let Some(url) = support::postgres_url().await else {
        return;
    };
    let s = Sbx::with_airflow_password(Some(url.clone()), AIRFLOW_SECRET).await;
    let replica = || {
        let mut c = s.cmd(&[]);
        c.env("CATALOG_CHATOPS__SERVER__BIND", "127.0.0.1:0")
            .env("CATALOG_CHATOPS__DEPLOY__LEASE", "1s");
        c
    };
    // Migrate once first so the two replicas do not race on the schema.
    let m = s.cmd(&["migrate"]).output().await.expect("migrate");
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    let mut a = serve(replica()).await;
    let mut b = serve(replica()).await;

    // The same 50 messages delivered to both: each is handled once.
    let mut skipped = 0;
    for i in 0..50 {
        let key = format!("discord:msg:{i}");
        let one = s
            .cmd(&[
                "exec",
                "--json",
                "--claim",
                &key,
                "--user",
                "carol",
                "!help deploy",
            ])
            .output();
        let two = s
            .cmd(&[
                "exec",
                "--json",
                "--claim",
                &key,
                "--user",
                "carol",
                "!help deploy",
            ])
            .output();
        let (one, two) = tokio::join!(one, two);
        for out in [one.expect("exec"), two.expect("exec")] {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if result(&out)["claimed"] == false {
                skipped += 1;
            }
        }
    }
    assert_eq!(skipped, 50, "every second delivery was skipped");
    let store = s.store().await;
    assert_eq!(store.count_audit("command").await.expect("count"), 50);

    // Exactly one replica leads the watchers; killing it moves them to the other.
    let c = http();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut ga, mut gb) = (None, None);
    while Instant::now() < deadline {
        ga = leader_gauge(&c, &a.url).await;
        gb = leader_gauge(&c, &b.url).await;
        if ga.unwrap_or(0.0) + gb.unwrap_or(0.0) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ga.unwrap_or(0.0) + gb.unwrap_or(0.0),
        1.0,
        "one leader: {ga:?} {gb:?}"
    );
    let (leader, other) = if ga == Some(1.0) {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    leader.child.start_kill().expect("kill -9 the leader");
    leader.child.wait().await.expect("reaped");
    let killed_at = Instant::now();
    let mut took_over = false;
    // The lease is 1 s (poll a third of it); Postgres notices the dead session at once on
    // loopback. Allow a few intervals.
    while killed_at.elapsed() < Duration::from_secs(5) {
        if leader_gauge(&c, &other.url).await == Some(1.0) {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(took_over, "the other replica took over the watchers");
    eprintln!("failover took {:?}", killed_at.elapsed());
    store.close().await;
}

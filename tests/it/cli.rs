//! The binary as operators and scripts use it: `exec --json` outcomes and exit codes, `audit`,
//! `migrate`, `check-config`, and appends from concurrent processes.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_catalog-chatops");

struct Env {
    dir: tempfile::TempDir,
    store_url: String,
}

impl Env {
    /// A fresh store: SQLite, or Postgres with `TEST_STORE=postgres`.
    fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_url = support::store_url_blocking(&dir.path().join("data"));
        Env { dir, store_url }
    }

    fn config(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalog-chatops.toml")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.config())
            .args(args)
            .env("CATALOG_CHATOPS__STORE__URL", &self.store_url)
            .env("CATALOG_CHATOPS__GITHUB__API_URL", support::CLOSED)
            .env("CATALOG_CHATOPS__REGISTRY__URL", support::CLOSED)
            .env("CATALOG_CHATOPS__AIRFLOW__URL", support::CLOSED)
            .env_remove("CATALOG_CHATOPS_CONFIG")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run binary")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn result(o: &Output) -> Value {
    let lines = json_lines(o);
    let last = lines.last().cloned().expect("a result line");
    assert_eq!(last["type"], "result", "{lines:?}");
    last
}

#[test]
fn denied_deploy_exits_1_and_is_in_the_audit_log_with_the_reason() {
    let env = Env::sqlite();
    let out = env.run(&[
        "exec",
        "--user",
        "alice",
        "--role",
        "contributor",
        "--json",
        "!deploy catalog v1.2.3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let r = result(&out);
    assert_eq!(r["outcome"], "denied");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("`deploy.start`"),
        "{r}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["type"], "message");
    assert_eq!(lines[0]["text"], r["message"]);

    let list = env.run(&["audit", "list"]);
    assert_eq!(list.status.code(), Some(0));
    let text = stdout(&list);
    let line = text.lines().next().expect("one event");
    assert!(line.contains("alice"), "{line}");
    assert!(line.contains("roles=[contributor]"), "{line}");
    assert!(line.contains("decision=denied outcome=denied"), "{line}");
    assert!(line.contains("!deploy catalog v1.2.3"), "{line}");
    assert!(
        line.contains("reason: You need the `deploy.start` permission"),
        "{line}"
    );
}

/// `exec --json text` exits 2 with outcome `invalid` and a message that contains `says`.
fn assert_invalid(text: &str, says: &str) {
    let env = Env::sqlite();
    let out = env.run(&["exec", "--json", text]);
    assert_eq!(out.status.code(), Some(2));
    let r = result(&out);
    assert_eq!(r["outcome"], "invalid");
    assert!(r["message"].as_str().unwrap_or("").contains(says), "{r}");
}

#[test]
fn a_typo_is_invalid_exit_2_and_suggests_the_command() {
    assert_invalid("!deplyo catalog v1.2.3", "Did you mean `!deploy`?");
}

#[test]
fn an_unknown_target_is_invalid_and_names_the_known_ones() {
    assert_invalid("!deploy catalgo v1.2.3", "`catalog`");
}

#[test]
fn plain_output_and_terminal_shorthand() {
    let env = Env::sqlite();
    // On a terminal the prefix may be left out.
    let out = env.run(&["exec", "locks"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "No locks are held: a deploy may start.\n");
    let out = env.run(&["exec", "!deploy check catalog v1.2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("is not a release version"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn audit_verify_passes_fresh_and_names_an_altered_event() {
    let env = Env::sqlite();
    let fresh = env.run(&["audit", "verify"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", stdout(&fresh));
    assert!(stdout(&fresh).contains("Audit log intact: 0 event(s)"));

    for text in ["!help", "!locks", "!audit 2"] {
        assert_eq!(env.run(&["exec", text]).status.code(), Some(0));
    }
    let ok = env.run(&["audit", "verify"]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(
        stdout(&ok).contains("Audit log intact: 3 event(s), hash chain verified."),
        "{}",
        stdout(&ok)
    );

    // Alter event 3 by hand, as someone with write access to the file could.
    let url = env.store_url.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = catalog_chatops::store::Store::open(&url)
            .await
            .expect("open");
        let drops: &[&str] = if url.starts_with("postgres") {
            &["DROP TRIGGER audit_events_no_update ON audit_events"]
        } else {
            &[
                "DROP TRIGGER audit_events_no_update",
                "DROP TRIGGER audit_events_no_delete",
            ]
        };
        for s in drops {
            sqlx::query(*s)
                .execute(store.pool())
                .await
                .expect("drop trigger");
        }
        sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
            .execute(store.pool())
            .await
            .expect("tamper");
        store.close().await;
    });
    let broken = env.run(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stdout(&broken)
            .contains("Audit log BROKEN at event #3: its content does not match its hash"),
        "{}",
        stdout(&broken)
    );
}

#[test]
fn audit_export_is_json_lines_in_chain_order() {
    let env = Env::sqlite();
    env.run(&["exec", "!help"]);
    env.run(&["exec", "!nope"]);
    env.run(&[
        "exec",
        "--role",
        "core-maintainer",
        "!deploy catalog v1.2.3",
    ]);
    let out = env.run(&["audit", "export"]);
    assert_eq!(out.status.code(), Some(0));
    let events = json_lines(&out);
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    assert_eq!(events[0]["outcome"], "ok");
    assert_eq!(events[1]["decision"], "invalid");
    assert_eq!(events[2]["decision"], "allowed");
    assert_eq!(events[3]["kind"], "result");
}

#[test]
fn concurrent_exec_processes_keep_one_chain() {
    let env = Env::sqlite();
    // Create and migrate first, as an operator's `migrate` would.
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    let children: Vec<_> = (0..12)
        .map(|i| {
            env.cmd(&["exec", "--user", &format!("user{i}"), "!locks"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let out = env.run(&["audit", "verify"]);
    assert!(
        stdout(&out).contains("Audit log intact: 12 event(s)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn migrate_reports_what_it_applied() {
    let env = Env::sqlite();
    let first = env.run(&["migrate"]);
    assert_eq!(first.status.code(), Some(0));
    // Every migration in migrations/sqlite, counted rather than listed, so a new one does not
    // break this test.
    let all = (1..=crate::support::store_migrations())
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        stdout(&first).starts_with(&format!("Applied migrations {all} to ")),
        "{}",
        stdout(&first)
    );
    let again = env.run(&["migrate"]);
    assert!(
        stdout(&again).starts_with("The store is up to date"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn check_config_reports_every_problem_at_once() {
    let env = Env::sqlite();
    let ok = env.run(&["check-config"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout(&ok).contains("is valid: targets catalog"));

    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[chat]\nprefx = \"!\"\n[airflow]\napi = \"v3\"\n[targets.catalog]\nrepo = \"WordPress/openverse-catalog\"\n\
         image = \"wordpress/openverse-catalog\"\nworkdir = \".\"\nbump = []\nplan = [\"just\", \"plan\"]\n\
         apply = [\"just\", \"apply\"]\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&bad)
        .arg("check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("targets.catalog.bump: must be a non-empty list of strings"),
        "{err}"
    );
    assert!(err.contains("airflow.api"), "{err}");
    assert!(err.contains("chat.prefx"), "{err}");
}

#[test]
fn run_says_what_is_missing_before_connecting() {
    let env = Env::sqlite();
    let out = env
        .cmd(&["run"])
        .env_remove("DISCORD_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: DISCORD_TOKEN is not set"), "{err}");

    // The shipped config leaves guild_id to the operator.
    let out = env
        .cmd(&["run"])
        .env("DISCORD_TOKEN", "some-token-value")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: [discord] guild_id is not set"),
        "{err}"
    );
    assert!(!err.contains("some-token-value"));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/cc.toml", "check-config"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cc.toml"));
}

#[tokio::test]
async fn exec_against_postgres() {
    let Some(url) = support::postgres_url().await else {
        return;
    };
    let env = Env {
        dir: tempfile::tempdir().expect("tempdir"),
        store_url: url,
    };
    let out = env.run(&[
        "exec",
        "--user",
        "alice",
        "--role",
        "contributor",
        "--json",
        "!deploy catalog v1.2.3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result(&out)["outcome"], "denied");
    let out = env.run(&["audit", "verify"]);
    assert!(
        stdout(&out).contains("Audit log intact: 1 event(s)"),
        "{}",
        stdout(&out)
    );
}

//! Today's Openverse deploy end to end, through `exec --json` with the shipped configs: the
//! sandbox world with monorepo releases (a published `catalog-…`, a newer draft, `rel-…` images,
//! an Airflow 2.9-style `/api/v1`), the infra stand-in (`sandbox/ansible-infra/`) and a REAL
//! `ansible-playbook` (ansible-core, `bash scripts/ansible-venv.sh`) running the stand-in's
//! playbook against localhost (`connection: local`), which writes the image tag into the
//! "Airflow host"'s environment file as the real playbook writes the group variables out.
//!
//! Also the seed-era example (`config/examples/openverse-catalog-2022.toml`, the Terraform flow)
//! walked through the same way, and versions typed as tags.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use catalog_chatops::sandbox::{self, SandboxHandle, World};
use serde_json::Value;
use tokio::process::Command;

const ALICE: (&str, &[&str]) = ("alice", &["core-maintainer"]);
const BOB: (&str, &[&str]) = ("bob", &["core-maintainer"]);
const NEWEST: &str = "2026.11.30.10.00.00";
const DEPLOYED_BEFORE: &str =
    "AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-2023.07.03.17.52.00";

/// The real `ansible-playbook`: `ANSIBLE_PLAYBOOK`, else the venv of `scripts/ansible-venv.sh`,
/// else `PATH`. Missing: a panic in CI, a printed skip elsewhere.
fn ansible_playbook() -> Option<PathBuf> {
    let candidates = std::env::var_os("ANSIBLE_PLAYBOOK")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| {
            Path::new(&h).join(".cache/catalog-chatops-ansible-venv/bin/ansible-playbook")
        }))
        .chain(std::iter::once(PathBuf::from("ansible-playbook")));
    for c in candidates {
        let ok = std::process::Command::new(&c)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(c);
        }
    }
    if support::in_ci() {
        panic!(
            "ansible-playbook is required in CI for the Ansible flow tests: run \
             `bash scripts/ansible-venv.sh` and export ANSIBLE_PLAYBOOK"
        );
    }
    eprintln!(
        "skipping the Ansible flow test: no ansible-playbook (ANSIBLE_PLAYBOOK, \
         ~/.cache/catalog-chatops-ansible-venv, PATH); `bash scripts/ansible-venv.sh` installs one"
    );
    None
}

/// One world, one store, one infra stand-in, and the config file the binary runs with.
struct Openverse {
    world: SandboxHandle,
    dir: tempfile::TempDir,
    store_url: String,
    config: &'static str,
    ansible: Option<PathBuf>,
}

impl Openverse {
    /// `config` relative to the repository; the Airflow speaks `/api/v1` (production's 2.9).
    async fn start(config: &'static str, ansible: Option<PathBuf>) -> Openverse {
        let world = World::openverse_idle();
        world.lock().airflow.as_airflow2();
        let world = sandbox::start(world).await.expect("sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        sandbox::session::write_infra(&dir.path().join("infra")).expect("infra stand-in");
        let store_url = support::store_url(dir.path()).await;
        Openverse {
            world,
            dir,
            store_url,
            config,
            ansible,
        }
    }

    fn infra(&self, path: &str) -> PathBuf {
        self.dir.path().join("infra").join(path)
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.infra(path)).unwrap_or_default()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_catalog-chatops"));
        c.arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(self.config))
            .env("CATALOG_CHATOPS__STORE__URL", &self.store_url)
            .env("CATALOG_CHATOPS__GITHUB__API_URL", &self.world.github_url)
            .env("CATALOG_CHATOPS__REGISTRY__URL", &self.world.registry_url)
            .env("CATALOG_CHATOPS__AIRFLOW__URL", &self.world.airflow_url)
            .env(
                "CATALOG_CHATOPS__TARGETS__CATALOG__WORKDIR",
                self.dir.path().join("infra"),
            )
            .env("AIRFLOW_PASSWORD", "sandbox")
            // ansible-core refuses a locale that is not UTF-8.
            .env("LANG", "C.UTF-8")
            .env_remove("ANSIBLE_PLAYBOOK")
            .env_remove("CATALOG_CHATOPS_CONFIG")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        if let Some(a) = &self.ansible {
            c.env("ANSIBLE_PLAYBOOK", a);
        }
        c
    }

    async fn exec(&self, (user, roles): (&str, &[&str]), text: &str) -> (Value, String, i32) {
        let mut c = self.cmd();
        c.args(["exec", "--json", "--user", user]);
        for r in roles {
            c.args(["--role", r]);
        }
        c.arg(text);
        parse(&c.output().await.expect("exec"))
    }
}

/// The result line, every posted text joined, and the exit code.
fn parse(out: &Output) -> (Value, String, i32) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let result = lines.last().cloned().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(result["type"], "result", "{stdout}");
    let text = lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    (result, text, out.status.code().unwrap_or(-1))
}

fn outcome(r: &Value) -> &str {
    r["outcome"].as_str().unwrap_or("")
}

/// `!deploy catalog latest` as alice with today's config, up to the approval.
async fn planned(o: &Openverse) -> String {
    let (r, text, code) = o.exec(ALICE, "!deploy catalog latest").await;
    assert_eq!((outcome(&r), code), ("awaiting_approval", 0), "{r}\n{text}");
    assert_eq!(r["deploy_id"], 1);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_config_deploys_with_the_real_playbook_after_a_second_dry_run() {
    let Some(ansible) = ansible_playbook() else {
        return;
    };
    let o = Openverse::start("config/catalog-chatops.toml", Some(ansible)).await;
    assert_eq!(
        o.read("state/host/airflow.env").lines().next(),
        Some(DEPLOYED_BEFORE)
    );

    let text = planned(&o).await;
    // Preflight resolved `latest` to the newest published catalog release (not the newer draft,
    // not the newer frontend release) and found its rel- image.
    assert!(
        text.contains(&format!("Preflight for catalog latest ({NEWEST}):")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "✅ image: `wordpress/openverse-catalog:rel-{NEWEST}` → sha256:"
        )),
        "{text}"
    );
    // The runbook's commands ran, the dry run is the plan, named per host with its diff.
    assert!(
        text.contains("running bump: `just bump production airflow`"),
        "{text}"
    );
    assert!(
        text.contains(
            "running plan: `just ansible/playbook production airflow.yml -t airflow --check --diff`"
        ),
        "{text}"
    );
    assert!(
        text.contains("📋 Deploy #1 plan: Dry run: 1 changed task on 1 host\n• localhost: `Write the Airflow environment file`"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "+AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-{NEWEST}"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("-{DEPLOYED_BEFORE}")), "{text}");
    assert!(
        o.read("ansible/inventory/production/group_vars/airflow.yml")
            .contains(&format!("catalog_image_tag: \"rel-{NEWEST}\""))
    );
    // The dry run changed nothing on the host.
    assert_eq!(
        o.read("state/host/airflow.env").lines().next(),
        Some(DEPLOYED_BEFORE)
    );

    // The card names the changed task per host and shows the diff.
    let store = catalog_chatops::store::Store::open(&o.store_url)
        .await
        .expect("store");
    let card = catalog_chatops::deploy::card::build(&store, 1, 1)
        .await
        .expect("card")
        .expect("deploy 1");
    let plan_line = card
        .lines
        .iter()
        .find(|l| l.contains(" plan: "))
        .unwrap_or_else(|| panic!("{:?}", card.lines));
    assert!(
        plan_line.contains(
            "Dry run: 1 changed task on 1 host\n• localhost: `Write the Airflow environment file`"
        ) && plan_line.contains(&format!(
            "+AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-{NEWEST}"
        )),
        "{plan_line}"
    );
    store.close().await;

    // The requester cannot approve.
    let (r, _, code) = o.exec(ALICE, "!deploy approve 1").await;
    assert_eq!((outcome(&r), code), ("denied", 1), "{r}");
    assert!(!o.read("state/steps.log").contains("airflow_apply=true"));

    let (r, text, code) = o.exec(BOB, "!deploy approve 1").await;
    assert_eq!((outcome(&r), code), ("ok", 0), "{r}\n{text}");
    assert!(text.contains("running dry_run: `just ansible/playbook production airflow.yml -t airflow --check --diff`"), "{text}");
    assert!(
        text.contains("🔁 Deploy #1: the dry run again has the approved fingerprint"),
        "{text}"
    );
    assert!(text.contains("running apply: `just ansible/playbook production airflow.yml -t airflow --diff -e airflow_apply=true`"), "{text}");
    assert!(
        text.contains(
            "📦 Deploy #1: the playbook applied (localhost changed=2 failed=0 unreachable=0)."
        ),
        "{text}"
    );
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&format!(
            "Deploy #1 succeeded: catalog {NEWEST} is live in production"
        )),
        "{msg}"
    );
    // The host holds the new tag, and the playbook ran dry, dry again, then for real.
    assert_eq!(
        o.read("state/host/airflow.env").lines().next(),
        Some(format!("AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-{NEWEST}").as_str())
    );
    let runs: Vec<String> = o
        .read("state/steps.log")
        .lines()
        .filter(|l| l.starts_with("playbook start"))
        .map(|l| {
            l.split_once(' ')
                .map(|(_, r)| r)
                .unwrap_or("")
                .split_once(' ')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs[0].ends_with("-t airflow --check --diff")
            && runs[1].ends_with("-t airflow --check --diff"),
        "{runs:?}"
    );
    assert!(runs[2].ends_with("-e airflow_apply=true"), "{runs:?}");
    // The journal keeps the second dry run as its own step.
    let out = o
        .cmd()
        .args(["audit", "verify"])
        .output()
        .await
        .expect("audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_changed_after_approval_fails_before_apply_and_changes_nothing() {
    let Some(ansible) = ansible_playbook() else {
        return;
    };
    let o = Openverse::start("config/catalog-chatops.toml", Some(ansible)).await;
    planned(&o).await;
    // Someone changes a group variable between approval and apply.
    let vars = o.infra("ansible/inventory/production/group_vars/airflow.yml");
    let text = std::fs::read_to_string(&vars).unwrap();
    std::fs::write(
        &vars,
        text.replace("airflow_workers: 4", "airflow_workers: 8"),
    )
    .unwrap();

    let (r, text, code) = o.exec(BOB, "!deploy approve 1").await;
    assert_eq!((outcome(&r), code), ("failed", 1), "{r}\n{text}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("failed at dry_run: plan changed since approval"),
        "{msg}"
    );
    assert!(msg.contains("nothing was applied"), "{msg}");
    assert!(
        text.contains("+AIRFLOW__CELERY__WORKER_CONCURRENCY=8"),
        "{text}"
    );
    // Nothing applied: the host's file is as before and apply never ran.
    assert_eq!(
        o.read("state/host/airflow.env").lines().next(),
        Some(DEPLOYED_BEFORE)
    );
    assert!(!o.read("state/steps.log").contains("airflow_apply=true"));
    let (r, _, _) = o.exec(BOB, "!locks").await;
    assert!(
        !r["message"]
            .as_str()
            .unwrap_or("")
            .contains("catalog/production"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_fails_the_deploy_naming_it() {
    let Some(ansible) = ansible_playbook() else {
        return;
    };
    let o = Openverse::start("config/catalog-chatops.toml", Some(ansible)).await;
    planned(&o).await;
    // Airflow will not come back after the restart: only the apply runs that check.
    std::fs::write(o.infra("state/fail-apply"), "").unwrap();
    let (r, text, code) = o.exec(BOB, "!deploy approve 1").await;
    assert_eq!((outcome(&r), code), ("failed", 1), "{r}\n{text}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(
            "failed at apply: the playbook failed at task `Check that Airflow answers` on \
             localhost: Airflow did not answer on its health endpoint after the restart"
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ansible_sandbox_config_deploys_a_version_typed_as_its_tag() {
    let Some(ansible) = ansible_playbook() else {
        return;
    };
    let o = Openverse::start("config/sandbox-ansible.toml", Some(ansible)).await;
    let (r, text, code) = o
        .exec(ALICE, &format!("!deploy catalog catalog-{NEWEST}"))
        .await;
    assert_eq!((outcome(&r), code), ("awaiting_approval", 0), "{r}\n{text}");
    assert!(
        text.contains(&format!(
            "running bump: `just bump production airflow {NEWEST}`"
        )),
        "{text}"
    );
    assert!(
        text.contains("📦 ships: unknown — no earlier successful deploy"),
        "{text}"
    );
    let (r, text, code) = o.exec(BOB, "!deploy approve 1").await;
    assert_eq!((outcome(&r), code), ("ok", 0), "{r}\n{text}");
    assert!(
        o.read("state/host/airflow.env")
            .contains(&format!(":rel-{NEWEST}"))
    );

    // Back to the 2023 release, then forward again: the card says what the new release ships,
    // from the sandbox's tags and history (five catalog commits, not the frontend ones).
    let (r, text, _) = o.exec(ALICE, "!deploy catalog 2023.07.03.17.52.00").await;
    assert_eq!(outcome(&r), "awaiting_approval", "{r}\n{text}");
    assert!(text.contains("📦 ships: nothing new"), "{text}");
    let (r, text, _) = o.exec(BOB, "!deploy approve 2").await;
    assert_eq!(outcome(&r), "ok", "{r}\n{text}");
    let (r, text, _) = o.exec(ALICE, &format!("!deploy catalog {NEWEST}")).await;
    assert_eq!(outcome(&r), "awaiting_approval", "{r}\n{text}");
    assert!(
        text.contains("📦 ships: 5 commits touching `catalog/` since `catalog-2023.07.03.17.52.00` (7 commits in all):"),
        "{text}"
    );
    assert!(
        text.contains("Retry iNaturalist downloads on 503 (#4106)"),
        "{text}"
    );
    assert!(!text.contains("Frontend: fix header overlap"), "{text}");
}

/// Versions typed as tags, `latest`, a draft and a missing image, with today's config: preflight
/// only, so no playbook is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_resolve_alike_whichever_tag_is_typed() {
    let o = Openverse::start("config/catalog-chatops.toml", None).await;
    let mut answers = Vec::new();
    for typed in [
        NEWEST.to_string(),
        format!("catalog-{NEWEST}"),
        format!("rel-{NEWEST}"),
    ] {
        let (r, _, code) = o
            .exec(("carol", &[]), &format!("!deploy check catalog {typed}"))
            .await;
        assert_eq!((outcome(&r), code), ("ok", 0), "{typed}: {r}");
        answers.push(r["message"].as_str().unwrap_or("").to_string());
    }
    assert!(
        answers[0].starts_with(&format!("Preflight for catalog {NEWEST}:")),
        "{}",
        answers[0]
    );
    assert!(
        answers[0].contains(&format!("✅ release: `catalog-{NEWEST}`")),
        "{}",
        answers[0]
    );
    assert!(
        answers[0].contains(&format!(
            "✅ image: `wordpress/openverse-catalog:rel-{NEWEST}` → sha256:"
        )),
        "{}",
        answers[0]
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");

    // `latest` is the newest published catalog release.
    let (r, _, _) = o.exec(("carol", &[]), "!deploy check catalog latest").await;
    assert_eq!(outcome(&r), "ok", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("Preflight for catalog latest ({NEWEST}):")),
        "{r}"
    );

    // A published release without its rel- image blocks, naming the image.
    let (r, _, code) = o
        .exec(
            ("carol", &[]),
            "!deploy check catalog rel-2026.11.16.12.00.00",
        )
        .await;
    assert_eq!((outcome(&r), code), ("blocked", 1), "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains("❌ image: no image `wordpress/openverse-catalog:rel-2026.11.16.12.00.00` on the registry"), "{msg}");
    // The newer draft is not deployable (without a token GitHub does not even show it).
    let (r, _, _) = o
        .exec(
            ("carol", &[]),
            "!deploy check catalog catalog-2026.12.01.09.00.00",
        )
        .await;
    assert_eq!(outcome(&r), "blocked", "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains("❌ release: "),
        "{r}"
    );
    // Another app's tag is not a catalog version.
    let (r, _, code) = o
        .exec(
            ("carol", &[]),
            "!deploy check catalog frontend-2026.11.30.15.20.00",
        )
        .await;
    assert_eq!((outcome(&r), code), ("invalid", 2), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("`catalog-<version>` or `rel-<version>`"),
        "{r}"
    );
}

/// The seed-era example: semver releases of the archived repository, the Terraform flow, and
/// the runbook's `just bump/plan/apply prod catalog-airflow` (the stand-in's bump picks v1.5.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2022_example_deploys_with_the_terraform_flow() {
    if !support::require_tool("just", "the 2022 example's end-to-end test") {
        return;
    }
    let o = Openverse::start("config/examples/openverse-catalog-2022.toml", None).await;
    let (r, text, code) = o.exec(ALICE, "!deploy catalog latest").await;
    assert_eq!((outcome(&r), code), ("awaiting_approval", 0), "{r}\n{text}");
    assert!(
        text.contains("Preflight for catalog latest (v1.5.3):"),
        "{text}"
    );
    assert!(
        text.contains("running bump: `just bump prod catalog-airflow`"),
        "{text}"
    );
    assert!(
        text.contains("running plan: `just plan prod catalog-airflow`"),
        "{text}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Plan ready: 1 to add, 1 to change, 1 to destroy."),
        "{r}"
    );
    let (r, _, _) = o.exec(ALICE, "!deploy approve 1").await;
    assert_eq!(outcome(&r), "denied", "{r}");
    let (r, text, code) = o.exec(BOB, "!deploy approve 1").await;
    assert_eq!((outcome(&r), code), ("ok", 0), "{r}\n{text}");
    assert!(text.contains("(the bot answered: yes)"), "{text}");
    assert_eq!(o.read("state/deployed").trim(), "v1.5.3");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("catalog v1.5.3 is live in prod"),
        "{r}"
    );
}

/// `sandbox --flow ansible` without ansible-playbook stops before starting anything and says how
/// to get one.
#[test]
fn the_ansible_sandbox_says_how_to_get_ansible_playbook() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalog-chatops"))
        .args(["sandbox", "--flow", "ansible"])
        .env("ANSIBLE_PLAYBOOK", "/nonexistent/ansible-playbook")
        .env_remove("CATALOG_CHATOPS_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sandbox");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "ANSIBLE_PLAYBOOK is /nonexistent/ansible-playbook, which is not an executable file."
        ) && err.contains("`bash scripts/ansible-venv.sh`"),
        "{err}"
    );
    // Asking for the Terraform flow with the Ansible config is refused with a sentence.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalog-chatops"))
        .args([
            "--config",
            "config/sandbox-ansible.toml",
            "sandbox",
            "--flow",
            "terraform",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sandbox");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--flow terraform but target catalog"),
        "{out:?}"
    );
}

//! The infrastructure checkout as git sees it (issue 14, items 4–6), end to end through
//! `exec --json` with a real `just` and a real `git` on loopback: the sandbox's fake GitHub holds
//! monorepo-style catalog releases over a realistic `main`, the infra workdir is a git checkout
//! whose `bump` recipe takes no version and picks its own (`tests/fixtures/infra-git.justfile`),
//! and its `origin` is a local bare repository.
//!
//! - the bump is verified in `git diff`: another tag, or none, stops the deploy before the plan;
//! - the card lists what ships: the catalog's commits between the deployed release and the new
//!   one (at most 20, then the compare link);
//! - after success the bump is pushed on `chatops/deploy-<id>-<version>` and the pull request is
//!   opened; a refused push is reported and the deploy stays succeeded.

use std::path::{Path, PathBuf};

use catalog_chatops::sandbox::{self, IMAGE, SimCommit, SimRelease, SimTag, World};
use catalog_chatops::store::{DeployState, Store};
use serde_json::Value;
use tokio::process::Command;

use crate::harness::{self, Sbx};
use crate::support;

const MONOREPO: &str = "WordPress/openverse";
const INFRA_REPO: &str = "WordPress/openverse-infrastructure";
/// The release deployed first, the one deployed next, and a newer one published meanwhile.
const A: &str = "2026.11.16.10.00.00";
const B: &str = "2026.11.30.10.00.00";
const C: &str = "2026.12.01.07.00.00";
/// Catalog commits between A and B (more than the card shows) and the others beside them.
const CATALOG_BETWEEN: usize = 25;
const OTHER_BETWEEN: usize = 10;

const ALICE: (&str, &[&str]) = ("alice", &["core-maintainer"]);
const BOB: (&str, &[&str]) = ("bob", &["core-maintainer"]);

fn tools() -> bool {
    support::require_tool("just", "the infra checkout tests")
        && support::require_tool("git", "the infra checkout tests")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A realistic `main` of the monorepo: catalog work (DAGs, tests, requirements) between frontend,
/// API and documentation commits, squash-merged with the PR number in the subject.
fn monorepo_history() -> (Vec<SimCommit>, Vec<SimTag>) {
    const CATALOG: [(&str, &str, &str); 8] = [
        (
            "Add the Smithsonian unit code check to the catalog",
            "stacimc",
            "catalog/dags/providers/provider_api_scripts/smithsonian.py",
        ),
        (
            "Retry iNaturalist downloads on 503",
            "AetherUnbound",
            "catalog/dags/providers/provider_api_scripts/inaturalist.py",
        ),
        (
            "Lower the Europeana batch size",
            "obulat",
            "catalog/dags/providers/provider_api_scripts/europeana.py",
        ),
        (
            "Bump apache-airflow to 2.9.3 in the catalog",
            "openverse-bot",
            "catalog/requirements-prod.txt",
        ),
        (
            "Fix the data refresh sensor timeout",
            "stacimc",
            "catalog/dags/data_refresh/data_refresh_task_factory.py",
        ),
        (
            "Add tests for the Flickr sub-provider split",
            "sarayourfriend",
            "catalog/tests/dags/providers/provider_api_scripts/test_flickr.py",
        ),
        (
            "Batched update: log the number of updated rows",
            "AetherUnbound",
            "catalog/dags/database/batched_update/batched_update.py",
        ),
        (
            "Remove the retired Rawpixel provider DAG",
            "zackkrida",
            "catalog/dags/providers/provider_workflows.py",
        ),
    ];
    const OTHER: [(&str, &str, &str); 4] = [
        (
            "Frontend: fix the header overlap on small screens",
            "dhruvkb",
            "frontend/src/components/VHeader/VHeader.vue",
        ),
        (
            "API: cache the related-media query",
            "krysal",
            "api/api/views/media_views.py",
        ),
        (
            "Docs: update the catalog deployment runbook",
            "AetherUnbound",
            "documentation/meta/release_and_deployment/runbooks/catalog.md",
        ),
        (
            "Bump the frontend dependencies",
            "openverse-bot",
            "frontend/package.json",
        ),
    ];
    let mut commits = Vec::new();
    let mut push = |(subject, author, file): (&str, &str, &str), n: usize| {
        commits.push(SimCommit {
            repo: MONOREPO.to_string(),
            sha: sandbox::sim_sha(10_000 + n),
            message: format!(
                "{subject} (#{})\n\nCo-authored-by: {author} <{author}@users.noreply.github.com>",
                5000 + n
            ),
            author_login: author.to_string(),
            date: format!("2026-11-{:02}T{:02}:00:00Z", 16 + n / 24, n % 24),
            files: vec![file.to_string()],
        });
    };
    // The commit release A was cut from.
    push(CATALOG[0], 0);
    // Between A and B: two other commits in every seven, the last one the catalog's.
    let mut n = 1;
    let (mut cat, mut other) = (0, 0);
    for i in 0..CATALOG_BETWEEN + OTHER_BETWEEN {
        if i % 7 == 2 || i % 7 == 5 {
            push(OTHER[other % OTHER.len()], n);
            other += 1;
        } else {
            push(CATALOG[cat % CATALOG.len()], n);
            cat += 1;
        }
        n += 1;
    }
    assert_eq!((cat, other), (CATALOG_BETWEEN, OTHER_BETWEEN));
    let b_index = n - 1;
    // After B: two more commits, release C on the second.
    push(OTHER[0], n);
    push(CATALOG[1], n + 1);
    let c_index = n + 1;
    let tag = |v: &str, i: usize| SimTag {
        repo: MONOREPO.to_string(),
        name: format!("catalog-{v}"),
        sha: commits[i].sha.clone(),
    };
    let tags = vec![tag(A, 0), tag(B, b_index), tag(C, c_index)];
    (commits, tags)
}

/// The sandbox harness with the infra workdir made a git checkout of the fixture justfile, an
/// `origin` that is a bare repository beside it, and the target configured like today's
/// monorepo deploy with an infra pull request.
struct Infra {
    s: Sbx,
}

impl Infra {
    async fn start() -> Infra {
        let world = World::openverse_idle();
        {
            let mut w = world.lock();
            let (commits, tags) = monorepo_history();
            w.github.commits = commits;
            w.github.tags = tags;
            for (i, v) in [A, B, C].iter().enumerate() {
                let at = format!(
                    "{}-{}-{}T{}:{}:{}Z",
                    &v[..4],
                    &v[5..7],
                    &v[8..10],
                    &v[11..13],
                    &v[14..16],
                    &v[17..19]
                );
                w.github.releases.push(SimRelease::published(
                    MONOREPO,
                    120_000_000 + i as u64,
                    &format!("catalog-{v}"),
                    &at,
                ));
                w.registry.push_image(IMAGE, &[&format!("rel-{v}")], v);
            }
        }
        let s = Sbx::with_world(world).await;
        let dir = s.dir.path();
        let infra = s.workdir();
        std::fs::create_dir_all(infra.join("group_vars")).expect("mkdir");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/infra-git.justfile"
            ),
            infra.join("infra.justfile"),
        )
        .expect("justfile");
        std::fs::write(
            infra.join("group_vars/catalog.yml"),
            "# The catalog's Airflow host (bumped by `just bump production airflow`).\n\
             catalog_image_tag: rel-2026.11.02.08.00.00\ncatalog_airflow_port: 8080\n",
        )
        .expect("group vars");
        std::fs::write(infra.join(".gitignore"), "state/\n").expect("gitignore");
        git(
            dir,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "infrastructure.git",
            ],
        );
        git(&infra, &["init", "--quiet", "--initial-branch=main"]);
        git(&infra, &["add", "."]);
        git(
            &infra,
            &["commit", "--quiet", "-m", "The infrastructure as it is"],
        );
        let remote = dir.join("infrastructure.git").display().to_string();
        git(&infra, &["remote", "add", "origin", &remote]);
        git(&infra, &["push", "--quiet", "origin", "main"]);
        Infra { s }
    }

    fn infra(&self) -> PathBuf {
        self.s.workdir()
    }

    fn remote(&self) -> PathBuf {
        self.s.dir.path().join("infrastructure.git")
    }

    /// The next bump writes `rel-<version>`.
    fn bump_writes(&self, version: &str) {
        std::fs::create_dir_all(self.infra().join("state")).expect("state");
        std::fs::write(
            self.infra().join("state/next-tag"),
            format!("rel-{version}\n"),
        )
        .expect("next-tag");
    }

    fn steps_log(&self) -> String {
        std::fs::read_to_string(self.infra().join("state/steps.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.s.cmd(&[]);
        let just =
            |recipe: &str| format!(r#"["just", "--justfile", "infra.justfile", "{recipe}"]"#);
        c.env("CATALOG_CHATOPS__TARGETS__CATALOG__REPO", MONOREPO)
            .env(
                "CATALOG_CHATOPS__TARGETS__CATALOG__RELEASE_TAG",
                "catalog-{version}",
            )
            .env(
                "CATALOG_CHATOPS__TARGETS__CATALOG__IMAGE_TAG",
                "rel-{version}",
            )
            .env(
                "CATALOG_CHATOPS__TARGETS__CATALOG__ENVIRONMENT",
                "production",
            )
            // Today's recipe takes no version: the template has no {version}.
            .env("CATALOG_CHATOPS__TARGETS__CATALOG__BUMP", just("bump"))
            .env("CATALOG_CHATOPS__TARGETS__CATALOG__PLAN", just("plan"))
            .env("CATALOG_CHATOPS__TARGETS__CATALOG__APPLY", just("apply"))
            .env(
                "CATALOG_CHATOPS__TARGETS__CATALOG__INFRA_PR",
                format!(r#"{{ repo = "{INFRA_REPO}", base = "main" }}"#),
            )
            .env(
                "CATALOG_CHATOPS__SERVER__PUBLIC_URL",
                "https://chatops.example.org",
            )
            .env("GITHUB_TOKEN", "ghp_sandboxtoken1234567890")
            .args(args);
        c
    }

    async fn exec(&self, user: &str, roles: &[&str], text: &str) -> (Value, String, i32) {
        self.exec_with(user, roles, text, |_| {}).await
    }

    async fn exec_with(
        &self,
        user: &str,
        roles: &[&str],
        text: &str,
        tweak: impl FnOnce(&mut Command),
    ) -> (Value, String, i32) {
        let mut args = vec!["exec", "--json", "--user", user];
        for r in roles {
            args.push("--role");
            args.push(r);
        }
        args.push(text);
        let mut c = self.cmd(&args);
        tweak(&mut c);
        let out = c.output().await.expect("exec");
        let (r, lines, code) = harness::parse_code(&out);
        let said = lines
            .iter()
            .filter_map(|l| l["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (r, said, code)
    }

    async fn store(&self) -> Store {
        self.s.store().await
    }

    async fn card(&self, id: i64) -> String {
        catalog_chatops::deploy::card::build(&self.store().await, id, 1)
            .await
            .expect("card")
            .expect("a card")
            .text()
    }

    /// Requests `version` as alice and has bob approve it: the whole deploy, and everything
    /// both processes said.
    async fn deploy(&self, version: &str, id: i64) -> (Value, String) {
        let (r, said, code) = self
            .exec(ALICE.0, ALICE.1, &format!("!deploy catalog {version}"))
            .await;
        assert_eq!(
            (r["outcome"].as_str(), code, r["deploy_id"].as_i64()),
            (Some("awaiting_approval"), 0, Some(id)),
            "{said}"
        );
        let (r, approved, code) = self
            .exec(BOB.0, BOB.1, &format!("!deploy approve {id}"))
            .await;
        assert_eq!((r["outcome"].as_str(), code), (Some("ok"), 0), "{approved}");
        (r, format!("{said}\n{approved}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_bump_ships_its_commits_and_ends_in_the_infra_pull_request() {
    if !tools() {
        return;
    }
    let s = Infra::start().await;
    let head_before = git(&s.infra(), &["rev-parse", "HEAD"]);

    // The first deploy: nothing deployed before, so what ships cannot be compared.
    s.bump_writes(A);
    let (r, said) = s.deploy(A, 1).await;
    assert!(
        said.contains(&format!(
            "🔍 Deploy #1: the bump wrote `rel-{A}` (git diff: 1 file changed)."
        )),
        "{said}"
    );
    assert!(
        said.contains("📦 ships: unknown — no earlier successful deploy of catalog is recorded"),
        "{said}"
    );
    let branch = format!("chatops/deploy-1-{A}");
    let url = format!("https://github.com/{INFRA_REPO}/pull/4201");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("🚀 Deploy #1 succeeded"), "{msg}");
    assert!(
        msg.ends_with(&format!("Infra pull request: {url}")),
        "{msg}"
    );
    assert!(
        said.contains(&format!("🔀 Deploy #1: infra pull request #4201 opened: {url} (branch `{branch}` pushed to `origin`).")),
        "{said}"
    );

    // The pull request: the right repository, branch, base and title; its body links the
    // deploy page and names the requester and the approver.
    let pulls = s.s.world.world.lock().github.pulls.clone();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pr = &pulls[0];
    assert_eq!(
        (
            pr.repo.as_str(),
            pr.head.as_str(),
            pr.base.as_str(),
            pr.title.as_str()
        ),
        (
            INFRA_REPO,
            branch.as_str(),
            "main",
            format!("Deploy catalog {A} to production (chatops #1)").as_str()
        )
    );
    for needle in [
        "- Deploy page: https://chatops.example.org/deploys/1\n",
        "- Requested by: alice\n",
        "- Approved by: bob\n",
        &format!("- Image tag: `rel-{A}`\n"),
    ] {
        assert!(pr.body.contains(needle), "{needle:?} not in {}", pr.body);
    }

    // The bare remote has the branch: one commit on the checkout's HEAD with the bump only.
    let pushed = git(&s.remote(), &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(
        git(&s.remote(), &["rev-parse", &format!("{pushed}^")]),
        head_before
    );
    assert_eq!(
        git(
            &s.remote(),
            &["diff", "--name-only", &format!("{pushed}^"), &pushed]
        ),
        "group_vars/catalog.yml"
    );
    let vars = git(
        &s.remote(),
        &["show", &format!("{pushed}:group_vars/catalog.yml")],
    );
    assert!(
        vars.contains(&format!("catalog_image_tag: rel-{A}\n")),
        "{vars}"
    );
    assert_eq!(
        git(
            &s.remote(),
            &["log", "-1", "--format=%an <%ae>%n%s", &pushed]
        ),
        format!(
            "catalog-chatops <catalog-chatops@users.noreply.github.com>\nDeploy catalog {A} to production (chatops #1)"
        )
    );
    // The checkout itself is as the bump left it: same branch, same HEAD, the change uncommitted.
    assert_eq!(
        git(&s.infra(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert_eq!(git(&s.infra(), &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        git(
            &s.infra(),
            &["status", "--porcelain", "--untracked-files=no"]
        ),
        "M group_vars/catalog.yml"
    );

    let card = s.card(1).await;
    assert!(card.contains("🚀 succeeded"), "{card}");
    assert!(
        card.ends_with(&format!("🔀 infra pull request: {url}")),
        "{card}"
    );
    let store = s.store().await;
    let audit = store.list_audit(50, None).await.expect("audit");
    let pr_event = audit
        .iter()
        .find(|e| e.kind == "deploy.infra_pr")
        .expect("audited");
    assert_eq!(pr_event.outcome.as_deref(), Some("opened"));

    // The next release: the plan card lists what ships between the two catalog releases.
    s.bump_writes(B);
    let (r, said, code) = s
        .exec(ALICE.0, ALICE.1, &format!("!deploy catalog {B}"))
        .await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("awaiting_approval"), 0),
        "{said}"
    );
    let card = s.card(2).await;
    let total = CATALOG_BETWEEN + OTHER_BETWEEN;
    let header = format!(
        "📦 ships: {CATALOG_BETWEEN} commits touching `catalog/` since `catalog-{A}` ({total} commits in all):"
    );
    assert!(card.contains(&header), "{card}");
    let listed: Vec<&str> = card.lines().filter(|l| l.starts_with("  • `")).collect();
    assert_eq!(listed.len(), 20, "{card}");
    // Newest first, each with its short sha, subject and author; no other folder's commits.
    let (history, tags) = monorepo_history();
    let b_sha = &tags[1].sha;
    let newest = history
        .iter()
        .find(|c| &c.sha == b_sha)
        .expect("B's commit");
    assert!(
        listed[0].starts_with(&format!("  • `{}` ", &newest.sha[..7])),
        "{}",
        listed[0]
    );
    assert!(
        listed
            .iter()
            .all(|l| !l.contains("Frontend") && !l.contains("API:") && !l.contains("Docs:")),
        "{card}"
    );
    assert!(
        card.contains(&format!(
            "  … and {} more: https://github.com/{MONOREPO}/compare/catalog-{A}...catalog-{B}",
            CATALOG_BETWEEN - 20
        )),
        "{card}"
    );
    // The plan line comes first, what ships right under it.
    let plan_at = card.find("plan: ").expect("plan line");
    assert!(plan_at < card.find(&header).unwrap_or(0), "{card}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_that_writes_another_tag_or_none_stops_before_the_plan() {
    if !tools() {
        return;
    }
    let s = Infra::start().await;

    // The recipe picked C (published meanwhile) while B was requested.
    s.bump_writes(C);
    let (r, said, code) = s
        .exec(ALICE.0, ALICE.1, &format!("!deploy catalog {B}"))
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("failed"), 1), "{said}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&format!(
            "failed at bump: the bump did not write `rel-{B}`: git diff adds `catalog_image_tag: rel-{C}` instead"
        )),
        "{msg}"
    );
    assert!(msg.contains("nothing was planned"), "{msg}");
    // The diff is shown.
    assert!(
        said.contains(&format!("🚫 Deploy #1: the bump did not write `rel-{B}`.")),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "-catalog_image_tag: rel-2026.11.02.08.00.00\n+catalog_image_tag: rel-{C}"
        )),
        "{said}"
    );
    // Nothing was planned or applied.
    assert_eq!(s.steps_log(), "bump\n");
    let store = s.store().await;
    let d = store
        .get_deploy(1)
        .await
        .expect("store")
        .expect("deploy #1");
    assert_eq!(
        (d.state, d.step.as_deref()),
        (DeployState::Failed, Some("bump"))
    );
    assert_eq!(d.plan_fingerprint, None);
    let journal = store.deploy_steps(1).await.expect("journal");
    assert!(
        journal
            .iter()
            .any(|j| j.step == "bump" && j.state == "mismatch"),
        "{journal:?}"
    );
    assert!(journal.iter().all(|j| j.step != "plan"), "{journal:?}");

    // A bump that writes nothing (after putting the file back) fails the same way.
    git(&s.infra(), &["checkout", "--", "group_vars/catalog.yml"]);
    std::fs::write(s.infra().join("state/bump-writes-nothing"), "").expect("knob");
    let (r, said, code) = s
        .exec(ALICE.0, ALICE.1, &format!("!deploy catalog {B}"))
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("failed"), 1), "{said}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&format!("the bump changed nothing in the checkout (git diff is empty), so `rel-{B}` was not written")),
        "{msg}"
    );
    assert_eq!(s.steps_log(), "bump\nbump\n");

    // The lock was released each time: the bump that writes B goes through to the plan.
    std::fs::remove_file(s.infra().join("state/bump-writes-nothing")).expect("knob");
    s.bump_writes(B);
    let (r, said, code) = s
        .exec(ALICE.0, ALICE.1, &format!("!deploy catalog {B}"))
        .await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("awaiting_approval"), 0),
        "{said}"
    );
    assert_eq!(s.steps_log(), "bump\nbump\nbump\nplan\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_is_reported_and_the_deploy_stays_succeeded() {
    if !tools() {
        return;
    }
    let s = Infra::start().await;
    // The remote protects its branches, as a repository with rules would.
    let hook = s.remote().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'error: GH013: Repository rule violations found for refs/heads/chatops' >&2\nexit 1\n",
    )
    .expect("hook");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    s.bump_writes(A);
    let (r, said) = s.deploy(A, 1).await;
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("🚀 Deploy #1 succeeded"), "{msg}");
    assert!(
        msg.contains(
            "The infra pull request was not opened (said above); the deploy itself succeeded."
        ),
        "{msg}"
    );
    let branch = format!("chatops/deploy-1-{A}");
    assert!(
        said.contains("⚠️ Deploy #1 succeeded, but the infra pull request was not opened: the push to `origin` was refused: `git push --porcelain -- origin"),
        "{said}"
    );
    assert!(said.contains("GH013: Repository rule violations"), "{said}");
    assert!(
        said.contains(&format!(
            "The bump is committed on the local branch `{branch}`"
        )),
        "{said}"
    );
    // No pull request, no branch on the remote; the local branch holds the bump.
    assert!(s.s.world.world.lock().github.pulls.is_empty());
    let remote_branches = git(&s.remote(), &["branch", "--list"]);
    assert!(!remote_branches.contains("chatops/"), "{remote_branches}");
    let local = git(
        &s.infra(),
        &["show", &format!("{branch}:group_vars/catalog.yml")],
    );
    assert!(local.contains(&format!("rel-{A}")), "{local}");

    let store = s.store().await;
    let d = store.get_deploy(1).await.expect("store").expect("deploy");
    assert_eq!(d.state, DeployState::Succeeded);
    let card = s.card(1).await;
    assert!(card.contains("🚀 succeeded"), "{card}");
    assert!(
        card.contains("⚠️ infra pull request not opened: the push to `origin` was refused"),
        "{card}"
    );
    let audit = store.list_audit(50, None).await.expect("audit");
    let pr_event = audit
        .iter()
        .find(|e| e.kind == "deploy.infra_pr")
        .expect("audited");
    assert_eq!(pr_event.outcome.as_deref(), Some("failed"));

    // Without a token GitHub refuses to open the pull request: said, and still succeeded.
    std::fs::remove_file(&hook).expect("hook");
    s.bump_writes(B);
    let (r, said, code) = s
        .exec(ALICE.0, ALICE.1, &format!("!deploy catalog {B}"))
        .await;
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("awaiting_approval"), 0),
        "{said}"
    );
    let (r, said, code) = s
        .exec_with(BOB.0, BOB.1, "!deploy approve 2", |c| {
            c.env_remove("GITHUB_TOKEN");
        })
        .await;
    assert_eq!((r["outcome"].as_str(), code), (Some("ok"), 0), "{said}");
    assert!(
        said.contains("GitHub did not open the pull request in WordPress/openverse-infrastructure: github: 401 without a token"),
        "{said}"
    );
    assert!(s.s.world.world.lock().github.pulls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workdir_that_its_checkout_ignores_is_not_verified_and_says_so() {
    if !tools() || !harness::require_just() {
        return;
    }
    // As `sandbox --serve` has it: the infra stand-in in `data/`, which this repository ignores.
    let s = Sbx::with_world(World::openverse_idle()).await;
    let dir = s.dir.path();
    std::fs::write(dir.join(".gitignore"), "infra/\n*.db*\n").expect("gitignore");
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    git(dir, &["add", ".gitignore"]);
    git(
        dir,
        &["commit", "--quiet", "-m", "The bot's own repository"],
    );
    let (r, lines, code) = s.exec_code(ALICE, "!deploy catalog v1.5.3").await;
    let said = lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        (r["outcome"].as_str(), code),
        (Some("awaiting_approval"), 0),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "ℹ️ Deploy #1: the workdir `{}` is not a git checkout, so the bump cannot be checked \
             for `v1.5.3`.",
            s.workdir().display()
        )),
        "{said}"
    );
}

/// A long range (three pages of compare, two of the folder's commits) is read whole, and the
/// client stops reading the folder's commits once they leave the range.
#[tokio::test]
async fn the_commits_of_a_long_release_are_read_page_by_page() {
    use catalog_chatops::integrations::Service;
    let world = World::openverse_idle();
    {
        let mut w = world.lock();
        // 400 commits: the old release at 50, the new one at 280; every third is not the catalog's.
        w.github.commits = (0..400)
            .map(|n| SimCommit {
                repo: MONOREPO.to_string(),
                sha: sandbox::sim_sha(20_000 + n),
                message: format!("Change {n} (#{})", 6000 + n),
                author_login: "stacimc".to_string(),
                date: "2026-11-20T10:00:00Z".to_string(),
                files: vec![if n % 3 == 0 {
                    "frontend/package.json".to_string()
                } else {
                    format!("catalog/dags/change_{n}.py")
                }],
            })
            .collect();
        let tag = |name: &str, i: usize| SimTag {
            repo: MONOREPO.to_string(),
            name: name.to_string(),
            sha: sandbox::sim_sha(20_000 + i),
        };
        w.github.tags = vec![tag("catalog-old", 50), tag("catalog-new", 280)];
    }
    let h = crate::sandbox_support::sandbox(world).await;
    let gh = crate::sandbox_support::github(&h, None);
    let c = gh
        .changes_between(MONOREPO, "catalog-old", "catalog-new", "catalog")
        .await
        .expect("answered")
        .expect("both tags known");
    let expected: Vec<String> = (51..=280)
        .filter(|n| n % 3 != 0)
        .map(|n| sandbox::sim_sha(20_000 + n))
        .collect();
    assert_eq!(c.total_commits, 230);
    assert!(c.complete);
    assert_eq!(
        c.commits.iter().map(|c| c.sha.clone()).collect::<Vec<_>>(),
        expected,
        "the catalog's commits of the range, oldest first"
    );
    assert_eq!(
        c.compare_url,
        format!("https://github.com/{MONOREPO}/compare/catalog-old...catalog-new")
    );
    let compare = format!("GET /repos/{MONOREPO}/compare/");
    let commits = format!("GET /repos/{MONOREPO}/commits");
    assert_eq!(h.world.count_prefix(Service::Github, &compare), 3);
    // 153 catalog commits in the range: the second page of 100 already leaves it.
    assert_eq!(h.world.count_prefix(Service::Github, &commits), 2);

    // Every commit, when the folder is "" (the stand-alone repository).
    let all = gh
        .changes_between(MONOREPO, "catalog-old", "catalog-new", "")
        .await
        .expect("answered")
        .expect("known");
    assert_eq!(all.commits.len(), 230);
    // A tag GitHub does not know is None, not an error.
    assert_eq!(
        gh.changes_between(MONOREPO, "catalog-old", "catalog-nope", "catalog")
            .await
            .expect("answered"),
        None
    );
}

/// GitHub's refusals of a pull request come back with its own reason.
#[tokio::test]
async fn a_duplicate_pull_request_is_refused_with_githubs_reason() {
    use catalog_chatops::integrations::github::NewPullRequest;
    let h = crate::sandbox_support::sandbox(World::openverse_idle()).await;
    let gh = crate::sandbox_support::github(&h, Some("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"));
    let pr = NewPullRequest {
        title: "Deploy catalog 2026.11.30.10.00.00 to production (chatops #7)",
        head: "chatops/deploy-7-2026.11.30.10.00.00",
        base: "main",
        body: "body",
    };
    let opened = gh.open_pull_request(INFRA_REPO, &pr).await.expect("opened");
    assert_eq!(
        (opened.number, opened.html_url.as_str()),
        (
            4201,
            "https://github.com/WordPress/openverse-infrastructure/pull/4201"
        )
    );
    let err = gh
        .open_pull_request(INFRA_REPO, &pr)
        .await
        .expect_err("a second one for the same branch");
    assert_eq!(
        err.to_string(),
        "github: 422 from /repos/WordPress/openverse-infrastructure/pulls: Validation Failed \
         (A pull request already exists for WordPress:chatops/deploy-7-2026.11.30.10.00.00.)"
    );
    let anonymous = crate::sandbox_support::github(&h, None);
    let err = anonymous
        .open_pull_request(INFRA_REPO, &pr)
        .await
        .expect_err("no token");
    assert!(
        err.to_string().starts_with("github: 401 without a token"),
        "{err}"
    );
}

//! The step runner against a real `just` and `tests/fixtures/steps.justfile`: argv rendering,
//! streaming, redaction, the scrubbed environment, exit codes, timeouts that leave no orphan, and
//! the Terraform prompt answered from the plan's fingerprint.
//!
//! `just` is required in CI (`CI=true`): without it these tests panic there; elsewhere they print
//! why they skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_chatops::command::Version;
use catalog_chatops::deploy::fingerprint::Plan;
use catalog_chatops::integrations::infra::{
    InheritedEnv, PromptAnswer, PromptContext, PromptHandler, StepEvent, StepOutcome, StepSpec,
    Stream, render_argv, run_step,
};
use catalog_chatops::redact::{MASK, Redactor};

const PLAN_FIXTURE: &str = include_str!("../fixtures/terraform-plan-image-bump.txt");
const SECRET: &str = "s3cr3t-deploy-value";
/// Built, not written out, so that no token-shaped literal sits in the repository.
fn github_token() -> String {
    format!("ghp_{}", "a1B2".repeat(9))
}

fn justfile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/steps.justfile")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `just` is on PATH; in CI its absence is a failure, elsewhere a printed skip.
fn have_just(test: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join("just"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if !found {
        if in_ci() {
            panic!("`just` is required in CI but is not on PATH");
        }
        eprintln!("skipping {test}: `just` is not on PATH");
    }
    found
}

/// The bot's environment as the tests pretend it: the real PATH (to find `just`), plus secrets
/// and unrelated variables that must not reach the step.
fn bot_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in ["PATH", "HOME", "LANG"] {
        if let Ok(v) = std::env::var(name) {
            env.insert(name.to_string(), v);
        }
    }
    env.insert("GITHUB_TOKEN".into(), github_token());
    env.insert("AIRFLOW_PASSWORD".into(), "airflow-password-1".into());
    env.insert("DISCORD_TOKEN".into(), "discord-token-1".into());
    env.insert("REGISTRY_USERNAME".into(), "registry-user".into());
    env.insert("REGISTRY_PASSWORD".into(), "registry-password-1".into());
    env.insert(
        "CATALOG_CHATOPS__STORE__URL".into(),
        "postgres://u:pw@db/x".into(),
    );
    env.insert("AWS_REGION".into(), "us-east-1".into());
    env.insert("TF_IN_AUTOMATION".into(), "1".into());
    env.insert("UNRELATED".into(), "nope".into());
    env
}

/// A spec running `just <recipe> <args…>` in a fresh working directory.
struct Fixture {
    spec: StepSpec,
    dir: tempfile::TempDir,
}

fn just_step(name: &str, recipe: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut argv = vec![
        "just".to_string(),
        "--justfile".into(),
        justfile().display().to_string(),
        "--working-directory".into(),
        dir.path().display().to_string(),
    ];
    argv.extend(recipe.iter().map(|s| s.to_string()));
    let mut spec = StepSpec::new(
        name,
        argv,
        dir.path(),
        Duration::from_secs(60),
        Redactor::new(vec![SECRET.to_string()]),
    );
    spec.inherited_env = InheritedEnv::Given(bot_env());
    spec.env_passthrough = vec!["AWS_*".into(), "TF_*".into()];
    spec.env = BTreeMap::from([("DEPLOY_SECRET".to_string(), SECRET.to_string())]);
    spec.kill_grace = Duration::from_millis(500);
    Fixture { spec, dir }
}

/// Everything `run_step` reported.
#[derive(Default)]
struct Seen {
    started: Option<u32>,
    lines: Vec<(Stream, String)>,
    prompts: Vec<(String, Option<PromptAnswer>)>,
}

impl Seen {
    fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn run(spec: &StepSpec, prompt: Option<PromptHandler>) -> (StepOutcome, Seen) {
    let mut seen = Seen::default();
    let outcome = run_step(
        spec,
        |e| match e {
            StepEvent::Started { pid } => seen.started = Some(pid),
            StepEvent::Line { stream, text } => seen.lines.push((stream, text.to_string())),
            StepEvent::Prompt { text, answer } => seen.prompts.push((text.to_string(), answer)),
        },
        prompt,
    )
    .await
    .expect("the step runs");
    assert_eq!(seen.started, Some(outcome.pid), "Started carries the pid");
    (outcome, seen)
}

/// Processes of group `pgid` that are not zombies (a zombie is dead, only not yet reaped by
/// whoever inherited it).
fn live_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

/// The process exists and is not a zombie.
fn is_live(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Waits (at most 3 s) for the group to have no live member; returns what is left.
async fn group_gone(pgid: u32) -> Vec<u32> {
    for _ in 0..60 {
        let left = live_members(pgid);
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live_members(pgid)
}

fn background_pid(seen: &Seen, prefix: &str) -> u32 {
    seen.lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", seen.lines))
}

#[tokio::test]
async fn the_version_reaches_the_recipe_through_argv() {
    if !have_just("the_version_reaches_the_recipe_through_argv") {
        return;
    }
    let f = just_step("bump", &[]);
    let mut template = f.spec.argv.clone();
    template.extend(["version".to_string(), "{version}".to_string()]);
    let mut spec = f.spec.clone();
    spec.argv = render_argv(&template, &Version::parse("v1.2.3").unwrap()).unwrap();
    let (outcome, seen) = run(&spec, None).await;
    assert!(
        outcome.success(),
        "{}: {}",
        outcome.describe(),
        outcome.output_tail
    );
    assert_eq!(seen.text(), "version=v1.2.3");
    assert_eq!(outcome.describe(), "step bump succeeded");
    drop(f.dir);
}

#[tokio::test]
async fn arguments_never_pass_through_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "$(touch pwned) ; `touch pwned2` * $HOME";
    let mut spec = StepSpec::new(
        "bump",
        vec!["printf".into(), "%s\\n".into(), hostile.into()],
        dir.path(),
        Duration::from_secs(10),
        Redactor::default(),
    );
    spec.inherited_env = InheritedEnv::Given(bot_env());
    let (outcome, seen) = run(&spec, None).await;
    assert!(outcome.success());
    assert_eq!(seen.text(), hostile);
    assert!(!dir.path().join("pwned").exists() && !dir.path().join("pwned2").exists());
}

#[tokio::test]
async fn the_environment_is_scrubbed() {
    if !have_just("the_environment_is_scrubbed") {
        return;
    }
    let f = just_step("plan", &["env"]);
    let (outcome, seen) = run(&f.spec, None).await;
    assert!(outcome.success(), "{}", outcome.output_tail);
    let vars: BTreeMap<String, String> = seen
        .lines
        .iter()
        .filter_map(|(_, l)| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        vars.get("AWS_REGION").map(String::as_str),
        Some("us-east-1")
    );
    assert_eq!(vars.get("TF_IN_AUTOMATION").map(String::as_str), Some("1"));
    assert!(vars.contains_key("PATH") && vars.contains_key("HOME"));
    // Passed from config, and redacted in the output because it is a configured secret.
    assert_eq!(vars.get("DEPLOY_SECRET").map(String::as_str), Some(MASK));
    for name in [
        "GITHUB_TOKEN",
        "AIRFLOW_PASSWORD",
        "DISCORD_TOKEN",
        "REGISTRY_USERNAME",
        "REGISTRY_PASSWORD",
        "CATALOG_CHATOPS__STORE__URL",
        "UNRELATED",
    ] {
        assert!(!vars.contains_key(name), "{name} leaked into the step");
    }

    // Even a `*` glob passes everything but the bot's secrets.
    let mut spec = f.spec.clone();
    spec.env_passthrough = vec!["*".into()];
    let (outcome, seen) = run(&spec, None).await;
    assert!(outcome.success());
    let text = seen.text();
    assert!(text.contains("UNRELATED=nope"), "{text}");
    for secret in [
        "GITHUB_TOKEN=",
        "AIRFLOW_PASSWORD=",
        "DISCORD_TOKEN=",
        "REGISTRY_USERNAME=",
        "REGISTRY_PASSWORD=",
        "CATALOG_CHATOPS__STORE__URL=",
        "airflow-password-1",
        "postgres://u:pw@db/x",
    ] {
        assert!(!text.contains(secret), "{secret} leaked through `*`");
    }
}

#[tokio::test]
async fn output_streams_while_the_step_runs() {
    if !have_just("output_streams_while_the_step_runs") {
        return;
    }
    let f = just_step("plan", &["stream"]);
    let marker = f.dir.path().join("marker");
    let mut lines = Vec::new();
    let outcome = run_step(
        &f.spec,
        |e| {
            if let StepEvent::Line { text, .. } = e {
                if text == "line 1" {
                    std::fs::write(&marker, b"").expect("write marker");
                }
                lines.push(text.to_string());
            }
        },
        None,
    )
    .await
    .unwrap();
    assert!(outcome.success());
    assert_eq!(lines, ["line 1", "line 2: streamed"]);
}

#[tokio::test]
async fn a_failing_step_reports_its_exit_code_and_last_lines() {
    if !have_just("a_failing_step_reports_its_exit_code_and_last_lines") {
        return;
    }
    let f = just_step("plan", &["fail"]);
    let (outcome, seen) = run(&f.spec, None).await;
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.signal, None);
    assert!(!outcome.success() && !outcome.timed_out);
    assert_eq!(outcome.describe(), "step plan exited with code 3");
    assert!(
        seen.lines
            .contains(&(Stream::Stdout, "checking the plan".into()))
    );
    assert!(
        seen.lines
            .contains(&(Stream::Stderr, "Error: something broke".into()))
    );
    assert!(
        outcome.output_tail.contains("Error: something broke"),
        "{}",
        outcome.output_tail
    );
    assert!(outcome.output_tail.contains("checking the plan"));
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    if !have_just("a_timeout_kills_the_whole_process_group") {
        return;
    }
    let mut f = just_step("plan", &["hang"]);
    // Long enough for `just` (a pyenv shim here) to start its recipe on a busy machine.
    f.spec.timeout = Duration::from_secs(3);
    let (outcome, seen) = run(&f.spec, None).await;
    let child = background_pid(&seen, "background ");
    assert!(outcome.timed_out && !outcome.success());
    assert_eq!(outcome.exit_code.filter(|&c| c == 0), None);
    assert!(
        outcome
            .describe()
            .starts_with("step plan timed out after 3s"),
        "{}",
        outcome.describe()
    );
    assert_eq!(
        group_gone(outcome.pid).await,
        Vec::<u32>::new(),
        "orphans left in the group"
    );
    assert!(!is_live(child), "the background child {child} survived");
}

#[tokio::test]
async fn a_step_that_ignores_sigterm_gets_sigkill() {
    if !have_just("a_step_that_ignores_sigterm_gets_sigkill") {
        return;
    }
    let mut f = just_step("plan", &["stubborn"]);
    f.spec.timeout = Duration::from_secs(3);
    f.spec.kill_grace = Duration::from_millis(300);
    let (outcome, seen) = run(&f.spec, None).await;
    let child = background_pid(&seen, "background ");
    assert!(outcome.timed_out);
    assert!(!is_live(child), "the background child {child} survived");
    // SIGTERM alone could not end it: it ended at SIGKILL, after the grace period.
    assert!(
        outcome.duration >= Duration::from_millis(3300),
        "{:?}",
        outcome.duration
    );
    assert_eq!(
        group_gone(outcome.pid).await,
        Vec::<u32>::new(),
        "orphans left in the group"
    );
}

#[tokio::test]
async fn leftovers_of_a_finished_step_are_killed() {
    if !have_just("leftovers_of_a_finished_step_are_killed") {
        return;
    }
    let mut f = just_step("bump", &["leave-behind"]);
    f.spec.timeout = Duration::from_secs(30);
    let (outcome, seen) = run(&f.spec, None).await;
    background_pid(&seen, "left ");
    assert!(outcome.success(), "{}", outcome.describe());
    assert!(outcome.killed_leftovers);
    assert!(outcome.duration < Duration::from_secs(30));
    assert_eq!(group_gone(outcome.pid).await, Vec::<u32>::new());
}

#[tokio::test]
async fn dropping_the_future_kills_the_step() {
    if !have_just("dropping_the_future_kills_the_step") {
        return;
    }
    let f = just_step("plan", &["hang"]);
    let pid = Arc::new(Mutex::new(None));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    let seen_pid = pid.clone();
    let step = run_step(
        &f.spec,
        move |e| match e {
            StepEvent::Started { pid } => *seen_pid.lock().unwrap() = Some(pid),
            StepEvent::Line { .. } => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
            StepEvent::Prompt { .. } => {}
        },
        None,
    );
    tokio::select! {
        _ = step => panic!("the step cannot end on its own"),
        _ = rx => {}
    }
    // `step` is dropped here, mid-run.
    let pgid = pid.lock().unwrap().expect("started");
    assert_eq!(group_gone(pgid).await, Vec::<u32>::new());
}

#[tokio::test]
async fn the_tail_and_the_capture_are_bounded() {
    if !have_just("the_tail_and_the_capture_are_bounded") {
        return;
    }
    let mut f = just_step("plan", &["many"]);
    f.spec.tail_bytes = 1024;
    f.spec.capture_bytes = 2048;
    let (outcome, seen) = run(&f.spec, None).await;
    assert!(outcome.success());
    assert_eq!(seen.lines.len(), 5000, "every line is streamed");
    let expected_len: usize = (1..=5000).map(|i: u32| i.to_string().len() + 1).sum();
    assert_eq!(outcome.full_output_len, expected_len as u64);
    assert!(outcome.output_tail.len() <= 1024);
    assert!(
        outcome.output_tail.ends_with("\n4999\n5000"),
        "{}",
        outcome.output_tail
    );
    assert!(outcome.output.starts_with("1\n2\n3\n"));
    assert!(outcome.output_truncated);
    assert!(
        outcome.output.len() <= 2048 && outcome.output.len() > 2000,
        "{}",
        outcome.output.len()
    );
    assert!(
        outcome.output.ends_with('\n'),
        "the capture holds whole lines"
    );
}

#[tokio::test]
async fn plan_output_gives_the_fixture_fingerprint() {
    if !have_just("plan_output_gives_the_fixture_fingerprint") {
        return;
    }
    let f = just_step("plan", &["plan"]);
    let (outcome, seen) = run(&f.spec, None).await;
    assert!(outcome.success());
    assert!(!outcome.output_truncated);
    let plan = Plan::parse(&outcome.output);
    assert_eq!(plan.fingerprint(), Plan::parse(PLAN_FIXTURE).fingerprint());
    assert_eq!(Plan::parse(&seen.text()), plan);
}

/// A handler that approves only the plan with `approved` as fingerprint, like the deploy
/// workflow's; it records what it was shown.
fn approve_only(approved: String, shown: Arc<Mutex<Vec<String>>>) -> PromptHandler {
    Box::new(move |ctx: &PromptContext<'_>| {
        shown.lock().unwrap().push(ctx.output.to_string());
        match Plan::parse_before_prompt(ctx.output) {
            Some(plan)
                if !ctx.truncated && plan.is_recognised() && plan.fingerprint() == approved =>
            {
                PromptAnswer::Yes
            }
            _ => PromptAnswer::No,
        }
    })
}

#[tokio::test]
async fn apply_is_answered_yes_for_the_approved_plan() {
    if !have_just("apply_is_answered_yes_for_the_approved_plan") {
        return;
    }
    let f = just_step("apply", &["apply"]);
    let shown = Arc::new(Mutex::new(Vec::new()));
    let approved = Plan::parse(PLAN_FIXTURE).fingerprint();
    let (outcome, seen) = run(&f.spec, Some(approve_only(approved, shown.clone()))).await;
    assert!(
        outcome.success(),
        "{}: {}",
        outcome.describe(),
        outcome.output_tail
    );
    assert_eq!(outcome.answers, [PromptAnswer::Yes]);
    assert_eq!(
        seen.prompts,
        [("  Enter a value: ".to_string(), Some(PromptAnswer::Yes))]
    );
    assert!(
        outcome
            .output_tail
            .ends_with("Apply complete! Resources: 1 added, 1 changed, 1 destroyed.")
    );
    let shown = shown.lock().unwrap();
    assert_eq!(shown.len(), 1);
    assert!(
        shown[0].ends_with("  Enter a value: "),
        "the handler sees the prompt"
    );
    assert!(shown[0].contains("Plan: 1 to add, 1 to change, 1 to destroy."));
}

#[tokio::test]
async fn apply_is_answered_no_when_the_plan_changed() {
    if !have_just("apply_is_answered_no_when_the_plan_changed") {
        return;
    }
    let f = just_step("apply", &["apply"]);
    let other = PLAN_FIXTURE.replace("1 to destroy", "2 to destroy");
    let approved = Plan::parse(&other).fingerprint();
    let (outcome, seen) = run(&f.spec, Some(approve_only(approved, Arc::default()))).await;
    assert_eq!(outcome.exit_code, Some(1));
    assert_eq!(outcome.answers, [PromptAnswer::No]);
    assert_eq!(seen.prompts.len(), 1);
    assert!(outcome.output_tail.contains("Apply cancelled."));
    assert!(!outcome.output_tail.contains("Apply complete!"));
}

#[tokio::test]
async fn apply_without_a_handler_reads_end_of_file() {
    if !have_just("apply_without_a_handler_reads_end_of_file") {
        return;
    }
    let f = just_step("apply", &["apply"]);
    let (outcome, seen) = run(&f.spec, None).await;
    assert_eq!(outcome.exit_code, Some(1));
    assert!(outcome.answers.is_empty());
    // With stdin closed the recipe may read end-of-file before the prompt is even seen waiting,
    // so the event is optional; an answer never is.
    assert!(
        seen.prompts.iter().all(|(_, answer)| answer.is_none()),
        "{:?}",
        seen.prompts
    );
    assert!(outcome.output_tail.contains("Apply cancelled."));
}

#[tokio::test]
async fn secrets_are_redacted_everywhere() {
    if !have_just("secrets_are_redacted_everywhere") {
        return;
    }
    let f = just_step("apply", &["secret"]);
    let shown = Arc::new(Mutex::new(String::new()));
    let seen_by_handler = shown.clone();
    let handler: PromptHandler = Box::new(move |ctx: &PromptContext<'_>| {
        *seen_by_handler.lock().unwrap() = ctx.output.to_string();
        PromptAnswer::Yes
    });
    let (outcome, seen) = run(&f.spec, Some(handler)).await;
    assert!(outcome.success(), "{}", outcome.output_tail);
    let token = github_token();
    let streamed = seen.text();
    let prompts: String = seen.prompts.iter().map(|(p, _)| p.as_str()).collect();
    let shown = shown.lock().unwrap().clone();
    for (name, text) in [
        ("streamed lines", streamed.as_str()),
        ("tail", outcome.output_tail.as_str()),
        ("capture", outcome.output.as_str()),
        ("prompt event", prompts.as_str()),
        ("prompt handler", shown.as_str()),
    ] {
        assert!(
            !text.contains(SECRET),
            "the configured secret is in the {name}: {text}"
        );
        assert!(!text.contains(&token), "the token is in the {name}: {text}");
        assert!(
            !text.contains("ghp_"),
            "a token prefix is in the {name}: {text}"
        );
    }
    assert!(
        streamed.contains(&format!("token {MASK} on stdout")),
        "{streamed}"
    );
    assert!(
        streamed.contains(&format!("configured {MASK} on stderr")),
        "{streamed}"
    );
    assert_eq!(prompts, format!("value {MASK}. Enter a value: "));
    assert!(streamed.contains("answered yes"));
}

#[tokio::test]
async fn spawn_failures_are_clear_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |argv: Vec<String>, workdir: &Path| {
        let mut s = StepSpec::new(
            "bump",
            argv,
            workdir,
            Duration::from_secs(5),
            Redactor::default(),
        );
        s.inherited_env = InheritedEnv::Given(bot_env());
        s
    };
    let err = |s: StepSpec| async move {
        run_step(&s, |_| {}, None)
            .await
            .expect_err("must not run")
            .to_string()
    };

    let missing = spec(
        vec!["just".into(), "bump".into()],
        Path::new("/srv/x-does-not-exist"),
    );
    assert_eq!(
        err(missing).await,
        "step bump: cannot run \"just\": the workdir does not exist (workdir /srv/x-does-not-exist)"
    );

    let no_program = spec(vec!["no-such-program-3f9a".into()], dir.path());
    assert_eq!(
        err(no_program).await,
        format!(
            "step bump: cannot run \"no-such-program-3f9a\": No such file or directory (workdir {})",
            dir.path().display()
        )
    );

    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let not_exec = spec(vec![script.display().to_string()], dir.path());
    assert_eq!(
        err(not_exec).await,
        format!(
            "step bump: cannot run \"{}\": Permission denied (workdir {})",
            script.display(),
            dir.path().display()
        )
    );

    let file_as_dir = spec(vec!["true".into()], &script);
    assert_eq!(
        err(file_as_dir).await,
        format!(
            "step bump: cannot run \"true\": the workdir is not a directory (workdir {})",
            script.display()
        )
    );
}

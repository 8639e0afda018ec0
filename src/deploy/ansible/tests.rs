//! The dry-run reader on real `ansible-playbook` output (ansible-core 2.19, default callback,
//! captured from the sandbox's stand-in playbook into `tests/fixtures/ansible/`), and what may
//! and may not change its fingerprint.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/ansible/", $name))
    };
}

const DRY_RUN: &str = fixture!("dry-run.txt");
const DRIFT: &str = fixture!("dry-run-drift.txt");
const NO_CHANGES: &str = fixture!("dry-run-no-changes.txt");
const WITHOUT_DIFF: &str = fixture!("dry-run-without-diff.txt");
const TWO_HOSTS: &str = fixture!("dry-run-two-hosts.txt");
const UNREACHABLE: &str = fixture!("dry-run-unreachable.txt");
const VERBOSE: &str = fixture!("dry-run-verbose.txt");
const APPLY: &str = fixture!("apply.txt");
const APPLY_FAILED: &str = fixture!("apply-failed.txt");
const APPLY_VERBOSE: &str = fixture!("apply-verbose.txt");

#[test]
fn a_dry_run_names_the_changed_task_per_host_with_its_diff() {
    let run = DryRun::parse(DRY_RUN);
    assert_eq!(run.problem(), None);
    assert!(!run.no_changes());
    assert_eq!(run.counts(), "1 changed task on 1 host");
    assert_eq!(run.changes.len(), 1);
    let c = &run.changes[0];
    assert_eq!(c.play, "Deploy the catalog's Airflow");
    assert_eq!(c.task, "Write the Airflow environment file");
    assert_eq!(c.host, "localhost");
    assert!(
        c.diff.contains(
            &"+AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-2026.11.30.10.00.00".into()
        ),
        "{:?}",
        c.diff
    );
    assert!(c.diff[0].starts_with("--- before: "), "{:?}", c.diff);
    assert_eq!(
        run.recap_line(),
        "localhost changed=1 failed=0 unreachable=0"
    );
    let summary = run.human_summary();
    assert!(
        summary.starts_with(
            "Dry run: 1 changed task on 1 host\n• localhost: `Write the Airflow environment file`"
        ),
        "{summary}"
    );
    assert!(summary.contains("-AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-2023.07.03.17.52.00\n+AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-2026.11.30.10.00.00"), "{summary}");
    // ok: and skipping: tasks are not part of the plan.
    assert!(!run.normalized().contains("Make the Airflow host's folders"));
    assert!(!run.normalized().contains("Restart Airflow"));
}

#[test]
fn no_changes_everywhere_is_no_changes() {
    let run = DryRun::parse(NO_CHANGES);
    assert_eq!(run.problem(), None);
    assert!(run.no_changes());
    assert_eq!(run.counts(), "no changes");
    assert_eq!(run.human_summary(), "No changes.");
}

#[test]
fn a_changed_variable_changes_the_fingerprint() {
    let (a, b) = (DryRun::parse(DRY_RUN), DryRun::parse(DRIFT));
    assert_eq!(b.problem(), None);
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint(), DryRun::parse(DRY_RUN).fingerprint());
    // Without --diff the changed task is still read, and is a different plan than with its diff.
    let plain = DryRun::parse(WITHOUT_DIFF);
    assert_eq!(plain.problem(), None);
    assert_eq!(plain.counts(), "1 changed task on 1 host");
    assert!(plain.changes[0].diff.is_empty());
    assert_ne!(plain.fingerprint(), a.fingerprint());
}

/// The `profile_tasks` callback's line after every header (ansible.posix; not in ansible-core).
fn with_timings(text: &str, seconds: u32) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("TASK [") {
            out.push_str(&format!(
                "Tuesday 01 December 2026  08:{:02}:{:02} +0000 (0:00:0{}.017)       0:00:{:02}.431 *****\n",
                seconds % 60,
                seconds % 60,
                seconds % 10,
                seconds % 60
            ));
        }
    }
    out
}

#[test]
fn noise_never_changes_the_fingerprint() {
    let fp = DryRun::parse(DRY_RUN).fingerprint();
    let variants: Vec<(&str, String)> = vec![
        ("timings", with_timings(DRY_RUN, 7)),
        ("other timings", with_timings(DRY_RUN, 43)),
        ("crlf", DRY_RUN.replace('\n', "\r\n")),
        (
            "colours",
            DRY_RUN
                .replace("changed: [localhost]", "\u{1b}[0;33mchanged: [localhost]\u{1b}[0m")
                .replace("ok: [localhost]", "\u{1b}[0;32mok: [localhost]\u{1b}[0m"),
        ),
        ("rules", DRY_RUN.replace("*****", "**")),
        (
            "ok lines",
            DRY_RUN.replace("ok: [localhost]", "ok: [localhost]\nok: [airflow-2]"),
        ),
        (
            "an ok task",
            DRY_RUN.replace(
                "TASK [Restart Airflow]",
                "TASK [Read the Airflow version]\nok: [localhost]\n\nTASK [Restart Airflow]",
            ),
        ),
        (
            "recap ok counts",
            DRY_RUN.replace("ok=2    changed=1", "ok=5    changed=1"),
        ),
        (
            "warnings",
            DRY_RUN.replace(
                "changed: [localhost]",
                "[WARNING]: Platform linux on host localhost is using the discovered Python\nchanged: [localhost]",
            ),
        ),
        (
            "a verbose result",
            DRY_RUN.replace(
                "changed: [localhost]",
                r#"changed: [localhost] => {"changed": true, "delta": "0:00:00.005229"}"#,
            ),
        ),
        (
            "log timestamps",
            DRY_RUN
                .lines()
                .map(|l| format!("2026-12-01T08:11:04.923Z {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ];
    for (name, text) in variants {
        let run = DryRun::parse(&text);
        assert_eq!(run.problem(), None, "{name}");
        assert_eq!(
            run.fingerprint(),
            fp,
            "{name} changed the fingerprint:\n{text}"
        );
    }
}

#[test]
fn every_diff_line_and_every_changed_task_is_in_the_fingerprint() {
    let fp = DryRun::parse(DRY_RUN).fingerprint();
    let lines: Vec<&str> = DRY_RUN.lines().collect();
    let diff_at: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with("---")
                || l.starts_with("+++")
                || l.starts_with("@@")
                || l.starts_with('+')
                || l.starts_with('-')
                || l.starts_with(' ')
        })
        .map(|(i, _)| i)
        .collect();
    assert!(diff_at.len() >= 6, "{diff_at:?}");
    for &i in &diff_at {
        let mut changed = lines.clone();
        let edited = format!("{}x", lines[i]);
        changed[i] = &edited;
        assert_ne!(
            DryRun::parse(&changed.join("\n")).fingerprint(),
            fp,
            "edited line {i}"
        );
        let mut removed = lines.clone();
        removed.remove(i);
        assert_ne!(
            DryRun::parse(&removed.join("\n")).fingerprint(),
            fp,
            "removed line {i}"
        );
    }
    // A line the bot does not know, printed for a changed task, counts (fail closed).
    let unknown = DRY_RUN.replace(
        "changed: [localhost]",
        "diff skipped: source file size is greater than 104448\nchanged: [localhost]",
    );
    assert_ne!(DryRun::parse(&unknown).fingerprint(), fp);
    // The same diff under another task name, or another host, is another plan.
    let renamed = DRY_RUN.replace(
        "TASK [Write the Airflow environment file]",
        "TASK [Write the Airflow env file]",
    );
    assert_ne!(DryRun::parse(&renamed).fingerprint(), fp);
    let moved = DRY_RUN
        .replace("[localhost]", "[airflow-2]")
        .replace("localhost ", "airflow-2 ");
    assert_ne!(DryRun::parse(&moved).fingerprint(), fp);
}

#[test]
fn hosts_are_named_and_their_order_does_not_matter() {
    let run = DryRun::parse(TWO_HOSTS);
    assert_eq!(run.problem(), None);
    assert_eq!(run.counts(), "1 changed task on 2 hosts");
    assert_eq!(run.changed_hosts(), ["airflow-2", "localhost"]);
    let summary = run.human_summary();
    assert!(summary.contains("• airflow-2: `Write the Airflow environment file`\n• localhost: `Write the Airflow environment file`"), "{summary}");
    // Forks finish in any order: swap the two hosts' results.
    let start = TWO_HOSTS.find("--- before: /tmp/ansx/state/host/").unwrap();
    let mid = TWO_HOSTS
        .find("--- before: /tmp/ansx/state/host2/")
        .unwrap();
    let end = TWO_HOSTS.find("changed: [airflow-2]\n").unwrap() + "changed: [airflow-2]\n".len();
    let swapped = format!(
        "{}{}\n{}{}",
        &TWO_HOSTS[..start],
        &TWO_HOSTS[mid..end],
        &TWO_HOSTS[start..mid].trim_end(),
        &TWO_HOSTS[end..]
    );
    assert_ne!(swapped, TWO_HOSTS);
    assert_eq!(
        DryRun::parse(&swapped).fingerprint(),
        run.fingerprint(),
        "{swapped}"
    );
}

#[test]
fn failed_and_unreachable_hosts_fail_naming_the_task() {
    let run = DryRun::parse(APPLY_FAILED);
    assert_eq!(
        run.problem().as_deref(),
        Some(
            "the playbook failed at task `Check that Airflow answers` on localhost: Airflow did \
             not answer on its health endpoint after the restart (state/fail-apply)"
        )
    );
    assert_eq!(
        run.recap_line(),
        "localhost changed=2 failed=1 unreachable=0"
    );
    let run = DryRun::parse(UNREACHABLE);
    let problem = run.problem().unwrap();
    assert!(
        problem.starts_with("airflow-gone was unreachable at task `Make the Airflow host's folders`: Task failed: Failed to connect to the host via ssh"),
        "{problem}"
    );
    // An ignored failure is not one.
    let ignored = APPLY_FAILED
        .replace(
            "(state/fail-apply)\"}\n",
            "(state/fail-apply)\"}\n...ignoring\n",
        )
        .replace(
            "failed=1    skipped=0    rescued=0    ignored=0",
            "failed=0    skipped=0    rescued=0    ignored=1",
        );
    assert_eq!(DryRun::parse(&ignored).problem(), None, "{ignored}");
}

#[test]
fn output_the_bot_cannot_account_for_is_not_a_plan() {
    assert!(
        DryRun::parse("")
            .problem()
            .unwrap()
            .contains("no `PLAY RECAP`")
    );
    assert!(
        DryRun::parse("Plan: 1 to add, 0 to change, 0 to destroy.")
            .problem()
            .is_some()
    );
    // The recap counts a change the bot did not read.
    let hidden = DRY_RUN.replace("changed: [localhost]", "");
    let problem = DryRun::parse(&hidden).problem().unwrap();
    assert!(
        problem.contains("changed=1 on localhost but the bot read 0"),
        "{problem}"
    );
    // A recap with a failure but no failed task line.
    let odd = NO_CHANGES.replace("failed=0", "failed=1");
    assert!(
        DryRun::parse(&odd)
            .problem()
            .unwrap()
            .contains("found no failed task")
    );
}

#[test]
fn verbose_output_reads_the_same() {
    let run = DryRun::parse(VERBOSE);
    assert_eq!(run.problem(), None);
    assert_eq!(run.counts(), "1 changed task on 1 host");
    let plain: String = VERBOSE
        .lines()
        .map(|l| match l.split_once(" => {") {
            Some((head, _)) => head.to_string(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(DryRun::parse(&plain).fingerprint(), run.fingerprint());
    let apply = DryRun::parse(APPLY_VERBOSE);
    assert_eq!(apply.problem(), None);
    assert_eq!(apply.counts(), "2 changed tasks on 1 host");
}

#[test]
fn an_apply_recap_is_read() {
    let run = DryRun::parse(APPLY);
    assert_eq!(run.problem(), None);
    assert_eq!(
        run.recap_line(),
        "localhost changed=2 failed=0 unreachable=0"
    );
    assert_eq!(run.counts(), "2 changed tasks on 1 host");
}

#[test]
fn timing_lines_are_recognised_exactly() {
    assert!(is_timing(
        "Tuesday 01 December 2026  08:13:21 +0000 (0:00:00.017)       0:00:00.017 ********"
    ));
    assert!(is_timing(
        "Tuesday 01 December 2026  08:13:21 +0000 (0:00:00.017)       0:00:00.017"
    ));
    assert!(!is_timing(
        "+AIRFLOW_IMAGE=ghcr.io/wordpress/openverse-catalog:rel-2026.11.30.10.00.00"
    ));
    assert!(!is_timing("+timeout (0:00:00.017) 0:00:01.000"));
    assert!(!is_timing(" Tuesday (0:00:00.017) 0:00:01.000"));
}

//! `!dag-sync status`: the commit checked out on the Airflow host against the branch on GitHub.
//!
//! dag-sync (a cron job on the host) moves the checkout one commit per run, and neither its exit
//! code nor its Slack message is reliable (facts.md), so the bot asks the two ends itself: the
//! deployed commit from the configured source (a git checkout, a file, or a command — run
//! without a shell, with a timeout, never blocking the runtime) and the branch from GitHub.

use std::time::Duration;

use crate::coalesce::as_of;
use crate::config::{CommitSource, DagSyncConfig};
use crate::deploy::preflight::parse_rfc3339_ms;
use crate::engine::Ctx;
use crate::integrations::github::Commit;
use crate::reply::{Outcome, Reply};
use crate::store::now_ms;
use crate::timefmt;

/// A git, file or command source that takes longer than this is broken.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// DAG-touching pending commits listed by name.
const SHOWN: usize = 10;

/// What the deployed commit source said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub sha: String,
    /// When the checkout last moved (ms), where the source can tell.
    pub synced_ms: Option<i64>,
}

/// Everything one answer needs; cached and shared like `!airflow status`.
#[derive(Debug, Clone)]
pub struct SyncSnapshot {
    pub deployed: Deployed,
    pub ahead_by: u64,
    /// Commits the checkout has that the branch does not (diverged or ahead of it).
    pub behind_by: u64,
    /// Pending commits that touch the DAG folder, oldest first, with their position (1-based)
    /// in the queue dag-sync works through.
    pub pending_dag_commits: Vec<(u64, Commit)>,
    pub status: String,
    pub import_errors: Result<Vec<crate::integrations::airflow::ImportError>, String>,
}

/// The command a `path` source runs: the commit HEAD points at and when HEAD last moved (its
/// newest reflog entry, which `git reset --hard` — what dag-sync runs — writes). `git -C` finds
/// the repository root from any folder inside it, so the time is the checkout's, not the
/// folder's. The same argv after `ssh host` makes a command source for a checkout elsewhere.
pub fn git_head_argv(path: &str) -> Vec<String> {
    [
        "git",
        "-C",
        path,
        "log",
        "--walk-reflogs",
        "-1",
        "--date=unix",
        "--format=%H%x20%gd",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Reads the deployed commit from the configured source.
pub async fn deployed_commit(source: &CommitSource) -> Result<Deployed, String> {
    match source {
        CommitSource::Path(path) => match run(&git_head_argv(path)).await {
            Ok(out) => parse_source_output(&out),
            // No reflog (`core.logAllRefUpdates` off, or a bare copy): the commit without a time.
            Err(reflog_error) => {
                let out = run(&[
                    "git".to_string(),
                    "-C".to_string(),
                    path.clone(),
                    "rev-parse".to_string(),
                    "HEAD".to_string(),
                ])
                .await
                .map_err(|e| format!("{e} (and before that: {reflog_error})"))?;
                let mut d = parse_source_output(&out)?;
                d.synced_ms = None;
                Ok(d)
            }
        },
        CommitSource::File(file) => {
            let text = tokio::fs::read_to_string(file)
                .await
                .map_err(|e| format!("cannot read {file}: {e}"))?;
            let mut d = parse_source_output(&text)?;
            if d.synced_ms.is_none() {
                d.synced_ms = mtime_ms(std::path::Path::new(file)).await;
            }
            Ok(d)
        }
        CommitSource::Command(argv) => parse_source_output(&run(argv).await?),
    }
}

/// A source's output: the commit as the first word, then optionally when the checkout last
/// moved — git's reflog selector `HEAD@{<unix seconds>}` (from `--date=unix --format='%H %gd'`),
/// plain unix seconds (`stat -c %Y`), or RFC 3339.
pub fn parse_source_output(text: &str) -> Result<Deployed, String> {
    let mut words = text.split_whitespace();
    let sha = words.next().unwrap_or_default().to_string();
    if sha.len() < 7 || sha.len() > 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "the deployed commit source gave {:?}, which is not a commit id",
            sha.chars().take(60).collect::<String>()
        ));
    }
    let synced_ms = match words.next() {
        None => None,
        Some(w) => Some(parse_sync_time(w).ok_or_else(|| {
            format!(
                "the deployed commit source gave {:?} after the commit, which is not a time \
                 (expected HEAD@{{<unix seconds>}}, unix seconds or RFC 3339)",
                w.chars().take(60).collect::<String>()
            )
        })?),
    };
    Ok(Deployed {
        sha: sha.to_ascii_lowercase(),
        synced_ms,
    })
}

fn parse_sync_time(word: &str) -> Option<i64> {
    let inner = word
        .strip_prefix("HEAD@{")
        .and_then(|w| w.strip_suffix('}'))
        .unwrap_or(word);
    if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) {
        return inner.parse::<i64>().ok()?.checked_mul(1000);
    }
    parse_rfc3339_ms(inner)
}

async fn mtime_ms(path: &std::path::Path) -> Option<i64> {
    let modified = tokio::fs::metadata(path).await.ok()?.modified().ok()?;
    let d = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Runs argv (no shell) with a timeout; its stdout, or a sentence naming what failed.
async fn run(argv: &[String]) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the commit source command is empty".to_string());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(SOURCE_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(format!(
                "`{program}` did not finish within {} s",
                SOURCE_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot run `{program}`: {e}")),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{program}` failed ({}): {}",
            out.status,
            err.lines().next().unwrap_or("no output")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn snapshot(ctx: &Ctx, cfg: &DagSyncConfig) -> Result<SyncSnapshot, String> {
    let redact = |e: String| ctx.redactor.redact(&e);
    let deployed = deployed_commit(&cfg.commit_source).await.map_err(redact)?;
    let gh = &ctx.integrations.github;
    let (comparison, touching, import_errors) = tokio::join!(
        gh.compare(&cfg.repo, &deployed.sha, &cfg.branch),
        gh.commits_touching(&cfg.repo, &cfg.branch, &cfg.dag_folder, 100),
        ctx.integrations.airflow.import_errors(),
    );
    let comparison = comparison
        .map_err(|e| redact(e.to_string()))?
        .ok_or_else(|| {
            format!(
                "GitHub does not know the deployed commit {} in {} (or the branch {}): was the \
                 checkout moved by hand?",
                &deployed.sha[..deployed.sha.len().min(12)],
                cfg.repo,
                cfg.branch
            )
        })?;
    let touching = touching.map_err(|e| redact(e.to_string()))?;
    let pending_dag_commits = comparison
        .commits
        .iter()
        .enumerate()
        .filter(|(_, c)| touching.iter().any(|t| t.sha == c.sha))
        .map(|(i, c)| (i as u64 + 1, c.clone()))
        .collect();
    Ok(SyncSnapshot {
        deployed,
        ahead_by: comparison.ahead_by,
        behind_by: comparison.behind_by,
        pending_dag_commits,
        status: comparison.status,
        import_errors: import_errors.map_err(|e| redact(e.to_string())),
    })
}

/// `!dag-sync status`.
pub async fn status(ctx: &Ctx) -> Reply {
    let Some(cfg) = ctx.config.dag_sync.clone() else {
        return Reply::ok(
            "dag-sync is not configured: add a [dag_sync] section (commit_source, repo, branch, \
             dag_folder, interval) to the config.",
        );
    };
    let cache = ctx.caches.dag_sync.clone();
    let (result, age) = cache.get("dag-sync.status", || snapshot(ctx, &cfg)).await;
    match result {
        Ok(s) => Reply::ok(format!("{}{}", render(&cfg, &s, now_ms()), as_of(age))),
        Err(e) => Reply::new(
            Outcome::Blocked,
            format!("dag-sync status cannot be answered: {e}"),
        ),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

pub fn render(cfg: &DagSyncConfig, s: &SyncSnapshot, now: i64) -> String {
    let interval_ms = i64::try_from(cfg.interval.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let synced = match s.deployed.synced_ms {
        Some(ms) => format!(
            ", last sync {} ({})",
            timefmt::ago(ms, now),
            timefmt::utc(ms)
        ),
        None => ", last sync time unknown".to_string(),
    };
    out.push(format!(
        "dag-sync: the Airflow host has {} of {}{synced}.",
        short(&s.deployed.sha),
        cfg.repo
    ));
    match s.status.as_str() {
        "identical" => out.push(format!("Up to date with `{}`.", cfg.branch)),
        // `git rev-list HEAD..origin/main` is empty: dag-sync has nothing to move to, ever.
        "behind" => out.push(format!(
            "⚠️ Stuck: the checkout has {} commit{} that `{}` does not, and `{}` has nothing \
             newer, so dag-sync never moves it. Reset it by hand on the host (`git reset --hard \
             origin/{}`).",
            s.behind_by,
            if s.behind_by == 1 { "" } else { "s" },
            cfg.branch,
            cfg.branch,
            cfg.branch
        )),
        _ => {
            if s.status == "diverged" {
                // dag-sync resets to the first commit of HEAD..origin/main, which is on the
                // branch: the next tick puts the checkout back on it.
                out.push(format!(
                    "↩️ The checkout has diverged from `{}` ({} commit{} of its own), which \
                     dag-sync recovers by itself: its next run resets to the first of the \
                     commits below, dropping the checkout's own.",
                    cfg.branch,
                    s.behind_by,
                    if s.behind_by == 1 { "" } else { "s" }
                ));
            }
            let n = s.ahead_by;
            out.push(format!(
                "{n} commit{} behind `{}`; {} of them touch {}/.",
                if n == 1 { "" } else { "s" },
                cfg.branch,
                s.pending_dag_commits.len(),
                cfg.dag_folder
            ));
            for (pos, c) in s.pending_dag_commits.iter().take(SHOWN) {
                let pr = c
                    .pr_number()
                    .map(|n| format!(" · PR #{n}"))
                    .unwrap_or_default();
                let eta = timefmt::duration(interval_ms.saturating_mul(*pos as i64));
                out.push(format!(
                    "  • {} {} · {}{pr} · lands in ~{eta}",
                    short(&c.sha),
                    c.subject,
                    c.author
                ));
            }
            if s.pending_dag_commits.len() > SHOWN {
                out.push(format!(
                    "  … and {} more",
                    s.pending_dag_commits.len() - SHOWN
                ));
            }
            out.push(format!(
                "dag-sync moves one commit per cron tick (every {}): all {n} land in roughly {}.",
                timefmt::duration(interval_ms),
                timefmt::duration(interval_ms.saturating_mul(n as i64))
            ));
        }
    }
    match &s.import_errors {
        Ok(errors) => {
            // Errors Airflow recorded since the last sync belong to what that sync brought.
            let recent: Vec<_> = errors
                .iter()
                .filter(|e| {
                    match (
                        s.deployed.synced_ms,
                        e.timestamp.as_deref().and_then(parse_rfc3339_ms),
                    ) {
                        (Some(sync), Some(at)) => at >= sync,
                        _ => true,
                    }
                })
                .collect();
            if recent.is_empty() {
                out.push("No import errors since the last sync.".to_string());
            } else {
                out.push(format!(
                    "Import errors since the last sync: {}",
                    recent.len()
                ));
                for e in recent.iter().take(SHOWN) {
                    out.push(format!("  • {}: {}", e.filename, e.summary));
                }
            }
        }
        Err(e) => out.push(format!("Import errors unknown: {e}")),
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sources_give_a_commit_or_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("DEPLOYED");
        std::fs::write(&f, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
        let d = deployed_commit(&CommitSource::File(f.display().to_string()))
            .await
            .unwrap();
        assert_eq!(d.sha, "0123456789abcdef0123456789abcdef01234567");
        assert!(d.synced_ms.is_some());
        let cmd = CommitSource::Command(vec!["echo".into(), "ABCDEF1".into()]);
        assert_eq!(deployed_commit(&cmd).await.unwrap().sha, "abcdef1");
        let bad = CommitSource::Command(vec!["echo".into(), "hello; rm -rf".into()]);
        assert!(
            deployed_commit(&bad)
                .await
                .unwrap_err()
                .contains("not a commit id")
        );
        let missing = CommitSource::Command(vec!["/nonexistent/prog".into()]);
        assert!(
            deployed_commit(&missing)
                .await
                .unwrap_err()
                .contains("cannot run")
        );
    }

    #[test]
    fn source_output_with_a_sync_time() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let d = parse_source_output(&format!("{sha} HEAD@{{1796102452}}\n")).unwrap();
        assert_eq!(d.sha, sha);
        assert_eq!(d.synced_ms, Some(1_796_102_452_000));
        let d = parse_source_output(&format!("{sha}\n1796102452\n")).unwrap();
        assert_eq!(d.synced_ms, Some(1_796_102_452_000));
        let d = parse_source_output(&format!("{sha} 2026-12-01T05:00:00Z")).unwrap();
        assert_eq!(d.synced_ms, parse_rfc3339_ms("2026-12-01T05:00:00Z"));
        assert_eq!(parse_source_output(sha).unwrap().synced_ms, None);
        assert!(
            parse_source_output(&format!("{sha} yesterday"))
                .unwrap_err()
                .contains("\"yesterday\" after the commit, which is not a time")
        );
    }

    /// A real git checkout: the commit and the time of the last `git reset --hard` are read at
    /// the repository root even when the source names a folder inside it (the DAG folder).
    #[tokio::test]
    async fn a_path_source_reads_the_repository_root() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
                .args(args)
                .output()
                .expect("git");
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("catalog/dags")).unwrap();
        std::fs::write(dir.path().join("catalog/dags/a.py"), "x = 1\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "one"]);
        let first = git(&["rev-parse", "HEAD"]);
        git(&["commit", "-q", "--allow-empty", "-m", "two"]);
        git(&["reset", "-q", "--hard", &first]);
        let dags = dir.path().join("catalog/dags").display().to_string();
        let d = deployed_commit(&CommitSource::Path(dags)).await.unwrap();
        assert_eq!(d.sha, first);
        let synced = d.synced_ms.expect("the reflog's time");
        assert!((now_ms() - synced).abs() < 120_000, "{synced}");
        // The same argv as a command source (what `ssh host git …` prints).
        let argv = git_head_argv(&dir.path().display().to_string());
        let d = deployed_commit(&CommitSource::Command(argv)).await.unwrap();
        assert_eq!(
            (d.sha.as_str(), d.synced_ms),
            (first.as_str(), Some(synced))
        );
    }

    fn snapshot(status: &str, ahead: u64, behind: u64) -> SyncSnapshot {
        SyncSnapshot {
            deployed: Deployed {
                sha: "abcdef0123".into(),
                synced_ms: None,
            },
            ahead_by: ahead,
            behind_by: behind,
            pending_dag_commits: vec![(
                1,
                Commit {
                    sha: "1234567890".into(),
                    subject: "Add a DAG (#1)".into(),
                    author: "x".into(),
                    date: None,
                },
            )],
            status: status.into(),
            import_errors: Ok(Vec::new()),
        }
    }

    fn cfg() -> DagSyncConfig {
        DagSyncConfig {
            commit_source: CommitSource::File("/x".into()),
            repo: "WordPress/openverse".into(),
            branch: "main".into(),
            dag_folder: "catalog/dags".into(),
            interval: Duration::from_secs(300),
            announce_after: Duration::from_secs(120),
        }
    }

    #[test]
    fn diverged_is_recoverable_and_only_behind_is_stuck() {
        let text = render(&cfg(), &snapshot("diverged", 3, 2), 0);
        assert!(
            text.contains(
                "↩️ The checkout has diverged from `main` (2 commits of its own), which dag-sync \
                 recovers by itself: its next run resets to the first of the commits below"
            ),
            "{text}"
        );
        assert!(
            text.contains("3 commits behind `main`; 1 of them touch"),
            "{text}"
        );
        assert!(!text.contains("Stuck"), "{text}");
        let text = render(&cfg(), &snapshot("behind", 0, 1), 0);
        assert!(
            text.contains("⚠️ Stuck: the checkout has 1 commit that `main` does not"),
            "{text}"
        );
    }

    #[test]
    fn pr_numbers_come_from_subjects() {
        let c = |s: &str| Commit {
            sha: "a".into(),
            subject: s.into(),
            author: "x".into(),
            date: None,
        };
        assert_eq!(c("Add a DAG (#1234)").pr_number(), Some(1234));
        assert_eq!(c("Add a DAG").pr_number(), None);
    }
}

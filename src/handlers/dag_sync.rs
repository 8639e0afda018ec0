//! `!dag-sync status`: the commit checked out on the Airflow host against the branch on GitHub.
//!
//! dag-sync (a cron job on the host) moves the checkout one commit per run, and neither its exit
//! code nor its Slack message is reliable (facts.md), so the bot asks the two ends itself: the
//! deployed commit from the configured source (a git checkout, a file, or a command — run
//! without a shell, with a timeout, never blocking the runtime) and the branch from GitHub.

use std::time::Duration;

use crate::coalesce::as_of;
use crate::config::{CommitSource, DagSyncConfig};
use crate::context::Ctx;
use crate::integrations::github::Commit;
use crate::reply::{Outcome, Reply};
use crate::store::now_ms;
use crate::timefmt::{self, parse_rfc3339_ms};

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
    /// Pending commits that touch the DAG folder, oldest first, with their position (1-based)
    /// in the queue dag-sync works through.
    pub pending_dag_commits: Vec<(u64, Commit)>,
    pub status: String,
    pub import_errors: Result<Vec<crate::integrations::airflow::ImportError>, String>,
}

/// Reads the deployed commit from the configured source.
pub async fn deployed_commit(source: &CommitSource) -> Result<Deployed, String> {
    let (text, synced_ms) = match source {
        CommitSource::Path(path) => {
            let out = run(&[
                "git".to_string(),
                "-C".to_string(),
                path.clone(),
                "rev-parse".to_string(),
                "HEAD".to_string(),
            ])
            .await?;
            // `git reset --hard` (what dag-sync runs) appends to the HEAD reflog: its mtime is
            // the time of the last move.
            let reflog = std::path::Path::new(path).join(".git/logs/HEAD");
            (out, mtime_ms(&reflog).await)
        }
        CommitSource::File(file) => {
            let text = tokio::fs::read_to_string(file)
                .await
                .map_err(|e| format!("cannot read {file}: {e}"))?;
            (text, mtime_ms(std::path::Path::new(file)).await)
        }
        CommitSource::Command(argv) => (run(argv).await?, None),
    };
    let sha = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if sha.len() < 7 || sha.len() > 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "the deployed commit source gave {:?}, which is not a commit id",
            sha.chars().take(60).collect::<String>()
        ));
    }
    Ok(Deployed {
        sha: sha.to_ascii_lowercase(),
        synced_ms,
    })
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
    let cache = ctx.caches.of::<SyncSnapshot, String>();
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
        "behind" | "diverged" => out.push(format!(
            "⚠️ The checkout is not on `{}` ({}): dag-sync cannot fast-forward it.",
            cfg.branch, s.status
        )),
        _ => {
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

//! `!dag-sync status`: the commit checked out on the Airflow host against the branch on GitHub.
//!
//! dag-sync (a cron job on the host) moves the checkout one commit per run, and neither its exit
//! code nor its Slack message is reliable, so the bot asks the two ends itself: the deployed
//! commit from the configured source ([`crate::integrations::checkout`]) and the branch from
//! GitHub.

use crate::coalesce::as_of;
use crate::config::DagSyncConfig;
use crate::context::Ctx;
use crate::integrations::checkout::{Deployed, deployed_commit};
use crate::integrations::github::Commit;
use crate::reply::{Outcome, Reply};
use crate::store::now_ms;
use crate::timefmt::{self, parse_rfc3339_ms};

/// DAG-touching pending commits listed by name.
const SHOWN: usize = 10;

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
    use crate::config::CommitSource;
    use std::time::Duration;

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

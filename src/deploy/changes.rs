//! What ships: before approval, the plan card lists the commits between the release deployed
//! now and the new one that touch the target's `changes_path` (the catalog's folder), so the
//! approver knows what they approve, not only what the infrastructure plan changes.
//!
//! The list is information, not a gate: when GitHub cannot answer, the card says so in as many
//! words and the deploy goes on to approval (the release itself was checked by preflight).

use crate::config::TargetConfig;
use crate::deploy::step::Step;
use crate::integrations::github::Changes;
use crate::store::{Deploy, now_ms};

use super::workflow::Workflow;

/// At most this many commits are listed; the rest are behind the compare link.
pub const SHOWN: usize = 20;
/// A commit subject is cut to this many characters on the card.
const SUBJECT_CHARS: usize = 60;
/// The journal's state for the row the card reads.
pub const JOURNAL_STATE: &str = "changes";

/// The card lines for what ships from `from` to `to` (release tags), given GitHub's answer.
pub fn lines(changes: &Changes, from: &str, to: &str, folder: &str) -> Vec<String> {
    let what = |n: usize| {
        if folder.is_empty() {
            format!("commit{}", plural(n))
        } else {
            format!("commit{} touching `{folder}/`", plural(n))
        }
    };
    let n = changes.commits.len();
    let total = changes.total_commits as usize;
    if n == 0 && changes.total_commits == 0 && changes.behind_by > 0 {
        return vec![format!(
            "📦 ships: nothing new — `{to}` is {} commit{} behind the deployed `{from}` (a \
             rollback) — {}",
            changes.behind_by,
            plural(changes.behind_by as usize),
            changes.compare_url
        )];
    }
    let mut out = vec![if n == 0 {
        format!(
            "📦 ships: no {} between `{from}` and `{to}` ({total} commit{} in all) — {}",
            what(1),
            plural(total),
            changes.compare_url
        )
    } else {
        format!(
            "📦 ships:{} {n} {} since `{from}` ({total} commit{} in all):",
            if changes.complete { "" } else { " at least" },
            what(n),
            plural(total),
        )
    }];
    if n == 0 {
        return out;
    }
    // Newest first: what an approver reads first is what changed last.
    for c in changes.commits.iter().rev().take(SHOWN) {
        let mut subject: String = c.subject.chars().take(SUBJECT_CHARS).collect();
        if c.subject.chars().count() > SUBJECT_CHARS {
            subject.push('…');
        }
        out.push(format!(
            "  • `{}` {subject} — {}",
            &c.sha[..c.sha.len().min(7)],
            c.author
        ));
    }
    if n > SHOWN {
        out.push(format!(
            "  … and {} more: {}",
            n - SHOWN,
            changes.compare_url
        ));
    } else {
        out.push(format!("  compare: {}", changes.compare_url));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Workflow<'_> {
    /// Reads what the deploy ships and records it for the card (a journal row of the plan step
    /// whose detail carries the card's lines); posts the same lines. Never fails the deploy.
    pub(super) async fn record_changes(&self, d: &Deploy, target: &TargetConfig) {
        let lines = self.changes_lines(d, target).await;
        let detail = serde_json::json!({ "changes": lines });
        if let Err(e) = self
            .ctx
            .store
            .record_step_output(d.id, Step::Plan, JOURNAL_STATE, None, "", now_ms(), &detail)
            .await
        {
            tracing::error!(deploy_id = d.id, error = %e, "cannot journal what the deploy ships");
        }
        self.conv
            .post(&format!("Deploy #{}: {}", d.id, lines.join("\n")))
            .await;
    }

    async fn changes_lines(&self, d: &Deploy, target: &TargetConfig) -> Vec<String> {
        let tag = |v: &str| target.release_tag.replace("{version}", v);
        let to = tag(&d.version);
        let deployed = match self.ctx.store.succeeded_deploys(&d.target, 20).await {
            Ok(list) => list.into_iter().find(|p| p.id != d.id),
            Err(e) => {
                return vec![format!(
                    "📦 ships: unknown — the store could not say which release is deployed ({})",
                    self.ctx.redactor.redact(&e.to_string())
                )];
            }
        };
        let Some(deployed) = deployed else {
            return vec![format!(
                "📦 ships: unknown — no earlier successful deploy of {} is recorded, so there is \
                 no deployed release to compare `{to}` with",
                d.target
            )];
        };
        let from = tag(&deployed.version);
        if from == to {
            return vec![format!(
                "📦 ships: no new commits — `{to}` is the release deployed now (deploy #{})",
                deployed.id
            )];
        }
        match self
            .ctx
            .integrations
            .github
            .changes_between(&target.repo, &from, &to, &target.changes_path)
            .await
        {
            Ok(Some(changes)) => lines(&changes, &from, &to, &target.changes_path),
            Ok(None) => vec![format!(
                "📦 ships: unknown — GitHub does not know `{from}` or `{to}` in {}",
                target.repo
            )],
            Err(e) => vec![format!(
                "📦 ships: unknown — the commits between `{from}` and `{to}` could not be read \
                 ({})",
                self.ctx.redactor.redact(&e.to_string())
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::github::Commit;

    fn commit(i: usize) -> Commit {
        Commit {
            sha: format!("{i:07x}{}", "0".repeat(33)),
            subject: format!("Change number {i} (#{})", 4000 + i),
            author: "stacimc".into(),
            date: None,
        }
    }

    fn changes(n: usize) -> Changes {
        Changes {
            compare_url: "https://github.com/WordPress/openverse/compare/a...b".into(),
            total_commits: 40,
            behind_by: 0,
            commits: (0..n).map(commit).collect(),
            complete: true,
        }
    }

    #[test]
    fn at_most_twenty_newest_first_then_the_link() {
        let l = lines(&changes(23), "catalog-a", "catalog-b", "catalog");
        assert_eq!(
            l[0],
            "📦 ships: 23 commits touching `catalog/` since `catalog-a` (40 commits in all):"
        );
        assert_eq!(l.len(), 1 + SHOWN + 1);
        assert!(l[1].contains("Change number 22 (#4022)"), "{}", l[1]);
        assert!(l[SHOWN].contains("Change number 3 (#4003)"), "{}", l[SHOWN]);
        assert_eq!(
            l[SHOWN + 1],
            "  … and 3 more: https://github.com/WordPress/openverse/compare/a...b"
        );
    }

    #[test]
    fn a_short_list_ends_with_the_link_and_none_says_so() {
        let l = lines(&changes(1), "v1", "v2", "catalog");
        assert_eq!(
            l[0],
            "📦 ships: 1 commit touching `catalog/` since `v1` (40 commits in all):"
        );
        assert!(l[1].starts_with("  • `0000000` Change number 0 (#4000) — stacimc"));
        assert!(l[2].starts_with("  compare: https://"));
        let l = lines(&changes(0), "v1", "v2", "catalog");
        assert_eq!(l.len(), 1);
        assert!(l[0].starts_with("📦 ships: no commit touching `catalog/` between `v1` and `v2`"));
        let mut all = changes(2);
        all.complete = false;
        let l = lines(&all, "v1", "v2", "");
        assert_eq!(
            l[0],
            "📦 ships: at least 2 commits since `v1` (40 commits in all):"
        );
    }
}

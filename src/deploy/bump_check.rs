//! The bump is verified before anything is planned: the documented `bump` recipes pick the
//! version themselves (`just bump prod catalog-airflow` takes none), so a newer release published
//! meanwhile, or a recipe that wrote nothing, would otherwise be planned and approved under the
//! requested version's name. When the workdir is a git checkout, `git diff HEAD` after the bump
//! must add a line holding the requested image tag (what the target's `image_tag` template makes
//! of the version); otherwise the deploy fails at bump with the diff shown, nothing planned.

use crate::config::TargetConfig;
use crate::deploy::step::Step;
use crate::integrations::git::{self, Checkout};
use crate::store::{Deploy, NewAuditEvent, Owner, now_ms};

use super::workflow::{Flow, Workflow};

/// The most of a diff kept in the journal (the whole diff is posted).
const JOURNAL_DIFF_BYTES: usize = 16 * 1024;
/// How many added lines a failure sentence quotes.
const QUOTED_LINES: usize = 3;

/// What `git diff` said about the bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BumpVerdict {
    /// An added line holds the requested tag.
    Wrote,
    /// The diff adds lines, none with the requested tag (another version was written).
    WroteOther { added: Vec<String> },
    /// No tracked file differs from `HEAD`.
    Nothing,
    /// Tracked files differ, but the diff adds no line (only removals).
    OnlyRemovals,
}

/// Reads the verdict from `git diff HEAD`'s text for the requested `tag`.
pub fn verdict(diff: &str, tag: &str) -> BumpVerdict {
    if diff.trim().is_empty() {
        return BumpVerdict::Nothing;
    }
    let added = git::added_lines(diff);
    if added.iter().any(|l| git::mentions_tag(l, tag)) {
        return BumpVerdict::Wrote;
    }
    if added.is_empty() {
        return BumpVerdict::OnlyRemovals;
    }
    BumpVerdict::WroteOther {
        added: added
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take(QUOTED_LINES)
            .map(str::to_string)
            .collect(),
    }
}

/// The image tag the target's template makes of `version`.
pub fn image_tag(target: &TargetConfig, version: &str) -> String {
    target.image_tag.replace("{version}", version)
}

impl Workflow<'_> {
    /// After a successful bump: checks the checkout's diff for the requested image tag. The
    /// deploy fails here (diff posted, nothing planned) when it is missing or git cannot say.
    pub(super) async fn verify_bump(
        &self,
        d: &Deploy,
        target: &TargetConfig,
        owner: &Owner,
    ) -> Flow<()> {
        let tag = image_tag(target, &d.version);
        let checkout = match Checkout::of_target(target, (*self.ctx.redactor).clone()).await {
            Ok(found) => found,
            Err(e) => {
                let reason = format!(
                    "the bump could not be verified: git cannot say whether the workdir `{}` \
                     is part of a checkout ({e}); nothing was planned",
                    target.workdir
                );
                self.journal_bump(d, "unverifiable", &tag, "", Some(&reason))
                    .await;
                return Err(self.fail(d, &reason, owner).await);
            }
        };
        let Some(checkout) = checkout else {
            self.journal_bump(d, "not_verified", &tag, "", None).await;
            self.conv
                .post(&format!(
                    "ℹ️ Deploy #{}: the workdir `{}` is not a git checkout, so the bump cannot be \
                     checked for `{tag}`.",
                    d.id, target.workdir
                ))
                .await;
            return Ok(());
        };
        let diff = match checkout.diff_head().await {
            Ok(diff) => diff,
            Err(e) => {
                let reason = format!(
                    "the bump could not be verified: {e}; nothing was planned (the checkout \
                     must be readable by git, and HEAD must exist)"
                );
                self.journal_bump(d, "unverifiable", &tag, "", Some(&reason))
                    .await;
                return Err(self.fail(d, &reason, owner).await);
            }
        };
        let reason = match verdict(&diff, &tag) {
            BumpVerdict::Wrote => {
                self.journal_bump(d, "verified", &tag, &diff, None).await;
                let files = diff
                    .lines()
                    .filter(|l| l.starts_with("diff --git "))
                    .count();
                self.conv
                    .post(&format!(
                        "🔍 Deploy #{}: the bump wrote `{tag}` (git diff: {files} file{} changed).",
                        d.id,
                        if files == 1 { "" } else { "s" }
                    ))
                    .await;
                return Ok(());
            }
            BumpVerdict::Nothing => format!(
                "the bump changed nothing in the checkout (git diff is empty), so `{tag}` was \
                 not written; nothing was planned"
            ),
            BumpVerdict::OnlyRemovals => format!(
                "the bump only removed lines (git diff adds none), so `{tag}` was not written; \
                 nothing was planned"
            ),
            BumpVerdict::WroteOther { added } => format!(
                "the bump did not write `{tag}`: git diff adds {} instead (a newer release may \
                 have appeared, or the recipe picks another version); nothing was planned",
                added
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.journal_bump(d, "mismatch", &tag, &diff, Some(&reason))
            .await;
        let shown = if diff.trim().is_empty() {
            "(git diff HEAD printed nothing)".to_string()
        } else {
            diff.clone()
        };
        self.conv
            .post_long(
                &format!(
                    "🚫 Deploy #{}: the bump did not write `{tag}`. `git diff HEAD` in `{}`:",
                    d.id, target.workdir
                ),
                &format!("deploy-{}-bump.diff", d.id),
                &shown,
            )
            .await;
        Err(self.fail(d, &reason, owner).await)
    }

    /// The check's result in the journal (the deploy page shows it) and the audit log.
    async fn journal_bump(
        &self,
        d: &Deploy,
        verdict: &str,
        tag: &str,
        diff: &str,
        reason: Option<&str>,
    ) {
        let mut kept = diff.to_string();
        if kept.len() > JOURNAL_DIFF_BYTES {
            let mut cut = JOURNAL_DIFF_BYTES;
            while !kept.is_char_boundary(cut) {
                cut -= 1;
            }
            kept.truncate(cut);
            kept.push_str("\n… (diff cut)");
        }
        let detail = serde_json::json!({
            "bump_check": verdict,
            "image_tag": tag,
            "reason": reason,
        });
        if let Err(e) = self
            .ctx
            .store
            .record_step_output(d.id, Step::Bump, verdict, None, &kept, now_ms(), &detail)
            .await
        {
            tracing::error!(deploy_id = d.id, error = %e, "cannot journal the bump check");
        }
        if let Err(e) = self
            .ctx
            .store
            .append_audit(&NewAuditEvent {
                deploy_id: Some(d.id),
                outcome: Some(verdict.into()),
                detail,
                ..self.event("deploy.bump_check", d)
            })
            .await
        {
            tracing::error!(deploy_id = d.id, error = %e, "cannot audit the bump check");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "diff --git a/group_vars/catalog.yml b/group_vars/catalog.yml\n\
        index 1..2 100644\n--- a/group_vars/catalog.yml\n+++ b/group_vars/catalog.yml\n\
        @@ -1 +1 @@\n-catalog_image_tag: rel-2026.11.20.09.00.00\n\
        +catalog_image_tag: rel-2026.11.30.10.00.00\n";

    #[test]
    fn the_requested_tag_in_an_added_line_is_a_verified_bump() {
        assert_eq!(verdict(DIFF, "rel-2026.11.30.10.00.00"), BumpVerdict::Wrote);
    }

    #[test]
    fn another_tag_or_only_the_old_one_is_not() {
        assert_eq!(
            verdict(DIFF, "rel-2026.11.29.10.00.00"),
            BumpVerdict::WroteOther {
                added: vec!["catalog_image_tag: rel-2026.11.30.10.00.00".into()]
            }
        );
        // The tag being removed is not the tag being written.
        assert_eq!(
            verdict(DIFF, "rel-2026.11.20.09.00.00"),
            BumpVerdict::WroteOther {
                added: vec!["catalog_image_tag: rel-2026.11.30.10.00.00".into()]
            }
        );
        assert_eq!(verdict("", "v1.5.3"), BumpVerdict::Nothing);
        assert_eq!(verdict("\n", "v1.5.3"), BumpVerdict::Nothing);
        let removal = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +0,0 @@\n-tag: v1.5.3\n";
        assert_eq!(verdict(removal, "v1.5.3"), BumpVerdict::OnlyRemovals);
    }

    #[test]
    fn a_longer_version_is_not_the_requested_one() {
        let diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-tag: v1.5.2\n+tag: v1.5.30\n";
        assert!(matches!(
            verdict(diff, "v1.5.3"),
            BumpVerdict::WroteOther { .. }
        ));
    }
}

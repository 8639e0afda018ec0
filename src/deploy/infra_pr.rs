//! The runbook's last step: after a successful deploy, the bump goes to the infrastructure
//! repository as a pull request (`[targets.X] infra_pr`), so that its `main` says what production
//! runs. The bump is committed on `chatops/deploy-<id>-<version>` (the checkout's own branch,
//! index and working tree untouched), pushed to the checkout's remote, and the pull request is
//! opened through GitHub's API with a body that links the deploy page and names the requester
//! and the approvers.
//!
//! The deploy has succeeded before any of this starts and stays succeeded: a failure here is
//! journaled, audited, posted and shown on the card, and never undoes or hides the deploy.

use crate::config::{InfraPrConfig, TargetConfig};
use crate::deploy::approval;
use crate::deploy::step::Step;
use crate::integrations::git::Checkout;
use crate::integrations::github::NewPullRequest;
use crate::store::{Deploy, NewAuditEvent, now_ms};

use super::bump_check::image_tag;
use super::workflow::Workflow;

/// The branch a deploy's bump is proposed on.
pub fn branch_name(d: &Deploy) -> String {
    format!("chatops/deploy-{}-{}", d.id, d.version)
}

/// The pull request's title.
pub fn title(d: &Deploy) -> String {
    format!(
        "Deploy {} {} to {} (chatops #{})",
        d.target, d.version, d.environment, d.id
    )
}

/// What was prepared while the deploy still held its lock.
#[derive(Debug)]
pub(super) struct Prepared {
    config: InfraPrConfig,
    checkout: Checkout,
    branch: String,
    commit: String,
}

/// How the step ended, for the reply.
pub(super) type Ended = Option<Result<String, String>>;

impl Workflow<'_> {
    /// Commits the bump on its branch, locally: run while the deploy still holds its lock, so
    /// no other deploy's bump can be in the working tree. `None` without `infra_pr`.
    pub(super) async fn prepare_infra_pr(
        &self,
        d: &Deploy,
        target: &TargetConfig,
    ) -> Option<Result<Prepared, String>> {
        let config = target.infra_pr.clone()?;
        let checkout = match Checkout::of_target(target, (*self.ctx.redactor).clone()).await {
            Ok(Some(checkout)) => checkout,
            Ok(None) => {
                return Some(Err(format!(
                    "the workdir `{}` is not a git checkout, so there is no bump to commit",
                    target.workdir
                )));
            }
            Err(e) => return Some(Err(format!("the checkout cannot be read: {e}"))),
        };
        let branch = branch_name(d);
        let message = format!(
            "{}\n\nImage tag {} applied by catalog-chatops; requested by {}.",
            title(d),
            image_tag(target, &d.version),
            d.requested_by
        );
        let commit = match checkout.commit_worktree(&message).await {
            Ok(Some(commit)) => commit,
            Ok(None) => {
                return Some(Err(
                    "the checkout's tracked files equal HEAD, so there is no bump to commit"
                        .to_string(),
                ));
            }
            Err(e) => return Some(Err(format!("the bump could not be committed: {e}"))),
        };
        if let Err(e) = checkout.create_branch(&branch, &commit).await {
            return Some(Err(format!(
                "the branch `{branch}` could not be created: {e}"
            )));
        }
        Some(Ok(Prepared {
            config,
            checkout,
            branch,
            commit,
        }))
    }

    /// Pushes the prepared branch and opens the pull request; journals, audits and posts the
    /// result either way. Returns the link, or the sentence saying why there is none.
    pub(super) async fn open_infra_pr(
        &self,
        d: &Deploy,
        prepared: Option<Result<Prepared, String>>,
    ) -> Ended {
        let (result, p) = match prepared? {
            Err(reason) => (Err(reason), None),
            Ok(p) => (self.push_and_open(d, &p).await, Some(p)),
        };
        Some(match (result, p) {
            (Ok((url, number)), Some(p)) => {
                let detail = serde_json::json!({
                    "infra_pr": "opened",
                    "url": url,
                    "number": number,
                    "repo": p.config.repo,
                    "branch": p.branch,
                    "commit": p.commit,
                });
                self.record_infra_pr(d, "opened", detail).await;
                self.conv
                    .post(&format!(
                        "🔀 Deploy #{}: infra pull request #{number} opened: {url} (branch `{}` \
                         pushed to `{}`).",
                        d.id, p.branch, p.config.remote
                    ))
                    .await;
                Ok(url)
            }
            (Ok(_), None) => Err("nothing was prepared".to_string()),
            (Err(reason), p) => {
                let reason = self.ctx.redactor.redact(&reason);
                let left = p
                    .as_ref()
                    .map(|p| {
                        format!(
                            " The bump is committed on the local branch `{}` ({}) to push by hand.",
                            p.branch,
                            &p.commit[..p.commit.len().min(12)]
                        )
                    })
                    .unwrap_or_default();
                let detail = serde_json::json!({
                    "infra_pr": "failed",
                    "reason": reason,
                    "branch": p.as_ref().map(|p| p.branch.clone()),
                    "commit": p.as_ref().map(|p| p.commit.clone()),
                });
                self.record_infra_pr(d, "failed", detail).await;
                self.conv
                    .post(&format!(
                        "⚠️ Deploy #{} succeeded, but the infra pull request was not opened: \
                         {reason}.{left}",
                        d.id
                    ))
                    .await;
                Err(reason)
            }
        })
    }

    async fn push_and_open(&self, d: &Deploy, p: &Prepared) -> Result<(String, u64), String> {
        p.checkout
            .push(&p.config.remote, &p.branch)
            .await
            .map_err(|e| format!("the push to `{}` was refused: {e}", p.config.remote))?;
        let body = self.infra_pr_body(d, p).await;
        let title = title(d);
        let pr = self
            .ctx
            .integrations
            .github
            .open_pull_request(
                &p.config.repo,
                &NewPullRequest {
                    title: &title,
                    head: &p.branch,
                    base: &p.config.base,
                    body: &body,
                },
            )
            .await
            .map_err(|e| {
                format!(
                    "the branch `{}` was pushed, but GitHub did not open the pull request in {}: {e}",
                    p.branch, p.config.repo
                )
            })?;
        Ok((pr.html_url, pr.number))
    }

    async fn infra_pr_body(&self, d: &Deploy, p: &Prepared) -> String {
        let approvers = match (self.ctx.store.approvals(d.id).await, &d.plan_fingerprint) {
            (Ok(list), Some(fp)) => approval::distinct_approvers(d, &list, fp)
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let page = crate::links::deploy_page(&self.ctx.config, d.id)
            .unwrap_or_else(|| "not linked (the bot's `server.public_url` is not set)".to_string());
        let target = self.ctx.config.targets.get(&d.target);
        let tag = target.map(|t| image_tag(t, &d.version)).unwrap_or_default();
        format!(
            "Deploy #{id} of {target} {version} to {env} succeeded; this pull request carries \
             the bump it applied, so that `{base}` says what {env} runs.\n\n\
             - Deploy page: {page}\n\
             - Requested by: {requester}\n\
             - Approved by: {approvers}\n\
             - Image tag: `{tag}`\n\
             - Plan fingerprint: `{fp}`\n\n\
             Opened by catalog-chatops from commit {commit}.",
            id = d.id,
            target = d.target,
            version = d.version,
            env = d.environment,
            base = p.config.base,
            requester = d.requested_by,
            approvers = if approvers.is_empty() {
                "nobody recorded".to_string()
            } else {
                approvers.join(", ")
            },
            fp = d.plan_fingerprint.as_deref().unwrap_or("none"),
            commit = p.commit,
        )
    }

    async fn record_infra_pr(&self, d: &Deploy, outcome: &str, detail: serde_json::Value) {
        if let Err(e) = self
            .ctx
            .store
            .record_step_output(d.id, Step::InfraPr, outcome, None, "", now_ms(), &detail)
            .await
        {
            tracing::error!(deploy_id = d.id, error = %e, "cannot journal the infra pull request");
        }
        if let Err(e) = self
            .ctx
            .store
            .append_audit(&NewAuditEvent {
                deploy_id: Some(d.id),
                outcome: Some(outcome.into()),
                detail,
                ..self.event("deploy.infra_pr", d)
            })
            .await
        {
            tracing::error!(deploy_id = d.id, error = %e, "cannot audit the infra pull request");
        }
        self.refresh_card(d.id).await;
    }
}
